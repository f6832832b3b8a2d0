// Turns what the transport received (status, headers, body bytes) into the
// backend's TabularResult, masking what only the HTTP backend can recognise
// before the generic mask stage runs its detectors over every text cell:
// credential-bearing response headers are removed, the credential the gateway
// injected is scrubbed wherever the server echoed it, JSON bodies are
// field-masked by the connection's `mask_fields` selectors, and binary bodies
// (which no detector can read) are refused or reduced to size and sha256.
// Pure, synchronous, and iterative over hostile bodies (no recursion).

import { createHash } from 'node:crypto';
import { DrawbridgeError, defineErrorCodes } from '../../errors.js';
import type { Cell, ColumnInfo, TabularResult } from '../backend.js';
import { decodeCut } from '../shared/utf8.js';
import { maskFields, type FieldPath } from './jsonpath.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'http.response_binary': true;
    'http.response_unmaskable': true;
  }
}

export const HTTP_RESPONSE_ERRORS = defineErrorCodes({
  'http.response_binary': {
    kind: 'refusal',
    hint:
      'Binary content cannot be masked, so this connection does not return it. Ask for a textual representation ' +
      '(an Accept header for JSON or text, another endpoint), or ask the operator to set `binary: digest` on the connection ' +
      'to receive its size and sha256 instead.',
  },
  'http.response_unmaskable': {
    kind: 'refusal',
    hint:
      'The connection masks JSON fields, and this body could not be parsed as JSON (cut at the size limit, or malformed), ' +
      'so its fields cannot be masked. Ask for less (query parameters that page, filter or select fields) or ask the operator ' +
      'to raise `max_response_bytes`.',
  },
});

/** What the transport hands over: the response as received, the body capped at the connection's limit. */
export interface TransportResponse {
  readonly status: number;
  readonly statusText: string;
  /** In the order received, names as the transport gives them (fetch: lower case); repeated headers are repeated entries. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>;
  readonly body: Uint8Array;
  /** The body was cut at `maxResponseBytes`. */
  readonly truncated: boolean;
  readonly finalUrl: string;
  /** Same-origin redirects followed: always 0 from the http backend, which answers a 3xx instead (final_path is then null). */
  readonly redirects: number;
}

/** What a binary body becomes: a refusal, or its size and sha256 only. */
export type BinaryHandling = 'refuse' | 'digest';

export interface ResponseShaping {
  /** The request's method, for the command tag (`GET 200`). */
  readonly method: string;
  /** The connection's parsed `mask_fields` (jsonpath.ts parseFieldPaths). */
  readonly maskFields: readonly FieldPath[];
  readonly binary: BinaryHandling;
  /** The connection's response cap, reported when the body was cut. */
  readonly maxResponseBytes: number;
  /**
   * Every form the injected credential travels in (the token, the API key, the
   * basic-auth password and its base64 `user:password`): scrubbed from every cell
   * in case the server echoes the request back. Empty strings are ignored.
   */
  readonly credentials: readonly string[];
}

/**
 * Response headers whose values are credentials or session state: the value is
 * replaced by `[removed]`, the name stays (the agent may need to know a cookie
 * was set, never its value). Everything else is kept — rate limits, pagination
 * `link`, `etag`, `retry-after`, `location` are what agents act on — and is
 * scanned by the detectors like the body.
 */
const REMOVED_HEADERS: ReadonlySet<string> = new Set([
  'set-cookie',
  'set-cookie2',
  'cookie',
  'authorization',
  'proxy-authorization',
  'www-authenticate',
  'proxy-authenticate',
  'authentication-info',
  'proxy-authentication-info',
]);

/**
 * Header names that exist only to carry a credential (x-auth-token, x-api-key,
 * x-amz-security-token, x-session-id, …), by whole word so that rate-limit
 * headers counting tokens (x-ratelimit-remaining-tokens) stay.
 */
const CREDENTIAL_WORDS: ReadonlySet<string> = new Set(['token', 'secret', 'password', 'passwd', 'credential', 'credentials', 'session', 'sessionid', 'apikey']);
const isCredentialHeader = (name: string): boolean => {
  const words = name.toLowerCase().split(/[-_]/);
  return words.some((w, i) => CREDENTIAL_WORDS.has(w) || (w === 'key' && (words[i - 1] === 'api' || words[i - 1] === 'access')));
};

export const REMOVED = '[removed]';
const CREDENTIAL_MARKER = '[masked:credential]';

/** Field-mask targets of this module besides the selectors themselves. */
const HEADER_TARGET = 'response-header';
const CREDENTIAL_TARGET = 'credential';

/** The start of a JSON object or array (a byte-order mark allowed): `{"`, `{}`, `[{`, `[[`, `["`, `[]`. */
const JSON_START = /^\uFEFF?\s*(?:\{\s*["}]|\[\s*[[{"\]])/;

/** Deeper JSON is printed compact: indentation would grow with the square of the depth. */
const MAX_PRETTY_DEPTH = 64;

const COLUMNS: readonly ColumnInfo[] = [
  { name: 'status', type: 'int4', sources: [] },
  { name: 'status_text', type: 'text', sources: [] },
  { name: 'content_type', type: 'text', sources: [] },
  { name: 'final_path', type: 'text', sources: [] },
  { name: 'headers', type: 'document', sources: [] },
  { name: 'body', type: 'document', sources: [] },
];

type BodyKind = 'json' | 'text' | 'binary';

interface MediaType {
  /** Lower case, without parameters; '' when the response has no Content-Type. */
  readonly essence: string;
  readonly charset: string | null;
}

/** type/subtype as RFC 9110 spells them (token characters). */
const MEDIA_TYPE = /^[a-z0-9!#$%&'*+.^_`|~-]{1,127}\/[a-z0-9!#$%&'*+.^_`|~-]{1,127}$/;

function mediaTypeOf(headers: TransportResponse['headers']): MediaType {
  const raw = headers.find(([name]) => name.toLowerCase() === 'content-type')?.[1] ?? '';
  const [essence = '', ...params] = raw.split(';');
  let charset: string | null = null;
  for (const param of params) {
    const [key = '', value = ''] = param.split('=');
    if (key.trim().toLowerCase() === 'charset') charset = value.trim().replace(/^"(.*)"$/, '$1') || null;
  }
  const type = essence.trim().toLowerCase();
  // A malformed value counts as none (the body is sniffed): only a well-formed type reaches the answer and error text.
  return MEDIA_TYPE.test(type) ? { essence: type, charset } : { essence: '', charset: null };
}

/** Textual types besides text/*, JSON and XML: what detectors can read. */
const TEXT_TYPES: ReadonlySet<string> = new Set([
  'application/xml',
  'application/javascript',
  'application/ecmascript',
  'application/yaml',
  'application/x-yaml',
  'application/x-ndjson',
  'application/x-www-form-urlencoded',
  'application/graphql',
]);

function kindOf(type: MediaType, body: Uint8Array): BodyKind {
  const t = type.essence;
  if (t === 'application/json' || t === 'text/json' || t.endsWith('+json')) return 'json';
  if (t.startsWith('text/') || t.endsWith('+xml') || TEXT_TYPES.has(t)) return 'text';
  if (t === '' && looksLikeText(body)) return 'text';
  return 'binary';
}

/** No Content-Type: text only when it is valid UTF-8 without control characters other than whitespace. */
function looksLikeText(body: Uint8Array): boolean {
  if (body.length === 0) return true;
  for (const byte of body) if (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(body);
    return true;
  } catch {
    return false;
  }
}

/** The body as text in its declared charset (UTF-8 when none or unknown), with what the agent should know about the decoding. */
function decodeText(body: Uint8Array, charset: string | null, cut: boolean, notices: string[]): string {
  const label = charset?.toLowerCase() ?? 'utf-8';
  if (label !== 'utf-8' && label !== 'utf8') {
    try {
      return new TextDecoder(label).decode(body);
    } catch {
      notices.push(`the declared charset ${JSON.stringify(charset)} is not supported: the body was decoded as UTF-8`);
    }
  }
  const text = decodeCut([body], cut);
  if (text.includes('\uFFFD') && !validUtf8(body, cut)) notices.push('the body is not valid UTF-8: the invalid bytes are shown as U+FFFD');
  return text;
}

/** Whether `body` is UTF-8 (when `cut`, but for an incomplete last character). */
function validUtf8(body: Uint8Array, cut: boolean): boolean {
  for (let drop = 0; drop <= (cut ? 3 : 0) && drop <= body.length; drop++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(0, body.length - drop));
      return true;
    } catch {
      // try without one more byte of a cut character
    }
  }
  return false;
}

/** How deep the document nests, and how many integers it holds beyond 2^53 (JSON.parse rounds them). Iterative. */
function measure(value: unknown): { depth: number; unsafe: number } {
  let depth = 0;
  let unsafe = 0;
  // Two parallel stacks: no tuple allocated per value.
  const nodes: unknown[] = [value];
  const levels: number[] = [0];
  while (nodes.length > 0) {
    const node = nodes.pop();
    const level = levels.pop() ?? 0;
    if (typeof node === 'number') {
      if (Number.isInteger(node) && !Number.isSafeInteger(node)) unsafe++;
      continue;
    }
    if (typeof node !== 'object' || node === null) continue;
    if (level + 1 > depth) depth = level + 1;
    const children: readonly unknown[] = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' || typeof child === 'number') {
        nodes.push(child);
        levels.push(level + 1);
      }
    }
  }
  return { depth, unsafe };
}

type Frame =
  | { readonly kind: 'array'; readonly items: readonly unknown[]; i: number }
  | { readonly kind: 'object'; readonly object: Readonly<Record<string, unknown>>; readonly keys: readonly string[]; i: number };

/** JSON text of a parsed document, two-space indented (compact when `pretty` is false). Iterative: any depth. */
export function renderJson(value: unknown, pretty: boolean): string {
  // One growing string (V8 concatenates into ropes cheaply) and one indentation string per depth.
  let out = '';
  const stack: Frame[] = [];
  const indents: string[] = [''];
  const newline = (depth: number): string => {
    if (!pretty) return '';
    let indent = indents[depth];
    if (indent === undefined) indents[depth] = indent = '  '.repeat(depth);
    return `\n${indent}`;
  };
  const write = (node: unknown) => {
    if (Array.isArray(node)) {
      if (node.length === 0) out += '[]';
      else {
        out += '[';
        stack.push({ kind: 'array', items: node, i: 0 });
      }
    } else if (typeof node === 'object' && node !== null) {
      const object = node as Readonly<Record<string, unknown>>;
      const keys = Object.keys(object);
      if (keys.length === 0) out += '{}';
      else {
        out += '{';
        stack.push({ kind: 'object', object, keys, i: 0 });
      }
    } else {
      out += JSON.stringify(node) ?? 'null';
    }
  };
  write(value);
  while (stack.length > 0) {
    const frame = stack[stack.length - 1];
    if (!frame) break;
    const length = frame.kind === 'array' ? frame.items.length : frame.keys.length;
    if (frame.i >= length) {
      stack.pop();
      out += newline(stack.length) + (frame.kind === 'array' ? ']' : '}');
      continue;
    }
    out += (frame.i > 0 ? ',' : '') + newline(stack.length);
    let child: unknown;
    if (frame.kind === 'array') child = frame.items[frame.i];
    else {
      const key = frame.keys[frame.i] ?? '';
      out += JSON.stringify(key) + (pretty ? ': ' : ':');
      child = frame.object[key];
    }
    frame.i++;
    write(child);
  }
  return out;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (error) {
    // Never V8's message itself: for short bodies it quotes the text ('"{"a":tru secret}" is not valid JSON').
    const position = error instanceof Error ? /at position (\d+)/.exec(error.message)?.[1] : undefined;
    return { ok: false, reason: position === undefined ? 'a syntax error' : `a syntax error at character ${position}` };
  }
}

/** Every spelling of each credential a response may carry it in: as is, JSON-escaped (also with `\/`), percent-encoded. */
function credentialForms(credentials: readonly string[]): string[] {
  const forms = new Set<string>();
  for (const c of credentials) {
    if (c.length === 0) continue;
    const json = JSON.stringify(c).slice(1, -1);
    for (const form of [c, json, json.replaceAll('/', '\\/'), encodeURIComponent(c)]) forms.add(form);
  }
  // Longest first, so a form containing another is replaced whole.
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * The result an agent reads: one row — status, status text, content type, the
 * path a redirect ended at, the headers as `name: value` lines and the body
 * (JSON pretty-printed after field masking, text as received, binary as size
 * and sha256) — with every mask this module applied counted in `fieldMasks`.
 * Throws `http.response_binary` (binary body, `binary: refuse`) and
 * `http.response_unmaskable` (mask_fields configured, JSON that cannot be parsed).
 */
export function shapeResponse(response: TransportResponse, shaping: ResponseShaping): TabularResult {
  const notices: string[] = [];
  const fieldMasks = new Map<string, number>();
  const counted = (target: string, n: number) => {
    if (n > 0) fieldMasks.set(target, (fieldMasks.get(target) ?? 0) + n);
  };
  const forms = credentialForms(shaping.credentials);
  const scrub = (text: string): string => {
    let out = text;
    for (const form of forms) {
      if (!out.includes(form)) continue;
      const parts = out.split(form);
      counted(CREDENTIAL_TARGET, parts.length - 1);
      out = parts.join(CREDENTIAL_MARKER);
    }
    return out;
  };

  const type = mediaTypeOf(response.headers);
  const body = response.body;
  const kind = body.length === 0 ? 'text' : kindOf(type, body);
  let bodyText: string;
  if (kind === 'binary') {
    const described = type.essence === '' ? 'no content type' : type.essence;
    if (shaping.binary === 'refuse') {
      throw new DrawbridgeError(
        'http.response_binary',
        `The response (HTTP ${response.status}) is binary (${described}, ${body.length} bytes` +
          `${response.truncated ? ' received before the size limit' : ''}) and was not returned.`,
      );
    }
    const digest = createHash('sha256').update(body).digest('hex');
    bodyText =
      `[binary body not shown: ${described}, ${body.length} bytes, sha256 ${digest}` +
      `${response.truncated ? ' (of the bytes received before the size limit)' : ''}]`;
  } else {
    bodyText = shapeText(kind, type, response, shaping, notices, counted);
  }

  const headerLines = response.headers.map(([name, value]) => {
    if (REMOVED_HEADERS.has(name.toLowerCase()) || isCredentialHeader(name)) {
      counted(HEADER_TARGET, 1);
      return `${name}: ${REMOVED}`;
    }
    return `${name}: ${value}`;
  });

  const row: Cell[] = [
    response.status,
    scrub(response.statusText),
    type.essence === '' ? null : scrub(type.essence),
    response.redirects > 0 ? scrub(pathOf(response.finalUrl)) : null,
    scrub(headerLines.join('\n')),
    scrub(bodyText),
  ];
  const truncated = response.truncated
    ? {
        reason: 'bytes' as const,
        limit: shaping.maxResponseBytes,
        hint: 'ask for less: query parameters that page, filter or select fields (limit, page, fields), or a Range header where the API supports it',
      }
    : null;
  return {
    columns: COLUMNS,
    rows: [row],
    command: `${shaping.method.toUpperCase()} ${response.status}`,
    affectedRows: null,
    truncated,
    notices: notices.map(scrub),
    bytes: body.length,
    fieldMasks: [...fieldMasks].map(([target, count]) => ({ target, count })),
  };
}

/** The path (and query) a redirect chain ended at, were one followed (the http backend follows none); the origin is the connection's own. */
function pathOf(url: string): string {
  try {
    const parsed = new URL(url);
    return parsed.pathname + parsed.search;
  } catch {
    return url;
  }
}

/** A textual body: JSON parsed and field-masked where the connection asks for it, else the text as received. */
function shapeText(
  kind: 'json' | 'text',
  type: MediaType,
  response: TransportResponse,
  shaping: ResponseShaping,
  notices: string[],
  counted: (target: string, n: number) => void,
): string {
  // RFC 8259: JSON is UTF-8 whatever the label says.
  const text = decodeText(response.body, kind === 'json' ? null : type.charset, response.truncated, notices);
  const fields = shaping.maskFields;
  if (fields.length === 0) {
    // Nothing to mask by field: the body exactly as received (no re-serialization that
    // would reorder keys or round big numbers); the detectors still scan all of it.
    if (kind === 'json' && response.truncated) notices.push(`the JSON body was cut at ${shaping.maxResponseBytes} bytes: it is incomplete`);
    return text;
  }
  // With field rules, a body that looks like a JSON object or array is treated as JSON
  // whatever its label: a server labelling JSON text/plain must not get around them.
  // (A log line's "[2026-…" or "[INFO]" does not look like one: no quote or bracket follows.)
  if (kind === 'text' && !JSON_START.test(text)) return text;
  const label = type.essence === '' ? 'without a content type' : type.essence;
  if (response.truncated) {
    throw new DrawbridgeError(
      'http.response_unmaskable',
      `The JSON body (HTTP ${response.status}, ${label}) was cut at ${shaping.maxResponseBytes} bytes, so its fields cannot be masked; ` +
        'it was not returned.',
    );
  }
  const parsed = parseJson(text.replace(/^\uFEFF/, ''));
  if (!parsed.ok) {
    throw new DrawbridgeError(
      'http.response_unmaskable',
      `The body (HTTP ${response.status}, ${label}) is not valid JSON (${parsed.reason}), so its fields cannot be masked; it was not returned.`,
    );
  }
  const masked = maskFields(parsed.value, fields);
  // Nothing selected: the body exactly as received (see above).
  if (masked.counts.length === 0) return text;
  if (kind === 'text') notices.push(`the body is labelled ${label} but is JSON: the field masks were applied`);
  for (const c of masked.counts) counted(c.target, c.count);
  const { depth, unsafe } = measure(masked.value);
  if (unsafe > 0) notices.push(`${unsafe} integer${unsafe === 1 ? '' : 's'} beyond 2^53 may be shown rounded (the body was re-serialized after masking)`);
  return renderJson(masked.value, depth <= MAX_PRETTY_DEPTH);
}
