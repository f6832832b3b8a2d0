// Per-operation scopes over HTTP with real tokens from the test provider (issue
// 14 item 3): identity.scopes maps writes to `sql:write`. A 2026-07-28 tools/call
// whose token lacks it answers HTTP 403 with the step-up challenge
// (WWW-Authenticate: Bearer error="insufficient_scope", scope="<every needed
// scope>", resource_metadata="…"), journaled once as a refusal; the same call
// with a token holding sql:write runs. A 2025-11-25 session keeps the coded tool
// error, carrying the same scope lists. The RFC 9728 document lists the mapped
// scopes in scopes_supported. A client_credentials token is a service principal
// on both eras.

import { join } from 'node:path';
import {
  ClientCredentialsProvider,
  Client as V2Client,
  InsufficientScopeError,
  StreamableHTTPClientTransport as V2HttpClientTransport,
} from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1HttpClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { SCOPES_META_KEY } from '../../src/pipeline/answer.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { MODERN, messageOf, modernToolsCall } from '../support/mcp-2026.js';
import { TEST_CLIENTS } from '../support/oidc.js';

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
  - name: agents-delete-notes
    match: { tool: run_sql, groups: [agents], operation: delete, tables: [public.audit_notes] }
    effect: approve
    approvers: { requester: true, groups: [dba] }
  - name: developers-delete-notes-ask-agents
    match: { tool: run_sql, groups: [developers], operation: delete, tables: [public.audit_notes] }
    effect: approve
    approvers: { groups: [agents] }
`;

type Account = 'alice';
let h: HttpHarness<Account>;
let metadataUrl: string;

beforeAll(async () => {
  h = await startHttpGateway<Account>({
    prefix: 'scopes_http',
    accounts: { alice: { groups: ['developers'] } },
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
    identity: 'scopes: [{ scope: "sql:write", match: { tool: run_sql, access: write } }]',
  });
  metadataUrl = new URL('/.well-known/oauth-protected-resource/mcp', h.resource).href;
});

afterAll(async () => {
  await h?.close();
});

const personToken = async (scope: string) => (await h.idp.deviceLogin(h.resource, 'alice', scope)).access_token;
const serviceToken = (scope: string) => h.idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, h.resource, scope);

function challenge(header: string | null): Record<string, string> {
  expect(header).toMatch(/^Bearer /);
  const out: Record<string, string> = {};
  for (const m of (header ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return out;
}

/** A 2026-07-28 tools/call of run_sql with its standard headers and the bearer token. */
async function modernCall(token: string, sql: string): Promise<{ status: number; headers: Headers; body: Record<string, any> }> {
  const res = await modernToolsCall({
    url: h.http.url,
    token,
    params: { name: 'run_sql', arguments: { connection: 'db', sql } },
    envelope: { client: 'raw-http' },
  });
  return { status: res.status, headers: res.headers, body: await messageOf(res) };
}

/** The journaled calls whose input was `sql`. */
const callsOf = (sql: string): CallEntry[] =>
  [...readCalls(join(h.dir, 'journal.db'))].filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql);

async function orderStatus(id: number): Promise<string> {
  return (await h.db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`))[0]!.status;
}

describe('scopes over HTTP', () => {
  it('the RFC 9728 document lists the required and the mapped scopes', async () => {
    const doc = (await (await fetch(metadataUrl)).json()) as Record<string, unknown>;
    expect(doc['scopes_supported']).toEqual(['mcp', 'sql:write']);
  });

  it('2026-07-28: a write without sql:write answers 403 with the step-up challenge naming every needed scope; journaled once; nothing runs', async () => {
    const sql = `UPDATE orders SET status = 'modern-denied' WHERE id = 1`;
    const before = await orderStatus(1);
    const r = await modernCall(await personToken('mcp'), sql);
    expect(r.status).toBe(403);
    const params = challenge(r.headers.get('www-authenticate'));
    expect(params).toMatchObject({ error: 'insufficient_scope', scope: 'mcp sql:write', resource_metadata: metadataUrl });
    expect(params['error_description']).toContain('lacks sql:write');
    expect(r.body).toMatchObject({
      jsonrpc: '2.0',
      id: 7,
      error: { data: { code: 'identity.insufficient_scope', neededScopes: ['mcp', 'sql:write'], missingScopes: ['sql:write'] } },
    });
    const journaled = callsOf(sql);
    expect(journaled).toHaveLength(1);
    expect(journaled[0]!.call).toMatchObject({
      principal: { subject: 'alice', principal: 'person' },
      decision: { effect: 'deny', rule: null },
      scopes: { needed: ['mcp', 'sql:write'], missing: ['sql:write'] },
    });
    expect(journaled[0]!.outcome).toMatchObject({ status: 'refused', errorCode: 'identity.insufficient_scope' });
    expect(await orderStatus(1)).toBe(before);
  });

  it('2026-07-28: after stepping up to sql:write the same write runs', async () => {
    const sql = `UPDATE orders SET status = 'modern-ok' WHERE id = 1`;
    const r = await modernCall(await personToken('mcp sql:write'), sql);
    expect(r.status).toBe(200);
    expect(r.body['result']?.['isError']).toBeUndefined();
    expect(await orderStatus(1)).toBe('modern-ok');
    expect(callsOf(sql)[0]!.call).toMatchObject({ decision: { effect: 'allow', rule: 'developers-update-orders' }, scopes: { missing: [] } });
  });

  it('2026-07-28: a read needs no more than the required scope', async () => {
    const r = await modernCall(await personToken('mcp'), 'SELECT id FROM orders ORDER BY id LIMIT 1');
    expect(r.status).toBe(200);
    expect(r.body['result']?.['isError']).toBeUndefined();
  });

  it('2025-11-25 session: the refusal stays a coded tool error carrying the same scope lists', async () => {
    const sql = `UPDATE orders SET status = 'legacy-denied' WHERE id = 2`;
    const { client } = await h.mcpSession('alice', 'scopes-legacy');
    try {
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as Record<string, any>;
      expect(result['isError']).toBe(true);
      expect(result['content'][0].text).toMatch(/^identity\.insufficient_scope: This call needs the scopes mcp sql:write; the access token lacks sql:write\./);
      expect(result['_meta']?.[SCOPES_META_KEY]).toEqual({ needed: ['mcp', 'sql:write'], missing: ['sql:write'] });
    } finally {
      await client.close();
    }
    expect(callsOf(sql)).toHaveLength(1);
    expect(callsOf(sql)[0]!.outcome).toMatchObject({ status: 'refused', errorCode: 'identity.insufficient_scope' });
  });

  it('a client_credentials token is a service principal over HTTP: journaled as such, and stepped up like a person', async () => {
    const sql = `UPDATE audit_notes SET note = note WHERE id = 1`;
    const denied = await modernCall(await serviceToken('mcp'), sql);
    expect(denied.status).toBe(403);
    expect(challenge(denied.headers.get('www-authenticate'))['scope']).toBe('mcp sql:write');
    expect(callsOf(sql)[0]!.call).toMatchObject({ principal: { subject: 'agent-svc', principal: 'service', groups: ['agents'] } });
    // With the scope, policy decides: no rule lets the agents group write audit notes.
    const refused = await modernCall(await serviceToken('mcp sql:write'), sql);
    expect(refused.status).toBe(200);
    expect(refused.body['result']?.['isError']).toBe(true);
    expect(refused.body['result']?.['content'][0].text).toMatch(/^policy\.no_match/);
  });
});

describe('the SDK v2 client (2026-07-28) and the step-up challenge', () => {
  it('reads the challenge: InsufficientScopeError with every needed scope and the metadata URL', async () => {
    const transport = new V2HttpClientTransport(new URL(h.resource), {
      requestInit: { headers: { authorization: `Bearer ${await personToken('mcp')}` } },
    });
    const client = new V2Client({ name: 'sdk-v2-stepup', version: '2.4.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(transport);
    try {
      const error = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `UPDATE orders SET status = 'v2' WHERE id = 4` } }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InsufficientScopeError);
      expect((error as InsufficientScopeError).requiredScope).toBe('mcp sql:write');
      expect((error as InsufficientScopeError).resourceMetadataUrl?.href).toBe(metadataUrl);
    } finally {
      await client.close();
    }
  });

  it('steps up by itself: a client_credentials client asking for mcp gets 403, asks the provider for mcp sql:write, and the retried call runs', async () => {
    const sql = `UPDATE orders SET status = 'stepped-up-svc' WHERE id = 5`;
    const provider = new ClientCredentialsProvider({
      clientId: TEST_CLIENTS.agent.clientId,
      clientSecret: TEST_CLIENTS.agent.clientSecret,
      scope: 'mcp',
      expectedIssuer: h.idp.issuer,
    });
    const transport = new V2HttpClientTransport(new URL(h.resource), { authProvider: provider });
    const client = new V2Client({ name: 'sdk-v2-stepup', version: '2.4.0' }, { versionNegotiation: { mode: { pin: MODERN } } });
    await client.connect(transport);
    try {
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as Record<string, any>;
      expect(result['isError'], JSON.stringify(result)).toBeFalsy();
    } finally {
      await client.close();
    }
    expect(await orderStatus(5)).toBe('stepped-up-svc');
    // Journaled twice: the refusal for scope, then the stepped-up call, both as the service.
    const calls = callsOf(sql);
    expect(calls.map((c) => [(c.call['decision'] as { effect?: string } | null)?.effect, c.outcome?.['status']])).toEqual([
      ['deny', 'refused'],
      ['allow', 'ok'],
    ]);
    expect(calls.map((c) => (c.call['principal'] as { principal?: string } | null)?.principal)).toEqual(['service', 'service']);
    expect(calls[1]!.call['scopes']).toEqual({ needed: ['mcp', 'sql:write'], missing: [] });
  });
});

describe('a service principal on a 2025-11-25 session whose client can show a form', () => {
  it('is never asked in the client: a rule naming the requester and approver groups goes out of band (pending)', async () => {
    const sql = 'DELETE FROM audit_notes WHERE id = -7';
    const token = await serviceToken('mcp sql:write');
    const transport = new V1HttpClientTransport(new URL(h.resource), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
    const client = new V1Client({ name: 'svc-with-form', version: '1.0.0' }, { capabilities: { elicitation: { form: {} } } });
    const prompts: string[] = [];
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      prompts.push(request.params.message);
      return { action: 'decline' };
    });
    await client.connect(transport);
    try {
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as Record<string, any>;
      expect(result['isError']).toBe(true);
      expect(result['content'][0].text).toMatch(/^approval\.pending/);
      expect(prompts).toEqual([]);
    } finally {
      await client.close();
    }
    const pending = await h.gateway.state.approvals.list(new Date(), { status: 'pending' });
    expect(pending.find((a) => a.subject.input['sql'] === sql)?.subject).toMatchObject({ allowRequester: false, requester: { principal: 'service' } });
  });
});

describe('a service principal in an approver group', () => {
  it("cannot vote over the approvals API: an approval is a person's decision", async () => {
    const sql = 'DELETE FROM audit_notes WHERE id = -8';
    const asked = await modernCall(await personToken('mcp sql:write'), sql);
    expect(JSON.stringify(asked.body)).toMatch(/approval\.pending/);
    const pending = (await h.gateway.state.approvals.list(new Date(), { status: 'pending' })).find((a) => a.subject.input['sql'] === sql);
    expect(pending?.subject.approverGroups).toEqual(['agents']);
    const vote = await fetch(new URL(`/api/v1/approvals/${pending!.id}/approve`, h.origin), {
      method: 'POST',
      headers: { authorization: `Bearer ${await serviceToken('mcp')}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(vote.status).toBe(403);
    const body = (await vote.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('approval.forbidden');
    expect(body.error.message).toMatch(/agent-svc is a service .*approving or denying is for a person/);
    expect((await h.gateway.state.approvals.get(pending!.id, new Date()))?.votes).toEqual([]);
  });
});
