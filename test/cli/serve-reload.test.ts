// Safe reload of `drawbridge serve` (stdio, the built binary as a child process, admin.listen on):
// SIGHUP with a broken policy keeps the running one (a denied call stays denied) and logs the
// problems; SIGHUP with a valid one applies it (the call is now allowed); `drawbridge reload`
// against the admin listener applies, and refuses a change of a restart-only setting; the journal
// has a `config` record for the start and for every attempt, with hashes, each call's intent names
// the hash it was decided under, and `journal verify` still passes. Also `drawbridge reload`'s own
// refusals: no admin listener configured, nothing listening, a bad --admin.

import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runCli, runCliAsync, runInProcess, waitForOutput } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { IterativeStdioClientTransport } from '../support/iterativeStdio.js';
import { freePort } from '../support/net.js';

const ORDERS_ONLY = `kind: policy
rules:
  - name: read-orders
    match: { tool: run_sql, access: read, tables: [public.orders] }
    effect: allow
`;
/** A typo'd key: the loader refuses the whole config (an unknown key must never switch a control off). */
const BROKEN = `${ORDERS_ONLY}  - name: read-products
    match: { tool: run_sql, access: read, tables: [public.products] }
    effekt: allow
`;
const WITH_PRODUCTS = `${ORDERS_ONLY}  - name: read-products
    match: { tool: run_sql, access: read, tables: [public.products] }
    effect: allow
`;

let db: FreshDatabase;
let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('reload');
  dir = writeConfig({ policy: ORDERS_ONLY });
  appendFileSync(join(dir, 'policies', 'gateway.yaml'), 'admin: { listen: "127.0.0.1:0" }\n');
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const textOf = (r: CallToolResult): string => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

interface Row {
  readonly seq: number;
  readonly type: string;
  readonly data: string;
}

function records(type: string): Array<Record<string, unknown>> {
  const j = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return (j.prepare('SELECT seq, type, data FROM records WHERE type = ? ORDER BY seq').all(type) as Row[]).map((r) => JSON.parse(r.data));
  } finally {
    j.close();
  }
}

it('SIGHUP: a broken policy is refused (the denied call stays denied), a valid one applies; drawbridge reload; the journal has every attempt', async () => {
  const transport = new IterativeStdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl, PATH: process.env['PATH'] ?? '' },
    cwd: REPO_ROOT,
  });
  const client = new Client({ name: 'reload-test', version: '1.0.0' });
  await client.connect(transport);
  const stderr = () => transport.stderr();
  const admin = (await waitForOutput(stderr, /admin listener \(\/healthz, \/readyz, \/metrics\) at (http:\/\/[^\s"]+)/, 'the admin listener'))[1] as string;
  const first = (await waitForOutput(stderr, /"msg":"config ([0-9a-f]{64});/, 'the config hash'))[1] as string;
  // The hash the gateway serves is the one `drawbridge check` prints.
  expect(runCli(['check', '--config', dir], { env: { DB_URL: db.gatewayUrl } }).stdout).toContain(`config hash: ${first}\n`);
  /** The first JSON log line with this msg (stderr is not a terminal: the log is JSON), once it is there. */
  const logged = async (msg: string): Promise<Record<string, unknown>> => {
    const pattern = new RegExp(`^\\{.*"msg":${JSON.stringify(msg).replace(/[()|.*+?[\]\\]/g, '\\$&')}.*\\}$`, 'm');
    return JSON.parse((await waitForOutput(stderr, pattern, msg))[0]) as Record<string, unknown>;
  };
  const products = () =>
    client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM products' } }) as Promise<CallToolResult>;
  try {
    const denied = await products();
    expect(denied.isError).toBe(true);
    expect(textOf(denied)).toMatch(/^policy\.no_match: /);

    // A broken policy: refused, the problems logged with file and line, the old policy still decides.
    writeFileSync(join(dir, 'policies', 'rules.yaml'), BROKEN);
    transport.signal('SIGHUP');
    const refusedLine = await logged('config reload refused, the running config is kept');
    expect(refusedLine).toMatchObject({ level: 'warn', by: 'SIGHUP', code: 'config.invalid', hash: first, problemCount: expect.any(Number) });
    expect(refusedLine['attempted']).not.toBe(first);
    expect(refusedLine['problems']).toMatch(/rules\.yaml:\d+: .*effekt/);
    expect(textOf(await products())).toMatch(/^policy\.no_match: /);

    // A valid one: applied, the call is now allowed.
    writeFileSync(join(dir, 'policies', 'rules.yaml'), WITH_PRODUCTS);
    transport.signal('SIGHUP');
    const appliedLine = await logged('config reloaded');
    expect(appliedLine).toMatchObject({ level: 'info', by: 'SIGHUP', previousHash: first });
    const second = appliedLine['hash'] as string;
    expect(second).not.toBe(first);
    const allowed = await products();
    expect(allowed.isError, textOf(allowed)).toBeFalsy();

    // drawbridge reload against the admin listener: nothing changed, applied (exit 0) with the same hash.
    const same = await runCliAsync(['reload', '--admin', admin]);
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toBe(`applied: config ${second} (unchanged), was ${second}\n`);

    // A restart-only setting (the journal's location) changed: refused whole, exit 1, nothing of it applied.
    const gatewayYaml = join(dir, 'policies', 'gateway.yaml');
    const original = readFileSync(gatewayYaml, 'utf8');
    writeFileSync(join(dir, 'policies', 'rules.yaml'), ORDERS_ONLY);
    writeFileSync(gatewayYaml, original.replace('journal: { path: journal.db }', 'journal: { path: elsewhere.db }'));
    const restart = await runCliAsync(['reload', '--admin', admin]);
    expect(restart.status).toBe(1);
    expect(restart.stderr).toMatch(new RegExp(`refused \\(config\\.restart_required\\); the gateway keeps config ${second}`));
    expect(restart.stderr).toContain('journal.path (kind: gateway) changed: restart to apply');
    // Still the applied policy (the rules file's change came with the refused attempt, so it did not apply either).
    expect((await products()).isError).toBeFalsy();
    writeFileSync(gatewayYaml, original);
    writeFileSync(join(dir, 'policies', 'rules.yaml'), WITH_PRODUCTS);

    expect(await transport.terminate()).toBe(0);
  } finally {
    await transport.close().catch(() => undefined);
  }

  const configs = records('config');
  expect(configs.map((c) => [c['event'], c['result'], (c['by'] as { via: string }).via])).toEqual([
    ['start', 'applied', 'start'],
    ['reload', 'refused', 'signal'],
    ['reload', 'applied', 'signal'],
    ['reload', 'applied', 'admin'],
    ['reload', 'refused', 'admin'],
  ]);
  const [start, broken, applied, unchanged, restartOnly] = configs as [
    Record<string, unknown>,
    Record<string, unknown>,
    Record<string, unknown>,
    Record<string, unknown>,
    Record<string, unknown>,
  ];
  expect(start).toMatchObject({ hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
  const h1 = start['hash'];
  expect(broken).toMatchObject({ hash: h1, previousHash: h1, code: 'config.invalid' });
  expect(broken['attempted']).not.toBe(h1);
  expect((broken['problems'] as string[]).some((p) => /rules\.yaml:\d+: .*effekt/.test(p))).toBe(true);
  expect(applied).toMatchObject({ previousHash: h1, problems: [] });
  const h2 = applied['hash'];
  expect(h2).toBe(applied['attempted']);
  expect(unchanged).toMatchObject({ hash: h2, previousHash: h2, by: { via: 'admin', operator: null } });
  expect(restartOnly).toMatchObject({ hash: h2, code: 'config.restart_required', problems: ['journal.path (kind: gateway) changed: restart to apply'] });

  // Each call's intent names the config it was decided under: two denials under the first, the later reads under the second.
  const calls = records('call').map((c) => [(c['input'] as { sql: string }).sql, c['config'], (c['decision'] as { effect: string }).effect]);
  expect(calls).toEqual([
    ['SELECT count(*) AS n FROM products', h1, 'deny'],
    ['SELECT count(*) AS n FROM products', h1, 'deny'],
    ['SELECT count(*) AS n FROM products', h2, 'allow'],
    ['SELECT count(*) AS n FROM products', h2, 'allow'],
  ]);

  const verify = runCli(['journal', 'verify', '--config', dir]);
  expect(verify.status, verify.stderr).toBe(0);
}, 120_000);

it('drawbridge reload: no admin listener configured, nothing listening at admin.listen, a bad --admin', async () => {
  const bare = writeConfig();
  try {
    const none = await runInProcess(['reload', '--config', bare]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no admin listener is configured in .* \(admin\.listen in policies\/, kind: gateway\).*SIGHUP/);

    // The default comes from admin.listen even when the rest of the config does not load (the reason to reload is often an edit).
    const port = await freePort();
    appendFileSync(join(bare, 'policies', 'gateway.yaml'), `admin: { listen: "0.0.0.0:${port}" }\n`);
    writeFileSync(join(bare, 'policies', 'rules.yaml'), BROKEN);
    const down = await runInProcess(['reload', '--config', bare]);
    expect(down.status).toBe(1);
    expect(down.stderr).toContain(`cannot reach the admin listener at http://127.0.0.1:${port}`);

    const bad = await runInProcess(['reload', '--admin', 'not a url']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--admin takes the admin listener's URL");
  } finally {
    rmSync(bare, { recursive: true, force: true });
  }
});
