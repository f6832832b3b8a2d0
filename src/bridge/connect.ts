// `drawbridge connect <url>`: a local stdio MCP server for agents that only
// launch stdio servers, forwarding every JSON-RPC message to a remote
// Drawbridge over Streamable HTTP and back, untouched: requests, responses,
// notifications, and the gateway's own requests to the client (elicitation,
// progress). The bridge holds the user's access token (tokens.ts) and adds it
// to every HTTP request to the gateway's origin, and to nothing else; a 401 gets
// one refresh and one retry. It holds no backend credential: the gateway does.
//
// No request ever waits for a person. A client gives up on a request after
// about 60 s, and a sign-in can take longer: so when no token is at hand at
// start (nothing cached, or expired and the refresh fails), the bridge answers
// the client's `initialize` itself (tools, listChanged), answers tools/list
// with no tools and every other request with an error saying where to sign in
// (the same line it writes on stderr), and runs the device flow meanwhile. Once
// signed in it opens the gateway session with the client's own initialize
// params, tells the client the tool list changed, and forwards from then on.
// With a token at hand at start, the client's initialize is forwarded. A token
// lost later (the refresh fails) gets the same treatment per request.
//
// Both protocol eras pass through. A 2025-11-25 client opens with `initialize`
// and gets the gateway's session (Mcp-Session-Id), as above. A 2026-07-28 client
// sends every request with its own `_meta` envelope (protocol version, client
// capabilities and info) and no handshake: each goes to the gateway as its own
// POST, body untouched, with the headers that revision requires derived from that
// body by the SDK v2 client transport (MCP-Protocol-Version from the envelope,
// Mcp-Method, Mcp-Name from the tool name): the bridge never writes values of its
// own there, so a request the gateway refuses for its headers is the client's own
// doing (-32020/-32022 reach the client as the gateway sent them). Results, among
// them `input_required` with its requestState, travel back untouched, and so do
// the re-issued calls. A client's notifications/cancelled for a modern request
// closes that request's POST (the revision's way to cancel over HTTP) instead of
// being forwarded, and a broken modern response stream is never resumed: the
// request gets an error, and the client re-issues it. While nobody is signed in,
// the bridge answers a modern client's `server/discover` itself (2026-07-28,
// tools that will change, ttlMs 0 so nothing is cached), its tools/list with no
// tools, and acknowledges its subscriptions/listen (at the sign-in it says the
// tools changed there and passes the listen on), as it answers a legacy
// initialize; a gateway that cannot be reached is a coded error in both eras.
//
// A 403 `insufficient_scope` (either era) names the scopes the operation needs:
// when a token with them can be had without a person (a service agent's client
// credentials), the request is sent once more with it. A person's token cannot
// be widened without a sign-in: one asking for the scopes starts in the background
// and the client gets identity.insufficient_scope naming the scopes and where to
// sign in (it re-issues the request afterwards); if the scopes were asked for
// already and still not granted, the error says to ask with --scope.
//
// The bridge reads the messages only for its own bookkeeping: which client
// requests still wait for an answer (so that when the gateway cannot be
// reached, or signing in fails, the agent gets a JSON-RPC error instead of
// waiting forever), the client's era, and the negotiated protocol version of a
// legacy session (the HTTP transport must send it as a header).

import { randomUUID } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import {
  extractWWWAuthenticateParams,
  InsufficientScopeError,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  LATEST_PROTOCOL_VERSION,
  PROTOCOL_VERSION_META_KEY,
  SdkHttpError,
  SERVER_INFO_META_KEY,
  SUBSCRIPTION_ID_META_KEY,
  StreamableHTTPClientTransport,
  SUPPORTED_PROTOCOL_VERSIONS,
  type InitializeResult,
  type JSONRPCMessage,
  type JSONRPCRequest,
  type RequestId,
  type Result,
} from '@modelcontextprotocol/client';
import { StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { DrawbridgeError, errorText, type ErrorCode } from '../errors.js';
import { SERVER_VERSION } from '../server.js';
import { describeError, gatewayEndpoint, openTokenSource, printable, type BridgeOptions, type SignInPrompt, type TokenSource } from './tokens.js';

export type { BridgeOptions, SignInPrompt, TokenSource } from './tokens.js';
export { obtainAccessToken } from './tokens.js';

interface BridgeIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
}

/** The JSON-RPC error code of the answers the bridge gives itself (the SDK's ConnectionClosed). */
const BRIDGE_ERROR_CODE = -32000;

/** The serverInfo name of the bridge's own initialize answer (before the gateway session exists). */
export const BRIDGE_NAME = 'drawbridge-connect';

/** The 2026-07-28 revisions the bridge answers `server/discover` with while nobody is signed in. */
export const BRIDGE_MODERN_VERSIONS: readonly string[] = ['2026-07-28'];

/** After a response stream ends, how long the SDK may take to hand over what it carried before a request counts as unanswered. */
const STREAM_GRACE_MS = 250;
const TERMINATE_TIMEOUT_MS = 3_000;

interface Reason {
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint?: string;
  /** Extra members of the JSON-RPC error's data (never a token). */
  readonly data?: Readonly<Record<string, string>>;
}

interface Pending {
  readonly method: string;
  /** The response stream ended after an event id: the SDK resumes it (Last-Event-ID), so the answer may still come. */
  resuming: boolean;
  /** A 2026-07-28 request's own POST: aborting it is how that revision cancels a request over HTTP. */
  readonly abort?: AbortController;
  /** A request of the bridge's own (the gateway session's initialize): settled here, never shown to the client. */
  readonly own?: { readonly resolve: (result: Result) => void; readonly reject: (reason: Reason) => void };
}

/**
 * starting: looking for a token without asking anyone; the client's messages wait.
 * signed-out: the bridge answers the client itself while a person signs in.
 * connecting: signed in, opening the gateway session; the client's messages wait.
 * forwarding: everything goes to the gateway and back.
 */
type Phase = 'starting' | 'signed-out' | 'connecting' | 'forwarding';

/** The client's protocol era, from its first request: `initialize` (legacy) or an enveloped request (modern). */
type Era = 'unknown' | 'legacy' | 'modern';

/** The protocol version a 2026-07-28 request names in its `_meta` envelope (undefined: not a modern request). */
function envelopeVersion(message: JSONRPCMessage): string | undefined {
  if (!isJSONRPCRequest(message)) return undefined;
  const meta = message.params?.['_meta'];
  const version = meta !== null && typeof meta === 'object' ? (meta as Record<string, unknown>)[PROTOCOL_VERSION_META_KEY] : undefined;
  return typeof version === 'string' ? version : undefined;
}

/** The JSON-RPC requests in a POST body the SDK transport built (one message, or a batch). */
function requestsIn(body: unknown): JSONRPCRequest[] {
  if (typeof body !== 'string') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [];
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((m): m is JSONRPCRequest => isJSONRPCRequest(m));
}

function withBearer(headers: HeadersInit | undefined, token: string): Headers {
  const result = new Headers(headers);
  result.set('authorization', `Bearer ${token}`);
  return result;
}

/** The `error` and `error_description` of a refusal's WWW-Authenticate, for a log line. */
function challengeOf(response: Response): string {
  const header = response.headers.get('www-authenticate') ?? '';
  const error = /error="([^"]*)"/.exec(header)?.[1];
  const description = /error_description="((?:[^"\\]|\\.)*)"/.exec(header)?.[1];
  return printable([error, description?.replace(/\\(.)/g, '$1')].filter(Boolean).join(': ') || `HTTP ${response.status}`);
}

function explain(error: unknown, origin: string): Reason {
  if (error instanceof DrawbridgeError) {
    const data = error.details['signIn'];
    return { code: error.code, message: error.message, hint: error.hint, ...(isStringRecord(data) ? { data } : {}) };
  }
  if (error instanceof InsufficientScopeError) {
    const scopes = printable(error.requiredScope ?? '', 500);
    return {
      code: 'identity.insufficient_scope',
      message: `The gateway needs a token with the scopes ${scopes || '(not named)'} for this request${
        error.errorDescription ? ` (${printable(error.errorDescription, 300)})` : ''
      }.`,
      hint: `Sign in with those scopes: restart drawbridge connect with --scope "${scopes}" (your provider must grant them to this client).`,
      data: { scope: scopes },
    };
  }
  if (error instanceof SdkHttpError) {
    const detail = printable(error.message.replace(/^Error POSTing to endpoint: /, ''), 500);
    const status = error.status;
    if (status === 401) {
      return {
        code: 'identity.invalid_token',
        message: `The gateway refused the access token even after it was renewed: ${detail}`,
        hint: 'Check that the gateway trusts this provider and client, then restart drawbridge connect to sign in again.',
      };
    }
    if (status === 403) return { code: 'identity.insufficient_scope', message: `The gateway refused the request: ${detail}` };
    if (status >= 500)
      return { code: 'backend.unavailable', message: `The gateway failed (HTTP ${status}): ${detail}`, hint: 'Retry later, or tell the gateway operator.' };
    return { code: 'backend.error', message: `The gateway refused the request (HTTP ${status}): ${detail}` };
  }
  return {
    code: 'backend.unavailable',
    message: `The gateway ${origin} could not be reached: ${describeError(error)}`,
    hint: 'Check the network and that the gateway is running, then retry.',
  };
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** The refusal of a request made while nobody is signed in: where to sign in, as the prompt on stderr says it. */
function signInRequired(prompt: SignInPrompt): DrawbridgeError {
  return new DrawbridgeError('identity.sign_in_required', `Not signed in to ${prompt.gateway} yet. ${prompt.text}`, {
    details: {
      signIn: {
        verificationUri: prompt.verificationUri,
        userCode: prompt.userCode,
        ...(prompt.verificationUriComplete ? { verificationUriComplete: prompt.verificationUriComplete } : {}),
      },
    },
  });
}

/** The refusal of a request that needs scopes the token lacks, while a person signs in with them. */
function stepUpSignIn(scopes: string, prompt: SignInPrompt): DrawbridgeError {
  return new DrawbridgeError('identity.insufficient_scope', `The gateway needs a token with the scopes ${scopes} for this request. ${prompt.text}`, {
    hint: 'Sign in as shown (the new token carries those scopes), then send the request again.',
    details: {
      signIn: {
        verificationUri: prompt.verificationUri,
        userCode: prompt.userCode,
        ...(prompt.verificationUriComplete ? { verificationUriComplete: prompt.verificationUriComplete } : {}),
      },
    },
  });
}

/** The bridge's own answer to a 2026-07-28 `server/discover` while nobody is signed in: tools that will change, nothing cached. */
function discoverResult(): Result {
  return {
    resultType: 'complete',
    supportedVersions: [...BRIDGE_MODERN_VERSIONS],
    capabilities: { tools: { listChanged: true } },
    ttlMs: 0,
    cacheScope: 'private',
    _meta: { [SERVER_INFO_META_KEY]: { name: BRIDGE_NAME, title: 'Drawbridge (drawbridge connect)', version: SERVER_VERSION } },
  };
}

/** The bridge's own answer to the client's initialize: the version it asked for when this SDK speaks it, and tools that will change. */
function initializeResult(params: JSONRPCRequest['params']): InitializeResult {
  const requested = params?.['protocolVersion'];
  const protocolVersion = typeof requested === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION;
  return {
    protocolVersion,
    capabilities: { tools: { listChanged: true } },
    serverInfo: { name: BRIDGE_NAME, title: 'Drawbridge (drawbridge connect)', version: SERVER_VERSION },
  };
}

/**
 * Serves MCP on `io` (default: this process's stdin/stdout) and forwards it to the
 * gateway at options.url. Without a token at hand, answers the client itself while
 * a person signs in (the prompt goes to options.log). Resolves when stdin closes,
 * options.signal aborts, or the gateway ends the MCP session.
 */
export async function runBridge(options: BridgeOptions, io: BridgeIo = { stdin: process.stdin, stdout: process.stdout }): Promise<void> {
  const bridge = new Bridge(options, io);
  if (options.signal?.aborted) return;
  return bridge.run();
}

/** One bridge: the client side (stdio), the gateway side (Streamable HTTP), the token and the bookkeeping between them. */
class Bridge {
  private readonly endpoint: URL;
  private readonly origin: string;
  private readonly log: (line: string) => void;
  private readonly stop = new AbortController();
  private closing = false;
  private phase: Phase = 'starting';
  private readonly finished: Promise<void>;
  private finish: () => void = () => undefined;

  // --- the sign-in prompt, as the device flow shows it.
  private prompted: ((prompt: SignInPrompt) => void) | null = null;
  private readonly tokenOptions: BridgeOptions;
  // --- the token source: discovery once (a failed one is retried by the next request).
  private sourcePromise: Promise<TokenSource> | null = null;
  private source: TokenSource | null = null;
  // --- one sign-in at a time, in the background; requests only wait for its prompt.
  private signIn: { readonly prompt: Promise<SignInPrompt> } | null = null;

  // --- requests from the client still waiting for an answer (and the bridge's own).
  private readonly pending = new Map<RequestId, Pending>();
  private readonly answeredByBridge = new Set<RequestId>();
  private initializeId: RequestId | undefined;
  /** A 2026-07-28 client's subscriptions/listen, acknowledged by the bridge while nobody is signed in. */
  private listen: { readonly id: RequestId; readonly message: JSONRPCRequest; readonly tools: boolean } | null = null;
  /** The client's era, from its first request (a legacy session or per-request 2026-07-28 messages). */
  private era: Era = 'unknown';
  /** The client's initialize params: the gateway session opened after a sign-in uses them. */
  private clientInitialize: JSONRPCRequest['params'] | undefined;
  /** Client messages held while the bridge is starting or connecting, in order. */
  private readonly held: JSONRPCMessage[] = [];

  private readonly local: StdioServerTransport;
  private readonly remote: StreamableHTTPClientTransport;
  // Errors the transport reports besides those of send() (handled where send is awaited).
  private readonly handled = new WeakSet<object>();

  constructor(
    private readonly options: BridgeOptions,
    private readonly io: BridgeIo,
  ) {
    this.endpoint = gatewayEndpoint(options.url);
    this.origin = this.endpoint.origin;
    this.log = options.log;
    const signal = options.signal ? AbortSignal.any([options.signal, this.stop.signal]) : this.stop.signal;
    this.finished = new Promise<void>((resolve) => (this.finish = resolve));
    this.tokenOptions = {
      ...options,
      signal,
      onSignInPrompt: (prompt) => {
        this.prompted?.(prompt);
        options.onSignInPrompt?.(prompt);
      },
    };
    this.local = new StdioServerTransport(io.stdin, io.stdout);
    this.remote = new StreamableHTTPClientTransport(this.endpoint, { fetch: (input, init) => this.authorizedFetch(input, init) });
    this.remote.onerror = (error) => this.gatewayError(error);
    this.remote.onmessage = (message) => this.fromGateway(message);
    this.local.onmessage = (message) => this.fromClient(message);
    this.local.onerror = (error) => {
      if (!this.closing) this.log(`MCP client input: ${describeError(error)}`);
    };
  }

  async run(): Promise<void> {
    this.options.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.io.stdin.once('end', this.onEnd);
    this.io.stdin.once('close', this.onEnd);
    await this.remote.start();
    await this.local.start();
    this.log(`Forwarding MCP over stdio to ${this.endpoint.href}.`);
    void this.settleStart();
    return this.finished;
  }

  /**
   * A token at hand (cached, refreshed, or a service agent's)? Then the client's initialize goes to the gateway.
   * Otherwise the bridge answers it, and the sign-in starts now: the prompt should be there when the user looks.
   */
  private async settleStart(): Promise<void> {
    let tokens: TokenSource;
    let token: string | null;
    try {
      tokens = await this.tokenSource();
      token = await tokens.silent();
    } catch (error) {
      if (this.closing) return;
      this.log(`Not signed in: ${describeError(error)} (will retry with the next request).`);
      return this.enter('forwarding');
    }
    if (this.closing) return;
    if (token !== null) return this.enter('forwarding');
    this.enter('signed-out');
    this.startSignIn(tokens).catch(() => undefined);
  }

  private tokenSource(): Promise<TokenSource> {
    if (this.source) return Promise.resolve(this.source);
    if (!this.sourcePromise) {
      const attempt = openTokenSource(this.tokenOptions).then((s) => (this.source = s));
      this.sourcePromise = attempt;
      attempt.catch(() => {
        if (this.sourcePromise === attempt) this.sourcePromise = null;
      });
    }
    return this.sourcePromise;
  }

  private startSignIn(tokens: TokenSource): Promise<SignInPrompt> {
    if (this.signIn) return this.signIn.prompt;
    let show!: (prompt: SignInPrompt) => void;
    let fail!: (error: unknown) => void;
    const prompt = new Promise<SignInPrompt>((resolve, reject) => {
      show = resolve;
      fail = reject;
    });
    prompt.catch(() => undefined);
    const current = { prompt };
    this.signIn = current;
    this.prompted = show;
    tokens.signIn().then(
      () => {
        if (this.signIn === current) this.signIn = null;
        if (!this.closing) this.signedIn();
      },
      (error: unknown) => {
        if (this.signIn === current) this.signIn = null;
        fail(error);
        if (!this.closing) this.log(`Not signed in: ${describeError(error)} (a new sign-in starts with the next request).`);
      },
    );
    return prompt;
  }

  /** A token for the gateway, never by asking a person: without one, a sign-in starts and the request is refused with its prompt. */
  private async bearer(rejected?: string): Promise<string> {
    const tokens = await this.tokenSource();
    const token = await tokens.silent(rejected);
    if (token !== null) return token;
    throw signInRequired(await this.startSignIn(tokens));
  }

  private toClient(message: JSONRPCMessage): void {
    this.local.send(message).catch((error: unknown) => {
      if (!this.closing) this.log(`Could not write to the MCP client: ${describeError(error)}`);
    });
  }

  private reply(id: RequestId, result: Result): void {
    this.toClient({ jsonrpc: '2.0', id, result });
  }

  private answer(id: RequestId, reason: Reason): void {
    const request = this.pending.get(id);
    if (!request) return;
    this.pending.delete(id);
    if (request.own) return request.own.reject(reason);
    this.answeredByBridge.add(id);
    this.log(`${request.method} failed: ${reason.message}`);
    this.toClient({
      jsonrpc: '2.0',
      id,
      error: {
        code: BRIDGE_ERROR_CODE,
        message: errorText(reason),
        data: { code: reason.code, ...(reason.hint ? { hint: reason.hint } : {}), ...reason.data },
      },
    });
  }

  private failAll(reason: Reason, only?: (p: Pending) => boolean): void {
    for (const [id, request] of [...this.pending]) if (!only || only(request)) this.answer(id, reason);
  }

  // A response stream that ended without carrying the answer to its request.
  private streamEnded(ids: RequestId[], resumable: boolean, why: string): void {
    if (this.closing) return;
    for (const id of ids) {
      const request = this.pending.get(id);
      if (!request) continue;
      if (resumable) request.resuming = true;
      else
        this.answer(id, {
          code: 'backend.unavailable',
          message: `The gateway closed the response stream before answering (${why}).`,
          hint: 'Retry the request; if it keeps failing, tell the gateway operator.',
        });
    }
  }

  /** Watches a POST's event stream so that its requests are answered even if it ends early. */
  private watch(response: Response, init: RequestInit | undefined): Response {
    if (init?.method !== 'POST' || !response.ok || !response.body) return response;
    const contentType = (response.headers.get('content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (contentType !== 'text/event-stream') return response;
    const requests = requestsIn(init.body);
    const ids = requests.map((r) => r.id);
    if (ids.length === 0) return response;
    // 2026-07-28 has no resumable response streams: a broken one loses its request, which the client re-issues.
    const modern = requests.some((r) => envelopeVersion(r) !== undefined);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let tail = '\n';
    let resumable = false;
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      setTimeout(() => this.streamEnded(ids, resumable, why), STREAM_GRACE_MS);
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            end('the stream ended');
            return;
          }
          if (!resumable && !modern) {
            const text = tail + decoder.decode(value, { stream: true });
            // An SSE `id:` field: the SDK can resume this stream where it broke.
            if (/[\r\n]id:/.test(text)) resumable = true;
            tail = text.slice(-3);
          }
          controller.enqueue(value);
        } catch (error) {
          controller.error(error);
          end(describeError(error));
        }
      },
      cancel(reason) {
        end('the stream was cancelled');
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }

  // --- every HTTP request of the SDK transport goes through here.
  private async authorizedFetch(input: string | URL, init?: RequestInit): Promise<Response> {
    const target = new URL(input instanceof URL ? input.href : input);
    if (target.origin !== this.origin) {
      throw new DrawbridgeError('config.invalid', `Refusing to send the access token to ${printable(target.origin)}: only ${this.origin} gets it.`, {
        hint: 'The gateway redirected elsewhere; tell its operator.',
      });
    }
    // On the way out (ending the session), only a token at hand: no refresh, no sign-in.
    const token = this.closing ? (this.source?.peek() ?? null) : await this.bearer();
    if (!token) throw new Error('no usable access token while closing');
    const send = async (value: string) => {
      try {
        return await fetch(target, { ...init, headers: withBearer(init?.headers, value), redirect: 'manual' });
      } catch (error) {
        if ((error as Error)?.name === 'AbortError') throw error;
        throw new DrawbridgeError('backend.unavailable', `The gateway ${this.origin} could not be reached: ${describeError(error)}`, {
          hint: 'Check the network and that the gateway is running, then retry.',
          cause: error,
        });
      }
    };
    let used = token;
    let response = await send(used);
    if (response.status === 401 && !this.closing) {
      this.log(`The gateway refused the access token (${challengeOf(response)}); getting a new one.`);
      await response.body?.cancel().catch(() => undefined);
      used = await this.bearer(token);
      response = await send(used);
      if (response.status === 401) this.log(`The gateway refused the new access token too (${challengeOf(response)}).`);
    }
    if (response.status === 403 && !this.closing) response = await this.stepUp(response, used, send);
    return this.watch(response, init);
  }

  /**
   * A 403 insufficient_scope names the scopes the request needs: with a token for them that needs
   * nobody (tokens.widen), the request goes once more; else the refusal stays, and the SDK transport
   * turns it into an InsufficientScopeError that explain() words for the client.
   */
  private async stepUp(response: Response, used: string, send: (token: string) => Promise<Response>): Promise<Response> {
    const challenge = extractWWWAuthenticateParams(response);
    if (challenge.error !== 'insufficient_scope' || !challenge.scope || !this.source) return response;
    const scopes = challenge.scope.split(' ').filter((s) => s !== '');
    let wider: string | null;
    try {
      wider = await this.source.widen(scopes, used);
    } catch (error) {
      this.log(`Could not get a token with the scopes ${printable(challenge.scope)}: ${describeError(error)}`);
      return response;
    }
    if (wider === null) {
      this.log(`The gateway needs the scopes ${printable(challenge.scope)}; a token with them needs a new sign-in.`);
      // A person: a sign-in asking for them starts now (or the one under way is shown); the client re-issues the request after it.
      if (this.source.person && (this.source.askFor(scopes) || this.signIn)) {
        let prompt: SignInPrompt;
        try {
          prompt = await this.startSignIn(this.source);
        } catch {
          return response;
        }
        await response.body?.cancel().catch(() => undefined);
        throw stepUpSignIn(printable(challenge.scope), prompt);
      }
      return response;
    }
    this.log(`The gateway needs the scopes ${printable(challenge.scope)}; got a token with them, sending the request again.`);
    await response.body?.cancel().catch(() => undefined);
    return send(wider);
  }

  private sessionEnded(detail: string): void {
    if (this.closing) return;
    this.log(`The gateway ended the MCP session (${detail}); stopping so the client can start a new one.`);
    void this.shutdown(
      {
        code: 'backend.unavailable',
        message: 'The gateway ended the MCP session.',
        hint: 'Restart the MCP server (drawbridge connect) to open a new session.',
      },
      false,
    );
  }

  private gatewayError(error: Error): void {
    setTimeout(() => {
      if (this.closing || this.handled.has(error)) return;
      if (error instanceof SdkHttpError && error.status === 404 && this.remote.sessionId !== undefined)
        return this.sessionEnded('HTTP 404 on its event stream');
      if (error.name === 'AbortError') return;
      this.log(`Gateway event stream: ${describeError(error)}`);
      if (/Maximum reconnection attempts/.test(error.message)) {
        this.failAll({ code: 'backend.unavailable', message: "The gateway's response stream broke and could not be resumed." }, (p) => p.resuming);
      }
    }, 0);
  }

  private fromGateway(message: JSONRPCMessage): void {
    if (this.closing) return;
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) {
      const id = message.id;
      if (id !== undefined) {
        const own = this.pending.get(id)?.own;
        if (own) {
          this.pending.delete(id);
          if (isJSONRPCResultResponse(message)) own.resolve(message.result);
          else own.reject({ code: 'backend.error', message: `The gateway refused to open an MCP session: ${printable(message.error.message)}` });
          return;
        }
        if (this.answeredByBridge.has(id) && !this.pending.has(id)) {
          // The client already got the bridge's error for it; a second answer would confuse it.
          this.answeredByBridge.delete(id);
          return;
        }
        this.pending.delete(id);
        if (id === this.initializeId && isJSONRPCResultResponse(message)) {
          const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
          if (typeof version === 'string') this.remote.setProtocolVersion(version);
        }
      }
    }
    this.toClient(message);
  }

  /** Sends one message to the gateway; a request that cannot be delivered is answered with the reason. */
  private deliver(message: JSONRPCMessage, abort?: AbortController): void {
    this.remote.send(message, abort ? { requestSignal: abort.signal } : undefined).catch((error: unknown) => {
      if (error !== null && typeof error === 'object') this.handled.add(error);
      if (this.closing) return;
      if (error instanceof SdkHttpError && error.status === 404 && this.remote.sessionId !== undefined) {
        // Answered (with the rest) by the shutdown.
        return this.sessionEnded('HTTP 404: the session is unknown to it');
      }
      const reason = explain(error, this.origin);
      if (isJSONRPCRequest(message)) this.answer(message.id, reason);
      else this.log(`Could not deliver a message to the gateway: ${reason.message}`);
    });
  }

  /** Forwarding: the client's message goes to the gateway as it is. */
  private forward(message: JSONRPCMessage): void {
    if (isJSONRPCRequest(message)) {
      this.answeredByBridge.delete(message.id);
      const abort = envelopeVersion(message) !== undefined ? new AbortController() : undefined;
      this.pending.set(message.id, { method: message.method, resuming: false, ...(abort ? { abort } : {}) });
      if (message.method === 'initialize') this.initializeId = message.id;
      return this.deliver(message, abort);
    } else if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') {
      // The gateway will not answer a cancelled request (and the client expects nothing).
      const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
      const cancelled = typeof id === 'string' || typeof id === 'number' ? this.pending.get(id) : undefined;
      if (typeof id === 'string' || typeof id === 'number') this.pending.delete(id);
      // A 2026-07-28 request is cancelled over HTTP by closing its response stream, not by a message.
      if (cancelled?.abort) return cancelled.abort.abort();
    }
    this.deliver(message);
  }

  /** A request that found a token while signed out: on to the gateway, through the session (opened now if need be). */
  private whenConnected(message: JSONRPCRequest): void {
    if (this.closing || !this.pending.has(message.id)) return;
    if (this.phase === 'forwarding') return this.forward(message);
    this.held.push(message);
    void this.openSession();
  }

  /** Signed out: the bridge answers; only a request that needs the gateway waits for (or starts) the sign-in. */
  private answerSignedOut(message: JSONRPCMessage): void {
    if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') {
      const cancelled = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof cancelled === 'string' || typeof cancelled === 'number') this.pending.delete(cancelled);
      if (cancelled === this.listen?.id) this.listen = null;
    }
    if (!isJSONRPCRequest(message)) return; // initialized, cancelled, roots: nothing to tell a gateway that is not there yet
    const { id, method } = message;
    if (method === 'initialize') {
      this.clientInitialize = message.params;
      return this.reply(id, initializeResult(message.params));
    }
    const modern = envelopeVersion(message) !== undefined;
    // A 2026-07-28 result says it is complete and must not be cached: the tools arrive with the sign-in.
    const complete = modern ? { resultType: 'complete', ttlMs: 0, cacheScope: 'private' } : {};
    if (method === 'server/discover' && modern) return this.reply(id, discoverResult());
    if (method === 'ping') return this.reply(id, modern ? { resultType: 'complete' } : {});
    if (method === 'tools/list') return this.reply(id, { tools: [], ...complete });
    if (method === 'subscriptions/listen' && modern) return this.holdListen(message);
    this.answeredByBridge.delete(id);
    this.pending.set(id, { method, resuming: false });
    // Signed in meanwhile (or the last attempt to open the session failed): try the session now; the request waits for it.
    if (this.source?.peek()) return this.whenConnected(message);
    // A token may turn up without anyone signing in (another process cached one); else the answer says where to sign in.
    void this.bearer().then(
      () => this.whenConnected(message),
      (error: unknown) => this.answer(id, explain(error, this.origin)),
    );
  }

  /**
   * A 2026-07-28 `subscriptions/listen` while nobody is signed in: acknowledged by the bridge (only
   * the tool list can change, at the sign-in) and kept open. Once signed in, the client hears
   * that its tools changed on it, and the request goes on to the gateway for what comes after.
   */
  private holdListen(message: JSONRPCRequest): void {
    this.answeredByBridge.delete(message.id);
    this.pending.set(message.id, { method: message.method, resuming: false });
    const asked = message.params?.['notifications'];
    const tools = asked !== null && typeof asked === 'object' && (asked as Record<string, unknown>)['toolsListChanged'] === true;
    this.listen = { id: message.id, message, tools };
    this.toClient({
      jsonrpc: '2.0',
      method: 'notifications/subscriptions/acknowledged',
      params: { notifications: tools ? { toolsListChanged: true } : {}, _meta: { [SUBSCRIPTION_ID_META_KEY]: message.id } },
    });
  }

  /** Signed in after the client was answered by the bridge: the gateway session, with the client's own initialize. */
  private async openSession(): Promise<void> {
    if (this.phase !== 'signed-out' || this.closing) return;
    if (this.era === 'modern') {
      // No session to open: every 2026-07-28 request carries its own envelope (its next tools/list is not cached: ttlMs 0).
      this.phase = 'forwarding';
      this.log(`Connected to ${this.endpoint.href}.`);
      for (const message of this.held.splice(0)) this.forward(message);
      const listen = this.listen;
      this.listen = null;
      if (listen && this.pending.has(listen.id)) {
        const onStream = { _meta: { [SUBSCRIPTION_ID_META_KEY]: listen.id } };
        if (listen.tools) this.toClient({ jsonrpc: '2.0', method: 'notifications/tools/list_changed', params: onStream });
        this.forward(listen.message);
      }
      return;
    }
    this.phase = 'connecting';
    const id = `drawbridge-connect-${randomUUID()}`;
    const params = this.clientInitialize ?? { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'unknown', version: '0' } };
    try {
      const result = await new Promise<Result>((resolve, reject) => {
        this.pending.set(id, { method: 'initialize', resuming: false, own: { resolve, reject } });
        this.deliver({ jsonrpc: '2.0', id, method: 'initialize', params });
      });
      const version = result['protocolVersion'];
      if (typeof version === 'string') this.remote.setProtocolVersion(version);
    } catch (error) {
      if (this.closing) return;
      const reason = isReason(error) ? error : explain(error, this.origin);
      this.log(`Signed in, but the MCP session with the gateway could not be opened: ${reason.message} (the next request tries again).`);
      this.phase = 'signed-out';
      for (const message of this.held.splice(0)) if (isJSONRPCRequest(message)) this.answer(message.id, reason);
      return;
    }
    if (this.closing) return;
    this.phase = 'forwarding';
    // As the client would have sent it after the gateway's answer (it sent its own to the bridge).
    this.deliver({ jsonrpc: '2.0', method: 'notifications/initialized' });
    this.log(`Connected to ${this.endpoint.href}; the client's tool list changed.`);
    for (const message of this.held.splice(0)) this.forward(message);
    this.toClient({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
  }

  private signedIn(): void {
    if (this.phase === 'signed-out') void this.openSession();
  }

  private fromClient(message: JSONRPCMessage): void {
    if (this.era === 'unknown' && isJSONRPCRequest(message)) {
      if (message.method === 'initialize') this.era = 'legacy';
      else if (envelopeVersion(message) !== undefined) this.era = 'modern';
    }
    if (this.closing) {
      if (isJSONRPCRequest(message)) {
        this.pending.set(message.id, { method: message.method, resuming: false });
        this.answer(message.id, { code: 'backend.unavailable', message: 'The bridge is shutting down.' });
      }
      return;
    }
    if (this.phase === 'forwarding') return this.forward(message);
    if (this.phase === 'signed-out') return this.answerSignedOut(message);
    // Starting or connecting: in order, once that is settled. Listed as pending, so a shutdown answers them.
    if (isJSONRPCRequest(message)) this.pending.set(message.id, { method: message.method, resuming: false });
    this.held.push(message);
  }

  /** Leaves `starting`: the held messages go where the phase says. */
  private enter(next: 'signed-out' | 'forwarding'): void {
    this.phase = next;
    for (const message of this.held.splice(0)) {
      if (isJSONRPCRequest(message)) this.pending.delete(message.id);
      this.local.onmessage?.(message);
    }
  }

  private async shutdown(reason: Reason, terminate: boolean): Promise<void> {
    if (this.closing) return;
    this.failAll(reason);
    this.held.length = 0;
    this.closing = true;
    this.stop.abort();
    this.io.stdin.off('end', this.onEnd);
    this.io.stdin.off('close', this.onEnd);
    this.options.signal?.removeEventListener('abort', this.onAbort);
    if (terminate && this.remote.sessionId !== undefined && this.source?.peek()) {
      await Promise.race([this.remote.terminateSession().catch(() => undefined), new Promise((r) => setTimeout(r, TERMINATE_TIMEOUT_MS).unref())]);
    }
    await this.remote.close().catch(() => undefined);
    await this.local.close().catch(() => undefined);
    this.finish();
  }

  private readonly onEnd = () => void this.shutdown({ code: 'backend.unavailable', message: 'The MCP client closed its input.' }, true);
  private readonly onAbort = () => void this.shutdown({ code: 'backend.unavailable', message: 'The bridge was stopped.' }, true);
}

function isReason(value: unknown): value is Reason {
  return value !== null && typeof value === 'object' && 'code' in value && 'message' in value && !(value instanceof Error);
}
