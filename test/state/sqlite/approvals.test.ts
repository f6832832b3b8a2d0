// The SQLite engine's approval store (src/state/sqlite/approvals.ts, synchronous, under the
// async contract): opening and reusing requests, every rule of vote(), expiry by the caller's
// clock, consume exactly once, two handles on one file, grants and fail-closed errors.

import { approvalSubject } from '../../support/approvals.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApproverIdentity, Vote } from '../../../src/approval/approver.js';
import { openSqliteApprovals as openApprovalStore, type SqliteApprovals as ApprovalStore } from '../../../src/state/sqlite/approvals.js';
import { DrawbridgeError, type ErrorCode } from '../../../src/errors.js';

const dirs: string[] = [];
const stores: ApprovalStore[] = [];

function tempFile(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-approvals-'));
  dirs.push(dir);
  return path.join(dir, 'nested', 'approvals.db');
}

function open(file = tempFile(), options?: Parameters<typeof openApprovalStore>[1]): ApprovalStore {
  const store = openApprovalStore(file, options);
  stores.push(store);
  return store;
}

afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const T0 = new Date('2030-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const MIN = 60_000;
const HOUR = 60 * MIN;
const TTL = 24 * HOUR;

const subject = approvalSubject;

const bob: ApproverIdentity = { subject: 'bob', groups: ['dba'], kind: 'local' };
const carol: ApproverIdentity = { subject: 'carol', groups: ['sre', 'dba'], kind: 'local' };
const dave: ApproverIdentity = { subject: 'dave', groups: ['support'], kind: 'local' };
const alice: ApproverIdentity = { subject: 'alice', groups: ['analysts', 'dba'], kind: 'local' };

function vote(approver: ApproverIdentity, decision: 'approve' | 'deny' = 'approve', extra: Partial<Vote> = {}): Vote {
  return { approver, decision, via: 'cli', at: T0.toISOString(), ...extra };
}

function expectCode(fn: () => unknown, code: ErrorCode): DrawbridgeError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe(code);
    return error as DrawbridgeError;
  }
  throw new Error(`expected ${code} to be thrown`);
}

describe('openRequest', () => {
  it('creates a pending request with an unguessable ap_ id and the ttl as absolute expiry', () => {
    const store = open();
    const { approval, created } = store.openRequest(subject(), T0, TTL);
    expect(created).toBe(true);
    expect(approval.id).toMatch(/^ap_[a-z0-9]{10}$/);
    expect(approval).toMatchObject({
      status: 'pending',
      votes: [],
      createdAt: T0.toISOString(),
      expiresAt: at(TTL).toISOString(),
      decidedAt: null,
      consumedAt: null,
      grantMs: null,
    });
    expect(approval.hash).toBe(subject().hash);
    expect(approval.subject).toEqual(subject());
    expect(Object.isFrozen(approval) && Object.isFrozen(approval.subject)).toBe(true);
    const ids = new Set(Array.from({ length: 50 }, (_, i) => store.openRequest(subject({ input: { sql: `SELECT ${i}` } }), T0, TTL).approval.id));
    expect(ids.size).toBe(50);
  });

  it('reuses the open request for the same hash and requester, and not across requesters, inputs or rule settings', () => {
    const store = open();
    const first = store.openRequest(subject(), T0, TTL).approval;
    const again = store.openRequest(subject({ callId: 'call-2' }), at(MIN), TTL);
    expect(again.created).toBe(false);
    expect(again.approval.id).toBe(first.id);
    expect(again.approval.subject.callId).toBe('call-1');
    expect(store.openRequest(subject({ requester: { ...subject().requester, subject: 'mallory' } }), T0, TTL).created).toBe(true);
    expect(store.openRequest(subject({ requester: { ...subject().requester, issuer: 'https://idp.example' } }), T0, TTL).created).toBe(true);
    expect(store.openRequest(subject({ input: { sql: 'DELETE FROM orders WHERE id <= 11' } }), T0, TTL).created).toBe(true);
    // A policy change (e.g. min raised to 2) does not inherit a request opened under the old rule.
    expect(store.openRequest(subject({ min: 2 }), T0, TTL).created).toBe(true);
    expect(store.openRequest(subject({ approverGroups: ['sre'] }), T0, TTL).created).toBe(true);
  });

  it('reuses an approved-not-consumed request and an unreported denial, but not a consumed, reported or expired one', () => {
    const store = open();
    const a = store.openRequest(subject(), T0, TTL).approval;
    store.vote(a.id, vote(bob), at(1));
    expect(store.openRequest(subject(), at(2), TTL).approval).toMatchObject({ id: a.id, status: 'approved' });
    store.consume(a.id, at(3));
    const b = store.openRequest(subject(), at(4), TTL);
    expect(b.created).toBe(true);
    store.vote(b.approval.id, vote(bob, 'deny', { reason: 'no' }), at(5));
    // The requester's next identical call is told the denial…
    expect(store.openRequest(subject({ callId: 'call-2' }), at(5), TTL)).toMatchObject({
      created: false,
      approval: { id: b.approval.id, status: 'denied', consumedAt: null },
    });
    expect(store.reportDenial(b.approval.id, at(5))).toMatchObject({ status: 'denied', consumedAt: at(5).toISOString() });
    // …once: then a new request is opened.
    const c = store.openRequest(subject(), at(6), TTL);
    expect(c.created).toBe(true);
    const d = store.openRequest(subject(), at(6 + TTL), TTL);
    expect(d.created).toBe(true);
    expect(store.get(c.approval.id, at(6 + TTL))?.status).toBe('expired');
  });
});

describe('reportDenial', () => {
  it('stamps a denied request once (idempotent) and refuses anything not denied', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expectCode(() => store.reportDenial(id, at(1)), 'approval.not_approved');
    expectCode(() => store.reportDenial('ap_nosuchthing', at(1)), 'approval.not_found');
    store.vote(id, vote(bob, 'deny', { reason: 'no' }), at(2));
    expect(store.reportDenial(id, at(3)).consumedAt).toBe(at(3).toISOString());
    expect(store.reportDenial(id, at(4)).consumedAt).toBe(at(3).toISOString());
    expect(store.get(id, at(5))).toMatchObject({ status: 'denied', consumedAt: at(3).toISOString() });
  });

  it('an unreported denial is not reused after the request would have expired', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, HOUR).approval;
    store.vote(id, vote(bob, 'deny', { reason: 'no' }), at(1));
    expect(store.openRequest(subject(), at(HOUR - 1), TTL).approval.id).toBe(id);
    const later = store.openRequest(subject(), at(HOUR), TTL);
    expect(later.created).toBe(true);
    expect(later.approval.id).not.toBe(id);
  });
});

describe('vote', () => {
  it('one approver from the groups approves (min 1), with the grant they chose', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    const after = store.vote(id, vote(bob, 'approve', { grantMs: 5 * MIN, reason: 'ok' }), at(MIN));
    expect(after).toMatchObject({ status: 'approved', decidedAt: at(MIN).toISOString(), grantMs: 5 * MIN });
    expect(after.votes).toEqual([vote(bob, 'approve', { grantMs: 5 * MIN, reason: 'ok' })]);
    expect(store.get(id, at(MIN))).toEqual(after);
  });

  it('refuses approvers outside the rule groups', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    const e = expectCode(() => store.vote(id, vote(dave), T0), 'approval.forbidden');
    expect(e.message).toMatch(/dave is not in the approver groups of rule writes-need-approval \(dba\)/);
    expectCode(() => store.vote(id, vote(dave, 'deny', { reason: 'x' }), T0), 'approval.forbidden');
    expect(store.get(id, T0)).toMatchObject({ status: 'pending', votes: [] });
  });

  it('refuses self-approval (and self-denial) even when the requester is in the groups, unless allowRequester', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expectCode(() => store.vote(id, vote(alice), T0), 'approval.forbidden');
    // Whatever groups or kind the requester presents.
    expectCode(() => store.vote(id, vote({ subject: 'alice', groups: ['dba'], kind: 'oidc' }), T0), 'approval.forbidden');
    expectCode(() => store.vote(id, vote(alice, 'deny'), T0), 'approval.forbidden');
    expect(store.get(id, T0)?.status).toBe('pending');

    const allowed = store.openRequest(subject({ allowRequester: true, approverGroups: [] }), T0, TTL).approval;
    expect(store.vote(allowed.id, vote({ subject: 'alice', groups: [], kind: 'local' }, 'approve', { via: 'elicitation' }), T0).status).toBe('approved');
    // With allowRequester and no groups, nobody else may vote.
    const other = store.openRequest(subject({ allowRequester: true, approverGroups: [], input: { sql: 'DELETE FROM orders' } }), T0, TTL).approval;
    expectCode(() => store.vote(other.id, vote(bob), T0), 'approval.forbidden');
  });

  it('one vote per approver: a second vote, even the opposite one, is refused', () => {
    const store = open();
    const { id } = store.openRequest(subject({ min: 2 }), T0, TTL).approval;
    store.vote(id, vote(bob), T0);
    expectCode(() => store.vote(id, vote(bob), at(1)), 'approval.duplicate_vote');
    // Same subject with other groups is the same approver.
    expectCode(() => store.vote(id, vote({ subject: 'bob', groups: ['dba', 'sre'], kind: 'oidc' }), at(1)), 'approval.duplicate_vote');
    expectCode(() => store.vote(id, vote(bob, 'deny', { reason: 'changed my mind' }), at(2)), 'approval.duplicate_vote');
    expect(store.get(id, at(2))).toMatchObject({ status: 'pending' });
    expect(store.get(id, at(2))?.votes).toHaveLength(1);
  });

  it('min 2 needs two DISTINCT approvers; the grant is the smaller choice, bounded by the rule', () => {
    const store = open();
    const { id } = store.openRequest(subject({ min: 2 }), T0, TTL).approval;
    expect(store.vote(id, vote(bob, 'approve', { grantMs: 15 * MIN }), at(1))).toMatchObject({ status: 'pending', decidedAt: null, grantMs: null });
    const after = store.vote(id, vote(carol, 'approve', { grantMs: 5 * MIN }), at(2));
    expect(after).toMatchObject({ status: 'approved', decidedAt: at(2).toISOString(), grantMs: 5 * MIN });
    expect(after.votes.map((v) => v.approver.subject)).toEqual(['bob', 'carol']);

    // One approver choosing no grant makes the approval this call only.
    const b = store.openRequest(subject({ min: 2, input: { sql: 'DELETE FROM orders' } }), T0, TTL).approval;
    store.vote(b.id, vote(bob, 'approve', { grantMs: 15 * MIN }), at(1));
    expect(store.vote(b.id, vote(carol), at(2))).toMatchObject({ status: 'approved', grantMs: 0 });

    // With allowRequester the requester counts as one of the min.
    const c = store.openRequest(subject({ min: 2, allowRequester: true, input: { sql: 'DELETE FROM customers' } }), T0, TTL).approval;
    expect(store.vote(c.id, vote(alice), at(1)).status).toBe('pending');
    expect(store.vote(c.id, vote(bob), at(2)).status).toBe('approved');
  });

  it('a rule without a grant approves with grantMs null and refuses a vote choosing one', () => {
    const store = open();
    const { id } = store.openRequest(subject({ maxGrantMs: null }), T0, TTL).approval;
    const e = expectCode(() => store.vote(id, vote(bob, 'approve', { grantMs: MIN }), T0), 'input.invalid');
    expect(e.hint).toMatch(/without a grant/);
    expect(store.vote(id, vote(bob, 'approve', { grantMs: 0 }), T0)).toMatchObject({ status: 'approved', grantMs: null });
  });

  it('refuses a grant longer than the rule allows, or not a whole non-negative number', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expectCode(() => store.vote(id, vote(bob, 'approve', { grantMs: 15 * MIN + 1 }), T0), 'input.invalid');
    expectCode(() => store.vote(id, vote(bob, 'approve', { grantMs: -1 }), T0), 'input.invalid');
    expectCode(() => store.vote(id, vote(bob, 'approve', { grantMs: 1.5 }), T0), 'input.invalid');
    expect(store.get(id, T0)?.votes).toEqual([]);
    expect(store.vote(id, vote(bob, 'approve', { grantMs: 15 * MIN }), T0).grantMs).toBe(15 * MIN);
  });

  it('any deny wins: the request is denied at once, even after an approve vote', () => {
    const store = open();
    const { id } = store.openRequest(subject({ min: 2 }), T0, TTL).approval;
    store.vote(id, vote(bob), at(1));
    const after = store.vote(id, vote(carol, 'deny', { reason: 'not on a Friday', grantMs: 5 * MIN }), at(2));
    expect(after).toMatchObject({ status: 'denied', decidedAt: at(2).toISOString(), grantMs: null });
    expect(after.votes[1]).toEqual({ approver: carol, decision: 'deny', via: 'cli', reason: 'not on a Friday', at: T0.toISOString() });
    expectCode(() => store.consume(id, at(3)), 'approval.not_approved');
  });

  it('a decided request takes no more votes', () => {
    const store = open();
    const a = store.openRequest(subject(), T0, TTL).approval;
    store.vote(a.id, vote(bob), T0);
    expect(expectCode(() => store.vote(a.id, vote(carol), T0), 'approval.not_pending').message).toMatch(/is approved/);
    const b = store.openRequest(subject({ input: { sql: 'DELETE FROM orders' } }), T0, TTL).approval;
    store.vote(b.id, vote(bob, 'deny'), T0);
    expectCode(() => store.vote(b.id, vote(carol), T0), 'approval.not_pending');
  });

  it('unknown ids are approval.not_found', () => {
    const store = open();
    expectCode(() => store.vote('ap_doesnotexi', vote(bob), T0), 'approval.not_found');
    expectCode(() => store.consume('ap_doesnotexi', T0), 'approval.not_found');
    expect(store.get('ap_doesnotexi', T0)).toBeUndefined();
  });

  it('a beforeCommit hook sees the new state; if it throws, the vote is rolled back', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    let seen: string | undefined;
    expect(() =>
      store.vote(id, vote(bob), T0, {
        beforeCommit: (after) => {
          seen = after.status;
          throw new DrawbridgeError('journal.unavailable', 'disk full');
        },
      }),
    ).toThrow(/disk full/);
    expect(seen).toBe('approved');
    expect(store.get(id, T0)).toMatchObject({ status: 'pending', votes: [] });
    // Bob can still vote afterwards: nothing of the failed attempt was kept.
    expect(store.vote(id, vote(bob), T0).status).toBe('approved');
  });
});

describe('expiry (by the caller clock)', () => {
  it('a pending request expires at expiresAt exactly: get marks it, vote refuses it', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expect(store.get(id, at(TTL - 1))?.status).toBe('pending');
    expect(store.get(id, at(TTL))?.status).toBe('expired');
    // Marked in the file: still expired when asked with an earlier clock.
    expect(store.get(id, T0)?.status).toBe('expired');
    expect(expectCode(() => store.vote(id, vote(bob), T0), 'approval.not_pending').message).toMatch(/expired/);
  });

  it('vote marks an expired request expired even though it refuses', () => {
    const file = tempFile();
    const store = open(file);
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expectCode(() => store.vote(id, vote(bob), at(TTL + 1)), 'approval.not_pending');
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.prepare('SELECT status FROM approvals WHERE id = ?').pluck().get(id)).toBe('expired');
    } finally {
      raw.close();
    }
  });

  it('an approved request not consumed by expiresAt expires and cannot be consumed', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    store.vote(id, vote(bob), at(MIN));
    expect(expectCode(() => store.consume(id, at(TTL)), 'approval.not_approved').message).toMatch(/is expired/);
    expect(store.get(id, at(TTL))).toMatchObject({ status: 'expired', decidedAt: at(MIN).toISOString(), consumedAt: null });
  });

  it('list marks expired ones and filters by status', () => {
    const store = open();
    const a = store.openRequest(subject(), T0, HOUR).approval;
    const b = store.openRequest(subject({ input: { sql: 'DELETE FROM orders' } }), at(1), TTL).approval;
    const c = store.openRequest(subject({ input: { sql: 'DELETE FROM customers' } }), at(2), TTL).approval;
    store.vote(c.id, vote(bob, 'deny'), at(3));
    expect(store.list(at(HOUR - 1), { status: 'pending' }).map((x) => x.id)).toEqual([b.id, a.id]);
    expect(store.list(at(HOUR), { status: 'pending' }).map((x) => x.id)).toEqual([b.id]);
    expect(store.list(at(HOUR), { status: 'expired' }).map((x) => x.id)).toEqual([a.id]);
    expect(store.list(at(HOUR)).map((x) => [x.id, x.status])).toEqual([
      [c.id, 'denied'],
      [b.id, 'pending'],
      [a.id, 'expired'],
    ]);
  });
});

describe('consume', () => {
  it('approved → consumed exactly once', () => {
    const store = open();
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    expectCode(() => store.consume(id, T0), 'approval.not_approved');
    store.vote(id, vote(bob, 'approve', { grantMs: 15 * MIN }), at(1));
    const consumed = store.consume(id, at(2));
    expect(consumed).toMatchObject({ id, status: 'consumed', consumedAt: at(2).toISOString(), grantMs: 15 * MIN });
    expect(expectCode(() => store.consume(id, at(3)), 'approval.not_approved').message).toMatch(/already used/);
    expect(store.get(id, at(3))?.status).toBe('consumed');
  });
});

describe('two handles on one file (gateway and CLI processes)', () => {
  it('see each other at once and interleave safely', () => {
    const file = tempFile();
    const gateway = open(file);
    const cli = open(file);
    const { approval } = gateway.openRequest(subject({ min: 2 }), T0, TTL);
    expect(cli.openRequest(subject({ min: 2, callId: 'other' }), T0, TTL)).toMatchObject({ created: false, approval: { id: approval.id } });
    expect(cli.list(T0).map((a) => a.id)).toEqual([approval.id]);
    cli.vote(approval.id, vote(bob, 'approve', { grantMs: MIN }), at(1));
    expectCode(() => gateway.vote(approval.id, vote(bob), at(2)), 'approval.duplicate_vote');
    expect(gateway.get(approval.id, at(2))?.status).toBe('pending');
    gateway.vote(approval.id, vote(carol, 'approve', { grantMs: 5 * MIN }), at(3));
    expect(cli.get(approval.id, at(3))?.status).toBe('approved');
    // Exactly once across handles.
    cli.consume(approval.id, at(4));
    expectCode(() => gateway.consume(approval.id, at(5)), 'approval.not_approved');
    const grant = gateway.createGrant(
      { subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval', approvalId: approval.id, grantMs: MIN },
      at(5),
    );
    expect(cli.findGrant({ subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' }, at(6))?.id).toBe(grant.id);
    cli.revokeGrant(grant.id, 'bob', at(7));
    expect(gateway.findGrant({ subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' }, at(8))).toBeUndefined();
  });

  it('fails closed with approval.store_unavailable while another process holds the write lock', () => {
    const file = tempFile();
    const store = open(file, { busyTimeoutMs: 50 });
    const { id } = store.openRequest(subject(), T0, TTL).approval;
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      const e = expectCode(() => store.vote(id, vote(bob), T0), 'approval.store_unavailable');
      expect(e.message).toContain(file);
      expectCode(() => store.openRequest(subject({ input: { sql: 'x' } }), T0, TTL), 'approval.store_unavailable');
      // Reads still work under WAL.
      expect(store.get(id, T0)?.status).toBe('pending');
      other.exec('ROLLBACK');
    } finally {
      other.close();
    }
    expect(store.vote(id, vote(bob), T0).status).toBe('approved');
  });
});

describe('opening', () => {
  it('creates the directory, uses WAL, and refuses a file that is not a store', () => {
    const file = tempFile();
    open(file).close();
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
    const junk = path.join(path.dirname(file), 'junk.db');
    fs.writeFileSync(junk, 'this is not sqlite, just some text that is long enough to fill a header......................................................');
    expectCode(() => openApprovalStore(junk), 'approval.store_unavailable');
    const dir = path.dirname(file);
    expectCode(() => openApprovalStore(dir), 'approval.store_unavailable');
  });

  it('a closed store refuses with store_unavailable', () => {
    const store = openApprovalStore(tempFile());
    store.close();
    expectCode(() => store.list(T0), 'approval.store_unavailable');
  });
});

describe('grants', () => {
  const principal = { subject: 'alice', issuer: 'local', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' };

  function approved(store: ApprovalStore, grantMs = 15 * MIN, sql = 'DELETE FROM orders WHERE id <= 10'): string {
    const { id } = store.openRequest(subject({ input: { sql } }), T0, TTL).approval;
    store.vote(id, vote(bob, 'approve', { grantMs }), T0);
    return id;
  }

  it('creates a gr_ grant expiring grantMs later, found for exactly the same principal, tool, connection and rule', () => {
    const store = open();
    const approvalId = approved(store);
    const grant = store.createGrant({ ...principal, approvalId, grantMs: 15 * MIN }, T0);
    expect(grant).toEqual({
      id: grant.id,
      ...principal,
      approvalId,
      createdAt: T0.toISOString(),
      expiresAt: at(15 * MIN).toISOString(),
      revokedAt: null,
      revokedBy: null,
    });
    expect(grant.id).toMatch(/^gr_[a-z0-9]{10}$/);
    expect(store.findGrant(principal, at(MIN))).toEqual(grant);
    for (const other of [{ subject: 'alicia' }, { issuer: 'https://idp.example' }, { tool: 'other' }, { connection: 'prod' }, { rule: 'read' }]) {
      expect(store.findGrant({ ...principal, ...other }, at(MIN))).toBeUndefined();
    }
  });

  it('expiry boundary: valid until just before expiresAt, expired at expiresAt', () => {
    const store = open();
    const grant = store.createGrant({ ...principal, approvalId: 'ap_inband0001', grantMs: 15 * MIN }, T0);
    expect(store.findGrant(principal, at(15 * MIN - 1))?.id).toBe(grant.id);
    expect(store.findGrant(principal, at(15 * MIN))).toBeUndefined();
    expect(store.listGrants(at(15 * MIN), { active: true })).toEqual([]);
    expect(store.listGrants(at(15 * MIN), { active: false }).map((g) => g.id)).toEqual([grant.id]);
    expect(store.listGrants(at(15 * MIN - 1), { active: true }).map((g) => g.id)).toEqual([grant.id]);
  });

  it('finds the grant expiring last among several', () => {
    const store = open();
    const short = store.createGrant({ ...principal, approvalId: 'ap_inband0001', grantMs: 5 * MIN }, T0);
    const long = store.createGrant({ ...principal, approvalId: 'ap_inband0002', grantMs: 60 * MIN }, T0);
    const middle = store.createGrant({ ...principal, approvalId: 'ap_inband0003', grantMs: 10 * MIN }, T0);
    expect(store.findGrant(principal, at(MIN))?.id).toBe(long.id);
    store.revokeGrant(long.id, 'bob', at(MIN));
    expect(store.findGrant(principal, at(2 * MIN))?.id).toBe(middle.id);
    store.revokeGrant(middle.id, 'bob', at(2 * MIN));
    expect(store.findGrant(principal, at(3 * MIN))?.id).toBe(short.id);
    expect(store.findGrant(principal, at(5 * MIN))).toBeUndefined();
  });

  it('revoke: the grant stops at once; a second revoke or an unknown id is grant.not_found', () => {
    const store = open();
    const grant = store.createGrant({ ...principal, approvalId: 'ap_inband0001', grantMs: HOUR }, T0);
    const revoked = store.revokeGrant(grant.id, 'carol', at(MIN));
    expect(revoked).toMatchObject({ id: grant.id, revokedAt: at(MIN).toISOString(), revokedBy: 'carol', expiresAt: grant.expiresAt });
    expect(store.findGrant(principal, at(MIN))).toBeUndefined();
    expect(expectCode(() => store.revokeGrant(grant.id, 'bob', at(2 * MIN)), 'grant.not_found').message).toMatch(/already revoked .* by carol/);
    expectCode(() => store.revokeGrant('gr_nonexisten', 'bob', T0), 'grant.not_found');
    expect(store.listGrants(at(2 * MIN)).map((g) => g.revokedBy)).toEqual(['carol']);
    expect(store.listGrants(at(2 * MIN), { active: true })).toEqual([]);
  });

  it('an out-of-band approval must back its grant: approved, same principal, within its grant, once', () => {
    const store = open();
    const pending = store.openRequest(subject({ input: { sql: 'DELETE FROM x' } }), T0, TTL).approval.id;
    expectCode(() => store.createGrant({ ...principal, approvalId: pending, grantMs: MIN }, T0), 'approval.not_approved');
    const id = approved(store, 5 * MIN);
    expectCode(() => store.createGrant({ ...principal, approvalId: id, grantMs: 5 * MIN + 1 }, T0), 'approval.not_approved');
    expectCode(() => store.createGrant({ ...principal, subject: 'mallory', approvalId: id, grantMs: MIN }, T0), 'approval.not_approved');
    expectCode(() => store.createGrant({ ...principal, rule: 'read', approvalId: id, grantMs: MIN }, T0), 'approval.not_approved');
    store.consume(id, at(MIN));
    const grant = store.createGrant({ ...principal, approvalId: id, grantMs: 5 * MIN }, at(MIN));
    // Counted from the decision (T0), not from when the grant is issued.
    expect(grant.expiresAt).toBe(at(5 * MIN).toISOString());
    expect(expectCode(() => store.createGrant({ ...principal, approvalId: id, grantMs: MIN }, at(MIN)), 'approval.not_approved').message).toMatch(
      /already issued grant/,
    );
    // An approval without a grant issues none.
    const none = approved(store, 0, 'DELETE FROM y');
    expectCode(() => store.createGrant({ ...principal, approvalId: none, grantMs: MIN }, T0), 'approval.not_approved');
  });
});
