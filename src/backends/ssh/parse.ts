// Pure parsing of an ssh_exec command into argv, with a strict POSIX-shell
// grammar (the tokenizer shared with kubectl, ../shared/words.ts, in ssh's
// dialect and wording) for the one construct accepted: simple commands (a program and its
// arguments), optionally joined by `|` when a rule allows pipelines. Anything
// else the shell would interpret — lists, background, substitutions,
// expansions, redirections, heredocs, assignments, comments, brace groups — is
// refused. The accepted argv is re-quoted before it reaches the host, so the
// remote shell sees only literal words.

import { DrawbridgeError } from '../../errors.js';
import { splitWords, type Dialect, type Malformation, type Operator, type Refusal, type Token } from '../shared/words.js';
import { SSH_ERRORS } from './errors.js';

export interface SimpleCommand {
  /** argv[0] as written (a name or an absolute path), then the arguments, unquoted. */
  readonly argv: readonly string[];
  /** Basename of argv[0]: what the classifier's program lists match. */
  readonly program: string;
}

export interface ShellCommand {
  /** One entry, or several when joined by pipes. */
  readonly commands: readonly SimpleCommand[];
}

const MAX_LENGTH = 8192;

/**
 * ssh_exec's dialect of the shared tokenizer: `|` splits a pipeline (a rule decides whether one is allowed), every brace is
 * refused, and single quotes keep `$(…)` and backticks as text (the argv is re-quoted for the remote shell).
 */
export const SSH_WORDS: Dialect = { maxChars: MAX_LENGTH, maxWords: null, pipes: 'split', braces: 'all', singleQuotedSubstitutions: 'literal' };

/** Unquoted, these mean something to the shell: refused (`|` only splits a pipeline). */
const OPERATORS: Readonly<Record<Operator, string>> = {
  ';': 'a command list (;)',
  '&': 'background or && (&)',
  '<': 'a redirection or heredoc (<)',
  '>': 'a redirection (>)',
  '(': 'a subshell or process substitution (()',
  ')': 'a subshell ())',
  '{': 'a brace group or brace expansion ({)',
  '}': 'a brace group or brace expansion (})',
  '|': 'a pipe (|)',
  '||': 'a command list (||)',
};

function refuse(what: string): never {
  throw new DrawbridgeError('ssh.refused', `Refused: the command contains ${what}. The gateway runs one program with literal arguments, never shell syntax.`, {
    hint: SSH_ERRORS['ssh.refused'].hint,
  });
}

function refusalText(r: Refusal): string {
  switch (r.construct) {
    case 'too long':
      return `more than ${r.limit} characters`;
    case 'too many words':
      return `more than ${r.limit} words`;
    case 'newline':
      return 'a newline (a second command)';
    case 'carriage return':
      return 'a carriage return';
    case 'line continuation':
      return 'a line continuation';
    case 'control character':
      return 'a control character';
    case 'invisible character':
      return `an invisible Unicode character (${r.codePoint})`;
    case 'unusual whitespace':
      return `an unusual space character (${r.codePoint}); separate words with plain spaces`;
    case 'substitution':
      return `a command substitution (${r.text})`;
    case 'operator':
      return OPERATORS[r.operator];
    case 'brace expansion':
      return `a brace expansion (${r.text})`;
    case 'dollar':
      return `an expansion or substitution ($)${r.inDoubleQuotes ? ' inside double quotes' : ''}`;
    case 'backtick':
      return `a command substitution (\`)${r.inDoubleQuotes ? ' inside double quotes' : ''}`;
    case 'escape in double quotes':
      return `an escaped ${r.escaped} inside double quotes (put it in single quotes)`;
    case 'comment':
      return 'a comment (#)';
  }
}

const MALFORMED: Readonly<Record<Malformation, string>> = {
  'unbalanced single quote': 'Unbalanced single quote in the command.',
  'unbalanced double quote': 'Unbalanced double quote in the command.',
  'trailing backslash': 'A trailing backslash in the command.',
};

export type { Token };

/** Splits into words with POSIX quoting (the shared tokenizer); refuses every construct that is not a plain word or `|`. */
export function tokenize(text: string): Token[] {
  const result = splitWords(text, SSH_WORDS);
  if (result.ok) return [...result.tokens];
  if (result.kind === 'refused') refuse(refusalText(result.refusal));
  throw new DrawbridgeError('input.invalid', MALFORMED[result.problem]);
}

export function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** Parses a command into simple commands. Pipelines are refused unless `allowPipeline`. */
export function parseShellCommand(text: string, options: { allowPipeline: boolean } = { allowPipeline: false }): ShellCommand {
  if (text.trim() === '') throw new DrawbridgeError('input.invalid', 'The command is empty.');
  const tokens = tokenize(text);
  const commands: SimpleCommand[] = [];
  let current: string[] = [];
  let programQuoted = false;
  const close = () => {
    if (current.length === 0) refuse('an empty pipeline stage');
    const first = current[0] as string;
    // The program name must be a plain word: quoting it hides what runs (`'r''m'`, `\rm`).
    if (programQuoted) refuse('a quoted or escaped program name');
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(first)) refuse('a variable assignment before the program');
    if (/[*?[\]~]/.test(first)) refuse('a glob or tilde in the program name');
    if (first.includes('/') && !first.startsWith('/')) refuse('a relative path as the program (use a name or an absolute path)');
    commands.push({ argv: current, program: basename(first) });
    current = [];
  };
  for (const t of tokens) {
    if (t.kind === 'pipe') {
      if (!options.allowPipeline) refuse('a pipe (|); no rule allows pipelines here');
      close();
      programQuoted = false;
    } else {
      if (current.length === 0) programQuoted = t.quoted;
      current.push(t.value);
    }
  }
  close();
  return { commands };
}

/** POSIX single-quoting: every argument reaches the remote shell as one literal word. */
export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The argv of the quoting probe sent once on every new connection, before any
 * command: quoteArgv is only safe if the account's login shell (which sshd
 * always runs the command through) reads single quotes as POSIX sh does. fish
 * treats `\'` inside single quotes as an escaped quote, so an argument ending
 * in a backslash would let the next one out of its quotes; such a host is refused.
 */
export const QUOTING_PROBE_ARGV: readonly string[] = ['printf', '%s|', 'a\\', 'b\\\\c', "c'd", '$(x) `y` * ~'];
/** What a POSIX shell prints for the probe. */
export const QUOTING_PROBE_EXPECTED = "a\\|b\\\\c|c'd|$(x) `y` * ~|";
