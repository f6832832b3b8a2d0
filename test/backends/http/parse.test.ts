// The http_request input: how paths are normalised, what reads and writes are,
// the resolve-time checks against a connection's declaration, and the
// permanent evasion table of paths, queries and headers that must be refused.

import { describe, expect, it } from 'vitest';
import { parseOpenApi } from '../../../src/backends/http/openapi.js';
import { checkAgainstConnection, normalisePath, parseHttpRequest, resolveHttpRequest, type HttpRequestRules } from '../../../src/backends/http/parse.js';
import { httpConnectionSchema } from '../../../src/backends/http/schema.js';
import { DrawbridgeError } from '../../../src/errors.js';

const context = { tool: 'api', connection: 'crm' };
const parse = (input: Record<string, unknown>) => parseHttpRequest({ connection: 'crm', method: 'GET', path: '/', ...input }, context);

function refusal(run: () => unknown): DrawbridgeError {
  try {
    run();
  } catch (error) {
    if (error instanceof DrawbridgeError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('normalisePath', () => {
  const accepted: Array<[string, string, string]> = [
    ['/', '/', '/'],
    ['/customers/42', '/customers/42', '/customers/42'],
    ['customers/42', '/customers/42', '/customers/42'],
    ['/customers/', '/customers/', '/customers/'],
    ['/a/./b', '/a/b', '/a/b'],
    ['/a/b/../c', '/a/c', '/a/c'],
    ['/a/b/..', '/a/', '/a/'],
    ['/a/%2e%2e/b', '/b', '/b'],
    ['/a/%2E/b', '/a/b', '/a/b'],
    ['/files/a%20b', '/files/a b', '/files/a%20b'],
    ['/files/a b', '/files/a b', '/files/a%20b'],
    ['/caf%C3%A9', '/café', '/caf%C3%A9'],
    ['/café', '/café', '/caf%C3%A9'],
    ['/v1/items:batchGet', '/v1/items:batchGet', '/v1/items:batchGet'],
    ['/users/me@example.com', '/users/me@example.com', '/users/me@example.com'],
    ['/a;b', '/a;b', '/a%3Bb'],
    ['/q%3Fx', '/q?x', '/q%3Fx'],
    ['/100%25', '/100%', '/100%25'],
    ['/a+b', '/a+b', '/a+b'],
    ['/..a/b..', '/..a/b..', '/..a/b..'],
  ];
  it.each(accepted)('%s → %s (sent as %s)', (raw, path, encoded) => {
    const n = normalisePath(raw);
    expect(n.path).toBe(path);
    expect(n.encodedPath).toBe(encoded);
    expect(n.segments).toEqual(path.slice(1).split('/'));
  });

  it("the encoded path survives WHATWG URL parsing (fetch's) unchanged: nothing is re-normalised on the way out", () => {
    const extra = ["/a/b c/%7E/~/!$&'()*+,;=:@", '/%C3%A9t%C3%A9/\u{1F600}', '/a/..b/.c/c./', '/%5B%5D%7B%7D%7C%5E%60'];
    for (const raw of [...accepted.map(([r]) => r), ...extra]) {
      const { encodedPath } = normalisePath(raw);
      expect(new URL(`https://api.example/v1${encodedPath}`).pathname).toBe(`/v1${encodedPath}`);
    }
  });

  it('the encoded path decodes once to the normalised path: what policy saw is what the server sees', () => {
    for (const [raw] of accepted) {
      const n = normalisePath(raw);
      expect(decodeURIComponent(n.encodedPath)).toBe(n.path);
    }
  });
});

describe('the permanent evasion table: paths', () => {
  const refused: Array<[string, RegExp]> = [
    // Traversal in every encoding.
    ['/..', /climbing above/],
    ['..', /climbing above/],
    ['/a/../..', /climbing above/],
    ['/a/../../etc/passwd', /climbing above/],
    ['/%2e%2e', /climbing above/],
    ['/%2E%2e/secret', /climbing above/],
    ['/.%2e/secret', /climbing above/],
    ['/%2e./secret', /climbing above/],
    ['/%252e%252e/secret', /double percent-encoding/],
    ['/%25%32%65', /double percent-encoding/],
    ['/%c0%ae%c0%ae/secret', /not valid UTF-8/],
    ['/%C0%AE', /not valid UTF-8/],
    ['/%e0%80%ae', /not valid UTF-8/],
    ['/%ff', /not valid UTF-8/],
    ['/%ed%a0%80', /not valid UTF-8/],
    ['/..\\secret', /backslash/],
    ['/a\\..\\..\\secret', /backslash/],
    ['/..%5csecret', /encoded backslash/],
    ['/..%5Csecret', /encoded backslash/],
    ['/a%2f..%2f..%2fsecret', /encoded slash/],
    ['/a%2F..', /encoded slash/],
    ['/..;/secret', /dot segment with a path parameter/],
    ['/a/..;x/b', /dot segment with a path parameter/],
    ['/.;/b', /dot segment with a path parameter/],
    ['/\uff0e\uff0e/secret', /normalises to/],
    ['/a\uff0fb', /normalises to/],
    ['/a%EF%BC%8Fb', /normalises to/],
    ['/a\ufe68b', /normalises to/],
    ['/%', /malformed percent-escape/],
    ['/%2', /malformed percent-escape/],
    ['/%zz', /malformed percent-escape/],
    // Host and scheme smuggling.
    ['//evil.example', /network-path reference/],
    ['//evil.example/x', /network-path reference/],
    ['/a//b', /empty segment/],
    ['/\\\\evil.example', /backslash/],
    ['http://evil.example/', /scheme/],
    ['HTTP://evil.example/', /scheme/],
    ['https:evil.example', /scheme/],
    ['http:', /scheme/],
    ['javascript:alert(1)', /scheme/],
    ['file:///etc/passwd', /scheme/],
    ['/http://evil.example/', /empty segment/],
    ['/%2f%2fevil.example', /encoded slash/],
    ['/x?admin=1', /"\?"/],
    ['/x#frag', /fragment/],
    // CR, LF, NUL and other control characters, raw and encoded.
    ['/a\r\nHost: evil', /line break/],
    ['/a\nb', /line break/],
    ['/a\rb', /line break/],
    ['/a%0d%0aHost:%20evil', /line break \(CR or LF\), percent-encoded/],
    ['/a%0Ab', /line break/],
    ['/a\u0000b', /NUL/],
    ['/a%00b', /NUL/],
    ['/a%00.json', /NUL/],
    ['/a\tb', /control character/],
    ['/a%7fb', /control character/],
    ['/a%c2%85b', /control character/],
    ['/a\ud800b', /unpaired UTF-16 surrogate/],
    ['/admin\u200b/users', /invisible formatting character \(U\+200B\)/],
    ['/admin%E2%80%8B/users', /invisible formatting character/],
    ['/files/\u202egnp.exe', /invisible formatting character \(U\+202E\)/],
    ['/a%EF%BB%BF', /invisible formatting character \(U\+FEFF\)/],
    ['', /empty/],
    ['/' + 'a'.repeat(2048), /more than 2048/],
  ];
  it.each(refused)('%j is refused', (raw, reason) => {
    const error = refusal(() => parse({ path: raw }));
    expect(error.code).toBe('http.path_invalid');
    expect(error.message).toMatch(reason);
    expect(error.hint).toMatch(/relative to the connection's base URL/);
  });
});

describe('method, access, operation, summary', () => {
  it.each([
    ['get', 'GET', 'read'],
    ['HEAD', 'HEAD', 'read'],
    ['Options', 'OPTIONS', 'read'],
    ['post', 'POST', 'write'],
    ['PUT', 'PUT', 'write'],
    ['patch', 'PATCH', 'write'],
    ['DELETE', 'DELETE', 'write'],
  ])('%s is %s, a %s', (given, method, access) => {
    const r = parse({ method: given, path: '/x' });
    expect(r.detail.method).toBe(method);
    expect(r.access).toBe(access);
    expect(r.operation).toBe(method.toLowerCase());
    expect(r.explicitOnly).toBeUndefined();
  });

  it.each(['TRACE', 'CONNECT', 'PROPFIND', 'GET ', 'GET\r\n', '', 'G%45T'])('method %j is refused', (method) => {
    expect(refusal(() => parse({ method })).code).toBe('http.method_invalid');
  });

  it('builds the request every stage reads', () => {
    const r = parse({ method: 'post', path: '/customers/../orders/%41 1', query: { limit: 10, q: 'a&b=c', flag: true }, body: { amount: 5 } });
    expect(r).toMatchObject({
      tool: 'api',
      toolType: 'http_request',
      connection: 'crm',
      operation: 'post',
      access: 'write',
      resources: ['/orders/A 1'],
      reads: [],
      summary: 'POST /orders/A%201?limit=10&q=a%26b%3Dc&flag=true',
      input: { connection: 'crm', method: 'POST', path: '/customers/../orders/%41 1', query: { limit: 10, q: 'a&b=c', flag: true }, body: { amount: 5 } },
    });
    expect(r.detail).toMatchObject({
      method: 'POST',
      path: '/orders/A 1',
      encodedPath: '/orders/A%201',
      query: [
        ['limit', '10'],
        ['q', 'a&b=c'],
        ['flag', 'true'],
      ],
      queryString: 'limit=10&q=a%26b%3Dc&flag=true',
      headers: [],
      body: { kind: 'json', text: '{"amount":5}', bytes: 12 },
      documentation: { kind: 'unchecked' },
    });
    expect(r.reasons[0]).toMatch(/POST may change data/);
  });

  it('a text body is sent as it is; reads carry none', () => {
    expect(parse({ method: 'PUT', body: 'héllo' }).detail.body).toEqual({ kind: 'text', text: 'héllo', bytes: 6 });
    expect(parse({ method: 'POST', body: [1, 2] }).detail.body).toEqual({ kind: 'json', text: '[1,2]', bytes: 5 });
    expect(refusal(() => parse({ method: 'GET', body: 'x' })).code).toBe('http.body_invalid');
    expect(refusal(() => parse({ method: 'HEAD', body: {} })).code).toBe('http.body_invalid');
  });
});

describe('the permanent evasion table: query', () => {
  const refused: Array<[Record<string, unknown>, RegExp]> = [
    [{ a: '1', A: '2' }, /given twice/],
    [{ id: '1', ID: '1' }, /given twice/],
    [{ '': 'x' }, /without a name/],
    [{ ['k'.repeat(257)]: 'x' }, /name longer than 256/],
    [{ k: 'v'.repeat(4097) }, /longer than 4096/],
    [{ 'a\r\nb': 'x' }, /name contains a line break/],
    [{ a: 'x\r\nHost: evil' }, /value of query parameter "a" contains a line break/],
    [{ a: 'x\nb' }, /line break/],
    [{ 'a\u0000': 'x' }, /NUL/],
    [{ a: 'x\u0000' }, /NUL/],
    [{ a: 'x\udc00' }, /unpaired UTF-16 surrogate/],
    [{ '\ud800': 'x' }, /unpaired UTF-16 surrogate/],
    [Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])), /more than 64/],
  ];
  it.each(refused)('%j is refused', (query, reason) => {
    const error = refusal(() => parse({ query }));
    expect(error.code).toBe('http.query_invalid');
    expect(error.message).toMatch(reason);
  });

  it('names and values are encoded by the gateway: nothing the agent writes adds a parameter', () => {
    const r = parse({ query: { 'a&admin': 'x&admin=1', 'b=': '%41', 'c d': 'é' } });
    expect(r.detail.queryString).toBe('a%26admin=x%26admin%3D1&b%3D=%2541&c%20d=%C3%A9');
    expect([...new URLSearchParams(r.detail.queryString)]).toEqual([
      ['a&admin', 'x&admin=1'],
      ['b=', '%41'],
      ['c d', 'é'],
    ]);
  });
});

describe('the permanent evasion table: headers', () => {
  const forbidden = [
    'Host',
    'host',
    'Authorization',
    'Proxy-Authorization',
    'Cookie',
    'Proxy-Connection',
    'Proxy-Anything',
    'Connection',
    'Keep-Alive',
    'TE',
    'Trailer',
    'Transfer-Encoding',
    'Upgrade',
    'HTTP2-Settings',
    'Content-Length',
    'Expect',
    'Forwarded',
    'X-Forwarded-For',
    'X-Forwarded-Host',
    'X-Real-IP',
    'X-Original-URL',
    'X-Rewrite-URL',
    'X-HTTP-Method-Override',
    'X-HTTP-Method',
    'X-Method-Override',
  ];
  it.each(forbidden)('%s is refused as forbidden', (name) => {
    const error = refusal(() => parse({ headers: { [name]: 'x' } }));
    expect(error.code).toBe('http.header_forbidden');
    expect(error.message).toContain(name);
  });

  const invalid: Array<[Record<string, string>, RegExp]> = [
    [{ 'X-A\r\nHost': 'evil' }, /line break/],
    [{ 'X-A': 'x\r\nHost: evil' }, /line break/],
    [{ 'X-A': 'x\nSet-Cookie: a' }, /line break/],
    [{ 'X-A': 'x\rb' }, /line break/],
    [{ 'X-A': 'x\u0000' }, /NUL/],
    [{ 'X-A\u0000': 'x' }, /NUL/],
    [{ 'X-A': 'x\u007f' }, /control character/],
    [{ 'X-A': 'é' }, /non-ASCII/],
    [{ 'X A': 'x' }, /not a valid header name/],
    [{ ':authority': 'evil' }, /not a valid header name/],
    [{ 'X-A:': 'x' }, /not a valid header name/],
    [{ '': 'x' }, /not a valid header name/],
    [{ 'X-A': 'a', 'x-a': 'b' }, /given twice/],
    [{ 'X-A': 'v'.repeat(4097) }, /longer than 4096/],
  ];
  it.each(invalid)('%j is refused as invalid', (headers, reason) => {
    const error = refusal(() => parse({ headers }));
    expect(error.code).toBe('http.header_invalid');
    expect(error.message).toMatch(reason);
  });

  it('names are lower-cased; a tab in a value is allowed', () => {
    expect(parse({ headers: { 'Content-Type': 'text/plain', 'X-Request-Id': 'a\tb' } }).detail.headers).toEqual([
      ['content-type', 'text/plain'],
      ['x-request-id', 'a\tb'],
    ]);
  });
});

describe('checkAgainstConnection', () => {
  const rules: HttpRequestRules = {
    allowed_headers: ['x-request-id', 'idempotency-key'],
    credential: { kind: 'query', name: 'api_key' },
    dry_run: { kind: 'header', name: 'x-dry-run', value: 'true' },
    limits: { max_request_bytes: 10 },
  };
  const check = (input: Record<string, unknown>, r: HttpRequestRules = rules) => checkAgainstConnection(parse(input).detail, r);

  it('accepts listed headers, Accept and Content-Type, and a body within the limit', () => {
    expect(() =>
      check({ method: 'POST', headers: { Accept: 'application/json', 'Content-Type': 'text/plain', 'Idempotency-Key': 'k' }, body: '0123456789' }),
    ).not.toThrow();
  });

  it.each([
    [
      { headers: { 'X-Other': '1' } },
      'http.header_forbidden',
      /not in this connection's allowed_headers \(accept, content-type, x-request-id, idempotency-key\)/,
    ],
    [{ headers: { 'X-Dry-Run': 'false' } }, 'http.header_forbidden', /asks for a dry run/],
    [{ query: { API_KEY: 'mine' } }, 'http.query_invalid', /carries the connection's credential/],
    [{ method: 'POST', body: '01234567890' }, 'http.body_invalid', /11 bytes, more than this connection's max_request_bytes \(10\)/],
  ])('%j is refused', (input, code, reason) => {
    const error = refusal(() => check(input));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(reason);
  });

  it("refuses the credential's header even if it were listed, and the dry run's query parameter", () => {
    const headerRules: HttpRequestRules = {
      allowed_headers: ['x-api-key'],
      credential: { kind: 'header', name: 'x-api-key' },
      dry_run: { kind: 'query', name: 'dry_run', value: '1' },
      limits: {},
    };
    expect(refusal(() => check({ headers: { 'X-Api-Key': 'k' } }, headerRules)).message).toMatch(/carries the connection's credential/);
    expect(refusal(() => check({ query: { Dry_Run: '0' } }, headerRules)).message).toMatch(/asks for a dry run/);
  });

  it('defaults max_request_bytes to 1MiB', () => {
    const open: HttpRequestRules = { allowed_headers: [], credential: { kind: 'none' }, limits: {} };
    expect(() => check({ method: 'POST', body: 'x'.repeat(1024 * 1024) }, open)).not.toThrow();
    expect(refusal(() => check({ method: 'POST', body: 'x'.repeat(1024 * 1024 + 1) }, open)).code).toBe('http.body_invalid');
  });
});

describe('resolveHttpRequest', () => {
  const declaration = httpConnectionSchema.parse({
    kind: 'connection',
    name: 'crm',
    type: 'http',
    description: 'CRM',
    base_url: 'https://crm.example.com',
    credential: { header: { name: 'X-Api-Key', value: '${KEY}' } },
  });
  const document = parseOpenApi('openapi: 3.1.0\npaths:\n  /customers: { get: { operationId: listCustomers } }\n', 'api.yaml');

  it("takes the connection schema's output: checks it, then documents the request", () => {
    expect(resolveHttpRequest(parse({ path: '/customers' }), declaration, document).detail.documentation).toMatchObject({ operationId: 'listCustomers' });
    expect(resolveHttpRequest(parse({ path: '/other' }), declaration, document)).toMatchObject({ operation: 'undocumented', explicitOnly: true });
    expect(resolveHttpRequest(parse({ path: '/other' }), declaration, null).detail.documentation).toEqual({ kind: 'no-document' });
    expect(refusal(() => resolveHttpRequest(parse({ path: '/customers', headers: { 'x-api-key': 'mine' } }), declaration, document)).code).toBe(
      'http.header_forbidden',
    );
  });
});
