// The elicitation adapter: the human at the agent's client approves in band,
// through the MCP form the transport offers (channel.elicit, built in
// ../elicitation.ts). It takes a call only when the rule lets the requester
// approve alone (requester: true, min 1) and the client can show a form;
// otherwise the next adapter is asked. The prompt, the answer and a grant the
// human chose are journaled; no answer, a refusal or a cancelled call throws a
// coded refusal and nothing runs.

import { randomBytes } from 'node:crypto';
import { formatDuration } from '../../config/units.js';
import { DrawbridgeError } from '../../errors.js';
import { PROGRESS_EVERY_MS, type ApprovalChannel, type ApprovalContext, type ApprovalSubject, type Approver, type Clearance, type Vote } from '../approver.js';
import { describeForApproval, grantChoices } from '../prompt.js';
import { createGrant } from './grant.js';
import type { Rule } from '../../policy/schema.js';

/** The rule lets the requester approve alone (requester: true, min 1): the human at the client may decide in band. */
export function requesterAlone(rule: Rule): boolean {
  const approvers = rule.approvers ?? {};
  return approvers.requester === true && (approvers.min ?? 1) === 1;
}

export const elicitationApprover: Approver = {
  name: 'elicitation',
  async clear(call, ctx) {
    if (!requesterAlone(call.rule) || !call.channel.elicit) return null;
    return askInBand(ctx, await call.subject(), call.channel, call.channel.elicit);
  },
};

async function askInBand(
  ctx: ApprovalContext,
  s: ApprovalSubject,
  channel: ApprovalChannel,
  elicit: NonNullable<ApprovalChannel['elicit']>,
): Promise<Clearance> {
  const approvalId = `ap_${randomBytes(8).toString('hex').slice(0, 10)}`;
  await ctx.journal.append(
    'approval',
    s.callId,
    { event: 'requested', approvalId, via: 'elicitation', hash: s.hash, rule: s.rule, requester: s.requester, client: s.client ?? null, preview: s.preview },
    ctx.clock(),
  );
  let answer;
  // A human may take longer than the client's request timeout: progress keeps the call open.
  const heartbeat = channel.progress
    ? keepAlive(ctx, channel.progress, `Waiting for ${s.requester.subject} to answer the approval prompt in ${s.client ?? 'the client'}`)
    : null;
  try {
    answer = await elicit({ message: describeForApproval(s), grantChoices: grantChoices(s.maxGrantMs) }, ctx.settings.elicitationTimeoutMs, channel.signal);
  } catch (error) {
    if (channel.signal?.aborted) throw await abandoned(ctx, s, approvalId, channel.signal.reason);
    const timedOut = /timed? ?out/i.test((error as Error)?.message ?? '');
    await ctx.journal.append(
      'approval',
      s.callId,
      { event: timedOut ? 'timeout' : 'failed', approvalId, via: 'elicitation', error: (error as Error)?.message ?? String(error) },
      ctx.clock(),
    );
    if (timedOut) {
      throw new DrawbridgeError(
        'approval.timeout',
        `Nobody answered the approval prompt within ${formatDuration(ctx.settings.elicitationTimeoutMs)}; nothing was run.`,
      );
    }
    throw new DrawbridgeError(
      'approval.unavailable',
      `The approval prompt could not be shown: ${(error as Error)?.message ?? String(error)}; nothing was run.`,
    );
  } finally {
    heartbeat?.stop();
  }
  // Answered, but the call was cancelled meanwhile: nobody is waiting for a result.
  if (channel.signal?.aborted) throw await abandoned(ctx, s, approvalId, channel.signal.reason);
  const who = { subject: s.requester.subject, groups: s.requester.groups, kind: s.requester.kind };
  // One clock reading for the answer: the journal's approved record and the vote carried into the call's clearance must agree.
  const answeredAt = ctx.clock();
  const at = answeredAt.toISOString();
  if (answer.action !== 'accept' || !answer.approve) {
    const how = answer.action === 'accept' ? 'declined' : answer.action === 'decline' ? 'declined' : 'cancelled';
    await ctx.journal.append(
      'approval',
      s.callId,
      {
        event: 'declined',
        approvalId,
        via: 'elicitation',
        approver: who,
        client: s.client ?? null,
        action: answer.action,
        ...(answer.action === 'accept' && answer.reason ? { reason: answer.reason } : {}),
      },
      answeredAt,
    );
    ctx.decided?.('denied');
    throw new DrawbridgeError('approval.declined', `The approval was ${how} in ${s.client ?? 'the client'}; nothing was run.`);
  }
  const grantMs = Math.min(answer.grantMs, s.maxGrantMs ?? 0);
  const vote: Vote = {
    approver: who,
    decision: 'approve',
    via: 'elicitation',
    ...(s.client ? { client: s.client } : {}),
    ...(answer.reason ? { reason: answer.reason } : {}),
    ...(grantMs > 0 ? { grantMs } : {}),
    at,
  };
  await ctx.journal.append(
    'approval',
    s.callId,
    { event: 'approved', approvalId, via: 'elicitation', approver: who, client: s.client ?? null, reason: answer.reason ?? null, grantMs },
    answeredAt,
  );
  ctx.decided?.('approved');
  const grant = grantMs > 0 ? await createGrant(ctx, s, approvalId, grantMs) : null;
  return { kind: 'approval', approvalId, via: 'elicitation', votes: [vote], grant };
}

/** Sends `message` as progress now and every progressEveryMs until stopped; failures are ignored. */
function keepAlive(ctx: ApprovalContext, progress: (message: string) => Promise<void>, message: string): { stop(): void } {
  const send = () => void progress(message).catch(() => undefined);
  send();
  const timer = setInterval(send, ctx.progressEveryMs ?? PROGRESS_EVERY_MS);
  return { stop: () => clearInterval(timer) };
}

/** The client cancelled the call while the prompt was open: journaled, and nothing runs. */
async function abandoned(ctx: ApprovalContext, s: ApprovalSubject, approvalId: string, why: unknown): Promise<DrawbridgeError> {
  // The gateway shutting down (pipeline/drain.ts) withdraws the prompt: the human answers again when the call is re-issued.
  const restarting = why instanceof DrawbridgeError && why.code === 'gateway.shutting_down';
  const reason = restarting ? 'the gateway is shutting down' : 'the client cancelled the call';
  await ctx.journal.append('approval', s.callId, { event: 'abandoned', approvalId, via: 'elicitation', reason }, ctx.clock());
  if (restarting) {
    return new DrawbridgeError(
      'gateway.shutting_down',
      'The gateway is restarting while this call waited for your answer to the approval prompt; nothing was run. Call again.',
    );
  }
  return new DrawbridgeError('approval.unavailable', 'The call was cancelled before the approval prompt was answered; nothing was run.');
}
