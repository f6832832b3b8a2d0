// The PostgreSQL engine's audit stream cursors (drawbridge.stream_cursors) and who streams each
// sink: a session advisory lock per sink (STREAM_LOCK_SPACE, hashtext(name)) held on one
// connection of this store's own. Of the replicas sharing the database, the one whose session
// holds a sink's lock streams it; when that process dies or its connection drops, the server
// releases the lock and the next claim of another replica takes it over. A cursor only moves
// forward (the UPDATE's WHERE), so a streamer that lost its lock mid-batch cannot move it back.

import pg from 'pg';
import type { StreamCursorStore } from '../contract.js';
import { fault, type Secrets } from './faults.js';
import { SCHEMA, STREAM_LOCK_SPACE } from './migrations.js';

export function pgStreams(pool: pg.Pool, config: pg.ClientConfig, secrets: Secrets): StreamCursorStore {
  /** The lock session; null until the first claim, and again once it died (its locks died with it). */
  let session: pg.Client | null = null;
  let connecting: Promise<pg.Client> | null = null;
  /** Sinks this session holds, and the holder (streamer) in this process that claimed each. */
  const held = new Map<string, string>();
  let closed = false;
  const failed = (what: string, cause: unknown): Error => fault('journal.unavailable', what, cause, secrets);

  const drop = (dead: pg.Client): void => {
    if (session !== dead) return;
    session = null;
    held.clear();
    void dead.end().catch(() => undefined);
  };

  const lockSession = (): Promise<pg.Client> => {
    if (session !== null) return Promise.resolve(session);
    connecting ??= (async () => {
      const c = new pg.Client({ ...config, application_name: 'drawbridge stream' });
      c.on('error', () => drop(c));
      c.on('end', () => drop(c));
      try {
        await c.connect();
      } catch (error) {
        await c.end().catch(() => undefined);
        throw error;
      }
      session = c;
      return c;
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };

  return {
    async cursor(sink) {
      try {
        const r = await pool.query<{ seq: number; updated_at: Date }>(`SELECT seq, updated_at FROM ${SCHEMA}.stream_cursors WHERE name = $1`, [sink]);
        const row = r.rows[0];
        return { seq: row ? Number(row.seq) : 0, updatedAt: row ? new Date(row.updated_at).toISOString() : null };
      } catch (cause) {
        throw failed('Cannot read the audit stream cursor', cause);
      }
    },
    async advance(sink, seq, now) {
      try {
        await pool.query(
          `INSERT INTO ${SCHEMA}.stream_cursors (name, seq, updated_at) VALUES ($1, $2, $3) ` +
            `ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at WHERE ${SCHEMA}.stream_cursors.seq < excluded.seq`,
          [sink, seq, now.toISOString()],
        );
      } catch (cause) {
        throw failed('Cannot move the audit stream cursor', cause);
      }
    },
    async claim(sink, holder) {
      if (closed) return false;
      const owner = held.get(sink);
      if (owner !== undefined) return owner === holder;
      try {
        const c = await lockSession();
        const r = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${STREAM_LOCK_SPACE}, hashtext($1)) AS ok`, [sink]);
        // The session may have died while the answer was on its way: then nothing is held.
        if (r.rows[0]?.ok !== true || session !== c) return false;
        held.set(sink, holder);
        return true;
      } catch (cause) {
        throw failed('Cannot claim the audit stream', cause);
      }
    },
    async release(sink, holder) {
      if (held.get(sink) !== holder) return;
      held.delete(sink);
      const c = session;
      await c?.query(`SELECT pg_advisory_unlock(${STREAM_LOCK_SPACE}, hashtext($1))`, [sink]).catch(() => undefined);
    },
    async close() {
      closed = true;
      await connecting?.catch(() => undefined);
      const c = session;
      session = null;
      held.clear();
      await c?.end().catch(() => undefined);
    },
  };
}
