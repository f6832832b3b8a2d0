// Streamable HTTP serving: the gateway as an OAuth 2.1 resource server (MCP
// authorization spec). One node:http server holds
//   - the MCP endpoint (the public URL's path, /mcp by default), both protocol
//     eras: a 2025-11-25 request (initialize, Mcp-Session-Id) goes through the
//     SDK's NodeStreamableHTTPServerTransport, one stateful session (and one MCP
//     Server) per initialize, so elicitation/create can reach the client while a
//     call waits; a 2026-07-28 request (its _meta envelope; the SDK's
//     isLegacyRequest decides) goes to the SDK's per-request handler
//     (createMcpHandler, modern only), one MCP Server per request;
//   - the RFC 9728 protected resource metadata, at the path-inserted and the
//     root well-known URLs;
//   - the approvals API under /api/v1/ (api.ts), with the same bearer tokens;
//   - the web console under /console/ (src/console/), when given console options;
//   - /healthz and /readyz (health.ts), unauthenticated, after the Host/Origin checks.
//   - /metrics (observability/metrics.ts) likewise, only when given (admin.metrics_on_main).
// Every MCP request must carry `Authorization: Bearer <token>`, verified on
// every request (including the SSE stream and DELETE) before it is routed to
// either era, after the Host/Origin checks (hosts.ts) that apply to both; a
// session stays bound to the issuer and subject of the token that opened it,
// a 2026-07-28 request is authorised by its own token alone. The pipeline sees
// only the verified Identity, never the token.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import { createMcpHandler, isInitializeRequest, isLegacyRequest, type AuthInfo, type McpHttpHandler } from '@modelcontextprotocol/server';
import { CONSOLE_PREFIX, createConsole, sendConsoleRefusal, type Console, type ConsoleOptions } from '../console/console.js';
import { DrawbridgeError } from '../errors.js';
import type { TokenVerifier } from '../identity/oidc.js';
import type { Gateway } from '../pipeline/gateway.js';
import { createMcpServer, mcpServerFactory } from '../server.js';
import { API_PREFIX, sendHostRefusal, serveApi } from './api.js';
import { SCOPES_META_KEY } from '../pipeline/answer.js';
import { authenticate, insufficientScopeChallenge, requestIdentityProvider, type AuthContext, type AuthOutcome } from './auth.js';
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from './body.js';
import { createHealth, type Health } from './health.js';
import type { Metrics } from '../observability/metrics.js';
import { hostPolicy, hostRefusal } from './hosts.js';
import { locateResource, protectedResourceMetadata } from './metadata.js';
import { sendJsonRpcError } from './reply.js';
import { ownerOf, sameOwner, SessionTable } from './sessions.js';

export interface HttpServeOptions {
  readonly host: string;
  /** 0 picks a free port (HttpGateway.port reports it). */
  readonly port: number;
  /** The public URL of the MCP endpoint (behind a TLS proxy); default http://host:port/mcp. Also the resource identifier. */
  readonly publicUrl?: string;
  /** Open sessions at most; an initialize beyond is refused with 503. Default 1000. */
  readonly maxSessions?: number;
  /** A session with no request in flight for this long is closed. Default 30 minutes. */
  readonly sessionIdleMs?: number;
  /** Largest accepted POST body; larger is refused with 413. Default 4 MiB. */
  readonly maxBodyBytes?: number;
  /** The web console under /console/: its OAuth client and session settings; absent: no console. */
  readonly console?: ConsoleOptions;
  /** /healthz and /readyz (health.ts); absent: a readiness of this gateway and verifier of its own. */
  readonly health?: Health;
  /** /metrics on this listener (admin.metrics_on_main); absent: not served here (the listener faces agents). */
  readonly metrics?: Metrics;
}

export interface HttpGateway {
  /** Where the MCP endpoint listens locally (http://host:port/path). */
  readonly url: string;
  /** The resource identifier advertised (RFC 9728): the public URL of the MCP endpoint. */
  readonly resource: string;
  readonly port: number;
  /** What /readyz answers from: serve marks it shutting down before it drains. */
  readonly health: Health;
  /** MCP sessions (2025-11-25) open now, for drawbridge_http_sessions. */
  openSessions(): number;
  close(): Promise<void>;
}

const DEFAULT_MAX_SESSIONS = 1000;
const DEFAULT_SESSION_IDLE_MS = 30 * 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Revisions are dates: this one and later ones have no sessions (per-request envelope). */
const FIRST_MODERN_REVISION = '2026-07-28';

const urlHost = (host: string): string => (host.includes(':') && !host.startsWith('[') ? `[${host}]` : host);

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`${name} must be a positive number`);
  return value;
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** What a request is served with: set once the server listens (null before). */
interface State {
  readonly location: ReturnType<typeof locateResource>;
  readonly hosts: ReturnType<typeof hostPolicy>;
  readonly metadata: string;
  readonly auth: AuthContext;
}

/** What the request handlers of one server share. */
interface Site {
  readonly gateway: Gateway;
  readonly verifier: TokenVerifier;
  readonly sessions: SessionTable;
  readonly maxSessions: number;
  readonly maxBodyBytes: number;
  /** 2026-07-28 requests: the SDK's per-request handler (modern only; 2025-11-25 traffic never reaches it). */
  readonly modern: McpHttpHandler;
  readonly health: Health;
  readonly metrics: Metrics | null;
  state: State | null;
  console: Console | null;
  closing: boolean;
}

type Authenticated = Extract<AuthOutcome, { ok: true }>;

export async function serveHttp(gateway: Gateway, verifier: TokenVerifier, options: HttpServeOptions): Promise<HttpGateway> {
  const maxSessions = positive('maxSessions', options.maxSessions, DEFAULT_MAX_SESSIONS);
  const sessionIdleMs = positive('sessionIdleMs', options.sessionIdleMs, DEFAULT_SESSION_IDLE_MS);
  const maxBodyBytes = positive('maxBodyBytes', options.maxBodyBytes, DEFAULT_MAX_BODY_BYTES);
  if (options.publicUrl !== undefined) locateResource(options.publicUrl); // fail before binding

  const sessions = new SessionTable({ max: maxSessions, idleMs: sessionIdleMs });
  const modern = createMcpHandler(mcpServerFactory(gateway, requestIdentityProvider), { legacy: 'reject', maxRequestBodySize: maxBodyBytes });
  const health = options.health ?? createHealth(gateway, verifier);
  const site: Site = {
    gateway,
    verifier,
    sessions,
    maxSessions,
    maxBodyBytes,
    modern,
    health,
    metrics: options.metrics ?? null,
    state: null,
    console: null,
    closing: false,
  };
  const httpServer = createServer((req, res) => {
    handle(site, req, res).catch(() => {
      if (!res.headersSent) sendJsonRpcError(res, 500, 'Internal gateway error.', { code: -32603 });
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const port = (httpServer.address() as AddressInfo).port;
  const location = locateResource(options.publicUrl ?? `http://${urlHost(options.host)}:${port}/mcp`);
  site.state = {
    location,
    hosts: hostPolicy(options.host, port, location.resource),
    metadata: JSON.stringify(protectedResourceMetadata(location.resource, verifier, mappedScopes(gateway))),
    auth: { verifier, resource: location.resource, metadataUrl: location.metadataUrl },
  };
  if (options.console) {
    site.console = createConsole({ gateway, verifier, resource: location.resource, publicOrigin: new URL(location.resource).origin }, options.console);
  }

  let closed: Promise<void> | null = null;
  return {
    url: `http://${urlHost(options.host)}:${port}${location.mcpPath}`,
    resource: location.resource,
    port,
    health,
    openSessions: () => sessions.size,
    close() {
      closed ??= (async () => {
        site.closing = true;
        await sessions.closeAll();
        await modern.close().catch(() => undefined);
        await new Promise<void>((resolve) => {
          httpServer.close(() => resolve());
          httpServer.closeAllConnections();
        });
      })();
      return closed;
    },
  };
}

async function handle(site: Site, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const state = site.state;
  if (!state || site.closing) {
    sendJsonRpcError(res, 503, 'The gateway is shutting down.', { headers: { Connection: 'close' } });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://localhost');
  const metadata = state.location.metadataPaths.includes(url.pathname);
  // The RFC 9728 document is public and served with CORS *: browser-based MCP clients (the
  // MCP Inspector's OAuth runs in its page, e.g. on http://localhost:6274) read it from their
  // own origin. The MCP endpoint keeps the Origin check; the Host check applies to both.
  const refused = hostRefusal(state.hosts, req, { anyOrigin: metadata });
  if (refused && url.pathname.startsWith(API_PREFIX)) {
    sendHostRefusal(res, refused);
    return;
  }
  const consolePath = url.pathname === CONSOLE_PREFIX || url.pathname.startsWith(`${CONSOLE_PREFIX}/`);
  if (refused && site.console && consolePath) {
    // A person's browser (e.g. a form another origin posted): a page, not a JSON-RPC error.
    sendConsoleRefusal(res, refused);
    return;
  }
  if (refused) {
    sendJsonRpcError(res, 403, refused, { code: -32000 });
    return;
  }
  // Health and readiness: no MCP auth (a load balancer has no token), after the Host/Origin checks.
  if (await site.health.serve(req, res, url)) return;
  if (site.metrics !== null && (await site.metrics.serve(req, res, url))) return;
  if (metadata) {
    serveMetadata(req, res, state.metadata);
    return;
  }
  if (url.pathname === state.location.mcpPath) {
    await serveMcp(site, req, res, url, state);
    return;
  }
  if (url.pathname.startsWith(API_PREFIX)) {
    await serveApi({ gateway: site.gateway, auth: state.auth, maxBodyBytes: site.maxBodyBytes, now: site.gateway.clock }, req, res, url);
    return;
  }
  if (site.console && consolePath) {
    await site.console.serve(req, res, url);
    return;
  }
  sendJsonRpcError(res, 404, 'Not Found', { code: -32000 });
}

function serveMetadata(req: IncomingMessage, res: ServerResponse, document: string): void {
  // Public information, readable by browser-based clients too.
  const cors = { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET, OPTIONS', 'Access-Control-Allow-Headers': '*' };
  if (req.method === 'OPTIONS') {
    res.writeHead(204, cors).end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendJsonRpcError(res, 405, 'Method not allowed.', { code: -32000, headers: { Allow: 'GET, HEAD, OPTIONS' } });
    return;
  }
  res.writeHead(200, { ...cors, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(document)), 'Cache-Control': 'max-age=300' });
  res.end(req.method === 'HEAD' ? undefined : document);
}

async function serveMcp(site: Site, req: IncomingMessage, res: ServerResponse, url: URL, s: State): Promise<void> {
  const method = req.method ?? '';
  if (method !== 'POST' && method !== 'GET' && method !== 'DELETE') {
    sendJsonRpcError(res, 405, 'Method not allowed.', { code: -32000, headers: { Allow: 'GET, POST, DELETE' } });
    return;
  }
  const auth = await authenticate(req, url, s.auth);
  if (!auth.ok) {
    const { refusal } = auth;
    sendJsonRpcError(res, refusal.status, `${refusal.code}: ${refusal.message}`, { data: { code: refusal.code }, headers: { ...refusal.headers } });
    return;
  }
  const sessionId = headerValue(req, 'mcp-session-id');
  if (sessionId !== undefined) return serveSession(site, req, res, sessionId, auth);
  if (method !== 'POST') {
    // A GET or DELETE naming a 2026-07-28 revision has no session to open or end: the SDK's
    // answer (405, Allow: POST). Without one it is a 2025-11-25 session operation missing its id.
    const version = headerValue(req, 'mcp-protocol-version');
    if (version !== undefined && version >= FIRST_MODERN_REVISION) {
      await sendWebResponse(res, await site.modern.fetch(webRequest(req, url, undefined, res), { authInfo: auth.authInfo }));
      return;
    }
    sendJsonRpcError(res, 400, 'Bad Request: Mcp-Session-Id header is required', { code: -32000 });
    return;
  }
  const read = await readJsonBody(req, site.maxBodyBytes);
  if (!read.ok) {
    sendJsonRpcError(res, read.status, read.message, { code: read.code, ...(read.status === 413 ? { headers: { Connection: 'close' } } : {}) });
    return;
  }
  const request = webRequest(req, url, read.value, res);
  // The SDK's own routing rule: a request without the 2026-07-28 envelope claim is 2025-era.
  if (await isLegacyRequest(request, read.value, { maxRequestBodySize: site.maxBodyBytes })) return openSession(site, req, res, s, auth, read.value);
  const response = await site.modern.fetch(request, { authInfo: auth.authInfo, parsedBody: read.value });
  await sendWebResponse(res, isToolsCall(read.value) ? await stepUp(response, s.auth.metadataUrl) : response);
}

/** The scopes of identity.scopes, for `scopes_supported`. */
function mappedScopes(gateway: Gateway): readonly string[] {
  const identity = gateway.config.identity;
  return identity?.mode === 'oidc' ? identity.scopes.map((entry) => entry.scope) : [];
}

function isToolsCall(body: unknown): boolean {
  return body !== null && typeof body === 'object' && !Array.isArray(body) && (body as Record<string, unknown>)['method'] === 'tools/call';
}

/**
 * A 2026-07-28 tools/call refused for scope answers 403 with the step-up challenge listing every
 * scope the call needs (the refusal is journaled by then, like any other). Only a JSON answer
 * can be one: the refusal comes before any progress, so it is never an SSE stream. The scope
 * lists are read from the result's own _meta (the pipeline's, top level: never row data).
 * Anything else is passed on unchanged. A 2025-11-25 session keeps the coded tool error.
 */
async function stepUp(response: Response, metadataUrl: string): Promise<Response> {
  if (response.status !== 200 || !(response.headers.get('content-type') ?? '').startsWith('application/json')) return response;
  const text = await response.text();
  const same = () => new Response(text, { status: response.status, headers: response.headers });
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return same();
  }
  const record = (v: unknown): Record<string, unknown> | null =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  const result = record(record(message)?.['result']);
  const scopes = record(record(result?.['_meta'])?.[SCOPES_META_KEY]);
  const needed = Array.isArray(scopes?.['needed']) ? scopes['needed'].filter((v): v is string => typeof v === 'string') : [];
  if (result?.['isError'] !== true || needed.length === 0) return same();
  const missing = Array.isArray(scopes?.['missing']) ? scopes['missing'].filter((v): v is string => typeof v === 'string') : [];
  const content = Array.isArray(result['content']) ? record(result['content'][0]) : null;
  const description = typeof content?.['text'] === 'string' ? content['text'].split('\n')[0]! : 'identity.insufficient_scope';
  const body = {
    jsonrpc: '2.0',
    id: record(message)?.['id'] ?? null,
    error: { code: -32001, message: description, data: { code: 'identity.insufficient_scope', neededScopes: needed, missingScopes: missing } },
  };
  return Response.json(body, { status: 403, headers: { 'WWW-Authenticate': insufficientScopeChallenge(needed, description, metadataUrl) } });
}

/**
 * The web Request the SDK's per-request handler reads: this request's method, URL, headers and
 * (already read and size-checked) body. Aborted when the client goes away before the answer is
 * written, so a call waiting for a human stops waiting.
 */
function webRequest(req: IncomingMessage, url: URL, body: unknown, res: ServerResponse): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  const aborted = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) aborted.abort();
  });
  return new Request(new URL(`${url.pathname}${url.search}`, 'http://localhost'), {
    method: req.method ?? 'POST',
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: aborted.signal,
  });
}

async function sendWebResponse(res: ServerResponse, response: Response): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) headers['set-cookie'] = cookies;
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  // An SSE answer (progress while a call runs) streams as it is written.
  res.flushHeaders();
  await new Promise<void>((resolve) => {
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    body.once('error', () => {
      res.destroy();
      resolve();
    });
    res.once('close', () => {
      body.destroy();
      resolve();
    });
    body.pipe(res);
  });
}

/** A request on an open session: only from the identity that opened it. */
async function serveSession(site: Site, req: IncomingMessage, res: ServerResponse, sessionId: string, auth: Authenticated): Promise<void> {
  const method = req.method ?? '';
  const identity = auth.verified.identity;
  const session = site.sessions.get(sessionId);
  if (!session) {
    sendJsonRpcError(res, 404, 'Session not found');
    return;
  }
  if (!sameOwner(session.owner, ownerOf(identity))) {
    const error = new DrawbridgeError('identity.session_mismatch', `This MCP session was opened by another identity than ${identity.subject}.`);
    sendJsonRpcError(res, 403, `${error.code}: ${error.message}`, { data: { code: error.code, hint: error.hint } });
    return;
  }
  // Busy while a POST or DELETE is in flight (a running call, an approval wait);
  // an open GET stream alone does not keep a session from going idle.
  if (method !== 'GET') res.once('close', site.sessions.begin(sessionId));
  let body: unknown;
  if (method === 'POST') {
    const read = await readJsonBody(req, site.maxBodyBytes);
    if (!read.ok) {
      sendJsonRpcError(res, read.status, read.message, { code: read.code, ...(read.status === 413 ? { headers: { Connection: 'close' } } : {}) });
      return;
    }
    body = read.value;
  }
  if (method === 'GET') closeStreamAtExpiry(res, session.transport, auth.verified.expiresAt, site.verifier);
  await session.transport.handleRequest(withAuth(req, auth.authInfo), res, body);
}

/** A 2025-11-25 POST without a session: an initialize opens one (one MCP Server per session), bound to this identity. */
async function openSession(site: Site, req: IncomingMessage, res: ServerResponse, s: State, auth: Authenticated, body: unknown): Promise<void> {
  const initialize = Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body);
  if (!initialize) {
    sendJsonRpcError(res, 400, 'Bad Request: Mcp-Session-Id header is required', { code: -32000 });
    return;
  }
  const sessions = site.sessions;
  if (!sessions.reserve()) {
    sendJsonRpcError(res, 503, `Too many open sessions (${site.maxSessions}); retry later.`, { code: -32000, headers: { 'Retry-After': '30' } });
    return;
  }
  const server = createMcpServer(site.gateway, requestIdentityProvider);
  const owner = ownerOf(auth.verified.identity);
  let registered = false;
  const transport: NodeStreamableHTTPServerTransport = new NodeStreamableHTTPServerTransport({
    sessionIdGenerator: () => randomUUID(),
    onsessioninitialized: (id) => {
      registered = true;
      sessions.add({ id, owner, transport, server });
    },
    ...(s.hosts.allowedHosts
      ? { enableDnsRebindingProtection: true, allowedHosts: [...s.hosts.allowedHosts], allowedOrigins: [...(s.hosts.allowedOrigins ?? [])] }
      : {}),
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(withAuth(req, auth.authInfo), res, body);
  } finally {
    sessions.release();
    if (!registered) await server.close().catch(() => undefined);
  }
}

/** An SSE stream outlives no token: when the one that opened it expires, the stream is closed (the client reconnects with a fresh one). */
function closeStreamAtExpiry(res: ServerResponse, transport: NodeStreamableHTTPServerTransport, expiresAt: number, verifier: TokenVerifier): void {
  const ms = Math.min(MAX_TIMER_MS, Math.max(0, expiresAt * 1000 + verifier.clockToleranceMs - Date.now()));
  const timer = setTimeout(() => transport.closeStandaloneSSEStream(), ms);
  timer.unref();
  res.once('close', () => clearTimeout(timer));
}

function withAuth(req: IncomingMessage, authInfo: AuthInfo): IncomingMessage & { auth: AuthInfo } {
  // Set here, from this request's verification, whatever the client sent.
  const r = req as IncomingMessage & { auth: AuthInfo };
  r.auth = authInfo;
  return r;
}
