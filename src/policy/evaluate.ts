// The decision stage: evaluate(request, identity, rules, now) → allow / deny /
// approve with the rule that decided and the operator's message. Pure. The
// generic match keys are decided here; a backend's keys (tables:, namespaces:,
// …) by that backend's matcher, bound to the rule when the policy was loaded.
// Order of precedence, so that adding a rule can never loosen a stricter one:
// an unclassified request is denied; any matching deny wins; then approve;
// then allow; no matching rule means deny. Within one effect the first rule
// in file order is the one reported.

import type { ParsedRequest } from '../backends/backend.js';
import type { Identity } from '../identity/identity.js';
import { anyGlob } from './match.js';
import type { Effect, Rule, RuleMatch } from './schema.js';

type DecisionCode = 'policy.denied' | 'policy.no_match' | 'policy.unclassified';

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
  return matchApplies(rule.match, rule.effect, request, identity);
}

/**
 * A rule's match (or another list's that reuses the match keys, e.g. identity.scopes) against a
 * request, in the direction `effect` says fails safe: `deny` reads the patterns generously (any
 * touched value), `allow` and `approve` strictly (every touched value).
 */
export function matchApplies(m: RuleMatch, effect: Effect, request: ParsedRequest, identity: Identity): boolean {
  // Some operations are allowed only by name: a rule about `echo` must not allow `echo | sh`.
  if (request.explicitOnly && effect !== 'deny' && !m.operation?.includes(request.operation)) return false;
  if (m.tool && !anyGlob(m.tool, request.tool)) return false;
  if (m.connection && !anyGlob(m.connection, request.connection)) return false;
  if (m.subject && !anyGlob(m.subject, identity.subject)) return false;
  if (m.groups && !identity.groups.some((g) => m.groups?.includes(g))) return false;
  if (m.operation && !m.operation.includes(request.operation)) return false;
  if (m.access && !(m.access as readonly string[]).includes(request.access)) return false;
  if (m.principal && !m.principal.includes(identity.principal)) return false;
  // The backends' own keys (tables:, namespaces:, programs:, …), each in the direction that fails safe for the effect.
  return m.backends.every((keys) => keys.matches(request, effect));
}
