// The rules of approvals every state engine shares, free of storage: ids, the rule-settings
// key an open request is reused under, the checks of a vote, how votes decide a request,
// which approval backs a grant, and the row shapes both engines store (times as epoch
// milliseconds), and the listeners of the decisions a handle records. Engines (state/sqlite/,
// state/postgres/) keep only their storage.

import { createHash, randomInt } from 'node:crypto';
import type { ApprovalSubject, Vote } from '../approval/approver.js';
import { DrawbridgeError } from '../errors.js';
import { canonicalJson } from '../util/canonical-json.js';
import type { ApprovalDecision, ApprovalStatus, DecisionListener, GrantInput, StoredApproval, StoredGrant } from './contract.js';

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** An approvals row as both engines store it (subject: the ApprovalSubject as JSON). */
export interface ApprovalRow {
  id: string;
  hash: string;
  status: ApprovalStatus;
  subject: string;
  created_ms: number;
  expires_ms: number;
  decided_ms: number | null;
  consumed_ms: number | null;
  grant_ms: number | null;
}

/** A grants row as both engines store it. */
export interface GrantRow {
  id: string;
  subject: string;
  issuer: string;
  tool: string;
  connection: string;
  rule: string;
  approval_id: string;
  created_ms: number;
  expires_ms: number;
  revoked_ms: number | null;
  revoked_by: string | null;
}

/** Freezes a stored approval and everything in it. */
export const iso = (ms: number): string => new Date(ms).toISOString();
export const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** A catalog refusal returned (not thrown) from a transaction body, so what the body did before it still commits. */
export type Refusal = { readonly refusal: DrawbridgeError };
export const refuse = (error: DrawbridgeError): Refusal => ({ refusal: error });
export const isRefusal = (value: unknown): value is Refusal => value !== null && typeof value === 'object' && 'refusal' in value;

/** An unguessable id: prefix + 10 characters of [a-z0-9] (about 51 bits) from the CSPRNG. */
export function newId(prefix: 'ap_' | 'gr_'): string {
  let id = prefix;
  for (let i = 0; i < 10; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  return id;
}

/**
 * The rule settings a request was opened under. An open request is reused only
 * when they are unchanged, so an approval collected under a laxer rule (fewer
 * approvers, other groups, a longer grant) never clears a call under a stricter one.
 */
export function policyKey(s: ApprovalSubject): string {
  return createHash('sha256')
    .update(
      canonicalJson({ rule: s.rule, approverGroups: [...s.approverGroups].sort(), allowRequester: s.allowRequester, min: s.min, maxGrantMs: s.maxGrantMs }),
    )
    .digest('hex');
}

export function notFound(id: string): DrawbridgeError {
  return new DrawbridgeError('approval.not_found', `No approval request ${JSON.stringify(id)}.`, { details: { approvalId: id } });
}

/**
 * An out-of-band approval backs a grant only when it was approved (or used) for
 * the same principal, tool, connection and rule with a grant at least as long.
 */
export function grantBacking(row: ApprovalRow, input: GrantInput): { decidedMs: number; grantMs: number } | Refusal {
  const s = JSON.parse(row.subject) as ApprovalSubject;
  const samePrincipal =
    s.requester.subject === input.subject &&
    s.requester.issuer === input.issuer &&
    s.tool === input.tool &&
    s.connection === input.connection &&
    s.rule === input.rule;
  if (
    (row.status !== 'approved' && row.status !== 'consumed') ||
    !samePrincipal ||
    row.grant_ms === null ||
    row.grant_ms < input.grantMs ||
    row.decided_ms === null
  ) {
    return refuse(
      new DrawbridgeError(
        'approval.not_approved',
        `Approval ${input.approvalId} does not allow this grant (status ${row.status}, approved grant ${row.grant_ms ?? 'none'} ms).`,
        { details: { approvalId: input.approvalId } },
      ),
    );
  }
  return { decidedMs: row.decided_ms, grantMs: row.grant_ms };
}

export function withoutGrant(vote: Vote): Vote {
  const { grantMs: _dropped, ...rest } = vote;
  return rest;
}

/**
 * The rules of a vote, in order: the request is pending (not decided, not
 * expired); the voter is the requester only if the rule allows the requester,
 * otherwise a member of one of the rule's approver groups; one vote per
 * approver subject; an approve vote's grant fits the rule's.
 */
export function checkVote(approval: StoredApproval, vote: Vote): DrawbridgeError | undefined {
  const id = approval.id;
  const s = approval.subject;
  const who = vote.approver.subject;
  if (approval.status !== 'pending') {
    return new DrawbridgeError(
      'approval.not_pending',
      `Approval ${id} is ${approval.status}${approval.status === 'expired' ? ` (it expired at ${approval.expiresAt})` : ''}; it takes no more votes.`,
      { details: { approvalId: id, status: approval.status } },
    );
  }
  if (vote.decision !== 'approve' && vote.decision !== 'deny') throw new TypeError('vote.decision must be approve or deny');
  if (who.trim() === '') throw new TypeError('vote.approver.subject must not be empty');
  // By subject alone, whatever the issuer: the safe reading of "is this the requester".
  if (who === s.requester.subject) {
    if (!s.allowRequester) {
      return new DrawbridgeError(
        'approval.forbidden',
        `${who} requested ${id} and may not approve or deny their own request (rule ${s.rule} does not allow the requester).`,
        { details: { approvalId: id } },
      );
    }
  } else if (!vote.approver.groups.some((g) => s.approverGroups.includes(g))) {
    return new DrawbridgeError(
      'approval.forbidden',
      `${who} is not in the approver groups of rule ${s.rule} (${s.approverGroups.join(', ') || 'none: only the requester may approve'}).`,
      { details: { approvalId: id } },
    );
  }
  if (approval.votes.some((v) => v.approver.subject === who)) {
    return new DrawbridgeError('approval.duplicate_vote', `${who} has already voted on ${id}.`, { details: { approvalId: id } });
  }
  if (vote.decision === 'approve' && vote.grantMs !== undefined) {
    const max = s.maxGrantMs ?? 0;
    if (!Number.isInteger(vote.grantMs) || vote.grantMs < 0 || vote.grantMs > max) {
      return new DrawbridgeError(
        'input.invalid',
        `A grant of ${vote.grantMs} ms is not allowed for ${id}: rule ${s.rule} allows ${max > 0 ? `at most ${max} ms` : 'no grant'}.`,
        {
          hint: max > 0 ? 'Choose a shorter grant (or none), then vote again.' : 'Approve without a grant (--grant none).',
          details: { approvalId: id },
        },
      );
    }
  }
  return undefined;
}

/** Any deny decides 'denied'; approve votes from `min` distinct approvers decide 'approved' with the smallest grant chosen. */
export function decide(s: ApprovalSubject, votes: readonly Vote[]): { status: 'pending' | 'approved' | 'denied'; grantMs: number | null } {
  if (votes.some((v) => v.decision === 'deny')) return { status: 'denied', grantMs: null };
  const approvers = new Map<string, Vote>();
  for (const v of votes) if (v.decision === 'approve') approvers.set(v.approver.subject, v);
  if (approvers.size < Math.max(1, s.min)) return { status: 'pending', grantMs: null };
  if (s.maxGrantMs === null) return { status: 'approved', grantMs: null };
  const chosen = Math.min(...[...approvers.values()].map((v) => v.grantMs ?? 0));
  return { status: 'approved', grantMs: Math.min(chosen, s.maxGrantMs) };
}

export function millis(now: Date): number {
  const ms = now.getTime();
  if (!Number.isFinite(ms)) throw new TypeError('now must be a valid Date');
  return ms;
}

export function toGrant(row: GrantRow): StoredGrant {
  return Object.freeze({
    id: row.id,
    subject: row.subject,
    issuer: row.issuer,
    tool: row.tool,
    connection: row.connection,
    rule: row.rule,
    approvalId: row.approval_id,
    createdAt: iso(row.created_ms),
    expiresAt: iso(row.expires_ms),
    revokedAt: isoOrNull(row.revoked_ms),
    revokedBy: row.revoked_by,
  });
}

/** The listeners of one store handle: a throwing listener never fails the store's own work. */
export interface DecisionListeners {
  subscribe(listener: DecisionListener): () => void;
  emit(decision: ApprovalDecision, count: number): void;
}

export function decisionListeners(): DecisionListeners {
  const listeners = new Set<DecisionListener>();
  return {
    subscribe(listener) {
      const entry: DecisionListener = (d, n) => listener(d, n);
      listeners.add(entry);
      return () => void listeners.delete(entry);
    },
    emit(decision, count) {
      if (count <= 0) return;
      for (const listener of listeners) {
        try {
          listener(decision, count);
        } catch {
          // A metric's failure is no failure of the decision it counts.
        }
      }
    },
  };
}

/** A vote that resolved with its request decided was the deciding one (a decided request takes no vote): counted once. */
export function decidedBy(listeners: DecisionListeners): (after: StoredApproval) => StoredApproval {
  return (after) => {
    if (after.status === 'approved' || after.status === 'denied') listeners.emit(after.status, 1);
    return after;
  };
}
