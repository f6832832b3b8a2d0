// The audit stream (journal.stream): one streamer per sink in the serving process reads the
// journal after the sink's durable cursor, in seq order, sends a batch, and moves the cursor only
// once the sink acknowledged it. So delivery is in order and at least once: a batch whose answer
// was lost, or whose cursor update failed, is sent again; nothing is ever skipped. Failures back
// off exponentially (capped) and are retried for as long as it takes. Calls never wait for it:
// the pipeline only wakes it (onCallEnd) after a call's records are committed, and a short poll
// picks up what other processes and replicas append. Of the processes sharing a state, one holds
// each sink's claim (StreamCursorStore.claim) and streams it; the others stand by and take over
// when it stops or dies. stop() lets a batch in flight finish (briefly), then gives the claim up.

import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { JournalStore, StreamCursorStore } from '../../state/contract.js';
import { isDrawbridgeError } from '../../errors.js';
import { streamRecord, type Sink } from './sinks.js';

export type StreamerRole = 'starting' | 'streaming' | 'standby' | 'stopped';

/** One sink's state, for /readyz's details, the metrics and the operator. */
export interface SinkStatus {
  readonly sink: string;
  readonly type: Sink['type'];
  /** streaming: this process holds the sink's claim; standby: another process does. */
  readonly role: StreamerRole;
  /** The last seq the sink acknowledged (durable). */
  readonly cursor: number;
  /** The journal's last seq. */
  readonly head: number;
  /** Records not yet acknowledged: head - cursor. */
  readonly backlog: number;
  /** The last failure (cleared by the next delivery), or null. */
  readonly lastError: { readonly at: string; readonly message: string } | null;
  /** When the cursor last moved (by any process), or null. */
  readonly lastDeliveredAt: string | null;
}

/** What the metrics count (metrics.ts). */
export interface StreamEvents {
  delivered(sink: string, records: number): void;
  failed(sink: string): void;
}

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 60_000 };

export interface StreamerOptions {
  readonly sink: Sink;
  readonly journal: Pick<JournalStore, 'readFrom' | 'head'>;
  readonly cursors: StreamCursorStore;
  readonly clock: () => Date;
  /** Who claims the sink: unique per streaming process. */
  readonly holder: string;
  /** How often an idle streamer looks for records appended elsewhere (default 1 s); wake() looks at once. */
  readonly pollMs?: number;
  readonly backoff?: BackoffPolicy;
  /** The wait between failed attempts (default a real, unref'd timer); injectable so tests run retries in virtual time. */
  readonly sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly events?: StreamEvents;
  /** A failure after a run of successes, and the recovery, are logged here (not each retry). */
  readonly log?: (level: 'warn' | 'info', message: string) => void;
}

export interface Streamer {
  readonly name: string;
  start(): void;
  /** Records were appended: look now instead of at the next poll. Never waits. */
  wake(): void;
  /** Resolves once the sink acknowledged everything up to the head as of this call (tests, the CLI). */
  flushed(): Promise<void>;
  status(): Promise<SinkStatus>;
  /** Stops after the batch in flight (at most STOP_GRACE_MS), gives the claim up; the cursor stays where the sink acknowledged. */
  stop(): Promise<void>;
}

/** How long stop() lets a batch in flight finish before abandoning it (it is sent again later). */
const STOP_GRACE_MS = 5_000;

/** A holder id for this process: host, pid and a random part (two gateways in one process are two holders). */
export function streamHolder(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

function realSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}

function reason(error: unknown): string {
  return isDrawbridgeError(error) ? `${error.code}: ${error.message}` : error instanceof Error ? error.message : String(error);
}

export function createStreamer(options: StreamerOptions): Streamer {
  const { sink, journal, cursors, clock, holder } = options;
  const pollMs = options.pollMs ?? 1_000;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const sleep = options.sleep ?? realSleep;
  const log = options.log ?? (() => undefined);
  let role: StreamerRole = 'starting';
  let lastError: SinkStatus['lastError'] = null;
  /** The cursor as this streamer last read or moved it; -1 before the first read. */
  let known = -1;
  let running: Promise<void> | null = null;
  let stopping = false;
  const stopWaits = new AbortController();
  const stopSends = new AbortController();
  let wakeIdle: (() => void) | null = null;
  let woken = false;
  const waiters: Array<{ readonly target: number; readonly resolve: () => void; readonly reject: (e: Error) => void }> = [];

  const settle = (seq: number): void => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i];
      if (w !== undefined && w.target <= seq) {
        waiters.splice(i, 1);
        w.resolve();
      }
    }
  };

  /** Waits a poll interval, or less when woken or stopped. */
  const idle = (): Promise<void> => {
    if (woken || stopping) {
      woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, pollMs);
      timer.unref();
      stopWaits.signal.addEventListener('abort', done, { once: true });
      wakeIdle = done;
      function done(): void {
        clearTimeout(timer);
        stopWaits.signal.removeEventListener('abort', done);
        wakeIdle = null;
        woken = false;
        resolve();
      }
    });
  };

  /** One step: claim, read after the cursor, send, advance. What to wait for before the next. */
  async function step(): Promise<'again' | 'idle'> {
    if (!(await cursors.claim(sink.name, holder, clock()))) {
      role = 'standby';
      return 'idle';
    }
    role = 'streaming';
    const { seq } = await cursors.cursor(sink.name);
    known = seq;
    const rows = await journal.readFrom(seq, sink.batch);
    if (rows.length === 0) {
      // A cursor past the head means this is not the journal the cursor was moved in (a restored
      // or replaced file): records up to the cursor would never be sent. Said, never guessed around.
      const head = (await journal.head()).seq;
      if (head < seq) throw new Error(`the cursor (${seq}) is beyond the journal's head (${head}): was the journal replaced or restored?`);
      settle(seq);
      return 'idle';
    }
    const records = rows.map(streamRecord);
    const sent = await sink.send(records, stopSends.signal);
    if (!sent.ok) throw new Error(sent.error);
    const last = records[records.length - 1]?.seq ?? seq;
    await cursors.advance(sink.name, last, clock());
    known = last;
    options.events?.delivered(sink.name, records.length);
    if (lastError !== null && sent.warning === null) log('info', `audit stream ${sink.name}: delivering again (up to record ${last})`);
    lastError = sent.warning === null ? null : { at: clock().toISOString(), message: sent.warning };
    settle(last);
    return 'again';
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      let next: 'again' | 'idle';
      try {
        next = await step();
        failures = 0;
      } catch (error) {
        if (stopping) break;
        failures += 1;
        const message = reason(error);
        if (lastError === null) log('warn', `audit stream ${sink.name}: delivery failed, retrying with backoff: ${message}`);
        lastError = { at: clock().toISOString(), message };
        options.events?.failed(sink.name);
        await sleep(Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(failures - 1, 30)), stopWaits.signal);
        continue;
      }
      if (next === 'idle') await idle();
    }
  }

  return {
    name: sink.name,
    start() {
      running ??= run();
    },
    wake() {
      woken = true;
      wakeIdle?.();
    },
    async flushed() {
      const target = (await journal.head()).seq;
      if (known < 0) known = (await cursors.cursor(sink.name)).seq;
      if (known >= target) return;
      if (stopping) throw new Error(`audit stream ${sink.name} is stopped`);
      await new Promise<void>((resolve, reject) => waiters.push({ target, resolve, reject }));
    },
    async status() {
      let cursor = Math.max(known, 0);
      let head = cursor;
      let updatedAt: string | null = null;
      let error = lastError;
      try {
        const [c, h] = await Promise.all([cursors.cursor(sink.name), journal.head()]);
        cursor = c.seq;
        head = h.seq;
        updatedAt = c.updatedAt;
      } catch (e) {
        error = { at: clock().toISOString(), message: reason(e) };
      }
      return { sink: sink.name, type: sink.type, role, cursor, head, backlog: Math.max(0, head - cursor), lastError: error, lastDeliveredAt: updatedAt };
    },
    async stop() {
      if (stopping) return running ?? undefined;
      stopping = true;
      stopWaits.abort();
      if (running !== null) {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_GRACE_MS)));
        await Promise.race([running, grace]);
        clearTimeout(timer);
        stopSends.abort();
        await running;
      }
      role = 'stopped';
      for (const w of waiters.splice(0)) w.reject(new Error(`audit stream ${sink.name} stopped`));
      await cursors.release(sink.name, holder).catch(() => undefined);
    },
  };
}
