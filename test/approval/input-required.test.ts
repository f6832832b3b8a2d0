// In-client approval on MCP 2026-07-28 (src/approval/adapters/input-required.ts), through the
// real pipeline over a real state (SQLite, and PostgreSQL as replicas share it) and a real
// target database: the transport is played by a channel carrying the rounds as server.ts passes
// them (plain data). Round 1 answers "input required" with the elicitation prompt's form and a
// sealed state; round 2 re-issues the call with the answer. Accepted → the write runs once;
// declined → refused, nothing runs; a replayed, tampered, cross-principal, other-arguments or
// expired state → refused and journaled; two concurrent re-issues with one state → exactly one runs.
// The clock is injected: expiry is a clock step, never a sleep.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InputRounds } from '../../src/approval/approver.js';
import { approvalForm, describeForApproval } from '../../src/approval/prompt.js';
import { BACKENDS } from '../../src/backends/index.js';
import { loadConfig } from '../../src/config/load.js';
import { DrawbridgeError } from '../../src/errors.js';
import type { Identity } from '../../src/identity/identity.js';
import { verifyStore } from '../../src/journal/verify.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { createGateway, openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import type { StateStore } from '../../src/state/contract.js';
import { openState } from '../../src/state/open.js';
import { openPostgresState } from '../../src/state/postgres/index.js';
import { as, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { approvalPolicy, approvalSettings, REQUESTER } from '../support/inProcess.js';
import { stateRoleUrl } from '../support/state-role.js';

interface Engine {
  readonly name: string;
  open(dir: string): Promise<StateStore>;
}

const stateDatabases: FreshDatabase[] = [];

const ENGINES: readonly Engine[] = [
  { name: 'sqlite', open: async (dir) => openState(loadConfig(dir)) },
  {
    name: 'postgres',
    async open() {
      const stateDb = await freshDatabase('input_required_state');
      stateDatabases.push(stateDb);
      return openPostgresState({ url: await stateRoleUrl(stateDb), purpose: 'serve' });
    },
  },
];

const CLIENT = 'modern-client';
const T0 = new Date('2030-01-01T10:00:00.000Z');

describe.each(ENGINES)('in-client approval as input required: $name state', (engine) => {
  let db: FreshDatabase;
  let dir: string;
  let state: StateStore;
  let gateway: Gateway;
  let now = T0;
  const requester = as(REQUESTER.subject, [...REQUESTER.groups]);
  const mallory = as('mallory@example.com', [...REQUESTER.groups]);

  beforeAll(async () => {
    db = await freshDatabase('input_required');
    dir = writeConfig({
      // The requester alone may approve, in the client; elicitation_timeout (2 s) is the state's and the request's time.
      policy: approvalPolicy('approvers: { requester: true }\ngrant: 1h'),
      approval: approvalSettings({ elicitationTimeout: '2s' }),
      identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
    });
    await Promise.all(BACKENDS.map((b) => b.init()));
    const config = loadConfig(dir);
    state = await engine.open(dir);
    gateway = createGateway({
      config,
      state,
      maskKey: new TextEncoder().encode('input-required-mask-key'),
      environment: { env: { DB_URL: db.gatewayUrl }, baseDir: config.dir },
      clock: () => now,
    });
  });

  afterAll(async () => {
    if (state) expect(await verifyStore(state.journal)).toMatchObject({ ok: true });
    await gateway?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await db?.drop();
    await Promise.all(stateDatabases.splice(0).map((d) => d.drop()));
  });

  const insert = (body: string) => `INSERT INTO audit_notes (body) VALUES ('${body}')`;

  /** One tools/call of a modern client that declared form elicitation; `rounds` as the client sent them. */
  const call = (sql: string, rounds: InputRounds, who: Identity = requester): Promise<CallResult> =>
    callTool(gateway, {
      tool: 'run_sql',
      args: { connection: 'db', sql },
      identity: who,
      client: { name: CLIENT },
      channel: { clientName: CLIENT, rounds },
    });

  const rows = async (body: string) => (await db.query('SELECT id FROM audit_notes WHERE body = $1', [body])).length;

  /** Round 1: the call is held, and the client gets the form and the state. */
  async function roundOne(sql: string, who: Identity = requester) {
    const r = await call(sql, {}, who);
    if (r.ok || !r.inputRequired) throw new Error(`expected input required, got ${r.text}`);
    const approvalId = r.error.details['approvalId'];
    if (typeof approvalId !== 'string') throw new Error('no approval id');
    return { result: r, approvalId, requestState: r.inputRequired.requestState, callId: r.callId };
  }

  const accept = { action: 'accept', content: { decision: 'approve' } };

  async function records(): Promise<Array<{ type: string; callId: string; data: Record<string, unknown> }>> {
    const out = [];
    for await (const r of state.journal.read())
      out.push({ type: String(r.type), callId: String(r.callId), data: JSON.parse(String(r.data)) as Record<string, unknown> });
    return out;
  }

  const approvalEvents = async (callId: string) => (await records()).filter((r) => r.type === 'approval' && r.callId === callId).map((r) => r.data);

  function refusedWith(r: CallResult, reason: string): void {
    if (r.ok) throw new Error('a refused state ran the call');
    expect(r.inputRequired).toBeUndefined();
    expect(r.error.code).toBe('approval.state_invalid');
    expect(r.error.details['reason']).toBe(reason);
    expect(r.text).not.toMatch(/\n\s+at /);
  }

  it('round 1 holds the call with the elicitation prompt’s own form and a sealed state; nothing runs, and it is journaled', async () => {
    now = T0;
    const { result, approvalId, requestState, callId } = await roundOne(insert('ask'));
    expect(approvalId).toMatch(/^ap_[a-z0-9]{10}$/);
    expect(requestState).toMatch(/^v1\./);
    const stored = await state.approvals.get(approvalId, now);
    expect(stored).toMatchObject({ status: 'pending', expiresAt: new Date(T0.getTime() + 2_000).toISOString() });
    // Exactly the form elicitation/create shows on 2025-11-25, for the request as stored.
    const form = approvalForm({ message: describeForApproval(stored!.subject), grantChoices: [0, 5 * 60_000, 15 * 60_000, 3_600_000] });
    expect(result.inputRequired?.inputRequests).toEqual({ approval: { method: 'elicitation/create', params: form } });
    expect(form.message).toContain(insert('ask'));
    expect(result.error.code).toBe('approval.pending');
    expect(await rows('ask')).toBe(0);
    expect(await approvalEvents(callId)).toEqual([
      expect.objectContaining({ event: 'requested', approvalId, via: 'input_required', rule: 'writes-need-approval', client: CLIENT }),
    ]);
    const all = await records();
    expect(all.find((r) => r.type === 'call' && r.callId === callId)?.data).toMatchObject({ decision: { effect: 'approve' }, clearance: null });
    expect(all.find((r) => r.type === 'outcome' && r.callId === callId)?.data).toMatchObject({
      status: 'refused',
      errorCode: 'approval.pending',
      inputRequired: { approvalId },
    });
  });

  it('accepted: the requester’s vote, consumed once, and the write runs once; the same state again is a replay, refused and journaled', async () => {
    now = T0;
    const first = await roundOne(insert('accepted'));
    const ran = await call(insert('accepted'), {
      requestState: first.requestState,
      response: { ...accept, content: { decision: 'approve', reason: 'checked' } },
    });
    expect(ran.ok, ran.text).toBe(true);
    expect(await rows('accepted')).toBe(1);
    expect(await state.approvals.get(first.approvalId, now)).toMatchObject({
      status: 'consumed',
      votes: [{ approver: { subject: REQUESTER.subject }, decision: 'approve', via: 'input_required', client: CLIENT, reason: 'checked' }],
    });
    expect(await approvalEvents(ran.callId)).toEqual([
      expect.objectContaining({ event: 'approved', approvalId: first.approvalId, via: 'input_required', reason: 'checked', requestedBy: first.callId }),
      expect.objectContaining({ event: 'consumed', approvalId: first.approvalId, via: 'input_required' }),
    ]);
    const intent = (await records()).find((r) => r.type === 'call' && r.callId === ran.callId)?.data;
    expect(intent?.['clearance']).toMatchObject({ kind: 'approval', approvalId: first.approvalId, via: 'input_required' });

    const replay = await call(insert('accepted'), { requestState: first.requestState, response: accept });
    refusedWith(replay, 'replayed');
    expect(await rows('accepted')).toBe(1);
    expect(await approvalEvents(replay.callId)).toEqual([
      expect.objectContaining({ event: 'refused', via: 'input_required', reason: 'replayed', approvalId: first.approvalId }),
    ]);
  });

  it('declined or cancelled: a deny vote, journaled "declined", nothing runs; the next identical call asks anew; the used state is a replay', async () => {
    now = T0;
    const asked = new Set<string>();
    for (const response of [{ action: 'accept', content: { decision: 'decline' } }, { action: 'decline' }, { action: 'cancel' }]) {
      const first = await roundOne(insert('declined'));
      asked.add(first.approvalId);
      const r = await call(insert('declined'), { requestState: first.requestState, response });
      if (r.ok) throw new Error('a declined call ran');
      expect(r.error.code).toBe('approval.declined');
      expect(r.text).toContain(response.action === 'cancel' ? `cancelled in ${CLIENT}` : `declined in ${CLIENT}`);
      expect(await rows('declined')).toBe(0);
      expect(await approvalEvents(r.callId)).toEqual([
        expect.objectContaining({ event: 'declined', approvalId: first.approvalId, via: 'input_required', action: response.action }),
      ]);
      expect(await state.approvals.get(first.approvalId, now)).toMatchObject({ status: 'denied', consumedAt: now.toISOString() });
      refusedWith(await call(insert('declined'), { requestState: first.requestState, response: accept }), 'replayed');
      expect(await rows('declined')).toBe(0);
    }
    // Each round 1 opened a new request: a declined prompt is not held against the next call.
    expect(asked.size).toBe(3);
  });

  it('refuses, and journals with its reason, a tampered, cross-principal, other-arguments, expired or malformed state; nothing runs', async () => {
    now = T0;
    const first = await roundOne(insert('guarded'));
    const parts = first.requestState.split('.');
    const body = Buffer.from(parts[4] ?? '', 'base64url');
    body[20] = (body[20] ?? 0) ^ 0x01;
    const tampered = [...parts.slice(0, 4), body.toString('base64url')].join('.');
    const cases: Array<[string, Promise<CallResult>]> = [
      ['tampered', call(insert('guarded'), { requestState: tampered, response: accept })],
      ['cross_principal', call(insert('guarded'), { requestState: first.requestState, response: accept }, mallory)],
      ['other_arguments', call(insert('guarded-other'), { requestState: first.requestState, response: accept })],
      ['malformed', call(insert('guarded'), { requestState: { not: 'a string' }, response: accept })],
    ];
    for (const [reason, pending] of cases) {
      const r = await pending;
      refusedWith(r, reason);
      expect(await approvalEvents(r.callId)).toEqual([
        expect.objectContaining({ event: 'refused', via: 'input_required', reason, approvalId: null, client: CLIENT, requester: expect.any(Object) }),
      ]);
    }
    expect(await rows('guarded')).toBe(0);
    expect(await rows('guarded-other')).toBe(0);
    // The genuine state still opens for its own principal and request, until it expires (the clock, not a sleep).
    now = new Date(T0.getTime() + 2_001);
    const late = await call(insert('guarded'), { requestState: first.requestState, response: accept });
    refusedWith(late, 'expired');
    expect(await rows('guarded')).toBe(0);
  });

  it('two concurrent re-issues with one state: exactly one runs, the other is a replay, journaled', async () => {
    now = T0;
    const first = await roundOne(insert('twice'));
    const both = await Promise.all([
      call(insert('twice'), { requestState: first.requestState, response: accept }),
      call(insert('twice'), { requestState: first.requestState, response: accept }),
    ]);
    expect(both.filter((r) => r.ok)).toHaveLength(1);
    const lost = both.find((r) => !r.ok);
    if (!lost) throw new Error('both ran');
    refusedWith(lost, 'replayed');
    expect(await rows('twice')).toBe(1);
    expect(await approvalEvents(lost.callId)).toContainEqual(expect.objectContaining({ event: 'refused', reason: 'replayed', approvalId: first.approvalId }));
  });

  it('a re-issue without the answer asks again for the same request; a grant chosen in the form is created once', async () => {
    now = T0;
    const first = await roundOne(insert('again'));
    const again = await call(insert('again'), { requestState: first.requestState });
    if (again.ok || !again.inputRequired) throw new Error('expected input required again');
    expect(again.error.details['approvalId']).toBe(first.approvalId);
    expect(again.inputRequired.requestState).not.toBe(first.requestState);
    const ran = await call(insert('again'), {
      requestState: again.inputRequired.requestState,
      response: { action: 'accept', content: { decision: 'approve', grant: '15m' } },
    });
    expect(ran.ok, ran.text).toBe(true);
    expect(await rows('again')).toBe(1);
    // The grant covers the next write on this connection and rule: no round 1 at all.
    const covered = await call(insert('again-covered'), {});
    expect(covered.ok, covered.text).toBe(true);
    const grants = await state.approvals.listGrants(now, { active: true });
    expect(grants.filter((g) => g.approvalId === first.approvalId)).toHaveLength(1);
    for (const g of grants) await state.approvals.revokeGrant(g.id, 'test', now);
  });

  it('without rounds (a 2025-11-25 client, or a client without form elicitation) the adapter stays out: no form, no state', async () => {
    now = T0;
    const r = await callTool(gateway, {
      tool: 'run_sql',
      args: { connection: 'db', sql: insert('legacy') },
      identity: requester,
      client: { name: 'old-client' },
      channel: { clientName: 'old-client' },
    });
    if (r.ok) throw new Error('ran without approval');
    expect(r.inputRequired).toBeUndefined();
    expect(r.error.code).toBe('approval.unavailable');
    expect(await rows('legacy')).toBe(0);
  });
});

describe('the requestState key: shared by replicas, or the configured one', () => {
  const requester = as(REQUESTER.subject, [...REQUESTER.groups]);
  const cleanup: Array<() => Promise<void>> = [];

  afterAll(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  const insert = (body: string) => `INSERT INTO audit_notes (body) VALUES ('${body}')`;
  const call = (gateway: Gateway, sql: string, rounds: InputRounds): Promise<CallResult> =>
    callTool(gateway, {
      tool: 'run_sql',
      args: { connection: 'db', sql },
      identity: requester,
      client: { name: CLIENT },
      channel: { clientName: CLIENT, rounds },
    });
  const stateOf = (r: CallResult): string => {
    if (r.ok || !r.inputRequired) throw new Error(`expected input required, got ${r.text}`);
    return r.inputRequired.requestState;
  };
  const accept = { action: 'accept', content: { decision: 'approve' } };

  it('two replicas on one PostgreSQL state share the generated key: asked on one, answered on the other, run once; a replay on the first refused', async () => {
    const db = await freshDatabase('input_required_replicas');
    const stateDb = await freshDatabase('input_required_replicas_state');
    const url = await stateRoleUrl(stateDb);
    const dir = writeConfig({
      policy: approvalPolicy('approvers: { requester: true }'),
      approval: approvalSettings({ elicitationTimeout: '1m' }),
      identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
    });
    cleanup.push(async () => {
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
      await stateDb.drop();
    });
    const config = loadConfig(dir);
    const replica = async (): Promise<Gateway> => {
      const g = createGateway({
        config,
        state: await openPostgresState({ url, purpose: 'serve' }),
        maskKey: new TextEncoder().encode('replica-mask-key'),
        environment: { env: { DB_URL: db.gatewayUrl }, baseDir: config.dir },
      });
      cleanup.push(() => g.close());
      return g;
    };
    const [a, b] = [await replica(), await replica()];
    const sql = insert('replicas');
    const state = stateOf(await call(a, sql, {}));
    const ran = await call(b, sql, { requestState: state, response: accept });
    expect(ran.ok, ran.text).toBe(true);
    const replay = await call(a, sql, { requestState: state, response: accept });
    if (replay.ok) throw new Error('a replay ran');
    expect(replay.error.details['reason']).toBe('replayed');
    expect(await db.query('SELECT id FROM audit_notes WHERE body = $1', ['replicas'])).toHaveLength(1);
  });

  it('request_state_key seals instead: a gateway with the same key opens it, one with a generated key does not; a short key stops the start', async () => {
    const db = await freshDatabase('input_required_key');
    cleanup.push(() => db.drop());
    const KEY = 'k'.repeat(48);
    const gatewayWith = async (approval: string, env: Record<string, string>): Promise<Gateway> => {
      const dir = writeConfig({
        policy: approvalPolicy('approvers: { requester: true }'),
        approval,
        identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
      });
      cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
      const g = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl, ...env } });
      cleanup.push(() => g.close());
      return g;
    };
    const keyed = '{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m, request_state_key: { env: RS_KEY } }';
    const [a, b] = [await gatewayWith(keyed, { RS_KEY: KEY }), await gatewayWith(keyed, { RS_KEY: KEY })];
    const generated = await gatewayWith('{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m }', {});
    const sql = insert('keyed');
    const state = stateOf(await call(a, sql, {}));
    // Another state store (its own SQLite files): the key opens the seal, but the approval it names is not there.
    const elsewhere = await call(b, sql, { requestState: state, response: accept });
    if (elsewhere.ok) throw new Error('ran an approval from another store');
    expect(elsewhere.error.details['reason']).toBe('unknown_approval');
    const foreign = await call(generated, sql, { requestState: state, response: accept });
    if (foreign.ok) throw new Error('ran a state sealed with another key');
    expect(foreign.error.details['reason']).toBe('wrong_key');
    const ran = await call(a, sql, { requestState: state, response: accept });
    expect(ran.ok, ran.text).toBe(true);
    expect(await db.query('SELECT id FROM audit_notes WHERE body = $1', ['keyed'])).toHaveLength(1);

    const error = await gatewayWith(keyed, { RS_KEY: 'short' }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('config.secret_invalid');
    expect((error as DrawbridgeError).message).toContain('$RS_KEY');
  });
});
