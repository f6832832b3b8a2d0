// The SQLite engine's approval store (synchronous; state/sqlite/index.ts makes it the
// async ApprovalStore): pending requests, approvers' votes and the
// grants approvals issue, in one SQLite (WAL) file shared by the gateway and
// `drawbridge approvals` processes. Mutable state, so not the journal: every
// decision is journaled by the caller. Every state change runs under BEGIN
// IMMEDIATE (read, check, write under one write lock), and nothing is cached
// between calls, because another process may have written since. Times are
// stored as epoch milliseconds and compared as numbers; `now` is always passed
// in, so expiry is decided by the caller's clock. Any SQLite failure becomes
// approval.store_unavailable: the caller refuses (fail closed).

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DrawbridgeError, isDrawbridgeError } from '../../errors.js';
import type { ApprovalSubject, Vote } from '../../approval/approver.js';
import type { ApprovalCounts, ApprovalsDump, ApprovalStatus, GrantInput, GrantQuery, StoredApproval, StoredGrant } from '../contract.js';
import {
  checkVote,
  decide,
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

export interface SyncVoteHooks {
  /**
   * Runs inside the store's write transaction once the vote is validated, with
   * the approval as it will be after the vote. If it throws, the vote is rolled
   * back and the error is rethrown.
   */
  readonly beforeCommit?: (after: StoredApproval) => void;
}

/** The synchronous SQLite store; callers use the async ApprovalStore of state/contract.ts (state/sqlite/index.ts wraps it). */
export interface SqliteApprovals {
  /**
   * Reuses the open request for the same hash, requester (subject and issuer) and rule
   * settings if there is one — pending, approved and not consumed, or denied and the
   * denial not yet reported (see reportDenial), and not past its expiry — else creates a
   * pending one expiring `ttlMs` after `now`. A decided request comes first, so the
   * requester's next identical call picks up the decision, whichever it was.
   */
  openRequest(subject: ApprovalSubject, now: Date, ttlMs: number): { approval: StoredApproval; created: boolean };
  /** Marks the request 'expired' first if its time has passed. */
  get(id: string, now: Date): StoredApproval | undefined;
  /** Newest first; expired requests are marked first. */
  list(now: Date, filter?: { status?: ApprovalStatus }): StoredApproval[];
  /**
   * Validates and records a vote; see the rules at `decide` below. Throws approval.not_found,
   * approval.not_pending, approval.forbidden, approval.duplicate_vote, or input.invalid (grant too long).
   */
  vote(id: string, vote: Vote, now: Date, hooks?: SyncVoteHooks): StoredApproval;
  /**
   * vote() whose beforeCommit is async: the vote runs inside an outer BEGIN IMMEDIATE that
   * commits once `beforeCommit` resolves and rolls back if it rejects. The caller must keep
   * every other use of this handle waiting meanwhile (state/sqlite/index.ts holds a lock).
   */
  voteThen(id: string, vote: Vote, now: Date, beforeCommit: (after: StoredApproval) => Promise<void>): Promise<StoredApproval>;
  /** approved → consumed, exactly once; anything else throws approval.not_approved. */
  consume(id: string, now: Date): StoredApproval;
  /**
   * Records that a denial was reported to the requester (consumedAt), so that their next
   * identical call opens a new request instead of being told the same denial again.
   * Idempotent; throws approval.not_found, or approval.not_approved for a request that is not denied.
   */
  reportDenial(id: string, now: Date): StoredApproval;
  /**
   * Issues a grant expiring `grantMs` after `now`. When `approvalId` is a request in this store
   * it must be approved or consumed, for the same principal, tool, connection and rule, with a
   * grant of at least `grantMs`, and the grant ends no later than decidedAt + its grantMs.
   * One grant per approval (approval.not_approved otherwise).
   */
  createGrant(input: GrantInput, now: Date): StoredGrant;
  /** A grant valid at `now` (not revoked, now < expiresAt) for exactly this principal, tool, connection and rule; the one expiring last. */
  findGrant(q: GrantQuery, now: Date): StoredGrant | undefined;
  /** Newest first. `active: true` only valid ones, `false` only revoked or expired ones. */
  listGrants(now: Date, filter?: { active?: boolean }): StoredGrant[];
  /** Throws grant.not_found when there is no such grant or it is already revoked. */
  revokeGrant(id: string, by: string, now: Date): StoredGrant;
  /** See ApprovalStore.sharedKey: kept in the meta table as `secret:<name>`, created under the write lock. */
  sharedKey(name: string, create: () => Uint8Array): Uint8Array;
  dump(): ApprovalsDump;
  /** See ApprovalStore.counts: pending requests not past expiry and active grants at `now`; reads only. */
  counts(now: Date): ApprovalCounts;
  /**
   * How many requests this handle marked expired, in transactions that committed, since the last
   * call (which resets it): the async store reports them to its onDecided listeners.
   */
  takeExpired(): number;
  /** Into an empty store only (input.invalid otherwise), in one transaction. */
  load(dump: ApprovalsDump): void;
  close(): void;
}

export interface ApprovalStoreOptions {
  /** How long to wait for another process's write lock before failing closed (default 5 s). */
  readonly busyTimeoutMs?: number;
}

const FORMAT_VERSION = '1';
const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL,
  requester_subject TEXT NOT NULL,
  requester_issuer TEXT NOT NULL,
  policy_key TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
  subject TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  decided_ms INTEGER,
  consumed_ms INTEGER,
  grant_ms INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_open ON approvals (hash, requester_subject, requester_issuer, status);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, expires_ms);
CREATE TABLE IF NOT EXISTS votes (
  approval_id TEXT NOT NULL REFERENCES approvals (id),
  seq INTEGER NOT NULL,
  approver_subject TEXT NOT NULL,
  vote TEXT NOT NULL,
  PRIMARY KEY (approval_id, seq),
  UNIQUE (approval_id, approver_subject)
);
CREATE TABLE IF NOT EXISTS grants (
  id TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  issuer TEXT NOT NULL,
  tool TEXT NOT NULL,
  connection TEXT NOT NULL,
  rule TEXT NOT NULL,
  approval_id TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL,
  revoked_ms INTEGER,
  revoked_by TEXT
);
CREATE INDEX IF NOT EXISTS grants_lookup ON grants (subject, issuer, tool, connection, rule, expires_ms);
`;

function storeUnavailable(message: string, path: string, cause: unknown): DrawbridgeError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DrawbridgeError('approval.store_unavailable', `${message} (${path}): ${reason}`, { details: { path }, cause });
}

export function openSqliteApprovals(path: string, options: ApprovalStoreOptions = {}): SqliteApprovals {
  const db = openDatabase(path, options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
  return new SqliteApprovalStore(db, path, prepareStatements(db));
}

/** Opens (creating it if needed) the store's file in WAL mode and checks its format version. */
function openDatabase(path: string, busyTimeout: number): Database.Database {
  const inMemory = path === ':memory:';
  let db: Database.Database;
  try {
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: busyTimeout });
  } catch (cause) {
    throw storeUnavailable('Cannot open the approvals store', path, cause);
  }
  try {
    db.pragma(`busy_timeout = ${busyTimeout}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal' && !(inMemory && mode === 'memory')) throw new Error(`journal_mode is ${String(mode)}, expected wal`);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.transaction(() => {
      db.exec(SCHEMA);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)").run(FORMAT_VERSION);
      const version = db.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get();
      if (version !== FORMAT_VERSION) throw new Error(`unsupported approvals store format version ${String(version)} (expected ${FORMAT_VERSION})`);
    }).immediate();
  } catch (cause) {
    db.close();
    throw storeUnavailable('Cannot initialise the approvals store', path, cause);
  }
  return db;
}

function prepareStatements(db: Database.Database) {
  return {
    approval: db.prepare('SELECT * FROM approvals WHERE id = ?'),
    votes: db.prepare('SELECT vote FROM votes WHERE approval_id = ? ORDER BY seq').pluck(),
    findOpen: db.prepare(
      `SELECT * FROM approvals
       WHERE hash = @hash AND requester_subject = @subject AND requester_issuer = @issuer AND policy_key = @policyKey
         AND (status IN ('pending', 'approved') OR (status = 'denied' AND consumed_ms IS NULL)) AND expires_ms > @now
       ORDER BY (status = 'denied') DESC, (status = 'approved') DESC, created_ms DESC LIMIT 1`,
    ),
    idTaken: db.prepare('SELECT 1 FROM approvals WHERE id = ? UNION ALL SELECT 1 FROM grants WHERE id = ?').pluck(),
    insertApproval: db.prepare(
      `INSERT INTO approvals (id, hash, requester_subject, requester_issuer, policy_key, status, subject, created_ms, expires_ms)
       VALUES (@id, @hash, @subject, @issuer, @policyKey, 'pending', @json, @now, @expires)`,
    ),
    expireOne: db.prepare("UPDATE approvals SET status = 'expired' WHERE id = ? AND status IN ('pending', 'approved') AND expires_ms <= ?"),
    anyToExpire: db.prepare("SELECT 1 FROM approvals WHERE status IN ('pending', 'approved') AND expires_ms <= ? LIMIT 1").pluck(),
    expireAll: db.prepare("UPDATE approvals SET status = 'expired' WHERE status IN ('pending', 'approved') AND expires_ms <= ?"),
    counts: db.prepare(
      `SELECT (SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_ms > @now) AS pending,
              (SELECT COUNT(*) FROM grants WHERE revoked_ms IS NULL AND expires_ms > @now) AS active`,
    ),
    listAll: db.prepare('SELECT * FROM approvals ORDER BY created_ms DESC, id'),
    listByStatus: db.prepare('SELECT * FROM approvals WHERE status = ? ORDER BY created_ms DESC, id'),
    nextSeq: db.prepare('SELECT COALESCE(MAX(seq), 0) + 1 FROM votes WHERE approval_id = ?').pluck(),
    insertVote: db.prepare('INSERT INTO votes (approval_id, seq, approver_subject, vote) VALUES (?, ?, ?, ?)'),
    decide: db.prepare("UPDATE approvals SET status = ?, decided_ms = ?, grant_ms = ? WHERE id = ? AND status = 'pending'"),
    consume: db.prepare("UPDATE approvals SET status = 'consumed', consumed_ms = ? WHERE id = ? AND status = 'approved'"),
    reportDenial: db.prepare("UPDATE approvals SET consumed_ms = ? WHERE id = ? AND status = 'denied' AND consumed_ms IS NULL"),
    grant: db.prepare('SELECT * FROM grants WHERE id = ?'),
    grantOfApproval: db.prepare('SELECT id FROM grants WHERE approval_id = ?').pluck(),
    insertGrant: db.prepare(
      `INSERT INTO grants (id, subject, issuer, tool, connection, rule, approval_id, created_ms, expires_ms)
       VALUES (@id, @subject, @issuer, @tool, @connection, @rule, @approvalId, @now, @expires)`,
    ),
    findGrant: db.prepare(
      `SELECT * FROM grants
       WHERE subject = @subject AND issuer = @issuer AND tool = @tool AND connection = @connection AND rule = @rule
         AND revoked_ms IS NULL AND expires_ms > @now
       ORDER BY expires_ms DESC, id LIMIT 1`,
    ),
    listGrants: db.prepare('SELECT * FROM grants ORDER BY created_ms DESC, id'),
    revokeGrant: db.prepare('UPDATE grants SET revoked_ms = ?, revoked_by = ? WHERE id = ? AND revoked_ms IS NULL'),
    insertSecret: db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
    secret: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
    anyRow: db.prepare('SELECT 1 FROM approvals UNION ALL SELECT 1 FROM grants LIMIT 1').pluck(),
    loadApproval: db.prepare(
      `INSERT INTO approvals (id, hash, requester_subject, requester_issuer, policy_key, status, subject,
                              created_ms, expires_ms, decided_ms, consumed_ms, grant_ms)
       VALUES (@id, @hash, @subject, @issuer, @policyKey, @status, @json, @created, @expires, @decided, @consumed, @grantMs)`,
    ),
    loadGrant: db.prepare(
      `INSERT INTO grants (id, subject, issuer, tool, connection, rule, approval_id, created_ms, expires_ms, revoked_ms, revoked_by)
       VALUES (@id, @subject, @issuer, @tool, @connection, @rule, @approvalId, @created, @expires, @revoked, @revokedBy)`,
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

class SqliteApprovalStore implements SqliteApprovals {
  private closed = false;
  /** Requests marked expired in the transaction still open, and in committed ones not yet taken (takeExpired). */
  private marking = 0;
  private expired = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly path: string,
    private readonly stmt: Statements,
  ) {}

  openRequest(subject: ApprovalSubject, now: Date, ttlMs: number): { approval: StoredApproval; created: boolean } {
    const at = millis(now);
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new TypeError('ttlMs must be a positive integer');
    return this.guarded('open a request', () =>
      this.writeTx(() => {
        const key = { hash: subject.hash, subject: subject.requester.subject, issuer: subject.requester.issuer, policyKey: policyKey(subject), now: at };
        const open = this.stmt.findOpen.get(key) as ApprovalRow | undefined;
        if (open !== undefined) return { approval: this.toApproval(open), created: false };
        const id = this.freshId('ap_');
        this.stmt.insertApproval.run({ ...key, id, json: JSON.stringify(subject), expires: at + ttlMs });
        return { approval: this.toApproval(this.stmt.approval.get(id) as ApprovalRow), created: true };
      }),
    );
  }

  get(id: string, now: Date): StoredApproval | undefined {
    const at = millis(now);
    return this.guarded('read a request', () => {
      const row = this.getFresh(id, at);
      return row === undefined ? undefined : this.toApproval(row);
    });
  }

  list(now: Date, filter: { status?: ApprovalStatus } = {}): StoredApproval[] {
    const at = millis(now);
    return this.guarded('list requests', () => {
      if (this.stmt.anyToExpire.get(at) !== undefined) this.writeTx(() => this.mark(this.stmt.expireAll.run(at).changes));
      const rows = (filter.status === undefined ? this.stmt.listAll.all() : this.stmt.listByStatus.all(filter.status)) as ApprovalRow[];
      return rows.map((row) => this.toApproval(row));
    });
  }

  vote(id: string, vote: Vote, now: Date, hooks: SyncVoteHooks = {}): StoredApproval {
    const at = millis(now);
    return this.guarded('record a vote', () =>
      this.writeTx(() => {
        this.mark(this.stmt.expireOne.run(id, at).changes);
        const row = this.stmt.approval.get(id) as ApprovalRow | undefined;
        if (row === undefined) return refuse(notFound(id));
        const before = this.toApproval(row);
        const refusal = checkVote(before, vote);
        if (refusal) return refuse(refusal);
        const recorded: Vote = vote.decision === 'deny' ? withoutGrant(vote) : vote;
        this.stmt.insertVote.run(id, this.stmt.nextSeq.get(id) as number, vote.approver.subject, JSON.stringify(recorded));
        const votes = [...before.votes, recorded];
        const outcome = decide(before.subject, votes);
        if (outcome.status !== 'pending') this.stmt.decide.run(outcome.status, at, outcome.grantMs, id);
        const after = this.loadApproval(id) as StoredApproval;
        // Throwing here rolls back the whole transaction: the vote is not recorded.
        hooks.beforeCommit?.(after);
        return after;
      }),
    );
  }

  async voteThen(id: string, vote: Vote, now: Date, beforeCommit: (after: StoredApproval) => Promise<void>): Promise<StoredApproval> {
    this.guarded('record a vote', () => this.db.exec('BEGIN IMMEDIATE'));
    let after: StoredApproval;
    try {
      // Nested in the outer transaction, vote()'s own transaction is a savepoint.
      after = this.vote(id, vote, now);
    } catch (error) {
      // A refusal keeps what vote() committed before it (marking the request expired), as vote() alone does.
      this.guarded('record a vote', () => this.finish('COMMIT'));
      throw error;
    }
    try {
      await beforeCommit(after);
    } catch (error) {
      this.finish('ROLLBACK');
      throw error;
    }
    this.guarded('record a vote', () => this.finish('COMMIT'));
    return after;
  }

  consume(id: string, now: Date): StoredApproval {
    const at = millis(now);
    return this.guarded('consume an approval', () =>
      this.writeTx(() => {
        this.mark(this.stmt.expireOne.run(id, at).changes);
        const row = this.stmt.approval.get(id) as ApprovalRow | undefined;
        if (row === undefined) return refuse(notFound(id));
        if (row.status !== 'approved') {
          const why = row.status === 'consumed' ? `was already used at ${iso(row.consumed_ms ?? 0)}` : `is ${row.status}`;
          return refuse(
            new DrawbridgeError('approval.not_approved', `Approval ${id} ${why}; it cannot clear a call.`, {
              details: { approvalId: id, status: row.status },
            }),
          );
        }
        this.stmt.consume.run(at, id);
        return this.loadApproval(id) as StoredApproval;
      }),
    );
  }

  reportDenial(id: string, now: Date): StoredApproval {
    const at = millis(now);
    return this.guarded('report a denial', () =>
      this.writeTx(() => {
        const row = this.stmt.approval.get(id) as ApprovalRow | undefined;
        if (row === undefined) return refuse(notFound(id));
        if (row.status !== 'denied') {
          return refuse(
            new DrawbridgeError('approval.not_approved', `Approval ${id} is ${row.status}, not denied.`, { details: { approvalId: id, status: row.status } }),
          );
        }
        this.stmt.reportDenial.run(at, id);
        return this.loadApproval(id) as StoredApproval;
      }),
    );
  }

  createGrant(input: GrantInput, now: Date): StoredGrant {
    const at = millis(now);
    if (!Number.isInteger(input.grantMs) || input.grantMs <= 0) throw new TypeError('grantMs must be a positive integer');
    return this.guarded('create a grant', () =>
      this.writeTx(() => {
        const existing = this.stmt.grantOfApproval.get(input.approvalId) as string | undefined;
        if (existing !== undefined) {
          return refuse(
            new DrawbridgeError('approval.not_approved', `Approval ${input.approvalId} already issued grant ${existing}.`, {
              details: { approvalId: input.approvalId },
            }),
          );
        }
        let expires = at + input.grantMs;
        // Approvals collected in band (elicitation) are not in this store; out-of-band ones are, and must back the grant.
        const row = this.stmt.approval.get(input.approvalId) as ApprovalRow | undefined;
        if (row !== undefined) {
          const backing = grantBacking(row, input);
          if (isRefusal(backing)) return backing;
          // The approved window counts from the decision: a late retry does not stretch it.
          expires = Math.min(expires, backing.decidedMs + backing.grantMs);
        }
        const id = this.freshId('gr_');
        this.stmt.insertGrant.run({ ...input, id, now: at, expires });
        return toGrant(this.stmt.grant.get(id) as GrantRow);
      }),
    );
  }

  findGrant(q: GrantQuery, now: Date): StoredGrant | undefined {
    const at = millis(now);
    return this.guarded('look up grants', () => {
      const row = this.stmt.findGrant.get({ subject: q.subject, issuer: q.issuer, tool: q.tool, connection: q.connection, rule: q.rule, now: at }) as
        GrantRow | undefined;
      return row === undefined ? undefined : toGrant(row);
    });
  }

  listGrants(now: Date, filter: { active?: boolean } = {}): StoredGrant[] {
    const at = millis(now);
    return this.guarded('list grants', () => {
      const grants = (this.stmt.listGrants.all() as GrantRow[]).map((row) => ({ row, active: row.revoked_ms === null && at < row.expires_ms }));
      return grants.filter((g) => filter.active === undefined || g.active === filter.active).map((g) => toGrant(g.row));
    });
  }

  revokeGrant(id: string, by: string, now: Date): StoredGrant {
    const at = millis(now);
    if (by.trim() === '') throw new TypeError('revokeGrant needs who revokes');
    return this.guarded('revoke a grant', () =>
      this.writeTx(() => {
        const row = this.stmt.grant.get(id) as GrantRow | undefined;
        if (row === undefined) return refuse(new DrawbridgeError('grant.not_found', `No grant ${JSON.stringify(id)}.`, { details: { grantId: id } }));
        if (row.revoked_ms !== null) {
          return refuse(
            new DrawbridgeError('grant.not_found', `Grant ${id} was already revoked at ${iso(row.revoked_ms)} by ${row.revoked_by ?? 'unknown'}.`, {
              details: { grantId: id },
            }),
          );
        }
        this.stmt.revokeGrant.run(at, by, id);
        return toGrant(this.stmt.grant.get(id) as GrantRow);
      }),
    );
  }

  sharedKey(name: string, create: () => Uint8Array): Uint8Array {
    if (name.trim() === '') throw new TypeError('sharedKey needs a name');
    return this.guarded('read a shared key', () =>
      this.writeTx(() => {
        const key = `secret:${name}`;
        // Only the first writer's value is kept (OR IGNORE); create() runs only when there is none yet.
        if (this.stmt.secret.get(key) === undefined) this.stmt.insertSecret.run(key, Buffer.from(create()).toString('base64'));
        return new Uint8Array(Buffer.from(String(this.stmt.secret.get(key)), 'base64'));
      }),
    );
  }

  dump(): ApprovalsDump {
    return this.guarded('read the store', () => ({
      approvals: (this.stmt.listAll.all() as ApprovalRow[]).map((row) => this.toApproval(row)),
      grants: (this.stmt.listGrants.all() as GrantRow[]).map(toGrant),
    }));
  }

  load(dump: ApprovalsDump): void {
    this.guarded('load into the store', () =>
      this.writeTx(() => {
        if (this.stmt.anyRow.get() !== undefined)
          return refuse(new DrawbridgeError('input.invalid', 'The target approvals store is not empty; copy into an empty one.'));
        for (const a of dump.approvals) {
          const s = a.subject;
          this.stmt.loadApproval.run({
            id: a.id,
            hash: a.hash,
            subject: s.requester.subject,
            issuer: s.requester.issuer,
            policyKey: policyKey(s),
            status: a.status,
            json: JSON.stringify(s),
            created: Date.parse(a.createdAt),
            expires: Date.parse(a.expiresAt),
            decided: a.decidedAt === null ? null : Date.parse(a.decidedAt),
            consumed: a.consumedAt === null ? null : Date.parse(a.consumedAt),
            grantMs: a.grantMs,
          });
          a.votes.forEach((v, i) => this.stmt.insertVote.run(a.id, i + 1, v.approver.subject, JSON.stringify(v)));
        }
        for (const g of dump.grants) {
          this.stmt.loadGrant.run({
            ...g,
            created: Date.parse(g.createdAt),
            expires: Date.parse(g.expiresAt),
            revoked: g.revokedAt === null ? null : Date.parse(g.revokedAt),
          });
        }
        return undefined;
      }),
    );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  /** Ends the outer transaction of voteThen; if COMMIT fails SQLite has not committed, so roll back. */
  private finish(how: 'COMMIT' | 'ROLLBACK'): void {
    if (!this.db.inTransaction) return;
    try {
      this.db.exec(how);
    } catch (error) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.marking = 0;
      throw error;
    }
    this.settle(how === 'COMMIT');
  }

  counts(now: Date): ApprovalCounts {
    const at = millis(now);
    return this.guarded('count requests and grants', () => {
      const row = this.stmt.counts.get({ now: at }) as { pending: number; active: number };
      return { pending: row.pending, activeGrants: row.active };
    });
  }

  takeExpired(): number {
    const n = this.expired;
    this.expired = 0;
    return n;
  }

  /** `changes` requests were marked expired in the transaction now open. */
  private mark(changes: number): void {
    this.marking += changes;
  }

  /** The outermost transaction ended: what it marked expired counts only if it committed. */
  private settle(committed: boolean): void {
    if (committed) this.expired += this.marking;
    this.marking = 0;
  }

  /**
   * Runs `body` and maps failures: catalog errors pass through, everything else
   * (SQLITE_BUSY past the timeout, I/O errors, a closed handle) is approval.store_unavailable.
   */
  private guarded<T>(what: string, body: () => T): T {
    try {
      if (this.closed) throw new Error('the approvals store is closed');
      return body();
    } catch (error) {
      if (isDrawbridgeError(error) || error instanceof TypeError) throw error;
      throw storeUnavailable(`Cannot ${what} in the approvals store`, this.path, error);
    }
  }

  /**
   * A write transaction whose refusals still commit what was done before them
   * (marking a request expired), then throw: returning a Refusal instead of
   * throwing inside the transaction keeps better-sqlite3 from rolling it back.
   */
  private writeTx<T>(body: () => T | Refusal): T {
    // Nested in voteThen's outer transaction this is a savepoint: the outer COMMIT or ROLLBACK settles (finish).
    const outermost = !this.db.inTransaction;
    const before = this.marking;
    let result: T | Refusal;
    try {
      result = this.db.transaction(body).immediate();
    } catch (error) {
      // Rolled back (the whole transaction, or only the savepoint): nothing it marked stays.
      this.marking = before;
      if (outermost) this.settle(false);
      throw error;
    }
    if (outermost) this.settle(true);
    if (isRefusal(result)) throw result.refusal;
    return result;
  }

  /** Reads, marking the request expired first (under the write lock) when its time has passed. */
  private getFresh(id: string, now: number): ApprovalRow | undefined {
    const row = this.stmt.approval.get(id) as ApprovalRow | undefined;
    if (row === undefined || !((row.status === 'pending' || row.status === 'approved') && row.expires_ms <= now)) return row;
    return this.writeTx(() => {
      this.mark(this.stmt.expireOne.run(id, now).changes);
      return this.stmt.approval.get(id) as ApprovalRow | undefined;
    });
  }

  private toApproval(row: ApprovalRow): StoredApproval {
    return deepFreeze({
      id: row.id,
      hash: row.hash,
      status: row.status,
      subject: JSON.parse(row.subject) as ApprovalSubject,
      votes: (this.stmt.votes.all(row.id) as string[]).map((v) => JSON.parse(v) as Vote),
      createdAt: iso(row.created_ms),
      expiresAt: iso(row.expires_ms),
      decidedAt: isoOrNull(row.decided_ms),
      consumedAt: isoOrNull(row.consumed_ms),
      grantMs: row.grant_ms,
    });
  }

  private loadApproval(id: string): StoredApproval | undefined {
    const row = this.stmt.approval.get(id) as ApprovalRow | undefined;
    return row === undefined ? undefined : this.toApproval(row);
  }

  private freshId(prefix: 'ap_' | 'gr_'): string {
    for (;;) {
      const id = newId(prefix);
      if (this.stmt.idTaken.get(id, id) === undefined) return id;
    }
  }
}
