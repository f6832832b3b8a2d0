// The out-of-band adapter: approvers in the rule's groups decide a pending
// request elsewhere (`drawbridge approvals`, and later the console), by the
// request's hash. It takes a call when the rule names approver groups. The
// call waits up to approval.wait, woken by the store's change notification
// (polling as the fallback), and consumes an approval exactly once. A refusal
// names the request and says, in words an agent follows, how to pick up the
// decision (the same call again); its details carry the same as
// structuredContent.approval. A call the client cancelled stops waiting at
// once: nothing runs, and the approval is left for the next identical call.

import { DrawbridgeError } from '../../errors.js';
import type { ApprovalStore, StoredApproval } from '../../state/contract.js';
import {
  PROGRESS_EVERY_MS,
  type ApprovalAnswer,
  type ApprovalChannel,
  type ApprovalContext,
  type ApprovalSubject,
  type Approver,
  type Clearance,
} from '../approver.js';
import { clearedBy } from './grant.js';

const POLL_MS = 250;

export const outOfBandApprover: Approver = {
  name: 'out-of-band',
  async clear(call, ctx) {
    if (!call.rule.approvers?.groups) return null;
    return awaitOutOfBand(ctx, await call.subject(), call.channel);
  },
};

async function awaitOutOfBand(ctx: ApprovalContext, s: ApprovalSubject, channel: ApprovalChannel): Promise<Clearance> {
  const store = ctx.store();
  const { approval, created } = await store.openRequest(s, ctx.clock(), ctx.settings.pendingTtlMs);
  if (created) await requestCreated(ctx, s, approval);
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const monotonic = ctx.monotonic ?? (() => performance.now());
  const started = monotonic();
  let lastProgress = -Infinity;
  let current: StoredApproval | undefined;
  for (;;) {
    current = await store.get(approval.id, ctx.clock());
    if (!current) throw new DrawbridgeError('approval.not_found', `Approval ${approval.id} disappeared from the store.`);
    // Checked first: a cancelled call must neither use up an approval nor swallow a denial.
    if (channel.signal?.aborted) throw await abandoned(ctx, s, current, channel.signal.reason);
    if (current.status === 'approved') return await consume(ctx, store, current, s);
    if (current.status === 'denied') throw await declined(ctx, store, current, s);
    // Approved when this call found it, consumed by now: another identical call (on any replica) ran it.
    if (current.status === 'consumed') throw usedByAnother(ctx, s, current);
    if (current.status !== 'pending') {
      const retry = `Call ${s.tool} again with exactly the same arguments (${sameArguments(s)}) to ask for a new approval.`;
      throw new DrawbridgeError('approval.timeout', `Approval ${current.id} is ${current.status}; nothing was run.`, {
        hint: retry,
        details: approvalDetails(ctx, s, current, retry),
      });
    }
    const waited = monotonic() - started;
    if (waited >= ctx.settings.waitMs) break;
    if (channel.progress && waited - lastProgress >= (ctx.progressEveryMs ?? PROGRESS_EVERY_MS)) {
      lastProgress = waited;
      const votes = current.votes.filter((v) => v.decision === 'approve').length;
      await channel
        .progress(`Waiting for approval ${current.id} (${votes}/${s.min}) from ${s.approverGroups.join(', ')}: drawbridge approvals approve ${current.id}`)
        .catch(() => undefined);
    }
    await changeOrPoll(store, current.id, sleep(Math.min(POLL_MS, ctx.settings.waitMs - waited)));
  }
  const retry = pickUp(ctx, s);
  throw new DrawbridgeError(
    'approval.pending',
    `Pending approval ${current.id}: a human must approve ${current.id} (${approversOf(s)} ` +
      `must run \`drawbridge approvals approve ${current.id}\`); nothing was run yet.`,
    {
      hint:
        `${retry} Approved: the call runs, once. Denied: you are told why, once. Tell the user ` +
        `that ${current.id} waits for ${approversOf(s)}; it expires at ${current.expiresAt}.`,
      details: approvalDetails(ctx, s, current, retry),
    },
  );
}

/**
 * A new pending request exists (this call opened it; an identical call joining it does not
 * come here): journaled once. Whoever must hear of a new request is told from this step.
 */
async function requestCreated(ctx: ApprovalContext, s: ApprovalSubject, approval: StoredApproval): Promise<void> {
  await ctx.journal.append(
    'approval',
    s.callId,
    {
      event: 'requested',
      approvalId: approval.id,
      via: 'cli',
      hash: s.hash,
      rule: s.rule,
      requester: s.requester,
      client: s.client ?? null,
      approverGroups: s.approverGroups,
      min: s.min,
      preview: s.preview,
      expiresAt: approval.expiresAt,
    },
    ctx.clock(),
  );
  // After the record: a notification names only a request the journal already holds. Queued, never awaited.
  ctx.notify?.('approval.pending', approval);
}

/**
 * Waits for the poll interval, or less when the store reports a change to the request (a vote
 * through another replica or the CLI): the poll is the fallback for a lost notification.
 */
async function changeOrPoll(store: ApprovalStore, id: string, poll: Promise<void>): Promise<void> {
  const stop = new AbortController();
  try {
    await Promise.race([poll, store.changed(id, stop.signal)]);
  } finally {
    stop.abort();
  }
}

/** Who must act: "someone in dba", "2 approvers in dba, sre". */
function approversOf(s: ApprovalSubject): string {
  return `${s.min > 1 ? `${s.min} approvers` : 'someone'} in ${s.approverGroups.join(', ')}`;
}

/** The arguments an identical call repeats, by name: "connection db, same sql". */
function sameArguments(s: ApprovalSubject): string {
  const others = Object.keys(s.input).filter((key) => key !== 'connection');
  return `connection ${s.connection}${others.length > 0 ? `, same ${others.join(', ')}` : ''}`;
}

/** How the agent picks up the decision: the same call again, which waits for it. */
function pickUp(ctx: ApprovalContext, s: ApprovalSubject): string {
  const seconds = Math.round(ctx.settings.waitMs / 1000);
  const waits = seconds > 0 ? `it waits up to ${seconds} s each time` : 'it answers at once each time';
  return `Call ${s.tool} again with exactly the same arguments (${sameArguments(s)}) to pick up the decision; ${waits}.`;
}

/** The error details carrying what the agent is told as structuredContent.approval. */
function approvalDetails(
  ctx: ApprovalContext,
  s: ApprovalSubject,
  approval: Pick<StoredApproval, 'id' | 'status' | 'expiresAt'>,
  retry: string,
): { approvalId: string; approval: ApprovalAnswer } {
  const answer: ApprovalAnswer = {
    id: approval.id,
    status: approval.status,
    tool: s.tool,
    connection: s.connection,
    rule: s.rule,
    expiresAt: approval.status === 'pending' || approval.status === 'approved' ? approval.expiresAt : null,
    waitSeconds: Math.round(ctx.settings.waitMs / 1000),
    retry,
  };
  return { approvalId: approval.id, approval: answer };
}

/**
 * A denial reaches the requester: on the call that waited for it, or on their next
 * identical call (openRequest returns the denied request until it was reported once).
 */
async function declined(ctx: ApprovalContext, store: ApprovalStore, approval: StoredApproval, s: ApprovalSubject): Promise<DrawbridgeError> {
  const reported = await store.reportDenial(approval.id, ctx.clock());
  const deny = reported.votes.find((v) => v.decision === 'deny');
  await ctx.journal.append(
    'approval',
    s.callId,
    {
      event: 'declined',
      approvalId: reported.id,
      via: 'cli',
      approver: deny ? { subject: deny.approver.subject, groups: [...deny.approver.groups], kind: deny.approver.kind } : null,
      reason: deny?.reason ?? null,
      at: deny?.at ?? reported.decidedAt,
      requestedBy: reported.subject.callId,
    },
    ctx.clock(),
  );
  const retry = `Do not call ${s.tool} with these arguments again unless the user asks for it: an identical call asks a human anew.`;
  return new DrawbridgeError('approval.declined', `Approval ${reported.id} was denied${deny?.reason ? `: ${deny.reason}` : ''}; nothing was run.`, {
    details: approvalDetails(ctx, s, reported, retry),
  });
}

/** The client cancelled the call while it waited: journaled, nothing runs, and the request stays for the next identical call. */
async function abandoned(ctx: ApprovalContext, s: ApprovalSubject, current: StoredApproval, why: unknown): Promise<DrawbridgeError> {
  // The gateway shutting down (pipeline/drain.ts) rather than the client: the request stays pending for the re-issued call.
  const restarting = why instanceof DrawbridgeError && why.code === 'gateway.shutting_down';
  await ctx.journal.append(
    'approval',
    s.callId,
    {
      event: 'abandoned',
      approvalId: current.id,
      via: 'cli',
      reason: restarting ? 'the gateway is shutting down' : 'the client cancelled the call',
      status: current.status,
    },
    ctx.clock(),
  );
  const retry = pickUp(ctx, s);
  if (restarting) {
    return new DrawbridgeError(
      'gateway.shutting_down',
      `The gateway is restarting while this call waited for approval ${current.id} (${current.status}); nothing was run. Call again.`,
      { hint: retry, details: approvalDetails(ctx, s, current, retry) },
    );
  }
  return new DrawbridgeError('approval.pending', `The call was cancelled while it waited for approval ${current.id} (${current.status}); nothing was run.`, {
    hint: retry,
    details: approvalDetails(ctx, s, current, retry),
  });
}

/** The approval this call found approved was consumed by another identical call waiting for it (in this process or another replica). */
function usedByAnother(ctx: ApprovalContext, s: ApprovalSubject, approval: StoredApproval): DrawbridgeError {
  const retry = `Call ${s.tool} again with exactly the same arguments (${sameArguments(s)}) to ask for a new approval.`;
  return new DrawbridgeError('approval.pending', `Approval ${approval.id} was used by another identical call that was waiting for it; this call ran nothing.`, {
    hint: retry,
    details: approvalDetails(ctx, s, { ...approval, status: 'consumed' }, retry),
  });
}

async function consume(ctx: ApprovalContext, store: ApprovalStore, approval: StoredApproval, s: ApprovalSubject): Promise<Clearance> {
  // Exactly once: a second call with the same input needs a new approval (or a grant).
  let consumed: StoredApproval;
  try {
    consumed = await store.consume(approval.id, ctx.clock());
  } catch (error) {
    // Another identical call waiting on the same request used the approval first.
    if (error instanceof DrawbridgeError && error.code === 'approval.not_approved') throw usedByAnother(ctx, s, approval);
    throw error;
  }
  return clearedBy(ctx, s, consumed, { clearance: 'cli', journaled: false });
}
