// Group commit of the SQLite journal (src/state/sqlite/index.ts sqliteJournal and journal.ts
// prepare/commit): concurrent appends share one transaction, each resolves only once its own
// record is committed (seen by another connection), the chain stays whole and in call order,
// a bad record is refused alone, and close() commits what was already accepted.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { verifyJournal } from '../../../src/journal/verify.js';
import type { JournalStore } from '../../../src/state/contract.js';
import { sqliteJournal } from '../../../src/state/sqlite/index.js';

const dirs: string[] = [];
const stores: JournalStore[] = [];

function tempPath(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-group-commit-'));
  dirs.push(dir);
  return path.join(dir, 'journal.db');
}

function open(file: string): JournalStore {
  const store = sqliteJournal(file, 'full');
  stores.push(store);
  return store;
}

/** Frames in the WAL file: every commit writes at least one frame per page it changed. */
function walFrames(file: string): number {
  const db = new Database(file);
  try {
    db.pragma('wal_autocheckpoint = 0');
    const [row] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>;
    return row?.log ?? -1;
  } finally {
    db.close();
  }
}

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('sqliteJournal group commit', () => {
  it('chains 50 concurrent appends in call order, in far fewer commits than 50 sequential appends', async () => {
    const concurrentFile = tempPath();
    const concurrent = open(concurrentFile);
    const records = await Promise.all(Array.from({ length: 50 }, (_, i) => concurrent.append('call', `c${i}`, { i })));
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(records.map((r) => r.callId)).toEqual(Array.from({ length: 50 }, (_, i) => `c${i}`));
    for (let i = 1; i < records.length; i++) expect(records[i]?.prevHash).toBe(records[i - 1]?.hash);

    const sequentialFile = tempPath();
    const sequential = open(sequentialFile);
    for (let i = 0; i < 50; i++) await sequential.append('call', `c${i}`, { i });

    const batched = walFrames(concurrentFile);
    const single = walFrames(sequentialFile);
    expect(batched).toBeGreaterThan(0);
    // One commit per append writes ≥ 1 frame per append; one shared commit writes a handful.
    expect(single).toBeGreaterThanOrEqual(50);
    expect(batched * 5).toBeLessThan(single);
    expect(verifyJournal(concurrentFile)).toMatchObject({ ok: true, records: 50 });
  });

  it('resolves each append only once another connection can read its record', async () => {
    const file = tempPath();
    const store = open(file);
    await store.append('call', 'warm', {});
    const reader = new Database(file, { readonly: true });
    try {
      const seen = reader.prepare('SELECT call_id FROM records WHERE seq = ?').pluck();
      const checks = Array.from({ length: 20 }, (_, i) => store.append('call', `r${i}`, { i }).then((r) => seen.get(r.seq)));
      expect(await Promise.all(checks)).toEqual(Array.from({ length: 20 }, (_, i) => `r${i}`));
    } finally {
      reader.close();
    }
  });

  it('lets durable: false records ride in a batch with durable ones, chain intact', async () => {
    const file = tempPath();
    const store = open(file);
    const records = await Promise.all(
      Array.from({ length: 30 }, (_, i) => store.append(i % 2 === 0 ? 'call' : 'outcome', `d${i >> 1}`, { i }, undefined, { durable: i % 2 === 0 })),
    );
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // A batch of only non-durable records commits too.
    const relaxed = await Promise.all([
      store.append('outcome', 'x', {}, undefined, { durable: false }),
      store.append('outcome', 'y', {}, undefined, { durable: false }),
    ]);
    expect(relaxed.map((r) => r.seq)).toEqual([31, 32]);
    expect(verifyJournal(file)).toMatchObject({ ok: true, records: 32 });
  });

  it('refuses a record that cannot be stored alone; its neighbours in the same turn commit', async () => {
    const file = tempPath();
    const store = open(file);
    const results = await Promise.allSettled([
      store.append('call', 'a', { n: 1 }),
      store.append('call', 'bad', { n: 10n }),
      store.append('call', 'b', { n: 2 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const refused = (results[1] as PromiseRejectedResult).reason as DrawbridgeError;
    expect(refused).toBeInstanceOf(DrawbridgeError);
    expect(refused.code).toBe('journal.unavailable');
    expect(refused.message).not.toContain(file);
    expect(verifyJournal(file)).toMatchObject({ ok: true, records: 2 });
  });

  it('rejects the whole batch with journal.unavailable when the commit fails, and stores none of it', async () => {
    const file = tempPath();
    const store = open(file);
    await store.append('call', 'first', {});
    // A trigger that aborts the insert of one record makes the shared transaction fail (a lock held
    // past the busy timeout would too, but takes 5 s).
    const admin = new Database(file);
    admin.exec("CREATE TRIGGER refuse BEFORE INSERT ON records WHEN NEW.call_id = 'poison' BEGIN SELECT RAISE(ABORT, 'refused'); END;");
    admin.close();
    const results = await Promise.allSettled([store.append('call', 'ok1', {}), store.append('call', 'poison', {}), store.append('call', 'ok2', {})]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect(((r as PromiseRejectedResult).reason as DrawbridgeError).code).toBe('journal.unavailable');
    expect(verifyJournal(file)).toMatchObject({ ok: true, records: 1 });
  });

  it('commits appends already accepted when closed, then refuses new ones', async () => {
    const file = tempPath();
    const store = sqliteJournal(file, 'full');
    const pending = [store.append('call', 'p1', {}), store.append('call', 'p2', {})];
    await store.close();
    expect((await Promise.all(pending)).map((r) => r.seq)).toEqual([1, 2]);
    await expect(store.append('call', 'late', {})).rejects.toMatchObject({ code: 'journal.unavailable' });
    expect(verifyJournal(file)).toMatchObject({ ok: true, records: 2 });
  });
});
