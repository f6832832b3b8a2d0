// The bridge's forwarding, against a stand-in Streamable HTTP MCP server that
// verifies every token with the gateway's verifier against a real OpenID
// provider (test/support/oidc.ts): an SDK Client on the bridge's stdio sees the
// remote tools, results, elicitation requests and progress notifications as if
// it talked to the remote directly; the token goes on every request to the
// gateway and nowhere else; a refusal is retried once with a new token; when
// the gateway cannot answer, the client gets a JSON-RPC error, not silence; and
// without a token at hand the bridge answers the client at once while a person
// signs in, then opens the session itself and says the tool list changed.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ElicitRequestSchema, LATEST_PROTOCOL_VERSION, McpError, SUPPORTED_PROTOCOL_VERSIONS, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE_NAME, runBridge } from '../../src/bridge/connect.js';
import { obtainAccessToken } from '../../src/bridge/tokens.js';
import { SERVER_VERSION } from '../../src/server.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from '../support/oidc.js';
import { startBridge, until, type BridgeRun } from './harness.js';
import { freePort } from '../support/net.js';
import { startStandIn, type StandIn } from './standIn.js';

let idp: TestIdp;
let gateway: StandIn;
let dir: string;
/** A cache holding alice's tokens for `gateway` (one device flow for the whole file). */
let aliceCache: string;
const cleanups: Array<() => Promise<void> | void> = [];

const AGENT = { clientId: TEST_CLIENTS.agent.clientId, clientSecret: TEST_CLIENTS.agent.clientSecret };

beforeAll(async () => {
  idp = await startTestIdp();
  gateway = await startStandIn({ issuer: idp.issuer });
  dir = mkdtempSync(join(tmpdir(), 'drawbridge-bridge-connect-'));
  aliceCache = join(dir, 'alice', 'tokens.json');
  const lines: string[] = [];
  const signIn = obtainAccessToken({ url: gateway.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: aliceCache, log: (l) => void lines.push(l) });
  const code = await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt');
  await idp.approveDevice(code, 'alice');
  await signIn;
});

afterAll(async () => {
  await gateway?.close();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  gateway.refuseAll = false;
  gateway.refuseNext = 0;
  gateway.redirectTo = null;
  for (const c of cleanups.splice(0).reverse()) await c();
});

function text(result: unknown): string {
  return ((result as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

/** A bridge as alice (cached tokens) or as the service agent, and a client through it. */
async function open(
  as: 'alice' | 'agent',
  options: { capabilities?: ConstructorParameters<typeof Client>[1] } = {},
  target: StandIn = gateway,
): Promise<{ bridge: BridgeRun; client: Client }> {
  const bridge = startBridge({
    url: target.url,
    ...(as === 'alice' ? { clientId: TEST_CLIENTS.cli.clientId, tokenCache: aliceCache } : { ...AGENT, tokenCache: null }),
  });
  const client = new Client({ name: 'bridge-test-client', version: '1.0.0' }, options.capabilities);
  cleanups.push(async () => {
    await client.close().catch(() => undefined);
    await bridge.close();
  });
  const before = target.seen.length;
  await bridge.connect(client);
  // The transport opens its event stream (GET) after initialization, without waiting: let it settle.
  await until(() => target.seen.slice(before).some((s) => s.method === 'GET'), 'the event stream');
  return { bridge, client };
}

async function callError(promise: Promise<unknown>): Promise<McpError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof McpError) return error;
    throw error;
  }
  throw new Error('expected a JSON-RPC error');
}

describe('forwarding', () => {
  it('initialize, tools/list and tools/call reach the remote as alice, every request with her token and the session id', async () => {
    const before = gateway.seen.length;
    const { client, bridge } = await open('alice');
    expect(client.getServerVersion()).toEqual({ name: 'stand-in-gateway', version: '0.0.1' });
    const tools = (await client.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(['whoami', 'client', 'ask', 'count']);
    const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} })));
    expect(who).toEqual({ subject: 'alice', groups: ['developers'], clientId: 'drawbridge-cli' });
    const seen = gateway.seen.slice(before);
    expect(seen.length).toBeGreaterThanOrEqual(4); // initialize, initialized, GET stream, list, call
    expect(seen.every((s) => s.outcome === 'alice')).toBe(true);
    expect(bridge.lines.filter((l) => l.startsWith('To sign in'))).toEqual([]);
    expect(bridge.lines).toContain(`Forwarding MCP over stdio to ${gateway.url}.`);
  });

  it('passes a server→client elicitation request through and its answer back', async () => {
    const { client } = await open('alice', { capabilities: { capabilities: { elicitation: { form: {} } } } });
    const asked: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: 'accept', content: { decision: 'yes' } };
    });
    const result = await client.callTool({ name: 'ask', arguments: { question: 'Drop the table?' } });
    expect(asked).toEqual(['Drop the table?']);
    expect(JSON.parse(text(result))).toEqual({ action: 'accept', content: { decision: 'yes' } });
  });

  it('passes progress notifications through', async () => {
    const { client } = await open('agent');
    const progress: number[] = [];
    const result = await client.callTool({ name: 'count', arguments: { n: 3 } }, undefined, { onprogress: (p) => void progress.push(p.progress) });
    expect(text(result)).toBe('counted to 3');
    expect(progress).toEqual([1, 2, 3]);
  });

  it('a service agent (client credentials) is itself at the gateway, without any prompt', async () => {
    const { client, bridge } = await open('agent');
    const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} })));
    expect(who).toEqual({ subject: 'agent-svc', groups: ['agents'], clientId: 'agent-svc' });
    expect(bridge.lines.filter((l) => l.startsWith('To sign in'))).toEqual([]);
  });
});

describe('tokens on the wire', () => {
  it('a refused token is renewed once and the request retried', async () => {
    const { client, bridge } = await open('agent');
    const before = gateway.seen.length;
    gateway.refuseNext = 1;
    const who = JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} })));
    expect(who.subject).toBe('agent-svc');
    const seen = gateway.seen.slice(before);
    expect(seen.map((s) => s.outcome)).toEqual(['401', 'agent-svc']);
    expect(seen[1]!.token).not.toBe(seen[0]!.token);
    expect(bridge.lines).toContain('The gateway refused the access token (invalid_token: refused once by the test); getting a new one.');
    for (const line of bridge.lines) for (const s of seen) expect(line).not.toContain(s.token!);
  });

  it('a token refused again after renewal: the client gets identity.invalid_token, and the bridge keeps serving', async () => {
    const { client, bridge } = await open('agent');
    gateway.refuseAll = true;
    const error = await callError(client.callTool({ name: 'whoami', arguments: {} }));
    expect(error.code).toBe(-32000);
    expect(error.message).toContain('identity.invalid_token: The gateway refused the access token even after it was renewed');
    expect(error.data).toMatchObject({ code: 'identity.invalid_token' });
    expect(bridge.lines.some((l) => l.startsWith('The gateway refused the new access token too (invalid_token: refused by the test)'))).toBe(true);
    gateway.refuseAll = false;
    expect(JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))).subject).toBe('agent-svc');
  });

  it('never sends the token to another origin, even when the gateway redirects there', async () => {
    const received: Array<string | undefined> = [];
    const other = createServer((req: IncomingMessage, res) => {
      received.push(req.headers['authorization']);
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => other.close(() => resolve())));
    const { client } = await open('agent');
    gateway.redirectTo = `http://127.0.0.1:${(other.address() as AddressInfo).port}/mcp`;
    const error = await callError(client.listTools());
    expect(error.code).toBe(-32000);
    expect(received).toEqual([]);
  });
});

describe('when the gateway cannot answer', () => {
  it('unreachable: initialize is answered with backend.unavailable instead of hanging', async () => {
    const port = await freePort();
    const bridge = startBridge({ url: `http://127.0.0.1:${port}/mcp`, ...AGENT, tokenCache: null });
    const client = new Client({ name: 'c', version: '1' });
    cleanups.push(async () => {
      await client.close().catch(() => undefined);
      await bridge.close();
    });
    const error = await callError(bridge.connect(client));
    expect(error.message).toContain(`backend.unavailable: The gateway http://127.0.0.1:${port} could not be reached: fetch failed (ECONNREFUSED)`);
    expect(bridge.lines.some((l) => l.startsWith('initialize failed: The gateway'))).toBe(true);
    expect(bridge.stopped()).toBe(false);
  });

  it('a response stream that ends without the answer gets an error for that request', async () => {
    const { client } = await open('agent');
    const error = await callError(client.callTool({ name: 'vanish', arguments: {} }));
    expect(error.message).toContain('backend.unavailable: The gateway closed the response stream before answering (the stream ended).');
    // The session goes on.
    expect(JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))).subject).toBe('agent-svc');
  });

  it('the gateway ending the session stops the bridge, answering the request that found out', async () => {
    const { client, bridge } = await open('agent');
    await gateway.dropSessions();
    const error = await callError(client.listTools());
    expect(error.message).toContain('backend.unavailable: The gateway ended the MCP session.');
    await bridge.done;
    expect(bridge.lines.some((l) => l.startsWith('The gateway ended the MCP session (HTTP 404'))).toBe(true);
  });
});

describe('no token at hand: the client is answered at once while a person signs in', () => {
  /** A bridge as a person with an empty token cache of its own, and a client through it (already initialized: by the bridge). */
  async function signedOut(name: string, options: { cache?: string } = {}): Promise<{ bridge: BridgeRun; client: Client; cache: string }> {
    const cache = options.cache ?? join(dir, name, 'tokens.json');
    const bridge = startBridge({ url: gateway.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache });
    const client = new Client({ name: `${name}-client`, version: '4.5.6' }, { capabilities: { elicitation: { form: {} } } });
    cleanups.push(async () => {
      await client.close().catch(() => undefined);
      await bridge.close();
    });
    await bridge.connect(client);
    return { bridge, client, cache };
  }

  const firstSignIn =
    'initialize is answered by the bridge; tools/call says where to sign in (as stderr does); ' +
    "after the sign-in the tool list changes and calls reach the gateway in a session opened with the client's own initialize";
  it(firstSignIn, async () => {
    const before = gateway.seen.length;
    const { bridge, client, cache } = await signedOut('first-sign-in');
    // Nobody has signed in, and nothing reached the gateway's MCP endpoint: the bridge answered initialize itself.
    expect(client.getServerVersion()).toEqual({ name: BRIDGE_NAME, title: 'Drawbridge (drawbridge connect)', version: SERVER_VERSION });
    expect(client.getServerCapabilities()).toEqual({ tools: { listChanged: true } });
    const prompt = await bridge.nextPrompt();
    expect(prompt.text).toBe(`To sign in to ${gateway.url}, open ${idp.issuer}/device and enter ${prompt.userCode}`);
    expect(bridge.lines).toContain(prompt.text);

    // While signed out: no tools yet, ping works, and a call is refused with where to sign in.
    expect((await client.listTools()).tools).toEqual([]);
    expect(await client.ping()).toEqual({});
    const refusal = await callError(client.callTool({ name: 'whoami', arguments: {} }));
    expect(refusal.code).toBe(-32000);
    expect(refusal.message).toContain(`identity.sign_in_required: Not signed in to ${gateway.url} yet. ${prompt.text}\nWhat to do: `);
    expect(refusal.data).toMatchObject({ code: 'identity.sign_in_required', verificationUri: `${idp.issuer}/device`, userCode: prompt.userCode });
    expect(bridge.lines).toContain(`tools/call failed: Not signed in to ${gateway.url} yet. ${prompt.text}`);
    expect(gateway.seen.length).toBe(before);

    // The person signs in: the bridge opens the session and tells the client its tools changed.
    const changed = bridge.toolsChanged();
    await idp.approveDevice(prompt.userCode, 'alice');
    await changed;
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['whoami', 'client', 'ask', 'count']);
    expect(JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} })))).toEqual({
      subject: 'alice',
      groups: ['developers'],
      clientId: 'drawbridge-cli',
    });
    // The gateway session was initialized with the client's own clientInfo and capabilities.
    expect(JSON.parse(text(await client.callTool({ name: 'client', arguments: {} })))).toMatchObject({
      clientInfo: { name: 'first-sign-in-client', version: '4.5.6' },
      capabilities: { elicitation: { form: {} } },
    });
    const asked: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      asked.push(request.params.message);
      return { action: 'accept', content: { decision: 'no' } };
    });
    expect(JSON.parse(text(await client.callTool({ name: 'ask', arguments: { question: 'Really?' } })))).toEqual({
      action: 'accept',
      content: { decision: 'no' },
    });
    expect(asked).toEqual(['Really?']);
    expect(gateway.seen.slice(before).every((s) => s.outcome === 'alice')).toBe(true);
    expect(bridge.lines.filter((l) => l.startsWith('To sign in'))).toHaveLength(1);

    // The token was cached: the next bridge has one at hand and forwards initialize to the gateway.
    await bridge.close();
    const again = startBridge({ url: gateway.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache });
    const againClient = new Client({ name: 'again', version: '1' });
    cleanups.push(async () => {
      await againClient.close().catch(() => undefined);
      await again.close();
    });
    await again.connect(againClient);
    expect(againClient.getServerVersion()?.name).toBe('stand-in-gateway');
    expect(again.lines.filter((l) => l.startsWith('To sign in'))).toEqual([]);
  });

  it('an expired token whose refresh fails counts as none: answered by the bridge, and a sign-in starts', async () => {
    // alice's cached entry, expired, with a refresh token the provider no longer knows.
    const cache = join(dir, 'spoiled', 'tokens.json');
    const file = JSON.parse(readFileSync(aliceCache, 'utf8')) as { version: number; tokens: Record<string, Record<string, unknown>> };
    for (const entry of Object.values(file.tokens)) Object.assign(entry, { expiresAt: Date.now() - 60_000, refreshToken: 'revoked-refresh-token' });
    mkdirSync(join(dir, 'spoiled'), { recursive: true, mode: 0o700 });
    writeFileSync(cache, JSON.stringify(file), { mode: 0o600 });

    const { bridge, client } = await signedOut('spoiled', { cache });
    expect(client.getServerVersion()?.name).toBe(BRIDGE_NAME);
    const prompt = await bridge.nextPrompt();
    expect(bridge.lines.some((l) => /^Could not refresh the access token \(invalid_grant/.test(l))).toBe(true);
    const changed = bridge.toolsChanged();
    await idp.approveDevice(prompt.userCode, 'bob');
    await changed;
    expect(JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))).subject).toBe('bob');
  });

  it('a sign-in that was refused: the next request starts a new one and names its new code', async () => {
    const { bridge, client } = await signedOut('refused');
    const first = await bridge.nextPrompt();
    await idp.denyDevice(first.userCode);
    await until(
      () => bridge.lines.some((l) => l.startsWith('Not signed in: ') && l.includes('a new sign-in starts with the next request')),
      'the refused sign-in',
    );
    const refusal = await callError(client.callTool({ name: 'whoami', arguments: {} }));
    const second = await bridge.nextPrompt();
    expect(second.userCode).not.toBe(first.userCode);
    expect(refusal.message).toContain(second.text);
    const changed = bridge.toolsChanged();
    await idp.approveDevice(second.userCode, 'alice');
    await changed;
    expect(JSON.parse(text(await client.callTool({ name: 'whoami', arguments: {} }))).subject).toBe('alice');
  });

  it('initialize gets the protocol version the client asked for when the SDK speaks it, else the latest', async () => {
    const toBridge = new PassThrough();
    const fromBridge = new PassThrough();
    const done = runBridge(
      { url: gateway.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: null, log: () => undefined },
      { stdin: toBridge, stdout: fromBridge },
    );
    const replies = createInterface({ input: fromBridge })[Symbol.asyncIterator]();
    const initialize = async (id: number, protocolVersion: string) => {
      const params = { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } };
      toBridge.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'initialize', params })}\n`);
      const line = await replies.next();
      return JSON.parse(String(line.value)) as { id: number; result: { protocolVersion: string } };
    };
    expect(SUPPORTED_PROTOCOL_VERSIONS).toContain('2025-03-26');
    expect(await initialize(1, '2025-03-26')).toMatchObject({ id: 1, result: { protocolVersion: '2025-03-26', serverInfo: { name: BRIDGE_NAME } } });
    expect(await initialize(2, '1999-01-01')).toMatchObject({ id: 2, result: { protocolVersion: LATEST_PROTOCOL_VERSION } });
    toBridge.end();
    await done;
  });
});

describe('lifecycle', () => {
  it('closing stdin stops the bridge and ends the remote session (DELETE)', async () => {
    const { bridge, client } = await open('agent');
    await client.listTools();
    const before = gateway.seen.length;
    await bridge.close();
    expect(bridge.stopped()).toBe(true);
    expect(gateway.seen.slice(before).map((s) => `${s.method} ${s.outcome}`)).toContain('DELETE agent-svc');
  });

  it('aborting the signal while the sign-in waits stops the bridge', async () => {
    const controller = new AbortController();
    const bridge = startBridge({ url: gateway.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: null, signal: controller.signal });
    await bridge.prompt();
    controller.abort();
    await bridge.done;
    expect(bridge.stopped()).toBe(true);
  });
});
