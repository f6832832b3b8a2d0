// `drawbridge serve` (the built binary) with `tracing:` exports a span per call to an in-process
// OTLP/HTTP receiver, flushed when it shuts down: over stdio the caller's context comes from the
// request's `_meta` (MCP SEP-414), over --http from `_meta` or else the `traceparent` header; no
// context or an invalid one starts a new root and the call still works; the configured header
// (a reference) is sent; no SQL text, data or subject is in any payload. Without `tracing:`
// nothing is sent, even with the standard OTEL_* variables pointing at the receiver.

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runInProcess, waitForOutput } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase, READ_ONLY_POLICY } from '../support/fixtures.js';
import { freePort } from '../support/net.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

const CANARY = 'CANARY-7d2f-serve-trace';
const T1 = '0af7651916cd43dd8448eb211c80319c';
const P1 = 'b7ad6b7169203331';
const T2 = '4bf92f3577b34da6a3ce929d0e0e4736';
const P2 = '00f067aa0ba902b7';
const POLICY = READ_ONLY_POLICY;

let db: FreshDatabase;
let receiver: OtlpReceiver;
const dirs: string[] = [];

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('serve_trace');
  receiver = await startOtlpReceiver();
}, 60_000);

afterAll(async () => {
  await receiver?.close();
  await db?.drop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function config(options: Parameters<typeof writeConfig>[0], tracing: string | null): string {
  const dir = writeConfig({ policy: POLICY, ...options });
  dirs.push(dir);
  if (tracing !== null) appendFileSync(join(dir, 'policies', 'gateway.yaml'), tracing);
  return dir;
}

const tracingYaml = (service: string) => `tracing:\n  endpoint: ${receiver.url}\n  headers: { x-otlp-key: { env: OTLP_KEY } }\n  service_name: ${service}\n`;

function callIdOf(r: CallToolResult): string {
  expect(r.isError ?? false, JSON.stringify(r.content)).toBe(false);
  return String((r.structuredContent as { callId?: unknown } | undefined)?.callId);
}

function spanOf(callId: string): { span: ReceivedSpan; children: ReceivedSpan[] } {
  const spans = receiver.spans();
  const found = spans.filter((s) => s.attributes['drawbridge.call_id'] === callId);
  expect(found, `one span for call ${callId}`).toHaveLength(1);
  const span = found[0] as ReceivedSpan;
  return { span, children: spans.filter((s) => s.parentSpanId === span.spanId) };
}

function sql(client: Client, text: string, meta?: Record<string, string>): Promise<CallToolResult> {
  return client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: text }, ...(meta ? { _meta: meta } : {}) }) as Promise<CallToolResult>;
}

function noValuesExported(subject: string): void {
  const all = receiver.payloads.join('\n');
  for (const value of [CANARY, 'SELECT', 'customers', subject, 'otlp-key-value-not-in-spans']) expect(all).not.toContain(value);
}

describe('serve over stdio with tracing', () => {
  it('parents on _meta.traceparent, starts a root without one or with an invalid one, and flushes on shutdown', async () => {
    const dir = config({}, tracingYaml('drawbridge-stdio'));
    const before = receiver.payloads.length;
    let stderr = '';
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [requireBuiltCli(), 'serve', '--config', dir],
      env: { DB_URL: db.gatewayUrl, OTLP_KEY: 'otlp-key-value-not-in-spans' },
      cwd: REPO_ROOT,
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const client = new Client({ name: 'serve-tracing', version: '1.0.0' });
    await client.connect(transport);
    const traced = callIdOf(await sql(client, `SELECT '${CANARY}' AS v`, { traceparent: `00-${T2}-${P2}-01`, tracestate: 'rojo=00f067aa0ba902b7' }));
    const plain = callIdOf(await sql(client, 'SELECT count(*) AS n FROM customers'));
    const invalid = callIdOf(await sql(client, 'SELECT 1 AS one', { traceparent: `00-${T2.toUpperCase()}-${P2}-01` }));
    await client.close();
    // The spans go out when the gateway closes (a batch's schedule is 5 s): the process flushes them before it exits.
    await waitForOutput(() => String(receiver.payloads.length - before), /^[1-9]/, 'an export from serve', 15_000);
    expect(stderr).toMatch(/"msg":"tracing: spans exported to http:\/\/127\.0\.0\.1:\d+ \(sample ratio 1\)"/);

    const t = spanOf(traced);
    expect(t.span).toMatchObject({ traceId: T2, parentSpanId: P2, traceState: 'rojo=00f067aa0ba902b7', name: 'tools/call run_sql', kind: 2 });
    expect(t.span.resource['service.name']).toBe('drawbridge-stdio');
    expect(t.children.map((c) => c.name).sort()).toEqual(
      ['drawbridge.decide', 'drawbridge.execute', 'drawbridge.journal', 'drawbridge.journal', 'drawbridge.mask', 'drawbridge.parse'].sort(),
    );
    for (const id of [plain, invalid]) {
      const root = spanOf(id).span;
      expect(root.parentSpanId).toBe('');
      expect(root.traceId).not.toBe(T2);
      expect(root.attributes['drawbridge.status']).toBe('ok');
    }
    expect(receiver.headers.slice(before).every((h) => h['x-otlp-key'] === 'otlp-key-value-not-in-spans')).toBe(true);
    noValuesExported('tester@example.com');
  });

  it('without tracing: nothing is sent, even with OTEL_EXPORTER_OTLP_* pointing at the receiver', async () => {
    const dir = config({}, null);
    const before = receiver.payloads.length;
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [requireBuiltCli(), 'serve', '--config', dir],
      env: {
        DB_URL: db.gatewayUrl,
        OTEL_EXPORTER_OTLP_ENDPOINT: new URL(receiver.url).origin,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: receiver.url,
        OTEL_TRACES_EXPORTER: 'otlp',
      },
      cwd: REPO_ROOT,
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const client = new Client({ name: 'serve-no-tracing', version: '1.0.0' });
    await client.connect(transport);
    callIdOf(await sql(client, 'SELECT 1 AS one', { traceparent: `00-${T1}-${P1}-01` }));
    const exited = new Promise<void>((resolve) => (transport.onclose = () => resolve()));
    await client.close();
    await exited;
    // The process has exited (its last chance to export is gone): nothing arrived.
    expect(receiver.payloads.length).toBe(before);
    expect(stderr).not.toContain('tracing:');
  });
});

describe('serve with a tracing header that cannot be resolved', () => {
  it('refuses to start, naming the reference, not serving without it', async () => {
    const dir = config({}, tracingYaml('drawbridge-unresolved'));
    const r = await runInProcess(['serve', '--config', dir], { env: { DB_URL: db.gatewayUrl, OTLP_KEY: undefined } });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('drawbridge: cannot serve: a tracing header cannot be resolved (tracing.headers): environment variable OTLP_KEY is not set');
    expect(r.stderr).not.toContain('serving');
  });
});

describe('serve --http with tracing', () => {
  let idp: TestIdp;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    idp = await startTestIdp();
  });

  afterAll(async () => {
    child?.kill('SIGKILL');
    await idp?.stop();
  });

  it('parents on the traceparent header, _meta wins over it, an invalid _meta falls back to it, no header is a root; flushed on SIGTERM', async () => {
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    const dir = config({ oidc: { issuer: idp.issuer, audience: resource } }, tracingYaml('drawbridge-http'));
    const before = receiver.payloads.length;
    const proc = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir, '--http', `127.0.0.1:${port}`], {
      cwd: REPO_ROOT,
      env: { ...process.env, DB_URL: db.gatewayUrl, OTLP_KEY: 'otlp-key-value-not-in-spans' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child = proc;
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await waitForOutput(() => stderr, /over Streamable HTTP at/, 'serve --http to listen', 20_000);

    const { access_token } = await idp.deviceLogin(resource, 'alice', 'mcp');
    const session = async (headers: Record<string, string>): Promise<Client> => {
      const client = new Client({ name: 'serve-http-tracing', version: '1.0.0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(resource), { requestInit: { headers: { Authorization: `Bearer ${access_token}`, ...headers } } }),
      );
      return client;
    };
    const withHeader = await session({ traceparent: `00-${T1}-${P1}-01`, tracestate: 'congo=t61rcWkgMzE' });
    const fromHeader = callIdOf(await sql(withHeader, `SELECT '${CANARY}' AS v`));
    const fromMeta = callIdOf(await sql(withHeader, 'SELECT 2 AS two', { traceparent: `00-${T2}-${P2}-01` }));
    const invalidMeta = callIdOf(await sql(withHeader, 'SELECT 3 AS three', { traceparent: 'not-a-traceparent' }));
    await withHeader.close();
    const without = await session({});
    const root = callIdOf(await sql(without, 'SELECT 4 AS four'));
    const badHeader = await session({ traceparent: `00-${T1}-${'0'.repeat(16)}-01` });
    const rootToo = callIdOf(await sql(badHeader, 'SELECT 5 AS five'));
    await without.close();
    await badHeader.close();

    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
    expect(receiver.payloads.length).toBeGreaterThan(before);

    expect(spanOf(fromHeader).span).toMatchObject({ traceId: T1, parentSpanId: P1, traceState: 'congo=t61rcWkgMzE', kind: 2 });
    expect(spanOf(fromHeader).children).toHaveLength(6);
    expect(spanOf(fromMeta).span).toMatchObject({ traceId: T2, parentSpanId: P2, traceState: '' });
    expect(spanOf(invalidMeta).span).toMatchObject({ traceId: T1, parentSpanId: P1 });
    for (const id of [root, rootToo]) {
      const span = spanOf(id).span;
      expect(span.parentSpanId).toBe('');
      expect([T1, T2]).not.toContain(span.traceId);
    }
    expect(spanOf(root).span.resource['service.name']).toBe('drawbridge-http');
    noValuesExported('alice');
  });
});
