// The permanent test of issue 10: `drawbridge serve --http` (a child process,
// OIDC tokens from the test OpenID provider) with several MCP sessions open,
// one of them running a long read whose PostgreSQL session is terminated
// (pg_terminate_backend) mid-statement. That call ends with
// backend.connection_lost; the gateway process keeps serving; the other
// sessions' calls — one running at that very moment, and later ones — work,
// and so does the interrupted session's next call; the last-resort guard never
// fires; the journal verifies and every call has an outcome.
// Uses a fresh database on the suite's shared cluster: only the gateway's own
// session of that database is terminated, nothing is restarted.

import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GUARD_LINE_PREFIX } from '../../../src/server-guard.js';
import { REPO_ROOT, requireBuiltCli, runCli } from '../../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../../support/fixtures.js';
import { freePort } from '../../support/net.js';
import { startTestIdp, type TestIdp } from '../../support/oidc.js';

const POLICY = `kind: policy
rules:
  - name: reads
    match: { tool: run_sql, access: read, groups: [developers, sre, agents] }
    effect: allow
`;

const LIMITS = '{ timeout: 60s, lock_timeout: 5s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }';

let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
let child: ChildProcess | null = null;
let stderr = '';

function startServe(port: number): Promise<string> {
  const proc = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir, '--http', `127.0.0.1:${port}`], {
    cwd: REPO_ROOT,
    env: { ...process.env, DB_URL: db.gatewayUrl },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child = proc;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve --http did not announce itself:\n${stderr}`)), 20_000);
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const url = /over Streamable HTTP at (http:\/\/[^\s"]+)/.exec(stderr)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${stderr}`));
    });
  });
}

interface Session {
  readonly who: string;
  readonly client: Client;
  sql(text: string): Promise<{ result: CallToolResult; text: string; code: string | null }>;
}

async function openSession(url: string, who: string, token: string): Promise<Session> {
  const client = new Client({ name: `faults-http-${who}`, version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
  return {
    who,
    client,
    async sql(text) {
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: text } }, undefined, { timeout: 90_000 })) as CallToolResult;
      const body = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
      return { result, text: body, code: result.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(body)?.[1] ?? 'unparsed') : null };
    },
  };
}

/** Polls pg_stat_activity (bounded) until the gateway's statement containing `marker` is running on the server; its pid. */
async function runningPid(marker: string): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const rows = await db.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'drawbridge' AND state = 'active' AND query LIKE $2`,
      [db.name, `%${marker}%`],
    );
    if (rows.length === 1) return (rows[0] as { pid: number }).pid;
    if (Date.now() > deadline) throw new Error(`the statement with ${marker} never showed up in pg_stat_activity (${rows.length} matching)\n${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('serve --http: a PostgreSQL session terminated mid-statement ends only that call', () => {
  let url: string;
  let sessions: Session[] = [];

  beforeAll(async () => {
    requireBuiltCli();
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    idp = await startTestIdp();
    db = await freshDatabase('pg_faults_http');
    dir = writeConfig({ oidc: { issuer: idp.issuer, audience: resource }, policy: POLICY, limits: LIMITS });
    url = await startServe(port);
    expect(url).toBe(resource);
    const alice = (await idp.deviceLogin(resource, 'alice', 'mcp')).access_token;
    const bob = (await idp.deviceLogin(resource, 'bob', 'mcp')).access_token;
    const agent = await idp.clientCredentialsToken('agent-svc', 'agent-svc-secret', resource, 'mcp');
    sessions = [
      await openSession(url, 'alice', alice),
      await openSession(url, 'bob', bob),
      await openSession(url, 'agent-svc', agent),
      await openSession(url, 'alice-2', alice),
    ];
  });

  afterAll(async () => {
    for (const s of sessions) await s.client.close().catch(() => undefined);
    child?.kill('SIGKILL');
    await idp?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the terminated call gets backend.connection_lost; every other session, and that one, keep working; the process survives', async () => {
    const [victim, ...others] = sessions as [Session, ...Session[]];
    for (const s of sessions) expect((await s.sql('SELECT count(*) AS n FROM customers')).code).toBeNull();

    const pending = victim.sql('SELECT count(*) AS n FROM generate_series(1, 1e9) AS victim');
    const pid = await runningPid('AS victim');
    // While the long read runs, the other sessions are served.
    for (const s of others) {
      const r = await s.sql('SELECT count(*) AS n FROM orders');
      expect(r.code, `${s.who}: ${r.text}`).toBeNull();
    }
    // One of them is running on the server at the very moment of the fault.
    const concurrent = others[0]!.sql('SELECT count(*) AS n FROM generate_series(1, 2e7) AS bystander');
    await runningPid('AS bystander');
    expect((await db.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]))[0]?.ok).toBe(true);

    const r = await pending;
    expect(r.result.isError).toBe(true);
    expect(r.code).toBe('backend.connection_lost');
    expect(r.text).toContain('57P01: terminating connection due to administrator command');
    expect(r.text).toContain('It was a read in a read-only transaction: nothing was changed.');
    const during = await concurrent;
    expect(during.code, during.text).toBeNull();

    expect(child?.exitCode).toBeNull();
    for (const s of [...others, victim]) {
      const after = await s.sql('SELECT count(*) AS n FROM customers');
      expect(after.code, `${s.who}: ${after.text}`).toBeNull();
    }
    expect(stderr).not.toContain(GUARD_LINE_PREFIX);
  });

  it('stops cleanly; the journal verifies and every call has an outcome', async () => {
    for (const s of sessions) await s.client.close();
    sessions = [];
    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child!.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
    expect(stderr).not.toContain(GUARD_LINE_PREFIX);

    const verified = runCli(['journal', 'verify', '--config', dir]);
    expect(verified.status, verified.stdout + verified.stderr).toBe(0);
    const exported = runCli(['journal', 'export', '--config', dir]);
    expect(exported.status, exported.stderr).toBe(0);
    const calls = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { call: { principal: { subject: string } }; outcome: { status: string; errorCode?: string } | null });
    // 4 warm-up reads, the long read, 3 reads while it ran, the concurrent one, 4 after.
    expect(calls).toHaveLength(13);
    expect(calls.filter((c) => c.outcome === null)).toEqual([]);
    const failed = calls.filter((c) => c.outcome?.status !== 'ok');
    expect(failed.map((c) => [c.call.principal.subject, c.outcome?.errorCode])).toEqual([['alice', 'backend.connection_lost']]);
  });
});
