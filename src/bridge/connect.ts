// `drawbridge connect <url>`: a local stdio MCP server for agents that only
// launch stdio servers, forwarding every JSON-RPC message to a remote
// Drawbridge over Streamable HTTP and back, untouched: requests, responses,
// notifications, and the gateway's own requests to the client (elicitation,
// progress). The bridge holds the user's access token (tokens.ts) and adds it
// to every HTTP request to the gateway's origin, and to nothing else; a 401 gets
// one refresh and one retry. It holds no backend credential: the gateway does.
//
// The bridge reads the messages only for its own bookkeeping: which client
// requests still wait for an answer (so that when the gateway cannot be
// reached, or signing in fails, the agent gets a JSON-RPC error instead of
// waiting forever), and the negotiated protocol version (the HTTP transport
// must send it as a header).

import type { Readable, Writable } from 'node:stream';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { isJSONRPCErrorResponse, isJSONRPCNotification, isJSONRPCRequest, isJSONRPCResultResponse, type JSONRPCMessage, type RequestId } from '@modelcontextprotocol/sdk/types.js';
import { DrawbridgeError, type ErrorCode } from '../errors.js';
import { describeError, gatewayEndpoint, obtainAccessToken, printable, type BridgeOptions, type TokenSource } from './tokens.js';

export type { BridgeOptions, TokenSource } from './tokens.js';
export { obtainAccessToken } from './tokens.js';

export interface BridgeIo {
  readonly stdin: Readable;
  readonly stdout: Writable;
}

/** The JSON-RPC error code of the answers the bridge gives itself (the SDK's ConnectionClosed). */
export const BRIDGE_ERROR_CODE = -32000;

/** After a response stream ends, how long the SDK may take to hand over what it carried before a request counts as unanswered. */
const STREAM_GRACE_MS = 250;
const TERMINATE_TIMEOUT_MS = 3_000;

interface Reason {
  readonly code: ErrorCode;
  readonly message: string;
  readonly hint?: string;
}

interface Pending {
  readonly method: string;
  /** The response stream ended after an event id: the SDK resumes it (Last-Event-ID), so the answer may still come. */
  resuming: boolean;
}

/** The JSON-RPC request ids in a POST body the SDK transport built (one message, or a batch). */
function requestIds(body: unknown): RequestId[] {
  if (typeof body !== 'string') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return [];
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).filter((m) => isJSONRPCRequest(m)).map((m) => m.id);
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
  if (error instanceof DrawbridgeError) return { code: error.code, message: error.message, hint: error.hint };
  if (error instanceof StreamableHTTPError) {
    const detail = printable(error.message.replace(/^Streamable HTTP error: /, ''), 500);
    if (error.code === 401) {
      return { code: 'identity.invalid_token', message: `The gateway refused the access token even after it was renewed: ${detail}`, hint: 'Check that the gateway trusts this provider and client, then restart drawbridge connect to sign in again.' };
    }
    if (error.code === 403) return { code: 'identity.insufficient_scope', message: `The gateway refused the request: ${detail}` };
    if (error.code !== undefined && error.code >= 500) return { code: 'backend.unavailable', message: `The gateway failed (HTTP ${error.code}): ${detail}`, hint: 'Retry later, or tell the gateway operator.' };
    return { code: 'backend.error', message: `The gateway refused the request (HTTP ${error.code ?? '?'}): ${detail}` };
  }
  return { code: 'backend.unavailable', message: `The gateway ${origin} could not be reached: ${describeError(error)}`, hint: 'Check the network and that the gateway is running, then retry.' };
}

/**
 * Serves MCP on `io` (default: this process's stdin/stdout) and forwards it to the
 * gateway at options.url. Signs in at start (the prompt goes to options.log). Resolves
 * when stdin closes, options.signal aborts, or the gateway ends the MCP session.
 */
export async function runBridge(options: BridgeOptions, io: BridgeIo = { stdin: process.stdin, stdout: process.stdout }): Promise<void> {
  const endpoint = gatewayEndpoint(options.url);
  const origin = endpoint.origin;
  const log = options.log;
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const tokenOptions: BridgeOptions = { ...options, signal };

  let closing = false;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  // --- tokens: one sign-in at a time; a failed one is retried by the next request.
  let sourcePromise: Promise<TokenSource> | null = null;
  let source: TokenSource | null = null;
  const tokens = (): Promise<TokenSource> => {
    if (source) return Promise.resolve(source);
    if (!sourcePromise) {
      const attempt = obtainAccessToken(tokenOptions).then((s) => (source = s));
      sourcePromise = attempt;
      attempt.catch(() => {
        if (sourcePromise === attempt) sourcePromise = null;
      });
    }
    return sourcePromise;
  };

  // --- requests from the client still waiting for the gateway's answer.
  const pending = new Map<RequestId, Pending>();
  const answeredByBridge = new Set<RequestId>();
  let initializeId: RequestId | undefined;

  const local = new StdioServerTransport(io.stdin, io.stdout);

  const toClient = (message: JSONRPCMessage) => {
    local.send(message).catch((error: unknown) => {
      if (!closing) log(`Could not write to the MCP client: ${describeError(error)}`);
    });
  };

  const answer = (id: RequestId, reason: Reason) => {
    const request = pending.get(id);
    if (!request) return;
    pending.delete(id);
    answeredByBridge.add(id);
    log(`${request.method} failed: ${reason.message}`);
    toClient({
      jsonrpc: '2.0',
      id,
      error: {
        code: BRIDGE_ERROR_CODE,
        message: `${reason.code}: ${reason.message}${reason.hint ? `\nWhat to do: ${reason.hint}` : ''}`,
        data: { code: reason.code, ...(reason.hint ? { hint: reason.hint } : {}) },
      },
    });
  };

  const failAll = (reason: Reason, only?: (p: Pending) => boolean) => {
    for (const [id, request] of [...pending]) if (!only || only(request)) answer(id, reason);
  };

  // A response stream that ended without carrying the answer to its request.
  const streamEnded = (ids: RequestId[], resumable: boolean, why: string) => {
    if (closing) return;
    for (const id of ids) {
      const request = pending.get(id);
      if (!request) continue;
      if (resumable) request.resuming = true;
      else answer(id, { code: 'backend.unavailable', message: `The gateway closed the response stream before answering (${why}).`, hint: 'Retry the request; if it keeps failing, tell the gateway operator.' });
    }
  };

  /** Watches a POST's event stream so that its requests are answered even if it ends early. */
  const watch = (response: Response, init: RequestInit | undefined): Response => {
    if (init?.method !== 'POST' || !response.ok || !response.body) return response;
    const contentType = (response.headers.get('content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (contentType !== 'text/event-stream') return response;
    const ids = requestIds(init.body);
    if (ids.length === 0) return response;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let tail = '\n';
    let resumable = false;
    let ended = false;
    const end = (why: string) => {
      if (ended) return;
      ended = true;
      setTimeout(() => streamEnded(ids, resumable, why), STREAM_GRACE_MS);
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
          if (!resumable) {
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
  };

  // --- every HTTP request of the SDK transport goes through here.
  const authorizedFetch: FetchLike = async (input, init) => {
    const target = new URL(input instanceof URL ? input.href : input);
    if (target.origin !== origin) {
      throw new DrawbridgeError('config.invalid', `Refusing to send the access token to ${printable(target.origin)}: only ${origin} gets it.`, { hint: 'The gateway redirected elsewhere; tell its operator.' });
    }
    // On the way out (ending the session), only a token at hand: no refresh, no sign-in.
    const tokenSource = closing ? source : await tokens();
    const token = closing ? (tokenSource?.peek() ?? null) : await tokenSource?.current();
    if (!tokenSource || !token) throw new Error('no usable access token while closing');
    const send = async (bearer: string) => {
      try {
        return await fetch(target, { ...init, headers: withBearer(init?.headers, bearer), redirect: 'manual' });
      } catch (error) {
        if ((error as Error)?.name === 'AbortError') throw error;
        throw new DrawbridgeError('backend.unavailable', `The gateway ${origin} could not be reached: ${describeError(error)}`, { hint: 'Check the network and that the gateway is running, then retry.', cause: error });
      }
    };
    let response = await send(token);
    if (response.status === 401 && !closing) {
      log(`The gateway refused the access token (${challengeOf(response)}); getting a new one.`);
      await response.body?.cancel().catch(() => undefined);
      const fresh = await tokenSource.refresh(token);
      response = await send(fresh);
      if (response.status === 401) log(`The gateway refused the new access token too (${challengeOf(response)}).`);
    }
    return watch(response, init);
  };

  const remote = new StreamableHTTPClientTransport(endpoint, { fetch: authorizedFetch });

  const sessionEnded = (detail: string) => {
    if (closing) return;
    log(`The gateway ended the MCP session (${detail}); stopping so the client can start a new one.`);
    void shutdown({ code: 'backend.unavailable', message: 'The gateway ended the MCP session.', hint: 'Restart the MCP server (drawbridge connect) to open a new session.' }, false);
  };

  // Errors the transport reports besides those of send() (handled where send is awaited).
  const handled = new WeakSet<object>();
  remote.onerror = (error) => {
    setTimeout(() => {
      if (closing || handled.has(error)) return;
      if (error instanceof StreamableHTTPError && error.code === 404 && remote.sessionId !== undefined) return sessionEnded('HTTP 404 on its event stream');
      if (error.name === 'AbortError') return;
      log(`Gateway event stream: ${describeError(error)}`);
      if (/Maximum reconnection attempts/.test(error.message)) {
        failAll({ code: 'backend.unavailable', message: 'The gateway\'s response stream broke and could not be resumed.' }, (p) => p.resuming);
      }
    }, 0);
  };

  remote.onmessage = (message) => {
    if (closing) return;
    if (isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) {
      const id = message.id;
      if (id !== undefined) {
        if (answeredByBridge.has(id) && !pending.has(id)) {
          // The client already got the bridge's error for it; a second answer would confuse it.
          answeredByBridge.delete(id);
          return;
        }
        pending.delete(id);
        if (id === initializeId && isJSONRPCResultResponse(message)) {
          const version = (message.result as { protocolVersion?: unknown }).protocolVersion;
          if (typeof version === 'string') remote.setProtocolVersion(version);
        }
      }
    }
    toClient(message);
  };

  local.onmessage = (message) => {
    if (isJSONRPCRequest(message)) {
      answeredByBridge.delete(message.id);
      pending.set(message.id, { method: message.method, resuming: false });
      if (message.method === 'initialize') initializeId = message.id;
      if (closing) {
        answer(message.id, { code: 'backend.unavailable', message: 'The bridge is shutting down.' });
        return;
      }
    } else if (isJSONRPCNotification(message) && message.method === 'notifications/cancelled') {
      // The gateway will not answer a cancelled request (and the client expects nothing).
      const id = (message.params as { requestId?: unknown } | undefined)?.requestId;
      if (typeof id === 'string' || typeof id === 'number') pending.delete(id);
    }
    if (closing) return;
    remote.send(message).catch((error: unknown) => {
      if (error !== null && typeof error === 'object') handled.add(error);
      if (closing) return;
      if (error instanceof StreamableHTTPError && error.code === 404 && remote.sessionId !== undefined) {
        // Answered (with the rest) by the shutdown.
        return sessionEnded('HTTP 404: the session is unknown to it');
      }
      const reason = explain(error, origin);
      if (isJSONRPCRequest(message)) answer(message.id, reason);
      else log(`Could not deliver a message to the gateway: ${reason.message}`);
    });
  };

  local.onerror = (error) => {
    if (!closing) log(`MCP client input: ${describeError(error)}`);
  };

  async function shutdown(reason: Reason, terminate: boolean): Promise<void> {
    if (closing) return;
    failAll(reason);
    closing = true;
    stop.abort();
    io.stdin.off('end', onEnd);
    io.stdin.off('close', onEnd);
    options.signal?.removeEventListener('abort', onAbort);
    if (terminate && remote.sessionId !== undefined && source?.peek()) {
      await Promise.race([remote.terminateSession().catch(() => undefined), new Promise((r) => setTimeout(r, TERMINATE_TIMEOUT_MS).unref())]);
    }
    await remote.close().catch(() => undefined);
    await local.close().catch(() => undefined);
    finish();
  }

  const onEnd = () => void shutdown({ code: 'backend.unavailable', message: 'The MCP client closed its input.' }, true);
  const onAbort = () => void shutdown({ code: 'backend.unavailable', message: 'The bridge was stopped.' }, true);

  if (options.signal?.aborted) return;
  options.signal?.addEventListener('abort', onAbort, { once: true });
  io.stdin.once('end', onEnd);
  io.stdin.once('close', onEnd);

  await remote.start();
  await local.start();
  log(`Forwarding MCP over stdio to ${endpoint.href}.`);
  // Sign in now, not at the first request: the prompt should be there when the user looks.
  tokens().catch((error: unknown) => {
    if (!closing) log(`Not signed in: ${describeError(error)} (will retry with the next request).`);
  });
  return finished;
}
