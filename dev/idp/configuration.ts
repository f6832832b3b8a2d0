// oidc-provider's configuration for the development OpenID provider: the
// clients, open registration, PKCE, the device flow with our pages, JWT access
// tokens for local resources only, the accounts' claims in the tokens, and
// every default set explicitly (oidc-provider prints a NOTICE for each one
// left out). What each setting is for is in dev/idp.ts's header.

import { errors, type KoaishContext, type RegistrationContext } from 'oidc-provider';
import {
  DEV_CLIENTS,
  DEV_CONSOLE_REDIRECT_URIS,
  DEV_LOOPBACK_REDIRECT_URIS,
  DEV_OPERATION_SCOPES,
  DEV_RESOURCE_SCOPES,
  DEVICE_CODE_GRANT_TYPE,
  type DevIdpAccounts,
} from './accounts.js';
import type { DevIdpSigningAlg, DevIdpSigningKey } from './keys.js';
import { deviceConfirmPage, deviceInputPage, deviceSuccessPage, oauthErrorPage } from './pages.js';
import { registrationPolicy } from './registration.js';
import type { ProviderStore } from './store.js';

/** The resources this provider issues tokens for: local ones only. */
export const LOCAL_RESOURCE = /^http:\/\/(127\.0\.0\.1|localhost):/;

/** What a provider instance is built from; the signing keys may change (see DevIdp.useSigningKeys). */
export interface ProviderSettings {
  readonly store: ProviderStore;
  readonly accounts: DevIdpAccounts;
  readonly alg: DevIdpSigningAlg;
  readonly accessTokenTtl: number;
  readonly defaultAudience: string | undefined;
}

const SERVICE_CLAIMS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  [DEV_CLIENTS.agent.clientId]: DEV_CLIENTS.agent.claims,
  [DEV_CLIENTS.other.clientId]: DEV_CLIENTS.other.claims,
};

const clone = <T>(value: T): T => structuredClone(value);

/** The registered clients, fresh for each provider instance (oidc-provider may add to them). */
function clients(): Record<string, unknown>[] {
  return [
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
    {
      // The gateway's web console on this machine: public (PKCE), back to /console/callback on loopback.
      client_id: DEV_CLIENTS.console.clientId,
      client_name: 'Drawbridge console',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: [...DEV_CONSOLE_REDIRECT_URIS],
    },
  ];
}

// Open dynamic client registration (RFC 7591), for MCP clients: no initial access token
// (anyone on this machine may register, as anyone here may sign in), and no registration
// access token, so a registration cannot be read back or changed. What may be registered
// is decided by registrationPolicy, run from extraClientMetadata.validator.
function registration(): { feature: Record<string, unknown>; extraClientMetadata: Record<string, unknown> } {
  return {
    feature: { enabled: true, initialAccessToken: false, issueRegistrationAccessToken: false },
    extraClientMetadata: {
      // Listing a standard property makes oidc-provider run the validator for EVERY client
      // it builds; only a registration request has a ctx (static clients and stored
      // registrations are built without one, and were checked when configured/registered).
      properties: ['redirect_uris'],
      validator: (ctx: RegistrationContext | undefined, key: string, _value: unknown, metadata: Record<string, unknown>) => {
        if (ctx === undefined || key !== 'redirect_uris') return;
        registrationPolicy(ctx.oidc?.body ?? {}, metadata, errors.InvalidClientMetadata);
      },
    },
  };
}

function deviceFlow(accounts: DevIdpAccounts): Record<string, unknown> {
  const html = (ctx: KoaishContext, body: string): void => {
    ctx.type = 'html';
    ctx.body = body;
  };
  return {
    enabled: true,
    userCodeInputSource: (ctx: KoaishContext, form: string, _out: unknown, err: unknown) => html(ctx, deviceInputPage(form, accounts, err)),
    userCodeConfirmSource: (ctx: KoaishContext, form: string, _client: unknown, _info: unknown, userCode: string) =>
      html(ctx, deviceConfirmPage(form, userCode)),
    successSource: (ctx: KoaishContext) => html(ctx, deviceSuccessPage()),
  };
}

function resourceIndicators(settings: ProviderSettings): Record<string, unknown> {
  return {
    enabled: true,
    defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) => oneOf ?? settings.defaultAudience,
    useGrantedResource: () => true,
    getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => {
      if (!LOCAL_RESOURCE.test(resourceIndicator)) {
        throw new errors.InvalidTarget('this development provider only serves http://127.0.0.1:* and http://localhost:* resources');
      }
      return {
        scope: `${DEV_RESOURCE_SCOPES} ${DEV_OPERATION_SCOPES}`,
        audience: resourceIndicator,
        accessTokenFormat: 'jwt',
        accessTokenTTL: settings.accessTokenTtl,
        jwt: { sign: { alg: settings.alg } },
      };
    },
  };
}

/** The accounts' claims go INTO the access tokens (and a service client's, for client credentials). */
function accountClaims(accounts: DevIdpAccounts): Record<string, unknown> {
  return {
    extraTokenClaims: (_ctx: unknown, token: { kind?: string; accountId?: string; clientId?: string }) => {
      if (token.accountId !== undefined) return clone(accounts[token.accountId] ?? {});
      if (token.kind === 'ClientCredentials' && token.clientId !== undefined) return clone(SERVICE_CLAIMS[token.clientId] ?? {});
      return undefined;
    },
    findAccount: (_ctx: unknown, sub: string) => {
      const claims = accounts[sub];
      if (!claims) return undefined;
      return { accountId: sub, claims: async () => ({ ...clone(claims), sub }) };
    },
  };
}

function lifetimes(accessTokenTtl: number): Record<string, unknown> {
  type Issued = { resourceServer?: { accessTokenTTL?: number } };
  return {
    AccessToken: (_ctx: unknown, token: Issued) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
    ClientCredentials: (_ctx: unknown, token: Issued) => token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
    DeviceCode: () => 600,
    RefreshToken: () => 24 * 60 * 60,
    Grant: () => 24 * 60 * 60,
    Session: () => 24 * 60 * 60,
    Interaction: () => 600,
    IdToken: () => 600,
    BackchannelAuthenticationRequest: () => 600,
    PreAuthorizedCode: () => 600,
  };
}

export function providerConfiguration(settings: ProviderSettings, signingKeys: readonly DevIdpSigningKey[]): Record<string, unknown> {
  const open = registration();
  return {
    adapter: (model: string) => settings.store.adapterFor(model),
    jwks: { keys: signingKeys.map((k) => k.privateJwk) },
    clients: clients(),
    extraClientMetadata: open.extraClientMetadata,
    // SECURITY: every authorization code request needs PKCE (oidc-provider accepts S256
    // only); the clients here that use codes are public, so PKCE is what binds the code to
    // the client that asked for it.
    pkce: { required: () => true },
    clientDefaults: {
      grant_types: ['authorization_code'],
      id_token_signed_response_alg: settings.alg,
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    clientBasedCORS: () => true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: open.feature,
      deviceFlow: deviceFlow(settings.accounts),
      resourceIndicators: resourceIndicators(settings),
    },
    ...accountClaims(settings.accounts),
    // Every refresh_token-capable client gets one, no offline_access needed;
    // and tokens never depend on the browser session staying alive.
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    renderError: (ctx: KoaishContext, out: Record<string, string>) => {
      ctx.type = 'html';
      ctx.body = oauthErrorPage(out);
    },
    ttl: lifetimes(settings.accessTokenTtl),
  };
}
