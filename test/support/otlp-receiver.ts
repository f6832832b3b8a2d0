// An in-process OTLP/HTTP traces receiver for tests and the benchmark: node:http on 127.0.0.1,
// POST /v1/traces with the JSON encoding (what @opentelemetry/exporter-trace-otlp-http sends),
// answered 200 `{}` (or a chosen status, to play a collector that fails). Keeps every payload
// as received (to search it for values that must never be exported) and the spans flattened.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export const OTLP_TRACES_PATH = '/v1/traces';

/** One span as exported, attributes flattened to their scalar values; ids as hex. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  /** OTLP StatusCode: 0 unset, 1 ok, 2 error. */
  readonly status: number;
  readonly traceState: string;
  /** The resource's attributes (service.name, …). */
  readonly resource: Readonly<Record<string, string | number | boolean>>;
}

export interface OtlpReceiver {
  /** http://127.0.0.1:PORT/v1/traces */
  readonly url: string;
  /** Every request body received, as text, in order. */
  readonly payloads: string[];
  /** The request headers of every export, in order. */
  readonly headers: Array<Record<string, string | string[] | undefined>>;
  spans(): ReceivedSpan[];
  /** What the next exports are answered with (default 200). */
  answer(status: number): void;
  close(): Promise<void>;
}

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: number | string;
  readonly doubleValue?: number;
  readonly boolValue?: boolean;
}

type OtlpAttribute = { readonly key: string; readonly value: OtlpValue };

function flatten(attributes: readonly OtlpAttribute[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of attributes ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
  }
  return out;
}

interface OtlpPayload {
  readonly resourceSpans?: ReadonlyArray<{
    readonly resource?: { readonly attributes?: readonly OtlpAttribute[] };
    readonly scopeSpans?: ReadonlyArray<{
      readonly spans?: ReadonlyArray<{
        readonly traceId: string;
        readonly spanId: string;
        readonly parentSpanId?: string;
        readonly name: string;
        readonly kind: number;
        readonly startTimeUnixNano: string | number;
        readonly endTimeUnixNano: string | number;
        readonly attributes?: readonly OtlpAttribute[];
        readonly status?: { readonly code?: number };
        readonly traceState?: string;
      }>;
    }>;
  }>;
}

export function parseOtlpJson(text: string): ReceivedSpan[] {
  const payload = JSON.parse(text) as OtlpPayload;
  return (payload.resourceSpans ?? []).flatMap((rs) => {
    const resource = flatten(rs.resource?.attributes);
    return (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId ?? '',
        name: s.name,
        kind: s.kind,
        startNs: BigInt(s.startTimeUnixNano),
        endNs: BigInt(s.endTimeUnixNano),
        attributes: flatten(s.attributes),
        status: s.status?.code ?? 0,
        traceState: s.traceState ?? '',
        resource,
      })),
    );
  });
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const payloads: string[] = [];
  const headers: Array<Record<string, string | string[] | undefined>> = [];
  let status = 200;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== OTLP_TRACES_PATH) {
        res.writeHead(404).end();
        return;
      }
      payloads.push(Buffer.concat(chunks).toString('utf8'));
      headers.push({ ...req.headers });
      res.writeHead(status, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${OTLP_TRACES_PATH}`,
    payloads,
    headers,
    spans: () => payloads.flatMap(parseOtlpJson),
    answer: (next) => {
      status = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
