// The MCP wiring: tools are registered from the config (connection is an enum
// of declared names; the description says what each connection is and which
// rules apply), and every tools/call goes through the pipeline. The SDK (v2
// server packages, pinned) lives at the transport edges (this file and stdio.ts,
// http/, bridge/, approval/elicitation.ts); pipeline, policy, backends and masking
// never import it (test/architecture/boundaries.test.ts).
// One factory serves both protocol eras: a 2025-11-25 connection (initialize,
// elicitation/create) and 2026-07-28 requests (per-request _meta envelope,
// server/discover, resultType, ttlMs/cacheScope); the SDK's entries decide the era
// (serveStdio per connection, createMcpHandler / the sessionful transport per HTTP
// request). Uses the SDK's low-level Server so that even malformed calls reach the
// pipeline and the journal instead of being rejected before them: GatewayServer sends
// a tools/call the SDK would refuse as invalid straight to the pipeline (a name that
// is not a string, arguments that are not an object, nesting of any depth), which
// journals and refuses it. Over stdio, src/stdio.ts reads messages of any size and
// depth without losing a call.

import { randomUUID } from 'node:crypto';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  inputRequired,
  ProtocolError,
  ProtocolErrorCode,
  Server,
  type CallToolResult,
  type ClientCapabilities,
  type ElicitRequestFormParams,
  type InputRequiredResult,
  type JSONRPCRequest,
  type McpRequestContext,
  type Result,
  type ServerContext,
  type ServerOptions,
  type Tool,
  TRACEPARENT_META_KEY,
  TRACESTATE_META_KEY,
} from '@modelcontextprotocol/server';
import { serveStdio as serveStdioEntry } from '@modelcontextprotocol/server/stdio';
import { z } from 'zod';
import type { GatewayConfig, LoadedTool } from './config/schema.js';
import { isDrawbridgeError, type DrawbridgeError } from './errors.js';
import type { IdentityProvider } from './identity/identity.js';
import { tabularOutputShape, toToolResult } from './pipeline/answer.js';
import { callTool, inputSchemaFor } from './pipeline/callTool.js';
import type { Gateway } from './pipeline/gateway.js';
import { APPROVAL_INPUT_KEY, type ApprovalChannel } from './approval/approver.js';
import { elicitationHook } from './approval/elicitation.js';
import { anyGlob } from './policy/match.js';
import { describeValue } from './journal/bounded.js';
import { traceContextOf, type TraceContext } from './pipeline/trace-context.js';
import { StdioTransport } from './stdio.js';

const SERVER_NAME = 'drawbridge';
export const SERVER_VERSION = '0.1.0';

const outputSchema = z.toJSONSchema(z.object(tabularOutputShape)) as Tool['outputSchema'];

export function describeTools(config: GatewayConfig): Tool[] {
  return [...config.tools.values()].map((tool) => {
    const inputSchema = z.toJSONSchema(inputSchemaFor(tool)) as Record<string, unknown>;
    delete inputSchema['$schema'];
    const props = (inputSchema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
    if (props['connection']) props['connection']['description'] = 'Which declared connection to use (see the tool description).';
    const readOnly = !mayChangeData(config, tool);
    return {
      name: tool.declaration.name,
      title: tool.declaration.name,
      description: describe(config, tool),
      inputSchema: inputSchema as Tool['inputSchema'],
      outputSchema,
      annotations: {
        // Honest hints: read-only only when no rule could ever allow a change through this tool.
        readOnlyHint: readOnly,
        destructiveHint: !readOnly,
        idempotentHint: false,
        openWorldHint: false,
      },
    };
  });
}

function mayChangeData(config: GatewayConfig, tool: LoadedTool): boolean {
  return config.rules.some(
    (r) =>
      r.effect !== 'deny' && (!r.match.tool || anyGlob(r.match.tool, tool.declaration.name)) && (!r.match.access || r.match.access.some((a) => a !== 'read')),
  );
}

function describe(config: GatewayConfig, tool: LoadedTool): string {
  const lines = [tool.declaration.description ?? tool.backend.toolDescription, '', 'Connections:'];
  for (const name of tool.declaration.connections) {
    const c = config.connections.get(name);
    if (c) lines.push(`- ${name}: ${tool.backend.describeConnection(c.declaration)}`);
  }
  const rules = config.rules.filter((r) => !r.match.tool || anyGlob(r.match.tool, tool.declaration.name));
  if (rules.length > 0) {
    lines.push('', 'Policy (deny wins, then approve, then allow; anything else is refused):');
    for (const r of rules) {
      const what = [
        r.match.access?.join('/'),
        r.match.operation?.join('/'),
        r.match.connection && `on ${r.match.connection.join(', ')}`,
        // The backends' own keys as written: tables, namespaces, programs, …
        ...r.match.backends.flatMap((keys) =>
          Object.entries(keys.keys).map(([key, value]) => `${key} ${Array.isArray(value) ? value.join(', ') : String(value)}`),
        ),
        r.match.groups && `for ${r.match.groups.join(', ')}`,
        r.match.principal && `(${r.match.principal.map((p) => (p === 'service' ? 'service tokens' : 'persons')).join(', ')})`,
      ]
        .filter(Boolean)
        .join(' ');
      lines.push(`- ${r.name}: ${r.effect} ${what || 'everything'}${r.message ? ` (${r.message})` : ''}`);
    }
  }
  return lines.join('\n');
}

/** The protocol era one request is served in: 2025-11-25 (initialize, push elicitation) or 2026-07-28 (per-request envelope). */
export type McpEra = McpRequestContext['era'];

/**
 * tools/list depends on policy (the descriptions embed it) and may come to depend on the principal:
 * a modern client may cache it only for itself, and briefly.
 */
export const TOOLS_LIST_TTL_MS = 60_000;

type RequestHandler = (request: JSONRPCRequest, ctx: ServerContext) => Promise<Result>;
type RawToolsCall = (params: unknown, ctx: ServerContext) => Promise<CallToolResult | InputRequiredResult>;

/**
 * The SDK's Server validates tools/call params inside its (protected) `_wrapHandler` hook, before
 * any handler, and answers a malformed call with -32602 that the journal would never see. Here a
 * call the SDK refuses as an invalid request goes to the pipeline as sent instead, which journals
 * and refuses it; a well-formed call keeps the SDK's wrapper (result validation per era,
 * requestState verification, input_required handling). Likewise a requestState that is not a
 * string, which the SDK refuses before any handler: the pipeline's approval adapter journals it
 * as malformed and it is answered as every refused state is (refusedState). Relies on a protected
 * hook and on the SDK's messages: the SDK version is pinned exactly, and
 * test/journal/every-call.test.ts (malformed calls journaled) and test/mcp-eras/approval.test.ts guard it.
 */
class GatewayServer extends Server {
  private raw: RawToolsCall | null = null;

  /** Set once, before the tools/call handler is registered. */
  useRawToolsCall(raw: RawToolsCall): void {
    this.raw = raw;
  }

  protected override _wrapHandler(method: string, handler: RequestHandler): RequestHandler {
    const wrapped = super._wrapHandler(method, handler);
    if (method !== 'tools/call') return wrapped;
    return async (request, ctx) => {
      try {
        return await wrapped(request, ctx);
      } catch (error) {
        if (this.raw && (isInvalidCallRequest(error) || isSdkRefusedState(error))) return this.raw(request.params, ctx);
        throw error;
      }
    };
  }
}

function isInvalidCallRequest(error: unknown): boolean {
  return error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams && error.message.startsWith('Invalid tools/call request');
}

/** The SDK's own refusal of a requestState (no verify hook is configured: only a state that is not a string). */
function isSdkRefusedState(error: unknown): boolean {
  return error instanceof ProtocolError && error.code === ProtocolErrorCode.InvalidParams && error.message === SDK_REFUSED_STATE;
}

const SDK_REFUSED_STATE = 'Invalid or expired requestState';

/**
 * A requestState the approval adapter refused (journaled there, with its reason): answered as the
 * revision asks a server to reject state that fails verification, a JSON-RPC error (-32602), whose
 * data carries Drawbridge's code, reason and hint. Its message is Drawbridge's own, never the SDK's.
 */
function refusedState(error: DrawbridgeError): ProtocolError {
  return new ProtocolError(ProtocolErrorCode.InvalidParams, `${error.code}: ${error.message}`, {
    reason: 'invalid_request_state',
    code: error.code,
    refusal: error.details['reason'] ?? null,
    hint: error.hint,
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Who the client says it is, and what it can do: per request on 2026-07-28 (the envelope), per connection on 2025-11-25 (initialize). */
interface ClientView {
  readonly info?: { readonly name: string; readonly version: string };
  readonly capabilities: ClientCapabilities | undefined;
}

function clientView(server: Server, era: McpEra, ctx: ServerContext): ClientView {
  if (era === 'legacy') {
    const info = server.getClientVersion();
    return { ...(info ? { info: { name: info.name, version: info.version } } : {}), capabilities: server.getClientCapabilities() };
  }
  const envelope: Record<string, unknown> = { ...(ctx.mcpReq.envelope ?? {}) };
  const info = envelope[CLIENT_INFO_META_KEY];
  const caps = envelope[CLIENT_CAPABILITIES_META_KEY];
  return {
    ...(isRecord(info) && typeof info['name'] === 'string'
      ? { info: { name: info['name'], version: typeof info['version'] === 'string' ? info['version'] : '' } }
      : {}),
    capabilities: isRecord(caps) ? (caps as ClientCapabilities) : undefined,
  };
}

/**
 * Whether the client can show a form: `elicitation.form`, or a bare `elicitation: {}` (the
 * spec reads an empty elicitation capability as form support).
 */
function declaresFormElicitation(capabilities: ClientCapabilities | undefined): boolean {
  const elicitation = capabilities?.elicitation;
  if (!isRecord(elicitation)) return false;
  return elicitation['form'] !== undefined || (elicitation['url'] === undefined && Object.keys(elicitation).length === 0);
}

export interface McpServerOptions {
  /**
   * The agent session journaled with each call when the transport has none of its own
   * (stdio: one per connection). A Streamable HTTP transport's `Mcp-Session-Id` wins.
   */
  readonly session?: string;
  /** The era this instance serves (the SDK entry's decision); absent: 2025-11-25, as for a transport connected directly. */
  readonly era?: McpEra;
}

/** What the factory shares between the instances it builds. */
interface Served {
  readonly gateway: Gateway;
  readonly identities: IdentityProvider;
  /** The current config's tools (they follow a reload), described once per config. */
  readonly tools: () => Tool[];
}

const described = new WeakMap<GatewayConfig, Tool[]>();

/** tools/list of the gateway's current config: after a reload, the next list shows the new tools and policy. */
function currentTools(gateway: Gateway): () => Tool[] {
  return () => {
    const config = gateway.config;
    let tools = described.get(config);
    if (tools === undefined) {
      tools = describeTools(config);
      described.set(config, tools);
    }
    return tools;
  };
}

function serverOptions(): ServerOptions {
  return {
    capabilities: { tools: {} },
    cacheHints: { 'tools/list': { ttlMs: TOOLS_LIST_TTL_MS, cacheScope: 'private' } },
  };
}

function build(served: Served, options: McpServerOptions): Server {
  const era = options.era ?? 'legacy';
  const server = new GatewayServer({ name: SERVER_NAME, version: SERVER_VERSION }, serverOptions());
  server.setRequestHandler('tools/list', async () => ({ tools: served.tools() }));
  const call: RawToolsCall = (params, ctx) => pipelineCall(served, server, era, options.session, params, ctx);
  server.useRawToolsCall(call);
  // The 3-argument registration: the params schema accepts any object, so the spec schema
  // never answers for the pipeline (GatewayServer handles what the SDK's own check refuses).
  server.setRequestHandler('tools/call', { params: z.looseObject({}) }, (params, ctx) => call(params, ctx));
  return server;
}

async function pipelineCall(
  served: Served,
  server: Server,
  era: McpEra,
  fallbackSession: string | undefined,
  raw: unknown,
  ctx: ServerContext,
): Promise<CallToolResult | InputRequiredResult> {
  const params = isRecord(raw) ? raw : {};
  const name = params['name'];
  const meta = isRecord(params['_meta']) ? params['_meta'] : isRecord(ctx.mcpReq._meta) ? ctx.mcpReq._meta : {};
  let identity = null;
  let identityError: DrawbridgeError | undefined;
  // The scopes of this request's token (HTTP) or the process's (stdio with OIDC); null without a token.
  const scopes = served.identities.scopes({ authInfo: ctx.http?.authInfo });
  try {
    identity = served.identities.identify({ authInfo: ctx.http?.authInfo });
  } catch (error) {
    // The pipeline refuses a call without identity, and journals why.
    identityError = isDrawbridgeError(error) ? error : undefined;
  }
  const client = clientView(server, era, ctx);
  const session = ctx.sessionId ?? fallbackSession;
  const formElicitation = declaresFormElicitation(client.capabilities);
  // How a human can be reached during this call: the elicitation form pushed as elicitation/create
  // (2025-11-25, only if the client declared it); on 2026-07-28, which has no server→client request,
  // the same form as an input_required answer and the re-issued call (`rounds`, only if the request's
  // envelope declares form elicitation; otherwise the approval goes out of band or is refused); and
  // progress notifications (only if the client sent a progressToken).
  const token = meta['progressToken'];
  const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;
  let step = 0;
  // The prompt is related to this tools/call, so over Streamable HTTP it travels on the call's own
  // response stream (the SDK's ctx.mcpReq.elicitInput does not relate it by itself; unrelated, it
  // would go to the GET stream, which may not be open, and be dropped).
  const elicit =
    era === 'legacy' && formElicitation
      ? elicitationHook((form, options) => ctx.mcpReq.elicitInput(form, { ...options, relatedRequestId: ctx.mcpReq.id }))
      : undefined;
  const channel: ApprovalChannel = {
    era,
    formElicitation,
    ...(client.info ? { clientName: client.info.name } : {}),
    ...(elicit ? { elicit } : {}),
    ...(era === 'modern' && formElicitation ? { rounds: inputRoundOf(ctx, APPROVAL_INPUT_KEY) } : {}),
    // Aborted when the client cancels the tools/call (or its request timed out).
    signal: ctx.mcpReq.signal,
    ...(progressToken !== undefined
      ? {
          progress: async (message: string) => {
            step += 1;
            await ctx.mcpReq.notify({ method: 'notifications/progress', params: { progressToken, progress: step, message } });
          },
        }
      : {}),
  };
  const trace = callerTrace(meta, ctx);
  const result = await callTool(served.gateway, {
    // A name that is not a string names no tool: described, so the journal shows what was sent.
    tool: typeof name === 'string' ? name : `(not a string: ${describeValue(name, 100)})`,
    args: params['arguments'] === undefined ? {} : params['arguments'],
    identity,
    ...(identityError ? { identityError } : {}),
    ...(scopes ? { scopes } : {}),
    channel,
    ...(client.info ? { client: client.info } : {}),
    ...(session !== undefined ? { session } : {}),
    ...(trace ? { trace } : {}),
  });
  // Held for the human's answer, or its requestState refused (2026-07-28 only: only a modern request carries `rounds`).
  if (!result.ok && result.inputRequired) return toInputRequiredResult(result.inputRequired);
  if (!result.ok && result.error.code === 'approval.state_invalid') throw refusedState(result.error);
  return toToolResult(result);
}

/**
 * The caller's W3C trace context: the request's `_meta` keys `traceparent` / `tracestate` (MCP SEP-414,
 * the SDK's TRACEPARENT_META_KEY), which travel with the message whatever the transport; else, over
 * HTTP, the request's `traceparent` / `tracestate` headers. Invalid values are ignored (null: a new trace).
 */
function callerTrace(meta: Record<string, unknown>, ctx: ServerContext): TraceContext | null {
  const fromMeta = traceContextOf(meta[TRACEPARENT_META_KEY], meta[TRACESTATE_META_KEY]);
  if (fromMeta !== null) return fromMeta;
  const headers = ctx.http?.req?.headers;
  return headers ? traceContextOf(headers.get('traceparent') ?? undefined, headers.get('tracestate') ?? undefined) : null;
}

/**
 * A 2026-07-28 call held for the human's answer, as plain data (the pipeline knows no SDK): form
 * elicitations keyed by input name, and the sealed requestState the client must echo back.
 */
export interface HeldForInput {
  readonly inputRequests: Readonly<Record<string, { readonly method: 'elicitation/create'; readonly params: ElicitRequestFormParams }>>;
  readonly requestState: string;
}

/** The SDK's InputRequiredResult for a held call: the client shows the forms and re-issues the call with the answers. */
export function toInputRequiredResult(held: HeldForInput): InputRequiredResult {
  const inputRequests = Object.fromEntries(Object.entries(held.inputRequests).map(([key, request]) => [key, inputRequired.elicit(request.params)]));
  return inputRequired({ inputRequests, requestState: held.requestState });
}

/**
 * What a re-issued 2026-07-28 call carries for the input named `key`, as plain untrusted data:
 * the requestState it echoes (the raw string: no SDK verify hook is configured, the approval
 * adapter opens and checks its own seal and journals a refusal) and the client's answer.
 */
export function inputRoundOf(ctx: ServerContext, key: string): { readonly requestState?: unknown; readonly response?: unknown } {
  const requestState = ctx.mcpReq.requestState();
  const response = ctx.mcpReq.inputResponses?.[key];
  return { ...(requestState !== undefined ? { requestState } : {}), ...(response !== undefined ? { response } : {}) };
}

/** An MCP server for one 2025-11-25 connection (a transport connected directly, e.g. in process). */
export function createMcpServer(gateway: Gateway, identities: IdentityProvider, options: McpServerOptions = {}): Server {
  return build({ gateway, identities, tools: currentTools(gateway) }, options);
}

/** The factory the SDK's entries call: once per stdio connection (plus a discarded discover probe), once per modern HTTP request. */
export type McpServerFactory = (ctx: McpRequestContext) => Server;

/**
 * `session`: a fresh agent session id per built instance (stdio: per connection, as the
 * SDK builds one instance per connection); absent: none (HTTP sessions bring their own).
 */
export function mcpServerFactory(gateway: Gateway, identities: IdentityProvider, options: { readonly session?: () => string } = {}): McpServerFactory {
  const served: Served = { gateway, identities, tools: currentTools(gateway) };
  return (ctx) => build(served, { era: ctx.era, ...(options.session ? { session: options.session() } : {}) });
}

export interface StdioServing {
  close(): Promise<void>;
}

/** `drawbridge serve`: both eras over stdio, through Drawbridge's own StdioTransport. */
export function serveStdio(gateway: Gateway, identities: IdentityProvider, transport: StdioTransport = new StdioTransport()): StdioServing {
  // One agent session per stdio connection: its calls share this id in the journal.
  const factory = mcpServerFactory(gateway, identities, { session: () => `stdio-${randomUUID()}` });
  return serveStdioEntry(factory, { transport });
}
