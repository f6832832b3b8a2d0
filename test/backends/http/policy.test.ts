// The http_request policy keys: `methods:`, `paths:` (segment-wise globs) and
// `operation_ids:`, each in the direction that fails safe for the rule's
// effect, and how `policy explain` shows a request.

import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { documentRequest, parseOpenApi } from '../../../src/backends/http/openapi.js';
import { parseHttpRequest } from '../../../src/backends/http/parse.js';
import { HTTP_EXPLAIN, HTTP_MATCH_SHAPE, matchesHttp, pathMatch } from '../../../src/backends/http/policy.js';
import type { Effect } from '../../../src/policy/match.js';

const keys = z.strictObject(HTTP_MATCH_SHAPE);
const request = (method: string, path: string) => parseHttpRequest({ connection: 'crm', method, path }, { tool: 'api', connection: 'crm' });
const document = parseOpenApi(
  [
    'openapi: 3.0.3',
    'paths:',
    '  /customers/{id}:',
    '    get: { operationId: getCustomer }',
    '    delete: { operationId: deleteCustomer }',
    '  /anon:',
    '    get: {}',
  ].join('\n'),
  'api.yaml',
);
const matches = (match: Record<string, unknown>, method: string, path: string, effect: Effect, doc: 'unchecked' | 'document' | 'none' = 'unchecked') => {
  const parsed = request(method, path);
  const r = doc === 'unchecked' ? parsed : documentRequest(parsed, doc === 'document' ? document : null);
  return matchesHttp(keys.parse(match), r, effect);
};

describe('pathMatch', () => {
  const table: Array<[pattern: string, path: string, strict: boolean, generous: boolean]> = [
    ['/customers', '/customers', true, true],
    ['/customers', '/customers/', false, true],
    ['/customers/', '/customers', false, true],
    ['/customers', '/Customers', false, true],
    ['/customers/*', '/customers/42', true, true],
    ['/customers/*', '/customers/', false, false],
    ['/customers/*', '/customers/42/orders', false, false],
    ['/customers/*', '/customers', false, false],
    ['/customers/**', '/customers', true, true],
    ['/customers/**', '/customers/42/orders/7', true, true],
    ['/customers/**', '/customersX/1', false, false],
    ['/**', '/', true, true],
    ['/**', '/anything/at/all', true, true],
    ['/**/orders', '/customers/42/orders', true, true],
    ['/**/orders', '/orders', true, true],
    ['/**/orders', '/customers/42/orders/7', false, false],
    ['/files/*.json', '/files/a.json', true, true],
    ['/files/*.json', '/files/a/b.json', false, false],
    ['/files/?.json', '/files/a.json', true, true],
    ['/customers/*/orders', '/customers/42/orders', true, true],
    ['/customers/*/orders', '/customers/42/43/orders', false, false],
    // The path is normalised before it is matched: a `.` in the pattern is literal, nothing is a regex.
    ['/a.b', '/aXb', false, false],
    ['/(a|b)', '/a', false, false],
  ];
  it.each(table)('%s against %s: strictly %s, generously %s', (pattern, path, strict, generous) => {
    expect(pathMatch(false, pattern, path)).toBe(strict);
    expect(pathMatch(true, pattern, path)).toBe(generous);
  });
});

describe('matchesHttp', () => {
  it('methods: case ignored in the rule, exact on the request', () => {
    expect(matches({ methods: ['get', 'HEAD'] }, 'GET', '/x', 'allow')).toBe(true);
    expect(matches({ methods: 'GET' }, 'HEAD', '/x', 'allow')).toBe(false);
    expect(matches({ methods: ['DELETE'] }, 'delete', '/x', 'deny')).toBe(true);
    expect(matches({ methods: ['DELETE'] }, 'POST', '/x', 'deny')).toBe(false);
  });

  it('paths: a traversal is normalised before matching, so it cannot escape an allowed prefix', () => {
    expect(matches({ paths: '/public/**' }, 'GET', '/public/../admin/users', 'allow')).toBe(false);
    expect(matches({ paths: '/admin/**' }, 'GET', '/public/%2e%2e/admin/users', 'deny')).toBe(true);
    expect(matches({ paths: '/admin/**' }, 'GET', '/ADMIN/users/', 'deny')).toBe(true);
    expect(matches({ paths: '/admin/**' }, 'GET', '/ADMIN/users', 'allow')).toBe(false);
  });

  it('keys combine: every key a rule sets must accept the request', () => {
    expect(matches({ methods: 'GET', paths: '/customers/*' }, 'GET', '/customers/1', 'allow')).toBe(true);
    expect(matches({ methods: 'GET', paths: '/customers/*' }, 'POST', '/customers/1', 'allow')).toBe(false);
    expect(matches({ methods: 'GET', paths: '/customers/*' }, 'GET', '/orders/1', 'allow')).toBe(false);
  });

  it('operation_ids: globs against the documented operationId', () => {
    expect(matches({ operation_ids: 'getCustomer' }, 'GET', '/customers/1', 'allow', 'document')).toBe(true);
    expect(matches({ operation_ids: ['get*'] }, 'DELETE', '/customers/1', 'allow', 'document')).toBe(false);
    expect(matches({ operation_ids: ['delete*'] }, 'DELETE', '/customers/1', 'deny', 'document')).toBe(true);
  });

  it('operation_ids: an undocumented request, one without an operationId or a connection without a document matches none', () => {
    for (const effect of ['allow', 'approve', 'deny'] as const) {
      expect(matches({ operation_ids: '*' }, 'GET', '/other', effect, 'document')).toBe(false);
      expect(matches({ operation_ids: '*' }, 'GET', '/anon', effect, 'document')).toBe(false);
      expect(matches({ operation_ids: '*' }, 'GET', '/customers/1', effect, 'none')).toBe(false);
    }
  });

  it('operation_ids before the document was consulted (offline explain): any deny rule matches, an allow rule only by "*"', () => {
    expect(matches({ operation_ids: 'deleteCustomer' }, 'DELETE', '/customers/1', 'deny')).toBe(true);
    expect(matches({ operation_ids: 'getCustomer' }, 'GET', '/customers/1', 'allow')).toBe(false);
    expect(matches({ operation_ids: 'getCustomer' }, 'GET', '/customers/1', 'approve')).toBe(false);
    expect(matches({ operation_ids: '*' }, 'GET', '/customers/1', 'allow')).toBe(true);
  });

  it('each key parses back to itself (a rule schema requirement)', () => {
    const parsed = keys.parse({ methods: 'GET', paths: ['/a/**'], operation_ids: 'x*' });
    expect(keys.parse(parsed)).toEqual(parsed);
    expect(() => keys.parse({ hosts: 'x' })).toThrow();
    expect(() => keys.parse({ methods: [] })).toThrow();
  });
});

describe('HTTP_EXPLAIN', () => {
  it('shows method, path and the operation id, and gives them as facts', () => {
    const documented = documentRequest(request('delete', '/customers/42'), document);
    expect(HTTP_EXPLAIN.lines(documented)).toEqual([
      ['method', 'DELETE'],
      ['path', '/customers/42'],
      ['operation id', 'deleteCustomer (DELETE /customers/{id})'],
    ]);
    expect(HTTP_EXPLAIN.facts(documented)).toEqual({ method: 'DELETE', path: '/customers/42', operationId: 'deleteCustomer', documentation: 'documented' });
  });

  it('says when the document was not consulted, is absent, or names no operation', () => {
    expect(HTTP_EXPLAIN.lines(request('get', '/a'))[2]).toEqual(['operation id', '(not matched against the OpenAPI document)']);
    expect(HTTP_EXPLAIN.lines(documentRequest(request('get', '/a'), null))[2]?.[1]).toMatch(/no OpenAPI document/);
    const undocumented = documentRequest(request('get', '/a'), document);
    expect(HTTP_EXPLAIN.lines(undocumented)[2]?.[1]).toMatch(/undocumented/);
    expect(HTTP_EXPLAIN.facts(undocumented)).toMatchObject({ operationId: null, documentation: 'undocumented' });
    expect(HTTP_EXPLAIN.withoutCatalog).toMatch(/OpenAPI/);
  });
});
