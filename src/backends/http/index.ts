// The HTTP backend behind the `http_request` tool: a connection is one API
// (base URL, the credential the gateway injects, limits, the networks it may
// reach, an optional OpenAPI document). This file wires the parts: parse and
// policy (parse.ts, policy.ts, openapi.ts), the pinned transport (transport.ts)
// and response shaping (response.ts). The credential is resolved from its
// secret reference here, inside the connection, and never leaves it.

import {
  defineBackend,
  type Backend,
  type BackendConnection,
  type ExecuteContext,
  type ImpactPreview,
  type ParsedRequest,
  type PreviewContext,
  type PreviewDecision,
  type ProbeContext,
  type ProbeResult,
  type TabularResult,
} from '../backend.js';
import { resolveSecret, type SecretEnvironment, type SecretRef } from '../../config/secrets.js';
import { DrawbridgeError } from '../../errors.js';
import { allowList, type NetworkAllowList } from './address.js';
import type { ResolvedCredential } from './credentials.js';
import { HTTP_ERRORS } from './errors.js';
import { parseFieldPaths, type FieldPath } from './jsonpath.js';
import { HTTP_NET_ERRORS } from './net-errors.js';
import { loadOpenApi, type OpenApiDocument } from './openapi.js';
import { encodeQuery, normalisePath, parseHttpRequest, resolveHttpRequest } from './parse.js';
import { HTTP_EXPLAIN, HTTP_MATCH_SHAPE, matchesHttp } from './policy.js';
import { HTTP_RESPONSE_ERRORS, shapeResponse } from './response.js';
import {
  describeHttpConnection,
  HTTP_DEFAULT_LIMITS,
  HTTP_EXAMPLE,
  HTTP_TOOL_DESCRIPTION,
  httpConnectionSchema,
  httpFilesOf,
  httpInputShape,
  httpSecretsOf,
  type HttpConnectionDeclaration,
} from './schema.js';
import { send, type HttpResponse, type Resolver } from './transport.js';
import { HTTP_OPERATIONS, type HttpDetail, type HttpDryRun } from './types.js';

/** The request's facts after the connection's resolve: parse's, plus how this connection asks for a dry run (previewDecision reads it). */
export type HttpRequestDetail = HttpDetail & { readonly dryRun?: HttpDryRun };

/** Answers whose Location the agent is told about (never followed by the gateway). */
const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** How much of a dry run's masked body an approver sees in the preview note. */
const PREVIEW_BODY_CHARS = 300;

/** Test seam: a resolver other than the system's (DNS rebinding tests). Never set by configuration. */
export interface HttpConnectOptions {
  readonly resolve?: Resolver;
}

/** The credential resolved from its secret references: what the transport injects, and every form it may be echoed in. */
interface Secrets {
  readonly credential: ResolvedCredential | null;
  /** An extra trust root for the API's certificate (client_certificate's `ca`). */
  readonly ca: string | undefined;
  /** For response.ts's scrubber: the token, key or password, and basic auth's `user:password` and its base64. */
  readonly forms: readonly string[];
}

function resolveCredential(c: HttpConnectionDeclaration, environment: SecretEnvironment): Secrets {
  const secret = (ref: SecretRef): string => resolveSecret(ref, environment);
  const credential = c.credential;
  switch (credential.kind) {
    case 'none':
      return { credential: null, ca: undefined, forms: [] };
    case 'bearer': {
      const token = secret(credential.token);
      return { credential: { kind: 'bearer', token }, ca: undefined, forms: [token] };
    }
    case 'basic': {
      const password = secret(credential.password);
      const pair = `${credential.username}:${password}`;
      return {
        credential: { kind: 'basic', username: credential.username, password },
        ca: undefined,
        forms: [password, pair, Buffer.from(pair, 'utf8').toString('base64')],
      };
    }
    case 'header':
    case 'query': {
      const value = secret(credential.value);
      return { credential: { kind: credential.kind, name: credential.name, value }, ca: undefined, forms: [value] };
    }
    case 'client_certificate': {
      const key = secret(credential.key);
      return {
        credential: { kind: 'client_certificate', cert: secret(credential.cert), key },
        ca: credential.ca ? secret(credential.ca) : undefined,
        forms: [key],
      };
    }
  }
}

/** The path a redirect target names, relative to the base URL's path, normalised; null when it leaves the base path or would not normalise. */
export function redirectPathWithin(basePath: string, target: URL): string | null {
  const base = basePath.replace(/\/+$/, '');
  const path = target.pathname;
  let relative: string;
  if (base === '') relative = path;
  else if (path === base) relative = '/';
  else if (path.startsWith(`${base}/`)) relative = path.slice(base.length);
  else return null;
  try {
    return normalisePath(relative).path;
  } catch {
    return null;
  }
}

/** The service refused the gateway's own credential: the operator's to fix, never the agent's. */
function authFailed(response: HttpResponse, what: string): DrawbridgeError {
  return new DrawbridgeError(
    'backend.auth_failed',
    `${what}: the service answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''}; it did not accept the connection's credential.`,
    { details: { status: response.status } },
  );
}

/**
 * The transport's faults in the catalog's words every backend shares (the contract
 * suite, `policy explain` and `check --connect` read them): unreachable is
 * backend.unavailable, out of time is backend.timeout. Everything else is the HTTP
 * backend's own code.
 */
function asBackendFault(error: unknown): unknown {
  if (!(error instanceof DrawbridgeError)) return error;
  if (error.code === 'http.unreachable') return new DrawbridgeError('backend.unavailable', error.message, { hint: error.hint, cause: error });
  if (error.code === 'http.timeout') return new DrawbridgeError('backend.timeout', error.message, { hint: error.hint, details: error.details, cause: error });
  return error;
}

class HttpConnection implements BackendConnection<HttpRequestDetail> {
  readonly name: string;
  private readonly base: URL;
  private readonly secrets: Secrets;
  private readonly document: OpenApiDocument | null;
  private readonly networks: NetworkAllowList;
  private readonly maskFields: readonly FieldPath[];
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(
    private readonly declaration: HttpConnectionDeclaration,
    environment: SecretEnvironment,
    private readonly options: HttpConnectOptions,
  ) {
    this.name = declaration.name;
    this.base = new URL(declaration.base_url);
    this.networks = allowList(declaration.networks);
    const fields = parseFieldPaths(declaration.mask_fields);
    if (!fields.ok) {
      const first = fields.problems[0];
      throw new DrawbridgeError(
        'config.invalid',
        `Connection ${declaration.name}: mask_fields ${first?.selector ?? ''} is not a field selector: ${first?.message ?? ''}.`,
      );
    }
    this.maskFields = fields.paths;
    this.timeoutMs = declaration.limits.timeout ?? HTTP_DEFAULT_LIMITS.timeout;
    this.maxResponseBytes = declaration.limits.max_response_bytes ?? HTTP_DEFAULT_LIMITS.max_response_bytes;
    // Once per connection: a document that does not load refuses the connection (config.invalid), never a request unchecked.
    this.document = declaration.openapi === undefined ? null : loadOpenApi(declaration.openapi, environment.baseDir);
    // Last: a missing secret fails the connection (config.secret_missing) without a value in any text.
    this.secrets = resolveCredential(declaration, environment);
  }

  async resolve(request: ParsedRequest<HttpRequestDetail>): Promise<ParsedRequest<HttpRequestDetail>> {
    const resolved = resolveHttpRequest(request, this.declaration, this.document);
    const dryRun = this.declaration.dry_run;
    return dryRun ? { ...resolved, detail: { ...resolved.detail, dryRun } } : resolved;
  }

  /** The URL the request goes to: the base URL's path, then the path as the gateway encoded it, then its query. */
  private urlOf(detail: HttpDetail, extraQuery: string): URL {
    const query = [detail.queryString, extraQuery].filter((q) => q !== '').join('&');
    const url = new URL(`${this.declaration.base_url}${detail.encodedPath}${query ? `?${query}` : ''}`);
    const expected = `${this.base.pathname.replace(/\/+$/, '')}${detail.encodedPath}` || '/';
    // The URL parser must not have rewritten the path (parse.ts leaves nothing it would normalise): what policy saw is what goes.
    if (url.pathname !== expected) throw new TypeError(`the URL parser rewrote ${expected} to ${url.pathname}`);
    return url;
  }

  /** Headers as sent: the connection's defaults, a content type for the body, then the agent's (resolve let through only allowed ones). */
  private headersOf(detail: HttpDetail, extra: ReadonlyArray<readonly [string, string]>): Array<readonly [string, string]> {
    const merged = new Map<string, string>(this.declaration.default_headers);
    if (detail.body && !merged.has('content-type')) {
      merged.set('content-type', detail.body.kind === 'json' ? 'application/json' : 'text/plain; charset=utf-8');
    }
    for (const [name, value] of detail.headers) merged.set(name, value);
    for (const [name, value] of extra) merged.set(name, value);
    return [...merged];
  }

  /**
   * Sends one request under the connection's rules. A redirect is never followed
   * (the transport answers the 3xx): a backend has no policy to decide the new
   * path with, so the answer tells the agent which path to call, and that call is
   * decided like any other.
   */
  private async sendRequest(detail: HttpDetail, extra: { query: string; headers: ReadonlyArray<readonly [string, string]> }, timeoutMs: number) {
    const body = detail.body ? Buffer.from(detail.body.text, 'utf8') : null;
    try {
      return await send(
        { method: detail.method, url: this.urlOf(detail, extra.query), headers: this.headersOf(detail, extra.headers), body },
        {
          timeoutMs,
          maxResponseBytes: this.maxResponseBytes,
          networks: this.networks,
          credential: this.secrets.credential,
          ...(this.secrets.ca === undefined ? {} : { ca: this.secrets.ca }),
          ...(this.options.resolve ? { resolve: this.options.resolve } : {}),
        },
      );
    } catch (error) {
      throw asBackendFault(error);
    }
  }

  /**
   * What a 3xx with a Location tells the agent: the path to call on this
   * connection when the target is the same origin and normalises inside the base
   * URL's path, else that it is not reachable here. Null for any other answer.
   */
  private redirectNotice(response: HttpResponse): string | null {
    if (!REDIRECT_STATUSES.has(response.status)) return null;
    const location = response.headers.find(([name]) => name.toLowerCase() === 'location')?.[1];
    if (location === undefined) return null;
    const notFollowed = `The service answered ${response.status} (a redirect); the gateway does not follow redirects and sent nothing to the target.`;
    let target: URL;
    try {
      target = new URL(location, response.finalUrl);
    } catch {
      return `${notFollowed} Its Location is not a valid URL.`;
    }
    const unreachable = (where: string) => `${notFollowed} The target is ${where}: it is not reachable through connection ${this.name}.`;
    const sameOrigin = target.protocol === this.base.protocol && target.host === this.base.host && target.username === '' && target.password === '';
    if (!sameOrigin) return unreachable(`another origin (${target.origin === 'null' ? `a ${target.protocol} URL` : target.origin})`);
    const basePath = this.base.pathname.replace(/\/+$/, '');
    if (basePath !== '' && target.pathname !== basePath && !target.pathname.startsWith(`${basePath}/`)) {
      return unreachable(`a path outside this API (${this.base.pathname})`);
    }
    const path = redirectPathWithin(this.base.pathname, target);
    if (path === null) return unreachable(`a path no request can name (${target.pathname} does not normalise like a request path)`);
    const query = target.search === '' ? '' : ` with the query ${JSON.stringify(target.search.slice(1))} as "query"`;
    const call = `call http_request with path ${JSON.stringify(path)}${query}`;
    return `${notFollowed} Redirected to ${target.pathname}: ${call} — policy decides it like any call.`;
  }

  private shape(detail: HttpDetail, response: HttpResponse): TabularResult {
    const shaped = shapeResponse(
      {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
        body: response.body,
        truncated: response.truncated,
        finalUrl: response.finalUrl.href,
        // Nothing is followed: final_path stays null.
        redirects: 0,
      },
      {
        method: detail.method,
        maskFields: this.maskFields,
        binary: this.declaration.binary,
        maxResponseBytes: this.maxResponseBytes,
        credentials: this.secrets.forms,
      },
    );
    const notice = this.redirectNotice(response);
    return notice === null ? shaped : { ...shaped, notices: [...shaped.notices, notice] };
  }

  async execute(request: ParsedRequest<HttpRequestDetail>, context: ExecuteContext): Promise<TabularResult> {
    const detail = request.detail;
    const timeoutMs = Math.max(1, Math.min(this.timeoutMs, context.timeLimitMs ?? Infinity));
    const response = await this.sendRequest(detail, { query: '', headers: [] }, timeoutMs);
    if (response.status === 401) throw authFailed(response, `${detail.method} ${detail.path}`);
    return this.shape(detail, response);
  }

  /**
   * The API's own dry run of a write (the connection's dry_run header or query
   * parameter): what the approver sees is its status and the start of its masked
   * body. The API, not the gateway, promises that nothing changes.
   */
  async preview(request: ParsedRequest<HttpRequestDetail>, context: PreviewContext): Promise<ImpactPreview> {
    if (request.access !== 'write') throw new TypeError(`preview of a ${request.access} request`);
    const dryRun = this.declaration.dry_run;
    if (!dryRun) throw new TypeError(`connection ${this.name} has no dry_run: previewDecision skips it`);
    const detail = request.detail;
    const extra =
      dryRun.kind === 'header'
        ? { query: '', headers: [[dryRun.name, dryRun.value] as const] }
        : { query: encodeQuery([[dryRun.name, dryRun.value]]), headers: [] };
    const response = await this.sendRequest(detail, extra, this.timeoutMs);
    if (response.status === 401) throw authFailed(response, `The dry run of ${detail.method} ${detail.path}`);
    const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
    const shaped = this.shape(detail, response);
    const masked = context.mask ? context.mask(shaped) : null;
    const body = masked ? String(masked.rows[0]?.[5] ?? '') : null;
    const line = (text: string) => text.replace(/\s+/g, ' ').trim();
    const shown =
      body === null
        ? ' (the body is withheld: no mask was given)'
        : body === ''
          ? ''
          : `: ${line(body).slice(0, PREVIEW_BODY_CHARS)}${line(body).length > PREVIEW_BODY_CHARS ? '…' : ''}`;
    return { affectedRows: null, sample: [], sampleColumns: [], note: `Dry run (${dryRun.kind} ${dryRun.name}) answered ${status}${shown}` };
  }

  /** A HEAD of the base URL with the credential, as a call would send it (address checks, TLS, the credential). */
  async probe(context: ProbeContext): Promise<ProbeResult> {
    const host = this.base.host;
    const detail: HttpDetail = {
      method: 'HEAD',
      path: '/',
      segments: [''],
      encodedPath: '',
      query: [],
      queryString: '',
      headers: [],
      body: null,
      documentation: { kind: 'unchecked' },
    };
    const response = await this.sendRequest(detail, { query: '', headers: [] }, Math.min(this.timeoutMs, context.timeoutMs));
    if (response.status === 401) throw authFailed(response, `HEAD ${this.declaration.base_url}`);
    const warnings = response.status >= 500 ? [`HEAD ${this.declaration.base_url} answered ${response.status}: the service may be failing`] : [];
    const operations = this.document ? this.document.paths.reduce((n, p) => n + p.operations.size, 0) : null;
    const documented = operations === null ? '' : `; OpenAPI ${this.document?.version ?? ''}: ${operations} operations`;
    return {
      summary: `HTTP ${response.status} from ${host} (${response.address})${documented}`,
      warnings,
      facts: { status: response.status, address: response.address, credential: this.declaration.credential.kind, operations },
    };
  }

  async close(): Promise<void> {
    // One connection per request (Connection: close): nothing is kept open.
  }
}

/** Whether an approval may send this write with the API's dry-run flag: only when the connection declares one. */
function httpPreviewDecision(request: ParsedRequest<HttpRequestDetail>): PreviewDecision {
  if (request.detail.dryRun) return { kind: 'dry-run' };
  return { kind: 'skip', note: 'This API has no dry run (no dry_run on the connection): the approver sees the exact request.' };
}

/** The backend's codes: requests refused before sending (errors.ts), the transport's (net-errors.ts), answers refused (response.ts). */
const ERRORS = { ...HTTP_ERRORS, ...HTTP_NET_ERRORS, ...HTTP_RESPONSE_ERRORS };

/** The backend, with a resolver of the tests' own: only tests build one this way (the registry's uses the system resolver). */
export function httpBackend(options: HttpConnectOptions = {}): Backend {
  return defineBackend({
    type: 'http',
    toolType: 'http_request',
    operations: HTTP_OPERATIONS,
    connectionSchema: httpConnectionSchema,
    inputShape: httpInputShape,
    toolDescription: HTTP_TOOL_DESCRIPTION,
    example: HTTP_EXAMPLE,
    describeConnection: describeHttpConnection,
    parse: (input, context): ParsedRequest<HttpRequestDetail> => parseHttpRequest(input, context),
    secretsOf: httpSecretsOf,
    filesOf: httpFilesOf,
    connect: (c, environment) => new HttpConnection(c, environment, options),
    matchShape: HTTP_MATCH_SHAPE,
    matches: matchesHttp,
    explain: HTTP_EXPLAIN,
    previewDecision: httpPreviewDecision,
    errors: ERRORS,
  });
}

export const http = httpBackend();
