// The one failure of loading the development OpenID provider a person can
// fix: its package, oidc-provider, is not installed. Kept apart from the
// provider so the demo can name it without loading oidc-provider first.

export const OIDC_PROVIDER_MISSING_MESSAGE =
  'the HTTP demo needs the package oidc-provider (a dependency of drawbridge-mcp): install drawbridge-mcp again, or run npm ci in the Drawbridge repository';

/** oidc-provider is not installed. */
export class OidcProviderMissingError extends Error {
  constructor(options?: { cause?: unknown }) {
    super(OIDC_PROVIDER_MISSING_MESSAGE, options);
    this.name = 'OidcProviderMissingError';
  }
}
