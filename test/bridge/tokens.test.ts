// Token acquisition for `drawbridge connect` against a real OpenID provider
// (oidc-provider, test/support/oidc.ts) and a stand-in gateway that serves
// RFC 9728 metadata and verifies tokens with the gateway's own verifier:
// discovery (path-inserted, root, 401 challenge), the device flow played by a
// scripted human, client credentials, the 0600 cache and its reuse, refresh
// before expiry and after a refusal, and the fallback to a new sign-in.

import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  defaultTokenCachePath,
  discoverProtectedResource,
  obtainAccessToken,
  resourceCovers,
  type BridgeOptions,
  type TokenSource,
} from '../../src/bridge/tokens.js';
import { isDrawbridgeError } from '../../src/errors.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from '../support/oidc.js';
import { freePort } from '../support/net.js';
import { startStandIn, type StandIn } from './standIn.js';

let idp: TestIdp;
let shortIdp: TestIdp;
let gateway: StandIn;
let shortGateway: StandIn;
const cleanups: Array<() => Promise<void> | void> = [];
let dir: string;

beforeAll(async () => {
  idp = await startTestIdp();
  shortIdp = await startTestIdp({ accessTokenTtlSeconds: 4 });
  gateway = await startStandIn({ issuer: idp.issuer });
  shortGateway = await startStandIn({ issuer: shortIdp.issuer });
  dir = mkdtempSync(join(tmpdir(), 'drawbridge-bridge-tokens-'));
});

afterAll(async () => {
  await gateway?.close();
  await shortGateway?.close();
  await idp?.stop();
  await shortIdp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function payload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

interface Run {
  readonly lines: string[];
  readonly options: BridgeOptions;
  /** Resolves with the user code of the next sign-in prompt. */
  prompt(): Promise<string>;
}

let cacheCount = 0;
function run(target: StandIn, overrides: Partial<BridgeOptions> = {}): Run {
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  const options: BridgeOptions = {
    url: target.url,
    clientId: TEST_CLIENTS.cli.clientId,
    tokenCache: join(dir, `cache-${++cacheCount}`, 'tokens.json'),
    log: (line) => {
      lines.push(line);
      for (const w of waiters.splice(0)) w(line);
    },
    ...overrides,
  };
  let seenPrompts = 0;
  return {
    lines,
    options,
    async prompt() {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const prompts = lines.filter((l) => l.startsWith('To sign in to '));
        if (prompts.length > seenPrompts) {
          const line = prompts[seenPrompts++]!;
          const match = / open (\S+) and enter (\S+)$/.exec(line);
          if (!match) throw new Error(`unexpected prompt: ${line}`);
          return match[2]!;
        }
        if (Date.now() > deadline) throw new Error(`no sign-in prompt; log: ${lines.join(' | ')}`);
        await new Promise<void>((resolve) => {
          waiters.push(() => resolve());
          setTimeout(resolve, 200);
        });
      }
    },
  };
}

/** obtainAccessToken with the human (account) approving the device flow it prints. */
async function signIn(r: Run, account: string, provider: TestIdp = idp): Promise<TokenSource> {
  const pending = obtainAccessToken(r.options);
  const code = await Promise.race([
    r.prompt(),
    pending.then(() => {
      throw new Error('signed in without a prompt');
    }),
  ]);
  await provider.approveDevice(code, account);
  return pending;
}

function noTokenLogged(r: Run, ...tokens: string[]): void {
  for (const t of tokens) {
    for (const line of r.lines) expect(line).not.toContain(t);
    const [, body] = t.split('.');
    for (const line of r.lines) expect(line).not.toContain(body);
  }
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

// ---------------------------------------------------------------------------

describe('device flow', () => {
  it('prompts, waits for the human, and gets a JWT for the gateway (aud = resource) that the gateway accepts', async () => {
    const r = run(gateway);
    const tokens = await signIn(r, 'alice');
    const token = await tokens.current();

    const prompt = r.lines.find((l) => l.startsWith('To sign in to '))!;
    expect(prompt).toMatch(
      new RegExp(`^To sign in to ${gateway.url.replace(/[.:/]/g, '\\$&')}, open ${idp.issuer.replace(/[.:/]/g, '\\$&')}/device and enter \\S+$`),
    );
    expect(r.lines.some((l) => l.includes('or open') && l.includes('/device?user_code='))).toBe(true);
    expect(r.lines.some((l) => l.startsWith(`Signed in to ${gateway.url} as alice`))).toBe(true);

    const claims = payload(token);
    expect(claims).toMatchObject({ iss: idp.issuer, sub: 'alice', aud: gateway.resource, client_id: TEST_CLIENTS.cli.clientId, groups: ['developers'] });
    expect(String(claims['scope']).split(' ')).toContain('mcp');
    expect(tokens.gateway).toEqual({
      endpoint: gateway.url,
      resource: gateway.resource,
      issuer: idp.issuer,
      scopes: ['mcp'],
      metadataUrl: `${gateway.origin}/.well-known/oauth-protected-resource/mcp`,
    });

    // The gateway's own verifier takes it.
    const response = await fetch(gateway.url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
    await response.body?.cancel();
    expect(gateway.seen.at(-1)).toMatchObject({ outcome: 'alice', token });

    // current() hands out the same token while it is fresh.
    expect(await tokens.current()).toBe(token);
    noTokenLogged(r, token);
  });

  it('caches in a 0600 file in a 0700 directory and reuses it on the next start without a sign-in', async () => {
    const first = run(gateway);
    const tokens = await signIn(first, 'bob');
    const token = await tokens.current();
    const path = first.options.tokenCache as string;
    expect(mode(path)).toBe(0o600);
    expect(mode(join(path, '..'))).toBe(0o700);
    const file = JSON.parse(readFileSync(path, 'utf8')) as { version: number; tokens: Record<string, Record<string, unknown>> };
    expect(file.version).toBe(1);
    const entries = Object.values(file.tokens);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      issuer: idp.issuer,
      clientId: TEST_CLIENTS.cli.clientId,
      resource: gateway.resource,
      requestedScope: 'mcp',
      accessToken: token,
    });
    expect(typeof entries[0]!['refreshToken']).toBe('string');

    const second = run(gateway, { tokenCache: path });
    const again = await obtainAccessToken(second.options);
    expect(await again.current()).toBe(token);
    expect(second.lines.filter((l) => l.startsWith('To sign in'))).toEqual([]);
    noTokenLogged(first, token);
    noTokenLogged(second, token);
  });

  it('another client, resource or scope gets its own sign-in; tokenCache null writes nothing', async () => {
    const first = run(gateway);
    await signIn(first, 'alice');
    const path = first.options.tokenCache as string;

    // A different scope ask does not reuse the entry.
    const other = run(gateway, { tokenCache: path, scope: 'mcp approvals' });
    const tokens = await signIn(other, 'alice');
    expect(
      String(payload(await tokens.current())['scope'])
        .split(' ')
        .sort(),
    ).toEqual(['approvals', 'mcp']);

    const memory = run(gateway, { tokenCache: null });
    await signIn(memory, 'alice');
    expect(existsSync(join(dir, `cache-${cacheCount}`))).toBe(false);
  });

  it('a denied sign-in fails with identity.missing and a clear message', async () => {
    const r = run(gateway);
    const pending = obtainAccessToken(r.options);
    const code = await r.prompt();
    await idp.denyDevice(code);
    const error = await rejection(pending);
    expect(isDrawbridgeError(error) && error.code).toBe('identity.missing');
    expect(error.message).toMatch(/^The sign-in did not complete: access_denied/);
  });

  it('aborting the signal stops waiting for the human', async () => {
    const controller = new AbortController();
    const r = run(gateway, { signal: controller.signal });
    const pending = obtainAccessToken(r.options);
    await r.prompt();
    controller.abort();
    const error = await rejection(pending);
    expect(error.message).toMatch(/aborted/i);
  });
});

describe('refresh', () => {
  it('refreshes shortly before expiry with the refresh token (resource kept), without a new sign-in', async () => {
    const r = run(shortGateway);
    const tokens = await signIn(r, 'alice', shortIdp);
    const first = await tokens.current();
    expect(Number(payload(first)['exp']) - Number(payload(first)['iat'])).toBe(4);
    // A fifth of the life before expiry counts as stale: move the clock past that. Only Date is
    // faked (the provider runs in this process, so its clock moves too); timers stay real.
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    let second: string;
    try {
      vi.setSystemTime(Date.now() + 3_400);
      second = await tokens.current();
    } finally {
      vi.useRealTimers();
    }
    expect(second).not.toBe(first);
    expect(payload(second)).toMatchObject({ sub: 'alice', aud: shortGateway.resource });
    expect(r.lines.filter((l) => l.startsWith('To sign in'))).toHaveLength(1);
    expect(r.lines.some((l) => l.startsWith(`Refreshed the access token for ${shortGateway.resource}`))).toBe(true);
    // The cache holds the new one.
    const file = JSON.parse(readFileSync(r.options.tokenCache as string, 'utf8')) as { tokens: Record<string, { accessToken: string }> };
    expect(Object.values(file.tokens)[0]!.accessToken).toBe(second);
    noTokenLogged(r, first, second);
  });

  it('refresh(rejected) gets a new token once, however many callers saw the refusal', async () => {
    const r = run(gateway);
    const tokens = await signIn(r, 'bob');
    const rejected = await tokens.current();
    const results = await Promise.all([tokens.refresh(rejected), tokens.refresh(rejected), tokens.refresh(rejected)]);
    expect(new Set(results).size).toBe(1);
    expect(results[0]).not.toBe(rejected);
    // A late caller that saw the same refusal gets the replacement, no new grant.
    expect(await tokens.refresh(rejected)).toBe(results[0]);
    expect(r.lines.filter((l) => l.startsWith('Refreshed'))).toHaveLength(1);
    expect(await tokens.current()).toBe(results[0]);
  });

  it('a refresh token that no longer works falls back to a new device flow', async () => {
    const r = run(shortGateway);
    const tokens = await signIn(r, 'alice', shortIdp);
    const first = await tokens.current();
    // Spoil the refresh token in the cache file (as if revoked).
    const path = r.options.tokenCache as string;
    const file = JSON.parse(readFileSync(path, 'utf8')) as { tokens: Record<string, Record<string, unknown>> };
    for (const entry of Object.values(file.tokens)) entry['refreshToken'] = 'revoked-refresh-token';
    writeFileSync(path, JSON.stringify(file));
    const renewed = tokens.refresh(first);
    const code = await r.prompt();
    expect(r.lines.some((l) => /^Could not refresh the access token \(invalid_grant/.test(l) && l.endsWith('signing in again.'))).toBe(true);
    await shortIdp.approveDevice(code, 'bob');
    const second = await renewed;
    expect(payload(second)).toMatchObject({ sub: 'bob', aud: shortGateway.resource });
    noTokenLogged(r, first, second);
  });

  it('another process refreshing first is picked up from the cache (no second refresh)', async () => {
    const a = run(gateway);
    const tokensA = await signIn(a, 'alice');
    const old = await tokensA.current();
    const b = run(gateway, a.options.tokenCache !== undefined ? { tokenCache: a.options.tokenCache } : {});
    const tokensB = await obtainAccessToken(b.options);
    expect(await tokensB.current()).toBe(old);
    const fresh = await tokensB.refresh(old);
    expect(fresh).not.toBe(old);
    // A learns of B's token from the file instead of spending the (rotated) refresh token.
    expect(await tokensA.refresh(old)).toBe(fresh);
    expect(a.lines.filter((l) => l.startsWith('Refreshed'))).toHaveLength(0);
  });
});

describe('client credentials (service agent)', () => {
  it('gets a token for the resource without a human, and caches it', async () => {
    const r = run(gateway, { clientId: TEST_CLIENTS.agent.clientId, clientSecret: TEST_CLIENTS.agent.clientSecret });
    const tokens = await obtainAccessToken(r.options);
    const token = await tokens.current();
    expect(payload(token)).toMatchObject({ sub: TEST_CLIENTS.agent.clientId, aud: gateway.resource, groups: ['agents'] });
    expect(r.lines.filter((l) => l.startsWith('To sign in'))).toEqual([]);
    // The bridge counts expires_in from its own clock, the token's exp from the provider's: a second boundary may fall between.
    const exp = Number(payload(token)['exp']) * 1000;
    const untils = [exp, exp + 1000].map((ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const obtained = untils.map((until) => `Obtained an access token for ${gateway.resource} as client agent-svc (valid until ${until}).`);
    expect(r.lines.filter((l) => obtained.includes(l))).toHaveLength(1);
    // A refusal: a new grant (there is no refresh token).
    const next = await tokens.refresh(token);
    expect(next).not.toBe(token);
    expect(mode(r.options.tokenCache as string)).toBe(0o600);
    noTokenLogged(r, token, next);
  });

  it('a wrong secret fails with identity.missing naming the client', async () => {
    const r = run(gateway, { clientId: TEST_CLIENTS.agent.clientId, clientSecret: 'wrong' });
    const error = await rejection(obtainAccessToken(r.options));
    expect(isDrawbridgeError(error) && error.code).toBe('identity.missing');
    expect(error.message).toMatch(/^The client credentials grant failed: invalid_client/);
    expect(isDrawbridgeError(error) && error.hint).toContain('agent-svc');
  });
});

describe('discovery', () => {
  it('falls back to the root metadata document, and to the 401 challenge', async () => {
    for (const metadataAt of ['root', 'challenge'] as const) {
      const target = await startStandIn({ issuer: idp.issuer, metadataAt, scopes: [] });
      cleanups.push(() => target.close());
      const found = await discoverProtectedResource(target.url);
      expect(found).toMatchObject({ resource: target.resource, issuer: idp.issuer, scopes: [] });
      expect(found.metadataUrl).toBe(metadataAt === 'root' ? `${target.origin}/.well-known/oauth-protected-resource` : `${target.origin}/meta/prm.json`);
      // No scopes_supported: no scope asked; the token still has the gateway as audience.
      const r = run(target, { clientId: TEST_CLIENTS.agent.clientId, clientSecret: TEST_CLIENTS.agent.clientSecret });
      const token = await (await obtainAccessToken(r.options)).current();
      expect(payload(token)['aud']).toBe(target.resource);
    }
  });

  it('refuses metadata for another resource, plain-http issuers off loopback, and plain-http gateways', async () => {
    const elsewhere = await startStandIn({ issuer: idp.issuer, resource: () => 'http://127.0.0.1:1/mcp' });
    cleanups.push(() => elsewhere.close());
    let error = await rejection(discoverProtectedResource(elsewhere.url));
    expect(isDrawbridgeError(error) && error.code).toBe('config.invalid');
    expect(error.message).toContain('is for the resource http://127.0.0.1:1/mcp, which is not');

    const insecure = await startStandIn({ issuer: idp.issuer, authorizationServer: 'http://idp.example.com' });
    cleanups.push(() => insecure.close());
    error = await rejection(obtainAccessToken(run(insecure).options));
    expect(isDrawbridgeError(error) && error.code).toBe('config.invalid');
    expect(error.message).toBe(
      'Refusing the authorization server http://idp.example.com/: it must use https:// (plain http:// only on 127.0.0.1 or localhost).',
    );

    error = await rejection(obtainAccessToken({ ...run(gateway).options, url: 'http://gw.example.com/mcp' }));
    expect(error.message).toMatch(/^Refusing http:\/\/gw\.example\.com: the gateway must be reached over https:\/\//);
  });

  it('a gateway without metadata, or not listening, is a clear error', async () => {
    const none = await startStandIn({ issuer: idp.issuer, metadataAt: 'challenge' });
    cleanups.push(() => none.close());
    let error = await rejection(discoverProtectedResource(`${none.origin}/elsewhere`));
    expect(error.message).toMatch(/publishes no OAuth protected resource metadata \(tried \/\.well-known\/oauth-protected-resource\/elsewhere \(HTTP 404\)/);

    const port = await freePort();
    error = await rejection(discoverProtectedResource(`http://127.0.0.1:${port}/mcp`));
    expect(isDrawbridgeError(error) && error.code).toBe('backend.unavailable');
    expect(error.message).toBe(`The gateway http://127.0.0.1:${port} could not be reached: fetch failed (ECONNREFUSED)`);
  });

  it('resourceCovers: same origin and the endpoint at or under the resource path', () => {
    const covers = (r: string, e: string) => resourceCovers(new URL(r), new URL(e));
    expect(covers('https://gw.example.com/mcp', 'https://gw.example.com/mcp')).toBe(true);
    expect(covers('https://gw.example.com/', 'https://gw.example.com/mcp')).toBe(true);
    expect(covers('https://gw.example.com', 'https://gw.example.com/mcp')).toBe(true);
    expect(covers('https://gw.example.com/mcp', 'https://gw.example.com/mcpx')).toBe(false);
    expect(covers('https://gw.example.com/mcp', 'https://gw.example.com:8443/mcp')).toBe(false);
    expect(covers('https://other.example.com/mcp', 'https://gw.example.com/mcp')).toBe(false);
    expect(covers('https://gw.example.com/mcp?x=1', 'https://gw.example.com/mcp')).toBe(false);
  });
});

describe('the cache file', () => {
  it('defaults to $XDG_CACHE_HOME/drawbridge/tokens.json, else ~/.cache/drawbridge/tokens.json', () => {
    expect(defaultTokenCachePath({ XDG_CACHE_HOME: '/x/cache' }, '/home/u')).toBe('/x/cache/drawbridge/tokens.json');
    expect(defaultTokenCachePath({ XDG_CACHE_HOME: 'relative' }, '/home/u')).toBe('/home/u/.cache/drawbridge/tokens.json');
    expect(defaultTokenCachePath({}, '/home/u')).toBe('/home/u/.cache/drawbridge/tokens.json');
  });

  it('a file readable by others is made 0600 (with a warning) and still used; a damaged one is replaced', async () => {
    const first = run(gateway);
    const token = await (await signIn(first, 'alice')).current();
    const path = first.options.tokenCache as string;
    chmodSync(path, 0o644);
    const second = run(gateway, { tokenCache: path });
    expect(await (await obtainAccessToken(second.options)).current()).toBe(token);
    expect(second.lines).toContain(`Token cache ${path} was readable by others (mode 644); it is now 0600.`);
    expect(mode(path)).toBe(0o600);

    writeFileSync(path, '{"version": 1, "tokens": ', { mode: 0o600 });
    const third = run(gateway, { tokenCache: path });
    await signIn(third, 'alice');
    expect(third.lines).toContain(`Token cache ${path} is damaged; it will be replaced.`);
    expect(mode(path)).toBe(0o600);
    expect(Object.keys((JSON.parse(readFileSync(path, 'utf8')) as { tokens: object }).tokens)).toHaveLength(1);
  });
});
