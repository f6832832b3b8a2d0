// The serving commands: `drawbridge serve` (MCP over stdio, or Streamable
// HTTP with OIDC bearer tokens) and the client side of a remote gateway,
// `drawbridge connect` (a stdio bridge) and `drawbridge token`. Arguments,
// checks and messages only; the gateway, the HTTP server and the bridge do
// the work. Serving over stdio uses the process's own stdin and stdout (the
// MCP transport), so these commands are tested as a child process.

import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import { localIdentityProvider, type Identity, type IdentityProvider } from '../identity/identity.js';
import { createOidcVerifier, tokenIdentityProvider } from '../identity/oidc.js';
import { openGateway, type Gateway } from '../pipeline/gateway.js';
import { obtainAccessToken, runBridge, type BridgeOptions } from '../bridge/connect.js';
import { createHealth, serveAdmin, type AdminListener, type Health } from '../http/health.js';
import { serveHttp, type HttpGateway } from '../http/server.js';
import { formatDuration } from '../config/units.js';
import type { TokenVerifier } from '../identity/oidc.js';
import type { CheckpointKeys } from '../journal/checkpoint.js';
import { checkpointKeys, realInterval, startCheckpointer } from '../journal/checkpoint-file.js';
import { SERVER_VERSION, serveStdio } from '../server.js';
import { stateLabel } from '../state/open.js';
import { timedJournal } from '../state/timing.js';
import { installProcessGuard } from '../server-guard.js';
import { reloadLogEntry, startRecord } from '../pipeline/reload.js';
import { createReloadEndpoint } from '../http/reload.js';
import type { JournalStore } from '../state/contract.js';
import { createLogger, type Logger } from '../observability/log.js';
import { createMetrics, declaredNames, type Metrics } from '../observability/metrics.js';
import { startStreams, type Streams } from '../journal/stream/streams.js';
import type { CommandArgs } from './commands.js';
import { configDir, fail, unresolvedReason, type CliIo } from './io.js';
import { signInOptions } from './remote.js';

export async function serve({ values }: CommandArgs<'serve'>, io: CliIo): Promise<number> {
  if (values['public-url'] !== undefined && values.http === undefined) fail('--public-url applies to --http only.');
  const listen = values.http === undefined ? null : parseListen(values.http);
  // SIGHUP is taken from the start (its default would end the process); one that comes before the gateway serves reloads once it does.
  let reloadNow: (() => void) | null = null;
  let hupEarly = false;
  io.onReload?.(() => {
    if (reloadNow) reloadNow();
    else hupEarly = true;
  });
  const timings = journalTimings(io);
  const opened = await openServingGateway(configDir(values.config, io), io, timings?.wrap);
  if (timings) opened.onClose(timings.write);
  const logger = serveLogger(opened, io);
  const gateway = await withCheckpoints(opened, logger);
  for (const w of gateway.config.warnings) logger.log('warn', `config: ${w}`);
  gateway.onCallEnd(logger.call);
  const metrics = createMetrics(declaredNames(gateway.config));
  metrics.attach(gateway);
  gateway.onReload((outcome) => {
    const entry = reloadLogEntry(outcome);
    logger.log(entry.level, entry.msg, entry.fields);
  });
  await journalStart(gateway, logger);
  reloadNow = () => void gateway.reload({ via: 'signal' });
  if (hupEarly) reloadNow();
  const streams = withStreams(gateway, metrics, logger);
  await withTracing(gateway, logger);
  const served = { gateway, metrics, streams, logger };
  return listen === null ? serveOverStdio(served, io) : serveOverHttp(served, listen, values['public-url'], io);
}

/**
 * journal.stream: a streamer per sink, woken after every call (its records are committed by then)
 * and stopped when the gateway closes, after the batch in flight. None configured: null. A call
 * never waits for a streamer, and a failing sink is only logged, counted and shown in /readyz.
 */
function withStreams(gateway: Gateway, metrics: Metrics, logger: Logger): Streams | null {
  const sinks = gateway.config.journal.stream;
  if (sinks.length === 0) return null;
  const streams = startStreams({
    sinks,
    state: gateway.state,
    environment: gateway.environment,
    clock: gateway.clock,
    registry: metrics.registry,
    log: (level, message) => logger.log(level, message),
  });
  // A call's records and a reload's config record are streamed without waiting for the next poll.
  gateway.onCallEnd(() => streams.wake());
  gateway.onReload(() => streams.wake());
  gateway.onClose(() => streams.stop());
  return streams;
}

/**
 * The journal's `config` record of this start (event start, the config's hash): which config decided
 * the calls until the first reload. A journal that cannot take it is reported; calls find out on their own.
 */
async function journalStart(gateway: Gateway, logger: Logger): Promise<void> {
  try {
    await gateway.journal.append('config', randomUUID(), startRecord(gateway.config), gateway.clock());
  } catch (error) {
    logger.log('warn', `the start's config record (hash ${gateway.config.hash}) could not be journaled: ${errorLine(error)}`);
  }
  const how = gateway.config.admin.listen ? 'SIGHUP or POST /reload on the admin listener (drawbridge reload)' : 'SIGHUP';
  logger.log('info', `config ${gateway.config.hash}; ${how} reloads tools/ and policies/`, { hash: gateway.config.hash });
}

function errorLine(error: unknown): string {
  return isDrawbridgeError(error) ? `${error.code}: ${firstLine(error.message)}` : firstLine(String(error));
}

/** admin.listen's listener (/healthz, /readyz, /metrics), or null when none is configured; a bind that fails stops the gateway from starting. */
async function startAdmin({ gateway, metrics, logger }: Served, health: Health): Promise<AdminListener | null> {
  const given = gateway.config.admin.listen;
  if (given === null) return null;
  const { host, port } = parseListen(given, 'admin.listen');
  try {
    const admin = await serveAdmin(health, { host, port }, metrics, createReloadEndpoint(gateway, operatorVerifier(gateway.config)));
    logger.log('info', `admin listener (/healthz, /readyz, /metrics) at ${admin.url}`, { url: admin.url });
    return admin;
  } catch (error) {
    await gateway.close();
    return fail(`drawbridge: cannot listen on ${given} (admin.listen): ${(error as Error).message}`, 1);
  }
}

/**
 * The graceful shutdown's first half (SIGTERM/SIGINT): /readyz goes false first, new calls are
 * refused (gateway.shutting_down), calls waiting for a human answer "call again" (their request
 * stays pending), and running calls get up to admin.drain_timeout to finish. Then the caller closes
 * the listeners and the gateway (pools, the closing checkpoint, the state).
 */
async function drain({ gateway, logger }: Served, health: Health): Promise<void> {
  health.shutDown();
  const ms = gateway.config.admin.drainTimeoutMs;
  const running = gateway.calls.inFlight;
  logger.log('info', `shutting down: not ready, refusing new calls; ${running} call(s) in flight get up to ${formatDuration(ms)}`, { inFlight: running });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  const outcome = await gateway.calls.drain(deadline);
  clearTimeout(timer);
  // A call leaves the gate when callTool returns; its answer is handed to the transport in the promise
  // callbacks right after. They all run before the next turn of the event loop: only then may the transport close.
  await new Promise<void>((resolve) => setImmediate(resolve));
  if (outcome === 'timed out') {
    logger.log('warn', `${gateway.calls.inFlight} call(s) still running after ${formatDuration(ms)} (admin.drain_timeout) are cut off`);
  }
}

/** The verifier that proves /readyz's operators: the gateway's own OIDC verifier, none for local identities. */
function operatorVerifier(config: GatewayConfig): TokenVerifier | null {
  return config.identity?.mode === 'oidc' ? createOidcVerifier(config.identity) : null;
}

/**
 * With journal.checkpoints: checkpoints on the interval while serving and once more when the
 * gateway closes (after its last journal append, before its state closes). A key that is missing
 * or not Ed25519 stops the gateway from starting: serving without the checkpoints the operator
 * asked for would silently give up truncation detection.
 */
async function withCheckpoints(gateway: Gateway, logger: Logger): Promise<Gateway> {
  const settings = gateway.config.journal.checkpoints;
  if (settings === null) return gateway;
  let keys: CheckpointKeys;
  try {
    keys = checkpointKeys(settings, gateway.environment);
  } catch (error) {
    await gateway.close();
    throw error;
  }
  const checkpointer = startCheckpointer({
    journal: gateway.journal,
    config: settings,
    keys,
    clock: gateway.clock,
    timer: realInterval,
    report: (error) => logger.log('warn', 'checkpoint not written', { reason: isDrawbridgeError(error) ? `${error.code}: ${error.message}` : String(error) }),
  });
  gateway.onClose(() => checkpointer.stop());
  return gateway;
}

/**
 * With tracing configured: a span per call exported to tracing.endpoint, flushed and stopped when the
 * gateway closes (after the drain, so the calls in flight are in it). Without: nothing is created.
 * A header reference that cannot be resolved stops the gateway from starting, like any other secret.
 */
async function withTracing(gateway: Gateway, logger: Logger): Promise<void> {
  const config = gateway.config.tracing;
  if (config === null) return;
  const headers: Record<string, string> = {};
  try {
    for (const [name, ref] of Object.entries(config.headers)) headers[name] = resolveSecret(ref, gateway.environment);
  } catch (error) {
    await gateway.close();
    const why = isDrawbridgeError(error) ? unresolvedReason(error.message) : String(error);
    return fail(`drawbridge: cannot serve: a tracing header cannot be resolved (tracing.headers): ${why}`, 1);
  }
  // Loaded only when configured: the OpenTelemetry SDK takes a few hundred milliseconds to import, which a gateway without tracing never pays.
  const { createTracing } = await import('../observability/tracing.js');
  const tracing = createTracing({ config, headers, version: SERVER_VERSION, report: (level, message) => logger.log(level, message) });
  gateway.onCallEnd(tracing.call);
  gateway.onClose(() => tracing.shutdown());
  logger.log('info', `tracing: spans exported to ${new URL(config.endpoint).origin} (sample ratio ${config.sampleRatio})`);
}

/**
 * The gateway of a config, or a one-line refusal to start when its state cannot be opened
 * (state.url unresolved or unreachable, a schema newer than this build, a journal file that
 * cannot be written): a gateway never serves without the journal every call's intent goes to.
 */
async function openServingGateway(dir: string, io: CliIo, wrapJournal?: (journal: JournalStore) => JournalStore): Promise<Gateway> {
  const config = loadConfig(dir);
  const cannot = (reason: string): never => fail(`drawbridge: cannot serve: the state (${stateLabel(config)}) cannot be opened: ${reason}`, 1);
  if (config.state.engine !== 'sqlite') {
    try {
      resolveSecret(config.state.url, { env: io.env, baseDir: config.dir });
    } catch (error) {
      if (!isDrawbridgeError(error)) throw error;
      // resolveSecret speaks of "this connection": say that it is state.url (by reference, never by value).
      cannot(`state.url cannot be resolved (${unresolvedReason(error.message)})`);
    }
  }
  try {
    return await openGateway({ configDir: dir, env: io.env, ...(wrapJournal ? { wrapJournal } : {}) });
  } catch (error) {
    if (isDrawbridgeError(error) && STATE_CODES.has(error.code)) {
      return cannot(`${error.code}: ${firstLine(error.message)}`);
    }
    throw error;
  }
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

/**
 * DRAWBRIDGE_JOURNAL_TIMINGS=FILE: how long calls waited on the journal, written to FILE as JSON
 * when the gateway closes (state/timing.ts). For the benchmark (bench/throughput.ts), which
 * cannot look inside the server process; unset, the journal is not wrapped at all.
 */
function journalTimings(io: CliIo): { wrap: (journal: JournalStore) => JournalStore; write: () => Promise<void> } | null {
  const file = io.env['DRAWBRIDGE_JOURNAL_TIMINGS'];
  if (file === undefined || file === '') return null;
  let timed: ReturnType<typeof timedJournal> | null = null;
  return {
    wrap(journal) {
      timed = timedJournal(journal);
      return timed.journal;
    },
    async write() {
      if (timed === null) return;
      try {
        writeFileSync(file, `${JSON.stringify(timed.timings())}\n`);
      } catch (error) {
        io.stderr.write(`drawbridge: warning: journal timings not written to ${file}: ${(error as Error).message}\n`);
      }
    },
  };
}

/**
 * The operator's log on stderr (log: level, format, subjects): one line per call, the config's
 * warnings and the checkpointer's; JSON unless stderr is a terminal or log.format says otherwise.
 * Every line serve writes while serving goes through it (startup, reloads, shutdown), so a log
 * shipper reading JSON never meets a line of another shape; only a refusal to start is plain text.
 */
function serveLogger(gateway: Gateway, io: CliIo): Logger {
  const isTTY = 'isTTY' in io.stderr && io.stderr.isTTY === true;
  return createLogger({ config: gateway.config.log, write: (line) => void io.stderr.write(line), isTTY, clock: gateway.clock });
}

/** The last resort while serving: a fault nobody foresaw is logged and the gateway keeps serving. */
function guardProcess(io: CliIo): void {
  installProcessGuard({ write: (line) => void io.stderr.write(line), debug: io.env['DRAWBRIDGE_DEBUG'] === '1' });
}

function untilStopped(io: CliIo): Promise<void> {
  return new Promise<void>((done) => io.onStop(done));
}

interface Listen {
  readonly host: string;
  readonly port: number;
  /** As given on the command line, for messages. */
  readonly given: string;
}

/** What both transports serve: the gateway, its metrics and streams, and the operator's log every line of serve goes to. */
interface Served {
  readonly gateway: Gateway;
  readonly metrics: Metrics;
  readonly streams: Streams | null;
  readonly logger: Logger;
}

async function serveOverHttp(served: Served, listen: Listen, publicUrl: string | undefined, io: CliIo): Promise<number> {
  const { gateway, metrics, streams, logger } = served;
  const identity = gateway.config.identity;
  if (identity?.mode !== 'oidc') {
    await gateway.close();
    return fail(
      'serve --http needs OIDC identities (policies, kind: gateway, identity: { mode: oidc, issuer, audience }): ' +
        'over HTTP every caller proves who they are with a token from your OpenID provider.',
      1,
    );
  }
  guardProcess(io);
  const stopped = untilStopped(io);
  const c = gateway.config.console;
  let secret: string | undefined;
  try {
    secret = c.enabled && c.clientSecret !== null ? resolveSecret(c.clientSecret, gateway.environment) : undefined;
  } catch (error) {
    await gateway.close();
    const why = isDrawbridgeError(error) ? error.message : String(error);
    return fail(`drawbridge: the console's client secret cannot be read (console.client_secret): ${why}`, 1);
  }
  const verifier = createOidcVerifier(identity);
  const health = createHealth(gateway, verifier, streams && streams.status);
  let http: HttpGateway;
  try {
    http = await serveHttp(gateway, verifier, {
      host: listen.host,
      port: listen.port,
      health,
      // The main listener faces agents: the gateway's metrics are the operator's, there only when asked for.
      ...(gateway.config.admin.metricsOnMain ? { metrics } : {}),
      ...(publicUrl !== undefined ? { publicUrl } : {}),
      ...(c.enabled ? { console: { clientId: c.clientId, ...(secret !== undefined ? { clientSecret: secret } : {}) } } : {}),
    });
  } catch (error) {
    await gateway.close();
    return fail(`drawbridge: cannot listen on ${listen.given}: ${(error as Error).message}`, 1);
  }
  // Notifications link to the console page of a request, under the public URL's origin.
  gateway.notifier?.linkTo(http.resource);
  metrics.watchSessions(() => http.openSessions());
  if (http.resource !== identity.audience) {
    logger.log(
      'warn',
      `tokens must be issued for audience ${identity.audience}, but this server advertises the resource ${http.resource}; ` +
        `MCP clients ask the provider for the advertised one. Set audience to ${http.resource} (or --public-url to ${identity.audience}).`,
    );
  }
  logger.log(
    'info',
    `serving ${gateway.config.tools.size} tool(s) over Streamable HTTP at ${http.url} ` +
      `(resource ${http.resource}; tokens from ${identity.issuer}); journal ${stateLabel(gateway.config)}`,
    { url: http.url },
  );
  if (gateway.config.console.enabled) logger.log('info', `approvers sign in to the console at ${new URL(http.resource).origin}/console/`);
  const admin = await startAdmin(served, health).catch(async (error: unknown) => {
    await http.close();
    throw error;
  });
  await stopped;
  await drain(served, health);
  await http.close();
  await admin?.close();
  await gateway.close();
  return 0;
}

async function serveOverStdio(served: Served, io: CliIo): Promise<number> {
  const { gateway, streams, logger } = served;
  let caller: { identities: IdentityProvider; who: string };
  try {
    caller = await stdioIdentities(gateway.config, io.env);
  } catch (error) {
    await gateway.close();
    if (isDrawbridgeError(error)) return fail(`drawbridge: cannot serve: ${error.code}: ${error.message}\n${error.hint}`, 1);
    throw error;
  }
  const health = createHealth(gateway, operatorVerifier(gateway.config), streams && streams.status);
  const admin = await startAdmin(served, health);
  guardProcess(io);
  const stopped = untilStopped(io);
  const serving = serveStdio(gateway, caller.identities);
  logger.log('info', `serving ${gateway.config.tools.size} tool(s) over stdio as ${caller.who}; journal ${stateLabel(gateway.config)}`);
  await Promise.race([stopped, new Promise<void>((done) => io.stdin.on('end', () => done()))]);
  // Answers still go out on stdout while the calls in flight finish; then the transport closes.
  await drain(served, health);
  await serving.close().catch(() => undefined);
  await admin?.close();
  await gateway.close();
  return 0;
}

/** `HOST:PORT` (IPv6 in brackets) for --http or admin.listen. */
function parseListen(value: string, what = '--http'): Listen {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[2]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) return fail(`${what} takes HOST:PORT, e.g. 127.0.0.1:8080 (got "${value}").`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port, given: value };
}

/**
 * The stdio caller: declared by the operator (local), or proven by an OIDC
 * access token in the environment, verified before the server starts.
 */
async function stdioIdentities(config: GatewayConfig, env: NodeJS.ProcessEnv): Promise<{ identities: IdentityProvider; who: string }> {
  const identity = config.identity;
  if (identity === null) {
    return {
      identities: {
        identify: (): Identity => {
          throw new DrawbridgeError('identity.missing', 'No caller identity is configured.');
        },
        scopes: () => null,
      },
      who: 'nobody (every call will be refused)',
    };
  }
  if (identity.mode === 'local') return { identities: localIdentityProvider(identity), who: `${identity.subject} [local]` };
  const token = env[identity.token_env]?.trim();
  if (!token) {
    throw new DrawbridgeError('identity.missing', `OIDC identities: set ${identity.token_env} to your access token for ${identity.audience}.`, {
      hint:
        `For example: ${identity.token_env}=$(drawbridge token ${identity.audience} --client-id CLIENT) drawbridge serve. ` +
        'Or run the gateway over HTTP and use drawbridge connect.',
    });
  }
  const { provider, verified } = await tokenIdentityProvider(createOidcVerifier(identity), token);
  const groups = verified.identity.groups.join(', ') || 'no groups';
  const until = new Date(verified.expiresAt * 1000).toISOString();
  return {
    identities: provider,
    who: `${verified.identity.subject} [oidc ${verified.identity.principal} ${identity.issuer}; ${groups}] until ${until}`,
  };
}

/** Options shared by `connect` and `token`: which gateway, which OAuth client, where tokens are cached. */
function bridgeOptions({ values, positionals }: CommandArgs<'connect' | 'token'>, command: 'connect' | 'token', io: CliIo): BridgeOptions {
  const usage = `drawbridge ${command} URL [--client-id ID] [--scope S] [--token-cache FILE | --no-token-cache]`;
  if (positionals.length !== 1) fail(`${command} takes the gateway's MCP URL, e.g. https://drawbridge.example.com/mcp.\nUsage: ${usage}`);
  return signInOptions(positionals[0] as string, values, io, command, `\nUsage: ${usage}`);
}

export async function connect(args: CommandArgs<'connect'>, io: CliIo): Promise<number> {
  const options = bridgeOptions(args, 'connect', io);
  const controller = new AbortController();
  io.onStop(() => controller.abort());
  try {
    await runBridge({ ...options, signal: controller.signal }, { stdin: io.stdin, stdout: io.stdout });
    return 0;
  } catch (error) {
    if (controller.signal.aborted) return 0;
    return fail(`drawbridge connect: ${isDrawbridgeError(error) ? `${error.code}: ${error.message}` : (error as Error).message}`, 1);
  }
}

export async function token(args: CommandArgs<'token'>, io: CliIo): Promise<number> {
  const options = bridgeOptions(args, 'token', io);
  try {
    const source = await obtainAccessToken(options);
    io.stdout.write(`${await source.current()}\n`);
    return 0;
  } catch (error) {
    return fail(`drawbridge token: ${isDrawbridgeError(error) ? `${error.code}: ${error.message}` : (error as Error).message}`, 1);
  }
}

/** The codes a state engine refuses to open with. */
const STATE_CODES: ReadonlySet<string> = new Set(['journal.unavailable', 'approval.store_unavailable', 'state.schema_version']);
