// The PostgreSQL engine's journal (src/state/postgres/journal.ts) against the real server, as
// the non-superuser state role: three handles (as three replicas) appending at once keep one
// chain; group commit writes concurrent appends in few transactions and never resolves an
// append before its COMMIT; a connection lost mid-append fails closed without secrets and the
// next append works; records are append-only; read() is one snapshot across pages.

import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { verifyStore } from '../../../src/journal/verify.js';
import type { StateStore, StoredRecord } from '../../../src/state/contract.js';
import { openPostgresState } from '../../../src/state/postgres/index.js';
import { JOURNAL_LOCK, LOCK_SPACE } from '../../../src/state/postgres/migrations.js';
import { freshDatabase, type FreshDatabase } from '../../support/fixtures.js';
import { startFaultProxy, type FaultProxy } from '../../support/pg-fault-proxy.js';
import { STATE_ROLE, STATE_ROLE_PASSWORD, stateRoleUrl } from '../../support/state-role.js';

const databases: FreshDatabase[] = [];
const opened: StateStore[] = [];
const clients: pg.Client[] = [];
const proxies: FaultProxy[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.end().catch(() => undefined)));
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});

async function fresh(): Promise<{ db: FreshDatabase; url: string; open: (options?: { commit?: 'batch' | 'each' }) => Promise<StateStore> }> {
  const db = await freshDatabase('state_journal');
  databases.push(db);
  const url = await stateRoleUrl(db);
  return {
    db,
    url,
    open: async (options = {}) => {
      const state = await openPostgresState({ url, purpose: 'serve', ...options });
      opened.push(state);
      return state;
    },
  };
}

/** A superuser session of its own (held locks live as long as it does). */
async function session(db: FreshDatabase): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.superuserUrl });
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  return c;
}

/** Polls the server (not the wall clock) until `probe` holds. */
async function until(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await probe()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error('condition never held');
}

/** Backends of the state role waiting for the journal's head lock. */
async function waitingOnHead(db: FreshDatabase): Promise<number[]> {
  const rows = await db.query<{ pid: number }>(
    `SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND NOT l.granted AND l.classid = $1 AND l.objid = $2 AND a.usename = $3`,
    [LOCK_SPACE, JOURNAL_LOCK, STATE_ROLE],
  );
  return rows.map((r) => r.pid);
}

async function readAll(state: StateStore): Promise<StoredRecord[]> {
  const rows: StoredRecord[] = [];
  for await (const row of state.journal.read()) rows.push(row);
  return rows;
}

describe('PostgreSQL journal', () => {
  it('3 handles × 200 concurrent appends keep one intact chain, each record exactly once', async () => {
    const { open } = await fresh();
    const handles = [await open(), await open(), await open()];
    const appended = await Promise.all(
      Array.from({ length: 600 }, (_, i) => handles[i % 3]!.journal.append(i % 2 ? 'outcome' : 'call', `c${i}`, { i }, undefined, { durable: i % 2 === 0 })),
    );
    expect(new Set(appended.map((r) => r.seq)).size).toBe(600);
    const verified = await verifyStore(handles[1]!.journal);
    expect(verified).toMatchObject({ ok: true, records: 600 });
    const rows = await readAll(handles[2]!);
    expect(rows.map((r) => r.callId).sort()).toEqual(Array.from({ length: 600 }, (_, i) => `c${i}`).sort());
  });

  it('group commit: 200 concurrent appends from one handle share a few transactions', async () => {
    const { db, open } = await fresh();
    const state = await open();
    await Promise.all(Array.from({ length: 200 }, (_, i) => state.journal.append('call', `c${i}`, { i })));
    // xmin is the transaction that wrote each row: the number of commits the appends took.
    const [batched] = await db.query<{ n: number }>('SELECT count(DISTINCT xmin::text)::int AS n FROM drawbridge.records');
    expect(batched!.n).toBeLessThan(20);
    const other = await open({ commit: 'each' });
    await Promise.all(Array.from({ length: 50 }, (_, i) => other.journal.append('call', `e${i}`, { i })));
    const [each] = await db.query<{ n: number }>("SELECT count(DISTINCT xmin::text)::int AS n FROM drawbridge.records WHERE call_id LIKE 'e%'");
    expect(each!.n).toBe(50);
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: 250 });
  });

  it('an append resolves only after its batch committed: held at the head lock, it stays pending and unseen', async () => {
    const { db, open } = await fresh();
    const state = await open();
    const blocker = await session(db);
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, JOURNAL_LOCK]);
    let settled = false;
    const appends = Promise.all([state.journal.append('call', 'c1', {}), state.journal.append('call', 'c2', {})]).finally(() => (settled = true));
    await until(async () => (await waitingOnHead(db)).length === 1);
    expect(settled).toBe(false);
    expect(await db.query('SELECT seq FROM drawbridge.records')).toEqual([]);
    await blocker.query('COMMIT');
    const records = await appends;
    expect(records.map((r) => r.seq)).toEqual([1, 2]);
    // Resolved, so committed: another session sees both.
    expect((await db.query<{ seq: number }>('SELECT seq::int FROM drawbridge.records ORDER BY seq')).map((r) => r.seq)).toEqual([1, 2]);
  });

  it('a connection killed mid-append is retried once (the server ended it, nothing stored); killed twice it rejects journal.unavailable', async () => {
    const { db, url, open } = await fresh();
    const state = await open();
    await state.journal.append('call', 'before', {});
    // The INSERT waits behind a table lock, after the head lock was granted: killed there, the batch is lost.
    const blocker = await session(db);
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE drawbridge.records IN SHARE MODE');
    const inserting = async () =>
      (
        await db.query<{ pid: number }>(
          "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'relation' AND NOT l.granted AND a.usename = $1",
          [STATE_ROLE],
        )
      ).map((r) => r.pid);
    const killUntilRetried = async (times: number): Promise<void> => {
      let last = 0;
      for (let i = 0; i < times; i++) {
        await until(async () => {
          const now = await inserting();
          return now.length === 1 && now[0] !== last;
        });
        [last] = (await inserting()) as [number];
        await db.query('SELECT pg_terminate_backend($1)', [last]);
      }
    };
    // Killed once: the lookup finds nothing stored, so the batch goes again and commits once.
    const retried = state.journal.append('call', 'retried', {});
    await killUntilRetried(1);
    await until(async () => (await inserting()).length === 1);
    await blocker.query('COMMIT');
    expect(await retried).toMatchObject({ seq: 2, callId: 'retried' });
    // Killed twice: fails closed.
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE drawbridge.records IN SHARE MODE');
    const killed = state.journal.append('call', 'killed', {}).then(
      () => new Error('expected a rejection'),
      (e: unknown) => e,
    );
    await killUntilRetried(2);
    await blocker.query('COMMIT');
    const error = await killed;
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('journal.unavailable');
    for (const secret of [url, STATE_ROLE_PASSWORD, '127.0.0.1']) expect((error as DrawbridgeError).message).not.toContain(secret);
    expect((await state.journal.append('call', 'after', {})).seq).toBe(3);
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: 3 });
  });

  it('a connection killed before its batch ran anything (waiting for the head lock) is replaced: the append commits once', async () => {
    const { db, open } = await fresh();
    const state = await open();
    const blocker = await session(db);
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, JOURNAL_LOCK]);
    const appending = state.journal.append('call', 'survivor', {});
    await until(async () => (await waitingOnHead(db)).length === 1);
    const [first] = await waitingOnHead(db);
    await db.query('SELECT pg_terminate_backend($1)', [first]);
    // The replacement connection queues for the same lock.
    await until(async () => {
      const now = await waitingOnHead(db);
      return now.length === 1 && now[0] !== first;
    });
    await blocker.query('COMMIT');
    expect(await appending).toMatchObject({ seq: 1, callId: 'survivor' });
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: 1 });
  });

  it('a connection dropped by the network at INSERT or at COMMIT fails closed; the chain stays intact and the next append works', async () => {
    const { db, url } = await fresh();
    const target = new URL(url);
    const proxy = await startFaultProxy({ host: target.hostname, port: Number(target.port) });
    proxies.push(proxy);
    const state = await openPostgresState({ url: proxy.url(url), purpose: 'serve' });
    opened.push(state);
    await state.journal.append('call', 'c0', {});
    const beforeInsert = proxy.cutOn('INSERT INTO drawbridge.records', { forward: false });
    const lost = await state.journal.append('call', 'lost', {}).catch((e: unknown) => e);
    await beforeInsert.done;
    expect((lost as DrawbridgeError).code).toBe('journal.unavailable');
    expect((lost as DrawbridgeError).message).not.toContain(STATE_ROLE_PASSWORD);
    // Sent, answer lost: the outcome is unknown to the caller, who refuses the call; the chain is whole either way.
    const atCommit = proxy.cutOn('COMMIT\u0000', { forward: true });
    const unknown = await state.journal.append('call', 'unknown', {}).catch((e: unknown) => e);
    await atCommit.done;
    expect((unknown as DrawbridgeError).code).toBe('journal.unavailable');
    const next = await state.journal.append('call', 'next', {});
    const rows = await db.query<{ call_id: string }>('SELECT call_id FROM drawbridge.records ORDER BY seq');
    expect(rows.map((r) => r.call_id).filter((c) => c !== 'unknown')).toEqual(['c0', 'next']);
    expect(next.seq).toBe(rows.length);
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: rows.length });
  });

  it('the server chains what Node hashes: quotes, backslashes, $$, newlines and non-ASCII text, even with standard_conforming_strings off', async () => {
    const { db, open } = await fresh();
    // E'' literals read backslashes as escapes whatever this setting says; plain '' literals would not.
    await db.query(`ALTER DATABASE ${db.name} SET standard_conforming_strings = off`);
    const state = await open();
    const tricky = [
      "it's",
      "back\\slash \\'",
      "E'\\x00'",
      '$$; DROP TABLE drawbridge.records; $$',
      'line\nbreak\ttab',
      'Zoë 日本 🙂',
      '"quoted"',
      '\u007f\u0001',
    ];
    const appended = await Promise.all(
      tricky.map((text, i) => state.journal.append(i % 2 ? 'outcome' : 'call', `${text}-${i}`, { text, nested: { list: [text, i, null, true] } })),
    );
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: tricky.length });
    const rows = await readAll(state);
    for (const record of appended) {
      const row = rows.find((r) => Number(r.seq) === record.seq);
      expect(row).toMatchObject({ callId: record.callId, hash: record.hash, prevHash: record.prevHash });
      expect(JSON.parse(String(row?.data))).toEqual(record.data);
    }
  });

  it('a NUL character refuses that append alone (journal.unavailable); appends of the same batch commit', async () => {
    const { open } = await fresh();
    const state = await open();
    const results = await Promise.allSettled([
      state.journal.append('call', 'ok-1', {}),
      state.journal.append('call', 'bad\u0000id', {}),
      state.journal.append('call', 'ok-2', { text: 'a\u0000b' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(((results[1] as PromiseRejectedResult).reason as DrawbridgeError).code).toBe('journal.unavailable');
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: 2 });
  });

  it('records are append-only even for the state role that owns them: UPDATE, DELETE and TRUNCATE are refused', async () => {
    const { url, open } = await fresh();
    const state = await open();
    await state.journal.append('call', 'c1', {});
    const owner = new pg.Client({ connectionString: url });
    await owner.connect();
    clients.push(owner);
    for (const sql of ["UPDATE drawbridge.records SET data = '{}'", 'DELETE FROM drawbridge.records', 'TRUNCATE drawbridge.records']) {
      await expect(owner.query(sql)).rejects.toThrow(/append-only/);
    }
    expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: 1 });
  });

  it('read() pages through one snapshot: appends committed while reading are not seen', async () => {
    const { open } = await fresh();
    const [a, b] = [await open(), await open()];
    await Promise.all(Array.from({ length: 2_500 }, (_, i) => a.journal.append('call', `c${i}`, { i })));
    const seqs: number[] = [];
    for await (const row of a.journal.read()) {
      seqs.push(Number(row.seq));
      if (seqs.length === 1) await Promise.all(Array.from({ length: 10 }, (_, i) => b.journal.append('call', `late${i}`, {})));
    }
    expect(seqs).toEqual(Array.from({ length: 2_500 }, (_, i) => i + 1));
    expect(await b.journal.head()).toMatchObject({ seq: 2_510 });
  });
});
