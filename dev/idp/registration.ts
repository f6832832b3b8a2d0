// What open dynamic client registration (RFC 7591, at /reg) may create on the
// development OpenID provider: public clients with loopback redirect URIs
// only. Run by oidc-provider for every registration request (see
// extraClientMetadata in configuration.ts); refuses with the reason, never
// rewrites a request into something else.

import { LOOPBACK_REDIRECT_HOSTS } from './accounts.js';

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
export function registrationPolicy(
  sent: Readonly<Record<string, unknown>>,
  metadata: Record<string, unknown>,
  invalid: new (description: string) => Error,
): void {
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
