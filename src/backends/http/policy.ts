// The http_request backend's policy vocabulary: its match keys (`methods:`,
// `paths:`, `operation_ids:`) and their matcher, in the direction that fails
// safe for the rule's effect, and how `policy explain` shows a request. Pure.

import type { ExplainView, MatchOf, ParsedRequest } from '../backend.js';
import { globMatch, globsMatch, oneOrMany, type Effect } from '../../policy/match.js';
import type { HttpDetail } from './types.js';

export const HTTP_MATCH_SHAPE = {
  /** HTTP methods (GET, POST, …; case ignored). */
  methods: oneOrMany.optional(),
  /** Path globs over segments: `*` within one segment, `**` any number of whole segments; never across `/`. */
  paths: oneOrMany.optional(),
  /** operationIds of the connection's OpenAPI document (globs). */
  operation_ids: oneOrMany.optional(),
};

const segmentRegexes = new Map<string, RegExp>();

function segmentMatch(pattern: string, segment: string, ignoreCase: boolean): boolean {
  if (pattern === '*') return segment !== '';
  const key = `${ignoreCase ? 'i' : 's'}${pattern}`;
  let re = segmentRegexes.get(key);
  if (!re) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]');
    re = new RegExp(`^${body}$`, ignoreCase ? 'si' : 's');
    segmentRegexes.set(key, re);
  }
  return re.test(segment);
}

function segmentsMatch(pattern: readonly string[], path: readonly string[], ignoreCase: boolean): boolean {
  if (pattern.length === 0) return path.length === 0;
  const [head, ...rest] = pattern as [string, ...string[]];
  if (head === '**') {
    for (let skip = 0; skip <= path.length; skip++) if (segmentsMatch(rest, path.slice(skip), ignoreCase)) return true;
    return false;
  }
  return path.length > 0 && segmentMatch(head, path[0] as string, ignoreCase) && segmentsMatch(rest, path.slice(1), ignoreCase);
}

const split = (path: string): string[] => path.replace(/^\//, '').split('/');

/**
 * A `paths:` glob against the normalised path. Strictly (allow, approve) case and
 * a trailing slash count. Generously (deny) case is ignored and a trailing slash
 * is not needed, on either side, since many servers route `/Admin/` like `/admin`.
 */
export function pathMatch(generous: boolean, pattern: string, path: string): boolean {
  if (!generous) return segmentsMatch(split(pattern), split(path), false);
  const trim = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  return segmentsMatch(split(trim(pattern)), split(trim(path)), true);
}

/**
 * The operation id a request matches as: its document's (null when it has none or
 * is undocumented), or `*` before the connection's resolve matched it (an offline
 * explain), which a deny rule naming any id matches and an allow rule only by `*`.
 */
function operationIds(detail: HttpDetail): string[] {
  switch (detail.documentation.kind) {
    case 'unchecked':
      return ['*'];
    case 'documented':
      return detail.documentation.operationId === null ? [] : [detail.documentation.operationId];
    case 'no-document':
    case 'undocumented':
      return [];
  }
}

/** Each key in the direction that fails safe (globsMatch): deny when any value matches, allow only when every value does. */
export function matchesHttp(match: MatchOf<typeof HTTP_MATCH_SHAPE>, request: ParsedRequest<HttpDetail>, effect: Effect): boolean {
  const generous = effect === 'deny';
  const { method, path } = request.detail;
  if (match.methods && !match.methods.some((m) => m.toUpperCase() === method)) return false;
  if (match.paths && !globsMatch(effect, match.paths, [path], (p, v) => pathMatch(generous, p, v))) return false;
  if (match.operation_ids && !globsMatch(effect, match.operation_ids, operationIds(request.detail), globMatch)) return false;
  return true;
}

function documentationText(detail: HttpDetail): string {
  const d = detail.documentation;
  switch (d.kind) {
    case 'unchecked':
      return '(not matched against the OpenAPI document)';
    case 'no-document':
      return '(the connection has no OpenAPI document)';
    case 'undocumented':
      return '(undocumented: no operation of the OpenAPI document matches)';
    case 'documented':
      return `${d.operationId ?? '(no operationId)'} (${detail.method} ${d.template})`;
  }
}

export const HTTP_EXPLAIN: ExplainView<HttpDetail> = {
  lines: (request) => [
    ['method', request.detail.method],
    ['path', request.detail.path],
    ['operation id', documentationText(request.detail)],
  ],
  facts: (request) => {
    const d = request.detail.documentation;
    return {
      method: request.detail.method,
      path: request.detail.path,
      operationId: d.kind === 'documented' ? d.operationId : null,
      documentation: d.kind,
    };
  },
  withoutCatalog: "the path was not matched against the connection's OpenAPI document (operation ids unknown; a deny rule naming any matches)",
};
