// The http_request backend's response shaping: the row an agent reads, JSON
// field masks (nested, arrays, counted), credential-bearing headers removed,
// the injected credential scrubbed where the server echoes it, binary bodies
// refused or digested, truncated and malformed JSON, non-UTF-8 bytes, and
// hostile nesting. The generic mask stage then runs over the result, as the
// pipeline does, to show its detectors reach every text cell.

import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { TabularResult } from '../../../src/backends/backend.js';
import { fieldMarker, parseFieldPaths, type FieldPath } from '../../../src/backends/http/jsonpath.js';
import { renderJson, shapeResponse, type ResponseShaping, type TransportResponse } from '../../../src/backends/http/response.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { DETECTOR_NAMES } from '../../../src/masking/detectors.js';
import { BUILT_IN_RULE, createMasker } from '../../../src/masking/masker.js';

const TOKEN = 'tok_live_9f8e7d6c5b4a3f2e1d0c/+=';

function paths(...selectors: string[]): FieldPath[] {
  const result = parseFieldPaths(selectors);
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return [...result.paths];
}

const response = (over: Partial<TransportResponse> & { json?: unknown; text?: string } = {}): TransportResponse => {
  const { json, text, ...rest } = over;
  const body = json !== undefined ? JSON.stringify(json) : (text ?? '');
  return {
    status: 200,
    statusText: 'OK',
    headers: [['content-type', json !== undefined ? 'application/json; charset=utf-8' : 'text/plain']],
    body: new TextEncoder().encode(body),
    truncated: false,
    finalUrl: 'https://api.example.test/v1/customers/42',
    redirects: 0,
    ...rest,
  };
};

const shaping = (over: Partial<ResponseShaping> = {}): ResponseShaping => ({
  method: 'GET',
  maskFields: [],
  binary: 'refuse',
  maxResponseBytes: 1_000_000,
  credentials: [TOKEN],
  ...over,
});

const cell = (result: TabularResult, column: string): unknown => {
  const index = result.columns.findIndex((c) => c.name === column);
  expect(index).toBeGreaterThanOrEqual(0);
  return result.rows[0]?.[index];
};

const refusal = (run: () => unknown): DrawbridgeError => {
  try {
    run();
  } catch (error) {
    if (error instanceof DrawbridgeError) return error;
    throw error;
  }
  throw new Error('expected a DrawbridgeError');
};

describe('the row', () => {
  it('has status, status text, content type, headers and body; command and bytes', () => {
    const result = shapeResponse(
      response({
        json: { ok: true },
        headers: [
          ['content-type', 'application/json'],
          ['x-ratelimit-remaining', '41'],
        ],
      }),
      shaping(),
    );
    expect(result.columns.map((c) => [c.name, c.type])).toEqual([
      ['status', 'int4'],
      ['status_text', 'text'],
      ['content_type', 'text'],
      ['final_path', 'text'],
      ['headers', 'document'],
      ['body', 'document'],
    ]);
    expect(result.rows).toEqual([[200, 'OK', 'application/json', null, 'content-type: application/json\nx-ratelimit-remaining: 41', '{"ok":true}']]);
    expect(result).toMatchObject({ command: 'GET 200', affectedRows: null, truncated: null, notices: [], bytes: 11, fieldMasks: [] });
  });

  it('shows the path a same-origin redirect ended at', () => {
    const result = shapeResponse(response({ text: 'moved', redirects: 1, finalUrl: 'https://api.example.test/v2/customers/42?page=2' }), shaping());
    expect(cell(result, 'final_path')).toBe('/v2/customers/42?page=2');
  });

  it('reports a body cut at the limit with a hint', () => {
    const result = shapeResponse(response({ text: 'partial', truncated: true }), shaping({ maxResponseBytes: 7 }));
    expect(result.truncated).toEqual({ reason: 'bytes', limit: 7, hint: expect.stringMatching(/query parameters/) as unknown });
  });

  it('shows an empty body (HEAD, 204) whatever its content type', () => {
    const result = shapeResponse(response({ status: 204, statusText: 'No Content', headers: [['content-type', 'image/png']] }), shaping());
    expect(cell(result, 'body')).toBe('');
  });
});

describe('JSON field masks', () => {
  const order = {
    id: 12,
    customer: { email: 'ann@example.com', name: 'Ann Smith', address: { street: '1 Main St' } },
    items: [
      { sku: 'a', payment: { card_number: '4111 1111 1111 1111' } },
      { sku: 'b', payment: { card_number: 5555555555554444 } },
    ],
  };

  it('masks nested and array fields, counts per selector, pretty-prints', () => {
    const result = shapeResponse(
      response({ json: order }),
      shaping({ maskFields: paths('$.customer.name', '$.customer.address', '$..card_number', '$.nope') }),
    );
    const body = String(cell(result, 'body'));
    expect(JSON.parse(body)).toEqual({
      id: 12,
      customer: { email: 'ann@example.com', name: fieldMarker('$.customer.name'), address: fieldMarker('$.customer.address') },
      items: [
        { sku: 'a', payment: { card_number: fieldMarker('$..card_number') } },
        { sku: 'b', payment: { card_number: fieldMarker('$..card_number') } },
      ],
    });
    expect(body).toContain('\n  "customer": {\n    "email": "ann@example.com",');
    expect(body).not.toMatch(/Ann Smith|Main St|4111|5555/);
    expect(result.fieldMasks).toEqual([
      { target: '$.customer.name', count: 1 },
      { target: '$.customer.address', count: 1 },
      { target: '$..card_number', count: 2 },
    ]);
  });

  it('leaves JSON exactly as received when the connection masks no fields (no reordering, no rounding)', () => {
    const text = '{"b":1,"2":2,"id":12345678901234567891}';
    const result = shapeResponse(response({ text, headers: [['content-type', 'application/problem+json']] }), shaping());
    expect(cell(result, 'body')).toBe(text);
  });

  it('says when re-serializing rounded integers beyond 2^53', () => {
    const text = '{"id":12345678901234567891,"email":"x"}';
    const result = shapeResponse(response({ text, headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$.email') }));
    expect(result.notices).toEqual(['1 integer beyond 2^53 may be shown rounded (the body was re-serialized after masking)']);
  });

  it('field-masks JSON labelled as text when the connection has field rules', () => {
    const result = shapeResponse(response({ text: '{"customer":{"name":"Ann"}}' }), shaping({ maskFields: paths('$..name') }));
    expect(JSON.parse(String(cell(result, 'body')))).toEqual({ customer: { name: fieldMarker('$..name') } });
    expect(result.notices[0]).toMatch(/labelled text\/plain but is JSON/);
  });

  it('refuses JSON labelled as text that was cut, when fields are masked', () => {
    const body = new TextEncoder().encode('{"customer":{"name":"Ann"');
    const error = refusal(() => shapeResponse(response({ body, truncated: true }), shaping({ maskFields: paths('$..name'), maxResponseBytes: 25 })));
    expect(error.code).toBe('http.response_unmaskable');
    expect(error.message).toMatch(/text\/plain\) was cut at 25 bytes/);
  });

  it('parses JSON after a byte-order mark', () => {
    const result = shapeResponse(
      response({ text: '\uFEFF{"name":"Ann"}', headers: [['content-type', 'application/json']] }),
      shaping({ maskFields: paths('$.name') }),
    );
    expect(JSON.parse(String(cell(result, 'body')))).toEqual({ name: fieldMarker('$.name') });
  });

  it('leaves JSON exactly as received when no selector selects anything', () => {
    const text = '{"b":1,"2":2,"id":12345678901234567891}';
    const result = shapeResponse(response({ text, headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$..email') }));
    expect(cell(result, 'body')).toBe(text);
    expect(result.notices).toEqual([]);
    expect(result.fieldMasks).toEqual([]);
  });

  it('shows text labelled text that only looks like JSON as text', () => {
    for (const text of ['[2026-12-05 10:00] started\n', '[INFO] {"name": "x"}', '{ not json']) {
      const result = shapeResponse(response({ text }), shaping({ maskFields: paths('$..name') }));
      expect(cell(result, 'body')).toBe(text);
    }
  });

  it('fails closed on truncated JSON when fields are masked, and says so', () => {
    const cut = response({ json: order, truncated: true });
    const body = cut.body.subarray(0, 60);
    const error = refusal(() => shapeResponse({ ...cut, body }, shaping({ maskFields: paths('$..card_number'), maxResponseBytes: 60 })));
    expect(error.code).toBe('http.response_unmaskable');
    expect(error.message).toMatch(/cut at 60 bytes/);
    expect(error.message).not.toContain('ann@');
  });

  it('shows truncated JSON as text (for the detectors) when no fields are masked', () => {
    const cut = response({ json: order, truncated: true });
    const result = shapeResponse({ ...cut, body: cut.body.subarray(0, 60) }, shaping({ maxResponseBytes: 60 }));
    expect(cell(result, 'body')).toBe(JSON.stringify(order).slice(0, 60));
    expect(result.notices).toEqual(['the JSON body was cut at 60 bytes: it is incomplete']);
    expect(result.truncated?.limit).toBe(60);
  });

  it('fails closed on malformed JSON when fields are masked', () => {
    const error = refusal(() =>
      shapeResponse(response({ text: '{"name": "Ann",}', headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$.name') })),
    );
    expect(error.code).toBe('http.response_unmaskable');
    expect(error.message).toMatch(/not valid JSON \(a syntax error at character 15\)/);
    expect(error.message).not.toContain('Ann');
    // V8 quotes short bodies in its own message: it never reaches ours.
    const quoted = refusal(() =>
      shapeResponse(response({ text: '{"a":tru secret}', headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$.a') })),
    );
    expect(quoted.message).toMatch(/not valid JSON \(a syntax error\)/);
    expect(quoted.message).not.toContain('secret');
  });

  it('survives 100,000-deep nesting (no RangeError), printing deep documents compact', () => {
    const depth = 100_000;
    const text = '{"a":'.repeat(depth) + '{"card_number":"4111111111111111"}' + '}'.repeat(depth);
    const result = shapeResponse(response({ text, headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$..card_number') }));
    const body = String(cell(result, 'body'));
    expect(body).toBe('{"a":'.repeat(depth) + `{"card_number":${JSON.stringify(fieldMarker('$..card_number'))}}` + '}'.repeat(depth));
    expect(result.fieldMasks).toEqual([{ target: '$..card_number', count: 1 }]);
    const arrays = '['.repeat(depth) + ']'.repeat(depth);
    expect(
      cell(shapeResponse(response({ text: arrays, headers: [['content-type', 'application/json']] }), shaping({ maskFields: paths('$..x') })), 'body'),
    ).toBe(arrays);
  });

  it('renders JSON iteratively, pretty or compact', () => {
    expect(renderJson({ a: [1, { b: null }], c: {}, d: [] }, true)).toBe('{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ],\n  "c": {},\n  "d": []\n}');
    expect(renderJson({ a: [1, 'x"y'] }, false)).toBe('{"a":[1,"x\\"y"]}');
    expect(renderJson(JSON.parse('{"__proto__":2}'), false)).toBe('{"__proto__":2}');
  });
});

describe('headers', () => {
  it('removes credential and session values, keeps the names and everything else', () => {
    const headers: Array<[string, string]> = [
      ['content-type', 'text/plain'],
      ['set-cookie', 'session=abc123; HttpOnly'],
      ['set-cookie', 'csrf=zzz'],
      ['www-authenticate', 'Bearer realm="api", error="invalid_token"'],
      ['proxy-authenticate', 'Basic realm="p"'],
      ['authorization', 'Bearer leaked'],
      ['x-auth-token', 'abc'],
      ['x-api-key', 'k'],
      ['x-amz-security-token', 'FQoG'],
      ['link', '<https://api.example.test/v1/customers?page=2>; rel="next"'],
      ['retry-after', '30'],
      ['x-ratelimit-remaining-tokens', '9000'],
      ['x-csrf-token', 'c'],
    ];
    const result = shapeResponse(response({ text: 'x', headers }), shaping());
    expect(cell(result, 'headers')).toBe(
      [
        'content-type: text/plain',
        'set-cookie: [removed]',
        'set-cookie: [removed]',
        'www-authenticate: [removed]',
        'proxy-authenticate: [removed]',
        'authorization: [removed]',
        'x-auth-token: [removed]',
        'x-api-key: [removed]',
        'x-amz-security-token: [removed]',
        'link: <https://api.example.test/v1/customers?page=2>; rel="next"',
        'retry-after: 30',
        'x-ratelimit-remaining-tokens: 9000',
        'x-csrf-token: [removed]',
      ].join('\n'),
    );
    expect(result.fieldMasks).toEqual([{ target: 'response-header', count: 9 }]);
  });
});

describe('the injected credential', () => {
  it('is scrubbed wherever the server echoes it: body, headers, status text, raw, JSON-escaped and percent-encoded', () => {
    const echoed = { headers: { authorization: `Bearer ${TOKEN}` }, url: `/echo?key=${encodeURIComponent(TOKEN)}` };
    const text = JSON.stringify(echoed).replaceAll('/', '\\/');
    const result = shapeResponse(
      response({
        text,
        statusText: `bad ${TOKEN}`,
        headers: [
          ['content-type', 'application/json'],
          ['x-echo', TOKEN],
        ],
      }),
      shaping({ maskFields: [] }),
    );
    const all = JSON.stringify(result.rows);
    expect(all).not.toContain('9f8e7d6c5b4a3f2e1d0c');
    expect(cell(result, 'status_text')).toBe('bad [masked:credential]');
    expect(result.fieldMasks).toContainEqual({ target: 'credential', count: 4 });
  });

  it('is scrubbed from a field-masked, re-serialized JSON body too', () => {
    const result = shapeResponse(response({ json: { echo: TOKEN, name: 'n' } }), shaping({ maskFields: paths('$.name') }));
    expect(String(cell(result, 'body'))).not.toContain('9f8e7d6c');
    expect(result.fieldMasks).toEqual([
      { target: '$.name', count: 1 },
      { target: 'credential', count: 1 },
    ]);
  });
});

describe('content types', () => {
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);

  it('refuses binary bodies by default, saying what to do', () => {
    const error = refusal(() => shapeResponse(response({ body: png, headers: [['content-type', 'image/png']] }), shaping()));
    expect(error.code).toBe('http.response_binary');
    expect(error.message).toMatch(/binary \(image\/png, 12 bytes\)/);
    expect(error.hint).toMatch(/binary: digest/);
  });

  it('shows only the size and sha256 with binary: digest', () => {
    const result = shapeResponse(response({ body: png, headers: [['content-type', 'application/octet-stream']] }), shaping({ binary: 'digest' }));
    const digest = createHash('sha256').update(png).digest('hex');
    expect(cell(result, 'body')).toBe(`[binary body not shown: application/octet-stream, 12 bytes, sha256 ${digest}]`);
  });

  it('sniffs a body without content type: UTF-8 text is text, anything else binary', () => {
    expect(cell(shapeResponse(response({ text: 'plain words', headers: [] }), shaping()), 'body')).toBe('plain words');
    expect(refusal(() => shapeResponse(response({ body: png, headers: [] }), shaping())).code).toBe('http.response_binary');
  });

  it('treats a malformed content type as none', () => {
    const result = shapeResponse(response({ text: 'words', headers: [['content-type', 'text plain ann@example.com']] }), shaping());
    expect(cell(result, 'content_type')).toBeNull();
    expect(cell(result, 'body')).toBe('words');
  });

  it.each(['text/html', 'text/csv; charset=utf-8', 'application/xml', 'application/atom+xml', 'application/x-ndjson', 'application/yaml'])(
    '%s is text',
    (type) => {
      expect(cell(shapeResponse(response({ text: '<a>b</a>', headers: [['content-type', type]] }), shaping()), 'body')).toBe('<a>b</a>');
    },
  );

  it('decodes a declared charset, and shows bytes that are not UTF-8 as U+FFFD with a notice', () => {
    const latin1 = new Uint8Array([0x63, 0x61, 0x66, 0xe9]); // "café" in ISO-8859-1
    expect(cell(shapeResponse(response({ body: latin1, headers: [['content-type', 'text/plain; charset=iso-8859-1']] }), shaping()), 'body')).toBe('café');
    const result = shapeResponse(response({ body: latin1, headers: [['content-type', 'text/plain']] }), shaping());
    expect(cell(result, 'body')).toBe('caf\uFFFD');
    expect(result.notices).toEqual(['the body is not valid UTF-8: the invalid bytes are shown as U+FFFD']);
    const unknown = shapeResponse(response({ text: 'ok', headers: [['content-type', 'text/plain; charset=x-nonsense']] }), shaping());
    expect(unknown.notices[0]).toMatch(/charset "x-nonsense" is not supported/);
  });

  it('drops a character the size limit cut in half, without a notice', () => {
    const bytes = new TextEncoder().encode('né');
    const result = shapeResponse(response({ body: bytes.subarray(0, 2), truncated: true }), shaping());
    expect(cell(result, 'body')).toBe('n');
    expect(result.notices).toEqual([]);
  });

  it('keeps a literal U+FFFD the server sent without calling it invalid', () => {
    const result = shapeResponse(response({ text: 'a\uFFFDb' }), shaping());
    expect(result.notices).toEqual([]);
  });
});

describe('with the generic mask stage', () => {
  const masker = createMasker(
    [{ name: 'r', match: {}, columns: [], detectors: [...DETECTOR_NAMES], patterns: [], style: 'redact' }],
    new TextEncoder().encode('k'),
  );

  it('detectors scan the body and headers; field masks are counted in the answer', () => {
    const result = shapeResponse(
      response({
        json: { contact: 'ann@example.com', name: 'Ann', note: 'key sk_live_abcdefghijklmnopqrstuvwx' },
        headers: [
          ['content-type', 'application/json'],
          ['x-owner', 'bob@example.com'],
        ],
      }),
      shaping({ maskFields: paths('$.name') }),
    );
    const { result: masked, masked: counts } = masker.maskResult(result);
    const text = JSON.stringify(masked.rows);
    expect(text).not.toMatch(/ann@example\.com|bob@example\.com|sk_live_abc/);
    expect(counts).toContainEqual({ target: '$.name', by: 'field', rule: BUILT_IN_RULE, count: 1 });
    expect(counts).toContainEqual({ target: 'email', by: 'detector', rule: 'r', count: 2 });
  });

  it('detectors scan text bodies and notices', () => {
    const result = shapeResponse(response({ text: 'contact: ann@example.com' }), shaping());
    const { result: masked } = masker.maskResult(result);
    expect(JSON.stringify(masked.rows)).not.toContain('ann@example.com');
  });
});
