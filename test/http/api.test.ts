// The approvals API (/api/v1/) against a real serveHttp, the test OpenID
// provider and a real PostgreSQL shop database: alice (analysts) writes, which
// needs a DBA; dana (dba) lists, shows and decides over HTTP with her own token;
// grants are listed and revoked; the journal is exported by a reader. Every
// refusal is checked for its status, catalog code and WWW-Authenticate where it
// applies; a call waiting on the gateway is released by an API approve.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway } from '../../src/pipeline/gateway.js';
import { writeConfig } from '../support/fixtures.js';
import { startHttpGateway, waitForPending, type HttpHarness } from '../support/http-gateway.js';
import { runInProcess } from '../support/cli.js';
import { obtainAccessToken } from '../../src/bridge/tokens.js';

const ACCOUNTS = {
  alice: { groups: ['analysts'] },
  dana: { groups: ['dba'] },
  erin: { groups: ['dba'] },
  bob: { groups: ['support'] },
  audrey: { groups: ['auditors'] },
};

const POLICY = `kind: policy
rules:
  - name: customers-need-two
    match: { tool: run_sql, access: write, groups: [analysts], tables: [public.customers] }
    effect: approve
    approvers: { groups: [dba], min: 2 }
    message: Customer data needs two DBAs.
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts], tables: [public.orders] }
    effect: approve
    approvers: { groups: [dba] }
    grant: 15m
    preview: true
    message: Writes to the shop database need a DBA's approval.
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

type Account = keyof typeof ACCOUNTS;

let h: HttpHarness<Account>;
let base: string;
let offsetMs = 0;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'api',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db, pending_ttl: 1h }',
    journalReaders: ['auditors'],
    clock: () => new Date(Date.now() + offsetMs),
  });
  base = `${h.origin}/api/v1`;
  // Every token up front, as before any clock is moved.
  for (const account of Object.keys(ACCOUNTS) as Account[]) await h.token(account);
}, 60_000);

afterAll(async () => {
  await h?.close();
});

/** alice's write through the whole pipeline (as the MCP endpoint would run it); answers the call's result. */
const aliceWrites = (sql: string) => h.call('alice', sql);

/** A pending request for a fresh write; answers its id. */
async function pendingWrite(marker: string): Promise<string> {
  const result = await aliceWrites(`UPDATE orders SET note = '${marker}' WHERE id IN (1, 2)`);
  const approval = result.structured?.approval;
  expect(approval?.status).toBe('pending');
  return approval?.id as string;
}

async function api(path: string, options: { method?: string; token?: string | null; body?: unknown; account?: Account } = {}) {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? await h.token(options.account ?? 'dana') : options.token;
  if (token !== null && token !== undefined) headers['authorization'] = `Bearer ${token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function refusedWith(r: { status: number; json: any; text: string }, status: number, code: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.json.error.code).toBe(code);
  expect(typeof r.json.error.message).toBe('string');
  expect(typeof r.json.error.hint).toBe('string');
  expect(r.text).not.toMatch(/\n\s+at /);
}

describe('the approvals API', () => {
  it('lists and shows pending requests to the approver group with input, parsed summary, rule, preview and times', async () => {
    const id = await pendingWrite('api-show');
    const list = await api('/approvals');
    expect(list.status).toBe(200);
    const listed = list.json.approvals.find((a: any) => a.id === id);
    expect(listed).toMatchObject({ status: 'pending', canDecide: true, subject: { tool: 'run_sql', connection: 'db', rule: 'writes-need-approval' } });
    const show = await api(`/approvals/${id}`);
    expect(show.status).toBe(200);
    const a = show.json.approval;
    expect(a.subject.input).toEqual({ connection: 'db', sql: "UPDATE orders SET note = 'api-show' WHERE id IN (1, 2)" });
    expect(a.subject.summary).toEqual(expect.any(String));
    expect(a.subject.message).toBe("Writes to the shop database need a DBA's approval.");
    expect(a.subject.requester).toMatchObject({ subject: 'alice', groups: ['analysts'] });
    expect(a.subject.preview).not.toBeNull();
    expect(a.votes).toEqual([]);
    expect(Date.parse(a.expiresAt)).toBeGreaterThan(Date.parse(a.createdAt));
    // The requester sees their own request but may not decide it; bob (support) sees nothing of it.
    const mine = await api('/approvals', { account: 'alice' });
    expect(mine.json.approvals.find((x: any) => x.id === id)).toMatchObject({ canDecide: false });
    const bobs = await api('/approvals', { account: 'bob' });
    expect(bobs.json.approvals.map((x: any) => x.id)).not.toContain(id);
    refusedWith(await api(`/approvals/${id}`, { account: 'bob' }), 404, 'approval.not_found');
  });

  it('approve with a 15m grant: journaled as the CLI journals it (via api), the grant is listed, then revoked and journaled', async () => {
    const id = await pendingWrite('api-approve');
    const r = await api(`/approvals/${id}/approve`, { body: { grant: '15m', reason: 'ticket OPS-42' } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.approval.status).toBe('approved');
    expect(r.json.message).toMatch(
      new RegExp(`^${id}: approve by dana recorded \\(journal #\\d+\\)\\. Request run_sql on db is now approved \\(1/1\\); grant 15m\\.`),
    );
    const records: Array<{ type: string; data: Record<string, any> }> = [];
    for await (const row of h.gateway.state.journal.read()) records.push({ type: String(row.type), data: JSON.parse(String(row.data)) });
    const vote = records.find((x) => x.type === 'approval' && x.data['event'] === 'vote' && x.data['approvalId'] === id);
    expect(vote?.data).toMatchObject({
      decision: 'approve',
      via: 'api',
      approver: { subject: 'dana', groups: ['dba'], kind: 'oidc' },
      reason: 'ticket OPS-42',
      grantMs: 15 * 60_000,
      status: 'approved',
    });
    // alice's identical call now runs, and the grant is created.
    const ran = await aliceWrites("UPDATE orders SET note = 'api-approve' WHERE id IN (1, 2)");
    expect(ran.ok, ran.text).toBe(true);
    expect((await h.db.query('SELECT id FROM orders WHERE note = $1 ORDER BY id', ['api-approve'])).map((x) => x['id'])).toEqual([1, 2]);
    const grants = await api('/grants');
    const grant = grants.json.grants.find((g: any) => g.approvalId === id);
    expect(grant).toMatchObject({ subject: 'alice', tool: 'run_sql', connection: 'db', rule: 'writes-need-approval', revokedAt: null });
    refusedWith(await api(`/grants/${grant.id}/revoke`, { method: 'POST', account: 'bob' }), 404, 'grant.not_found');
    const revoked = await api(`/grants/${grant.id}/revoke`, { method: 'POST' });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.json.message).toBe(
      `${grant.id}: revoked by dana; alice no longer has run_sql on db under rule writes-need-approval (it would have expired ${grant.expiresAt}).\n`,
    );
    expect((await api('/grants')).json.grants.map((g: any) => g.id)).not.toContain(grant.id);
    expect((await api('/grants?all')).json.grants.find((g: any) => g.id === grant.id)).toMatchObject({ revokedBy: 'dana' });
    refusedWith(await api(`/grants/${grant.id}/revoke`, { method: 'POST' }), 404, 'grant.not_found');
  });

  it('deny needs a reason; a denial is told to the requester', async () => {
    const id = await pendingWrite('api-deny');
    refusedWith(await api(`/approvals/${id}/deny`, { body: {} }), 400, 'input.invalid');
    refusedWith(await api(`/approvals/${id}/deny`, { body: { reason: 'no', grant: '15m' } }), 400, 'input.invalid');
    const r = await api(`/approvals/${id}/deny`, { body: { reason: 'use the archive job' } });
    expect(r.status, r.text).toBe(200);
    expect(r.json.approval.status).toBe('denied');
    expect(r.json.message).toContain('denied. The agent is told your reason; nothing runs.');
    const again = await aliceWrites("UPDATE orders SET note = 'api-deny' WHERE id IN (1, 2)");
    expect(again.ok).toBe(false);
    expect(again.text).toContain('use the archive job');
  });

  it('refuses: no token, wrong audience, self-approval, outside the groups, duplicate vote, expired, bad grant', async () => {
    const none = await api('/approvals', { token: null });
    refusedWith(none, 401, 'identity.missing');
    expect(none.headers.get('www-authenticate')).toContain('resource_metadata=');
    const wrongAudience = await h.idp.mint({ aud: 'http://127.0.0.1:1/mcp', scope: 'mcp', sub: 'dana', groups: ['dba'] });
    const wa = await api('/approvals', { token: wrongAudience });
    refusedWith(wa, 401, 'identity.invalid_token');
    expect(wa.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const noScope = await h.idp.mint({ aud: h.resource, scope: 'openid', sub: 'dana', groups: ['dba'] });
    refusedWith(await api('/approvals', { token: noScope }), 403, 'identity.insufficient_scope');

    const id = await pendingWrite('api-refusals');
    refusedWith(await api(`/approvals/${id}/approve`, { body: {}, account: 'alice' }), 403, 'approval.forbidden');
    refusedWith(await api(`/approvals/${id}/approve`, { body: {}, account: 'bob' }), 404, 'approval.not_found');
    refusedWith(await api(`/approvals/${id}/approve`, { body: { grant: '2h' } }), 400, 'input.invalid');
    refusedWith(await api(`/approvals/${id}/approve`, { body: { grant: 'soon' } }), 400, 'input.invalid');
    refusedWith(await api(`/approvals/${id}/approve`, { body: { grant: 15 } }), 400, 'input.invalid');
    refusedWith(await api(`/approvals/${id}/approve`, { body: { nope: 'x' } }), 400, 'input.invalid');
    refusedWith(await api(`/approvals/no_such/approve`, { body: {} }), 404, 'approval.not_found');
    expect((await api(`/approvals/${id}/approve`, { body: { grant: 'none' } })).status).toBe(200);
    refusedWith(await api(`/approvals/${id}/approve`, { body: {}, account: 'erin' }), 409, 'approval.not_pending');

    // Two approvers needed: after dana's vote the request is still pending, and her second vote is refused.
    const two = await aliceWrites('UPDATE customers SET phone = phone WHERE id = 1');
    const twoId = two.structured?.approval?.id as string;
    expect(two.structured?.approval?.status).toBe('pending');
    const first = await api(`/approvals/${twoId}/approve`, { body: {} });
    expect(first.json.message).toContain('is now pending (1/2 approvals).');
    refusedWith(await api(`/approvals/${twoId}/approve`, { body: {} }), 409, 'approval.duplicate_vote');
    expect((await api(`/approvals/${twoId}/approve`, { body: {}, account: 'erin' })).json.approval.status).toBe('approved');

    const late = await pendingWrite('api-expired');
    offsetMs += 2 * 3600_000; // the gateway's clock passes the request's pending_ttl
    try {
      refusedWith(await api(`/approvals/${late}/approve`, { body: {} }), 409, 'approval.not_pending');
      expect((await api(`/approvals/${late}`)).json.approval.status).toBe('expired');
    } finally {
      offsetMs = 0;
    }
    refusedWith(await api('/approvals?status=bogus'), 400, 'input.invalid');
    refusedWith(await api('/nothing-here'), 404, 'input.invalid');
    expect((await api('/approvals', { method: 'DELETE' })).status).toBe(405);
  });

  it('a body over the cap is refused, not read', async () => {
    const id = await pendingWrite('api-big');
    const r = await api(`/approvals/${id}/deny`, { body: { reason: 'x'.repeat(5 * 1024 * 1024) } });
    refusedWith(r, 413, 'input.invalid');
    expect(r.json.error.message).toContain('Payload Too Large');
  });

  it('applies the Host and Origin checks of the MCP endpoint: a page on another origin is refused before anything runs', async () => {
    const id = await pendingWrite('api-origin');
    const res = await fetch(`${base}/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await h.token('dana')}`, 'content-type': 'application/json', origin: 'http://evil.example' },
      body: '{}',
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(res.status).toBe(403);
    expect(body.error.message).toContain('Invalid Origin header');
    expect((await api(`/approvals/${id}`)).json.approval.status).toBe('pending');
    const token = await api(`/approvals?access_token=${await h.token('dana')}`, { token: null });
    refusedWith(token, 400, 'identity.invalid_token');
  });

  it('releases a call waiting on the gateway at once when approved over the API', async () => {
    // A second gateway on the same state files with approval.wait > 0: the call blocks until the decision.
    const waitDir = writeConfig({
      policy: POLICY,
      oidc: { issuer: h.idp.issuer, audience: h.resource },
      approval: `{ wait: 20s, store: ${JSON.stringify(h.gateway.config.approval.store)} }`,
    });
    const waiting = await openGateway({ configDir: waitDir, env: { DB_URL: h.db.gatewayUrl }, journalPath: h.gateway.config.journal.path });
    try {
      const call = callTool(waiting, {
        tool: 'run_sql',
        args: { connection: 'db', sql: "UPDATE orders SET note = 'api-wait' WHERE id = 3" },
        identity: h.identity('alice'),
        client: { name: 'vitest' },
      });
      const id = await waitForPending(waiting, "UPDATE orders SET note = 'api-wait' WHERE id = 3");
      expect(id).toBeDefined();
      // Decided through the API of the first gateway: the waiting gateway reads the same store.
      const approvedAt = Date.now();
      const r = await fetch(`${base}/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await h.token('dana')}`, 'content-type': 'application/json' },
        body: '{}',
      });
      expect(r.status).toBe(200);
      const result = await call;
      expect(result.ok, result.text).toBe(true);
      expect(Date.now() - approvedAt).toBeLessThan(1000);
      expect((await h.db.query('SELECT id FROM orders WHERE note = $1', ['api-wait'])).length).toBe(1);
    } finally {
      await waiting.close();
      rmSync(waitDir, { recursive: true, force: true });
    }
  });

  it('exports the journal to journal.readers only, with the same filters and lines as journal export', async () => {
    const refused = await api('/journal/export?format=jsonl', { account: 'dana' });
    refusedWith(refused, 403, 'journal.forbidden');
    expect(refused.json.error.hint).toContain('journal: { readers:');
    const jsonl = await api('/journal/export?format=jsonl&subject=alice&decision=approve', { account: 'audrey' });
    expect(jsonl.status, jsonl.text).toBe(200);
    expect(jsonl.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = jsonl.text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatchObject({ call: { decision: { effect: 'approve' }, principal: { subject: 'alice' } } });
    const csv = await api('/journal/export?format=csv&tool=run_sql', { account: 'audrey' });
    expect(csv.status).toBe(200);
    expect(csv.text.split('\n')[0]).toContain('call_id');
    refusedWith(await api('/journal/export?format=xml', { account: 'audrey' }), 400, 'input.invalid');
    refusedWith(await api('/journal/export?since=yesterday', { account: 'audrey' }), 400, 'input.invalid');
  });
});

describe('the CLI with --gateway (src/cli/remote.ts)', () => {
  let cache: string;
  const cli = (args: string[], env: Record<string, string> = {}) =>
    runInProcess([...args, '--gateway', h.resource, '--client-id', 'drawbridge-cli', '--token-cache', cache], { env });
  const local = (args: string[]) => runInProcess([...args, '--config', h.dir], { env: { DB_URL: h.db.gatewayUrl } });

  beforeAll(async () => {
    // dana signs in once, as `drawbridge token` does (the device flow, played here by the test IdP); the CLI then uses the cache.
    cache = join(h.dir, 'dana-cache', 'tokens.json');
    await obtainAccessToken({
      url: h.resource,
      clientId: 'drawbridge-cli',
      tokenCache: cache,
      log: () => undefined,
      onSignInPrompt: (prompt) => void h.idp.approveDevice(prompt.userCode, 'dana'),
    });
  }, 30_000);

  it('list, show, approve, grants list and revoke print what the --config path prints', async () => {
    const id = await pendingWrite('cli-gateway');
    for (const args of [
      ['approvals', 'show', id],
      ['approvals', 'show', id, '--json'],
      ['approvals', 'list', '--json'],
    ]) {
      const [remote, here] = [await cli(args), await local(args)];
      expect(remote.stderr).toBe('');
      expect(remote.status, remote.stderr).toBe(0);
      expect(remote.stdout).toBe(here.stdout);
    }
    expect((await cli(['approvals', 'list'])).stdout).toContain(id);
    const approved = await cli(['approvals', 'approve', id, '--grant', '15m', '--reason', 'from my laptop']);
    expect(approved.status, approved.stderr).toBe(0);
    expect(approved.stdout).toMatch(
      new RegExp(`^${id}: approve by dana recorded \\(journal #\\d+\\)\\. Request run_sql on db is now approved \\(1/1\\); grant 15m\\.`),
    );
    const ran = await aliceWrites("UPDATE orders SET note = 'cli-gateway' WHERE id IN (1, 2)");
    expect(ran.ok, ran.text).toBe(true);
    const listed = await cli(['grants', 'list', '--json']);
    expect(listed.status, listed.stderr).toBe(0);
    const grant = (JSON.parse(listed.stdout) as Array<{ id: string; approvalId: string }>).find((g) => g.approvalId === id);
    expect(grant).toBeDefined();
    expect((await cli(['grants', 'list'])).stdout).toBe((await local(['grants', 'list'])).stdout);
    const revoked = await cli(['grants', 'revoke', grant!.id]);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`^${grant!.id}: revoked by dana; alice no longer has run_sql on db under rule writes-need-approval`));
  });

  it('refusals print the catalog code and hint and exit 1; --gateway excludes --config; journal export needs a reader group', async () => {
    const id = await pendingWrite('cli-refusals');
    const denied = await cli(['approvals', 'deny', id, '--reason', 'not today']);
    expect(denied.status, denied.stderr).toBe(0);
    const again = await cli(['approvals', 'deny', id, '--reason', 'twice']);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^drawbridge: approval\.(duplicate_vote|not_pending): /);
    const both = await runInProcess(['approvals', 'list', '--gateway', h.resource, '--config', h.dir]);
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('--gateway and --config exclude each other');
    const exported = await cli(['journal', 'export']);
    expect(exported.status).toBe(1);
    expect(exported.stderr).toContain('drawbridge: journal.forbidden: ');
    expect(exported.stderr).toContain('journal: { readers:');
  });
});
