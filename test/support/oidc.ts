// A real OpenID provider for authentication tests: oidc-provider (9.x) behind a
// node http server on 127.0.0.1 and a free port, issuer `http://127.0.0.1:PORT`.
//
// What it is configured for:
//   - JWT access tokens (typ `at+jwt`) for any resource indicator starting with
//     `http://127.0.0.1:` or `http://localhost:` (features.resourceIndicators):
//     aud = the requested resource, scopes `mcp approvals`, signed with our own
//     generated key (RS256 by default) so `mint()` can sign with the same key.
//     Requests without a `resource` get opaque tokens, as oidc-provider does.
//   - Accounts (TEST_ACCOUNTS) whose claims are put INTO the access token:
//     alice groups ['developers']; bob ['sre', 'developers']; carol no groups;
//     dave groups 'sre' (a string); erin realm_access.roles ['dba'] only.
//   - Clients (TEST_CLIENTS): `drawbridge-cli` (public, device_code +
//     refresh_token, always gets a refresh token), `agent-svc` and `other-svc`
//     (client_secret_basic, client_credentials; groups ['agents'] / ['others']
//     in their tokens, sub = the client id).
//   - Device flow with our own interaction pages: `/device` (enter the code,
//     confirm), then `/interaction/:uid` (log in by typing an account name,
//     then consent). deviceLogin()/approveDevice() drive those pages like a
//     browser would: plain fetch, manual redirects, a path-aware cookie jar,
//     the xsrf token taken from the form.
//   - rotate() replaces the provider instance (a fresh oidc-provider with a
//     new signing key first) behind the same listener, so the issuer and port
//     stay the same and clients' keep-alive connections stay usable (closing
//     and re-listening made undici fail the next request with "other side
//     closed"). Provider state (grants, refresh tokens, sessions) lives in one
//     in-memory store that both instances share.
//   - oidc-provider refuses a device (or authorization code) flow that ends
//     with no scope granted ("authorization request resolved without
//     requesting interactions but no scope was granted" -> access_denied), so
//     deviceLogin() asks for `mcp approvals` unless told otherwise, and a
//     client that starts a flow without any scope gets access_denied.
//
// oidc-provider prints "oidc-provider WARNING: Unsupported runtime. Use
// Node.js v22.x LTS ..." once, when the module is first imported on Node 20
// (it checks process.release.lts; there is no option to turn it off). All
// other NOTICE/WARNING output is avoided by configuring every default that
// would complain (ttl.*, adapter, jwks, page sources, findAccount, ...).
//
// oidc-provider ships no type declarations, so it is imported dynamically
// (see loadOidcProvider) and described by the minimal interfaces below.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  CompactSign,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  type CryptoKey,
  type JWK,
} from 'jose';

// ---------------------------------------------------------------------------
// Public API

export type TestIdpSigningAlg = 'RS256' | 'ES256';

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
export const TEST_ACCOUNTS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  alice: { groups: ['developers'] },
  bob: { groups: ['sre', 'developers'] },
  carol: {},
  dave: { groups: 'sre' },
  erin: { realm_access: { roles: ['dba'] } },
};

export const TEST_CLIENTS = {
  cli: { clientId: 'drawbridge-cli' },
  agent: { clientId: 'agent-svc', clientSecret: 'agent-svc-secret', claims: { groups: ['agents'] } },
  other: { clientId: 'other-svc', clientSecret: 'other-svc-secret', claims: { groups: ['others'] } },
} as const;

/** The scopes every local resource server offers. */
export const TEST_RESOURCE_SCOPES = 'mcp approvals';

export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

// ---------------------------------------------------------------------------
// Minimal typing of the parts of oidc-provider used here

interface KoaishContext {
  body: unknown;
  type: string;
}

interface OidcInteraction {
  uid: string;
  prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
  params: Record<string, unknown>;
  session?: { accountId?: string; uid?: string };
  grantId?: string;
}

interface OidcGrant {
  addOIDCScope(scope: string): void;
  addOIDCClaims(claims: string[]): void;
  addResourceScope(resource: string, scope: string): void;
  save(): Promise<string>;
}

interface OidcGrantClass {
  new (init: { accountId: string; clientId: string }): OidcGrant;
  find(id: string): Promise<OidcGrant | undefined>;
}

interface OidcProvider {
  readonly issuer: string;
  readonly Grant: OidcGrantClass;
  callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<OidcInteraction>;
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean },
  ): Promise<void>;
  on(event: 'server_error', listener: (ctx: unknown, err: unknown) => void): unknown;
}

interface OidcProviderModule {
  default: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  errors: { InvalidTarget: new (description?: string) => Error };
}

// A variable specifier keeps tsc from looking for declarations that do not exist.
const OIDC_PROVIDER_MODULE: string = 'oidc-provider';
let oidcProviderModule: Promise<OidcProviderModule> | undefined;
function loadOidcProvider(): Promise<OidcProviderModule> {
  oidcProviderModule ??= import(OIDC_PROVIDER_MODULE) as Promise<OidcProviderModule>;
  return oidcProviderModule;
}

// ---------------------------------------------------------------------------
// Storage: a minimal oidc-provider adapter over one Map, shared across restarts

type Payload = Record<string, unknown>;

interface StoreEntry {
  payload: Payload;
  expiresAt: number | undefined; // epoch ms
}

class ProviderStore {
  readonly entries = new Map<string, StoreEntry>();
  readonly byUserCode = new Map<string, string>(); // userCode -> id (DeviceCode)
  readonly byUid = new Map<string, string>(); // uid -> id (Session)
  readonly byGrant = new Map<string, Set<string>>(); // grantId -> entry keys

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  adapterFor(model: string): object {
    const key = (id: string): string => `${model}:${id}`;
    const find = async (id: string | undefined): Promise<Payload | undefined> =>
      id === undefined ? undefined : this.get(key(id));
    return {
      upsert: async (id: string, payload: Payload, expiresIn: number | undefined): Promise<void> => {
        const k = key(id);
        this.entries.set(k, {
          payload,
          expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined,
        });
        if (typeof payload['grantId'] === 'string') {
          const members = this.byGrant.get(payload['grantId']) ?? new Set<string>();
          members.add(k);
          this.byGrant.set(payload['grantId'], members);
        }
        if (typeof payload['userCode'] === 'string') this.byUserCode.set(payload['userCode'], id);
        if (model === 'Session' && typeof payload['uid'] === 'string') this.byUid.set(payload['uid'], id);
      },
      find,
      findByUserCode: async (userCode: string) => find(this.byUserCode.get(userCode)),
      findByUid: async (uid: string) => find(this.byUid.get(uid)),
      consume: async (id: string): Promise<void> => {
        const payload = this.get(key(id));
        if (payload) payload['consumed'] = Math.floor(Date.now() / 1000);
      },
      destroy: async (id: string): Promise<void> => {
        this.entries.delete(key(id));
      },
      revokeByGrantId: async (grantId: string): Promise<void> => {
        for (const k of this.byGrant.get(grantId) ?? []) this.entries.delete(k);
        this.byGrant.delete(grantId);
      },
    };
  }
}

// ---------------------------------------------------------------------------
// Signing keys

interface SigningKey {
  kid: string;
  alg: TestIdpSigningAlg;
  privateKey: CryptoKey;
  /** Private JWK with kid/alg/use, for the provider's `jwks`. */
  privateJwk: JWK;
  /** The public JWK exactly as the provider publishes it in its JWKS. */
  publicJwk: JWK;
}

async function generateSigningKey(alg: TestIdpSigningAlg): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  // Member order as oidc-provider's JWKS endpoint serves it (lib/helpers/initialize_keystore.js;
  // the harness test checks it byte for byte).
  const publicJwk: JWK =
    pub.kty === 'RSA'
      ? { kty: 'RSA', use: 'sig', kid, alg, e: pub.e, n: pub.n }
      : { kty: 'EC', use: 'sig', kid, alg, crv: pub.crv, x: pub.x, y: pub.y };
  return { kid, alg, privateKey, privateJwk, publicJwk };
}

const b64url = (input: string | Uint8Array): string => Buffer.from(input).toString('base64url');

function withoutUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------
// HTML pages (ours replace oidc-provider's defaults, which print NOTICEs).
// Every page carries data-page="…" so the scripted browser knows where it is.

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(kind: string, body: string, extra = ''): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>test idp: ${kind}</title></head>` +
    `<body><main data-page="${kind}"${extra}>${body}</main></body></html>`;
}

/** oidc-provider's internal explanation (error_detail) of an error or of its cause. */
function errorDetail(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 3; e = (e as { cause?: unknown }).cause, depth += 1) {
    const detail = (e as { error_detail?: unknown }).error_detail;
    if (typeof detail === 'string') return detail;
  }
  return undefined;
}

function errorName(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; error?: unknown };
    if (typeof e.error === 'string') return e.error;
    if (typeof e.name === 'string') return e.name;
  }
  return 'error';
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

  async get(url: string): Promise<BrowserPage> {
    return this.request(url, undefined);
  }

  async submit(form: ParsedForm): Promise<BrowserPage> {
    return this.request(form.action, form.fields);
  }

  private cookieHeader(url: URL): string {
    const now = Date.now();
    const live = this.jar.filter((c) => c.expiresAt === undefined || c.expiresAt > now);
    const matching = live.filter(
      (c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
    );
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
        body: body?.toString(),
        redirect: 'manual',
      });
      for (const sc of res.headers.getSetCookie()) this.store(target, sc);
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        target = new URL(location, target);
        body = undefined; // 302/303: follow with GET
        continue;
      }
      return { url: target.href, status: res.status, html: await res.text() };
    }
    throw new Error(`test idp browser: too many redirects from ${url}`);
  }
}

// ---------------------------------------------------------------------------
// The provider

const LOCAL_RESOURCE = /^http:\/\/(127\.0\.0\.1|localhost):/;

interface Active {
  provider: OidcProvider;
  callback: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

export async function startTestIdp(options: TestIdpOptions = {}): Promise<TestIdp> {
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 300;
  const alg = options.alg ?? 'RS256';
  const accounts: Record<string, Readonly<Record<string, unknown>>> = { ...TEST_ACCOUNTS, ...options.accounts };
  const serviceClaims: Record<string, Readonly<Record<string, unknown>>> = {
    [TEST_CLIENTS.agent.clientId]: TEST_CLIENTS.agent.claims,
    [TEST_CLIENTS.other.clientId]: TEST_CLIENTS.other.claims,
  };
  const mod = await loadOidcProvider();
  const store = new ProviderStore();
  const serverErrors: unknown[] = [];
  let jwksCount = 0;
  let current = await generateSigningKey(alg); // signs new tokens, first in the JWKS
  let foreign: SigningKey | undefined;
  let stopped = false;

  const clone = <T>(value: T): T => structuredClone(value);

  function configuration(keys: SigningKey[]): Record<string, unknown> {
    return {
      adapter: (model: string) => store.adapterFor(model),
      jwks: { keys: keys.map((k) => k.privateJwk) },
      clients: [
        {
          client_id: TEST_CLIENTS.cli.clientId,
          client_name: 'Drawbridge CLI',
          token_endpoint_auth_method: 'none',
          grant_types: [DEVICE_CODE_GRANT_TYPE, 'refresh_token'],
          response_types: [],
          redirect_uris: [],
        },
        ...[TEST_CLIENTS.agent, TEST_CLIENTS.other].map((c) => ({
          client_id: c.clientId,
          client_secret: c.clientSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        })),
      ],
      clientDefaults: {
        grant_types: ['authorization_code'],
        id_token_signed_response_alg: alg,
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      clientBasedCORS: () => true,
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        deviceFlow: {
          enabled: true,
          userCodeInputSource: (ctx: KoaishContext, form: string, _out: unknown, err: unknown) => {
            const detail = errorDetail(err);
            const extra = (err ? ` data-error="${escapeHtml(errorName(err))}"` : '') +
              (detail ? ` data-detail="${escapeHtml(detail)}"` : '');
            ctx.type = 'html';
            ctx.body = page('device-input', `<h1>Enter the code shown on your device</h1>${form}<button type="submit" form="op.deviceInputForm">Continue</button>`, extra);
          },
          userCodeConfirmSource: (ctx: KoaishContext, form: string, _client: unknown, _info: unknown, userCode: string) => {
            ctx.type = 'html';
            ctx.body = page('device-confirm', `<h1>Confirm device</h1><p><code>${escapeHtml(userCode)}</code></p>${form}<button type="submit" form="op.deviceConfirmForm">Continue</button><button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
          },
          successSource: (ctx: KoaishContext) => {
            ctx.type = 'html';
            ctx.body = page('device-success', '<h1>Signed in</h1><p>You can close this page.</p>');
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) => oneOf ?? undefined,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
            if (!LOCAL_RESOURCE.test(resourceIndicator)) {
              throw new mod.errors.InvalidTarget(`test idp only serves http://127.0.0.1:* and http://localhost:* resources`);
            }
            return {
              scope: TEST_RESOURCE_SCOPES,
              audience: resourceIndicator,
              accessTokenFormat: 'jwt',
              accessTokenTTL: accessTokenTtl,
              jwt: { sign: { alg } },
            };
          },
        },
      },
      extraTokenClaims: (_ctx: unknown, token: { kind?: string; accountId?: string; clientId?: string }) => {
        if (token.accountId !== undefined) return clone(accounts[token.accountId] ?? {});
        if (token.kind === 'ClientCredentials' && token.clientId !== undefined) return clone(serviceClaims[token.clientId] ?? {});
        return undefined;
      },
      findAccount: (_ctx: unknown, sub: string) => {
        const claims = accounts[sub];
        if (!claims) return undefined;
        return { accountId: sub, claims: async () => ({ ...clone(claims), sub }) };
      },
      // Every refresh_token-capable client gets one, no offline_access needed;
      // and tokens never depend on the (scripted) browser session staying alive.
      issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) =>
        client.grantTypeAllowed('refresh_token'),
      expiresWithSession: () => false,
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      renderError: (ctx: KoaishContext, out: Record<string, string>) => {
        ctx.type = 'html';
        ctx.body = page('error', `<pre>${escapeHtml(JSON.stringify(out))}</pre>`, ` data-error="${escapeHtml(out['error'] ?? 'error')}"`);
      },
      ttl: {
        AccessToken: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
          token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
        ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
          token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
        DeviceCode: () => 600,
        RefreshToken: () => 24 * 60 * 60,
        Grant: () => 24 * 60 * 60,
        Session: () => 24 * 60 * 60,
        Interaction: () => 600,
        IdToken: () => 600,
        BackchannelAuthenticationRequest: () => 600,
        PreAuthorizedCode: () => 600,
      },
    };
  }

  async function handleInteraction(provider: OidcProvider, req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error(`interaction ${uid} does not match the interaction cookie (${details.uid})`);
    const send = (status: number, html: string): void => {
      res.statusCode = status;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(html);
    };
    const prompt = details.prompt.name;

    if (action === undefined && req.method === 'GET') {
      if (prompt === 'login') {
        send(200, page('login', `<h1>Sign in</h1><form method="post" action="/interaction/${uid}/login"><input type="text" name="login" value=""/><button type="submit">Sign in</button></form>`));
      } else if (prompt === 'consent') {
        const client = typeof details.params['client_id'] === 'string' ? details.params['client_id'] : '?';
        send(200, page('consent', `<h1>Allow ${escapeHtml(client)}?</h1><form method="post" action="/interaction/${uid}/confirm"><button type="submit">Allow</button></form><form method="post" action="/interaction/${uid}/abort"><button type="submit">Deny</button></form>`));
      } else {
        send(400, page('error', `unsupported prompt ${escapeHtml(prompt)}`, ` data-error="unsupported_prompt"`));
      }
      return;
    }
    if (req.method !== 'POST') {
      send(405, page('error', 'method not allowed', ' data-error="method_not_allowed"'));
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    if (action === 'login' && prompt === 'login') {
      const login = form.get('login') ?? '';
      if (!Object.hasOwn(accounts, login)) {
        send(200, page('login', `<p>unknown account ${escapeHtml(login)}</p>`, ' data-error="unknown_account"'));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'confirm' && prompt === 'consent') {
      const accountId = details.session?.accountId;
      const clientId = details.params['client_id'];
      if (accountId === undefined || typeof clientId !== 'string') throw new Error('consent without a logged-in account or client');
      const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined)
        ?? new provider.Grant({ accountId, clientId });
      const missing = details.prompt.details;
      if (Array.isArray(missing['missingOIDCScope'])) grant.addOIDCScope(missing['missingOIDCScope'].join(' '));
      if (Array.isArray(missing['missingOIDCClaims'])) grant.addOIDCClaims(missing['missingOIDCClaims'] as string[]);
      const resourceScopes = missing['missingResourceScopes'];
      if (resourceScopes && typeof resourceScopes === 'object') {
        for (const [indicator, scopes] of Object.entries(resourceScopes as Record<string, string[]>)) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
      }
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
      return;
    }
    if (action === 'abort') {
      await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'End-User denied the request' }, { mergeWithLastSubmission: false });
      return;
    }
    send(400, page('error', `cannot ${escapeHtml(action ?? 'GET')} during ${escapeHtml(prompt)}`, ' data-error="bad_interaction_step"'));
  }

  function buildProvider(keys: SigningKey[]): Active {
    const provider = new mod.default(issuer, configuration(keys));
    provider.on('server_error', (_ctx, err) => serverErrors.push(err));
    return { provider, callback: provider.callback() };
  }

  // The issuer embeds the port: listen first (port 0), then build the provider.
  // rotate() swaps the provider behind this same listener, so the issuer and
  // port never change and clients' keep-alive connections stay usable.
  let active: Active | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const target = active;
    if (!target) {
      res.statusCode = 503;
      res.end();
      return;
    }
    const url = new URL(req.url ?? '/', issuer);
    if (req.method === 'GET' && url.pathname === '/jwks') jwksCount += 1;
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(url.pathname);
    if (m?.[1]) {
      handleInteraction(target.provider, req, res, m[1], m[2]).catch((err: unknown) => {
        serverErrors.push(err);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.setHeader('content-type', 'text/html; charset=utf-8');
        }
        res.end(page('error', escapeHtml(String(err)), ` data-error="${escapeHtml(errorName(err))}"`));
      });
      return;
    }
    void target.callback(req, res);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  async function closeServer(): Promise<void> {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
    });
  }

  try {
    active = buildProvider([current]);
  } catch (err) {
    await closeServer();
    throw err;
  }

  const lastServerError = (): string => {
    const err = serverErrors.at(-1);
    return err === undefined ? '' : ` (last provider error: ${err instanceof Error ? err.stack ?? err.message : String(err)})`;
  };

  async function tokenRequest(body: URLSearchParams, auth?: string): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (auth) headers['authorization'] = auth;
    const res = await fetch(`${issuer}/token`, { method: 'POST', headers, body: body.toString() });
    const json = (await res.json()) as Record<string, unknown>;
    return { status: res.status, json };
  }

  function storedDeviceCode(userCode: string): Payload | undefined {
    const normalized = userCode.toUpperCase().replace(/\W/g, '');
    const id = store.byUserCode.get(normalized);
    return id === undefined ? undefined : store.get(`DeviceCode:${id}`);
  }

  function deviceCodeProblem(userCode: string): string {
    const code = storedDeviceCode(userCode);
    if (!code) return ' (no such device code)';
    if (typeof code['error'] === 'string') return ` (device code error: ${code['error']})`;
    return '';
  }

  function assertApproved(userCode: string, account: string): void {
    const code = storedDeviceCode(userCode);
    if (code?.['accountId'] !== account) {
      throw new Error(`test idp: device code ${userCode} is not approved for ${account}${deviceCodeProblem(userCode)}`);
    }
  }

  async function playHuman(userCode: string, account: string | undefined): Promise<void> {
    const browser = new Browser();
    let shown = await browser.get(`${issuer}/device`);
    for (let step = 0; step < 12; step += 1) {
      const { kind, error, detail } = pageKind(shown);
      if (error !== undefined) {
        if (account === undefined && kind === 'device-input' && error === 'AbortedError') return; // denied as asked
        throw new Error(`test idp: device approval for ${userCode} failed on ${kind} page: ${error}${detail ? ` (${detail})` : ''}${deviceCodeProblem(userCode)}${lastServerError()}`);
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
          throw new Error(`test idp: unexpected page (${shown.status} ${shown.url}): ${shown.html.slice(0, 500)}${lastServerError()}`);
      }
    }
    throw new Error(`test idp: device approval for ${userCode} did not finish`);
  }

  async function currentProvider(): Promise<OidcProvider> {
    if (stopped || !active) throw new Error('test idp is stopped');
    return active.provider;
  }

  const idp: TestIdp = {
    issuer,
    port,
    jwksUri: `${issuer}/jwks`,

    async clientCredentialsToken(clientId, clientSecret, resource, scope) {
      await currentProvider();
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
      await currentProvider();
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
      await currentProvider();
      await playHuman(userCode, account);
      assertApproved(userCode, account);
    },

    async denyDevice(userCode) {
      await currentProvider();
      await playHuman(userCode, undefined);
      if (storedDeviceCode(userCode)?.['error'] !== 'access_denied') {
        throw new Error(`test idp: device code ${userCode} was not denied${deviceCodeProblem(userCode)}`);
      }
    },

    async mint(claims, mintOptions = {}) {
      const sign = mintOptions.sign ?? 'current';
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
      await currentProvider();
      const next = await generateSigningKey(alg);
      active = buildProvider(rotateOptions.keepOld ? [next, current] : [next]);
      current = next;
    },

    currentKid() {
      return current.kid;
    },

    jwksFetches() {
      return jwksCount;
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      active = undefined;
      await closeServer();
    },
  };
  return idp;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
