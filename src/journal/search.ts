// The journal as the console's journal pages and the approvals API show it: a search over
// calls (newest first, paged by seq), one call's full record, an agent session's replay, and
// the verify verdict summarised for display. Pure reads over any engine's JournalStore, no
// HTTP and no HTML. Every value shown is a value the journal holds (the masked, bounded forms
// the agent saw); the replay only projects and counts them. The join of calls with their
// outcomes and approval events is export.ts's one pass (readStoreCalls), not a copy of it.

import type { KeyObject } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import type { JournalStore } from '../state/contract.js';
import type { PublishedCheckpoint } from './checkpoint.js';
import { readStoreCalls, type CallEntry, type ExportFilter } from './export.js';
import { verifyStore } from './verify.js';

export type OutcomeStatus = 'ok' | 'refused' | 'error';

export const OUTCOME_STATUSES: readonly OutcomeStatus[] = ['ok', 'refused', 'error'];

export interface SearchFilter extends ExportFilter {
  /** The outcome record's status; a call without an outcome (the gateway died mid-call) matches none. */
  status?: OutcomeStatus;
  /** Page size: 1..MAX_LIMIT, default DEFAULT_LIMIT. */
  limit?: number;
  /** Paging cursor: only calls whose intent seq is below this (the previous page's `next`). */
  before?: number;
}

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 500;

export interface SearchPage {
  /** Newest first. */
  readonly calls: CallEntry[];
  /** The `before` of the next (older) page, or null when this is the last. */
  readonly next: number | null;
}

const WHERE = 'the gateway journal';

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/** Calls matching `filter`, newest first, one page. Throws DrawbridgeError('journal.unavailable'); a bad limit or cursor is a TypeError. */
export async function searchCalls(journal: JournalStore, filter: SearchFilter = {}): Promise<SearchPage> {
  const { status, limit = DEFAULT_LIMIT, before, ...exportFilter } = filter;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new TypeError(`limit must be an integer 1..${MAX_LIMIT}`);
  if (before !== undefined && (!Number.isSafeInteger(before) || before < 1)) throw new TypeError('before must be a positive integer seq');
  const entries = await readStoreCalls(journal, WHERE, exportFilter);
  const page: CallEntry[] = [];
  let next: number | null = null;
  // Journal order is seq order: walk it backwards for newest first.
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as CallEntry;
    if (before !== undefined && entry.seq >= before) continue;
    if (status !== undefined && entry.outcome?.status !== status) continue;
    if (page.length === limit) {
      next = (page[page.length - 1] as CallEntry).seq;
      break;
    }
    page.push(entry);
  }
  return { calls: page, next };
}

/** One call's full record (intent, outcome, every approval and grant event), or undefined. */
export async function callRecord(journal: JournalStore, callId: string): Promise<CallEntry | undefined> {
  const entries = await readStoreCalls(journal, WHERE, { callId });
  return entries[0];
}

export type ReplaySelector = { readonly session: string } | { readonly client: string; readonly subject?: string; readonly since: Date; readonly until: Date };

export interface ReplayVote {
  readonly subject: string | null;
  readonly decision: 'approve' | 'deny';
  readonly via: string | null;
  readonly time: string;
  readonly reason: string | null;
}

export interface ReplayStep {
  readonly seq: number;
  readonly time: string;
  readonly callId: string;
  readonly session: string | null;
  readonly subject: string | null;
  readonly client: string | null;
  readonly tool: string | null;
  readonly connection: string | null;
  /** The parsed request's summary as journaled (masked by then); null when nothing was parsed. */
  readonly summary: string | null;
  readonly decision: { readonly effect: string; readonly rule: string | null; readonly message: string | null } | null;
  /** What let an approve decision through: `approval` or `grant`, or null. */
  readonly clearance: 'approval' | 'grant' | null;
  readonly approvals: ReadonlyArray<{ readonly approvalId: string; readonly via: string | null; readonly votes: readonly ReplayVote[] }>;
  readonly grants: ReadonlyArray<{ readonly event: string; readonly grantId: string | null; readonly time: string }>;
  readonly outcome: {
    readonly status: string | null;
    readonly rows: number | null;
    readonly affectedRows: number | null;
    readonly errorCode: string | null;
    readonly durationMs: number | null;
  } | null;
  /** Masked values in the answer (the sum of the outcome's `masked` counts), and per target/detector. */
  readonly masked: number;
  readonly maskedBy: ReadonlyArray<{ readonly target: string | null; readonly by: string | null; readonly count: number }>;
}

export interface ReplayTotals {
  readonly calls: number;
  readonly decisions: { readonly allow: number; readonly deny: number; readonly approve: number; readonly none: number };
  readonly outcomes: { readonly ok: number; readonly refused: number; readonly error: number; readonly none: number };
  readonly rows: number;
  readonly affectedRows: number;
  readonly masked: number;
  readonly votes: number;
  readonly durationMs: number;
}

export interface SessionReplay {
  readonly steps: readonly ReplayStep[];
  readonly totals: ReplayTotals;
}

/** A vote-like approval event (CLI/API/console vote, or an elicitation answer), else null. */
function voteOf(event: CallEntry['events'][number]): ReplayVote | null {
  const d = event.data;
  const approver = asObject(d.approver);
  let decision: 'approve' | 'deny' | null = null;
  if (d.event === 'vote') decision = d.decision === 'approve' || d.decision === 'deny' ? d.decision : null;
  else if (d.event === 'approved') decision = 'approve';
  else if (d.event === 'declined') decision = 'deny';
  if (decision === null) return null;
  return { subject: str(approver?.subject), decision, via: str(d.via), time: event.time, reason: str(d.reason) };
}

function stepOf(entry: CallEntry): ReplayStep {
  const call = entry.call;
  const request = asObject(call.request);
  const decision = asObject(call.decision);
  const clearance = asObject(call.clearance);
  const outcome = entry.outcome;
  const approvals = new Map<string, { approvalId: string; via: string | null; votes: ReplayVote[] }>();
  const grants: Array<{ event: string; grantId: string | null; time: string }> = [];
  for (const event of entry.events) {
    if (event.type === 'grant') {
      grants.push({ event: str(event.data.event) ?? '', grantId: str(event.data.grantId) ?? str(asObject(event.data.grant)?.id), time: event.time });
      continue;
    }
    const approvalId = str(event.data.approvalId);
    if (approvalId === null) continue;
    let approval = approvals.get(approvalId);
    if (approval === undefined) {
      approval = { approvalId, via: str(event.data.via), votes: [] };
      approvals.set(approvalId, approval);
    }
    const vote = voteOf(event);
    if (vote) approval.votes.push(vote);
  }
  const maskedBy = (Array.isArray(outcome?.masked) ? outcome.masked : [])
    .map((m) => asObject(m))
    .filter((m): m is Record<string, unknown> => m !== undefined)
    .map((m) => ({ target: str(m.target), by: str(m.by), count: num(m.count) ?? 0 }));
  return {
    seq: entry.seq,
    time: entry.time,
    callId: entry.callId,
    session: str(call.session),
    subject: str(asObject(call.principal)?.subject),
    client: str(asObject(call.client)?.name),
    tool: str(call.tool),
    connection: str(call.connection),
    summary: str(request?.summary),
    decision: decision ? { effect: str(decision.effect) ?? '', rule: str(decision.rule), message: str(decision.message) } : null,
    clearance: clearance?.kind === 'approval' || clearance?.kind === 'grant' ? clearance.kind : null,
    approvals: [...approvals.values()],
    grants,
    outcome: outcome
      ? {
          status: str(outcome.status),
          rows: num(outcome.rows),
          affectedRows: num(outcome.affectedRows),
          errorCode: str(outcome.errorCode),
          durationMs: num(outcome.durationMs),
        }
      : null,
    masked: maskedBy.reduce((sum, m) => sum + m.count, 0),
    maskedBy,
  };
}

function totalsOf(steps: readonly ReplayStep[]): ReplayTotals {
  const decisions = { allow: 0, deny: 0, approve: 0, none: 0 };
  const outcomes = { ok: 0, refused: 0, error: 0, none: 0 };
  let rows = 0;
  let affectedRows = 0;
  let masked = 0;
  let votes = 0;
  let durationMs = 0;
  for (const s of steps) {
    const effect = s.decision?.effect;
    if (effect === 'allow' || effect === 'deny' || effect === 'approve') decisions[effect] += 1;
    else decisions.none += 1;
    const status = s.outcome?.status;
    if (status === 'ok' || status === 'refused' || status === 'error') outcomes[status] += 1;
    else outcomes.none += 1;
    rows += s.outcome?.rows ?? 0;
    affectedRows += s.outcome?.affectedRows ?? 0;
    durationMs += s.outcome?.durationMs ?? 0;
    masked += s.masked;
    votes += s.approvals.reduce((sum, a) => sum + a.votes.length, 0);
  }
  return { calls: steps.length, decisions, outcomes, rows, affectedRows, masked, votes, durationMs: Math.round(durationMs * 100) / 100 };
}

/** Every call of one agent session (or one client's calls in [since, until)), oldest first, with totals. */
export async function sessionReplay(journal: JournalStore, selector: ReplaySelector): Promise<SessionReplay> {
  let filter: ExportFilter;
  if ('session' in selector) {
    filter = { session: selector.session };
  } else {
    if (!(selector.since < selector.until)) throw new TypeError('a replay window needs since < until');
    filter = {
      client: selector.client,
      since: selector.since,
      until: selector.until,
      ...(selector.subject !== undefined ? { subject: selector.subject } : {}),
    };
  }
  const steps = (await readStoreCalls(journal, WHERE, filter)).map(stepOf);
  return { steps, totals: totalsOf(steps) };
}

export interface VerifyStatus {
  readonly ok: boolean;
  readonly records: number;
  readonly head: string;
  readonly firstBad: { readonly seq: number; readonly reason: string } | null;
  /** Null without published checkpoints; else how many were checked and up to which record they prove the journal. */
  readonly checkpoints: { readonly checked: number; readonly upTo: number; readonly uncovered: number } | null;
  readonly badCheckpoint: { readonly line: number; readonly reason: string } | null;
  /** One line for a page header. */
  readonly text: string;
}

/** The verify verdict (verifyStore) summarised for display. Throws DrawbridgeError('journal.unavailable') if the journal cannot be read. */
export async function verifyStatus(
  journal: JournalStore,
  checkpoints?: { readonly published: readonly PublishedCheckpoint[]; readonly publicKey: KeyObject },
): Promise<VerifyStatus> {
  let result;
  try {
    result = await verifyStore(journal, checkpoints ? { checkpoints } : {});
  } catch (cause) {
    if (cause instanceof DrawbridgeError) throw cause;
    throw new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${WHERE}) to verify it.`, { cause });
  }
  const covered = result.checkpoints
    ? { checked: result.checkpoints.checked, upTo: result.checkpoints.upTo, uncovered: result.records - result.checkpoints.upTo }
    : null;
  let text: string;
  if (result.badCheckpoint) text = `A published checkpoint is bad (line ${result.badCheckpoint.line}): ${result.badCheckpoint.reason}.`;
  else if (!result.ok && result.firstBad) text = `The chain breaks at record ${result.firstBad.seq}: ${result.firstBad.reason}.`;
  else if (!result.ok) text = 'The journal does not verify.';
  else
    text =
      `${result.records} records verify` +
      (covered ? `; ${covered.checked} checkpoint(s) prove the first ${covered.upTo}, ${covered.uncovered} after the last checkpoint` : '') +
      '.';
  return {
    ok: result.ok && result.badCheckpoint === undefined,
    records: result.records,
    head: result.head,
    firstBad: result.firstBad ?? null,
    checkpoints: covered,
    badCheckpoint: result.badCheckpoint ?? null,
    text,
  };
}

/** One `config` record (serve's start, a reload attempt) as the console shows it; every field as journaled, typed loosely. */
export interface ConfigEvent {
  readonly seq: number;
  readonly time: string;
  readonly event: string | null;
  readonly result: string | null;
  /** The config in effect after it; previousHash before; attempted: what was read (null: unreadable). */
  readonly hash: string | null;
  readonly previousHash: string | null;
  readonly attempted: string | null;
  readonly code: string | null;
  readonly problems: readonly string[];
  /** signal, admin (with the operator's subject when a token proved one) or start. */
  readonly via: string | null;
  readonly operator: string | null;
}

/** The journal's `config` records, newest first, at most `limit`: which config was in effect when, and every reload attempt. */
export async function configEvents(journal: JournalStore, limit = DEFAULT_LIMIT): Promise<ConfigEvent[]> {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new TypeError(`limit must be an integer 1..${MAX_LIMIT}`);
  const found: ConfigEvent[] = [];
  try {
    for await (const row of journal.read()) {
      if (row.type !== 'config') continue;
      const data = asObject(JSON.parse(String(row.data)) as unknown) ?? {};
      const by = asObject(data['by']);
      found.push({
        seq: Number(row.seq),
        time: String(row.time),
        event: str(data['event']),
        result: str(data['result']),
        hash: str(data['hash']),
        previousHash: str(data['previousHash']),
        attempted: str(data['attempted']),
        code: str(data['code']),
        problems: Array.isArray(data['problems']) ? data['problems'].map((p) => String(p)) : [],
        via: str(by?.['via']),
        operator: str(by?.['operator']),
      });
      if (found.length > limit) found.shift();
    }
  } catch (cause) {
    if (cause instanceof DrawbridgeError) throw cause;
    throw new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${WHERE}): ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
  }
  return found.reverse();
}
