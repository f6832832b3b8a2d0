// The caller's W3C Trace Context (https://www.w3.org/TR/trace-context/) as plain data: the
// `traceparent` and `tracestate` a client sends in a request's `_meta` (MCP, SEP-414) or as HTTP
// headers, parsed strictly. The pipeline only carries it to the call-end event, where the
// tracing observer parents the call's span on it; no tracing library is imported here.
// Anything that is not a valid context is ignored (the call starts a new trace), never refused:
// a broken header must not fail a call.

/** A caller's trace context: the trace it belongs to and the caller's span (the parent of the gateway's). */
export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** The caller's span: 16 lowercase hex digits, not all zero. */
  readonly parentSpanId: string;
  /** The trace-flags byte (bit 0: sampled). */
  readonly flags: number;
  /** The vendors' `tracestate` list as received, when it was valid; null otherwise. */
  readonly state: string | null;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;
/** tracestate keys: simple, or tenant@system (multi-tenant vendors). */
const STATE_KEY = /^(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
/** Printable ASCII except ',' and '=', not ending in a space. */
const STATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_STATE_MEMBERS = 32;
/** Longer than any valid list of 32 members could usefully be; a bound on what is kept from a caller. */
const MAX_STATE_CHARS = 8_192;

/**
 * `traceparent` per the W3C grammar: version 00 exactly 55 characters; a later version (not ff) may
 * carry more fields after a dash, which are ignored. Lowercase hex only; an all-zero trace or parent id is invalid.
 */
export function parseTraceparent(value: unknown): Omit<TraceContext, 'state'> | null {
  if (typeof value !== 'string' || value.length > 512) return null;
  const m = TRACEPARENT.exec(value);
  if (m === null) return null;
  const [version, traceId, parentSpanId, flags] = [m[1] ?? '', m[2] ?? '', m[3] ?? '', m[4] ?? ''];
  const rest = m[5];
  if (version === 'ff') return null;
  if (version === '00' && rest !== undefined) return null;
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(parentSpanId)) return null;
  return { traceId, parentSpanId, flags: Number.parseInt(flags, 16) };
}

/** `tracestate` per the W3C grammar (at most 32 members, no key twice, empty members allowed); null when invalid. */
export function parseTracestate(value: unknown): string | null {
  if (typeof value !== 'string' || value.length > MAX_STATE_CHARS) return null;
  const members = value
    .split(',')
    .map((member) => member.replace(/^[ \t]+|[ \t]+$/g, ''))
    .filter((member) => member !== '');
  if (members.length === 0 || members.length > MAX_STATE_MEMBERS) return null;
  const keys = new Set<string>();
  for (const member of members) {
    const at = member.indexOf('=');
    if (at <= 0) return null;
    const key = member.slice(0, at);
    if (!STATE_KEY.test(key) || !STATE_VALUE.test(member.slice(at + 1)) || keys.has(key)) return null;
    keys.add(key);
  }
  return members.join(',');
}

/** The context of one carrier (a `_meta` object's two keys, or a request's two headers); null without a valid traceparent. */
export function traceContextOf(traceparent: unknown, tracestate: unknown): TraceContext | null {
  const parent = parseTraceparent(traceparent);
  if (parent === null) return null;
  // An invalid tracestate is dropped on its own: the traceparent still stands (W3C, 3.3.1.1).
  return { ...parent, state: tracestate === undefined || tracestate === null ? null : parseTracestate(tracestate) };
}
