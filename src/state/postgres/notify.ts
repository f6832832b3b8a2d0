// Change notices of the PostgreSQL engine: every approvals change calls pg_notify in its own
// transaction (delivered only if it commits), and one dedicated listener connection per store,
// opened on the first changed() and reopened after an error while anyone waits, wakes the
// waiting calls of this process. Best effort: a notice lost during a reconnect only delays a
// waiting call until its next poll.

import { EventEmitter, once } from 'node:events';
import pg from 'pg';

/** The channel every change is announced on; the payload is the approval id. */
export const CHANNEL = 'drawbridge_approvals';

const RECONNECT_MS = 250;

export interface Listener {
  /** Resolves on the next notice for `id`, or when `signal` aborts. */
  changed(id: string, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export function listener(config: pg.ClientConfig): Listener {
  const changes = new EventEmitter().setMaxListeners(0);
  let client: pg.Client | null = null;
  let connecting: Promise<void> | null = null;
  let retry: NodeJS.Timeout | null = null;
  let waiting = 0;
  let closed = false;

  const drop = (dead: pg.Client): void => {
    if (client !== dead) return;
    client = null;
    void dead.end().catch(() => undefined);
    // Someone still waits: listen again soon, or their wake-ups would only come from polling.
    if (waiting > 0 && !closed && retry === null) {
      retry = setTimeout(() => {
        retry = null;
        void ensure();
      }, RECONNECT_MS);
      retry.unref();
    }
  };

  const ensure = (): Promise<void> => {
    if (closed || client !== null) return Promise.resolve();
    connecting ??= (async () => {
      const c = new pg.Client({ ...config, application_name: 'drawbridge listener' });
      c.on('error', () => drop(c));
      c.on('end', () => drop(c));
      c.on('notification', (n) => {
        if (n.channel === CHANNEL && n.payload !== undefined) changes.emit(n.payload);
      });
      client = c;
      try {
        await c.connect();
        await c.query(`LISTEN ${CHANNEL}`);
        if (closed) await c.end();
      } catch {
        drop(c);
      }
    })().finally(() => {
      connecting = null;
    });
    return connecting;
  };

  return {
    async changed(id, signal) {
      if (closed || signal.aborted) return;
      waiting += 1;
      try {
        void ensure();
        await once(changes, id, { signal }).catch(() => undefined);
      } finally {
        waiting -= 1;
      }
    },
    async close() {
      closed = true;
      if (retry !== null) clearTimeout(retry);
      await connecting;
      const c = client;
      client = null;
      await c?.end().catch(() => undefined);
    },
  };
}
