// Raw MCP 2026-07-28 requests for the tests that speak the revision by hand (no SDK in between):
// the per-request `_meta` envelope, the standard headers, a tools/call over HTTP, and reading its
// answer (JSON or one SSE event). One place, so every raw client of the suite builds them alike.

export const MODERN = '2026-07-28';
export const LEGACY = '2025-11-25';
/** The form-mode elicitation capability a client declares to be asked for approval in the client. */
export const FORM = { elicitation: { form: {} } };

export interface Envelope {
  /** clientInfo.name (the journal's client). */
  readonly client: string;
  readonly version?: string;
  readonly capabilities?: Record<string, unknown>;
}

/** The `_meta` of a 2026-07-28 request: revision, client info and capabilities on every request. */
export function envelope({ client, version = MODERN, capabilities = {} }: Envelope): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': version,
    'io.modelcontextprotocol/clientInfo': { name: client, version: '0.0.1' },
    'io.modelcontextprotocol/clientCapabilities': capabilities,
  };
}

/** The headers a 2026-07-28 POST carries: revision, method, the tool's name for tools/call, and the bearer token when given. */
export function modernHeaders(
  method: string,
  options: { readonly name?: string; readonly token?: string; readonly version?: string } = {},
): Record<string, string> {
  return {
    accept: 'application/json, text/event-stream',
    'content-type': 'application/json',
    'mcp-protocol-version': options.version ?? MODERN,
    'mcp-method': method,
    ...(options.name === undefined ? {} : { 'mcp-name': options.name }),
    ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
  };
}

export interface ModernToolsCall {
  readonly url: string;
  readonly token: string;
  /** tools/call params besides _meta: name, arguments, and inputResponses / requestState when re-issuing. */
  readonly params: { readonly name: string; readonly arguments: Record<string, unknown> } & Record<string, unknown>;
  readonly envelope: Envelope;
  /** Extra `_meta` keys (e.g. trace context) beside the envelope. */
  readonly meta?: Record<string, unknown>;
  /** Extra HTTP headers (e.g. trace context) beside the standard ones. */
  readonly headers?: Record<string, string>;
  readonly signal?: AbortSignal;
}

/** POSTs one 2026-07-28 tools/call (id 7) with its standard headers; the raw Response. */
export function modernToolsCall(call: ModernToolsCall): Promise<Response> {
  const params = { ...call.params, _meta: { ...envelope(call.envelope), ...call.meta } };
  return fetch(call.url, {
    method: 'POST',
    headers: { ...modernHeaders('tools/call', { name: call.params.name, token: call.token }), ...call.headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params }),
    ...(call.signal ? { signal: call.signal } : {}),
  });
}

/** The JSON-RPC message of an answer, whether sent as JSON or as one SSE `data:` event. */
export async function messageOf<T = Record<string, any>>(response: Response): Promise<T> {
  const text = await response.text();
  return JSON.parse(/^data: (.*)$/m.exec(text)?.[1] ?? text) as T;
}
