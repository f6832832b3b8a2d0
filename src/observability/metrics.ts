// Prometheus metrics of the gateway (prom-client), in a registry of this gateway's own (not the
// global one, so two gateways in one process never share counters). Served as `GET /metrics`
// on the admin listener, and on the `serve --http` listener only with admin.metrics_on_main.
// Fed three ways: events the gateway reports (call ends, journal appends, approval decisions
// this process recorded), values read at scrape time (approvals pending and grants active from
// the state, bounded by a timeout and a short cache so a slow store never hangs a scrape; the
// backend pools; the open HTTP sessions), and prom-client's default process metrics.
// Label values are bounded: only names the config declares (tools, connections, masking rules)
// or fixed lists (decisions, statuses, stages, record types, detectors, error codes), else
// "other": an agent's made-up tool name must not create a time series. No SQL text, arguments
// or subjects: the events carry no data, and the subject is never a label.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { GatewayConfig } from '../config/schema.js';
import { DETECTOR_NAMES } from '../masking/detectors.js';
import { GATEWAY_MASK_RULES } from '../masking/masker.js';
import { CALL_STAGES, stageTotals, type CallEnd } from '../pipeline/call-end.js';
import type { Gateway } from '../pipeline/gateway.js';
import type { ApprovalCounts, ApprovalDecision } from '../state/contract.js';
import type { JournalAppend } from '../state/timing.js';

export const METRICS_PATH = '/metrics';

/** The names the config declares: the only label values for tools, connections and masking rules besides the fixed ones and "other". */
export interface DeclaredNames {
  readonly tools: Iterable<string>;
  readonly connections: Iterable<string>;
  readonly maskingRules?: Iterable<string>;
}

/** A config's declared names, as createMetrics and updateNames take them. */
export function declaredNames(config: GatewayConfig): DeclaredNames {
  return { tools: config.tools.keys(), connections: config.connections.keys(), maskingRules: config.masking.map((r) => r.name) };
}

export interface MetricsOptions {
  /** How long a scrape waits for the state's counts (approvals pending, grants active); default 1 s. */
  readonly stateTimeoutMs?: number;
  /** How long counts read from the state are reused by later scrapes; default 2 s (0: read on every scrape). */
  readonly stateCacheMs?: number;
  /** Milliseconds of a monotonic clock, for the cache (tests: virtual time). */
  readonly monotonic?: () => number;
}

export interface Metrics {
  readonly registry: Registry;
  /** The call-end observer (attach subscribes it; kept for callers that subscribe it themselves). */
  readonly call: (event: CallEnd) => void;
  /**
   * Subscribes to the gateway's call ends, journal appends and approval decisions, and reads its
   * state and backend pools at scrape time. Once per gateway; returns the detach.
   */
  attach(gateway: Gateway): () => void;
  /** drawbridge_http_sessions from now on: `count` is read at scrape time (the `serve --http` listener's open sessions). */
  watchSessions(count: () => number): void;
  /** Replaces the declared names (a configuration reload): series already created stay, new ones use the new names. */
  updateNames(names: DeclaredNames): void;
  /** Answers GET/HEAD /metrics (Prometheus text); false (nothing written) for any other path. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

const DECISIONS: readonly ApprovalDecision[] = ['approved', 'denied', 'expired'];
const DETECTORS: ReadonlySet<string> = new Set<string>([...DETECTOR_NAMES, 'pattern']);

/** The one place the declared names live: every label function reads them from here. */
interface Declared {
  readonly tools: ReadonlySet<string>;
  readonly connections: ReadonlySet<string>;
  readonly rules: ReadonlySet<string>;
}

function declare(names: DeclaredNames): Declared {
  return { tools: new Set(names.tools), connections: new Set(names.connections), rules: new Set([...(names.maskingRules ?? []), ...GATEWAY_MASK_RULES]) };
}

/** `names`: the config's declared names (declaredNames(config)), the only label values besides fixed lists and "other". */
export function createMetrics(names: DeclaredNames, options: MetricsOptions = {}): Metrics {
  let declared = declare(names);
  const known = (set: ReadonlySet<string>, name: string | null): string => (name !== null && set.has(name) ? name : 'other');
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const calls = new Counter({
    name: 'drawbridge_calls_total',
    help: 'Tool calls that ended, by tool, connection, policy decision (none: ended before one) and status.',
    labelNames: ['tool', 'connection', 'decision', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'drawbridge_call_duration_seconds',
    help: 'Time a call spent in each stage (parse, decide, approval, journal, execute, mask), in all (total), and added by the gateway (added).',
    labelNames: ['tool', 'stage'] as const,
    // From a parsed statement (ms) to a human approval (minutes).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const masked = new Counter({
    name: 'drawbridge_masked_values_total',
    help: 'Values masking replaced in answers, by tool, masking rule and detector (none: a column rule or a backend field mask; pattern: a rule pattern).',
    labelNames: ['tool', 'rule', 'detector'] as const,
    registers: [registry],
  });
  const backendErrors = new Counter({
    name: 'drawbridge_backend_errors_total',
    help: 'Calls that ended in a backend fault (backend.* error codes), by connection and code.',
    labelNames: ['connection', 'code'] as const,
    registers: [registry],
  });
  const appendSeconds = new Histogram({
    name: 'drawbridge_journal_append_seconds',
    help: 'Time from a journal append to its commit (or failure), by record type (call, outcome, approval, grant).',
    labelNames: ['type'] as const,
    // A batched commit without fsync (0.1 ms) to a store at its busy timeout (seconds).
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const appendErrors = new Counter({
    name: 'drawbridge_journal_append_errors_total',
    help: 'Journal appends that failed (the call or approval step they belonged to was refused), by record type.',
    labelNames: ['type'] as const,
    registers: [registry],
  });

  const call = (event: CallEnd): void => {
    const tool = known(declared.tools, event.tool);
    const connection = known(declared.connections, event.connection);
    calls.inc({ tool, connection, decision: event.decision?.effect ?? 'none', status: event.status });
    const totals = stageTotals(event.stages);
    for (const stage of CALL_STAGES) {
      const ms = totals[stage];
      if (ms !== undefined) duration.observe({ tool, stage }, ms / 1000);
    }
    duration.observe({ tool, stage: 'total' }, event.durationMs / 1000);
    // What the gateway itself added to the call: everything but the backend's work and the wait for a human.
    const added = event.durationMs - (totals.execute ?? 0) - (totals.approval ?? 0);
    duration.observe({ tool, stage: 'added' }, Math.max(0, added) / 1000);
    for (const m of event.maskedBy) {
      const detector = m.detector === null ? 'none' : DETECTORS.has(m.detector) ? m.detector : 'other';
      masked.inc({ tool, rule: known(declared.rules, m.rule), detector }, m.count);
    }
    // A fault of the backend a declared connection names (unreachable, auth, timeout…): codes are the catalog's, a bounded list.
    if (event.error?.kind === 'fault' && event.error.code.startsWith('backend.') && event.connection !== null) {
      backendErrors.inc({ connection: known(declared.connections, event.connection), code: event.error.code });
    }
  };

  const journaled = (append: JournalAppend): void => {
    appendSeconds.observe({ type: append.type }, append.ms / 1000);
    if (!append.ok) appendErrors.inc({ type: append.type });
  };

  // Read at scrape time, registered by attach: the state's counts and the backend pools.
  const reloads = new Counter({
    name: 'drawbridge_config_reloads_total',
    help: 'Reload attempts (SIGHUP, POST /reload), by result: applied, or refused with the running config kept.',
    labelNames: ['result'] as const,
    registers: [],
  });
  const decided = new Counter({
    name: 'drawbridge_approvals_decided_total',
    help: 'Approval requests decided as recorded by this process: approved or denied by a vote cast through it, expired when it marked them.',
    labelNames: ['result'] as const,
    registers: [],
  });
  const pending = new Gauge({ name: 'drawbridge_approvals_pending', help: 'Approval requests pending now, in the whole state (all replicas).', registers: [] });
  const grants = new Gauge({
    name: 'drawbridge_grants_active',
    help: 'Grants active now (not revoked, not expired), in the whole state (all replicas).',
    registers: [],
  });
  const stateUp = new Gauge({
    name: 'drawbridge_state_counts_up',
    help: '1 when this scrape read approvals pending and grants active from the state in time; 0 when it failed or timed out (those gauges are left out).',
    registers: [],
  });
  let readCounts: (() => Promise<ApprovalCounts>) | null = null;
  const stateTimeoutMs = options.stateTimeoutMs ?? 1_000;
  const stateCacheMs = options.stateCacheMs ?? 2_000;
  const monotonic = options.monotonic ?? (() => performance.now());
  let cached: { readonly at: number; readonly counts: ApprovalCounts } | null = null;
  /** A read still running: later scrapes wait for it rather than pile up queries on a slow store. */
  let inFlight: Promise<ApprovalCounts> | null = null;

  /** The state's counts, or null when they cannot be read within the timeout. Never rejects. */
  const stateCounts = async (): Promise<ApprovalCounts | null> => {
    if (readCounts === null) return null;
    if (cached !== null && monotonic() - cached.at < stateCacheMs) return cached.counts;
    const read = readCounts;
    inFlight ??= read().finally(() => {
      inFlight = null;
    });
    const reading = inFlight.then(
      (counts) => {
        cached = { at: monotonic(), counts };
        return counts;
      },
      () => null,
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), stateTimeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([reading, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Before each scrape: the state's gauges present with fresh values, or absent (and state_counts_up 0). */
  const refreshState = async (): Promise<void> => {
    if (readCounts === null) return;
    const counts = await stateCounts();
    stateUp.set(counts === null ? 0 : 1);
    for (const [name, gauge, value] of [
      ['drawbridge_approvals_pending', pending, counts?.pending],
      ['drawbridge_grants_active', grants, counts?.activeGrants],
    ] as const) {
      if (value === undefined) {
        registry.removeSingleMetric(name);
        continue;
      }
      gauge.set(value);
      if (registry.getSingleMetric(name) === undefined) registry.registerMetric(gauge);
    }
  };

  return {
    registry,
    call,
    attach(gateway) {
      const approvals = gateway.state.approvals;
      readCounts = () => approvals.counts(gateway.clock());
      if (registry.getSingleMetric('drawbridge_approvals_decided_total') === undefined) registry.registerMetric(decided);
      if (registry.getSingleMetric('drawbridge_state_counts_up') === undefined) registry.registerMetric(stateUp);
      if (registry.getSingleMetric('drawbridge_config_reloads_total') === undefined) registry.registerMetric(reloads);
      for (const result of ['applied', 'refused'] as const) reloads.inc({ result }, 0);
      // The series exist from the start, so rate() sees the first decision.
      for (const result of DECISIONS) decided.inc({ result }, 0);
      if (registry.getSingleMetric('drawbridge_backend_pool_connections') === undefined) {
        new Gauge({
          name: 'drawbridge_backend_pool_connections',
          help: 'Backend connection pools now, by connection: connections open (total, idle ones included), idle, and calls waiting for one.',
          labelNames: ['connection', 'state'] as const,
          registers: [registry],
          collect() {
            this.reset();
            for (const [name, stats] of gateway.connectionStats()) {
              const connection = known(declared.connections, name);
              this.set({ connection, state: 'total' }, stats.total);
              this.set({ connection, state: 'idle' }, stats.idle);
              this.set({ connection, state: 'waiting' }, stats.waiting);
            }
          },
        });
      }
      const detach = [
        gateway.onCallEnd(call),
        gateway.onJournalAppend(journaled),
        gateway.onApprovalDecided((result, count) => decided.inc({ result }, count)),
        gateway.onReload((outcome, config) => {
          reloads.inc({ result: outcome.result });
          // The bounded label values follow the config in effect: a tool a reload added gets its own series.
          if (outcome.result === 'applied') declared = declare(declaredNames(config));
        }),
      ];
      return () => {
        for (const stop of detach) stop();
        readCounts = null;
        cached = null;
        // What was read from this gateway goes with it; the counters keep what they counted.
        for (const name of ['drawbridge_approvals_pending', 'drawbridge_grants_active', 'drawbridge_state_counts_up', 'drawbridge_backend_pool_connections']) {
          registry.removeSingleMetric(name);
        }
      };
    },
    watchSessions(count) {
      registry.removeSingleMetric('drawbridge_http_sessions');
      new Gauge({
        name: 'drawbridge_http_sessions',
        help: 'MCP sessions (2025-11-25, Mcp-Session-Id) open now on the serve --http listener.',
        registers: [registry],
        collect() {
          this.set(count());
        },
      });
    },
    updateNames(next) {
      declared = declare(next);
    },
    async serve(req, res, url) {
      if (url.pathname !== METRICS_PATH) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return true;
      }
      await refreshState();
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
}
