// The input-required adapter: the human at the agent's client approves in band on MCP
// 2026-07-28, where a server cannot send the client a request of its own. It takes the calls the
// elicitation adapter takes on 2025-11-25 (the rule lets the requester approve alone) when the
// call came with `channel.rounds` (a modern request whose client declared form elicitation).
// Round 1 opens the approval request in the store and answers "input required": the same form
// the elicitation prompt shows, and a sealed requestState (../request-state.ts) naming the request.
// Round 2 is the client's re-issue with the answer and the state: a state that does not open is
// refused (approval.state_invalid) and journaled with its reason; an accepted form is the
// requester's approve vote, then the store's single-use consume (a replayed state finds the
// approval consumed: refused, journaled); a declined or cancelled form is a deny vote, journaled
// 'declined' as elicitation journals it, and nothing runs.

import { DrawbridgeError, isDrawbridgeError } from '../../errors.js';
import type { StoredApproval } from '../../state/contract.js';
import {
  APPROVAL_INPUT_KEY,
  requestHash,
  type ApprovalCall,
  type ApprovalContext,
  type ApproverIdentity,
  type ApproverOutcome,
  type Approver,
  type Clearance,
  type ElicitAnswer,
  type InputRequired,
  type InputRounds,
  type Vote,
} from '../approver.js';
import { approvalAnswer, approvalForm, describeForApproval, grantChoices } from '../prompt.js';
import { REFUSAL_TEXT, requestStateKeySource, type RequestStateBinding, type RequestStateRefusal, type RequestStateSealer } from '../request-state.js';
import { requesterAlone } from './elicitation.js';
import { clearedBy } from './grant.js';

declare module '../approver.js' {
  interface ApprovalVias {
    /** The human at the client, through an MCP 2026-07-28 InputRequiredResult and the re-issued call. */
    input_required: true;
  }
}

const VIA = 'input_required';

/** Why a round-2 call is refused besides its state not opening. */
type RoundRefusal = RequestStateRefusal | 'replayed' | 'unknown_approval';

const ROUND_REFUSAL_TEXT: Readonly<Record<RoundRefusal, string>> = {
  ...REFUSAL_TEXT,
  replayed: 'was already answered: the approval it carries was used (or declined) once',
  unknown_approval: 'names no approval request of this call',
};

export const inputRequiredApprover: Approver = {
  name: 'input-required',
  async clear(call, ctx) {
    const rounds = call.channel.rounds;
    if (!requesterAlone(call.rule) || !rounds) return null;
    const sealer = await sealerOf(ctx)();
    return rounds.requestState === undefined ? firstRound(ctx, call, sealer) : nextRound(ctx, call, sealer, rounds);
  },
};

/** Contexts built without a sealer (tests) use the store's shared key, looked up once per context. */
const fallbackSealers = new WeakMap<ApprovalContext, () => Promise<RequestStateSealer>>();

function sealerOf(ctx: ApprovalContext): () => Promise<RequestStateSealer> {
  if (ctx.requestState) return ctx.requestState;
  let source = fallbackSealers.get(ctx);
  if (!source) fallbackSealers.set(ctx, (source = requestStateKeySource(null, ctx.store)));
  return source;
}

/** The principal and the request digest the state is bound to: this call's, whatever the state says. */
function bindingOf(call: ApprovalCall): RequestStateBinding {
  const { identity, request } = call;
  return { issuer: identity.issuer, subject: identity.subject, digest: requestHash(request.tool, request.connection, request.input) };
}

function approverOf(call: ApprovalCall): ApproverIdentity {
  return { subject: call.identity.subject, groups: call.identity.groups, kind: call.identity.kind };
}

/** Round 1: the approval request opened (or the open one reused) and journaled, the form and a state naming it. */
async function firstRound(ctx: ApprovalContext, call: ApprovalCall, sealer: RequestStateSealer): Promise<ApproverOutcome> {
  const s = await call.subject();
  const { approval } = await ctx.store().openRequest(s, ctx.clock(), ctx.settings.elicitationTimeoutMs);
  // Decided meanwhile by an approver of the rule's groups, and the denial not yet told: told now.
  if (approval.status === 'denied') return settle(ctx, call, approval, null);
  await ctx.journal.append(
    'approval',
    call.callId,
    { event: 'requested', approvalId: approval.id, via: VIA, hash: s.hash, rule: s.rule, requester: s.requester, client: s.client ?? null, preview: s.preview },
    ctx.clock(),
  );
  return inputRequired(ctx, call, sealer, approval);
}

/** "Input required": the approval form for the stored request and a state sealed for this principal and request. */
function inputRequired(ctx: ApprovalContext, call: ApprovalCall, sealer: RequestStateSealer, approval: StoredApproval): InputRequired {
  const now = ctx.clock().getTime();
  const expiresAt = new Date(Math.min(now + ctx.settings.elicitationTimeoutMs, Date.parse(approval.expiresAt)));
  const form = { message: describeForApproval(approval.subject), grantChoices: grantChoices(approval.subject.maxGrantMs) };
  return {
    kind: 'input_required',
    approvalId: approval.id,
    inputRequests: { [APPROVAL_INPUT_KEY]: { method: 'elicitation/create', params: approvalForm(form) } },
    requestState: sealer.seal(bindingOf(call), approval.id, expiresAt),
  };
}

/** Round 2: the state opened and checked, then the answer counted as the requester's vote, and the approval consumed once. */
async function nextRound(ctx: ApprovalContext, call: ApprovalCall, sealer: RequestStateSealer, rounds: InputRounds): Promise<ApproverOutcome> {
  const binding = bindingOf(call);
  const opened = sealer.open(rounds.requestState, binding, ctx.clock());
  if (!opened.ok) throw await refused(ctx, call, opened.reason, null);
  const id = opened.payload.approvalId;
  const store = ctx.store();
  const approval = await store.get(id, ctx.clock());
  // A state this gateway sealed names a request of this principal and call; anything else is a store that changed under it.
  if (
    !approval ||
    approval.hash !== binding.digest ||
    approval.subject.requester.subject !== binding.subject ||
    approval.subject.requester.issuer !== binding.issuer
  )
    throw await refused(ctx, call, 'unknown_approval', id);
  if (rounds.response === undefined) {
    // Re-issued without the answer: the human is asked again, for the same request.
    return approval.status === 'pending' ? inputRequired(ctx, call, sealer, approval) : settle(ctx, call, approval, null);
  }
  const response = rounds.response !== null && typeof rounds.response === 'object' ? (rounds.response as Record<string, unknown>) : {};
  const answer = approvalAnswer({ message: '', grantChoices: grantChoices(approval.subject.maxGrantMs) }, response['action'], response['content']);
  if (approval.status !== 'pending') return settle(ctx, call, approval, answer);
  const approve = answer.action === 'accept' && answer.approve;
  const at = ctx.clock();
  const who = approverOf(call);
  const client = call.channel.clientName;
  const reason = answer.action === 'accept' ? answer.reason : undefined;
  const grantMs = answer.action === 'accept' && approve ? Math.min(answer.grantMs, approval.subject.maxGrantMs ?? 0) : 0;
  const vote: Vote = {
    approver: who,
    decision: approve ? 'approve' : 'deny',
    via: VIA,
    ...(client ? { client } : {}),
    ...(reason ? { reason } : {}),
    ...(grantMs > 0 ? { grantMs } : {}),
    at: at.toISOString(),
  };
  // The journal record commits with the vote: a vote never counts without it.
  const record = approve
    ? {
        event: 'approved',
        approvalId: id,
        via: VIA,
        approver: who,
        client: client ?? null,
        reason: reason ?? null,
        grantMs,
        requestedBy: approval.subject.callId,
      }
    : {
        event: 'declined',
        approvalId: id,
        via: VIA,
        approver: who,
        client: client ?? null,
        action: answer.action,
        ...(reason ? { reason } : {}),
        requestedBy: approval.subject.callId,
      };
  let after: StoredApproval;
  try {
    after = await store.vote(id, vote, at, { beforeCommit: async () => void (await ctx.journal.append('approval', call.callId, record, at)) });
  } catch (error) {
    // Another re-issue with the same state voted first (or the request was decided elsewhere): what it decided counts.
    if (!isDrawbridgeError(error) || (error.code !== 'approval.not_pending' && error.code !== 'approval.duplicate_vote')) throw error;
    const now = await store.get(id, ctx.clock());
    if (!now) throw await refused(ctx, call, 'unknown_approval', id);
    return settle(ctx, call, now, answer);
  }
  if (!approve) {
    // Told now, so the requester's next identical call asks anew (as a declined elicitation prompt does).
    await store.reportDenial(id, ctx.clock());
    throw declinedError(call, answer);
  }
  return consume(ctx, call, after);
}

/** A decided request, met by a round that did not decide it: run it once, tell its denial once, or refuse the replay. */
async function settle(ctx: ApprovalContext, call: ApprovalCall, approval: StoredApproval, answer: ElicitAnswer | null): Promise<Clearance> {
  switch (approval.status) {
    case 'approved':
      if (answer && !(answer.action === 'accept' && answer.approve)) {
        // Approved by someone else, but this human said no: nothing runs, and the approval stays for an identical call.
        await ctx.journal.append(
          'approval',
          call.callId,
          { event: 'declined', approvalId: approval.id, via: VIA, approver: approverOf(call), client: call.channel.clientName ?? null, action: answer.action },
          ctx.clock(),
        );
        throw declinedError(call, answer);
      }
      return consume(ctx, call, approval);
    case 'denied': {
      if (approval.consumedAt !== null) throw await refused(ctx, call, 'replayed', approval.id);
      const reported = await ctx.store().reportDenial(approval.id, ctx.clock());
      const deny = reported.votes.find((v) => v.decision === 'deny');
      await ctx.journal.append(
        'approval',
        call.callId,
        {
          event: 'declined',
          approvalId: reported.id,
          via: deny?.via ?? VIA,
          approver: deny ? { subject: deny.approver.subject, groups: [...deny.approver.groups], kind: deny.approver.kind } : null,
          reason: deny?.reason ?? null,
          requestedBy: reported.subject.callId,
        },
        ctx.clock(),
      );
      throw new DrawbridgeError('approval.declined', `Approval ${reported.id} was denied${deny?.reason ? `: ${deny.reason}` : ''}; nothing was run.`);
    }
    case 'consumed':
      throw await refused(ctx, call, 'replayed', approval.id);
    case 'expired':
      throw await refused(ctx, call, 'expired', approval.id);
    case 'pending':
      // Only reached by a round that could not vote on a pending request: a bug, not a decision.
      throw new TypeError(`approval ${approval.id} is still pending after the vote`);
  }
}

/** Exactly once, by the store: of concurrent re-issues with one state, one consumes; the others are replays. */
async function consume(ctx: ApprovalContext, call: ApprovalCall, approval: StoredApproval): Promise<Clearance> {
  if (call.channel.signal?.aborted) {
    await ctx.journal.append(
      'approval',
      call.callId,
      { event: 'abandoned', approvalId: approval.id, via: VIA, reason: 'the client cancelled the call' },
      ctx.clock(),
    );
    throw new DrawbridgeError('approval.unavailable', 'The call was cancelled before its approval was used; nothing was run.');
  }
  let consumed: StoredApproval;
  try {
    consumed = await ctx.store().consume(approval.id, ctx.clock());
  } catch (error) {
    if (isDrawbridgeError(error) && error.code === 'approval.not_approved') throw await refused(ctx, call, 'replayed', approval.id);
    throw error;
  }
  // The consumed record and any grant name this call (the re-issued one), not the round that asked.
  return clearedBy(ctx, { ...consumed.subject, callId: call.callId }, consumed, { clearance: VIA, journaled: true });
}

function declinedError(call: ApprovalCall, answer: ElicitAnswer): DrawbridgeError {
  const how = answer.action === 'cancel' ? 'cancelled' : 'declined';
  return new DrawbridgeError('approval.declined', `The approval was ${how} in ${call.channel.clientName ?? 'the client'}; nothing was run.`);
}

/** A round-2 state refused: journaled with its reason (and the approval, once known), answered approval.state_invalid. */
async function refused(ctx: ApprovalContext, call: ApprovalCall, reason: RoundRefusal, approvalId: string | null): Promise<DrawbridgeError> {
  await ctx.journal.append(
    'approval',
    call.callId,
    {
      event: 'refused',
      via: VIA,
      reason,
      approvalId,
      requester: { subject: call.identity.subject, issuer: call.identity.issuer },
      client: call.channel.clientName ?? null,
    },
    ctx.clock(),
  );
  return new DrawbridgeError('approval.state_invalid', `The requestState sent with this call ${ROUND_REFUSAL_TEXT[reason]}; nothing was run.`, {
    details: { reason, ...(approvalId ? { approvalId } : {}) },
  });
}
