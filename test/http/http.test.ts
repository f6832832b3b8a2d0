// The gateway over Streamable HTTP as an OAuth 2.1 resource server, against a
// real OpenID provider (oidc-provider) and a real OpenSSH server: the SDK
// client end to end, RFC 9728 discovery from a 401, every way a token can be
// wrong, session binding, idle expiry, caps and DNS-rebinding protection.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { INITIALIZE, openSession, raw, requestWithHost, startHarness, type Harness } from './harness.js';

let h: Harness;
let alice: string;
let bob: string;

const now = () => Math.floor(Date.now() / 1000);
const text = (r: CallToolResult) => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

async function connect(url: string, token: string, name = 'http-e2e'): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  const client = new Client({ name, version: '1.2.3' });
  await client.connect(transport);
  return { client, transport };
}

/** Parses `Bearer a="b", c="d"` into its parameters. */
function challenge(header: string | null): Record<string, string> {
  expect(header).toMatch(/^Bearer( |$)/);
  const out: Record<string, string> = {};
  for (const m of (header ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!.replace(/\\(.)/g, '$1');
  return out;
}

beforeAll(async () => {
  h = await startHarness();
  [alice, bob] = await Promise.all([h.login('alice'), h.login('bob')]);
});

afterAll(async () => {
  await h?.close();
});

describe('end to end through the SDK client', () => {
  it('initializes, lists tools and runs a call journaled under the OIDC subject and groups', async () => {
    const { client } = await connect(h.http.url, alice);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['ssh_exec']);
      const result = (await client.callTool({ name: 'ssh_exec', arguments: { connection: 'web', command: 'echo hello-over-http' } })) as CallToolResult;
      expect(result.isError).toBeFalsy();
      expect(text(result)).toContain('hello-over-http');
    } finally {
      await client.close();
    }
    const calls = h.journal().filter((r) => r.type === 'call');
    const call = calls.find((c) => String(JSON.stringify(c.data)).includes('hello-over-http'));
    expect(call?.data['principal']).toEqual({ subject: 'alice', groups: ['developers'], kind: 'oidc', principal: 'person', issuer: h.idp.issuer });
    expect(call?.data['client']).toEqual({ name: 'http-e2e', version: '1.2.3' });
    expect(call?.data['decision']).toMatchObject({ effect: 'allow' });
    const outcome = h.journal().find((r) => r.type === 'outcome' && r.callId === call?.callId);
    expect(outcome?.data['status']).toBe('ok');
    // The token never reaches the journal.
    expect(h.journalBytes()).not.toContain(alice);
    expect(h.journalBytes()).not.toContain(alice.split('.')[2]!);
  });

  it('a service client (client credentials) is its own subject with its own groups', async () => {
    const token = await h.idp.clientCredentialsToken('agent-svc', 'agent-svc-secret', h.resource, 'mcp');
    const { client } = await connect(h.http.url, token);
    try {
      const result = (await client.callTool({ name: 'ssh_exec', arguments: { connection: 'web', command: 'echo from-agent' } })) as CallToolResult;
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/^policy\.no_match/);
    } finally {
      await client.close();
    }
    const call = h
      .journal()
      .filter((r) => r.type === 'call')
      .find((c) => JSON.stringify(c.data).includes('from-agent'));
    expect(call?.data['principal']).toMatchObject({ subject: 'agent-svc', groups: ['agents'], kind: 'oidc' });
  });

  it('a token without groups is an identity with no groups: a rule requiring a group does not allow it', async () => {
    const carol = await h.login('carol');
    const { client } = await connect(h.http.url, carol);
    try {
      const result = (await client.callTool({ name: 'ssh_exec', arguments: { connection: 'web', command: 'echo carol-was-here' } })) as CallToolResult;
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/^policy\.no_match/);
    } finally {
      await client.close();
    }
    const call = h
      .journal()
      .filter((r) => r.type === 'call')
      .find((c) => JSON.stringify(c.data).includes('carol-was-here'));
    expect(call?.data['principal']).toMatchObject({ subject: 'carol', groups: [], kind: 'oidc' });
    expect(call?.data['decision']).toMatchObject({ effect: 'deny' });
  });

  it('a groups claim that is a single string is one group (dave, sre)', async () => {
    const dave = await h.login('dave');
    const { client } = await connect(h.http.url, dave);
    try {
      const result = (await client.callTool({ name: 'ssh_exec', arguments: { connection: 'web', command: 'id -un' } })) as CallToolResult;
      expect(result.isError).toBeFalsy();
      expect(text(result)).toContain(h.sshd.user);
    } finally {
      await client.close();
    }
  });
});

describe('discovery: 401 and RFC 9728 metadata', () => {
  it('answers 401 with a resource_metadata challenge, and the document it points at names the provider', async () => {
    const r = await raw(h.http.url, { body: INITIALIZE });
    expect(r.status).toBe(401);
    const params = challenge(r.headers.get('www-authenticate'));
    expect(params['error']).toBeUndefined();
    expect(params['scope']).toBe('mcp');
    const metadataUrl = params['resource_metadata']!;
    expect(metadataUrl).toBe(new URL('/.well-known/oauth-protected-resource/mcp', h.resource).href);
    expect(r.messages[0]).toMatchObject({ jsonrpc: '2.0', error: { code: -32001 }, id: null });

    const doc = await fetch(metadataUrl);
    expect(doc.status).toBe(200);
    expect(doc.headers.get('content-type')).toMatch(/application\/json/);
    expect(await doc.json()).toEqual({
      resource: h.resource,
      authorization_servers: [h.idp.issuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['mcp'],
      resource_name: 'Drawbridge',
    });
    // The root form too (clients fall back to it).
    const root = await fetch(new URL('/.well-known/oauth-protected-resource', h.resource));
    expect(((await root.json()) as { resource: string }).resource).toBe(h.resource);
    expect(h.http.resource).toBe(h.resource);
  });

  it('the SDK client without a token cannot connect', async () => {
    const transport = new StreamableHTTPClientTransport(new URL(h.http.url));
    const client = new Client({ name: 'anon', version: '1' });
    await expect(client.connect(transport)).rejects.toThrow();
  });

  it('refuses a GET stream and a DELETE without a token, and another auth scheme', async () => {
    const sessionId = await openSession(h.http.url, alice);
    expect((await raw(h.http.url, { sessionId, headers: { accept: 'text/event-stream' } })).status).toBe(401);
    expect((await raw(h.http.url, { method: 'DELETE', sessionId })).status).toBe(401);
    const basic = await raw(h.http.url, { body: INITIALIZE, headers: { authorization: 'Basic YWxpY2U6c2VjcmV0' } });
    expect(basic.status).toBe(401);
    expect(challenge(basic.headers.get('www-authenticate'))['error']).toBeUndefined();
  });

  it('refuses a token in the query string, even a valid one', async () => {
    const url = `${h.http.url}?access_token=${encodeURIComponent(alice)}`;
    const onlyQuery = await raw(url, { body: INITIALIZE });
    expect(onlyQuery.status).toBe(400);
    expect(challenge(onlyQuery.headers.get('www-authenticate'))['error']).toBe('invalid_request');
    expect(onlyQuery.text).not.toContain(alice);
    const both = await raw(url, { body: INITIALIZE, token: alice });
    expect(both.status).toBe(400);
    expect(both.headers.get('mcp-session-id')).toBeNull();
  });
});

describe('invalid tokens: 401 invalid_token', () => {
  const cases: Array<[string, () => Promise<string>]> = [
    ['expired', () => h.idp.mint({ aud: h.resource, scope: 'mcp', iat: now() - 7200, exp: now() - 3600 })],
    ['not yet valid (nbf)', () => h.idp.mint({ aud: h.resource, scope: 'mcp', nbf: now() + 3600 })],
    ['for another audience', () => h.idp.mint({ aud: 'http://127.0.0.1:1/mcp', scope: 'mcp' })],
    ['from another issuer', () => h.idp.mint({ aud: h.resource, scope: 'mcp', iss: 'https://evil.example' })],
    ['with a bad signature', () => h.idp.mint({ aud: h.resource, scope: 'mcp' }, { sign: 'foreign' })],
    ['alg none', () => h.idp.mint({ aud: h.resource, scope: 'mcp' }, { sign: 'none' })],
    ['HS256 keyed with the public key', () => h.idp.mint({ aud: h.resource, scope: 'mcp' }, { sign: 'hs256-public' })],
    ['opaque', async () => 'opaque-access-token-0123456789abcdef'],
    ['an ID token type', () => h.idp.mint({ aud: h.resource, scope: 'mcp' }, { header: { typ: 'JWT+id"\\' } })],
    ['without a subject', () => h.idp.mint({ aud: h.resource, scope: 'mcp', sub: undefined })],
  ];
  for (const [name, make] of cases) {
    it(`refuses a token ${name}`, async () => {
      const token = await make();
      const r = await raw(h.http.url, { body: INITIALIZE, token });
      expect(r.status).toBe(401);
      const params = challenge(r.headers.get('www-authenticate'));
      expect(params['error']).toBe('invalid_token');
      expect(params['error_description']).toBeTruthy();
      expect(params['resource_metadata']).toBe(new URL('/.well-known/oauth-protected-resource/mcp', h.resource).href);
      expect(r.messages[0]).toMatchObject({ jsonrpc: '2.0', error: { code: -32001, message: expect.stringMatching(/^identity\.invalid_token: /) }, id: null });
      expect(r.text).not.toContain(token);
      expect(r.headers.get('mcp-session-id')).toBeNull();
    });
  }

  it("checks the token on a live session too: an expired token on alice's session is 401", async () => {
    const sessionId = await openSession(h.http.url, alice);
    const expired = await h.idp.mint({ aud: h.resource, scope: 'mcp', sub: 'alice', iat: now() - 7200, exp: now() - 3600 });
    const r = await raw(h.http.url, { token: expired, sessionId, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    expect(r.status).toBe(401);
    const ok = await raw(h.http.url, { token: alice, sessionId, body: { jsonrpc: '2.0', id: 3, method: 'tools/list' } });
    expect(ok.status).toBe(200);
    expect(ok.messages[0]?.result?.tools).toHaveLength(1);
  });
});

describe('scopes', () => {
  it('a token without the required scope is 403 insufficient_scope naming it', async () => {
    for (const token of [
      await h.idp.mint({ aud: h.resource, scope: 'approvals' }),
      await h.idp.clientCredentialsToken('agent-svc', 'agent-svc-secret', h.resource, 'approvals'),
    ]) {
      const r = await raw(h.http.url, { body: INITIALIZE, token });
      expect(r.status).toBe(403);
      const params = challenge(r.headers.get('www-authenticate'));
      expect(params['error']).toBe('insufficient_scope');
      expect(params['scope']).toBe('mcp');
      expect(params['resource_metadata']).toBeTruthy();
      expect(r.messages[0]?.error?.message).toMatch(/^identity\.insufficient_scope: /);
    }
  });
});

describe('sessions', () => {
  it("bob's valid token on alice's session is 403 session_mismatch, and the session stays alice's", async () => {
    const { client, transport } = await connect(h.http.url, alice);
    try {
      const sessionId = transport.sessionId!;
      expect(sessionId).toBeTruthy();
      const list = await raw(h.http.url, { token: bob, sessionId, body: { jsonrpc: '2.0', id: 7, method: 'tools/list' } });
      expect(list.status).toBe(403);
      expect(list.messages[0]?.error?.message).toMatch(/^identity\.session_mismatch: /);
      const call = await raw(h.http.url, {
        token: bob,
        sessionId,
        body: { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'ssh_exec', arguments: { connection: 'web', command: 'echo bob-hijack' } } },
      });
      expect(call.status).toBe(403);
      expect((await raw(h.http.url, { token: bob, sessionId, headers: { accept: 'text/event-stream' } })).status).toBe(403);
      expect((await raw(h.http.url, { token: bob, sessionId, method: 'DELETE' })).status).toBe(403);
      // Still alice's, still working.
      const result = (await client.callTool({ name: 'ssh_exec', arguments: { connection: 'web', command: 'echo still-alice' } })) as CallToolResult;
      expect(text(result)).toContain('still-alice');
      expect(JSON.stringify(h.journal())).not.toContain('bob-hijack');
    } finally {
      await client.close();
    }
  });

  it('a new token of the same subject may continue the session', async () => {
    const sessionId = await openSession(h.http.url, alice);
    const again = await h.login('alice');
    const r = await raw(h.http.url, { token: again, sessionId, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    expect(r.status).toBe(200);
  });

  it('DELETE by the owner ends the session; an unknown session id is 404', async () => {
    const { client, transport } = await connect(h.http.url, alice);
    const sessionId = transport.sessionId!;
    await transport.terminateSession();
    await client.close();
    const r = await raw(h.http.url, { token: alice, sessionId, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    expect(r.status).toBe(404);
    expect((await raw(h.http.url, { token: alice, sessionId: 'no-such-session', body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } })).status).toBe(404);
  });

  it('a request without a session id that is not initialize is 400', async () => {
    const r = await raw(h.http.url, { token: alice, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } });
    expect(r.status).toBe(400);
  });

  it('an idle session is closed after sessionIdleMs; activity keeps it open', async () => {
    // The idle timers are the gateway's setTimeout: fake time moves them, nobody waits.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], shouldAdvanceTime: true });
    onTestFinished(() => void vi.useRealTimers());
    const other = await h.serveAnother({ sessionIdleMs: 1000 });
    expect(other.resource).toBe(h.resource);
    const busy = await openSession(other.url, alice);
    const idle = await openSession(other.url, alice);
    // Requests 300 ms apart keep `busy` open well past the idle time; `idle` is gone.
    for (let i = 0; i < 5; i++) {
      await vi.advanceTimersByTimeAsync(300);
      expect((await raw(other.url, { token: alice, sessionId: busy, body: { jsonrpc: '2.0', id: 10 + i, method: 'tools/list' } })).status).toBe(200);
    }
    expect((await raw(other.url, { token: alice, sessionId: idle, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } })).status).toBe(404);
    await vi.advanceTimersByTimeAsync(1600);
    expect((await raw(other.url, { token: alice, sessionId: busy, body: { jsonrpc: '2.0', id: 2, method: 'tools/list' } })).status).toBe(404);
  });

  it('caps the number of sessions (503), and a closed one frees its slot', async () => {
    const other = await h.serveAnother({ maxSessions: 2 });
    const a = await openSession(other.url, alice);
    await openSession(other.url, bob);
    const third = await raw(other.url, { token: alice, body: INITIALIZE });
    expect(third.status).toBe(503);
    expect(third.headers.get('mcp-session-id')).toBeNull();
    expect((await raw(other.url, { token: alice, sessionId: a, method: 'DELETE' })).status).toBe(200);
    expect((await raw(other.url, { token: alice, body: INITIALIZE })).status).toBe(200);
  });
});

describe('limits and hardening', () => {
  it('refuses a body over the cap with 413, before parsing it', async () => {
    const other = await h.serveAnother({ maxBodyBytes: 1024 });
    const big = JSON.stringify({ ...INITIALIZE, params: { ...INITIALIZE.params, pad: 'x'.repeat(4096) } });
    const r = await raw(other.url, { token: alice, body: big });
    expect(r.status).toBe(413);
    // The default cap is 4 MiB.
    const huge = await raw(h.http.url, {
      token: alice,
      body: JSON.stringify({ ...INITIALIZE, params: { ...INITIALIZE.params, pad: 'x'.repeat(4 * 1024 * 1024) } }),
    });
    expect(huge.status).toBe(413);
  });

  it('stops reading a chunked body (no Content-Length) once it passes the cap', async () => {
    const other = await h.serveAnother({ maxBodyBytes: 1024 });
    const chunk = new TextEncoder().encode('x'.repeat(512));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent >= 64) return controller.close();
        sent += 1;
        controller.enqueue(chunk);
        await new Promise((r) => setTimeout(r, 5));
      },
    });
    const res = await fetch(other.url, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(sent).toBeLessThan(64);
  });

  it('refuses a foreign Host (DNS rebinding) and a foreign Origin on loopback', async () => {
    const url = new URL(h.http.url);
    expect((await requestWithHost(h.http.url, `evil.example:${url.port}`, alice)).status).toBe(403);
    expect((await requestWithHost(h.http.url, `localhost:${url.port}`, alice)).status).toBe(200);
    const origin = await raw(h.http.url, { token: alice, body: INITIALIZE, headers: { origin: 'http://evil.example' } });
    expect(origin.status).toBe(403);
  });

  it('answers 503 identity.unavailable when the provider cannot be reached', async () => {
    const settings = h.gateway.config.identity as OidcIdentityDeclaration;
    const down = createOidcVerifier({ ...settings, issuer: 'http://127.0.0.1:9' });
    const other = await h.serveAnother({}, down);
    const token = await h.idp.mint({ aud: h.resource, scope: 'mcp', iss: 'http://127.0.0.1:9' });
    const r = await raw(other.url, { token, body: INITIALIZE });
    expect(r.status).toBe(503);
    expect(r.messages[0]?.error?.message).toMatch(/^identity\.unavailable: /);
    expect(r.text).not.toContain(token);
  });

  it('unknown paths are 404 and other methods 405', async () => {
    expect((await fetch(new URL('/elsewhere', h.resource))).status).toBe(404);
    expect((await fetch(h.http.url, { method: 'PUT' })).status).toBe(405);
  });
});

describe('behind a TLS proxy (publicUrl)', () => {
  it('serves the public URL path and advertises the public resource and metadata URL', async () => {
    const other = await h.serveAnother({ publicUrl: 'https://gw.example.com/drawbridge/mcp' });
    expect(other.resource).toBe('https://gw.example.com/drawbridge/mcp');
    expect(new URL(other.url).pathname).toBe('/drawbridge/mcp');
    const r = await raw(other.url, { body: INITIALIZE });
    expect(r.status).toBe(401);
    expect(challenge(r.headers.get('www-authenticate'))['resource_metadata']).toBe(
      'https://gw.example.com/.well-known/oauth-protected-resource/drawbridge/mcp',
    );
    const doc = await fetch(new URL('/.well-known/oauth-protected-resource/drawbridge/mcp', other.url));
    expect(((await doc.json()) as { resource: string }).resource).toBe('https://gw.example.com/drawbridge/mcp');
    expect((await fetch(new URL('/mcp', other.url), { method: 'POST' })).status).toBe(404);
  });
});
