// The HTTP gateway while the OpenID provider's key set (JWKS) fails, with a
// real provider (oidc-provider) behind a relay the test controls: discovery
// names the relay, whose JWKS endpoint relays the provider's keys, answers
// garbage (200 with HTML), answers 500, resets the connection, or is gone
// (nothing listening). Every failure to fetch the keys is 503
// identity.unavailable (with Retry-After), never 401 invalid_token; tokens
// whose key was fetched before keep working; the process survives (nothing
// uncaught, no unhandled rejection); once the endpoint is back the next
// request verifies; and the calls made meanwhile are journaled with outcomes.
// (An issuer whose discovery cannot be reached at all is in test/http/http.test.ts.)

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import type { HttpGateway } from '../../src/http/server.js';
import { INITIALIZE, openSession, raw, startHarness, type Harness } from '../http/harness.js';
import { journaledCalls, watchProcessFaults, type ProcessFaults } from '../support/faults.js';

type JwksMode = 'relay' | 'garbage' | 'error' | 'reset';

interface Relay {
  readonly issuer: string;
  mode: JwksMode;
  /** Stops the JWKS listener (connections are refused), or starts it again on the same port. */
  jwksDown(): Promise<void>;
  jwksUp(): Promise<void>;
  close(): Promise<void>;
}

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Discovery on one port (always up), the JWKS on another (which can go away and come back on the same port). */
async function startRelay(upstreamJwks: string): Promise<Relay> {
  const jwks = createServer((req, res) => {
    switch (relay.mode) {
      case 'relay':
        void fetch(upstreamJwks).then(
          async (r) => {
            const body = await r.text();
            res.writeHead(r.status, { 'Content-Type': 'application/jwk-set+json' });
            res.end(body);
          },
          () => res.destroy(),
        );
        return;
      case 'garbage':
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end('<html><body>Gateway Timeout, please try again</body></html>');
        return;
      case 'error':
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end('internal error');
        return;
      case 'reset':
        req.socket.destroy();
        return;
    }
  });
  const jwksPort = await listen(jwks);
  const discovery = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      JSON.stringify({
        issuer: relay.issuer,
        jwks_uri: `http://127.0.0.1:${jwksPort}/jwks`,
        response_types_supported: ['code'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: ['RS256'],
      }),
    );
  });
  const discoveryPort = await listen(discovery);
  const relay: Relay = {
    issuer: `http://127.0.0.1:${discoveryPort}`,
    mode: 'relay',
    jwksDown: () => closeServer(jwks),
    jwksUp: async () => {
      await listen(jwks, jwksPort);
    },
    async close() {
      if (jwks.listening) await closeServer(jwks);
      await closeServer(discovery);
    },
  };
  return relay;
}

let h: Harness;
let relay: Relay;
let gateway: HttpGateway;
let faults: ProcessFaults;

beforeAll(async () => {
  faults = watchProcessFaults();
  h = await startHarness();
  relay = await startRelay(h.idp.jwksUri);
  const settings = h.gateway.config.identity as OidcIdentityDeclaration;
  // No cooldown: a token with an unknown key id makes the verifier fetch the key set at once.
  gateway = await h.serveAnother({}, createOidcVerifier({ ...settings, issuer: relay.issuer, jwks: { cache_max_age: 600_000, cooldown: 0 } }));
});
afterEach(() => {
  expect(faults.seen).toEqual([]);
});
afterAll(async () => {
  faults?.stop();
  await relay?.close();
  await h?.close();
});

const mint = () => h.idp.mint({ aud: h.resource, scope: 'mcp', iss: relay.issuer, sub: 'dev@example.com', groups: ['developers'] });

async function expectUnavailable(token: string): Promise<void> {
  const r = await raw(gateway.url, { token, body: INITIALIZE });
  expect(r.status, r.text).toBe(503);
  expect(r.headers.get('retry-after')).toBe('5');
  expect(r.messages[0]?.error?.message).toMatch(/^identity\.unavailable: The provider's keys could not be fetched: /);
  expect(r.text).not.toContain(token);
  expect(r.text).not.toMatch(/\n\s+at /);
}

async function echo(sessionId: string, token: string, id: number): Promise<string> {
  const r = await raw(gateway.url, {
    token,
    sessionId,
    body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'ssh_exec', arguments: { connection: 'web', command: `echo call-${id}` } } },
  });
  expect(r.status, r.text).toBe(200);
  const result = r.messages.find((m) => m.id === id)?.result as { isError?: boolean; content: Array<{ text: string }> };
  expect(result.isError ?? false, JSON.stringify(result)).toBe(false);
  return result.content.map((c) => c.text).join('\n');
}

describe('the JWKS endpoint fails while the HTTP gateway verifies tokens', () => {
  it('answers 503 identity.unavailable for every failure, keeps verifying tokens whose key it has, and recovers', async () => {
    // Keys fetched once through the relay: a session opens and a call runs.
    const before = await mint();
    const sessionId = await openSession(gateway.url, before);
    expect(await echo(sessionId, before, 2)).toContain('call-2');

    // The provider rotates its key; a token signed with the new key needs a fetch, which fails in each way.
    await h.idp.rotate();
    const after = await mint();
    for (const mode of ['garbage', 'error', 'reset'] as const) {
      relay.mode = mode;
      await expectUnavailable(after);
    }
    await relay.jwksDown();
    await expectUnavailable(after);

    // Meanwhile a token whose key was fetched before still verifies: its session goes on.
    expect(await echo(sessionId, before, 3)).toContain('call-3');

    // The endpoint is back: the new key is fetched and the token verifies.
    relay.mode = 'relay';
    await relay.jwksUp();
    const back = await raw(gateway.url, { token: after, body: INITIALIZE });
    expect(back.status, back.text).toBe(200);

    const calls = journaledCalls(join(h.dir, 'journal.db'));
    expect(calls.filter((c) => c.outcome['status'] === 'ok').length).toBeGreaterThanOrEqual(2);
  });
});
