// The Kubernetes backend's policy vocabulary: its match keys (`resources:`,
// `namespaces:`, `names:`) and their matcher, and how `policy explain` shows a
// kubectl request. Pure.

import type { ExplainView, MatchOf, ParsedRequest } from '../backend.js';
import { globMatch, globsMatch, oneOrMany, type Effect } from '../../policy/match.js';
import type { KubeDetail } from './index.js';

export const KUBE_MATCH_SHAPE = {
  /** `group/resource` globs, e.g. core/secrets, apps/*, example.com/widgets; a bare name (`secrets`) matches it in any group. */
  resources: oneOrMany.optional(),
  /** Namespaces (globs); a request in all namespaces (-A) is namespace `*`. */
  namespaces: oneOrMany.optional(),
  /** Object names (globs). */
  names: oneOrMany.optional(),
};

/** `secrets` matches `core/secrets`; `apps/*` matches every resource of the apps group. */
function resourceGlob(pattern: string, key: string): boolean {
  return pattern.includes('/') ? globMatch(pattern, key) : globMatch(pattern, key.slice(key.indexOf('/') + 1));
}

/** Each key in the direction that fails safe (globsMatch): -A touches kube-system too. */
export function matchesKube(match: MatchOf<typeof KUBE_MATCH_SHAPE>, request: ParsedRequest<KubeDetail>, effect: Effect): boolean {
  if (match.resources && !globsMatch(effect, match.resources, request.resources, resourceGlob)) return false;
  if (match.namespaces && !globsMatch(effect, match.namespaces, request.detail.namespaces, globMatch)) return false;
  if (match.names && !globsMatch(effect, match.names, request.detail.names, globMatch)) return false;
  return true;
}

export const KUBE_EXPLAIN: ExplainView<KubeDetail> = {
  lines: (request) => [
    ['resources', request.resources.join(', ') || '(none)'],
    ['namespaces', request.detail.namespaces.join(', ') || '(cluster-scoped)'],
    ...(request.detail.names.length > 0 ? [['names', request.detail.names.join(', ')] as const] : []),
  ],
  facts: (request) => ({ namespaces: [...request.detail.namespaces], names: [...request.detail.names] }),
  withoutCatalog: 'resource names were not resolved through API discovery and not checked against the server',
};
