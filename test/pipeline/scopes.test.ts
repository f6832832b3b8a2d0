// Per-operation scopes and service principals through the whole pipeline, with
// real tokens from the test provider (device-flow persons, client_credentials
// services) verified as the gateway verifies them, on a fresh shop database:
// a call needing a scope its token lacks is refused before the decision with
// identity.insufficient_scope listing every needed and every missing scope,
// journaled once as a refusal, nothing run; a service principal is matched by
// `principal:` rules, journaled as such, and never asked to approve in the
// client (refused without approver groups, out of band with them). A local
// identity is not scope-checked (no token).

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatApproval } from '../../src/approval/format.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { createOidcVerifier, type TokenVerifier } from '../../src/identity/oidc.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { describeTools } from '../../src/server.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from '../support/oidc.js';
import { expectOk, expectRefused } from '../support/results.js';

const RESOURCE = 'http://127.0.0.1:7778/mcp';

const POLICY = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin] }
    effect: deny
  - name: people-read
    match: { tool: run_sql, principal: person, access: read }
    effect: allow
  - name: people-update-orders
    match: { tool: run_sql, principal: person, access: write, tables: [public.orders] }
    effect: allow
  - name: services-read
    match: { tool: run_sql, principal: service, access: read, tables: [public.orders, public.products] }
    effect: allow
  - name: services-update-orders
    match: { tool: run_sql, principal: service, operation: update, tables: [public.orders] }
    effect: approve
    approvers: { requester: true }
  - name: services-delete-notes
    match: { tool: run_sql, principal: service, operation: delete, tables: [public.audit_notes] }
    effect: approve
    approvers: { requester: true, groups: [dba] }
`;

const SCOPES = `scopes:
    - { scope: "sql:write", match: { tool: run_sql, access: write } }
    - { scope: "pii:read", match: { tables: [customers] } }`;

let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
let gateway: Gateway;
let verifier: TokenVerifier;

beforeAll(async () => {
  idp = await startTestIdp();
  db = await freshDatabase('scopes');
  dir = writeConfig({ policy: POLICY, oidc: { issuer: idp.issuer, audience: RESOURCE } });
  const gatewayYaml = join(dir, 'policies', 'gateway.yaml');
  // The identity line as a block, with the scopes mapping.
  const yaml = readFileSync(gatewayYaml, 'utf8').replace(
    /^identity: .*$/m,
    `identity:\n  mode: oidc\n  issuer: "${idp.issuer}"\n  audience: "${RESOURCE}"\n  required_scopes: [mcp]\n  ${SCOPES}`,
  );
  writeFileSync(gatewayYaml, yaml);
  gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl } });
  const settings = gateway.config.identity;
  if (settings?.mode !== 'oidc') throw new Error('expected an oidc identity');
  verifier = createOidcVerifier(settings);
});

afterAll(async () => {
  await gateway?.close();
  await db?.drop();
  await idp?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const person = async (account: string, scope: string) => (await idp.deviceLogin(RESOURCE, account, scope)).access_token;
const service = (scope: string) => idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, RESOURCE, scope);

/** One run_sql call as the bearer of `token`: verified, then the pipeline with the token's identity and scopes (what the MCP endpoint does). */
async function call(token: string, sql: string): Promise<CallResult> {
  const verified = await verifier.verify(token);
  return callTool(gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql },
    identity: verified.identity,
    scopes: verified.scopes,
    client: { name: 'vitest' },
  });
}

type Row = { seq: number; type: string; call_id: string; data: string };

/** The call's records, asserting exactly one intent and one outcome (approval events aside). */
function journaled(callId: string): { call: Record<string, any>; outcome: Record<string, any> } {
  const j = new Database(gateway.config.journal.path, { readonly: true });
  try {
    const rows = (j.prepare('SELECT seq, type, call_id, data FROM records ORDER BY seq').all() as Row[]).filter(
      (r) => r.call_id === callId && r.type !== 'approval' && r.type !== 'grant',
    );
    expect(rows.map((r) => r.type)).toEqual(['call', 'outcome']);
    return { call: JSON.parse(rows[0]!.data), outcome: JSON.parse(rows[1]!.data) };
  } finally {
    j.close();
  }
}

async function orderStatus(id: number): Promise<string> {
  const rows = await db.query<{ status: string }>(`SELECT status FROM orders WHERE id = ${id}`);
  return rows[0]!.status;
}

describe('per-operation scopes', () => {
  it('a write without sql:write is refused before the decision, listing the needed and missing scopes; journaled once; nothing runs', async () => {
    const before = await orderStatus(1);
    const r = await call(await person('alice', 'mcp'), `UPDATE orders SET status = 'scoped' WHERE id = 1`);
    const text = expectRefused(r, 'identity.insufficient_scope');
    expect(text).toContain('needs the scopes mcp sql:write');
    expect(text).toContain('lacks sql:write');
    if (r.ok) return;
    expect(r.error.details).toEqual({ neededScopes: ['mcp', 'sql:write'], missingScopes: ['sql:write'] });
    const { call: intent, outcome } = journaled(r.callId);
    expect(intent['principal']).toMatchObject({ subject: 'alice', kind: 'oidc', principal: 'person' });
    expect(intent['decision']).toMatchObject({ effect: 'deny', rule: null });
    expect(intent['decision'].message).toContain('identity.insufficient_scope');
    expect(intent['scopes']).toEqual({ needed: ['mcp', 'sql:write'], missing: ['sql:write'] });
    expect(intent['request']).toMatchObject({ operation: 'update', access: 'write' });
    expect(outcome).toMatchObject({ status: 'refused', errorCode: 'identity.insufficient_scope' });
    expect(await orderStatus(1)).toBe(before);
  });

  it('the same write with sql:write goes on to the decision and runs', async () => {
    const r = expectOk(await call(await person('alice', 'mcp sql:write'), `UPDATE orders SET status = 'stepped-up' WHERE id = 1`));
    expect(journaled(r.callId).call['scopes']).toEqual({ needed: ['mcp', 'sql:write'], missing: [] });
    expect(await orderStatus(1)).toBe('stepped-up');
  });

  it('every needed scope is listed, and every missing one: a write touching customers needs sql:write and pii:read', async () => {
    const r = await call(await person('bob', 'mcp'), `UPDATE customers SET city = city WHERE id = 1`);
    expectRefused(r, 'identity.insufficient_scope');
    if (r.ok) return;
    expect(r.error.details).toEqual({ neededScopes: ['mcp', 'sql:write', 'pii:read'], missingScopes: ['sql:write', 'pii:read'] });
    // Holding one of them, the other is still missing; all are still listed.
    const half = await call(await person('bob', 'mcp sql:write'), `UPDATE customers SET city = city WHERE id = 1`);
    expectRefused(half, 'identity.insufficient_scope');
    if (!half.ok) expect(half.error.details).toEqual({ neededScopes: ['mcp', 'sql:write', 'pii:read'], missingScopes: ['pii:read'] });
  });

  it("a call no entry matches is not scope-checked in the pipeline (required_scopes are the verifier's, on every token)", async () => {
    const r = expectOk(await call(await person('carol', 'mcp'), 'SELECT id, status FROM orders ORDER BY id LIMIT 1'));
    expect(journaled(r.callId).call['scopes']).toBeUndefined();
  });

  it('an OIDC identity whose transport passed no scopes is checked as holding none (fails closed)', async () => {
    const verified = await verifier.verify(await person('carol', 'mcp sql:write'));
    const r = await callTool(gateway, {
      tool: 'run_sql',
      args: { connection: 'db', sql: `UPDATE orders SET status = 'no-scopes' WHERE id = 4` },
      identity: verified.identity,
    });
    expectRefused(r, 'identity.insufficient_scope');
    if (!r.ok) expect(r.error.details).toEqual({ neededScopes: ['mcp', 'sql:write'], missingScopes: ['mcp', 'sql:write'] });
  });

  it('a local identity (no token) is not scope-checked', async () => {
    const local = makeIdentity({ kind: 'local', subject: 'ops', groups: [], issuer: 'local' });
    const r = expectOk(
      await callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql: `UPDATE orders SET status = 'local' WHERE id = 2` }, identity: local }),
    );
    expect(journaled(r.callId).call['scopes']).toBeUndefined();
    expect(await orderStatus(2)).toBe('local');
  });
});

describe('service principals', () => {
  it('the tool description says which rules are for service tokens and which for persons', () => {
    const description = describeTools(gateway.config)[0]?.description ?? '';
    expect(description).toMatch(/^- services-read: allow read .*\(service tokens\)$/m);
    expect(description).toMatch(/^- people-read: allow read .*\(persons\)$/m);
  });

  it('a client_credentials token is matched by principal: service rules and journaled as a service', async () => {
    const r = expectOk(await call(await service('mcp'), 'SELECT id FROM orders ORDER BY id LIMIT 1'));
    const { call: intent } = journaled(r.callId);
    expect(intent['principal']).toMatchObject({ subject: 'agent-svc', kind: 'oidc', principal: 'service', groups: ['agents'] });
    expect(intent['decision']).toMatchObject({ effect: 'allow', rule: 'services-read' });
    // The person rules do not apply to it: a read of customers (with pii:read) matches no service rule.
    expectRefused(await call(await service('mcp pii:read'), 'SELECT city FROM customers LIMIT 1'), 'policy.no_match');
  });

  it('a rule only the requester could approve is refused for a service: no person at the client; nothing runs', async () => {
    const before = await orderStatus(3);
    const r = await call(await service('mcp sql:write'), `UPDATE orders SET status = 'svc' WHERE id = 3`);
    const text = expectRefused(r, 'approval.unavailable');
    expect(text).toContain('agent-svc is a service');
    expect(text).toContain('no person at the client to ask');
    if (r.ok) return;
    const { call: intent, outcome } = journaled(r.callId);
    expect(intent['decision']).toMatchObject({ effect: 'approve', rule: 'services-update-orders' });
    expect(outcome).toMatchObject({ status: 'refused', errorCode: 'approval.unavailable' });
    expect(await orderStatus(3)).toBe(before);
  });

  it('with approver groups the request goes out of band (pending), even though the rule also names the requester', async () => {
    const r = await call(await service('mcp sql:write'), `DELETE FROM audit_notes WHERE id = -1`);
    expectRefused(r, 'approval.pending');
    const pending = await gateway.state.approvals.list(new Date(), { status: 'pending' });
    const request = pending.find((a) => a.subject.input['sql'] === 'DELETE FROM audit_notes WHERE id = -1');
    expect(request?.subject.requester).toMatchObject({ subject: 'agent-svc', principal: 'service' });
    // What approvers are shown says there is no person behind the request.
    expect(formatApproval(request!, new Date())).toMatch(/by agent-svc \[oidc, a service \(no person\), issuer /);
    // The service may not approve its own request out of band (over the API, with its own token): a dba must.
    expect(request?.subject.allowRequester).toBe(false);
    const vote = gateway.state.approvals.vote(
      request!.id,
      {
        approver: { subject: 'agent-svc', groups: ['agents'], kind: 'oidc' },
        decision: 'approve',
        via: 'api',
        at: new Date().toISOString(),
      },
      new Date(),
    );
    await expect(vote).rejects.toMatchObject({ code: 'approval.forbidden' });
  });
});
