// stdio with OIDC identities, end to end: the SDK Client spawns `drawbridge
// serve` with the caller's access token (from a real oidc-provider) in the
// environment. The token is verified before the server starts, the caller's
// subject and groups drive policy and the journal, calls are refused once the
// token expires, and out-of-band approvers sign in with the same provider.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runCli, runCliAsync } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';

const AUDIENCE = 'http://127.0.0.1:7790/mcp';
let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
const clients: Client[] = [];

const POLICY = `kind: policy
rules:
  - name: developers-write-with-sre
    match: { tool: run_sql, access: write, groups: [developers] }
    effect: approve
    approvers: { groups: [sre] }
  - name: developers-read
    match: { tool: run_sql, access: read, groups: [developers] }
    effect: allow
masking:
  - name: pii
    match: { tool: run_sql }
    columns: [customers.email]
    detectors: all
`;

async function serve(token: string | undefined): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl, ...(token ? { DRAWBRIDGE_TOKEN: token } : {}) },
    cwd: REPO_ROOT,
    stderr: 'pipe',
  });
  const client = new Client({ name: 'oidc-stdio-test', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

const text = (r: unknown) => ((r as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');
const sql = (client: Client, statement: string) => client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: statement } });

function journalCalls(): Array<Record<string, any>> {
  const journal = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return (journal.prepare("SELECT data FROM records WHERE type = 'call' ORDER BY seq").all() as Array<{ data: string }>).map((r) => JSON.parse(r.data));
  } finally {
    journal.close();
  }
}

const now = () => Math.floor(Date.now() / 1000);

describe('stdio serve with OIDC identities', () => {
  beforeAll(async () => {
    requireBuiltCli();
    idp = await startTestIdp({ defaultAudience: AUDIENCE });
    db = await freshDatabase('oidc_stdio');
    dir = writeConfig({ oidc: { issuer: idp.issuer, audience: AUDIENCE, clockTolerance: '0s' }, policy: POLICY });
  });

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await idp?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the token holder: policy by their groups, the journal names their OIDC identity', async () => {
    const alice = await idp.deviceLogin(AUDIENCE, 'alice');
    const client = await serve(alice.access_token);
    const read = await sql(client, 'SELECT id, email FROM customers ORDER BY id LIMIT 2');
    expect(read.isError).toBeFalsy();
    const last = journalCalls().at(-1)!;
    expect(last['principal']).toEqual({ subject: 'alice', groups: ['developers'], kind: 'oidc', principal: 'person', issuer: idp.issuer });
    expect(JSON.stringify(journalCalls())).not.toContain(alice.access_token);
  });

  it('refuses to start without a token, or with an expired, forged or misdirected one', () => {
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /set DRAWBRIDGE_TOKEN to your access token/],
      ['not-a-jwt', /identity.invalid_token: .*not a JWT/],
    ];
    for (const [token, why] of cases) {
      const r = runCli(['serve', '--config', dir], { env: { DB_URL: db.gatewayUrl, DRAWBRIDGE_TOKEN: token } });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(why);
    }
  });

  it.each([
    ['expired', { iat: now() - 4000, exp: now() - 3600 }, {}, /has expired/],
    ['for another gateway', { aud: 'http://127.0.0.1:1/mcp' }, {}, /another audience/],
    ['forged', {}, { sign: 'foreign' as const }, /signature does not verify/],
    ['without the mcp scope', { scope: 'approvals' }, {}, /identity.insufficient_scope: .*lacks the scope mcp/],
  ])('does not start with a token %s', async (_name, claims, options, why) => {
    const token = await idp.mint({ scope: 'mcp', ...claims }, options);
    const r = await runCliAsync(['serve', '--config', dir], { env: { DB_URL: db.gatewayUrl, DRAWBRIDGE_TOKEN: token } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(why);
    expect(r.stderr).not.toContain(token);
  });

  it('refuses every call once the token has expired, and journals why', async () => {
    // Long enough for the server to start and answer once on a loaded machine.
    const exp = now() + 10;
    const token = await idp.mint({ sub: 'bob', groups: ['developers'], scope: 'mcp', exp });
    const client = await serve(token);
    const before = await sql(client, 'SELECT 1');
    expect(before.isError, text(before)).toBeFalsy();
    await new Promise((r) => setTimeout(r, exp * 1000 + 200 - Date.now()));
    const after = await sql(client, 'SELECT 1');
    expect(after.isError).toBe(true);
    expect(text(after)).toMatch(/^identity.expired: The access token of bob expired at/);
    expect(journalCalls().at(-1)).toMatchObject({ decision: { effect: 'deny', rule: null, message: expect.stringMatching(/^identity.expired: /) } });
  });

  it('approvers sign in with the provider: not the requester, not outside the group, not a forged token', async () => {
    const alice = await idp.deviceLogin(AUDIENCE, 'alice');
    const bob = await idp.deviceLogin(AUDIENCE, 'bob');
    const client = await serve(alice.access_token);
    const update = "UPDATE orders SET note = 'oidc-approved' WHERE id = 1";
    const pending = await sql(client, update);
    expect(text(pending)).toMatch(/^approval.pending: /);
    const id = /\b(ap_[0-9a-z]{10})\b/.exec(text(pending))?.[1];
    expect(id, text(pending)).toBeDefined();

    const vote = (token: string) => runCliAsync(['approvals', 'approve', id!, '--config', dir], { env: { DRAWBRIDGE_APPROVER_TOKEN: token } });
    const byAlice = await vote(alice.access_token);
    expect(byAlice.status).toBe(1);
    expect(byAlice.stderr).toMatch(/approval.forbidden/);
    const forged = await vote(await idp.mint({ sub: 'mallory', groups: ['sre'], scope: 'mcp' }, { sign: 'foreign' }));
    expect(forged.status).toBe(1);
    expect(forged.stderr).toMatch(/identity.invalid_token/);
    const byBob = await vote(bob.access_token);
    expect(byBob.status, byBob.stderr).toBe(0);
    expect(byBob.stdout).toMatch(/approve by bob recorded .* now approved \(1\/1\)/);

    const done = await sql(client, update);
    expect(done.isError, text(done)).toBeFalsy();
    expect(await db.query("SELECT id FROM orders WHERE note = 'oidc-approved'")).toEqual([{ id: 1 }]);
  });
});
