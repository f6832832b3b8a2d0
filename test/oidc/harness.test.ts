// Proves each capability of the test OpenID provider in test/support/oidc.ts:
// discovery, client credentials and device-flow JWT access tokens with the
// account/client claims, refresh, a device flow started by openid-client and
// approved by the harness, minted negative-test tokens, key rotation on the
// same port, and the JWKS fetch counter.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import * as oidcClient from 'openid-client';
import { DEVICE_CODE_GRANT_TYPE, startTestIdp, TEST_ACCOUNTS, TEST_CLIENTS, TEST_RESOURCE_SCOPES, type TestIdp } from '../support/oidc.js';

const RESOURCE = 'http://127.0.0.1:7/mcp';
const OTHER_RESOURCE = 'http://localhost:9/mcp';

async function cliConfig(idp: TestIdp): Promise<oidcClient.Configuration> {
  return oidcClient.discovery(new URL(idp.issuer), TEST_CLIENTS.cli.clientId, undefined, oidcClient.None(), {
    execute: [oidcClient.allowInsecureRequests],
  });
}

async function publishedKeys(idp: TestIdp): Promise<JWK[]> {
  const res = await fetch(idp.jwksUri);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { keys: JWK[] };
  return body.keys;
}

async function verify(idp: TestIdp, token: string, audience = RESOURCE): Promise<JWTPayload> {
  const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
  const { payload } = await jwtVerify(token, jwks, { issuer: idp.issuer, audience, typ: 'at+jwt' });
  return payload;
}

function claimsOf(payload: JWTPayload): Record<string, unknown> {
  return { groups: payload['groups'], realm_access: payload['realm_access'] };
}

describe('test OpenID provider', () => {
  let idp: TestIdp;

  beforeAll(async () => {
    idp = await startTestIdp({ defaultAudience: RESOURCE });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('serves a discovery document for its loopback issuer', async () => {
    expect(idp.issuer).toBe(`http://127.0.0.1:${idp.port}`);
    const res = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Record<string, unknown>;
    expect(doc['issuer']).toBe(idp.issuer);
    expect(doc['jwks_uri']).toBe(`${idp.issuer}/jwks`);
    expect(doc['jwks_uri']).toBe(idp.jwksUri);
    expect(doc['device_authorization_endpoint']).toBe(`${idp.issuer}/device/auth`);
    expect(doc['token_endpoint']).toBe(`${idp.issuer}/token`);
    expect(doc['grant_types_supported']).toEqual(expect.arrayContaining(['client_credentials', DEVICE_CODE_GRANT_TYPE, 'refresh_token']));
  });

  it('issues client-credentials JWT access tokens with the per-client groups', async () => {
    const { clientId, clientSecret } = TEST_CLIENTS.agent;
    const token = await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE, 'mcp');
    const header = decodeProtectedHeader(token);
    expect(header.typ).toBe('at+jwt');
    expect(header.alg).toBe('RS256');
    expect(header.kid).toBe(idp.currentKid());
    const payload = await verify(idp, token);
    expect(payload.iss).toBe(idp.issuer);
    expect(payload.aud).toBe(RESOURCE);
    expect(payload.sub).toBe(clientId);
    expect(payload['client_id']).toBe(clientId);
    expect(payload['groups']).toEqual(['agents']);
    expect(payload['scope']).toBe('mcp');
    expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(300);

    const other = await idp.clientCredentialsToken(TEST_CLIENTS.other.clientId, TEST_CLIENTS.other.clientSecret, OTHER_RESOURCE);
    const otherPayload = await verify(idp, other, OTHER_RESOURCE);
    expect(otherPayload['groups']).toEqual(['others']);
    expect(otherPayload.aud).toBe(OTHER_RESOURCE);
    expect(otherPayload['scope']).toBeUndefined();
  });

  it('refuses a wrong client secret and a non-local resource', async () => {
    await expect(idp.clientCredentialsToken('agent-svc', 'wrong', RESOURCE)).rejects.toThrow(/invalid_client/);
    await expect(idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, 'https://example.com/mcp')).rejects.toThrow(
      /invalid_target/,
    );
  });

  const expectedClaims: Record<string, Record<string, unknown>> = {
    alice: { groups: ['developers'], realm_access: undefined },
    bob: { groups: ['sre', 'developers'], realm_access: undefined },
    carol: { groups: undefined, realm_access: undefined },
    dave: { groups: 'sre', realm_access: undefined },
    erin: { groups: undefined, realm_access: { roles: ['dba'] } },
  };

  it('exports the account table the tests expect', () => {
    expect(Object.keys(TEST_ACCOUNTS).sort()).toEqual(Object.keys(expectedClaims).sort());
  });

  it.each(Object.keys(expectedClaims))('device login as %s: claims in the access token, refresh keeps them and the audience', async (account) => {
    const tokens = await idp.deviceLogin(RESOURCE, account, 'mcp approvals');
    expect(tokens.token_type).toBe('Bearer');
    expect(tokens.expires_in).toBeGreaterThan(0);
    expect(tokens.expires_in).toBeLessThanOrEqual(300);
    expect(tokens.scope).toBe('mcp approvals');
    expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
    const payload = await verify(idp, tokens.access_token);
    expect(payload.sub).toBe(account);
    expect(payload.aud).toBe(RESOURCE);
    expect(payload['client_id']).toBe(TEST_CLIENTS.cli.clientId);
    expect(payload['scope']).toBe('mcp approvals');
    expect(claimsOf(payload)).toEqual(expectedClaims[account]);
    if (account === 'carol') expect('groups' in payload).toBe(false);
    if (account === 'erin') expect('groups' in payload).toBe(false);

    expect(tokens.refresh_token).toEqual(expect.any(String));
    const config = await cliConfig(idp);
    const refreshed = await oidcClient.refreshTokenGrant(config, tokens.refresh_token ?? '');
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    const refreshedPayload = await verify(idp, refreshed.access_token);
    expect(refreshedPayload.sub).toBe(account);
    expect(refreshedPayload.aud).toBe(RESOURCE);
    expect(refreshedPayload['scope']).toBe('mcp approvals');
    expect(claimsOf(refreshedPayload)).toEqual(expectedClaims[account]);
  });

  it('device login defaults to every resource scope; a subset can be asked for', async () => {
    const tokens = await idp.deviceLogin(OTHER_RESOURCE, 'alice');
    const payload = await verify(idp, tokens.access_token, OTHER_RESOURCE);
    expect(payload.sub).toBe('alice');
    expect(payload.aud).toBe(OTHER_RESOURCE);
    expect(payload['scope']).toBe(TEST_RESOURCE_SCOPES);
    expect(payload['groups']).toEqual(['developers']);
    const narrow = await idp.deviceLogin(OTHER_RESOURCE, 'alice', 'approvals');
    expect((await verify(idp, narrow.access_token, OTHER_RESOURCE))['scope']).toBe('approvals');
  });

  it('a device flow that asks for no scope ends in access_denied (oidc-provider rule)', async () => {
    const config = await cliConfig(idp);
    const started = await oidcClient.initiateDeviceAuthorization(config, { resource: RESOURCE });
    await expect(idp.approveDevice(started.user_code, 'alice')).rejects.toThrow(/no scope was granted/);
    const res = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: DEVICE_CODE_GRANT_TYPE,
        device_code: started.device_code,
        client_id: TEST_CLIENTS.cli.clientId,
      }).toString(),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Record<string, unknown>)['error']).toBe('access_denied');
  });

  it('approves a device flow started and polled by openid-client', async () => {
    const config = await cliConfig(idp);
    const started = await oidcClient.initiateDeviceAuthorization(config, { resource: RESOURCE, scope: 'mcp' });
    expect(started.verification_uri).toBe(`${idp.issuer}/device`);
    const polled = oidcClient.pollDeviceAuthorizationGrant(config, started);
    await idp.approveDevice(started.user_code, 'bob');
    const tokens = await polled;
    const payload = await verify(idp, tokens.access_token);
    expect(payload.sub).toBe('bob');
    expect(payload['groups']).toEqual(['sre', 'developers']);
    expect(payload['scope']).toBe('mcp');
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });

  it('denyDevice makes the poller get access_denied; unknown codes and accounts are refused', async () => {
    const config = await cliConfig(idp);
    const started = await oidcClient.initiateDeviceAuthorization(config, { resource: RESOURCE, scope: 'mcp' });
    await idp.denyDevice(started.user_code);
    const res = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: DEVICE_CODE_GRANT_TYPE,
        device_code: started.device_code,
        client_id: TEST_CLIENTS.cli.clientId,
      }).toString(),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Record<string, unknown>)['error']).toBe('access_denied');

    await expect(idp.approveDevice('BCDF-GHJK', 'alice')).rejects.toThrow(/device-input page: NotFoundError/);
    const second = await oidcClient.initiateDeviceAuthorization(config, { resource: RESOURCE, scope: 'mcp' });
    await expect(idp.approveDevice(second.user_code, 'mallory')).rejects.toThrow(/unknown_account/);
  });

  describe('mint', () => {
    it('current: a valid token with the defaults and the given claims', async () => {
      const token = await idp.mint({ sub: 'bob', groups: ['sre'] });
      const header = decodeProtectedHeader(token);
      expect(header).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: idp.currentKid() });
      const payload = await verify(idp, token);
      expect(payload.iss).toBe(idp.issuer);
      expect(payload.sub).toBe('bob');
      expect(payload.aud).toBe(RESOURCE);
      expect(payload['groups']).toEqual(['sre']);
      expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(300);
    });

    it('current: header overrides and removed default claims', async () => {
      const token = await idp.mint({ exp: undefined, aud: 'http://127.0.0.1:1/elsewhere' }, { header: { typ: 'JWT' } });
      expect(decodeProtectedHeader(token).typ).toBe('JWT');
      const payload = decodeJwt(token);
      expect('exp' in payload).toBe(false);
      expect(payload.aud).toBe('http://127.0.0.1:1/elsewhere');
      await expect(verify(idp, token)).rejects.toThrow();
    });

    it('foreign: the provider kid but a signature that does not verify', async () => {
      const token = await idp.mint({}, { sign: 'foreign' });
      const header = decodeProtectedHeader(token);
      expect(header.kid).toBe(idp.currentKid());
      expect(header.alg).toBe('RS256');
      await expect(verify(idp, token)).rejects.toBeInstanceOf(joseErrors.JWSSignatureVerificationFailed);
    });

    it('none: alg none, empty signature, rejected by a verifier', async () => {
      const token = await idp.mint({}, { sign: 'none' });
      expect(decodeProtectedHeader(token).alg).toBe('none');
      expect(token.endsWith('.')).toBe(true);
      expect(token.split('.')).toHaveLength(3);
      expect(decodeJwt(token).iss).toBe(idp.issuer);
      await expect(verify(idp, token)).rejects.toThrow();
    });

    it('hs256-public: HMAC keyed with the published public JWK JSON', async () => {
      const token = await idp.mint({}, { sign: 'hs256-public' });
      const header = decodeProtectedHeader(token);
      expect(header.alg).toBe('HS256');
      expect(header.kid).toBe(idp.currentKid());
      // A verifier that (wrongly) uses the JWKS entry as an HMAC secret accepts it…
      const published = (await publishedKeys(idp)).find((k) => k.kid === idp.currentKid());
      expect(published).toBeDefined();
      const secret = new TextEncoder().encode(JSON.stringify(published));
      const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'] });
      expect(payload.iss).toBe(idp.issuer);
      // …a correct one does not.
      await expect(verify(idp, token)).rejects.toThrow();
    });
  });

  it('counts JWKS fetches', async () => {
    const before = idp.jwksFetches();
    const token = await idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, RESOURCE);
    const jwks = createRemoteJWKSet(new URL(idp.jwksUri));
    await jwtVerify(token, jwks, { issuer: idp.issuer, audience: RESOURCE });
    await jwtVerify(token, jwks, { issuer: idp.issuer, audience: RESOURCE });
    expect(idp.jwksFetches()).toBe(before + 1); // the remote set caches
    await publishedKeys(idp);
    expect(idp.jwksFetches()).toBe(before + 2);
    // Discovery and token requests are not JWKS fetches.
    await fetch(`${idp.issuer}/.well-known/openid-configuration`).then((r) => r.arrayBuffer());
    expect(idp.jwksFetches()).toBe(before + 2);
  });
});

describe('test OpenID provider key rotation', () => {
  let idp: TestIdp;

  beforeAll(async () => {
    idp = await startTestIdp();
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('rotate({ keepOld }) publishes old and new keys; rotate() only the new one', async () => {
    const { clientId, clientSecret } = TEST_CLIENTS.agent;
    const issuer = idp.issuer;
    const port = idp.port;
    const firstKid = idp.currentKid();
    const before = await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE);
    expect(decodeProtectedHeader(before).kid).toBe(firstKid);
    const deviceTokens = await idp.deviceLogin(RESOURCE, 'alice', 'mcp');
    expect((await publishedKeys(idp)).map((k) => k.kid)).toEqual([firstKid]);

    await idp.rotate({ keepOld: true });
    expect(idp.issuer).toBe(issuer);
    expect(idp.port).toBe(port);
    const secondKid = idp.currentKid();
    expect(secondKid).not.toBe(firstKid);
    expect((await publishedKeys(idp)).map((k) => k.kid)).toEqual([secondKid, firstKid]);
    const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery['issuer']).toBe(issuer);

    const after = await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE);
    expect(decodeProtectedHeader(after).kid).toBe(secondKid);
    await verify(idp, after);
    await verify(idp, before); // old key still published
    expect(decodeProtectedHeader(await idp.mint({ aud: RESOURCE })).kid).toBe(secondKid);

    // Provider state survives the restart: the refresh token still works, new kid.
    const config = await cliConfig(idp);
    const refreshed = await oidcClient.refreshTokenGrant(config, deviceTokens.refresh_token ?? '');
    expect(decodeProtectedHeader(refreshed.access_token).kid).toBe(secondKid);
    expect((await verify(idp, refreshed.access_token)).sub).toBe('alice');

    await idp.rotate();
    const thirdKid = idp.currentKid();
    expect(thirdKid).not.toBe(secondKid);
    expect((await publishedKeys(idp)).map((k) => k.kid)).toEqual([thirdKid]);
    const third = await idp.clientCredentialsToken(clientId, clientSecret, RESOURCE);
    expect(decodeProtectedHeader(third).kid).toBe(thirdKid);
    await verify(idp, third);
    await expect(verify(idp, after)).rejects.toBeInstanceOf(joseErrors.JWKSNoMatchingKey);
  });
});

describe('test OpenID provider options and lifecycle', () => {
  it('honours accessTokenTtlSeconds, alg ES256 and extra accounts', async () => {
    const idp = await startTestIdp({ accessTokenTtlSeconds: 60, alg: 'ES256', accounts: { frank: { groups: ['ops'] } } });
    try {
      const cc = await idp.clientCredentialsToken(TEST_CLIENTS.agent.clientId, TEST_CLIENTS.agent.clientSecret, RESOURCE);
      expect(decodeProtectedHeader(cc).alg).toBe('ES256');
      const ccPayload = await verify(idp, cc);
      expect((ccPayload.exp ?? 0) - (ccPayload.iat ?? 0)).toBe(60);

      const tokens = await idp.deviceLogin(RESOURCE, 'frank');
      expect(tokens.expires_in).toBeLessThanOrEqual(60);
      const payload = await verify(idp, tokens.access_token);
      expect((payload.exp ?? 0) - (payload.iat ?? 0)).toBe(60);
      expect(payload['groups']).toEqual(['ops']);

      const minted = await idp.mint({ aud: RESOURCE });
      expect(decodeProtectedHeader(minted).alg).toBe('ES256');
      await verify(idp, minted);
      await expect(verify(idp, await idp.mint({ aud: RESOURCE }, { sign: 'foreign' }))).rejects.toBeInstanceOf(joseErrors.JWSSignatureVerificationFailed);
      await expect(idp.mint({})).rejects.toThrow(/claims\.aud/);
    } finally {
      await idp.stop();
    }
  });

  it('stop() closes the listener', async () => {
    const idp = await startTestIdp();
    const res = await fetch(`${idp.issuer}/.well-known/openid-configuration`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    await idp.stop();
    await expect(fetch(`${idp.issuer}/.well-known/openid-configuration`)).rejects.toThrow();
    await idp.stop(); // idempotent
  });
});
