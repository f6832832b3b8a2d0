// `policy explain`: the pipeline's first stages (parse → resolve → decide)
// without journaling or executing, so operators can see how a request is
// classified and which rule decides it. The catalog may be consulted (read
// only, metadata); with `offline` it is not and volatility stays unchecked.
// When the connection cannot be reached, the explanation says which one and
// why (refused, authentication failed, secret missing), and that --offline
// skips the catalog. What is shown of a request beyond the generic fields
// (tables, namespaces, hosts, …) is the backend's (BackendDefinition.explain).

import type { Backend, ParsedRequest } from '../backends/backend.js';
import { DrawbridgeError, toDrawbridgeError, type ErrorCode } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { evaluate } from '../policy/evaluate.js';
import { scopesNeeded } from '../policy/scopes.js';
import { inputSchemaFor } from './callTool.js';
import type { Gateway } from './gateway.js';

/** The request without its private detail, with the facts the backend's policy keys match (functions, namespaces, hosts, …). */
interface ExplainedRequest extends Omit<ParsedRequest, 'detail'> {
  readonly [fact: string]: unknown;
}

/** How the backend shows the request in text: labelled lines, and what a decision without its catalog did not check. */
interface RequestView {
  readonly lines: ReadonlyArray<readonly [label: string, text: string]>;
  readonly withoutCatalog: string;
}

export interface Explanation {
  readonly identity: { subject: string; groups: readonly string[]; kind: string; principal: string };
  /** The OAuth scopes a token would need for this call (identity.scopes and required_scopes); null without OIDC scopes configured. */
  readonly scopes: readonly string[] | null;
  readonly request: ExplainedRequest | null;
  readonly shown: RequestView | null;
  readonly catalog: 'consulted' | 'offline' | 'unreachable';
  /** Why the catalog was unreachable: the connection, and the error its resolve stage met. Null otherwise. */
  readonly catalogError: { readonly connection: string; readonly code: string; readonly message: string; readonly hint: string } | null;
  readonly matched: ReadonlyArray<{ name: string; effect: string }>;
  readonly decision: { effect: string; rule: string | null; message: string; code: string | null };
  readonly error: { code: string; message: string } | null;
}

export async function explain(
  gateway: Gateway,
  options: { tool: string; connection: string; input: Record<string, unknown>; identity: Identity; offline: boolean },
): Promise<Explanation> {
  const identity = { subject: options.identity.subject, groups: options.identity.groups, kind: options.identity.kind, principal: options.identity.principal };
  const tool = gateway.config.tools.get(options.tool);
  const settings = gateway.config.identity?.mode === 'oidc' ? gateway.config.identity : null;
  const scopesFor = (request: ParsedRequest): readonly string[] | null =>
    settings && (settings.scopes.length > 0 || settings.required_scopes.length > 0)
      ? scopesNeeded(request, options.identity, settings.scopes, settings.required_scopes)
      : null;
  const refused = (error: DrawbridgeError, request: ParsedRequest | null = null, catalog: Explanation['catalog'] = 'offline'): Explanation => ({
    identity,
    scopes: null,
    ...(request && tool ? view(tool.backend, request) : { request: null, shown: null }),
    catalog,
    catalogError: null,
    matched: [],
    decision: { effect: 'deny', rule: null, message: error.message, code: error.code },
    error: { code: error.code, message: error.message },
  });
  if (!tool)
    return refused(new DrawbridgeError('tool.unknown', `There is no tool named "${options.tool}" (declared: ${[...gateway.config.tools.keys()].join(', ')}).`));
  if (!tool.declaration.connections.includes(options.connection)) {
    return refused(
      new DrawbridgeError(
        'connection.unknown',
        `Tool ${options.tool} has no connection "${options.connection}" (declared: ${tool.declaration.connections.join(', ')}).`,
      ),
    );
  }
  // The same input validation as the pipeline, so explain refuses what a call would.
  const input = inputSchemaFor(tool).safeParse({ ...options.input, connection: options.connection });
  if (!input.success) {
    const problems = input.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    return refused(new DrawbridgeError('input.invalid', `Invalid arguments: ${problems}.`));
  }
  let request: ParsedRequest;
  try {
    request = tool.backend.parse(input.data as Record<string, unknown>, { tool: options.tool, connection: options.connection });
  } catch (error) {
    return refused(toDrawbridgeError(error));
  }
  let catalog: Explanation['catalog'] = 'offline';
  let catalogError: Explanation['catalogError'] = null;
  if (!options.offline) {
    try {
      request = await gateway.connection(options.connection).resolve(request);
      catalog = 'consulted';
    } catch (error) {
      const e = toDrawbridgeError(error);
      if (!CONNECTION_FAULTS.has(e.code)) return refused(e, request, 'consulted');
      catalog = 'unreachable';
      catalogError = { connection: options.connection, code: e.code, message: e.message, hint: e.hint };
    }
  }
  const decision = evaluate(request, options.identity, gateway.config.rules, gateway.clock());
  return {
    identity,
    scopes: scopesFor(request),
    ...view(tool.backend, request),
    catalog,
    catalogError,
    matched: decision.matched.map((r) => ({ name: r.name, effect: r.effect })),
    decision: { effect: decision.effect, rule: decision.rule?.name ?? null, message: decision.message, code: decision.code },
    error: null,
  };
}

/** Errors that mean the connection itself could not be used (not that the request is wrong): explain still decides, without the catalog. */
const CONNECTION_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'backend.unavailable',
  'backend.auth_failed',
  'backend.timeout',
  'config.secret_missing',
  'config.secret_invalid',
  'config.invalid',
]);

function view(backend: Backend, request: ParsedRequest): { request: ExplainedRequest; shown: RequestView } {
  const { detail: _detail, ...rest } = request;
  return {
    request: { ...backend.explain.facts(request), ...rest },
    shown: { lines: backend.explain.lines(request), withoutCatalog: backend.explain.withoutCatalog },
  };
}

export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`Identity:   ${e.identity.subject} [${e.identity.kind}, ${e.identity.principal}] groups: ${e.identity.groups.join(', ') || '(none)'}`);
  if (e.request) {
    const r = e.request;
    lines.push(`Request:    ${r.tool} on ${r.connection}`);
    lines.push(`  operation ${r.operation}   access ${r.access}`);
    for (const [label, text] of e.shown?.lines ?? []) lines.push(`  ${label.padEnd(9)} ${text}`);
    lines.push(`  because   ${r.reasons.join('; ')}`);
    const unchecked = `${e.shown?.withoutCatalog ?? 'the request was not checked against the server'} — the live decision may differ`;
    if (e.catalog === 'unreachable' && e.catalogError) {
      const c = e.catalogError;
      lines.push(`  catalog   unreachable: connection ${c.connection} could not be used, so ${unchecked}`);
      lines.push(`            cause: ${c.code}: ${c.message}`);
      lines.push('            --offline skips the catalog (and this connection)');
    } else if (e.catalog !== 'consulted') lines.push(`  catalog   ${e.catalog}: ${unchecked}`);
  }
  if (e.scopes) lines.push(`Scopes:     a token needs ${e.scopes.join(' ') || '(none)'}`);
  if (e.error) lines.push(`Refused before policy: ${e.error.code}: ${e.error.message}`);
  else lines.push(`Matched:    ${e.matched.map((m) => `${m.name} (${m.effect})`).join(', ') || '(no rule)'}`);
  lines.push(`Decision:   ${e.decision.effect.toUpperCase()}${e.decision.rule ? ` by rule ${e.decision.rule}` : ''} — ${e.decision.message}`);
  return `${lines.join('\n')}\n`;
}
