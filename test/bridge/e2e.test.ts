// `drawbridge connect` end to end: an SDK Client on the bridge's stdio, the
// bridge, the real gateway served over Streamable HTTP (serveHttp, OIDC identity,
// run_sql on a private copy of the shop database), and the real OpenID provider.
// A person without a token is answered by the bridge at once (no tools yet, a
// call says where to sign in), signs in with the device flow (the scripted human
// approves the code the bridge printed), and the client is told the tools
// changed; calls are journaled under them; tokens expire (the clock moved, not
// waited for) and are refreshed without a new sign-in; the 0600 cache is reused by the next run; a
// service agent signs in with client credentials; and the gateway's elicitation
// (an approval with `approvers: { requester: true }`) reaches the client and its
// answer gets back.

import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ElicitRequestSchema, McpError, type CallToolResult, type ElicitRequest } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { BRIDGE_NAME, obtainAccessToken } from '../../src/bridge/connect.js';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { serveHttp, type HttpGateway } from '../../src/http/server.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from '../support/oidc.js';
import { startBridge, until, type BridgeRun } from './harness.js';
import { freePort } from '../support/net.js';

const TTL_SECONDS = 6;

let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
let gateway: Gateway;
let http: HttpGateway;
let cacheDir: string;
const cleanups: Array<() => Promise<void> | void> = [];

const RULES = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin, session, prepared, copy, do, call, lock, listen, notify, maintenance, transaction] }
    effect: deny
  - name: order-notes-need-a-yes
    match: { tool: run_sql, access: write, tables: [public.orders], groups: [developers] }
    effect: approve
    message: Writes to orders need the requester's explicit yes.
    approvers: { requester: true }
  - name: read
    match: { tool: run_sql, access: read, groups: [developers, agents] }
    effect: allow
`;

beforeAll(async () => {
  idp = await startTestIdp({ accessTokenTtlSeconds: TTL_SECONDS });
  db = await freshDatabase('bridge');
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  dir = writeConfig({
    oidc: { issuer: idp.issuer, audience: resource, clockTolerance: '0s' },
    approval: '{ wait: 0ms, elicitation_timeout: 30s, store: approvals.db }',
    policy: RULES,
  });
  cacheDir = join(dir, 'cache');
  gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl } });
  const verifier = createOidcVerifier(gateway.config.identity as OidcIdentityDeclaration);
  http = await serveHttp(gateway, verifier, { host: '127.0.0.1', port });
  expect(http.url).toBe(resource);
});

afterAll(async () => {
  await http?.close();
  await gateway?.close();
  await idp?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Row {
  readonly seq: number;
  readonly type: string;
  readonly callId: string;
  readonly data: Record<string, any>;
}

function journal(): Row[] {
  const j = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    const rows = j.prepare('SELECT seq, type, call_id, data FROM records ORDER BY seq').all() as Array<{
      seq: number;
      type: string;
      call_id: string;
      data: string;
    }>;
    return rows.map((r) => ({ seq: r.seq, type: r.type, callId: r.call_id, data: JSON.parse(r.data) as Record<string, any> }));
  } finally {
    j.close();
  }
}

/** The journal's call record whose SQL is `sql`. */
function callFor(sql: string): Row {
  const row = journal().find((r) => r.type === 'call' && JSON.stringify(r.data).includes(JSON.stringify(sql).slice(1, -1)));
  if (!row) throw new Error(`no call record for ${sql}`);
  return row;
}

function text(result: unknown): string {
  return ((result as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

interface Connected {
  readonly bridge: BridgeRun;
  readonly client: Client;
  readonly elicitations: Array<ElicitRequest['params']>;
}

/**
 * A bridge and a client through it, initialized. As a person with the given token cache
 * (without a token there, the bridge itself answered initialize and a sign-in is waiting);
 * as the service agent: client credentials.
 */
async function connect(
  as: { person: string; cache: string } | 'agent',
  elicit?: (request: ElicitRequest['params']) => Record<string, unknown>,
): Promise<Connected> {
  const bridge = startBridge({
    url: http.url,
    ...(as === 'agent'
      ? { clientId: TEST_CLIENTS.agent.clientId, clientSecret: TEST_CLIENTS.agent.clientSecret, tokenCache: null }
      : { clientId: TEST_CLIENTS.cli.clientId, tokenCache: as.cache }),
  });
  const client = new Client({ name: 'bridged-agent', version: '2.0.0' }, elicit ? { capabilities: { elicitation: { form: {} } } } : {});
  const elicitations: Array<ElicitRequest['params']> = [];
  if (elicit) {
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      elicitations.push(request.params);
      return { action: 'accept', content: elicit(request.params) } as never;
    });
  }
  cleanups.push(async () => {
    await client.close().catch(() => undefined);
    await bridge.close();
  });
  await bridge.connect(client);
  // No waiting for the event stream (GET): approval prompts travel on the tools/call's own response stream.
  return { bridge, client, elicitations };
}

const prompts = (bridge: BridgeRun) => bridge.lines.filter((l) => l.startsWith('To sign in to '));

describe('a person, signed in with the device flow', () => {
  /** alice's token cache, filled once (by a sign-in outside any bridge) for the tests that must not prompt. */
  const cache = () => join(cacheDir, 'alice', 'tokens.json');

  beforeAll(async () => {
    const lines: string[] = [];
    const signIn = obtainAccessToken({ url: http.url, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache(), log: (l) => void lines.push(l) });
    const code = await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt');
    await idp.approveDevice(code, 'alice');
    await signIn;
  });

  it('answers the client at once, says where to sign in until alice has, then lists the tools and a call is journaled under alice', async () => {
    const fresh = join(cacheDir, 'alice-fresh', 'tokens.json');
    const { bridge, client } = await connect({ person: 'alice', cache: fresh });
    // Nobody has signed in: the client's initialize was answered by the bridge, not the gateway.
    expect(client.getServerVersion()?.name).toBe(BRIDGE_NAME);
    expect(client.getServerCapabilities()?.tools?.listChanged).toBe(true);
    const code = await bridge.prompt();
    expect(prompts(bridge)).toHaveLength(1);
    expect(prompts(bridge)[0]).toBe(`To sign in to ${http.url}, open ${idp.issuer}/device and enter ${code}`);
    expect((await client.listTools()).tools).toEqual([]);
    const early = 'SELECT 1 AS one -- before signing in';
    const refusal = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: early } }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(McpError);
    expect((refusal as McpError).message).toContain(`identity.sign_in_required: Not signed in to ${http.url} yet. ${prompts(bridge)[0]}`);
    expect(journal().some((r) => JSON.stringify(r.data).includes('before signing in'))).toBe(false);

    // alice signs in: the bridge opens the gateway session and the client hears that its tools changed.
    const changed = bridge.toolsChanged();
    await idp.approveDevice(code, 'alice');
    await changed;
    expect(bridge.lines.some((l) => l.startsWith(`Signed in to ${http.url} as alice`))).toBe(true);

    const tools = (await client.listTools()).tools;
    expect(tools.map((t) => t.name)).toEqual(['run_sql']);
    const sql = 'SELECT count(*) AS n FROM orders -- bridged read';
    const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
    expect(result.isError, text(result)).toBeFalsy();
    const call = callFor(sql);
    expect(call.data['principal']).toEqual({ subject: 'alice', groups: ['developers'], kind: 'oidc', principal: 'person', issuer: idp.issuer });
    expect(call.data['client']).toEqual({ name: 'bridged-agent', version: '2.0.0' });

    // The cache: 0600 in a 0700 directory; no log line carries a token.
    expect(statSync(fresh).mode & 0o777).toBe(0o600);
    expect(statSync(join(fresh, '..')).mode & 0o777).toBe(0o700);
    for (const line of bridge.lines) expect(line).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });

  it('keeps working across token expiry (refresh, no new sign-in), then a second run reuses the cache', async () => {
    // The bridge, the gateway and the provider all run in this process: moving Date moves
    // every clock that decides expiry (timers stay real).
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    onTestFinished(() => void vi.useRealTimers());
    const first = await connect({ person: 'alice', cache: cache() });
    expect(prompts(first.bridge)).toEqual([]);
    const before = first.bridge.lines.filter((l) => l.startsWith('Refreshed')).length;
    // Past the token's lifetime: the gateway (clock tolerance 0) would refuse it now.
    vi.setSystemTime(Date.now() + (TTL_SECONDS + 1) * 1000);
    const sql = 'SELECT count(*) AS n FROM products -- after expiry';
    const result = (await first.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
    expect(result.isError, text(result)).toBeFalsy();
    expect(callFor(sql).data['principal']).toMatchObject({ subject: 'alice' });
    expect(first.bridge.lines.filter((l) => l.startsWith('Refreshed')).length).toBeGreaterThan(before);
    expect(prompts(first.bridge)).toEqual([]);
    await first.bridge.close();

    const second = await connect({ person: 'alice', cache: cache() });
    const again = 'SELECT 1 AS one -- second run';
    const r2 = (await second.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: again } })) as CallToolResult;
    expect(r2.isError, text(r2)).toBeFalsy();
    expect(callFor(again).data['principal']).toMatchObject({ subject: 'alice' });
    expect(prompts(second.bridge)).toEqual([]);
    expect(statSync(cache()).mode & 0o777).toBe(0o600);
  });

  it("passes the gateway's approval elicitation through: alice approves her own write in her client", async () => {
    const { client, elicitations } = await connect({ person: 'alice', cache: cache() }, () => ({ decision: 'approve', reason: 'via the bridge' }));
    const sql = "UPDATE orders SET note = 'bridged-approval' WHERE id = 1";
    const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
    expect(result.isError, text(result)).toBeFalsy();
    expect(elicitations).toHaveLength(1);
    expect(elicitations[0]!.message).toContain('Requested by alice via bridged-agent.');
    expect(elicitations[0]!.message).toContain(sql);
    expect(await db.query("SELECT id FROM orders WHERE note = 'bridged-approval'")).toEqual([{ id: 1 }]);
    const call = callFor(sql);
    expect(call.data['principal']).toMatchObject({ subject: 'alice', kind: 'oidc' });
    const approved = journal().find((r) => r.type === 'approval' && r.data['event'] === 'approved' && r.callId === call.callId);
    expect(approved?.data).toMatchObject({
      via: 'elicitation',
      approver: { subject: 'alice', kind: 'oidc' },
      reason: 'via the bridge',
      client: 'bridged-agent',
    });
  });
});

describe('a service agent, with client credentials', () => {
  it('needs no human, and its calls are journaled under its client id', async () => {
    const { bridge, client } = await connect('agent');
    expect(prompts(bridge)).toEqual([]);
    const sql = 'SELECT count(*) AS n FROM customers -- agent';
    const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
    expect(result.isError, text(result)).toBeFalsy();
    expect(callFor(sql).data['principal']).toEqual({ subject: 'agent-svc', groups: ['agents'], kind: 'oidc', principal: 'service', issuer: idp.issuer });
  });
});

describe('the built CLI over real stdio', () => {
  it('drawbridge connect URL, as a service agent (secret from the environment), forwards a call', async () => {
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [requireBuiltCli(), 'connect', http.url, '--client-id', TEST_CLIENTS.agent.clientId, '--no-token-cache'],
      env: { PATH: process.env['PATH'] ?? '', DRAWBRIDGE_CLIENT_SECRET: TEST_CLIENTS.agent.clientSecret },
      cwd: REPO_ROOT,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
    const client = new Client({ name: 'spawned-agent', version: '3.0.0' });
    await client.connect(transport);
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      const sql = 'SELECT count(*) AS n FROM orders -- spawned bridge';
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
      expect(result.isError, `${text(result)}\n${stderr}`).toBeFalsy();
      expect(callFor(sql).data['principal']).toMatchObject({ subject: 'agent-svc', groups: ['agents'] });
      expect(callFor(sql).data['client']).toEqual({ name: 'spawned-agent', version: '3.0.0' });
    } finally {
      await client.close();
    }
    expect(stderr).toContain(`drawbridge: Forwarding MCP over stdio to ${http.url}.`);
    expect(stderr).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
  });
});
