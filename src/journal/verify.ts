// Verifies a journal's hash chain (a SQLite file read-only, or any engine's JournalStore), streaming record by record.
// Reports the FIRST record that breaks the chain; it never repairs anything.
// Without an externally kept head or published checkpoints (checkpoint.ts) it cannot see a
// truncated or rewritten tail.

import type { KeyObject } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import { canonicalJson } from '../util/canonical-json.js';
import { checkpointChecker, type CheckpointFailure, type CheckpointSummary, type PublishedCheckpoint } from './checkpoint.js';
import { GENESIS_HASH, recordHash, type RecordType } from '../state/records.js';
import type { JournalStore, StoredRecord } from '../state/contract.js';
import { openJournalReadOnly, STORED_COLUMNS } from '../state/sqlite/journal.js';

export interface VerifyResult {
  ok: boolean;
  /** Number of records read. */
  records: number;
  /** Stored hash of the last record (64 zeros when empty). */
  head: string;
  firstBad?: { seq: number; reason: string };
  /** With checkpoints: how many were checked, and up to which record they prove the journal. */
  checkpoints?: CheckpointSummary;
  /** A published checkpoint that is itself forged, altered or malformed. */
  badCheckpoint?: { line: number; reason: string };
}

export interface VerifyOptions {
  /**
   * A head hash kept outside the journal (e.g. printed at shutdown, shipped
   * to another system). The journal must end exactly at it: this is the only
   * way to detect records cut off the end, since a truncated chain is
   * otherwise still a valid chain.
   */
  expectHead?: string;
  /** Published checkpoints and the public key they must be signed with: they also catch a truncated tail up to the last one. */
  checkpoints?: { readonly published: readonly PublishedCheckpoint[]; readonly publicKey: KeyObject };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Returns why this row is bad, or undefined if it chains correctly onto the previous one. */
function checkRow(row: StoredRecord, expectedSeq: number, prevHash: string): string | undefined {
  const { seq, time, type, callId, data, prevHash: storedPrev, hash } = row;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq)) return 'malformed seq';
  if (typeof time !== 'string' || typeof type !== 'string' || typeof callId !== 'string' || typeof data !== 'string') {
    return 'malformed columns (time, type, call_id and data must be text)';
  }
  if (typeof storedPrev !== 'string' || !HEX64.test(storedPrev)) return 'malformed prev_hash';
  if (typeof hash !== 'string' || !HEX64.test(hash)) return 'malformed hash';
  if (seq !== expectedSeq) {
    return seq > expectedSeq
      ? `seq gap: expected ${expectedSeq}, found ${seq} (record(s) ${expectedSeq}..${seq - 1} missing)`
      : `seq out of order: expected ${expectedSeq}, found ${seq}`;
  }
  if (storedPrev !== prevHash) {
    return expectedSeq === 1
      ? 'prev_hash of the first record is not the genesis hash'
      : `prev_hash does not match the hash of record ${expectedSeq - 1} (that record was altered, or records were removed or reordered)`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return 'data is not valid JSON';
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'data is not a JSON object';
  // The writer stores the canonical text; any other spelling was written by
  // something else, even if it happens to parse to the same value.
  let canonical: string;
  try {
    canonical = canonicalJson(parsed);
  } catch {
    return 'data is not in canonical form'; // e.g. 1e400 parses to Infinity
  }
  if (canonical !== data) return 'data is not in canonical form';
  const expected = recordHash({
    seq,
    time,
    type: type as RecordType,
    callId,
    data: parsed as Record<string, unknown>,
    prevHash: storedPrev,
  });
  if (expected !== hash) return 'hash mismatch: record content or hash was edited';
  return undefined;
}

/** Walks a chain record by record (push), then says whether it holds (result); shared by the file and the store readers. */
function chainCheck(options: VerifyOptions): { push(row: StoredRecord): void; result(): VerifyResult } {
  let records = 0;
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let lastSeq = 0;
  let firstBad: VerifyResult['firstBad'];
  const expectHead = options.expectHead?.toLowerCase();
  let expectHeadSeq: number | undefined;
  const checker = options.checkpoints ? checkpointChecker(options.checkpoints.published, options.checkpoints.publicKey) : undefined;
  return {
    push(row) {
      records++;
      const seq = typeof row.seq === 'number' ? row.seq : expectedSeq;
      if (firstBad === undefined) {
        const reason = checkRow(row, expectedSeq, prevHash);
        if (reason !== undefined) firstBad = { seq, reason };
      }
      // Chain onto what is stored, so the damage is located at its first
      // record rather than smeared over everything after it.
      expectedSeq = seq + 1;
      lastSeq = seq;
      prevHash = String(row.hash);
      checker?.record(records, prevHash);
      if (expectHead !== undefined && prevHash === expectHead) expectHeadSeq = seq;
    },
    result() {
      const head = prevHash;
      if (firstBad === undefined && expectHead !== undefined && head !== expectHead) {
        firstBad =
          expectHeadSeq !== undefined
            ? {
                seq: expectHeadSeq + 1,
                reason: `journal continues past the expected head (record ${expectHeadSeq}) with ${lastSeq - expectHeadSeq} more record(s)`,
              }
            : {
                seq: lastSeq + 1,
                reason: `head ${head} (record ${lastSeq}) differs from the expected head ${expectHead}: the tail was truncated or rewritten`,
              };
      }
      const checked = checker?.finish(records);
      const failure = checked?.failure;
      if (firstBad === undefined && failure?.kind === 'record') firstBad = { seq: failure.seq, reason: failure.reason };
      const extra = {
        ...(checked ? { checkpoints: checked.summary } : {}),
        ...(failure?.kind === 'checkpoint' ? { badCheckpoint: badCheckpointOf(failure) } : {}),
      };
      const ok = firstBad === undefined && extra.badCheckpoint === undefined;
      return ok ? { ok, records, head, ...extra } : { ok, records, head, ...(firstBad ? { firstBad } : {}), ...extra };
    },
  };
}

export function verifyJournal(path: string, options: VerifyOptions = {}): VerifyResult {
  const db = openJournalReadOnly(path);
  try {
    const check = chainCheck(options);
    // One statement = one read transaction: a consistent snapshot even while
    // the gateway keeps appending (WAL readers do not block the writer).
    const rows = db.prepare(`SELECT ${STORED_COLUMNS} FROM records ORDER BY seq`).iterate() as IterableIterator<StoredRecord>;
    for (const row of rows) check.push(row);
    return check.result();
  } catch (cause) {
    if (cause instanceof DrawbridgeError) throw cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new DrawbridgeError('journal.unavailable', `Cannot read the audit journal (${path}): ${reason}`, {
      details: { path },
      cause,
    });
  } finally {
    db.close();
  }
}

/** verifyJournal over any engine's journal (JournalStore.read); read failures are the engine's journal.unavailable. */
export async function verifyStore(journal: JournalStore, options: VerifyOptions = {}): Promise<VerifyResult> {
  const check = chainCheck(options);
  for await (const row of journal.read()) check.push(row);
  return check.result();
}

function badCheckpointOf(failure: Extract<CheckpointFailure, { kind: 'checkpoint' }>): { line: number; reason: string } {
  return { line: failure.line, reason: failure.reason };
}
