// Tests for signed journal checkpoints: signing and checking (pure), then a real SQLite journal
// tampered with raw SQL after dropping its append-only triggers (as verify.test.ts does), checked
// by verifyJournal against published checkpoints; then the publish file and the checkpointer
// with a manual timer and a fixed clock (nothing sleeps).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkpointChecker,
  parseCheckpointLine,
  parsePublicKey,
  parseSigningKey,
  signatureProblem,
  signCheckpoint,
  type Checkpoint,
  type CheckpointKeys,
  type PublishedCheckpoint,
} from '../../src/journal/checkpoint.js';
import {
  publishCheckpoint,
  readCheckpointFile,
  journalHead,
  startCheckpointer,
  writeCheckpoint,
  type IntervalTimer,
} from '../../src/journal/checkpoint-file.js';
import { GENESIS_HASH, recordHash } from '../../src/state/records.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import { sqliteJournal } from '../../src/state/sqlite/index.js';
import { openSqliteJournalReadOnly } from '../../src/state/sqlite/readonly.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { isDrawbridgeError } from '../../src/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-checkpoint-'));
  dirs.push(dir);
  return dir;
}

function newKeys(): CheckpointKeys & { readonly privatePem: string; readonly publicPem: string } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const keys = parseSigningKey(privatePem);
  return { ...keys, privatePem, publicPem: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

const KEYS = newKeys();
const OTHER = newKeys();
const HEAD = { count: 12, hash: 'ab'.repeat(32), at: '2026-12-05T00:00:00.000Z' };

describe('signCheckpoint and signatureProblem', () => {
  const good = signCheckpoint(HEAD, KEYS);
  const cases: Array<[string, Checkpoint, CheckpointKeys['publicKey'], RegExp | undefined]> = [
    ['a good checkpoint', good, KEYS.publicKey, undefined],
    ['another key', good, OTHER.publicKey, /signed by key [0-9a-f]{16}, not by the given public key/],
    ['a tampered count', { ...good, count: 11 }, KEYS.publicKey, /signature does not match/],
    ['a tampered hash', { ...good, hash: 'cd'.repeat(32) }, KEYS.publicKey, /signature does not match/],
    ['a tampered time', { ...good, at: '2026-12-06T00:00:00.000Z' }, KEYS.publicKey, /signature does not match/],
    ['a key id swapped to the verifier’s', { ...good, keyId: OTHER.keyId }, OTHER.publicKey, /signature does not match/],
  ];
  it.each(cases)('%s', (_name, checkpoint, publicKey, problem) => {
    const found = signatureProblem(checkpoint, publicKey);
    if (problem === undefined) expect(found).toBeUndefined();
    else expect(found).toMatch(problem);
  });

  it('holds count, head hash, time, a short key id and a base64 signature', () => {
    expect(good).toEqual({ v: 1, ...HEAD, keyId: expect.stringMatching(/^[0-9a-f]{16}$/), sig: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) });
    expect(good.keyId).not.toBe(OTHER.keyId);
  });
});

describe('keys and checkpoint lines', () => {
  it('refuses a key that is not Ed25519, as config.secret_invalid without its text', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    for (const pem of [rsa, 'not a key', KEYS.publicPem]) {
      let error: unknown;
      try {
        parseSigningKey(pem);
      } catch (e) {
        error = e;
      }
      expect(isDrawbridgeError(error) && error.code).toBe('config.secret_invalid');
      expect(String((error as Error).message)).not.toContain('BEGIN');
    }
    expect(() => parsePublicKey('garbage')).toThrow(/not an Ed25519 key/);
    expect(parsePublicKey(KEYS.publicPem).asymmetricKeyType).toBe('ed25519');
  });

  const lines: Array<[string, string, string]> = [
    ['not JSON', '{', 'not valid JSON'],
    ['an array', '[]', 'not a JSON object'],
    ['another version', JSON.stringify({ ...signCheckpoint(HEAD, KEYS), v: 2 }), 'unknown checkpoint version'],
    ['a negative count', JSON.stringify({ ...signCheckpoint(HEAD, KEYS), count: -1 }), 'malformed count'],
    ['a short hash', JSON.stringify({ ...signCheckpoint(HEAD, KEYS), hash: 'ab' }), 'malformed hash'],
    ['a bad time', JSON.stringify({ ...signCheckpoint(HEAD, KEYS), at: 'yesterday' }), 'malformed time'],
  ];
  it.each(lines)('a line with %s is not a checkpoint', (_name, line, reason) => {
    expect(parseCheckpointLine(line)).toBe(reason);
  });
});

/** A closed journal with `count` records. */
function makeJournal(count: number): string {
  const file = path.join(tempDir(), 'journal.db');
  const journal = openJournal(file);
  for (let i = 1; i <= count; i++) journal.append(i % 2 ? 'call' : 'outcome', `c${Math.ceil(i / 2)}`, { n: i });
  journal.close();
  return file;
}

function tamper(file: string, sql: (db: Database.Database) => void): void {
  const db = new Database(file);
  try {
    db.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
    sql(db);
  } finally {
    db.close();
  }
}

/** Checkpoints of the journal as it is now, at each of `counts`, as a publish file would hold them. */
function checkpointsAt(file: string, counts: readonly number[], keys: CheckpointKeys = KEYS): PublishedCheckpoint[] {
  const db = new Database(file, { readonly: true });
  try {
    return counts.map((count, index) => {
      const hash = count === 0 ? GENESIS_HASH : String(db.prepare('SELECT hash FROM records WHERE seq = ?').pluck().get(count));
      return { line: index + 1, checkpoint: signCheckpoint({ count, hash, at: `2026-12-05T00:0${index}:00.000Z` }, keys) };
    });
  } finally {
    db.close();
  }
}

function verifyWith(file: string, published: readonly PublishedCheckpoint[]) {
  return verifyJournal(file, { checkpoints: { published, publicKey: KEYS.publicKey } });
}

/** Rewrites records from `from` on so the chain is intact again: what an attacker with write access does. */
function rehashFrom(db: Database.Database, from: number): void {
  const rows = db.prepare('SELECT seq, time, type, call_id, data FROM records WHERE seq >= ? ORDER BY seq').all(from) as Array<{
    seq: number;
    time: string;
    type: 'call';
    call_id: string;
    data: string;
  }>;
  let prevHash =
    from === 1
      ? GENESIS_HASH
      : String(
          db
            .prepare('SELECT hash FROM records WHERE seq = ?')
            .pluck()
            .get(from - 1),
        );
  for (const r of rows) {
    const hash = recordHash({ seq: r.seq, time: r.time, type: r.type, callId: r.call_id, data: JSON.parse(r.data) as Record<string, unknown>, prevHash });
    db.prepare('UPDATE records SET prev_hash = ?, hash = ? WHERE seq = ?').run(prevHash, hash, r.seq);
    prevHash = hash;
  }
}

describe('verifyJournal with checkpoints, on a real SQLite journal', () => {
  it('passes an intact journal and says how far the checkpoints prove it', () => {
    const file = makeJournal(10);
    const result = verifyWith(file, checkpointsAt(file, [0, 4, 10]));
    expect(result).toMatchObject({ ok: true, records: 10, checkpoints: { checked: 3, upTo: 10 } });
    expect(result.firstBad).toBeUndefined();
  });

  const tampering: Array<[string, (db: Database.Database) => void, number, RegExp]> = [
    [
      'deleting the newest records',
      (db) => db.exec('DELETE FROM records WHERE seq > 7'),
      8,
      /attests 10 records but the journal has 7: records 8\.\.10 were deleted from the end/,
    ],
    ['editing a record', (db) => db.exec(`UPDATE records SET data = '{"n":99}' WHERE seq = 5`), 5, /hash mismatch/],
    [
      'reordering two records',
      (db) => db.exec('UPDATE records SET seq = -1 WHERE seq = 3; UPDATE records SET seq = 3 WHERE seq = 4; UPDATE records SET seq = 4 WHERE seq = -1'),
      3,
      /prev_hash/,
    ],
    ['deleting a middle record', (db) => db.exec('DELETE FROM records WHERE seq = 6'), 7, /seq gap: expected 6, found 7/],
    [
      'editing a record and rehashing the rest of the chain',
      (db) => {
        db.exec(`UPDATE records SET data = '{"n":99}' WHERE seq = 6`);
        rehashFrom(db, 6);
      },
      5,
      /record 10 does not have the hash the checkpoint on line 2 .* attests: records 5\.\.10 were edited, reordered or replaced/,
    ],
    [
      'replacing the newest records with forged ones',
      (db) => {
        db.exec('DELETE FROM records WHERE seq > 8');
        const forge = db.prepare(
          `INSERT INTO records (seq, time, type, call_id, data, prev_hash, hash) VALUES (?, '2026-12-05T00:00:00.000Z', 'call', 'x', '{}', '', '')`,
        );
        forge.run(9);
        forge.run(10);
        rehashFrom(db, 9);
      },
      5,
      /record 10 does not have the hash the checkpoint on line 2 .* attests: records 5\.\.10/,
    ],
  ];
  it.each(tampering)('catches %s and names the first bad record', (_name, sql, seq, reason) => {
    const file = makeJournal(10);
    const published = checkpointsAt(file, [4, 10]);
    tamper(file, sql);
    const result = verifyWith(file, published);
    expect(result.ok).toBe(false);
    expect(result.firstBad?.seq).toBe(seq);
    expect(result.firstBad?.reason).toMatch(reason);
  });

  it('cannot see records deleted after the last checkpoint, and says they are unproven', () => {
    const file = makeJournal(10);
    const published = checkpointsAt(file, [6]);
    tamper(file, (db) => db.exec('DELETE FROM records WHERE seq > 8'));
    // Records 9 and 10 are gone and nothing outside the journal knew of them: verify passes,
    // and its summary shows that only records 1..6 are proven.
    expect(verifyWith(file, published)).toMatchObject({ ok: true, records: 8, checkpoints: { checked: 1, upTo: 6 } });
  });

  it('reports a forged or altered checkpoint by its line, and one from another journal as a mismatch', () => {
    const file = makeJournal(6);
    const [cp] = checkpointsAt(file, [6]) as [PublishedCheckpoint];
    const altered = { line: 2, checkpoint: { ...(cp.checkpoint as Checkpoint), count: 5 } };
    expect(verifyWith(file, [cp, altered])).toMatchObject({ ok: false, badCheckpoint: { line: 2, reason: expect.stringMatching(/signature does not match/) } });
    const forged = checkpointsAt(file, [6], OTHER);
    expect(verifyWith(file, forged)).toMatchObject({ ok: false, badCheckpoint: { line: 1, reason: expect.stringMatching(/not by the given public key/) } });
    const malformed = [{ line: 3, checkpoint: 'not valid JSON' }];
    expect(verifyWith(file, malformed)).toMatchObject({ ok: false, badCheckpoint: { line: 3 } });
    const elsewhere = checkpointsAt(makeJournal(6), [6]);
    expect(verifyWith(file, elsewhere)).toMatchObject({ ok: false, firstBad: { seq: 1, reason: expect.stringMatching(/records 1\.\.6 were edited/) } });
  });

  it('leaves verify as it was without checkpoints', () => {
    const file = makeJournal(3);
    expect(Object.keys(verifyJournal(file)).sort()).toEqual(['head', 'ok', 'records']);
    expect(checkpointChecker([], KEYS.publicKey).finish(0)).toEqual({ summary: { checked: 0, upTo: 0 } });
  });
});

describe('publishing checkpoints', () => {
  it('appends one line per checkpoint to a 0600 file, never rewriting earlier lines', async () => {
    const journal = openSqliteJournalReadOnly(makeJournal(2));
    const file = path.join(tempDir(), 'checkpoints.jsonl');
    const first = await writeCheckpoint({ journal, file, keys: KEYS, now: new Date('2026-12-05T01:00:00Z') });
    const before = fs.readFileSync(file, 'utf8');
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe('600');
    const second = await writeCheckpoint({ journal, file, keys: KEYS, now: new Date('2026-12-05T01:01:00Z') });
    await journal.close();
    const after = fs.readFileSync(file, 'utf8');
    expect(after.startsWith(before)).toBe(true);
    expect(readCheckpointFile(file)).toEqual([
      { line: 1, checkpoint: first },
      { line: 2, checkpoint: second },
    ]);
    expect(first).toMatchObject({ count: 2, at: '2026-12-05T01:00:00.000Z' });
  });

  it('reads the head of an empty journal as the genesis hash, and of a journal as its last record', async () => {
    const empty = openSqliteJournalReadOnly(makeJournal(0));
    expect(await journalHead(empty, new Date(0))).toEqual({ count: 0, hash: GENESIS_HASH, at: '1970-01-01T00:00:00.000Z' });
    await empty.close();
    const file = makeJournal(3);
    const three = openSqliteJournalReadOnly(file);
    const last = (await verifyJournal(file)).head;
    expect(await journalHead(three, new Date(0))).toEqual({ count: 3, hash: last, at: '1970-01-01T00:00:00.000Z' });
    await three.close();
  });

  it('refuses to write where it cannot, as journal.unavailable', () => {
    expect(() => publishCheckpoint(path.join(tempDir(), 'missing-dir', 'c.jsonl'), signCheckpoint(HEAD, KEYS))).toThrow(/Cannot open the checkpoint file/);
    expect(() => readCheckpointFile(path.join(tempDir(), 'none.jsonl'))).toThrow(/Cannot read the checkpoint file/);
  });
});

describe('the checkpointer', () => {
  /** A timer the test fires by hand. */
  function manualTimer(): { timer: IntervalTimer; fire(): Promise<void>; readonly every: number[]; readonly cancelled: () => boolean } {
    let tick: (() => Promise<void>) | undefined;
    let cancelled = false;
    const every: number[] = [];
    return {
      every,
      timer: (ms, fn) => {
        every.push(ms);
        tick = fn;
        return () => {
          cancelled = true;
        };
      },
      fire: async () => tick?.(),
      cancelled: () => cancelled,
    };
  }

  it('checkpoints on every interval and once more on stop, with the clock’s time', async () => {
    const journalPath = path.join(tempDir(), 'journal.db');
    const journal = sqliteJournal(journalPath, 'full');
    const file = path.join(tempDir(), 'checkpoints.jsonl');
    const manual = manualTimer();
    let now = new Date('2026-12-05T00:00:00Z');
    const reported: unknown[] = [];
    const checkpointer = startCheckpointer({
      journal,
      config: { everyMs: 60_000, signingKey: { kind: 'file', path: 'unused', describe: 'file unused' }, publishFile: file },
      keys: KEYS,
      clock: () => now,
      timer: manual.timer,
      report: (e) => reported.push(e),
    });
    expect(manual.every).toEqual([60_000]);
    expect(fs.existsSync(file)).toBe(false);
    await journal.append('call', 'c1', {});
    await manual.fire();
    now = new Date('2026-12-05T00:01:00Z');
    await journal.append('outcome', 'c1', {});
    await journal.append('call', 'c2', {});
    await manual.fire();
    await journal.append('outcome', 'c2', {});
    now = new Date('2026-12-05T00:01:30Z');
    await Promise.all([checkpointer.stop(), checkpointer.stop()]);
    await journal.close();
    expect(manual.cancelled()).toBe(true);
    const written = readCheckpointFile(file).map((p) => p.checkpoint as Checkpoint);
    expect(written.map((c) => [c.count, c.at])).toEqual([
      [1, '2026-12-05T00:00:00.000Z'],
      [3, '2026-12-05T00:01:00.000Z'],
      [4, '2026-12-05T00:01:30.000Z'],
    ]);
    expect(reported).toEqual([]);
    expect(verifyWith(journalPath, readCheckpointFile(file))).toMatchObject({ ok: true, checkpoints: { checked: 3, upTo: 4 } });
  });

  it('reports a failed interval checkpoint and keeps going', async () => {
    const manual = manualTimer();
    const reported: unknown[] = [];
    const journal = sqliteJournal(path.join(tempDir(), 'closed.db'), 'full');
    await journal.close();
    const checkpointer = startCheckpointer({
      journal,
      config: { everyMs: 1000, signingKey: { kind: 'env', name: 'K', describe: '$K' }, publishFile: path.join(tempDir(), 'c.jsonl') },
      keys: KEYS,
      clock: () => new Date(0),
      timer: manual.timer,
      report: (e) => reported.push(e),
    });
    await manual.fire();
    await checkpointer.stop();
    expect(reported.map((e) => isDrawbridgeError(e) && e.code)).toEqual(['journal.unavailable', 'journal.unavailable']);
  });
});
