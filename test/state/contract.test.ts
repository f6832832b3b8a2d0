// The state contract (src/state/contract.ts) as every engine must keep it: one table of
// engines (today SQLite), each opened twice on the same state as two processes or replicas
// would, and the same checks for each: journal order and chain, concurrent appends, consume
// exactly once, votes once per approver, the vote hook's commit-or-rollback, grants, shared
// keys created once, and expiry decided by the caller's clock (injected, never slept).

import { approvalSubject } from '../support/approvals.js';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApprovalSubject, ApproverIdentity, Vote } from '../../src/approval/approver.js';
import { DrawbridgeError, type ErrorCode } from '../../src/errors.js';
import { verifyStore } from '../../src/journal/verify.js';
import type { StateStore, StoredRecord } from '../../src/state/contract.js';
import { GENESIS_HASH, recordHash, type RecordType } from '../../src/state/records.js';
import { openSqliteState } from '../../src/state/sqlite/index.js';
import { openPostgresState } from '../../src/state/postgres/index.js';
import { freshDatabase, type FreshDatabase } from '../support/fixtures.js';
import { stateRoleUrl } from '../support/state-role.js';

interface Engine {
  readonly name: string;
  /** A fresh, empty state; `again` opens a second handle on the same state (another process or replica). */
  fresh(): Promise<{ open: () => Promise<StateStore>; again: () => Promise<StateStore> }>;
}

const dirs: string[] = [];
const opened: StateStore[] = [];
const databases: FreshDatabase[] = [];

const ENGINES: readonly Engine[] = [
  {
    name: 'sqlite',
    async fresh() {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-state-'));
      dirs.push(dir);
      const paths = { journal: path.join(dir, 'journal.db'), journalSync: 'full', openJournal: 'now', approvals: path.join(dir, 'approvals.db') } as const;
      return { open: async () => track(openSqliteState(paths)), again: async () => track(openSqliteState(paths)) };
    },
  },
  {
    // Each handle is its own pool, as two replicas would be, logged in as a role that is no superuser.
    name: 'postgres',
    async fresh() {
      const db = await freshDatabase('state_contract');
      databases.push(db);
      const url = await stateRoleUrl(db);
      return {
        open: async () => track(await openPostgresState({ url, purpose: 'serve' })),
        again: async () => track(await openPostgresState({ url, purpose: 'serve' })),
      };
    },
  },
];

function track(state: StateStore): StateStore {
  opened.push(state);
  return state;
}

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});

const T0 = new Date('2030-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const MIN = 60_000;
const TTL = 60 * MIN;

/** The contract's requester is not an approver, and the request has no preview. */
const subject = (overrides: Partial<ApprovalSubject> = {}): ApprovalSubject =>
  approvalSubject({ requester: { subject: 'alice', groups: ['analysts'], kind: 'local', issuer: 'local' }, preview: null, ...overrides });

const bob: ApproverIdentity = { subject: 'bob', groups: ['dba'], kind: 'local' };
const carol: ApproverIdentity = { subject: 'carol', groups: ['dba'], kind: 'local' };

function vote(approver: ApproverIdentity, decision: 'approve' | 'deny' = 'approve', extra: Partial<Vote> = {}): Vote {
  return { approver, decision, via: 'cli', at: T0.toISOString(), ...extra };
}

async function rejection(promise: Promise<unknown>, code: ErrorCode): Promise<DrawbridgeError> {
  const error: unknown = await promise.then(
    () => new Error(`expected ${code}, but it resolved`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DrawbridgeError);
  expect((error as DrawbridgeError).code).toBe(code);
  return error as DrawbridgeError;
}

async function readAll(state: StateStore): Promise<StoredRecord[]> {
  const rows: StoredRecord[] = [];
  for await (const row of state.journal.read()) rows.push(row);
  return rows;
}

describe.each(ENGINES)('state contract: $name', (engine) => {
  describe('journal', () => {
    it('appends in order: seq 1.., each prevHash the previous hash, the hash recomputable; read and head agree', async () => {
      const state = await (await engine.fresh()).open();
      expect(await state.journal.head()).toEqual({ seq: 0, hash: GENESIS_HASH });
      const types: RecordType[] = ['call', 'approval', 'grant', 'outcome'];
      const appended = [];
      for (const [i, type] of types.entries()) appended.push(await state.journal.append(type, `c${i}`, { i, nested: { ok: true } }, at(i)));
      const rows = await readAll(state);
      expect(rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
      let prev = GENESIS_HASH;
      for (const [i, row] of rows.entries()) {
        const record = appended[i]!;
        expect(row).toMatchObject({ seq: record.seq, time: at(i).toISOString(), type: types[i], callId: `c${i}`, prevHash: prev, hash: record.hash });
        expect(JSON.parse(String(row.data))).toEqual({ i, nested: { ok: true } });
        expect(recordHash({ ...record, data: JSON.parse(String(row.data)) as Record<string, unknown> })).toBe(record.hash);
        prev = record.hash;
      }
      expect(await state.journal.head()).toEqual({ seq: 4, hash: prev });
      expect(await verifyStore(state.journal)).toEqual({ ok: true, records: 4, head: prev });
    });

    it('50 concurrent appends from two handles on one state keep one valid chain, each record exactly once', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const records = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? a : b).journal.append('call', `call-${i}`, { i }, at(i), { durable: i % 3 !== 0 })),
      );
      expect(new Set(records.map((r) => r.seq)).size).toBe(50);
      const rows = await readAll(b);
      expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
      expect(rows.map((r) => r.callId).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `call-${i}`).sort());
      const verified = await verifyStore(a.journal);
      expect(verified).toMatchObject({ ok: true, records: 50 });
      expect(await a.journal.head()).toEqual({ seq: 50, hash: verified.head });
    });

    it('appends in flight at once from one handle are chained in the order they were called', async () => {
      const fresh = await engine.fresh();
      const a = await fresh.open();
      const calls = Array.from({ length: 300 }, (_, i) => `call-${i}`);
      const records = await Promise.all(calls.map((id, i) => a.journal.append('call', id, { i }, at(i), { durable: i % 2 === 0 })));
      expect(records.map((r) => r.seq)).toEqual(calls.map((_, i) => i + 1));
      expect((await readAll(a)).map((r) => r.callId)).toEqual(calls);
    });

    it('an append the journal cannot take rejects journal.unavailable without naming where the state lives', async () => {
      const fresh = await engine.fresh();
      const state = await fresh.open();
      await state.close();
      const error = await rejection(state.journal.append('call', 'c1', {}), 'journal.unavailable');
      expect(error.message).not.toMatch(/\.db|\/tmp|drawbridge-state-/);
      await rejection((await fresh.again()).journal.append('call', 'c2', { bad: 1n }), 'journal.unavailable');
    });

    it('probe: resolves while an append could commit, writes nothing; rejects journal.unavailable once the journal is closed', async () => {
      const fresh = await engine.fresh();
      const state = await fresh.open();
      await state.journal.append('call', 'c1', { n: 1 }, T0);
      const before = await state.journal.head();
      await state.journal.probe();
      await (await fresh.again()).journal.probe();
      expect(await state.journal.head()).toEqual(before);
      expect(await readAll(state)).toHaveLength(1);
      await state.close();
      const error = await rejection(state.journal.probe(), 'journal.unavailable');
      expect(error.message).not.toMatch(/\.db|\/tmp|drawbridge-state-/);
    });
  });

  describe('approvals', () => {
    it('openRequest reuses the open request for the same subject; another requester gets their own', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const first = await a.approvals.openRequest(subject(), T0, TTL);
      expect(first).toMatchObject({ created: true, approval: { status: 'pending', expiresAt: at(TTL).toISOString() } });
      expect(await b.approvals.openRequest(subject(), at(1000), TTL)).toMatchObject({ created: false, approval: { id: first.approval.id } });
      const other = await b.approvals.openRequest(subject({ requester: { ...subject().requester, subject: 'erin' } }), at(1000), TTL);
      expect(other.created).toBe(true);
      expect((await a.approvals.list(at(2000))).map((x) => x.id).sort()).toEqual([first.approval.id, other.approval.id].sort());
    });

    it('consume is single-use: of 10 concurrent consumes from two handles exactly one resolves', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const { approval } = await a.approvals.openRequest(subject(), T0, TTL);
      expect((await b.approvals.vote(approval.id, vote(bob), at(1))).status).toBe('approved');
      const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).approvals.consume(approval.id, at(2))));
      const won = settled.filter((s) => s.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const lost of settled.filter((s) => s.status === 'rejected')) {
        expect(lost.reason).toBeInstanceOf(DrawbridgeError);
        expect((lost.reason as DrawbridgeError).code).toBe('approval.not_approved');
      }
      expect(await a.approvals.get(approval.id, at(3))).toMatchObject({ status: 'consumed', consumedAt: at(2).toISOString() });
    });

    it('one vote per approver: a repeat, even concurrent from two handles, is refused and never counted', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const { approval } = await a.approvals.openRequest(subject({ min: 2 }), T0, TTL);
      const settled = await Promise.allSettled([a.approvals.vote(approval.id, vote(bob), at(1)), b.approvals.vote(approval.id, vote(bob), at(1))]);
      expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
      await rejection(a.approvals.vote(approval.id, vote(bob), at(2)), 'approval.duplicate_vote');
      expect(await b.approvals.get(approval.id, at(3))).toMatchObject({ status: 'pending', votes: [{ approver: { subject: 'bob' } }] });
      expect((await b.approvals.vote(approval.id, vote(carol, 'approve', { grantMs: 5 * MIN }), at(4))).status).toBe('approved');
      await rejection(a.approvals.vote(approval.id, vote(bob, 'deny'), at(5)), 'approval.not_pending');
    });

    it('a vote hook that rejects rolls the vote back; one that resolves commits it; other calls wait for it', async () => {
      const state = await (await engine.fresh()).open();
      const { approval } = await state.approvals.openRequest(subject(), T0, TTL);
      const disk = new DrawbridgeError('journal.unavailable', 'disk full');
      const failed = state.approvals.vote(approval.id, vote(bob), at(1), { beforeCommit: async () => Promise.reject(disk) });
      expect(await failed.catch((e: unknown) => e)).toBe(disk);
      expect(await state.approvals.get(approval.id, at(2))).toMatchObject({ status: 'pending', votes: [] });
      let release = (): void => undefined;
      const gate = new Promise<void>((r) => (release = r));
      let hooked = (): void => undefined;
      const inHook = new Promise<void>((r) => (hooked = r));
      const seen: string[] = [];
      const voting = state.approvals.vote(approval.id, vote(bob), at(3), {
        beforeCommit: async (after) => {
          seen.push(`hook ${after.status}`);
          hooked();
          await gate;
        },
      });
      // Read only once the vote is inside its hook (an engine over the network takes round trips to get there).
      await inHook;
      const reading = state.approvals.get(approval.id, at(4)).then((x) => seen.push(`read ${x?.status ?? 'none'}`));
      await new Promise<void>((r) => setImmediate(r));
      expect(seen).toEqual(['hook approved']);
      release();
      await Promise.all([voting, reading]);
      expect(seen).toEqual(['hook approved', 'read approved']);
    });

    it('expiry is decided by the caller clock: pending until expiresAt, then expired and closed to votes', async () => {
      const state = await (await engine.fresh()).open();
      const { approval } = await state.approvals.openRequest(subject(), T0, TTL);
      expect((await state.approvals.get(approval.id, at(TTL - 1)))?.status).toBe('pending');
      expect((await state.approvals.get(approval.id, at(TTL)))?.status).toBe('expired');
      await rejection(state.approvals.vote(approval.id, vote(bob), at(TTL)), 'approval.not_pending');
      expect(await state.approvals.list(at(TTL), { status: 'pending' })).toEqual([]);
      expect((await state.approvals.openRequest(subject(), at(TTL), TTL)).created).toBe(true);
    });

    it('a denial is reported once, after which the same call opens a new request', async () => {
      const state = await (await engine.fresh()).open();
      const { approval } = await state.approvals.openRequest(subject(), T0, TTL);
      await state.approvals.vote(approval.id, vote(bob, 'deny', { reason: 'no' }), at(1));
      expect((await state.approvals.openRequest(subject(), at(2), TTL)).approval.id).toBe(approval.id);
      expect((await state.approvals.reportDenial(approval.id, at(3))).consumedAt).toBe(at(3).toISOString());
      expect((await state.approvals.reportDenial(approval.id, at(4))).consumedAt).toBe(at(3).toISOString());
      expect((await state.approvals.openRequest(subject(), at(5), TTL)).created).toBe(true);
      await rejection(state.approvals.reportDenial('ap_missing000', at(6)), 'approval.not_found');
    });
  });

  describe('counts and decisions (what /metrics reads and counts)', () => {
    const who = { subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' };

    it('counts pending requests and active grants across handles, marking nothing; a decision is reported once, by its handle', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const seen: Record<'a' | 'b', string[]> = { a: [], b: [] };
      const stop = a.approvals.onDecided((d, n) => seen.a.push(`${d}:${n}`));
      b.approvals.onDecided((d, n) => seen.b.push(`${d}:${n}`));
      expect(await b.approvals.counts(T0)).toEqual({ pending: 0, activeGrants: 0 });

      const r1 = (await a.approvals.openRequest(subject(), T0, TTL)).approval;
      const r2 = (await a.approvals.openRequest(subject({ hash: 'e'.repeat(64) }), T0, TTL)).approval;
      await a.approvals.openRequest(subject({ hash: 'f'.repeat(64) }), T0, TTL);
      const r4 = (await b.approvals.openRequest(subject({ hash: 'd'.repeat(64), min: 2 }), T0, TTL)).approval;
      expect(await b.approvals.counts(at(1))).toEqual({ pending: 4, activeGrants: 0 });

      await a.approvals.vote(r1.id, vote(bob, 'approve', { grantMs: 10 * MIN }), at(2));
      await b.approvals.vote(r2.id, vote(bob, 'deny'), at(3));
      // Not deciding (one of two votes), and a vote whose hook fails (rolled back): nothing reported.
      await b.approvals.vote(r4.id, vote(bob), at(4));
      await rejection(
        a.approvals.vote(r4.id, vote(carol), at(5), { beforeCommit: async () => Promise.reject(new DrawbridgeError('journal.unavailable', 'down')) }),
        'journal.unavailable',
      );
      expect(seen).toEqual({ a: ['approved:1'], b: ['denied:1'] });
      await b.approvals.createGrant({ ...who, approvalId: r1.id, grantMs: 10 * MIN }, at(6));
      const inBand = await a.approvals.createGrant({ ...who, approvalId: 'ap_inband0003', grantMs: MIN }, at(6));
      expect(await a.approvals.counts(at(7))).toEqual({ pending: 2, activeGrants: 2 });
      await a.approvals.revokeGrant(inBand.id, 'bob', at(8));
      expect(await b.approvals.counts(at(9))).toEqual({ pending: 2, activeGrants: 1 });

      // Past expiry: counted out at once, marked (and reported) only by the handle whose read marks them.
      expect(await b.approvals.counts(at(TTL))).toEqual({ pending: 0, activeGrants: 0 });
      expect(seen.a.concat(seen.b).filter((e) => e.startsWith('expired'))).toEqual([]);
      // r1 (approved, never used), r3 and r4 (pending) expire; r2 stays denied.
      await a.approvals.list(at(TTL));
      await b.approvals.list(at(TTL + 1));
      expect(seen).toEqual({ a: ['approved:1', 'expired:3'], b: ['denied:1'] });
      const r5 = (await b.approvals.openRequest(subject(), at(TTL + 2), TTL)).approval;
      expect(await b.approvals.get(r5.id, at(2 * TTL + 2))).toMatchObject({ status: 'expired' });
      expect(await a.approvals.get(r5.id, at(2 * TTL + 3))).toMatchObject({ status: 'expired' });
      expect(seen).toEqual({ a: ['approved:1', 'expired:3'], b: ['denied:1', 'expired:1'] });
      stop();
      const r6 = (await a.approvals.openRequest(subject(), at(2 * TTL + 4), TTL)).approval;
      await a.approvals.vote(r6.id, vote(bob), at(2 * TTL + 5));
      expect(seen.a).toEqual(['approved:1', 'expired:3']);
    });
  });

  describe('shared keys', () => {
    it('sharedKey is get-or-create: 10 concurrent first calls from two handles all get one key, kept across handles, apart per name', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      let made = 0;
      const create = (): Uint8Array => {
        made += 1;
        return new Uint8Array(randomBytes(32));
      };
      const keys = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).approvals.sharedKey('request-state-v1', create)));
      const first = Buffer.from(keys[0] ?? new Uint8Array()).toString('hex');
      expect(first).toMatch(/^[0-9a-f]{64}$/);
      for (const key of keys) expect(Buffer.from(key).toString('hex')).toBe(first);
      // Every later caller gets the stored key; create is not asked again.
      const before = made;
      const later = await (
        await fresh.again()
      ).approvals.sharedKey('request-state-v1', () => {
        throw new Error('create must not run once the key exists');
      });
      expect(Buffer.from(later).toString('hex')).toBe(first);
      expect(made).toBe(before);
      const other = await b.approvals.sharedKey('another', () => new Uint8Array(32).fill(7));
      expect(Buffer.from(other).toString('hex')).toBe('07'.repeat(32));
      // Not approvals: a dump carries no key.
      expect(JSON.stringify(await a.approvals.dump())).not.toContain(Buffer.from(keys[0] ?? new Uint8Array()).toString('base64'));
    });
  });

  describe('grants', () => {
    const who = { subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' };

    it('created from an approval, found by its exact principal only, once per approval, revoked everywhere', async () => {
      const fresh = await engine.fresh();
      const [a, b] = [await fresh.open(), await fresh.again()];
      const { approval } = await a.approvals.openRequest(subject(), T0, TTL);
      await a.approvals.vote(approval.id, vote(bob, 'approve', { grantMs: 10 * MIN }), at(0));
      const grant = await a.approvals.createGrant({ ...who, approvalId: approval.id, grantMs: 10 * MIN }, at(1));
      expect(grant).toMatchObject({ ...who, approvalId: approval.id, expiresAt: at(10 * MIN).toISOString(), revokedAt: null });
      await rejection(b.approvals.createGrant({ ...who, approvalId: approval.id, grantMs: MIN }, at(2)), 'approval.not_approved');
      expect((await b.approvals.findGrant(who, at(2)))?.id).toBe(grant.id);
      expect(await b.approvals.findGrant({ ...who, subject: 'erin' }, at(2))).toBeUndefined();
      expect(await b.approvals.findGrant({ ...who, connection: 'other' }, at(2))).toBeUndefined();
      expect((await b.approvals.revokeGrant(grant.id, 'bob', at(3))).revokedBy).toBe('bob');
      expect(await a.approvals.findGrant(who, at(4))).toBeUndefined();
      await rejection(a.approvals.revokeGrant(grant.id, 'bob', at(5)), 'grant.not_found');
      expect((await a.approvals.listGrants(at(6), { active: false })).map((g) => g.id)).toEqual([grant.id]);
    });

    it('dump and load: a loaded store dumps the same (ids, votes, times, grants); load refuses a store that is not empty', async () => {
      const source = await (await engine.fresh()).open();
      const approved = (await source.approvals.openRequest(subject({ min: 2 }), T0, TTL)).approval;
      await source.approvals.vote(approved.id, vote(bob, 'approve', { grantMs: 5 * MIN }), at(1));
      await source.approvals.vote(approved.id, vote(carol, 'approve', { grantMs: 3 * MIN }), at(2));
      const denied = (await source.approvals.openRequest(subject({ hash: 'e'.repeat(64) }), at(3), TTL)).approval;
      await source.approvals.vote(denied.id, vote(bob, 'deny', { reason: 'no' }), at(4));
      await source.approvals.reportDenial(denied.id, at(5));
      const grant = await source.approvals.createGrant({ ...who, approvalId: approved.id, grantMs: 3 * MIN }, at(6));
      await source.approvals.revokeGrant(grant.id, 'carol', at(7));
      await source.approvals.createGrant({ ...who, approvalId: 'ap_inband0002', grantMs: MIN }, at(8));
      const dump = await source.approvals.dump();
      expect(dump.approvals).toHaveLength(2);
      expect(dump.grants).toHaveLength(2);
      const target = await (await engine.fresh()).open();
      await target.approvals.load(dump);
      expect(await target.approvals.dump()).toEqual(dump);
      expect(await target.approvals.get(approved.id, at(9))).toEqual(await source.approvals.get(approved.id, at(9)));
      await rejection(target.approvals.load(dump), 'input.invalid');
    });

    it('expires at expiresAt by the caller clock, and an in-band grant (no stored request) is issued as asked', async () => {
      const state = await (await engine.fresh()).open();
      const grant = await state.approvals.createGrant({ ...who, approvalId: 'ap_inband0001', grantMs: 5 * MIN }, T0);
      expect((await state.approvals.findGrant(who, at(5 * MIN - 1)))?.id).toBe(grant.id);
      expect(await state.approvals.findGrant(who, at(5 * MIN))).toBeUndefined();
      expect(await state.approvals.listGrants(at(5 * MIN), { active: true })).toEqual([]);
    });
  });
});
