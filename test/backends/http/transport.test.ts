// The http_request transport against local servers (test/support/http-servers.ts):
// what reaches the echo server and what never does. Credentials arrive but are in
// no answer or error text; every redirect (off-origin, to metadata, same-origin,
// after a write) is answered as it came and never followed (nothing sent there,
// no second lookup); DNS rebinding with an
// injected resolver cannot reach a refused address (the connection is pinned to
// the checked one); every IPv4 literal form of 127.0.0.1 is refused when
// loopback is not allowed; slow and endless answers are capped. Only loopback
// addresses are ever contacted: non-loopback names exist only in an injected
// resolver's answers, which the address check refuses before any connection.

import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { allowList } from '../../../src/backends/http/address.js';
import type { ResolvedCredential } from '../../../src/backends/http/credentials.js';
import { send, type HttpRequest, type HttpResponse, type Resolver, type SendOptions } from '../../../src/backends/http/transport.js';
import {
  startEchoServer,
  startEndlessServer,
  startOpenApiServer,
  startRedirector,
  startSlowServer,
  startTlsEchoServer,
  WIDGETS_OPENAPI,
  type TestServer,
} from '../../support/http-servers.js';

const servers: TestServer[] = [];
async function track(server: Promise<TestServer>): Promise<TestServer> {
  const started = await server;
  servers.push(started);
  return started;
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const LOOPBACK = allowList(['127.0.0.1/32']);

function options(over: Partial<SendOptions> = {}): SendOptions {
  return { timeoutMs: 3000, maxResponseBytes: 1 << 20, networks: LOOPBACK, credential: null, ...over };
}

function get(url: URL | string, headers: Array<[string, string]> = []): HttpRequest {
  return { method: 'GET', url: new URL(url), headers, body: null };
}

async function refusal(promise: Promise<HttpResponse>): Promise<DrawbridgeError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DrawbridgeError);
  if (!(error instanceof DrawbridgeError)) throw new Error('unreachable');
  return error;
}

const text = (r: HttpResponse): string => Buffer.from(r.body).toString('utf8');

/** A resolver that answers from a script (one answer per call, the last repeated) and counts its calls. */
function scripted(...answers: string[][]): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const resolver = async (hostname: string) => {
    calls.push(hostname);
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)] ?? [];
    return answer.map((address) => ({ address, family: address.includes(':') ? (6 as const) : (4 as const) }));
  };
  return Object.assign(resolver, { calls });
}

describe('send: plain requests', () => {
  it('GETs from the echo server and reports status, headers, body and the address it connected to', async () => {
    const echo = await track(startEchoServer());
    const res = await send(get(new URL('/hello?x=1', echo.url)), options());
    expect(res).toMatchObject({ status: 200, statusText: 'OK', truncated: false, address: '127.0.0.1' });
    expect(res.finalUrl.href).toBe(new URL('/hello?x=1', echo.url).href);
    expect(JSON.parse(text(res))).toMatchObject({ ok: true, method: 'GET', path: '/hello?x=1' });
    expect(res.headers.find(([n]) => n.toLowerCase() === 'content-type')?.[1]).toBe('application/json');
    expect(echo.requests).toHaveLength(1);
  });

  it('POSTs a body with its length and the given headers; the encoding is identity and the connection not kept', async () => {
    const echo = await track(startEchoServer());
    const body = new TextEncoder().encode('{"name":"gizmo"}');
    const headers: Array<[string, string]> = [
      ['Content-Type', 'application/json'],
      ['Accept-Encoding', 'gzip'],
      ['Connection', 'keep-alive'],
    ];
    const res = await send({ method: 'POST', url: new URL('/widgets', echo.url), headers, body }, options());
    expect(res.status).toBe(200);
    const got = echo.requests[0];
    expect(got?.method).toBe('POST');
    expect(got?.body.toString('utf8')).toBe('{"name":"gizmo"}');
    expect(got?.headers).toContainEqual(['Content-Type', 'application/json']);
    expect(got?.headers).toContainEqual(['Content-Length', '16']);
    expect(got?.headers.filter(([n]) => n === 'Accept-Encoding')).toEqual([['Accept-Encoding', 'identity']]);
    expect(got?.headers.filter(([n]) => n === 'Connection')).toEqual([['Connection', 'close']]);
  });

  it('talks to the OpenAPI-documented widgets server: its document, a read, a create and a delete', async () => {
    const api = await track(startOpenApiServer());
    const doc = await send(get(new URL('/openapi.json', api.url)), options());
    expect(JSON.parse(text(doc))).toEqual(WIDGETS_OPENAPI);
    const one = await send(get(new URL('/widgets/1', api.url)), options());
    expect(JSON.parse(text(one))).toMatchObject({ id: 1, owner: { email: 'ada@example.com' } });
    const body = new TextEncoder().encode('{"name":"gear"}');
    const created = await send({ method: 'POST', url: new URL('/widgets', api.url), headers: [['Content-Type', 'application/json']], body }, options());
    expect(created.status).toBe(201);
    const deleted = await send({ method: 'DELETE', url: new URL('/widgets/2', api.url), headers: [], body: null }, options());
    expect(deleted.status).toBe(204);
    expect((await send(get(new URL('/widgets/2', api.url)), options())).status).toBe(404);
    expect(api.requests.map((r) => `${r.method} ${r.rawPath}`)).toEqual([
      'GET /openapi.json',
      'GET /widgets/1',
      'POST /widgets',
      'DELETE /widgets/2',
      'GET /widgets/2',
    ]);
  });

  it.each([
    ['GET', 'X-A', 'a\r\nX-Injected: 1'],
    ['GET', 'X-A\r\nX-Injected', '1'],
    ['GET', 'X-A', 'nul\u0000'],
    ['GET /other HTTP/1.1\r\nX: y\r\n\r\nGET', 'X-A', 'v'],
  ])('a method %j or header %j: %j with CR, LF or NUL (core refuses these first) is a TypeError from Node; nothing is sent', async (method, name, value) => {
    const echo = await track(startEchoServer());
    await expect(send({ method, url: new URL('/p', echo.url), headers: [[name, value]], body: null }, options())).rejects.toThrow(TypeError);
    expect(echo.requests).toEqual([]);
  });

  it('reports a closed port as http.unreachable and an unresolvable name too', async () => {
    const echo = await startEchoServer();
    const url = echo.url;
    await echo.close();
    expect((await refusal(send(get(url), options()))).code).toBe('http.unreachable');
    const failing: Resolver = () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }));
    const error = await refusal(send(get('http://nowhere.test/'), options({ resolve: failing })));
    expect(error.code).toBe('http.unreachable');
    expect(error.message).toContain('nowhere.test');
    const empty = await refusal(send(get('http://nowhere.test/'), options({ resolve: scripted([]) })));
    expect(empty.code).toBe('http.unreachable');
  });

  it('reports a server that does not speak HTTP as http.bad_response', async () => {
    const sockets: Socket[] = [];
    const garbage: NetServer = createNetServer((socket) => {
      sockets.push(socket);
      socket.end('SSH-2.0-OpenSSH\r\n\r\n');
    });
    await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', resolve));
    const address = garbage.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    try {
      expect((await refusal(send(get(`http://127.0.0.1:${address.port}/`), options()))).code).toBe('http.bad_response');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => garbage.close(() => resolve()));
    }
  });
});

describe('send: credentials reach the service and nothing else', () => {
  const SECRET = 's3cr3t/t0ken+with=chars';
  const credentials: Array<[string, ResolvedCredential, (got: { rawPath: string; headers: ReadonlyArray<readonly [string, string]> }) => boolean]> = [
    ['bearer', { kind: 'bearer', token: SECRET }, (got) => got.headers.some(([n, v]) => n === 'Authorization' && v === `Bearer ${SECRET}`)],
    [
      'basic',
      { kind: 'basic', username: 'svc', password: SECRET },
      (got) => got.headers.some(([n, v]) => n === 'Authorization' && v === `Basic ${Buffer.from(`svc:${SECRET}`).toString('base64')}`),
    ],
    ['header', { kind: 'header', name: 'X-Api-Key', value: SECRET }, (got) => got.headers.some(([n, v]) => n === 'X-Api-Key' && v === SECRET)],
    ['query', { kind: 'query', name: 'api_key', value: SECRET }, (got) => new URL(got.rawPath, 'http://x').searchParams.get('api_key') === SECRET],
  ];

  it.each(credentials)(
    'a %s credential arrives once, replacing an agent header of its name, and is in no part of the answer',
    async (_kind, credential, arrived) => {
      // The server echoes the key back in a Location-like header and a redirect: what the gateway shows must not carry it.
      const echo = await track(
        startEchoServer({ headers: [['X-Seen', SECRET]], redirects: { '/a': { location: `/b?api_key=${encodeURIComponent(SECRET)}` } } }),
      );
      const url = new URL('/a', echo.url);
      const res = await send(
        get(url, [
          ['authorization', 'Bearer agent-chosen'],
          ['x-api-key', 'agent-chosen'],
        ]),
        options({ credential }),
      );
      // The 302 is answered, not followed: one request, whose Location echoes the key.
      expect(res.status).toBe(302);
      expect(echo.requests).toHaveLength(1);
      for (const got of echo.requests) {
        expect(arrived(got)).toBe(true);
        const auth = got.headers.filter(([n]) => n.toLowerCase() === 'authorization');
        expect(auth.length).toBeLessThanOrEqual(1);
        if (credential.kind === 'header') expect(got.headers.filter(([n]) => n.toLowerCase() === 'x-api-key')).toHaveLength(1);
        if (credential.kind === 'query') expect(new URL(got.rawPath, 'http://x').searchParams.getAll('api_key')).toHaveLength(1);
      }
      const shown = JSON.stringify({
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
        finalUrl: res.finalUrl.href,
      });
      for (const form of [SECRET, encodeURIComponent(SECRET), Buffer.from(SECRET).toString('base64')]) expect(shown).not.toContain(form);
      expect(res.headers).toContainEqual(['X-Seen', '[credential]']);
      expect(res.headers).toContainEqual(['location', '/b?api_key=[credential]']);
    },
  );

  it("a redirect's Location echoing the credential (raw, URL-encoded, base64) shows none of its forms; nothing is sent to it", async () => {
    const credential: ResolvedCredential = { kind: 'query', name: 'key', value: SECRET };
    const echo = await track(
      startEchoServer({ redirects: { '/a': { location: `/b?copy=${encodeURIComponent(SECRET)}&b64=${Buffer.from(SECRET).toString('base64')}` } } }),
    );
    const res = await send(get(new URL('/a', echo.url)), options({ credential }));
    expect(res.status).toBe(302);
    const shown = JSON.stringify({ headers: res.headers, statusText: res.statusText, finalUrl: res.finalUrl.href });
    expect(shown).toContain('[credential]');
    for (const form of [SECRET, encodeURIComponent(SECRET), Buffer.from(SECRET).toString('base64')]) expect(shown).not.toContain(form);
    expect(echo.requests).toHaveLength(1);
  });

  it('a timeout or unreachable error of a request with a query key does not name the key', async () => {
    const slow = await track(startSlowServer());
    const credential: ResolvedCredential = { kind: 'query', name: 'key', value: SECRET };
    const error = await refusal(send(get(new URL('/?q=1', slow.url)), options({ credential, timeoutMs: 150 })));
    expect(error.code).toBe('http.timeout');
    expect(JSON.stringify({ m: error.message, d: error.details })).not.toContain(encodeURIComponent(SECRET));
    expect(slow.requests[0]?.rawPath).toContain(`key=${encodeURIComponent(SECRET)}`);
  });
});

describe('send: redirects are answered, never followed', () => {
  it('a redirect to another port (another origin) is answered as it came; the target is never contacted', async () => {
    const echo = await track(startEchoServer());
    const location = new URL('/landing', echo.url).href;
    const redirector = await track(startRedirector(location));
    const res = await send(get(redirector.url), options());
    expect(res).toMatchObject({ status: 302, truncated: false, address: '127.0.0.1' });
    expect(res.headers).toContainEqual(['location', location]);
    expect(Buffer.from(res.body).toString('utf8')).toBe('moved');
    expect(res.finalUrl.href).toBe(new URL(redirector.url).href);
    expect(redirector.requests).toHaveLength(1);
    expect(echo.requests).toEqual([]);
  });

  it.each(['http://169.254.169.254/latest/meta-data/iam/security-credentials/', 'http://[fd00:ec2::254]/latest/', 'https://127.0.0.1/', 'file:///etc/passwd'])(
    'a redirect to %s is answered; nothing is looked up or sent there',
    async (location) => {
      const redirector = await track(startRedirector(location, 301));
      const resolver = scripted(['127.0.0.1']);
      const res = await send(get(redirector.url), options({ resolve: resolver }));
      expect(res.status).toBe(301);
      expect(res.headers).toContainEqual(['location', location]);
      expect(resolver.calls).toEqual([]);
      expect(redirector.requests).toHaveLength(1);
    },
  );

  it('a same-origin redirect is answered, not followed: one lookup, one request, even when the name would now answer the metadata address', async () => {
    const echo = await track(startEchoServer({ redirects: { '/start': { location: '/next' } } }));
    const resolver = scripted(['127.0.0.1'], ['169.254.169.254']);
    const res = await send(get(`http://svc.test:${echo.port}/start`), options({ resolve: resolver }));
    expect(res.status).toBe(302);
    expect(res.headers).toContainEqual(['location', '/next']);
    expect(res.finalUrl.href).toBe(`http://svc.test:${echo.port}/start`);
    expect(resolver.calls).toEqual(['svc.test']);
    expect(echo.requests.map((r) => r.rawPath)).toEqual(['/start']);
  });

  it('a redirect loop costs one request', async () => {
    const echo = await track(startEchoServer({ redirects: { '/loop': { location: '/loop' } } }));
    const res = await send(get(new URL('/loop', echo.url)), options());
    expect(res.status).toBe(302);
    expect(echo.requests).toHaveLength(1);
  });

  it.each([
    [303, 'POST'],
    [302, 'POST'],
    [301, 'PUT'],
    [307, 'POST'],
    [308, 'PATCH'],
  ])('a %i after %s is answered: the write was sent once, and nothing else', async (status, method) => {
    const echo = await track(startEchoServer({ redirects: { '/a': { location: '/b', status } } }));
    const body = new TextEncoder().encode('payload');
    const res = await send({ method, url: new URL('/a', echo.url), headers: [['Content-Type', 'text/plain']], body }, options());
    expect(res.status).toBe(status);
    expect(echo.requests.map((r) => [r.method, r.rawPath, r.body.toString('utf8')])).toEqual([[method, '/a', 'payload']]);
  });
});

describe('send: address pinning and DNS rebinding', () => {
  /** Two echo servers on one port: 127.0.0.2 (the allowed network) and 127.0.0.1 (refused). */
  async function pair(): Promise<{ allowed: TestServer; refused: TestServer }> {
    for (let attempt = 0; ; attempt++) {
      const allowed = await track(startEchoServer({ host: '127.0.0.2' }));
      try {
        const refused = await track(startEchoServer({ host: '127.0.0.1', port: allowed.port }));
        return { allowed, refused };
      } catch (error) {
        if (attempt >= 5) throw error;
      }
    }
  }
  const ONLY_127_0_0_2 = allowList(['127.0.0.2/32']);

  it('a resolver answering 127.0.0.2 and then 127.0.0.1 gets the second request refused; 127.0.0.1 saw nothing', async () => {
    const { allowed, refused } = await pair();
    const resolver = scripted(['127.0.0.2'], ['127.0.0.1']);
    const url = `http://rebind.test:${allowed.port}/data`;
    const first = await send(get(url), options({ networks: ONLY_127_0_0_2, resolve: resolver }));
    expect(first.address).toBe('127.0.0.2');
    const error = await refusal(send(get(url), options({ networks: ONLY_127_0_0_2, resolve: resolver })));
    expect(error.code).toBe('http.address_refused');
    expect(error.details).toMatchObject({ host: 'rebind.test', address: '127.0.0.1', addressClass: 'loopback' });
    expect(allowed.requests).toHaveLength(1);
    expect(refused.requests).toEqual([]);
  });

  it('the connection goes to the checked address: a name only the injected resolver knows is reached at 127.0.0.2', async () => {
    const { allowed, refused } = await pair();
    const resolver = scripted(['127.0.0.2']);
    const res = await send(get(`http://only-injected.test:${allowed.port}/`), options({ networks: ONLY_127_0_0_2, resolve: resolver }));
    expect(res.status).toBe(200);
    expect(resolver.calls).toEqual(['only-injected.test']);
    expect(allowed.requests[0]?.headers).toContainEqual(['Host', `only-injected.test:${allowed.port}`]);
    expect(refused.requests).toEqual([]);
  });

  it.each([
    [['127.0.0.2', '127.0.0.1']],
    [['127.0.0.1', '127.0.0.2']],
    [['127.0.0.2', '::ffff:127.0.0.1']],
    [['127.0.0.2', '169.254.169.254']],
    [['127.0.0.2', '10.0.0.1']],
  ])('an answer %j with any refused address is refused whole; nothing reaches either server', async (answer) => {
    const { allowed, refused } = await pair();
    const error = await refusal(send(get(`http://multi.test:${allowed.port}/`), options({ networks: ONLY_127_0_0_2, resolve: scripted(answer) })));
    expect(error.code).toBe('http.address_refused');
    expect(allowed.requests).toEqual([]);
    expect(refused.requests).toEqual([]);
  });

  it('a same-origin redirect gives a rebinding resolver no second lookup: the 3xx is answered from the checked address', async () => {
    const allowed = await track(startEchoServer({ host: '127.0.0.2', redirects: { '/a': { location: '/b' } } }));
    const resolver = scripted(['127.0.0.2'], ['127.0.0.1']);
    const res = await send(get(`http://rebind.test:${allowed.port}/a`), options({ networks: ONLY_127_0_0_2, resolve: resolver }));
    expect(res).toMatchObject({ status: 302, address: '127.0.0.2' });
    expect(resolver.calls).toEqual(['rebind.test']);
    expect(allowed.requests.map((r) => r.rawPath)).toEqual(['/a']);
  });
});

describe('send: IP literal hosts', () => {
  const forms = [
    '127.0.0.1',
    '2130706433',
    '0177.0.0.1',
    '0x7f.1',
    '0x7f000001',
    '127.1',
    '017700000001',
    '[::ffff:127.0.0.1]',
    '[::ffff:7f00:1]',
    '[::127.0.0.1]',
  ];

  it.each(forms)('http://%s:PORT/ is refused when loopback is not allowed; nothing arrives and nothing is resolved', async (form) => {
    const echo = await track(startEchoServer());
    const resolver = scripted(['127.0.0.1']);
    const error = await refusal(send(get(`http://${form}:${echo.port}/`), options({ networks: allowList(['127.0.0.2/32']), resolve: resolver })));
    expect(error.code).toBe('http.address_refused');
    expect(error.details).toMatchObject({ addressClass: 'loopback' });
    expect(resolver.calls).toEqual([]);
    expect(echo.requests).toEqual([]);
  });

  it('the same decimal form is reached when the connection declares 127.0.0.1/32', async () => {
    const echo = await track(startEchoServer());
    const res = await send(get(`http://2130706433:${echo.port}/`), options());
    expect(res.status).toBe(200);
    expect(echo.requests).toHaveLength(1);
  });

  it('a name the resolver answers with a mapped IPv6 form of 127.0.0.1 is refused', async () => {
    const echo = await track(startEchoServer());
    const error = await refusal(send(get(`http://mapped.test:${echo.port}/`), options({ networks: allowList([]), resolve: scripted(['::ffff:7f00:1']) })));
    expect(error.code).toBe('http.address_refused');
    expect(echo.requests).toEqual([]);
  });
});

describe('send: time and size caps', () => {
  it('a slow-loris body is cut at the time limit (http.timeout), however steadily it trickles', async () => {
    const slow = await track(startSlowServer({ intervalMs: 20 }));
    const started = Date.now();
    const error = await refusal(send(get(slow.url), options({ timeoutMs: 300 })));
    expect(error.code).toBe('http.timeout');
    expect(error.details).toMatchObject({ timeoutMs: 300 });
    expect(Date.now() - started).toBeLessThan(2500);
    await expect.poll(() => slow.openConnections()).toBe(0);
  });

  it('a resolver that never answers is cut by the same time limit', async () => {
    const hanging: Resolver = () => new Promise(() => undefined);
    const error = await refusal(send(get('http://hang.test/'), options({ timeoutMs: 100, resolve: hanging })));
    expect(error.code).toBe('http.timeout');
  });

  it('an endless body stops at maxResponseBytes, reported as truncated', async () => {
    const endless = await track(startEndlessServer());
    const res = await send(get(endless.url), options({ maxResponseBytes: 100_000 }));
    expect(res.truncated).toBe(true);
    expect(res.body.byteLength).toBe(100_000);
    expect(Buffer.from(res.body).every((b) => b === 0x78)).toBe(true);
    await expect.poll(() => endless.openConnections()).toBe(0);
  });

  it('an answer exactly at the cap is whole, one byte over is truncated', async () => {
    const echo = await track(startEchoServer());
    const whole = await send(get(echo.url), options());
    const size = whole.body.byteLength;
    expect((await send(get(echo.url), options({ maxResponseBytes: size }))).truncated).toBe(false);
    const cut = await send(get(echo.url), options({ maxResponseBytes: size - 1 }));
    expect(cut.truncated).toBe(true);
    expect(cut.body.byteLength).toBe(size - 1);
  });
});

describe('send: HTTPS', () => {
  it('verifies the certificate for the host name while connecting to the pinned address, and presents a client certificate', async () => {
    const tls = await startTlsEchoServer({ requireClientCert: true });
    try {
      const credential: ResolvedCredential = { kind: 'client_certificate', cert: tls.client.cert, key: tls.client.key };
      const url = `https://api.test:${tls.port}/secure`;
      const res = await send(get(url), options({ ca: tls.ca, credential, resolve: scripted(['127.0.0.1']) }));
      expect(res.status).toBe(200);
      expect(tls.requests.map((r) => r.rawPath)).toEqual(['/secure']);
      expect(tls.clientSubjects).toEqual(['drawbridge-client']);

      const wrongName = await refusal(send(get(`https://other.test:${tls.port}/`), options({ ca: tls.ca, credential, resolve: scripted(['127.0.0.1']) })));
      expect(wrongName.code).toBe('http.tls_failed');
      const untrusted = await refusal(send(get(url), options({ credential, resolve: scripted(['127.0.0.1']) })));
      expect(untrusted.code).toBe('http.tls_failed');
      expect(tls.requests).toHaveLength(1);
    } finally {
      await tls.close();
    }
  });
});
