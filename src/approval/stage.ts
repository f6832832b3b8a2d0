// The approve stage. A call whose decision is `approve` runs only with a
// clearance, and the stage is the order in which the adapters of `Approver`
// (adapters/) are asked for one: a valid grant for this principal, connection
// and rule; a yes from the human at the client (elicitation on MCP 2025-11-25,
// an InputRequiredResult on 2026-07-28, whose re-issued call carries the answer);
// an out-of-band approval of this exact request (by hash). The first adapter that
// takes the call decides it (or answers "input required": nothing runs in that
// round), journaling every step, and throws a coded refusal
// (declined, pending, timeout, unavailable) when it does not clear the call.
// When no adapter can take the call, it is refused as unavailable. A call the
// client cancelled (channel.signal) stops asking at once: nothing runs.

import type { ImpactPreview, ParsedRequest } from '../backends/backend.js';
import { DrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { Decision } from '../policy/evaluate.js';
import { APPROVERS } from './adapters/index.js';
import { requestHash, type ApprovalCall, type ApprovalChannel, type ApprovalContext, type ApprovalSubject, type ApproverOutcome } from './approver.js';

export type { ApprovalContext, ApproverOutcome, Clearance, InputRequired } from './approver.js';

interface ApproveInput {
  readonly callId: string;
  readonly request: ParsedRequest;
  readonly decision: Decision;
  readonly identity: Identity;
  readonly channel: ApprovalChannel;
  /** Dry run of the write, when the rule asks for a preview; may throw limits.affected_rows. */
  readonly preview: (() => Promise<ImpactPreview>) | null;
}

export async function approveStage(ctx: ApprovalContext, input: ApproveInput): Promise<ApproverOutcome> {
  const { request, decision, identity } = input;
  const rule = decision.rule;
  if (!rule || decision.effect !== 'approve') throw new TypeError('approveStage needs an approve decision with its rule');
  const channel = identity.principal === 'service' ? withoutPerson(rule, identity.subject, input.channel) : input.channel;
  const call: ApprovalCall = { callId: input.callId, request, rule, identity, channel, subject: once(() => approvalSubject(input, rule)) };
  for (const approver of ctx.approvers ?? APPROVERS) {
    const outcome = await approver.clear(call, ctx);
    if (outcome) return outcome;
  }
  throw new DrawbridgeError(
    'approval.unavailable',
    `Rule ${rule.name} needs your approval in the client, but ${channel.clientName ?? 'this client'} cannot show an ` +
      `approval prompt (it did not declare the elicitation capability), and the rule names no out-of-band approvers.`,
    { hint: 'Use an MCP client that supports elicitation, or ask the operator to add approvers: { groups: [...] } to the rule.' },
  );
}

/**
 * A service's own token (client_credentials) has no person behind it, so nobody at the client
 * can be asked: in-band prompts are taken off the channel, and a rule that only the requester
 * could satisfy is refused at once, saying why. With approver groups the request goes out of band.
 */
function withoutPerson(rule: NonNullable<Decision['rule']>, subject: string, channel: ApprovalChannel): ApprovalChannel {
  if (!rule.approvers?.groups) {
    throw new DrawbridgeError(
      'approval.unavailable',
      `Rule ${rule.name} needs the requester's own approval in the client, but ${subject} is a service (its token is a ` +
        `client_credentials token): there is no person at the client to ask, and the rule names no out-of-band approvers. Nothing was run.`,
      { hint: 'Run this as a person (a signed-in user), or ask the operator to add approvers: { groups: [...] } to the rule so a human decides out of band.' },
    );
  }
  // Nothing in band: no elicitation/create (2025-11-25), no form in an input_required answer
  // (2026-07-28). Kept by name, not dropped by name: a way to ask the client added to the channel
  // later is left off for services without anyone having to remember this function.
  return {
    ...(channel.clientName === undefined ? {} : { clientName: channel.clientName }),
    ...(channel.era === undefined ? {} : { era: channel.era }),
    formElicitation: false,
    ...(channel.progress === undefined ? {} : { progress: channel.progress }),
    ...(channel.signal === undefined ? {} : { signal: channel.signal }),
  };
}

/** What a human is asked to approve, bound to the request's hash; runs the preview when the rule asks for one. */
async function approvalSubject(input: ApproveInput, rule: NonNullable<Decision['rule']>): Promise<ApprovalSubject> {
  const { request, identity, channel } = input;
  const approvers = rule.approvers ?? {};
  return {
    hash: requestHash(request.tool, request.connection, request.input),
    callId: input.callId,
    tool: request.tool,
    connection: request.connection,
    input: request.input,
    summary: request.summary,
    reasons: request.reasons,
    rule: rule.name,
    message: input.decision.message,
    requester: { subject: identity.subject, groups: identity.groups, kind: identity.kind, issuer: identity.issuer, principal: identity.principal },
    ...(channel.clientName ? { client: channel.clientName } : {}),
    approverGroups: approvers.groups ?? [],
    // A service cannot be its own approver out of band either (its token could vote over the API): nobody there to judge.
    allowRequester: approvers.requester === true && identity.principal !== 'service',
    min: approvers.min ?? 1,
    maxGrantMs: rule.grant ?? null,
    preview: input.preview ? await input.preview() : null,
  };
}

/** `make` runs on the first call only; later calls share its promise (one preview per call). */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => (made ??= make());
}
