// The resource-server side of the MCP authorization spec for one HTTP request:
// the bearer token from the Authorization header (never the query string,
// never the body) is verified on every request, and a refusal carries the
// RFC 6750 / RFC 9728 challenge that tells the client where to get a token.
//
// What reaches the MCP layer is an AuthInfo minted here, holding the verified
// Identity (never the token). The identity provider only believes AuthInfo
// objects this module minted for the request being handled: nothing a client
// sends (headers, body, _meta) can become an identity.

import type { IncomingMessage } from 'node:http';
import type { AuthInfo } from '@modelcontextprotocol/server';
import { DrawbridgeError, isDrawbridgeError, type ErrorCode } from '../errors.js';
import type { Identity, IdentityProvider } from '../identity/identity.js';
import type { TokenVerifier, VerifiedToken } from '../identity/oidc.js';

interface AuthRefusal {
  readonly status: 400 | 401 | 403 | 500 | 503;
  readonly code: ErrorCode;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
}

export type AuthOutcome =
  { readonly ok: true; readonly verified: VerifiedToken; readonly authInfo: AuthInfo } | { readonly ok: false; readonly refusal: AuthRefusal };

export interface AuthContext {
  readonly verifier: TokenVerifier;
  /** The resource identifier (RFC 8707) this gateway answers for. */
  readonly resource: string;
  /** Absolute URL of the RFC 9728 metadata document. */
  readonly metadataUrl: string;
}

// RFC 6750 §2.1: b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** A quoted-string for an auth-param: quotes and backslashes escaped, anything outside printable ASCII replaced. */
export function quoteParam(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, ' ');
  return `"${printable.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export function bearerChallenge(params: ReadonlyArray<readonly [string, string | undefined]>): string {
  const parts = params.filter((p): p is readonly [string, string] => p[1] !== undefined).map(([k, v]) => `${k}=${quoteParam(v)}`);
  return parts.length === 0 ? 'Bearer' : `Bearer ${parts.join(', ')}`;
}

/**
 * The step-up challenge for a call refused for scope (RFC 6750 §3.1, MCP authorization "scope
 * challenge"): every scope the call needs, not only the missing ones, so a client that asks for
 * exactly these gets a token good for the call in one round.
 */
export function insufficientScopeChallenge(needed: readonly string[], message: string, metadataUrl: string): string {
  return bearerChallenge([
    ['error', 'insufficient_scope'],
    ['scope', needed.join(' ')],
    ['resource_metadata', metadataUrl],
    ['error_description', message],
  ]);
}

const minted = new WeakSet<object>();

/** The AuthInfo handed to the SDK for one verified request: the identity, never the token. */
function authInfoFor(verified: VerifiedToken, resource: string): AuthInfo {
  const info: AuthInfo = {
    // The SDK's type wants a token; the gateway never passes it on (not to the pipeline, the backends or the journal).
    token: '',
    clientId: verified.clientId ?? '',
    scopes: [...verified.scopes],
    expiresAt: verified.expiresAt,
    resource: new URL(resource),
    extra: Object.freeze({ identity: verified.identity }),
  };
  Object.freeze(info);
  minted.add(info);
  return info;
}

/** The identity the auth step attached to this request's AuthInfo; null for anything it did not mint. */
export function identityOf(authInfo: unknown): Identity | null {
  if (authInfo === null || typeof authInfo !== 'object' || !minted.has(authInfo)) return null;
  return ((authInfo as AuthInfo).extra?.['identity'] as Identity | undefined) ?? null;
}

/** For createMcpServer: the caller of a tools/call is whoever this request's verified token says. */
export const requestIdentityProvider: IdentityProvider = {
  identify({ authInfo }) {
    const identity = identityOf(authInfo);
    if (!identity) throw new DrawbridgeError('identity.missing', 'The request carries no verified access token, so nothing is allowed.');
    return identity;
  },
  // Only from an AuthInfo minted here: an identity it proves always has a token, so never null (no scopes at all when forged).
  scopes({ authInfo }) {
    return identityOf(authInfo) ? [...(authInfo as AuthInfo).scopes] : [];
  },
};

/** True when the URL carries an access token (RFC 6750 §2.3), which this gateway refuses. */
function tokenInQuery(url: URL): boolean {
  for (const key of url.searchParams.keys()) if (key.toLowerCase() === 'access_token') return true;
  return false;
}

export async function authenticate(req: IncomingMessage, url: URL, context: AuthContext): Promise<AuthOutcome> {
  const { verifier, metadataUrl } = context;
  const scope = verifier.requiredScopes.length > 0 ? verifier.requiredScopes.join(' ') : undefined;
  const refuse = (status: AuthRefusal['status'], code: ErrorCode, message: string, error?: string, extra: Record<string, string> = {}): AuthOutcome => ({
    ok: false,
    refusal: {
      status,
      code,
      message,
      headers: {
        ...(status === 401 || status === 403 || status === 400
          ? {
              'WWW-Authenticate': bearerChallenge([
                ['error', error],
                ['error_description', error ? message : undefined],
                ['resource_metadata', metadataUrl],
                ['scope', scope],
              ]),
            }
          : {}),
        ...extra,
      },
    },
  });

  if (tokenInQuery(url)) {
    return refuse(400, 'identity.invalid_token', 'Access tokens are accepted in the Authorization header only, never in the URL.', 'invalid_request');
  }
  const header = req.headers['authorization'];
  if (header === undefined || header.trim() === '' || !/^bearer(\s|$)/i.test(header.trim())) {
    // RFC 6750 §3.1: no credentials (or another scheme): a bare challenge, no error code.
    return refuse(401, 'identity.missing', `This MCP endpoint needs an OAuth access token: Authorization: Bearer <token> (see ${metadataUrl}).`);
  }
  const match = BEARER.exec(header.trim());
  if (!match?.[1]) return refuse(400, 'identity.invalid_token', 'The Authorization header is not a well-formed bearer token.', 'invalid_request');
  let verified: VerifiedToken;
  try {
    verified = await verifier.verify(match[1]);
  } catch (error) {
    if (isDrawbridgeError(error)) {
      if (error.code === 'identity.invalid_token') return refuse(401, error.code, error.message, 'invalid_token');
      if (error.code === 'identity.insufficient_scope') return refuse(403, error.code, error.message, 'insufficient_scope');
      if (error.code === 'identity.unavailable') return refuse(503, error.code, error.message, undefined, { 'Retry-After': '5' });
    }
    return refuse(500, 'internal', 'The access token could not be verified because of an internal error.');
  }
  return { ok: true, verified, authInfo: authInfoFor(verified, context.resource) };
}
