// The SQLite engine of the state contract: the embedded default. Wraps the synchronous
// journal (journal.ts) and approvals store (approvals.ts), each its own WAL file, into
// the async JournalStore / ApprovalStore. It adds two things of its own: group commit of
// the journal's appends (concurrent calls share one transaction and one fsync), and a lock
// per approvals handle, so that an async vote hook never lets another call's statements
// into the vote's open transaction.

import { EventEmitter, once } from 'node:events';
import { existsSync } from 'node:fs';
import { STREAM_LEASE_MS, type ApprovalStore, type JournalStore, type StateStore, type StreamCursorStore } from '../contract.js';
import { decidedBy, decisionListeners } from '../approval-rules.js';
import { DrawbridgeError } from '../../errors.js';
import type { JournalRecord } from '../records.js';
import { openJournal, type Journal, type JournalOptions, type PreparedAppend } from './journal.js';
import { openSqliteApprovals, type SqliteApprovals } from './approvals.js';

export interface SqliteStatePaths {
  readonly journal: string;
  readonly journalSync: NonNullable<JournalOptions['sync']>;
  /** 'now': a gateway refuses to start without its journal; 'on first append': a CLI command that only reads approvals creates no journal file. */
  readonly openJournal: 'now' | 'on first append';
  readonly approvals: string;
}

/** Opens the journal file now or on its first append (paths.openJournal); the approvals file on first use. */
export function openSqliteState(paths: SqliteStatePaths): StateStore {
  const { journal, streams } = sqliteJournalAndStreams(paths.journal, paths.journalSync, paths.openJournal);
  const approvals = sqliteApprovals(() => openSqliteApprovals(paths.approvals), paths.approvals);
  return {
    journal,
    approvals,
    streams,
    async close() {
      await Promise.all([approvals.close(), journal.close()]);
    },
  };
}

export function sqliteJournal(path: string, sync: NonNullable<JournalOptions['sync']>, when: SqliteStatePaths['openJournal'] = 'now'): JournalStore {
  return sqliteJournalAndStreams(path, sync, when).journal;
}

/** The journal and the stream cursors kept in its file, over one connection. */
export function sqliteJournalAndStreams(
  path: string,
  sync: NonNullable<JournalOptions['sync']>,
  when: SqliteStatePaths['openJournal'],
): { journal: JournalStore; streams: StreamCursorStore } {
  let journal: Journal | null = when === 'now' ? openJournal(path, { sync }) : null;
  let closed = false;
  const opened = (): Journal => {
    if (closed && journal === null) throw new DrawbridgeError('journal.unavailable', 'Cannot append to the audit journal: journal is closed');
    return (journal ??= openJournal(path, { sync }));
  };
  // Group commit: appends made in the same turn of the event loop (the concurrent calls whose
  // requests arrived together) wait in `queue` and share one transaction and one fsync, run
  // from setImmediate once that turn's I/O callbacks and microtasks are done. Each append
  // resolves only after the COMMIT that holds its record, so "durable before it resolves" holds
  // per record; the order of the queue is the order of the chain.
  let queue: Array<{ readonly record: PreparedAppend; readonly resolve: (r: JournalRecord) => void; readonly reject: (e: unknown) => void }> = [];
  const flush = (): void => {
    const batch = queue;
    queue = [];
    let records: JournalRecord[];
    try {
      records = opened().commit(batch.map((b) => b.record));
    } catch (error) {
      for (const b of batch) b.reject(error);
      return;
    }
    batch.forEach((b, i) => b.resolve(records[i] as JournalRecord));
  };
  const streams: StreamCursorStore = {
    cursor: async (sink) => opened().streamCursor(sink),
    advance: async (sink, seq, now) => opened().advanceStream(sink, seq, now),
    claim: async (sink, holder, now) => opened().claimStream(sink, holder, now.getTime(), STREAM_LEASE_MS),
    release: async (sink, holder) => {
      if (journal !== null && !closed) journal.releaseStream(sink, holder);
    },
    // The journal's connection: closed with the journal.
    close: async () => undefined,
  };
  const store: JournalStore = {
    append: (type, callId, data, now, options) =>
      new Promise<JournalRecord>((resolve, reject) => {
        // Checked alone first: a record that cannot be stored is refused without failing its batch.
        const record = opened().prepare(type, callId, data, now, options);
        if (queue.length === 0) setImmediate(flush);
        queue.push({ record, resolve, reject });
      }),
    async *read() {
      yield* opened().rows();
    },
    readFrom: async (afterSeq, limit) => opened().readFrom(afterSeq, limit),
    head: async () => opened().head(),
    probe: async () => opened().probe(),
    close: async () => {
      closed = true;
      // Appends already queued are committed first: each was accepted before close.
      if (queue.length > 0) flush();
      journal?.close();
    },
  };
  return { journal: store, streams };
}

/** Serialises every use of one handle: better-sqlite3 has one connection, and voteThen keeps a transaction open across an await. */
function serial(): <T>(body: () => T | Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(body: () => T | Promise<T>): Promise<T> => {
    const run = tail.then(body);
    tail = run.catch(() => undefined);
    return run;
  };
}

/**
 * Changes committed through any handle in this process, by approval id. SQLite has no way to
 * tell another process; a call waiting there sees the change on its next poll.
 */
const changes = new EventEmitter().setMaxListeners(0);

/** Resolves on the next in-process change of `key` or when `signal` aborts. */
async function nextChange(key: string, signal: AbortSignal): Promise<void> {
  await once(changes, key, { signal }).catch(() => undefined);
}

/**
 * The async ApprovalStore over one SqliteApprovals, opened by `open` on first use: a gateway whose
 * policy never asks for approval never creates the file. `key` names the file, for change notices.
 */
export function sqliteApprovals(open: () => SqliteApprovals, key = ''): ApprovalStore {
  let store: SqliteApprovals | null = null;
  let closed = false;
  const locked = serial();
  const decided = decisionListeners();
  const notify = async <T>(id: string, change: Promise<T>): Promise<T> => {
    const result = await change;
    changes.emit(`${key}\0${id}`);
    return result;
  };
  const use = <T>(body: (s: SqliteApprovals) => T | Promise<T>): Promise<T> =>
    locked(async () => {
      if (closed && store === null) throw new DrawbridgeError('approval.store_unavailable', 'The approvals store is closed.');
      const s = (store ??= open());
      try {
        return await body(s);
      } finally {
        // Requests this operation marked expired (in transactions that committed, refused or not).
        decided.emit('expired', s.takeExpired());
      }
    });
  return {
    openRequest: (subject, now, ttlMs) => use((s) => s.openRequest(subject, now, ttlMs)),
    get: (id, now) => use((s) => s.get(id, now)),
    list: (now, filter) => use((s) => s.list(now, filter)),
    vote: (id, vote, now, hooks) =>
      notify(id, use((s) => (hooks?.beforeCommit ? s.voteThen(id, vote, now, hooks.beforeCommit) : s.vote(id, vote, now))).then(decidedBy(decided))),
    consume: (id, now) =>
      notify(
        id,
        use((s) => s.consume(id, now)),
      ),
    reportDenial: (id, now) =>
      notify(
        id,
        use((s) => s.reportDenial(id, now)),
      ),
    createGrant: (input, now) => use((s) => s.createGrant(input, now)),
    findGrant: (q, now) => use((s) => s.findGrant(q, now)),
    listGrants: (now, filter) => use((s) => s.listGrants(now, filter)),
    revokeGrant: (id, by, now) => use((s) => s.revokeGrant(id, by, now)),
    changed: (id, signal) => nextChange(`${key}\0${id}`, signal),
    sharedKey: (name, create) => use((s) => s.sharedKey(name, create)),
    counts: async (now) => {
      // A gateway that never asked for approval has no file yet: nothing pending, and /metrics creates none.
      if (store === null && !closed && key !== '' && key !== ':memory:' && !existsSync(key)) return { pending: 0, activeGrants: 0 };
      return use((s) => s.counts(now));
    },
    onDecided: (listener) => decided.subscribe(listener),
    dump: () => use((s) => s.dump()),
    load: (dump) => use((s) => s.load(dump)),
    close: () =>
      locked(() => {
        if (closed) return;
        closed = true;
        store?.close();
      }),
  };
}
