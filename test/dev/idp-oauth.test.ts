// A standard OAuth MCP client, not `drawbridge connect`, signs in to the
// development provider of `demo --http`: the MCP SDK's own client auth
// (OAuthClientProvider + StreamableHTTPClientTransport) follows the gateway's
// 401 to its RFC 9728 metadata, discovers the provider, registers itself
// (RFC 7591), and sends "the browser" (test/support/oidc.ts
// playAuthorizationCode: plain HTTP through the provider's sign-in and consent
// pages, stopping at the loopback redirect URI) through an authorization code
// flow with PKCE and the resource indicator. Then it queries as alice, and the
// journal says alice. The provider, the gateway and the database are started
// in-process the way runHttpDemo (dev/demo.ts) starts them. Also: the
// pre-registered public client on any loopback port, and what is refused
// (registrations that are not public loopback clients, code requests without
// S256 PKCE, a code redeemed without its verifier).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  auth,
  discoverAuthorizationServerMetadata,
  registerClient,
  UnauthorizedError,
  type OAuthClientProvider,
} from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_ACCOUNTS, writeHttpDemoConfig } from '../../dev/demo.js';
import { DEV_CLIENTS, startDevIdp, type DevIdp } from '../../dev/idp.js';
import { serveHttp, type HttpGateway } from '../../src/http/server.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import { exportLines } from '../../src/journal/export.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { REPO_ROOT } from '../support/cli.js';
import { freshDatabase, type FreshDatabase } from '../support/fixtures.js';
import { freePort } from '../support/net.js';
import { playAuthorizationCode } from '../support/oidc.js';

/** An MCP client's OAuth state, in memory: what a real client keeps on disk or in the browser. */
class MemoryOAuthProvider implements OAuthClientProvider {
  info: OAuthClientInformationMixed | undefined;
  saved: OAuthTokens | undefined;
  verifier: string | undefined;
  authorizationUrl: URL | undefined;
  readonly expectedState = randomBytes(16).toString('base64url');

  constructor(
    readonly redirectUrl: string,
    readonly clientMetadata: OAuthClientMetadata,
    preRegistered?: OAuthClientInformationMixed,
  ) {
    this.info = preRegistered;
  }

  state(): string {
    return this.expectedState;
  }
  clientInformation(): OAuthClientInformationMixed | undefined {
    return this.info;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.info = info;
  }
  tokens(): OAuthTokens | undefined {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL): void {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }
  codeVerifier(): string {
    if (this.verifier === undefined) throw new Error('no code verifier saved');
    return this.verifier;
  }
}

/** What the MCP SDK's examples and the MCP Inspector register: a public client with a loopback redirect. */
function publicClientMetadata(redirectUrl: string): OAuthClientMetadata {
  return {
    client_name: 'idp-oauth test client',
    redirect_uris: [redirectUrl],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

const textOf = (r: unknown): string => ((r as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');

let db: FreshDatabase;
let idp: DevIdp;
let gateway: Gateway;
let http: HttpGateway;
let dir: string;
let resource: string;
// What the provider answered as server errors, for diagnostics when a sign-in fails.
const serverErrors: unknown[] = [];

beforeAll(async () => {
  // As runHttpDemo: the provider with the demo's people and the gateway's resource as the
  // default audience, then the repository's tools and policies with an OIDC identity.
  db = await freshDatabase('idp_oauth');
  const httpPort = await freePort();
  resource = `http://127.0.0.1:${httpPort}/mcp`;
  idp = await startDevIdp({ accounts: DEMO_ACCOUNTS, defaultAudience: resource, onServerError: (err) => serverErrors.push(err) });
  dir = mkdtempSync(join(tmpdir(), 'drawbridge-idp-oauth-'));
  writeHttpDemoConfig({ source: REPO_ROOT, dir, issuer: idp.issuer, resource, wait: '0ms' });
  gateway = await openGateway({ configDir: dir, env: { SHOP_DATABASE_URL: db.gatewayUrl } });
  const identity = gateway.config.identity;
  if (identity?.mode !== 'oidc') throw new Error('expected an OIDC identity');
  http = await serveHttp(gateway, createOidcVerifier(identity), { host: '127.0.0.1', port: httpPort });
});

afterAll(async () => {
  await http?.close();
  await gateway?.close();
  await idp?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function json(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

function register(metadata: Record<string, unknown>): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  return json(`${idp.issuer}/reg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(metadata) });
}

describe('the development provider for standard OAuth MCP clients', () => {
  it('is discoverable from the gateway: RFC 9728 metadata -> RFC 8414 metadata with registration and S256 PKCE', async () => {
    // Read as the MCP Inspector reads it: from its page's origin (its OAuth runs in the browser).
    const inspector = { origin: 'http://localhost:6274' };
    const prm = await json(`${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`, { headers: inspector });
    expect(prm.status).toBe(200);
    expect(prm.headers.get('access-control-allow-origin')).toBe('*');
    expect(prm.body).toMatchObject({ resource, authorization_servers: [idp.issuer], scopes_supported: ['mcp'] });
    // The MCP endpoint itself still refuses foreign origins (DNS-rebinding protection on loopback).
    const mcp = await fetch(resource, {
      method: 'POST',
      headers: { ...inspector, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{}',
    });
    expect(mcp.status).toBe(403);
    expect(await mcp.text()).toMatch(/Invalid Origin header/);

    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const { status, body } = await json(`${idp.issuer}${path}`);
      expect(status, path).toBe(200);
      expect(body, path).toMatchObject({
        issuer: idp.issuer,
        authorization_endpoint: `${idp.issuer}/auth`,
        token_endpoint: `${idp.issuer}/token`,
        registration_endpoint: `${idp.issuer}/reg`,
        code_challenge_methods_supported: ['S256'],
        authorization_response_iss_parameter_supported: true,
      });
      expect(body['response_types_supported'], path).toContain('code');
      expect(body['grant_types_supported'], path).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token']));
      expect(body['token_endpoint_auth_methods_supported'], path).toContain('none');
    }

    // A browser-based client (the MCP Inspector) registers cross-origin.
    const preflight = await fetch(`${idp.issuer}/reg`, {
      method: 'OPTIONS',
      headers: { origin: 'http://localhost:6274', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('content-type');
  });

  it('the MCP SDK client registers, signs in as alice in the browser (code + PKCE + resource), queries, and refreshes', async () => {
    const redirectUrl = `http://127.0.0.1:${await freePort()}/callback`;
    const provider = new MemoryOAuthProvider(redirectUrl, publicClientMetadata(redirectUrl));
    const serverUrl = new URL(http.url);

    // 1. The first connect meets the 401: the SDK discovers, registers, and asks for the browser.
    const first = new Client({ name: 'idp-oauth-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider });
    await expect(first.connect(transport)).rejects.toBeInstanceOf(UnauthorizedError);

    const registered = provider.info as Record<string, unknown> | undefined;
    expect(registered).toMatchObject({ token_endpoint_auth_method: 'none', redirect_uris: [redirectUrl] });
    expect(registered?.['client_secret']).toBeUndefined();
    expect(registered?.['grant_types']).toEqual(['authorization_code', 'refresh_token']);
    const clientId = registered?.['client_id'];
    expect(typeof clientId).toBe('string');

    const authorizationUrl = provider.authorizationUrl;
    if (!authorizationUrl) throw new Error('the SDK did not ask to open the browser');
    expect(authorizationUrl.origin + authorizationUrl.pathname).toBe(`${idp.issuer}/auth`);
    expect(Object.fromEntries(authorizationUrl.searchParams)).toMatchObject({
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUrl,
      code_challenge_method: 'S256',
      resource,
      scope: 'mcp',
      state: provider.expectedState,
    });

    // 2. The person: the provider's pages, sign in as alice, allow; the browser returns to the loopback URI.
    const back = await playAuthorizationCode(authorizationUrl, 'alice', redirectUrl, { diagnostics: () => String(serverErrors.at(-1) ?? '') });
    expect(back.searchParams.get('state')).toBe(provider.expectedState);
    expect(back.searchParams.get('iss')).toBe(idp.issuer);
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`no code in ${back.href}`);

    // 3. The client redeems the code (with its verifier and the resource) and connects again.
    await transport.finishAuth(code);
    const tokens = provider.saved;
    if (!tokens) throw new Error('no tokens saved');
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(typeof tokens.refresh_token).toBe('string');

    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    const verified = await jwtVerify(tokens.access_token, jwks, { issuer: idp.issuer, audience: resource, typ: 'at+jwt' });
    expect(verified.payload).toMatchObject({ sub: 'alice', groups: ['analysts'], client_id: clientId, aud: resource });
    expect(String(verified.payload['scope']).split(' ')).toContain('mcp');

    const client = new Client({ name: 'idp-oauth-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      const n = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders'))[0]?.n;
      expect(n).toBeGreaterThan(0);
      const answer = await client.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql: 'select count(*) from orders' } });
      expect(answer.isError, textOf(answer)).toBeFalsy();
      expect(textOf(answer)).toMatch(new RegExp(`^count\\n-+\\n${n}$`, 'm'));
    } finally {
      await client.close();
    }

    // 4. The journal knows who asked: alice, from this provider, with her groups.
    const calls = [...exportLines(join(dir, 'journal.db'), 'jsonl')].map((l) => JSON.parse(l) as Record<string, { principal?: unknown } | undefined>);
    expect(calls.map((c) => c['call']?.principal)).toContainEqual({
      subject: 'alice',
      groups: ['analysts'],
      kind: 'oidc',
      principal: 'person',
      issuer: idp.issuer,
    });
    expect(calls.some((c) => JSON.stringify(c).includes(tokens.access_token))).toBe(false);

    // 5. Refresh: the SDK trades the refresh token for a new access token for the same resource.
    expect(await auth(provider, { serverUrl })).toBe('AUTHORIZED');
    const refreshed = provider.saved;
    if (!refreshed) throw new Error('no refreshed tokens');
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    const again = await jwtVerify(refreshed.access_token, jwks, { issuer: idp.issuer, audience: resource, typ: 'at+jwt' });
    expect(again.payload).toMatchObject({ sub: 'alice', groups: ['analysts'], client_id: clientId });
    const afterRefresh = new Client({ name: 'idp-oauth-test', version: '1.0.0' });
    await afterRefresh.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider }));
    try {
      const answer = await afterRefresh.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql: 'select count(*) from products' } });
      expect(answer.isError, textOf(answer)).toBeFalsy();
    } finally {
      await afterRefresh.close();
    }
  });

  it('the pre-registered public client works on any loopback port of its listed callback paths, and nowhere else', async () => {
    expect(DEV_CLIENTS.mcp.clientId).toBe('mcp-client');
    const redirectUrl = `http://localhost:${await freePort()}/oauth/callback`;
    const provider = new MemoryOAuthProvider(redirectUrl, publicClientMetadata(redirectUrl), { client_id: DEV_CLIENTS.mcp.clientId });
    const serverUrl = new URL(http.url);
    expect(await auth(provider, { serverUrl })).toBe('REDIRECT');
    expect(provider.info?.client_id).toBe(DEV_CLIENTS.mcp.clientId); // no registration
    const authorizationUrl = provider.authorizationUrl;
    if (!authorizationUrl) throw new Error('the SDK did not ask to open the browser');
    const back = await playAuthorizationCode(authorizationUrl, 'alice', redirectUrl);
    expect(await auth(provider, { serverUrl, authorizationCode: back.searchParams.get('code') ?? '' })).toBe('AUTHORIZED');
    const client = new Client({ name: 'idp-oauth-preregistered', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(serverUrl, { authProvider: provider }));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
    await client.close();

    // A path it does not list: the provider shows an error page and sends nothing anywhere.
    const elsewhere = new URL(authorizationUrl);
    elsewhere.searchParams.set('redirect_uri', 'http://127.0.0.1:8123/elsewhere');
    const refused = await fetch(elsewhere, { redirect: 'manual' });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toMatch(/<main data-page="error" data-error="invalid_redirect_uri"/);
  });

  it('refuses registrations that are not public clients with loopback redirect URIs', async () => {
    const good = { redirect_uris: ['http://127.0.0.1:4321/callback'], token_endpoint_auth_method: 'none', response_types: ['code'] };
    for (const uri of ['https://attacker.example/callback', 'http://192.168.1.20:8080/callback', 'http://127.0.0.1.nip.io:8080/callback', 'myapp:/callback']) {
      const r = await register({ ...good, redirect_uris: [uri] });
      expect(r.status, uri).toBe(400);
      expect(r.body['error'], uri).toBe('invalid_redirect_uri');
      expect(String(r.body['error_description']), uri).toMatch(/loopback redirect URIs only/);
    }
    // One bad URI among good ones spoils the registration.
    const mixed = await register({ ...good, redirect_uris: ['http://localhost:1/cb', 'https://attacker.example/cb'] });
    expect(mixed.body['error']).toBe('invalid_redirect_uri');
    // Confidential clients (asked for, or by omission) and other grants are refused too.
    for (const [change, pattern] of [
      [{ token_endpoint_auth_method: 'client_secret_basic' }, /public clients only/],
      [{ token_endpoint_auth_method: undefined }, /omitted, which means client_secret_basic/],
      [{ grant_types: ['client_credentials'] }, /grant_types may only contain/],
      [{ grant_types: ['implicit'], response_types: ['id_token'] }, /grant_types may only contain/],
      [{ jwks_uri: 'https://attacker.example/jwks' }, /jwks_uri is not supported/],
    ] as const) {
      const r = await register({ ...good, ...change });
      expect(r.status, JSON.stringify(change)).toBe(400);
      expect(r.body['error'], JSON.stringify(change)).toBe('invalid_client_metadata');
      expect(String(r.body['error_description']), JSON.stringify(change)).toMatch(pattern);
    }
    // The MCP SDK's own registration sees the same refusal.
    const metadata = await discoverAuthorizationServerMetadata(idp.issuer);
    expect(metadata?.registration_endpoint).toBe(`${idp.issuer}/reg`);
    await expect(
      registerClient(idp.issuer, { ...(metadata ? { metadata } : {}), clientMetadata: publicClientMetadata('https://attacker.example/callback') }),
    ).rejects.toThrow(/loopback redirect URIs only/);
    // And a good one is accepted, on any loopback host.
    for (const uri of ['http://127.0.0.1:4321/callback', 'http://localhost/cb', 'http://[::1]:9/x']) {
      const ok = await register({ ...good, redirect_uris: [uri] });
      expect(ok.status, uri).toBe(201);
      expect(ok.headers.get('access-control-allow-origin')).toBe('*');
      // Native (RFC 8252: the loopback redirect matches on any port), code + refresh grants.
      expect(ok.body).toMatchObject({
        redirect_uris: [uri],
        token_endpoint_auth_method: 'none',
        application_type: 'native',
        grant_types: ['authorization_code', 'refresh_token'],
      });
      expect(ok.body['client_secret']).toBeUndefined();
      expect(ok.body['registration_access_token']).toBeUndefined();
    }
  });

  it('refuses an authorization code request without S256 PKCE, a code redeemed without its verifier, and a denied consent', async () => {
    const redirectUrl = `http://127.0.0.1:${await freePort()}/callback`;
    const reg = await register(publicClientMetadata(redirectUrl));
    expect(reg.status).toBe(201);
    const clientId = String(reg.body['client_id']);
    const authorize = (extra: Record<string, string>): URL => {
      const url = new URL(`${idp.issuer}/auth`);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirectUrl,
        scope: 'mcp',
        resource,
        state: 's1',
        ...extra,
      }))
        url.searchParams.set(k, v);
      return url;
    };

    // No PKCE at all, and PKCE with `plain`: back to the client with an error, no code, no sign-in page.
    const withoutS256: ReadonlyArray<Record<string, string>> = [{}, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }];
    for (const extra of withoutS256) {
      const back = await playAuthorizationCode(authorize(extra), 'alice', redirectUrl);
      expect(back.searchParams.get('error'), JSON.stringify(extra)).toBe('invalid_request');
      expect(back.searchParams.get('code')).toBeNull();
      expect(back.searchParams.get('state')).toBe('s1');
    }
    const noPkce = await playAuthorizationCode(authorize({}), 'alice', redirectUrl);
    expect(noPkce.searchParams.get('error_description')).toMatch(/PKCE/);

    // With S256 the person signs in; the code then needs the verifier at the token endpoint.
    const verifier = randomBytes(32).toString('base64url');
    const challenge = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))).toString('base64url');
    const back = await playAuthorizationCode(authorize({ code_challenge: challenge, code_challenge_method: 'S256' }), 'alice', redirectUrl);
    const code = back.searchParams.get('code');
    if (!code) throw new Error(`no code in ${back.href}`);
    const redeem = (extra: Record<string, string>) =>
      json(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, client_id: clientId, redirect_uri: redirectUrl, resource, ...extra }).toString(),
      });
    const withoutVerifier = await redeem({});
    expect(withoutVerifier.status).toBe(400);
    expect(withoutVerifier.body['error']).toBe('invalid_grant');

    // And a person who presses Deny sends the client access_denied, no code.
    const denied = await playAuthorizationCode(authorize({ code_challenge: challenge, code_challenge_method: 'S256' }), 'alice', redirectUrl, { deny: true });
    expect(denied.searchParams.get('error')).toBe('access_denied');
    expect(denied.searchParams.get('code')).toBeNull();
  });
});
