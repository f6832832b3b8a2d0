// The MCP wiring: tools are registered from the config (connection is an enum
// of declared names; the description says what each connection is and which
// rules apply), and every tools/call goes through the pipeline. The SDK lives
// at the transport edges (this file and stdio.ts, http/, bridge/, approval/
// elicitation.ts); pipeline, policy, backends and masking never import it
// (test/architecture/boundaries.test.ts). Uses the SDK's
// low-level Server so that even malformed calls reach the pipeline and the
// journal instead of being rejected before them: the tools/call handler is
// registered without the Server's own validation of the request (a name that is not
// a string, arguments that are not an object, nesting of any depth all reach the
// pipeline, which journals them and refuses them). Over stdio, src/stdio.ts reads
// messages of any size and depth without losing a call.

import { randomUUID } from 'node:crypto';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { ListToolsRequestSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { GatewayConfig, LoadedTool } from './config/schema.js';
import { isDrawbridgeError, type DrawbridgeError } from './errors.js';
import type { IdentityProvider } from './identity/identity.js';
import { tabularOutputShape, toToolResult } from './pipeline/answer.js';
import { callTool, inputSchemaFor } from './pipeline/callTool.js';
import type { Gateway } from './pipeline/gateway.js';
import type { ApprovalChannel } from './approval/approver.js';
import { elicitationHook } from './approval/elicitation.js';
import { anyGlob } from './policy/match.js';
import { describeValue } from './journal/bounded.js';
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
      ]
        .filter(Boolean)
        .join(' ');
      lines.push(`- ${r.name}: ${r.effect} ${what || 'everything'}${r.message ? ` (${r.message})` : ''}`);
    }
  }
  return lines.join('\n');
}

/** Any tools/call request: params are checked by the pipeline, not here. */
const AnyToolsCallSchema = z.looseObject({ method: z.literal('tools/call'), params: z.unknown() });

type ToolsCallExtra = Parameters<Parameters<Server['setRequestHandler']>[1]>[1];

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `session`: the agent session id journaled with each call when the transport has none of its
 * own (stdio: one per process). A Streamable HTTP transport's `Mcp-Session-Id` wins.
 */
export function createMcpServer(gateway: Gateway, identities: IdentityProvider, options: { readonly session?: string } = {}): Server {
  const server = new Server({ name: SERVER_NAME, version: SERVER_VERSION }, { capabilities: { tools: {} } });
  const tools = describeTools(gateway.config);
  server.setRequestHandler(ListToolsRequestSchema, async () => ({ tools }));
  // Protocol's registration, not the Server's: Server.setRequestHandler wraps tools/call
  // in a validation that answers a malformed request with a JSON-RPC error the journal
  // never sees. Here every tools/call, whatever its params, is a call of the pipeline.
  Protocol.prototype.setRequestHandler.call(
    server,
    AnyToolsCallSchema,
    async (request: z.infer<typeof AnyToolsCallSchema>, extra: ToolsCallExtra): Promise<CallToolResult> => {
      const params = isRecord(request.params) ? request.params : {};
      const name = params['name'];
      const meta = isRecord(params['_meta']) ? params['_meta'] : {};
      let identity = null;
      let identityError: DrawbridgeError | undefined;
      const scopes = identities.scopes({ authInfo: extra.authInfo });
      try {
        identity = identities.identify({ authInfo: extra.authInfo });
      } catch (error) {
        // The pipeline refuses a call without identity, and journals why.
        identityError = isDrawbridgeError(error) ? error : undefined;
      }
      const client = server.getClientVersion();
      const session = extra.sessionId ?? options.session;
      // How a human can be reached during this call: the elicitation form (only if the
      // client declared it) and progress notifications (only if it sent a progressToken).
      const token = meta['progressToken'];
      const progressToken = typeof token === 'string' || typeof token === 'number' ? token : undefined;
      let step = 0;
      const elicit = elicitationHook(server, extra.requestId);
      const channel: ApprovalChannel = {
        ...(client ? { clientName: client.name } : {}),
        ...(elicit ? { elicit } : {}),
        // Aborted when the client cancels the tools/call (or its request timed out).
        signal: extra.signal,
        ...(progressToken !== undefined
          ? {
              progress: async (message: string) => {
                step += 1;
                await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: step, message } });
              },
            }
          : {}),
      };
      const result = await callTool(gateway, {
        // A name that is not a string names no tool: described, so the journal shows what was sent.
        tool: typeof name === 'string' ? name : `(not a string: ${describeValue(name, 100)})`,
        args: params['arguments'] === undefined ? {} : params['arguments'],
        identity,
        ...(identityError ? { identityError } : {}),
        ...(scopes ? { scopes } : {}),
        channel,
        ...(client ? { client: { name: client.name, version: client.version } } : {}),
        ...(session !== undefined ? { session } : {}),
      });
      return toToolResult(result);
    },
  );
  return server;
}

export async function serveStdio(gateway: Gateway, identities: IdentityProvider): Promise<Server> {
  // One agent session per stdio process: its calls share this id in the journal.
  const server = createMcpServer(gateway, identities, { session: `stdio-${randomUUID()}` });
  const transport = new StdioTransport();
  await server.connect(transport);
  return server;
}
