// Prometheus metrics of the gateway (prom-client), fed by the call-end event like the log:
// calls by tool, connection, decision and status; stage durations; masked values; and
// prom-client's default process metrics, all in a registry of this gateway's own (not the
// global one, so two gateways in one process never share counters). Served as `GET /metrics`
// on the admin listener, and on the `serve --http` listener only with admin.metrics_on_main.
// Label values are bounded: only names the config declares, else "other" (an agent's made-up
// tool name must not create a time series). No SQL text, arguments or subjects: the event has
// no data, and the subject is never a label.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CALL_STAGES, stageTotals, type CallEnd } from '../pipeline/call-end.js';

export const METRICS_PATH = '/metrics';

export interface Metrics {
  readonly registry: Registry;
  /** The call-end observer: subscribe it with gateway.onCallEnd(metrics.call). */
  readonly call: (event: CallEnd) => void;
  /** Answers GET/HEAD /metrics (Prometheus text); false (nothing written) for any other path. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

/** `names`: the config's declared tools and connections, the only label values besides "other". */
export function createMetrics(names: { readonly tools: Iterable<string>; readonly connections: Iterable<string> }): Metrics {
  const tools = new Set(names.tools);
  const connections = new Set(names.connections);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const calls = new Counter({
    name: 'drawbridge_calls_total',
    help: 'Tool calls that ended, by tool, connection, policy decision (none: ended before one) and status.',
    labelNames: ['tool', 'connection', 'decision', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'drawbridge_call_duration_seconds',
    help: 'Time a call spent in each stage (parse, decide, approval, journal, execute, mask), in all (total), and added by the gateway (added).',
    labelNames: ['tool', 'stage'] as const,
    // From a parsed statement (ms) to a human approval (minutes).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const masked = new Counter({
    name: 'drawbridge_masked_values_total',
    help: 'Values masking replaced in answers, by tool.',
    labelNames: ['tool'] as const,
    registers: [registry],
  });

  const call = (event: CallEnd): void => {
    const tool = event.tool !== null && tools.has(event.tool) ? event.tool : 'other';
    const connection = event.connection !== null && connections.has(event.connection) ? event.connection : 'other';
    calls.inc({ tool, connection, decision: event.decision?.effect ?? 'none', status: event.status });
    const totals = stageTotals(event.stages);
    for (const stage of CALL_STAGES) {
      const ms = totals[stage];
      if (ms !== undefined) duration.observe({ tool, stage }, ms / 1000);
    }
    duration.observe({ tool, stage: 'total' }, event.durationMs / 1000);
    // What the gateway itself added to the call: everything but the backend's work and the wait for a human.
    const added = event.durationMs - (totals.execute ?? 0) - (totals.approval ?? 0);
    duration.observe({ tool, stage: 'added' }, Math.max(0, added) / 1000);
    // Counted even at zero, so the series exists for every tool that was called.
    masked.inc({ tool }, event.masked);
  };

  return {
    registry,
    call,
    async serve(req, res, url) {
      if (url.pathname !== METRICS_PATH) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return true;
      }
      const body = await registry.metrics();
      res.writeHead(200, { 'Content-Type': registry.contentType, 'Content-Length': String(Buffer.byteLength(body)), 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
}
