// The audit stream's part of the state contract on both engines (SQLite files; PostgreSQL as the
// non-superuser state role): JournalStore.readFrom is bounded and in seq order; a stream cursor
// starts at 0, only moves forward and is durable across handles; claim() lets one holder at a
// time stream a sink (SQLite: a lease taken over once expired by the caller's clock; PostgreSQL:
// a session lock the server releases when its holder's connection ends).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { STREAM_LEASE_MS, type StateStore } from '../../src/state/contract.js';
import { openPostgresState } from '../../src/state/postgres/index.js';
import { STREAM_LOCK_SPACE } from '../../src/state/postgres/migrations.js';
import { openSqliteState } from '../../src/state/sqlite/index.js';
import { openSqliteJournalReadOnly } from '../../src/state/sqlite/readonly.js';
import { freshDatabase } from '../support/fixtures.js';
import { stateRoleUrl } from '../support/state-role.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Engine = 'sqlite' | 'postgres';

/** Opens handles on one fresh state of `engine`: each call is another process's (or replica's) handle. */
async function freshState(engine: Engine): Promise<{ open(): Promise<StateStore>; readonlyJournal?: string; url?: string }> {
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'drawbridge-streams-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const paths = { journal: join(dir, 'journal.db'), journalSync: 'full', openJournal: 'now', approvals: join(dir, 'approvals.db') } as const;
    return {
      readonlyJournal: paths.journal,
      async open() {
        const state = openSqliteState(paths);
        cleanups.push(() => state.close());
        return state;
      },
    };
  }
  const db = await freshDatabase('streams');
  cleanups.push(() => db.drop());
  const url = await stateRoleUrl(db);
  return {
    url,
    async open() {
      const state = await openPostgresState({ url, purpose: 'serve' });
      cleanups.push(() => state.close());
      return state;
    },
  };
}

const at = (ms: number): Date => new Date(Date.UTC(2026, 11, 5) + ms);

describe.each<Engine>(['sqlite', 'postgres'])('stream cursors and readFrom on %s', (engine) => {
  it('readFrom returns at most `limit` records after a seq, in seq order, as stored', async () => {
    const fresh = await freshState(engine);
    const state = await fresh.open();
    expect(await state.journal.readFrom(0, 10)).toEqual([]);
    for (let i = 0; i < 7; i++) await state.journal.append('call', `c${i}`, { i }, at(i));
    const page = await state.journal.readFrom(2, 3);
    expect(page.map((r) => r.seq)).toEqual([3, 4, 5]);
    expect(page[0]).toMatchObject({ type: 'call', callId: 'c2', data: '{"i":2}', time: at(2).toISOString() });
    expect((await state.journal.readFrom(5, 100)).map((r) => r.seq)).toEqual([6, 7]);
    expect(await state.journal.readFrom(7, 100)).toEqual([]);
    if (fresh.readonlyJournal) {
      const ro = openSqliteJournalReadOnly(fresh.readonlyJournal);
      cleanups.push(() => ro.close());
      expect((await ro.readFrom(4, 2)).map((r) => r.seq)).toEqual([5, 6]);
    }
  });

  it('a cursor starts at 0, only moves forward, and is the same for every handle', async () => {
    const fresh = await freshState(engine);
    const one = await fresh.open();
    const two = await fresh.open();
    expect(await one.streams.cursor('siem')).toEqual({ seq: 0, updatedAt: null });
    await one.streams.advance('siem', 5, at(1_000));
    await two.streams.advance('siem', 3, at(2_000));
    expect(await two.streams.cursor('siem')).toEqual({ seq: 5, updatedAt: at(1_000).toISOString() });
    await two.streams.advance('siem', 9, at(3_000));
    expect(await one.streams.cursor('siem')).toEqual({ seq: 9, updatedAt: at(3_000).toISOString() });
    // Sinks are independent.
    expect((await one.streams.cursor('otel')).seq).toBe(0);
  });

  it('one holder at a time: the other is refused until the holder releases', async () => {
    const fresh = await freshState(engine);
    const one = await fresh.open();
    const two = await fresh.open();
    expect(await one.streams.claim('siem', 'a', at(0))).toBe(true);
    expect(await one.streams.claim('siem', 'a', at(10))).toBe(true);
    expect(await two.streams.claim('siem', 'b', at(20))).toBe(false);
    // Another sink is free.
    expect(await two.streams.claim('otel', 'b', at(20))).toBe(true);
    await one.streams.release('siem', 'a');
    expect(await two.streams.claim('siem', 'b', at(30))).toBe(true);
    expect(await one.streams.claim('siem', 'a', at(40))).toBe(false);
  });
});

describe('the SQLite lease', () => {
  it('is renewed by its holder and taken over once it expired (by the caller’s clock)', async () => {
    const fresh = await freshState('sqlite');
    const one = await fresh.open();
    const two = await fresh.open();
    expect(await one.streams.claim('siem', 'a', at(0))).toBe(true);
    expect(await two.streams.claim('siem', 'b', at(STREAM_LEASE_MS - 1))).toBe(false);
    // Renewed past half its life: still a's a full lease later.
    expect(await one.streams.claim('siem', 'a', at(STREAM_LEASE_MS * 0.75))).toBe(true);
    expect(await two.streams.claim('siem', 'b', at(STREAM_LEASE_MS + 1))).toBe(false);
    // a stops renewing (its process died): b takes over once the lease ran out.
    expect(await two.streams.claim('siem', 'b', at(STREAM_LEASE_MS * 1.75 + 1))).toBe(true);
    expect(await one.streams.claim('siem', 'a', at(STREAM_LEASE_MS * 1.75 + 2))).toBe(false);
  });
});

describe('the PostgreSQL claim', () => {
  it('is released by the server when the holder’s session ends, and taken over', async () => {
    const fresh = await freshState('postgres');
    const one = await fresh.open();
    const two = await fresh.open();
    expect(await one.streams.claim('siem', 'a', at(0))).toBe(true);
    expect(await two.streams.claim('siem', 'b', at(0))).toBe(false);
    // The holder's lock session dies (its replica crashed, or the network cut it).
    const admin = new pg.Client({ connectionString: fresh.url });
    await admin.connect();
    cleanups.push(() => admin.end());
    const killed = await admin.query<{ n: number }>(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted",
      [STREAM_LOCK_SPACE],
    );
    expect(killed.rows[0]?.n).toBe(1);
    let taken = false;
    for (let i = 0; i < 200 && !taken; i++) {
      taken = await two.streams.claim('siem', 'b', at(0));
      if (!taken) await new Promise((r) => setTimeout(r, 10));
    }
    expect(taken).toBe(true);
    // one learns it lost the lock (its session's end), and does not claim it back.
    for (let i = 0; i < 200 && (await one.streams.claim('siem', 'a', at(0))); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await one.streams.claim('siem', 'a', at(0))).toBe(false);
  });
});
