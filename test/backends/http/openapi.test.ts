// OpenAPI matching: a small document (fixtures/crm-openapi.yaml) loaded as a
// connection loads it; METHOD + normalised path to operationId, concrete paths
// before templated ones, path parameters checked against their schemas,
// undocumented requests explicit-only, and documents the gateway refuses.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { documentRequest, loadOpenApi, matchOpenApi, parseOpenApi } from '../../../src/backends/http/openapi.js';
import { parseHttpRequest } from '../../../src/backends/http/parse.js';
import type { HttpMethod } from '../../../src/backends/http/types.js';
import { DrawbridgeError } from '../../../src/errors.js';

const document = loadOpenApi('fixtures/crm-openapi.yaml', import.meta.dirname);
const request = (method: string, path: string) => parseHttpRequest({ connection: 'crm', method, path }, { tool: 'api', connection: 'crm' });
const match = (method: HttpMethod, path: string) => matchOpenApi(document, method, request(method, path).detail.segments);

function refusal(run: () => unknown): DrawbridgeError {
  try {
    run();
  } catch (error) {
    if (error instanceof DrawbridgeError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('matchOpenApi', () => {
  it.each([
    ['GET', '/customers', 'listCustomers', {}],
    ['POST', '/customers', 'createCustomer', {}],
    ['GET', '/customers/me', 'getCurrentCustomer', {}],
    ['GET', '/customers/42', 'getCustomer', { id: '42' }],
    ['DELETE', '/customers/42', 'deleteCustomer', { id: '42' }],
    ['HEAD', '/customers/42', 'getCustomer', { id: '42' }],
    ['GET', '/customers/7/orders/open', 'listOrders', { id: '7', status: 'open' }],
    ['GET', '/customers/x/../7/orders/%73hipped', 'listOrders', { id: '7', status: 'shipped' }],
    ['GET', '/files/report.json', 'getFile', { name: 'report' }],
    ['GET', '/reports/2024', null, { year: '2024' }],
    ['PUT', '/flags/true', 'setFlag', { on: 'true' }],
    ['GET', '/scores/0.5', 'getScore', { score: '0.5' }],
    ['GET', '/scores/1', 'getScore', { score: '1' }],
  ] as const)('%s %s is %s', (method, path, operationId, parameters) => {
    expect(match(method, path)).toEqual({ kind: 'documented', operationId, template: expect.any(String), parameters });
  });

  it.each([
    ['DELETE', '/customers/me'],
    ['GET', '/customers/'],
    ['GET', '/customers/42/orders'],
    ['GET', '/admin'],
    ['PATCH', '/customers/42'],
    ['GET', '/files/report.xml'],
    ['GET', '/'],
    ['OPTIONS', '/customers'],
  ] as const)('%s %s is undocumented', (method, path) => {
    expect(match(method, path)).toEqual({ kind: 'undocumented' });
  });

  it.each([
    ['GET', '/customers/abc', /path parameter id of getCustomer must be an integer; got "abc"/],
    ['GET', '/customers/0', /must be at least 1/],
    ['GET', '/customers/-1', /must be at least 1/],
    ['GET', '/customers/1.5', /must be an integer/],
    ['GET', '/customers/1e3', /must be an integer/],
    ['GET', '/customers/%2042', /must be an integer/],
    ['GET', '/customers/7/orders/closed', /must be one of open, shipped/],
    ['GET', '/files/Report.json', /must match \^\[a-z\]\+\$/],
    ['GET', '/files/abcdefghi.json', /at most 8 characters/],
    ['GET', '/reports/1999', /path parameter year of GET \/reports\/\{year\} must be at least 2000/],
    ['GET', '/reports/2100', /must be less than 2100/],
    ['PUT', '/flags/yes', /must be true or false/],
    ['GET', '/scores/0', /must be more than 0/],
    ['GET', '/scores/1.01', /must be at most 1/],
    ['GET', '/scores/x', /must be a number/],
  ] as const)('%s %s: a path parameter fails its schema', (method, path, reason) => {
    const error = refusal(() => match(method, path));
    expect(error.code).toBe('http.parameter_invalid');
    expect(error.message).toMatch(reason);
  });
});

describe('documentRequest', () => {
  it('a documented request keeps its method operation and names the operationId', () => {
    const r = documentRequest(request('delete', '/customers/42'), document);
    expect(r.operation).toBe('delete');
    expect(r.explicitOnly).toBeUndefined();
    expect(r.detail.documentation).toMatchObject({ kind: 'documented', operationId: 'deleteCustomer', template: '/customers/{id}' });
    expect(r.reasons).toContain('documented: operation deleteCustomer');
  });

  it('an undocumented request is operation undocumented, explicit only', () => {
    const r = documentRequest(request('get', '/admin/users'), document);
    expect(r).toMatchObject({ operation: 'undocumented', explicitOnly: true, access: 'read', detail: { documentation: { kind: 'undocumented' } } });
    expect(r.reasons.at(-1)).toBe('no operation of the OpenAPI document matches GET /admin/users');
  });

  it('without a document the request is no-document, unchanged otherwise', () => {
    const r = documentRequest(request('get', '/anything'), null);
    expect(r.operation).toBe('get');
    expect(r.detail.documentation).toEqual({ kind: 'no-document' });
  });
});

describe('documents the gateway refuses (config.invalid, naming the file)', () => {
  const refused: Array<[string, string, RegExp]> = [
    ['swagger 2', 'swagger: "2.0"\npaths: {}\n', /is not OpenAPI 3.0 or 3.1 \(openapi: "2.0"\)/],
    ['not an object', '- a\n', /is not an object/],
    ['bad YAML', 'openapi: 3.0.0\npaths: {a: [}\n', /is not valid YAML or JSON/],
    ['duplicate keys', 'openapi: 3.0.0\nopenapi: 3.1.0\npaths: {}\n', /is not valid YAML or JSON/],
    ['a relative path', 'openapi: 3.0.3\npaths:\n  customers: {}\n', /does not start with "\/"/],
    ['a remote $ref', 'openapi: 3.0.3\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ $ref: "https://x/y" }]\n', /not a local reference/],
    ['a dangling $ref', 'openapi: 3.0.3\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ $ref: "#/components/parameters/Nope" }]\n', /points nowhere/],
    [
      'an unchecked keyword',
      'openapi: 3.0.3\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ name: x, in: path, schema: { oneOf: [{ type: string }] } }]\n',
      /schema keyword oneOf .* cannot check/,
    ],
    [
      'an object type',
      'openapi: 3.1.0\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ name: x, in: path, schema: { type: object } }]\n',
      /a type the gateway cannot check/,
    ],
    [
      'a label style',
      'openapi: 3.1.0\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ name: x, in: path, style: label, schema: { type: string } }]\n',
      /style label/,
    ],
    ['no schema', 'openapi: 3.1.0\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ name: x, in: path, content: {} }]\n', /without a schema/],
    [
      'a bad pattern',
      'openapi: 3.1.0\npaths:\n  /a/{x}:\n    get:\n      parameters: [{ name: x, in: path, schema: { pattern: "(" } }]\n',
      /not a valid regular expression/,
    ],
    ['a $ref loop', 'openapi: 3.1.0\npaths:\n  /a:\n    $ref: "#/paths/~1a"\n', /chain at paths.\/a that loops/],
  ];
  it.each(refused)('%s', (_what, text, reason) => {
    const error = refusal(() => parseOpenApi(text, '/etc/drawbridge/api.yaml'));
    expect(error.code).toBe('config.invalid');
    expect(error.message).toContain('/etc/drawbridge/api.yaml');
    expect(error.message).toMatch(reason);
  });

  it('an unreadable file is config.invalid with its full path', () => {
    const error = refusal(() => loadOpenApi('missing.yaml', import.meta.dirname));
    expect(error.code).toBe('config.invalid');
    expect(error.message).toContain(join(import.meta.dirname, 'missing.yaml'));
  });

  it('literal segments of the document are compared decoded, like the request', () => {
    const doc = parseOpenApi('openapi: 3.1.0\npaths:\n  /files/annual%20report: { get: { operationId: report } }\n', 'api.yaml');
    expect(matchOpenApi(doc, 'GET', request('GET', '/files/annual report').detail.segments)).toMatchObject({ operationId: 'report' });
    expect(matchOpenApi(doc, 'GET', request('GET', '/files/annual%20report').detail.segments)).toMatchObject({ operationId: 'report' });
  });

  it('JSON is accepted, 3.0 exclusive bounds are booleans, a 3.1 type list may include null', () => {
    const json = JSON.stringify({
      openapi: '3.0.3',
      paths: {
        '/n/{n}': {
          get: {
            operationId: 'n',
            parameters: [{ name: 'n', in: 'path', required: true, schema: { type: 'integer', minimum: 0, exclusiveMinimum: true, nullable: true } }],
          },
        },
        '/t/{t}': { get: { operationId: 't', parameters: [{ name: 't', in: 'path', required: true, schema: { type: ['integer', 'null'] } }] } },
      },
    });
    const doc = parseOpenApi(json, 'api.json');
    expect(matchOpenApi(doc, 'GET', ['n', '1'])).toMatchObject({ operationId: 'n' });
    expect(refusal(() => matchOpenApi(doc, 'GET', ['n', '0'])).message).toMatch(/must be more than 0/);
    expect(matchOpenApi(doc, 'GET', ['t', '3'])).toMatchObject({ operationId: 't' });
    expect(refusal(() => matchOpenApi(doc, 'GET', ['t', 'x'])).message).toMatch(/must be an integer/);
  });
});
