// The http_request connection declaration (`type: http` in tools/*.yaml) as a
// strict zod schema, and the tool's input shape. Secrets are references
// (config/secrets.ts), resolved only inside the connection; durations and
// sizes use the config's units. Header names are lower-cased here, once, so
// every later check compares them as HTTP does.

import { z } from 'zod';
import { containsInlineCredential, secretRefSchema, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatDuration, formatSize, sizeSchema } from '../../config/units.js';
import { isLoopbackHostname } from '../../util/signed-webhook.js';
import { allowList, checkAddress, literalAddress, parseCidr } from './address.js';
import { fieldPathProblems } from './jsonpath.js';
import { DEFAULT_MAX_REQUEST_BYTES, forbiddenHeaderReason, HEADER_NAME } from './parse.js';
import type { HttpCredential, HttpDryRun } from './types.js';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore');

/** A header name the operator declares: an HTTP token, lower-cased. */
const headerName = z
  .string()
  .regex(HEADER_NAME, 'must be an HTTP header name (letters, digits, dash, …)')
  .transform((n) => n.toLowerCase());

/** A header name the agent may set, or the operator sets besides the credential: never one the gateway owns. */
const settableHeaderName = headerName.superRefine((n, ctx) => {
  const reason = forbiddenHeaderReason(n);
  if (reason) ctx.addIssue({ code: 'custom', message: `${n} cannot be declared: ${reason}` });
});

/** One line of printable ASCII: a header value or query value the operator writes. */
const plainValue = z.string().regex(/^[\x20-\x7e]*$/, 'use printable ASCII, one line');

/** A query parameter name the operator declares. */
const queryName = z.string().regex(/^[A-Za-z0-9._~-]+$/, 'use letters, digits, dot, dash, underscore or tilde');

function baseUrlProblem(text: string): string | null {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL, e.g. https://api.example.com/v1';
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHostname(url.hostname))) {
    return `must use https:// (http:// only to a loopback address); it is ${url.protocol}//${url.host}`;
  }
  if (url.username || url.password || containsInlineCredential(text)) return 'must not carry credentials: declare them under credential';
  if (url.search || url.hash || text.includes('?') || text.includes('#'))
    return 'must not have a query or fragment (a key in the query belongs under credential: { query: … })';
  return null;
}

/** `https://api.example.com/v1/` → `https://api.example.com/v1`: request paths are appended to it. */
const baseUrl = z
  .string()
  .superRefine((text, ctx) => {
    const problem = baseUrlProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: `base_url ${problem}` });
  })
  .transform((text) => new URL(text).href.replace(/\/+$/, ''));

/** An IPv4 or IPv6 network in CIDR form (a bare address is a /32 or /128), as the transport's allow-list reads it. */
const cidr = z.string().superRefine((text, ctx) => {
  if (parseCidr(text) === null) ctx.addIssue({ code: 'custom', message: `"${text}" is not a network in CIDR form, e.g. 10.0.0.0/8 or fd00::/8` });
});

/**
 * Why the base URL's own address would be refused at every call (a loopback or
 * private IP literal, or localhost, outside `networks`), or null. Names are
 * resolved per request, so only these are known when the config loads.
 */
function baseAddressProblem(baseUrl: string, networks: readonly string[]): string | null {
  let hostname: string;
  try {
    hostname = new URL(baseUrl).hostname;
  } catch {
    return null;
  }
  const literal = literalAddress(hostname);
  // localhost answers with both loopback addresses on most hosts: the transport checks every answer.
  const addresses = literal !== null ? [literal] : hostname.toLowerCase() === 'localhost' ? ['127.0.0.1', '::1'] : [];
  const list = allowList(networks.filter((n) => parseCidr(n) !== null));
  const refused = addresses.map((a) => checkAddress(a, list)).filter((v) => !v.allowed);
  if (refused.length === 0) return null;
  const needed = refused.map((v) => (v.address.includes(':') ? `${v.address}/128` : `${v.address}/32`)).join(', ');
  return `base_url's address is refused at every call: ${refused.map((v) => `${v.address} is ${v.class}`).join(', ')}; list it in networks (e.g. ${needed})`;
}

const credentialSchema = z
  .union([
    z.literal('none'),
    z.strictObject({ bearer: secretRefSchema }),
    z.strictObject({
      basic: z.strictObject({
        username: z
          .string()
          .min(1)
          .regex(/^[^:]*$/, 'a basic-auth user name has no colon'),
        password: secretRefSchema,
      }),
    }),
    z.strictObject({ header: z.strictObject({ name: settableHeaderName, value: secretRefSchema }) }),
    z.strictObject({ query: z.strictObject({ name: queryName, value: secretRefSchema }) }),
    z.strictObject({ client_certificate: z.strictObject({ cert: secretRefSchema, key: secretRefSchema, ca: secretRefSchema.optional() }) }),
  ])
  .transform((c): HttpCredential => {
    if (c === 'none') return { kind: 'none' };
    if ('bearer' in c) return { kind: 'bearer', token: c.bearer };
    if ('basic' in c) return { kind: 'basic', username: c.basic.username, password: c.basic.password };
    if ('header' in c) return { kind: 'header', name: c.header.name, value: c.header.value };
    if ('query' in c) return { kind: 'query', name: c.query.name, value: c.query.value };
    const { cert, key, ca } = c.client_certificate;
    return { kind: 'client_certificate', cert, key, ...(ca ? { ca } : {}) };
  });

const dryRunSchema = z
  .union([
    z.strictObject({ header: z.strictObject({ name: settableHeaderName, value: plainValue }) }),
    z.strictObject({ query: z.strictObject({ name: queryName, value: plainValue }) }),
  ])
  .transform((d): HttpDryRun => ('header' in d ? { kind: 'header', ...d.header } : { kind: 'query', ...d.query }));

export const httpConnectionSchema = z
  .strictObject({
    kind: z.literal('connection'),
    name,
    type: z.literal('http'),
    description: z.string().min(1),
    /** Request paths are relative to it; https, or http only to a loopback address. */
    base_url: baseUrl,
    /** What the gateway injects; omitted means none. */
    credential: credentialSchema.default({ kind: 'none' }),
    /** Sent with every request (an API version, a user agent); the agent may override one only if allowed_headers lists it. */
    default_headers: z
      .record(z.string(), plainValue)
      .default({})
      .transform((headers, ctx) => {
        const seen = new Set<string>();
        return Object.entries(headers).map(([given, value]) => {
          const n = given.toLowerCase();
          const reason = HEADER_NAME.test(given) ? forbiddenHeaderReason(n) : 'it is not an HTTP header name';
          if (reason) ctx.addIssue({ code: 'custom', path: [given], message: `${given} cannot be declared: ${reason}` });
          if (seen.has(n)) ctx.addIssue({ code: 'custom', path: [given], message: 'header names must be unique (ignoring case)' });
          seen.add(n);
          return [n, value] as const;
        });
      }),
    /** Request headers the agent may set besides Accept and Content-Type (lower-cased). */
    allowed_headers: z.array(settableHeaderName).default([]),
    limits: z
      .strictObject({
        timeout: durationSchema.optional(),
        max_request_bytes: sizeSchema.refine((n) => n <= 16 * 1024 * 1024, 'at most 16MiB').optional(),
        max_response_bytes: sizeSchema.refine((n) => n <= 64 * 1024 * 1024, 'at most 64MiB').optional(),
      })
      .default({}),
    /** Private, loopback or link-local networks this connection may reach anyway (CIDRs): the escape hatch of the address check. */
    networks: z.array(cidr).default([]),
    /** How the API is asked for a dry run, for approval previews of writes. */
    dry_run: dryRunSchema.optional(),
    /** JSONPath selectors of response fields to mask (RFC 9535's naming subset, jsonpath.ts). */
    mask_fields: z.array(z.string().min(1)).default([]),
    /** A response that cannot be masked reliably (binary): refused, or answered with its size and SHA-256 only. */
    binary: z.enum(['refuse', 'digest']).default('refuse'),
    /** An OpenAPI 3.0/3.1 document (YAML or JSON file, relative to the config directory) naming the API's operations. */
    openapi: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    // zod runs this refinement even when a field failed (and was not transformed): each field is read only when it has its parsed form.
    const defaults = Array.isArray(c.default_headers) ? c.default_headers.map(([n]) => n) : [];
    const allowed: readonly string[] = Array.isArray(c.allowed_headers) ? c.allowed_headers : [];
    const owned: Array<[string, string]> = [];
    if (c.credential?.kind === 'header') owned.push([c.credential.name, "the credential's header"]);
    if (c.dry_run?.kind === 'header') owned.push([c.dry_run.name, "the dry run's header"]);
    for (const [header, what] of owned) {
      if (allowed.includes(header)) ctx.addIssue({ code: 'custom', path: ['allowed_headers'], message: `${header} is ${what}: the agent cannot set it` });
      if (defaults.includes(header)) ctx.addIssue({ code: 'custom', path: ['default_headers'], message: `${header} is ${what}` });
    }
    if (c.credential?.kind === 'query' && c.dry_run?.kind === 'query' && c.credential.name.toLowerCase() === c.dry_run.name.toLowerCase()) {
      ctx.addIssue({ code: 'custom', path: ['dry_run'], message: "the dry run's query parameter is the credential's" });
    }
    if (Array.isArray(c.mask_fields)) {
      for (const problem of fieldPathProblems(c.mask_fields)) {
        ctx.addIssue({
          code: 'custom',
          path: ['mask_fields', c.mask_fields.indexOf(problem.selector)],
          message: `${JSON.stringify(problem.selector)} is not a field selector: ${problem.message} (at character ${problem.position})`,
        });
      }
    }
    if (typeof c.base_url === 'string' && Array.isArray(c.networks)) {
      const problem = baseAddressProblem(c.base_url, c.networks);
      if (problem) ctx.addIssue({ code: 'custom', path: ['networks'], message: problem });
    }
  });

export type HttpConnectionDeclaration = z.output<typeof httpConnectionSchema>;

/** The tool's input besides `connection`. */
export const httpInputShape = {
  method: z.string().describe('GET, HEAD or OPTIONS (reads); POST, PUT, PATCH or DELETE (writes).'),
  path: z.string().describe('Path relative to the base URL, e.g. "/customers/42". No scheme, host, query or "..": query parameters go in `query`.'),
  query: z
    .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
    .optional()
    .describe('Query parameters, one value per name; the gateway encodes them.'),
  headers: z
    .record(z.string(), z.string())
    .optional()
    .describe("Request headers the connection allows (Accept, Content-Type and the connection's allowed_headers)."),
  body: z
    .union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())])
    .optional()
    .describe('Request body for writes: a JSON object or array (sent as application/json), or text sent as it is.'),
};

/** Defaults of the limits a connection may leave unset (the transport reads the same). */
export const HTTP_DEFAULT_LIMITS = { timeout: 30_000, max_request_bytes: DEFAULT_MAX_REQUEST_BYTES, max_response_bytes: 1024 * 1024 } as const;

export const HTTP_TOOL_DESCRIPTION =
  "Call an HTTP API through the Drawbridge gateway: a method and a path relative to the API's base URL, with optional " +
  'query parameters, headers and body. The gateway adds the credentials; policy decides by method, path and ' +
  'operation; secrets in the answer are masked; every call is journaled.';

export const HTTP_EXAMPLE = { connection: 'crm', input: { method: 'GET', path: '/customers/42' } } as const;

/** The tool description's line about one connection: what it is, where, and its limits. Never a secret. */
export function describeHttpConnection(c: HttpConnectionDeclaration): string {
  const timeout = formatDuration(c.limits.timeout ?? HTTP_DEFAULT_LIMITS.timeout);
  const answer = formatSize(c.limits.max_response_bytes ?? HTTP_DEFAULT_LIMITS.max_response_bytes);
  const headers = c.allowed_headers.length > 0 ? `; headers you may set: accept, content-type, ${c.allowed_headers.join(', ')}` : '';
  return `${c.description} (HTTP: ${c.base_url}; ${timeout} per request, answers up to ${answer}${headers})`;
}

/** The secret references the connection's credential needs. */
export function httpSecretsOf(c: HttpConnectionDeclaration): readonly SecretRef[] {
  const credential = c.credential;
  switch (credential.kind) {
    case 'none':
      return [];
    case 'bearer':
      return [credential.token];
    case 'basic':
      return [credential.password];
    case 'header':
    case 'query':
      return [credential.value];
    case 'client_certificate':
      return [credential.cert, credential.key, ...(credential.ca ? [credential.ca] : [])];
  }
}

/** Files the connection reads besides secrets: its OpenAPI document (hidden from agents like secret files). */
export function httpFilesOf(c: HttpConnectionDeclaration): readonly string[] {
  return c.openapi ? [c.openapi] : [];
}
