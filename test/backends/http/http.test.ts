// http_request end to end through the real gateway (openGateway + callTool)
// against local node:http servers: an allowed read reaches the echo server
// with the injected credential, which neither the answer nor the journal
// shows; a write needing approval is pending (only the API's dry run reached
// the server, or nothing without one); a denied path sends nothing; redirects
// are answered to the agent, never followed (a same-origin one inside the base
// URL's path names the path to call, and that call is decided by policy); JSON answers are masked by field and by the detectors; the example
// configuration loads.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../../../src/backends/http/index.js';
import { httpConnectionSchema } from '../../../src/backends/http/schema.js';
import { loadConfig } from '../../../src/config/load.js';
import { explain } from '../../../src/pipeline/explain.js';
import { openState } from '../../../src/state/open.js';
import { makeIdentity } from '../../../src/identity/identity.js';
import { exportLines } from '../../../src/journal/export.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { createGateway, openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { checkConnections } from '../../../src/pipeline/probe.js';
import {
  startEchoServer,
  startEndlessServer,
  startOpenApiServer,
  startRedirector,
  startSlowServer,
  WIDGETS_OPENAPI,
  type TestServer,
} from '../../support/http-servers.js';

const TOKEN = `tok-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

let echo: TestServer;
let widgets: TestServer;
let metadata: TestServer;
let slow: TestServer;
let endless: TestServer;
let gateway: Gateway;
let dir: string;

function connection(name: string, base: string, extra = ''): string {
  return `kind: connection
name: ${name}
type: http
description: ${name} on loopback
base_url: ${base}
credential: { bearer: '\${API_TOKEN}' }
networks: [127.0.0.1/32]
limits: { timeout: 5s }
${extra}
`;
}

describe('http_request through the gateway', () => {
  beforeAll(async () => {
    echo = await startEchoServer({
      reflect: true,
      redirects: {
        '/api/v1/moved': { location: '/api/v1/customers/7?view=full' },
        '/api/v1/to-secrets': { location: '/api/v1/secrets/db' },
        '/api/v1/escape': { location: '/admin/keys' },
        '/api/v1/meta': { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' },
        '/api/v1/direct/moved': { location: '/api/v1/customers/8', status: 307 },
      },
      headers: [
        ['set-cookie', 'session=abc123; HttpOnly'],
        ['x-ratelimit-remaining', '99'],
      ],
    });
    widgets = await startOpenApiServer();
    metadata = await startRedirector('http://169.254.169.254/latest/meta-data/');
    slow = await startSlowServer({ intervalMs: 20 });
    endless = await startEndlessServer();
    dir = mkdtempSync(join(tmpdir(), 'drawbridge-http-'));
    mkdirSync(join(dir, 'tools'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'widgets-openapi.json'), JSON.stringify(WIDGETS_OPENAPI));
    const base = `http://127.0.0.1:${echo.port}/api/v1`;
    writeFileSync(
      join(dir, 'tools', 'api.yaml'),
      [
        connection(
          'api',
          base,
          "dry_run: { header: { name: x-dry-run, value: 'true' } }\nallowed_headers: [x-request-id]\ndefault_headers: { user-agent: drawbridge-test }",
        ),
        connection('plain', base),
        connection('widgets', `http://127.0.0.1:${widgets.port}`, "openapi: widgets-openapi.json\nmask_fields: ['$..card_number', '$.owner.email']"),
        connection('meta', `http://127.0.0.1:${metadata.port}`),
        connection('slow', `http://127.0.0.1:${slow.port}`).replace('timeout: 5s', 'timeout: 300ms'),
        connection('endless', `http://127.0.0.1:${endless.port}`, 'binary: digest').replace('timeout: 5s', 'timeout: 5s, max_response_bytes: 4KiB'),
        'kind: tool\nname: http_request\ntype: http_request\nconnections: [api, plain, widgets, meta, slow, endless]\n',
      ].join('---\n'),
    );
    writeFileSync(
      join(dir, 'policies', 'gateway.yaml'),
      'kind: gateway\nidentity: { mode: local, subject: dev@example.com, groups: [developers] }\n' +
        'journal: { path: journal.db }\napproval: { wait: 0ms, store: approvals.db }\n',
    );
    writeFileSync(
      join(dir, 'policies', 'rules.yaml'),
      `kind: policy
rules:
  - name: no-secrets
    match: { tool: http_request, paths: ['/secrets/**'] }
    effect: deny
    message: Secrets are not read through the gateway.
  - name: writes-need-approval
    match: { tool: http_request, access: write, paths: ['/customers/**'] }
    effect: approve
    approvers: { groups: [sre] }
    preview: true
  - name: reads
    match: { tool: http_request, access: read }
    effect: allow
  - name: direct-writes
    match: { tool: http_request, access: write, paths: ['/direct/**'] }
    effect: allow
masking:
  - name: answers
    match: { tool: http_request }
    detectors: all
`,
    );
    gateway = await openGateway({ configDir: dir, env: { API_TOKEN: TOKEN } });
  });

  afterAll(async () => {
    await gateway?.close();
    await Promise.all([echo?.close(), widgets?.close(), metadata?.close(), slow?.close(), endless?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const call = (args: Record<string, unknown>) => callTool(gateway, { tool: 'http_request', args, identity: dev, client: { name: 'vitest' } });

  /** Everything the journal holds, raw files and export. */
  const journalText = (): string =>
    [
      ...['journal.db', 'journal.db-wal']
        .map((f) => join(dir, f))
        .filter((p) => existsSync(p))
        .map((p) => readFileSync(p).toString('latin1')),
      [...exportLines(join(dir, 'journal.db'), 'jsonl')].join('\n'),
    ].join('\n');

  it('an allowed GET reaches the server with the injected credential; neither the answer nor the journal shows it', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'GET', path: '/customers/42', query: { expand: 'orders' }, headers: { 'X-Request-Id': 'r-1' } });
    expect(r.ok, r.text).toBe(true);
    const got = echo.requests.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]?.method).toBe('GET');
    expect(got[0]?.rawPath).toBe('/api/v1/customers/42?expand=orders');
    const headers = Object.fromEntries((got[0]?.headers ?? []).map(([n, v]) => [n.toLowerCase(), v]));
    expect(headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(headers['user-agent']).toBe('drawbridge-test');
    expect(headers['x-request-id']).toBe('r-1');
    expect(headers['host']).toBe(`127.0.0.1:${echo.port}`);
    if (!r.ok) return;
    // The echo server reflected the request, Authorization included: scrubbed before the answer.
    const shown = r.text + JSON.stringify(r.structured);
    expect(shown).not.toContain(TOKEN);
    expect(shown).toContain('[masked:credential]');
    expect(r.structured.rows[0]?.[0]).toBe(200);
    // Response credential headers lose their value; rate limits stay.
    expect(String(r.structured.rows[0]?.[4])).toContain('set-cookie: [removed]');
    expect(String(r.structured.rows[0]?.[4])).toContain('x-ratelimit-remaining: 99');
    expect(shown).not.toContain('abc123');
    expect(journalText()).not.toContain(TOKEN);
  });

  it('a write needing approval is pending; only the dry run (x-dry-run: true) reached the server', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'PATCH', path: '/customers/42', body: { tier: 'gold' } });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('approval.pending');
    const got = echo.requests.slice(before);
    expect(got).toHaveLength(1);
    expect(got[0]?.method).toBe('PATCH');
    expect(got[0]?.headers.some(([n, v]) => n.toLowerCase() === 'x-dry-run' && v === 'true')).toBe(true);
    expect(got[0]?.body.toString('utf8')).toBe('{"tier":"gold"}');
    // The approver's preview is the dry run's status and the start of its masked body (the reflected request: credential scrubbed).
    const journal = journalText();
    expect(journal).toMatch(/Dry run \(header x-dry-run\) answered HTTP 200 OK: \{/);
    expect(journal).not.toContain(TOKEN);
  });

  it('a write needing approval on a connection without a dry run sends nothing', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'plain', method: 'DELETE', path: '/customers/42' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('approval.pending');
    expect(echo.requests.length).toBe(before);
    expect(journalText()).toContain('the approver sees the exact request');
  });

  it('a denied path sends nothing, whatever its case or trailing slash', async () => {
    const before = echo.requests.length;
    for (const path of ['/secrets/db', '/Secrets/db/', '/public/../secrets/db', '/%73ecrets/db']) {
      const r = await call({ connection: 'api', method: 'GET', path });
      expect(r.ok, path).toBe(false);
      if (!r.ok) expect(r.error.code, path).toBe('policy.denied');
    }
    expect(echo.requests.length).toBe(before);
  });

  /** The one answer row's notices, and what was sent to the echo server since `before`. */
  const notices = (r: Awaited<ReturnType<typeof call>>): string => (r.ok ? r.structured.notices.join('\n') : '');

  it('a same-origin redirect inside the base path is answered, not followed, and names the path to call', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'GET', path: '/moved' });
    expect(r.ok, r.text).toBe(true);
    if (!r.ok) return;
    expect(r.structured.rows[0]?.[0]).toBe(302);
    expect(r.structured.rows[0]?.[3]).toBeNull();
    expect(String(r.structured.rows[0]?.[4])).toContain('location: /api/v1/customers/7?view=full');
    expect(notices(r)).toContain('Redirected to /api/v1/customers/7: call http_request with path "/customers/7" with the query "view=full" as "query"');
    expect(notices(r)).toContain('policy decides it like any call');
    expect(echo.requests.slice(before).map((q) => q.rawPath)).toEqual(['/api/v1/moved']);
    // The agent's follow-up is a call like any other: allowed by the reads rule, it reaches the server.
    const next = await call({ connection: 'api', method: 'GET', path: '/customers/7', query: { view: 'full' } });
    expect(next.ok, next.text).toBe(true);
    if (next.ok) expect(next.structured.rows[0]?.[0]).toBe(200);
    expect(echo.requests.slice(before).map((q) => q.rawPath)).toEqual(['/api/v1/moved', '/api/v1/customers/7?view=full']);
  });

  it('a redirect to a path policy denies: the 3xx is answered, and the follow-up call is policy.denied with nothing sent', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'GET', path: '/to-secrets' });
    expect(r.ok, r.text).toBe(true);
    expect(notices(r)).toContain('call http_request with path "/secrets/db"');
    const next = await call({ connection: 'api', method: 'GET', path: '/secrets/db' });
    expect(next.ok).toBe(false);
    if (!next.ok) expect(next.error.code).toBe('policy.denied');
    expect(echo.requests.slice(before).map((q) => q.rawPath)).toEqual(['/api/v1/to-secrets']);
  });

  it('a same-origin redirect outside the base path is answered as not reachable here; the target is never requested', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'GET', path: '/escape' });
    expect(r.ok, r.text).toBe(true);
    if (r.ok) expect(r.structured.rows[0]?.[0]).toBe(302);
    expect(notices(r)).toContain('The target is a path outside this API (/api/v1): it is not reachable through connection api.');
    expect(notices(r)).not.toContain('call http_request');
    expect(echo.requests.slice(before).map((q) => q.rawPath)).toEqual(['/api/v1/escape']);
  });

  it('a redirect to the metadata address (another origin) is answered as not reachable; nothing is sent there', async () => {
    for (const [connectionName, server, path] of [
      ['meta', metadata, '/anything'],
      ['api', echo, '/meta'],
    ] as const) {
      const before = server.requests.length;
      const r = await call({ connection: connectionName, method: 'GET', path });
      expect(r.ok, r.text).toBe(true);
      expect(notices(r)).toContain('The target is another origin (http://169.254.169.254): it is not reachable through connection');
      expect(notices(r)).not.toContain('call http_request');
      // The one request is the redirecting one: no second hop went anywhere.
      expect(server.requests.length - before).toBe(1);
    }
  });

  it('a write answered 307 is sent once and never re-sent to the Location; the agent is told the path to call', async () => {
    const before = echo.requests.length;
    const r = await call({ connection: 'api', method: 'POST', path: '/direct/moved', body: { a: 1 } });
    expect(r.ok, r.text).toBe(true);
    if (r.ok) expect(r.structured.rows[0]?.[0]).toBe(307);
    // The new path is under /customers/**: that call would need approval, which policy decides then.
    expect(notices(r)).toContain('call http_request with path "/customers/8"');
    expect(echo.requests.slice(before).map((q) => [q.method, q.rawPath])).toEqual([['POST', '/api/v1/direct/moved']]);
  });

  it('masks JSON fields by selector and the rest by the detectors', async () => {
    const r = await call({ connection: 'widgets', method: 'GET', path: '/widgets/1' });
    expect(r.ok, r.text).toBe(true);
    if (!r.ok) return;
    const body = String(r.structured.rows[0]?.[5]);
    expect(body).toContain('"card_number": "[masked:$..card_number]"');
    expect(body).toContain('"email": "[masked:$.owner.email]"');
    expect(body).toContain('"name": "sprocket"');
    const shown = r.text + JSON.stringify(r.structured);
    expect(shown).not.toContain('4111111111111111');
    expect(shown).not.toContain('ada@example.com');
    expect(r.structured.masked).toEqual(
      expect.arrayContaining([expect.objectContaining({ target: '$..card_number', count: 1 }), expect.objectContaining({ target: '$.owner.email', count: 1 })]),
    );
  });

  it('the OpenAPI document decides operations: an invalid path parameter is refused before anything is sent', async () => {
    const before = widgets.requests.length;
    const r = await call({ connection: 'widgets', method: 'GET', path: '/widgets/0' });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('http.parameter_invalid');
    const undocumented = await call({ connection: 'widgets', method: 'GET', path: '/gadgets' });
    expect(undocumented.ok).toBe(false);
    if (!undocumented.ok) expect(undocumented.error.code).toBe('policy.no_match');
    expect(widgets.requests.length).toBe(before);
  });

  it('a slow answer stops at the time limit; an endless one is cut at max_response_bytes', async () => {
    const slowly = await call({ connection: 'slow', method: 'GET', path: '/' });
    expect(slowly.ok).toBe(false);
    if (!slowly.ok) expect(slowly.error.code).toBe('backend.timeout');
    const cut = await call({ connection: 'endless', method: 'GET', path: '/' });
    expect(cut.ok, cut.text).toBe(true);
    if (!cut.ok) return;
    expect(cut.structured.truncated).toEqual({ reason: 'bytes', limit: 4096 });
    expect(String(cut.structured.rows[0]?.[5])).toMatch(/^\[binary body not shown: application\/octet-stream, 4096 bytes, sha256 [0-9a-f]{64}/);
  });

  it("a grant's remaining life (ExecuteContext.timeLimitMs) caps the connection's timeout", async () => {
    const declaration = httpConnectionSchema.parse({
      kind: 'connection',
      name: 'slow',
      type: 'http',
      description: 'slow',
      base_url: `http://127.0.0.1:${slow.port}`,
      networks: ['127.0.0.1/32'],
      limits: { timeout: '30s' },
    });
    const opened = http.connect(declaration, { env: {}, baseDir: dir });
    const request = await opened.resolve(http.parse({ connection: 'slow', method: 'GET', path: '/' }, { tool: 'http_request', connection: 'slow' }));
    const started = performance.now();
    await expect(opened.execute(request, { timeLimitMs: 150 })).rejects.toMatchObject({ code: 'backend.timeout' });
    expect(performance.now() - started).toBeLessThan(5_000);
    await opened.close();
  });

  it('drawbridge check --connect: a HEAD of the base URL with the credential', async () => {
    const before = echo.requests.length;
    const [report] = await checkConnections(gateway.config, { env: { API_TOKEN: TOKEN }, only: ['api'] });
    expect(report?.status, report?.line).toBe('ok');
    expect(report?.line).toMatch(new RegExp(`^HTTP 200 from 127\\.0\\.0\\.1:${echo.port} \\(127\\.0\\.0\\.1\\)`));
    const got = echo.requests.slice(before);
    expect(got.map((q) => [q.method, q.rawPath])).toEqual([['HEAD', '/api/v1']]);
    expect(got[0]?.headers.some(([n, v]) => n.toLowerCase() === 'authorization' && v === `Bearer ${TOKEN}`)).toBe(true);
    const [wrong] = await checkConnections(gateway.config, { env: {}, only: ['api'] });
    expect(wrong?.error?.code).toBe('config.secret_missing');
  });

  it('a text answer goes through the detectors', async () => {
    const r = await call({ connection: 'api', method: 'GET', path: '/customers/42', headers: { 'x-request-id': 'alice@example.com' } });
    expect(r.ok, r.text).toBe(true);
    if (r.ok) expect(JSON.stringify(r.structured.rows)).not.toContain('alice@example.com');
  });
});

describe('the example configuration (examples/http)', () => {
  const exampleDir = resolve(import.meta.dirname, '..', '..', '..', 'examples', 'http');
  let example: Gateway;
  let journalDir: string;

  beforeAll(async () => {
    const config = loadConfig(exampleDir);
    journalDir = mkdtempSync(join(tmpdir(), 'drawbridge-http-example-'));
    example = createGateway({
      config,
      state: await openState(config, { journalPath: join(journalDir, 'journal.db') }),
      maskKey: new Uint8Array(32),
      environment: { env: { CRM_API_TOKEN: 'unused', DRAWBRIDGE_LEAD_TOKEN: 'unused' }, baseDir: config.dir },
    });
  });

  afterAll(async () => {
    await example?.close();
    if (journalDir) rmSync(journalDir, { recursive: true, force: true });
  });

  it('loads with the registry, the tool and its connection as declared', () => {
    expect(example.config.tools.get('http_request')?.backend.type).toBe('http');
    expect(example.config.connections.get('crm')?.declaration).toMatchObject({ type: 'http', base_url: 'https://crm.example.com/api/v1' });
  });

  const developer = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });
  it.each([
    ['GET', '/customers/42', 'allow', 'crm-reads'],
    ['HEAD', '/customers/42/tickets', 'allow', 'crm-reads'],
    ['PATCH', '/customers/42', 'approve', 'crm-writes-need-approval'],
    ['POST', '/customers', 'approve', 'crm-writes-need-approval'],
    ['DELETE', '/customers/42', 'deny', 'crm-no-customer-delete'],
    ['GET', '/internal/metrics', 'deny', null],
    ['OPTIONS', '/customers', 'deny', null],
  ] as const)('%s %s: %s (%s), decided with the OpenAPI document, offline', async (method, path, effect, rule) => {
    const e = await explain(example, { tool: 'http_request', connection: 'crm', input: { method, path }, identity: developer, offline: false });
    expect(e.error, JSON.stringify(e.error)).toBeNull();
    expect(e.decision).toMatchObject({ effect, rule });
  });

  it('an invalid path parameter is refused by the document', async () => {
    const e = await explain(example, {
      tool: 'http_request',
      connection: 'crm',
      input: { method: 'GET', path: '/customers/abc' },
      identity: developer,
      offline: false,
    });
    expect(e.error?.code).toBe('http.parameter_invalid');
  });
});
