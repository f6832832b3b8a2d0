// The SQLite engine's journal: an append-only, hash-chained SQLite (WAL) file.
// Owns the schema and the synchronous writer that state/sqlite/index.ts wraps into the
// async JournalStore; record hashing is state/records.ts. It does not verify
// (journal/verify.ts) or export (journal/export.ts), and it knows nothing about policy.

import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DrawbridgeError } from '../../errors.js';
import { canonicalJson } from '../../util/canonical-json.js';
import type { StoredRecord } from '../contract.js';
import { deepFreeze, GENESIS_HASH, recordHash, type AppendOptions, type JournalRecord, type RecordType } from '../records.js';

/** The synchronous writer; callers use the async JournalStore of state/contract.ts. */
export interface Journal {
  /**
   * Appends and returns once the record is committed; with sync 'full' and `durable`
   * (the default) also fsynced. `durable: false` commits without an fsync of its own:
   * the record reaches the disk with the next durable append, so a power loss can drop
   * it but never reorder or corrupt the chain. Throws DrawbridgeError('journal.unavailable', …).
   */
  append(type: RecordType, callId: string, data: Record<string, unknown>, now?: Date, options?: AppendOptions): JournalRecord;
  /**
   * Checks and serialises one record without touching the file, so that a bad record fails
   * alone and never takes a batch down with it. Throws DrawbridgeError('journal.unavailable', …).
   */
  prepare(type: RecordType, callId: string, data: Record<string, unknown>, now?: Date, options?: AppendOptions): PreparedAppend;
  /**
   * Group commit: appends prepared records in order in one transaction, with one fsync when any
   * of them is durable (none when all are `durable: false`), and returns them once committed.
   * All or nothing: on failure none is stored and it throws DrawbridgeError('journal.unavailable', …).
   */
  commit(batch: readonly PreparedAppend[]): JournalRecord[];
  /** The stored rows in seq order; one statement, so one read snapshot. */
  rows(): IterableIterator<StoredRecord>;
  /** At most `limit` rows with seq > afterSeq, in seq order. */
  readFrom(afterSeq: number, limit: number): StoredRecord[];
  /** The audit stream's cursors (stream_cursors): see StreamCursorStore in state/contract.ts. */
  streamCursor(sink: string): { seq: number; updatedAt: string | null };
  advanceStream(sink: string, seq: number, now: Date): void;
  claimStream(sink: string, holder: string, nowMs: number, leaseMs: number): boolean;
  releaseStream(sink: string, holder: string): void;
  head(): { seq: number; hash: string };
  /** Takes the write lock (BEGIN IMMEDIATE) and releases it at once, waiting at most PROBE_BUSY_MS for another writer. */
  probe(): void;
  close(): void;
}

/** A record checked and serialised by Journal.prepare, not yet chained (seq and hashes are set under the write lock). */
export interface PreparedAppend {
  readonly type: RecordType;
  readonly callId: string;
  readonly dataJson: string;
  /** dataJson parsed back and frozen: what verify will see, and what the record's hash covers. */
  readonly data: Readonly<Record<string, unknown>>;
  readonly time: string;
  readonly durable: boolean;
}

export interface JournalOptions {
  /** 'full' (default) fsyncs the WAL on every commit; 'normal' may lose the last commits on power loss. */
  readonly sync?: 'full' | 'normal';
}

/** Stored in meta(key 'format_version'); bump when the record or hash layout changes. */
const JOURNAL_FORMAT_VERSION = '1';

const BUSY_TIMEOUT_MS = 5_000;
/** How long a readiness probe waits for another writer's lock. */
const PROBE_BUSY_MS = 200;

/** The records columns under the names of StoredRecord. */
export const STORED_COLUMNS = 'seq, time, type, call_id AS callId, data, prev_hash AS prevHash, hash';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
  seq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  type TEXT NOT NULL,
  call_id TEXT NOT NULL,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_call_id ON records (call_id, type, seq);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
BEGIN
  SELECT RAISE(ABORT, 'journal records are append-only');
END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
BEGIN
  SELECT RAISE(ABORT, 'journal records are append-only');
END;
CREATE TABLE IF NOT EXISTS stream_cursors (
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL DEFAULT 0,
  updated_at TEXT,
  holder TEXT,
  lease_until_ms INTEGER NOT NULL DEFAULT 0
);
`;

// ---------------------------------------------------------------------------
// Writer

function unavailable(message: string, path: string, cause: unknown): DrawbridgeError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new DrawbridgeError('journal.unavailable', `${message} (${path}): ${reason}`, {
    details: { path },
    cause,
  });
}

/**
 * An append that failed, as the agent sees it: the reason without the journal's
 * path (an agent is never shown where files live on the gateway host). The path
 * stays in `details.path` and the cause, for the operator's log.
 */
function appendFailed(path: string, cause: unknown): DrawbridgeError {
  const reason = (cause instanceof Error ? cause.message : String(cause)).split(path).join('the journal file');
  return new DrawbridgeError('journal.unavailable', `Cannot append to the audit journal: ${reason}`, {
    details: { path },
    cause,
  });
}

interface LastRow {
  seq: number;
  hash: string;
}

export function openJournal(path: string, options: JournalOptions = {}): Journal {
  const sync = options.sync ?? 'full';
  const inMemory = path === ':memory:';
  let db: Database.Database;
  try {
    if (!inMemory) mkdirSync(dirname(path), { recursive: true });
    db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (cause) {
    throw unavailable('Cannot open the audit journal', path, cause);
  }

  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    // WAL lets verify/export read while the gateway writes; refuse to run in
    // a weaker mode silently (e.g. a filesystem without shared memory).
    if (mode !== 'wal' && !(inMemory && mode === 'memory')) {
      throw new Error(`journal_mode is ${String(mode)}, expected wal`);
    }
    db.pragma(`synchronous = ${sync === 'full' ? 'FULL' : 'NORMAL'}`);
    // Schema creation races with other processes opening the same file, so
    // do it under the write lock.
    db.transaction(() => {
      db.exec(SCHEMA);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('format_version', ?)").run(JOURNAL_FORMAT_VERSION);
      const version = db.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get();
      if (version !== JOURNAL_FORMAT_VERSION) {
        throw new Error(`unsupported journal format version ${String(version)} (expected ${JOURNAL_FORMAT_VERSION})`);
      }
    }).immediate();
  } catch (cause) {
    db.close();
    throw unavailable('Cannot initialise the audit journal', path, cause);
  }

  const lastStmt = db.prepare('SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1');
  const insertStmt = db.prepare('INSERT INTO records (seq, time, type, call_id, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)');

  // Reading the tail and inserting must happen under one write lock (BEGIN
  // IMMEDIATE): otherwise two processes could both chain onto the same
  // previous hash and fork the chain. Nothing is cached between calls for the
  // same reason: another handle may have appended since. A batch chains its
  // records onto each other inside that one transaction.
  const appendTx = db.transaction((batch: readonly PreparedAppend[]): JournalRecord[] => {
    const last = lastStmt.get() as LastRow | undefined;
    let seq = last === undefined ? 0 : last.seq;
    let prevHash = last === undefined ? GENESIS_HASH : last.hash;
    const out: JournalRecord[] = [];
    for (const { type, callId, dataJson, data, time } of batch) {
      seq += 1;
      const hash = recordHash({ seq, time, type, callId, data, prevHash });
      insertStmt.run(seq, time, type, callId, dataJson, prevHash, hash);
      out.push(Object.freeze({ seq, time, type, callId, data, prevHash, hash }));
      prevHash = hash;
    }
    return out;
  });

  const fromStmt = db.prepare(`SELECT ${STORED_COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT ?`);
  const cursorStmt = db.prepare('SELECT seq, updated_at AS updatedAt, holder, lease_until_ms AS leaseUntil FROM stream_cursors WHERE name = ?');
  // A cursor only moves forward: a streamer that lost its lease cannot move it back.
  const advanceStmt = db.prepare(
    'INSERT INTO stream_cursors (name, seq, updated_at) VALUES (?, ?, ?) ' +
      'ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at WHERE excluded.seq > stream_cursors.seq',
  );
  // One statement, so atomic across processes: taken when free, expired or already ours.
  const claimStmt = db.prepare(
    'INSERT INTO stream_cursors (name, holder, lease_until_ms) VALUES (?, ?, ?) ' +
      'ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until_ms = excluded.lease_until_ms ' +
      'WHERE stream_cursors.holder IS NULL OR stream_cursors.holder = excluded.holder OR stream_cursors.lease_until_ms <= ?',
  );
  const releaseStmt = db.prepare('UPDATE stream_cursors SET holder = NULL, lease_until_ms = 0 WHERE name = ? AND holder = ?');
  const live = (): void => {
    if (closed) throw appendFailed(path, new Error('journal is closed'));
  };
  const guarded = <T>(body: () => T): T => {
    live();
    try {
      return body();
    } catch (cause) {
      throw appendFailed(path, cause);
    }
  };

  const syncNormal = db.prepare('PRAGMA synchronous = NORMAL');
  const syncFull = db.prepare('PRAGMA synchronous = FULL');
  /**
   * A stream cursor or lease write commits without an fsync of its own (it reaches the disk with the
   * next durable append): losing one to a power cut only makes the stream send a batch again
   * (at least once), so the event loop the calls share never waits on a disk flush for it.
   */
  const unsynced = <T>(body: () => T): T => {
    if (sync !== 'full') return body();
    syncNormal.run();
    try {
      return body();
    } finally {
      syncFull.run();
    }
  };
  let closed = false;

  const prepare: Journal['prepare'] = (type, callId, data, now, options) => {
    try {
      if (closed) throw new Error('journal is closed');
      if (typeof type !== 'string' || (type as string) === '') throw new TypeError('record type must be a non-empty string');
      if (typeof callId !== 'string') throw new TypeError('callId must be a string');
      if (data === null || typeof data !== 'object' || Array.isArray(data)) {
        throw new TypeError('record data must be a plain object');
      }
      const time = (now ?? new Date()).toISOString();
      const dataJson = canonicalJson(data);
      // Hash what verify will see: the data as parsed back from the stored text (done here, outside the write lock).
      const stored = deepFreeze(JSON.parse(dataJson) as Record<string, unknown>);
      return { type, callId, dataJson, data: stored, time, durable: options?.durable !== false };
    } catch (cause) {
      // Fail closed: every failure, including unserialisable data, becomes
      // journal.unavailable so the caller refuses to execute the call.
      throw appendFailed(path, cause);
    }
  };

  const commit: Journal['commit'] = (batch) => {
    if (batch.length === 0) return [];
    try {
      if (closed) throw new Error('journal is closed');
      // Returns only after COMMIT; with synchronous=FULL the WAL is fsynced
      // first, so the gateway never acts on a call that is not on disk. A
      // batch of only non-durable records skips that fsync.
      const relaxed = sync === 'full' && batch.every((r) => !r.durable);
      if (relaxed) syncNormal.run();
      try {
        return appendTx.immediate(batch);
      } finally {
        if (relaxed) syncFull.run();
      }
    } catch (cause) {
      throw appendFailed(path, cause);
    }
  };

  return {
    prepare,
    commit,
    append(type, callId, data, now, options) {
      return commit([prepare(type, callId, data, now, options)])[0] as JournalRecord;
    },
    rows() {
      if (closed) throw appendFailed(path, new Error('journal is closed'));
      return db.prepare(`SELECT ${STORED_COLUMNS} FROM records ORDER BY seq`).iterate() as IterableIterator<StoredRecord>;
    },
    readFrom(afterSeq, limit) {
      return guarded(() => fromStmt.all(afterSeq, limit) as StoredRecord[]);
    },
    streamCursor(sink) {
      const row = guarded(() => cursorStmt.get(sink) as { seq: number; updatedAt: string | null } | undefined);
      return { seq: row?.seq ?? 0, updatedAt: row?.updatedAt ?? null };
    },
    advanceStream(sink, seq, now) {
      guarded(() => unsynced(() => advanceStmt.run(sink, seq, now.toISOString())));
    },
    claimStream(sink, holder, nowMs, leaseMs) {
      return guarded(() => {
        const row = cursorStmt.get(sink) as { holder: string | null; leaseUntil: number } | undefined;
        // Renewed only when half the lease is gone: a claim per poll must not cost a write (and an fsync) each time.
        if (row?.holder === holder && row.leaseUntil - nowMs > leaseMs / 2) return true;
        return unsynced(() => claimStmt.run(sink, holder, nowMs + leaseMs, nowMs).changes > 0);
      });
    },
    releaseStream(sink, holder) {
      guarded(() => releaseStmt.run(sink, holder));
    },
    head() {
      if (closed) throw appendFailed(path, new Error('journal is closed'));
      const last = lastStmt.get() as LastRow | undefined;
      return last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: last.seq, hash: last.hash };
    },
    probe() {
      if (closed) throw appendFailed(path, new Error('journal is closed'));
      try {
        lastStmt.get();
        // A short wait only: a probe must not hold the event loop for an append's full busy timeout.
        db.pragma(`busy_timeout = ${PROBE_BUSY_MS}`);
        try {
          db.exec('BEGIN IMMEDIATE');
          db.exec('ROLLBACK');
        } finally {
          db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
        }
      } catch (cause) {
        throw appendFailed(path, cause);
      }
    },
    close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}

/**
 * Opens an existing journal read-only for verify/export. Throws
 * journal.unavailable naming the path when it is missing or unreadable.
 */
export function openJournalReadOnly(path: string): Database.Database {
  if (!existsSync(path)) {
    throw new DrawbridgeError('journal.unavailable', `Audit journal not found: ${path}`, { details: { path } });
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  } catch (cause) {
    throw unavailable('Cannot open the audit journal for reading', path, cause);
  }
  try {
    const version = db.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get();
    if (version !== JOURNAL_FORMAT_VERSION) {
      throw new Error(`unsupported journal format version ${String(version)} (expected ${JOURNAL_FORMAT_VERSION})`);
    }
  } catch (cause) {
    db.close();
    throw unavailable('Not a readable Drawbridge journal', path, cause);
  }
  return db;
}
