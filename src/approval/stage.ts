// The approve stage. A call whose decision is `approve` runs only with a
// clearance: a valid grant for this principal, connection and rule; an
// out-of-band approval of this exact request (by hash); or a yes from the human
// at the client through elicitation. Every step is journaled. Anything else
// throws a coded refusal: declined, pending, timeout, unavailable. A refusal
// about an out-of-band request names it and says, in words an agent follows,
// how to pick up the decision (the same call again, which waits up to
// approval.wait); its details carry the same as structuredContent.approval.
// A call the client cancelled (channel.signal) stops asking at once: nothing
// runs, and an out-of-band approval is left for the agent's next identical call.

import { randomBytes } from 'node:crypto';
import type { ImpactPreview, ParsedRequest } from '../backends/backend.js';
import { formatDuration } from '../config/units.js';
import type { GatewayConfig } from '../config/schema.js';
import { DrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { ApprovalStore, JournalStore, StoredApproval, StoredGrant } from '../state/contract.js';
import type { Decision } from '../policy/evaluate.js';
import { requestHash, type ApprovalAnswer, type ApprovalChannel, type ApprovalSubject, type Vote } from './approver.js';
import type { Notifier } from './notify.js';
import { grantChoices, describeForApproval } from './prompt.js';

export interface ApprovalContext {
  readonly store: () => ApprovalStore;
  readonly journal: JournalStore;
  readonly clock: () => Date;
  readonly settings: GatewayConfig['approval'];
  /** Real-time sleep; injectable (with `monotonic`) so tests run a long wait in virtual time. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds on a monotonic clock, for how long a call has waited (default performance.now). */
  readonly monotonic?: () => number;
  /** How often a waiting call sends progress notifications (default 5 s). */
  readonly progressEveryMs?: number;
  /** approval.notify: queues a notification (never blocks, never throws). */
  readonly notify?: Notifier['notify'];
}

export type Clearance =
  | { readonly kind: 'grant'; readonly grant: StoredGrant }
  | {
      readonly kind: 'approval';
      readonly approvalId: string;
      readonly via: 'elicitation' | 'cli';
      readonly votes: readonly Vote[];
      readonly grant: StoredGrant | null;
    };

interface ApproveInput {
  readonly callId: string;
  readonly request: ParsedRequest;
  readonly decision: Decision;
  readonly identity: Identity;
  readonly channel: ApprovalChannel;
  /** Dry run of the write, when the rule asks for a preview; may throw limits.affected_rows. */
  readonly preview: (() => Promise<ImpactPreview>) | null;
}

const POLL_MS = 250;
const PROGRESS_EVERY_MS = 5_000;

export async function approveStage(ctx: ApprovalContext, input: ApproveInput): Promise<Clearance> {
  const { request, decision, identity, channel } = input;
  const rule = decision.rule;
  if (!rule || decision.effect !== 'approve') throw new TypeError('approveStage needs an approve decision with its rule');
  const approvers = rule.approvers ?? {};
  const now = ctx.clock();

  // 1. A grant from an earlier approval covers this principal, connection and rule.
  const grant = await ctx
    .store()
    .findGrant({ subject: identity.subject, issuer: identity.issuer, tool: request.tool, connection: request.connection, rule: rule.name }, now);
  if (grant) return { kind: 'grant', grant };

  const hash = requestHash(request.tool, request.connection, request.input);
  const base = {
    hash,
    callId: input.callId,
    tool: request.tool,
    connection: request.connection,
    input: request.input,
    summary: request.summary,
    reasons: request.reasons,
    rule: rule.name,
    message: decision.message,
    requester: { subject: identity.subject, groups: identity.groups, kind: identity.kind, issuer: identity.issuer },
    ...(channel.clientName ? { client: channel.clientName } : {}),
    approverGroups: approvers.groups ?? [],
    allowRequester: approvers.requester === true,
    min: approvers.min ?? 1,
    maxGrantMs: rule.grant ?? null,
  };
  const subject = async (): Promise<ApprovalSubject> => ({ ...base, preview: input.preview ? await input.preview() : null });

  // 2. In band: the requester may approve, and their client can show a form.
  const inBand = approvers.requester === true && (approvers.min ?? 1) === 1;
  if (inBand && channel.elicit) {
    const s = await subject();
    return askInBand(ctx, s, channel, channel.elicit);
  }
  if (!approvers.groups) {
    throw new DrawbridgeError(
      'approval.unavailable',
      `Rule ${rule.name} needs your approval in the client, but ${channel.clientName ?? 'this client'} cannot show an ` +
        `approval prompt (it did not declare the elicitation capability), and the rule names no out-of-band approvers.`,
      { hint: 'Use an MCP client that supports elicitation, or ask the operator to add approvers: { groups: [...] } to the rule.' },
    );
  }

  // 3. Out of band: a pending request approvers act on with `drawbridge approvals`.
  return awaitOutOfBand(ctx, await subject(), channel);
}

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
    if (channel.signal?.aborted) throw await abandoned(ctx, s, approvalId, 'elicitation');
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
  if (channel.signal?.aborted) throw await abandoned(ctx, s, approvalId, 'elicitation');
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
  const grant = grantMs > 0 ? await createGrant(ctx, s, approvalId, grantMs) : null;
  return { kind: 'approval', approvalId, via: 'elicitation', votes: [vote], grant };
}

async function awaitOutOfBand(ctx: ApprovalContext, s: ApprovalSubject, channel: ApprovalChannel): Promise<Clearance> {
  const store = ctx.store();
  const { approval, created } = await store.openRequest(s, ctx.clock(), ctx.settings.pendingTtlMs);
  if (created) {
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
    ctx.notify?.('approval.pending', approval);
  }
  const sleep = ctx.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const monotonic = ctx.monotonic ?? (() => performance.now());
  const started = monotonic();
  let lastProgress = -Infinity;
  let current: StoredApproval | undefined;
  for (;;) {
    current = await store.get(approval.id, ctx.clock());
    if (!current) throw new DrawbridgeError('approval.not_found', `Approval ${approval.id} disappeared from the store.`);
    // Checked first: a cancelled call must neither use up an approval nor swallow a denial.
    if (channel.signal?.aborted) throw await abandoned(ctx, s, current.id, 'cli', current);
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

/** Sends `message` as progress now and every progressEveryMs until stopped; failures are ignored. */
function keepAlive(ctx: ApprovalContext, progress: (message: string) => Promise<void>, message: string): { stop(): void } {
  const send = () => void progress(message).catch(() => undefined);
  send();
  const timer = setInterval(send, ctx.progressEveryMs ?? PROGRESS_EVERY_MS);
  return { stop: () => clearInterval(timer) };
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

/** The client cancelled the call while it was being approved: journaled, and nothing runs. */
async function abandoned(
  ctx: ApprovalContext,
  s: ApprovalSubject,
  approvalId: string,
  via: 'elicitation' | 'cli',
  current?: StoredApproval,
): Promise<DrawbridgeError> {
  await ctx.journal.append(
    'approval',
    s.callId,
    { event: 'abandoned', approvalId, via, reason: 'the client cancelled the call', ...(current ? { status: current.status } : {}) },
    ctx.clock(),
  );
  if (via === 'elicitation') {
    return new DrawbridgeError('approval.unavailable', 'The call was cancelled before the approval prompt was answered; nothing was run.');
  }
  const retry = pickUp(ctx, s);
  return new DrawbridgeError(
    'approval.pending',
    `The call was cancelled while it waited for approval ${approvalId} (${current?.status ?? 'pending'}); nothing was run.`,
    {
      hint: retry,
      details: current ? approvalDetails(ctx, s, current, retry) : { approvalId },
    },
  );
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
  await ctx.journal.append(
    'approval',
    s.callId,
    {
      event: 'consumed',
      approvalId: consumed.id,
      requestedBy: consumed.subject.callId,
      votes: consumed.votes.map((v) => ({ approver: v.approver.subject, decision: v.decision, via: v.via, at: v.at })),
    },
    ctx.clock(),
  );
  const grantMs = Math.min(consumed.grantMs ?? 0, s.maxGrantMs ?? 0);
  const grant = grantMs > 0 ? await createGrant(ctx, s, consumed.id, grantMs) : null;
  return { kind: 'approval', approvalId: consumed.id, via: 'cli', votes: consumed.votes, grant };
}

async function createGrant(ctx: ApprovalContext, s: ApprovalSubject, approvalId: string, grantMs: number): Promise<StoredGrant> {
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
