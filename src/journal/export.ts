// Streams a journal as one entry per call (its 'call' record joined with its
// 'outcome' record) and renders entries as JSON lines or flat CSV. Read-only;
// it does not verify the chain (verify.ts does) and trusts no field as text.

import { DrawbridgeError } from '../errors.js';
import { openJournalReadOnly } from '../state/sqlite/journal.js';

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
] as const;

interface JoinedRow {
  seq: number;
  time: string;
  call_id: string;
  data: string;
  hash: string;
  odata: string | null;
  ohash: string | null;
  events: string;
}

// The outcome of a call is the first 'outcome' record with the same call_id
// after it; the (call_id, type, seq) index makes the lookup cheap. One
// statement keeps the whole export on one consistent snapshot while streaming.
const JOIN_SQL = `
SELECT c.seq AS seq, c.time AS time, c.call_id AS call_id, c.data AS data, c.hash AS hash,
       o.data AS odata, o.hash AS ohash,
       (SELECT json_group_array(json_object('seq', e.seq, 'time', e.time, 'type', e.type, 'data', json(e.data)))
          FROM (SELECT seq, time, type, data FROM records
                 WHERE call_id = c.call_id AND type IN ('approval', 'grant') ORDER BY seq) AS e) AS events
FROM records c
LEFT JOIN records o ON o.seq = (
  SELECT MIN(s.seq) FROM records s
  WHERE s.call_id = c.call_id AND s.type = 'outcome' AND s.seq > c.seq
)
WHERE c.type = 'call'
  AND (@since IS NULL OR c.time >= @since)
  AND (@until IS NULL OR c.time < @until)
ORDER BY c.seq`;

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

function parseData(text: string, seq: number): Record<string, unknown> {
  const parsed = asObject(JSON.parse(text) as unknown);
  if (parsed === undefined) throw new Error(`record ${seq}: data is not a JSON object`);
  return parsed;
}

function matches(call: Record<string, unknown>, filter: ExportFilter): boolean {
  if (filter.subject !== undefined && asObject(call.principal)?.subject !== filter.subject) return false;
  if (filter.tool !== undefined && call.tool !== filter.tool) return false;
  if (filter.connection !== undefined && call.connection !== filter.connection) return false;
  if (filter.decision !== undefined && asObject(call.decision)?.effect !== filter.decision) return false;
  return true;
}

/** Streams calls in journal order. Throws DrawbridgeError('journal.unavailable') if the file cannot be read. */
export function* readCalls(path: string, filter: ExportFilter = {}): Generator<CallEntry> {
  const db = openJournalReadOnly(path);
  let rows: IterableIterator<JoinedRow> | undefined;
  try {
    rows = db.prepare(JOIN_SQL).iterate({
      since: filter.since === undefined ? null : filter.since.toISOString(),
      until: filter.until === undefined ? null : filter.until.toISOString(),
    }) as IterableIterator<JoinedRow>;
    let row: IteratorResult<JoinedRow>;
    for (;;) {
      // Only errors from reading the journal are wrapped, not the consumer's.
      let entry: CallEntry;
      try {
        row = rows.next();
        if (row.done === true) break;
        const r = row.value;
        const call = parseData(r.data, r.seq);
        if (!matches(call, filter)) continue;
        entry = {
          callId: r.call_id,
          seq: r.seq,
          time: r.time,
          call,
          outcome: r.odata === null ? null : parseData(r.odata, r.seq),
          hash: r.hash,
          outcomeHash: r.ohash,
          events: JSON.parse(r.events) as CallEntry['events'],
        };
      } catch (cause) {
        const reason = cause instanceof Error ? cause.message : String(cause);
        throw new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${path}): ${reason}`, {
          details: { path },
          cause,
        });
      }
      yield entry;
    }
  } finally {
    // Also runs when the consumer stops early: finish the statement, which
    // ends the read transaction, then close.
    rows?.return?.();
    db.close();
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
  };
  return CSV_COLUMNS.map((column) => csvCell(cells[column])).join(',');
}

/**
 * Yields lines WITHOUT line terminators (the writer adds '\n', or '\r\n' for
 * strict RFC 4180). jsonl: one CallEntry object per line. csv: a header line,
 * then one row per call; cells may contain quoted line breaks.
 */
export function* exportLines(path: string, format: 'jsonl' | 'csv', filter: ExportFilter = {}): Generator<string> {
  if (format !== 'jsonl' && format !== 'csv') throw new TypeError(`unknown export format: ${String(format)}`);
  const entries = readCalls(path, filter);
  try {
    // Pull the first entry before the header so a missing or unreadable
    // journal fails before any output is produced.
    let next = entries.next();
    if (format === 'csv') yield CSV_COLUMNS.join(',');
    while (next.done !== true) {
      yield format === 'jsonl' ? JSON.stringify(next.value) : csvRow(next.value);
      next = entries.next();
    }
  } finally {
    entries.return(undefined);
  }
}
