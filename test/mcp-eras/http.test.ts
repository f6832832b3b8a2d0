// Both MCP protocol eras on the same HTTP endpoint (issue 14, item 1): `serveHttp`
// with the test OpenID provider's bearer tokens, driven by
//   - raw 2026-07-28 requests (no initialize, no Mcp-Session-Id): server/discover,
//     -32022 (HTTP 400) for an unknown revision, -32020 for a missing or mismatched
//     MCP-Protocol-Version / Mcp-Method / Mcp-Name header, tools/list and tools/call
//     with resultType and cache hints; the bearer check and the Host check run before
//     the request is routed to either era (401 with the challenge, 403);
//   - approval on a 2026-07-28 request (out of band, or the clear refusal without form
//     elicitation) and a raw 2025-11-25 elicitation/create on the call's own stream.
// The SDK v1/v2 Clients and the Inspector CLI over HTTP are in clients.test.ts.

import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PII } from '../../dev/seed.js';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { TOOLS_LIST_TTL_MS } from '../../src/server.js';
import { SELF_APPROVED_POLICY } from '../support/fixtures.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { MODERN, envelope } from '../support/mcp-2026.js';

const MASKED_READ = 'SELECT id, email, city FROM customers ORDER BY id LIMIT 2';

const WRITE = "UPDATE customers SET city = 'Ghent' WHERE id = 1";
/** The default policy, and writes that only the requester approves, in the client, for the group selfers. */
const POLICY = SELF_APPROVED_POLICY;

type Account = 'ann' | 'sam';
let h: HttpHarness<Account>;
let ann: string;

beforeAll(async () => {
  h = await startHttpGateway<Account>({
    prefix: 'eras_http',
    accounts: { ann: { groups: ['analysts'] }, sam: { groups: ['selfers'] } },
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
  });
  ann = await h.token('ann');
});

afterAll(async () => {
  await h?.close();
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** The JSON-RPC message of a JSON or single-event SSE answer (null when there is none). */
  readonly message: { result?: Record<string, unknown>; error?: { code: number; message: string; data?: Record<string, unknown> } } | null;
}

function parseJson(text: string): Answer['message'] {
  try {
    return JSON.parse(text) as Answer['message'];
  } catch {
    return null;
  }
}

/** One POST to the MCP endpoint over node:http (so the Host header can be anything). */
function post(body: unknown, headers: Record<string, string>): Promise<Answer> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest(h.http.url, {
      method: 'POST',
      headers: { accept: 'application/json, text/event-stream', 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers },
    });
    req.on('response', (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => {
        const json = /^data: (.*)$/m.exec(data)?.[1] ?? data;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data, message: parseJson(json) });
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** A well-formed 2026-07-28 request with its standard headers (and the bearer token unless given `token: null`). */
function modern(
  method: string,
  params: Record<string, unknown>,
  options: {
    readonly token?: string | null;
    readonly headers?: Record<string, string>;
    readonly version?: string;
    readonly capabilities?: Record<string, unknown>;
  } = {},
): Promise<Answer> {
  const name = typeof params['name'] === 'string' ? { 'mcp-name': params['name'] } : {};
  const token = options.token === undefined ? ann : options.token;
  return post(
    { jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: envelope({ client: 'raw-http', ...options }) } },
    {
      'mcp-protocol-version': options.version ?? MODERN,
      'mcp-method': method,
      ...name,
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
      ...options.headers,
    },
  );
}

const textOf = (result: Record<string, unknown> | undefined): string =>
  ((result?.['content'] ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');

const journal = (): CallEntry[] => [...readCalls(join(h.dir, 'journal.db'))];

describe('raw 2026-07-28 requests over HTTP with a bearer token', () => {
  it('server/discover names 2026-07-28', async () => {
    const r = await modern('server/discover', {});
    expect(r.status).toBe(200);
    expect(r.message?.result?.['supportedVersions']).toEqual(expect.arrayContaining([MODERN]));
    expect(r.headers['mcp-session-id']).toBeUndefined();
  });

  it('an unknown revision: HTTP 400, -32022 with the supported list', async () => {
    const r = await modern('tools/list', {}, { version: '2099-01-01' });
    expect(r.status).toBe(400);
    expect(r.message?.error?.code).toBe(-32022);
    expect(r.message?.error?.data?.['supported']).toEqual(expect.arrayContaining([MODERN]));
  });

  it.each([
    ['no MCP-Protocol-Version header', { 'mcp-protocol-version': '' }],
    ['an Mcp-Method header naming another method', { 'mcp-method': 'tools/call' }],
  ])('tools/list with %s: HTTP 400, -32020', async (_label, headers) => {
    const r = await modern('tools/list', {}, { headers });
    expect(r.status).toBe(400);
    expect(r.message?.error?.code).toBe(-32020);
  });

  it('tools/call with an Mcp-Name header naming another tool: HTTP 400, -32020, and nothing runs', async () => {
    const before = journal().length;
    const r = await modern('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ } }, { headers: { 'mcp-name': 'other' } });
    expect(r.status).toBe(400);
    expect(r.message?.error?.code).toBe(-32020);
    expect(journal()).toHaveLength(before);
  });

  it('tools/list carries resultType, ttlMs and a private cacheScope', async () => {
    const r = await modern('tools/list', {});
    expect(r.status).toBe(200);
    expect(r.message?.result).toMatchObject({ resultType: 'complete', ttlMs: TOOLS_LIST_TTL_MS, cacheScope: 'private' });
  });

  it('tools/call carries resultType; the read is masked, journaled as the token’s subject with the envelope’s client and no session', async () => {
    const r = await modern('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ } });
    expect(r.status).toBe(200);
    expect(r.message?.result?.['resultType']).toBe('complete');
    expect(textOf(r.message?.result)).toContain('[masked:customers.email]');
    for (const email of DEMO_PII.emails) expect(r.body).not.toContain(email);
    const entry = journal().at(-1);
    expect(entry?.call['principal']).toMatchObject({ subject: 'ann' });
    expect(entry?.call['client']).toMatchObject({ name: 'raw-http' });
    expect(entry?.call['session']).toBeUndefined();
  });

  it('a malformed tools/call (a name that is not a string, arguments that are not an object) reaches the pipeline and is journaled', async () => {
    const before = journal().length;
    const r = await modern('tools/call', { name: 42, arguments: 'x' });
    expect(r.status, r.body).toBe(200);
    expect(textOf(r.message?.result)).toMatch(/^tool\.unknown: /);
    const after = journal();
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)?.call['tool']).toBe('(not a string: 42)');
  });

  it('without a token: 401 with the Bearer challenge naming the resource metadata, before any routing', async () => {
    const r = await modern('server/discover', {}, { token: null });
    expect(r.status).toBe(401);
    expect(String(r.headers['www-authenticate'])).toMatch(
      /^Bearer .*resource_metadata="http:\/\/127\.0\.0\.1:\d+\/\.well-known\/oauth-protected-resource\/mcp"/,
    );
  });

  it('a foreign Host (DNS rebinding) is refused with 403 before any routing', async () => {
    const r = await modern('server/discover', {}, { headers: { host: `evil.example:${new URL(h.http.url).port}` } });
    expect(r.status).toBe(403);
    expect(r.message?.result).toBeUndefined();
  });
});

/** One request over node:http without a body (GET, DELETE). */
function bodiless(method: string, headers: Record<string, string>): Promise<{ status: number; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(h.http.url, { method, headers: { accept: 'application/json, text/event-stream', authorization: `Bearer ${ann}`, ...headers } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, allow: res.headers['allow'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('GET and DELETE without a session', () => {
  it.each(['GET', 'DELETE'])('%s naming 2026-07-28: 405, only POST (no session to open or end)', async (method) => {
    expect(await bodiless(method, { 'mcp-protocol-version': MODERN })).toEqual({ status: 405, allow: 'POST' });
  });

  it.each(['GET', 'DELETE'])('%s without a revision: 400 (a 2025-11-25 session operation needs its Mcp-Session-Id)', async (method) => {
    expect((await bodiless(method, {})).status).toBe(400);
  });
});

describe('approval on a 2026-07-28 request (no server→client request: never an elicitation/create)', () => {
  const FORM = { elicitation: { form: {} } };

  it('a rule with approver groups: the request goes out of band and the call answers approval.pending, as for a client that cannot elicit', async () => {
    const r = await modern('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: WRITE } }, { capabilities: FORM });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain('elicitation/create');
    expect(r.message?.result?.['resultType']).toBe('complete');
    expect(textOf(r.message?.result)).toMatch(/^approval\.pending: /);
    const entry = journal().at(-1);
    expect(entry?.call['decision']).toMatchObject({ effect: 'approve', rule: 'writes-need-approval' });
    expect(entry?.events.map((e) => [e.type, e.data['event']])).toContainEqual(['approval', 'requested']);
  });

  // With form elicitation declared, the same call is answered input_required (test/mcp-eras/approval.test.ts).
  it('a rule only the requester approves, a client without form elicitation: the clear refusal (cannot show the prompt), nothing run', async () => {
    const sam = await h.token('sam');
    const r = await modern('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: WRITE } }, { capabilities: {}, token: sam });
    expect(r.status).toBe(200);
    expect(r.body).not.toContain('elicitation/create');
    expect(textOf(r.message?.result)).toMatch(/^approval\.unavailable: Rule self-approved-writes needs your approval in the client/);
    expect(journal().at(-1)?.outcome).toMatchObject({ status: 'refused', errorCode: 'approval.unavailable' });
  });
});

describe('2025-11-25 in-client approval, raw (the SDK clients and the Inspector CLI over HTTP: clients.test.ts)', () => {
  it('raw 2025-11-25: the elicitation/create travels on the tools/call’s own response stream (no GET stream open)', async () => {
    const sam = await h.token('sam');
    const headers = { authorization: `Bearer ${sam}`, accept: 'application/json, text/event-stream', 'content-type': 'application/json' };
    const init = await fetch(h.http.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: { elicitation: { form: {} } }, clientInfo: { name: 'raw-legacy', version: '1' } },
      }),
    });
    const session = init.headers.get('mcp-session-id');
    expect(session).toBeTruthy();
    await init.text();
    const inSession = { ...headers, 'mcp-session-id': session!, 'mcp-protocol-version': '2025-11-25' };
    await (
      await fetch(h.http.url, { method: 'POST', headers: inSession, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) })
    ).text();
    const call = await fetch(h.http.url, {
      method: 'POST',
      headers: inSession,
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'run_sql', arguments: { connection: 'db', sql: WRITE } } }),
    });
    expect(call.headers.get('content-type')).toContain('text/event-stream');
    const reader = call.body!.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    const nextMessage = async (): Promise<Record<string, unknown>> => {
      for (;;) {
        const event = /^data: (.*)$/m.exec(buffered);
        if (event) {
          buffered = buffered.slice(event.index + event[0].length);
          return JSON.parse(event[1]!) as Record<string, unknown>;
        }
        const chunk = await reader.read();
        if (chunk.done) throw new Error('the tools/call stream ended');
        buffered += decoder.decode(chunk.value, { stream: true });
      }
    };
    const prompt = await nextMessage();
    expect(prompt['method']).toBe('elicitation/create');
    const answered = await fetch(h.http.url, {
      method: 'POST',
      headers: inSession,
      body: JSON.stringify({ jsonrpc: '2.0', id: prompt['id'], result: { action: 'accept', content: { decision: 'approve' } } }),
    });
    expect(answered.status).toBe(202);
    const result = await nextMessage();
    expect(result['id']).toBe(2);
    expect((result['result'] as Record<string, unknown>)['isError']).toBeFalsy();
    await reader.cancel();
  });
});
