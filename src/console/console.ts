// The web console under /console/ on the `serve --http` listener: an approver
// signs in with the organisation's OpenID provider (authorization code + PKCE,
// openid-client), and sees and decides the pending requests they may decide,
// and lists and revokes grants. The access token obtained at sign-in (for this
// gateway's resource) is verified by the very verifier MCP requests use, so an
// approver's groups are exactly what they would be as an agent; the token is
// then dropped: the session holds only the Identity. Sessions are in memory of
// this process (behind replicas, route /console/ by cookie stickiness).
// Every state-changing form carries the session's CSRF token, and Origin /
// Sec-Fetch-Site are checked too. Pages are server-rendered, every value
// escaped, under a strict CSP; the only script polls a JSON list.

import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as oidc from 'openid-client';
import type { ApproverIdentity } from '../approval/approver.js';
import { decideApproval, journalRevocation, revokeGrant } from '../approval/decide.js';
import { revokeMessage, voteMessage } from '../approval/format.js';
import { durationSchema } from '../config/units.js';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { isJournalReader } from '../journal/query.js';
import type { TokenVerifier } from '../identity/oidc.js';
import type { Gateway } from '../pipeline/gateway.js';
import type { StoredApproval, StoredGrant } from '../state/contract.js';
import { CONSOLE_CSS, CONSOLE_JS } from './assets.js';
import { createJournalViews, type JournalView } from './journal.js';
import { approvalCard, decodeSegment, grantsPage, layout, messagePage, pendingPage, escapeHtml } from './pages.js';

declare module '../approval/approver.js' {
  interface ApprovalVias {
    console: true;
  }
}

export const CONSOLE_PREFIX = '/console';

export interface ConsoleOptions {
  /** The OAuth client the console signs in as (public with PKCE, or confidential with a secret). */
  readonly clientId: string;
  readonly clientSecret?: string;
  /** Idle expiry of a session; default 15 minutes. */
  readonly idleMs?: number;
  /** Absolute expiry of a session; default 8 hours. */
  readonly maxAgeMs?: number;
  /** The clock sessions are judged by (tests inject one); default Date.now. */
  readonly now?: () => number;
}

export interface ConsoleSite {
  readonly gateway: Gateway;
  readonly verifier: TokenVerifier;
  /** The gateway's resource (the token audience); the console asks tokens for it. */
  readonly resource: string;
  /** The public origin (scheme://host[:port]) the browser reaches the console at. */
  readonly publicOrigin: string;
}

interface Session {
  readonly identity: Identity;
  readonly csrf: string;
  readonly createdAt: number;
  lastSeen: number;
}

interface PendingLogin {
  readonly state: string;
  readonly codeVerifier: string;
  readonly createdAt: number;
}

const SESSION_COOKIE = 'drawbridge_console';
const LOGIN_COOKIE = 'drawbridge_console_login';
const LOGIN_TTL_MS = 10 * 60_000;
const MAX_LOGINS = 10_000;
const MAX_FORM_BYTES = 16 * 1024;

const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  // Not no-referrer: under it Chromium sends `Origin: null` on the console's own form posts, which
  // the CSRF check must refuse (test/console/browser.test.ts). same-origin still sends nothing elsewhere.
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
};

const token = (): string => randomBytes(32).toString('base64url');

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

const approverOf = (identity: Identity): ApproverIdentity => Object.freeze({ subject: identity.subject, groups: identity.groups, kind: 'oidc' as const });
const isRequester = (a: StoredApproval, who: Identity): boolean => a.subject.requester.subject === who.subject && a.subject.requester.issuer === who.issuer;
/** As the approvals API: a requester only if the rule allows it, else a member of the rule's groups (the store checks again on a vote). */
const mayDecide = (a: StoredApproval, who: Identity): boolean =>
  isRequester(a, who) ? a.subject.allowRequester : a.subject.approverGroups.some((g) => who.groups.includes(g));
const visible = (a: StoredApproval, who: Identity): boolean => mayDecide(a, who) || isRequester(a, who);

/** HTTP status of a refusal shown on a page. */
function statusOf(e: DrawbridgeError): number {
  switch (e.code) {
    case 'approval.not_found':
    case 'grant.not_found':
      return 404;
    case 'approval.forbidden':
    case 'journal.forbidden':
      return 403;
    case 'approval.duplicate_vote':
    case 'approval.not_pending':
    case 'approval.not_approved':
      return 409;
    case 'input.invalid':
      return 400;
    case 'approval.store_unavailable':
    case 'journal.unavailable':
    case 'identity.unavailable':
      return 503;
    default:
      return 500;
  }
}

/** A console request the server's Host / Origin check refused (a form posted from another origin, a rebound name): a page. */
export function sendConsoleRefusal(res: ServerResponse, why: string): void {
  const body = messagePage('Refused', `${why}. The console takes forms from its own pages only.`, { href: `${CONSOLE_PREFIX}/`, text: 'Open the console' });
  res.writeHead(403, { ...SECURITY_HEADERS, 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

export interface Console {
  serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
  /** Open sessions (for tests and metrics). */
  readonly sessionCount: number;
}

export function createConsole(site: ConsoleSite, options: ConsoleOptions): Console {
  const now = options.now ?? (() => Date.now());
  const idleMs = options.idleMs ?? 15 * 60_000;
  const maxAgeMs = options.maxAgeMs ?? 8 * 60 * 60_000;
  const secure = site.publicOrigin.startsWith('https:');
  const redirectUri = `${site.publicOrigin}${CONSOLE_PREFIX}/callback`;
  const sessions = new Map<string, Session>();
  const logins = new Map<string, PendingLogin>();
  let config: Promise<oidc.Configuration> | null = null;

  const cookie = (name: string, value: string, maxAgeS: number): string =>
    `${name}=${value}; Path=${CONSOLE_PREFIX}; HttpOnly; SameSite=Lax; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;

  function discover(): Promise<oidc.Configuration> {
    config ??= (async () => {
      const issuer = new URL(site.verifier.issuer);
      const insecure = issuer.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname);
      const auth = options.clientSecret === undefined ? oidc.None() : oidc.ClientSecretBasic(options.clientSecret);
      return oidc.discovery(issuer, options.clientId, undefined, auth, insecure ? { execute: [oidc.allowInsecureRequests] } : {});
    })().catch((error: unknown) => {
      config = null;
      throw new DrawbridgeError('identity.unavailable', `The OpenID provider ${site.verifier.issuer} could not be discovered.`, { cause: error });
    });
    return config;
  }

  function sweep(t: number): void {
    for (const [id, s] of sessions) if (t - s.lastSeen > idleMs || t - s.createdAt > maxAgeMs) sessions.delete(id);
    for (const [id, l] of logins) if (t - l.createdAt > LOGIN_TTL_MS) logins.delete(id);
  }

  /** The live session of this request, touched; null when none or expired. */
  function sessionOf(req: IncomingMessage): { id: string; session: Session } | null {
    const id = cookies(req).get(SESSION_COOKIE);
    if (id === undefined) return null;
    const t = now();
    sweep(t);
    const session = sessions.get(id);
    if (!session) return null;
    session.lastSeen = t;
    return { id, session };
  }

  function send(res: ServerResponse, status: number, contentType: string, body: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  }
  const html = (res: ServerResponse, status: number, body: string, headers: Record<string, string | string[]> = {}): void =>
    send(res, status, 'text/html; charset=utf-8', body, headers);
  const redirect = (res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void => {
    res.writeHead(303, { ...SECURITY_HEADERS, Location: location, 'Content-Length': '0', ...headers });
    res.end();
  };

  async function startLogin(res: ServerResponse): Promise<void> {
    const c = await discover();
    const t = now();
    sweep(t);
    if (logins.size >= MAX_LOGINS) throw new DrawbridgeError('identity.unavailable', 'Too many sign-ins in progress; try again in a few minutes.');
    const id = token();
    const login: PendingLogin = { state: oidc.randomState(), codeVerifier: oidc.randomPKCECodeVerifier(), createdAt: t };
    logins.set(id, login);
    const target = oidc.buildAuthorizationUrl(c, {
      redirect_uri: redirectUri,
      scope: ['openid', ...site.verifier.requiredScopes].join(' '),
      code_challenge: await oidc.calculatePKCECodeChallenge(login.codeVerifier),
      code_challenge_method: 'S256',
      state: login.state,
      resource: site.resource,
    });
    redirect(res, target.href, { 'Set-Cookie': cookie(LOGIN_COOKIE, id, LOGIN_TTL_MS / 1000) });
  }

  async function callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const loginId = cookies(req).get(LOGIN_COOKIE);
    const login = loginId === undefined ? undefined : logins.get(loginId);
    if (loginId !== undefined) logins.delete(loginId); // one use, whatever happens
    const clear = cookie(LOGIN_COOKIE, '', 0);
    if (!login || now() - login.createdAt > LOGIN_TTL_MS) {
      html(res, 400, messagePage('Sign-in failed', 'This sign-in is unknown or too old.', { href: `${CONSOLE_PREFIX}/login`, text: 'Sign in again' }), {
        'Set-Cookie': clear,
      });
      return;
    }
    let identity: Identity;
    try {
      const c = await discover();
      const current = new URL(`${redirectUri}${url.search}`);
      const tokens = await oidc.authorizationCodeGrant(
        c,
        current,
        { pkceCodeVerifier: login.codeVerifier, expectedState: login.state },
        { resource: site.resource },
      );
      identity = (await site.verifier.verify(tokens.access_token)).identity;
    } catch (error) {
      const why = isDrawbridgeError(error) ? error.message : 'the provider did not confirm the sign-in (state, code or token check failed)';
      html(res, 400, messagePage('Sign-in failed', why, { href: `${CONSOLE_PREFIX}/login`, text: 'Sign in again' }), { 'Set-Cookie': clear });
      return;
    }
    const id = token();
    const t = now();
    sessions.set(id, { identity, csrf: token(), createdAt: t, lastSeen: t });
    redirect(res, `${CONSOLE_PREFIX}/`, { 'Set-Cookie': [clear, cookie(SESSION_COOKIE, id, maxAgeMs / 1000)] });
  }

  /** A state-changing request: same origin (Origin / Sec-Fetch-Site) and the session's CSRF token. */
  function csrfRefusal(req: IncomingMessage, session: Session, form: URLSearchParams): string | null {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null' && origin.toLowerCase() !== site.publicOrigin.toLowerCase()) return 'This form was sent from another site.';
    if (origin === 'null') return 'This form was sent from another site.';
    const fetchSite = req.headers['sec-fetch-site'];
    if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') return 'This form was sent from another site.';
    const sent = form.get('csrf') ?? '';
    if (!sameSecret(sent, session.csrf)) return 'This form is stale or was not made by the console; reload the page and try again.';
    return null;
  }

  async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
    const type = req.headers['content-type'] ?? '';
    if (!type.startsWith('application/x-www-form-urlencoded')) return null;
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_FORM_BYTES) return null;
      chunks.push(chunk);
    }
    return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
  }

  const gatewayNow = (): Date => site.gateway.clock();
  const journal = createJournalViews(site.gateway, now);
  const pageFor = (s: Session, title: string, body: string): string =>
    layout(s.identity, title, body, s.csrf, { journal: isJournalReader(site.gateway.config.journal.readers, s.identity) });

  /** A journal page, or a refusal (not a reader, bad query, journal unavailable) shown in the console's frame. */
  async function journalView(s: Session, path: string, params: URLSearchParams): Promise<JournalView | null> {
    try {
      return await journal.view(s.identity, path, params);
    } catch (error) {
      if (!isDrawbridgeError(error)) throw error;
      const hint = error.hint ? ` ${error.hint}` : '';
      return { status: statusOf(error), title: 'Journal', body: `<p class="error" data-notice="error">${escapeHtml(error.message + hint)}</p>` };
    }
  }

  async function pendingFor(who: Identity): Promise<StoredApproval[]> {
    const list = await site.gateway.state.approvals.list(gatewayNow(), { status: 'pending' });
    return list.filter((a) => mayDecide(a, who) || isRequester(a, who));
  }

  async function grantVisible(g: StoredGrant, who: Identity, at: Date): Promise<boolean> {
    if (g.subject === who.subject && g.issuer === who.issuer) return true;
    const a = await site.gateway.state.approvals.get(g.approvalId, at);
    return a !== undefined && mayDecide(a, who);
  }

  async function showApproval(res: ServerResponse, s: Session, id: string, status = 200, notice?: { kind: 'ok' | 'error'; text: string }): Promise<void> {
    const at = gatewayNow();
    const a = await site.gateway.state.approvals.get(id, at);
    if (!a || !visible(a, s.identity)) {
      html(res, 404, pageFor(s, 'Not found', `<p class="error">No approval request ${escapeHtml(JSON.stringify(id))} that you may see.</p>`));
      return;
    }
    const voted = a.votes.some((v) => v.approver.subject === s.identity.subject);
    const canDecide = a.status === 'pending' && mayDecide(a, s.identity) && !voted;
    const why =
      a.status !== 'pending'
        ? null
        : isRequester(a, s.identity) && !a.subject.allowRequester
          ? 'You asked for this; someone else must decide it.'
          : voted
            ? 'You have voted on this request.'
            : null;
    html(res, status, pageFor(s, `Request ${a.id}`, approvalCard(a, at, { canDecide, why, csrf: s.csrf, notice, detail: true })));
  }

  async function decide(res: ServerResponse, s: Session, id: string, decision: 'approve' | 'deny', form: URLSearchParams): Promise<void> {
    const reason = form.get('reason')?.trim() || undefined;
    const at = gatewayNow();
    const before = await site.gateway.state.approvals.get(id, at);
    if (!before || !visible(before, s.identity)) {
      await showApproval(res, s, id);
      return;
    }
    let grantMs = 0;
    if (decision === 'deny' && reason === undefined) {
      await showApproval(res, s, id, 400, { kind: 'error', text: 'A denial needs a reason the requester will see.' });
      return;
    }
    if (decision === 'approve') {
      const g = form.get('grant')?.trim() ?? '';
      if (g !== '' && g !== 'none') {
        const parsed = durationSchema.safeParse(g);
        if (!parsed.success || parsed.data <= 0) {
          await showApproval(res, s, id, 400, { kind: 'error', text: 'The grant must be a duration such as 15m or 1h, or none.' });
          return;
        }
        grantMs = parsed.data;
      }
    }
    const approver = approverOf(s.identity);
    const result = await decideApproval(
      site.gateway.state,
      approver,
      { approvalId: id, decision, via: 'console', ...(reason !== undefined ? { reason } : {}), ...(grantMs > 0 ? { grantMs } : {}) },
      at,
      site.gateway.notifier?.notify,
    );
    if (!result.ok) {
      if (result.orphan !== null) {
        await showApproval(res, s, id, 503, {
          kind: 'error',
          text:
            `Journal record #${result.orphan.seq} says ${decision}, but the approvals store did not keep the vote; ` +
            'the request is unchanged. Tell the operator, then vote again.',
        });
        return;
      }
      const e = isDrawbridgeError(result.error) ? result.error : new DrawbridgeError('internal', 'The vote failed because of an internal gateway error.');
      await showApproval(res, s, id, statusOf(e), { kind: 'error', text: e.message });
      return;
    }
    await showApproval(res, s, id, 200, { kind: 'ok', text: voteMessage(result.approval, decision, approver, result.record) });
  }

  async function showGrants(res: ServerResponse, s: Session, status = 200, notice?: { kind: 'ok' | 'error'; text: string }): Promise<void> {
    const at = gatewayNow();
    const shown: StoredGrant[] = [];
    for (const g of await site.gateway.state.approvals.listGrants(at, { active: true })) if (await grantVisible(g, s.identity, at)) shown.push(g);
    html(res, status, pageFor(s, 'Grants', grantsPage(shown, at, s.csrf, notice)));
  }

  async function revoke(res: ServerResponse, s: Session, id: string): Promise<void> {
    const at = gatewayNow();
    const state = site.gateway.state;
    const current = (await state.approvals.listGrants(at, { active: true })).find((g) => g.id === id);
    if (!current || !(await grantVisible(current, s.identity, at))) {
      await showGrants(res, s, 404, { kind: 'error', text: `No active grant ${JSON.stringify(id)} that you may revoke.` });
      return;
    }
    const approver = approverOf(s.identity);
    const revocation = await revokeGrant(state.approvals, approver, id, at);
    const message = revokeMessage(revocation.grant, approver);
    try {
      await journalRevocation(state, approver, revocation, at);
      await showGrants(res, s, 200, { kind: 'ok', text: message });
    } catch {
      await showGrants(res, s, 500, { kind: 'error', text: `${message} The revocation could not be journaled; tell the operator.` });
    }
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === CONSOLE_PREFIX) return redirect(res, `${CONSOLE_PREFIX}/`);
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/static/console.css`) return send(res, 200, 'text/css; charset=utf-8', CONSOLE_CSS);
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/static/console.js`) return send(res, 200, 'text/javascript; charset=utf-8', CONSOLE_JS);
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/login`) return startLogin(res);
    if (method === 'GET' && path === `${CONSOLE_PREFIX}/callback`) return callback(req, res, url);

    const current = sessionOf(req);
    if (!current) {
      if (method === 'GET' && path.endsWith('.json')) return send(res, 401, 'application/json', JSON.stringify({ error: 'signed out' }));
      if (method === 'GET') return redirect(res, `${CONSOLE_PREFIX}/login`);
      return html(res, 401, messagePage('Signed out', 'Your console session has ended. Sign in again.', { href: `${CONSOLE_PREFIX}/login`, text: 'Sign in' }));
    }
    const s = current.session;
    if (method === 'GET') {
      if (path === `${CONSOLE_PREFIX}/`) {
        return html(
          res,
          200,
          pageFor(
            s,
            'Pending requests',
            pendingPage(await pendingFor(s.identity), gatewayNow(), (a) => mayDecide(a, s.identity)),
          ),
        );
      }
      if (path === `${CONSOLE_PREFIX}/pending.json`) {
        const at = gatewayNow();
        const list = await pendingFor(s.identity);
        return send(res, 200, 'application/json', JSON.stringify({ html: pendingPage(list, at, (a) => mayDecide(a, s.identity)), ids: list.map((a) => a.id) }));
      }
      if (path === `${CONSOLE_PREFIX}/grants`) return showGrants(res, s);
      const m = /^\/console\/approvals\/([^/]+)$/.exec(path);
      if (m) return showApproval(res, s, decodeSegment(m[1]) ?? m[1] ?? '');
      const view = await journalView(s, path, url.searchParams);
      if (view) return html(res, view.status, pageFor(s, view.title, view.body));
      return html(res, 404, pageFor(s, 'Not found', '<p class="error">No such console page.</p>'));
    }
    if (method !== 'POST') return html(res, 405, messagePage('Not allowed', 'Use the console pages.'), { Allow: 'GET, POST' });
    const form = await readForm(req);
    if (!form) return html(res, 400, messagePage('Refused', 'This form could not be read.'));
    const refusal = csrfRefusal(req, s, form);
    if (refusal) return html(res, 403, messagePage('Refused', refusal, { href: `${CONSOLE_PREFIX}/`, text: 'Back to the console' }));
    if (path === `${CONSOLE_PREFIX}/logout`) {
      sessions.delete(current.id);
      return redirect(res, `${CONSOLE_PREFIX}/login`, { 'Set-Cookie': cookie(SESSION_COOKIE, '', 0) });
    }
    const d = /^\/console\/approvals\/([^/]+)\/(approve|deny)$/.exec(path);
    if (d) return decide(res, s, decodeSegment(d[1]) ?? d[1] ?? '', d[2] === 'approve' ? 'approve' : 'deny', form);
    const r = /^\/console\/grants\/([^/]+)\/revoke$/.exec(path);
    if (r) return revoke(res, s, decodeSegment(r[1]) ?? r[1] ?? '');
    return html(res, 404, pageFor(s, 'Not found', '<p class="error">No such console action.</p>'));
  }

  return {
    async serve(req, res, url) {
      try {
        await route(req, res, url);
      } catch (error) {
        if (res.headersSent) {
          res.destroy();
          return;
        }
        // Never a stack trace: a catalog message, or a generic one.
        const text = isDrawbridgeError(error) ? error.message : 'The console failed because of an internal gateway error.';
        html(res, isDrawbridgeError(error) ? statusOf(error) : 500, messagePage('Error', text));
      }
    },
    get sessionCount() {
      return sessions.size;
    },
  };
}
