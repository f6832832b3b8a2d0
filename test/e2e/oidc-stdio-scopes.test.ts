// stdio with OIDC identities and per-operation scopes, end to end: `drawbridge
// serve` (the built CLI) with the caller's access token in the environment.
// The token's scopes go with every call: a write needing sql:write is refused
// with identity.insufficient_scope (the coded tool error with both scope lists)
// when the token lacks it, and runs when it holds it. Tokens are minted with the
// test provider's own key (so the scope claim is exactly what the test says).

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCOPES_META_KEY } from '../../src/pipeline/answer.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';

const AUDIENCE = 'http://127.0.0.1:7791/mcp';
let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
const clients: Client[] = [];

const POLICY = `kind: policy
rules:
  - name: developers-update-orders
    match: { tool: run_sql, access: write, groups: [developers], tables: [public.orders] }
    effect: allow
`;

async function serve(token: string): Promise<Client> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl, DRAWBRIDGE_TOKEN: token },
    cwd: REPO_ROOT,
    stderr: 'pipe',
  });
  const client = new Client({ name: 'oidc-stdio-scopes', version: '1.0.0' });
  await client.connect(transport);
  clients.push(client);
  return client;
}

const update = (client: Client, status: string) =>
  client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `UPDATE orders SET status = '${status}' WHERE id = 1` } }) as Promise<CallToolResult>;

describe('stdio serve with OIDC: per-operation scopes', () => {
  beforeAll(async () => {
    requireBuiltCli();
    idp = await startTestIdp({ defaultAudience: AUDIENCE });
    db = await freshDatabase('oidc_stdio_scopes');
    dir = writeConfig({ oidc: { issuer: idp.issuer, audience: AUDIENCE }, policy: POLICY });
    const gatewayYaml = join(dir, 'policies', 'gateway.yaml');
    writeFileSync(
      gatewayYaml,
      readFileSync(gatewayYaml, 'utf8').replace('required_scopes: [mcp]', 'required_scopes: [mcp], scopes: [{ scope: "sql:write", match: { access: write } }]'),
    );
  });

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await idp?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a token without sql:write: the write is refused with both scope lists; nothing runs', async () => {
    const client = await serve(await idp.mint({ sub: 'alice', groups: ['developers'], scope: 'mcp' }));
    const result = await update(client, 'stdio-denied');
    expect(result.isError).toBe(true);
    expect(result.content[0]).toMatchObject({ type: 'text' });
    expect((result.content[0] as { text: string }).text).toMatch(
      /^identity\.insufficient_scope: This call needs the scopes mcp sql:write; the access token lacks sql:write/,
    );
    expect(result._meta?.[SCOPES_META_KEY]).toEqual({ needed: ['mcp', 'sql:write'], missing: ['sql:write'] });
    expect((await db.query<{ status: string }>('SELECT status FROM orders WHERE id = 1'))[0]?.status).not.toBe('stdio-denied');
  });

  it('a token with sql:write: the write runs', async () => {
    const client = await serve(await idp.mint({ sub: 'alice', groups: ['developers'], scope: 'mcp sql:write' }));
    const result = await update(client, 'stdio-ok');
    expect(result.isError, JSON.stringify(result)).toBeFalsy();
    expect((await db.query<{ status: string }>('SELECT status FROM orders WHERE id = 1'))[0]?.status).toBe('stdio-ok');
  });
});
