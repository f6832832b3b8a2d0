// The PostgreSQL engine's journal: one hash chain in drawbridge.records shared by every
// replica. The head is serialised with a transaction-scoped advisory lock: it is released
// by COMMIT or ROLLBACK (or the death of the connection) without a row to update, and the
// primary key on seq refuses a fork even if the lock were bypassed. Group commit: the
// appends of one process queue while a batch is in flight and go out as the next batch,
// one transaction and one COMMIT (one WAL flush); each append resolves only after its
// batch committed, so an intent is never reported durable before it is.

import type pg from 'pg';
import { canonicalJson } from '../../util/canonical-json.js';
import type { JournalStore, StoredRecord } from '../contract.js';
import { deepFreeze, GENESIS_HASH, recordHash, type AppendOptions, type JournalRecord, type RecordType } from '../records.js';
import { DrawbridgeError } from '../../errors.js';
import { begin, fault, safeReason, type Secrets } from './faults.js';
import { JOURNAL_LOCK, LOCK_SPACE, SCHEMA } from './migrations.js';

/** 'batch': group commit (default); 'each': one transaction per append (for measurements). */
export type CommitMode = 'batch' | 'each';

/** Enough to amortise a commit, small enough to keep one INSERT's arrays modest. */
const MAX_BATCH = 500;
/** Rows per page when reading: read() never holds the whole journal in memory. */
const PAGE = 1_000;

const COLUMNS = 'seq, time, type, call_id AS "callId", data, prev_hash AS "prevHash", hash';

interface Pending {
  readonly type: RecordType;
  readonly callId: string;
  readonly dataJson: string;
  readonly time: string;
  readonly durable: boolean;
  readonly resolve: (record: JournalRecord) => void;
  readonly reject: (error: unknown) => void;
}

interface HeadRow {
  readonly seq: number;
  readonly hash: string;
}

function isHeadRow(row: unknown): row is HeadRow {
  return row !== null && typeof row === 'object' && typeof (row as Partial<HeadRow>).seq === 'number' && typeof (row as Partial<HeadRow>).hash === 'string';
}

/** The head row from the results of the begin-lock-read query (the last statement's), if any. */
function headOf(results: unknown): HeadRow | undefined {
  const last: unknown = Array.isArray(results) ? results[results.length - 1] : results;
  const rows: unknown = last !== null && typeof last === 'object' ? (last as { rows?: unknown }).rows : undefined;
  if (!Array.isArray(rows)) throw new Error('unexpected answer to the journal head query');
  const row: unknown = rows[0];
  if (row === undefined) return undefined;
  if (!isHeadRow(row)) throw new Error('unexpected journal head row');
  return row;
}

export function pgJournal(pool: pg.Pool, secrets: Secrets, mode: CommitMode = 'batch'): JournalStore & { flushed(): Promise<void> } {
  const queue: Pending[] = [];
  let flushing: Promise<void> | null = null;
  let closed = false;
  const failed = (cause: unknown): Error => fault('journal.unavailable', 'Cannot append to the audit journal', cause, secrets);

  /** Writes one batch in one transaction; resolves each append only after COMMIT answered. */
  async function write(batch: readonly Pending[]): Promise<void> {
    // A batch of only non-durable records (outcomes) need not wait for its WAL flush:
    // it becomes durable with the next durable commit, and never reorders the chain.
    const relaxed = batch.every((p) => !p.durable) ? 'SET LOCAL synchronous_commit = off; ' : '';
    let client: pg.PoolClient;
    let results: unknown;
    try {
      // One round trip: begin, take the head lock, then read the head. READ COMMITTED, whatever the
      // role's default, so the head is read with a snapshot taken after the lock was granted.
      ({ client, result: results } = await begin(
        pool,
        `BEGIN ISOLATION LEVEL READ COMMITTED; ${relaxed}SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${JOURNAL_LOCK}); ` +
          `SELECT seq, hash FROM ${SCHEMA}.records ORDER BY seq DESC LIMIT 1`,
      ));
    } catch (cause) {
      for (const p of batch) p.reject(failed(cause));
      return;
    }
    let broken: Error | undefined;
    try {
      const last = headOf(results);
      let seq = last === undefined ? 0 : Number(last.seq);
      let prevHash = last === undefined ? GENESIS_HASH : last.hash;
      const records = batch.map((p) => {
        seq += 1;
        // Hash what verify will see: the data as parsed back from the stored text.
        const data = deepFreeze(JSON.parse(p.dataJson) as Record<string, unknown>);
        const hash = recordHash({ seq, time: p.time, type: p.type, callId: p.callId, data, prevHash });
        const record: JournalRecord = Object.freeze({ seq, time: p.time, type: p.type, callId: p.callId, data, prevHash, hash });
        prevHash = hash;
        return record;
      });
      await client.query(
        `INSERT INTO ${SCHEMA}.records (seq, time, type, call_id, data, prev_hash, hash)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])`,
        [
          records.map((r) => r.seq),
          records.map((r) => r.time),
          records.map((r) => r.type),
          records.map((r) => r.callId),
          batch.map((p) => p.dataJson),
          records.map((r) => r.prevHash),
          records.map((r) => r.hash),
        ],
      );
      await client.query('COMMIT');
      batch.forEach((p, i) => p.resolve(records[i] as JournalRecord));
    } catch (cause) {
      broken = cause instanceof Error ? cause : new Error(String(cause));
      // After a failed COMMIT the outcome is unknown: the caller refuses the call either way,
      // and the chain is intact whether the batch landed or not.
      await client.query('ROLLBACK').catch(() => undefined);
      for (const p of batch) p.reject(failed(cause));
    } finally {
      // A connection that failed is discarded, not returned to the pool.
      client.release(broken);
    }
  }

  /** Writes batches until the queue is empty; appends made meanwhile wait for the next batch. */
  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        const batch = queue.splice(0, MAX_BATCH);
        // write() settles every append itself; this only guards against a bug leaving one hanging.
        await write(batch).catch((cause: unknown) => batch.forEach((p) => p.reject(failed(cause))));
      }
    } finally {
      flushing = null;
    }
  }

  return {
    append(type: RecordType, callId: string, data: Record<string, unknown>, now?: Date, options?: AppendOptions): Promise<JournalRecord> {
      return new Promise<JournalRecord>((resolve, reject) => {
        try {
          if (closed) throw new Error('journal is closed');
          if (typeof type !== 'string' || (type as string) === '') throw new TypeError('record type must be a non-empty string');
          if (typeof callId !== 'string') throw new TypeError('callId must be a string');
          if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new TypeError('record data must be a plain object');
          const pending: Pending = {
            type,
            callId,
            dataJson: canonicalJson(data),
            time: (now ?? new Date()).toISOString(),
            durable: options?.durable !== false,
            resolve,
            reject,
          };
          if (mode === 'each') {
            void write([pending]);
            return;
          }
          queue.push(pending);
          flushing ??= drain();
        } catch (cause) {
          // Fail closed: every failure, including unserialisable data, is journal.unavailable.
          reject(new DrawbridgeError('journal.unavailable', `Cannot append to the audit journal: ${safeReason(cause, secrets)}`, { cause }));
        }
      });
    },
    async *read(): AsyncIterable<StoredRecord> {
      if (closed) throw failed(new Error('journal is closed'));
      let client: pg.PoolClient;
      try {
        // One snapshot for every page: appends committed meanwhile are not seen.
        ({ client } = await begin(pool, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'));
      } catch (cause) {
        throw fault('journal.unavailable', 'Cannot read the audit journal', cause, secrets);
      }
      let broken: Error | undefined;
      let done = false;
      try {
        let after = 0;
        for (;;) {
          const page = await client.query<StoredRecord & { seq: number }>(
            `SELECT ${COLUMNS} FROM ${SCHEMA}.records WHERE seq > $1 ORDER BY seq LIMIT ${PAGE}`,
            [after],
          );
          for (const row of page.rows) yield { ...row, seq: Number(row.seq) };
          if (page.rows.length < PAGE) break;
          after = Number(page.rows[page.rows.length - 1]?.seq);
        }
        await client.query('COMMIT');
        done = true;
      } catch (cause) {
        broken = cause instanceof Error ? cause : new Error(String(cause));
        throw fault('journal.unavailable', 'Cannot read the audit journal', cause, secrets);
      } finally {
        // A reader that stops early (break) leaves the transaction open: roll it back.
        if (broken === undefined && !done) await client.query('ROLLBACK').catch(() => undefined);
        client.release(broken);
      }
    },
    async head() {
      if (closed) throw failed(new Error('journal is closed'));
      try {
        const result = await pool.query<{ seq: number; hash: string }>(`SELECT seq, hash FROM ${SCHEMA}.records ORDER BY seq DESC LIMIT 1`);
        const last = result.rows[0];
        return last === undefined ? { seq: 0, hash: GENESIS_HASH } : { seq: Number(last.seq), hash: last.hash };
      } catch (cause) {
        throw fault('journal.unavailable', 'Cannot read the audit journal head', cause, secrets);
      }
    },
    /** Resolves once every append queued so far has settled. */
    async flushed() {
      while (flushing !== null) await flushing;
    },
    async close() {
      closed = true;
      while (flushing !== null) await flushing;
    },
  };
}
