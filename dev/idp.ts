// A DEVELOPMENT OpenID provider for `drawbridge demo --http` and for the
// tests: oidc-provider (9.x, a dev dependency) behind a node http server that
// listens on 127.0.0.1 ONLY, issuer `http://127.0.0.1:PORT`. Any account name
// from the account table signs in WITHOUT A PASSWORD, the signing keys live in
// memory, client secrets are published below, and all state is lost on stop().
// It exists so a newcomer can try Drawbridge's OIDC mode in a browser without
// setting up a real identity provider. NEVER use it for production or expose
// it beyond loopback. Test-only extras (forged tokens, scripted browsers)
// live in test/support/oidc.ts, not here.
//
// What it is configured for:
//   - JWT access tokens (typ `at+jwt`) for any resource indicator starting with
//     `http://127.0.0.1:` or `http://localhost:` (features.resourceIndicators):
//     aud = the requested resource, scopes `mcp approvals`, signed with a key
//     generated at start (RS256 by default). Requests without a `resource` get
//     opaque tokens, as oidc-provider does, unless `defaultAudience` is given:
//     then that resource is used for them.
//   - Accounts (DEV_ACCOUNTS) whose claims are put INTO the access token:
//     alice groups ['developers']; bob ['sre', 'developers']; carol no groups;
//     dave groups 'sre' (a string); erin realm_access.roles ['dba'] only.
//   - Clients (DEV_CLIENTS): `drawbridge-cli` (public, device_code +
//     refresh_token, always gets a refresh token), `agent-svc` and `other-svc`
//     (client_secret_basic, client_credentials; groups ['agents'] / ['others']
//     in their tokens, sub = the client id), and `mcp-client` (public, native,
//     authorization_code + refresh_token, redirect URIs DEV_LOOPBACK_REDIRECT_URIS:
//     http://127.0.0.1, http://[::1] and http://localhost with the paths /,
//     /callback, /oauth/callback and /oauth/callback/debug, ANY port (RFC 8252
//     §7.3; oidc-provider ignores the port of a native client's loopback
//     redirect URI)).
//   - Standard MCP clients (MCP authorization spec: RFC 9728 metadata at the
//     gateway -> this issuer's RFC 8414 / OpenID discovery -> registration ->
//     authorization code + PKCE + `resource`):
//       * Dynamic Client Registration (RFC 7591, features.registration) at
//         `/reg`, open (no initial access token, no registration access token,
//         so no later read/update), any origin (CORS). It registers PUBLIC
//         clients only (token_endpoint_auth_method `none`, required explicitly)
//         with ONLY loopback redirect URIs (http://127.0.0.1:PORT/…,
//         http://[::1]:PORT/…, http://localhost:PORT/…); anything else is
//         refused with invalid_redirect_uri / invalid_client_metadata (see
//         registrationPolicy). Grant types authorization_code and
//         refresh_token only (both when omitted), response type code,
//         application_type native when omitted (loopback redirect, any port).
//         Registered clients live in the in-memory store like everything else.
//       * PKCE with S256 is required for every authorization code request
//         (pkce.required; oidc-provider supports S256 only), advertised as
//         code_challenge_methods_supported. oidc-provider serves the same
//         metadata at /.well-known/oauth-authorization-server and
//         /.well-known/openid-configuration (registration_endpoint included).
//       * The access token is the same JWT as for the device flow (aud = the
//         `resource`, the account's claims, scope); these clients get refresh
//         tokens too (issueRefreshToken below).
//     Client ID Metadata Documents (features.clientIdMetadataDocument) stay
//     OFF: experimental in oidc-provider 9, and they make the provider fetch
//     https URLs named by whoever asks.
//   - Our own pages: the device flow's `/device` (enter the code, confirm),
//     then, for the device flow and the authorization code flow alike,
//     `/interaction/:uid` (sign in by typing or picking an account name, then
//     consent; both pages name the client and, for a code flow, the redirect
//     URI the browser returns to). Every page is one <main data-page="KIND">
//     (plus data-error / data-detail when something went wrong) whose FIRST
//     <form> is the step's form: test/support/oidc.ts drives the pages by that
//     contract.
//   - useSigningKeys() replaces the provider instance (a fresh oidc-provider
//     with the given keys) behind the same listener, so the issuer and port
//     stay the same and clients' keep-alive connections stay usable. Provider
//     state (grants, refresh tokens, sessions) lives in one in-memory store
//     that all instances share.
//   - oidc-provider refuses a device (or authorization code) flow that ends
//     with no scope granted ("authorization request resolved without
//     requesting interactions but no scope was granted" -> access_denied), so
//     a client must ask for at least one of `mcp approvals`.
//
// oidc-provider prints "oidc-provider WARNING: Unsupported runtime. Use
// Node.js v22.x LTS ..." once, when the module is first imported on Node 20
// (it checks process.release.lts; there is no option to turn it off). All
// other NOTICE/WARNING output is avoided by configuring every default that
// would complain (ttl.*, adapter, jwks, page sources, findAccount, ...).
//
// oidc-provider ships no type declarations, so it is imported dynamically
// (see loadOidcProvider) and described by the minimal interfaces below.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

// ---------------------------------------------------------------------------
// Public API

export type DevIdpSigningAlg = 'RS256' | 'ES256';

/** Account id -> claims put into its access tokens (besides sub = the account id). */
export type DevIdpAccounts = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

export interface DevIdpOptions {
  /** The only address it listens on. */
  readonly host?: '127.0.0.1';
  /** TCP port on 127.0.0.1; 0 (the default) = a free port picked by the OS. */
  readonly port?: number;
  /** Lifetime of issued access tokens (expires_in, exp - iat). Default 300. */
  readonly accessTokenTtlSeconds?: number;
  /** Access token (and ID token) signing algorithm. Default RS256. */
  readonly alg?: DevIdpSigningAlg;
  /** Extra or replacement accounts, merged over DEV_ACCOUNTS. */
  readonly accounts?: DevIdpAccounts;
  /**
   * Resource (= `aud`) for requests that name none, so they get JWT access tokens too.
   * Must be a local resource (`http://127.0.0.1:…` or `http://localhost:…`). Default: none.
   */
  readonly defaultAudience?: string;
}

export interface DevIdpSigningKey {
  readonly kid: string;
  readonly alg: DevIdpSigningAlg;
  readonly privateKey: CryptoKey;
  /** Private JWK with kid/alg/use, as handed to the provider. */
  readonly privateJwk: JWK;
  /** The public JWK exactly as the provider publishes it in its JWKS (same members, same order). */
  readonly publicJwk: JWK;
}

export interface DevIdp {
  /** `http://127.0.0.1:${port}`, no trailing slash. */
  readonly issuer: string;
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `${issuer}/jwks` */
  readonly jwksUri: string;
  /** `${issuer}/device`: where a person enters the code of a device flow. */
  readonly deviceUri: string;
  /** The accounts that can sign in (DEV_ACCOUNTS merged with options.accounts). */
  readonly accounts: DevIdpAccounts;
  readonly alg: DevIdpSigningAlg;
  /** The key new tokens are signed with (the first published one). */
  signingKey(): DevIdpSigningKey;
  /**
   * Replaces the provider instance behind the same listener (same issuer, port and stored
   * grants, refresh tokens and sessions) with one whose JWKS is `keys`; keys[0] signs.
   */
  useSigningKeys(keys: readonly DevIdpSigningKey[]): void;
  /** GET requests the JWKS endpoint has received since start (across key changes). */
  jwksFetches(): number;
  /** The stored device-code record for a user code (any case, dashes optional), if any. */
  deviceCode(userCode: string): Readonly<Record<string, unknown>> | undefined;
  /** The last error oidc-provider or the interaction pages reported as a server error. */
  lastServerError(): unknown;
  /** Closes the listener and every connection; idempotent. */
  stop(): Promise<void>;
}

/** Accounts and the claims their access tokens carry (besides sub = the account id). */
export const DEV_ACCOUNTS: DevIdpAccounts = {
  alice: { groups: ['developers'] },
  bob: { groups: ['sre', 'developers'] },
  carol: {},
  dave: { groups: 'sre' },
  erin: { realm_access: { roles: ['dba'] } },
};

/** The registered clients. The secrets are public on purpose: a development provider. */
export const DEV_CLIENTS = {
  cli: { clientId: 'drawbridge-cli' },
  agent: { clientId: 'agent-svc', clientSecret: 'agent-svc-secret', claims: { groups: ['agents'] } },
  other: { clientId: 'other-svc', clientSecret: 'other-svc-secret', claims: { groups: ['others'] } },
  /** A pre-registered public client for OAuth-capable MCP clients that do not register themselves. */
  mcp: { clientId: 'mcp-client' },
} as const;

/** The loopback hosts a redirect URI may name (RFC 8252 §7.3, plus `localhost`, which MCP clients use). */
export const LOOPBACK_REDIRECT_HOSTS: readonly string[] = ['127.0.0.1', '[::1]', 'localhost'];

/**
 * The redirect URIs of DEV_CLIENTS.mcp: the callback paths MCP clients commonly use, on every
 * loopback host. The port written here does not matter: the client is `native`, and
 * oidc-provider matches a native client's loopback redirect URI on any port (RFC 8252 §7.3).
 */
export const DEV_LOOPBACK_REDIRECT_URIS: readonly string[] = LOOPBACK_REDIRECT_HOSTS.flatMap((host) =>
  ['/', '/callback', '/oauth/callback', '/oauth/callback/debug'].map((path) => `http://${host}${path}`),
);

/** The scopes every local resource server offers. */
export const DEV_RESOURCE_SCOPES = 'mcp approvals';

export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

export const OIDC_PROVIDER_MISSING_MESSAGE = 'the HTTP demo needs the dev dependency oidc-provider: run npm ci in the Drawbridge repository';

/** oidc-provider (a dev dependency) is not installed. */
export class OidcProviderMissingError extends Error {
  constructor(options?: { cause?: unknown }) {
    super(OIDC_PROVIDER_MISSING_MESSAGE, options);
    this.name = 'OidcProviderMissingError';
  }
}

/** A new signing key pair; kid = the JWK thumbprint of the public key. */
export async function generateSigningKey(alg: DevIdpSigningAlg): Promise<DevIdpSigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  // Member order as oidc-provider's JWKS endpoint serves it (lib/helpers/initialize_keystore.js;
  // the harness test checks it byte for byte).
  const publicJwk: JWK =
    pub.kty === 'RSA' ? { kty: 'RSA', use: 'sig', kid, alg, e: pub.e, n: pub.n } : { kty: 'EC', use: 'sig', kid, alg, crv: pub.crv, x: pub.x, y: pub.y };
  return { kid, alg, privateKey, privateJwk, publicJwk };
}

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

/** The part of oidc-provider's request context the registration policy reads. */
interface RegistrationContext {
  readonly oidc?: { readonly body?: Readonly<Record<string, unknown>> };
}

interface OidcClient {
  readonly clientId: string;
  readonly clientName?: string;
}

interface OidcProvider {
  readonly issuer: string;
  readonly Grant: OidcGrantClass;
  readonly Client: { find(id: string): Promise<OidcClient | undefined> };
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
  errors: {
    InvalidTarget: new (description?: string) => Error;
    /** error `invalid_redirect_uri` when the description starts with "redirect_uris", else `invalid_client_metadata`. */
    InvalidClientMetadata: new (description: string) => Error;
  };
}

// A variable specifier keeps tsc from looking for declarations that do not exist.
const OIDC_PROVIDER_MODULE: string = 'oidc-provider';
let oidcProviderModule: Promise<OidcProviderModule> | undefined;
function loadOidcProvider(): Promise<OidcProviderModule> {
  oidcProviderModule ??= (import(OIDC_PROVIDER_MODULE) as Promise<OidcProviderModule>).catch((err: unknown) => {
    oidcProviderModule = undefined; // let a later call try again (e.g. after npm ci)
    if ((err as { code?: unknown } | undefined)?.code === 'ERR_MODULE_NOT_FOUND') {
      throw new OidcProviderMissingError({ cause: err });
    }
    throw err;
  });
  return oidcProviderModule;
}

// ---------------------------------------------------------------------------
// Storage: a minimal oidc-provider adapter over one Map, shared across instances

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
    const find = async (id: string | undefined): Promise<Payload | undefined> => (id === undefined ? undefined : this.get(key(id)));
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
// HTML pages (ours replace oidc-provider's defaults, which print NOTICEs).
// Contract with the scripted browser in test/support/oidc.ts: one
// <main data-page="KIND" [data-error=…] [data-detail=…]> per page, and the
// step's form is the FIRST <form> on the page (its <input>s are what it submits).

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = [
  'body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330;margin:0;padding:24px}',
  'main{max-width:560px;margin:0 auto;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);padding:24px 32px}',
  '.banner{max-width:560px;margin:0 auto 16px;background:#fff4ce;border:1px solid #e0c060;border-radius:8px;padding:10px 16px;font-size:14px}',
  'h1{font-size:1.5em;margin-top:0}',
  'input[type=text]{font-size:18px;padding:8px;width:100%;box-sizing:border-box;margin:8px 0 12px}',
  'input[name=user_code]{text-transform:uppercase;letter-spacing:2px;text-align:center}',
  'input[name=user_code]::placeholder{text-transform:none;letter-spacing:normal}',
  'button{font-size:15px;padding:8px 18px;border-radius:6px;border:1px solid #2557c7;background:#2f6fed;color:#fff;cursor:pointer;margin:4px 8px 4px 0}',
  'button.secondary{background:#fff;color:#2557c7}',
  'button.account{background:#fff;color:#1d2330;border-color:#aab}',
  'table{border-collapse:collapse;width:100%;margin:8px 0}td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e6eb;vertical-align:middle}',
  '.error{color:#b00020;font-weight:600}.muted{color:#5c6370;font-size:14px}code.user-code{font-size:1.8em;letter-spacing:3px}',
].join('');

interface PageState {
  error?: string | undefined;
  detail?: string | undefined;
}

function page(kind: string, title: string, body: string, state: PageState = {}): string {
  const attrs =
    (state.error !== undefined ? ` data-error="${escapeHtml(state.error)}"` : '') +
    (state.detail !== undefined ? ` data-detail="${escapeHtml(state.detail)}"` : '');
  return (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)} · Drawbridge development sign-in</title><style>${STYLE}</style></head><body>` +
    '<div class="banner" role="note"><strong>Drawbridge development identity provider.</strong> ' +
    'Local testing only: any account listed here signs in without a password. Never use it for production.</div>' +
    `<main data-page="${escapeHtml(kind)}"${attrs}>${body}</main></body></html>`
  );
}

/** "groups: sre, developers", "realm roles: dba", "no groups" … for one account's claims. */
function describeClaims(claims: Readonly<Record<string, unknown>>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(claims)) {
    if (name === 'groups') {
      parts.push(`groups: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
    } else if (name === 'realm_access' && value && typeof value === 'object' && Array.isArray((value as { roles?: unknown }).roles)) {
      parts.push(`realm roles: ${(value as { roles: unknown[] }).roles.join(', ')}`);
    } else {
      parts.push(`${name}: ${JSON.stringify(value)}`);
    }
  }
  return parts.length > 0 ? parts.join('; ') : 'no groups';
}

/** The account table; with `loginAction`, a "Sign in as …" button per account (its own form). */
function accountTable(accounts: DevIdpAccounts, loginAction?: string): string {
  const rows = Object.entries(accounts)
    .map(([name, claims]) => {
      const button =
        loginAction === undefined
          ? ''
          : `<td><button type="submit" class="account" name="login" value="${escapeHtml(name)}">Sign in as ${escapeHtml(name)}</button></td>`;
      return `<tr><td><strong>${escapeHtml(name)}</strong></td><td>${escapeHtml(describeClaims(claims))}</td>${button}</tr>`;
    })
    .join('');
  const table = `<table class="accounts"><thead><tr><th>Account</th><th>Claims in its tokens</th>${loginAction === undefined ? '' : '<th></th>'}</tr></thead><tbody>${rows}</tbody></table>`;
  return loginAction === undefined ? table : `<form method="post" action="${escapeHtml(loginAction)}">${table}</form>`;
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

/** What to tell a person about an error on the enter-the-code page. */
function userCodeMessage(err: unknown): string {
  if (!err) return '';
  const name = errorName(err);
  const detail = errorDetail(err);
  const extra = detail ? ` <span class="muted">(${escapeHtml(detail)})</span>` : '';
  if (name === 'AbortedError') return `<p class="error">The sign-in was cancelled. The device gets "access denied".</p>${extra}`;
  if (name === 'ExpiredError') return `<p class="error">That code has expired. Start the sign-in on your device again.</p>${extra}`;
  if (name === 'AlreadyUsedError') return `<p class="error">That code was already used.</p>${extra}`;
  if (name === 'NotFoundError' || name === 'NoCodeError' || (err as { userCode?: unknown }).userCode !== undefined) {
    return `<p class="error">That code is unknown or has expired. Check the code on your device and try again.</p>${extra}`;
  }
  return `<p class="error">The sign-in failed: ${escapeHtml(name)}.</p>${extra}`;
}

/**
 * Who asks for what: the client (its registered name when it has one: dynamically registered
 * clients have random ids), the resource and scopes, and for an authorization code flow the
 * redirect URI the browser returns to with the code, so a person sees where the grant goes.
 */
function describeRequest(params: Record<string, unknown>, client: OidcClient | undefined): string {
  const clientId = typeof params['client_id'] === 'string' ? params['client_id'] : '?';
  const name =
    client?.clientName !== undefined && client.clientName !== '' && client.clientName !== clientId
      ? `<strong>${escapeHtml(client.clientName)}</strong> <span class="muted">(client id <code>${escapeHtml(clientId)}</code>)</span>`
      : `<strong>${escapeHtml(clientId)}</strong>`;
  const resource = typeof params['resource'] === 'string' ? params['resource'] : undefined;
  const scope = typeof params['scope'] === 'string' && params['scope'] !== '' ? params['scope'] : undefined;
  const redirect = typeof params['redirect_uri'] === 'string' ? params['redirect_uri'] : undefined;
  return (
    `<p>Client ${name} asks for access` +
    (resource ? ` to <code>${escapeHtml(resource)}</code>` : '') +
    (scope ? ` with scopes <code>${escapeHtml(scope)}</code>` : '') +
    '.' +
    (redirect ? ` Afterwards your browser returns to <code>${escapeHtml(redirect)}</code>.` : '') +
    '</p>'
  );
}

// ---------------------------------------------------------------------------
// Dynamic client registration policy (RFC 7591 at /reg)

/** Why `uri` is not an http loopback redirect URI (RFC 8252 §7.3), or undefined when it is one. */
function loopbackRedirectProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return 'is not a string';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'is not a URL';
  }
  if (url.protocol !== 'http:' || !LOOPBACK_REDIRECT_HOSTS.includes(url.hostname)) {
    return 'is not a loopback redirect URI (http://127.0.0.1:PORT/…, http://[::1]:PORT/… or http://localhost:PORT/…)';
  }
  if (url.username !== '' || url.password !== '') return 'carries credentials';
  if (uri.includes('#')) return 'has a fragment';
  return undefined;
}

const REGISTRABLE_GRANT_TYPES: readonly string[] = ['authorization_code', 'refresh_token'];

/**
 * SECURITY: what open registration may create on this provider. Anyone who can reach the
 * loopback listener can register, so a registration gets nothing a local browser sign-in does
 * not already give: a PUBLIC client (no secret to leak, PKCE required for every code) whose
 * codes can only go back to this machine (loopback redirect URIs). A request outside that is
 * refused with the reason, never rewritten into something else; only what a client leaves out
 * gets a default here, and its `scope` is dropped (see the end). `sent` is the registration
 * request as posted; `metadata` is oidc-provider's working copy (its defaults applied), which
 * this may change (oidc-provider's documented way for extraClientMetadata.validator).
 */
function registrationPolicy(sent: Readonly<Record<string, unknown>>, metadata: Record<string, unknown>, invalid: new (description: string) => Error): void {
  // Omitted means client_secret_basic (RFC 7591 §2), i.e. a confidential client: refused too.
  if (metadata['token_endpoint_auth_method'] !== 'none') {
    const given = sent['token_endpoint_auth_method'];
    throw new invalid(
      'this development provider registers public clients only: token_endpoint_auth_method must be "none"' +
        (given === undefined ? ' (it was omitted, which means client_secret_basic)' : ` (not ${JSON.stringify(given)})`),
    );
  }
  const redirects = metadata['redirect_uris'];
  if (!Array.isArray(redirects) || redirects.length === 0) {
    throw new invalid('redirect_uris must list at least one loopback redirect URI (http://127.0.0.1:PORT/…, http://localhost:PORT/…)');
  }
  for (const uri of redirects) {
    const problem = loopbackRedirectProblem(uri);
    // "redirect_uris…" makes oidc-provider answer invalid_redirect_uri (RFC 7591 §3.2.2).
    if (problem !== undefined)
      throw new invalid(`redirect_uris: ${JSON.stringify(uri)} ${problem}; this development provider registers loopback redirect URIs only`);
  }
  const logoutRedirects = metadata['post_logout_redirect_uris'];
  for (const uri of Array.isArray(logoutRedirects) ? logoutRedirects : []) {
    const problem = loopbackRedirectProblem(uri);
    if (problem !== undefined) throw new invalid(`post_logout_redirect_uris: ${JSON.stringify(uri)} ${problem}`);
  }
  // URIs oidc-provider would fetch: this provider makes no requests on a registrant's behalf.
  for (const fetched of ['jwks_uri', 'sector_identifier_uri']) {
    if (sent[fetched] !== undefined) throw new invalid(`${fetched} is not supported by this development provider`);
  }
  if (sent['grant_types'] === undefined) {
    metadata['grant_types'] = [...REGISTRABLE_GRANT_TYPES];
  } else if (!Array.isArray(sent['grant_types']) || !sent['grant_types'].every((g) => typeof g === 'string' && REGISTRABLE_GRANT_TYPES.includes(g))) {
    throw new invalid(`grant_types may only contain ${REGISTRABLE_GRANT_TYPES.join(' and ')} on this development provider`);
  }
  const responseTypes = metadata['response_types'];
  if (!Array.isArray(responseTypes) || !responseTypes.every((t) => t === 'code')) {
    throw new invalid('response_types may only contain "code" on this development provider');
  }
  // A native client's loopback redirect URI matches on any port (RFC 8252 §7.3): MCP clients
  // that pick a free port per sign-in keep working. A client that says "web" gets exact matching.
  if (sent['application_type'] === undefined) metadata['application_type'] = 'native';
  // oidc-provider checks a client's `scope` against its OpenID scopes only; the resource
  // scopes (mcp approvals) are offered per resource by getResourceServerInfo. MCP clients send
  // the resource's scopes here (SEP-835), so the registered scope is dropped, not refused.
  delete metadata['scope'];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

// ---------------------------------------------------------------------------
// The provider

const LOCAL_RESOURCE = /^http:\/\/(127\.0\.0\.1|localhost):/;
const LOOPBACK = '127.0.0.1';
/** oidc-provider's default registration route (routes.registration). */
const REGISTRATION_PATH = '/reg';

interface Active {
  provider: OidcProvider;
  callback: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

/** Starts the development provider on 127.0.0.1 (see the header: never for production). */
export async function startDevIdp(options: DevIdpOptions = {}): Promise<DevIdp> {
  const host = options.host ?? LOOPBACK;
  if (host !== LOOPBACK) throw new TypeError(`the development OpenID provider listens on ${LOOPBACK} only, not ${String(host)}`);
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new TypeError(`port must be a TCP port number or 0, not ${String(requestedPort)}`);
  }
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 300;
  if (!Number.isInteger(accessTokenTtl) || accessTokenTtl <= 0) throw new TypeError('accessTokenTtlSeconds must be a positive integer');
  const alg = options.alg ?? 'RS256';
  const defaultAudience = options.defaultAudience;
  if (defaultAudience !== undefined && !LOCAL_RESOURCE.test(defaultAudience)) {
    throw new TypeError(`defaultAudience must be an http://127.0.0.1:… or http://localhost:… resource, not ${defaultAudience}`);
  }
  const accounts: DevIdpAccounts = { ...DEV_ACCOUNTS, ...options.accounts };
  const serviceClaims: Record<string, Readonly<Record<string, unknown>>> = {
    [DEV_CLIENTS.agent.clientId]: DEV_CLIENTS.agent.claims,
    [DEV_CLIENTS.other.clientId]: DEV_CLIENTS.other.claims,
  };
  const mod = await loadOidcProvider();
  const store = new ProviderStore();
  const serverErrors: unknown[] = [];
  let jwksCount = 0;
  let keys: readonly DevIdpSigningKey[] = [await generateSigningKey(alg)];
  let stopped = false;

  const clone = <T>(value: T): T => structuredClone(value);

  function configuration(signingKeys: readonly DevIdpSigningKey[]): Record<string, unknown> {
    return {
      adapter: (model: string) => store.adapterFor(model),
      jwks: { keys: signingKeys.map((k) => k.privateJwk) },
      clients: [
        {
          client_id: DEV_CLIENTS.cli.clientId,
          client_name: 'Drawbridge CLI',
          token_endpoint_auth_method: 'none',
          grant_types: [DEVICE_CODE_GRANT_TYPE, 'refresh_token'],
          response_types: [],
          redirect_uris: [],
        },
        ...[DEV_CLIENTS.agent, DEV_CLIENTS.other].map((c) => ({
          client_id: c.clientId,
          client_secret: c.clientSecret,
          token_endpoint_auth_method: 'client_secret_basic',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        })),
        {
          // For MCP clients configured with a client id instead of registering: public (PKCE),
          // and its codes only ever go back to this machine (loopback, any port: native).
          client_id: DEV_CLIENTS.mcp.clientId,
          client_name: 'MCP client (pre-registered)',
          application_type: 'native',
          token_endpoint_auth_method: 'none',
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          redirect_uris: [...DEV_LOOPBACK_REDIRECT_URIS],
        },
      ],
      // Open dynamic client registration (RFC 7591), for MCP clients: no initial access token
      // (anyone on this machine may register, as anyone here may sign in), and no registration
      // access token, so a registration cannot be read back or changed. What may be registered
      // is decided by registrationPolicy, run from extraClientMetadata.validator below.
      extraClientMetadata: {
        // Listing a standard property makes oidc-provider run the validator for EVERY client
        // it builds; only a registration request has a ctx (static clients and stored
        // registrations are built without one, and were checked when configured/registered).
        properties: ['redirect_uris'],
        validator: (ctx: RegistrationContext | undefined, key: string, _value: unknown, metadata: Record<string, unknown>) => {
          if (ctx === undefined || key !== 'redirect_uris') return;
          registrationPolicy(ctx.oidc?.body ?? {}, metadata, mod.errors.InvalidClientMetadata);
        },
      },
      // SECURITY: every authorization code request needs PKCE (oidc-provider accepts S256
      // only); the clients here that use codes are public, so PKCE is what binds the code to
      // the client that asked for it.
      pkce: { required: () => true },
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
        registration: { enabled: true, initialAccessToken: false, issueRegistrationAccessToken: false },
        deviceFlow: {
          enabled: true,
          userCodeInputSource: (ctx: KoaishContext, form: string, _out: unknown, err: unknown) => {
            ctx.type = 'html';
            ctx.body = page(
              'device-input',
              'Enter the code',
              '<h1>Enter the code shown on your device</h1>' +
                userCodeMessage(err) +
                form +
                '<button type="submit" form="op.deviceInputForm">Continue</button>' +
                '<p class="muted">Next you sign in as one of these accounts (no password):</p>' +
                accountTable(accounts),
              err ? { error: errorName(err), detail: errorDetail(err) } : {},
            );
          },
          userCodeConfirmSource: (ctx: KoaishContext, form: string, _client: unknown, _info: unknown, userCode: string) => {
            ctx.type = 'html';
            ctx.body = page(
              'device-confirm',
              'Confirm the device',
              '<h1>Is this the code on your device?</h1>' +
                `<p><code class="user-code">${escapeHtml(userCode)}</code></p>` +
                '<p class="muted">Continue only if your device shows exactly this code and you started this sign-in.</p>' +
                form +
                '<button type="submit" form="op.deviceConfirmForm">Yes, continue</button>' +
                '<button type="submit" class="secondary" form="op.deviceConfirmForm" name="abort" value="yes">No, cancel</button>',
            );
          },
          successSource: (ctx: KoaishContext) => {
            ctx.type = 'html';
            ctx.body = page('device-success', 'Signed in', '<h1>Signed in</h1><p>Your device is signed in. You can close this page.</p>');
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) => oneOf ?? defaultAudience,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
            if (!LOCAL_RESOURCE.test(resourceIndicator)) {
              throw new mod.errors.InvalidTarget('this development provider only serves http://127.0.0.1:* and http://localhost:* resources');
            }
            return {
              scope: DEV_RESOURCE_SCOPES,
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
      // and tokens never depend on the browser session staying alive.
      issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
      expiresWithSession: () => false,
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
      renderError: (ctx: KoaishContext, out: Record<string, string>) => {
        ctx.type = 'html';
        const description = out['error_description'];
        ctx.body = page(
          'error',
          'Sign-in error',
          `<h1>Something went wrong</h1><p class="error">${escapeHtml(out['error'] ?? 'error')}</p>` +
            (description ? `<p>${escapeHtml(description)}</p>` : '') +
            `<pre class="muted">${escapeHtml(JSON.stringify(out))}</pre>` +
            '<p><a href="/device">Enter a device code</a></p>',
          { error: out['error'] ?? 'error' },
        );
      },
      ttl: {
        AccessToken: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
        ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
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

  function loginPage(uid: string, details: OidcInteraction, client: OidcClient | undefined, state: { error?: string; tried?: string } = {}): string {
    const action = `/interaction/${uid}/login`;
    const message =
      state.error === undefined ? '' : `<p class="error">There is no account named “${escapeHtml(state.tried ?? '')}”. Pick one of the accounts below.</p>`;
    return page(
      'login',
      'Sign in',
      '<h1>Sign in</h1>' +
        describeRequest(details.params, client) +
        message +
        `<form method="post" action="${escapeHtml(action)}">` +
        '<label for="login">Account name (no password needed)</label>' +
        `<input type="text" id="login" name="login" value="" autocomplete="off" autofocus/>` +
        '<button type="submit">Sign in</button></form>' +
        '<p class="muted">Or pick an account. Its claims are copied into the access token:</p>' +
        accountTable(accounts, action),
      state.error === undefined ? {} : { error: state.error },
    );
  }

  function consentPage(uid: string, details: OidcInteraction, client: OidcClient | undefined): string {
    const account = details.session?.accountId ?? '?';
    const claims = accounts[account];
    return page(
      'consent',
      'Allow access',
      `<h1>Allow access?</h1><p>Signed in as <strong>${escapeHtml(account)}</strong>` +
        (claims ? ` <span class="muted">(${escapeHtml(describeClaims(claims))})</span>` : '') +
        '.</p>' +
        describeRequest(details.params, client) +
        `<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>` +
        `<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit" class="secondary">Deny</button></form>`,
    );
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
    const requestedBy = details.params['client_id'];
    const client = typeof requestedBy === 'string' ? await provider.Client.find(requestedBy) : undefined;

    if (action === undefined && req.method === 'GET') {
      if (prompt === 'login') {
        send(200, loginPage(uid, details, client));
      } else if (prompt === 'consent') {
        send(200, consentPage(uid, details, client));
      } else {
        send(400, page('error', 'Sign-in error', `<p class="error">unsupported prompt ${escapeHtml(prompt)}</p>`, { error: 'unsupported_prompt' }));
      }
      return;
    }
    if (req.method !== 'POST') {
      send(405, page('error', 'Sign-in error', '<p class="error">method not allowed</p>', { error: 'method_not_allowed' }));
      return;
    }
    const form = new URLSearchParams(await readBody(req));
    if (action === 'login' && prompt === 'login') {
      const login = (form.getAll('login').find((value) => value.trim() !== '') ?? '').trim();
      if (!Object.hasOwn(accounts, login)) {
        send(200, loginPage(uid, details, client, { error: 'unknown_account', tried: login }));
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    if (action === 'confirm' && prompt === 'consent') {
      const accountId = details.session?.accountId;
      const clientId = details.params['client_id'];
      if (accountId === undefined || typeof clientId !== 'string') throw new Error('consent without a logged-in account or client');
      const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
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
      await provider.interactionFinished(
        req,
        res,
        { error: 'access_denied', error_description: 'End-User denied the request' },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    send(
      400,
      page('error', 'Sign-in error', `<p class="error">cannot ${escapeHtml(action ?? 'GET')} during ${escapeHtml(prompt)}</p>`, {
        error: 'bad_interaction_step',
      }),
    );
  }

  function homePage(): string {
    return page(
      'home',
      'Home',
      '<h1>Drawbridge development sign-in</h1>' +
        `<p>Issuer <code>${escapeHtml(issuer)}</code>. Start a sign-in on your device (for example <code>drawbridge</code> with this issuer), ` +
        'then <a href="/device">enter the code it shows</a>.</p>' +
        "<p>An MCP client that supports OAuth finds this provider by itself from the gateway's 401: it registers " +
        `(dynamic client registration at <code>${escapeHtml(issuer)}/reg</code>, public clients with loopback redirect URIs only) ` +
        `or uses the client id <code>${escapeHtml(DEV_CLIENTS.mcp.clientId)}</code>, then sends your browser here to sign in.</p>` +
        '<p class="muted">Accounts (no password):</p>' +
        accountTable(accounts),
    );
  }

  function buildProvider(signingKeys: readonly DevIdpSigningKey[]): Active {
    const provider = new mod.default(issuer, configuration(signingKeys));
    provider.on('server_error', (_ctx, err) => serverErrors.push(err));
    return { provider, callback: provider.callback() };
  }

  // The issuer embeds the port: listen first (port 0 = free), then build the
  // provider. useSigningKeys() swaps the provider behind this same listener, so
  // the issuer and port never change and keep-alive connections stay usable.
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
    if (url.pathname === REGISTRATION_PATH) {
      // Browser-based MCP clients (the MCP Inspector) register from their own origin, and
      // oidc-provider sends no CORS headers on /reg. Registration is open and carries no
      // credentials, so any origin may call it (what may be registered: registrationPolicy).
      res.setHeader('access-control-allow-origin', '*');
      if (req.method === 'OPTIONS') {
        res
          .writeHead(204, {
            'access-control-allow-methods': 'POST, OPTIONS',
            'access-control-allow-headers': 'content-type, authorization, mcp-protocol-version',
            'access-control-max-age': '600',
          })
          .end();
        return;
      }
    }
    if (req.method === 'GET' && url.pathname === '/') {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(homePage());
      return;
    }
    const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(url.pathname);
    if (m?.[1]) {
      handleInteraction(target.provider, req, res, m[1], m[2]).catch((err: unknown) => {
        serverErrors.push(err);
        if (!res.headersSent) {
          res.statusCode = 500;
          res.setHeader('content-type', 'text/html; charset=utf-8');
        }
        res.end(
          page(
            'error',
            'Sign-in error',
            `<h1>Something went wrong</h1><p class="error">${escapeHtml(String(err))}</p><p><a href="/device">Start over</a></p>`,
            { error: errorName(err) },
          ),
        );
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
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`the development OpenID provider cannot listen on ${LOOPBACK}:${requestedPort}: the port is in use`, { cause: err })
          : err,
      );
    };
    server.once('error', onError);
    server.listen(requestedPort, LOOPBACK, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://${LOOPBACK}:${port}`;

  async function closeServer(): Promise<void> {
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
    });
  }

  try {
    active = buildProvider(keys);
  } catch (err) {
    await closeServer();
    throw err;
  }

  return {
    issuer,
    host: LOOPBACK,
    port,
    jwksUri: `${issuer}/jwks`,
    deviceUri: `${issuer}/device`,
    accounts,
    alg,

    signingKey() {
      const first = keys[0];
      if (!first) throw new Error('the development OpenID provider has no signing key');
      return first;
    },

    useSigningKeys(next) {
      if (stopped) throw new Error('the development OpenID provider is stopped');
      if (next.length === 0) throw new TypeError('useSigningKeys needs at least one key');
      const copy = [...next];
      active = buildProvider(copy);
      keys = copy;
    },

    jwksFetches() {
      return jwksCount;
    },

    deviceCode(userCode) {
      const normalized = userCode.toUpperCase().replace(/\W/g, '');
      const id = store.byUserCode.get(normalized);
      return id === undefined ? undefined : store.get(`DeviceCode:${id}`);
    },

    lastServerError() {
      return serverErrors.at(-1);
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      active = undefined;
      await closeServer();
    },
  };
}
