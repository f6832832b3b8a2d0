// Journal appends per second (openJournal, hash-chained SQLite in WAL mode)
// with synchronous FULL (fsync on every commit, the default) and NORMAL, in a
// temp dir. Records alternate between a call intent and its outcome, shaped
// like what the pipeline writes. Also: concurrent callers in one process, with
// the engine's group commit (sqliteJournal) against one commit per append.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { sqliteJournal } from '../src/state/sqlite/index.js';
import { openJournal } from '../src/state/sqlite/journal.js';
import { percentile, removeTempDir, tempDir } from './support.js';

function intent(i: number): Record<string, unknown> {
  return {
    principal: { subject: 'analyst@example.com', groups: ['analysts', 'sre'], kind: 'local', issuer: 'local' },
    client: { name: 'claude-code', version: '1.0.0' },
    tool: 'run_sql',
    connection: 'orders-prod',
    input: {
      connection: 'orders-prod',
      sql: `SELECT id, status, total, created_at FROM orders WHERE customer_id = ${1000 + (i % 977)} ORDER BY created_at DESC LIMIT 50`,
    },
    request: {
      operation: 'select',
      access: 'read',
      resources: ['public.orders'],
      functions: [],
      summary: 'select (read) on public.orders',
      reasons: [],
    },
    decision: { effect: 'allow', rule: 'analysts-read', message: 'Analysts may read.' },
  };
}

function outcome(i: number): Record<string, unknown> {
  return {
    status: 'ok',
    rows: 50,
    affectedRows: null,
    bytes: 4_812 + (i % 100),
    durationMs: 3.17,
    truncated: false,
    masked: [{ target: 'customers.email', by: 'column', rule: 'pii', count: 50 }],
    answerHash: 'a3f1c2d4e5b6a7980f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778',
  };
}

export interface JournalNumbers {
  readonly sync: 'full' | 'normal';
  readonly appends: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p95: number;
}

/** Appends for up to `seconds` (at most `maxAppends`); one open journal per run. */
export function journalThroughput(sync: 'full' | 'normal', seconds: number, maxAppends: number): JournalNumbers {
  const dir = tempDir(`journal-${sync}`);
  const journal = openJournal(join(dir, 'journal.db'), { sync });
  try {
    // Warm up (schema, page cache, WAL file creation).
    for (let i = 0; i < 20; i++) journal.append(i % 2 === 0 ? 'call' : 'outcome', randomUUID(), i % 2 === 0 ? intent(i) : outcome(i));
    const latencies: number[] = [];
    let callId = randomUUID();
    const start = performance.now();
    const deadline = start + seconds * 1000;
    let i = 0;
    while (i < maxAppends && performance.now() < deadline) {
      const isIntent = i % 2 === 0;
      if (isIntent) callId = randomUUID();
      const t0 = performance.now();
      journal.append(isIntent ? 'call' : 'outcome', callId, isIntent ? intent(i) : outcome(i));
      latencies.push(performance.now() - t0);
      i++;
    }
    const elapsed = performance.now() - start;
    return { sync, appends: i, perSecond: i / (elapsed / 1000), p50: percentile(latencies, 50), p95: percentile(latencies, 95) };
  } finally {
    journal.close();
    removeTempDir(dir);
  }
}

export interface ConcurrentJournalNumbers {
  readonly mode: 'group commit' | 'commit per append';
  readonly callers: number;
  readonly calls: number;
  readonly callsPerSecond: number;
  /** Per call: the durable intent, a turn of the event loop (standing in for the backend), the outcome. */
  readonly p50: number;
  readonly p99: number;
}

/**
 * `callers` concurrent "calls" in process, each: await the durable intent, yield one turn of the
 * event loop (the backend round trip stands in here), await the outcome (durable: false), as the
 * pipeline does; `calls` in all. 'group commit' is the engine's JournalStore (sqliteJournal);
 * 'commit per append' is the synchronous writer, one transaction and fsync per durable append.
 */
export async function concurrentJournal(mode: ConcurrentJournalNumbers['mode'], callers: number, calls: number): Promise<ConcurrentJournalNumbers> {
  const dir = tempDir('journal-concurrent');
  const file = join(dir, 'journal.db');
  const grouped = mode === 'group commit' ? sqliteJournal(file, 'full') : null;
  const single = grouped === null ? openJournal(file, { sync: 'full' }) : null;
  const append = async (type: 'call' | 'outcome', callId: string, data: Record<string, unknown>, durable: boolean) =>
    grouped ? grouped.append(type, callId, data, undefined, { durable }) : single?.append(type, callId, data, undefined, { durable });
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  try {
    const latencies: number[] = [];
    let started = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (started < calls) {
          const i = started++;
          const callId = randomUUID();
          const s = performance.now();
          await append('call', callId, intent(i), true);
          await turn();
          await append('outcome', callId, outcome(i), false);
          latencies.push(performance.now() - s);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    return { mode, callers, calls, callsPerSecond: calls / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    await grouped?.close();
    single?.close();
    removeTempDir(dir);
  }
}
