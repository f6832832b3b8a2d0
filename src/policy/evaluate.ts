// The decision stage: evaluate(request, identity, rules, now) → allow / deny /
// approve with the rule that decided and the operator's message. Pure.
// Order of precedence, so that adding a rule can never loosen a stricter one:
// an unclassified request is denied; any matching deny wins; then approve;
// then allow; no matching rule means deny. Within one effect the first rule
// in file order is the one reported.

import type { ParsedRequest } from '../backends/backend.js';
import type { Identity } from '../identity/identity.js';
import { anyGlob, anyQualified, commandMatch, globMatch, programMatch, qualifiedMayMatch } from './match.js';
import type { Effect, Rule } from './schema.js';

export type DecisionCode = 'policy.denied' | 'policy.no_match' | 'policy.unclassified';

export interface Decision {
  readonly effect: Effect;
  readonly rule: Rule | null;
  readonly message: string;
  /** Why a deny happened; null for allow and approve. */
  readonly code: DecisionCode | null;
  /** Every rule that matched, in file order: shown by `policy explain`. */
  readonly matched: readonly Rule[];
}

export function evaluate(request: ParsedRequest, identity: Identity, rules: readonly Rule[], _now: Date): Decision {
  if (request.access === 'unknown' || request.operation === 'unknown') {
    const why = request.reasons.length > 0 ? ` (${request.reasons.join('; ')})` : '';
    return { effect: 'deny', rule: null, code: 'policy.unclassified', matched: [], message: `The gateway could not classify this request${why}.` };
  }
  const matched = rules.filter((rule) => matches(rule, request, identity));
  for (const effect of ['deny', 'approve', 'allow'] as const) {
    const rule = matched.find((r) => r.effect === effect);
    if (rule) {
      const message = rule.message ?? defaultMessage(effect, rule);
      return { effect, rule, message, code: effect === 'deny' ? 'policy.denied' : null, matched };
    }
  }
  return {
    effect: 'deny',
    rule: null,
    code: 'policy.no_match',
    matched,
    message: `No rule allows ${request.access} access (${request.operation}) on ${request.tool}/${request.connection} for ${identity.subject}.`,
  };
}

function defaultMessage(effect: Effect, rule: Rule): string {
  if (effect === 'deny') return `Denied by rule ${rule.name}.`;
  if (effect === 'approve') return `Rule ${rule.name} requires a human approval.`;
  return `Allowed by rule ${rule.name}.`;
}

export function matches(rule: Rule, request: ParsedRequest, identity: Identity): boolean {
  const m = rule.match;
  // Some operations are allowed only by name: a rule about `echo` must not allow `echo | sh`.
  if (request.explicitOnly && rule.effect !== 'deny' && !m.operation?.includes(request.operation)) return false;
  if (m.tool && !anyGlob(m.tool, request.tool)) return false;
  if (m.connection && !anyGlob(m.connection, request.connection)) return false;
  if (m.subject && !anyGlob(m.subject, identity.subject)) return false;
  if (m.groups && !identity.groups.some((g) => m.groups?.includes(g))) return false;
  if (m.operation && !m.operation.includes(request.operation)) return false;
  if (m.access && !(m.access as readonly string[]).includes(request.access)) return false;
  if (m.tables && !namesMatch(rule.effect, m.tables, request.resources)) return false;
  if (m.functions && !namesMatch(rule.effect, m.functions, request.functions)) return false;
  if (m.resources && !globsMatch(rule.effect, m.resources, request.resources, resourceGlob)) return false;
  if (m.namespaces && !globsMatch(rule.effect, m.namespaces, request.namespaces ?? [], globMatch)) return false;
  if (m.names && !globsMatch(rule.effect, m.names, request.names ?? [], globMatch)) return false;
  if (m.hosts && !globsMatch(rule.effect, m.hosts, request.names ?? [], globMatch)) return false;
  const generous = rule.effect === 'deny';
  if (m.programs && !globsMatch(rule.effect, m.programs, request.programs ?? [], (p, v) => programMatch(generous, p, v))) return false;
  if (m.command && !listsMatch(rule.effect, m.command, request.commands ?? [], (p, argv) => commandMatch(generous, p, argv))) return false;
  return true;
}

/** Like globsMatch, for values that are word lists (the commands of a pipeline). */
function listsMatch(
  effect: Effect,
  patterns: readonly string[],
  values: ReadonlyArray<readonly string[]>,
  match: (p: string, v: readonly string[]) => boolean,
): boolean {
  if (effect === 'deny') return values.some((v) => patterns.some((p) => match(p, v)));
  return values.length > 0 && values.every((v) => patterns.some((p) => match(p, v)));
}

/** `secrets` matches `core/secrets`; `apps/*` matches every resource of the apps group. */
function resourceGlob(pattern: string, key: string): boolean {
  return pattern.includes('/') ? globMatch(pattern, key) : globMatch(pattern, key.slice(key.indexOf('/') + 1));
}

/**
 * Like namesMatch for plain globs. A request value `*` (all namespaces, or "any
 * table" for opaque code) matches every pattern of a deny rule and only the
 * pattern `*` of an allow rule: -A touches kube-system too.
 */
function globsMatch(effect: Effect, patterns: readonly string[], values: readonly string[], match: (p: string, v: string) => boolean): boolean {
  if (effect === 'deny') return values.some((v) => v === '*' || patterns.some((p) => match(p, v)));
  return values.length > 0 && values.every((v) => patterns.some((p) => (v === '*' ? p === '*' : match(p, v))));
}

/**
 * Name lists match in the direction that fails safe: a deny rule fires when ANY
 * touched name matches (one forbidden table taints the statement), and matches
 * generously (ignoring case, and an unqualified name the catalog could not
 * resolve matches the pattern's tail); an allow or approve rule applies only
 * when the request touches at least one name and EVERY touched name matches:
 * a rule scoped to `tables: [orders]` must not extend to a table it does not
 * list, nor to a statement that touches no table at all (e.g. a write done by
 * a volatile function).
 */
function namesMatch(effect: Effect, patterns: readonly string[], names: readonly string[]): boolean {
  if (effect === 'deny') return names.some((n) => patterns.some((p) => qualifiedMayMatch(p, n)));
  return names.length > 0 && names.every((n) => anyQualified(patterns, n));
}
