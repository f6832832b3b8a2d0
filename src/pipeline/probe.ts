// `drawbridge check --connect`: reaches every declared connection the way the
// gateway would — secrets resolved inside the backend, the backend's own
// connect (authentication, host-key pins, start-up probes) — without running
// anything an agent could ask for, and reports one line per connection: ok,
// WARN (it works but a wall is weaker than it should be, e.g. a superuser
// role) or FAIL (with the catalog error code and what to do). Each connection
// is time-bound, so a dead host cannot hang the command, and every connection
// opened here is closed before the function returns. Nothing here names a
// backend: each one implements BackendConnection.probe in its own folder.
//
// CLI wiring: `const reports = await checkConnections(config, { env: process.env });
// process.stdout.write(formatConnectionReports(reports)); exit connectionCheckFailed(reports) ? 1 : 0`.

import type { BackendConnection, ProbeFacts, ProbeResult } from '../backends/backend.js';
import type { GatewayConfig, LoadedConnection } from '../config/schema.js';
import type { SecretEnvironment } from '../config/secrets.js';
import { formatDuration } from '../config/units.js';
import { DrawbridgeError, toDrawbridgeError, type ErrorCode } from '../errors.js';

/** `warning`: usable, but see the warnings; `failed`: calls on this connection would fail. */
type ConnectionStatus = 'ok' | 'warning' | 'failed';

export interface ConnectionReport {
  readonly name: string;
  /** The connection's `type:` (postgres, kubernetes, ssh, …). */
  readonly type: string;
  readonly status: ConnectionStatus;
  /** One human line: what was reached and as whom, or the error's message. Never a secret. */
  readonly line: string;
  readonly warnings: readonly string[];
  /** Why it failed, with the catalog code and what to do; null unless status is `failed`. */
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly hint: string } | null;
  /** Backend facts for machine-readable output (versions, role, identity); empty on failure. */
  readonly facts: ProbeFacts;
  readonly durationMs: number;
}

export interface CheckConnectionsOptions {
  /** Where secret references resolve (`process.env` in the CLI). Relative secret files resolve against the config directory. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** How long one connection may take before it is reported as timed out (default 10 s). */
  readonly timeoutMs?: number;
  /** Check only these connections (default: all, in declaration order). An unknown name is `connection.unknown`. */
  readonly only?: readonly string[];
  /** Connections checked at the same time (default 4). */
  readonly concurrency?: number;
}

const DEFAULT_CHECK_TIMEOUT_MS = 10_000;
/** How long closing a connection may take after its check; a pool still connecting to a dead host is abandoned after this. */
const CLOSE_GRACE_MS = 2_000;

/** Reaches each declared connection and reports on it; never throws for a connection that fails (that is its report). */
export async function checkConnections(config: GatewayConfig, options: CheckConnectionsOptions): Promise<ConnectionReport[]> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new TypeError(`timeoutMs must be positive, got ${timeoutMs}`);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  const environment: SecretEnvironment = { env: options.env, baseDir: config.dir };
  let selected: LoadedConnection[] = [...config.connections.values()];
  if (options.only) {
    const unknown = options.only.filter((name) => !config.connections.has(name));
    if (unknown.length > 0) {
      throw new DrawbridgeError(
        'connection.unknown',
        `No connection named ${unknown.map((n) => `"${n}"`).join(', ')} (declared: ${[...config.connections.keys()].join(', ') || 'none'}).`,
      );
    }
    selected = selected.filter((c) => options.only?.includes(c.declaration.name));
  }
  const reports: ConnectionReport[] = new Array(selected.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < selected.length) {
      const index = next++;
      reports[index] = await checkOne(selected[index] as LoadedConnection, environment, timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, selected.length) }, worker));
  return reports;
}

/** True when any connection failed: `check --connect` then exits 1. Warnings alone do not fail it. */
export function connectionCheckFailed(reports: readonly ConnectionReport[]): boolean {
  return reports.some((r) => r.status === 'failed');
}

const TAGS: Record<ConnectionStatus, string> = { ok: 'ok  ', warning: 'WARN', failed: 'FAIL' };

/**
 * One line per connection (`ok`, `WARN` or `FAIL`, name, type, what was found),
 * each warning and each failure's "what to do" on an indented line below it,
 * then a one-line tally.
 */
export function formatConnectionReports(reports: readonly ConnectionReport[]): string {
  if (reports.length === 0) return 'No connections declared: nothing to check.\n';
  const nameWidth = Math.max(...reports.map((r) => r.name.length));
  const typeWidth = Math.max(...reports.map((r) => r.type.length));
  const lines: string[] = [];
  for (const r of reports) {
    lines.push(`${TAGS[r.status]}  ${r.name.padEnd(nameWidth)}  ${r.type.padEnd(typeWidth)}  ${r.line}`);
    const indent = ' '.repeat(6);
    for (const w of r.warnings) lines.push(`${indent}warning: ${w}`);
    if (r.error) lines.push(`${indent}what to do: ${r.error.hint}`);
  }
  const count = (s: ConnectionStatus) => reports.filter((r) => r.status === s).length;
  const parts = [
    `${count('ok')} ok`,
    ...(count('warning') ? [`${count('warning')} with warnings`] : []),
    ...(count('failed') ? [`${count('failed')} failed`] : []),
  ];
  lines.push(`${reports.length} connection${reports.length === 1 ? '' : 's'} checked: ${parts.join(', ')}.`);
  return `${lines.join('\n')}\n`;
}

async function checkOne(loaded: LoadedConnection, environment: SecretEnvironment, timeoutMs: number): Promise<ConnectionReport> {
  const { name, type } = loaded.declaration;
  const started = performance.now();
  const opened: { connection?: BackendConnection } = {};
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const result = await withTimeout(
      async (): Promise<ProbeResult> => {
        // Secrets are resolved inside connect (a missing one throws config.secret_missing here).
        const connection = loaded.backend.connect(loaded.declaration, environment);
        opened.connection = connection;
        return connection.probe({ timeoutMs });
      },
      timeoutMs,
      () =>
        new DrawbridgeError('backend.timeout', `No answer from connection ${name} within ${formatDuration(timeoutMs)}; the check gave up.`, {
          hint: 'Check that the host is up and reachable from the gateway host (address, port, firewall), then check again.',
        }),
    );
    const failure = result.failure ?? null;
    return {
      name,
      type,
      status: failure ? 'failed' : result.warnings.length > 0 ? 'warning' : 'ok',
      line: failure ? `${result.summary} — ${failure.code}: ${failure.message}` : result.summary,
      warnings: [...result.warnings],
      error: failure ? { code: failure.code, message: failure.message, hint: failure.hint } : null,
      facts: result.facts,
      durationMs: elapsed(),
    };
  } catch (thrown) {
    const error = toDrawbridgeError(thrown);
    return {
      name,
      type,
      status: 'failed',
      line: `${error.code}: ${error.message}`,
      warnings: [],
      error: { code: error.code, message: error.message, hint: error.hint },
      facts: {},
      durationMs: elapsed(),
    };
  } finally {
    if (opened.connection) await closeWithin(opened.connection, CLOSE_GRACE_MS);
  }
}

/** Runs `task`, rejecting with `onTimeout()` after `ms`; a late rejection of the task is swallowed. */
function withTimeout<T>(task: () => Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    task().then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Closes a connection, waiting at most `ms` (a pool still connecting to a dead host finishes on its own). */
async function closeWithin(connection: BackendConnection, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  try {
    await Promise.race([connection.close().catch(() => undefined), gaveUp]);
  } finally {
    clearTimeout(timer);
  }
}
