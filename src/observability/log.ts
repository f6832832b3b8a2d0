// The operator's log: one line per call when it ends (from the gateway's call-end
// event) and serve's own messages, as JSON lines or human-readable text, on a
// writer it is given (stderr when serving; a capture in tests). No SDK, no backend.
// A call's line carries names, the decision, counts and timings, and the call id
// that links it to the journal: never data, SQL text, arguments, tokens or
// credentials (the event does not hold them), and the subject only when
// `log: { subjects: true }` (identifiers are personal data).

import { stageTotals, type CallEnd } from '../pipeline/call-end.js';
import type { LogConfig } from '../config/schema.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** One line before formatting: time, level and msg first, then the fields (absent ones left out). */
export interface LogRecord {
  readonly time: string;
  readonly level: LogLevel;
  readonly msg: string;
  readonly fields: Readonly<Record<string, string | number | boolean | Readonly<Record<string, number>>>>;
}

export interface Logger {
  /** The level calls are logged at and up (lower ones are dropped). */
  readonly level: LogLevel;
  readonly format: 'json' | 'text';
  log(level: LogLevel, msg: string, fields?: LogRecord['fields']): void;
  /** The call-end observer: subscribe it with gateway.onCallEnd(logger.call). */
  readonly call: (event: CallEnd) => void;
}

/** The level of a call's line: refusals (and approvals pending) are info, a failed execution warn, a fault error. */
export function callLevel(event: CallEnd): LogLevel {
  if (event.status !== 'error') return 'info';
  return event.error?.kind === 'fault' ? 'error' : 'warn';
}

/** The record of a call's end. Only what the event names; the subject only with `subjects`. */
export function callRecord(event: CallEnd, options: { readonly subjects: boolean }): LogRecord {
  const fields: Record<string, string | number | boolean | Readonly<Record<string, number>>> = { callId: event.callId };
  const put = (key: string, value: string | number | null): void => {
    if (value !== null) fields[key] = value;
  };
  put('tool', event.tool);
  put('connection', event.connection);
  put('operation', event.operation);
  put('access', event.access);
  put('decision', event.decision?.effect ?? null);
  put('rule', event.decision?.rule ?? null);
  put('clearance', event.clearance);
  fields['status'] = event.status;
  put('error', event.error?.code ?? null);
  put('fault', event.faultMessage);
  put('rows', event.rows);
  put('affectedRows', event.affectedRows);
  fields['masked'] = event.masked;
  fields['durationMs'] = event.durationMs;
  if (event.stages.length > 0) fields['stagesMs'] = stageTotals(event.stages);
  put('session', event.session);
  if (options.subjects) put('subject', event.subject);
  return { time: event.at.toISOString(), level: callLevel(event), msg: `call ${event.status}`, fields };
}

/** One line, without its newline: a JSON object, or `TIME LEVEL msg key=value …` for a person at a terminal. */
export function formatRecord(record: LogRecord, format: 'json' | 'text'): string {
  if (format === 'json') return JSON.stringify({ time: record.time, level: record.level, msg: record.msg, ...record.fields });
  const pairs = Object.entries(record.fields).map(([key, value]) => `${key}=${textValue(value)}`);
  return [record.time, record.level.toUpperCase().padEnd(5), oneLine(record.msg), ...pairs].join(' ');
}

function textValue(value: string | number | boolean | Readonly<Record<string, number>>): string {
  if (typeof value === 'object')
    return Object.entries(value)
      .map(([k, v]) => `${k}:${v}`)
      .join(',');
  if (typeof value !== 'string') return String(value);
  // Bare when it cannot be misread; quoted (JSON escapes) when it has spaces, quotes, '=' or control characters.
  return /^[^\s"'=\\\p{Cc}]+$/u.test(value) ? value : JSON.stringify(value);
}

function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

export function createLogger(options: {
  readonly config: LogConfig;
  /** Where each line goes, newline included. */
  readonly write: (line: string) => void;
  /** Whether the writer is a terminal: `format: auto` is text there, JSON otherwise. */
  readonly isTTY: boolean;
  readonly clock?: () => Date;
}): Logger {
  const { config, write } = options;
  const clock = options.clock ?? (() => new Date());
  const format = config.format === 'auto' ? (options.isTTY ? 'text' : 'json') : config.format;
  const emit = (record: LogRecord): void => {
    if (RANK[record.level] < RANK[config.level]) return;
    try {
      write(`${formatRecord(record, format)}\n`);
    } catch {
      // The log's writer failed (stderr closed): a call is never failed for its log line.
    }
  };
  return {
    level: config.level,
    format,
    log: (level, msg, fields = {}) => emit({ time: clock().toISOString(), level, msg, fields }),
    call: (event) => emit(callRecord(event, { subjects: config.subjects })),
  };
}
