// The permanent http_request evasion suite, through the whole gateway against
// a local echo server that records every request it receives. The policy is
// a permissive one an operator might write (everything allowed but /admin/**),
// so what stops each attempt is the backend's own parsing, the connection's
// declaration or the transport, never a missing rule. For every refused
// attempt the verdict is read off the server: nothing arrived. Redirects are
// answered, never followed: off the origin or out of the base path they are
// named not reachable, same-origin ones inside it name the path to call; private
// and metadata addresses in every literal form, and a resolver that changes its
// answer (DNS rebinding) are refused with nothing sent where they pointed.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpBackend } from '../../../src/backends/http/index.js';
import type { ResolvedAddress } from '../../../src/backends/http/transport.js';
import { loadConfig } from '../../../src/config/load.js';
import { errorKind } from '../../../src/errors.js';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { checkConnections } from '../../../src/pipeline/probe.js';
import { startEchoServer, startTlsEchoServer, type TestServer, type TlsTestServer } from '../../support/http-servers.js';

const KEY = `key-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });
const scratch: string[] = [];

function configDir(tools: string, rules: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-http-evasion-'));
  scratch.push(dir);
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'tools', 'api.yaml'), tools);
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    'kind: gateway\nidentity: { mode: local, subject: dev@example.com, groups: [developers] }\n' +
      'journal: { path: journal.db }\napproval: { wait: 0ms, store: approvals.db }\n',
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), rules);
  return dir;
}

const PERMISSIVE = `kind: policy
rules:
  - name: no-admin
    match: { tool: http_request, paths: ['/admin/**'] }
    effect: deny
  - name: everything-else
    match: { tool: http_request }
    effect: allow
`;

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

describe('refused requests never reach the server', () => {
  let echo: TestServer;
  let gateway: Gateway;

  beforeAll(async () => {
    echo = await startEchoServer({ reflect: true });
    const dir = configDir(
      `kind: connection
name: api
type: http
description: echo
base_url: http://127.0.0.1:${echo.port}/api/v1
credential: { query: { name: api_key, value: '\${API_KEY}' } }
dry_run: { header: { name: x-dry-run, value: 'true' } }
allowed_headers: [x-request-id]
networks: [127.0.0.1/32]
limits: { timeout: 5s, max_request_bytes: 1KiB }
---
kind: tool
name: http_request
type: http_request
connections: [api]
`,
      PERMISSIVE,
    );
    gateway = await openGateway({ configDir: dir, env: { API_KEY: KEY } });
  });

  afterAll(async () => {
    await gateway?.close();
    await echo?.close();
  });

  const call = (args: Record<string, unknown>) => callTool(gateway, { tool: 'http_request', args: { connection: 'api', ...args }, identity: dev });

  const PATH = /^http\.path_invalid$/;
  const QUERY = /^http\.query_invalid$/;
  const FORBIDDEN = /^http\.header_forbidden$/;
  const HEADER = /^http\.header_invalid$/;
  const DENIED = /^policy\.denied$/;
  const get = (path: string) => ({ method: 'GET', path });

  const attempts: Array<[string, Record<string, unknown>, RegExp]> = [
    // Traversal in every encoding.
    ['dot-dot', get('/..'), PATH],
    ['dot-dot above the base', get('/a/../../etc/passwd'), PATH],
    ['percent-encoded dot-dot', get('/%2e%2e/secret'), PATH],
    ['mixed-case encoded dot-dot', get('/%2E%2e/secret'), PATH],
    ['half-encoded dot-dot', get('/.%2e/secret'), PATH],
    ['double-encoded dot-dot', get('/%252e%252e/secret'), PATH],
    ['overlong UTF-8 dots', get('/%c0%ae%c0%ae/secret'), PATH],
    ['backslash traversal', get('/..\\secret'), PATH],
    ['encoded backslash', get('/..%5csecret'), PATH],
    ['encoded slashes', get('/a%2f..%2f..%2fsecret'), PATH],
    ['dot-dot with a path parameter', get('/..;/secret'), PATH],
    ['fullwidth dots', get('/\uff0e\uff0e/secret'), PATH],
    ['fullwidth slash', get('/a\uff0fb'), PATH],
    // Host and scheme smuggling.
    ['network-path reference', get('//evil.example/x'), PATH],
    ['absolute URL', get('http://evil.example/'), PATH],
    ['upper-case scheme', get('HTTP://evil.example/'), PATH],
    ['metadata URL', get('http://169.254.169.254/latest/meta-data/'), PATH],
    ['scheme without slashes', get('https:evil.example'), PATH],
    ['encoded network path', get('/%2f%2fevil.example'), PATH],
    ['query in the path', get('/x?api_key=mine'), PATH],
    ['fragment', get('/x#y'), PATH],
    // CR, LF, NUL and invisible characters.
    ['CRLF in the path', get('/a\r\nHost: evil'), PATH],
    ['encoded CRLF in the path', get('/a%0d%0aHost:%20evil'), PATH],
    ['NUL in the path', get('/a%00.json'), PATH],
    ['zero-width space', get('/admin\u200b/users'), PATH],
    ['right-to-left override', get('/files/\u202egnp.exe'), PATH],
    // Policy sees the path the server will see.
    ['denied path', get('/admin/keys'), DENIED],
    ['denied path, other case', get('/ADMIN/keys'), DENIED],
    ['denied path, trailing slash', get('/admin/keys/'), DENIED],
    ['denied path behind dot-dot', get('/public/../admin/keys'), DENIED],
    ['denied path, encoded letter', get('/%61dmin/keys'), DENIED],
    ['denied path, dot segment', get('/./admin/keys'), DENIED],
    // Query.
    ["the credential's query parameter", { ...get('/x'), query: { api_key: 'mine' } }, QUERY],
    ["the credential's query parameter, other case", { ...get('/x'), query: { API_KEY: 'mine' } }, QUERY],
    ['duplicate query keys (case)', { ...get('/x'), query: { a: '1', A: '2' } }, QUERY],
    ['CRLF in a query value', { ...get('/x'), query: { a: 'x\r\nHost: evil' } }, QUERY],
    ['too many query parameters', { ...get('/x'), query: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) }, QUERY],
    ['oversized query value', { ...get('/x'), query: { a: 'v'.repeat(4097) } }, QUERY],
    // Headers.
    ['Host', { ...get('/x'), headers: { Host: 'evil.example' } }, FORBIDDEN],
    ['Authorization', { ...get('/x'), headers: { Authorization: 'Bearer mine' } }, FORBIDDEN],
    ['Cookie', { ...get('/x'), headers: { Cookie: 'session=1' } }, FORBIDDEN],
    ['Transfer-Encoding', { ...get('/x'), headers: { 'Transfer-Encoding': 'chunked' } }, FORBIDDEN],
    ['Content-Length', { ...get('/x'), headers: { 'Content-Length': '0' } }, FORBIDDEN],
    ['X-Forwarded-For', { ...get('/x'), headers: { 'X-Forwarded-For': '127.0.0.1' } }, FORBIDDEN],
    ['X-Original-URL', { ...get('/x'), headers: { 'X-Original-URL': '/admin/keys' } }, FORBIDDEN],
    ['method override', { ...get('/x'), headers: { 'X-HTTP-Method-Override': 'DELETE' } }, FORBIDDEN],
    ["the dry run's header", { method: 'POST', path: '/x', headers: { 'x-dry-run': 'false' } }, FORBIDDEN],
    ['a header not in allowed_headers', { ...get('/x'), headers: { 'X-Not-Listed': '1' } }, FORBIDDEN],
    ['CRLF in an allowed header', { ...get('/x'), headers: { 'X-Request-Id': 'a\r\nHost: evil' } }, HEADER],
    ['CRLF in a header name', { ...get('/x'), headers: { 'X-A\r\nHost': 'evil' } }, HEADER],
    ['duplicate header', { ...get('/x'), headers: { 'x-request-id': 'a', 'X-Request-Id': 'b' } }, HEADER],
    // Methods and bodies.
    ['TRACE', { method: 'TRACE', path: '/x' }, /^http\.method_invalid$/],
    ['CONNECT', { method: 'CONNECT', path: '/x' }, /^http\.method_invalid$/],
    ['method with CRLF', { method: 'GET\r\n', path: '/x' }, /^http\.method_invalid$/],
    ['a body on GET', { ...get('/x'), body: { a: 1 } }, /^http\.body_invalid$/],
    ['an oversized body', { method: 'POST', path: '/x', body: 'x'.repeat(2048) }, /^http\.body_invalid$/],
    ['an oversized JSON body', { method: 'PUT', path: '/x', body: { a: 'é'.repeat(600) } }, /^http\.body_invalid$/],
  ];

  it.each(attempts)('%s is refused', async (_name, args, code) => {
    const before = echo.requests.length;
    const r = await call(args);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toMatch(code);
    expect(errorKind(r.error.code)).toBe('refusal');
    expect(r.text).not.toContain(KEY);
    expect(echo.requests.length - before).toBe(0);
  });

  it('an accepted request carries the key only in the query the gateway built', async () => {
    const before = echo.requests.length;
    const r = await call({ method: 'GET', path: '/x', query: { q: 'a&api_key=mine' } });
    expect(r.ok, r.text).toBe(true);
    const got = echo.requests.slice(before);
    expect(got.map((q) => q.rawPath)).toEqual([`/api/v1/x?q=a%26api_key%3Dmine&api_key=${KEY}`]);
    expect(r.text + JSON.stringify(r.ok ? r.structured : null)).not.toContain(KEY);
  });
});

describe('redirects are answered to the agent and never followed', () => {
  let echo: TestServer;
  let other: TestServer;
  let gateway: Gateway;
  const targets: Record<string, string> = {};
  /** Same-origin targets inside the base path, and the path the agent is told to call. */
  const inside: Record<string, { location: string; path: string }> = {};

  beforeAll(async () => {
    other = await startEchoServer({ host: '127.0.0.2' });
    const port = other.port;
    Object.assign(targets, {
      'another loopback host': `http://127.0.0.2:${port}/api/v1/x`,
      'another port': `http://127.0.0.1:${port}/api/v1/x`,
      'another scheme': 'https://127.0.0.1/api/v1/x',
      'the metadata address': 'http://169.254.169.254/latest/meta-data/',
      'metadata, IPv4-mapped IPv6': 'http://[::ffff:169.254.169.254]/latest/meta-data/',
      'metadata, decimal': 'http://2852039166/latest/meta-data/',
      'metadata, octal': 'http://0251.0376.0251.0376/latest/meta-data/',
      'metadata, hex': 'http://0xa9fea9fe/latest/meta-data/',
      'AWS IPv6 metadata': 'http://[fd00:ec2::254]/latest/meta-data/',
      'a private address': 'http://10.0.0.1/',
      'scheme-relative': '//evil.example/x',
      'same origin, out of the base path': '/admin/keys',
      'same origin, dot-dot out of the base path': '/api/v1/../admin/keys',
      'same origin, encoded dot-dot out of the base path': '/api/v1/%2e%2e/admin/keys',
      'same origin, encoded slash': '/api/v1/a%2fb',
      'same origin, prefix but not the base path': '/api/v10/x',
    });
    Object.assign(inside, {
      'a plain path': { location: '/api/v1/x', path: '/x' },
      'a relative path': { location: 'y/z', path: '/y/z' },
      'dot-dot staying inside': { location: '/api/v1/a/../b', path: '/b' },
      'the base itself': { location: '/api/v1', path: '/' },
    });
    const redirects = Object.fromEntries(Object.values(targets).map((location, i) => [`/api/v1/r${i}`, { location }]));
    const insideRedirects = Object.fromEntries(Object.values(inside).map(({ location }, i) => [`/api/v1/in${i}`, { location }]));
    // The server reads this object on each request: the absolute same-origin target is added once the port is known.
    const all: Record<string, { location: string }> = { ...redirects, ...insideRedirects, '/api/v1/loop': { location: '/api/v1/loop' } };
    echo = await startEchoServer({ redirects: all });
    inside['an absolute same-origin URL'] = { location: `http://127.0.0.1:${echo.port}/api/v1/c`, path: '/c' };
    all[`/api/v1/in${Object.keys(inside).length - 1}`] = { location: `http://127.0.0.1:${echo.port}/api/v1/c` };
    const dir = configDir(
      `kind: connection
name: api
type: http
description: echo
base_url: http://127.0.0.1:${echo.port}/api/v1
networks: [127.0.0.0/8]
limits: { timeout: 5s }
---
kind: tool
name: http_request
type: http_request
connections: [api]
`,
      PERMISSIVE,
    );
    gateway = await openGateway({ configDir: dir, env: {} });
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all([echo?.close(), other?.close()]);
  });

  const call = (path: string) => callTool(gateway, { tool: 'http_request', args: { connection: 'api', method: 'GET', path }, identity: dev });
  const noticesOf = (r: Awaited<ReturnType<typeof call>>): string => (r.ok ? r.structured.notices.join('\n') : '');

  it('every off-origin or out-of-base target of the table: the 3xx is answered as not reachable, only the redirecting request was sent', async () => {
    const names = Object.keys(targets);
    expect(names.length).toBeGreaterThan(10);
    for (const [i, name] of names.entries()) {
      const before = echo.requests.length;
      const r = await call(`/r${i}`);
      expect(r.ok, `${name}: ${r.text}`).toBe(true);
      if (r.ok) expect(r.structured.rows[0]?.[0], name).toBe(302);
      expect(noticesOf(r), name).toMatch(/sent nothing to the target\. The target is .*: it is not reachable through connection api\./);
      expect(noticesOf(r), name).not.toContain('call http_request');
      expect(
        echo.requests.slice(before).map((q) => q.rawPath),
        name,
      ).toEqual([`/api/v1/r${i}`]);
    }
    expect(other.requests).toEqual([]);
  });

  it('every same-origin target inside the base path: answered, not followed, and the notice names the path to call', async () => {
    for (const [i, [name, { path }]] of Object.entries(inside).entries()) {
      const before = echo.requests.length;
      const r = await call(`/in${i}`);
      expect(r.ok, `${name}: ${r.text}`).toBe(true);
      expect(noticesOf(r), name).toContain(`call http_request with path ${JSON.stringify(path)}`);
      expect(
        echo.requests.slice(before).map((q) => q.rawPath),
        name,
      ).toEqual([`/api/v1/in${i}`]);
    }
  });

  it('a redirect loop costs one request: the agent is told the path, and nothing repeats on its own', async () => {
    const before = echo.requests.length;
    const r = await call('/loop');
    expect(r.ok, r.text).toBe(true);
    expect(noticesOf(r)).toContain('call http_request with path "/loop"');
    expect(echo.requests.length - before).toBe(1);
  });
});

describe('addresses: pinned per request, every answer checked (DNS rebinding), literal forms', () => {
  let tls: TlsTestServer;
  let gateway: Gateway;
  const answers: Array<readonly ResolvedAddress[]> = [];
  const resolver = async (hostname: string): Promise<readonly ResolvedAddress[]> => {
    if (hostname !== 'api.test') throw new Error(`unexpected lookup of ${hostname}`);
    return answers.shift() ?? [{ address: '127.0.0.1', family: 4 }];
  };

  beforeAll(async () => {
    tls = await startTlsEchoServer({ requireClientCert: true });
    const dir = configDir(
      `kind: connection
name: api
type: http
description: TLS echo reached by name
base_url: https://api.test:${tls.port}
credential: { client_certificate: { cert: { file: client.pem }, key: { file: client-key.pem }, ca: { file: ca.pem } } }
networks: [127.0.0.1/32]
limits: { timeout: 5s }
---
kind: tool
name: http_request
type: http_request
connections: [api]
`,
      PERMISSIVE,
    );
    writeFileSync(join(dir, 'client.pem'), tls.client.cert);
    writeFileSync(join(dir, 'client-key.pem'), tls.client.key, { mode: 0o600 });
    writeFileSync(join(dir, 'ca.pem'), tls.ca);
    gateway = await openGateway({ configDir: dir, env: {}, backends: [httpBackend({ resolve: resolver })] });
  });

  afterAll(async () => {
    await gateway?.close();
    await tls?.close();
  });

  const get = () => callTool(gateway, { tool: 'http_request', args: { connection: 'api', method: 'GET', path: '/' }, identity: dev });

  it('reaches the declared network with the client certificate, verified for the host name', async () => {
    const before = tls.requests.length;
    const r = await get();
    expect(r.ok, r.text).toBe(true);
    expect(tls.requests.length - before).toBe(1);
    expect(tls.clientSubjects.at(-1)).toBe('drawbridge-client');
  });

  it('check --connect probes the base URL (an origin without a path) through the same pinned transport', async () => {
    const [report] = await checkConnections(gateway.config, { env: {} });
    expect(report?.status, report?.line).toBe('ok');
    expect(report?.line).toMatch(new RegExp(`^HTTP 200 from api\\.test:${tls.port} \\(127\\.0\\.0\\.1\\)`));
    answers.push([{ address: '169.254.169.254', family: 4 }]);
    const [refused] = await checkConnections(gateway.config, { env: {} });
    expect(refused?.error?.code).toBe('http.address_refused');
  });

  it.each([
    ['the name now answers with the metadata address', [{ address: '169.254.169.254', family: 4 }]],
    ['the name now answers with a private address', [{ address: '10.0.0.7', family: 4 }]],
    [
      'one of its answers is private',
      [
        { address: '127.0.0.1', family: 4 },
        { address: '192.168.1.1', family: 4 },
      ],
    ],
    ['an IPv4-mapped metadata address', [{ address: '::ffff:169.254.169.254', family: 6 }]],
    ['the AWS IPv6 metadata address', [{ address: 'fd00:ec2::254', family: 6 }]],
    ['loopback outside the declared /32', [{ address: '127.0.0.2', family: 4 }]],
  ] as const)('refused when %s, and nothing is sent', async (_name, answer) => {
    answers.push(answer);
    const before = tls.requests.length;
    const r = await get();
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code, r.text).toBe('http.address_refused');
    expect(tls.requests.length - before).toBe(0);
    // The next lookup answers the declared address again: the connection works, the refusal was per request.
    expect((await get()).ok).toBe(true);
  });

  it.each([
    ['decimal', 'http://2130706433:8080'],
    ['octal', 'http://0177.0.0.1:8080'],
    ['hex', 'http://0x7f.1:8080'],
    ['short', 'http://127.1:8080'],
    ['localhost', 'http://localhost:8080'],
    ['metadata, IPv4-mapped', 'https://[::ffff:169.254.169.254]'],
    ['metadata, decimal', 'https://2852039166'],
    ['private', 'https://10.1.2.3'],
  ])('a base_url at a non-public address in %s form needs that network declared: refused at config load', (_form, base) => {
    const dir = configDir(
      `kind: connection\nname: api\ntype: http\ndescription: x\nbase_url: ${base}\n---\n` +
        'kind: tool\nname: http_request\ntype: http_request\nconnections: [api]\n',
      PERMISSIVE,
    );
    expect(() => loadConfig(dir)).toThrow(/networks/);
  });
});
