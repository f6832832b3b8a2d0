// /healthz and /readyz on the `serve --http` listener and on the admin listener, against the real
// gateway (SQLite journal, the test OpenID provider): readiness flips when the journal cannot take
// an append (another writer holds its write lock) and back; only an operator's token sees details;
// the Host check of a loopback bind applies; shutting down makes the gateway unready first.

import { request } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveAdmin, type AdminListener } from '../../src/http/health.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { READ_ONLY_POLICY } from '../support/fixtures.js';

const ACCOUNTS = { sam: { groups: ['sre'] }, alice: { groups: ['analysts'] } };

const POLICY = READ_ONLY_POLICY;

let h: HttpHarness<keyof typeof ACCOUNTS>;
let admin: AdminListener;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'health',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
    admin: '{ operators: [sre] }',
  });
  admin = await serveAdmin(h.http.health, { host: '127.0.0.1', port: 0 });
}, 60_000);

afterAll(async () => {
  await admin?.close();
  await h?.close();
});

async function get(
  url: string,
  account?: keyof typeof ACCOUNTS,
  headers: Record<string, string> = {},
): Promise<{ status: number; type: string; body: string }> {
  const auth = account === undefined ? {} : { authorization: `Bearer ${await h.token(account)}` };
  const res = await fetch(url, { headers: { ...auth, ...headers } });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** Holds the journal's write lock from another connection, as another writer would, until released. */
function lockJournal(): { release(): void } {
  const other = new Database(join(h.dir, 'journal.db'));
  other.exec('BEGIN IMMEDIATE');
  return {
    release() {
      other.exec('ROLLBACK');
      other.close();
    },
  };
}

describe.each([
  ['the HTTP listener', () => h.origin],
  ['the admin listener', () => admin.url],
])('on %s', (_where, base) => {
  it('/healthz says ok, /readyz says ok and nothing more without an operator token', async () => {
    expect(await get(`${base()}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(`${base()}/readyz`)).toMatchObject({ status: 200, body: 'ok\n' });
    // A valid token of a non-operator, and a bad token: the status only.
    expect(await get(`${base()}/readyz`, 'alice')).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await get(`${base()}/readyz`, undefined, { authorization: 'Bearer not-a-token' })).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it("an operator's token sees each check", async () => {
    const r = await get(`${base()}/readyz`, 'sam');
    expect(r.status).toBe(200);
    expect(r.type).toBe('application/json');
    const details = JSON.parse(r.body);
    expect(details).toMatchObject({ ready: true, checks: { config: { ok: true }, journal: { ok: true }, serving: { ok: true } } });
    // Each connection's last known check (none required here: a backend down would not make the gateway unready).
    expect(details.checks.connections.db).toMatchObject({ required: false });
    expect(['unchecked', 'ok']).toContain(details.checks.connections.db.state);
  });

  it('goes not ready while the journal cannot take an append, and ready again once it can', async () => {
    const lock = lockJournal();
    try {
      expect(await get(`${base()}/readyz`)).toMatchObject({ status: 503, body: 'not ready\n' });
      const details = JSON.parse((await get(`${base()}/readyz`, 'sam')).body);
      expect(details.ready).toBe(false);
      expect(details.checks.journal.ok).toBe(false);
      expect(details.checks.journal.reason).toMatch(/^journal\.unavailable: .*locked/);
      // The process still serves.
      expect(await get(`${base()}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
    } finally {
      lock.release();
    }
    expect(await get(`${base()}/readyz`)).toMatchObject({ status: 200, body: 'ok\n' });
    // The probe wrote nothing: the journal holds only what calls wrote.
    const head = await h.gateway.journal.head();
    const call = await h.call('alice', 'SELECT 1');
    expect(call.ok).toBe(true);
    expect((await h.gateway.journal.head()).seq).toBeGreaterThan(head.seq);
  });

  it('keeps the Host check of a loopback bind (DNS rebinding)', async () => {
    // fetch sets Host itself: a raw request carries the rebinding page's.
    const status = await new Promise<number>((resolve, reject) => {
      request(`${base()}/readyz`, { headers: { host: 'evil.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on('error', reject)
        .end();
    });
    expect(status).toBe(403);
    expect(await get(`${base()}/readyz`)).toMatchObject({ status: 200 });
  });
});

it('the admin listener serves nothing of MCP', async () => {
  expect((await get(`${admin.url}/mcp`)).status).toBe(404);
});

it('the probe writes no record', async () => {
  const before = await h.gateway.journal.head();
  await get(`${h.origin}/readyz`, 'sam');
  await get(`${admin.url}/readyz`);
  expect(await h.gateway.journal.head()).toEqual(before);
});

// Last: a shutdown cannot be undone.
it('shutting down: /readyz goes false first, then new MCP calls over HTTP are refused with gateway.shutting_down', async () => {
  h.http.health.shutDown();
  expect(await get(`${h.origin}/readyz`)).toMatchObject({ status: 503, body: 'not ready\n' });
  expect(JSON.parse((await get(`${admin.url}/readyz`, 'sam')).body).checks).toMatchObject({
    journal: { ok: true },
    serving: { ok: false, reason: 'shutting down: new calls are refused' },
  });
  expect(await h.gateway.calls.drain(new Promise<void>(() => undefined))).toBe('drained');
  const { client } = await h.mcpSession('alice', 'after-drain');
  try {
    const r = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 2' } })) as CallToolResult;
    expect(r.isError).toBe(true);
    expect(r.content[0]).toMatchObject({ type: 'text', text: expect.stringMatching(/^gateway\.shutting_down: The gateway is restarting/) });
  } finally {
    await client.close();
  }
  expect(await get(`${h.origin}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
});
