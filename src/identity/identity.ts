// Who is calling. An Identity is a frozen value produced by an IdentityProvider;
// the pipeline only ever sees the value, so a token verifier (OIDC, a later
// issue) slots in as another provider without touching the pipeline.

type IdentityKind = 'local' | 'oidc';

/**
 * Who is behind the identity: a person, or a service acting on its own behalf (an OAuth
 * `client_credentials` token: no human signed in, so there is nobody to ask in the client).
 * Local identities are persons: the operator declares them for the person at the stdio client.
 */
export type PrincipalKind = 'person' | 'service';

export interface Identity {
  readonly kind: IdentityKind;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly principal: PrincipalKind;
  /** The token issuer for OIDC identities; `local` for operator-declared ones. */
  readonly issuer: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Resolves the caller of one request. Per request, so HTTP transports can verify a token each time. */
export interface IdentityProvider {
  identify(request: { readonly authInfo?: unknown }): Identity;
  /** The scopes of the access token behind the identity; null when it has no token (local), so nothing is scope-checked. */
  scopes(request: { readonly authInfo?: unknown }): readonly string[] | null;
}

export function makeIdentity(input: {
  kind: IdentityKind;
  subject: string;
  groups: readonly string[];
  issuer: string;
  /** Default `person`: only a verified token can say it is a service's. */
  principal?: PrincipalKind;
  claims?: Record<string, unknown>;
}): Identity {
  if (input.subject.trim() === '') throw new TypeError('identity subject must not be empty');
  return Object.freeze({
    kind: input.kind,
    subject: input.subject,
    groups: Object.freeze([...new Set(input.groups)]),
    principal: input.principal ?? 'person',
    issuer: input.issuer,
    claims: Object.freeze({ ...(input.claims ?? {}) }),
  });
}

/**
 * Local mode: the operator declares who the stdio caller is in policies/ (kind: gateway).
 * The agent cannot influence it: it comes from the config, never from tool arguments.
 */
export function localIdentityProvider(declared: { subject: string; groups: readonly string[] }): IdentityProvider {
  const identity = makeIdentity({ kind: 'local', subject: declared.subject, groups: declared.groups, issuer: 'local' });
  return { identify: () => identity, scopes: () => null };
}
