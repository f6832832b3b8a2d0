// The tracing observer in process, against a real gateway (fresh PostgreSQL database, SQLite
// journal) and the in-process OTLP/HTTP receiver: one SERVER span per call, parented on the
// caller's context or a new root, one child per stage inside it at the stage's offsets, only the
// allowed attributes, status ERROR for a failed execution, the caller's unsampled flag honoured,
// the configured headers sent, no value of any call in any payload; a collector that fails
// leaves the calls alone and is reported once.

import { trace } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TracingConfig } from '../../src/config/schema.js';
import { createTracing, type Tracing } from '../../src/observability/tracing.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import type { TraceContext } from '../../src/pipeline/trace-context.js';
import { freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

const CANARY = 'CANARY-trace-5c1e';
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

let db: FreshDatabase;
let t: TestGateway;
let receiver: OtlpReceiver;

beforeAll(async () => {
  db = await freshDatabase('tracing');
  t = await testGateway(db);
  receiver = await startOtlpReceiver();
}, 60_000);

afterAll(async () => {
  await t?.close();
  await receiver?.close();
  await db?.drop();
});

function config(endpoint: string): TracingConfig {
  return { endpoint, headers: {}, sampleRatio: 1, serviceName: 'drawbridge-test' };
}

function call(sql: string, trace?: TraceContext): Promise<CallResult> {
  return callTool(t.gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql },
    identity: t.identity,
    client: { name: 'vitest' },
    session: 'session-trace',
    ...(trace ? { trace } : {}),
  });
}

/** The call span with this call id, and its children. */
function callSpan(spans: readonly ReceivedSpan[], callId: string): { span: ReceivedSpan; children: ReceivedSpan[] } {
  const found = spans.filter((s) => s.attributes['drawbridge.call_id'] === callId);
  expect(found).toHaveLength(1);
  const span = found[0] as ReceivedSpan;
  return { span, children: spans.filter((s) => s.parentSpanId === span.spanId) };
}

const ALLOWED_KEYS = new Set([
  'mcp.method.name',
  'gen_ai.operation.name',
  'gen_ai.tool.name',
  'drawbridge.call_id',
  'drawbridge.connection',
  'drawbridge.operation',
  'drawbridge.access',
  'drawbridge.decision',
  'drawbridge.rule',
  'drawbridge.clearance',
  'drawbridge.status',
  'drawbridge.error.code',
  'error.type',
  'drawbridge.masked',
  'drawbridge.rows',
  'drawbridge.affected_rows',
  'drawbridge.stage',
]);

describe('tracing: a span per call, exported over OTLP/HTTP', () => {
  let tracing: Tracing;
  let subscribed: () => void;
  const results: Record<string, CallResult> = {};

  beforeAll(async () => {
    tracing = createTracing({ config: config(receiver.url), headers: { 'x-collector-key': 'collector-key-value' }, version: '9.9.9' });
    subscribed = t.gateway.onCallEnd(tracing.call);
    results['traced'] = await call(`SELECT '${CANARY}' AS v, email FROM customers ORDER BY id LIMIT 2`, {
      traceId: TRACE,
      parentSpanId: PARENT,
      flags: 1,
      state: 'rojo=00f067aa0ba902b7',
    });
    results['root'] = await call(`DROP TABLE "${CANARY}"`);
    results['failed'] = await call(`SELECT 1/0 AS "${CANARY}"`);
    results['unsampled'] = await call('SELECT 2', { traceId: 'a'.repeat(32), parentSpanId: 'b'.repeat(16), flags: 0, state: null });
    subscribed();
    await tracing.shutdown();
  }, 60_000);

  it('parents the call span on the caller’s context: its trace id, its span as parent, its tracestate; kind SERVER, the tool in the name', () => {
    expect(results['traced']?.ok).toBe(true);
    const { span } = callSpan(receiver.spans(), results['traced']?.callId ?? '');
    expect(span).toMatchObject({ traceId: TRACE, parentSpanId: PARENT, name: 'tools/call run_sql', kind: 2, status: 0 });
    expect(span.resource).toMatchObject({ 'service.name': 'drawbridge-test', 'service.version': '9.9.9' });
    expect(span.attributes).toEqual({
      'mcp.method.name': 'tools/call',
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'run_sql',
      'drawbridge.call_id': results['traced']?.callId,
      'drawbridge.connection': 'db',
      'drawbridge.operation': 'select',
      'drawbridge.access': 'read',
      'drawbridge.decision': 'allow',
      'drawbridge.rule': 'read',
      'drawbridge.status': 'ok',
      'drawbridge.masked': 2,
      'drawbridge.rows': 2,
    });
  });

  it('one child per stage, in order, each inside the call span at its offset', () => {
    const { span, children } = callSpan(receiver.spans(), results['traced']?.callId ?? '');
    const ordered = [...children].sort((a, b) => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0));
    expect(ordered.map((c) => c.name)).toEqual([
      'drawbridge.parse',
      'drawbridge.decide',
      'drawbridge.journal',
      'drawbridge.execute',
      'drawbridge.mask',
      'drawbridge.journal',
    ]);
    // Offsets and durations are kept to the hundredth of a millisecond: 20 µs of slack for the rounding.
    const slack = 20_000n;
    let previousEnd = span.startNs;
    for (const child of ordered) {
      expect(child).toMatchObject({ traceId: TRACE, kind: 1 });
      expect(child.attributes).toEqual({ 'drawbridge.stage': child.name.replace('drawbridge.', '') });
      expect(child.startNs + slack).toBeGreaterThanOrEqual(previousEnd);
      expect(child.endNs).toBeGreaterThanOrEqual(child.startNs);
      expect(child.endNs).toBeLessThanOrEqual(span.endNs + slack);
      previousEnd = child.endNs;
    }
  });

  it('a call without a caller context is a new root; a refusal is not an error', () => {
    const { span, children } = callSpan(receiver.spans(), results['root']?.callId ?? '');
    expect(span.parentSpanId).toBe('');
    expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(span.traceId).not.toBe(TRACE);
    expect(span.status).toBe(0);
    expect(span.attributes).toMatchObject({
      'drawbridge.decision': 'deny',
      'drawbridge.rule': 'no-ddl',
      'drawbridge.status': 'refused',
      'drawbridge.error.code': 'policy.denied',
    });
    // Refused before execution: no execute or mask stage.
    expect(children.map((c) => c.name).sort()).toEqual(['drawbridge.decide', 'drawbridge.journal', 'drawbridge.journal', 'drawbridge.parse']);
  });

  it('a failed execution has status ERROR with the error code as error.type', () => {
    const { span } = callSpan(receiver.spans(), results['failed']?.callId ?? '');
    expect(results['failed']?.ok).toBe(false);
    expect(span.status).toBe(2);
    expect(span.attributes['drawbridge.status']).toBe('error');
    expect(span.attributes['error.type']).toBe(span.attributes['drawbridge.error.code']);
    expect(String(span.attributes['error.type'])).toMatch(/^[a-z]+\.[a-z_]+$/);
  });

  it('honours the caller’s unsampled flag: no span for that call', () => {
    expect(results['unsampled']?.ok).toBe(true);
    expect(receiver.spans().filter((s) => s.attributes['drawbridge.call_id'] === results['unsampled']?.callId)).toEqual([]);
    expect(receiver.spans().filter((s) => s.traceId === 'a'.repeat(32))).toEqual([]);
  });

  it('only the allowed attributes, the configured header sent, and nothing of the calls’ values in any payload', () => {
    const keys = new Set(receiver.spans().flatMap((s) => Object.keys(s.attributes)));
    expect([...keys].filter((k) => !ALLOWED_KEYS.has(k))).toEqual([]);
    expect(receiver.headers.every((h) => h['x-collector-key'] === 'collector-key-value')).toBe(true);
    const all = receiver.payloads.join('\n');
    expect(all.length).toBeGreaterThan(0);
    for (const value of [CANARY, 'SELECT', 'customers', 'email', '@example', t.identity.subject, 'session-trace', 'vitest', 'division']) {
      expect(all).not.toContain(value);
    }
  });
});

describe('tracing: a collector that fails', () => {
  it('never touches a call, is reported once, and shutdown still returns', async () => {
    const failing = await startOtlpReceiver();
    failing.answer(400);
    const reports: Array<{ level: string; message: string }> = [];
    const tracing = createTracing({
      config: config(failing.url),
      headers: {},
      version: '0.0.0',
      report: (level, message) => reports.push({ level, message }),
      scheduledDelayMillis: 1,
    });
    const unsubscribe = t.gateway.onCallEnd(tracing.call);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await call('SELECT 1');
        expect(r.ok).toBe(true);
        // Each call's span goes out in its own export (1 ms schedule): wait for it to be refused.
        for (let k = 0; k < 200 && failing.payloads.length <= i; k++) await new Promise((r2) => setTimeout(r2, 10));
      }
    } finally {
      unsubscribe();
      await tracing.shutdown();
      await failing.close();
    }
    expect(failing.payloads.length).toBeGreaterThanOrEqual(2);
    expect(reports.filter((r) => r.level === 'warn')).toHaveLength(1);
    expect(reports[0]?.message).toMatch(/^traces not exported \(\d+ span\(s\) dropped\): .*; calls are unaffected$/);
  });
});

describe('tracing: its own provider, and sample_ratio for calls that start a trace', () => {
  it('registers nothing globally: the process-wide tracer stays a no-op', async () => {
    const tracing = createTracing({ config: config(receiver.url), headers: {}, version: '0.0.0' });
    try {
      expect(trace.getTracer('anyone').startSpan('probe').isRecording()).toBe(false);
    } finally {
      await tracing.shutdown();
    }
  });

  it('sample_ratio 0: a call without a context is not recorded, a caller’s sampled call still is', async () => {
    const sampling = await startOtlpReceiver();
    const tracing = createTracing({ config: { ...config(sampling.url), sampleRatio: 0 }, headers: {}, version: '0.0.0' });
    const unsubscribe = t.gateway.onCallEnd(tracing.call);
    let root: CallResult;
    let traced: CallResult;
    try {
      root = await call('SELECT 10 AS ten');
      traced = await call('SELECT 11 AS eleven', { traceId: TRACE, parentSpanId: PARENT, flags: 1, state: null });
    } finally {
      unsubscribe();
      await tracing.shutdown();
      await sampling.close();
    }
    const ids = new Set(sampling.spans().map((s) => s.attributes['drawbridge.call_id']));
    expect(ids.has(traced.callId)).toBe(true);
    expect(ids.has(root.callId)).toBe(false);
  });
});
