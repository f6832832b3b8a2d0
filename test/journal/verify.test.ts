// Tests for journal verification: each kind of tampering is done with a raw
// better-sqlite3 connection after dropping the append-only triggers, and
// verify must name the first bad record.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../src/errors.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import { GENESIS_HASH, recordHash, type JournalRecord } from '../../src/state/records.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { verifyJournal } from '../../src/journal/verify.js';

const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-verify-'));
  dirs.push(dir);
  return path.join(dir, 'journal.db');
}

/** A closed journal with `count` records, alternating call/outcome. */
function makeJournal(count: number): { file: string; records: JournalRecord[] } {
  const file = tempPath();
  const journal = openJournal(file);
  const records: JournalRecord[] = [];
  for (let i = 1; i <= count; i++) {
    const callId = `c${Math.ceil(i / 2)}`;
    records.push(
      i % 2 === 1
        ? journal.append('call', callId, { tool: 'query', input: { sql: `select ${i}` } })
        : journal.append('outcome', callId, { status: 'ok', rows: i }),
    );
  }
  journal.close();
  return { file, records };
}

/** Runs tampering SQL with the append-only triggers dropped. */
function tamper(file: string, fn: (db: Database.Database) => void): void {
  const db = new Database(file);
  try {
    db.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
    fn(db);
  } finally {
    db.close();
  }
}

describe('verifyJournal', () => {
  it('accepts an intact journal and reports count and head', () => {
    const { file, records } = makeJournal(6);
    const head = records[5]!.hash;
    expect(verifyJournal(file)).toEqual({ ok: true, records: 6, head });
    expect(verifyJournal(file, { expectHead: head })).toEqual({ ok: true, records: 6, head });
  });

  it('accepts an empty journal with the genesis head', () => {
    const { file } = makeJournal(0);
    expect(verifyJournal(file)).toEqual({ ok: true, records: 0, head: GENESIS_HASH });
    expect(verifyJournal(file, { expectHead: GENESIS_HASH }).ok).toBe(true);
  });

  it('reads while a writer has the journal open', () => {
    const file = tempPath();
    const journal = openJournal(file);
    try {
      journal.append('call', 'c1', {});
      const r = journal.append('outcome', 'c1', { status: 'ok' });
      expect(verifyJournal(file)).toEqual({ ok: true, records: 2, head: r.hash });
      expect(journal.append('call', 'c2', {}).seq).toBe(3);
    } finally {
      journal.close();
    }
  });

  it('throws journal.unavailable naming the path of a missing file, without creating it', () => {
    const file = path.join(path.dirname(tempPath()), 'missing.db');
    let caught: unknown;
    try {
      verifyJournal(file);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DrawbridgeError);
    expect((caught as DrawbridgeError).code).toBe('journal.unavailable');
    expect((caught as DrawbridgeError).message).toContain(file);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('detects an edited data field at that record', () => {
    const { file } = makeJournal(6);
    tamper(file, (db) => db.prepare(`UPDATE records SET data = json_set(data, '$.rows', 999) WHERE seq = 4`).run());
    const result = verifyJournal(file);
    expect(result.ok).toBe(false);
    expect(result.records).toBe(6);
    expect(result.firstBad?.seq).toBe(4);
    expect(result.firstBad?.reason).toMatch(/hash mismatch/);
  });

  it('detects a deleted middle record', () => {
    const { file } = makeJournal(6);
    tamper(file, (db) => db.prepare('DELETE FROM records WHERE seq = 3').run());
    const result = verifyJournal(file);
    expect(result.ok).toBe(false);
    expect(result.records).toBe(5);
    expect(result.firstBad?.seq).toBe(4);
    expect(result.firstBad?.reason).toMatch(/seq gap/);
  });

  it('detects a deleted first record', () => {
    const { file } = makeJournal(3);
    tamper(file, (db) => db.prepare('DELETE FROM records WHERE seq = 1').run());
    expect(verifyJournal(file).firstBad?.seq).toBe(2);
  });

  it('detects two records whose contents were swapped', () => {
    const { file } = makeJournal(6);
    tamper(file, (db) => {
      const cols = 'time, type, call_id, data, prev_hash, hash';
      const a = db.prepare(`SELECT ${cols} FROM records WHERE seq = 2`).get() as Record<string, string>;
      const b = db.prepare(`SELECT ${cols} FROM records WHERE seq = 3`).get() as Record<string, string>;
      const set = db.prepare(
        'UPDATE records SET time = @time, type = @type, call_id = @call_id, data = @data, prev_hash = @prev_hash, hash = @hash WHERE seq = @seq',
      );
      set.run({ ...b, seq: 2 });
      set.run({ ...a, seq: 3 });
    });
    const result = verifyJournal(file);
    expect(result.ok).toBe(false);
    expect(result.firstBad?.seq).toBe(2);
    expect(result.firstBad?.reason).toMatch(/prev_hash/);
  });

  it('detects an edited hash column', () => {
    const { file } = makeJournal(4);
    tamper(file, (db) => db.prepare(`UPDATE records SET hash = ? WHERE seq = 2`).run('ab'.repeat(32)));
    const result = verifyJournal(file);
    expect(result.ok).toBe(false);
    expect(result.firstBad?.seq).toBe(2);
    expect(result.firstBad?.reason).toMatch(/hash mismatch/);
  });

  it('detects an edited record whose hash was recomputed, via the next prev_hash', () => {
    const { file } = makeJournal(6);
    tamper(file, (db) => {
      const row = db.prepare('SELECT * FROM records WHERE seq = 3').get() as Record<string, string | number>;
      const data = { tool: 'query', input: { sql: 'select innocent' } };
      const hash = recordHash({
        seq: 3,
        time: String(row.time),
        type: 'call',
        callId: String(row.call_id),
        data,
        prevHash: String(row.prev_hash),
      });
      db.prepare('UPDATE records SET data = ?, hash = ? WHERE seq = 3').run(canonicalJson(data), hash);
    });
    const result = verifyJournal(file);
    expect(result.ok).toBe(false);
    expect(result.firstBad?.seq).toBe(4);
    expect(result.firstBad?.reason).toMatch(/prev_hash does not match the hash of record 3/);
  });

  it('detects a truncated tail only when the expected head is given', () => {
    const { file, records } = makeJournal(6);
    const head = records[5]!.hash;
    tamper(file, (db) => db.prepare('DELETE FROM records WHERE seq > 4').run());

    // A truncated chain is still a valid chain on its own.
    expect(verifyJournal(file)).toEqual({ ok: true, records: 4, head: records[3]!.hash });

    const result = verifyJournal(file, { expectHead: head });
    expect(result.ok).toBe(false);
    expect(result.head).toBe(records[3]!.hash);
    expect(result.firstBad?.seq).toBe(5);
    expect(result.firstBad?.reason).toMatch(/truncated/);
  });

  it('reports a head that differs from the expected one', () => {
    const { file, records } = makeJournal(4);
    const other = verifyJournal(file, { expectHead: 'cd'.repeat(32) });
    expect(other.ok).toBe(false);
    expect(other.firstBad?.seq).toBe(5);

    const older = verifyJournal(file, { expectHead: records[1]!.hash });
    expect(older.ok).toBe(false);
    expect(older.firstBad?.seq).toBe(3);
    expect(older.firstBad?.reason).toMatch(/continues past the expected head/);
  });

  it('names the first bad record when several are damaged', () => {
    const { file } = makeJournal(8);
    tamper(file, (db) => {
      db.prepare(`UPDATE records SET data = json_set(data, '$.rows', 0) WHERE seq = 6`).run();
      db.prepare(`UPDATE records SET call_id = 'other' WHERE seq = 2`).run();
      db.prepare('DELETE FROM records WHERE seq = 7').run();
    });
    const result = verifyJournal(file);
    expect(result.firstBad?.seq).toBe(2);
    expect(result.records).toBe(7);
  });

  it('rejects data that is not in canonical form even if the value is unchanged', () => {
    const { file } = makeJournal(2);
    tamper(file, (db) => db.prepare(`UPDATE records SET data = ' ' || data WHERE seq = 1`).run());
    expect(verifyJournal(file).firstBad).toEqual({ seq: 1, reason: 'data is not in canonical form' });
  });
});
