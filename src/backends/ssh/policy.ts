// The SSH backend's policy vocabulary: its match keys (`programs:`,
// `command:`, `hosts:`) and their matcher, what counts as the system's own
// program, and how `policy explain` shows an ssh_exec request. Pure.

import type { ExplainView, MatchOf, ParsedRequest } from '../backend.js';
import { globMatch, globsMatch, listsMatch, oneOrMany, type Effect } from '../../policy/match.js';
import type { SshDetail } from './index.js';

export const SSH_MATCH_SHAPE = {
  /** Program names or absolute paths (globs). */
  programs: oneOrMany.optional(),
  /** Whole command patterns over the words, e.g. "systemctl status *". */
  command: oneOrMany.optional(),
  /** Host names of the connection (globs). */
  hosts: oneOrMany.optional(),
};

/**
 * Each key in the direction that fails safe (globsMatch, listsMatch); `programs:`
 * and `command:` also match generously for deny rules (programMatch, commandMatch).
 */
export function matchesSsh(match: MatchOf<typeof SSH_MATCH_SHAPE>, request: ParsedRequest<SshDetail>, effect: Effect): boolean {
  const generous = effect === 'deny';
  const { hosts, programs, commands } = request.detail;
  if (match.hosts && !globsMatch(effect, match.hosts, hosts, globMatch)) return false;
  if (match.programs && !globsMatch(effect, match.programs, programs, (p, v) => programMatch(generous, p, v))) return false;
  if (match.command && !listsMatch(effect, match.command, commands, (p, argv) => commandMatch(generous, p, argv))) return false;
  return true;
}

export const SSH_EXPLAIN: ExplainView<SshDetail> = {
  lines: (request) => [
    ['programs', request.detail.programs.join(', ')],
    ['hosts', request.detail.hosts.join(', ') || '(every host of the connection)'],
  ],
  facts: (request) => ({ hosts: [...request.detail.hosts], programs: [...request.detail.programs], commands: request.detail.commands.map((c) => [...c]) }),
  withoutCatalog: "the hosts were not checked against the connection's host list",
};

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
