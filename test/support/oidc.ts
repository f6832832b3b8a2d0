// A real OpenID provider for authentication tests: the development provider
// of dev/idp.ts (oidc-provider 9.x on 127.0.0.1 and a free port, issuer
// `http://127.0.0.1:PORT`; its header says what it is configured for: JWT
// access tokens via resource indicators with the account/client claims, the
// accounts and clients, device flow, client credentials, refresh tokens),
// plus what only tests need:
//   - deviceLogin()/approveDevice()/denyDevice() drive the provider's pages
//     like a browser would: plain fetch, manual redirects, a path-aware cookie
//     jar, the xsrf token taken from the form. They rely on the page contract
//     of dev/idp.ts: one <main data-page="KIND" [data-error]
//     [data-detail]> per page, the step's form first.
//   - playAuthorizationCode(): the same browser for an authorization code
//     flow an OAuth client (e.g. the MCP SDK's) started: sign in, consent,
//     and stop at the client's loopback redirect URI instead of fetching it.
//   - clientCredentialsToken(): the client credentials grant in one call.
//   - mint(): JWTs crafted outside the provider (valid, badly signed, alg
//     none, HS256 keyed with the public JWK) for negative tests.
//   - rotate(): a new provider instance with a new signing key first, behind
//     the same listener (same issuer and port, same stored grants, refresh
//     tokens and sessions; keep-alive connections stay usable).
//   - jwksFetches(): how often the JWKS endpoint was fetched.
//   - oidc-provider refuses a device flow that ends with no scope granted, so
//     deviceLogin() asks for `mcp approvals` unless told otherwise, and a
//     client that starts a flow without any scope gets access_denied.
//
// TestIdpOptions.defaultAudience is only mint()'s default `aud` here: it is
// NOT passed on to the provider, so requests without a `resource` still get
// opaque tokens, as they always did in these tests.

import { randomUUID } from 'node:crypto';
import { CompactSign, type CryptoKey } from 'jose';
import {
  DEV_ACCOUNTS,
  DEV_CLIENTS,
  DEV_RESOURCE_SCOPES,
  DEVICE_CODE_GRANT_TYPE as DEV_DEVICE_CODE_GRANT_TYPE,
  generateSigningKey,
  ProviderStore,
  startDevIdp,
  type DevIdpAccounts,
  type DevIdpSigningAlg,
  type DevIdpSigningKey,
} from '../../dev/idp.js';

// ---------------------------------------------------------------------------
// Public API

export type TestIdpSigningAlg = DevIdpSigningAlg;

export interface TestIdpOptions {
  /** Lifetime of issued access tokens (expires_in, exp - iat). Default 300. */
  readonly accessTokenTtlSeconds?: number;
  /** Access token signing algorithm. Default RS256. */
  readonly alg?: TestIdpSigningAlg;
  /** Extra or replacement accounts: account id -> claims put into its access tokens. */
  readonly accounts?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Default `aud` for mint() when the claims do not set one. */
  readonly defaultAudience?: string;
}

export interface DeviceTokens {
  access_token: string;
  refresh_token?: string;
  expires_in: number;
  token_type: string;
  scope?: string;
}

export type MintSigning = 'current' | 'foreign' | 'none' | 'hs256-public';

export interface MintOptions {
  /** Merged over the default header {alg, kid, typ: 'at+jwt'}; a value of `undefined` removes that member. */
  readonly header?: Record<string, unknown>;
  /**
   * current: the provider's current private key (a valid token).
   * foreign: another key of the same type, but the provider's kid (bad signature).
   * none: `alg: none`, empty signature.
   * hs256-public: HS256 with the UTF-8 bytes of JSON.stringify(current public JWK),
   *   i.e. exactly the key object as published in the JWKS (key-confusion attack).
   */
  readonly sign?: MintSigning;
}

export interface TestIdp {
  /** `http://127.0.0.1:${port}`, no trailing slash. */
  readonly issuer: string;
  readonly port: number;
  /** `${issuer}/jwks` */
  readonly jwksUri: string;
  /** Client credentials grant for a confidential service client (client_secret_basic); returns the JWT access token. */
  clientCredentialsToken(clientId: string, clientSecret: string, resource: string, scope?: string): Promise<string>;
  /**
   * The whole device authorization flow as a user would do it for `drawbridge-cli`:
   * start, poll once (authorization_pending), visit the verification URI, enter the code,
   * log in as `account`, consent, poll: tokens for `resource`. `scope` defaults to
   * TEST_RESOURCE_SCOPES (oidc-provider denies a flow that grants no scope at all).
   */
  deviceLogin(resource: string, account: string, scope?: string): Promise<DeviceTokens>;
  /**
   * Plays the human for a device flow someone else started: enter `userCode`, log in as
   * `account`, consent. Resolves once the provider has marked the device code approved.
   */
  approveDevice(userCode: string, account: string): Promise<void>;
  /** Plays the human who presses "abort" on the confirmation page: the poller gets access_denied. */
  denyDevice(userCode: string): Promise<void>;
  /**
   * A JWT access token crafted outside the provider, for negative tests. Default claims:
   * iss = issuer, sub 'alice', aud = options.defaultAudience (else required), iat = now,
   * exp = now + 300, jti random, client_id 'drawbridge-cli'; `claims` are merged over them
   * (a value of `undefined` removes a default claim).
   */
  mint(claims: Record<string, unknown>, options?: MintOptions): Promise<string>;
  /**
   * Key rotation: a new provider instance with a new signing key first, behind the same
   * listener (same issuer, same port, same stored grants and refresh tokens).
   * keepOld: the previous current key stays published in the JWKS (after the new one);
   * otherwise the JWKS holds only the new key.
   */
  rotate(options?: { keepOld?: boolean }): Promise<void>;
  /** kid of the key new tokens are signed with. */
  currentKid(): string;
  /** GET requests the JWKS endpoint has received since start (across rotations). */
  jwksFetches(): number;
  stop(): Promise<void>;
}

/** Accounts and the claims their access tokens carry (besides sub = the account id). */
export const TEST_ACCOUNTS: DevIdpAccounts = DEV_ACCOUNTS;

export const TEST_CLIENTS = DEV_CLIENTS;

/** The scopes every local resource server offers. */
export const TEST_RESOURCE_SCOPES = DEV_RESOURCE_SCOPES;

export const DEVICE_CODE_GRANT_TYPE = DEV_DEVICE_CODE_GRANT_TYPE;

// ---------------------------------------------------------------------------
// Helpers

const b64url = (input: string | Uint8Array): string => Buffer.from(input).toString('base64url');

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------
// A scripted browser: fetch, manual redirects, a path-aware cookie jar

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  expiresAt: number | undefined;
}

interface BrowserPage {
  url: string;
  status: number;
  html: string;
}

interface ParsedForm {
  action: string;
  fields: URLSearchParams;
}

function decodeEntities(value: string): string {
  return value
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCharCode(Number(code)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attributes(tag: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of tag.matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) {
    const [, name, value] = m;
    if (name !== undefined && value !== undefined) out.set(name.toLowerCase(), decodeEntities(value));
  }
  return out;
}

/** The first <form> of the page and the named <input>s inside it. */
function parseForm(current: BrowserPage): ParsedForm {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(current.html);
  if (!form) throw new Error(`test idp browser: no form on ${current.url}: ${current.html.slice(0, 500)}`);
  const action = attributes(form[1] ?? '').get('action') ?? current.url;
  const fields = new URLSearchParams();
  for (const input of (form[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const attrs = attributes(input[1] ?? '');
    const name = attrs.get('name');
    if (name !== undefined) fields.set(name, attrs.get('value') ?? '');
  }
  return { action: new URL(action, current.url).href, fields };
}

function pageKind(current: BrowserPage): { kind: string; error: string | undefined; detail: string | undefined } {
  const main = /<main\b([^>]*)>/i.exec(current.html);
  const attrs = attributes(main?.[1] ?? '');
  return { kind: attrs.get('data-page') ?? 'unknown', error: attrs.get('data-error'), detail: attrs.get('data-detail') };
}

class Browser {
  private readonly jar: StoredCookie[] = [];

  /**
   * @param returnTo A redirect whose target satisfies this is not followed: the browser
   *   "arrives" there (url = the target, status = the redirect's, empty html), as a browser
   *   arrives at an OAuth client's loopback redirect URI.
   */
  constructor(private readonly returnTo: (target: URL) => boolean = () => false) {}

  async get(url: string): Promise<BrowserPage> {
    return this.request(url, undefined);
  }

  async submit(form: ParsedForm): Promise<BrowserPage> {
    return this.request(form.action, form.fields);
  }

  private cookieHeader(url: URL): string {
    const now = Date.now();
    const live = this.jar.filter((c) => c.expiresAt === undefined || c.expiresAt > now);
    const matching = live.filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`));
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  private store(url: URL, setCookie: string): void {
    const [pair = '', ...attrs] = setCookie.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    if (eq <= 0) return;
    const cookie: StoredCookie = {
      name: pair.slice(0, eq),
      value: pair.slice(eq + 1),
      path: url.pathname.replace(/\/[^/]*$/, '') || '/',
      expiresAt: undefined,
    };
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const name = (i < 0 ? attr : attr.slice(0, i)).toLowerCase();
      const value = i < 0 ? '' : attr.slice(i + 1);
      if (name === 'path' && value.startsWith('/')) cookie.path = value;
      else if (name === 'expires') cookie.expiresAt = Date.parse(value);
      else if (name === 'max-age') cookie.expiresAt = Date.now() + Number(value) * 1000;
    }
    const existing = this.jar.findIndex((c) => c.name === cookie.name && c.path === cookie.path);
    if (existing >= 0) this.jar.splice(existing, 1);
    if (cookie.expiresAt === undefined || cookie.expiresAt > Date.now()) this.jar.push(cookie);
  }

  private async request(url: string, form: URLSearchParams | undefined): Promise<BrowserPage> {
    let target = new URL(url);
    let body = form;
    for (let hops = 0; hops < 10; hops += 1) {
      const headers: Record<string, string> = { accept: 'text/html' };
      const cookie = this.cookieHeader(target);
      if (cookie) headers['cookie'] = cookie;
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(target, {
        method: body ? 'POST' : 'GET',
        headers,
        ...(body ? { body: body.toString() } : {}),
        redirect: 'manual',
      });
      for (const sc of res.headers.getSetCookie()) this.store(target, sc);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        target = new URL(location, target);
        if (this.returnTo(target)) return { url: target.href, status: res.status, html: '' };
        body = undefined; // 302/303: follow with GET
        continue;
      }
      return { url: target.href, status: res.status, html: await res.text() };
    }
    throw new Error(`test idp browser: too many redirects from ${url}`);
  }
}

/**
 * Plays the human at a development provider's pages for a device flow someone
 * started: enter `userCode`, log in as `account`, consent (or, with no account,
 * press abort). Works against any startDevIdp instance, e.g. the one inside
 * `drawbridge demo --http`. `diagnostics` adds provider-side detail to errors.
 */
export async function playDeviceFlow(issuer: string, userCode: string, account: string | undefined, diagnostics: () => string = () => ''): Promise<void> {
  const browser = new Browser();
  let shown = await browser.get(`${issuer}/device`);
  for (let step = 0; step < 12; step += 1) {
    const { kind, error, detail } = pageKind(shown);
    if (error !== undefined) {
      if (account === undefined && kind === 'device-input' && error === 'AbortedError') return; // denied as asked
      throw new Error(`test idp: device approval for ${userCode} failed on ${kind} page: ${error}${detail ? ` (${detail})` : ''}${diagnostics()}`);
    }
    switch (kind) {
      case 'device-input': {
        const form = parseForm(shown);
        form.fields.set('user_code', userCode);
        shown = await browser.submit(form);
        break;
      }
      case 'device-confirm': {
        const form = parseForm(shown);
        if (account === undefined) {
          form.fields.delete('confirm');
          form.fields.set('abort', 'yes');
        }
        shown = await browser.submit(form);
        break;
      }
      case 'login': {
        if (account === undefined) throw new Error('test idp: unexpected login page while denying');
        const form = parseForm(shown);
        form.fields.set('login', account);
        shown = await browser.submit(form);
        break;
      }
      case 'consent':
        shown = await browser.submit(parseForm(shown));
        break;
      case 'device-success':
        if (account === undefined) throw new Error('test idp: device flow succeeded while denying');
        return;
      default:
        throw new Error(`test idp: unexpected page (${shown.status} ${shown.url}): ${shown.html.slice(0, 500)}${diagnostics()}`);
    }
  }
  throw new Error(`test idp: device approval for ${userCode} did not finish`);
}

/**
 * Plays the human in a browser for an authorization code flow an OAuth client started:
 * open `authorizationUrl`, sign in as `account`, then Allow (or, with `deny`, Deny) on the
 * consent page, until the provider sends the browser back to `redirectUri` (same origin and
 * path; that address is never fetched). Returns the URL it was sent back to, with `code`
 * and `state` (or `error`) in its query. Relies on the page contract of dev/idp.ts.
 */
export async function playAuthorizationCode(
  authorizationUrl: string | URL,
  account: string,
  redirectUri: string | URL,
  options: { deny?: boolean; diagnostics?: () => string } = {},
): Promise<URL> {
  const back = new URL(redirectUri);
  const browser = new Browser((target) => target.origin === back.origin && target.pathname === back.pathname);
  const diagnostics = options.diagnostics ?? (() => '');
  let shown = await browser.get(String(authorizationUrl));
  for (let step = 0; step < 8; step += 1) {
    const arrived = new URL(shown.url);
    if (arrived.origin === back.origin && arrived.pathname === back.pathname) return arrived;
    const { kind, error, detail } = pageKind(shown);
    if (error !== undefined) {
      throw new Error(`test idp: authorization for ${account} failed on ${kind} page: ${error}${detail ? ` (${detail})` : ''}${diagnostics()}`);
    }
    switch (kind) {
      case 'login': {
        const form = parseForm(shown);
        form.fields.set('login', account);
        shown = await browser.submit(form);
        break;
      }
      case 'consent': {
        // The first form allows; the second (the Deny button) aborts.
        const forms = [...shown.html.matchAll(/<form\b[^>]*>[\s\S]*?<\/form>/gi)].map((m) => m[0]);
        const chosen = options.deny ? forms[1] : forms[0];
        if (chosen === undefined) throw new Error(`test idp: no ${options.deny ? 'Deny' : 'Allow'} form on the consent page`);
        shown = await browser.submit(parseForm({ ...shown, html: chosen }));
        break;
      }
      default:
        throw new Error(`test idp: unexpected page (${shown.status} ${shown.url}): ${shown.html.slice(0, 500)}${diagnostics()}`);
    }
  }
  throw new Error(`test idp: the authorization for ${account} did not return to ${back.href}`);
}

// ---------------------------------------------------------------------------
// The provider with the test extras

export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const devOptions: Parameters<typeof startDevIdp>[0] = {
    ...(options.accessTokenTtlSeconds !== undefined ? { accessTokenTtlSeconds: options.accessTokenTtlSeconds } : {}),
    ...(options.alg !== undefined ? { alg: options.alg } : {}),
    ...(options.accounts !== undefined ? { accounts: options.accounts } : {}),
  };
  // What only tests look at: the provider's store (device codes), its server errors, JWKS fetches.
  const store = new ProviderStore();
  const serverErrors: unknown[] = [];
  let jwksCount = 0;
  const dev = await startDevIdp({
    ...devOptions,
    store,
    onServerError: (err) => serverErrors.push(err),
    onRequest: (method, pathname) => {
      if (method === 'GET' && pathname === '/jwks') jwksCount += 1;
    },
  });
  const { issuer } = dev;
  let foreign: DevIdpSigningKey | undefined;
  let stopped = false;

  const lastServerError = (): string => {
    const err = serverErrors.at(-1);
    return err === undefined ? '' : ` (last provider error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)})`;
  };

  /** The stored device-code record for a user code (any case, dashes optional), if any. */
  const deviceCode = (userCode: string): Readonly<Record<string, unknown>> | undefined => {
    const id = store.byUserCode.get(userCode.toUpperCase().replace(/\W/g, ''));
    return id === undefined ? undefined : store.get(`DeviceCode:${id}`);
  };

  function assertRunning(): void {
    if (stopped) throw new Error('test idp is stopped');
  }

  async function tokenRequest(body: URLSearchParams, auth?: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (auth) headers['authorization'] = auth;
    const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: body.toString() });
    const json = (await res.json()) as Record<string, unknown>;
    return { status: res.status, json };
  }

  function deviceCodeProblem(userCode: string): string {
    const code = deviceCode(userCode);
    if (!code) return ' (no such device code)';
    if (typeof code['error'] === 'string') return ` (device code error: ${code['error']})`;
    return '';
  }

  function assertApproved(userCode: string, account: string): void {
    const code = deviceCode(userCode);
    if (code?.['accountId'] !== account) {
      throw new Error(`test idp: device code ${userCode} is not approved for ${account}${deviceCodeProblem(userCode)}`);
    }
  }

  const playHuman = (userCode: string, account: string | undefined) =>
    playDeviceFlow(issuer, userCode, account, () => `${deviceCodeProblem(userCode)}${lastServerError()}`);

  const idp: TestIdp = {
    issuer,
    port: dev.port,
    jwksUri: dev.jwksUri,

    async clientCredentialsToken(clientId, clientSecret, resource, scope) {
      assertRunning();
      const body = new URLSearchParams({ grant_type: 'client_credentials', resource });
      if (scope !== undefined) body.set('scope', scope);
      const basic = `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`;
      const { status, json } = await tokenRequest(body, basic);
      if (status !== 200 || typeof json['access_token'] !== 'string') {
        throw new Error(`test idp: client_credentials for ${clientId} failed: ${status} ${JSON.stringify(json)}${lastServerError()}`);
      }
      return json['access_token'];
    },

    async deviceLogin(resource, account, scope = TEST_RESOURCE_SCOPES) {
      assertRunning();
      const start = new URLSearchParams({ client_id: TEST_CLIENTS.cli.clientId, resource, scope });
      const startRes = await fetch(`${issuer}/device/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: start.toString(),
      });
      const da = (await startRes.json()) as Record<string, unknown>;
      if (startRes.status !== 200 || typeof da['device_code'] !== 'string' || typeof da['user_code'] !== 'string') {
        throw new Error(`test idp: device authorization failed: ${startRes.status} ${JSON.stringify(da)}${lastServerError()}`);
      }
      const poll = new URLSearchParams({
        grant_type: DEVICE_CODE_GRANT_TYPE,
        device_code: da['device_code'],
        client_id: TEST_CLIENTS.cli.clientId,
      });
      const pending = await tokenRequest(poll);
      if (pending.json['error'] !== 'authorization_pending') {
        throw new Error(`test idp: expected authorization_pending before approval, got ${pending.status} ${JSON.stringify(pending.json)}`);
      }
      await playHuman(da['user_code'], account);
      assertApproved(da['user_code'], account);
      const { status, json } = await tokenRequest(poll);
      if (status !== 200 || typeof json['access_token'] !== 'string' || typeof json['expires_in'] !== 'number') {
        throw new Error(`test idp: device token request failed: ${status} ${JSON.stringify(json)}${lastServerError()}`);
      }
      const tokens: DeviceTokens = {
        access_token: json['access_token'],
        expires_in: json['expires_in'],
        token_type: String(json['token_type']),
      };
      if (typeof json['refresh_token'] === 'string') tokens.refresh_token = json['refresh_token'];
      if (typeof json['scope'] === 'string') tokens.scope = json['scope'];
      return tokens;
    },

    async approveDevice(userCode, account) {
      assertRunning();
      await playHuman(userCode, account);
      assertApproved(userCode, account);
    },

    async denyDevice(userCode) {
      assertRunning();
      await playHuman(userCode, undefined);
      if (deviceCode(userCode)?.['error'] !== 'access_denied') {
        throw new Error(`test idp: device code ${userCode} was not denied${deviceCodeProblem(userCode)}`);
      }
    },

    async mint(claims, mintOptions = {}) {
      const sign = mintOptions.sign ?? 'current';
      const current = dev.signingKey();
      const now = Math.floor(Date.now() / 1000);
      const payload = withoutUndefined({
        iss: issuer,
        sub: 'alice',
        aud: options.defaultAudience,
        iat: now,
        exp: now + 300,
        jti: randomUUID(),
        client_id: TEST_CLIENTS.cli.clientId,
        ...claims,
      });
      if (!('aud' in claims) && payload['aud'] === undefined) {
        throw new Error('test idp mint: pass claims.aud (or TestIdpOptions.defaultAudience)');
      }
      const headerAlg = sign === 'none' ? 'none' : sign === 'hs256-public' ? 'HS256' : current.alg;
      const header = withoutUndefined({ alg: headerAlg, typ: 'at+jwt', kid: current.kid, ...mintOptions.header });
      const encodedPayload = new TextEncoder().encode(JSON.stringify(payload));
      if (sign === 'none') {
        return `${b64url(JSON.stringify(header))}.${b64url(encodedPayload)}.`;
      }
      let key: CryptoKey | Uint8Array;
      if (sign === 'hs256-public') {
        key = new TextEncoder().encode(JSON.stringify(current.publicJwk));
      } else if (sign === 'foreign') {
        if (foreign?.alg !== current.alg) foreign = await generateSigningKey(current.alg);
        key = foreign.privateKey;
      } else {
        key = current.privateKey;
      }
      const jws = new CompactSign(encodedPayload).setProtectedHeader(header as { alg: string });
      return jws.sign(key);
    },

    async rotate(rotateOptions = {}) {
      assertRunning();
      const current = dev.signingKey();
      const next = await generateSigningKey(dev.alg);
      dev.useSigningKeys(rotateOptions.keepOld ? [next, current] : [next]);
    },

    currentKid() {
      return dev.signingKey().kid;
    },

    jwksFetches() {
      return jwksCount;
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      await dev.stop();
    },
  };
  return idp;
}
