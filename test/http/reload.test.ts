// POST /reload on the admin listener against the real gateway (OIDC identities, the test OpenID
// provider): browsers' requests (an Origin, a form body, Sec-Fetch-Site) are refused, so is a
// caller without an operator's token; an operator's reload is answered with the outcome and
// journaled with their subject; /readyz's config check shows the hash and the last reload, and a
// refused reload leaves the gateway ready.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { serveAdmin, type AdminListener } from '../../src/http/health.js';
import { createReloadEndpoint } from '../../src/http/reload.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { READ_ONLY_POLICY } from '../support/fixtures.js';

const ACCOUNTS = { sam: { groups: ['sre'] }, alice: { groups: ['analysts'] } };

const POLICY = READ_ONLY_POLICY;

let h: HttpHarness<keyof typeof ACCOUNTS>;
let admin: AdminListener;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'reload_http',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
    admin: '{ operators: [sre] }',
  });
  const identity = h.gateway.config.identity;
  if (identity?.mode !== 'oidc') throw new Error('the harness serves OIDC identities');
  admin = await serveAdmin(h.http.health, { host: '127.0.0.1', port: 0 }, null, createReloadEndpoint(h.gateway, createOidcVerifier(identity)));
}, 60_000);

afterAll(async () => {
  await admin?.close();
  await h?.close();
});

async function reload(headers: Record<string, string> = {}, method = 'POST'): Promise<{ status: number; body: Record<string, unknown> | string }> {
  const res = await fetch(`${admin.url}/reload`, { method, headers });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type') === 'application/json' ? (JSON.parse(text) as Record<string, unknown>) : text };
}

const bearer = async (account: keyof typeof ACCOUNTS) => ({ authorization: `Bearer ${await h.token(account)}` });

it('refuses browsers, callers without a token and non-operators; nothing is reloaded or journaled for them', async () => {
  expect((await reload({}, 'GET')).status).toBe(405);
  const sam = await bearer('sam');
  const browsers: Array<Record<string, string>> = [
    { ...sam, origin: admin.url },
    { ...sam, origin: 'https://evil.example' },
    { ...sam, 'content-type': 'application/x-www-form-urlencoded' },
    { ...sam, 'content-type': 'text/plain' },
    { ...sam, 'sec-fetch-site': 'cross-site' },
  ];
  for (const headers of browsers) {
    const r = await reload(headers);
    expect(r.status, JSON.stringify(headers)).toBe(403);
    // A foreign Origin is already refused by the listener's Host/Origin check (DNS rebinding), before /reload.
    if (headers['origin'] === 'https://evil.example') expect(r.body).toBe('Invalid Origin header: https://evil.example\n');
    else expect(r.body).toMatchObject({ error: { code: 'admin.forbidden' } });
  }
  expect(await reload()).toMatchObject({ status: 401, body: { error: { code: 'admin.forbidden' } } });
  expect(await reload({ authorization: 'Bearer not-a-token' })).toMatchObject({ status: 401 });
  expect(await reload(await bearer('alice'))).toMatchObject({ status: 403, body: { error: { code: 'admin.forbidden' } } });
  expect(h.gateway.lastReload).toBeNull();
  for await (const row of h.gateway.journal.read()) expect(row.type).not.toBe('config');
});

it("an operator's reload: applied, journaled with their subject; a broken policy refused with its problems, still ready", async () => {
  const hash = h.gateway.config.hash;
  const applied = await reload(await bearer('sam'));
  expect(applied).toMatchObject({ status: 200, body: { result: 'applied', hash, previousHash: hash, attempted: hash } });
  const subject = h.identity('sam').subject;
  const records: Array<Record<string, unknown>> = [];
  for await (const row of h.gateway.journal.read()) if (row.type === 'config') records.push(JSON.parse(String(row.data)) as Record<string, unknown>);
  expect(records).toEqual([expect.objectContaining({ event: 'reload', result: 'applied', hash, by: { via: 'admin', operator: subject } })]);

  const rules = join(h.dir, 'policies', 'rules.yaml');
  const original = readFileSync(rules, 'utf8');
  writeFileSync(rules, original.replace('effect: allow', 'effect: allow-ish'));
  try {
    const refused = await reload(await bearer('sam'));
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ result: 'refused', code: 'config.invalid', hash });
    expect((refused.body as { problems: string[] }).problems.join('\n')).toMatch(/rules\.yaml:\d+: /);

    // Ready all the same (the running config is valid); the operator sees the hash and the refused attempt.
    const ready = await fetch(`${admin.url}/readyz`, { headers: await bearer('sam') });
    expect(ready.status).toBe(200);
    const details = (await ready.json()) as { checks: { config: Record<string, unknown> } };
    expect(details.checks.config).toMatchObject({ ok: true, hash, lastReload: { result: 'refused', code: 'config.invalid', problems: 1 } });
    expect(await fetch(`${admin.url}/readyz`).then((r) => r.text())).toBe('ok\n');
  } finally {
    writeFileSync(rules, original);
  }
});
