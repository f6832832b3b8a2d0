// The journal's read side for the console and the API (src/journal/search.ts) over a real
// SQLite journal holding records in exactly the shapes the pipeline and the approval
// adapters write: search filters each dimension and pages newest first; one call's record
// holds its intent, outcome and events; a session's replay (or a client's window) is in
// journal order with decisions, votes, outcomes, masking counts and totals; and every value
// returned is one the journal holds. verifyStatus summarises a good and a tampered chain.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRecord, searchCalls, sessionReplay, verifyStatus, type SearchFilter } from '../../src/journal/search.js';
import { openJournal, type Journal } from '../../src/state/sqlite/journal.js';
import type { JournalStore } from '../../src/state/contract.js';
import type { RecordType } from '../../src/state/records.js';

let dir: string;
let journal: Journal;
let store: JournalStore;

/** A JournalStore over the SQLite journal (what the SQLite engine wraps). */
function storeOf(j: Journal): JournalStore {
  return {
    append: async (type, callId, data, now, options) => j.append(type, callId, data, now, options),
    read: async function* () {
      yield* j.rows();
    },
    readFrom: async (afterSeq, limit) => j.readFrom(afterSeq, limit),
    head: async () => j.head(),
    probe: async () => j.probe(),
    close: async () => j.close(),
  };
}

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (minutes: number): Date => new Date(T0 + minutes * 60_000);
const append = (type: RecordType, callId: string, data: Record<string, unknown>, minutes: number) => journal.append(type, callId, data, at(minutes));

interface CallSpec {
  readonly id: string;
  readonly min: number;
  readonly subject: string;
  readonly client: string;
  readonly session: string | null;
  readonly tool: string;
  readonly connection: string;
  readonly effect: 'allow' | 'deny' | 'approve' | null;
  readonly status: 'ok' | 'refused' | 'error' | null;
  readonly rows?: number;
  readonly masked?: ReadonlyArray<{ target: string; by: string; count: number }>;
}

/** An intent (as callTool writes it) and, unless status is null, its outcome one second later. */
function writeCall(c: CallSpec): void {
  append(
    'call',
    c.id,
    {
      principal: { subject: c.subject, groups: ['analysts'], kind: 'oidc', issuer: 'https://idp.test' },
      client: { name: c.client, version: '1.0' },
      ...(c.session === null ? {} : { session: c.session }),
      tool: c.tool,
      connection: c.connection,
      input: { connection: c.connection, sql: `SELECT '${c.id}'` },
      request: { operation: 'select', access: 'read', resources: ['public.orders'], summary: `SELECT on public.orders (${c.id})`, reasons: [] },
      decision: c.effect === null ? null : { effect: c.effect, rule: c.effect === 'allow' ? 'read' : `rule-${c.effect}`, message: null },
      ...(c.effect === null ? { error: { code: 'backend.unavailable', message: 'down' } } : {}),
      clearance: null,
    },
    c.min,
  );
  if (c.status === null) return;
  const outcome =
    c.status === 'ok'
      ? {
          status: 'ok',
          rows: c.rows ?? 0,
          affectedRows: null,
          bytes: 10,
          durationMs: 1.5,
          truncated: false,
          masked: c.masked ?? [],
          answerHash: 'a'.repeat(64),
        }
      : { status: c.status, errorCode: c.status === 'error' ? 'backend.unavailable' : 'policy.denied', durationMs: 0.5, masked: [] };
  append('outcome', c.id, outcome, c.min + 1 / 60);
}

const CALLS: readonly CallSpec[] = [
  { id: 'c1', min: 0, subject: 'alice', client: 'claude', session: 's-a', tool: 'run_sql', connection: 'db', effect: 'allow', status: 'ok', rows: 3 },
  {
    id: 'c2',
    min: 1,
    subject: 'alice',
    client: 'claude',
    session: 's-a',
    tool: 'run_sql',
    connection: 'db',
    effect: 'allow',
    status: 'ok',
    rows: 2,
    masked: [
      { target: 'email', by: 'column', count: 2 },
      { target: 'iban', by: 'detector', count: 1 },
    ],
  },
  { id: 'c3', min: 2, subject: 'bob', client: 'cursor', session: 's-b', tool: 'kubectl', connection: 'prod', effect: 'deny', status: 'refused' },
  { id: 'c4', min: 3, subject: 'alice', client: 'claude', session: 's-a', tool: 'run_sql', connection: 'db', effect: 'approve', status: 'ok', rows: 0 },
  { id: 'c5', min: 4, subject: 'bob', client: 'cursor', session: 's-b', tool: 'run_sql', connection: 'db2', effect: null, status: 'error' },
  { id: 'c6', min: 5, subject: 'carol', client: 'claude', session: null, tool: 'run_sql', connection: 'db', effect: 'allow', status: null },
];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'drawbridge-search-'));
  journal = openJournal(join(dir, 'journal.db'));
  store = storeOf(journal);
  for (const c of CALLS.slice(0, 3)) writeCall(c);
  // c4 needs two DBAs: requested before its intent (as the out-of-band adapter does), two votes, consumed, a grant.
  append('approval', 'c4', { event: 'requested', approvalId: 'ap_1', via: 'cli', hash: 'h', rule: 'rule-approve', status: 'pending' }, 2.5);
  append(
    'approval',
    'c4',
    {
      event: 'vote',
      approvalId: 'ap_1',
      decision: 'approve',
      approver: { subject: 'dana', groups: ['dba'], kind: 'oidc' },
      via: 'api',
      reason: 'fine',
      grantMs: 900000,
      status: 'pending',
    },
    2.6,
  );
  append(
    'approval',
    'c4',
    {
      event: 'vote',
      approvalId: 'ap_1',
      decision: 'approve',
      approver: { subject: 'erin', groups: ['dba'], kind: 'oidc' },
      via: 'console',
      reason: null,
      grantMs: 0,
      status: 'approved',
    },
    2.7,
  );
  append('approval', 'c4', { event: 'consumed', approvalId: 'ap_1', status: 'consumed' }, 2.8);
  append(
    'grant',
    'c4',
    {
      event: 'created',
      grantId: 'gr_1',
      approvalId: 'ap_1',
      subject: 'alice',
      tool: 'run_sql',
      connection: 'db',
      rule: 'rule-approve',
      expiresAt: at(18).toISOString(),
    },
    2.9,
  );
  for (const c of CALLS.slice(3)) writeCall(c);
  // A revocation comes any time later, under the call id that created the grant.
  append(
    'grant',
    'c4',
    { event: 'revoked', grantId: 'gr_1', approvalId: 'ap_1', by: 'dana', approver: { subject: 'dana', groups: ['dba'], kind: 'oidc' } },
    10,
  );
});

afterAll(() => {
  journal?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ids = (page: { calls: ReadonlyArray<{ callId: string }> }): string[] => page.calls.map((c) => c.callId);

describe('searchCalls', () => {
  const cases: ReadonlyArray<readonly [string, SearchFilter, readonly string[]]> = [
    ['no filter: every call, newest first', {}, ['c6', 'c5', 'c4', 'c3', 'c2', 'c1']],
    ['since (inclusive)', { since: at(2) }, ['c6', 'c5', 'c4', 'c3']],
    ['until (exclusive)', { until: at(2) }, ['c2', 'c1']],
    ['since and until', { since: at(1), until: at(4) }, ['c4', 'c3', 'c2']],
    ['subject', { subject: 'bob' }, ['c5', 'c3']],
    ['tool', { tool: 'kubectl' }, ['c3']],
    ['connection', { connection: 'db' }, ['c6', 'c4', 'c2', 'c1']],
    ['decision allow', { decision: 'allow' }, ['c6', 'c2', 'c1']],
    ['decision deny (an outage is no denial)', { decision: 'deny' }, ['c3']],
    ['decision approve', { decision: 'approve' }, ['c4']],
    ['status ok', { status: 'ok' }, ['c4', 'c2', 'c1']],
    ['status refused', { status: 'refused' }, ['c3']],
    ['status error', { status: 'error' }, ['c5']],
    ['session', { session: 's-b' }, ['c5', 'c3']],
    ['client', { client: 'claude' }, ['c6', 'c4', 'c2', 'c1']],
    ['dimensions combine', { subject: 'alice', status: 'ok', since: at(1) }, ['c4', 'c2']],
    ['nothing matches', { subject: 'nobody' }, []],
  ];
  it.each(cases)('%s', async (_name, filter, expected) => {
    const page = await searchCalls(store, filter);
    expect(ids(page)).toEqual(expected);
    expect(page.next).toBeNull();
  });

  it('pages with limit and the seq cursor, without repeating or skipping a call', async () => {
    const seen: string[] = [];
    let before: number | undefined;
    let pages = 0;
    for (;;) {
      const page = await searchCalls(store, { limit: 2, ...(before !== undefined ? { before } : {}) });
      pages += 1;
      seen.push(...ids(page));
      if (page.next === null) break;
      expect(page.next).toBe(page.calls[page.calls.length - 1]?.seq);
      before = page.next;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(['c6', 'c5', 'c4', 'c3', 'c2', 'c1']);
    // Paging a filtered search: the filter applies before the page is cut.
    const first = await searchCalls(store, { connection: 'db', limit: 3 });
    expect(ids(first)).toEqual(['c6', 'c4', 'c2']);
    expect(ids(await searchCalls(store, { connection: 'db', limit: 3, before: first.next as number }))).toEqual(['c1']);
  });

  it('refuses a limit or cursor out of range as a programmer mistake', async () => {
    await expect(searchCalls(store, { limit: 0 })).rejects.toThrow(TypeError);
    await expect(searchCalls(store, { limit: 501 })).rejects.toThrow(TypeError);
    await expect(searchCalls(store, { before: 0 })).rejects.toThrow(TypeError);
  });
});

/** Every stored record's parsed data, by call id and type, straight from the file. */
function storedRecords(): Array<{ seq: number; type: string; callId: string; time: string; data: unknown }> {
  const db = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return (db.prepare('SELECT seq, type, call_id AS callId, time, data FROM records ORDER BY seq').all() as Array<Record<string, unknown>>).map((r) => ({
      seq: Number(r.seq),
      type: String(r.type),
      callId: String(r.callId),
      time: String(r.time),
      data: JSON.parse(String(r.data)) as unknown,
    }));
  } finally {
    db.close();
  }
}

describe('callRecord', () => {
  it('holds the intent, outcome and every approval and grant event exactly as journaled, and nothing else', async () => {
    const entry = await callRecord(store, 'c4');
    const stored = storedRecords().filter((r) => r.callId === 'c4');
    const intent = stored.find((r) => r.type === 'call');
    expect(entry).toBeDefined();
    expect(entry?.seq).toBe(intent?.seq);
    expect(entry?.call).toEqual(intent?.data);
    expect(entry?.outcome).toEqual(stored.find((r) => r.type === 'outcome')?.data);
    expect(entry?.events).toEqual(
      stored.filter((r) => r.type === 'approval' || r.type === 'grant').map((r) => ({ seq: r.seq, time: r.time, type: r.type, data: r.data })),
    );
    expect(entry?.events.map((e) => e.data['event'])).toEqual(['requested', 'vote', 'vote', 'consumed', 'created', 'revoked']);
  });

  it('is undefined for a call id the journal does not hold, and null-outcome for a call that never finished', async () => {
    expect(await callRecord(store, 'no-such-call')).toBeUndefined();
    expect((await callRecord(store, 'c6'))?.outcome).toBeNull();
  });
});

describe('sessionReplay', () => {
  it("replays one session's calls in journal order with decisions, outcomes, masking counts and totals", async () => {
    const replay = await sessionReplay(store, { session: 's-a' });
    expect(replay.steps.map((s) => s.callId)).toEqual(['c1', 'c2', 'c4']);
    expect(replay.steps.map((s) => s.seq)).toEqual([...replay.steps.map((s) => s.seq)].sort((a, b) => a - b));
    const [c1, c2, c4] = replay.steps;
    expect(c1).toMatchObject({
      session: 's-a',
      subject: 'alice',
      client: 'claude',
      tool: 'run_sql',
      connection: 'db',
      summary: 'SELECT on public.orders (c1)',
      decision: { effect: 'allow', rule: 'read', message: null },
      clearance: null,
      approvals: [],
      outcome: { status: 'ok', rows: 3, affectedRows: null, errorCode: null, durationMs: 1.5 },
      masked: 0,
    });
    expect(c2?.masked).toBe(3);
    expect(c2?.maskedBy).toEqual([
      { target: 'email', by: 'column', count: 2 },
      { target: 'iban', by: 'detector', count: 1 },
    ]);
    expect(c4?.decision).toEqual({ effect: 'approve', rule: 'rule-approve', message: null });
    expect(replay.totals).toEqual({
      calls: 3,
      decisions: { allow: 2, deny: 0, approve: 1, none: 0 },
      outcomes: { ok: 3, refused: 0, error: 0, none: 0 },
      rows: 5,
      affectedRows: 0,
      masked: 3,
      votes: 2,
      durationMs: 4.5,
    });
  });

  it('shows the votes on a call that needed approvals: who, how, when, and the grant created and revoked', async () => {
    const step = (await sessionReplay(store, { session: 's-a' })).steps.find((s) => s.callId === 'c4');
    expect(step?.approvals).toEqual([
      {
        approvalId: 'ap_1',
        via: 'cli',
        votes: [
          { subject: 'dana', decision: 'approve', via: 'api', time: at(2.6).toISOString(), reason: 'fine' },
          { subject: 'erin', decision: 'approve', via: 'console', time: at(2.7).toISOString(), reason: null },
        ],
      },
    ]);
    expect(step?.grants).toEqual([
      { event: 'created', grantId: 'gr_1', time: at(2.9).toISOString() },
      { event: 'revoked', grantId: 'gr_1', time: at(10).toISOString() },
    ]);
  });

  it("counts refusals, outages and unfinished calls; a client's window replays its calls, optionally one subject's", async () => {
    const b = await sessionReplay(store, { session: 's-b' });
    expect(b.steps.map((s) => [s.callId, s.decision?.effect ?? null, s.outcome?.status, s.outcome?.errorCode])).toEqual([
      ['c3', 'deny', 'refused', 'policy.denied'],
      ['c5', null, 'error', 'backend.unavailable'],
    ]);
    expect(b.totals.decisions).toEqual({ allow: 0, deny: 1, approve: 0, none: 1 });
    expect(b.totals.outcomes).toEqual({ ok: 0, refused: 1, error: 1, none: 0 });
    const window = await sessionReplay(store, { client: 'claude', since: at(1), until: at(6) });
    expect(window.steps.map((s) => s.callId)).toEqual(['c2', 'c4', 'c6']);
    expect(window.steps[2]).toMatchObject({ session: null, outcome: null });
    expect(window.totals.outcomes.none).toBe(1);
    const carol = await sessionReplay(store, { client: 'claude', subject: 'carol', since: at(0), until: at(60) });
    expect(carol.steps.map((s) => s.callId)).toEqual(['c6']);
    expect((await sessionReplay(store, { session: 'unknown' })).steps).toEqual([]);
    await expect(sessionReplay(store, { client: 'claude', since: at(5), until: at(5) })).rejects.toThrow(TypeError);
  });
});

describe('verifyStatus', () => {
  it('summarises a good chain, and names the first bad record of a tampered one', async () => {
    const good = await verifyStatus(store);
    const stored = storedRecords();
    expect(good).toMatchObject({ ok: true, records: stored.length, firstBad: null, checkpoints: null, badCheckpoint: null });
    expect(good.head).toBe(journal.head().hash);
    expect(good.text).toBe(`${stored.length} records verify.`);

    const copyDir = mkdtempSync(join(tmpdir(), 'drawbridge-search-bad-'));
    try {
      const copy = join(copyDir, 'journal.db');
      const source = new Database(join(dir, 'journal.db'), { readonly: true });
      await source.backup(copy);
      source.close();
      const raw = new Database(copy);
      // The append-only triggers dropped, as an attacker with the file would.
      raw.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
      raw.prepare("UPDATE records SET data = replace(data, 'c2)', 'cX)') WHERE seq = 3").run();
      raw.close();
      const tampered = openJournal(copy);
      try {
        const bad = await verifyStatus(storeOf(tampered));
        expect(bad.ok).toBe(false);
        expect(bad.firstBad?.seq).toBe(3);
        expect(bad.text).toMatch(/^The chain breaks at record 3: /);
      } finally {
        tampered.close();
      }
    } finally {
      rmSync(copyDir, { recursive: true, force: true });
    }
  });
});
