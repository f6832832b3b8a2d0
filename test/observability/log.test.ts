// The log line builder and the logger: which fields a call's line has and leaves
// out, its level, the level filter, JSON and text formats, `auto` by terminal, and
// the subject only when configured.

import { describe, expect, it } from 'vitest';
import type { LogConfig } from '../../src/config/schema.js';
import { callLevel, callRecord, createLogger, formatRecord } from '../../src/observability/log.js';
import type { CallEnd } from '../../src/pipeline/call-end.js';

const AT = new Date('2026-12-05T08:00:00.000Z');

const allowedRead: CallEnd = {
  callId: '0b6c5a55-0000-4000-8000-000000000001',
  at: AT,
  tool: 'run_sql',
  connection: 'db',
  operation: 'select',
  access: 'read',
  decision: { effect: 'allow', rule: 'read' },
  clearance: null,
  status: 'ok',
  error: null,
  faultMessage: null,
  rows: 2,
  affectedRows: null,
  masked: 3,
  maskedBy: [
    { rule: 'pii', detector: null, count: 2 },
    { rule: 'pii', detector: 'email', count: 1 },
  ],
  startedAtMs: Date.parse('2026-12-01T10:00:00.000Z') - 4.5,
  durationMs: 4.5,
  stages: [
    { stage: 'parse', startMs: 0, durationMs: 1 },
    { stage: 'decide', startMs: 1, durationMs: 0.25 },
    { stage: 'journal', startMs: 1.25, durationMs: 0.5 },
    { stage: 'execute', startMs: 1.75, durationMs: 2.5 },
    { stage: 'journal', startMs: 4.25, durationMs: 0.25 },
  ],
  session: 'session-1',
  subject: 'dev@example.com',
  trace: null,
};

const denied: CallEnd = {
  ...allowedRead,
  operation: 'ddl',
  access: 'write',
  decision: { effect: 'deny', rule: 'no-ddl' },
  status: 'refused',
  error: { code: 'policy.denied', kind: 'refusal' },
  rows: null,
  masked: 0,
  stages: [{ stage: 'parse', startMs: 0, durationMs: 1 }],
  session: null,
};

const pending: CallEnd = {
  ...denied,
  operation: 'update',
  decision: { effect: 'approve', rule: 'writes-need-approval' },
  error: { code: 'approval.pending', kind: 'refusal' },
};

const grantCleared: CallEnd = { ...allowedRead, access: 'write', decision: { effect: 'approve', rule: 'w' }, clearance: 'grant', rows: 0, affectedRows: 1 };

const fault: CallEnd = {
  ...allowedRead,
  operation: null,
  access: null,
  decision: null,
  status: 'error',
  error: { code: 'backend.unavailable', kind: 'fault' },
  faultMessage: 'The database cannot be reached: connect ECONNREFUSED 127.0.0.1:1',
  rows: null,
  masked: 0,
  stages: [],
};

const failedExecution: CallEnd = { ...allowedRead, status: 'error', error: { code: 'limits.affected_rows', kind: 'refusal' }, rows: null };

describe('a call line', () => {
  it.each([
    [
      'an allowed read',
      allowedRead,
      'info',
      { decision: 'allow', rule: 'read', status: 'ok', rows: 2, masked: 3 },
      ['error', 'fault', 'clearance', 'affectedRows'],
    ],
    ['a denied call', denied, 'info', { decision: 'deny', rule: 'no-ddl', status: 'refused', error: 'policy.denied' }, ['rows', 'fault', 'session']],
    ['an approval pending', pending, 'info', { decision: 'approve', status: 'refused', error: 'approval.pending' }, ['clearance', 'rows']],
    ['a grant-cleared write', grantCleared, 'info', { decision: 'approve', clearance: 'grant', affectedRows: 1 }, ['error']],
    ['a failed execution', failedExecution, 'warn', { status: 'error', error: 'limits.affected_rows' }, ['fault', 'rows']],
    [
      'a fault',
      fault,
      'error',
      { status: 'error', error: 'backend.unavailable', fault: fault.faultMessage },
      ['decision', 'rule', 'operation', 'access', 'stagesMs'],
    ],
  ] as const)('%s: level, fields present and absent', (_what, event, level, present, absent) => {
    const record = callRecord(event, { subjects: false });
    expect(callLevel(event)).toBe(level);
    expect(record.level).toBe(level);
    expect(record.time).toBe(AT.toISOString());
    expect(record.msg).toBe(`call ${event.status}`);
    expect(record.fields).toMatchObject({ callId: event.callId, tool: 'run_sql', connection: 'db', durationMs: event.durationMs, ...present });
    for (const key of absent) expect(record.fields).not.toHaveProperty(key);
    expect(record.fields).not.toHaveProperty('subject');
  });

  it('leaves out a tool and connection the config does not declare (null in the event)', () => {
    const fields = callRecord({ ...denied, tool: null, connection: null }, { subjects: false }).fields;
    expect(fields).not.toHaveProperty('tool');
    expect(fields).not.toHaveProperty('connection');
  });

  it('has the stage timings when there are any, and the subject only with subjects: true', () => {
    expect(callRecord(allowedRead, { subjects: false }).fields['stagesMs']).toEqual({ parse: 1, decide: 0.25, journal: 0.75, execute: 2.5 });
    expect(callRecord(allowedRead, { subjects: true }).fields['subject']).toBe('dev@example.com');
    expect(callRecord({ ...allowedRead, subject: null }, { subjects: true }).fields).not.toHaveProperty('subject');
  });

  it('formats as one JSON object: time, level and msg first', () => {
    const line = formatRecord(callRecord(allowedRead, { subjects: false }), 'json');
    expect(line).not.toContain('\n');
    expect(Object.keys(JSON.parse(line) as object).slice(0, 4)).toEqual(['time', 'level', 'msg', 'callId']);
    expect(JSON.parse(line)).toMatchObject({
      level: 'info',
      msg: 'call ok',
      stagesMs: { parse: 1, decide: 0.25, journal: 0.75, execute: 2.5 },
      session: 'session-1',
    });
  });

  it('formats as text for a person: time, level, msg, then key=value (quoted when it has spaces)', () => {
    expect(formatRecord(callRecord(allowedRead, { subjects: false }), 'text')).toBe(
      '2026-12-05T08:00:00.000Z INFO  call ok callId=0b6c5a55-0000-4000-8000-000000000001 tool=run_sql connection=db operation=select ' +
        'access=read decision=allow rule=read status=ok rows=2 masked=3 durationMs=4.5 stagesMs=parse:1,decide:0.25,journal:0.75,execute:2.5 session=session-1',
    );
    const text = formatRecord(callRecord(fault, { subjects: false }), 'text');
    expect(text).toContain('ERROR call error');
    expect(text).toContain('fault="The database cannot be reached: connect ECONNREFUSED 127.0.0.1:1"');
    expect(formatRecord({ time: AT.toISOString(), level: 'warn', msg: 'two\nlines', fields: { why: 'a "quoted" =x' } }, 'text')).toBe(
      '2026-12-05T08:00:00.000Z WARN  two lines why="a \\"quoted\\" =x"',
    );
  });
});

describe('the logger', () => {
  const capture = (config: Partial<LogConfig>, isTTY = false) => {
    const lines: string[] = [];
    const logger = createLogger({
      config: { level: 'info', format: 'auto', subjects: false, ...config },
      write: (line) => void lines.push(line),
      isTTY,
      clock: () => AT,
    });
    return { logger, lines };
  };

  it.each([
    ['debug', 4],
    ['info', 4],
    ['warn', 2],
    ['error', 1],
  ] as const)('level %s keeps the lines at and above it', (level, kept) => {
    const { logger, lines } = capture({ level, format: 'json' });
    logger.call(denied); // info
    logger.call(allowedRead); // info
    logger.call(failedExecution); // warn
    logger.call(fault); // error
    logger.log('debug', 'a detail');
    expect(lines).toHaveLength(kept + (level === 'debug' ? 1 : 0));
    for (const line of lines) expect(line.endsWith('\n')).toBe(true);
  });

  it('format auto: text on a terminal, JSON otherwise; an explicit format wins', () => {
    expect(capture({}, true).logger.format).toBe('text');
    expect(capture({}, false).logger.format).toBe('json');
    expect(capture({ format: 'json' }, true).logger.format).toBe('json');
    expect(capture({ format: 'text' }, false).logger.format).toBe('text');
    const { logger, lines } = capture({});
    logger.log('warn', 'checkpoint not written', { reason: 'disk full' });
    expect(JSON.parse(lines[0] ?? '')).toEqual({ time: AT.toISOString(), level: 'warn', msg: 'checkpoint not written', reason: 'disk full' });
  });

  it('a writer that throws does not reach the caller', () => {
    const logger = createLogger({
      config: { level: 'info', format: 'json', subjects: false },
      write: () => {
        throw new Error('EPIPE');
      },
      isTTY: false,
    });
    expect(() => logger.call(allowedRead)).not.toThrow();
  });
});
