// The journal as the pipeline writes it: every call, refused or not, is a
// `call` record then an `outcome` record; the journaled input is scrubbed by
// the content detectors; a journal that cannot be written refuses the call
// before the database sees it. Then `drawbridge journal verify` and
// `journal export` (with filters) on a real journal, through the CLI (run in process).

import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PII } from '../../dev/seed.js';
import { DrawbridgeError } from '../../src/errors.js';
import type { JournalStore } from '../../src/state/contract.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { createGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { runInProcess } from '../support/cli.js';
import { as, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

interface Row {
  seq: number;
  time: string;
  type: string;
  call_id: string;
  data: string;
}

let db: FreshDatabase;
let gw: TestGateway;
const tmp: string[] = [];

beforeAll(async () => {
  db = await freshDatabase('pjournal');
  gw = await testGateway(db);
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
  for (const d of tmp) rmSync(d, { recursive: true, force: true });
});

function records(path = gw.gateway.config.journal.path): Row[] {
  const j = new Database(path, { readonly: true });
  try {
    return j.prepare('SELECT seq, time, type, call_id, data FROM records ORDER BY seq').all() as Row[];
  } finally {
    j.close();
  }
}

/** The call's records, asserting there are exactly a `call` then an `outcome`, back to back (approval events, which precede the call record, aside). */
function journaled(callId: string): { call: Record<string, any>; outcome: Record<string, any> } {
  const rows = records().filter((r) => r.call_id === callId && r.type !== 'approval' && r.type !== 'grant');
  expect(rows.map((r) => r.type)).toEqual(['call', 'outcome']);
  expect(rows[1]!.seq).toBe(rows[0]!.seq + 1);
  return { call: JSON.parse(rows[0]!.data), outcome: JSON.parse(rows[1]!.data) };
}

/** Every byte of the journal on disk (main file and WAL). */
function journalBytes(path = gw.gateway.config.journal.path): string {
  return [path, `${path}-wal`]
    .filter((p) => existsSync(p))
    .map((p) => readFileSync(p).toString('latin1'))
    .join('');
}

const email = DEMO_PII.emails[0]!;
const ssn = DEMO_PII.ssns[0]!;

describe('every call is journaled: call, then outcome', () => {
  it('an allowed read: principal, client, request, decision and rule; outcome ok with answerHash', async () => {
    const r = await gw.sql(`SELECT id, city FROM customers WHERE email = '${email}'`);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const { call, outcome } = journaled(r.callId);
    expect(call.principal).toEqual({ subject: 'tester@example.com', groups: ['analysts'], kind: 'local', principal: 'person', issuer: 'local' });
    expect(call.client).toEqual({ name: 'vitest' });
    expect(call.tool).toBe('run_sql');
    expect(call.connection).toBe('db');
    expect(call.request).toMatchObject({ operation: 'select', access: 'read', resources: ['public.customers'] });
    expect(call.decision).toEqual({ effect: 'allow', rule: 'read', message: 'Allowed by rule read.' });
    expect(outcome).toMatchObject({ status: 'ok', rows: 1, truncated: false });
    expect(outcome.answerHash).toMatch(/^[0-9a-f]{64}$/);
    const expected = createHash('sha256').update(r.text).update(JSON.stringify(r.structured)).digest('hex');
    expect(outcome.answerHash).toBe(expected);
    expect(r.structured.callId).toBe(r.callId);
  });

  it('the journaled input has detectors applied: a literal email / SSN in the SQL is not in the journal bytes', async () => {
    const r = await gw.sql(`SELECT count(*) FROM customers WHERE email = '${email}' OR ssn = '${ssn}'`);
    expect(r.ok).toBe(true);
    const { call } = journaled(r.callId);
    expect(call.input.sql).not.toContain(email);
    expect(call.input.sql).toMatch(/SELECT count\(\*\) FROM customers WHERE email = '.*' OR ssn = '.*'/);
    // Refused calls too: a parse error, a denial, an unknown tool.
    await gw.sql(`SELEC * FROM customers WHERE email = '${email}'`);
    await gw.sql(`DELETE FROM customers WHERE email = '${email}'; DROP TABLE customers`);
    await callTool(gw.gateway, { tool: 'no_such_tool', args: { sql: `select '${email}'` }, identity: gw.identity });
    const bytes = journalBytes();
    expect(bytes).not.toContain(email);
    expect(bytes).not.toContain(ssn);
  });

  it('a denied call: decision deny with the rule; outcome refused with the error code', async () => {
    const r = await gw.sql('DROP TABLE orders');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('policy.denied');
    const { call, outcome } = journaled(r.callId);
    expect(call.request).toMatchObject({ operation: 'ddl' });
    expect(call.decision).toEqual({ effect: 'deny', rule: 'no-ddl', message: 'Schema changes go through migrations.' });
    expect(outcome).toMatchObject({ status: 'refused', errorCode: 'policy.denied' });
    expect(outcome.answerHash).toBeUndefined();
  });

  it('an approve decision is journaled as approve, with the approval request before it (and refused: pending)', async () => {
    const r = await gw.sql('DELETE FROM orders WHERE id = 1');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const events = records()
      .filter((x) => x.call_id === r.callId)
      .map((x) => [x.type, JSON.parse(x.data).event ?? null]);
    expect(events).toEqual([
      ['approval', 'requested'],
      ['call', null],
      ['outcome', null],
    ]);
    const { call, outcome } = journaled(r.callId);
    expect(call.decision).toMatchObject({ effect: 'approve', rule: 'writes-need-approval' });
    expect(outcome).toMatchObject({ status: 'refused', errorCode: 'approval.pending' });
  });

  it.each([
    ['a parse error', { tool: 'run_sql', args: { connection: 'db', sql: 'SELEC 1' } }, 'sql.parse_error'],
    ['an unknown tool', { tool: 'drop_everything', args: { connection: 'db', sql: 'select 1' } }, 'tool.unknown'],
    ['invalid input (no sql)', { tool: 'run_sql', args: { connection: 'db' } }, 'input.invalid'],
    ['invalid input (extra key)', { tool: 'run_sql', args: { connection: 'db', sql: 'select 1', as_user: 'postgres' } }, 'input.invalid'],
    ['an undeclared connection', { tool: 'run_sql', args: { connection: 'prod', sql: 'select 1' } }, 'connection.unknown'],
    ['two statements', { tool: 'run_sql', args: { connection: 'db', sql: 'select 1; select 2' } }, 'sql.multiple_statements'],
  ] as const)('%s: refused, journaled as deny with the code', async (_what, call, code) => {
    const r = await callTool(gw.gateway, { ...call, identity: gw.identity, client: { name: 'vitest', version: '4' } });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe(code);
    const { call: c, outcome } = journaled(r.callId);
    expect(c.principal?.subject).toBe('tester@example.com');
    expect(c.client).toEqual({ name: 'vitest', version: '4' });
    expect(c.tool).toBe(call.tool);
    expect(c.decision).toMatchObject({ effect: 'deny', rule: null });
    expect(c.decision.message).toMatch(new RegExp(`^${code.replace('.', '\\.')}: `));
    expect(outcome).toMatchObject({ status: 'refused', errorCode: code });
  });

  it('a missing identity: refused identity.missing, journaled with principal null', async () => {
    const r = await callTool(gw.gateway, { tool: 'run_sql', args: { connection: 'db', sql: 'SELECT 1' }, identity: null });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('identity.missing');
    const { call, outcome } = journaled(r.callId);
    expect(call.principal).toBeNull();
    expect(call.client).toBeNull();
    expect(call.input).toEqual({ connection: 'db', sql: 'SELECT 1' });
    expect(call.decision).toMatchObject({ effect: 'deny', rule: null });
    expect(outcome).toMatchObject({ status: 'refused', errorCode: 'identity.missing' });
  });

  it('an execution error: journaled with status error and the code', async () => {
    const r = await gw.sql('SELECT 1/0');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('backend.error');
    const { call, outcome } = journaled(r.callId);
    expect(call.decision).toMatchObject({ effect: 'allow', rule: 'read' });
    expect(outcome).toMatchObject({ status: 'error', errorCode: 'backend.error' });
  });

  it('a write: outcome records affected rows', async () => {
    const r = await gw.sql("UPDATE orders SET note = 'journaled' WHERE id = 3", as('sam@example.com', ['support']));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const { call, outcome } = journaled(r.callId);
    expect(call.principal).toMatchObject({ subject: 'sam@example.com', groups: ['support'] });
    expect(call.decision).toMatchObject({ effect: 'allow', rule: 'support-updates-orders' });
    expect(outcome).toMatchObject({ status: 'ok', affectedRows: 1 });
  });
});

describe('fail closed when the journal cannot be written', () => {
  function gatewayWith(journal: JournalStore): Gateway {
    return createGateway({
      config: gw.gateway.config,
      // The approvals are the test gateway's; closing this gateway leaves them to it.
      state: { journal, approvals: gw.gateway.state.approvals, streams: gw.gateway.state.streams, close: async () => {} },
      maskKey: gw.gateway.maskKey,
      environment: { env: { DB_URL: db.gatewayUrl }, baseDir: gw.dir },
    });
  }

  it.each([
    ['throws journal.unavailable', () => new DrawbridgeError('journal.unavailable', 'Cannot append to the audit journal (x): disk full')],
    ['throws a plain error', () => new Error('SQLITE_FULL: database or disk is full')],
  ])('a journal that %s: the allowed UPDATE is refused and never reaches the database', async (_what, failure) => {
    let attempts = 0;
    const broken: JournalStore = {
      read: () => gw.gateway.journal.read(),
      readFrom: (afterSeq, limit) => gw.gateway.journal.readFrom(afterSeq, limit),
      head: () => gw.gateway.journal.head(),
      probe: () => gw.gateway.journal.probe(),
      async append() {
        attempts++;
        throw failure();
      },
      async close() {},
    };
    const gateway = gatewayWith(broken);
    try {
      const before = await db.query<{ note: string | null }>('SELECT note FROM orders WHERE id = 7');
      const r = await callTool(gateway, {
        tool: 'run_sql',
        args: { connection: 'db', sql: "UPDATE orders SET note = 'unjournaled' WHERE id = 7" },
        identity: as('sam@example.com', ['support']),
      });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe('journal.unavailable');
      expect(r.text).toMatch(/^journal\.unavailable: .*\nWhat to do: The audit journal cannot be written, so nothing is executed/s);
      expect(attempts).toBe(1);
      const after = await db.query<{ note: string | null }>('SELECT note FROM orders WHERE id = 7');
      expect(after).toEqual(before);
      expect((await db.query("SELECT count(*)::int AS n FROM orders WHERE note = 'unjournaled'"))[0]?.['n']).toBe(0);
    } finally {
      await gateway.close();
    }
  });

  it('a journal that fails on the outcome withholds the answer of a read', async () => {
    const broken: JournalStore = {
      read: () => gw.gateway.journal.read(),
      readFrom: (afterSeq, limit) => gw.gateway.journal.readFrom(afterSeq, limit),
      head: () => gw.gateway.journal.head(),
      probe: () => gw.gateway.journal.probe(),
      async append(type, callId, data, now) {
        if (type === 'outcome') throw new DrawbridgeError('journal.unavailable', 'Cannot append to the audit journal (x): disk full');
        return gw.gateway.journal.append(type, callId, data, now);
      },
      async close() {},
    };
    const gateway = gatewayWith(broken);
    try {
      const r = await callTool(gateway, {
        tool: 'run_sql',
        args: { connection: 'db', sql: 'SELECT id, city FROM customers ORDER BY id LIMIT 1' },
        identity: gw.identity,
      });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe('journal.unavailable');
      const city = (await db.query<{ city: string }>('SELECT city FROM customers ORDER BY id LIMIT 1'))[0]!.city;
      expect(r.text).not.toContain(city);
    } finally {
      await gateway.close();
    }
  });
});

describe('journal verify and export (CLI) on a real journal', () => {
  let journal: string;
  let middle: string;

  beforeAll(async () => {
    // The gateway's clock dates the records: two calls, then `middle` a second later, then the rest.
    let now = Date.now();
    const local = await testGateway(db, {}, () => new Date(now));
    try {
      const support = as('sam@example.com', ['support']);
      await local.sql('SELECT count(*) FROM orders');
      await local.sql('DROP TABLE orders');
      middle = new Date((now += 1000)).toISOString();
      now += 1000;
      await local.sql("UPDATE orders SET note = 'x' WHERE id = 9", support);
      await local.sql('TRUNCATE orders', support);
      await callTool(local.gateway, { tool: 'other_tool', args: {}, identity: support });
      await local.gateway.journal.close(); // checkpoints the WAL into the main file
      const dir = mkdtempSync(join(tmpdir(), 'drawbridge-pjournal-'));
      tmp.push(dir);
      journal = join(dir, 'journal.db');
      copyFileSync(local.gateway.config.journal.path, journal);
    } finally {
      await local.close();
    }
  });

  it('verify passes on the journal as written, by --journal and by --config', async () => {
    const r = await runInProcess(['journal', 'verify', '--journal', journal]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^OK .*: 10 records, chain intact; head [0-9a-f]{64}; no checkpoints checked, so records deleted from the end would not be detected\n$/,
    );
    const live = await runInProcess(['journal', 'verify', '--config', gw.dir]);
    expect(live.status).toBe(0);
    expect(live.stdout).toMatch(/chain intact/);
  });

  it('verify fails after one record is edited by hand, naming the first bad seq', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drawbridge-tamper-'));
    tmp.push(dir);
    const copy = join(dir, 'journal.db');
    copyFileSync(journal, copy);
    const t = new Database(copy);
    try {
      t.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
      const row = t.prepare('SELECT data FROM records WHERE seq = 3').get() as { data: string };
      expect(row.data).toContain('"effect":"deny"');
      t.prepare('UPDATE records SET data = ? WHERE seq = 3').run(row.data.replace('"effect":"deny"', '"effect":"allow"'));
    } finally {
      t.close();
    }
    const r = await runInProcess(['journal', 'verify', '--journal', copy]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^FAILED .*: first bad record is #3: hash mismatch/);
    // Deleting a record is found as well.
    const t2 = new Database(copy);
    try {
      t2.prepare('UPDATE records SET data = ? WHERE seq = 3').run(
        (t2.prepare('SELECT data FROM records WHERE seq = 3').get() as { data: string }).data.replace('"effect":"allow"', '"effect":"deny"'),
      );
      expect((await runInProcess(['journal', 'verify', '--journal', copy])).status).toBe(0);
      t2.prepare('DELETE FROM records WHERE seq = 6').run();
    } finally {
      t2.close();
    }
    const gap = await runInProcess(['journal', 'verify', '--journal', copy]);
    expect(gap.status).toBe(1);
    expect(gap.stdout).toMatch(/first bad record is #7: seq gap/);
  });

  async function jsonl(args: string[]): Promise<Array<{ call: Record<string, any>; outcome: Record<string, any> | null; time: string }>> {
    const r = await runInProcess(['journal', 'export', '--journal', journal, ...args]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    return r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
  }

  it('export jsonl: one entry per call with its outcome', async () => {
    const all = await jsonl(['--format', 'jsonl']);
    expect(all.map((e) => e.call.tool)).toEqual(['run_sql', 'run_sql', 'run_sql', 'run_sql', 'other_tool']);
    expect(all.map((e) => e.outcome?.status)).toEqual(['ok', 'refused', 'ok', 'refused', 'refused']);
    expect(await jsonl([])).toEqual(all); // jsonl is the default
  });

  it('export filters: --subject, --tool, --decision deny, --since/--until', async () => {
    expect((await jsonl(['--subject', 'sam@example.com'])).map((e) => e.call.request?.operation ?? null)).toEqual(['update', 'ddl', null]);
    expect(await jsonl(['--subject', 'tester@example.com'])).toHaveLength(2);
    expect((await jsonl(['--tool', 'other_tool'])).map((e) => e.outcome?.errorCode)).toEqual(['tool.unknown']);
    const denied = await jsonl(['--decision', 'deny']);
    expect(denied.map((e) => e.call.decision.rule)).toEqual(['no-ddl', 'no-ddl', null]);
    expect(await jsonl(['--decision', 'allow'])).toHaveLength(2);
    expect((await jsonl(['--since', middle])).map((e) => e.call.principal.subject)).toEqual(['sam@example.com', 'sam@example.com', 'sam@example.com']);
    expect((await jsonl(['--until', middle])).map((e) => e.call.principal.subject)).toEqual(['tester@example.com', 'tester@example.com']);
    expect(await jsonl(['--since', middle, '--decision', 'deny', '--tool', 'run_sql'])).toHaveLength(1);
    expect(await jsonl(['--since', '2999-01-01'])).toEqual([]);
  });

  it('export csv: a header and one row per call, filtered', async () => {
    const r = await runInProcess(['journal', 'export', '--journal', journal, '--format', 'csv', '--decision', 'deny']);
    expect(r.status).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    const header = lines[0]!.split(',');
    expect(header).toContain('decision');
    expect(lines).toHaveLength(4);
    const col = (line: string, name: string) => line.split(',')[header.indexOf(name)];
    expect(lines.slice(1).map((l) => col(l, 'decision'))).toEqual(['deny', 'deny', 'deny']);
    expect(lines.slice(1).map((l) => col(l, 'rule'))).toEqual(['no-ddl', 'no-ddl', '']);
    expect(lines.slice(1).map((l) => col(l, 'subject'))).toEqual(['tester@example.com', 'sam@example.com', 'sam@example.com']);
    expect(lines.slice(1).map((l) => col(l, 'client'))).toEqual(['vitest', 'vitest', '']);
  });

  it('export refuses bad arguments with exit 2', async () => {
    expect((await runInProcess(['journal', 'export', '--journal', journal, '--format', 'xml'])).status).toBe(2);
    expect((await runInProcess(['journal', 'export', '--journal', journal, '--decision', 'maybe'])).status).toBe(2);
    expect((await runInProcess(['journal', 'export', '--journal', journal, '--since', 'yesterday'])).status).toBe(2);
    // A journal that is not there is a problem to fix (exit 1), not a usage mistake.
    const missing = await runInProcess(['journal', 'verify', '--journal', join(tmpdir(), 'no-such-journal.db')]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/journal\.unavailable: Audit journal not found/);
  });
});
