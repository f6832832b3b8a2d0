// The grant adapter: a grant from an earlier approval covers this principal,
// connection and rule until it expires, so the call is cleared without asking
// anyone (and without building the subject, so no preview runs). It also
// creates grants, for the adapters whose approver chose one: grants are made
// and found in this one file (with `clearedBy`, which turns an approval consumed
// for this call into its clearance, and its grant when the approvers chose one).

import type { ApprovalContext, ApprovalSubject, Approver, Clearance } from '../approver.js';
import type { StoredApproval, StoredGrant } from '../../state/contract.js';

export const grantApprover: Approver = {
  name: 'grant',
  async clear(call, ctx) {
    const { identity, request, rule } = call;
    const grant = await ctx
      .store()
      .findGrant({ subject: identity.subject, issuer: identity.issuer, tool: request.tool, connection: request.connection, rule: rule.name }, ctx.clock());
    return grant ? { kind: 'grant', grant } : null;
  },
};

/** Grants the requester `grantMs` more of calls like `s` (same tool, connection and rule), journaled. */
export async function createGrant(ctx: ApprovalContext, s: ApprovalSubject, approvalId: string, grantMs: number): Promise<StoredGrant> {
  const grant = await ctx
    .store()
    .createGrant(
      { subject: s.requester.subject, issuer: s.requester.issuer, tool: s.tool, connection: s.connection, rule: s.rule, approvalId, grantMs },
      ctx.clock(),
    );
  await ctx.journal.append(
    'grant',
    s.callId,
    {
      event: 'created',
      grantId: grant.id,
      approvalId,
      subject: grant.subject,
      tool: grant.tool,
      connection: grant.connection,
      rule: grant.rule,
      expiresAt: grant.expiresAt,
    },
    ctx.clock(),
  );
  return grant;
}

/**
 * The call `s` is cleared by `consumed` (an approval the store just consumed for it, exactly once):
 * journaled as `consumed` (with `via` when the adapter names itself there), then a grant of the
 * approvers' choice, bounded by the rule's grant, for the calls like it.
 */
export async function clearedBy(
  ctx: ApprovalContext,
  s: ApprovalSubject,
  consumed: StoredApproval,
  via: { readonly clearance: 'cli' | 'input_required'; readonly journaled: boolean },
): Promise<Clearance> {
  const votes = consumed.votes.map((v) => ({ approver: v.approver.subject, decision: v.decision, via: v.via, at: v.at }));
  const record = { event: 'consumed', approvalId: consumed.id, ...(via.journaled ? { via: via.clearance } : {}), requestedBy: consumed.subject.callId, votes };
  await ctx.journal.append('approval', s.callId, record, ctx.clock());
  const grantMs = Math.min(consumed.grantMs ?? 0, s.maxGrantMs ?? 0);
  const grant = grantMs > 0 ? await createGrant(ctx, s, consumed.id, grantMs) : null;
  return { kind: 'approval', approvalId: consumed.id, via: via.clearance, votes: consumed.votes, grant };
}
