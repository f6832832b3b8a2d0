// Pattern matching used by policy and masking rules. Pure.
// Plain globs (`*`, `?`) for tools, connections and subjects; qualified-name
// globs for tables, columns and functions, where `*` stays inside one segment
// and a pattern of k segments matches the last k segments of the name.

const cache = new Map<string, RegExp>();

function compile(pattern: string, star: string): RegExp {
  const key = `${star}\u0000${pattern}`;
  let re = cache.get(key);
  if (!re) {
    const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, star).replace(/\?/g, star === '.*' ? '.' : '[^.]');
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
