// The web console (/console/) against a real serveHttp, the test OpenID
// provider (signing in through its real login and consent pages) and a real
// PostgreSQL shop database: sign-in with PKCE and state, cookie flags and
// security headers, the pending page with alice's request, dana approving with
// a 15-minute grant (a waiting call completes at once), self-approval refused,
// CSRF refused (no token, a wrong token, another Origin), an idle session
// signed out by the injected clock, grants listed and revoked, every value escaped;
// the journal pages (search, one call, a session's replay, a client's window, the
// verify line) for journal readers only.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import { serveHttp } from '../../src/http/server.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { playAuthorizationCode, TEST_CLIENTS } from '../support/oidc.js';

const ACCOUNTS = { alice: { groups: ['analysts', 'dba'] }, dana: { groups: ['dba'] }, bob: { groups: ['support'] } };

const POLICY = `kind: policy
rules:
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts], tables: [public.orders] }
    effect: approve
    approvers: { groups: [dba] }
    grant: 30m
    preview: true
    message: Writes to the shop database need a DBA's approval.
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

const IDLE_MS = 15 * 60_000;

let h: HttpHarness<keyof typeof ACCOUNTS>;
let origin: string;
let consoleOffsetMs = 0;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'console',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 20s, store: approvals.db, pending_ttl: 1h }',
    console: { idleMs: IDLE_MS, now: () => Date.now() + consoleOffsetMs },
    journalReaders: ['dba'],
  });
  origin = h.origin;
}, 60_000);

afterAll(async () => {
  await h?.close();
});

/** A browser's view of the console: a cookie jar, manual redirects. */
class Agent {
  readonly jar = new Map<string, string>();
  setCookies: string[] = [];

  async request(path: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...init.headers };
    if (this.jar.size) headers['cookie'] = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(path.startsWith('http') ? path : `${origin}${path}`, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      headers,
      redirect: 'manual',
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    });
    this.setCookies = res.headers.getSetCookie();
    for (const c of this.setCookies) {
      const [pair = ''] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      if (value === '' || /max-age=0/i.test(c)) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  /** Signs in as `account` through the provider's pages; answers the authorization URL the console sent the browser to. */
  async signIn(account: string): Promise<URL> {
    const start = await this.request('/console/login');
    expect(start.status).toBe(303);
    const authorization = new URL(start.headers.get('location') ?? '');
    const back = await playAuthorizationCode(authorization, account, `${origin}/console/callback`);
    const done = await this.request(back.href);
    expect(done.status, done.text).toBe(303);
    expect(done.headers.get('location')).toBe('/console/');
    return authorization;
  }
}

const csrfOf = (html: string): string => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';

/** alice's write, started (it waits for a decision); answers the pending call and the request id. */
const aliceWrites = (sql: string) => h.waitingCall('alice', sql);

async function deny(agent: Agent, id: string): Promise<void> {
  const page = await agent.request(`/console/approvals/${id}`);
  const r = await agent.request(`/console/approvals/${id}/deny`, { form: { csrf: csrfOf(page.text), reason: 'test cleanup' } });
  expect(r.status, r.text).toBe(200);
}

describe('the web console', () => {
  it('signs in with code + PKCE (S256) and state; a wrong state is refused; cookie flags and security headers', async () => {
    const dana = new Agent();
    const first = await dana.request('/console/');
    expect(first.status).toBe(303);
    expect(first.headers.get('location')).toBe('/console/login');
    const authorization = await dana.signIn('dana');
    expect(authorization.origin + authorization.pathname).toMatch(new RegExp(`^${h.idp.issuer}`));
    expect(authorization.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorization.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorization.searchParams.get('state')).toMatch(/.{16,}/);
    expect(authorization.searchParams.get('client_id')).toBe(TEST_CLIENTS.console.clientId);
    expect(authorization.searchParams.get('redirect_uri')).toBe(`${origin}/console/callback`);
    const session = dana.setCookies.find((c) => c.startsWith('drawbridge_console='));
    expect(session).toMatch(/; Path=\/console; HttpOnly; SameSite=Lax; Max-Age=\d+$/);
    expect(session).not.toMatch(/Secure/); // the public URL is http://127.0.0.1
    const home = await dana.request('/console/');
    expect(home.status).toBe(200);
    expect(home.text).toContain('Signed in as <span data-subject>dana</span> (dba)');
    expect(home.headers.get('content-security-policy')).toBe(
      "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    expect(home.headers.get('x-content-type-options')).toBe('nosniff');
    expect(home.headers.get('referrer-policy')).toBe('same-origin');
    expect(home.text).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)[a-z]/i); // no third-party assets
    const css = await dana.request('/console/static/console.css');
    expect(css.status).toBe(200);
    expect(css.headers.get('content-type')).toContain('text/css');

    // A callback with a state the console did not issue: refused, no session.
    const mallory = new Agent();
    const start = await mallory.request('/console/login');
    const auth = new URL(start.headers.get('location') ?? '');
    const back = await playAuthorizationCode(auth, 'dana', `${origin}/console/callback`);
    back.searchParams.set('state', 'forged-state');
    const refused = await mallory.request(back.href);
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('Sign-in failed');
    expect(mallory.jar.has('drawbridge_console')).toBe(false);
    expect((await mallory.request('/console/')).status).toBe(303);
  });

  it("shows alice's pending request to dana; dana approves with a 15-minute grant and the waiting call completes at once; the grant is revoked", async () => {
    const sql = "UPDATE orders SET note = 'console-approve' WHERE id IN (1, 2)";
    const { call, id } = await aliceWrites(sql);
    const dana = new Agent();
    await dana.signIn('dana');
    const pending = await dana.request('/console/');
    expect(pending.text).toContain(`data-approval="${id}"`);
    expect(pending.text).toContain('alice');
    expect(pending.text).toContain('with client vitest,'); // the client the call named (in process: the harness's)
    expect(pending.text).toContain('run_sql on db');
    expect(pending.text).toContain('UPDATE orders SET note = &#39;console-approve&#39; WHERE id IN (1, 2)');
    expect(pending.text).toContain('writes-need-approval');
    expect(pending.text).toContain('Writes to the shop database need a DBA&#39;s approval.');
    expect(pending.text).toMatch(/Affected rows: <strong data-affected>2<\/strong>/);
    expect(pending.text).toContain('Votes: 0 of 1');
    expect(pending.text).toMatch(/\d{1,2}s ago; expires in (59m|1h 0m)/); // seconds: the sign-in may take more than one on a loaded machine
    const live = JSON.parse((await dana.request('/console/pending.json')).text) as { ids: string[]; html: string };
    expect(live.ids).toContain(id);

    const detail = await dana.request(`/console/approvals/${id}`);
    expect(detail.text).toContain(`action="/console/approvals/${id}/approve"`);
    const approvedAt = Date.now();
    const r = await dana.request(`/console/approvals/${id}/approve`, {
      form: { csrf: csrfOf(detail.text), grant: '15m', reason: 'ticket OPS-7' },
      headers: { origin, 'sec-fetch-site': 'same-origin' },
    });
    expect(r.status, r.text).toBe(200);
    expect(r.text).toContain('data-notice="ok"');
    expect(r.text).toMatch(/approve by dana recorded \(journal #\d+\)/);
    const result = await call;
    expect(result.ok, result.text).toBe(true);
    expect(Date.now() - approvedAt).toBeLessThan(1000);
    expect((await h.db.query('SELECT id FROM orders WHERE note = $1 ORDER BY id', ['console-approve'])).length).toBe(2);
    const vote = (await h.gateway.state.approvals.get(id, new Date()))?.votes[0];
    expect(vote).toMatchObject({ via: 'console', decision: 'approve', grantMs: 15 * 60_000, reason: 'ticket OPS-7', approver: { subject: 'dana' } });

    const grants = await dana.request('/console/grants');
    const grant = (await h.gateway.state.approvals.listGrants(new Date(), { active: true })).find((g) => g.approvalId === id);
    expect(grant).toBeDefined();
    // 15 minutes from the decision (the grant itself is created when the call clears, moments later).
    const length = Date.parse(grant?.expiresAt ?? '') - Date.parse(grant?.createdAt ?? '');
    expect(length).toBeLessThanOrEqual(15 * 60_000);
    expect(length).toBeGreaterThan(15 * 60_000 - 5_000);
    expect(grants.text).toContain(`data-grant="${grant?.id}"`);
    expect(grants.text).toContain(`<time>${grant?.expiresAt}</time>`);
    const revoked = await dana.request(`/console/grants/${grant?.id}/revoke`, { form: { csrf: csrfOf(grants.text) } });
    expect(revoked.status, revoked.text).toBe(200);
    expect(revoked.text).toContain(`${grant?.id}: revoked by dana`);
    expect(revoked.text).not.toContain(`data-grant="${grant?.id}"`);
    expect((await h.gateway.state.approvals.listGrants(new Date(), {})).find((g) => g.id === grant?.id)?.revokedBy).toBe('dana');
  });

  it('refuses self-approval on the page, and a second vote', async () => {
    const { call, id } = await aliceWrites("UPDATE orders SET note = 'console-self' WHERE id = 3");
    const alice = new Agent();
    await alice.signIn('alice');
    const page = await alice.request(`/console/approvals/${id}`);
    expect(page.status).toBe(200);
    expect(page.text).toContain('You asked for this; someone else must decide it.');
    expect(page.text).not.toContain(`action="/console/approvals/${id}/approve"`);
    // A hand-made form post (with her valid CSRF token) is refused by the store's check, with a message.
    const forced = await alice.request(`/console/approvals/${id}/approve`, { form: { csrf: csrfOf(page.text) } });
    expect(forced.status).toBe(403);
    expect(forced.text).toContain('data-notice="error"');
    expect((await h.gateway.state.approvals.get(id, new Date()))?.status).toBe('pending');
    const bob = new Agent();
    await bob.signIn('bob');
    expect((await bob.request(`/console/approvals/${id}`)).status).toBe(404);
    expect((await bob.request('/console/')).text).not.toContain(id);
    const dana = new Agent();
    await dana.signIn('dana');
    await deny(dana, id);
    const again = await dana.request(`/console/approvals/${id}/deny`, { form: { csrf: csrfOf((await dana.request('/console/')).text), reason: 'twice' } });
    expect(again.status).toBe(409);
    expect(again.text).toContain('data-notice="error"');
    expect((await call).ok).toBe(false);
  });

  it('refuses CSRF: no token, a wrong token, another Origin, a cross-site fetch', async () => {
    const { call, id } = await aliceWrites("UPDATE orders SET note = 'console-csrf' WHERE id = 4");
    const dana = new Agent();
    await dana.signIn('dana');
    const csrf = csrfOf((await dana.request(`/console/approvals/${id}`)).text);
    const tries = [
      await dana.request(`/console/approvals/${id}/approve`, { form: {} }),
      await dana.request(`/console/approvals/${id}/approve`, { form: { csrf: `${csrf.slice(0, -2)}xx` } }),
      await dana.request(`/console/approvals/${id}/approve`, { form: { csrf }, headers: { origin: 'http://evil.example' } }),
      await dana.request(`/console/approvals/${id}/approve`, { form: { csrf }, headers: { 'sec-fetch-site': 'cross-site' } }),
    ];
    for (const t of tries) expect(t.status, t.text).toBe(403);
    expect(tries[0]?.text).toContain('This form is stale or was not made by the console');
    expect(tries[3]?.text).toContain('This form was sent from another site.');
    // Another Origin is refused by the server's Host/Origin check before the console, still as a console page.
    expect(tries[2]?.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(tries[2]?.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(tries[2]?.text).toContain('Invalid Origin header: http://evil.example. The console takes forms from its own pages only.');
    expect((await h.gateway.state.approvals.get(id, new Date()))?.status).toBe('pending');
    await deny(dana, id);
    expect((await call).ok).toBe(false);
  });

  it('an idle session must sign in again (injected clock)', async () => {
    const dana = new Agent();
    await dana.signIn('dana');
    consoleOffsetMs = IDLE_MS - 60_000;
    expect((await dana.request('/console/')).status).toBe(200); // touched: idle counts from here
    consoleOffsetMs += IDLE_MS + 1;
    try {
      const after = await dana.request('/console/');
      expect(after.status).toBe(303);
      expect(after.headers.get('location')).toBe('/console/login');
      const post = await dana.request('/console/logout', { form: { csrf: 'x' } });
      expect(post.status).toBe(401);
      expect(post.text).toContain('Your console session has ended.');
    } finally {
      consoleOffsetMs = 0;
    }
    await dana.signIn('dana');
    expect((await dana.request('/console/')).status).toBe(200);
  });

  it('signs out on a CSRF-protected POST; ends a session after 8 hours however active', async () => {
    const dana = new Agent();
    await dana.signIn('dana');
    const home = await dana.request('/console/');
    const out = await dana.request('/console/logout', { form: { csrf: csrfOf(home.text) } });
    expect(out.status).toBe(303);
    expect(dana.jar.has('drawbridge_console')).toBe(false);
    await dana.signIn('dana');
    const cookie = dana.jar.get('drawbridge_console') ?? '';
    try {
      // A request every 10 minutes (inside the 15-minute idle expiry) for 8 hours.
      for (let m = 10; m < 8 * 60; m += 10) {
        consoleOffsetMs = m * 60_000;
        expect((await dana.request('/console/')).status, `minute ${m}`).toBe(200);
      }
      consoleOffsetMs = 8 * 60 * 60_000 + 1;
      dana.jar.set('drawbridge_console', cookie); // even a browser that kept the cookie
      expect((await dana.request('/console/')).status).toBe(303);
    } finally {
      consoleOffsetMs = 0;
    }
  });

  it('marks cookies Secure when the public URL is https', async () => {
    const other = await serveHttp(h.gateway, createOidcVerifier(h.gateway.config.identity as OidcIdentityDeclaration), {
      host: '127.0.0.1',
      port: 0,
      publicUrl: 'https://gw.example/mcp',
      console: { clientId: TEST_CLIENTS.console.clientId },
    });
    try {
      const r = await fetch(`http://127.0.0.1:${other.port}/console/login`, { redirect: 'manual' });
      expect(r.status).toBe(303);
      expect(new URL(r.headers.get('location') ?? '').searchParams.get('redirect_uri')).toBe('https://gw.example/console/callback');
      expect(r.headers.getSetCookie()[0]).toMatch(/; Path=\/console; HttpOnly; SameSite=Lax; Max-Age=600; Secure$/);
    } finally {
      await other.close();
    }
  });

  it('escapes every value: an input with <script> shows as text', async () => {
    const sql = "UPDATE orders SET note = '<script>alert(1)</script>' WHERE id = 5";
    const { call, id } = await aliceWrites(sql);
    const dana = new Agent();
    await dana.signIn('dana');
    for (const path of ['/console/', `/console/approvals/${id}`]) {
      const page = await dana.request(path);
      expect(page.text).not.toContain('<script>alert(1)</script>');
      expect(page.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(page.text.match(/<script\b/g)).toEqual(['<script']); // only the console's own script tag
    }
    await deny(dana, id);
    expect((await call).ok).toBe(false);
  });
});

describe('the journal pages', () => {
  it("show a reader an MCP session's calls: search, one call's record, the replay, the verify verdict", async () => {
    const { client, transport } = await h.mcpSession('alice', 'journal-agent');
    try {
      const read = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM orders' } });
      expect(read.isError).toBeFalsy();
      const refused = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'DROP TABLE customers' } });
      expect(refused.isError).toBe(true);
    } finally {
      await client.close();
    }
    const session = transport.sessionId ?? '';
    expect(session).not.toBe('');
    const dana = new Agent();
    await dana.signIn('dana');
    expect((await dana.request('/console/')).text).toContain('<a href="/console/journal">Journal</a>');

    const search = await dana.request(`/console/journal?session=${encodeURIComponent(session)}`);
    expect(search.status).toBe(200);
    expect(search.text).toContain('data-verify="ok"');
    expect(search.text).toContain('data-results="2"');
    const ids = [...search.text.matchAll(/data-call="([^"]+)"/g)].map((m) => m[1]);
    expect(ids).toHaveLength(2);
    const reads = await dana.request('/console/journal?session=' + encodeURIComponent(session) + '&decision=allow&status=ok');
    expect(reads.text).toContain('data-results="1"');

    const record = await dana.request(`/console/journal/calls/${ids[1]}`);
    expect(record.status).toBe(200);
    expect(record.text).toContain('SELECT count(*) AS n FROM orders');
    expect(record.text).toContain('journal-agent');
    expect(record.text).toContain(`href="/console/journal/sessions/${encodeURIComponent(session)}"`);

    const replay = await dana.request(`/console/journal/sessions/${encodeURIComponent(session)}`);
    expect(replay.status).toBe(200);
    expect(replay.text).toContain('data-calls="2"');
    const steps = [...replay.text.matchAll(/data-step="([^"]+)" data-decision="([^"]+)" data-outcome="([^"]+)"/g)].map((m) => [m[2], m[3]]);
    expect(steps).toEqual([
      ['allow', 'ok'],
      ['deny', 'refused'],
    ]);

    const since = new Date(Date.now() - 60 * 60_000).toISOString();
    const until = new Date(Date.now() + 60_000).toISOString();
    const window = await dana.request(`/console/journal/replay?client=journal-agent&subject=alice&since=${since}&until=${until}`);
    expect(window.status).toBe(200);
    expect(window.text).toContain('data-calls="2"');
  });

  it('refuse a bad query, an unknown or badly encoded id, and anyone outside journal.readers, inside the console page', async () => {
    const dana = new Agent();
    await dana.signIn('dana');
    const bad = await dana.request('/console/journal?limit=0');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('limit must be an integer from 1 to 500.');
    expect((await dana.request('/console/journal/calls/nope')).status).toBe(404);
    expect((await dana.request('/console/journal/calls/%E0%A4%A')).status).toBe(404);
    expect((await dana.request('/console/journal/sessions/nope')).status).toBe(404);
    const window = await dana.request('/console/journal/replay?client=x&since=2026-12-05&until=2026-12-04');
    expect(window.status).toBe(400);
    expect(window.text).toContain('since before until');

    const bob = new Agent();
    await bob.signIn('bob');
    expect((await bob.request('/console/')).text).not.toContain('/console/journal');
    for (const path of ['/console/journal', '/console/journal/sessions/x', '/console/journal/calls/x']) {
      const page = await bob.request(path);
      expect(page.status, path).toBe(403);
      expect(page.text).toContain('Reading the journal is for members of dba; bob is in none of them.');
    }
  });
});
