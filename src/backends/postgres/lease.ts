// One pooled PostgreSQL client checked out for one piece of work (a call's
// statement, a catalog read, a dry run, the probe), with its own 'error'
// listener for as long as it is out of the pool.
//
// Why: pg-pool listens for 'error' only on IDLE clients; it removes that
// listener at checkout and puts it back at release. A checked-out client whose
// socket dies (a restart, a failover, pg_terminate_backend) emits 'error' on
// an EventEmitter with no listener, which Node turns into an uncaught
// exception: the whole gateway dies, every other session with it. The lease's
// listener records the fault instead; the work in flight fails on its own
// (pg errors every queued query when the socket ends), and release() never
// returns a faulted or dirty client to the pool.

import type pg from 'pg';

export interface Lease {
  readonly client: pg.PoolClient;
  /** The socket-level error seen while checked out (the session is gone), or null. */
  fault(): Error | null;
  /** The session must not be reused (state may be left behind, or it broke). */
  discard(): void;
  /**
   * Back to the pool, or destroyed when discarded or faulted. Idempotent. The
   * lease's listener is removed only after pg-pool has re-attached its own, so
   * the client is never without an 'error' listener.
   */
  release(): void;
}

/**
 * Checks a client out of `pool`. A failed connect is passed to `connectError`
 * (which turns it into the catalog error to throw); nothing is held then.
 */
export async function checkout(pool: pg.Pool, connectError: (error: unknown) => Error): Promise<Lease> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw connectError(error);
  }
  let fault: Error | null = null;
  let discard = false;
  let released = false;
  const onError = (error: Error): void => {
    // pg may emit more than once for one death (the socket error, then its end): keep the first.
    fault ??= error;
  };
  client.on('error', onError);
  return {
    client,
    fault: () => fault,
    discard: () => {
      discard = true;
    },
    release: () => {
      if (released) return;
      released = true;
      // Passing true makes pg-pool end the client instead of keeping it idle.
      client.release(discard || fault !== null);
      client.removeListener('error', onError);
    },
  };
}
