// Tests for journal export: joining calls with outcomes, each filter, JSON
// lines, CSV columns, RFC 4180 quoting and spreadsheet formula neutralisation.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../src/errors.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import Database from 'better-sqlite3';
import { CSV_COLUMNS, csvCell, exportLines, readCalls, readStoreCalls, renderLines, type CallEntry } from '../../src/journal/export.js';
import { openSqliteJournalReadOnly } from '../../src/state/sqlite/readonly.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-export-'));
  dirs.push(dir);
  return path.join(dir, 'journal.db');
}

function callData(subject: string, tool: string, connection: string, effect: 'allow' | 'deny' | 'approve'): Record<string, unknown> {
  return {
    principal: { subject, groups: ['dev', 'oncall'], kind: 'local' },
    client: { name: 'claude-code', version: '1.2.3' },
    tool,
    connection,
    input: { sql: 'select email from customers' },
    request: { operation: 'select', access: 'read', resources: ['public.customers', 'public.orders'] },
    decision: { effect, rule: 'readers' },
  };
}

/**
 * c1 alice/query/prod/allow 10:00 (ok, interleaved with c2)
 * c2 bob/query/staging/deny 11:00 (refused)
 * c3 alice/execute/prod/approve 12:00 (no outcome: gateway died)
 */
function makeJournal(): string {
  const file = tempPath();
  const j = openJournal(file);
  j.append('call', 'c1', callData('alice', 'query', 'prod', 'allow'), new Date('2024-03-01T10:00:00.000Z'));
  j.append('call', 'c2', callData('bob', 'query', 'staging', 'deny'), new Date('2024-03-01T11:00:00.000Z'));
  j.append('outcome', 'c2', { status: 'refused', errorCode: 'policy.denied' }, new Date('2024-03-01T11:00:00.001Z'));
  j.append(
    'outcome',
    'c1',
    {
      status: 'ok',
      rows: 3,
      bytes: 120,
      durationMs: 15,
      truncated: false,
      masked: [
        { target: 'customers.email', by: 'column', count: 3 },
        { target: 'email', by: 'detector', count: 1 },
      ],
      answerHash: 'a'.repeat(64),
    },
    new Date('2024-03-01T11:30:00.000Z'),
  );
  j.append('call', 'c3', callData('alice', 'execute', 'prod', 'approve'), new Date('2024-03-01T12:00:00.000Z'));
  j.close();
  return file;
}

function ids(entries: Iterable<CallEntry>): string[] {
  return [...entries].map((e) => e.callId);
}

/** Minimal RFC 4180 parser for the assertions (handles quoted commas, quotes and newlines). */
function parseCsv(textValue: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < textValue.length; i++) {
    const ch = textValue[i]!;
    if (quoted) {
      if (ch === '"' && textValue[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        cell += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else {
      cell += ch;
    }
  }
  row.push(cell);
  rows.push(row);
  return rows;
}

describe('readCalls', () => {
  it('joins each call with its outcome, in journal order', () => {
    const file = makeJournal();
    const entries = [...readCalls(file)];
    expect(entries.map((e) => [e.callId, e.seq, e.time])).toEqual([
      ['c1', 1, '2024-03-01T10:00:00.000Z'],
      ['c2', 2, '2024-03-01T11:00:00.000Z'],
      ['c3', 5, '2024-03-01T12:00:00.000Z'],
    ]);
    const [c1, c2] = entries;
    expect(c1!.outcome).toMatchObject({ status: 'ok', rows: 3 });
    expect(c1!.outcomeHash).toMatch(/^[0-9a-f]{64}$/);
    expect(c1!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(c1!.call.tool).toBe('query');
    expect(c2!.outcome).toEqual({ status: 'refused', errorCode: 'policy.denied' });
  });

  it('gives a null outcome for a call without one', () => {
    const c3 = [...readCalls(makeJournal())].find((e) => e.callId === 'c3');
    expect(c3?.outcome).toBeNull();
    expect(c3?.outcomeHash).toBeNull();
  });

  it('filters by since (inclusive) and until (exclusive)', () => {
    const file = makeJournal();
    expect(ids(readCalls(file, { since: new Date('2024-03-01T11:00:00.000Z') }))).toEqual(['c2', 'c3']);
    expect(ids(readCalls(file, { until: new Date('2024-03-01T11:00:00.000Z') }))).toEqual(['c1']);
    expect(ids(readCalls(file, { since: new Date('2024-03-01T10:30:00Z'), until: new Date('2024-03-01T12:30:00Z') }))).toEqual(['c2', 'c3']);
  });

  it('filters by subject, tool, connection and decision', () => {
    const file = makeJournal();
    expect(ids(readCalls(file, { subject: 'alice' }))).toEqual(['c1', 'c3']);
    expect(ids(readCalls(file, { tool: 'execute' }))).toEqual(['c3']);
    expect(ids(readCalls(file, { connection: 'staging' }))).toEqual(['c2']);
    expect(ids(readCalls(file, { decision: 'deny' }))).toEqual(['c2']);
    expect(ids(readCalls(file, { decision: 'approve' }))).toEqual(['c3']);
    expect(ids(readCalls(file, { subject: 'alice', connection: 'prod', decision: 'allow' }))).toEqual(['c1']);
    expect(ids(readCalls(file, { subject: 'nobody' }))).toEqual([]);
  });

  it('can stop early and then lets a writer continue', () => {
    const file = makeJournal();
    for (const entry of readCalls(file)) {
      expect(entry.callId).toBe('c1');
      break;
    }
    const j = openJournal(file);
    expect(j.append('call', 'c4', {}).seq).toBe(6);
    j.close();
  });

  it('throws journal.unavailable naming a missing file', () => {
    const file = path.join(path.dirname(tempPath()), 'missing.db');
    expect(() => [...readCalls(file)]).toThrow(DrawbridgeError);
    expect(() => [...exportLines(file, 'csv')]).toThrow(file);
  });
});

describe('exportLines', () => {
  it('writes one JSON object per call in jsonl', () => {
    const lines = [...exportLines(makeJournal(), 'jsonl')];
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain('\n');
    const parsed = lines.map((l) => JSON.parse(l) as CallEntry);
    expect(parsed.map((e) => e.callId)).toEqual(['c1', 'c2', 'c3']);
    expect(parsed[2]!.outcome).toBeNull();
    expect(parsed[0]!.call).toMatchObject({ tool: 'query', principal: { subject: 'alice' } });
  });

  it('writes a header and flat CSV columns', () => {
    const lines = [...exportLines(makeJournal(), 'csv', { subject: 'alice' })];
    expect(lines[0]).toBe(CSV_COLUMNS.join(','));
    expect(lines[0]).toBe(
      'time,call_id,subject,groups,client,tool,connection,operation,access,resources,decision,rule,clearance,' +
        'status,error_code,rows,affected_rows,bytes,duration_ms,masked,answer_hash,hash,config',
    );
    expect(lines).toHaveLength(3);
    const rows = parseCsv(lines.join('\n'));
    const c1 = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, rows[1]![i]]));
    expect(c1).toMatchObject({
      time: '2024-03-01T10:00:00.000Z',
      call_id: 'c1',
      subject: 'alice',
      groups: 'dev;oncall',
      client: 'claude-code/1.2.3',
      tool: 'query',
      connection: 'prod',
      operation: 'select',
      access: 'read',
      resources: 'public.customers;public.orders',
      decision: 'allow',
      rule: 'readers',
      status: 'ok',
      error_code: '',
      rows: '3',
      bytes: '120',
      duration_ms: '15',
      masked: 'customers.email:column:3;email:detector:1',
      answer_hash: 'a'.repeat(64),
    });
    expect(c1.hash).toMatch(/^[0-9a-f]{64}$/);
    const c3 = Object.fromEntries(CSV_COLUMNS.map((c, i) => [c, rows[2]![i]]));
    expect(c3).toMatchObject({ call_id: 'c3', decision: 'approve', status: '', rows: '', masked: '' });
  });

  it('quotes per RFC 4180 and neutralises formulas', () => {
    const file = tempPath();
    const j = openJournal(file);
    j.append('call', '=HYPERLINK("http://evil")', {
      principal: { subject: 'doe, "jane"\nline2', groups: ['+cmd', '@sum', '-1'], kind: 'oidc' },
      tool: '=1+1',
      connection: '@prod',
      input: {},
      decision: { effect: 'deny', rule: '-rule', message: 'x' },
    });
    j.close();
    const lines = [...exportLines(file, 'csv')];
    expect(lines[1]).toContain('"\'=HYPERLINK(""http://evil"")"');
    expect(lines[1]).toContain('"doe, ""jane""\nline2"');
    const row = parseCsv(lines.join('\n'))[1]!;
    const cell = (name: (typeof CSV_COLUMNS)[number]): string | undefined => row[CSV_COLUMNS.indexOf(name)];
    expect(row).toHaveLength(CSV_COLUMNS.length);
    expect(cell('call_id')).toBe('\'=HYPERLINK("http://evil")');
    expect(cell('subject')).toBe('doe, "jane"\nline2');
    expect(cell('groups')).toBe("'+cmd;@sum;-1");
    expect(cell('tool')).toBe("'=1+1");
    expect(cell('connection')).toBe("'@prod");
    expect(cell('rule')).toBe("'-rule");
  });

  it('csvCell leaves ordinary values alone', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('')).toBe('');
    expect(csvCell('12')).toBe('12');
    expect(csvCell('a=b')).toBe('a=b');
    expect(csvCell('-')).toBe("'-");
    expect(csvCell('\tx')).toBe("'\tx");
    expect(csvCell('a"b')).toBe('"a""b"');
  });
});

/**
 * The SQL join export used before it read the records through the state contract (kept here as
 * the reference): the one-pass join must give exactly its entries, whatever the records' order.
 */
const FORMER_JOIN_SQL = `
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
ORDER BY c.seq`;

function formerEntries(file: string): CallEntry[] {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare(FORMER_JOIN_SQL).all() as Array<{
      seq: number;
      time: string;
      call_id: string;
      data: string;
      hash: string;
      odata: string | null;
      ohash: string | null;
      events: string;
    }>;
    return rows.map((r) => ({
      callId: r.call_id,
      seq: r.seq,
      time: r.time,
      call: JSON.parse(r.data) as Record<string, unknown>,
      outcome: r.odata === null ? null : (JSON.parse(r.odata) as Record<string, unknown>),
      hash: r.hash,
      outcomeHash: r.ohash,
      events: JSON.parse(r.events) as CallEntry['events'],
    }));
  } finally {
    db.close();
  }
}

describe('the one-pass join', () => {
  it('gives exactly the former SQL join, byte for byte, in both formats, from the file and from the store', async () => {
    const file = tempPath();
    const j = openJournal(file);
    const at = (m: number) => new Date(Date.UTC(2024, 2, 1, 10, m));
    j.append('outcome', 'c1', { status: 'stray' }, at(0)); // an outcome before its call belongs to no call
    j.append('approval', 'c1', { event: 'requested', approvalId: 'ap_1' }, at(1)); // before the call
    j.append('call', 'c1', callData('alice', 'query', 'prod', 'approve'), at(2));
    j.append('call', 'c2', callData('bob', 'query', 'prod', 'allow'), at(3));
    j.append('outcome', 'c1', { status: 'ok', rows: 1 }, at(4));
    j.append('approval', 'c1', { event: 'vote', nested: { b: [1, 2], a: 'x' } }, at(5)); // after the outcome
    j.append('call', 'c1', callData('alice', 'query', 'prod', 'approve'), at(6)); // the same call id again
    j.append('outcome', 'c2', { status: 'refused' }, at(7));
    j.append('outcome', 'c1', { status: 'ok', rows: 2 }, at(8));
    j.append('outcome', 'c1', { status: 'late duplicate' }, at(9));
    j.append('call', 'c3', callData('carol', 'execute', 'staging', 'deny'), at(10)); // no outcome
    j.append('grant', 'c1', { event: 'revoked', grantId: 'gr_1' }, at(11));
    j.append('grant', 'c9', { event: 'revoked' }, at(12)); // events of a call not in the journal
    j.close();

    const former = formerEntries(file);
    expect(former).toHaveLength(4);
    expect(former[0]!.events).toHaveLength(3);
    const fromFile = [...readCalls(file)];
    const store = openSqliteJournalReadOnly(file);
    const fromStore = await readStoreCalls(store, file);
    await store.close();
    for (const format of ['jsonl', 'csv'] as const) {
      const expected = [...renderLines(former, format)].join('\n');
      expect([...renderLines(fromFile, format)].join('\n')).toBe(expected);
      expect([...renderLines(fromStore, format)].join('\n')).toBe(expected);
      expect([...exportLines(file, format)].join('\n')).toBe(expected);
    }
  });
});
