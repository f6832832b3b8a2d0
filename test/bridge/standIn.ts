// A stand-in remote MCP server for the bridge tests: RFC 9728 metadata where the
// test says, and a Streamable HTTP MCP endpoint (the SDK's server transport, one
// session per initialize) that verifies every bearer token with the gateway's own
// verifier (src/identity/oidc.ts) against the test IdP. Its tools exercise what
// the bridge must pass through untouched: a tool result naming the caller (and
// one naming the client that initialized the session), an elicitation round
// trip, progress notifications, and a response stream that ends without an answer.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { oidcIdentitySchema } from '../../src/config/schema.js';
import { isDrawbridgeError } from '../../src/errors.js';
import { createOidcVerifier, type VerifiedToken } from '../../src/identity/oidc.js';

export interface StandInOptions {
  /** authorization_servers[0]. */
  readonly issuer: string;
  /** Where the metadata is served: the path-inserted well-known URL (default), the root one, or only via the 401 challenge. */
  readonly metadataAt?: 'inserted' | 'root' | 'challenge';
  /** scopes_supported; omitted when empty. Default ['mcp']. */
  readonly scopes?: readonly string[];
  /** Overrides the metadata's `resource` (default: the endpoint URL). */
  readonly resource?: (endpoint: string) => string;
  /** Overrides the metadata's authorization_servers[0]. */
  readonly authorizationServer?: string;
}

export interface SeenRequest {
  readonly method: string;
  readonly path: string;
  /** The verified subject, or the refusal status. */
  readonly outcome: string;
  readonly token: string | null;
}

export interface StandIn {
  readonly url: string;
  readonly resource: string;
  readonly origin: string;
  readonly seen: SeenRequest[];
  /** Forget every MCP session (the next request with a session id gets 404). */
  dropSessions(): Promise<void>;
  /** Refuse every token (401 invalid_token) while true. */
  refuseAll: boolean;
  /** Refuse this many more requests' tokens (401 invalid_token), then accept again. */
  refuseNext: number;
  /** Answer POSTs with a redirect to this URL (another origin, say) while set. */
  redirectTo: string | null;
  close(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};

function mcpServer(verified: () => VerifiedToken | undefined): McpServer {
  const server = new McpServer({ name: 'stand-in-gateway', version: '0.0.1' });
  server.registerTool('whoami', { description: 'The verified caller.', inputSchema: {} }, async (_args, extra) => {
    const who = (extra.authInfo?.extra?.['verified'] as VerifiedToken | undefined) ?? verified();
    return {
      content: [
        { type: 'text', text: JSON.stringify({ subject: who?.identity.subject ?? null, groups: who?.identity.groups ?? [], clientId: who?.clientId ?? null }) },
      ],
    };
  });
  server.registerTool(
    'client',
    { description: 'The MCP client this session was initialized by: its clientInfo and capabilities.', inputSchema: {} },
    async () => {
      const info = server.server.getClientVersion();
      return { content: [{ type: 'text', text: JSON.stringify({ clientInfo: info ?? null, capabilities: server.server.getClientCapabilities() ?? null }) }] };
    },
  );
  server.registerTool(
    'ask',
    { description: 'Asks the human (elicitation) and returns the answer.', inputSchema: { question: z.string() } },
    async ({ question }, extra) => {
      // Related to the call, so it travels on the call's response stream (as the gateway's approvals do).
      const answer = await server.server.elicitInput(
        {
          message: question,
          requestedSchema: { type: 'object', properties: { decision: { type: 'string', enum: ['yes', 'no'] } }, required: ['decision'] },
        },
        { relatedRequestId: extra.requestId },
      );
      return { content: [{ type: 'text', text: JSON.stringify(answer) }] };
    },
  );
  server.registerTool('count', { description: 'Counts to n with progress notifications.', inputSchema: { n: z.number() } }, async ({ n }, extra) => {
    const token = extra._meta?.progressToken;
    for (let i = 1; i <= n; i++) {
      if (token !== undefined) await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress: i, total: n } });
    }
    return { content: [{ type: 'text', text: `counted to ${n}` }] };
  });
  return server;
}

export async function startStandIn(options: StandInOptions): Promise<StandIn> {
  const sockets = new Set<Socket>();
  const sessions = new Map<string, { transport: StreamableHTTPServerTransport; server: McpServer }>();
  const seen: SeenRequest[] = [];
  let endpoint = '';
  // eslint-disable-next-line prefer-const -- assigned once the endpoint is known, after the handlers that read it are built
  let verifier: ReturnType<typeof createOidcVerifier>;
  let metadataUrl = '';

  const metadata = () => ({
    resource: options.resource ? options.resource(endpoint) : endpoint,
    authorization_servers: [options.authorizationServer ?? options.issuer],
    bearer_methods_supported: ['header'],
    ...((options.scopes ?? ['mcp']).length > 0 ? { scopes_supported: [...(options.scopes ?? ['mcp'])] } : {}),
  });

  const standIn: StandIn = {
    url: '',
    resource: '',
    origin: '',
    seen,
    refuseAll: false,
    refuseNext: 0,
    redirectTo: null,
    async dropSessions() {
      const all = [...sessions.values()];
      sessions.clear();
      for (const s of all) await s.transport.close().catch(() => undefined);
    },
    async close() {
      await standIn.dropSessions();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', standIn.origin);
    const at = options.metadataAt ?? 'inserted';
    if (req.method === 'GET' && url.pathname.startsWith('/.well-known/oauth-protected-resource')) {
      const served = at === 'inserted' ? '/.well-known/oauth-protected-resource/mcp' : at === 'root' ? '/.well-known/oauth-protected-resource' : null;
      if (url.pathname === served) return json(res, 200, metadata());
      return json(res, 404, { error: 'not_found' });
    }
    if (req.method === 'GET' && url.pathname === '/meta/prm.json' && at === 'challenge') return json(res, 200, metadata());
    if (url.pathname !== '/mcp') return json(res, 404, { error: 'not_found' });

    const header = req.headers['authorization'] ?? '';
    const token = /^Bearer (.+)$/.exec(header)?.[1] ?? null;
    const refuse = (status: number, error?: string, description?: string) => {
      seen.push({ method: req.method ?? '?', path: url.pathname, outcome: String(status), token });
      const params = [
        error ? `error="${error}"` : '',
        description ? `error_description="${description.replace(/"/g, "'")}"` : '',
        `resource_metadata="${metadataUrl}"`,
      ]
        .filter(Boolean)
        .join(', ');
      json(res, status, { error: error ?? 'unauthorized', error_description: description ?? 'sign in' }, { 'www-authenticate': `Bearer ${params}` });
    };
    if (standIn.redirectTo && req.method === 'POST') {
      seen.push({ method: 'POST', path: url.pathname, outcome: '307', token });
      res.writeHead(307, { location: standIn.redirectTo });
      return res.end();
    }
    if (!token) return refuse(401);
    if (standIn.refuseAll) return refuse(401, 'invalid_token', 'refused by the test');
    if (standIn.refuseNext > 0) {
      standIn.refuseNext -= 1;
      return refuse(401, 'invalid_token', 'refused once by the test');
    }
    let verified: VerifiedToken;
    try {
      verified = await verifier.verify(token);
    } catch (error) {
      return refuse(401, 'invalid_token', isDrawbridgeError(error) ? error.message : 'invalid');
    }
    seen.push({ method: req.method ?? '?', path: url.pathname, outcome: verified.identity.subject, token });
    const authInfo = { token: '', clientId: verified.clientId ?? '', scopes: [...verified.scopes], expiresAt: verified.expiresAt, extra: { verified } };
    const withAuth = Object.assign(req, { auth: authInfo });

    let body: unknown;
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    }
    // A tools/call of `vanish`: the response stream opens and ends without an answer.
    const call = body as { method?: unknown; params?: { name?: unknown } } | undefined;
    if (call?.method === 'tools/call' && call.params?.name === 'vanish') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      return res.end();
    }
    const sessionId = req.headers['mcp-session-id'];
    if (typeof sessionId === 'string') {
      const session = sessions.get(sessionId);
      if (!session) return json(res, 404, { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null });
      return session.transport.handleRequest(withAuth, res, body);
    }
    if (req.method === 'POST' && isInitializeRequest(body)) {
      const server = mcpServer(() => verified);
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void sessions.set(id, { transport, server }),
      });
      await server.connect(transport);
      return transport.handleRequest(withAuth, res, body);
    }
    return json(res, 400, { jsonrpc: '2.0', error: { code: -32000, message: 'No session' }, id: null });
  };

  const http = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { error: String(error) });
      else res.end();
    });
  });
  http.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;
  endpoint = `${origin}/mcp`;
  metadataUrl = options.metadataAt === 'challenge' ? `${origin}/meta/prm.json` : `${origin}/.well-known/oauth-protected-resource/mcp`;
  verifier = createOidcVerifier(oidcIdentitySchema.parse({ mode: 'oidc', issuer: options.issuer, audience: endpoint }));
  Object.assign(standIn, { url: endpoint, resource: endpoint, origin });
  return standIn;
}
