// Where the audit stream delivers (journal.stream): a signed JSON webhook, or an OTLP/HTTP logs
// endpoint. A sink sends one batch of journal records and says whether the receiver acknowledged
// it (2xx); the streamer (streamer.ts) owns order, the cursor and the retries. The webhook body
// is signed like approval.notify's webhooks (util/signed-webhook.ts); the OTLP request is built
// by OpenTelemetry's own serializer (@opentelemetry/otlp-transformer, OTLP/HTTP JSON), and sent
// here rather than by the OTLP exporter because the exporter retries and queues on its own,
// while the cursor may move only once this exact batch was acknowledged. Secrets (URL, signing
// secret, header values) are resolved on every attempt, so a rotated one is picked up.

import { JsonLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { StreamSinkConfig } from '../../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../../config/secrets.js';
import type { StoredRecord } from '../../state/contract.js';
import { deliveryUrlProblem, postOnce, signedHeaders } from '../../util/signed-webhook.js';

/** A journal record as streamed: the stored record with its data parsed (a record whose data does not parse carries the stored text). */
export interface StreamRecord {
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  readonly callId: string;
  readonly data: unknown;
  readonly prevHash: string;
  readonly hash: string;
}

export function streamRecord(row: StoredRecord): StreamRecord {
  let data: unknown = row.data;
  try {
    data = JSON.parse(String(row.data));
  } catch {
    // Streamed as stored: `journal verify` is what reports a malformed record; the stream must not skip it.
  }
  return {
    seq: Number(row.seq),
    time: String(row.time),
    type: String(row.type),
    callId: String(row.callId),
    data,
    prevHash: String(row.prevHash),
    hash: String(row.hash),
  };
}

/**
 * The receiver acknowledged the batch (`warning`: it said something about it, e.g. an OTLP partial
 * success), or why not, and whether trying again soon may help (a 5xx, a timeout) or not (a 4xx, a
 * missing secret). The streamer retries either way (it never skips a record); `journal stream` stops.
 */
export type SendResult = { readonly ok: true; readonly warning: string | null } | { readonly ok: false; readonly retry: boolean; readonly error: string };

export interface Sink {
  readonly name: string;
  readonly type: StreamSinkConfig['type'];
  /** Records per request. */
  readonly batch: number;
  send(records: readonly StreamRecord[], signal: AbortSignal): Promise<SendResult>;
}

export interface SinkContext {
  readonly environment: SecretEnvironment;
  readonly clock: () => Date;
  /** Resolves when one request has waited too long (default: a real timer); injectable for virtual time. */
  readonly deadline?: (ms: number) => Promise<void>;
}

export function createSink(config: StreamSinkConfig, context: SinkContext): Sink {
  return config.type === 'webhook' ? webhookSink(config, context) : otlpSink(config, context);
}

/** A secret's value, or why it cannot be had (the message names the reference, never a value). */
function resolved(ref: Parameters<typeof resolveSecret>[0], context: SinkContext): { value: string } | { error: string } {
  try {
    return { value: resolveSecret(ref, context.environment) };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

function parseUrl(text: string): URL | { error: string } {
  try {
    return new URL(text);
  } catch {
    return { error: 'the URL it resolves to is not a URL' };
  }
}

function webhookSink(config: Extract<StreamSinkConfig, { type: 'webhook' }>, context: SinkContext): Sink {
  return {
    name: config.name,
    type: 'webhook',
    batch: config.batch,
    async send(records, signal) {
      const url = resolved(config.url, context);
      if ('error' in url) return { ok: false, retry: false, error: url.error };
      const secret = resolved(config.secret, context);
      if ('error' in secret) return { ok: false, retry: false, error: secret.error };
      const target = parseUrl(url.value);
      if (!(target instanceof URL)) return { ok: false, retry: false, error: target.error };
      const refused = deliveryUrlProblem(target);
      if (refused !== null) return { ok: false, retry: false, error: refused };
      const body = JSON.stringify({ sink: config.name, records });
      const first = records[0]?.seq ?? 0;
      const last = records[records.length - 1]?.seq ?? 0;
      const headers = {
        'content-type': 'application/json',
        'user-agent': 'drawbridge-stream',
        'x-drawbridge-event': 'journal.records',
        // The same for every attempt of this batch: a receiver may deduplicate on it (or on seq).
        'x-drawbridge-delivery': `${config.name}:${first}-${last}`,
        ...signedHeaders(secret.value, context.clock(), body),
      };
      const sent = await postOnce({
        url: target,
        headers,
        body,
        timeoutMs: config.timeoutMs,
        signal,
        ...(context.deadline ? { deadline: context.deadline } : {}),
      });
      return sent.ok ? { ok: true, warning: null } : sent;
    },
  };
}

/** Every log record of one request shares these: the gateway as the OTel resource, the journal as the scope. */
const RESOURCE = resourceFromAttributes({ 'service.name': 'drawbridge' });
const SCOPE = { name: 'drawbridge.journal' };
/** OTLP's INFO severity number. */
const SEVERITY_INFO = 9;

type OtlpLogRecords = Parameters<typeof JsonLogsSerializer.serializeRequest>[0];

/** [seconds, nanoseconds] of an ISO time (the record's), as OpenTelemetry's HrTime. */
function hrTime(iso: string): [number, number] {
  const ms = Date.parse(iso);
  const at = Number.isNaN(ms) ? 0 : ms;
  return [Math.floor(at / 1000), (at % 1000) * 1_000_000];
}

/** The OTLP/HTTP JSON body: one log record per journal record, body = the record's JSON, attributes to filter on. */
export function otlpLogsBody(records: readonly StreamRecord[]): string {
  const logs: OtlpLogRecords = records.map((r) => ({
    hrTime: hrTime(r.time),
    hrTimeObserved: hrTime(r.time),
    resource: RESOURCE,
    instrumentationScope: SCOPE,
    severityNumber: SEVERITY_INFO,
    severityText: 'INFO',
    body: JSON.stringify(r),
    attributes: { 'drawbridge.seq': r.seq, 'drawbridge.type': r.type, 'drawbridge.call_id': r.callId },
    droppedAttributesCount: 0,
  }));
  const bytes = JsonLogsSerializer.serializeRequest(logs);
  if (bytes === undefined) throw new TypeError('the OTLP serializer produced nothing');
  return new TextDecoder().decode(bytes);
}

/** What an OTLP answer says was rejected (partial success), if anything. */
function rejection(answer: Uint8Array | null): string | null {
  if (answer === null || answer.byteLength === 0) return null;
  try {
    const parsed = JSON.parse(new TextDecoder().decode(answer)) as { partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown } };
    const rejected = Number(parsed.partialSuccess?.rejectedLogRecords ?? 0);
    if (!(rejected > 0)) return null;
    const message = typeof parsed.partialSuccess?.errorMessage === 'string' ? `: ${parsed.partialSuccess.errorMessage.slice(0, 200)}` : '';
    return `the collector accepted the batch but rejected ${rejected} record(s)${message}`;
  } catch {
    return null;
  }
}

function otlpSink(config: Extract<StreamSinkConfig, { type: 'otlp' }>, context: SinkContext): Sink {
  return {
    name: config.name,
    type: 'otlp',
    batch: config.batch,
    async send(records, signal) {
      const target = parseUrl(config.endpoint);
      if (!(target instanceof URL)) return { ok: false, retry: false, error: target.error };
      const refused = deliveryUrlProblem(target);
      if (refused !== null) return { ok: false, retry: false, error: refused };
      const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'drawbridge-stream' };
      for (const [name, ref] of Object.entries(config.headers)) {
        const value = resolved(ref, context);
        if ('error' in value) return { ok: false, retry: false, error: `header ${name}: ${value.error}` };
        headers[name] = value.value;
      }
      const sent = await postOnce({
        url: target,
        headers,
        body: otlpLogsBody(records),
        timeoutMs: config.timeoutMs,
        signal,
        readAnswer: 64 * 1024,
        ...(context.deadline ? { deadline: context.deadline } : {}),
      });
      // A partial success is final (the collector will not take those records on a retry either): acknowledged, with a warning.
      return sent.ok ? { ok: true, warning: rejection(sent.body) } : sent;
    },
  };
}
