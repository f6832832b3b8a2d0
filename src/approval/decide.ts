// Out-of-band decisions, whatever channel carries them (the CLI on the gateway
// host, the approvals API, the console): a vote on a stored request, journaled
// in the same store transaction, and a grant revocation, journaled after it.
// Engine-neutral: takes an open state, an authenticated approver and a clock;
// knows nothing of CLI output or HTTP. Who may vote is the store's check
// (ApprovalStore.vote); how the approver was authenticated is the caller's.

import type { ApprovalStore, StateStore, StoredApproval, StoredGrant } from '../state/contract.js';
import type { JournalRecord } from '../state/records.js';
import type { ApprovalVia, ApproverIdentity, Vote } from './approver.js';
import type { Notifier } from './notify.js';

/** The channels that decide out of band; the vote and its journal record name it. */
export type DecisionVia = Exclude<ApprovalVia, 'elicitation' | 'input_required'>;

export interface Decision {
  readonly approvalId: string;
  readonly decision: 'approve' | 'deny';
  readonly via: DecisionVia;
  readonly reason?: string;
  /** The grant the approver chose (ms); 0 or absent for this call only. Ignored for deny. */
  readonly grantMs?: number;
}

/**
 * A vote's result. `orphan` is set when the journal record was appended but the
 * store did not keep the vote (its COMMIT failed after the append): the caller
 * must say so loudly, because the journal then over-records a vote.
 */
export type DecisionResult =
  | { readonly ok: true; readonly approval: StoredApproval; readonly record: JournalRecord | null; readonly approver: ApproverIdentity }
  | { readonly ok: false; readonly error: unknown; readonly orphan: JournalRecord | null };

/** How an approver is journaled: never a token, only who and from where. */
export function approverRecord(a: ApproverIdentity): Record<string, unknown> {
  return { subject: a.subject, groups: [...a.groups], kind: a.kind };
}

/**
 * A vote and its journal record commit together or not at all, as far as two
 * stores allow. The vote runs in one store write transaction, and the journal
 * record is appended from inside that transaction, after the vote is validated
 * and before it commits. If the append fails, the store rolls the vote back: a
 * vote never counts without its journal record. The remaining window is the
 * store's COMMIT failing after the append; then the journal holds a vote the
 * store did not keep (an over-record, never a silent approval), reported as `orphan`.
 * A committed vote wakes a waiting call through the store's change notice.
 */
export async function decideApproval(
  state: StateStore,
  approver: ApproverIdentity,
  d: Decision,
  now: Date,
  notify?: Notifier['notify'],
): Promise<DecisionResult> {
  const grantMs = d.decision === 'approve' ? (d.grantMs ?? 0) : 0;
  const reason = d.reason;
  const vote: Vote = {
    approver,
    decision: d.decision,
    via: d.via,
    ...(reason !== undefined ? { reason } : {}),
    ...(grantMs > 0 ? { grantMs } : {}),
    at: now.toISOString(),
  };
  let record: JournalRecord | undefined;
  try {
    const approval = await state.approvals.vote(d.approvalId, vote, now, {
      beforeCommit: async (a) => {
        record = await state.journal.append(
          'approval',
          a.subject.callId,
          {
            event: 'vote',
            approvalId: a.id,
            hash: a.hash,
            decision: d.decision,
            approver: approverRecord(approver),
            via: d.via,
            reason: reason ?? null,
            grantMs: d.decision === 'approve' ? grantMs : null,
            status: a.status,
          },
          now,
        );
      },
    });
    // approval.notify: only the vote that decided the request (queued, never blocks the answer).
    if (approval.status === 'approved' || approval.status === 'denied') notify?.('approval.decided', approval);
    return { ok: true, approval, record: record ?? null, approver };
  } catch (error) {
    return { ok: false, error, orphan: record ?? null };
  }
}

/** The revoked grant, and the call its revocation is journaled under. */
export interface Revocation {
  readonly grant: StoredGrant;
  readonly callId: string;
}

/**
 * Revoking reduces access, so it must not wait on the journal: the grant is
 * revoked first (revokeGrant), then the revocation is journaled (journalRevocation).
 * If the journal cannot be written the grant stays revoked; the caller says so.
 */
export async function revokeGrant(store: ApprovalStore, approver: ApproverIdentity, grantId: string, now: Date): Promise<Revocation> {
  const grant = await store.revokeGrant(grantId, approver.subject, now);
  // Journal under the call that requested the approval; in-band grants have no stored request.
  return { grant, callId: (await store.get(grant.approvalId, now))?.subject.callId ?? grant.id };
}

export function journalRevocation(state: StateStore, approver: ApproverIdentity, r: Revocation, now: Date): Promise<JournalRecord> {
  return state.journal.append(
    'grant',
    r.callId,
    { event: 'revoked', grantId: r.grant.id, approvalId: r.grant.approvalId, by: approver.subject, approver: approverRecord(approver) },
    now,
  );
}
