// Safe reload, the parts that are pure: which settings a running gateway cannot take without a
// restart, which connections a new config replaces, what a reload attempt says (its outcome and
// its journal record, type `config`), and how problems are bounded. The swap itself (snapshots,
// retiring connections, serializing attempts) is the gateway's (gateway.ts).

import type { LoadedConnection, GatewayConfig } from '../config/schema.js';
import { boundText } from '../journal/bounded.js';

/** Who asked for a reload: SIGHUP, or POST /reload on the admin listener (with the operator's subject when a token proved one). */
export type ReloadTrigger = { readonly via: 'signal' } | { readonly via: 'admin'; readonly operator: string | null };

/** What a reload attempt did. `hash` is the config in effect afterwards, `previousHash` before; `attempted` is what was read. */
export type ReloadOutcome =
  | {
      readonly result: 'applied';
      readonly at: string;
      readonly by: ReloadTrigger;
      readonly hash: string;
      readonly previousHash: string;
      readonly attempted: string;
      /** Connections declared anew (changed or vanished: the old ones close once their calls end), added, removed. */
      readonly connections: { readonly replaced: readonly string[]; readonly added: readonly string[]; readonly removed: readonly string[] };
    }
  | {
      readonly result: 'refused';
      readonly at: string;
      readonly by: ReloadTrigger;
      readonly hash: string;
      readonly previousHash: string;
      /** Null when the files could not even be read (no tools/ or policies/ directory). */
      readonly attempted: string | null;
      /** config.invalid (the loader's problems), config.restart_required, or journal.unavailable. */
      readonly code: 'config.invalid' | 'config.restart_required' | 'journal.unavailable';
      readonly problems: readonly string[];
    };

/** At most this many problems are journaled and answered (the log line names how many more). */
export const MAX_PROBLEMS = 20;
const MAX_PROBLEM_CHARS = 500;

/** Problems bounded for the journal and the admin answer: the first MAX_PROBLEMS, each cut, plus a line saying how many more. */
export function boundProblems(problems: readonly string[]): string[] {
  const kept = problems.slice(0, MAX_PROBLEMS).map((p) => boundText(p.replace(/[\r\n]+/g, ' '), MAX_PROBLEM_CHARS));
  if (problems.length > MAX_PROBLEMS) kept.push(`… and ${problems.length - MAX_PROBLEMS} more (drawbridge check lists them all)`);
  return kept;
}

/**
 * Settings read once when the gateway starts; a reload that changes one is refused whole with
 * config.restart_required, and the running config is kept. Why each needs a restart:
 * - identity: the token verifier (MCP over HTTP, the console's sign-in, /readyz's operators) and a
 *   stdio gateway's caller are built at start; who the callers are must not switch under open sessions.
 * - state, journal.path, journal.sync, approval.store: the state is opened once; moving it mid-run
 *   would fork the journal's chain and lose pending approvals.
 * - journal.checkpoints: the checkpointer and its signing key are started with the gateway.
 * - journal.stream, tracing: the streamers (one per sink, holding its cursor) and the span exporter start with serve.
 * - masking.hash_key: the masking key is resolved at start; a new one would change every hash mid-run.
 * - approval.request_state_key, approval.notify: held 2026-07-28 requestStates are sealed with the
 *   key, and notifications still being retried belong to the notifier built at start.
 * - console, admin.listen, admin.metrics_on_main, log: listeners, routes and the logger are set up at start.
 * Everything else reloads: connections, tools, rules, masking rules, journal.readers, approval.wait,
 * elicitation_timeout, pending_ttl and approvers, admin.operators, ready_requires and drain_timeout.
 */
export function restartOnlyChanges(running: GatewayConfig, next: GatewayConfig): string[] {
  const settings: ReadonlyArray<readonly [string, (c: GatewayConfig) => unknown]> = [
    ['identity', (c) => c.identity],
    ['state', (c) => c.state],
    ['journal.path', (c) => c.journal.path],
    ['journal.sync', (c) => c.journal.sync],
    ['journal.checkpoints', (c) => c.journal.checkpoints],
    ['journal.stream', (c) => c.journal.stream],
    ['tracing', (c) => c.tracing],
    ['masking.hash_key', (c) => c.hashKey],
    ['approval.store', (c) => c.approval.store],
    ['approval.request_state_key', (c) => c.approval.requestStateKey],
    ['approval.notify', (c) => c.approval.notify],
    ['console', (c) => c.console],
    ['admin.listen', (c) => c.admin.listen],
    ['admin.metrics_on_main', (c) => c.admin.metricsOnMain],
    ['log', (c) => c.log],
  ];
  return settings.filter(([, of]) => stableJson(of(running)) !== stableJson(of(next))).map(([name]) => `${name} (kind: gateway) changed: restart to apply`);
}

/** How a reload treats each connection: a declaration that changed (or its backend) is a new connection. */
export function connectionChanges(
  running: ReadonlyMap<string, LoadedConnection>,
  next: ReadonlyMap<string, LoadedConnection>,
): { replaced: string[]; added: string[]; removed: string[] } {
  const replaced: string[] = [];
  const added: string[] = [];
  for (const [name, loaded] of next) {
    const old = running.get(name);
    if (!old) added.push(name);
    else if (!sameConnection(old, loaded)) replaced.push(name);
  }
  const removed = [...running.keys()].filter((name) => !next.has(name));
  return { replaced, added, removed };
}

export function sameConnection(a: LoadedConnection, b: LoadedConnection): boolean {
  return a.backend === b.backend && stableJson(a.declaration) === stableJson(b.declaration);
}

/** The journal record of a reload attempt (type `config`): hashes, result, bounded problems, who; never a secret (problems never quote values). */
export function reloadRecord(outcome: ReloadOutcome): Record<string, unknown> {
  return {
    event: 'reload',
    result: outcome.result,
    hash: outcome.hash,
    previousHash: outcome.previousHash,
    attempted: outcome.attempted,
    by: outcome.by.via === 'signal' ? { via: 'signal' } : { via: 'admin', operator: outcome.by.operator },
    ...(outcome.result === 'refused'
      ? { code: outcome.code, problems: [...outcome.problems] }
      : {
          problems: [],
          connections: { replaced: [...outcome.connections.replaced], added: [...outcome.connections.added], removed: [...outcome.connections.removed] },
        }),
  };
}

/** The journal record written when serve starts (type `config`, event start): the hash every call until the first reload is decided under. */
export function startRecord(config: GatewayConfig): Record<string, unknown> {
  return { event: 'start', result: 'applied', hash: config.hash, previousHash: null, attempted: config.hash, problems: [], by: { via: 'start' } };
}

/** A reload attempt as the operator's log has it (one line on stderr): applied is info, refused a warning; problems joined on the line. */
export function reloadLogEntry(outcome: ReloadOutcome): {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly fields: Readonly<Record<string, string | number>>;
} {
  const by = outcome.by.via === 'signal' ? { by: 'SIGHUP' } : { by: 'POST /reload', ...(outcome.by.operator ? { operator: outcome.by.operator } : {}) };
  if (outcome.result === 'applied') {
    const c = outcome.connections;
    const listed = (key: string, names: readonly string[]) => (names.length > 0 ? { [key]: names.join(',') } : {});
    return {
      level: 'info',
      msg: outcome.hash === outcome.previousHash ? 'config reloaded (unchanged)' : 'config reloaded',
      fields: {
        ...by,
        hash: outcome.hash,
        previousHash: outcome.previousHash,
        ...listed('replaced', c.replaced),
        ...listed('added', c.added),
        ...listed('removed', c.removed),
      },
    };
  }
  return {
    level: 'warn',
    msg: 'config reload refused, the running config is kept',
    fields: {
      ...by,
      code: outcome.code,
      hash: outcome.hash,
      attempted: outcome.attempted ?? 'unreadable',
      problemCount: outcome.problems.length,
      problems: outcome.problems.join(' | '),
    },
  };
}

/** JSON with object keys sorted: two settings compare equal whatever order the YAML wrote them in. */
function stableJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) =>
      v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map)
        ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
    ) ?? 'undefined'
  );
}
