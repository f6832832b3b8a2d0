// OpenTelemetry traces of the gateway, fed by the call-end event like the log and the metrics:
// one SERVER span per call, parented on the caller's W3C trace context when it sent one (the
// request's _meta or its HTTP headers; else a new trace), with one child span per stage at the
// stage's real offsets (parse, decide, approval, journal ×2, execute, mask). Exported in batches
// over OTLP/HTTP (JSON) by a TracerProvider of this gateway's own, never the global one, so
// nothing else in the process (a library's instrumentation) exports through it or into it.
// Attributes are names, decisions, counts and the call id that links the span to the journal:
// never SQL text, arguments, data, subjects, tokens or a fault's message (the event's
// faultMessage and subject are deliberately not read). Exporting happens off the call's path:
// the processor queues finished spans (bounded, dropping beyond) and a failing collector is
// reported on the operator's log once per outage, never to a call.

import { ROOT_CONTEXT, SpanKind, SpanStatusCode, createTraceState, trace, type Attributes, type Context, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from '../config/schema.js';
import type { CallEnd } from '../pipeline/call-end.js';

export interface Tracing {
  /** The call-end observer: subscribe it with gateway.onCallEnd(tracing.call). */
  readonly call: (event: CallEnd) => void;
  /** Exports the spans still queued and stops; gives up after SHUTDOWN_MS (a collector that is down never holds the exit). */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  readonly config: TracingConfig;
  /** tracing.headers, resolved (serve resolves the references when it starts). */
  readonly headers: Readonly<Record<string, string>>;
  /** service.version of the resource. */
  readonly version: string;
  /** The operator's log: an export that fails (once per outage) and the first success after it. */
  readonly report?: (level: 'warn' | 'info', message: string) => void;
  /** The batch's schedule; the SDK's defaults (5 s) when absent. */
  readonly scheduledDelayMillis?: number;
}

/** How long shutdown waits for the last export. */
const SHUTDOWN_MS = 5_000;
/** One export's deadline, the exporter's and the processor's. */
const EXPORT_TIMEOUT_MS = 10_000;
/** ExportResultCode.SUCCESS of @opentelemetry/core (a transitive package this file does not import). */
const EXPORT_SUCCESS = 0;

export const CALL_SPAN_PREFIX = 'tools/call';

export function createTracing(options: TracingOptions): Tracing {
  const { config } = options;
  const exporter = reporting(
    new OTLPTraceExporter({ url: config.endpoint, headers: { ...options.headers }, timeoutMillis: EXPORT_TIMEOUT_MS }),
    options.report ?? (() => undefined),
  );
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName, 'service.version': options.version }),
    // A caller's context decides for its own calls (its sampled flag); sample_ratio applies to calls that start a trace.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor(exporter, {
        exportTimeoutMillis: EXPORT_TIMEOUT_MS,
        ...(options.scheduledDelayMillis === undefined ? {} : { scheduledDelayMillis: options.scheduledDelayMillis }),
      }),
    ],
  });
  const tracer = provider.getTracer('drawbridge', options.version);
  let stopped: Promise<void> | null = null;
  return {
    call: (event) => {
      if (stopped === null) emit(tracer, event);
    },
    shutdown() {
      stopped ??= new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, SHUTDOWN_MS);
        timer.unref();
        provider.shutdown().then(
          () => {
            clearTimeout(timer);
            resolve();
          },
          () => {
            clearTimeout(timer);
            resolve();
          },
        );
      });
      return stopped;
    },
  };
}

/** The caller's context as the call span's parent (a remote span), or the root: the call starts a trace. */
function parentOf(event: CallEnd): Context {
  const caller = event.trace;
  if (caller === null) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: caller.traceId,
    spanId: caller.parentSpanId,
    traceFlags: caller.flags,
    isRemote: true,
    ...(caller.state === null ? {} : { traceState: createTraceState(caller.state) }),
  });
}

/** The call span's attributes: only what the list in the header allows, absent values left out. */
export function callAttributes(event: CallEnd): Attributes {
  const attributes: Attributes = {
    'mcp.method.name': 'tools/call',
    'gen_ai.operation.name': 'execute_tool',
    'drawbridge.call_id': event.callId,
    'drawbridge.status': event.status,
    'drawbridge.masked': event.masked,
  };
  const put = (key: string, value: string | number | null): void => {
    if (value !== null) attributes[key] = value;
  };
  put('gen_ai.tool.name', event.tool);
  put('drawbridge.connection', event.connection);
  put('drawbridge.operation', event.operation);
  put('drawbridge.access', event.access);
  put('drawbridge.decision', event.decision?.effect ?? null);
  put('drawbridge.rule', event.decision?.rule ?? null);
  put('drawbridge.clearance', event.clearance);
  put('drawbridge.error.code', event.error?.code ?? null);
  if (event.status === 'error') put('error.type', event.error?.code ?? 'error');
  put('drawbridge.rows', event.rows);
  put('drawbridge.affected_rows', event.affectedRows);
  return attributes;
}

function emit(tracer: Tracer, event: CallEnd): void {
  // The tool's name only when the config declares it (the event has null otherwise): an agent's made-up name is its text.
  const name = event.tool === null ? CALL_SPAN_PREFIX : `${CALL_SPAN_PREFIX} ${event.tool}`;
  const start = event.startedAtMs;
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, startTime: start, attributes: callAttributes(event) }, parentOf(event));
  if (span.isRecording()) {
    const within = trace.setSpan(ROOT_CONTEXT, span);
    for (const stage of event.stages) {
      const at = start + stage.startMs;
      tracer
        .startSpan(`drawbridge.${stage.stage}`, { kind: SpanKind.INTERNAL, startTime: at, attributes: { 'drawbridge.stage': stage.stage } }, within)
        .end(at + stage.durationMs);
    }
    // A fault or a failed execution is an error of the call; a refusal (deny, approval pending) is the gateway working.
    if (event.status === 'error') span.setStatus({ code: SpanStatusCode.ERROR, message: event.error?.code ?? 'error' });
  }
  span.end(start + event.durationMs);
}

/** The exporter, reporting an outage once (and its end) on the operator's log; the result goes on to the processor unchanged. */
function reporting(inner: SpanExporter, report: (level: 'warn' | 'info', message: string) => void): SpanExporter {
  let failing = false;
  return {
    export(spans: ReadableSpan[], done) {
      inner.export(spans, (result) => {
        try {
          if (result.code !== EXPORT_SUCCESS && !failing) {
            failing = true;
            const why = result.error ? `${result.error.name}: ${result.error.message}`.replace(/[\r\n]+/g, ' ').slice(0, 500) : 'failed';
            report('warn', `traces not exported (${spans.length} span(s) dropped): ${why}; calls are unaffected`);
          } else if (result.code === EXPORT_SUCCESS && failing) {
            failing = false;
            report('info', 'traces exported again');
          }
        } catch {
          // The log's own failure is not the exporter's.
        }
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}
