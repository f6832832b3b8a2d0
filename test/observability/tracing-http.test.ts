// The caller's trace context on 2026-07-28 requests over HTTP (no session, the per-request
// envelope in `_meta`): the `traceparent` header parents the call's span; a `traceparent` in
// `_meta` next to the envelope's keys wins over the header. serveHttp with the test OpenID
// provider, the tracing observer exporting to the in-process OTLP/HTTP receiver.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTracing, type Tracing } from '../../src/observability/tracing.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { messageOf, modernToolsCall } from '../support/mcp-2026.js';
import { startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.js';
import { READ_ONLY_POLICY } from '../support/fixtures.js';

const T1 = '0af7651916cd43dd8448eb211c80319c';
const P1 = 'b7ad6b7169203331';
const T2 = '4bf92f3577b34da6a3ce929d0e0e4736';
const P2 = '00f067aa0ba902b7';
const POLICY = READ_ONLY_POLICY;

let h: HttpHarness<'ann'>;
let receiver: OtlpReceiver;
let tracing: Tracing;
let token: string;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'tracing_http',
    accounts: { ann: { groups: ['analysts'] } },
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db }',
  });
  receiver = await startOtlpReceiver();
  tracing = createTracing({ config: { endpoint: receiver.url, headers: {}, sampleRatio: 1, serviceName: 'drawbridge' }, headers: {}, version: '0.0.0' });
  h.gateway.onCallEnd(tracing.call);
  token = await h.token('ann');
}, 60_000);

afterAll(async () => {
  await tracing?.shutdown();
  await h?.close();
  await receiver?.close();
});

/** One 2026-07-28 tools/call (its standard headers, the envelope in _meta, plus `meta` and `headers`); the call id of its answer. */
async function modernCall(sql: string, headers: Record<string, string>, meta: Record<string, string> = {}): Promise<string> {
  const params = { name: 'run_sql', arguments: { connection: 'db', sql } };
  const response = await modernToolsCall({ url: h.http.url, token, params, envelope: { client: 'raw-http' }, meta, headers });
  const answer = await messageOf<{ result?: { structuredContent?: { callId?: string } } }>(response);
  const callId = answer.result?.structuredContent?.callId;
  if (response.status !== 200 || callId === undefined) throw new Error(`unexpected answer ${response.status}: ${JSON.stringify(answer)}`);
  return callId;
}

describe('trace context on 2026-07-28 requests over HTTP', () => {
  it('the header parents the span; _meta’s traceparent wins over it; no context is a root', async () => {
    const fromHeader = await modernCall('SELECT 1 AS one', { traceparent: `00-${T1}-${P1}-01`, tracestate: 'congo=t61rcWkgMzE' });
    const fromMeta = await modernCall('SELECT 2 AS two', { traceparent: `00-${T1}-${P1}-01` }, { traceparent: `00-${T2}-${P2}-01`, tracestate: 'rojo=1' });
    const root = await modernCall('SELECT 3 AS three', {});
    await tracing.shutdown();
    const span = (callId: string) => {
      const found = receiver.spans().filter((s) => s.attributes['drawbridge.call_id'] === callId);
      expect(found).toHaveLength(1);
      return found[0];
    };
    expect(span(fromHeader)).toMatchObject({ traceId: T1, parentSpanId: P1, traceState: 'congo=t61rcWkgMzE', name: 'tools/call run_sql' });
    expect(span(fromMeta)).toMatchObject({ traceId: T2, parentSpanId: P2, traceState: 'rojo=1' });
    expect(span(root)?.parentSpanId).toBe('');
    expect([T1, T2]).not.toContain(span(root)?.traceId);
  });
});
