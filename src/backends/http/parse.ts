// Pure parsing of an http_request call into the one request every later stage
// sees: the method from a fixed list, the path normalised exactly as the server
// will see it (percent-decoded once, dot segments resolved, never above the
// base URL's path), query parameters and agent headers checked and encoded by
// the gateway. Everything that would let the server, or a proxy in front of
// it, see another host, path, method or credential than policy saw is refused
// here with its reason. The checks that need the connection's declaration
// (allowed_headers, the credential's and dry run's names, max_request_bytes)
// are pure functions too, for the connection's resolve to call.

import { DrawbridgeError } from '../../errors.js';
import type { ParsedRequest } from '../backend.js';
import { HTTP_ERRORS } from './errors.js';
import { documentRequest, type OpenApiDocument } from './openapi.js';
import { HTTP_METHODS, READ_METHODS, type HttpBody, type HttpDetail, type HttpDryRun, type HttpMethod } from './types.js';

export const MAX_PATH_CHARS = 2048;
export const MAX_QUERY_PARAMETERS = 64;
export const MAX_QUERY_NAME_CHARS = 256;
export const MAX_QUERY_VALUE_CHARS = 4096;
export const MAX_HEADERS = 32;
export const MAX_HEADER_VALUE_CHARS = 4096;
/** max_request_bytes when the connection sets none. */
export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;

/** Headers the agent may always send (they describe the body and the answer wanted), whatever allowed_headers says. */
export const ALWAYS_ALLOWED_HEADERS: readonly string[] = ['accept', 'content-type'];

const HOP_BY_HOP = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings'];
const CREDENTIALS = ['authorization', 'proxy-authorization', 'cookie'];
const FRAMING = ['content-length', 'expect'];
/** Headers a proxy or web framework may obey as another client address, host, path or method than the request line's. */
const REROUTING = ['forwarded', 'x-real-ip', 'x-original-url', 'x-rewrite-url', 'x-http-method-override', 'x-http-method', 'x-method-override'];

/**
 * Why a header name is the gateway's to set, or null when an agent (or an
 * operator's allowed_headers) may name it. Names are compared lower-case.
 */
export function forbiddenHeaderReason(name: string): string | null {
  const n = name.toLowerCase();
  if (n === 'host') return 'the gateway sets Host from the base URL';
  if (CREDENTIALS.includes(n)) return "credentials are the gateway's: the connection's credential is injected for you";
  if (n.startsWith('proxy-')) return 'proxy headers are not passed on';
  if (HOP_BY_HOP.includes(n)) return 'it is a hop-by-hop header';
  if (FRAMING.includes(n)) return "message framing is the gateway's";
  if (REROUTING.includes(n) || n.startsWith('x-forwarded-'))
    return 'a proxy or framework could read it as another client, host, path or method than policy saw';
  return null;
}

/** An HTTP field name (RFC 9110 token). */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function refusePath(what: string): never {
  throw new DrawbridgeError('http.path_invalid', `Refused: the path contains ${what}.`, { hint: HTTP_ERRORS['http.path_invalid'].hint });
}

/** Names the first control character in text, or null: CR and LF (header and request splitting) and NUL by name. */
function controlCharacter(text: string, allowTab = false): string | null {
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (code === 0x0d || code === 0x0a) return 'a line break (CR or LF)';
    if (code === 0) return 'a NUL character';
    // Iterating by code point leaves only unpaired surrogates in this range: no UTF-8 encodes them.
    if (code >= 0xd800 && code <= 0xdfff) return 'an unpaired UTF-16 surrogate';
    if ((code < 0x20 && !(allowTab && code === 0x09)) || (code >= 0x7f && code <= 0x9f))
      return `a control character (U+${code.toString(16).toUpperCase().padStart(4, '0')})`;
  }
  return null;
}

const DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const PERCENT_TRIPLE = /%[0-9A-Fa-f]{2}/;

/** One raw segment percent-decoded exactly once, as the server will; refuses what would decode differently downstream. */
function decodeSegment(raw: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length;) {
    if (raw[i] === '%') {
      const hex = raw.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) refusePath(`a malformed percent-escape ("${raw.slice(i, i + 3)}")`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const cp = raw.codePointAt(i) as number;
      bytes.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
      i += cp > 0xffff ? 2 : 1;
    }
  }
  let text: string;
  try {
    // fatal: overlong forms (%c0%ae for '.') and lone surrogates are errors, not replacement characters.
    text = DECODER.decode(new Uint8Array(bytes));
  } catch {
    refusePath('percent-encoded bytes that are not valid UTF-8 (e.g. an overlong %c0%ae)');
  }
  if (text.includes('/')) refusePath('an encoded slash (%2F)');
  if (text.includes('\\')) refusePath('an encoded backslash (%5C)');
  const control = controlCharacter(text);
  if (control) refusePath(`${control}, percent-encoded`);
  // A server (or a proxy before it) that decodes twice would see another path than policy: %252e%252e is ".." to it.
  if (PERCENT_TRIPLE.test(text)) refusePath('double percent-encoding (%25 followed by an escape)');
  // Zero-width and bidirectional controls make a path read (to a person, or a server that strips them) as another one.
  const invisible = /\p{Cf}/u.exec(text);
  if (invisible) refusePath(`an invisible formatting character (U+${(invisible[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')})`);
  const folded = text.normalize('NFKC');
  if (folded !== text && (folded.includes('/') || folded.includes('\\') || folded === '.' || folded === '..' || folded.includes('%'))) {
    refusePath(`a Unicode character that normalises to a slash, backslash, dot or percent sign ("${text}")`);
  }
  return text;
}

/** Characters of a decoded segment sent as they are (RFC 3986 pchar minus ';'); everything else is percent-encoded. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/%(24|26|2B|2C|3D|3A|40)/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

export interface NormalisedPath {
  /** Decoded, starting with '/'. */
  readonly path: string;
  readonly segments: readonly string[];
  /** Re-encoded by the gateway, starting with '/'. */
  readonly encodedPath: string;
}

/**
 * A path relative to the connection's base URL, normalised as the server will
 * see it. Leading `/` optional; a trailing `/` is kept (a last empty segment).
 */
export function normalisePath(raw: string): NormalisedPath {
  if (raw === '') refusePath('nothing (the path is empty; use "/" for the base URL itself)');
  if (raw.length > MAX_PATH_CHARS) refusePath(`more than ${MAX_PATH_CHARS} characters`);
  const control = controlCharacter(raw);
  if (control) refusePath(control);
  if (raw.includes('\\')) refusePath('a backslash');
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw)) refusePath('a scheme (an absolute URL); send a path relative to the base URL');
  if (raw.startsWith('//')) refusePath('a network-path reference (//host)');
  if (raw.includes('?')) refusePath('a "?" (send query parameters in `query`)');
  if (raw.includes('#')) refusePath('a fragment (#)');
  const rawSegments = (raw.startsWith('/') ? raw.slice(1) : raw).split('/');
  const stack: string[] = [];
  rawSegments.forEach((rawSegment, i) => {
    const last = i === rawSegments.length - 1;
    const segment = decodeSegment(rawSegment);
    if (segment === '' && !last) refusePath('an empty segment (//)');
    // Servlet containers read "..;x" as ".." with a path parameter.
    if (/^\.\.?;/.test(segment)) refusePath(`a dot segment with a path parameter ("${segment}")`);
    if (segment === '.' || segment === '..') {
      if (segment === '..') {
        if (stack.length === 0) refusePath('".." climbing above the base URL\'s path');
        stack.pop();
      }
      // A dot segment at the end leaves a directory: "/a/b/.." is "/a/".
      if (last) stack.push('');
      return;
    }
    stack.push(segment);
  });
  const segments = stack.length === 0 ? [''] : stack;
  return { path: `/${segments.join('/')}`, segments, encodedPath: `/${segments.map(encodeSegment).join('/')}` };
}

function refuseQuery(what: string): never {
  throw new DrawbridgeError('http.query_invalid', `Refused: ${what}.`, { hint: HTTP_ERRORS['http.query_invalid'].hint });
}

export type QueryInput = Readonly<Record<string, string | number | boolean>>;

/** Query parameters in the order given: names unique (ignoring case), sizes bounded, no control characters. */
export function parseQuery(query: QueryInput | undefined): Array<readonly [string, string]> {
  if (query === undefined) return [];
  const entries = Object.entries(query);
  if (entries.length > MAX_QUERY_PARAMETERS) refuseQuery(`more than ${MAX_QUERY_PARAMETERS} query parameters`);
  const seen = new Set<string>();
  return entries.map(([name, given]) => {
    const value = String(given);
    if (name === '') refuseQuery('a query parameter without a name');
    if (name.length > MAX_QUERY_NAME_CHARS) refuseQuery(`a query parameter name longer than ${MAX_QUERY_NAME_CHARS} characters`);
    if (value.length > MAX_QUERY_VALUE_CHARS) refuseQuery(`the value of query parameter "${name}" is longer than ${MAX_QUERY_VALUE_CHARS} characters`);
    const badName = controlCharacter(name);
    if (badName) refuseQuery(`a query parameter name contains ${badName}`);
    const badValue = controlCharacter(value);
    if (badValue) refuseQuery(`the value of query parameter "${name}" contains ${badValue}`);
    // Servers disagree on which of two values wins (and some ignore case): one value per name, so policy and server agree.
    const key = name.toLowerCase();
    if (seen.has(key)) refuseQuery(`query parameter "${name}" is given twice (names are compared ignoring case)`);
    seen.add(key);
    return [name, value] as const;
  });
}

export function encodeQuery(query: ReadonlyArray<readonly [string, string]>): string {
  return query.map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&');
}

function refuseHeader(code: 'http.header_forbidden' | 'http.header_invalid', message: string): never {
  throw new DrawbridgeError(code, message, { hint: HTTP_ERRORS[code].hint });
}

/** Agent headers: names lower-cased and unique, values one line of printable text. */
export function parseHeaders(headers: Readonly<Record<string, string>> | undefined): Array<readonly [string, string]> {
  if (headers === undefined) return [];
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) refuseHeader('http.header_invalid', `Refused: more than ${MAX_HEADERS} headers.`);
  const seen = new Set<string>();
  return entries.map(([given, value]) => {
    const nameControl = controlCharacter(given);
    if (nameControl) refuseHeader('http.header_invalid', `Refused: a header name contains ${nameControl}.`);
    if (!HEADER_NAME.test(given)) refuseHeader('http.header_invalid', `Refused: "${given}" is not a valid header name.`);
    const name = given.toLowerCase();
    const reason = forbiddenHeaderReason(name);
    if (reason) refuseHeader('http.header_forbidden', `Refused: header ${given} cannot be sent: ${reason}.`);
    if (typeof value !== 'string') throw new TypeError('header values must be strings (validated by the input schema)');
    const valueControl = controlCharacter(value, true);
    if (valueControl) refuseHeader('http.header_invalid', `Refused: the value of header ${given} contains ${valueControl}.`);
    if (/[^\t\x20-\x7e]/.test(value)) refuseHeader('http.header_invalid', `Refused: the value of header ${given} contains a non-ASCII character.`);
    if (value.length > MAX_HEADER_VALUE_CHARS)
      refuseHeader('http.header_invalid', `Refused: the value of header ${given} is longer than ${MAX_HEADER_VALUE_CHARS} characters.`);
    if (seen.has(name)) refuseHeader('http.header_invalid', `Refused: header ${given} is given twice.`);
    seen.add(name);
    return [name, value] as const;
  });
}

function refuseBody(message: string): never {
  throw new DrawbridgeError('http.body_invalid', message, { hint: HTTP_ERRORS['http.body_invalid'].hint });
}

/** A string body is sent as it is; any other JSON value is serialised. Reads carry no body. */
export function parseBody(method: HttpMethod, body: unknown): HttpBody | null {
  if (body === undefined) return null;
  if (method === 'GET' || method === 'HEAD') refuseBody(`Refused: a ${method} request carries no body.`);
  if (typeof body === 'string') return { kind: 'text', text: body, bytes: Buffer.byteLength(body) };
  const text = JSON.stringify(body);
  if (typeof text !== 'string') refuseBody('Refused: the body is not a JSON value.');
  return { kind: 'json', text, bytes: Buffer.byteLength(text) };
}

export function parseMethod(given: string): HttpMethod {
  const method = HTTP_METHODS.find((m) => m === given.toUpperCase());
  if (method === undefined || controlCharacter(given)) {
    throw new DrawbridgeError('http.method_invalid', `Refused: ${JSON.stringify(given)} is not a method the gateway sends.`, {
      hint: HTTP_ERRORS['http.method_invalid'].hint,
    });
  }
  return method;
}

/** Pure: tool arguments → request (before the connection's resolve adds what needs its declaration). */
export function parseHttpRequest(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<HttpDetail> {
  const givenMethod = input['method'];
  const givenPath = input['path'];
  if (typeof givenMethod !== 'string' || typeof givenPath !== 'string') throw new TypeError('method and path must be strings (validated by the input schema)');
  const method = parseMethod(givenMethod);
  const normalised = normalisePath(givenPath);
  const query = parseQuery(input['query'] as QueryInput | undefined);
  const headers = parseHeaders(input['headers'] as Readonly<Record<string, string>> | undefined);
  const body = parseBody(method, input['body']);
  const queryString = encodeQuery(query);
  const access = READ_METHODS.includes(method) ? 'read' : 'write';
  const detail: HttpDetail = { method, ...normalised, query, queryString, headers, body, documentation: { kind: 'unchecked' } };
  return {
    tool: context.tool,
    toolType: 'http_request',
    connection: context.connection,
    operation: method.toLowerCase(),
    access,
    resources: [normalised.path],
    reads: [],
    summary: `${method} ${normalised.encodedPath}${queryString ? `?${queryString}` : ''}`,
    reasons: [access === 'read' ? `${method} only reads` : `${method} may change data (only GET, HEAD and OPTIONS are reads)`],
    input: {
      connection: context.connection,
      method,
      path: givenPath,
      ...(input['query'] !== undefined ? { query: input['query'] } : {}),
      ...(input['headers'] !== undefined ? { headers: input['headers'] } : {}),
      ...(input['body'] !== undefined ? { body: input['body'] } : {}),
    },
    detail,
  };
}

/** What of a connection's declaration the resolve-time checks read (the connection schema's output has it). */
export interface HttpRequestRules {
  /** Lower-case names. */
  readonly allowed_headers: readonly string[];
  readonly credential: { readonly kind: string; readonly name?: string };
  readonly dry_run?: HttpDryRun | undefined;
  readonly limits: { readonly max_request_bytes?: number | undefined };
}

/**
 * Pure, at resolve: the request against its connection's declaration. Agent
 * headers must be listed in allowed_headers (or be Accept/Content-Type), and
 * may not name the credential's or the dry run's header; query parameters may
 * not name the credential's or the dry run's parameter; the body fits
 * max_request_bytes.
 */
export function checkAgainstConnection(detail: HttpDetail, rules: HttpRequestRules): void {
  const credentialHeader = rules.credential.kind === 'header' ? rules.credential.name?.toLowerCase() : undefined;
  const credentialQuery = rules.credential.kind === 'query' ? rules.credential.name?.toLowerCase() : undefined;
  const dryRunHeader = rules.dry_run?.kind === 'header' ? rules.dry_run.name.toLowerCase() : undefined;
  const dryRunQuery = rules.dry_run?.kind === 'query' ? rules.dry_run.name.toLowerCase() : undefined;
  for (const [name] of detail.headers) {
    if (name === credentialHeader) refuseHeader('http.header_forbidden', `Refused: header ${name} carries the connection's credential; the gateway sets it.`);
    if (name === dryRunHeader) refuseHeader('http.header_forbidden', `Refused: header ${name} asks for a dry run; the gateway sets it for approval previews.`);
    if (!ALWAYS_ALLOWED_HEADERS.includes(name) && !rules.allowed_headers.includes(name)) {
      const allowed = [...ALWAYS_ALLOWED_HEADERS, ...rules.allowed_headers].join(', ');
      refuseHeader('http.header_forbidden', `Refused: header ${name} is not in this connection's allowed_headers (${allowed}).`);
    }
  }
  for (const [name] of detail.query) {
    const key = name.toLowerCase();
    if (key === credentialQuery) refuseQuery(`query parameter "${name}" carries the connection's credential; the gateway sets it`);
    if (key === dryRunQuery) refuseQuery(`query parameter "${name}" asks for a dry run; the gateway sets it for approval previews`);
  }
  const limit = rules.limits.max_request_bytes ?? DEFAULT_MAX_REQUEST_BYTES;
  if (detail.body && detail.body.bytes > limit)
    refuseBody(`Refused: the body is ${detail.body.bytes} bytes, more than this connection's max_request_bytes (${limit}).`);
}

/**
 * The connection's resolve, pure: the request checked against the declaration
 * (checkAgainstConnection), then matched against its OpenAPI document, or marked
 * `no-document` when the connection has none.
 */
export function resolveHttpRequest(request: ParsedRequest<HttpDetail>, rules: HttpRequestRules, document: OpenApiDocument | null): ParsedRequest<HttpDetail> {
  checkAgainstConnection(request.detail, rules);
  return documentRequest(request, document);
}
