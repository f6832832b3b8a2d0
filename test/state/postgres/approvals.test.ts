// The PostgreSQL engine's approvals (src/state/postgres/approvals.ts, notify.ts) beyond the
// shared contract: a change committed through one handle wakes changed() on another (LISTEN/
// NOTIFY), also after the listener connection was killed; a rolled-back vote announces nothing;
// the store fails closed when its connections die and works again on the next call.

import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApprovalSubject, ApproverIdentity, Vote } from '../../../src/approval/approver.js';
import { DrawbridgeError } from '../../../src/errors.js';
import type { StateStore } from '../../../src/state/contract.js';
import { openPostgresState } from '../../../src/state/postgres/index.js';
import { approvalSubject } from '../../support/approvals.js';
import { freshDatabase, type FreshDatabase } from '../../support/fixtures.js';
import { STATE_ROLE, STATE_ROLE_PASSWORD, stateRoleUrl } from '../../support/state-role.js';

const databases: FreshDatabase[] = [];
const opened: StateStore[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});

const T0 = new Date('2030-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const TTL = 3_600_000;
const subject = (): ApprovalSubject =>
  approvalSubject({ requester: { subject: 'alice', groups: ['analysts'], kind: 'local', issuer: 'local' }, preview: null });
const bob: ApproverIdentity = { subject: 'bob', groups: ['dba'], kind: 'local' };
const vote = (decision: 'approve' | 'deny' = 'approve'): Vote => ({ approver: bob, decision, via: 'cli', at: T0.toISOString() });

async function fresh(): Promise<{ db: FreshDatabase; open: () => Promise<StateStore> }> {
  const db = await freshDatabase('state_approvals');
  databases.push(db);
  const url = await stateRoleUrl(db);
  return {
    db,
    open: async () => {
      const state = await openPostgresState({ url, purpose: 'serve' });
      opened.push(state);
      return state;
    },
  };
}

/** Polls the server (not the wall clock) until `probe` holds. */
async function until(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await probe()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error('condition never held');
}

/** The pids of listener connections that are listening now. */
async function listeners(db: FreshDatabase): Promise<number[]> {
  const rows = await db.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = 'drawbridge listener' AND usename = $1 AND query LIKE 'LISTEN%' AND datname = current_database()",
    [STATE_ROLE],
  );
  return rows.map((r) => r.pid);
}

/** Whether `promise` has settled, checked after the event loop had a turn. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  void promise.then(
    () => (done = true),
    () => (done = true),
  );
  await new Promise<void>((r) => setImmediate(r));
  return done;
}

describe('PostgreSQL approvals', () => {
  it('changed() on one handle resolves when another handle votes (LISTEN/NOTIFY), and not before', async () => {
    const { db, open } = await fresh();
    const [a, b] = [await open(), await open()];
    const { approval } = await a.approvals.openRequest(subject(), T0, TTL);
    const waiting = a.approvals.changed(approval.id, new AbortController().signal);
    await until(async () => (await listeners(db)).length === 1);
    // A vote whose hook rejects is rolled back, and so is its notice.
    await b.approvals
      .vote(approval.id, vote(), at(1), { beforeCommit: async () => Promise.reject(new DrawbridgeError('journal.unavailable', 'disk full')) })
      .catch(() => undefined);
    // Another request's change does not wake this one.
    const other = await b.approvals.openRequest(approvalSubject({ ...subject(), hash: 'f'.repeat(64) }), T0, TTL);
    await b.approvals.vote(other.approval.id, vote('deny'), at(1));
    await a.approvals.list(at(2));
    expect(await settled(waiting)).toBe(false);
    await b.approvals.vote(approval.id, vote(), at(2));
    await waiting;
    expect(await a.approvals.get(approval.id, at(3))).toMatchObject({ status: 'approved' });
  });

  it('the listener reconnects after its connection is killed, and wakes the call still waiting', async () => {
    const { db, open } = await fresh();
    const [a, b] = [await open(), await open()];
    const { approval } = await a.approvals.openRequest(subject(), T0, TTL);
    const waiting = a.approvals.changed(approval.id, new AbortController().signal);
    await until(async () => (await listeners(db)).length === 1);
    const [first] = await listeners(db);
    await db.query('SELECT pg_terminate_backend($1)', [first]);
    await until(async () => {
      const now = await listeners(db);
      return now.length === 1 && now[0] !== first;
    });
    await b.approvals.consume(approval.id, at(1)).catch(() => undefined);
    await b.approvals.vote(approval.id, vote(), at(1));
    await waiting;
    const consumed = a.approvals.changed(approval.id, new AbortController().signal);
    await b.approvals.consume(approval.id, at(2));
    await consumed;
  });

  it('changed() resolves when its signal aborts, with no change', async () => {
    const { open } = await fresh();
    const a = await open();
    const abort = new AbortController();
    const waiting = a.approvals.changed('ap_nothing0000', abort.signal);
    expect(await settled(waiting)).toBe(false);
    abort.abort();
    await waiting;
  });

  it('when its connections are killed the store fails closed (store_unavailable, no secrets) or reconnects; the next call works', async () => {
    const { db, open } = await fresh();
    const a = await open();
    const { approval } = await a.approvals.openRequest(subject(), T0, TTL);
    // Kill every connection of the state role, pooled or listening.
    await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [STATE_ROLE]);
    const first = await a.approvals.get(approval.id, at(1)).catch((e: unknown) => e);
    if (first instanceof DrawbridgeError) {
      expect(first.code).toBe('approval.store_unavailable');
      expect(first.message).not.toContain(STATE_ROLE_PASSWORD);
    } else {
      expect(first).toMatchObject({ id: approval.id, status: 'pending' });
    }
    expect(await a.approvals.vote(approval.id, vote(), at(2))).toMatchObject({ status: 'approved' });
    // A store that cannot connect at all is store_unavailable too.
    const client = new pg.Client({ connectionString: db.superuserUrl });
    await client.connect();
    try {
      await client.query(`ALTER ROLE ${client.escapeIdentifier(STATE_ROLE)} NOLOGIN`);
      await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [STATE_ROLE]);
      const refused = await a.approvals.list(at(3)).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(DrawbridgeError);
      expect((refused as DrawbridgeError).code).toBe('approval.store_unavailable');
      expect((refused as DrawbridgeError).message).not.toContain(STATE_ROLE_PASSWORD);
    } finally {
      await client.query(`ALTER ROLE ${client.escapeIdentifier(STATE_ROLE)} LOGIN`);
      await client.end();
    }
    expect(await a.approvals.get(approval.id, at(4))).toMatchObject({ status: 'approved' });
  });
});
