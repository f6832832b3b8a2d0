// The development OpenID provider's fixed cast: the accounts that sign in
// without a password, the registered clients (their secrets are public on
// purpose), the loopback redirect URIs and the scopes every local resource
// server offers. Data only; see dev/idp.ts for the provider.

/** Account id -> claims put into its access tokens (besides sub = the account id). */
export type DevIdpAccounts = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

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
  /** The gateway's web console (/console/): a public client with PKCE, back to any loopback port. */
  console: { clientId: 'drawbridge-console' },
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

/** The redirect URIs of DEV_CLIENTS.console: the console's callback on every loopback host (any port, as for DEV_CLIENTS.mcp). */
export const DEV_CONSOLE_REDIRECT_URIS: readonly string[] = LOOPBACK_REDIRECT_HOSTS.map((host) => `http://${host}/console/callback`);

/** The scopes a token asks for when nobody says otherwise (device flow, `drawbridge token`). */
export const DEV_RESOURCE_SCOPES = 'mcp approvals';

/**
 * Scopes a local resource server also grants when asked for them by name: per-operation
 * scopes (identity.scopes of the gateway), e.g. `sql:write`, so a client can step up to them.
 */
export const DEV_OPERATION_SCOPES = 'sql:write sql:admin pii:read';

export const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';
