// Per-call latency of one GET through the http_request backend against the same request sent
// directly, in one run: a loopback node:http API (started here) answers a ~1 KB JSON document to
// GET /api/v1/products when the bearer token is right. Targets, interleaved round-robin:
// (a) Node's own `fetch` (undici, keep-alive: the floor), (a') node:http with `agent: false`
// (a new TCP connection per call, as Drawbridge's transport connects: it pins the checked address
// for each request and sends `Connection: close`), (b) Drawbridge in process (openGateway + callTool,
// no MCP; journal synced FULL, and a second one with the journal in memory), (c) Drawbridge over
// stdio through the MCP SDK client (`drawbridge serve`, the built binary). Every answer is checked
// untimed (status 200, the document unchanged). No assertions on timings.

import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import { makeIdentity } from '../src/identity/identity.js';
import { callTool } from '../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../src/pipeline/gateway.js';
import { answerText, childEnv, DRAWBRIDGE_CLI, stdioClient, type ToolAnswer } from './latency.js';
import { ms, ratio, roundRobin, table, tempDir, type RoundRobinSample } from './support.js';

export const HTTP_HEADING = '## http_request latency per call';
export const HTTP_PATH = '/api/v1/products';
const TOKEN = `bench-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;

/** ~1 KB of JSON with nothing the detectors take for PII (so no masking changes it). */
export const DOCUMENT = {
  page: 1,
  total: 8,
  items: Array.from({ length: 8 }, (_, i) => ({
    id: 1000 + i,
    sku: `SKU-${String(4200 + i * 7)}`,
    name: `Widget model ${String.fromCharCode(65 + i)}`,
    price: { amount: 1999 + i * 250, currency: 'EUR' },
    stock: 40 - i * 3,
    tags: ['hardware', i % 2 === 0 ? 'blue' : 'green'],
  })),
};
const BODY = JSON.stringify(DOCUMENT);

export interface HttpTarget {
  readonly name: string;
  readonly pid: number | null;
  call(): Promise<unknown>;
  /** The answer's status and body text; throws when the target refused or failed. */
  answer(answer: unknown): { status: number; body: string };
  close(): Promise<void>;
}

export interface HttpBench {
  readonly url: URL;
  readonly documentBytes: number;
  /** Requests the API answered (each target's calls, checks and warm-up included). */
  requests(): number;
  readonly configDir: string;
  close(): Promise<void>;
}

/** The loopback API and a Drawbridge config for it (connection, tool, allow rule for reads, detectors, journal synced FULL). */
export async function startHttpBench(): Promise<HttpBench> {
  let answered = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'GET' || req.url !== HTTP_PATH) {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
        return;
      }
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end('{"error":"unauthorized"}');
        return;
      }
      answered += 1;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) }).end(BODY);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the bench API has no address');
  const url = new URL(`http://127.0.0.1:${address.port}${HTTP_PATH}`);
  const configDir = tempDir('http');
  mkdirSync(join(configDir, 'tools'));
  mkdirSync(join(configDir, 'policies'));
  writeFileSync(
    join(configDir, 'tools', 'api.yaml'),
    `kind: connection
name: api
type: http
description: The bench's loopback API
base_url: http://127.0.0.1:${address.port}/api/v1
credential: { bearer: '\${API_TOKEN}' }
networks: [127.0.0.1/32]
limits: { timeout: 10s }
---
kind: tool
name: http_request
type: http_request
connections: [api]
`,
  );
  writeFileSync(
    join(configDir, 'policies', 'gateway.yaml'),
    'kind: gateway\nidentity: { mode: local, subject: bench@example.com, groups: [developers] }\njournal: { path: journal.db }\n' +
      'approval: { wait: 0ms, store: approvals.db }\n',
  );
  writeFileSync(
    join(configDir, 'policies', 'rules.yaml'),
    `kind: policy
rules:
  - name: reads
    match: { tool: http_request, access: read, methods: [GET] }
    effect: allow
masking:
  - name: answers
    match: { tool: http_request }
    detectors: all
`,
  );
  return {
    url,
    documentBytes: Buffer.byteLength(BODY),
    requests: () => answered,
    configDir,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const HTTP_ENV = (): Record<string, string> => ({ API_TOKEN: TOKEN });

// ---------------------------------------------------------------------------
// Targets

interface Plain {
  readonly status: number;
  readonly body: string;
}

export function fetchTarget(url: URL): HttpTarget {
  return {
    name: 'fetch',
    pid: null,
    async call(): Promise<Plain> {
      const res = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/json' } });
      return { status: res.status, body: await res.text() };
    },
    answer: (a) => a as Plain,
    close: async () => undefined,
  };
}

/** node:http with no agent: a new TCP connection per call, closed after the answer (Drawbridge's transport does the same). */
export function newConnectionTarget(url: URL): HttpTarget {
  return {
    name: 'node:http, new connection',
    pid: null,
    call: () =>
      new Promise<Plain>((resolve, reject) => {
        const req = request(url, { agent: false, headers: { authorization: `Bearer ${TOKEN}`, accept: 'application/json', connection: 'close' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      }),
    answer: (a) => a as Plain,
    close: async () => undefined,
  };
}

const ARGS = { connection: 'api', method: 'GET', path: '/products' };

/** The http_request answer's one row: status, status_text, content_type, final_path, headers, body. */
function fromRow(name: string, row: readonly unknown[] | undefined, detail: () => string): Plain {
  if (!row || typeof row[0] !== 'number' || typeof row[5] !== 'string') throw new Error(`${name} answered without the response row: ${detail()}`);
  return { status: row[0], body: row[5] };
}

/**
 * Drawbridge in process. `journal: 'file'` has its own journal file (the stdio target's `drawbridge serve` appends to the
 * configured one), synced FULL; `journal: 'memory'` keeps it in memory, which separates fsync from the backend's own work.
 */
export async function inProcessTarget(configDir: string, journal: 'file' | 'memory'): Promise<HttpTarget & { gateway: Gateway }> {
  const journalPath = journal === 'file' ? join(configDir, 'journal-in-process.db') : ':memory:';
  const gateway = await openGateway({ configDir, env: HTTP_ENV(), journalPath });
  const identity = makeIdentity({ kind: 'local', subject: 'bench@example.com', groups: ['developers'], issuer: 'local' });
  const name = journal === 'file' ? 'drawbridge in process' : 'drawbridge in process, journal in memory';
  return {
    name,
    pid: null,
    gateway,
    call: () => callTool(gateway, { tool: 'http_request', args: ARGS, identity, client: { name: 'bench' } }),
    answer(answer) {
      const r = answer as Awaited<ReturnType<typeof callTool>>;
      if (!r.ok) throw new Error(`${name} refused the GET: ${r.text}`);
      return fromRow(name, r.structured.rows[0], () => r.text.slice(0, 500));
    },
    close: () => gateway.close(),
  };
}

export async function stdioTarget(configDir: string): Promise<HttpTarget> {
  const { client, transport, stderr } = await stdioClient(
    'drawbridge-http',
    process.execPath,
    [DRAWBRIDGE_CLI, 'serve', '--config', configDir],
    childEnv(HTTP_ENV()),
  );
  return {
    name: 'drawbridge over stdio',
    pid: transport.pid,
    call: () => client.callTool({ name: 'http_request', arguments: ARGS }, undefined, { timeout: 60_000 }),
    answer(answer) {
      const a = answer as ToolAnswer & { structuredContent?: { rows?: unknown[][] } };
      if (a.isError) throw new Error(`drawbridge over stdio refused the GET: ${answerText(a)}\n${stderr()}`);
      return fromRow('drawbridge over stdio', a.structuredContent?.rows?.[0], () => JSON.stringify(a.structuredContent).slice(0, 500));
    },
    close: () => client.close(),
  };
}

// ---------------------------------------------------------------------------
// The measurement loop

function check(target: HttpTarget, answer: unknown): void {
  const { status, body } = target.answer(answer);
  if (status !== 200) throw new Error(`${target.name} got HTTP ${status}: ${body.slice(0, 300)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`${target.name} answered a body that is not JSON: ${body.slice(0, 300)}`);
  }
  if (!isDeepStrictEqual(parsed, DOCUMENT)) throw new Error(`${target.name} answered a different document (masked?): ${body.slice(0, 300)}`);
}

export async function measureHttp(targets: readonly HttpTarget[], options: { warmup: number; calls: number }): Promise<RoundRobinSample[]> {
  for (const t of targets) check(t, await t.call());
  return roundRobin(
    targets,
    options,
    (t) => t.call(),
    (t, answer) => check(t, answer),
  );
}

// ---------------------------------------------------------------------------
// The report section

export interface HttpNumbers {
  readonly latency: RoundRobinSample[];
  readonly warmup: number;
  readonly calls: number;
  readonly documentBytes: number;
  readonly requests: number;
  /** The 1, 5 and 15 minute load averages when the section started: other work on the machine shows in its numbers. */
  readonly loadAverage: string;
}

export function renderHttp(n: HttpNumbers): string {
  const out: string[] = [HTTP_HEADING, ''];
  out.push(
    `\`GET ${HTTP_PATH}\` of a ${n.documentBytes}-byte JSON document from a node:http API on 127.0.0.1 started by the bench (it answers 401 without the ` +
      'bearer token), measured by the caller; every answer is checked (untimed) to be status 200 with the document unchanged. ' +
      '**fetch**: Node’s own `fetch` (undici), keep-alive connection reused — the floor. ' +
      '**node:http, new connection**: `http.request` with `agent: false`, a new TCP connection per call, as Drawbridge’s transport does ' +
      '(it resolves and checks the address for every request, connects to that address only and sends `Connection: close`). ' +
      '**Drawbridge in process**: `openGateway` + `callTool` with the `http_request` tool, no MCP: parse and normalise the path, policy (an allow ' +
      'rule for GET), the bearer token injected, the request, the answer parsed as JSON, masked with all detectors and scrubbed of the token, ' +
      'journal intent and outcome synced FULL (a second in-process gateway keeps its journal in memory: the rest is the backend’s and ' +
      'the pipeline’s own work). **Drawbridge over stdio**: the same through the MCP SDK client → `drawbridge serve`. ' +
      `${n.warmup} warm-up calls, then ${n.calls} calls per target, interleaved round-robin ` +
      `(${n.requests} requests answered in all; load average ${n.loadAverage} at the start). Times in ms.`,
    '',
  );
  const get = (name: string) => n.latency.find((s) => s.target === name);
  const floor = get('fetch');
  const fresh = get('node:http, new connection');
  if (!floor) return out.join('\n');
  const diff = (a: number, b: number) => `${a >= b ? '+' : '−'}${ms(Math.abs(a - b))}`;
  out.push(
    table(
      ['Target', 'p50 / p95', '÷ fetch (p50)', '− fetch (p50)', '÷ new connection (p50)', '− new connection (p50)'],
      n.latency.map((s) => [
        s.target,
        `${ms(s.p50)} / ${ms(s.p95)}`,
        s === floor ? '—' : ratio(s.p50 / floor.p50),
        s === floor ? '—' : diff(s.p50, floor.p50),
        fresh && s !== fresh ? ratio(s.p50 / fresh.p50) : '—',
        fresh && s !== fresh ? diff(s.p50, fresh.p50) : '—',
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push('');
  return out.join('\n');
}
