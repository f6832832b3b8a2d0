// OIDC access-token verification: the gateway as an OAuth 2.1 resource server.
// The provider is found by discovery (openid-client); tokens are verified with
// jose against the provider's remote JWKS (cached, refetched on an unknown key
// id at most once per cooldown, so rotation works without a fetch storm).
// Everything is checked that makes a token this gateway's: the issuer, the
// audience (the resource indicator), expiry and not-before with a small
// tolerance, an explicit list of asymmetric algorithms (never `none`, never
// HMAC, whose "secret" would be the public key), the subject, and the required
// scopes. Only JWT access tokens are accepted: an opaque token cannot be
// checked here. The token itself never leaves this module's caller.

import { createRemoteJWKSet, customFetch, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import * as client from 'openid-client';
import type { OidcIdentityDeclaration, ServicePrincipalDetection } from '../config/schema.js';
import { DrawbridgeError } from '../errors.js';
import { anyGlob } from '../policy/match.js';
import { makeIdentity, type Identity, type IdentityProvider, type PrincipalKind } from './identity.js';

/** What the verifier reads of the identity config (`scopes` is the pipeline's business, not the token's). */
export type OidcVerifierSettings = Omit<OidcIdentityDeclaration, 'scopes' | 'service_principal'> & {
  /** Default `rfc9068`. */
  readonly service_principal?: ServicePrincipalDetection;
};

export interface VerifiedToken {
  readonly identity: Identity;
  readonly scopes: readonly string[];
  /** Seconds since the epoch (the token's `exp`). */
  readonly expiresAt: number;
  /** The OAuth client the token was issued to (`client_id` or `azp`), when it says. */
  readonly clientId: string | null;
}

export interface TokenVerifier {
  /** Verifies a bearer token; throws identity.invalid_token, identity.insufficient_scope or identity.unavailable. */
  verify(token: string): Promise<VerifiedToken>;
  /** The issuer and audience, for RFC 9728 metadata and error messages. */
  readonly issuer: string;
  readonly audience: string;
  readonly requiredScopes: readonly string[];
  readonly clockToleranceMs: number;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
// RFC 9068 access tokens say `at+jwt`; many providers still say `JWT`. Anything else
// (an ID token's or a logout token's type, say) is not an access token for us.
const ACCESS_TOKEN_TYPES = new Set(['at+jwt', 'application/at+jwt', 'jwt']);

function invalid(message: string, cause?: unknown): DrawbridgeError {
  return new DrawbridgeError('identity.invalid_token', message, cause === undefined ? {} : { cause });
}

/** A claim by name or dotted path (`realm_access.roles`). */
export function claimAt(payload: Readonly<Record<string, unknown>>, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let value: unknown = payload;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

/** Groups from the configured claim: absent → none; a string → one group; an array of strings. Anything else is a malformed token. */
export function groupsFrom(payload: Readonly<Record<string, unknown>>, path: string): string[] {
  const value = claimAt(payload, path);
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return value === '' ? [] : [value];
  if (Array.isArray(value) && value.every((g): g is string => typeof g === 'string')) return value.filter((g) => g !== '');
  throw invalid(`The token's ${path} claim is neither a string nor a list of strings.`);
}

/** `scope` (space-separated, RFC 9068) or `scp` (a list, some providers). */
export function scopesFrom(payload: Readonly<Record<string, unknown>>): string[] {
  const scope = payload['scope'];
  if (typeof scope === 'string') return scope.split(' ').filter((s) => s !== '');
  const scp = payload['scp'];
  if (Array.isArray(scp)) return scp.filter((s): s is string => typeof s === 'string');
  if (typeof scp === 'string') return scp.split(' ').filter((s) => s !== '');
  return [];
}

/**
 * A service's token or a person's. `rfc9068`: a token whose subject is the client it was issued
 * to (RFC 9068 §2.2, what a client_credentials grant yields: no resource owner, so `sub` names the
 * client). A person's token names the person, never the client. A configured claim instead: the
 * token is a service's when that claim (a string, or any string of a list) matches a glob.
 */
export function principalOf(
  payload: Readonly<Record<string, unknown>>,
  subject: string,
  clientId: string | null,
  detection: ServicePrincipalDetection = 'rfc9068',
): PrincipalKind {
  if (detection === 'rfc9068') return clientId !== null && subject === clientId ? 'service' : 'person';
  const value = claimAt(payload, detection.claim);
  const values = typeof value === 'string' ? [value] : Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  return values.some((v) => anyGlob(detection.matches, v)) ? 'service' : 'person';
}

function describeJoseError(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'the token is not valid yet (nbf)';
    if (error.claim === 'iat') return 'the token was issued in the future (iat)';
    if (error.claim === 'aud') return 'the token is for another audience (aud)';
    if (error.claim === 'iss') return 'the token is from another issuer (iss)';
    if (error.claim === 'sub') return 'the token has no subject (sub)';
    if (error.claim === 'exp') return 'the token has no expiry (exp)';
    return `the token's ${error.claim} claim is invalid: ${error.reason}`;
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'the token is signed with an algorithm this gateway does not accept';
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token signature does not verify';
  if (error instanceof joseErrors.JWKSNoMatchingKey) return 'the token is signed with a key the provider does not publish';
  if (error instanceof joseErrors.JWKSMultipleMatchingKeys) return "the provider publishes several keys matching the token's header";
  if (error instanceof joseErrors.JWSInvalid || error instanceof joseErrors.JWTInvalid) return 'the token is malformed';
  return 'the token could not be verified';
}

const isLoopbackHttp = (url: URL) => url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);

/** Tokens verified recently, so that a client sending the same token on every request pays one signature check, not one per call. */
const VERIFIED_CACHE_ENTRIES = 1_000;
/**
 * How long a verified token is taken on trust: never past its own expiry (with the clock
 * tolerance), never across a fetch of the key set, and never longer than this.
 */
const VERIFIED_CACHE_MS = 60_000;

export function createOidcVerifier(settings: OidcVerifierSettings, now: () => number = () => Date.now()): TokenVerifier {
  const issuerUrl = new URL(settings.issuer);
  let keys: Promise<ReturnType<typeof createRemoteJWKSet>> | null = null;
  // Keyed by the whole token: every check below is a function of the token, the settings and
  // the provider's key set, except the time, which a hit re-checks (until = min(exp + tolerance,
  // verified + 60 s)). Every fetch of the key set forgets them all (`generation`), so a key the
  // provider retired stops counting as soon as the gateway has seen it gone.
  const verified = new Map<string, { readonly token: VerifiedToken; readonly until: number }>();
  let generation = 0;
  const remember = (token: string, result: VerifiedToken, verifiedIn: number): void => {
    if (verifiedIn !== generation) return;
    if (verified.size >= VERIFIED_CACHE_ENTRIES) verified.delete(verified.keys().next().value as string);
    verified.set(token, { token: result, until: Math.min(result.expiresAt * 1000 + settings.clock_tolerance, now() + VERIFIED_CACHE_MS) });
  };

  // Discovery once, lazily; a failure is retried on the next request rather than cached.
  const keySet = (): Promise<ReturnType<typeof createRemoteJWKSet>> => {
    keys ??= (async () => {
      let metadata: client.ServerMetadata;
      try {
        // A resource server is not a client: the client id is only a label here.
        const config = await client.discovery(issuerUrl, 'drawbridge-resource-server', undefined, undefined, {
          ...(isLoopbackHttp(issuerUrl) ? { execute: [client.allowInsecureRequests] } : {}),
          timeout: 10,
        });
        metadata = config.serverMetadata();
      } catch (error) {
        throw new DrawbridgeError(
          'identity.unavailable',
          `The OpenID provider ${settings.issuer} could not be discovered: ${(error as Error)?.message ?? String(error)}`,
          { cause: error },
        );
      }
      if (!metadata.jwks_uri) throw new DrawbridgeError('identity.unavailable', `The OpenID provider ${settings.issuer} publishes no jwks_uri.`);
      const jwksUri = new URL(metadata.jwks_uri);
      if (jwksUri.protocol !== 'https:' && !isLoopbackHttp(jwksUri))
        throw new DrawbridgeError('identity.unavailable', `The provider's jwks_uri ${jwksUri.href} is not https.`);
      return createRemoteJWKSet(jwksUri, {
        cacheMaxAge: settings.jwks.cache_max_age,
        cooldownDuration: settings.jwks.cooldown,
        timeoutDuration: 10_000,
        [customFetch]: (url: string, init: RequestInit) => {
          generation += 1;
          verified.clear();
          return fetch(url, init);
        },
      });
    })();
    keys.catch(() => {
      keys = null;
    });
    return keys;
  };

  return {
    issuer: settings.issuer,
    audience: settings.audience,
    requiredScopes: settings.required_scopes,
    clockToleranceMs: settings.clock_tolerance,
    async verify(token: string): Promise<VerifiedToken> {
      const hit = verified.get(token);
      if (hit !== undefined) {
        if (now() < hit.until) return hit.token;
        verified.delete(token);
      }
      const verifiedIn = generation;
      const result = await verifyOnce(token);
      remember(token, result, verifiedIn);
      return result;
    },
  };

  async function verifyOnce(token: string): Promise<VerifiedToken> {
    if (!COMPACT_JWS.test(token)) {
      throw invalid(
        'The bearer token is not a JWT. Opaque access tokens cannot be verified by the ' +
          'gateway: the provider must issue JWT access tokens for this resource (audience).',
      );
    }
    let header;
    try {
      header = decodeProtectedHeader(token);
    } catch (error) {
      throw invalid('The bearer token is malformed.', error);
    }
    // Checked before any key lookup: `none` and HMAC never reach jose's key resolution.
    if (typeof header.alg !== 'string' || !settings.algorithms.includes(header.alg)) {
      throw invalid(`The token is signed with ${JSON.stringify(header.alg ?? null)}; this gateway accepts ${settings.algorithms.join(', ')} only.`);
    }
    if (header.typ !== undefined && !ACCESS_TOKEN_TYPES.has(String(header.typ).toLowerCase())) {
      throw invalid(`The token's type is ${JSON.stringify(header.typ)}, not an access token (at+jwt).`);
    }
    const jwks = await keySet();
    const check = () =>
      jwtVerify(token, jwks, {
        issuer: settings.issuer,
        audience: settings.audience,
        algorithms: settings.algorithms,
        clockTolerance: Math.round(settings.clock_tolerance / 1000),
        requiredClaims: ['exp', 'sub'],
      });
    let payload: JWTPayload;
    try {
      // One retry on a network failure fetching the keys (a kept-alive socket the provider closed).
      ({ payload } = await check().catch((error: unknown) => (error instanceof joseErrors.JOSEError ? Promise.reject(error) : check())));
    } catch (error) {
      // A key set that cannot be fetched or read is the provider's fault, not the token's: 503, never 401.
      // jose reports a non-200 answer and a body that is not JSON as its generic JOSEError (ERR_JOSE_GENERIC).
      if (
        error instanceof joseErrors.JWKSTimeout ||
        (error instanceof joseErrors.JOSEError && (error.code === 'ERR_JWKS_INVALID' || error.code === 'ERR_JOSE_GENERIC'))
      ) {
        throw new DrawbridgeError('identity.unavailable', `The provider's keys could not be fetched: ${error.message}`, { cause: error });
      }
      if (error instanceof joseErrors.JOSEError) throw invalid(`Token rejected: ${describeJoseError(error)}.`, error);
      throw new DrawbridgeError('identity.unavailable', `The provider's keys could not be fetched: ${(error as Error)?.message ?? String(error)}`, {
        cause: error,
      });
    }
    const subject = payload.sub;
    if (typeof subject !== 'string' || subject.trim() === '') throw invalid('Token rejected: it has no subject (sub).');
    const claims = payload as Readonly<Record<string, unknown>>;
    const scopes = scopesFrom(claims);
    const missing = settings.required_scopes.filter((s) => !scopes.includes(s));
    if (missing.length > 0) {
      throw new DrawbridgeError('identity.insufficient_scope', `The token lacks the scope${missing.length > 1 ? 's' : ''} ${missing.join(' ')}.`, {
        details: { missingScopes: missing },
      });
    }
    const clientId = typeof claims['client_id'] === 'string' ? claims['client_id'] : typeof claims['azp'] === 'string' ? claims['azp'] : null;
    const identity = makeIdentity({
      kind: 'oidc',
      subject,
      groups: groupsFrom(claims, settings.groups_claim),
      issuer: settings.issuer,
      principal: principalOf(claims, subject, clientId, settings.service_principal),
      // What the journal may keep about the token: never the token itself.
      claims: {
        ...(clientId ? { client_id: clientId } : {}),
        scope: scopes.join(' '),
        exp: payload.exp,
        ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}),
      },
    });
    return { identity, scopes, expiresAt: payload.exp as number, clientId };
  }
}

/**
 * stdio with OIDC: one caller for the life of the process, proven by the token
 * in the environment. Verified once at start (a bad token stops the server);
 * from the token's expiry on, every call is refused with identity.expired.
 */
export async function tokenIdentityProvider(
  verifier: TokenVerifier,
  token: string,
  now: () => number = Date.now,
): Promise<{ provider: IdentityProvider; verified: VerifiedToken }> {
  const verified = await verifier.verify(token);
  const expiresMs = verified.expiresAt * 1000;
  const provider: IdentityProvider = {
    identify() {
      if (now() >= expiresMs + verifier.clockToleranceMs) {
        throw new DrawbridgeError(
          'identity.expired',
          `The access token of ${verified.identity.subject} expired at ${new Date(expiresMs).toISOString()}; nothing is allowed with it.`,
        );
      }
      return verified.identity;
    },
    scopes: () => verified.scopes,
  };
  return { provider, verified };
}
