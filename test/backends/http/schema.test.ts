// The `type: http` connection declaration: what it accepts (credentials by
// secret reference, durations and sizes in units, header names lower-cased),
// what it refuses with a message naming the field, and the shipped example
// (examples/http) read through it.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { loadOpenApi, matchOpenApi } from '../../../src/backends/http/openapi.js';
import { HTTP_MATCH_SHAPE } from '../../../src/backends/http/policy.js';
import { describeHttpConnection, httpConnectionSchema, httpFilesOf, httpInputShape, httpSecretsOf } from '../../../src/backends/http/schema.js';

const base = { kind: 'connection', name: 'crm', type: 'http', description: 'CRM API', base_url: 'https://crm.example.com/api/v1/' };

function issues(declaration: Record<string, unknown>): string {
  const result = httpConnectionSchema.safeParse({ ...base, ...declaration });
  if (result.success) throw new Error('expected the declaration to be refused');
  return result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
}

describe('httpConnectionSchema', () => {
  it('fills defaults and trims the base URL', () => {
    expect(httpConnectionSchema.parse(base)).toEqual({
      ...base,
      base_url: 'https://crm.example.com/api/v1',
      credential: { kind: 'none' },
      default_headers: [],
      allowed_headers: [],
      limits: {},
      networks: [],
      mask_fields: [],
      binary: 'refuse',
    });
  });

  it.each([
    [{ bearer: '${TOKEN}' }, { kind: 'bearer', token: { kind: 'template', template: '${TOKEN}', describe: '$TOKEN' } }],
    [{ basic: { username: 'svc', password: { env: 'PW' } } }, { kind: 'basic', username: 'svc', password: { kind: 'env', name: 'PW', describe: '$PW' } }],
    [
      { header: { name: 'X-Api-Key', value: { file: 'key.txt' } } },
      { kind: 'header', name: 'x-api-key', value: { kind: 'file', path: 'key.txt', describe: 'file key.txt' } },
    ],
    [{ query: { name: 'api_key', value: '${KEY}' } }, { kind: 'query', name: 'api_key', value: { kind: 'template', template: '${KEY}', describe: '$KEY' } }],
    [
      { client_certificate: { cert: { file: 'c.pem' }, key: { file: 'k.pem' } } },
      {
        kind: 'client_certificate',
        cert: { kind: 'file', path: 'c.pem', describe: 'file c.pem' },
        key: { kind: 'file', path: 'k.pem', describe: 'file k.pem' },
      },
    ],
    ['none', { kind: 'none' }],
  ])('credential %j', (credential, parsed) => {
    expect(httpConnectionSchema.parse({ ...base, credential }).credential).toEqual(parsed);
  });

  it('reads every other field', () => {
    const c = httpConnectionSchema.parse({
      ...base,
      base_url: 'http://127.0.0.1:8080',
      default_headers: { 'User-Agent': 'drawbridge', 'X-Api-Version': '2024-01-01' },
      allowed_headers: ['Idempotency-Key'],
      limits: { timeout: '5s', max_request_bytes: '64KiB', max_response_bytes: '1MiB' },
      networks: ['127.0.0.0/8', '10.1.2.3', 'fd00::/8'],
      dry_run: { query: { name: 'dry_run', value: 'true' } },
      mask_fields: ['$..email'],
      binary: 'digest',
      openapi: 'openapi/crm.yaml',
    });
    expect(c).toMatchObject({
      base_url: 'http://127.0.0.1:8080',
      default_headers: [
        ['user-agent', 'drawbridge'],
        ['x-api-version', '2024-01-01'],
      ],
      allowed_headers: ['idempotency-key'],
      limits: { timeout: 5000, max_request_bytes: 65536, max_response_bytes: 1048576 },
      dry_run: { kind: 'query', name: 'dry_run', value: 'true' },
    });
  });

  it.each([
    [{ base_url: 'http://crm.example.com' }, /base_url must use https:\/\/ \(http:\/\/ only to a loopback address\)/],
    [{ base_url: 'ftp://crm.example.com' }, /must use https/],
    [{ base_url: 'crm.example.com' }, /must be an absolute URL/],
    [{ base_url: 'https://user:pw@crm.example.com' }, /must not carry credentials/],
    [{ base_url: 'https://crm.example.com/?api_key=x' }, /must not have a query/],
    [{ credential: { bearer: 'x', basic: { username: 'a', password: 'b' } } }, /credential/],
    [{ credential: { header: { name: 'Authorization', value: '${T}' } } }, /authorization cannot be declared: credentials are the gateway's/],
    [{ credential: { header: { name: 'bad name', value: '${T}' } } }, /must be an HTTP header name/],
    [{ credential: { basic: { username: 'a:b', password: '${P}' } } }, /no colon/],
    [{ credential: { oauth: {} } }, /credential/],
    [{ default_headers: { Host: 'evil.example' } }, /default_headers.Host: Host cannot be declared: the gateway sets Host/],
    [{ default_headers: { Cookie: 'a=b' } }, /Cookie cannot be declared/],
    [{ default_headers: { 'X-A': 'a\r\nb' } }, /printable ASCII/],
    [{ default_headers: { 'X-A': '1', 'x-a': '2' } }, /unique/],
    [{ allowed_headers: ['Transfer-Encoding'] }, /hop-by-hop/],
    [{ allowed_headers: ['X-Forwarded-For'] }, /another client, host, path or method/],
    [{ credential: { header: { name: 'X-Key', value: '${K}' } }, allowed_headers: ['x-key'] }, /allowed_headers: x-key is the credential's header/],
    [{ dry_run: { header: { name: 'X-Dry', value: '1' } }, allowed_headers: ['X-Dry'] }, /x-dry is the dry run's header/],
    [
      { credential: { query: { name: 'k', value: '${K}' } }, dry_run: { query: { name: 'K', value: '1' } } },
      /dry_run: the dry run's query parameter is the credential's/,
    ],
    [{ limits: { timeout: 10 } }, /has no unit/],
    [{ limits: { max_response_bytes: '1GiB' } }, /at most 64MiB/],
    [{ limits: { retries: 3 } }, /retries|Unrecognized/],
    [{ networks: ['10.0.0.0/33'] }, /not a network in CIDR form/],
    [{ networks: ['evil.example'] }, /not a network in CIDR form/],
    [{ networks: ['10.0.0.0/8/1'] }, /not a network in CIDR form/],
    [{ binary: 'pass' }, /binary/],
    [{ url: 'https://x' }, /url|Unrecognized/],
    // Refused with a message, not a crash, whatever the field holds.
    [{ credential: null }, /credential/],
    [{ allowed_headers: 5 }, /allowed_headers/],
    [{ default_headers: 5 }, /default_headers/],
    [{ dry_run: 'yes' }, /dry_run/],
  ])('refuses %j', (declaration, message) => {
    expect(issues(declaration)).toMatch(message);
  });
});

describe('examples/http', () => {
  const root = join(import.meta.dirname, '../../../examples/http');
  const yaml = (file: string) => parseAllDocuments(readFileSync(join(root, file), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);

  it("the connection parses, and its OpenAPI document loads and names the example's operations", () => {
    const [connection] = yaml('tools/api.yaml');
    const c = httpConnectionSchema.parse(connection);
    expect(c).toMatchObject({ name: 'crm', credential: { kind: 'bearer' }, dry_run: { kind: 'header', name: 'x-dry-run', value: 'true' }, binary: 'digest' });
    const document = loadOpenApi(c.openapi ?? '', root);
    expect(matchOpenApi(document, 'DELETE', ['customers', '42'])).toMatchObject({ operationId: 'deleteCustomer' });
    expect(matchOpenApi(document, 'POST', ['customers', '42', 'tickets'])).toMatchObject({ operationId: 'createTicket' });
  });

  it("the policy's http keys parse with the backend's match shape", () => {
    const [policy] = yaml('policies/http.yaml');
    const rules = (policy?.['rules'] ?? []) as Array<{ match: Record<string, unknown> }>;
    const own = rules.map((r) => Object.fromEntries(Object.entries(r.match).filter(([k]) => k in HTTP_MATCH_SHAPE)));
    expect(own.filter((m) => Object.keys(m).length > 0)).toHaveLength(3);
    for (const m of own) expect(() => z.strictObject(HTTP_MATCH_SHAPE).parse(m)).not.toThrow();
  });
});

describe('what index.ts declares from the schema', () => {
  it('describes a connection by its base URL and limits, never its credential', () => {
    const c = httpConnectionSchema.parse({
      ...base,
      credential: { bearer: 'inline-secret-token' },
      allowed_headers: ['Idempotency-Key'],
      limits: { timeout: '5s' },
    });
    const text = describeHttpConnection(c);
    expect(text).toBe(
      'CRM API (HTTP: https://crm.example.com/api/v1; 5s per request, answers up to 1MiB; headers you may set: accept, content-type, idempotency-key)',
    );
    expect(text).not.toContain('inline-secret-token');
  });

  it.each([
    ['none', []],
    [{ bearer: '${T}' }, ['$T']],
    [{ basic: { username: 'u', password: { env: 'P' } } }, ['$P']],
    [{ header: { name: 'x-key', value: { env: 'K' } } }, ['$K']],
    [{ query: { name: 'key', value: { env: 'K' } } }, ['$K']],
    [{ client_certificate: { cert: { file: 'c.pem' }, key: { file: 'k.pem' }, ca: { file: 'ca.pem' } } }, ['file c.pem', 'file k.pem', 'file ca.pem']],
  ])('secrets of credential %j', (credential, described) => {
    expect(httpSecretsOf(httpConnectionSchema.parse({ ...base, credential })).map((r) => r.describe)).toEqual(described);
  });

  it('names the OpenAPI document as a file the connection reads', () => {
    expect(httpFilesOf(httpConnectionSchema.parse(base))).toEqual([]);
    expect(httpFilesOf(httpConnectionSchema.parse({ ...base, openapi: 'openapi/crm.yaml' }))).toEqual(['openapi/crm.yaml']);
  });

  it('the input shape becomes the JSON schema the MCP server lists', () => {
    const schema = z.toJSONSchema(z.strictObject({ connection: z.enum(['crm']), ...httpInputShape })) as {
      properties: Record<string, unknown>;
      required: string[];
    };
    expect(Object.keys(schema.properties)).toEqual(['connection', 'method', 'path', 'query', 'headers', 'body']);
    expect(schema.required).toEqual(['connection', 'method', 'path']);
  });
});
