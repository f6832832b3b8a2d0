// Real PostgreSQL faults under a running `drawbridge serve` (a child process,
// over stdio, driven by the MCP SDK's client), on a private throwaway cluster
// this file starts, restarts and stops (never the suite's shared one):
//   - pg_terminate_backend of the gateway's session during a read;
//   - `pg_ctl restart -m fast` during a read, and during a write that waits on
//     a row lock held by a prepared transaction (so it is certainly in flight, and
//     still waiting when the shutdown ends its session);
//   - the server stopped, then started again;
//   - the session killed after COMMIT was sent (it waits on a synchronous
//     standby that never answers), when nobody can know whether it committed.
// For each: the process survives and its last-resort guard never fires (no
// guard line on its stderr), the call in flight gets an error answer with its
// code and what the database kept, the database shows nothing half-done, the
// next call works once the server is back, and afterwards `journal verify`
// passes and every call has an outcome in `journal export`.
// Nothing here sleeps for wall-clock time: it polls pg_stat_activity (bounded)
// for the moment the statement is on the server.

import { rmSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../../dev/cluster.js';
import { seedDemo } from '../../../dev/seed.js';
import { GUARD_LINE_PREFIX } from '../../../src/server-guard.js';
import { REPO_ROOT, requireBuiltCli, runCli } from '../../support/cli.js';
import { writeConfig } from '../../support/fixtures.js';

const POLICY = `kind: policy
rules:
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
  - name: fix-orders
    match: { tool: run_sql, access: write, tables: [public.orders] }
    effect: allow
`;

/** Long enough that no fault case ends by a limit instead of by its fault. */
const LIMITS = '{ timeout: 60s, lock_timeout: 60s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }';
const LONG_READ = 'SELECT count(*) AS n FROM generate_series(1, 1e9)';

let cluster: Cluster;
let superuserUrl: string;
let dir: string;
let client: Client;
let transport: StdioClientTransport;
let stderr = '';
let closed = false;

/** One superuser statement on a fresh session (sessions do not survive the restarts here). */
async function admin<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: superuserUrl });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Polls pg_stat_activity (bounded) for the gateway's session matching `where`; returns its pid. */
async function gatewaySession(where: string, what: string): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const rows = await admin<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE application_name = 'drawbridge' AND ${where}`);
    if (rows.length === 1) return (rows[0] as { pid: number }).pid;
    if (Date.now() > deadline) throw new Error(`the gateway's session never reached: ${what} (${rows.length} matching)\n${stderr}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function sql(text: string): Promise<{ result: CallToolResult; text: string; code: string | null }> {
  const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: text } }, undefined, { timeout: 90_000 })) as CallToolResult;
  const body = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
  return { result, text: body, code: result.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(body)?.[1] ?? 'unparsed') : null };
}

function alive(): boolean {
  const pid = transport.pid;
  if (pid === null || closed) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The process is still serving and never needed its last resort. */
function expectSurvived(): void {
  expect(alive(), stderr).toBe(true);
  expect(stderr).not.toContain(GUARD_LINE_PREFIX);
}

async function orderStatus(id: number): Promise<string> {
  return (await admin<{ status: string }>('SELECT status FROM orders WHERE id = $1', [id]))[0]?.status ?? '(missing)';
}

describe('PostgreSQL faults under drawbridge serve (stdio, private cluster)', () => {
  beforeAll(async () => {
    const cli = requireBuiltCli();
    cluster = await startCluster();
    const seeded = await seedDemo(cluster, { gatewayPassword: 'faults-gateway-password' });
    superuserUrl = seeded.superuserUrl;
    // Prepared transactions hold a row lock across a restart (see the row-lock case).
    const admin = new pg.Client({ connectionString: superuserUrl });
    await admin.connect();
    await admin.query('ALTER SYSTEM SET max_prepared_transactions = 4');
    await admin.end();
    await cluster.restart();
    dir = writeConfig({ policy: POLICY, limits: LIMITS });
    transport = new StdioClientTransport({
      command: process.execPath,
      args: [cli, 'serve', '--config', dir],
      cwd: REPO_ROOT,
      env: { ...(process.env as Record<string, string>), DB_URL: seeded.gatewayUrl },
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    client = new Client({ name: 'faults-test', version: '1.0.0' });
    client.onclose = () => (closed = true);
    await client.connect(transport);
    const warm = await sql('SELECT count(*) AS n FROM customers');
    expect(warm.code, warm.text).toBeNull();
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pg_terminate_backend during a read: that call gets backend.connection_lost ("nothing was changed"), the next one works', async () => {
    const pending = sql(LONG_READ);
    const pid = await gatewaySession(`state = 'active' AND query LIKE '%generate_series%'`, 'the long read running');
    expect((await admin<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]))[0]?.ok).toBe(true);
    const r = await pending;
    expect(r.result.isError).toBe(true);
    expect(r.code).toBe('backend.connection_lost');
    expect(r.text).toContain('The connection to db was lost during the call (57P01: terminating connection due to administrator command)');
    expect(r.text).toContain('an administrator terminated the session');
    expect(r.text).toContain('It was a read in a read-only transaction: nothing was changed.');
    expect(r.text).toContain('What to do: The database session ended during the call');
    expect(r.text).not.toMatch(/\n\s+at /); // no stack trace
    expectSurvived();
    const next = await sql('SELECT count(*) AS n FROM customers');
    expect(next.code, next.text).toBeNull();
  });

  it('PostgreSQL restarted during a read: backend.connection_lost, then the next call works on a fresh connection', async () => {
    const pending = sql(LONG_READ);
    await gatewaySession(`state = 'active' AND query LIKE '%generate_series%'`, 'the long read running');
    await cluster.restart();
    const r = await pending;
    expect(r.code, r.text).toBe('backend.connection_lost');
    expect(r.text).toContain('57P01');
    expect(r.text).toContain('nothing was changed');
    expectSurvived();
    const next = await sql('SELECT count(*) AS n FROM orders');
    expect(next.code, next.text).toBeNull();
  });

  it('PostgreSQL restarted during a write waiting on a row lock: not committed, the row is unchanged, and writes work again', async () => {
    const before = await orderStatus(7);
    // A prepared transaction holds the row: the gateway's UPDATE is certainly in flight,
    // waiting, and stays waiting through the shutdown (a session holding the lock would be
    // terminated with it, and the UPDATE could win the race to the row and reach COMMIT).
    const holder = new pg.Client({ connectionString: superuserUrl });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT id FROM orders WHERE id = 7 FOR UPDATE');
    await holder.query("PREPARE TRANSACTION 'hold-order-7'");
    await holder.end();
    try {
      const pending = sql(`UPDATE orders SET status = 'restart-fault' WHERE id = 7`);
      await gatewaySession(`wait_event_type = 'Lock' AND query LIKE 'UPDATE orders%'`, 'the write waiting on the row lock');
      await cluster.restart();
      const r = await pending;
      expect(r.code, r.text).toBe('backend.connection_lost');
      expect(r.text).toContain(
        'It was a write and it was NOT committed: the session ended before COMMIT was sent, so PostgreSQL rolled the transaction back and nothing changed.',
      );
      expectSurvived();
    } finally {
      const release = new pg.Client({ connectionString: superuserUrl });
      await release.connect();
      await release.query("ROLLBACK PREPARED 'hold-order-7'");
      await release.end();
    }
    expect(await orderStatus(7)).toBe(before);
    const again = await sql(`UPDATE orders SET status = 'after-restart' WHERE id = 7`);
    expect(again.code, again.text).toBeNull();
    expect(again.result.structuredContent).toMatchObject({ affectedRows: 1 });
    expect(await orderStatus(7)).toBe('after-restart');
  });

  it('PostgreSQL stopped, then started: calls in between get backend.unavailable, then calls work again', async () => {
    await cluster.stopServer();
    try {
      for (const text of ['SELECT 1 AS one', 'SELECT count(*) AS n FROM customers']) {
        const r = await sql(text);
        expect(r.code, r.text).toBe('backend.unavailable');
        expect(r.text).toContain(`could not connect to 127.0.0.1:${cluster.port}: connection refused`);
        expectSurvived();
      }
    } finally {
      await cluster.startServer();
    }
    const next = await sql('SELECT count(*) AS n FROM customers');
    expect(next.code, next.text).toBeNull();
    expectSurvived();
  });

  it('the session killed after COMMIT was sent: backend.interrupted, "unknown", and indeed the server had committed', async () => {
    // COMMIT waits for a synchronous standby that does not exist, so it is on the server,
    // unanswered, until the session is terminated. Set at start-up for every session.
    await admin(`ALTER SYSTEM SET synchronous_standby_names = 'drawbridge_fault_test_standby'`);
    await cluster.restart();
    try {
      const before = await orderStatus(8);
      expect(before).not.toBe('commit-fault');
      const pending = sql(`UPDATE orders SET status = 'commit-fault' WHERE id = 8`);
      const pid = await gatewaySession(`wait_event = 'SyncRep' AND query = 'COMMIT'`, 'COMMIT waiting for the standby');
      await admin('SELECT pg_terminate_backend($1)', [pid]);
      const r = await pending;
      expect(r.code, r.text).toBe('backend.interrupted');
      expect(r.text).toContain('The connection to db was lost after COMMIT was sent and before PostgreSQL answered');
      expect(r.text).toContain('Whether the write was applied is UNKNOWN');
      expect(r.text).toContain('Check with a read whether the change is there');
      expectSurvived();
      // "Unknown" was the honest answer: PostgreSQL had committed locally.
      expect(await orderStatus(8)).toBe('commit-fault');
    } finally {
      await admin('ALTER SYSTEM RESET synchronous_standby_names');
      await cluster.restart();
    }
    const next = await sql('SELECT status FROM orders WHERE id = 8');
    expect(next.code, next.text).toBeNull();
    expectSurvived();
  });

  it('afterwards: the journal verifies and every call has an outcome, the faulted ones with their codes', async () => {
    await client.close();
    // The gateway exits when its stdin ends; the journal is then closed.
    const deadline = Date.now() + 10_000;
    while (transport.pid !== null && Date.now() < deadline) {
      try {
        process.kill(transport.pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(stderr).not.toContain(GUARD_LINE_PREFIX);
    const verified = runCli(['journal', 'verify', '--config', dir]);
    expect(verified.status, verified.stdout + verified.stderr).toBe(0);
    const exported = runCli(['journal', 'export', '--config', dir]);
    expect(exported.status, exported.stderr).toBe(0);
    const calls = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { outcome: { status: string; errorCode?: string } | null });
    // warm-up 1, terminate 2, restart during a read 2, during a write 2, stop/start 3, lost COMMIT 2.
    expect(calls).toHaveLength(12);
    expect(calls.filter((c) => c.outcome === null)).toEqual([]);
    const codes = calls.map((c) => c.outcome?.errorCode ?? c.outcome?.status);
    expect(codes.filter((c) => c === 'backend.connection_lost')).toHaveLength(3);
    expect(codes.filter((c) => c === 'backend.unavailable')).toHaveLength(2);
    expect(codes.filter((c) => c === 'backend.interrupted')).toHaveLength(1);
  });
});
