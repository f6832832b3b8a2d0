// The running gateway: validated config, journal, masking key and the
// brokered backend connections (opened on first use, so a missing secret only
// refuses the calls that need it). `openGateway` is what `serve` and the tests use.
// Every journal append made through the gateway (calls, approvals, grants, notices) goes
// through one observed wrapper, so the operator's observers (metrics) see each one.

import { randomBytes } from 'node:crypto';
import type { Backend, BackendConnection, PoolStats } from '../backends/backend.js';
import { BACKENDS } from '../backends/index.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { DrawbridgeError } from '../errors.js';
import type { ApprovalContext, Approver } from '../approval/approver.js';
import { notifierFor, type Notifier, type NotifyTuning } from '../approval/notify.js';
import { requestStateKeyOf, requestStateKeySource } from '../approval/request-state.js';
import type { DecisionListener, JournalStore, StateStore } from '../state/contract.js';
import { observedJournal, type JournalAppend } from '../state/timing.js';
import { openState } from '../state/open.js';
import { createConnectionHealth, type ConnectionHealth } from './connection-health.js';
import { createCallGate, type CallGate } from './drain.js';
import { callEndObservers, type CallEnd, type CallEndObserver } from './call-end.js';

export interface Gateway {
  readonly config: GatewayConfig;
  /** The shared state (journal, approvals, grants); closed with the gateway. Its journal is the observed one (onJournalAppend). */
  readonly state: StateStore;
  /** state.journal. */
  readonly journal: JournalStore;
  readonly maskKey: Uint8Array;
  readonly environment: SecretEnvironment;
  readonly clock: () => Date;
  /** The approve stage's state: the out-of-band store (opened on first use), journal, clock, settings. */
  readonly approval: ApprovalContext;
  /** approval.notify's deliveries; null when no target is configured. */
  readonly notifier: Notifier | null;
  /** The calls in flight, and the graceful shutdown's drain (drain.ts). */
  readonly calls: CallGate;
  /** Each connection's last known check (the last call that reached it), for /readyz. */
  readonly connectionHealth: ConnectionHealth;
  /** Brokered connections, opened on first use. */
  connection(name: string): BackendConnection;
  /** The pools of the connections opened so far whose backend reports one (BackendConnection.stats); opens nothing. */
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
  /** The pipeline reports a call's end here (callTool); observers' failures are swallowed. */
  callEnded(event: CallEnd): void;
  /** Subscribes an observer to every journal append made through the gateway, once it resolved; returns the unsubscribe. */
  onJournalAppend(observer: (append: JournalAppend) => void): () => void;
  /**
   * Subscribes to the approval decisions this process records: the state store's (votes through the
   * API or the console, expiries it marks) and the in-client prompts' no store holds. Returns the unsubscribe.
   */
  onApprovalDecided(listener: DecisionListener): () => void;
  close(): Promise<void>;
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
}): Gateway {
  const open = new Map<string, BackendConnection>();
  const closing: Array<() => Promise<void>> = [];
  const callEnd = callEndObservers();
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
  const notifier = notifierFor(options.config.approval.notify, {
    environment: options.environment,
    journal,
    // Read when a pending request's time is up (the engine opens its approvals on first use).
    approvals: { get: (id, now) => options.state.approvals.get(id, now) },
    clock,
    consoleOrigin: null,
    ...options.notify,
  });
  const approval: ApprovalContext = {
    // The engine opens its approvals on first use: a gateway whose policy never asks for approval creates nothing for them.
    store: () => options.state.approvals,
    journal,
    clock,
    settings: options.config.approval,
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
    requestState: requestStateKeySource(
      options.config.approval.requestStateKey ? () => configuredRequestStateKey(options.config, options.environment) : null,
      () => options.state.approvals,
    ),
  };
  return {
    config: options.config,
    state,
    journal,
    maskKey: options.maskKey,
    environment: options.environment,
    clock,
    approval,
    notifier,
    calls: createCallGate(),
    connectionHealth: createConnectionHealth(options.config.connections.keys()),
    connection(name) {
      const existing = open.get(name);
      if (existing) return existing;
      const loaded = options.config.connections.get(name);
      if (!loaded) throw new DrawbridgeError('connection.unknown', `There is no connection named "${name}".`);
      const created = loaded.backend.connect(loaded.declaration, options.environment);
      open.set(name, created);
      return created;
    },
    connectionStats() {
      const stats = new Map<string, PoolStats>();
      for (const [name, connection] of open) {
        const now = connection.stats?.();
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
      await Promise.allSettled([...open.values()].map((c) => c.close()));
      open.clear();
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
}): Promise<Gateway> {
  const backends = options.backends ?? BACKENDS;
  const config = loadConfig(options.configDir, { backends });
  const environment: SecretEnvironment = { env: options.env ?? process.env, baseDir: config.dir };
  // What each backend must have before its first parse (PostgreSQL's parser).
  await Promise.all(backends.map((b) => b.init()));
  const maskKey = config.hashKey ? new TextEncoder().encode(resolveSecret(config.hashKey, environment)) : new Uint8Array(randomBytes(32));
  // A missing or short requestState key stops the gateway at start, not at the first in-client approval.
  if (config.approval.requestStateKey) configuredRequestStateKey(config, environment);
  const state = await openState(config, { environment, ...(options.journalPath === undefined ? {} : { journalPath: options.journalPath }) });
  return createGateway({
    config,
    state,
    maskKey,
    environment,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.approvers ? { approvers: options.approvers } : {}),
    ...(options.notify ? { notify: options.notify } : {}),
  });
}
