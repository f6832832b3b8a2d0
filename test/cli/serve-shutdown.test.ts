// `drawbridge serve` (stdio, the built binary as a child process) with an admin listener, and its
// graceful shutdown: /healthz, /readyz and /metrics on admin.listen; SIGTERM during a long read (pg_sleep)
// makes /readyz false first, refuses a new call with gateway.shutting_down, lets the long read
// finish and exits 0 with both outcomes journaled; a call waiting for an approval is answered
// "call again" on SIGTERM, its request stays pending, and the re-issued call after a restart
// picks up the approval once a DBA approved it.

import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openGateway } from '../../src/pipeline/gateway.js';
import { REPO_ROOT, requireBuiltCli, waitForOutput } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { IterativeStdioClientTransport } from '../support/iterativeStdio.js';

const POLICY = `kind: policy
rules:
  - name: order-writes-need-approval
    match: { tool: run_sql, access: write, tables: [public.orders] }
    effect: approve
    approvers: { groups: [dba] }
  - name: sleep
    match: { tool: run_sql, functions: [pg_sleep] }
    effect: allow
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

let db: FreshDatabase;
let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('shutdown');
  dir = writeConfig({ policy: POLICY, approval: '{ wait: 10m, store: approvals.db }' });
  appendFileSync(join(dir, 'policies', 'gateway.yaml'), 'admin: { listen: "127.0.0.1:0", drain_timeout: 5m }\n');
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Served {
  readonly client: Client;
  readonly admin: string;
  /** Sends SIGTERM; resolves with the exit code. */
  terminate(): Promise<number | null>;
  stderr(): string;
}

async function serve(): Promise<Served> {
  const transport = new IterativeStdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl, PATH: process.env['PATH'] ?? '' },
    cwd: REPO_ROOT,
  });
  const client = new Client({ name: 'shutdown-test', version: '1.0.0' });
  await client.connect(transport);
  const admin = (
    await waitForOutput(() => transport.stderr(), /admin listener \(\/healthz, \/readyz, \/metrics\) at (http:\/\/[^\s"]+)/, 'the admin listener')
  )[1] as string;
  return { client, admin, stderr: () => transport.stderr(), terminate: () => transport.terminate() };
}

const textOf = (r: CallToolResult): string => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

function sql(client: Client, text: string): Promise<CallToolResult> {
  return client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: text } }, undefined, { timeout: 600_000 }) as Promise<CallToolResult>;
}

async function readyz(admin: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${admin}/readyz`);
  return { status: res.status, body: await res.text() };
}

/** Polls a condition (never a wait for time as such): what the child does shows up in the journal or on the listener. */
async function until<T>(what: string, probe: () => Promise<T | null> | T | null): Promise<T> {
  for (let i = 0; i < 1000; i++) {
    const found = await probe();
    if (found !== null) return found;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never: ${what}`);
}

interface Row {
  readonly seq: number;
  readonly type: string;
  readonly call_id: string;
  readonly data: string;
}

function journal(): Row[] {
  const j = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return j.prepare('SELECT seq, type, call_id, data FROM records ORDER BY seq').all() as Row[];
  } finally {
    j.close();
  }
}

function outcomeOf(callId: string): Record<string, unknown> | null {
  const row = journal().find((r) => r.type === 'outcome' && r.call_id === callId);
  return row ? (JSON.parse(row.data) as Record<string, unknown>) : null;
}

function intentWith(sqlText: string): Row | null {
  return journal().find((r) => r.type === 'call' && JSON.parse(r.data).input?.sql === sqlText) ?? null;
}

it('serves /healthz, /readyz, /metrics on admin.listen; SIGTERM in a long read: not ready first, a new call refused, the read finishes, exit 0', async () => {
  const s = await serve();
  expect(await fetch(`${s.admin}/healthz`).then((r) => r.text())).toBe('ok\n');
  expect(await readyz(s.admin)).toEqual({ status: 200, body: 'ok\n' });
  // /metrics on the admin listener of the real serve, counting the call just made (no token needed there).
  expect((await sql(s.client, 'SELECT 7 AS seven')).isError).toBeFalsy();
  const metrics = await fetch(`${s.admin}/metrics`);
  expect(metrics.status).toBe(200);
  const text = await metrics.text();
  expect(text).toMatch(/^drawbridge_calls_total\{tool="run_sql",connection="db",decision="allow",status="ok"\} 1$/m);
  // serve attaches the rest to its gateway: the call's two appends, the state's counts, the backend's pool.
  expect(text).toMatch(/^drawbridge_journal_append_seconds_count\{type="call"\} 1$/m);
  expect(text).toMatch(/^drawbridge_journal_append_seconds_count\{type="outcome"\} 1$/m);
  expect(text).toMatch(/^drawbridge_state_counts_up 1$/m);
  expect(text).toMatch(/^drawbridge_approvals_pending 0$/m);
  expect(text).toMatch(/^drawbridge_backend_pool_connections\{connection="db",state="total"\} [1-9]/m);
  expect(text).not.toContain('SELECT');

  const long = sql(s.client, 'SELECT pg_sleep(2) AS slept');
  // Running: its intent is journaled (durable before the backend sees it).
  const intent = await until('the long read journaled', () => intentWith('SELECT pg_sleep(2) AS slept'));
  const exited = s.terminate();
  await until('not ready', async () => ((await readyz(s.admin)).status === 503 ? true : null));
  expect(await readyz(s.admin)).toEqual({ status: 503, body: 'not ready\n' });

  const refused = await sql(s.client, 'SELECT 1 AS one');
  expect(refused.isError).toBe(true);
  expect(textOf(refused)).toMatch(/^gateway\.shutting_down: /);

  const finished = await long.catch((e: unknown) => {
    throw new Error(`${String(e)}\n${s.stderr()}`);
  });
  expect(finished.isError).toBeFalsy();
  expect(await exited).toBe(0);
  expect(s.stderr()).toMatch(/shutting down: not ready, refusing new calls; 1 call\(s\) in flight/);

  expect(outcomeOf(intent.call_id)).toMatchObject({ status: 'ok' });
  const refusedIntent = intentWith('SELECT 1 AS one');
  expect(refusedIntent).not.toBeNull();
  expect(outcomeOf(refusedIntent!.call_id)).toMatchObject({ status: 'refused', errorCode: 'gateway.shutting_down' });
}, 120_000);

it('a call waiting for approval is answered "call again" on SIGTERM; after a restart the re-issued call picks up the approval', async () => {
  const update = "UPDATE orders SET note = 'drain' WHERE id = 3";
  const s = await serve();
  const waiting = sql(s.client, update);
  const pending = await until('the approval request', () => {
    const row = journal().find((r) => r.type === 'approval' && JSON.parse(r.data).event === 'requested');
    return row ? (JSON.parse(row.data).approvalId as string) : null;
  });
  const exited = s.terminate();
  const answer = await waiting;
  expect(answer.isError).toBe(true);
  expect(textOf(answer)).toMatch(new RegExp(`^gateway\\.shutting_down: .*${pending}`));
  expect(textOf(answer)).toMatch(/Call run_sql again with exactly the same arguments/);
  expect(await exited).toBe(0);
  expect(
    journal().some((r) => r.type === 'approval' && JSON.parse(r.data).event === 'abandoned' && JSON.parse(r.data).reason === 'the gateway is shutting down'),
  ).toBe(true);

  // The request is still pending in the store; a DBA approves it while the gateway is down.
  const gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl } });
  try {
    const stored = await gateway.state.approvals.get(pending, new Date());
    expect(stored?.status).toBe('pending');
    await gateway.state.approvals.vote(
      pending,
      { approver: { subject: 'dana', groups: ['dba'], kind: 'local' }, decision: 'approve', via: 'cli', at: new Date().toISOString() },
      new Date(),
    );
  } finally {
    await gateway.close();
  }

  const again = await serve();
  const ran = await sql(again.client, update);
  expect(ran.isError).toBeFalsy();
  expect(textOf(ran)).toMatch(/UPDATE, 1 affected/);
  expect(await again.terminate()).toBe(0);
  const consumed = journal()
    .filter((r) => r.type === 'approval' && JSON.parse(r.data).approvalId === pending)
    .map((r) => JSON.parse(r.data).event);
  expect(consumed).toContain('consumed');
  expect((await db.query<{ note: string }>('SELECT note FROM orders WHERE id = 3'))[0]?.note).toBe('drain');
}, 120_000);
