// RFC 9728 OAuth 2.0 Protected Resource Metadata: where a client that was
// refused (401) learns which authorization server issues tokens for this
// gateway, and which resource indicator (RFC 8707) to ask them for.

import type { TokenVerifier } from '../identity/oidc.js';

export const METADATA_PREFIX = '/.well-known/oauth-protected-resource';

interface ProtectedResourceMetadata {
  readonly resource: string;
  readonly authorization_servers: readonly string[];
  readonly bearer_methods_supported: readonly string[];
  readonly scopes_supported?: readonly string[];
  readonly resource_name: string;
}

interface ResourceLocation {
  /** The resource identifier: the public URL of the MCP endpoint, without fragment. */
  readonly resource: string;
  /** The local path the MCP endpoint is served at (the public URL's path). */
  readonly mcpPath: string;
  /** Local paths the metadata document is served at: the path-inserted form first, then the root form. */
  readonly metadataPaths: readonly string[];
  /** Absolute URL of the metadata document, for `WWW-Authenticate: Bearer resource_metadata="…"`. */
  readonly metadataUrl: string;
}

export function locateResource(publicUrl: string): ResourceLocation {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    throw new TypeError(`the public URL ${JSON.stringify(publicUrl)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`the public URL ${publicUrl} must be http(s)`);
  if (url.search !== '' || url.username !== '' || url.password !== '') throw new TypeError(`the public URL ${publicUrl} must not carry a query or credentials`);
  url.hash = '';
  const mcpPath = url.pathname;
  // RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
  const suffix = mcpPath === '/' ? '' : mcpPath.replace(/\/+$/, '');
  const inserted = `${METADATA_PREFIX}${suffix}`;
  return {
    resource: url.href,
    mcpPath,
    metadataPaths: inserted === METADATA_PREFIX ? [METADATA_PREFIX] : [inserted, METADATA_PREFIX],
    metadataUrl: new URL(inserted, url.origin).href,
  };
}

/** `mappedScopes`: the scopes of identity.scopes (per operation), listed after the required ones so a client can learn of them. */
export function protectedResourceMetadata(resource: string, verifier: TokenVerifier, mappedScopes: readonly string[] = []): ProtectedResourceMetadata {
  const scopes = [...new Set([...verifier.requiredScopes, ...mappedScopes])];
  return {
    resource,
    authorization_servers: [verifier.issuer],
    bearer_methods_supported: ['header'],
    ...(scopes.length > 0 ? { scopes_supported: scopes } : {}),
    resource_name: 'Drawbridge',
  };
}
