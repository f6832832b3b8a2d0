// `drawbridge connect` forwards both MCP eras (issue 14): the built CLI on real stdio,
// the real gateway (serveHttp, the test OpenID provider, a fresh shop database), people
// signed in beforehand into the bridge's token cache. A 2026-07-28 agent (the SDK v2
// Client pinned to that revision) lists the tools, gets a masked read and a denied call,
// approves and declines in its own form (input_required through the bridge, re-issued
// with requestState and inputResponses, untouched), and picks up an out-of-band approval
// by re-issuing the call. A raw client shows what the bridge does with the headers the
// revision requires: it derives them from the message (the gateway refuses a call
// without them, and accepts the same body through the bridge) and never alters the
// client's own values (an unknown revision reaches the gateway as such: -32022).

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client as V2Client } from '@modelcontextprotocol/client';
import { StdioClientTransport as V2StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { DEMO_PII } from '../../dev/seed.js';
import { BRIDGE_NAME } from '../../src/bridge/connect.js';
import { obtainAccessToken } from '../../src/bridge/tokens.js';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { DEFAULT_POLICY, SELF_APPROVED_POLICY } from '../support/fixtures.js';
import { startHttpGateway, waitForPending, type HttpHarness } from '../support/http-gateway.js';
import { freePort } from '../support/net.js';
import { TEST_CLIENTS } from '../support/oidc.js';
import { startBridge, until } from './harness.js';
import { FORM, MODERN, envelope, modernHeaders } from '../support/mcp-2026.js';

/** The gateway's serverInfo name (the bridge's own is drawbridge-connect). */
const SERVER_NAME = 'drawbridge';
const MASKED_READ = 'SELECT id, email, city FROM customers ORDER BY id LIMIT 2';
const DENIED = 'DROP TABLE customers';
const insert = (body: string) => `INSERT INTO audit_notes (body) VALUES ('${body}')`;

/** The default policy (analysts' writes approved by dba, out of band), and writes only the requester approves for selfers. */
const POLICY = SELF_APPROVED_POLICY;

type Account = 'sam' | 'ann' | 'dora';
let h: HttpHarness<Account>;
let cacheDir: string;
const caches = new Map<Account, string>();

beforeAll(async () => {
  requireBuiltCli();
  h = await startHttpGateway<Account>({
    prefix: 'bridge_eras',
    accounts: { sam: { groups: ['selfers'] }, ann: { groups: ['analysts'] }, dora: { groups: ['dba'] } },
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m }',
  });
  cacheDir = mkdtempSync(join(tmpdir(), 'drawbridge-bridge-eras-'));
  // sam and ann sign in once (the device flow, as `drawbridge connect` would run it); the bridges reuse the cache.
  for (const account of ['sam', 'ann'] as const) {
    const cache = join(cacheDir, account, 'tokens.json');
    const lines: string[] = [];
    const signIn = obtainAccessToken({ url: h.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache, log: (l) => void lines.push(l) });
    const code = await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt');
    await h.idp.approveDevice(code, account);
    await signIn;
    caches.set(account, cache);
  }
});

afterAll(async () => {
  await h?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

const connectArgs = (account: 'sam' | 'ann'): string[] => [
  requireBuiltCli(),
  'connect',
  h.resource,
  '--client-id',
  TEST_CLIENTS.cli.clientId,
  '--token-cache',
  caches.get(account) ?? '',
];

const journal = (): CallEntry[] => [...readCalls(join(h.dir, 'journal.db'))];
const textOf = (result: unknown): string =>
  (((result as Record<string, unknown> | undefined)?.['content'] ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
const rows = async (body: string): Promise<number> => (await h.db.query('SELECT id FROM audit_notes WHERE body = $1', [body])).length;

/** The SDK v2 Client pinned to 2026-07-28 on a spawned `drawbridge connect` as `account`; forms are answered with `decision`. */
async function v2Agent(
  account: 'sam' | 'ann',
  name: string,
  decision: 'approve' | 'decline' = 'approve',
): Promise<{ client: V2Client; shown: string[]; stderr: () => string }> {
  const transport = new V2StdioClientTransport({
    command: process.execPath,
    args: connectArgs(account),
    env: { PATH: process.env['PATH'] ?? '' },
    cwd: REPO_ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
  const client = new V2Client({ name, version: '2.4.0' }, { capabilities: FORM, versionNegotiation: { mode: { pin: MODERN } } });
  const shown: string[] = [];
  client.setRequestHandler('elicitation/create', async (request) => {
    shown.push(request.params.message);
    return { action: 'accept', content: { decision } };
  });
  await client.connect(transport);
  return { client, shown, stderr: () => stderr };
}

describe('the SDK v2 Client pinned to 2026-07-28 through drawbridge connect', () => {
  it('negotiates with the gateway itself (server/discover forwarded); tools, a masked read, a denied call, journaled under sam', async () => {
    const { client, stderr } = await v2Agent('sam', 'bridged-v2');
    try {
      expect(client.getProtocolEra()).toBe('modern');
      // The gateway answered the discover, not the bridge.
      expect(client.getServerVersion()?.name).toBe(SERVER_NAME);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      const read = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ } });
      expect(read.isError, `${textOf(read)}\n${stderr()}`).toBeFalsy();
      expect(textOf(read)).toContain('[masked:customers.email]');
      for (const email of DEMO_PII.emails) expect(textOf(read)).not.toContain(email);
      const denied = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: DENIED } });
      expect(denied.isError).toBe(true);
      expect(textOf(denied)).toMatch(/^policy\.denied: /);
      const mine = journal().filter((e) => (e.call['client'] as { name?: string } | null)?.name === 'bridged-v2');
      expect(mine.map((e) => (e.call['input'] as { sql?: string }).sql)).toEqual([MASKED_READ, DENIED]);
      for (const e of mine) {
        expect(e.call['principal']).toMatchObject({ subject: 'sam', kind: 'oidc' });
        // Per request, no session: the envelope's client, the bearer token's subject.
        expect(e.call['session']).toBeUndefined();
      }
      expect(mine.map((e) => e.outcome?.['status'])).toEqual(['ok', 'refused']);
    } finally {
      await client.close();
    }
  });

  it('in-client approval: the input_required form reaches the client through the bridge; approved, the write runs once; declined, nothing runs', async () => {
    for (const [decision, body] of [
      ['approve', 'bridged-v2-yes'],
      ['decline', 'bridged-v2-no'],
    ] as const) {
      const { client, shown, stderr } = await v2Agent('sam', `bridged-v2-${decision}`, decision);
      try {
        const result = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: insert(body) } });
        expect(shown).toHaveLength(1);
        expect(shown[0]).toContain('Approve this run_sql request on db?');
        expect(shown[0]).toContain(insert(body));
        if (decision === 'approve') {
          expect(result.isError, `${textOf(result)}\n${stderr()}`).toBeFalsy();
          expect(await rows(body)).toBe(1);
        } else {
          expect(result.isError).toBe(true);
          expect(textOf(result)).toMatch(/^approval\.declined: The approval was declined in bridged-v2-decline/);
          expect(await rows(body)).toBe(0);
        }
        const events = journal()
          .filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === insert(body))
          .flatMap((e) => e.events.filter((x) => x.type === 'approval').map((x) => [x.data['event'], x.data['via']]));
        expect(events[0]).toEqual(['requested', 'input_required']);
        expect(events.map((e) => e[0])).toContain(decision === 'approve' ? 'approved' : 'declined');
      } finally {
        await client.close();
      }
    }
  });

  it('an out-of-band approval: the call answers approval.pending, dora approves over the API, the re-issued call runs', async () => {
    const sql = "UPDATE customers SET city = 'Bruges' WHERE id = 3";
    const { client, shown } = await v2Agent('ann', 'bridged-v2-oob');
    try {
      const first = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(first.isError).toBe(true);
      expect(textOf(first)).toMatch(/^approval\.pending: /);
      expect(shown).toEqual([]);
      const id = await waitForPending(h.gateway, sql);
      const approved = await fetch(`${h.origin}/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await h.token('dora')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'bridged re-issue' }),
      });
      expect(approved.status, await approved.text()).toBe(200);
      const again = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(again.isError, textOf(again)).toBeFalsy();
      expect(await h.db.query('SELECT city FROM customers WHERE id = 3')).toEqual([{ city: 'Bruges' }]);
      const calls = journal().filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql);
      expect(calls.map((e) => e.outcome?.['status'])).toEqual(['refused', 'ok']);
      expect(calls.every((e) => (e.call['principal'] as { subject?: string }).subject === 'ann')).toBe(true);
    } finally {
      await client.close();
    }
  });
});

interface Message {
  readonly id?: number | string;
  readonly result?: Record<string, unknown>;
  readonly error?: { code: number; message: string; data?: Record<string, unknown> };
}

/** A spawned `drawbridge connect` spoken to in raw newline-delimited JSON-RPC. */
function rawBridge(account: 'sam' | 'ann'): { request(method: string, params: Record<string, unknown>): Promise<Message>; close(): Promise<void> } {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, connectArgs(account), {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk.toString('utf8')));
  const waiting = new Map<number | string, (message: Message) => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as Message;
    if (message.id !== undefined) waiting.get(message.id)?.(message);
  });
  let next = 1;
  return {
    request(method, params) {
      const id = next++;
      return new Promise<Message>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer to ${method}; stderr: ${stderr}`)), 30_000);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      });
    },
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin.end();
      await exited;
    },
  };
}

describe('a raw 2026-07-28 client through drawbridge connect', () => {
  it('discover is the gateway’s; the headers come from the message (the gateway refuses a call without them); an unknown revision: -32022', async () => {
    const bridge = rawBridge('sam');
    try {
      const discover = await bridge.request('server/discover', { _meta: envelope({ client: 'raw-bridged', capabilities: FORM }) });
      expect(discover.result?.['supportedVersions']).toContain(MODERN);
      expect((discover.result?.['_meta'] as Record<string, { name?: string }> | undefined)?.['io.modelcontextprotocol/serverInfo']?.name).toBe(SERVER_NAME);

      // Straight to the gateway, the same body without Mcp-Name is refused: the revision requires the headers…
      const params = { name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ }, _meta: envelope({ client: 'raw-bridged', capabilities: FORM }) };
      const headers = modernHeaders('tools/call', { token: await h.token('sam') });
      const direct = await fetch(h.http.url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params }) });
      expect(direct.status).toBe(400);
      expect(((await direct.json()) as Message).error?.code).toBe(-32020);
      // …and through the bridge it runs: the bridge set them from the message.
      const call = await bridge.request('tools/call', params);
      expect(call.error).toBeUndefined();
      expect(call.result?.['resultType']).toBe('complete');
      expect(textOf(call.result)).toContain('[masked:customers.email]');

      // The client's own revision goes to the gateway as it is (never replaced by one the bridge prefers).
      const unknown = await bridge.request('tools/list', { _meta: envelope({ client: 'raw-bridged', version: '2099-01-01', capabilities: FORM }) });
      expect(unknown.result).toBeUndefined();
      expect(unknown.error?.code).toBe(-32022);
      expect(unknown.error?.data?.['supported']).toContain(MODERN);
    } finally {
      await bridge.close();
    }
  });

  it('input_required and the re-issued call with requestState and inputResponses pass through untouched; a replay is refused by the gateway', async () => {
    const body = 'bridged-raw-yes';
    const bridge = rawBridge('sam');
    try {
      const args = { name: 'run_sql', arguments: { connection: 'db', sql: insert(body) }, _meta: envelope({ client: 'raw-bridged', capabilities: FORM }) };
      const first = await bridge.request('tools/call', args);
      expect(first.result?.['resultType']).toBe('input_required');
      const requests = first.result?.['inputRequests'] as Record<string, { method: string; params: { mode: string; message: string } }>;
      expect(requests['approval']).toMatchObject({ method: 'elicitation/create', params: { mode: 'form' } });
      const state = first.result?.['requestState'];
      if (typeof state !== 'string') throw new Error('no requestState');
      expect(await rows(body)).toBe(0);
      const answer = { inputResponses: { approval: { action: 'accept', content: { decision: 'approve' } } }, requestState: state };
      const ran = await bridge.request('tools/call', { ...args, ...answer });
      expect(ran.result?.['resultType']).toBe('complete');
      expect(ran.result?.['isError']).toBeUndefined();
      expect(await rows(body)).toBe(1);
      const replay = await bridge.request('tools/call', { ...args, ...answer });
      expect(replay.error?.code).toBe(-32602);
      expect(replay.error?.data).toMatchObject({ reason: 'invalid_request_state', refusal: 'replayed' });
      expect(await rows(body)).toBe(1);
    } finally {
      await bridge.close();
    }
  });
});

describe('a 2026-07-28 client and a bridge that cannot forward yet (the bridge in process)', () => {
  it('signed out: discover and tools/list are the bridge’s (nothing cached), a call says where to sign in; once sam is, calls reach the gateway', async () => {
    const bridge = startBridge({ url: h.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: join(cacheDir, 'sam-fresh', 'tokens.json') });
    const changed: string[][] = [];
    const client = new V2Client(
      { name: 'signed-out-v2', version: '1.0.0' },
      {
        capabilities: FORM,
        versionNegotiation: { mode: { pin: MODERN } },
        // The client opens subscriptions/listen for tool changes: the bridge acknowledges it while nobody is signed in.
        listChanged: { tools: { autoRefresh: true, debounceMs: 0, onChanged: (_error, tools) => void changed.push((tools ?? []).map((t) => t.name)) } },
      },
    );
    try {
      await bridge.connectV2(client);
      expect(client.autoOpenedSubscription).toBeDefined();
      expect(client.getProtocolEra()).toBe('modern');
      expect(client.getServerVersion()?.name).toBe(BRIDGE_NAME);
      expect(client.getServerCapabilities()?.tools?.listChanged).toBe(true);
      const code = await bridge.prompt();
      expect((await client.listTools()).tools).toEqual([]);
      const early = 'SELECT 1 AS one -- v2 before signing in';
      const refusal = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: early } }).then(
        () => null,
        (error: unknown) => error,
      );
      expect(String((refusal as Error | null)?.message)).toContain(`identity.sign_in_required: Not signed in to ${h.resource} yet.`);
      expect(journal().some((e) => JSON.stringify(e.call).includes('v2 before signing in'))).toBe(false);

      await h.idp.approveDevice(code, 'sam');
      await until(() => bridge.lines.some((l) => l === `Connected to ${h.resource}.`), 'the sign-in');
      // Told on its subscription that the tools changed (and the refreshed list came from the gateway).
      expect(await until(() => changed.at(-1), 'notifications/tools/list_changed')).toEqual(['run_sql']);
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      const read = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ } });
      expect(read.isError, textOf(read)).toBeFalsy();
      expect(textOf(read)).toContain('[masked:customers.email]');
      expect(journal().at(-1)?.call['principal']).toMatchObject({ subject: 'sam' });
    } finally {
      await client.close();
      await bridge.close();
    }
    expect(bridge.lines.filter((l) => l.startsWith('subscriptions/listen failed'))).toEqual([]);
  });

  it('a token past its lifetime: the next 2026-07-28 request carries a refreshed one (no new sign-in)', async () => {
    const cache = join(cacheDir, 'sam-refresh', 'tokens.json');
    const lines: string[] = [];
    const signIn = obtainAccessToken({ url: h.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache, log: (l) => void lines.push(l) });
    await h.idp.approveDevice(await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt'), 'sam');
    await signIn;
    // The bridge, the gateway and the provider run in this process: moving Date moves every clock that decides expiry.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    onTestFinished(() => void vi.useRealTimers());
    const bridge = startBridge({ url: h.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: cache });
    const client = new V2Client({ name: 'refreshing-v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    try {
      await bridge.connectV2(client);
      const sql = 'SELECT count(*) AS n FROM orders -- v2 after expiry';
      vi.setSystemTime(Date.now() + 10 * 60 * 1000);
      const result = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(result.isError, textOf(result)).toBeFalsy();
      expect(bridge.lines.some((l) => l.startsWith('Refreshed the access token'))).toBe(true);
      expect(bridge.lines.some((l) => l.startsWith('To sign in'))).toBe(false);
      expect(journal().find((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql)?.call['principal']).toMatchObject({ subject: 'sam' });
    } finally {
      await client.close();
      await bridge.close();
    }
  });

  it('a gateway that cannot be reached: server/discover is answered with backend.unavailable (as a legacy initialize is), not left waiting', async () => {
    const port = await freePort();
    const bridge = startBridge({
      url: `http://127.0.0.1:${port}/mcp`,
      clientId: TEST_CLIENTS.agent.clientId,
      clientSecret: TEST_CLIENTS.agent.clientSecret,
      tokenCache: null,
    });
    const client = new V2Client({ name: 'unreachable-v2', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    try {
      const error = await bridge.connectV2(client).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(Error);
      expect(bridge.lines.some((l) => l.startsWith(`server/discover failed: The gateway http://127.0.0.1:${port} could not be reached`))).toBe(true);
      expect(bridge.stopped()).toBe(false);
    } finally {
      await client.close().catch(() => undefined);
      await bridge.close();
    }
  });
});

describe('a 2026-07-28 call waiting for an out-of-band approval, through the bridge', () => {
  let w: HttpHarness<'ann' | 'dora'>;
  let annCache: string;

  beforeAll(async () => {
    w = await startHttpGateway<'ann' | 'dora'>({
      prefix: 'bridge_eras_wait',
      accounts: { ann: { groups: ['analysts'] }, dora: { groups: ['dba'] } },
      policy: DEFAULT_POLICY,
      // Long enough that only a cancellation or a decision ends the wait in this test.
      approval: '{ wait: 60s, store: approvals.db }',
    });
    annCache = join(cacheDir, 'ann-wait', 'tokens.json');
    const lines: string[] = [];
    const signIn = obtainAccessToken({ url: w.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: annCache, log: (l) => void lines.push(l) });
    const code = await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt');
    await w.idp.approveDevice(code, 'ann');
    await signIn;
  });

  afterAll(async () => {
    await w?.close();
  });

  it('cancelled by the client: the bridge closes that request’s stream, the gateway journals it abandoned; the re-issued call runs once approved', async () => {
    const sql = "UPDATE customers SET city = 'Mechelen' WHERE id = 4";
    const journalPath = join(w.dir, 'journal.db');
    const bridge = startBridge({ url: w.resource, clientId: TEST_CLIENTS.cli.clientId, tokenCache: annCache });
    const client = new V2Client({ name: 'bridged-v2-wait', version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    try {
      await bridge.connectV2(client);
      const gone = new AbortController();
      const first = client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, { signal: gone.signal }).then(
        () => null,
        (e: unknown) => e,
      );
      const id = await waitForPending(w.gateway, sql);
      gone.abort();
      expect(await first).toBeInstanceOf(Error);
      await until(
        () =>
          [...readCalls(journalPath)].some((e) =>
            e.events.some((ev) => ev.type === 'approval' && ev.data['event'] === 'abandoned' && ev.data['approvalId'] === id),
          ),
        'the abandoned call in the journal',
      );
      expect(await w.db.query('SELECT city FROM customers WHERE id = 4')).not.toEqual([{ city: 'Mechelen' }]);

      const approved = await fetch(`${w.origin}/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await w.token('dora')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'bridged wait' }),
      });
      expect(approved.status, await approved.text()).toBe(200);
      const again = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(again.isError, textOf(again)).toBeFalsy();
      expect(await w.db.query('SELECT city FROM customers WHERE id = 4')).toEqual([{ city: 'Mechelen' }]);
      expect(bridge.lines.filter((l) => /Could not deliver/.test(l))).toEqual([]);
    } finally {
      await client.close();
      await bridge.close();
    }
  });
});
