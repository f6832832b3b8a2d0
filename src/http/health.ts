// Health and readiness for load balancers and orchestrators: /healthz (the process serves) and
// /readyz (the gateway can take calls: its config is loaded, its journal could take an append
// now, and it is not shutting down). Served on the `serve --http` listener, before MCP auth and
// after its Host/Origin checks, and on the optional admin listener (admin.listen), which stdio
// deployments use too. Both are unauthenticated and say only `ok` / `not ready`; a bearer token
// of an admin.operators group (verified with the gateway's own verifier) gets JSON per check.
// A backend being down does not make the gateway unready (its tools fail closed on their own) unless
// admin.ready_requires names its connection. The config check carries the hash of the config in
// effect and the last reload attempt: a refused reload leaves the gateway ready (the old config serves).

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDrawbridgeError } from '../errors.js';
import type { TokenVerifier } from '../identity/oidc.js';
import type { ConnectionCheck } from '../pipeline/connection-health.js';
import type { Gateway } from '../pipeline/gateway.js';
import type { Metrics } from '../observability/metrics.js';
import type { SinkStatus } from '../journal/stream/streamer.js';
import type { ReloadEndpoint } from './reload.js';
import { hostPolicy, hostRefusal } from './hosts.js';

export const HEALTH_PATHS: readonly string[] = ['/healthz', '/readyz'];

/** One check of /readyz, as an operator sees it. */
export type ReadinessCheck = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * The config check: the config in effect (its hash) and the last reload attempt. A refused reload
 * leaves the gateway ready: the previous, valid config still serves.
 */
export interface ConfigCheck {
  readonly ok: true;
  readonly hash: string;
  readonly lastReload: {
    readonly result: 'applied' | 'refused';
    readonly at: string;
    readonly attempted: string | null;
    readonly code?: string;
    readonly problems: number;
  } | null;
}

export interface Readiness {
  readonly ready: boolean;
  readonly checks: {
    readonly config: ConfigCheck;
    readonly journal: ReadinessCheck;
    readonly serving: ReadinessCheck;
    /** Each connection's last known check; `required`: named in admin.ready_requires (failing makes the gateway unready). */
    readonly connections: Readonly<Record<string, ConnectionCheck & { readonly required: boolean }>>;
    /**
     * Each audit stream sink (journal.stream), when any is configured: backlog and last error. Informational:
     * a sink that is down never makes the gateway unready (calls never wait for the stream; the backlog catches up).
     */
    readonly streams?: Readonly<Record<string, Omit<SinkStatus, 'sink'>>>;
  };
}

export interface Health {
  /** Readiness goes false for good: the gateway is draining (SIGTERM/SIGINT). */
  shutDown(): void;
  readiness(): Promise<Readiness>;
  /** Answers /healthz and /readyz; false (nothing written) for any other path. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

/** How long /readyz waits for the journal's probe: a state that does not answer is not ready. */
const PROBE_TIMEOUT_MS = 2_000;

/**
 * `verifier`: the gateway's OIDC verifier, which proves operators; null (local identities): nobody sees details.
 * `streams`: the audit streams' status, shown in the details (never part of the verdict).
 */
export function createHealth(gateway: Gateway, verifier: TokenVerifier | null, streams: (() => Promise<readonly SinkStatus[]>) | null = null): Health {
  let shuttingDown = false;

  const readiness = async (): Promise<Readiness> => {
    const journal = await probeJournal(gateway);
    const serving: ReadinessCheck = shuttingDown ? { ok: false, reason: 'shutting down: new calls are refused' } : { ok: true };
    // The config was validated before anything listens, and a reload swaps only a valid one: always ok, with what serves.
    const last = gateway.lastReload;
    const config: ConfigCheck = {
      ok: true,
      hash: gateway.config.hash,
      lastReload:
        last === null
          ? null
          : {
              result: last.result,
              at: last.at,
              attempted: last.attempted,
              ...(last.result === 'refused' ? { code: last.code } : {}),
              problems: last.result === 'refused' ? last.problems.length : 0,
            },
    };
    const required = new Set(gateway.config.admin.readyRequires);
    const connections = Object.fromEntries(
      Object.entries(gateway.connectionHealth.snapshot()).map(([name, check]) => [name, { ...check, required: required.has(name) }]),
    );
    const backendsUp = Object.values(connections).every((c) => !c.required || c.state !== 'failing');
    const sinks = streams === null ? null : await streams();
    return {
      ready: journal.ok && serving.ok && config.ok && backendsUp,
      checks: {
        config,
        journal,
        serving,
        connections,
        ...(sinks === null ? {} : { streams: Object.fromEntries(sinks.map(({ sink, ...status }) => [sink, status])) }),
      },
    };
  };

  const isOperator = async (req: IncomingMessage): Promise<boolean> => {
    const header = req.headers.authorization;
    const token = header !== undefined && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : '';
    // Read per request: admin.operators reloads like the rest.
    const operators = new Set(gateway.config.admin.operators);
    if (verifier === null || operators.size === 0 || token === '') return false;
    try {
      const verified = await verifier.verify(token);
      return verified.identity.groups.some((g) => operators.has(g));
    } catch (error) {
      // A bad or expired token is just not an operator's: the caller still gets the status.
      if (isDrawbridgeError(error)) return false;
      throw error;
    }
  };

  return {
    shutDown() {
      shuttingDown = true;
    },
    readiness,
    async serve(req, res, url) {
      if (!HEALTH_PATHS.includes(url.pathname)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return true;
      }
      const head = req.method === 'HEAD';
      if (url.pathname === '/healthz') {
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n', head);
        return true;
      }
      const [state, operator] = await Promise.all([readiness(), isOperator(req)]);
      const status = state.ready ? 200 : 503;
      if (operator) send(res, status, 'application/json', `${JSON.stringify(state)}\n`, head);
      else send(res, status, 'text/plain; charset=utf-8', state.ready ? 'ok\n' : 'not ready\n', head);
      return true;
    },
  };
}

function send(res: ServerResponse, status: number, type: string, body: string, head: boolean): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : body);
}

async function probeJournal(gateway: Gateway): Promise<ReadinessCheck> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the state did not answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([gateway.journal.probe(), late]);
    return { ok: true };
  } catch (error) {
    // journal.unavailable's message never names where the state lives (state/contract.ts), so operators may read it.
    return { ok: false, reason: isDrawbridgeError(error) ? `${error.code}: ${error.message}` : (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export interface AdminListener {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The admin listener (admin.listen): /healthz, /readyz, (given metrics) /metrics and (given the endpoint) POST /reload (reload.ts), nothing of MCP.
 * /metrics is unauthenticated here: the listener is meant for a loopback or private address.
 * On a loopback bind the Host/Origin checks of the HTTP listener apply (DNS rebinding); elsewhere a proxy owns Host.
 */
export async function serveAdmin(
  health: Health,
  listen: { readonly host: string; readonly port: number },
  metrics: Metrics | null = null,
  reload: ReloadEndpoint | null = null,
): Promise<AdminListener> {
  let policy: ReturnType<typeof hostPolicy> | null = null;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const refused = policy === null ? 'not listening yet' : hostRefusal(policy, req);
    if (refused) {
      send(res, 403, 'text/plain; charset=utf-8', `${refused}\n`, false);
      return;
    }
    const served = health
      .serve(req, res, url)
      .then(async (done) => done || (metrics !== null && (await metrics.serve(req, res, url))))
      .then(async (done) => done || (reload !== null && (await reload.serve(req, res, url))));
    served.then(
      (served) => {
        if (!served) send(res, 404, 'text/plain; charset=utf-8', 'not found\n', false);
      },
      () => {
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n', false);
        else res.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  const url = `http://${host}:${port}`;
  policy = hostPolicy(listen.host, port, `${url}/`);
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
