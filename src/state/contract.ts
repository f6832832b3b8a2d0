// The state contract: everything Drawbridge must remember (the journal, approval
// requests and votes, grants), behind one async interface that every engine implements.
// Callers (pipeline, gateway, CLI) use only this; engines live in state/<engine>/ and
// are picked by state/open.ts. The invariants below are what an engine must keep:
// test/state/contract.test.ts checks them for every engine.

import type { ApprovalSubject, Vote } from '../approval/approver.js';
import type { AppendOptions, JournalRecord, RecordType } from './records.js';

/**
 * The audit journal. Invariants every engine keeps:
 * - one hash chain, totally ordered: seq is 1, 2, 3… with no gap, each record's prevHash is
 *   the previous record's hash (GENESIS_HASH for the first), hash = recordHash(record);
 *   concurrent appends (from this handle or any other writer of the same state) never fork
 *   or reorder it: reading the head and writing the next record is one atomic step;
 * - appends made through one handle are chained in the order append() was called, also when
 *   many are in flight at once (group commit batches them in that order): `state copy` relies on it;
 * - append resolves only once its record is committed, and with durable (the default)
 *   durable: the pipeline awaits the intent before the backend is touched;
 * - records are append-only: an engine never updates or deletes one;
 * - any failure rejects with DrawbridgeError('journal.unavailable') whose message does not
 *   name where the state lives (the agent sees it), so the caller refuses the call.
 */
export interface JournalStore {
  append(type: RecordType, callId: string, data: Record<string, unknown>, now?: Date, options?: AppendOptions): Promise<JournalRecord>;
  /**
   * Every record as stored, in seq order, from one consistent snapshot (appends that commit
   * meanwhile are not seen). Raw, not trusted: journal/verify.ts checks each one.
   */
  read(): AsyncIterable<StoredRecord>;
  /**
   * At most `limit` records with seq > `afterSeq`, in seq order, as stored (one bounded query:
   * the audit stream's page). Committed records only, and never with a gap: appends commit in
   * seq order under the head lock, so a record is never visible before the ones it follows.
   */
  readFrom(afterSeq: number, limit: number): Promise<StoredRecord[]>;
  /** The last record's seq and hash (0 and GENESIS_HASH when empty), as stored. */
  head(): Promise<{ readonly seq: number; readonly hash: string }>;
  /**
   * Whether an append could commit now, found without writing a record (/readyz asks): the
   * head is read and the engine's own write check runs (SQLite: the write lock is taken and
   * released; PostgreSQL: the server is a writable primary and the role may insert). Rejects
   * journal.unavailable, like an append would.
   */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A journal record as its engine stored it, before any check: `data` is the stored canonical
 * JSON text. Fields are unknown because verify must report a malformed record, not trust it.
 */
export interface StoredRecord {
  readonly seq: unknown;
  readonly time: unknown;
  readonly type: unknown;
  readonly callId: unknown;
  readonly data: unknown;
  readonly prevHash: unknown;
  readonly hash: unknown;
}

export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed';

export interface StoredApproval {
  /** 'ap_' + 10 characters [a-z0-9] from the CSPRNG: unguessable. */
  readonly id: string;
  readonly hash: string;
  readonly status: ApprovalStatus;
  readonly subject: ApprovalSubject;
  /** In the order they were cast. */
  readonly votes: readonly Vote[];
  readonly createdAt: string;
  /** Absolute: a pending request, and an approved one not yet consumed, become 'expired' at this time. */
  readonly expiresAt: string;
  readonly decidedAt: string | null;
  /** When an approved request cleared its call; for a denied one, when the denial was reported to the requester. */
  readonly consumedAt: string | null;
  /**
   * Grant chosen by the deciding approver(s): the minimum of their choices, bounded by
   * subject.maxGrantMs; null when the rule has no grant or until approved.
   */
  readonly grantMs: number | null;
}

export interface StoredGrant {
  /** 'gr_' + 10 characters [a-z0-9]. */
  readonly id: string;
  readonly subject: string;
  readonly issuer: string;
  readonly tool: string;
  readonly connection: string;
  readonly rule: string;
  readonly approvalId: string;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly revokedAt: string | null;
  readonly revokedBy: string | null;
}

/** Who a grant is for: exactly this principal, tool, connection and rule. */
export interface GrantQuery {
  readonly subject: string;
  readonly issuer: string;
  readonly tool: string;
  readonly connection: string;
  readonly rule: string;
}

export interface GrantInput extends GrantQuery {
  readonly approvalId: string;
  readonly grantMs: number;
}

export interface VoteHooks {
  /**
   * Runs once the vote is validated, before it commits, with the approval as it will be
   * after the vote. If it rejects, the vote is rolled back and the error is rethrown: the
   * CLI journals the vote here, so a vote never counts without its journal record. No
   * other change to the approvals can commit in between (the engine holds its write lock).
   */
  readonly beforeCommit?: (after: StoredApproval) => Promise<void>;
}

/**
 * Approval requests, votes and grants. Invariants every engine keeps:
 * - every state change is atomic (read, check, write under one lock or transaction) and
 *   nothing is cached between calls: another process or replica may have written since;
 * - time is the caller's `now` (epoch milliseconds compared as numbers): expiry is decided
 *   by the caller's clock, never the store's;
 * - consume is single-use: of any number of concurrent consumes of one approval, exactly
 *   one resolves, the others reject approval.not_approved — enforced by the store;
 * - one vote per approver subject (approval.duplicate_vote), so votes are idempotent per approver;
 *   a decided or expired request takes no vote (approval.not_pending);
 * - one grant per approval; a revoked grant is never found again;
 * - catalog refusals (approval.*, grant.not_found, input.invalid) and TypeErrors for
 *   malformed arguments pass through; any other failure is approval.store_unavailable (fail closed).
 */
export interface ApprovalStore {
  /**
   * Reuses the open request for the same hash, requester (subject and issuer) and rule
   * settings if there is one — pending, approved and not consumed, or denied and the
   * denial not yet reported (see reportDenial), and not past its expiry — else creates a
   * pending one expiring `ttlMs` after `now`. A decided request comes first, so the
   * requester's next identical call picks up the decision, whichever it was.
   */
  openRequest(subject: ApprovalSubject, now: Date, ttlMs: number): Promise<{ approval: StoredApproval; created: boolean }>;
  /** Marks the request 'expired' first if its time has passed. */
  get(id: string, now: Date): Promise<StoredApproval | undefined>;
  /** Newest first; expired requests are marked first. */
  list(now: Date, filter?: { status?: ApprovalStatus }): Promise<StoredApproval[]>;
  /**
   * Validates and records a vote: the request is pending; the voter is the requester only if
   * the rule allows it, else in one of its approver groups; one vote per approver; an approve
   * vote's grant fits the rule's. Any deny decides 'denied'; `min` distinct approvers decide
   * 'approved' with the smallest grant chosen. Rejects approval.not_found, approval.not_pending,
   * approval.forbidden, approval.duplicate_vote, or input.invalid (grant too long).
   */
  vote(id: string, vote: Vote, now: Date, hooks?: VoteHooks): Promise<StoredApproval>;
  /** approved → consumed, exactly once; anything else rejects approval.not_approved. */
  consume(id: string, now: Date): Promise<StoredApproval>;
  /**
   * Records that a denial was reported to the requester (consumedAt), so that their next
   * identical call opens a new request instead of being told the same denial again.
   * Idempotent; rejects approval.not_found, or approval.not_approved for a request that is not denied.
   */
  reportDenial(id: string, now: Date): Promise<StoredApproval>;
  /**
   * Issues a grant expiring `grantMs` after `now`. When `approvalId` is a request in this store
   * it must be approved or consumed, for the same principal, tool, connection and rule, with a
   * grant of at least `grantMs`, and the grant ends no later than decidedAt + its grantMs.
   * One grant per approval (approval.not_approved otherwise).
   */
  createGrant(input: GrantInput, now: Date): Promise<StoredGrant>;
  /** A grant valid at `now` (not revoked, now < expiresAt) for exactly this principal, tool, connection and rule; the one expiring last. */
  findGrant(q: GrantQuery, now: Date): Promise<StoredGrant | undefined>;
  /** Newest first. `active: true` only valid ones, `false` only revoked or expired ones. */
  listGrants(now: Date, filter?: { active?: boolean }): Promise<StoredGrant[]>;
  /** Rejects grant.not_found when there is no such grant or it is already revoked. */
  revokeGrant(id: string, by: string, now: Date): Promise<StoredGrant>;
  /**
   * Resolves soon after approval `id` changed anywhere (a vote, a decision, a consume, committed
   * by this handle, another process or another replica), or when `signal` aborts. Best effort:
   * a waiting call still re-reads on its poll interval, so a lost notification only delays it.
   */
  changed(id: string, signal: AbortSignal): Promise<void>;
  /**
   * The secret named `name`, the same for every handle, process and replica of this state: the
   * first caller's `create()` is stored, and every caller, racing or later, gets that one (never
   * changed). For key material the gateway generates itself when the config names none (the
   * requestState sealing key, approval/request-state.ts). Not part of dump/load: a copied state
   * generates its own, which only voids the short-lived states sealed with the old one.
   */
  sharedKey(name: string, create: () => Uint8Array): Promise<Uint8Array>;
  /**
   * How many requests are pending (status pending and not past expiresAt at `now`) and how many grants
   * are active (not revoked, `now` < expiresAt), across every handle, process and replica of this state.
   * Read-only (marks nothing expired), one cheap query: /metrics asks it at scrape time.
   */
  counts(now: Date): Promise<ApprovalCounts>;
  /**
   * Subscribes to the decisions this handle records, once each committed: a vote that decided a
   * request (approved or denied; `count` 1), and requests this handle marked expired (pending, or
   * approved and never used; `count` how many at once). Every transition is recorded by exactly
   * one handle, so the sum over the processes sharing a state counts each once. Returns the unsubscribe.
   */
  onDecided(listener: DecisionListener): () => void;
  /** Every request (with its votes) and grant, as stored, for `drawbridge state copy`. */
  dump(): Promise<ApprovalsDump>;
  /** Loads a dump into an empty store, ids and times unchanged, in one transaction; rejects input.invalid if the store is not empty. */
  load(dump: ApprovalsDump): Promise<void>;
  close(): Promise<void>;
}

export interface ApprovalCounts {
  readonly pending: number;
  readonly activeGrants: number;
}

/** A request's decision as ApprovalStore.onDecided reports it. */
export type ApprovalDecision = 'approved' | 'denied' | 'expired';

export type DecisionListener = (decision: ApprovalDecision, count: number) => void;

export interface ApprovalsDump {
  readonly approvals: readonly StoredApproval[];
  readonly grants: readonly StoredGrant[];
}

/**
 * The audit stream's durable cursors (journal.stream): per sink, the last seq the sink
 * acknowledged, and who streams it now. Mutable, so never in the journal's records; kept next to
 * the journal they point into (SQLite: a table of the journal file; PostgreSQL: stream_cursors).
 * Invariants every engine keeps:
 * - a cursor only moves forward: advance() to a lower seq changes nothing (a streamer that lost
 *   its lease cannot move it back);
 * - claim() lets one holder at a time stream a sink across every process sharing the state
 *   (SQLite: a lease row renewed on each claim, taken over once it is LEASE_MS old; PostgreSQL: a
 *   session advisory lock on a connection of the streamer's own, released when that connection
 *   or the process dies);
 * - failures reject journal.unavailable (the stream retries; calls never see them).
 */
export interface StreamCursorStore {
  /** The last seq delivered to `sink`, 0 when nothing was; and when it last moved (null: never). */
  cursor(sink: string): Promise<{ readonly seq: number; readonly updatedAt: string | null }>;
  /** Moves `sink`'s cursor forward to `seq` (never back). */
  advance(sink: string, seq: number, now: Date): Promise<void>;
  /** Whether `holder` may stream `sink` now (claims it if free, renews it if held). */
  claim(sink: string, holder: string, now: Date): Promise<boolean>;
  /** Gives `sink` up, if `holder` holds it. */
  release(sink: string, holder: string): Promise<void>;
  close(): Promise<void>;
}

/** How long an SQLite stream lease lasts without renewal (a streamer claims before every batch and poll). */
export const STREAM_LEASE_MS = 30_000;

/** One engine's state: the journal, the approvals and the stream cursors. close() closes all; it is idempotent. */
export interface StateStore {
  readonly journal: JournalStore;
  readonly approvals: ApprovalStore;
  readonly streams: StreamCursorStore;
  close(): Promise<void>;
}
