// A DEVELOPMENT OpenID provider for `drawbridge demo --http` and for the
// tests: oidc-provider (9.x) behind a node http server that
// listens on 127.0.0.1 ONLY, issuer `http://127.0.0.1:PORT`. Any account name
// from the account table signs in WITHOUT A PASSWORD, the signing keys live in
// memory, client secrets are published below, and all state is lost on stop().
// It exists so a newcomer can try Drawbridge's OIDC mode in a browser without
// setting up a real identity provider. NEVER use it for production or expose
// it beyond loopback. Test-only extras (forged tokens, scripted browsers,
// counting JWKS fetches, reading device codes) live in test/support/oidc.ts,
// not here; it observes the provider through the options onRequest,
// onServerError and store.
//
// What it is configured for:
//   - JWT access tokens (typ `at+jwt`) for any resource indicator starting with
//     `http://127.0.0.1:` or `http://localhost:` (features.resourceIndicators):
//     aud = the requested resource, scopes `mcp approvals` (and, asked for by
//     name, the per-operation scopes DEV_OPERATION_SCOPES such as `sql:write`), signed with a key
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
//   - The device flow advertises a polling interval (RFC 8628 `interval`) of
//     1 s by default (pollIntervalSeconds): nobody waits the spec's default 5 s
//     after approving a sign-in on this machine. oidc-provider does not enforce
//     it (no slow_down).
//   - Our own pages: the device flow's `/device` (enter the code, confirm),
//     then, for the device flow and the authorization code flow alike,
//     `/interaction/:uid` (sign in by typing or picking an account name, then
//     consent; both pages name the client and, for a code flow, the redirect
//     URI the browser returns to). Every page is one <main data-page="KIND">
//     (plus data-error / data-detail when something went wrong) whose FIRST
//     <form> is the step's form: test/support/oidc.ts drives the pages by that
//     contract (dev/idp/pages.ts; the steps: dev/idp/interactions.ts).
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
// (it checks process.release.lts; there is no option to turn it off), so the
// demo loads this module for --http only (dev/demo.ts). All other
// NOTICE/WARNING output is avoided by configuring every default that would
// complain (ttl.*, adapter, jwks, page sources, findAccount, ...: see
// dev/idp/configuration.ts).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import Provider from 'oidc-provider';
import { DEV_ACCOUNTS, type DevIdpAccounts } from './idp/accounts.js';
import { LOCAL_RESOURCE, providerConfiguration, type ProviderSettings } from './idp/configuration.js';
import { handleInteraction, interactionOf } from './idp/interactions.js';
import { generateSigningKey, type DevIdpSigningAlg, type DevIdpSigningKey } from './idp/keys.js';
import { homePage, interactionFaultPage } from './idp/pages.js';
import { ProviderStore } from './idp/store.js';

export {
  DEV_ACCOUNTS,
  DEV_CLIENTS,
  DEV_LOOPBACK_REDIRECT_URIS,
  DEV_OPERATION_SCOPES,
  DEV_RESOURCE_SCOPES,
  DEVICE_CODE_GRANT_TYPE,
  LOOPBACK_REDIRECT_HOSTS,
  type DevIdpAccounts,
} from './idp/accounts.js';
export { generateSigningKey, type DevIdpSigningAlg, type DevIdpSigningKey } from './idp/keys.js';
export { OIDC_PROVIDER_MISSING_MESSAGE, OidcProviderMissingError } from './idp/missing.js';
export { ProviderStore } from './idp/store.js';

// ---------------------------------------------------------------------------
// Public API

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
  /** The device flow's polling interval in seconds, as advertised (RFC 8628 `interval`); positive. Default 1. */
  readonly pollIntervalSeconds?: number;
  /** Where the provider's state lives (grants, device codes, sessions). Default: a new in-memory store. */
  readonly store?: ProviderStore;
  /** Sees every request before it is answered (method and path). */
  readonly onRequest?: (method: string, pathname: string) => void;
  /** Sees every error oidc-provider or the interaction pages answered as a server error. */
  readonly onServerError?: (error: unknown) => void;
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
   * Key rotation: replaces the provider instance behind the same listener (same issuer, port
   * and stored grants, refresh tokens and sessions) with one whose JWKS is `keys`; keys[0] signs.
   */
  useSigningKeys(keys: readonly DevIdpSigningKey[]): void;
  /** Closes the listener and every connection; idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// The provider

const LOOPBACK = '127.0.0.1';
/** oidc-provider's default registration route (routes.registration). */
const REGISTRATION_PATH = '/reg';

interface Settings extends ProviderSettings {
  readonly port: number;
  readonly pollIntervalSeconds: number;
}

/** The options checked, with their defaults. */
function settingsOf(options: DevIdpOptions): Settings {
  const host = options.host ?? LOOPBACK;
  if (host !== LOOPBACK) throw new TypeError(`the development OpenID provider listens on ${LOOPBACK} only, not ${String(host)}`);
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`port must be a TCP port number or 0, not ${String(port)}`);
  const accessTokenTtl = options.accessTokenTtlSeconds ?? 300;
  if (!Number.isInteger(accessTokenTtl) || accessTokenTtl <= 0) throw new TypeError('accessTokenTtlSeconds must be a positive integer');
  const pollIntervalSeconds = options.pollIntervalSeconds ?? 1;
  if (!Number.isFinite(pollIntervalSeconds) || pollIntervalSeconds <= 0) throw new TypeError('pollIntervalSeconds must be a positive number');
  const defaultAudience = options.defaultAudience;
  if (defaultAudience !== undefined && !LOCAL_RESOURCE.test(defaultAudience)) {
    throw new TypeError(`defaultAudience must be an http://127.0.0.1:… or http://localhost:… resource, not ${defaultAudience}`);
  }
  return {
    port,
    accessTokenTtl,
    pollIntervalSeconds,
    defaultAudience,
    alg: options.alg ?? 'RS256',
    accounts: { ...DEV_ACCOUNTS, ...options.accounts },
    store: options.store ?? new ProviderStore(),
  };
}

interface Listener {
  readonly server: Server;
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:`port` (0: a free one); close() also ends every open connection. */
async function listen(port: number, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Listener> {
  const sockets = new Set<Socket>();
  const server = createServer(handle);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        err.code === 'EADDRINUSE' ? new Error(`the development OpenID provider cannot listen on ${LOOPBACK}:${port}: the port is in use`, { cause: err }) : err,
      );
    };
    server.once('error', onError);
    server.listen(port, LOOPBACK, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
      }),
  };
}

/** One oidc-provider instance with these keys; it advertises the device flow's polling interval. */
function buildProvider(issuer: string, settings: Settings, keys: readonly DevIdpSigningKey[], onServerError: (err: unknown) => void): Provider {
  const provider = new Provider(issuer, providerConfiguration(settings, keys));
  provider.on('server_error', (_ctx, err) => onServerError(err));
  // oidc-provider's device authorization answer has no `interval`: clients then wait 5 s per poll.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'device_authorization' && ctx.status === 200 && ctx.body !== null && typeof ctx.body === 'object') {
      ctx.body = { ...ctx.body, interval: settings.pollIntervalSeconds };
    }
  });
  return provider;
}

/**
 * Browser-based MCP clients (the MCP Inspector) register from their own origin, and
 * oidc-provider sends no CORS headers on /reg. Registration is open and carries no
 * credentials, so any origin may call it (what may be registered: registrationPolicy).
 * Returns true when the request (a preflight) is answered.
 */
function registrationCors(req: IncomingMessage, res: ServerResponse): boolean {
  res.setHeader('access-control-allow-origin', '*');
  if (req.method !== 'OPTIONS') return false;
  res
    .writeHead(204, {
      'access-control-allow-methods': 'POST, OPTIONS',
      'access-control-allow-headers': 'content-type, authorization, mcp-protocol-version',
      'access-control-max-age': '600',
    })
    .end();
  return true;
}

/** Starts the development provider on 127.0.0.1 (see the header: never for production). */
export async function startDevIdp(options: DevIdpOptions = {}): Promise<DevIdp> {
  const settings = settingsOf(options);
  const onServerError = options.onServerError ?? (() => undefined);
  let keys: readonly DevIdpSigningKey[] = [await generateSigningKey(settings.alg)];
  // The issuer embeds the port: listen first (port 0 = free), then build the provider.
  // useSigningKeys() swaps the provider behind this same listener, so the issuer and port
  // never change and keep-alive connections stay usable.
  let active: { provider: Provider; callback: ReturnType<Provider['callback']> } | undefined;
  let stopped = false;
  const listener = await listen(settings.port, (req, res) => {
    const target = active;
    if (!target) {
      res.statusCode = 503;
      res.end();
      return;
    }
    const url = new URL(req.url ?? '/', issuer);
    options.onRequest?.(req.method ?? 'GET', url.pathname);
    if (url.pathname === REGISTRATION_PATH && registrationCors(req, res)) return;
    if (req.method === 'GET' && url.pathname === '/') {
      res.statusCode = 200;
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.end(homePage(issuer, settings.accounts));
      return;
    }
    const interaction = interactionOf(url.pathname);
    if (interaction === null) {
      void target.callback(req, res);
      return;
    }
    handleInteraction(target.provider, settings.accounts, req, res, interaction.uid, interaction.action).catch((err: unknown) => {
      onServerError(err);
      if (!res.headersSent) {
        res.statusCode = 500;
        res.setHeader('content-type', 'text/html; charset=utf-8');
      }
      res.end(interactionFaultPage(err));
    });
  });
  const issuer = `http://${LOOPBACK}:${listener.port}`;
  const use = (next: readonly DevIdpSigningKey[]): void => {
    const provider = buildProvider(issuer, settings, next, onServerError);
    active = { provider, callback: provider.callback() };
    keys = next;
  };
  try {
    use(keys);
  } catch (err) {
    await listener.close();
    throw err;
  }

  return {
    issuer,
    host: LOOPBACK,
    port: listener.port,
    jwksUri: `${issuer}/jwks`,
    deviceUri: `${issuer}/device`,
    accounts: settings.accounts,
    alg: settings.alg,

    signingKey() {
      const first = keys[0];
      if (!first) throw new Error('the development OpenID provider has no signing key');
      return first;
    },

    useSigningKeys(next) {
      if (stopped) throw new Error('the development OpenID provider is stopped');
      if (next.length === 0) throw new TypeError('useSigningKeys needs at least one key');
      use([...next]);
    },

    async stop() {
      if (stopped) return;
      stopped = true;
      active = undefined;
      await listener.close();
    },
  };
}
