// Pattern matching used by policy and masking rules. Pure.
// Plain globs (`*`, `?`) for tools, connections and subjects; qualified-name
// globs for tables, columns and functions, where `*` stays inside one segment
// and a pattern of k segments matches the last k segments of the name.

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
 * Where a bare program name resolves on a sane host. A program given by a path
 * elsewhere (`/tmp/x/cat`) is not the system's `cat`: an allow rule naming
 * `cat` does not allow it, and the SSH classifier never calls it read-only.
 */
export const SYSTEM_PROGRAM_DIRS: readonly string[] = ['/bin', '/usr/bin', '/sbin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];

/** True for a bare name (found on the remote PATH) or a path in a system directory. */
export function isSystemProgram(argv0: string): boolean {
  const slash = argv0.lastIndexOf('/');
  return slash < 0 || SYSTEM_PROGRAM_DIRS.includes(argv0.slice(0, slash));
}

/**
 * A `programs:` pattern against argv[0]. A pattern with a slash matches the
 * path as written (`/usr/bin/*`). A bare name matches the program's basename:
 * for a deny rule wherever it lives (`rm` denies `/tmp/x/rm` too); for allow
 * and approve only when it is the system's program (bare, or in a system
 * directory), so an uploaded `/tmp/x/cat` is not allowed by `cat`.
 */
export function programMatch(generous: boolean, pattern: string, argv0: string): boolean {
  if (pattern.includes('/')) return globMatch(pattern, argv0);
  if (!generous && !isSystemProgram(argv0)) return false;
  return globMatch(pattern, argv0.slice(argv0.lastIndexOf('/') + 1));
}

const DOT_DOT = /(^|\/)\.\.(\/|$)/;

/**
 * A `command:` pattern against one command's argv. Strictly (allow, approve),
 * the pattern's words match the argv word for word, `*` staying inside one
 * word and never matching a `..` path segment the pattern does not spell out:
 * `systemctl restart *` allows one unit, and `cat /var/log/*` does not allow
 * `cat /var/log/../../etc/shadow` nor `cat /var/log/a /etc/shadow`.
 * Generously (deny), the pattern also matches the words joined by spaces, so
 * `rm *` denies `rm -rf /`.
 */
export function commandMatch(generous: boolean, pattern: string, argv: readonly string[]): boolean {
  const words = pattern.trim().split(/\s+/);
  const wordwise =
    words.length === argv.length &&
    words.every((w, i) => {
      const value = argv[i] as string;
      if (!generous && DOT_DOT.test(value) && !w.includes('..')) return false;
      return globMatch(w, value);
    });
  return wordwise || (generous && globMatch(pattern, argv.join(' ')));
}
