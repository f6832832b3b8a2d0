// The running gateway: validated config, journal, masking key and the
// brokered backend connections (opened on first use, so a missing secret only
// refuses the calls that need it). `openGateway` is what `serve` and the tests use.
// The config is swappable (safe reload, reload.ts): each call pins the config of its
// start and is decided, approved, executed and masked under it; a reload swaps only a
// valid config, and a connection it replaces closes once the calls holding it end.
// Every journal append made through the gateway (calls, approvals, grants, notices, config
// records) goes through one observed wrapper, so the operator's observers (metrics) see each one.

import { randomBytes, randomUUID } from 'node:crypto';
import type { Backend, BackendConnection, PoolStats } from '../backends/backend.js';
import { BACKENDS } from '../backends/index.js';
import { ConfigError, loadConfig, problemText } from '../config/load.js';
import type { GatewayConfig, LoadedConnection } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import type { ApprovalContext, Approver } from '../approval/approver.js';
import { notifierFor, type Notifier, type NotifyTuning } from '../approval/notify.js';
import { requestStateKeyOf, requestStateKeySource } from '../approval/request-state.js';
import type { DecisionListener, JournalStore, StateStore } from '../state/contract.js';
import { observedJournal, type JournalAppend } from '../state/timing.js';
import { openState } from '../state/open.js';
import { createConnectionHealth, type ConnectionHealth } from './connection-health.js';
import { createCallGate, type CallGate } from './drain.js';
import { callEndObservers, type CallEnd, type CallEndObserver } from './call-end.js';
import { boundProblems, connectionChanges, reloadRecord, restartOnlyChanges, sameConnection, type ReloadOutcome, type ReloadTrigger } from './reload.js';

/**
 * What one call works with: one config, the connections it declares and the approval settings it
 * sets, fixed for the call's whole life (gateway.pin), so a reload never hands a call half of two
 * configs. The journal, state, clocks and observers are the gateway's own, shared by every snapshot.
 */
export interface GatewaySnapshot {
  readonly config: GatewayConfig;
  /** The shared state (journal, approvals, grants); closed with the gateway. Its journal is the observed one (onJournalAppend). */
  readonly state: StateStore;
  /** state.journal. */
  readonly journal: JournalStore;
  readonly maskKey: Uint8Array;
  readonly environment: SecretEnvironment;
  readonly clock: () => Date;
  /** The approve stage's state: the out-of-band store (opened on first use), journal, clock, this config's settings. */
  readonly approval: ApprovalContext;
  /** approval.notify's deliveries; null when no target is configured. */
  readonly notifier: Notifier | null;
  /** The calls in flight, and the graceful shutdown's drain (drain.ts). */
  readonly calls: CallGate;
  /** Each connection's last known check (the last call that reached it), for /readyz. */
  readonly connectionHealth: ConnectionHealth;
  /** Brokered connections of this config, opened on first use. */
  connection(name: string): BackendConnection;
  /** The pipeline reports a call's end here (callTool); observers' failures are swallowed. */
  callEnded(event: CallEnd): void;
}

/** A snapshot held by one call: released when the call ends, so connections a reload replaced can close. */
export interface PinnedSnapshot {
  readonly gateway: GatewaySnapshot;
  release(): void;
}

/** A reload observer: every attempt's outcome, with the config in effect afterwards (the new one when applied). */
export type ReloadObserver = (outcome: ReloadOutcome, config: GatewayConfig) => void;

/** The running gateway: its members read the current config (a snapshot taken now); calls pin one for their whole life. */
export interface Gateway extends GatewaySnapshot {
  /** The current config and its connections, held until release(): callTool takes one at a call's start. */
  pin(): PinnedSnapshot;
  /**
   * Re-reads tools/ and policies/, validates them as openGateway does, and swaps the config only if
   * they are valid and change no restart-only setting (reload.ts). Journals the attempt (type `config`)
   * and tells the reload observers. Attempts run one at a time, in the order asked.
   */
  reload(by: ReloadTrigger): Promise<ReloadOutcome>;
  /** The last reload attempt's outcome (null: none since start), for /readyz. */
  readonly lastReload: ReloadOutcome | null;
  /** Subscribes to reload attempts (the log; metrics' label names follow the config's names). Returns the unsubscribe. */
  onReload(observer: ReloadObserver): () => void;
  /** The pools of the current config's connections opened so far whose backend reports one (BackendConnection.stats); opens nothing. */
  connectionStats(): ReadonlyMap<string, PoolStats>;
  /**
   * Runs `hook` when the gateway closes, after its connections and before its state: the last
   * moment the journal is complete and still open (serve's shutdown checkpoint signs its head then).
   */
  onClose(hook: () => Promise<void>): void;
  /**
   * Subscribes an observer to every call's end (the log line; later metrics and traces): pure data in,
   * called after the call's outcome is journaled. Returns the unsubscribe.
   */
  onCallEnd(observer: CallEndObserver): () => void;
  /** Subscribes an observer to every journal append made through the gateway, once it resolved; returns the unsubscribe. */
  onJournalAppend(observer: (append: JournalAppend) => void): () => void;
  /**
   * Subscribes to the approval decisions this process records: the state store's (votes through the
   * API or the console, expiries it marks) and the in-client prompts' no store holds. Returns the unsubscribe.
   */
  onApprovalDecided(listener: DecisionListener): () => void;
  close(): Promise<void>;
}

/** One brokered connection: its declaration, opened on first use, shared by every config that declares it the same way. */
interface Slot {
  readonly loaded: LoadedConnection;
  open: BackendConnection | null;
  closed: boolean;
  /** The generations that declare it: it closes once it is in none that is current or has a call in flight. */
  readonly holders: Set<Generation>;
}

/** One config as served: its snapshot, its connections, and how many calls hold it. */
interface Generation {
  readonly config: GatewayConfig;
  readonly slots: ReadonlyMap<string, Slot>;
  readonly snapshot: GatewaySnapshot;
  calls: number;
}

export function createGateway(options: {
  config: GatewayConfig;
  state: StateStore;
  maskKey: Uint8Array;
  environment: SecretEnvironment;
  clock?: () => Date;
  /** Tests inject a sleep and monotonic clock (virtual time), or the progress interval. */
  approvals?: { sleep?: (ms: number) => Promise<void>; monotonic?: () => number; progressEveryMs?: number };
  /** The approval adapters in the order they are asked: the default list (approval/adapters), unless a test brings its own. */
  approvers?: readonly Approver[];
  /** approval.notify's timing (tests: virtual time for the retries, a captured log). */
  notify?: NotifyTuning;
  /** The backends a reloaded config may use (as loadConfig takes them): the registry's unless a test brings its own. */
  backends?: readonly Backend[];
}): Gateway {
  const closing: Array<() => Promise<void>> = [];
  const callEnd = callEndObservers();
  const reloadObservers = new Set<ReloadObserver>();
  const clock = options.clock ?? (() => new Date());
  const appendObservers = new Set<(append: JournalAppend) => void>();
  const journal = observedJournal(options.state.journal, (append) => {
    for (const observer of appendObservers) {
      try {
        observer(append);
      } catch {
        // An observer (a metric) never fails the append it observes.
      }
    }
  });
  // The state as the rest of the gateway sees it (decisions by the API and the console journal through it too).
  const state: StateStore = { ...options.state, journal };
  const inClient = new Set<DecisionListener>();
  const backends = options.backends ?? BACKENDS;
  const first = options.config;
  const notifier = notifierFor(first.approval.notify, {
    environment: options.environment,
    journal,
    // Read when a pending request's time is up (the engine opens its approvals on first use).
    approvals: { get: (id, now) => options.state.approvals.get(id, now) },
    clock,
    consoleOrigin: null,
    ...options.notify,
  });
  // approval.request_state_key and approval.notify need a restart to change (reload.ts): one sealer for every config.
  const requestState = requestStateKeySource(
    first.approval.requestStateKey ? () => configuredRequestStateKey(first, options.environment) : null,
    () => options.state.approvals,
  );
  const approvalFor = (config: GatewayConfig): ApprovalContext => ({
    // The engine opens its approvals on first use: a gateway whose policy never asks for approval creates nothing for them.
    store: () => options.state.approvals,
    journal,
    clock,
    settings: config.approval,
    ...(options.approvers ? { approvers: options.approvers } : {}),
    ...(options.approvals?.sleep ? { sleep: options.approvals.sleep } : {}),
    ...(options.approvals?.monotonic ? { monotonic: options.approvals.monotonic } : {}),
    ...(options.approvals?.progressEveryMs ? { progressEveryMs: options.approvals.progressEveryMs } : {}),
    ...(notifier ? { notify: notifier.notify } : {}),
    decided: (result) => {
      for (const listener of inClient) {
        try {
          listener(result, 1);
        } catch {
          // A metric's failure is no failure of the decision it counts.
        }
      }
    },
    // approval.request_state_key when set (resolved on first use; openGateway checks it at start), else the state's shared key.
    requestState,
  });
  const calls = createCallGate();
  const connectionHealth = createConnectionHealth(first.connections.keys());
  /** Connections no longer in the current config, closed once no call holds a config that declares them. */
  const retiring = new Set<Slot>();

  const generation = (config: GatewayConfig, previous: Generation | null): Generation => {
    const slots = new Map<string, Slot>();
    for (const [name, loaded] of config.connections) {
      const kept = previous?.slots.get(name);
      slots.set(name, kept && sameConnection(kept.loaded, loaded) ? kept : { loaded, open: null, closed: false, holders: new Set() });
    }
    const snapshot: GatewaySnapshot = {
      config,
      state,
      journal,
      maskKey: options.maskKey,
      environment: options.environment,
      clock,
      approval: approvalFor(config),
      notifier,
      calls,
      connectionHealth,
      connection(name) {
        const slot = slots.get(name);
        if (!slot || slot.closed) throw new DrawbridgeError('connection.unknown', `There is no connection named "${name}".`);
        slot.open ??= slot.loaded.backend.connect(slot.loaded.declaration, options.environment);
        return slot.open;
      },
      callEnded: (event) => callEnd.notify(event),
    };
    const made: Generation = { config, slots, snapshot, calls: 0 };
    for (const slot of slots.values()) slot.holders.add(made);
    return made;
  };

  let current = generation(first, null);
  let lastReload: ReloadOutcome | null = null;
  let queue: Promise<unknown> = Promise.resolve();

  /**
   * Lets go of a past config once no call holds it (so a connection every config keeps does not
   * collect them all), then closes each retired connection no call can still reach.
   */
  const sweep = (past: Generation): void => {
    if (past === current || past.calls > 0) return;
    for (const slot of past.slots.values()) slot.holders.delete(past);
    for (const slot of retiring) {
      if (slot.holders.size > 0) continue;
      retiring.delete(slot);
      slot.closed = true;
      // A close that fails is the old connection's own: the new config is already serving.
      slot.open?.close().catch(() => undefined);
      slot.open = null;
    }
  };

  const attempt = async (by: ReloadTrigger): Promise<ReloadOutcome> => {
    const running = current.config;
    const at = clock().toISOString();
    const refused = async (
      code: Extract<ReloadOutcome, { result: 'refused' }>['code'],
      attempted: string | null,
      problems: readonly string[],
    ): Promise<ReloadOutcome> => {
      let outcome: ReloadOutcome = {
        result: 'refused',
        at,
        by,
        hash: running.hash,
        previousHash: running.hash,
        attempted,
        code,
        problems: boundProblems(problems),
      };
      try {
        await journal.append('config', randomUUID(), reloadRecord(outcome), clock());
      } catch (error) {
        const why = isDrawbridgeError(error) ? error.code : 'journal.unavailable';
        outcome = { ...outcome, problems: [...outcome.problems, `this refused attempt could not be journaled (${why})`] };
      }
      return outcome;
    };
    let next: GatewayConfig;
    try {
      next = loadConfig(running.dir, { backends });
    } catch (error) {
      if (error instanceof ConfigError) return refused('config.invalid', error.hash, error.problems.map(problemText));
      if (isDrawbridgeError(error)) return refused('config.invalid', null, [`${error.code}: ${error.message}`]);
      // A file that cannot be read (permissions, a directory named *.yaml) is the operator's problem, not a crash.
      return refused('config.invalid', null, [error instanceof Error ? error.message : String(error)]);
    }
    const restart = restartOnlyChanges(running, next);
    if (restart.length > 0) return refused('config.restart_required', next.hash, restart);
    const changes = connectionChanges(running.connections, next.connections);
    const applied: ReloadOutcome = { result: 'applied', at, by, hash: next.hash, previousHash: running.hash, attempted: next.hash, connections: changes };
    try {
      // Journaled before it takes effect: no call is decided under a config the journal does not name.
      await journal.append('config', randomUUID(), reloadRecord(applied), clock());
    } catch (error) {
      const failure = isDrawbridgeError(error) ? `${error.code}: ${error.message}` : 'journal.unavailable: the audit journal cannot be written';
      return {
        result: 'refused',
        at,
        by,
        hash: running.hash,
        previousHash: running.hash,
        attempted: next.hash,
        code: 'journal.unavailable',
        problems: [failure],
      };
    }
    const previous = current;
    current = generation(next, previous);
    for (const slot of previous.slots.values()) if (!slot.holders.has(current)) retiring.add(slot);
    connectionHealth.follow(next.connections.keys(), changes.replaced);
    sweep(previous);
    return applied;
  };

  return {
    get config() {
      return current.config;
    },
    state,
    journal,
    maskKey: options.maskKey,
    environment: options.environment,
    clock,
    get approval() {
      return current.snapshot.approval;
    },
    notifier,
    calls,
    connectionHealth,
    connection: (name) => current.snapshot.connection(name),
    pin() {
      const held = current;
      held.calls++;
      let released = false;
      return {
        gateway: held.snapshot,
        release() {
          if (released) return;
          released = true;
          held.calls--;
          sweep(held);
        },
      };
    },
    reload(by) {
      const run = queue.then(() => attempt(by));
      queue = run.then(
        (outcome) => {
          lastReload = outcome;
          const config = current.config;
          for (const observer of reloadObservers) {
            try {
              observer(outcome, config);
            } catch {
              // An observer's failure (a log sink) never undoes or fails the reload.
            }
          }
        },
        () => undefined,
      );
      return queue.then(() => run);
    },
    get lastReload() {
      return lastReload;
    },
    onReload(observer) {
      reloadObservers.add(observer);
      return () => reloadObservers.delete(observer);
    },
    connectionStats() {
      const stats = new Map<string, PoolStats>();
      for (const [name, slot] of current.slots) {
        const now = slot.open?.stats?.();
        if (now) stats.set(name, now);
      }
      return stats;
    },
    onClose(hook) {
      closing.push(hook);
    },
    onCallEnd: (observer) => callEnd.subscribe(observer),
    callEnded: (event) => callEnd.notify(event),
    onApprovalDecided(listener) {
      const entry: DecisionListener = (result, count) => listener(result, count);
      inClient.add(entry);
      const stopStore = options.state.approvals.onDecided(entry);
      return () => {
        inClient.delete(entry);
        stopStore();
      };
    },
    onJournalAppend(observer) {
      const entry = (append: JournalAppend): void => observer(append);
      appendObservers.add(entry);
      return () => void appendObservers.delete(entry);
    },
    async close() {
      const slots = new Set([...current.slots.values(), ...retiring]);
      retiring.clear();
      await Promise.allSettled(
        [...slots].map(async (slot) => {
          slot.closed = true;
          const open = slot.open;
          slot.open = null;
          await open?.close();
        }),
      );
      // A hook's failure is its own to report; the state closes regardless.
      for (const hook of closing.splice(0)) await hook().catch(() => undefined);
      // Deliveries still retrying get a moment to finish (and journal a failure) before the state closes; no longer.
      if (notifier) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([notifier.idle(), new Promise<void>((r) => (timer = setTimeout(r, NOTIFY_DRAIN_MS)))]);
        clearTimeout(timer);
      }
      await options.state.close();
    },
  };
}

/** approval.request_state_key's value as key material (config.secret_missing or config.secret_invalid when it cannot be). */
function configuredRequestStateKey(config: GatewayConfig, environment: SecretEnvironment): Uint8Array {
  const ref = config.approval.requestStateKey;
  if (!ref) throw new TypeError('approval.request_state_key is not set');
  return requestStateKeyOf(resolveSecret(ref, environment), ref.describe);
}

/** How long close() waits for notifications still being delivered. */
const NOTIFY_DRAIN_MS = 2_000;

export async function openGateway(options: {
  configDir: string;
  env?: Readonly<Record<string, string | undefined>>;
  clock?: () => Date;
  journalPath?: string;
  /** The backends tools may use: the registry's, unless a test brings its own list. */
  backends?: readonly Backend[];
  /** The approval adapters, in order: the default list, unless a test brings its own. */
  approvers?: readonly Approver[];
  /** approval.notify's timing (tests: virtual time for the retries, a captured log). */
  notify?: NotifyTuning;
  /** Wraps the journal every part of the gateway appends to (serve: DRAWBRIDGE_JOURNAL_TIMINGS for the benchmark). */
  wrapJournal?: (journal: JournalStore) => JournalStore;
}): Promise<Gateway> {
  const backends = options.backends ?? BACKENDS;
  const config = loadConfig(options.configDir, { backends });
  const environment: SecretEnvironment = { env: options.env ?? process.env, baseDir: config.dir };
  // What each backend must have before its first parse (PostgreSQL's parser).
  await Promise.all(backends.map((b) => b.init()));
  const maskKey = config.hashKey ? new TextEncoder().encode(resolveSecret(config.hashKey, environment)) : new Uint8Array(randomBytes(32));
  // A missing or short requestState key stops the gateway at start, not at the first in-client approval.
  if (config.approval.requestStateKey) configuredRequestStateKey(config, environment);
  const opened = await openState(config, { environment, ...(options.journalPath === undefined ? {} : { journalPath: options.journalPath }) });
  const wrap = options.wrapJournal;
  const state: StateStore = wrap ? { ...opened, journal: wrap(opened.journal) } : opened;
  return createGateway({
    config,
    state,
    maskKey,
    environment,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.approvers ? { approvers: options.approvers } : {}),
    ...(options.notify ? { notify: options.notify } : {}),
    backends,
  });
}
