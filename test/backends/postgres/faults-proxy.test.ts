// Connection faults at the exact protocol moments no server-side action can
// reach deterministically, on every socket the PostgreSQL backend holds: a TCP
// proxy (test/support/pg-fault-proxy.ts) between an in-process gateway and a
// real PostgreSQL (a fresh database on the suite's shared cluster, which is
// never restarted here) drops the connection while the gateway reads the
// catalog (resolve), during the dry run of an approval preview, after COMMIT
// was sent (the server commits, the answer is lost), and during the probe of
// `check --connect`; an idle pooled session is terminated by the server. Each
// call gets its coded answer saying what the database kept, the database
// agrees, the next call works, every call has an outcome in a journal that
// verifies — and the process-level guard, installed here only to count,
// never fires: every socket has its own 'error' handler.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { readCalls } from '../../../src/journal/export.js';
import { verifyJournal } from '../../../src/journal/verify.js';
import { checkConnections } from '../../../src/pipeline/probe.js';
import { installProcessGuard, type ProcessGuard } from '../../../src/server-guard.js';
import { as, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../../support/fixtures.js';
import { startFaultProxy, type FaultProxy } from '../../support/pg-fault-proxy.js';

const POLICY = `kind: policy
rules:
  - name: support-fixes-orders
    match: { tool: run_sql, groups: [support], access: write, tables: [public.orders] }
    effect: allow
  - name: analysts-write-with-preview
    match: { tool: run_sql, groups: [analysts], access: write }
    effect: approve
    approvers: { groups: [dba] }
    preview: true
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

let db: FreshDatabase;
let proxy: FaultProxy;
let gw: TestGateway;
let guard: ProcessGuard;
const guardLines: string[] = [];

function codeOf(text: string): string | null {
  return /^([a-z_]+\.[a-z_]+): /.exec(text)?.[1] ?? null;
}

async function status(id: number): Promise<string | undefined> {
  return (await db.query<{ status: string }>('SELECT status FROM orders WHERE id = $1', [id]))[0]?.status;
}

describe('PostgreSQL connection cut at exact moments (fault proxy, in-process gateway)', () => {
  beforeAll(async () => {
    guard = installProcessGuard({ write: (line) => guardLines.push(line) });
    db = await freshDatabase('pg_faults_proxy');
    const target = new URL(db.gatewayUrl);
    proxy = await startFaultProxy({ host: target.hostname, port: Number(target.port) });
    gw = await testGateway(
      { ...db, gatewayUrl: proxy.url(db.gatewayUrl) },
      { policy: POLICY, limits: '{ timeout: 20s, lock_timeout: 5s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }' },
    );
  });

  afterEach(() => {
    // Every fault had its own handler: nothing reached the process level.
    expect(guardLines).toEqual([]);
    expect(guard.fired).toBe(0);
  });

  afterAll(async () => {
    await gw?.close().catch(() => undefined);
    await proxy?.close();
    await db?.drop();
    guard?.uninstall();
  });

  it('cut once while the gateway reads the catalog: its metadata reads are retried on a fresh session, the call works', async () => {
    const cut = proxy.cutOn('to_regclass', { forward: false });
    const r = await gw.sql('SELECT count(*) AS n FROM customers');
    await cut.done;
    expect(r.ok, r.text).toBe(true);
  });

  it('cut again on the retry: backend.unavailable, the statement was never sent; the next call works', async () => {
    const cut = proxy.cutOn('to_regclass', { forward: false, times: 2 });
    const r = await gw.sql('SELECT count(*) AS n FROM orders');
    await cut.done;
    expect(r.ok).toBe(false);
    expect(r.text).toMatch(
      new RegExp(
        /^backend\.unavailable: The connection to db was lost while the gateway read the catalog \(Connection terminated unexpectedly\): /.source +
          /the connection closed without an answer: the server went away \(a restart or a failover\) or the network dropped it\. /.source +
          /The statement was not sent: nothing was changed\./.source,
      ),
    );
    const next = await gw.sql('SELECT count(*) AS n FROM orders');
    expect(next.ok, next.text).toBe(true);
  });

  it('idle pooled sessions terminated by the server: the pool drops them, the next call works on a fresh one', async () => {
    const idle = await db.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'drawbridge' AND state = 'idle'`, [
      db.name,
    ]);
    expect(idle.length).toBeGreaterThan(0);
    const pids = idle.map((row) => row.pid);
    for (const pid of pids) await db.query('SELECT pg_terminate_backend($1)', [pid]);
    // Bounded poll until those sessions are gone from the server.
    const deadline = Date.now() + 10_000;
    while ((await db.query('SELECT 1 FROM pg_stat_activity WHERE pid = ANY($1)', [pids])).length > 0 && Date.now() < deadline)
      await new Promise((res) => setTimeout(res, 25));
    const next = await gw.sql('SELECT count(*) AS n FROM products');
    expect(next.ok, next.text).toBe(true);
  });

  it('cut during the dry run of an approval preview: backend.connection_lost, the write was not run, nothing changed', async () => {
    const before = await status(3);
    const cut = proxy.cutOn('SET CONSTRAINTS ALL IMMEDIATE', { forward: false });
    const r = await gw.sql(`UPDATE orders SET status = 'preview-fault' WHERE id = 3`);
    await cut.done;
    expect(codeOf(r.text), r.text).toBe('backend.connection_lost');
    expect(r.text).toContain(
      'It was the dry run of a write for its approval preview, which is always rolled back: nothing was changed, and the write itself was not run.',
    );
    expect(await status(3)).toBe(before);
    // Without the fault the same write gets its preview and waits for a DBA.
    const again = await gw.sql(`UPDATE orders SET status = 'preview-fault' WHERE id = 3`);
    expect(codeOf(again.text), again.text).toBe('approval.pending');
  });

  it('cut after COMMIT was sent: backend.interrupted says "unknown", and the server did commit', async () => {
    const support = as('support@example.com', ['support']);
    expect(await status(4)).not.toBe('commit-cut');
    const cut = proxy.cutOn('COMMIT', { forward: true });
    const r = await gw.sql(`UPDATE orders SET status = 'commit-cut' WHERE id = 4`, support);
    await cut.done;
    expect(codeOf(r.text), r.text).toBe('backend.interrupted');
    expect(r.text).toContain('The connection to db was lost after COMMIT was sent and before PostgreSQL answered (Connection terminated unexpectedly)');
    expect(r.text).toContain('Whether the write was applied is UNKNOWN');
    // PostgreSQL read the COMMIT before the end of its client: it commits (bounded poll).
    const deadline = Date.now() + 10_000;
    while ((await status(4)) !== 'commit-cut' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
    expect(await status(4)).toBe('commit-cut');
    const next = await gw.sql(`UPDATE orders SET status = 'after-cut' WHERE id = 4`, support);
    expect(next.ok, next.text).toBe(true);
    expect(await status(4)).toBe('after-cut');
  });

  it('cut during the probe of check --connect: that connection FAILs with backend.connection_lost', async () => {
    const config = loadConfig(gw.dir);
    const cut = proxy.cutOn('pg_is_in_recovery', { forward: false });
    const [report] = await checkConnections(config, { env: { DB_URL: proxy.url(db.gatewayUrl) } });
    await cut.done;
    expect(report?.status).toBe('failed');
    expect(report?.error?.code).toBe('backend.connection_lost');
    expect(report?.error?.message).toContain('The check ran a read in a read-only transaction: nothing was changed.');
    const [ok] = await checkConnections(config, { env: { DB_URL: proxy.url(db.gatewayUrl) } });
    expect(ok?.status, ok?.line).not.toBe('failed');
  });

  it('every call of this gateway has an outcome, and the journal verifies', () => {
    const calls = [...readCalls(gw.gateway.config.journal.path)];
    expect(calls.filter((c) => c.outcome === null)).toEqual([]);
    expect(calls.map((c) => c.outcome?.['errorCode'] ?? c.outcome?.['status'])).toEqual([
      'ok', // catalog cut once, retried
      'backend.unavailable', // catalog cut twice
      'ok',
      'ok', // after the idle sessions were terminated
      'backend.connection_lost', // preview cut
      'approval.pending',
      'backend.interrupted', // COMMIT answer lost
      'ok',
    ]);
    expect(verifyJournal(gw.gateway.config.journal.path).ok).toBe(true);
  });
});
