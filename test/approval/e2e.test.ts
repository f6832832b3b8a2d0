// Just-in-time approval end to end: the SDK's Client talks to an in-process
// Drawbridge server (createMcpServer over InMemoryTransport, so the gateway's
// clock is the test's to move). The client answers elicitation prompts from a
// script; approvers act through the command line's own function, run in
// process (`drawbridge approvals …`, `drawbridge grants …`, over the same
// store files a second process would open). Every case asserts the
// database as superuser, the tool result, and the journal: approval events
// (who, how, when, why), the call record's clearance, and the outcome.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { StoredApproval } from '../../src/state/contract.js';
import { DEFAULT_APPROVAL_WAIT_MS } from '../../src/config/schema.js';
import { requireBuiltCli, type CliRun } from '../support/cli.js';
import { freshDatabase, type FreshDatabase } from '../support/fixtures.js';
import { CLIENT_NAME, openSession, pendingId, REQUESTER, type CallOutcome, type JournalRow, type Session, type SessionOptions } from '../support/inProcess.js';
import { virtualTime } from '../support/virtualTime.js';

const IN_BAND = `approvers: { requester: true }
grant: 15m
preview: true`;
const OUT_OF_BAND = `approvers: { groups: [dba] }
grant: 15m
preview: true`;

const MINUTE = 60_000;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

const cleanups: Array<() => Promise<void>> = [];

beforeAll(() => {
  requireBuiltCli();
});

afterEach(async () => {
  const errors: unknown[] = [];
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length) throw errors[0];
});

/** A private copy of the shop database and an in-process session on it. */
async function start(options: SessionOptions): Promise<{ s: Session; db: FreshDatabase }> {
  const db = await freshDatabase('jit');
  cleanups.push(() => db.drop());
  const s = await openSession(db, options);
  cleanups.push(() => s.close());
  return { s, db };
}

/** Rows of orders whose note is `marker` (as superuser). */
async function marked(db: FreshDatabase, marker: string): Promise<number[]> {
  const rows = await db.query<{ id: number }>('SELECT id FROM orders WHERE note = $1 ORDER BY id', [marker]);
  return rows.map((r) => r.id);
}

async function orderCount(db: FreshDatabase): Promise<number> {
  const [row] = await db.query<{ n: string }>('SELECT count(*) AS n FROM orders');
  return Number(row?.n);
}

function ok(r: CallOutcome): void {
  expect(r.result.isError, r.text).toBeFalsy();
  expect(r.code).toBeNull();
}

function refused(r: CallOutcome, code: string): void {
  expect(r.result.isError, r.text).toBe(true);
  expect(r.code, r.text).toBe(code);
  expect(r.outcome?.data).toMatchObject({ status: 'refused', errorCode: code });
}

function event(r: CallOutcome | JournalRow[], name: string): JournalRow {
  const events = Array.isArray(r) ? r : r.events;
  const found = events.find((e) => e.data['event'] === name);
  if (!found) throw new Error(`no "${name}" event among ${JSON.stringify(events.map((e) => `${e.type}:${e.data['event']}`))}`);
  return found;
}

function names(r: CallOutcome): string[] {
  return r.events.map((e) => `${e.type}:${e.data['event']}`);
}

/** A time the gateway or the CLI wrote, checked to be an ISO instant within [from, to] (ms). */
function within(at: unknown, from: number, to: number): void {
  expect(at).toMatch(ISO);
  const ms = Date.parse(at as string);
  expect(ms).toBeGreaterThanOrEqual(from);
  expect(ms).toBeLessThanOrEqual(to);
}

async function until<T>(probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('timed out waiting in the test');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const accept = (grant = 'this call only', reason?: string) => ({
  action: 'accept' as const,
  content: { decision: 'approve', grant, ...(reason ? { reason } : {}) },
});

// ---------------------------------------------------------------------------

describe('in band: elicitation', () => {
  it('accept → the write runs, journaled as approved via elicitation by the requester in the client', async () => {
    const { s, db } = await start({ approve: IN_BAND });
    const sql = "UPDATE orders SET note = 'jit-accept' WHERE id IN (1, 2, 3)";
    s.answers.push(accept('this call only', 'checked the ids'));
    const t0 = Date.now();
    const r = await s.sql(sql);
    const t1 = Date.now();

    ok(r);
    expect(r.result.structuredContent).toMatchObject({ command: 'UPDATE', affectedRows: 3, rule: 'writes-need-approval', callId: r.call.callId });
    expect(await marked(db, 'jit-accept')).toEqual([1, 2, 3]);

    // The human saw the exact request, who asked, from where, and under which rule.
    expect(s.elicitations).toHaveLength(1);
    const prompt = s.elicitations[0]!;
    expect(prompt.mode ?? 'form').toBe('form');
    expect(prompt.message).toContain(`Approve this run_sql request on db?`);
    expect(prompt.message).toContain(`Requested by ${REQUESTER.subject} via ${CLIENT_NAME}.`);
    expect(prompt.message).toContain("Rule writes-need-approval: Writes to the shop need a human's yes.");
    expect(prompt.message).toContain(`Exact input:\n${sql}`);

    expect(names(r)).toEqual(['approval:requested', 'approval:approved']);
    const requested = event(r, 'requested');
    const approvalId = requested.data['approvalId'];
    expect(approvalId).toMatch(/^ap_[0-9a-f]{10}$/);
    expect(requested.data).toMatchObject({
      via: 'elicitation',
      rule: 'writes-need-approval',
      client: CLIENT_NAME,
      requester: { subject: REQUESTER.subject, groups: REQUESTER.groups, kind: 'local', issuer: 'local' },
    });
    const approved = event(r, 'approved');
    expect(approved.data).toEqual({
      event: 'approved',
      approvalId,
      via: 'elicitation',
      approver: { subject: REQUESTER.subject, groups: REQUESTER.groups, kind: 'local' },
      client: CLIENT_NAME,
      reason: 'checked the ids',
      grantMs: 0,
    });
    within(approved.time, t0, t1);
    // Approval first, then the durable intent, then the outcome.
    expect(approved.seq).toBeLessThan(r.call.seq);
    expect(r.call.data['decision']).toMatchObject({ effect: 'approve', rule: 'writes-need-approval' });
    expect(r.call.data['client']).toEqual({ name: CLIENT_NAME, version: '1.2.3' });
    expect(r.call.data['clearance']).toEqual({
      kind: 'approval',
      approvalId,
      via: 'elicitation',
      approvers: [{ subject: REQUESTER.subject, via: 'elicitation', at: approved.time, client: CLIENT_NAME }],
      grantId: null,
    });
    expect(r.outcome?.data).toMatchObject({ status: 'ok', affectedRows: 3 });

    // "This call only": the same statement asks again.
    s.answers.push({ action: 'decline' });
    const again = await s.sql(sql);
    refused(again, 'approval.declined');
    expect(s.elicitations).toHaveLength(2);
  });

  for (const action of ['decline', 'cancel'] as const) {
    it(`${action} → refused approval.declined, nothing runs`, async () => {
      const { s, db } = await start({ approve: IN_BAND });
      s.answers.push({ action });
      const r = await s.sql("UPDATE orders SET note = 'jit-no' WHERE id IN (4, 5)");

      refused(r, 'approval.declined');
      expect(r.text).toContain(action === 'decline' ? 'was declined in scripted-client' : 'was cancelled in scripted-client');
      expect(await marked(db, 'jit-no')).toEqual([]);
      expect(s.elicitations).toHaveLength(1);
      expect(names(r)).toEqual(['approval:requested', 'approval:declined']);
      expect(event(r, 'declined').data).toEqual({
        event: 'declined',
        approvalId: event(r, 'requested').data['approvalId'],
        via: 'elicitation',
        approver: { subject: REQUESTER.subject, groups: REQUESTER.groups, kind: 'local' },
        client: CLIENT_NAME,
        action,
      });
      expect(r.call.data['decision']).toMatchObject({ effect: 'approve', rule: 'writes-need-approval' });
      expect(r.call.data['clearance']).toBeNull();
    });
  }

  it('accept with decision "decline" → refused approval.declined, with the reason journaled', async () => {
    const { s, db } = await start({ approve: IN_BAND });
    s.answers.push({ action: 'accept', content: { decision: 'decline', reason: 'wrong customer' } });
    const r = await s.sql("UPDATE orders SET note = 'jit-no' WHERE id = 6");
    refused(r, 'approval.declined');
    expect(await marked(db, 'jit-no')).toEqual([]);
    expect(event(r, 'declined').data).toMatchObject({ action: 'accept', reason: 'wrong customer', approver: { subject: REQUESTER.subject } });
    expect(r.call.data['clearance']).toBeNull();
  });

  it('no answer within elicitation_timeout → refused approval.timeout, nothing runs', async () => {
    const { s, db } = await start({ approve: IN_BAND, elicitationTimeout: '1s' });
    s.answers.push('never');
    const r = await s.sql("UPDATE orders SET note = 'jit-late' WHERE id IN (7, 8)");

    refused(r, 'approval.timeout');
    expect(r.text).toContain('Nobody answered the approval prompt within 1s');
    expect(await marked(db, 'jit-late')).toEqual([]);
    expect(s.elicitations).toHaveLength(1);
    expect(names(r)).toEqual(['approval:requested', 'approval:timeout']);
    expect(event(r, 'timeout').data).toMatchObject({ approvalId: event(r, 'requested').data['approvalId'], via: 'elicitation' });
    expect(r.call.data['clearance']).toBeNull();

    // The session is still usable after the abandoned prompt.
    s.answers.push(accept());
    ok(await s.sql("UPDATE orders SET note = 'jit-late' WHERE id = 7"));
    expect(await marked(db, 'jit-late')).toEqual([7]);
  });
});

describe('in band: a long prompt and a cancelled call', () => {
  it('progress notifications keep the call open while the human reads the prompt', async () => {
    const { s, db } = await start({ approve: IN_BAND, elicitationTimeout: '10s', progressEveryMs: 200 });
    // The human answers after 2.5 s; the client gives up after 1 s without progress.
    s.answers.push({ delayMs: 2_500, result: accept() });
    const r = await s.sql("UPDATE orders SET note = 'jit-slow' WHERE id = 38", { progress: true, timeoutMs: 1_000 });
    ok(r);
    expect(await marked(db, 'jit-slow')).toEqual([38]);
    expect(r.progress.length).toBeGreaterThanOrEqual(3);
    expect(r.progress[0]!.message).toContain('approval prompt');
    expect(r.call.data['clearance']).toMatchObject({ kind: 'approval', via: 'elicitation' });
  });

  it('an answer given after the client cancelled the call runs nothing', async () => {
    const { s, db } = await start({ approve: IN_BAND, elicitationTimeout: '10s' });
    // The form stays open and says yes after 1.5 s; the client cancelled the call after 0.5 s.
    s.answers.push({ delayMs: 1_500, result: accept() });
    const sql = "UPDATE orders SET note = 'jit-cancelled' WHERE id = 39";
    await expect(s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, { timeout: 500 })).rejects.toThrow(/timed out/i);
    const call = await until(() => s.journal().find((x) => x.type === 'call' && x.data['input']?.sql === sql));
    const outcome = await until(() => s.journal().find((x) => x.type === 'outcome' && x.callId === call.callId));
    expect(outcome.data).toMatchObject({ status: 'refused', errorCode: 'approval.unavailable' });
    expect(
      s
        .journal()
        .filter((x) => x.callId === call.callId && x.type === 'approval')
        .map((x) => x.data['event']),
    ).toEqual(['requested', 'abandoned']);
    expect(call.data['clearance']).toBeNull();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await marked(db, 'jit-cancelled')).toEqual([]);
    expect(s.journal().filter((x) => x.type === 'call')).toHaveLength(1);
  });
});

describe('a client without the elicitation capability', () => {
  it('requester-only rule → refused approval.unavailable: never a silent yes', async () => {
    const { s, db } = await start({ approve: IN_BAND, elicitation: false });
    const before = await orderCount(db);
    const r = await s.sql("UPDATE orders SET note = 'jit-silent' WHERE id = 9");

    refused(r, 'approval.unavailable');
    expect(r.text).toContain(`${CLIENT_NAME} cannot show an approval prompt`);
    expect(await marked(db, 'jit-silent')).toEqual([]);
    expect(await orderCount(db)).toBe(before);
    expect(r.events).toEqual([]);
    expect(r.call.data['clearance']).toBeNull();
    expect(s.approvals()).toEqual([]);

    const del = await s.sql('DELETE FROM orders WHERE id = 9');
    refused(del, 'approval.unavailable');
    expect(await orderCount(db)).toBe(before);
  });

  it('a rule that also names groups → falls back to out of band (pending), and an approver clears it', async () => {
    const { s, db } = await start({ approve: 'approvers: { requester: true, groups: [dba] }\ngrant: 15m', elicitation: false });
    const sql = "UPDATE orders SET note = 'jit-oob' WHERE id = 10";
    const r = await s.sql(sql);

    refused(r, 'approval.pending');
    const id = pendingId(r);
    expect(await marked(db, 'jit-oob')).toEqual([]);
    expect(names(r)).toEqual(['approval:requested']);
    expect(event(r, 'requested').data).toMatchObject({ approvalId: id, via: 'cli', client: CLIENT_NAME, approverGroups: ['dba'], min: 1 });
    const [stored] = s.approvals();
    expect(stored).toMatchObject({ id, status: 'pending', subject: { input: { connection: 'db', sql }, allowRequester: true, client: CLIENT_NAME } });

    const vote = await s.cli(['approvals', 'approve', id, '--reason', 'fine'], 'dba1');
    expect(vote.stderr).toBe('');
    expect(vote.status).toBe(0);
    const done = await s.sql(sql);
    ok(done);
    expect(await marked(db, 'jit-oob')).toEqual([10]);
    expect(done.call.data['clearance']).toMatchObject({
      kind: 'approval',
      approvalId: id,
      via: 'cli',
      approvers: [{ subject: 'dba1@example.com', via: 'cli' }],
      grantId: null,
    });
  });
});

describe('out of band: the default wait fits clients that give up after 60 s', () => {
  it('waits 45 s (virtual time) with progress every 5 s, then answers pending: who must approve, and exactly how to pick up the decision', async () => {
    const time = virtualTime();
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: 'default', time });
    expect(s.config.approval.waitMs).toBe(45_000);
    expect(DEFAULT_APPROVAL_WAIT_MS).toBeLessThan(60_000);
    const sql = "UPDATE orders SET note = 'jit-default' WHERE id = 40";
    const r = await s.sql(sql, { progress: true });

    refused(r, 'approval.pending');
    const id = pendingId(r);
    expect(time.slept()).toBe(45_000);
    // The progress token kept the call alive meanwhile: at 0, 5, … 40 s.
    expect(r.progress).toHaveLength(9);
    expect(r.progress.map((p) => p.progress)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const p of r.progress) expect(p.message).toBe(`Waiting for approval ${id} (0/1) from dba: drawbridge approvals approve ${id}`);

    const expiresAt = s.approvals().find((a) => a.id === id)!.expiresAt;
    const retry = 'Call run_sql again with exactly the same arguments (connection db, same sql) to pick up the decision; it waits up to 45 s each time.';
    expect(r.text).toBe(
      `approval.pending: Pending approval ${id}: a human must approve ${id} (someone ` +
        `in dba must run \`drawbridge approvals approve ${id}\`); nothing was run yet.\n` +
        `What to do: ${retry} Approved: the call runs, once. Denied: you are told why, ` +
        `once. Tell the user that ${id} waits for someone in dba; it expires at ${expiresAt}.`,
    );
    // The same as structured output (the SDK client already checked it against the published outputSchema).
    expect(r.result.structuredContent).toEqual({
      connection: 'db',
      command: '',
      columns: [],
      rows: [],
      rowCount: 0,
      affectedRows: null,
      truncated: null,
      masked: [],
      notices: [],
      rule: 'writes-need-approval',
      durationMs: expect.any(Number),
      callId: r.call.callId,
      approval: { id, status: 'pending', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval', expiresAt, waitSeconds: 45, retry },
    });
    expect(await marked(db, 'jit-default')).toEqual([]);

    // Still undecided: the identical call waits another 45 s and says the same about the same request.
    const again = await s.sql(sql);
    refused(again, 'approval.pending');
    expect(pendingId(again)).toBe(id);
    expect(time.slept()).toBe(90_000);
    expect(again.progress).toEqual([]);
    expect(again.result.structuredContent).toMatchObject({ approval: { id, status: 'pending', retry } });

    // Decided while nobody waited: the next identical call picks it up at once and runs it.
    expect((await s.cli(['approvals', 'approve', id], 'dba2')).status).toBe(0);
    const runs = await s.sql(sql);
    ok(runs);
    expect(time.slept()).toBe(90_000);
    expect(runs.call.data['clearance']).toMatchObject({ kind: 'approval', approvalId: id, via: 'cli' });
    expect(await marked(db, 'jit-default')).toEqual([40]);
  });
});

describe('out of band: drawbridge approvals', () => {
  it('approve WHILE the call waits (the default wait, in virtual time) → the original call completes; progress notifications kept it open', async () => {
    const time = virtualTime();
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: 'default', time });
    const sql = "UPDATE orders SET note = 'jit-wait' WHERE id IN (11, 12)";
    let pending: StoredApproval | undefined;
    let show: CliRun | undefined;
    let vote: CliRun | undefined;
    let before: number[] = [];
    // 12 s into the wait, a DBA looks at the request and approves it.
    time.at(12_000, async () => {
      pending = s.approvals().find((a) => a.status === 'pending' && a.subject.input['sql'] === sql);
      before = await marked(db, 'jit-wait');
      show = await s.cli(['approvals', 'show', pending!.id]);
      vote = await s.cli(['approvals', 'approve', pending!.id, '--reason', 'ticket OPS-42'], 'dba1');
    });
    const t0 = Date.now();
    const r = await s.sql(sql, { progress: true });
    const t1 = Date.now();
    expect(pending).toBeDefined();
    const id = pending!.id;
    expect(before).toEqual([]);
    expect(show?.status).toBe(0);
    expect(show?.stdout).toContain(sql);
    expect(show?.stdout).toContain('affected rows: 2');
    expect(vote?.stderr).toBe('');
    expect(vote?.status).toBe(0);
    expect(vote?.stdout).toContain(`${id}: approve by dba1@example.com recorded`);

    ok(r);
    expect(r.result.structuredContent).toMatchObject({ affectedRows: 2 });
    expect(r.result.structuredContent).not.toHaveProperty('approval');
    expect(await marked(db, 'jit-wait')).toEqual([11, 12]);
    // It waited 12 s of its 45, telling the client every 5 s (at 0, 5 and 10 s).
    expect(time.slept()).toBeGreaterThanOrEqual(12_000);
    expect(time.slept()).toBeLessThan(13_000);
    expect(r.progress).toHaveLength(3);
    expect(r.progress[0]!.message).toContain(`Waiting for approval ${id}`);
    expect(r.progress[0]!.message).toContain(`drawbridge approvals approve ${id}`);

    // The vote was journaled by the CLI under the requesting call; then the same call consumed it.
    expect(names(r)).toEqual(['approval:requested', 'approval:vote', 'approval:consumed']);
    expect(event(r, 'requested').data).toMatchObject({
      approvalId: id,
      via: 'cli',
      client: CLIENT_NAME,
      approverGroups: ['dba'],
      min: 1,
      preview: { affectedRows: 2 },
    });
    const vote1 = event(r, 'vote');
    expect(vote1.data).toMatchObject({
      approvalId: id,
      decision: 'approve',
      approver: { subject: 'dba1@example.com', groups: ['dba'], kind: 'local' },
      via: 'cli',
      reason: 'ticket OPS-42',
      grantMs: 0,
      status: 'approved',
    });
    within(vote1.time, t0, t1);
    expect(event(r, 'consumed').data).toMatchObject({
      approvalId: id,
      requestedBy: r.call.callId,
      votes: [{ approver: 'dba1@example.com', decision: 'approve', via: 'cli' }],
    });
    expect(r.call.data['clearance']).toEqual({
      kind: 'approval',
      approvalId: id,
      via: 'cli',
      approvers: [{ subject: 'dba1@example.com', via: 'cli', at: vote1.time }],
      grantId: null,
    });
    expect(r.outcome?.data).toMatchObject({ status: 'ok', affectedRows: 2 });
    expect(s.approvals().find((a) => a.id === id)?.status).toBe('consumed');
  });

  it('a deny WHILE the call waits (the default wait, in virtual time) → refused approval.declined with the reason', async () => {
    const time = virtualTime();
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: 'default', time });
    const sql = 'DELETE FROM orders WHERE id = 13';
    let voting: Promise<CliRun> | undefined;
    let id = '';
    time.at(30_000, async () => {
      id = s.approvals().find((a) => a.status === 'pending')!.id;
      voting = s.cli(['approvals', 'deny', id, '--reason', 'use the archive job'], 'dba2');
      await voting;
    });
    const r = await s.sql(sql);
    // The denial's commit wakes the waiting call at once (the store's change notice), maybe before the CLI has printed.
    expect((await voting)?.status).toBe(0);
    refused(r, 'approval.declined');
    expect(r.text).toContain(`Approval ${id} was denied: use the archive job; nothing was run.`);
    expect(r.result.structuredContent).toMatchObject({
      rows: [],
      approval: { id, status: 'denied', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval', expiresAt: null },
    });
    expect(await db.query('SELECT 1 FROM orders WHERE id = 13')).toHaveLength(1);
    expect(event(r, 'vote').data).toMatchObject({
      decision: 'deny',
      approver: { subject: 'dba2@example.com' },
      reason: 'use the archive job',
      status: 'denied',
    });
    expect(r.call.data['clearance']).toBeNull();
  });

  it('a deny AFTER the call returned pending (the default wait) → the same call again is told the denial and its reason, once', async () => {
    const time = virtualTime();
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: 'default', time });
    const sql = 'DELETE FROM orders WHERE id = 28';
    const first = await s.sql(sql);
    refused(first, 'approval.pending');
    const id = pendingId(first);
    expect(time.slept()).toBe(DEFAULT_APPROVAL_WAIT_MS);
    const deny = await s.cli(['approvals', 'deny', id, '--reason', 'use the archive job'], 'dba1');
    expect(deny.status).toBe(0);
    expect(deny.stdout).toContain('The agent is told your reason');

    const told = await s.sql(sql);
    refused(told, 'approval.declined');
    // Picked up at once: no second wait.
    expect(time.slept()).toBe(DEFAULT_APPROVAL_WAIT_MS);
    expect(told.text).toContain(`Approval ${id} was denied: use the archive job`);
    expect(told.result.structuredContent).toMatchObject({ approval: { id, status: 'denied' } });
    expect((told.result.structuredContent as { approval: { retry: string } }).approval.retry).toBe(
      'Do not call run_sql with these arguments again unless the user asks for it: an identical call asks a human anew.',
    );
    expect(names(told)).toEqual(['approval:declined']);
    expect(event(told, 'declined').data).toMatchObject({
      approvalId: id,
      via: 'cli',
      approver: { subject: 'dba1@example.com', groups: ['dba'], kind: 'local' },
      reason: 'use the archive job',
      requestedBy: first.call.callId,
    });
    expect(told.call.data['clearance']).toBeNull();
    expect(await db.query('SELECT 1 FROM orders WHERE id = 28')).toHaveLength(1);

    // Told once: asking again is a new request for a human to judge.
    const again = await s.sql(sql);
    refused(again, 'approval.pending');
    expect(pendingId(again)).not.toBe(id);
    expect(await db.query('SELECT 1 FROM orders WHERE id = 28')).toHaveLength(1);
  });

  it('a call the client abandoned while waiting never runs, and never uses up the approval', async () => {
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: '20s' });
    const sql = "UPDATE orders SET note = 'jit-gone' WHERE id = 29";
    // The client gives up after 2 s (the SDK sends notifications/cancelled).
    const call = s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, { timeout: 2_000 });
    const pending = await s.waitForApproval((a) => a.status === 'pending');
    await expect(call).rejects.toThrow(/timed out/i);
    // The gateway stops waiting for it: its call is journaled as refused, nothing ran.
    const abandoned = await until(() => s.journal().find((x) => x.type === 'outcome' && x.callId === pending.subject.callId));
    expect(abandoned.data).toMatchObject({ status: 'refused', errorCode: 'approval.pending' });
    expect(s.journal().find((x) => x.callId === pending.subject.callId && x.data['event'] === 'abandoned')?.data).toMatchObject({
      approvalId: pending.id,
      via: 'cli',
    });

    expect((await s.cli(['approvals', 'approve', pending.id], 'dba1')).status).toBe(0);
    await new Promise((r) => setTimeout(r, 600));
    expect(await marked(db, 'jit-gone')).toEqual([]);
    expect(s.approvals().find((a) => a.id === pending.id)?.status).toBe('approved');

    // The agent's next identical call picks the approval up and runs it, once.
    const r = await s.sql(sql);
    ok(r);
    expect(r.call.data['clearance']).toMatchObject({ kind: 'approval', approvalId: pending.id });
    expect(await marked(db, 'jit-gone')).toEqual([29]);
  });

  it('approve AFTER the call returned pending (the default wait) → the same call again runs, once; a third asks again', async () => {
    const time = virtualTime();
    const { s, db } = await start({ approve: OUT_OF_BAND, wait: 'default', time });
    const sql = "UPDATE orders SET note = 'jit-later' WHERE id = 14";
    const first = await s.sql(sql);
    refused(first, 'approval.pending');
    const id = pendingId(first);
    expect(time.slept()).toBe(DEFAULT_APPROVAL_WAIT_MS);
    expect(first.text).toContain(`drawbridge approvals approve ${id}`);
    expect(first.text).toContain(
      'Call run_sql again with exactly the same arguments (connection db, same sql) to pick up the decision; it waits up to 45 s each time.',
    );
    expect(await marked(db, 'jit-later')).toEqual([]);
    expect(names(first)).toEqual(['approval:requested']);

    const list = await s.cli(['approvals', 'list', '--json']);
    expect(list.status).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ id: string }>).map((a) => a.id)).toEqual([id]);

    const vote = await s.cli(['approvals', 'approve', id], 'dba2');
    expect(vote.status).toBe(0);
    // The vote is journaled under the first call, which asked.
    expect(
      event(
        s.journal().filter((x) => x.callId === first.call.callId),
        'vote',
      ).data,
    ).toMatchObject({ approver: { subject: 'dba2@example.com' }, status: 'approved' });

    const second = await s.sql(sql);
    ok(second);
    // Picked up at once: no second wait.
    expect(time.slept()).toBe(DEFAULT_APPROVAL_WAIT_MS);
    expect(await marked(db, 'jit-later')).toEqual([14]);
    expect(names(second)).toEqual(['approval:consumed']);
    expect(event(second, 'consumed').data).toMatchObject({ approvalId: id, requestedBy: first.call.callId });
    expect(second.call.data['clearance']).toMatchObject({
      kind: 'approval',
      approvalId: id,
      via: 'cli',
      approvers: [{ subject: 'dba2@example.com', via: 'cli' }],
    });
    expect(second.outcome?.data).toMatchObject({ status: 'ok', affectedRows: 1 });

    await db.query('UPDATE orders SET note = NULL WHERE id = 14');
    const third = await s.sql(sql);
    refused(third, 'approval.pending');
    expect(pendingId(third)).not.toBe(id);
    expect(await marked(db, 'jit-later')).toEqual([]);
    expect(s.approvals().find((a) => a.id === id)?.status).toBe('consumed');
  });

  it('min: 2 → one approval is not enough; the same approver twice is refused; a second distinct approver clears it', async () => {
    const { s, db } = await start({ approve: 'approvers: { groups: [dba], min: 2 }' });
    const sql = 'DELETE FROM orders WHERE id = 15';
    const first = await s.sql(sql);
    refused(first, 'approval.pending');
    const id = pendingId(first);
    expect(first.text).toContain('2 approvers in dba');

    const one = await s.cli(['approvals', 'approve', id, '--reason', 'first'], 'dba1');
    expect(one.status).toBe(0);
    expect(one.stdout).toContain('pending (1/2 approvals)');
    const still = await s.sql(sql);
    refused(still, 'approval.pending');
    expect(pendingId(still)).toBe(id);
    expect(await db.query('SELECT 1 FROM orders WHERE id = 15')).toHaveLength(1);

    const twice = await s.cli(['approvals', 'approve', id], 'dba1');
    expect(twice.status).toBe(1);
    expect(twice.stderr).toContain('drawbridge: approval.duplicate_vote: ');
    expect(s.approvals().find((a) => a.id === id)?.votes).toHaveLength(1);

    const two = await s.cli(['approvals', 'approve', id, '--reason', 'second'], 'dba2');
    expect(two.status).toBe(0);
    expect(two.stdout).toContain('approved (2/2)');
    const r = await s.sql(sql);
    ok(r);
    expect(await db.query('SELECT 1 FROM orders WHERE id = 15')).toHaveLength(0);
    expect(r.call.data['clearance']).toMatchObject({
      kind: 'approval',
      approvalId: id,
      via: 'cli',
      approvers: [
        { subject: 'dba1@example.com', via: 'cli' },
        { subject: 'dba2@example.com', via: 'cli' },
      ],
    });
    const votes = s.journal().filter((x) => x.callId === first.call.callId && x.data['event'] === 'vote');
    expect(votes.map((v) => [v.data['approver'].subject, v.data['reason'], v.data['status']])).toEqual([
      ['dba1@example.com', 'first', 'pending'],
      ['dba2@example.com', 'second', 'approved'],
    ]);
  });

  it('self-approval is refused unless the rule says requester: true', async () => {
    const { s, db } = await start({ approve: OUT_OF_BAND });
    const sql = "UPDATE orders SET note = 'jit-self' WHERE id = 16";
    const first = await s.sql(sql);
    refused(first, 'approval.pending');
    const id = pendingId(first);
    const journaled = s.journal().length;

    const self = await s.cli(['approvals', 'approve', id], 'self');
    expect(self.status).toBe(1);
    expect(self.stdout).toBe('');
    expect(self.stderr).toContain('drawbridge: approval.forbidden: ');
    expect(self.stderr).toContain('may not approve or deny their own request');
    expect(s.journal()).toHaveLength(journaled);
    expect(s.approvals().find((a) => a.id === id)).toMatchObject({ status: 'pending', votes: [] });
    refused(await s.sql(sql), 'approval.pending');
    expect(await marked(db, 'jit-self')).toEqual([]);

    // With requester: true (and a client that cannot show the form, so it goes out of band) they may.
    const other = await start({ approve: 'approvers: { groups: [dba], requester: true }', elicitation: false });
    const mine = await other.s.sql(sql);
    refused(mine, 'approval.pending');
    const mineId = pendingId(mine);
    const yes = await other.s.cli(['approvals', 'approve', mineId, '--reason', 'my own fix'], 'self');
    expect(yes.stderr).toBe('');
    expect(yes.status).toBe(0);
    const r = await other.s.sql(sql);
    ok(r);
    expect(await marked(other.db, 'jit-self')).toEqual([16]);
    expect(r.call.data['clearance']).toMatchObject({ kind: 'approval', approvalId: mineId, approvers: [{ subject: REQUESTER.subject, via: 'cli' }] });
  });

  it('a different statement is not run under another statement’s approval', async () => {
    const { s, db } = await start({ approve: OUT_OF_BAND });
    const a = "UPDATE orders SET note = 'jit-a' WHERE id = 17";
    const b = "UPDATE orders SET note = 'jit-b' WHERE id = 17";
    const askA = await s.sql(a);
    refused(askA, 'approval.pending');
    const idA = pendingId(askA);
    expect((await s.cli(['approvals', 'approve', idA], 'dba1')).status).toBe(0);

    const runB = await s.sql(b);
    refused(runB, 'approval.pending');
    const idB = pendingId(runB);
    expect(idB).not.toBe(idA);
    expect(await marked(db, 'jit-b')).toEqual([]);
    expect(names(runB)).toEqual(['approval:requested']);
    expect(event(runB, 'requested').data['hash']).not.toBe(event(askA, 'requested').data['hash']);
    expect(runB.call.data['clearance']).toBeNull();

    // Whitespace is part of the exact input: not the approved statement either.
    refused(await s.sql(`${a} `), 'approval.pending');
    expect(await marked(db, 'jit-a')).toEqual([]);

    const runA = await s.sql(a);
    ok(runA);
    expect(runA.call.data['clearance']).toMatchObject({ kind: 'approval', approvalId: idA });
    expect(await marked(db, 'jit-a')).toEqual([17]);
    const statuses = Object.fromEntries(s.approvals().map((x) => [x.id, x.status]));
    expect(statuses[idA]).toBe('consumed');
    expect(statuses[idB]).toBe('pending');
  });
});

describe('grants', () => {
  it('an out-of-band approval with --grant 15m lets a different write under the same rule run without asking', async () => {
    const { s, db } = await start({ approve: OUT_OF_BAND });
    const first = await s.sql("UPDATE orders SET note = 'jit-g1' WHERE id = 18");
    const id = pendingId(first);
    const vote = await s.cli(['approvals', 'approve', id, '--grant', '15m', '--reason', 'cleanup window'], 'dba1');
    expect(vote.status).toBe(0);
    expect(vote.stdout).toContain('grant 15m');

    const runs = await s.sql("UPDATE orders SET note = 'jit-g1' WHERE id = 18");
    ok(runs);
    const created = event(runs, 'created');
    expect(created.type).toBe('grant');
    const grantId = created.data['grantId'];
    expect(grantId).toMatch(/^gr_[a-z0-9]{10}$/);
    expect(created.data).toMatchObject({ approvalId: id, subject: REQUESTER.subject, tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' });
    expect(runs.call.data['clearance']).toMatchObject({ kind: 'approval', approvalId: id, grantId });

    const other = await s.sql('DELETE FROM orders WHERE id = 19');
    ok(other);
    expect(await db.query('SELECT 1 FROM orders WHERE id = 19')).toHaveLength(0);
    expect(other.events).toEqual([]);
    expect(other.call.data['clearance']).toEqual({ kind: 'grant', grantId, approvalId: id, expiresAt: created.data['expiresAt'] });
    expect(other.outcome?.data).toMatchObject({ status: 'ok', affectedRows: 1 });
    expect(s.approvals()).toHaveLength(1);

    const listed = await s.cli(['grants', 'list', '--json']);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((g) => g.id)).toEqual([grantId]);
  });

  it('an elicitation grant of 15m covers the next write without a prompt', async () => {
    const { s, db } = await start({ approve: IN_BAND });
    s.answers.push(accept('15m', 'for the migration'));
    const t0 = Date.now();
    const first = await s.sql("UPDATE orders SET note = 'jit-eg' WHERE id = 20");
    ok(first);
    expect(event(first, 'approved').data).toMatchObject({ grantMs: 15 * MINUTE, reason: 'for the migration' });
    const created = event(first, 'created');
    // An absolute expiry, 15 minutes after the approval (on the gateway clock).
    within(new Date(Date.parse(created.data['expiresAt']) - 15 * MINUTE).toISOString(), t0, Date.parse(first.call.time));
    expect(created.data['expiresAt']).toBe(s.grants()[0]?.expiresAt);

    const second = await s.sql("UPDATE orders SET note = 'jit-eg' WHERE id = 21");
    ok(second);
    expect(s.elicitations).toHaveLength(1);
    expect(second.call.data['clearance']).toMatchObject({ kind: 'grant', grantId: created.data['grantId'] });
    expect(await marked(db, 'jit-eg')).toEqual([20, 21]);
  });

  it('expiry follows the gateway clock: a call just before expiry is cut at the expiry; after it, writes ask again', async () => {
    const { s, db } = await start({
      approve: OUT_OF_BAND,
      limits: '{ timeout: 30s, lock_timeout: 1s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }',
    });
    const first = await s.sql("UPDATE orders SET note = 'jit-exp' WHERE id = 22");
    const id = pendingId(first);
    expect((await s.cli(['approvals', 'approve', id, '--grant', '15m'], 'dba1')).status).toBe(0);
    const granted = await s.sql("UPDATE orders SET note = 'jit-exp' WHERE id = 22");
    ok(granted);
    const expiresAt = Date.parse(event(granted, 'created').data['expiresAt']);

    // 14 minutes later: still covered.
    s.setClock(expiresAt - MINUTE);
    ok(await s.sql("UPDATE orders SET note = 'jit-exp' WHERE id = 23"));

    // One second before expiry: statement_timeout is what is left of the grant, not the 30 s limit.
    s.setClock(expiresAt - 1_000);
    const slow = await s.sql('SELECT pg_sleep(8)');
    expect(slow.call.data['request']).toMatchObject({ access: 'write' });
    expect(slow.call.data['clearance']).toMatchObject({ kind: 'grant' });
    expect(slow.result.isError).toBe(true);
    expect(slow.code).toBe('backend.timeout');
    expect(slow.text).toMatch(/grant/i);
    expect(slow.outcome?.data).toMatchObject({ status: 'error', errorCode: 'backend.timeout' });

    // Past the expiry: the next write asks again.
    s.setClock(expiresAt + 1_000);
    const after = await s.sql("UPDATE orders SET note = 'jit-exp' WHERE id = 24");
    refused(after, 'approval.pending');
    expect(after.call.data['clearance']).toBeNull();
    expect(pendingId(after)).not.toBe(id);
    expect(await marked(db, 'jit-exp')).toEqual([22, 23]);
  });

  it('revocation: drawbridge grants revoke → the next write asks again', async () => {
    const { s, db } = await start({ approve: OUT_OF_BAND });
    const first = await s.sql("UPDATE orders SET note = 'jit-rev' WHERE id = 25");
    const id = pendingId(first);
    expect((await s.cli(['approvals', 'approve', id, '--grant', '15m'], 'dba1')).status).toBe(0);
    const granted = await s.sql("UPDATE orders SET note = 'jit-rev' WHERE id = 25");
    ok(granted);
    const grantId = event(granted, 'created').data['grantId'];
    ok(await s.sql("UPDATE orders SET note = 'jit-rev' WHERE id = 26"));

    const noToken = await s.cli(['grants', 'revoke', grantId]);
    expect(noToken.status).toBe(2);
    const revoke = await s.cli(['grants', 'revoke', grantId], 'dba2');
    expect(revoke.stderr).toBe('');
    expect(revoke.status).toBe(0);
    expect(revoke.stdout).toContain(`${grantId}: revoked by dba2@example.com`);
    const revoked = s.journal().find((x) => x.type === 'grant' && x.data['event'] === 'revoked');
    // Journaled under the call that asked for the approval.
    expect(revoked).toMatchObject({
      callId: first.call.callId,
      data: { grantId, approvalId: id, by: 'dba2@example.com', approver: { subject: 'dba2@example.com', groups: ['dba'], kind: 'local' } },
    });
    expect(s.grants().find((g) => g.id === grantId)?.revokedBy).toBe('dba2@example.com');

    const after = await s.sql("UPDATE orders SET note = 'jit-rev' WHERE id = 27");
    refused(after, 'approval.pending');
    expect(await marked(db, 'jit-rev')).toEqual([25, 26]);
  });
});

describe('impact preview', () => {
  const PREVIEW = `approvers: { requester: true }
preview: true
max_affected_rows: 5`;

  it('the prompt shows the affected row count, and it matches what the approved write changes', async () => {
    const { s, db } = await start({ approve: PREVIEW });
    s.answers.push(accept());
    const r = await s.sql("UPDATE orders SET note = 'jit-prev' WHERE id BETWEEN 31 AND 34");
    ok(r);
    const message = s.elicitations[0]!.message;
    expect(message).toContain('Impact (dry run, rolled back): 4 rows would change.');
    expect(message).toContain('Sample of affected keys: id=31 | id=32 | id=33 | id=34');
    expect(event(r, 'requested').data['preview']).toMatchObject({ affectedRows: 4, sampleColumns: ['id'] });
    expect(r.result.structuredContent).toMatchObject({ affectedRows: 4 });
    expect(r.outcome?.data).toMatchObject({ affectedRows: 4 });
    expect(await marked(db, 'jit-prev')).toEqual([31, 32, 33, 34]);
  });

  it('a write over max_affected_rows is refused before anyone is asked', async () => {
    const { s, db } = await start({ approve: PREVIEW });
    const r = await s.sql("UPDATE orders SET note = 'jit-big' WHERE id <= 50");
    refused(r, 'limits.affected_rows');
    expect(r.text).toContain('would change 50 rows, more than the limit of 5');
    expect(s.elicitations).toHaveLength(0);
    expect(r.events).toEqual([]);
    expect(await marked(db, 'jit-big')).toEqual([]);
  });

  it('declined after the dry run: the database is unchanged', async () => {
    const { s, db } = await start({ approve: PREVIEW });
    const before = await orderCount(db);
    s.answers.push({ action: 'decline' });
    const r = await s.sql('DELETE FROM orders WHERE id IN (35, 36, 37)');
    refused(r, 'approval.declined');
    expect(s.elicitations[0]!.message).toContain('3 rows would change');
    expect(await orderCount(db)).toBe(before);
    expect(await db.query('SELECT id FROM orders WHERE id IN (35, 36, 37)')).toHaveLength(3);
  });
});
