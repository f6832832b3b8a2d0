// The bridge and a 403 insufficient_scope (issue 14, item 3): the real gateway maps
// writes to the scope `sql:write`, and bridges are started asking only for `mcp`
// (--scope). A 2026-07-28 write then meets the step-up challenge listing every scope
// the call needs. A service agent's bridge gets a token with them by itself (client
// credentials for `mcp sql:write`) and re-issues the call once: it runs, journaled as a
// refusal for scope and then the call. A person's bridge cannot get one without a new
// sign-in: it starts one asking for them (the device flow, in the background), and the
// client gets identity.insufficient_scope naming the scopes and where to sign in;
// nothing runs until the client re-issues the call after the sign-in.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as V2Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { obtainAccessToken } from '../../src/bridge/tokens.js';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { TEST_CLIENTS } from '../support/oidc.js';
import { startBridge, until, type BridgeRun } from './harness.js';

const MODERN = '2026-07-28';

const POLICY = `kind: policy
rules:
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
  - name: developers-update-orders
    match: { tool: run_sql, groups: [developers], access: write, tables: [public.orders] }
    effect: allow
  - name: agents-update-orders
    match: { tool: run_sql, principal: service, groups: [agents], operation: update, tables: [public.orders] }
    effect: allow
`;

type Account = 'alice';
let h: HttpHarness<Account>;
let cacheDir: string;
let aliceCache: string;

beforeAll(async () => {
  h = await startHttpGateway<Account>({
    prefix: 'bridge_stepup',
    accounts: { alice: { groups: ['developers'] } },
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
    identity: 'scopes: [{ scope: "sql:write", match: { tool: run_sql, access: write } }]',
  });
  cacheDir = mkdtempSync(join(tmpdir(), 'drawbridge-bridge-stepup-'));
  aliceCache = join(cacheDir, 'alice', 'tokens.json');
  const lines: string[] = [];
  const signIn = obtainAccessToken({
    url: h.resource,
    clientId: TEST_CLIENTS.cli.clientId,
    scope: 'mcp',
    tokenCache: aliceCache,
    log: (l) => void lines.push(l),
  });
  const code = await until(() => / and enter (\S+)$/.exec(lines.find((l) => l.startsWith('To sign in')) ?? '')?.[1], 'the prompt');
  await h.idp.approveDevice(code, 'alice');
  await signIn;
});

afterAll(async () => {
  await h?.close();
  if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
});

const callsOf = (sql: string): CallEntry[] =>
  [...readCalls(join(h.dir, 'journal.db'))].filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql);
const textOf = (result: unknown): string =>
  (((result as Record<string, unknown> | undefined)?.['content'] ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
const orderStatus = async (id: number): Promise<string> => (await h.db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`))[0]!.status;

async function modernThrough(bridge: BridgeRun, name: string): Promise<V2Client> {
  const client = new V2Client({ name, version: '1.0.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
  await bridge.connectV2(client);
  return client;
}

describe('a 2026-07-28 write through the bridge that needs sql:write, with a token for mcp only', () => {
  it('a service agent: the bridge gets a token with mcp sql:write (client credentials) and re-issues once; the write runs', async () => {
    const sql = `UPDATE orders SET status = 'bridge-stepped-up' WHERE id = 6`;
    const bridge = startBridge({
      url: h.resource,
      clientId: TEST_CLIENTS.agent.clientId,
      clientSecret: TEST_CLIENTS.agent.clientSecret,
      scope: 'mcp',
      tokenCache: null,
    });
    const client = await modernThrough(bridge, 'bridged-svc-stepup');
    try {
      const result = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(result.isError, `${textOf(result)}\n${bridge.lines.join('\n')}`).toBeFalsy();
    } finally {
      await client.close();
      await bridge.close();
    }
    expect(await orderStatus(6)).toBe('bridge-stepped-up');
    expect(bridge.lines).toContain('The gateway needs the scopes mcp sql:write; got a token with them, sending the request again.');
    const calls = callsOf(sql);
    expect(calls.map((c) => [(c.call['decision'] as { effect?: string } | null)?.effect, c.outcome?.['status']])).toEqual([
      ['deny', 'refused'],
      ['allow', 'ok'],
    ]);
    expect(calls.map((c) => (c.call['principal'] as { principal?: string } | null)?.principal)).toEqual(['service', 'service']);
    expect(calls[1]!.call['scopes']).toEqual({ needed: ['mcp', 'sql:write'], missing: [] });
  });

  it('a service agent: two writes refused at once both step up (one new token) and both run', async () => {
    const sqls = [8, 9].map((id) => `UPDATE orders SET status = 'bridge-stepped-up-${id}' WHERE id = ${id}`);
    const bridge = startBridge({
      url: h.resource,
      clientId: TEST_CLIENTS.agent.clientId,
      clientSecret: TEST_CLIENTS.agent.clientSecret,
      scope: 'mcp',
      tokenCache: null,
    });
    const client = await modernThrough(bridge, 'bridged-svc-stepup-2');
    try {
      const results = await Promise.all(sqls.map((sql) => client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })));
      for (const result of results) expect(result.isError, `${textOf(result)}\n${bridge.lines.join('\n')}`).toBeFalsy();
    } finally {
      await client.close();
      await bridge.close();
    }
    expect([await orderStatus(8), await orderStatus(9)]).toEqual(['bridge-stepped-up-8', 'bridge-stepped-up-9']);
    for (const sql of sqls) expect(callsOf(sql).at(-1)?.outcome?.['status']).toBe('ok');
    // One client credentials grant for mcp, one for mcp sql:write.
    expect(bridge.lines.filter((l) => l.startsWith('Obtained an access token for '))).toHaveLength(2);
  });

  it('a person: refused naming the scopes and the sign-in (started now) that gets them; re-issued after the sign-in, it runs', async () => {
    const sql = `UPDATE orders SET status = 'bridge-person-stepped' WHERE id = 7`;
    const before = await orderStatus(7);
    const bridge = startBridge({ url: h.resource, clientId: TEST_CLIENTS.cli.clientId, scope: 'mcp', tokenCache: aliceCache });
    const client = await modernThrough(bridge, 'bridged-person-stepup');
    try {
      const error = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }).then(
        () => null,
        (e: unknown) => e,
      );
      const code = await bridge.prompt();
      const message = String((error as Error | null)?.message);
      expect(message).toContain('identity.insufficient_scope: The gateway needs a token with the scopes mcp sql:write for this request. To sign in to');
      expect(message).toContain(`and enter ${code}`);
      expect(await orderStatus(7)).toBe(before);
      // Meanwhile a read needs no more than mcp: the same bridge keeps serving with the token it has.
      const read = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM orders' } });
      expect(read.isError, textOf(read)).toBeFalsy();

      await h.idp.approveDevice(code, 'alice');
      await until(() => bridge.lines.some((l) => l.startsWith(`Signed in to ${h.resource} as alice`)), 'the sign-in');
      const again = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } });
      expect(again.isError, textOf(again)).toBeFalsy();
    } finally {
      await client.close();
      await bridge.close();
    }
    expect(await orderStatus(7)).toBe('bridge-person-stepped');
    expect(bridge.lines).toContain('The gateway needs the scopes mcp sql:write; a token with them needs a new sign-in.');
    const calls = callsOf(sql);
    expect(calls.map((c) => c.outcome?.['status'])).toEqual(['refused', 'ok']);
    expect(calls[1]!.call['scopes']).toEqual({ needed: ['mcp', 'sql:write'], missing: [] });
  });
});
