// Replicas on shared PostgreSQL state, end to end: three `drawbridge serve --http` processes
// of the built CLI, each with its own config directory (as on three hosts) and one state.url,
// in front of one shop database. Concurrent clients, an approval asked on one replica, given
// through another's CLI and run once across replicas, a call released by a vote given
// elsewhere, a grant created and revoked on different replicas, sticky sessions, a stdio
// replica joining the same state, and the SIGKILL of a replica mid-call. The state outage (the database restarted under serving
// replicas) is in replicas-outage.test.ts. Every case ends with the shared journal: the
// calls it holds and its one intact chain.
//
// r1 and r3 answer "pending" at once (approval.wait 0ms); r2 lets a call wait up to 20 s
// for a decision, so that a vote given through another replica's CLI releases it.

import { rmSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { verifyStore } from '../../src/journal/verify.js';
import type { StateStore } from '../../src/state/contract.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freshDatabase, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';
import {
  callsTagged,
  freshStateDatabase,
  readJournal,
  startReplica,
  startReplicas,
  STATE_VARIABLE,
  strayFiles,
  tokenFor,
  until,
  writeReplicaConfig,
  type McpClient,
  type Replica,
  type SharedRecord,
  type StateDatabase,
  type ToolAnswer,
} from '../support/replicas.js';

let idp: TestIdp;
let db: FreshDatabase;
let stateDb: StateDatabase;
let replicas: Replica[] = [];
let state: StateStore | undefined;
let alice: string;
let dba1: string;
let dba2: string;
const clients: McpClient[] = [];

function replica(n: 1 | 2 | 3): Replica {
  const r = replicas[n - 1];
  if (r === undefined) throw new Error(`replica r${n} did not start`);
  return r;
}

/** The shared state as the test reads it (opened through r1's config, as a CLI command would). */
async function shared(): Promise<StateStore> {
  state ??= await replica(1).openState();
  return state;
}

async function client(r: Replica, token = alice): Promise<McpClient> {
  const c = await r.connect(token);
  clients.push(c);
  return c;
}

function expectOk(a: ToolAnswer): void {
  expect(a.result.isError, a.text).toBeFalsy();
}

function expectRefused(a: ToolAnswer, code: string): void {
  expect(a.code, a.text).toBe(code);
  expect(a.text).not.toMatch(/\n\s+at /);
}

function pendingId(a: ToolAnswer): string {
  const id = /Pending approval (ap_[a-z0-9]+)/.exec(a.text)?.[1];
  if (id === undefined) throw new Error(`not a pending answer: ${a.text}`);
  return id;
}

async function journal(): Promise<SharedRecord[]> {
  return readJournal(await shared());
}

/**
 * The chain verifies as one chain over every record, in process and with `drawbridge journal
 * verify --config` on a replica's config (as an operator on that host would run it).
 */
async function expectIntactChain(via: Replica = replica(3)): Promise<void> {
  const s = await shared();
  const verified = await verifyStore(s.journal);
  expect(verified.firstBad, JSON.stringify(verified.firstBad)).toBeUndefined();
  expect(verified.ok).toBe(true);
  const cli = await via.cli(['journal', 'verify']);
  expect(cli.status, cli.stdout + cli.stderr).toBe(0);
  const records = Number(/^OK .*: (\d+) records, chain intact; head [0-9a-f]{64}/.exec(cli.stdout)?.[1]);
  // Outcomes may still be landing: the CLI's later read sees at least as many records.
  expect(records, cli.stdout).toBeGreaterThanOrEqual(verified.records);
  for (const secret of [stateDb.password, stateDb.role, 'postgres://']) expect(cli.stdout + cli.stderr).not.toContain(secret);
}

/** The outcome records of `callIds`, once each of them has one (outcomes are written after the answer). */
async function outcomesOf(callIds: readonly string[]): Promise<SharedRecord[]> {
  return until(`outcomes of ${callIds.length} call(s)`, async () => {
    const outcomes = (await journal()).filter((r) => r.type === 'outcome' && callIds.includes(r.callId));
    return outcomes.length >= callIds.length ? outcomes : undefined;
  });
}

async function notesCount(body: string): Promise<number> {
  const [row] = await db.query<{ n: string }>('SELECT count(*) AS n FROM audit_notes WHERE body = $1', [body]);
  return Number(row?.n);
}

beforeAll(async () => {
  requireBuiltCli();
  idp = await startTestIdp();
  db = await freshDatabase('replicas');
  stateDb = await freshStateDatabase(inject('pgAdminUrl'));
  const common = { stateUrl: stateDb.url, db, idp };
  replicas = await startReplicas([
    { ...common, name: 'r1' },
    { ...common, name: 'r2', approvalWait: '20s' },
    { ...common, name: 'r3' },
  ]);
  [alice, dba1, dba2] = await Promise.all([tokenFor(idp, 'alice', ['developers']), tokenFor(idp, 'dba1', ['dba']), tokenFor(idp, 'dba2', ['dba'])]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await state?.close();
  await Promise.all(replicas.map((r) => r.stop()));
  await stateDb?.drop();
  await db?.drop();
  await idp?.stop();
});

describe('replicas on one PostgreSQL state', () => {
  it('three replicas serve concurrent clients: every call answered, the journal holds exactly those calls in one chain, no local state file', async () => {
    const CLIENTS_PER_REPLICA = 8;
    const READS = 5;
    const tags: string[] = [];
    await Promise.all(
      replicas.flatMap((r) =>
        Array.from({ length: CLIENTS_PER_REPLICA }, async (_, c) => {
          const mcp = await client(r);
          for (let k = 0; k < READS; k++) {
            const tag = `t1-${r.name}-c${c}-k${k}`;
            tags.push(tag);
            expectOk(await mcp.sql(`SELECT count(*) AS n, '${tag}' AS tag FROM products`));
          }
        }),
      ),
    );
    expect(tags).toHaveLength(3 * CLIENTS_PER_REPLICA * READS);

    const records = await journal();
    const calls = callsTagged(records, 't1-');
    // The first case of the file: these are all the intents there are.
    expect(records.filter((r) => r.type === 'call')).toHaveLength(calls.length);
    const journaled = calls.map((r) => /t1-r\d-c\d+-k\d+/.exec(JSON.stringify(r.data['input']))?.[0]);
    expect(journaled.sort()).toEqual([...tags].sort());
    // Every replica wrote into the one journal, each call as one intent and one ok outcome.
    const principals = new Set(calls.map((r) => JSON.stringify(r.data['principal'])));
    expect(principals.size).toBe(1);
    const outcomes = await outcomesOf(calls.map((r) => r.callId));
    expect(outcomes).toHaveLength(calls.length);
    for (const o of outcomes) expect(o.data['status'], JSON.stringify(o.data)).toBe('ok');
    await expectIntactChain();

    for (const r of replicas) expect(strayFiles(r.dir), r.name).toEqual([]);
  });

  it('an approval asked on r1, given through r2’s CLI, runs once when the call is re-issued on r3 and r1 at the same time', async () => {
    const sql = "INSERT INTO audit_notes (body) VALUES ('t2-once')";
    const [on1, on3] = await Promise.all([client(replica(1)), client(replica(3))]);
    const asked = await on1.sql(sql);
    expectRefused(asked, 'approval.pending');
    const id = pendingId(asked);
    expect(await notesCount('t2-once')).toBe(0);

    const vote = await replica(2).cli(['approvals', 'approve', id, '--reason', 'ticket OPS-12'], dba1);
    expect(vote.status, vote.stderr).toBe(0);
    expect(vote.stdout).toContain(`${id}: approve by dba1 recorded`);

    const answers = await Promise.all([on3.sql(sql), on1.sql(sql)]);
    const ran = answers.filter((a) => !a.result.isError);
    expect(ran, answers.map((a) => a.text).join('\n---\n')).toHaveLength(1);
    const other = answers.find((a) => a.result.isError);
    // Whichever way it lost the race (the consume, or finding the request consumed or gone), it ran nothing.
    expectRefused(other!, 'approval.pending');
    expect(other!.text).toMatch(/ran nothing|nothing was run/);
    expect(await notesCount('t2-once')).toBe(1);

    const records = await journal();
    const consumed = records.filter((r) => r.type === 'approval' && r.data['event'] === 'consumed' && r.data['approvalId'] === id);
    expect(consumed).toHaveLength(1);
    const cleared = callsTagged(records, 't2-once').filter((r) => (r.data['clearance'] as { approvalId?: string } | null)?.approvalId === id);
    expect(cleared).toHaveLength(1);
    expect(cleared[0]!.callId).toBe(consumed[0]!.callId);
    const [outcome] = await outcomesOf([cleared[0]!.callId]);
    expect(outcome!.data).toMatchObject({ status: 'ok', affectedRows: 1 });
    // Asked once, re-issued twice: three intents, only one of them cleared to run.
    expect(callsTagged(records, 't2-once')).toHaveLength(3);
    expect((await (await shared()).approvals.get(id, new Date()))?.status).toBe('consumed');
    await expectIntactChain();
  });

  it('a call waiting on r2 is released by a vote given through r1’s CLI', async () => {
    const sql = "INSERT INTO audit_notes (body) VALUES ('t3-released')";
    const on2 = await client(replica(2));
    const started = Date.now();
    let answeredAt = 0;
    const call = on2.sql(sql).then((a) => {
      answeredAt = Date.now();
      return a;
    });
    const s = await shared();
    const pending = await until('the waiting call’s approval request', async () =>
      (await s.approvals.list(new Date(), { status: 'pending' })).find((a) => JSON.stringify(a.subject.input).includes('t3-released')),
    );
    const voteStart = Date.now();
    const vote = await replica(1).cli(['approvals', 'approve', pending.id], dba2);
    const voteDone = Date.now();
    expect(vote.status, vote.stderr).toBe(0);
    const answer = await call;
    expectOk(answer);
    expect(await notesCount('t3-released')).toBe(1);
    const afterVote = answeredAt - voteDone;
    console.log(
      `[replicas] call on r2 released ${afterVote} ms after the vote command on r1's config returned ` +
        `(the command took ${voteDone - voteStart} ms; the call waited ${answeredAt - started} ms in all)`,
    );
    // Released by the vote, not by running out of its 20 s wait (which would have answered pending).
    expect(answeredAt - voteStart).toBeLessThan(10_000);
    const records = await journal();
    expect(records.filter((r) => r.type === 'approval' && r.data['event'] === 'consumed' && r.data['approvalId'] === pending.id)).toHaveLength(1);
    await expectIntactChain();
  });

  it('a grant created on one replica lets calls run on another; revoked through a third replica’s CLI, the next call on any replica asks again', async () => {
    const on1 = await client(replica(1));
    const on3 = await client(replica(3));
    const first = "INSERT INTO audit_notes (body) VALUES ('t4-approved')";
    const asked = await on3.sql(first);
    expectRefused(asked, 'approval.pending');
    const id = pendingId(asked);
    const vote = await replica(1).cli(['approvals', 'approve', id, '--grant', '15m'], dba1);
    expect(vote.status, vote.stderr).toBe(0);

    // r1 runs the approved call and creates the grant; r3 then runs a similar write under it.
    expectOk(await on1.sql(first));
    const s = await shared();
    const grant = (await s.approvals.listGrants(new Date(), { active: true })).find((g) => g.approvalId === id);
    expect(grant).toMatchObject({ subject: 'alice', approvalId: id, rule: 'writes-need-approval', revokedAt: null });
    expectOk(await on3.sql("INSERT INTO audit_notes (body) VALUES ('t4-granted')"));
    const underGrant = callsTagged(await journal(), 't4-granted');
    expect(underGrant).toHaveLength(1);
    expect(underGrant[0]!.data['clearance']).toMatchObject({ kind: 'grant', grantId: grant!.id });

    const revoke = await replica(2).cli(['grants', 'revoke', grant!.id], dba2);
    expect(revoke.status, revoke.stderr).toBe(0);
    expectRefused(await on1.sql("INSERT INTO audit_notes (body) VALUES ('t4-after-1')"), 'approval.pending');
    expectRefused(await on3.sql("INSERT INTO audit_notes (body) VALUES ('t4-after-3')"), 'approval.pending');
    expect(await notesCount('t4-approved')).toBe(1);
    expect(await notesCount('t4-granted')).toBe(1);
    expect(await notesCount('t4-after-1')).toBe(0);
    expect(await notesCount('t4-after-3')).toBe(0);
    const revoked = (await journal()).filter((r) => r.type === 'grant' && r.data['event'] === 'revoked');
    expect(revoked.map((r) => r.data['grantId'])).toEqual([grant!.id]);
    await expectIntactChain();
  });

  it('sticky sessions: a session opened on r1 is unknown to r2 (404 Session not found); a new initialize on r2 works with the same token', async () => {
    const on1 = await client(replica(1));
    const sessionId = on1.transport.sessionId;
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);

    const misrouted = await fetch(replica(2).url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${alice}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': sessionId!,
        'mcp-protocol-version': on1.transport.protocolVersion ?? '2025-06-18',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    expect(misrouted.status).toBe(404);
    expect(await misrouted.json()).toMatchObject({ jsonrpc: '2.0', error: { message: 'Session not found' } });

    const on2 = await client(replica(2));
    expect(on2.transport.sessionId).not.toBe(sessionId);
    expect((await on2.client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
    expectOk(await on2.sql("SELECT 't7-new-session' AS tag"));
    // The session on r1 is untouched by the misrouted request.
    expectOk(await on1.sql("SELECT 't7-old-session' AS tag"));
  });

  it('a stdio replica (serve without --http, its own config dir) writes into the same journal, and no local state file', async () => {
    const dir = writeReplicaConfig({ idp });
    try {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [requireBuiltCli(), 'serve', '--config', dir],
        env: { DB_URL: db.gatewayUrl, [STATE_VARIABLE]: stateDb.url, DRAWBRIDGE_TOKEN: alice },
        cwd: REPO_ROOT,
        stderr: 'pipe',
      });
      const stdio = new Client({ name: 'stdio-replica-test', version: '1.0.0' });
      await stdio.connect(transport);
      try {
        const r = (await stdio.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: "SELECT 't8-stdio' AS tag" } })) as CallToolResult;
        expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
      } finally {
        await stdio.close();
      }
      const calls = callsTagged(await journal(), 't8-stdio');
      expect(calls).toHaveLength(1);
      expect(calls[0]!.data['principal']).toMatchObject({ subject: 'alice', kind: 'oidc', issuer: idp.issuer });
      await outcomesOf([calls[0]!.callId]);
      expect(strayFiles(dir)).toEqual([]);
      await expectIntactChain();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGKILL of a replica mid-call: the others keep serving, the journal shows that call’s intent without an outcome, the chain verifies', async () => {
    const victim = await startReplica({ name: 'r4', stateUrl: stateDb.url, db, idp });
    replicas.push(victim);
    const doomed = await client(victim);
    expectOk(await doomed.sql("SELECT 't5-before-kill' AS tag"));
    const slow = doomed.sql("SELECT count(*) AS n, 't5-slow' AS tag FROM generate_series(1, 1e9)").then(
      (a) => ({ answered: a }),
      (error: unknown) => ({ failed: error }),
    );
    const intent = await until('the slow call’s intent in the journal', async () => callsTagged(await journal(), 't5-slow')[0]);
    await victim.kill();
    expect(await victim.exited).toBe('SIGKILL');
    await doomed.close();
    expect(await slow).toHaveProperty('failed');

    // The others serve on (and append after the dead replica's last record).
    const [on1, on3] = await Promise.all([client(replica(1)), client(replica(3))]);
    expectOk(await on1.sql("SELECT 't5-after-kill-1' AS tag"));
    expectOk(await on3.sql("SELECT 't5-after-kill-3' AS tag"));

    const records = await journal();
    expect(records.filter((r) => r.type === 'outcome' && r.callId === intent.callId)).toEqual([]);
    const before = callsTagged(records, 't5-before-kill');
    expect(before).toHaveLength(1);
    expect(records.filter((r) => r.type === 'outcome' && r.callId === before[0]!.callId)).toHaveLength(1);
    for (const tag of ['t5-after-kill-1', 't5-after-kill-3']) {
      const [call] = callsTagged(records, tag);
      expect(call!.seq).toBeGreaterThan(intent.seq);
      await outcomesOf([call!.callId]);
    }
    await expectIntactChain();
  });

  it('the replicas that were not killed are still up after all of it, and stop cleanly on SIGTERM', async () => {
    for (const n of [1, 2, 3] as const) expect(replica(n).child.exitCode, replica(n).stderr()).toBeNull();
    expect(await Promise.all([1, 2, 3].map((n) => replica(n as 1 | 2 | 3).stop()))).toEqual([0, 0, 0]);
    for (const n of [1, 2, 3] as const) expect(replica(n).stderr()).not.toMatch(/\n\s+at /);
  });
});
