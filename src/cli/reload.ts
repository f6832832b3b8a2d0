// `drawbridge reload`: asks a running gateway to reload its tools/ and policies/ through its admin
// listener (POST /reload, http/reload.ts) and prints what happened: the hash that took effect, or
// why the gateway refused (its running config is kept). Where the listener is: --admin URL, else
// admin.listen of the config, read without validating the rest — the reason to reload is often a
// config being edited, and a broken policy must not hide where the gateway listens.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { CommandArgs } from './commands.js';
import { configDir, fail, type CliIo } from './io.js';

/** How long the gateway gets to answer: a reload reads and validates files, nothing more. */
const TIMEOUT_MS = 30_000;

export async function reload({ values }: CommandArgs<'reload'>, io: CliIo): Promise<number> {
  const base = values.admin ?? adminUrlOf(configDir(values.config, io));
  let url: URL;
  try {
    url = new URL('/reload', base);
  } catch {
    return fail(`--admin takes the admin listener's URL, e.g. http://127.0.0.1:9090 (got "${base}").`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(`--admin takes an http:// or https:// URL (got "${base}").`);
  const token = io.env['DRAWBRIDGE_OPERATOR_TOKEN']?.trim();
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      redirect: 'error',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
    return fail(`drawbridge reload: cannot reach the admin listener at ${url.origin} (${cause}). Is the gateway running, with admin.listen there?`, 1);
  }
  const body = await response.json().catch(() => null);
  const answer = body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  if (response.status === 200 && answer['result'] === 'applied') {
    const same = answer['hash'] === answer['previousHash'] ? ' (unchanged)' : '';
    io.stdout.write(`applied: config ${String(answer['hash'])}${same}, was ${String(answer['previousHash'])}\n${connectionLines(answer['connections'])}`);
    return 0;
  }
  if (response.status === 409 && answer['result'] === 'refused') {
    const problems = Array.isArray(answer['problems']) ? answer['problems'].map((p) => `  ${String(p)}`) : [];
    io.stderr.write(
      `drawbridge reload: refused (${String(answer['code'])}); the gateway keeps config ${String(answer['hash'])} ` +
        `(attempted ${String(answer['attempted'] ?? 'unreadable')}):\n${problems.join('\n')}\n`,
    );
    return 1;
  }
  const error = answer['error'] !== null && typeof answer['error'] === 'object' ? (answer['error'] as Record<string, unknown>) : null;
  if (error) return fail(`drawbridge reload: ${String(error['code'])}: ${String(error['message'])}\n${String(error['hint'] ?? '')}`, 1);
  return fail(`drawbridge reload: ${url.origin} answered HTTP ${response.status}, not a reload outcome: is it a Drawbridge admin listener?`, 1);
}

function connectionLines(value: unknown): string {
  if (value === null || typeof value !== 'object') return '';
  const c = value as Record<string, unknown>;
  return (['replaced', 'added', 'removed'] as const)
    .map((k) => (Array.isArray(c[k]) && c[k].length > 0 ? `connections ${k}: ${c[k].map(String).join(', ')}\n` : ''))
    .join('');
}

/** http://admin.listen of the config's kind: gateway (a wildcard bind is reached on loopback); fails with exit 1 when none is set. */
function adminUrlOf(dir: string): string {
  const listen = adminListenOf(dir);
  if (listen === null) {
    return fail(
      `drawbridge reload: no admin listener is configured in ${dir} (admin.listen in policies/, kind: gateway). ` +
        'Set one and restart the gateway, pass --admin URL, or send the gateway SIGHUP (kill -HUP PID).',
      1,
    );
  }
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen.trim());
  if (!m) return fail(`drawbridge reload: admin.listen takes HOST:PORT (got "${listen}"); pass --admin URL.`, 1);
  const host = m[1] === '0.0.0.0' ? '127.0.0.1' : m[1] === '[::]' ? '[::1]' : (m[1] as string);
  return `http://${host}:${m[2] as string}`;
}

/** admin.listen as written in policies/ (the first kind: gateway document that has it), or null. */
function adminListenOf(dir: string): string | null {
  const policies = join(dir, 'policies');
  if (!existsSync(policies)) return null;
  for (const name of readdirSync(policies)
    .filter((n) => /\.ya?ml$/.test(n))
    .sort()) {
    let text: string;
    try {
      text = readFileSync(join(policies, name), 'utf8');
    } catch {
      continue;
    }
    for (const doc of parseAllDocuments(text)) {
      if (!('toJS' in doc) || doc.errors.length > 0) continue;
      const value: unknown = doc.toJS();
      if (value === null || typeof value !== 'object') continue;
      const record = value as Record<string, unknown>;
      const admin = record['admin'];
      if (record['kind'] !== 'gateway' || admin === null || typeof admin !== 'object') continue;
      const listen = (admin as Record<string, unknown>)['listen'];
      if (typeof listen === 'string') return listen;
    }
  }
  return null;
}
