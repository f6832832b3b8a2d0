// The PostgreSQL engine of the state contract: the journal (journal.ts), the approvals
// (approvals.ts) and their change notices (notify.ts), each store over connections of its
// own, shared by any number of gateway replicas and CLI commands. Opening applies pending
// migrations ('serve') or only checks the schema version ('command'). Every connection has
// an error handler, so a dying socket never kills the process: the call in flight fails
// closed, and the pool opens a new connection for the next one (no restart needed).

import pg from 'pg';
import { DrawbridgeError, isDrawbridgeError } from '../../errors.js';
import type { StateStore } from '../contract.js';
import type { StatePurpose } from '../open.js';
import { pgApprovals } from './approvals.js';
import { safeReason, secretsOf } from './faults.js';
import { pgJournal, type CommitMode } from './journal.js';
import { checkSchema, migrate } from './migrations.js';
import { listener } from './notify.js';
import { pgStreams } from './streams.js';

export interface PostgresStateOptions {
  readonly url: string;
  readonly purpose: StatePurpose;
  /** Group commit ('batch', the default) or one transaction per append ('each', for measurements). */
  readonly commit?: CommitMode;
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
}

const INT8_OID = 20;

/** bigint (seq, epoch milliseconds) as a number: every value the state stores is far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

function connectionConfig(url: string): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: 'drawbridge',
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    // A state database that stops answering fails the call (closed) instead of hanging it.
    query_timeout: 30_000,
    types,
  };
}

function openPool(url: string, size: number): pg.Pool {
  const pool = new pg.Pool({ ...connectionConfig(url), max: size, idleTimeoutMillis: 30_000 });
  // Idle clients report errors here; checked-out ones on the client itself (the next query
  // on it fails, and the engine releases it as broken).
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

function openFailed(cause: unknown, url: string): Error {
  if (isDrawbridgeError(cause) || cause instanceof TypeError) return cause;
  return new DrawbridgeError('journal.unavailable', `Cannot open the shared state: ${safeReason(cause, secretsOf(url))}`, {
    hint: 'Check state.url and that the state database is up and reachable from this host, then retry.',
    cause,
  });
}

/**
 * The journal has a pool of its own: a vote holds an approvals connection while its hook
 * appends to the journal, so sharing one pool could starve the append that the votes wait
 * for. Group commit needs one writer plus readers; one transaction per append needs more.
 */
const JOURNAL_POOL_BATCH = 3;

export async function openPostgresState(options: PostgresStateOptions): Promise<StateStore> {
  const secrets = secretsOf(options.url);
  const size = options.poolSize ?? 10;
  const commit = options.commit ?? 'batch';
  const pool = openPool(options.url, size);
  try {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      if (options.purpose === 'serve') await migrate(client);
      else await checkSchema(client);
    } catch (error) {
      if (!isDrawbridgeError(error)) broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.release(broken);
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw openFailed(error, options.url);
  }
  const journalPool = openPool(options.url, commit === 'batch' ? JOURNAL_POOL_BATCH : size);
  const journal = pgJournal(journalPool, secrets, commit);
  const listen = listener(connectionConfig(options.url));
  const approvals = pgApprovals(pool, secrets, listen);
  const streams = pgStreams(pool, connectionConfig(options.url), secrets);
  let closing: Promise<void> | null = null;
  return {
    journal,
    approvals,
    streams,
    close() {
      closing ??= (async () => {
        await Promise.all([journal.close(), approvals.close(), listen.close(), streams.close()]);
        await Promise.all([pool.end().catch(() => undefined), journalPool.end().catch(() => undefined)]);
      })();
      return closing;
    },
  };
}

/** Applies pending migrations; returns the schema version before and after. */
export async function migratePostgresState(url: string): Promise<{ readonly from: number; readonly to: number }> {
  const client = new pg.Client(connectionConfig(url));
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await migrate(client);
  } catch (error) {
    throw openFailed(error, url);
  } finally {
    await client.end().catch(() => undefined);
  }
}
