// Tests for the SQLite engine's journal writer (src/state/sqlite/journal.ts): canonical JSON,
// hashing, chaining, durability, concurrent handles, the append-only triggers and fail-closed
// errors. Tamper detection lives in test/journal/verify.test.ts, export in export.test.ts.

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { openJournal, type Journal } from '../../../src/state/sqlite/journal.js';
import { GENESIS_HASH, recordHash } from '../../../src/state/records.js';
import { canonicalJson } from '../../../src/util/canonical-json.js';
import { verifyJournal } from '../../../src/journal/verify.js';

const dirs: string[] = [];
const journals: Journal[] = [];

function tempPath(name = 'journal.db'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-journal-'));
  dirs.push(dir);
  return path.join(dir, name);
}

function open(file: string, options?: Parameters<typeof openJournal>[1]): Journal {
  const journal = openJournal(file, options);
  journals.push(journal);
  return journal;
}

function expectUnavailable(fn: () => unknown): DrawbridgeError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('journal.unavailable');
    return error as DrawbridgeError;
  }
  throw new Error('expected journal.unavailable to be thrown');
}

afterEach(() => {
  for (const journal of journals.splice(0)) journal.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: true, y: null }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":null,"z":true}]},"b":1}');
  });

  it('is stable regardless of insertion order and round-trips through JSON.parse', () => {
    const one = { x: 1, y: [1, 'two', { q: 'é\u2028"\n' }], z: { b: 2, a: 1 } };
    const two = { z: { a: 1, b: 2 }, y: [1, 'two', { q: 'é\u2028"\n' }], x: 1 };
    expect(canonicalJson(one)).toBe(canonicalJson(two));
    expect(canonicalJson(JSON.parse(canonicalJson(one)))).toBe(canonicalJson(one));
  });

  it('omits undefined object properties and converts Dates like JSON', () => {
    expect(canonicalJson({ a: undefined, b: new Date('2024-01-02T03:04:05.006Z') })).toBe('{"b":"2024-01-02T03:04:05.006Z"}');
  });

  it('throws TypeError on values JSON would silently drop or mangle', () => {
    expect(() => canonicalJson([1, undefined])).toThrow(TypeError);
    expect(() => canonicalJson({ f: () => 1 })).toThrow(TypeError);
    expect(() => canonicalJson({ n: 10n })).toThrow(TypeError);
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson({ n: Number.POSITIVE_INFINITY })).toThrow(TypeError);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
    expect(() => canonicalJson({ m: new Map([[1, 2]]) })).toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalJson(cyclic)).toThrow(TypeError);
  });
});

describe('recordHash', () => {
  it('is sha256 over the canonical JSON of the record fields, ignoring extra fields', () => {
    const r = { seq: 1, time: '2024-01-01T00:00:00.000Z', type: 'call' as const, callId: 'c1', data: { b: 1, a: 2 }, prevHash: GENESIS_HASH };
    const expected = createHash('sha256')
      .update(`{"callId":"c1","data":{"a":2,"b":1},"prevHash":"${GENESIS_HASH}","seq":1,"time":"2024-01-01T00:00:00.000Z","type":"call"}`)
      .digest('hex');
    expect(recordHash(r)).toBe(expected);
    expect(recordHash({ ...r, hash: 'ignored' } as typeof r)).toBe(expected);
  });
});

describe('openJournal / append', () => {
  it('appends contiguous, hash-chained records', () => {
    const file = tempPath();
    const journal = open(file);
    const now = new Date('2024-05-06T07:08:09.010Z');
    const r1 = journal.append('call', 'c1', { tool: 'query', input: { sql: 'select 1' } }, now);
    const r2 = journal.append('outcome', 'c1', { status: 'ok', rows: 1 });
    const r3 = journal.append('call', 'c2', { tool: 'query' });

    expect([r1.seq, r2.seq, r3.seq]).toEqual([1, 2, 3]);
    expect(r1.prevHash).toBe(GENESIS_HASH);
    expect(r2.prevHash).toBe(r1.hash);
    expect(r3.prevHash).toBe(r2.hash);
    expect(r1.time).toBe('2024-05-06T07:08:09.010Z');
    expect(r2.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const r of [r1, r2, r3]) {
      expect(r.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(recordHash(r)).toBe(r.hash);
    }
    expect(r1.type).toBe('call');
    expect(r1.callId).toBe('c1');
    expect(r1.data).toEqual({ tool: 'query', input: { sql: 'select 1' } });
  });

  it('returns frozen records whose data is what was stored', () => {
    const journal = open(tempPath());
    const input = { a: 1, nested: { b: [1, 2] }, gone: undefined };
    const r = journal.append('call', 'c1', input);
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.data)).toBe(true);
    expect(Object.isFrozen((r.data as { nested: object }).nested)).toBe(true);
    expect(r.data).toEqual({ a: 1, nested: { b: [1, 2] } });
    input.a = 2;
    expect(r.data.a).toBe(1);
  });

  it('creates the parent directory, schema, meta version and WAL mode', () => {
    const file = path.join(path.dirname(tempPath()), 'nested', 'deeper', 'journal.db');
    open(file).append('call', 'c1', {});
    const raw = new Database(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.prepare("SELECT value FROM meta WHERE key = 'format_version'").pluck().get()).toBe('1');
      const row = raw.prepare('SELECT * FROM records').get() as Record<string, unknown>;
      expect(Object.keys(row)).toEqual(['seq', 'time', 'type', 'call_id', 'data', 'prev_hash', 'hash']);
      expect(row.data).toBe('{}');
    } finally {
      raw.close();
    }
  });

  it('is durable across close and reopen, and continues the chain', () => {
    const file = tempPath();
    const first = openJournal(file);
    first.append('call', 'c1', { n: 1 });
    const last = first.append('outcome', 'c1', { status: 'ok' });
    first.close();

    const again = open(file, { sync: 'normal' });
    const next = again.append('call', 'c2', { n: 2 });
    expect(next.seq).toBe(3);
    expect(next.prevHash).toBe(last.hash);
    again.close();

    const result = verifyJournal(file);
    expect(result).toEqual({ ok: true, records: 3, head: next.hash });
  });

  it('keeps a valid chain when two handles on one file interleave appends', () => {
    const file = tempPath();
    const a = open(file);
    const b = open(file);
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      const writer = i % 3 === 0 ? b : a;
      seen.push(writer.append(i % 2 === 0 ? 'call' : 'outcome', `c${i}`, { i }).seq);
    }
    expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const result = verifyJournal(file);
    expect(result.ok).toBe(true);
    expect(result.records).toBe(40);
  });

  it('blocks UPDATE and DELETE of records with triggers', () => {
    const file = tempPath();
    open(file).append('call', 'c1', { n: 1 });
    const raw = new Database(file);
    try {
      expect(() => raw.prepare("UPDATE records SET data = '{}' WHERE seq = 1").run()).toThrow(/append-only/);
      expect(() => raw.prepare('DELETE FROM records WHERE seq = 1').run()).toThrow(/append-only/);
      expect(raw.prepare('SELECT count(*) FROM records').pluck().get()).toBe(1);
    } finally {
      raw.close();
    }
  });

  it('throws journal.unavailable when the journal cannot be created', () => {
    const dir = path.dirname(tempPath());
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    const file = path.join(blocker, 'journal.db');
    const error = expectUnavailable(() => openJournal(file));
    expect(error.message).toContain(file);
  });

  it('throws journal.unavailable when appending to a closed journal', () => {
    const journal = openJournal(tempPath());
    journal.close();
    journal.close(); // idempotent
    expectUnavailable(() => journal.append('call', 'c1', {}));
  });

  it('throws journal.unavailable when the underlying database fails', () => {
    const file = tempPath();
    const journal = open(file);
    journal.append('call', 'c1', {});
    const raw = new Database(file);
    raw.exec('DROP TABLE records');
    raw.close();
    expectUnavailable(() => journal.append('call', 'c2', {}));
  });

  it('throws journal.unavailable for data that cannot be serialised', () => {
    const journal = open(tempPath());
    const error = expectUnavailable(() => journal.append('call', 'c1', { n: 1n }));
    expect(error.cause).toBeInstanceOf(TypeError);
    expect(journal.append('call', 'c1', { n: 1 }).seq).toBe(1);
  });

  it('refuses a file with an unknown format version', () => {
    const file = tempPath();
    open(file).append('call', 'c1', {});
    const raw = new Database(file);
    raw.prepare("UPDATE meta SET value = '999' WHERE key = 'format_version'").run();
    raw.close();
    expectUnavailable(() => openJournal(file));
  });
});
