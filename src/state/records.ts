// Journal records as every state engine stores them: the record shape and its hash.
// Engine-neutral (no storage here): the SQLite engine and journal/verify.ts both hash
// with recordHash, so a chain written by one engine verifies the same everywhere.

import { createHash } from 'node:crypto';
import { canonicalJson } from '../util/canonical-json.js';

/**
 * Kinds of journal records. Add new kinds (e.g. approval events) to this union. `config`: the
 * gateway's config at serve start and every reload attempt (pipeline/reload.ts), under a call id of its own.
 */
export type RecordType = 'call' | 'outcome' | 'approval' | 'grant' | 'config';

export interface JournalRecord {
  readonly seq: number;
  readonly time: string;
  readonly type: RecordType;
  readonly callId: string;
  readonly data: Readonly<Record<string, unknown>>;
  readonly prevHash: string;
  readonly hash: string;
}

export interface AppendOptions {
  /**
   * false: commit without a durable sync of its own (the outcome record); the record
   * becomes durable with the next durable append. Never reorders or forks the chain.
   */
  readonly durable?: boolean;
}

/** prev_hash of the first record. */
export const GENESIS_HASH = '0'.repeat(64);

/** Hex sha256 over the canonical JSON of exactly {seq,time,type,callId,data,prevHash}. */
export function recordHash(r: Omit<JournalRecord, 'hash'>): string {
  const body = canonicalJson({
    seq: r.seq,
    time: r.time,
    type: r.type,
    callId: r.callId,
    data: r.data,
    prevHash: r.prevHash,
  });
  return createHash('sha256').update(body, 'utf8').digest('hex');
}

/** Freezes a parsed value in place (a record's data, a stored approval); iterative, so no depth overflows the stack. */
export function deepFreeze<T>(value: T): T {
  const todo: unknown[] = [value];
  while (todo.length > 0) {
    const next = todo.pop();
    if (next === null || typeof next !== 'object' || Object.isFrozen(next)) continue;
    for (const child of Object.values(next)) todo.push(child);
    Object.freeze(next);
  }
  return value;
}
