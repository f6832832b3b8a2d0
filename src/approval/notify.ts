// Approval notifications (approval.notify): tells people when an out-of-band request
// becomes pending, when it is decided, and when it expires (watched by the process that
// announced it pending; a restart forgets the watch, the console and CLI still show it), through a Slack-compatible incoming webhook or
// a generic JSON webhook signed with HMAC-SHA256. Boundary: fire-and-forget. notify()
// only queues; delivery (retries with exponential backoff, per-attempt timeouts) runs
// in the background, in order per target, and a delivery that finally fails is journaled
// and logged, never thrown: a notification can neither block nor fail the call.
// What is sent is what an approver may see: names, the parsed summary with the content
// detectors applied, rule, votes, expiry. Never the raw input, the preview's sample rows,
// a URL's secret parts or the signing secret.

import { randomUUID } from 'node:crypto';
import type { NotifyTarget } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { DETECTOR_NAMES } from '../masking/detectors.js';
import { createMasker } from '../masking/masker.js';
import type { ApprovalStore, JournalStore, StoredApproval } from '../state/contract.js';
import { deliveryUrlProblem, errorText, postOnce, signedHeaders } from '../util/signed-webhook.js';

/** The signature scheme lives with the other outbound deliveries (util/signed-webhook.ts); re-exported for existing callers. */
export { webhookSignature } from '../util/signed-webhook.js';

export type NotifyEvent = 'approval.pending' | 'approval.decided' | 'approval.expired';

export interface Notifier {
  /** Queues the event for every target and returns at once. */
  notify(event: NotifyEvent, approval: StoredApproval): void;
  /** Resolves when every queued delivery finished (delivered or given up): tests, shutdown. */
  idle(): Promise<void>;
  /** Messages link to <origin>/console/approvals/<id> from now on (serve --http, once the public URL is known). */
  linkTo(origin: string | null): void;
}

export interface NotifyOptions {
  readonly targets: readonly NotifyTarget[];
  readonly environment: SecretEnvironment;
  readonly journal: JournalStore;
  readonly clock: () => Date;
  /** The gateway's public origin (https://gw.example): messages link to <origin>/console/approvals/<id>. */
  readonly consoleOrigin: string | null;
  /** Where a pending request's expiry is checked once its time has passed; without it, no expiry notices. */
  readonly approvals?: Pick<ApprovalStore, 'get'>;
  /** Resolves after `ms` (default an unref'd timer): the wait for a pending request's expiry; injectable likewise. */
  readonly untilExpiry?: (ms: number) => Promise<void>;
  /** Backoff between attempts; injectable so tests run the retries in virtual time. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Resolves when one attempt has waited too long (default: a real timer of timeoutMs); injectable likewise. */
  readonly deadline?: (ms: number) => Promise<void>;
  /** Milliseconds on a monotonic clock, for the total time bound (default performance.now). */
  readonly monotonic?: () => number;
  /** Where a final failure is logged (default stderr). */
  readonly log?: (line: string) => void;
  readonly retry?: Partial<RetryPolicy>;
}

/** What a gateway's owner may tune: timing (tests run it in virtual time), the log, the retry policy. */
export type NotifyTuning = Partial<Pick<NotifyOptions, 'sleep' | 'deadline' | 'monotonic' | 'log' | 'retry' | 'untilExpiry'>>;

export interface RetryPolicy {
  /** Attempts per notification and target, the first included. */
  readonly attempts: number;
  /** Backoff before the second attempt; doubled before each next one, up to maxDelayMs. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** One attempt is abandoned after this. */
  readonly timeoutMs: number;
  /** No attempt starts later than this after the first. */
  readonly totalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 1_000, maxDelayMs: 30_000, timeoutMs: 10_000, totalMs: 120_000 };

/** Per target, deliveries waiting beyond this are dropped (and logged): a dead receiver must not grow memory without bound. */
const MAX_BACKLOG = 200;
const MAX_SUMMARY_CHARS = 500;

/** The summary echoes the input: the content detectors run on it, as on journaled input. */
const scrubber = createMasker([{ name: 'notify', match: {}, columns: [], detectors: [...DETECTOR_NAMES], patterns: [], style: 'redact' }], new Uint8Array(32));

/** The JSON an approval is described with: what the webhook body carries and the Slack text is made of. */
export interface NotifiedApproval {
  readonly id: string;
  readonly status: StoredApproval['status'];
  readonly tool: string;
  readonly connection: string;
  readonly summary: string;
  readonly rule: string;
  readonly message: string;
  readonly requester: { readonly subject: string; readonly kind: 'local' | 'oidc'; readonly client: string | null };
  readonly approverGroups: readonly string[];
  readonly min: number;
  readonly approvals: number;
  readonly votes: ReadonlyArray<{ readonly approver: string; readonly decision: 'approve' | 'deny'; readonly reason: string | null; readonly at: string }>;
  readonly affectedRows: number | null;
  readonly createdAt: string;
  readonly expiresAt: string;
  readonly decidedAt: string | null;
  readonly grantMs: number | null;
  readonly url: string | null;
}

export function describeApproval(approval: StoredApproval, consoleOrigin: string | null): NotifiedApproval {
  const s = approval.subject;
  const summary = scrubber.maskText(s.summary, null).text;
  return {
    id: approval.id,
    status: approval.status,
    tool: s.tool,
    connection: s.connection,
    summary: summary.length > MAX_SUMMARY_CHARS ? `${summary.slice(0, MAX_SUMMARY_CHARS)}…` : summary,
    rule: s.rule,
    message: s.message,
    requester: { subject: s.requester.subject, kind: s.requester.kind, client: s.client ?? null },
    approverGroups: [...s.approverGroups],
    min: s.min,
    approvals: approval.votes.filter((v) => v.decision === 'approve').length,
    votes: approval.votes.map((v) => ({ approver: v.approver.subject, decision: v.decision, reason: v.reason ?? null, at: v.at })),
    affectedRows: s.preview?.affectedRows ?? null,
    createdAt: approval.createdAt,
    expiresAt: approval.expiresAt,
    decidedAt: approval.decidedAt,
    grantMs: approval.grantMs,
    url: consoleOrigin === null ? null : `${consoleOrigin}/console/approvals/${approval.id}`,
  };
}

/** Slack mrkdwn: &, < and > are control characters in message text. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The Slack message text for an event. */
export function slackText(event: NotifyEvent, a: NotifiedApproval): string {
  const e = escapeSlack;
  const who = `${e(a.requester.subject)}${a.requester.client ? ` (${e(a.requester.client)})` : ''}`;
  const what = `${e(a.tool)} on ${e(a.connection)} for ${who}`;
  const head =
    event === 'approval.pending'
      ? `Approval ${a.id} is waiting: ${who} asks to run ${e(a.tool)} on ${e(a.connection)}`
      : event === 'approval.expired'
        ? `Approval ${a.id} expired ${a.decidedAt === null ? 'without a decision' : 'unused'}: ${what}`
        : `Approval ${a.id} was ${a.status}: ${what}`;
  const lines = [`*${head}*`, `> ${e(a.summary).replace(/\n/g, '\n> ')}`];
  lines.push(`Rule ${e(a.rule)}: ${e(a.message)}`);
  if (a.affectedRows !== null) lines.push(`Preview: ${a.affectedRows} row${a.affectedRows === 1 ? '' : 's'} affected`);
  lines.push(`Votes ${a.approvals}/${a.min} from ${e(a.approverGroups.join(', '))}`);
  for (const v of a.votes) lines.push(`• ${e(v.approver)}: ${v.decision}${v.reason ? ` (${e(v.reason)})` : ''}`);
  if (event === 'approval.pending') lines.push(`Expires ${a.expiresAt}`);
  if (event === 'approval.decided' && a.grantMs) lines.push(`Grant: ${Math.round(a.grantMs / 60_000)} min`);
  if (a.url) lines.push(`<${a.url}|Open in the console>`);
  else if (event === 'approval.pending') lines.push(`Decide with: drawbridge approvals approve ${a.id}`);
  if (event === 'approval.expired') lines.push('The agent must call again to ask anew.');
  return lines.join('\n');
}

interface Delivery {
  readonly event: NotifyEvent;
  readonly approval: StoredApproval;
  readonly deliveryId: string;
}

type Attempt = { readonly ok: true } | { readonly ok: false; readonly retry: boolean; readonly error: string };

export function createNotifier(options: NotifyOptions): Notifier {
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...options.retry };
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref()));
  const monotonic = options.monotonic ?? (() => performance.now());
  const log = options.log ?? ((line: string) => void process.stderr.write(`${line}\n`));
  let consoleOrigin = options.consoleOrigin;
  // setTimeout holds at most 2^31-1 ms (~24.8 days): a longer wait is taken in steps.
  const untilExpiry =
    options.untilExpiry ??
    (async (ms: number) => {
      for (let left = ms; left > 0; left -= 2 ** 31 - 1) await new Promise<void>((r) => setTimeout(r, Math.min(left, 2 ** 31 - 1)).unref());
    });
  // One chain per target keeps its messages in order (pending before decided).
  const chains = options.targets.map(() => ({ tail: Promise.resolve(), backlog: 0 }));

  async function attempt(target: NotifyTarget, d: Delivery): Promise<Attempt> {
    let url: URL;
    let secret: string | null = null;
    try {
      url = new URL(resolveSecret(target.url, options.environment));
      if (target.kind === 'webhook') secret = resolveSecret(target.secret, options.environment);
    } catch (error) {
      const message = error instanceof TypeError ? 'the URL it resolves to is not a URL' : ((error as Error)?.message ?? String(error));
      return { ok: false, retry: false, error: message };
    }
    const refused = deliveryUrlProblem(url);
    if (refused !== null) return { ok: false, retry: false, error: refused };
    const described = describeApproval(d.approval, consoleOrigin);
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'drawbridge-notify' };
    let body: string;
    if (target.kind === 'slack') {
      body = JSON.stringify({ text: slackText(d.event, described) });
    } else {
      body = JSON.stringify({ event: d.event, id: d.deliveryId, approval: described });
      headers['x-drawbridge-event'] = d.event;
      headers['x-drawbridge-delivery'] = d.deliveryId;
      Object.assign(headers, signedHeaders(secret ?? '', options.clock(), body));
    }
    const sent = await postOnce({ url, headers, body, timeoutMs: retry.timeoutMs, ...(options.deadline ? { deadline: options.deadline } : {}) });
    return sent.ok ? { ok: true } : sent;
  }

  async function deliver(index: number, target: NotifyTarget, d: Delivery): Promise<void> {
    const started = monotonic();
    let attempts = 0;
    let last: Attempt;
    for (;;) {
      attempts += 1;
      last = await attempt(target, d);
      if (last.ok || !last.retry || attempts >= retry.attempts) break;
      const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempts - 1));
      if (monotonic() - started + delay > retry.totalMs) break;
      await sleep(delay);
    }
    if (last.ok) return;
    await failed(index, target, d, attempts, last.error);
  }

  async function failed(index: number, target: NotifyTarget, d: Delivery, attempts: number, error: string): Promise<void> {
    const where = `${target.kind} target ${index + 1} (url from ${target.url.describe})`;
    log(`drawbridge: notification ${d.event} for approval ${d.approval.id} to ${where} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${error}`);
    try {
      await options.journal.append(
        'approval',
        d.approval.subject.callId,
        {
          event: 'notify_failed',
          approvalId: d.approval.id,
          notification: d.event,
          target: { index, kind: target.kind, url: target.url.describe },
          attempts,
          error,
        },
        options.clock(),
      );
    } catch (journalError) {
      log(`drawbridge: the failed notification for approval ${d.approval.id} could not be journaled: ${errorText(journalError)}`);
    }
  }

  /** After a pending request's expiry (plus a second), tells whether it expired; a decided or consumed one is not announced again. */
  async function watchExpiry(approval: StoredApproval, approvals: Pick<ApprovalStore, 'get'>, announce: Notifier['notify']): Promise<void> {
    await untilExpiry(Math.max(0, Date.parse(approval.expiresAt) - options.clock().getTime()) + 1_000);
    let current: StoredApproval | undefined;
    try {
      current = await approvals.get(approval.id, options.clock());
    } catch (error) {
      log(`drawbridge: whether approval ${approval.id} expired could not be read, so no expiry notice is sent: ${errorText(error)}`);
      return;
    }
    if (current?.status === 'expired') announce('approval.expired', current);
  }

  const notifier: Notifier = {
    notify(event, approval) {
      if (event === 'approval.pending' && options.approvals) void watchExpiry(approval, options.approvals, notifier.notify);
      const deliveryId = randomUUID();
      options.targets.forEach((target, index) => {
        const chain = chains[index];
        if (!chain) return;
        if (chain.backlog >= MAX_BACKLOG) {
          void failed(index, target, { event, approval, deliveryId }, 0, `dropped: ${MAX_BACKLOG} notifications already wait for this target`);
          return;
        }
        chain.backlog += 1;
        chain.tail = chain.tail
          .then(() => deliver(index, target, { event, approval, deliveryId }))
          .catch((error: unknown) => log(`drawbridge: notification ${event} for approval ${approval.id} failed: ${errorText(error)}`))
          .finally(() => {
            chain.backlog -= 1;
          });
      });
    },
    linkTo(origin) {
      consoleOrigin = origin === null ? null : new URL(origin).origin;
    },
    async idle() {
      // A delivery may be queued while the previous ones finish: wait until the tails stop moving.
      for (;;) {
        const tails = chains.map((c) => c.tail);
        await Promise.all(tails);
        if (chains.every((c, i) => c.tail === tails[i])) return;
      }
    },
  };
  return notifier;
}

/**
 * The notifier for a gateway's approval.notify, or null when none is configured.
 * `retry` tightens the policy where a person waits for the deliveries (the CLI).
 */
export function notifierFor(
  targets: readonly NotifyTarget[],
  base: Pick<NotifyOptions, 'environment' | 'journal' | 'clock' | 'consoleOrigin'> & Partial<Pick<NotifyOptions, 'approvals'>> & NotifyTuning,
): Notifier | null {
  return targets.length === 0 ? null : createNotifier({ targets, ...base });
}

/** Where a person waits for the deliveries to finish (`drawbridge approvals approve`): a few seconds at most. */
export const INTERACTIVE_RETRY: Partial<RetryPolicy> = { attempts: 3, baseDelayMs: 1_000, maxDelayMs: 4_000, timeoutMs: 5_000, totalMs: 10_000 };
