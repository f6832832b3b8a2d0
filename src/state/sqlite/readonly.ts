// A read-only JournalStore over an existing SQLite journal file: what the commands that only
// read the journal (verify, export, checkpoint) and `state copy` open, so that reading never
// creates a journal file and never takes the write lock. Appending through it is refused.

import type Database from 'better-sqlite3';
import { DrawbridgeError } from '../../errors.js';
import type { JournalStore, StoredRecord } from '../contract.js';
import { GENESIS_HASH } from '../records.js';
import { openJournalReadOnly, STORED_COLUMNS } from './journal.js';

/**
 * Opens `path` read-only now: journal.unavailable "Audit journal not found: PATH" when it is
 * missing, "Not a readable Drawbridge journal" when it is something else.
 */
export function openSqliteJournalReadOnly(path: string): JournalStore {
  const db: Database.Database = openJournalReadOnly(path);
  let closed = false;
  const unavailable = (reason: string, cause?: unknown): DrawbridgeError =>
    new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${path}): ${reason}`, { details: { path }, ...(cause ? { cause } : {}) });
  const live = (): Database.Database => {
    if (closed) throw unavailable('journal is closed');
    return db;
  };
  return {
    append: () => Promise.reject(new DrawbridgeError('journal.unavailable', `The audit journal ${path} is open read-only here.`, { details: { path } })),
    probe: () => Promise.reject(new DrawbridgeError('journal.unavailable', `The audit journal ${path} is open read-only here.`, { details: { path } })),
    async *read(): AsyncGenerator<StoredRecord> {
      // One statement = one read transaction: a consistent snapshot while a gateway appends (WAL).
      let rows: IterableIterator<StoredRecord>;
      try {
        rows = live().prepare(`SELECT ${STORED_COLUMNS} FROM records ORDER BY seq`).iterate() as IterableIterator<StoredRecord>;
      } catch (cause) {
        throw cause instanceof DrawbridgeError ? cause : unavailable(cause instanceof Error ? cause.message : String(cause), cause);
      }
      try {
        for (const row of rows) yield row;
      } catch (cause) {
        throw unavailable(cause instanceof Error ? cause.message : String(cause), cause);
      }
    },
    async readFrom(afterSeq, limit) {
      try {
        return live().prepare(`SELECT ${STORED_COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT ?`).all(afterSeq, limit) as StoredRecord[];
      } catch (cause) {
        throw cause instanceof DrawbridgeError ? cause : unavailable(cause instanceof Error ? cause.message : String(cause), cause);
      }
    },
    async head() {
      const last = live().prepare('SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
      return last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: last.seq, hash: last.hash };
    },
    async close() {
      if (closed) return;
      closed = true;
      db.close();
    },
  };
}
