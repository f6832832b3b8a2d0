// The grant adapter: a grant from an earlier approval covers this principal,
// connection and rule until it expires, so the call is cleared without asking
// anyone (and without building the subject, so no preview runs). It also
// creates grants, for the adapters whose approver chose one: grants are made
// and found in this one file.

import type { ApprovalContext, ApprovalSubject, Approver } from '../approver.js';
import type { StoredGrant } from '../../state/contract.js';

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
