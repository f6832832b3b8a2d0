// The HTTP layer's pure parts: where the metadata lives for a public URL,
// challenge quoting, which Host/Origin a loopback bind serves, and that only
// AuthInfo minted by the auth step can carry an identity.

import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { makeIdentity } from '../../src/identity/identity.js';
import type { TokenVerifier } from '../../src/identity/oidc.js';
import { authenticate, bearerChallenge, identityOf, quoteParam, requestIdentityProvider } from '../../src/http/auth.js';
import { hostPolicy, hostRefusal, isLoopbackHost } from '../../src/http/hosts.js';
import { locateResource, protectedResourceMetadata } from '../../src/http/metadata.js';

const alice = makeIdentity({ kind: 'oidc', subject: 'alice', groups: ['developers'], issuer: 'https://idp.example' });

function fakeVerifier(requiredScopes: string[] = []): TokenVerifier & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    issuer: 'https://idp.example',
    audience: 'https://gw.example/mcp',
    requiredScopes,
    clockToleranceMs: 0,
    async verify(token) {
      seen.push(token);
      return { identity: alice, scopes: ['mcp'], expiresAt: 2_000_000_000, clientId: 'cli' };
    },
  };
}

/** A request with these headers and nothing else (an unconnected socket): what auth and hosts read. */
function request(headers: Record<string, string>): IncomingMessage {
  const message = new IncomingMessage(new Socket());
  message.headers = headers;
  return message;
}

describe('locateResource', () => {
  it('inserts the well-known segment before the path (RFC 9728 §3.1)', () => {
    expect(locateResource('http://127.0.0.1:8080/mcp')).toEqual({
      resource: 'http://127.0.0.1:8080/mcp',
      mcpPath: '/mcp',
      metadataPaths: ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource'],
      metadataUrl: 'http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp',
    });
    const proxied = locateResource('https://gw.example.com/drawbridge/mcp#frag');
    expect(proxied.resource).toBe('https://gw.example.com/drawbridge/mcp');
    expect(proxied.mcpPath).toBe('/drawbridge/mcp');
    expect(proxied.metadataUrl).toBe('https://gw.example.com/.well-known/oauth-protected-resource/drawbridge/mcp');
    expect(locateResource('https://gw.example.com').metadataPaths).toEqual(['/.well-known/oauth-protected-resource']);
  });

  it('refuses what cannot be a resource identifier', () => {
    expect(() => locateResource('not a url')).toThrow(TypeError);
    expect(() => locateResource('ftp://gw.example/mcp')).toThrow(TypeError);
    expect(() => locateResource('https://gw.example/mcp?x=1')).toThrow(TypeError);
  });

  it('the metadata document names the issuer and the required scopes', () => {
    expect(protectedResourceMetadata('https://gw.example/mcp', fakeVerifier(['mcp']))).toEqual({
      resource: 'https://gw.example/mcp',
      authorization_servers: ['https://idp.example'],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp'],
      resource_name: 'Drawbridge',
    });
  });
});

describe('challenges', () => {
  it('quotes and escapes auth-params, and drops control characters', () => {
    expect(quoteParam('say "hi" \\ bye')).toBe('"say \\"hi\\" \\\\ bye"');
    expect(quoteParam('line\r\nbreak')).toBe('"line  break"');
    expect(
      bearerChallenge([
        ['error', 'invalid_token'],
        ['error_description', undefined],
        ['resource_metadata', 'https://x/y'],
      ]),
    ).toBe('Bearer error="invalid_token", resource_metadata="https://x/y"');
    expect(bearerChallenge([])).toBe('Bearer');
  });
});

describe('authenticate', () => {
  const context = (v: TokenVerifier) => ({
    verifier: v,
    resource: 'https://gw.example/mcp',
    metadataUrl: 'https://gw.example/.well-known/oauth-protected-resource/mcp',
  });

  it('passes the header token to the verifier and mints an AuthInfo with the identity, never the token', async () => {
    const v = fakeVerifier();
    const outcome = await authenticate(request({ authorization: 'Bearer abc.def.ghi' }), new URL('http://x/mcp'), context(v));
    expect(v.seen).toEqual(['abc.def.ghi']);
    expect(outcome.ok).toBe(true);
    if (!outcome.ok) return;
    expect(outcome.authInfo.token).toBe('');
    expect(JSON.stringify(outcome.authInfo)).not.toContain('abc.def.ghi');
    expect(identityOf(outcome.authInfo)).toBe(alice);
    expect(requestIdentityProvider.identify({ authInfo: outcome.authInfo })).toBe(alice);
  });

  it('an AuthInfo not minted by the auth step carries no identity', () => {
    const forged = { token: 'x', clientId: 'c', scopes: [], extra: { identity: alice } };
    expect(identityOf(forged)).toBeNull();
    expect(() => requestIdentityProvider.identify({ authInfo: forged })).toThrow(/identity|token/);
    expect(() => requestIdentityProvider.identify({})).toThrow();
  });

  it('refuses the query string and malformed headers without calling the verifier', async () => {
    const v = fakeVerifier(['mcp']);
    const query = await authenticate(request({ authorization: 'Bearer abc' }), new URL('http://x/mcp?Access_Token=abc'), context(v));
    expect(query.ok).toBe(false);
    if (!query.ok) expect(query.refusal.status).toBe(400);
    const malformed = await authenticate(request({ authorization: 'Bearer a b c' }), new URL('http://x/mcp'), context(v));
    expect(malformed.ok).toBe(false);
    if (!malformed.ok) expect(malformed.refusal.headers['WWW-Authenticate']).toContain('error="invalid_request"');
    const missing = await authenticate(request({}), new URL('http://x/mcp'), context(v));
    expect(missing.ok).toBe(false);
    if (!missing.ok) {
      expect(missing.refusal.status).toBe(401);
      expect(missing.refusal.headers['WWW-Authenticate']).toBe(
        'Bearer resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp", scope="mcp"',
      );
    }
    expect(v.seen).toEqual([]);
  });
});

describe('host policy', () => {
  it('on loopback serves the loopback names on the port and the public host only', () => {
    const policy = hostPolicy('127.0.0.1', 8080, 'https://gw.example.com/mcp');
    expect(policy.allowedHosts).toEqual(expect.arrayContaining(['127.0.0.1:8080', 'localhost:8080', 'gw.example.com']));
    expect(hostRefusal(policy, request({ host: 'localhost:8080' }))).toBeNull();
    expect(hostRefusal(policy, request({ host: 'gw.example.com' }))).toBeNull();
    expect(hostRefusal(policy, request({ host: 'evil.example:8080' }))).toMatch(/Host/);
    expect(hostRefusal(policy, request({}))).toMatch(/Host/);
    expect(hostRefusal(policy, request({ host: 'localhost:8080', origin: 'http://evil.example' }))).toMatch(/Origin/);
    expect(hostRefusal(policy, request({ host: 'localhost:8080', origin: 'https://gw.example.com' }))).toBeNull();
    expect(hostPolicy('::1', 8080, 'http://[::1]:8080/mcp').allowedHosts).toContain('[::1]:8080');
  });

  it('does not restrict a non-loopback bind (a proxy owns Host there)', () => {
    expect(isLoopbackHost('0.0.0.0')).toBe(false);
    expect(isLoopbackHost('127.0.0.2')).toBe(true);
    const policy = hostPolicy('0.0.0.0', 8080, 'https://gw.example.com/mcp');
    expect(hostRefusal(policy, request({ host: 'anything' }))).toBeNull();
  });
});
