// Pure parsing of an ssh_exec command into argv, with a strict POSIX-shell
// grammar for the one construct accepted: simple commands (a program and its
// arguments), optionally joined by `|` when a rule allows pipelines. Anything
// else the shell would interpret — lists, background, substitutions,
// expansions, redirections, heredocs, assignments, comments, brace groups — is
// refused. The accepted argv is re-quoted before it reaches the host, so the
// remote shell sees only literal words.

import { DrawbridgeError } from '../../errors.js';
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
/** Unquoted, these mean something to the shell: refused (`|` only splits a pipeline). */
const OPERATORS: Record<string, string> = {
  ';': 'a command list (;)',
  '&': 'background or && (&)',
  '<': 'a redirection or heredoc (<)',
  '>': 'a redirection (>)',
  '(': 'a subshell or process substitution (()',
  ')': 'a subshell ())',
  '{': 'a brace group or brace expansion ({)',
  '}': 'a brace group or brace expansion (})',
  '\n': 'a newline (a second command)',
  '\r': 'a carriage return',
};

function refuse(what: string): never {
  throw new DrawbridgeError('ssh.refused', `Refused: the command contains ${what}. The gateway runs one program with literal arguments, never shell syntax.`, {
    hint: SSH_ERRORS['ssh.refused'].hint,
  });
}

export type Token = { readonly kind: 'word'; readonly value: string; readonly quoted: boolean } | { readonly kind: 'pipe' };

/** Splits into words with POSIX quoting; refuses every construct that is not a plain word or `|`. */
export function tokenize(text: string): Token[] {
  if (text.length > MAX_LENGTH) refuse(`more than ${MAX_LENGTH} characters`);
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) refuse('a control character');
  const tokens: Token[] = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  let i = 0;
  const push = () => {
    if (inWord) tokens.push({ kind: 'word', value: word, quoted });
    word = '';
    inWord = false;
    quoted = false;
  };
  while (i < text.length) {
    const ch = text[i] as string;
    if (ch === ' ' || ch === '\t') {
      push();
      i++;
      continue;
    }
    if (ch === '|') {
      if (text[i + 1] === '|') refuse('a command list (||)');
      push();
      tokens.push({ kind: 'pipe' });
      i++;
      continue;
    }
    if (ch in OPERATORS) refuse(OPERATORS[ch] as string);
    if (ch === '$') refuse('an expansion or substitution ($)');
    if (ch === '`') refuse('a command substitution (`)');
    if (ch === '#' && !inWord) refuse('a comment (#)');
    if (ch === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new DrawbridgeError('input.invalid', 'Unbalanced single quote in the command.');
      quoted = true;
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
      continue;
    }
    if (ch === '"') {
      quoted = true;
      inWord = true;
      i++;
      for (;;) {
        if (i >= text.length) throw new DrawbridgeError('input.invalid', 'Unbalanced double quote in the command.');
        const c = text[i] as string;
        if (c === '"') {
          i++;
          break;
        }
        // Inside double quotes the shell still expands these.
        if (c === '$') refuse('an expansion or substitution ($) inside double quotes');
        if (c === '`') refuse('a command substitution (`) inside double quotes');
        if (c === '\\' && i + 1 < text.length && '$`"\\\n'.includes(text[i + 1] as string)) {
          word += text[i + 1];
          i += 2;
          continue;
        }
        word += c;
        i++;
      }
      continue;
    }
    if (ch === '\\') {
      if (i + 1 >= text.length) throw new DrawbridgeError('input.invalid', 'A trailing backslash in the command.');
      if (text[i + 1] === '\n') refuse('a line continuation');
      word += text[i + 1];
      quoted = true;
      inWord = true;
      i += 2;
      continue;
    }
    word += ch;
    inWord = true;
    i++;
  }
  push();
  return tokens;
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
