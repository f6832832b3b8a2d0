// The web console in a real browser: Debian's headless chromium, driven by
// playwright-core (no browser download), against serveHttp, the test OpenID
// provider's real login and consent pages and a real PostgreSQL shop database.
// alice's agent (the MCP SDK's Client over Streamable HTTP) writes and waits for a
// DBA; dana signs in, sees the request with its preview, approves with a 15-minute
// grant (the waiting call completes within a second of the decision's answer),
// sees the grant's absolute expiry and revokes it, and (a journal reader) replays
// alice's MCP session in the journal pages: the write, its approval, its outcome.
// Then: a form posted from another
// origin (same host, other port) and from another site (127.0.0.2) is refused, a
// new request appears on the open Pending page without a reload, an idle session
// must sign in again, and the requester cannot approve her own request.
// Screenshots go to test-artifacts/console/ (and docs/console-pending.png when
// DRAWBRIDGE_README_SCREENSHOT=1). Nothing here sleeps: every wait is on a page
// condition or on a promise.

import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { chromium, type Browser, type BrowserContext, type Frame, type Page, type Request } from 'playwright-core';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startHttpGateway, waitForPending, type HttpHarness } from '../support/http-gateway.js';

const ACCOUNTS = { alice: { groups: ['analysts', 'dba'] }, dana: { groups: ['dba'] } };

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
/** Waits on page conditions: generous, for a loaded 2-core machine; they end as soon as the condition holds. */
const WAIT_MS = 20_000;
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'console');
const CHROMIUM = process.env['DRAWBRIDGE_CHROMIUM'] ?? '/usr/bin/chromium';

let h: HttpHarness<keyof typeof ACCOUNTS>;
let browser: Browser;
let consoleOffsetMs = 0;
const contexts: BrowserContext[] = [];
/** Script errors and CSP violations any page reported: the console must run clean under its own CSP. */
const pageProblems: string[] = [];

/** Set when there is no browser: then every test FAILS with it (a failing hook would only mark them skipped). */
let missing: string | null = null;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    missing = `No browser at ${CHROMIUM}: the console's browser tests need Debian's chromium (apt-get install chromium), or DRAWBRIDGE_CHROMIUM=/path.`;
    return;
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  h = await startHttpGateway({
    prefix: 'browser',
    accounts: ACCOUNTS,
    policy: POLICY,
    // The agent's call waits up to 60 s for a decision: long enough to still be waiting when dana decides.
    approval: '{ wait: 60s, store: approvals.db, pending_ttl: 1h }',
    journalReaders: ['dba'],
    console: { idleMs: IDLE_MS, now: () => Date.now() + consoleOffsetMs },
  });
  // --no-sandbox: chromium's sandbox needs user namespaces or a setuid helper, which a root
  // process in a CI container does not have; the pages loaded here are our own, on loopback.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}, 120_000);

beforeEach(() => {
  if (missing !== null) throw new Error(missing);
});

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => undefined);
  await browser?.close();
  await h?.close();
});

/** A fresh browser profile (own cookies) with one page, 1280x800 at scale 1 (the README screenshot's size). */
async function newPage(): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 });
  contexts.push(context);
  context.setDefaultTimeout(WAIT_MS);
  context.setDefaultNavigationTimeout(WAIT_MS);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageProblems.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    // Error statuses are logged as "Failed to load resource" (the favicon every site is asked for, refusals
    // the tests provoke): the tests assert statuses themselves.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) pageProblems.push(`${page.url()}: ${m.text()}`);
  });
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
}

/**
 * Signs in as `account` at the provider's own pages, from wherever `page` is: the login page (type the
 * account name, Sign in), then the consent page when it asks (Allow), until the console shows who is signed in.
 * The provider skips its login page while its own session for the browser lives: answers whether it was shown.
 */
async function completeSignIn(page: Page, account: string): Promise<{ login: boolean }> {
  const login = page.locator('main[data-page="login"]');
  const consent = page.locator('main[data-page="consent"]');
  const signedIn = page.locator('[data-subject]');
  let shown = false;
  for (let step = 0; step < 4; step++) {
    await login.or(consent).or(signedIn).waitFor();
    if (await signedIn.isVisible()) break;
    expect(new URL(page.url()).origin).toBe(h.idp.issuer);
    if (await login.isVisible()) {
      shown = true;
      await page.fill('#login', account);
      await login.locator('form').first().locator('button[type="submit"]').click();
      await login.waitFor({ state: 'detached' });
    } else {
      expect(await consent.locator('p').first().textContent()).toContain(`Signed in as ${account}`);
      await consent.getByRole('button', { name: 'Allow' }).click();
      await consent.waitFor({ state: 'detached' });
    }
  }
  expect(page.url()).toBe(`${h.origin}/console/`);
  expect(await signedIn.textContent()).toBe(account);
  return { login: shown };
}

/** Opens the console in a browser that has no session: sent to the provider, signed in there as `account`. */
async function signIn(page: Page, account: string): Promise<void> {
  await page.goto(`${h.origin}/console/`);
  expect((await completeSignIn(page, account)).login).toBe(true);
}

const card = (page: Page, id: string) => page.locator(`article[data-approval="${id}"]`);

describe('the console in a real browser (chromium)', () => {
  let dana: Page;
  let requestId: string;
  let agent: Awaited<ReturnType<HttpHarness<'alice'>['mcpSession']>>;

  afterAll(async () => {
    await agent?.client.close();
  });

  it("dana signs in at the provider, sees alice's waiting write with its preview, approves with a 15m grant: the MCP call completes within 1 s", async () => {
    // 1. alice's agent: the MCP SDK client over Streamable HTTP with her bearer token. The call waits for a DBA.
    agent = await h.mcpSession('alice', 'alice-agent');
    const sql = "UPDATE orders SET note = 'browser-approve' WHERE id IN (1, 2)";
    let resolvedAt = 0;
    const call = agent.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, { timeout: 120_000 }).then((r) => {
      resolvedAt = performance.now();
      return r as CallToolResult;
    });
    requestId = (await waitForPending(h.gateway, sql)) as string;

    // 2. dana opens the console, is sent to the provider, signs in there, lands on Pending.
    dana = await newPage();
    await signIn(dana, 'dana');
    const pending = card(dana, requestId);
    await pending.waitFor();
    expect(await dana.title()).toBe('Pending requests · Drawbridge');
    const text = (await pending.textContent()) ?? '';
    expect(text).toContain('Requested by alice (analysts, dba) with client alice-agent'); // the MCP client's name
    expect(text).toContain('run_sql on db');
    expect(text).toContain(sql);
    expect(text).toContain('Rule writes-need-approval');
    expect(text).toContain("Writes to the shop database need a DBA's approval.");
    expect(await pending.locator('[data-affected]').textContent()).toBe('2');
    expect(await pending.locator('table tbody tr').count()).toBe(2); // the masked sample of the affected rows
    expect(text).toContain('Votes: 0 of 1');
    await shot(dana, 'pending.png');
    if (process.env['DRAWBRIDGE_README_SCREENSHOT'] === '1') {
      const readme = join(process.cwd(), 'docs', 'console-pending.png');
      mkdirSync(join(process.cwd(), 'docs'), { recursive: true });
      await dana.screenshot({ path: readme });
      expect(statSync(readme).size).toBeLessThan(200 * 1024);
      console.log(`README screenshot: ${readme}`);
    }

    // 3. The request's page: approve with a 15-minute grant and a reason.
    await pending.getByRole('link', { name: 'run_sql on db' }).click();
    await dana.waitForURL(`${h.origin}/console/approvals/${requestId}`);
    await dana.fill('input[name="grant"]', '15m');
    await dana.locator('form[action$="/approve"] input[name="reason"]').fill('ticket OPS-7, checked in the browser');
    const clickedAt = performance.now();
    const [answer] = await Promise.all([
      dana.waitForResponse((r) => r.url() === `${h.origin}/console/approvals/${requestId}/approve` && r.request().method() === 'POST'),
      dana.locator('button.approve').click(),
    ]);
    const answeredAt = performance.now();
    expect(answer.status()).toBe(200);
    const result = await call;
    const settledAt = performance.now();
    console.log(
      `approve: the console answered ${(answeredAt - clickedAt).toFixed(0)} ms after the click; the MCP call resolved ` +
        `${(resolvedAt - answeredAt).toFixed(0)} ms after that answer (negative: before it)`,
    );
    expect(resolvedAt).toBeGreaterThan(clickedAt);
    expect(resolvedAt - answeredAt).toBeLessThan(1000);
    expect(settledAt - answeredAt).toBeLessThan(1000);
    expect(result.isError, JSON.stringify(result)).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ connection: 'db', command: 'UPDATE', affectedRows: 2 });
    expect((result.content as Array<{ type: string; text: string }>)[0]?.text).toMatch(/^db · update \(write\) on public\.orders · UPDATE, 2 affected · /);
    expect((await h.db.query('SELECT id FROM orders WHERE note = $1 ORDER BY id', ['browser-approve'])).map((r) => r['id'])).toEqual([1, 2]);
    const notice = dana.locator('[data-notice="ok"]');
    expect(await notice.textContent()).toMatch(/approve by dana recorded \(journal #\d+\)\. Request run_sql on db is now approved \(1\/1\); grant 15m\./);
    expect(await card(dana, requestId).getAttribute('data-status')).toBe('approved');
    expect(await dana.locator('button.approve').count()).toBe(0);
    await shot(dana, 'request.png');
    const vote = (await h.gateway.state.approvals.get(requestId, new Date()))?.votes[0];
    expect(vote).toMatchObject({ via: 'console', decision: 'approve', grantMs: 15 * 60_000, reason: 'ticket OPS-7, checked in the browser' });
  });

  it('the Grants page shows the grant with its absolute expiry; revoking it removes it', async () => {
    const grant = (await h.gateway.state.approvals.listGrants(new Date(), { active: true })).find((g) => g.approvalId === requestId);
    expect(grant).toBeDefined();
    await dana.getByRole('link', { name: 'Grants' }).click();
    await dana.waitForURL(`${h.origin}/console/grants`);
    const row = dana.locator(`tr[data-grant="${grant?.id}"]`);
    expect(await row.locator('time').textContent()).toBe(grant?.expiresAt);
    expect(await row.textContent()).toMatch(/alice\s*run_sql\s*db\s*writes-need-approval/);
    expect(await row.textContent()).toMatch(/\(in 1[45]m\)/);
    await shot(dana, 'grants.png');
    await row.getByRole('button', { name: 'Revoke' }).click();
    await dana.locator('[data-notice="ok"]').waitFor();
    expect(await dana.locator('[data-notice="ok"]').textContent()).toContain(`${grant?.id}: revoked by dana`);
    expect(await dana.locator(`tr[data-grant="${grant?.id}"]`).count()).toBe(0);
    expect((await h.gateway.state.approvals.listGrants(new Date(), {})).find((g) => g.id === grant?.id)?.revokedBy).toBe('dana');
    await shot(dana, 'grants-revoked.png');
  });

  it("the journal: dana (a journal reader) searches alice's MCP session and replays it: the write with its approval and outcome", async () => {
    const session = agent.transport.sessionId ?? '';
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    await dana.getByRole('link', { name: 'Journal' }).click();
    await dana.waitForURL(`${h.origin}/console/journal`);
    expect(await dana.locator('[data-verify]').getAttribute('data-verify')).toBe('ok');
    expect(await dana.locator('[data-verify]').textContent()).toContain('The journal verifies.');
    // Search by the session: the one call of alice's agent, with its replay link.
    await dana.fill('form.search input[name="session"]', session);
    await dana.locator('form.search button').click();
    await dana.waitForURL((u) => u.pathname === '/console/journal' && u.searchParams.get('session') === session);
    const rows = dana.locator('table.calls tbody tr');
    expect(await rows.count()).toBe(1);
    expect(await rows.first().textContent()).toMatch(/alice\s*alice-agent\s*run_sql\s*db/);
    await rows.first().getByRole('link', { name: 'replay' }).click();
    await dana.waitForURL(`${h.origin}/console/journal/sessions/${session}`);
    const steps = dana.locator('ol.replay li.step');
    expect(await steps.count()).toBe(1);
    const write = steps.first();
    expect(await write.getAttribute('data-decision')).toBe('approve');
    expect(await write.getAttribute('data-outcome')).toBe('ok');
    const replayed = (await write.textContent()) ?? '';
    expect(replayed).toContain('run_sql on db by alice');
    expect(replayed).toContain('Decision: approve (writes-need-approval); cleared by approval; approve by dana via console');
    expect(replayed).toMatch(/Outcome: ok, .*2 affected/);
    expect(await dana.locator('p.totals').textContent()).toContain('1 call(s): 0 allowed, 1 needed approval, 0 denied; outcomes 1 ok');
    await shot(dana, 'replay.png');
    // The call's full record, from the step's link: the vote with its reason.
    await write.getByRole('link', { name: 'run_sql on db' }).click();
    const record = dana.locator('article.record');
    await record.waitFor();
    expect(await record.locator('li[data-event="vote"]').textContent()).toContain('approval vote by dana via console — ticket OPS-7, checked in the browser');
  });

  it('a new request appears on the open Pending page without a reload; a form posted from another origin or site is refused', async () => {
    await dana.goto(`${h.origin}/console/`);
    const before = dana.locator('#pending');
    await before.waitFor();
    const sql = "UPDATE orders SET note = 'browser-csrf' WHERE id = 4";
    const { call, id } = await h.waitingCall('alice', sql);
    // The page's script polls its JSON fragment: the card shows up in the same document.
    const navigations: string[] = [];
    const navigated = (f: Frame): void => void navigations.push(f.url());
    dana.on('framenavigated', navigated);
    await card(dana, id).waitFor();
    dana.off('framenavigated', navigated);
    expect(navigations).toEqual([]);
    const csrf = (await dana.locator('form.logout input[name="csrf"]').getAttribute('value')) ?? '';
    expect(csrf).toMatch(/.{40,}/);

    // Another origin on the same host (other port): same-site, so the SameSite=Lax cookie IS sent, and the form
    // even carries dana's real CSRF token: the Origin check alone refuses it (the server's, before the console).
    // Another site (127.0.0.2): the browser does not send the Lax cookie on a cross-site POST, and the Origin is refused.
    const target = `${h.origin}/console/approvals/${id}/approve`;
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const evil = await attackerSite(host, target, csrf);
      try {
        const attacked = await dana.context().newPage();
        const [refused] = await Promise.all([attacked.waitForResponse((r) => r.url() === target && r.request().method() === 'POST'), attacked.goto(evil.url)]);
        expect(refused.status(), evil.url).toBe(403);
        expect(await refused.request().headerValue('origin')).toBe(new URL(evil.url).origin);
        expect((await refused.request().headerValue('cookie')) ?? '', host).toMatch(host === '127.0.0.1' ? /drawbridge_console=/ : /^$/);
        await attacked.waitForURL(target);
        expect(await attacked.title()).toBe('Refused · Drawbridge');
        expect(await attacked.locator('[data-message]').textContent()).toBe(
          `Invalid Origin header: ${new URL(evil.url).origin}. The console takes forms from its own pages only.`,
        );
        if (host === '127.0.0.1') await shot(attacked, 'csrf-refused.png');
        await attacked.close();
      } finally {
        await evil.close();
      }
      expect((await h.gateway.state.approvals.get(id, new Date()))?.status).toBe('pending');
    }
    // The console's own check: its form, from its own page, with a token that is not the session's.
    await dana.goto(`${h.origin}/console/approvals/${id}`);
    await dana.locator('form[action$="/approve"] input[name="csrf"]').evaluate((input: HTMLInputElement) => {
      input.value = `${input.value.slice(0, -2)}xx`;
    });
    const [stale] = await Promise.all([dana.waitForResponse((r) => r.url() === target), dana.locator('button.approve').click()]);
    expect(stale.status()).toBe(403);
    expect(await dana.locator('[data-message]').textContent()).toBe('This form is stale or was not made by the console; reload the page and try again.');
    expect((await h.gateway.state.approvals.get(id, new Date()))?.status).toBe('pending');
    // Released: dana denies it on its page, and the waiting call is told.
    await dana.goto(`${h.origin}/console/approvals/${id}`);
    await dana.locator('form[action$="/deny"] input[name="reason"]').fill('not from a forged form');
    await dana.locator('button.deny').click();
    await dana.locator('[data-notice="ok"]').waitFor();
    const denied = await call;
    expect(denied.ok).toBe(false);
    expect(denied.text).toContain('not from a forged form');
  });

  it('an idle session must sign in again (the console clock moves past the idle expiry)', async () => {
    await dana.goto(`${h.origin}/console/grants`);
    expect(await dana.locator('[data-subject]').textContent()).toBe('dana');
    consoleOffsetMs += IDLE_MS + 1;
    const visited: string[] = [];
    const navigation = (r: Request): void => {
      if (r.isNavigationRequest()) visited.push(r.url());
    };
    dana.on('request', navigation);
    await dana.goto(`${h.origin}/console/grants`);
    // Sent to sign in: the console's login, then the provider's authorization endpoint, then its pages.
    await dana.locator('main[data-page="login"], main[data-page="consent"]').first().waitFor();
    expect(new URL(dana.url()).origin).toBe(h.idp.issuer);
    expect(visited.slice(0, 2)).toEqual([`${h.origin}/console/grants`, `${h.origin}/console/login`]);
    expect(visited[2]?.startsWith(`${h.idp.issuer}/`)).toBe(true);
    expect(new URL(visited[2] ?? '').searchParams.get('client_id')).toBe('drawbridge-console');
    dana.off('request', navigation);
    await shot(dana, 'expired.png');
    // The provider's own session still lives (it asks only for consent again); then a new console session.
    await completeSignIn(dana, 'dana');
  });

  it('the requester cannot approve her own request: no approve form, the reason shown, a crafted POST refused', async () => {
    const sql = "UPDATE orders SET note = 'browser-self' WHERE id = 3";
    const { call, id } = await h.waitingCall('alice', sql);
    const alice = await newPage();
    await signIn(alice, 'alice');
    const own = card(alice, id);
    await own.waitFor();
    expect(await own.locator('[data-why]').textContent()).toBe('Your own request.');
    await alice.goto(`${h.origin}/console/approvals/${id}`);
    expect(await alice.locator('[data-why]').textContent()).toBe('You asked for this; someone else must decide it.');
    expect(await alice.locator('form[action$="/approve"]').count()).toBe(0);
    expect(await alice.locator('button.approve').count()).toBe(0);
    await shot(alice, 'self-approval.png');
    // A hand-made form on her own console page, with her valid CSRF token, posted by the browser (same origin).
    const [forced] = await Promise.all([
      alice.waitForResponse((r) => r.url() === `${h.origin}/console/approvals/${id}/approve` && r.request().method() === 'POST'),
      alice.evaluate((action) => {
        const csrf = document.querySelector<HTMLInputElement>('form.logout input[name="csrf"]')?.value ?? '';
        const form = document.createElement('form');
        form.method = 'post';
        form.action = action;
        for (const [name, value] of [
          ['csrf', csrf],
          ['grant', '15m'],
        ]) {
          const input = document.createElement('input');
          input.name = name ?? '';
          input.value = value ?? '';
          form.append(input);
        }
        document.body.append(form);
        form.submit();
      }, `/console/approvals/${id}/approve`),
    ]);
    expect(forced.status()).toBe(403);
    await alice.locator('[data-notice="error"]').waitFor();
    expect(await alice.locator('[data-notice="error"]').textContent()).toBe(
      `alice requested ${id} and may not approve or deny their own request (rule writes-need-approval does not allow the requester).`,
    );
    expect((await h.gateway.state.approvals.get(id, new Date()))?.status).toBe('pending');
    // dana (signed in again after the idle expiry) denies it, releasing the call.
    await dana.goto(`${h.origin}/console/approvals/${id}`);
    await dana.locator('form[action$="/deny"] input[name="reason"]').fill('self-approval test');
    await dana.locator('button.deny').click();
    await dana.locator('[data-notice="ok"]').waitFor();
    expect((await call).ok).toBe(false);
  });

  it('no page reported a script error or a CSP violation', () => {
    expect(pageProblems).toEqual([]);
  });
});

/** A page on another origin that posts a form to `action` as soon as it loads (what a forged form looks like). */
async function attackerSite(host: string, action: string, csrf: string): Promise<{ url: string; close: () => Promise<void> }> {
  const html =
    `<!doctype html><html><body><form id="f" method="post" action="${action}">` +
    `<input name="csrf" value="${csrf}"><input name="grant" value="15m"><input name="reason" value="forged"></form>` +
    `<script>document.getElementById('f').submit()</script></body></html>`;
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://${host}:${address.port}/`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
