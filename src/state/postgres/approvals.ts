// The PostgreSQL engine's approvals store: requests, votes and grants in drawbridge.approvals,
// .votes and .grants, shared by every replica and CLI. Every change is one transaction that
// first locks what it reads (SELECT … FOR UPDATE, or a transaction-scoped advisory lock for
// a row that may not exist yet), so the rules of state/approval-rules.ts are checked and
// applied atomically; single use is the database's conditional UPDATE, not memory. Every
// change of a request announces itself with pg_notify in the same transaction (notify.ts).

import type pg from 'pg';
import type { ApprovalSubject, Vote } from '../../approval/approver.js';
import { DrawbridgeError } from '../../errors.js';
import {
  checkVote,
  decide,
  decidedBy,
  decisionListeners,
  grantBacking,
  iso,
  isoOrNull,
  isRefusal,
  millis,
  newId,
  notFound,
  policyKey,
  refuse,
  toGrant,
  withoutGrant,
  type ApprovalRow,
  type GrantRow,
  type Refusal,
} from '../approval-rules.js';
import { deepFreeze } from '../records.js';
import type { ApprovalsDump, ApprovalStore, GrantInput, GrantQuery, StoredApproval, VoteHooks } from '../contract.js';
import { begin, fault, type Secrets } from './faults.js';
import { LOCK_SPACE, SCHEMA } from './migrations.js';
import { CHANNEL, type Listener } from './notify.js';

const A = `${SCHEMA}.approvals`;
const V = `${SCHEMA}.votes`;
const G = `${SCHEMA}.grants`;
const S = `${SCHEMA}.shared_keys`;
/** Advisory lock (second key) serialising openRequest for one requester and hash, and createGrant for one approval. */
const OPEN_LOCK = 3;
const GRANT_LOCK = 4;

type Tx = pg.PoolClient;

/** The vote hook's own failure, carried through tx() unchanged (the caller rethrows exactly what its hook threw). */
class HookFailure {
  constructor(readonly error: unknown) {}
}

/** Requests a transaction marked expired, reported once it commits. */
interface Marked {
  expired: number;
}

export function pgApprovals(pool: pg.Pool, secrets: Secrets, listen: Listener): ApprovalStore {
  let closed = false;
  const decided = decisionListeners();

  /** Runs `body` in one transaction: a Refusal commits what was done before it, then throws; a failure rolls back. */
  async function tx<T>(what: string, body: (c: Tx, marked: Marked) => Promise<T | Refusal>): Promise<T> {
    if (closed) throw new DrawbridgeError('approval.store_unavailable', 'The approvals store is closed.');
    let client: Tx;
    try {
      ({ client } = await begin(pool, 'BEGIN ISOLATION LEVEL READ COMMITTED'));
    } catch (cause) {
      throw fault('approval.store_unavailable', `Cannot ${what} in the approvals store`, cause, secrets);
    }
    let broken: Error | undefined;
    const marked: Marked = { expired: 0 };
    try {
      const result = await body(client, marked);
      await client.query('COMMIT');
      // Committed (a refusal commits too): what it marked expired is this handle's to report.
      decided.emit('expired', marked.expired);
      if (isRefusal(result)) throw result.refusal;
      return result;
    } catch (error) {
      if (error instanceof HookFailure) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error.error;
      }
      if (!(error instanceof DrawbridgeError) && !(error instanceof TypeError)) broken = error instanceof Error ? error : new Error(String(error));
      await client.query('ROLLBACK').catch(() => undefined);
      if ((error as { code?: unknown }).code === '23505') throw duplicate(error);
      throw fault('approval.store_unavailable', `Cannot ${what} in the approvals store`, error, secrets);
    } finally {
      client.release(broken);
    }
  }

  async function row(c: Tx, id: string, lock: '' | 'FOR UPDATE' | 'FOR SHARE'): Promise<ApprovalRow | undefined> {
    return (await c.query<ApprovalRow>(`SELECT * FROM ${A} WHERE id = $1 ${lock}`, [id])).rows[0];
  }

  async function toApprovals(c: Tx, rows: readonly ApprovalRow[]): Promise<StoredApproval[]> {
    if (rows.length === 0) return [];
    const votes = await c.query<{ approval_id: string; vote: string }>(
      `SELECT approval_id, vote FROM ${V} WHERE approval_id = ANY($1) ORDER BY approval_id, seq`,
      [rows.map((r) => r.id)],
    );
    const byId = new Map<string, Vote[]>();
    for (const v of votes.rows) {
      const list = byId.get(v.approval_id) ?? [];
      list.push(JSON.parse(v.vote) as Vote);
      byId.set(v.approval_id, list);
    }
    return rows.map((r) =>
      deepFreeze({
        id: r.id,
        hash: r.hash,
        status: r.status,
        subject: JSON.parse(r.subject) as ApprovalSubject,
        votes: byId.get(r.id) ?? [],
        createdAt: iso(r.created_ms),
        expiresAt: iso(r.expires_ms),
        decidedAt: isoOrNull(r.decided_ms),
        consumedAt: isoOrNull(r.consumed_ms),
        grantMs: r.grant_ms,
      }),
    );
  }

  async function load(c: Tx, id: string, lock: '' | 'FOR UPDATE' | 'FOR SHARE' = ''): Promise<StoredApproval | undefined> {
    const r = await row(c, id, lock);
    return r === undefined ? undefined : (await toApprovals(c, [r]))[0];
  }

  const expireOne = async (c: Tx, marked: Marked, id: string, at: number): Promise<void> => {
    const r = await c.query(`UPDATE ${A} SET status = 'expired' WHERE id = $1 AND status IN ('pending', 'approved') AND expires_ms <= $2`, [id, at]);
    marked.expired += r.rowCount ?? 0;
  };
  const announce = (c: Tx, id: string) => c.query('SELECT pg_notify($1, $2)', [CHANNEL, id]);

  async function freshId(c: Tx, prefix: 'ap_' | 'gr_'): Promise<string> {
    for (;;) {
      const id = newId(prefix);
      const taken = await c.query(`SELECT 1 FROM ${A} WHERE id = $1 UNION ALL SELECT 1 FROM ${G} WHERE id = $1`, [id]);
      if (taken.rowCount === 0) return id;
    }
  }

  return {
    openRequest(subject, now, ttlMs) {
      const at = millis(now);
      if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new TypeError('ttlMs must be a positive integer');
      return tx('open a request', async (c) => {
        const key = [subject.hash, subject.requester.subject, subject.requester.issuer, policyKey(subject)] as const;
        // Two replicas opening the same request at once must not both create one.
        await c.query(`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, hashtext($1))`, [JSON.stringify([OPEN_LOCK, ...key])]);
        const open = await c.query<ApprovalRow>(
          `SELECT * FROM ${A}
           WHERE hash = $1 AND requester_subject = $2 AND requester_issuer = $3 AND policy_key = $4
             AND (status IN ('pending', 'approved') OR (status = 'denied' AND consumed_ms IS NULL)) AND expires_ms > $5
           ORDER BY (status = 'denied') DESC, (status = 'approved') DESC, created_ms DESC LIMIT 1`,
          [...key, at],
        );
        const found = open.rows[0];
        if (found !== undefined) return { approval: (await toApprovals(c, [found]))[0] as StoredApproval, created: false };
        const id = await freshId(c, 'ap_');
        await c.query(
          `INSERT INTO ${A} (id, hash, requester_subject, requester_issuer, policy_key, status, subject, created_ms, expires_ms)
           VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)`,
          [id, ...key, JSON.stringify(subject), at, at + ttlMs],
        );
        return { approval: (await load(c, id)) as StoredApproval, created: true };
      });
    },

    get(id, now) {
      const at = millis(now);
      // FOR SHARE waits for a vote in progress (its hook may still roll it back) and reads what it committed.
      return tx('read a request', async (c, marked) => {
        await expireOne(c, marked, id, at);
        return load(c, id, 'FOR SHARE');
      });
    },

    list(now, filter = {}) {
      const at = millis(now);
      return tx('list requests', async (c, marked) => {
        const r = await c.query(`UPDATE ${A} SET status = 'expired' WHERE status IN ('pending', 'approved') AND expires_ms <= $1`, [at]);
        marked.expired += r.rowCount ?? 0;
        const rows =
          filter.status === undefined
            ? await c.query<ApprovalRow>(`SELECT * FROM ${A} ORDER BY created_ms DESC, id`)
            : await c.query<ApprovalRow>(`SELECT * FROM ${A} WHERE status = $1 ORDER BY created_ms DESC, id`, [filter.status]);
        return toApprovals(c, rows.rows);
      });
    },

    vote(id: string, vote: Vote, now: Date, hooks: VoteHooks = {}) {
      const at = millis(now);
      return tx('record a vote', async (c, marked) => {
        await expireOne(c, marked, id, at);
        const before = await load(c, id, 'FOR UPDATE');
        if (before === undefined) return refuse(notFound(id));
        const refusal = checkVote(before, vote);
        if (refusal) return refuse(refusal);
        const recorded: Vote = vote.decision === 'deny' ? withoutGrant(vote) : vote;
        await c.query(`INSERT INTO ${V} (approval_id, seq, approver_subject, vote) VALUES ($1, $2, $3, $4)`, [
          id,
          before.votes.length + 1,
          vote.approver.subject,
          JSON.stringify(recorded),
        ]);
        const outcome = decide(before.subject, [...before.votes, recorded]);
        if (outcome.status !== 'pending') {
          await c.query(`UPDATE ${A} SET status = $1, decided_ms = $2, grant_ms = $3 WHERE id = $4 AND status = 'pending'`, [
            outcome.status,
            at,
            outcome.grantMs,
            id,
          ]);
        }
        await announce(c, id);
        const after = (await load(c, id)) as StoredApproval;
        // Inside the open transaction, the row still locked: if the hook rejects, tx() rolls the vote back.
        if (hooks.beforeCommit) await hooks.beforeCommit(after).catch((error: unknown) => Promise.reject(new HookFailure(error)));
        return after;
      }).then(decidedBy(decided));
    },

    consume(id, now) {
      const at = millis(now);
      return tx('consume an approval', async (c, marked) => {
        await expireOne(c, marked, id, at);
        // The conditional UPDATE is the single use: of concurrent consumes, one finds the row approved.
        const won = await c.query(`UPDATE ${A} SET status = 'consumed', consumed_ms = $1 WHERE id = $2 AND status = 'approved' RETURNING id`, [at, id]);
        if (won.rowCount === 1) {
          await announce(c, id);
          return (await load(c, id)) as StoredApproval;
        }
        const r = await row(c, id, '');
        if (r === undefined) return refuse(notFound(id));
        const why = r.status === 'consumed' ? `was already used at ${iso(r.consumed_ms ?? 0)}` : `is ${r.status}`;
        return refuse(
          new DrawbridgeError('approval.not_approved', `Approval ${id} ${why}; it cannot clear a call.`, { details: { approvalId: id, status: r.status } }),
        );
      });
    },

    reportDenial(id, now) {
      const at = millis(now);
      return tx('report a denial', async (c) => {
        const r = await row(c, id, 'FOR UPDATE');
        if (r === undefined) return refuse(notFound(id));
        if (r.status !== 'denied') {
          return refuse(
            new DrawbridgeError('approval.not_approved', `Approval ${id} is ${r.status}, not denied.`, { details: { approvalId: id, status: r.status } }),
          );
        }
        const changed = await c.query(`UPDATE ${A} SET consumed_ms = $1 WHERE id = $2 AND status = 'denied' AND consumed_ms IS NULL`, [at, id]);
        if (changed.rowCount === 1) await announce(c, id);
        return (await load(c, id)) as StoredApproval;
      });
    },

    createGrant(input: GrantInput, now: Date) {
      const at = millis(now);
      if (!Number.isInteger(input.grantMs) || input.grantMs <= 0) throw new TypeError('grantMs must be a positive integer');
      return tx('create a grant', async (c) => {
        await c.query(`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, hashtext($1))`, [JSON.stringify([GRANT_LOCK, input.approvalId])]);
        const existing = await c.query<{ id: string }>(`SELECT id FROM ${G} WHERE approval_id = $1`, [input.approvalId]);
        if (existing.rows[0] !== undefined) {
          return refuse(
            new DrawbridgeError('approval.not_approved', `Approval ${input.approvalId} already issued grant ${existing.rows[0].id}.`, {
              details: { approvalId: input.approvalId },
            }),
          );
        }
        let expires = at + input.grantMs;
        // Approvals collected in band (elicitation) are not in this store; out-of-band ones are, and must back the grant.
        const r = await row(c, input.approvalId, 'FOR SHARE');
        if (r !== undefined) {
          const backing = grantBacking(r, input);
          if (isRefusal(backing)) return backing;
          // The approved window counts from the decision: a late retry does not stretch it.
          expires = Math.min(expires, backing.decidedMs + backing.grantMs);
        }
        const id = await freshId(c, 'gr_');
        const inserted = await c.query<GrantRow>(
          `INSERT INTO ${G} (id, subject, issuer, tool, connection, rule, approval_id, created_ms, expires_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
          [id, input.subject, input.issuer, input.tool, input.connection, input.rule, input.approvalId, at, expires],
        );
        return toGrant(inserted.rows[0] as GrantRow);
      });
    },

    findGrant(q: GrantQuery, now: Date) {
      const at = millis(now);
      return tx('look up grants', async (c) => {
        const found = await c.query<GrantRow>(
          `SELECT * FROM ${G}
           WHERE subject = $1 AND issuer = $2 AND tool = $3 AND connection = $4 AND rule = $5 AND revoked_ms IS NULL AND expires_ms > $6
           ORDER BY expires_ms DESC, id LIMIT 1`,
          [q.subject, q.issuer, q.tool, q.connection, q.rule, at],
        );
        const r = found.rows[0];
        return r === undefined ? undefined : toGrant(r);
      });
    },

    listGrants(now, filter = {}) {
      const at = millis(now);
      return tx('list grants', async (c) => {
        const rows = (await c.query<GrantRow>(`SELECT * FROM ${G} ORDER BY created_ms DESC, id`)).rows;
        return rows
          .map((r) => ({ r, active: r.revoked_ms === null && at < r.expires_ms }))
          .filter((g) => filter.active === undefined || g.active === filter.active)
          .map((g) => toGrant(g.r));
      });
    },

    revokeGrant(id, by, now) {
      const at = millis(now);
      if (by.trim() === '') throw new TypeError('revokeGrant needs who revokes');
      return tx('revoke a grant', async (c) => {
        const r = (await c.query<GrantRow>(`SELECT * FROM ${G} WHERE id = $1 FOR UPDATE`, [id])).rows[0];
        if (r === undefined) return refuse(new DrawbridgeError('grant.not_found', `No grant ${JSON.stringify(id)}.`, { details: { grantId: id } }));
        if (r.revoked_ms !== null) {
          return refuse(
            new DrawbridgeError('grant.not_found', `Grant ${id} was already revoked at ${iso(r.revoked_ms)} by ${r.revoked_by ?? 'unknown'}.`, {
              details: { grantId: id },
            }),
          );
        }
        const updated = await c.query<GrantRow>(`UPDATE ${G} SET revoked_ms = $1, revoked_by = $2 WHERE id = $3 RETURNING *`, [at, by, id]);
        return toGrant(updated.rows[0] as GrantRow);
      });
    },

    changed: (id, signal) => listen.changed(id, signal),

    counts(now) {
      const at = millis(now);
      return tx('count requests and grants', async (c) => {
        const r = await c.query<{ pending: string; active: string }>(
          `SELECT (SELECT count(*) FROM ${A} WHERE status = 'pending' AND expires_ms > $1) AS pending,
                  (SELECT count(*) FROM ${G} WHERE revoked_ms IS NULL AND expires_ms > $1) AS active`,
          [at],
        );
        const row = r.rows[0];
        return { pending: Number(row?.pending ?? 0), activeGrants: Number(row?.active ?? 0) };
      });
    },

    onDecided: (listener) => decided.subscribe(listener),

    sharedKey(name, create) {
      if (name.trim() === '') throw new TypeError('sharedKey needs a name');
      return tx('read a shared key', async (c) => {
        const found = await c.query<{ value: string }>(`SELECT value FROM ${S} WHERE name = $1`, [name]);
        if (found.rows[0] === undefined) {
          // A replica inserting at the same time waits for this one's row and then keeps it (DO NOTHING).
          await c.query(`INSERT INTO ${S} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, [name, Buffer.from(create()).toString('base64')]);
        }
        const stored = await c.query<{ value: string }>(`SELECT value FROM ${S} WHERE name = $1`, [name]);
        return new Uint8Array(Buffer.from(stored.rows[0]?.value ?? '', 'base64'));
      });
    },

    dump() {
      return tx('read the store', async (c) => {
        await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const approvals = await toApprovals(c, (await c.query<ApprovalRow>(`SELECT * FROM ${A} ORDER BY created_ms DESC, id`)).rows);
        const grants = (await c.query<GrantRow>(`SELECT * FROM ${G} ORDER BY created_ms DESC, id`)).rows.map(toGrant);
        return { approvals, grants };
      });
    },

    load(dump: ApprovalsDump) {
      return tx('load into the store', async (c) => {
        await c.query(`LOCK TABLE ${A}, ${G} IN EXCLUSIVE MODE`);
        const any = await c.query(`SELECT 1 FROM ${A} UNION ALL SELECT 1 FROM ${G} LIMIT 1`);
        if (any.rowCount !== 0) return refuse(new DrawbridgeError('input.invalid', 'The target approvals store is not empty; copy into an empty one.'));
        for (const a of dump.approvals) {
          const s = a.subject;
          await c.query(
            `INSERT INTO ${A} (id, hash, requester_subject, requester_issuer, policy_key, status, subject,
                               created_ms, expires_ms, decided_ms, consumed_ms, grant_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
            [
              a.id,
              a.hash,
              s.requester.subject,
              s.requester.issuer,
              policyKey(s),
              a.status,
              JSON.stringify(s),
              Date.parse(a.createdAt),
              Date.parse(a.expiresAt),
              a.decidedAt === null ? null : Date.parse(a.decidedAt),
              a.consumedAt === null ? null : Date.parse(a.consumedAt),
              a.grantMs,
            ],
          );
          for (const [i, v] of a.votes.entries()) {
            await c.query(`INSERT INTO ${V} (approval_id, seq, approver_subject, vote) VALUES ($1, $2, $3, $4)`, [
              a.id,
              i + 1,
              v.approver.subject,
              JSON.stringify(v),
            ]);
          }
        }
        for (const g of dump.grants) {
          await c.query(
            `INSERT INTO ${G} (id, subject, issuer, tool, connection, rule, approval_id, created_ms, expires_ms, revoked_ms, revoked_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
            [
              g.id,
              g.subject,
              g.issuer,
              g.tool,
              g.connection,
              g.rule,
              g.approvalId,
              Date.parse(g.createdAt),
              Date.parse(g.expiresAt),
              g.revokedAt === null ? null : Date.parse(g.revokedAt),
              g.revokedBy,
            ],
          );
        }
        return undefined;
      });
    },

    async close() {
      closed = true;
    },
  };
}

/** A unique violation that slipped past the locks: a second vote of one approver, or a second grant of one approval. */
function duplicate(error: unknown): DrawbridgeError {
  const constraint = String((error as { constraint?: unknown }).constraint ?? '');
  if (constraint.includes('grants')) return new DrawbridgeError('approval.not_approved', 'This approval already issued a grant.');
  return new DrawbridgeError('approval.duplicate_vote', 'This approver has already voted on this request.');
}
