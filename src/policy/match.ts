// Pattern matching used by policy and masking rules, and by the backends'
// matchers of their own policy keys. Pure.
// Plain globs (`*`, `?`) for tools, connections and subjects; qualified-name
// globs for tables, columns and functions, where `*` stays inside one segment
// and a pattern of k segments matches the last k segments of the name; and the
// direction a list of patterns matches a list of values in, which depends on
// the rule's effect (deny: any value; allow and approve: every value).

import { z } from 'zod';

export type Effect = 'allow' | 'deny' | 'approve';

/** A string or a non-empty list of strings, as a list: how patterns are written in policy and masking rules. */
export const oneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((value) => (Array.isArray(value) ? value : [value]));

const cache = new Map<string, RegExp>();

function compile(pattern: string, star: string): RegExp {
  const key = `${star}\u0000${pattern}`;
  let re = cache.get(key);
  if (!re) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, star)
      .replace(/\?/g, star === '.*' ? '.' : '[^.]');
    re = new RegExp(`^${body}$`, 's');
    cache.set(key, re);
  }
  return re;
}

/** `*` matches any run of characters, `?` one character. */
export function globMatch(pattern: string, value: string): boolean {
  return compile(pattern, '.*').test(value);
}

export function anyGlob(patterns: readonly string[], value: string): boolean {
  return patterns.some((p) => globMatch(p, value));
}

/**
 * `customers.email` matches `public.customers.email`; `*.email` matches any table's
 * email column; `public.*` matches every table in public. `*` never crosses a dot,
 * so `public.*` does not match a column name by accident.
 */
export function qualifiedMatch(pattern: string, name: string): boolean {
  const patternSegments = pattern.split('.').length;
  const segments = name.split('.');
  if (patternSegments > segments.length) return false;
  return compile(pattern, '[^.]*').test(segments.slice(segments.length - patternSegments).join('.'));
}

export function anyQualified(patterns: readonly string[], name: string): boolean {
  return patterns.some((p) => qualifiedMatch(p, name));
}

/**
 * The generous reading of qualifiedMatch used where over-matching is the safe
 * error (deny rules): case is ignored, and a name with fewer segments than the
 * pattern (an unqualified table the catalog did not resolve, e.g. in an offline
 * explain) matches when it matches the pattern's last segments, since the
 * server's search_path may resolve it to exactly that table.
 */
export function qualifiedMayMatch(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (qualifiedMatch(p, n)) return true;
  const patternSegments = p.split('.');
  const nameSegments = n.split('.').length;
  if (nameSegments >= patternSegments.length) return false;
  return compile(patternSegments.slice(patternSegments.length - nameSegments).join('.'), '[^.]*').test(n);
}

/**
 * Plain-glob patterns against the values a request touches, in the direction that
 * fails safe. A deny rule fires when ANY value matches; an allow or approve rule
 * applies only when the request touches at least one value and EVERY value matches.
 * A request value `*` (all namespaces, or "any table" for opaque code) matches
 * every pattern of a deny rule and only the pattern `*` of an allow rule.
 */
export function globsMatch(effect: Effect, patterns: readonly string[], values: readonly string[], match: (p: string, v: string) => boolean): boolean {
  if (effect === 'deny') return values.some((v) => v === '*' || patterns.some((p) => match(p, v)));
  return values.length > 0 && values.every((v) => patterns.some((p) => (v === '*' ? p === '*' : match(p, v))));
}

/** Like globsMatch, for values that are word lists (the commands of a pipeline). */
export function listsMatch(
  effect: Effect,
  patterns: readonly string[],
  values: ReadonlyArray<readonly string[]>,
  match: (p: string, v: readonly string[]) => boolean,
): boolean {
  if (effect === 'deny') return values.some((v) => patterns.some((p) => match(p, v)));
  return values.length > 0 && values.every((v) => patterns.some((p) => match(p, v)));
}

/**
 * Qualified-name patterns against the names a request touches, in the direction that
 * fails safe: a deny rule fires when ANY touched name matches (one forbidden table
 * taints the statement), and matches generously (qualifiedMayMatch); an allow or
 * approve rule applies only when the request touches at least one name and EVERY
 * touched name matches: a rule scoped to `tables: [orders]` must not extend to a
 * table it does not list, nor to a statement that touches no table at all (e.g. a
 * write done by a volatile function).
 */
export function namesMatch(effect: Effect, patterns: readonly string[], names: readonly string[]): boolean {
  if (effect === 'deny') return names.some((n) => patterns.some((p) => qualifiedMayMatch(p, n)));
  return names.length > 0 && names.every((n) => anyQualified(patterns, n));
}
