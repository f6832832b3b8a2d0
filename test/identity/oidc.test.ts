// The OIDC token verifier against a real OpenID provider (oidc-provider): real
// tokens from the device flow and client credentials are accepted with their
// groups; every forged, stale, misdirected or unverifiable token is refused
// with identity.invalid_token; scopes are enforced; key rotation is picked up
// without refetching the key set on every request.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../src/errors.js';
import { createOidcVerifier, tokenIdentityProvider, type OidcVerifierSettings, type TokenVerifier } from '../../src/identity/oidc.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from '../support/oidc.js';

const RESOURCE = 'http://127.0.0.1:7777/mcp';
let idp: TestIdp;

function settings(overrides: Partial<OidcVerifierSettings> = {}): OidcVerifierSettings {
  return {
    mode: 'oidc',
    issuer: idp.issuer,
    audience: RESOURCE,
    algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
    groups_claim: 'groups',
    required_scopes: [],
    clock_tolerance: 30_000,
    jwks: { cache_max_age: 600_000, cooldown: 0 },
    token_env: 'DRAWBRIDGE_TOKEN',
    ...overrides,
  };
}

async function refusal(verifier: TokenVerifier, token: string): Promise<DrawbridgeError> {
  try {
    await verifier.verify(token);
  } catch (error) {
    expect(error).toBeInstanceOf(DrawbridgeError);
    return error as DrawbridgeError;
  }
  throw new Error('expected the token to be refused');
}

const now = () => Math.floor(Date.now() / 1000);

describe('OIDC verifier against oidc-provider', () => {
  beforeAll(async () => {
    idp = await startTestIdp({ defaultAudience: RESOURCE });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('accepts a device-flow token: subject, groups, scopes, client, expiry', async () => {
    const tokens = await idp.deviceLogin(RESOURCE, 'bob');
    const verified = await createOidcVerifier(settings()).verify(tokens.access_token);
    expect(verified.identity).toMatchObject({ kind: 'oidc', subject: 'bob', groups: ['sre', 'developers'], issuer: idp.issuer });
    expect(verified.scopes).toEqual(expect.arrayContaining(['mcp']));
    expect(verified.clientId).toBe('drawbridge-cli');
    expect(verified.expiresAt).toBeGreaterThan(now());
    // The journal-facing claims never include the token.
    expect(JSON.stringify(verified.identity)).not.toContain(tokens.access_token);
  });

  it('accepts a client-credentials token for a service agent', async () => {
    const token = await idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, RESOURCE, 'mcp');
    const verified = await createOidcVerifier(settings()).verify(token);
    expect(verified.identity).toMatchObject({ subject: 'agent-svc', groups: ['agents'] });
  });

  it('a client-credentials token is a service principal (RFC 9068: sub is the client); a device-flow token a person', async () => {
    const verifier = createOidcVerifier(settings());
    const service = await verifier.verify(await idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, RESOURCE, 'mcp'));
    expect(service.identity).toMatchObject({ subject: 'agent-svc', principal: 'service', claims: { client_id: 'agent-svc' } });
    const person = await verifier.verify((await idp.deviceLogin(RESOURCE, 'alice')).access_token);
    expect(person.identity).toMatchObject({ subject: 'alice', principal: 'person', claims: { client_id: 'drawbridge-cli' } });
    // azp instead of client_id (some providers): the same test.
    const azp = await verifier.verify(await idp.mint({ sub: 'svc-7', client_id: undefined, azp: 'svc-7' }));
    expect(azp.identity.principal).toBe('service');
    // A subject that merely looks like a client id of another client is a person.
    expect((await verifier.verify(await idp.mint({ sub: 'agent-svc', client_id: 'drawbridge-cli' }))).identity.principal).toBe('person');
  });

  it('service_principal by claim overrides RFC 9068 (e.g. Auth0 gty, Keycloak service-account-*)', async () => {
    const byGty = createOidcVerifier(settings({ service_principal: { claim: 'gty', matches: ['client-credentials'] } }));
    expect((await byGty.verify(await idp.mint({ sub: 'abc@clients', client_id: 'abc', gty: 'client-credentials' }))).identity.principal).toBe('service');
    // With a claim configured, sub = client id alone no longer says service.
    expect((await byGty.verify(await idp.mint({ sub: 'drawbridge-cli' }))).identity.principal).toBe('person');
    const byName = createOidcVerifier(settings({ service_principal: { claim: 'preferred_username', matches: ['service-account-*'] } }));
    expect((await byName.verify(await idp.mint({ sub: 'f1e2', preferred_username: 'service-account-ci' }))).identity.principal).toBe('service');
    expect((await byName.verify(await idp.mint({ sub: 'f1e3', preferred_username: 'carol' }))).identity.principal).toBe('person');
  });

  it('grants per-operation scopes asked for by name (sql:write), and only those', async () => {
    const verifier = createOidcVerifier(settings());
    const { clientId, clientSecret } = TEST_CLIENTS.agent;
    expect((await verifier.verify(await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE, 'mcp sql:write'))).scopes).toEqual(['mcp', 'sql:write']);
    expect((await verifier.verify(await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE, 'mcp'))).scopes).toEqual(['mcp']);
    expect((await verifier.verify((await idp.deviceLogin(RESOURCE, 'bob', 'mcp sql:write')).access_token)).scopes).toEqual(['mcp', 'sql:write']);
  });

  it.each([
    ['carol', 'groups', []],
    ['dave', 'groups', ['sre']],
    ['erin', 'realm_access.roles', ['dba']],
    ['erin', 'groups', []],
  ] as const)('groups of %s from %s: %j', async (account, claim, groups) => {
    const tokens = await idp.deviceLogin(RESOURCE, account);
    const verified = await createOidcVerifier(settings({ groups_claim: claim })).verify(tokens.access_token);
    expect(verified.identity.groups).toEqual(groups);
  });

  const cases: Array<[string, () => Promise<string>, RegExp]> = [
    ['expired', () => idp.mint({ iat: now() - 600, exp: now() - 120 }), /has expired/],
    ['expired just inside the tolerance is still fine', async () => idp.mint({ exp: now() - 5 }), /^$/],
    ['not yet valid', () => idp.mint({ nbf: now() + 600 }), /not valid yet/],
    ['wrong audience', () => idp.mint({ aud: 'http://127.0.0.1:9999/other' }), /another audience/],
    ['wrong issuer', () => idp.mint({ iss: 'http://127.0.0.1:1/evil' }), /another issuer/],
    ['bad signature', () => idp.mint({}, { sign: 'foreign' }), /signature does not verify/],
    ['alg none', () => idp.mint({}, { sign: 'none' }), /signed with "none"/],
    ['HS256 with the public key as secret', () => idp.mint({}, { sign: 'hs256-public' }), /signed with "HS256"/],
    ['no subject', () => idp.mint({ sub: undefined }), /subject|sub/],
    ['no expiry', () => idp.mint({ exp: undefined }), /expiry|exp/],
    ['an ID token type', () => idp.mint({}, { header: { typ: 'id_token+jwt' } }), /not an access token/],
    ['opaque', async () => 'Xs1kW3OpaqueTokenWithoutDots-1234567890', /not a JWT/],
    ['garbage with dots', async () => 'a.b.c', /malformed/],
    ['malformed groups', () => idp.mint({ groups: { admin: true } }), /neither a string nor a list/],
  ];

  it.each(cases)('%s', async (_name, make, why) => {
    const verifier = createOidcVerifier(settings());
    const token = await make();
    if (why.source === '^$') {
      await expect(verifier.verify(token)).resolves.toMatchObject({ identity: { subject: 'alice' } });
      return;
    }
    const error = await refusal(verifier, token);
    expect(error.code).toBe('identity.invalid_token');
    expect(error.message).toMatch(why);
    expect(error.message).not.toContain(token);
  });

  it('refuses a token without a required scope with identity.insufficient_scope', async () => {
    const verifier = createOidcVerifier(settings({ required_scopes: ['mcp', 'admin'] }));
    const error = await refusal(verifier, await idp.mint({ scope: 'mcp' }));
    expect(error.code).toBe('identity.insufficient_scope');
    expect(error.message).toMatch(/lacks the scope admin/);
    await expect(verifier.verify(await idp.mint({ scope: 'mcp admin' }))).resolves.toBeDefined();
  });

  it('refuses an algorithm outside the configured list even when the signature is good', async () => {
    const error = await refusal(createOidcVerifier(settings({ algorithms: ['ES256'] })), await idp.mint({}));
    expect(error.message).toMatch(/signed with "RS256"; this gateway accepts ES256 only/);
  });

  it('checks a token once and answers the same token from its cache until a minute has passed or the token expires', async () => {
    let clock = Date.now();
    const verifier = createOidcVerifier(settings({ clock_tolerance: 0 }), () => clock);
    // The first call fetches the key set, which forgets what was verified meanwhile.
    await verifier.verify(await idp.mint({}));
    const token = await idp.mint({});
    const first = await verifier.verify(token);
    // The very same answer: no second signature check.
    expect(await verifier.verify(token)).toBe(first);
    clock += 59_000;
    expect(await verifier.verify(token)).toBe(first);
    // Past the minute the token is verified again (it is still valid by the provider's clock).
    clock += 2_000;
    const again = await verifier.verify(token);
    expect(again).not.toBe(first);
    expect(again).toEqual(first);

    // A token expiring within the minute is trusted from the cache only until its expiry.
    const short = await idp.mint({ exp: now() + 30 });
    clock = Date.now();
    const shortFirst = await verifier.verify(short);
    clock = shortFirst.expiresAt * 1000 - 1;
    expect(await verifier.verify(short)).toBe(shortFirst);
    clock = shortFirst.expiresAt * 1000;
    expect(await verifier.verify(short)).not.toBe(shortFirst);

    // Another token of the same subject is its own entry; a refused token is never remembered.
    expect(await verifier.verify(await idp.mint({}))).not.toBe(first);
    const forged = `${token.slice(0, token.lastIndexOf('.'))}.${'A'.repeat(20)}`;
    for (let i = 0; i < 2; i++) expect((await refusal(verifier, forged)).code).toBe('identity.invalid_token');
  });

  it('follows key rotation: a new kid refetches the key set once, not per request', async () => {
    const verifier = createOidcVerifier(settings({ jwks: { cache_max_age: 600_000, cooldown: 0 } }));
    await verifier.verify(await idp.mint({}));
    const before = idp.jwksFetches();
    for (let i = 0; i < 5; i++) await verifier.verify(await idp.mint({}));
    expect(idp.jwksFetches()).toBe(before);

    const oldToken = await idp.mint({});
    await idp.rotate({ keepOld: true });
    await expect(verifier.verify(await idp.mint({}))).resolves.toBeDefined();
    expect(idp.jwksFetches()).toBe(before + 1);
    // The old key is still published: its tokens stay valid until they expire.
    await expect(verifier.verify(oldToken)).resolves.toBeDefined();
    for (let i = 0; i < 5; i++) await verifier.verify(await idp.mint({}));
    expect(idp.jwksFetches()).toBe(before + 1);

    await idp.rotate({ keepOld: false });
    await expect(verifier.verify(await idp.mint({}))).resolves.toBeDefined();
    // The retired key is gone: a token signed with it no longer verifies.
    const error = await refusal(verifier, oldToken);
    expect(error.message).toMatch(/key the provider does not publish/);
  });

  it('during the cooldown an unknown kid is refused without another fetch', async () => {
    const verifier = createOidcVerifier(settings({ jwks: { cache_max_age: 600_000, cooldown: 600_000 } }));
    await verifier.verify(await idp.mint({}));
    const before = idp.jwksFetches();
    await idp.rotate({ keepOld: false });
    for (let i = 0; i < 3; i++) {
      const error = await refusal(verifier, await idp.mint({}));
      expect(error.code).toBe('identity.invalid_token');
    }
    expect(idp.jwksFetches()).toBe(before);
  });

  it('reports an unreachable provider as identity.unavailable, and recovers once it is back', async () => {
    const verifier = createOidcVerifier(settings({ issuer: 'http://127.0.0.1:1' }));
    const error = await refusal(verifier, await idp.mint({ iss: 'http://127.0.0.1:1' }));
    expect(error.code).toBe('identity.unavailable');
    expect(error.message).toMatch(/could not be discovered/);
  });

  it('stdio: a token verified at start serves its subject, and is refused from its expiry on', async () => {
    let clock = Date.now();
    const token = await idp.mint({ sub: 'dave', groups: 'sre', exp: now() + 60 });
    const { provider, verified } = await tokenIdentityProvider(createOidcVerifier(settings({ clock_tolerance: 0 })), token, () => clock);
    expect(provider.identify({})).toMatchObject({ subject: 'dave', groups: ['sre'], kind: 'oidc', principal: 'person' });
    // stdio with OIDC: the token's scopes go with every call (scope-checked like HTTP).
    expect(provider.scopes({})).toEqual(verified.scopes);
    clock = verified.expiresAt * 1000 + 1;
    expect(() => provider.identify({})).toThrow(/expired at/);
    try {
      provider.identify({});
    } catch (error) {
      expect((error as DrawbridgeError).code).toBe('identity.expired');
    }
    await expect(tokenIdentityProvider(createOidcVerifier(settings()), await idp.mint({ exp: now() - 3600, iat: now() - 4000 }))).rejects.toThrow(
      /has expired/,
    );
  });
});
