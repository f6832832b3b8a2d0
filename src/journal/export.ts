// Reads a journal (any engine's JournalStore, or a SQLite file) as one entry per call: its
// 'call' record joined with its 'outcome' record and its approval events, in one pass over
// the records; and renders entries as JSON lines or flat CSV. Read-only; it does not verify
// the chain (verify.ts does) and trusts no field as text.

import { DrawbridgeError } from '../errors.js';
import type { JournalStore, StoredRecord } from '../state/contract.js';
import { openJournalReadOnly, STORED_COLUMNS } from '../state/sqlite/journal.js';

export interface ExportFilter {
  /** Inclusive. */
  since?: Date;
  /** Exclusive. */
  until?: Date;
  subject?: string;
  tool?: string;
  connection?: string;
  /**
   * The intent's decision effect. `deny` is a refusal of the request (a rule, default
   * deny, invalid input); a call that failed on an outage before any decision has
   * `decision: null` (with `error`) and matches no value here (see errors.ts, ErrorKind).
   */
  decision?: 'allow' | 'deny' | 'approve';
  /** One call (search.ts's callRecord); checked before the record is parsed. */
  callId?: string;
  /** The intent's agent session (`session`: Mcp-Session-Id, or a stdio process's id). */
  session?: string;
  /** The intent's client name (`client.name`, as the client declared it at initialize). */
  client?: string;
}

export interface CallEntry {
  callId: string;
  seq: number;
  time: string;
  call: Record<string, unknown>;
  /** null when no outcome was journaled (e.g. the gateway died mid-call). */
  outcome: Record<string, unknown> | null;
  hash: string;
  outcomeHash: string | null;
  /** Approval and grant events journaled under this call id, in order (requested, approved, consumed, grant created…). */
  events: Array<{ seq: number; time: string; type: string; data: Record<string, unknown> }>;
}

export const CSV_COLUMNS = [
  'time',
  'call_id',
  'subject',
  'groups',
  'client',
  'tool',
  'connection',
  'operation',
  'access',
  'resources',
  'decision',
  'rule',
  'clearance',
  'status',
  'error_code',
  'rows',
  'affected_rows',
  'bytes',
  'duration_ms',
  'masked',
  'answer_hash',
  'hash',
  /** The hash of the config the call was decided under (the intent's `config`; empty before reloads were journaled). */
  'config',
] as const;

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function parseData(text: unknown, seq: number): Record<string, unknown> {
  const parsed = asObject(JSON.parse(String(text)) as unknown);
  if (parsed === undefined) throw new Error(`record ${seq}: data is not a JSON object`);
  return parsed;
}

function matches(call: Record<string, unknown>, filter: ExportFilter): boolean {
  if (filter.subject !== undefined && asObject(call.principal)?.subject !== filter.subject) return false;
  if (filter.tool !== undefined && call.tool !== filter.tool) return false;
  if (filter.connection !== undefined && call.connection !== filter.connection) return false;
  if (filter.decision !== undefined && asObject(call.decision)?.effect !== filter.decision) return false;
  if (filter.session !== undefined && call.session !== filter.session) return false;
  if (filter.client !== undefined && asObject(call.client)?.name !== filter.client) return false;
  return true;
}

interface StoredEvent {
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  /** The stored text, parsed only if a selected call needs it. */
  readonly data: unknown;
}

/**
 * Joins the records, pushed in seq order, into one entry per selected call: its outcome is the
 * first 'outcome' record with the same call id after it; its events are every 'approval' and
 * 'grant' record with the same call id, wherever it is (an approval is requested before the
 * call's intent, and a vote or a revocation may come any time later). So no entry is complete
 * before the last record: the selected calls are held until `entries()`, in memory; records
 * of calls the filter drops are not kept, and events are kept as their stored text.
 */
function callJoiner(filter: ExportFilter): { push(row: StoredRecord): void; entries(): CallEntry[] } {
  const since = filter.since?.toISOString();
  const until = filter.until?.toISOString();
  const selected: CallEntry[] = [];
  const awaitingOutcome = new Map<string, CallEntry[]>();
  const events = new Map<string, StoredEvent[]>();
  return {
    push(row) {
      const seq = Number(row.seq);
      const type = String(row.type);
      const callId = String(row.callId);
      const time = String(row.time);
      if (type === 'call') {
        if ((since !== undefined && time < since) || (until !== undefined && time >= until)) return;
        if (filter.callId !== undefined && callId !== filter.callId) return;
        const call = parseData(row.data, seq);
        if (!matches(call, filter)) return;
        const entry: CallEntry = { callId, seq, time, call, outcome: null, hash: String(row.hash), outcomeHash: null, events: [] };
        selected.push(entry);
        const waiting = awaitingOutcome.get(callId);
        if (waiting) waiting.push(entry);
        else awaitingOutcome.set(callId, [entry]);
      } else if (type === 'outcome') {
        const waiting = awaitingOutcome.get(callId);
        if (waiting === undefined) return;
        awaitingOutcome.delete(callId);
        const outcome = parseData(row.data, (waiting[0] as CallEntry).seq);
        for (const entry of waiting) {
          entry.outcome = outcome;
          entry.outcomeHash = String(row.hash);
        }
      } else if (type === 'approval' || type === 'grant') {
        const list = events.get(callId);
        const event = { seq, time, type, data: row.data };
        if (list) list.push(event);
        else events.set(callId, [event]);
      }
    },
    entries() {
      const parsed = new Map<string, CallEntry['events']>();
      for (const entry of selected) {
        let list = parsed.get(entry.callId);
        if (list === undefined) {
          list = (events.get(entry.callId) ?? []).map((e) => ({ seq: e.seq, time: e.time, type: e.type, data: parseData(e.data, e.seq) }));
          parsed.set(entry.callId, list);
        }
        // A fresh array per entry (as each row of the former SQL join had), sharing the parsed data.
        entry.events = [...list];
      }
      return selected;
    },
  };
}

function unreadable(where: string, cause: unknown): DrawbridgeError {
  if (cause instanceof DrawbridgeError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${where}): ${reason}`, { details: { where }, cause });
}

/**
 * Calls in journal order, read from a SQLite journal file (read-only, one snapshot).
 * Throws DrawbridgeError('journal.unavailable') if the file cannot be read.
 */
export function* readCalls(path: string, filter: ExportFilter = {}): Generator<CallEntry> {
  const db = openJournalReadOnly(path);
  let entries: CallEntry[];
  try {
    const join = callJoiner(filter);
    // One statement = one read transaction: a consistent snapshot while a gateway appends.
    for (const row of db.prepare(`SELECT ${STORED_COLUMNS} FROM records ORDER BY seq`).iterate() as IterableIterator<StoredRecord>) join.push(row);
    entries = join.entries();
  } catch (cause) {
    throw unreadable(path, cause);
  } finally {
    db.close();
  }
  yield* entries;
}

/**
 * Calls in journal order, read from any engine's journal (one JournalStore.read snapshot).
 * `where` names the journal in messages. Throws DrawbridgeError('journal.unavailable').
 */
export async function readStoreCalls(journal: JournalStore, where: string, filter: ExportFilter = {}): Promise<CallEntry[]> {
  const join = callJoiner(filter);
  try {
    for await (const row of journal.read()) join.push(row);
    return join.entries();
  } catch (cause) {
    throw unreadable(where, cause);
  }
}

function text(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return '';
}

function list(value: unknown): string {
  return Array.isArray(value) ? value.map(text).join(';') : '';
}

/**
 * One CSV cell. Journal fields carry caller- and agent-influenced text, so a
 * cell that a spreadsheet would run as a formula (= + - @, and tab/CR which
 * some spreadsheets also treat as formula starts) is prefixed with a single quote;
 * then RFC 4180 quoting.
 */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** `approval:ap_…:dba@example.com+…` or `grant:gr_…`: what let an approve decision through. */
function clearanceText(clearance: Record<string, unknown> | undefined): string {
  if (clearance === undefined) return '';
  if (clearance.kind === 'grant') return `grant:${text(clearance.grantId)}`;
  const approvers = Array.isArray(clearance.approvers)
    ? clearance.approvers
        .map((a) => text(asObject(a)?.subject))
        .filter((a) => a !== '')
        .join('+')
    : '';
  return `approval:${text(clearance.approvalId)}:${text(clearance.via)}${approvers ? `:${approvers}` : ''}`;
}

function csvRow(entry: CallEntry): string {
  const call = entry.call;
  const outcome = entry.outcome ?? {};
  const principal = asObject(call.principal) ?? {};
  const client = asObject(call.client);
  const request = asObject(call.request) ?? {};
  const decision = asObject(call.decision) ?? {};
  const clientText = client === undefined ? '' : client.version === undefined ? text(client.name) : `${text(client.name)}/${text(client.version)}`;
  const masked = Array.isArray(outcome.masked)
    ? outcome.masked
        .map((m) => asObject(m))
        .filter((m): m is Record<string, unknown> => m !== undefined)
        .map((m) => `${text(m.target)}:${text(m.by)}:${text(m.count)}`)
        .join(';')
    : '';
  const cells: Record<(typeof CSV_COLUMNS)[number], string> = {
    time: entry.time,
    call_id: entry.callId,
    subject: text(principal.subject),
    groups: list(principal.groups),
    client: clientText,
    tool: text(call.tool),
    connection: text(call.connection),
    operation: text(request.operation),
    access: text(request.access),
    resources: list(request.resources),
    decision: text(decision.effect),
    rule: text(decision.rule),
    clearance: clearanceText(asObject(call.clearance)),
    status: text(outcome.status),
    error_code: text(outcome.errorCode),
    rows: text(outcome.rows),
    affected_rows: text(outcome.affectedRows),
    bytes: text(outcome.bytes),
    duration_ms: text(outcome.durationMs),
    masked,
    answer_hash: text(outcome.answerHash),
    hash: entry.hash,
    config: text(call.config),
  };
  return CSV_COLUMNS.map((column) => csvCell(cells[column])).join(',');
}

/**
 * Yields lines WITHOUT line terminators (the writer adds '\n', or '\r\n' for
 * strict RFC 4180). jsonl: one CallEntry object per line. csv: a header line,
 * then one row per call; cells may contain quoted line breaks.
 */
export function* exportLines(path: string, format: 'jsonl' | 'csv', filter: ExportFilter = {}): Generator<string> {
  checkFormat(format);
  // Read (and fail on a missing or unreadable journal) before the header is produced.
  yield* renderLines([...readCalls(path, filter)], format);
}

/** The lines of `entries` (from readStoreCalls) in `format`, as exportLines gives them. */
export function* renderLines(entries: Iterable<CallEntry>, format: 'jsonl' | 'csv'): Generator<string> {
  checkFormat(format);
  if (format === 'csv') yield CSV_COLUMNS.join(',');
  for (const entry of entries) yield format === 'jsonl' ? JSON.stringify(entry) : csvRow(entry);
}

function checkFormat(format: string): void {
  if (format !== 'jsonl' && format !== 'csv') throw new TypeError(`unknown export format: ${String(format)}`);
}
