// The one strict POSIX-word tokenizer shared by the backends that take a
// command line: it splits text into words the way a POSIX shell would quote
// them and refuses everything a shell would interpret. It never throws and never names a backend: it returns the words, or a typed
// refusal or malformation that each backend turns into its own error code and
// message. Pure.
//
// Where a shell and a literal reading of the text would disagree, the text is
// refused rather than guessed at ($ outside single quotes, \$ inside double
// quotes, newlines even quoted, invisible or unusual Unicode). What differs on
// purpose between the backends is a Dialect, data only: limits, whether `|`
// splits a pipeline, which braces are refused, and whether substitution text
// is refused even inside single quotes. test/backends/shared/words.test.ts is
// the table of every difference.

/** A word (quoted: it had a quote or backslash somewhere), or a pipe between commands. */
export type Token = { readonly kind: 'word'; readonly value: string; readonly quoted: boolean } | { readonly kind: 'pipe' };

export interface Dialect {
  readonly maxChars: number;
  /** null: no limit on the number of words. */
  readonly maxWords: number | null;
  /** split: an unquoted `|` is a pipe token; refuse: it is refused like the other operators. */
  readonly pipes: 'split' | 'refuse';
  /** all: every unquoted `{` and `}` is refused; expansion: only brace expansions (`{a,b}`, `{1..3}`), so `{.items[*]}` stays literal. */
  readonly braces: 'all' | 'expansion';
  /** refuse: `$(`, `${` and backticks are refused anywhere, even inside single quotes; literal: single quotes keep them as text. */
  readonly singleQuotedSubstitutions: 'refuse' | 'literal';
}

export type Operator = ';' | '&' | '<' | '>' | '(' | ')' | '{' | '}' | '|' | '||';

/** Why a command line was refused, for the backend to word. */
export type Refusal =
  | { readonly construct: 'too long'; readonly length: number; readonly limit: number }
  | { readonly construct: 'too many words'; readonly limit: number }
  | { readonly construct: 'newline' | 'carriage return' | 'line continuation' }
  | { readonly construct: 'control character' | 'invisible character' | 'unusual whitespace'; readonly codePoint: string }
  /** Refused anywhere, even single-quoted, by a dialect with singleQuotedSubstitutions: 'refuse'. */
  | { readonly construct: 'substitution'; readonly text: '`' | '$(' | '${' }
  | { readonly construct: 'operator'; readonly operator: Operator }
  | { readonly construct: 'brace expansion'; readonly text: string }
  | { readonly construct: 'dollar'; readonly text: '$' | "$'" | '$"'; readonly inDoubleQuotes: boolean }
  | { readonly construct: 'backtick'; readonly inDoubleQuotes: boolean }
  | { readonly construct: 'escape in double quotes'; readonly escaped: '$' | '`' }
  | { readonly construct: 'comment' };

export type Malformation = 'unbalanced single quote' | 'unbalanced double quote' | 'trailing backslash';

export type WordsResult =
  | { readonly ok: true; readonly tokens: readonly Token[] }
  | { readonly ok: false; readonly kind: 'refused'; readonly refusal: Refusal }
  | { readonly ok: false; readonly kind: 'malformed'; readonly problem: Malformation };

/** Unquoted, these always mean something to the shell (`|`, `{`, `}` depend on the dialect). */
const OPERATORS: ReadonlySet<string> = new Set([';', '&', '<', '>', '(', ')']);

function isOperator(ch: string): ch is Operator {
  return OPERATORS.has(ch);
}

/** `{x..y}` or `{x..y..step}`: a bash sequence expression. */
const SEQUENCE_RE = /^(-?[0-9]+\.\.-?[0-9]+|[A-Za-z]\.\.[A-Za-z])(\.\.-?[0-9]+)?$/;

function codePointOf(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Thrown inside this module only, and always turned into a result by splitWords. */
class Stop {
  constructor(readonly result: Exclude<WordsResult, { ok: true }>) {}
}

function refuse(refusal: Refusal): never {
  throw new Stop({ ok: false, kind: 'refused', refusal });
}

function malformed(problem: Malformation): never {
  throw new Stop({ ok: false, kind: 'malformed', problem });
}

/**
 * Characters refused anywhere, quoted or not: a second line (even quoted, it
 * would reach the program as one), control characters, and Unicode that hides
 * what the words are (invisible format characters, unusual spaces).
 */
function checkCharacters(text: string): void {
  let previous = '';
  for (const ch of text) {
    if (ch === ' ' || ch === '\t') {
      previous = ch;
      continue;
    }
    if (ch === '\n') refuse({ construct: previous === '\\' ? 'line continuation' : 'newline' });
    if (ch === '\r') refuse({ construct: 'carriage return' });
    if (/\p{Cc}/u.test(ch)) refuse({ construct: 'control character', codePoint: codePointOf(ch) });
    if (/[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u.test(ch)) refuse({ construct: 'invisible character', codePoint: codePointOf(ch) });
    if (/\p{Zs}/u.test(ch)) refuse({ construct: 'unusual whitespace', codePoint: codePointOf(ch) });
    previous = ch;
  }
}

function checkSubstitutions(text: string): void {
  if (text.includes('`')) refuse({ construct: 'substitution', text: '`' });
  if (text.includes('$(')) refuse({ construct: 'substitution', text: '$(' });
  if (text.includes('${')) refuse({ construct: 'substitution', text: '${' });
}

/** Unquoted braces of the current word, for dialects that refuse brace expansion only. */
interface BraceLevel {
  /** Where the text after the `{` starts in the word. */
  readonly start: number;
  comma: boolean;
}

class Scanner {
  private readonly tokens: Token[] = [];
  private words = 0;
  private word = '';
  private inWord = false;
  private quoted = false;
  private braces: BraceLevel[] = [];
  private i = 0;

  constructor(
    private readonly text: string,
    private readonly dialect: Dialect,
  ) {}

  run(): Token[] {
    while (this.i < this.text.length) this.step(this.text.charAt(this.i));
    this.push();
    return this.tokens;
  }

  private push(): void {
    if (this.inWord) {
      this.tokens.push({ kind: 'word', value: this.word, quoted: this.quoted });
      this.words += 1;
      const limit = this.dialect.maxWords;
      if (limit !== null && this.words > limit) refuse({ construct: 'too many words', limit });
    }
    this.word = '';
    this.inWord = false;
    this.quoted = false;
    this.braces = [];
  }

  private append(text: string, quoted: boolean): void {
    this.word += text;
    this.inWord = true;
    if (quoted) this.quoted = true;
  }

  /** One unquoted character (or construct starting with it). */
  private step(ch: string): void {
    const next = this.text.charAt(this.i + 1);
    if (ch === ' ' || ch === '\t') {
      this.push();
      this.i += 1;
      return;
    }
    if (ch === '|') return this.pipe(next);
    if (isOperator(ch)) refuse({ construct: 'operator', operator: ch });
    if (ch === '{' || ch === '}' || ch === ',') return this.brace(ch);
    if (ch === '$') refuse({ construct: 'dollar', text: next === "'" ? "$'" : next === '"' ? '$"' : '$', inDoubleQuotes: false });
    if (ch === '`') refuse({ construct: 'backtick', inDoubleQuotes: false });
    if (ch === '#' && !this.inWord) refuse({ construct: 'comment' });
    if (ch === "'") return this.singleQuoted();
    if (ch === '"') return this.doubleQuoted();
    if (ch === '\\') {
      if (this.i + 1 >= this.text.length) malformed('trailing backslash');
      this.append(next, true);
      this.i += 2;
      return;
    }
    this.append(ch, false);
    this.i += 1;
  }

  private pipe(next: string): void {
    if (this.dialect.pipes === 'refuse') refuse({ construct: 'operator', operator: '|' });
    if (next === '|') refuse({ construct: 'operator', operator: '||' });
    this.push();
    this.tokens.push({ kind: 'pipe' });
    this.i += 1;
  }

  /** An unquoted `{`, `}` or `,`: bash expands `{a,b}` and `{1..3}`, and `{ …; }` is a group. */
  private brace(ch: '{' | '}' | ','): void {
    if (ch !== ',' && this.dialect.braces === 'all') refuse({ construct: 'operator', operator: ch });
    if (ch === '{') this.braces.push({ start: this.word.length + 1, comma: false });
    const level = this.braces[this.braces.length - 1];
    if (ch === ',' && level !== undefined) level.comma = true;
    if (ch === '}' && level !== undefined) {
      this.braces.pop();
      const inside = this.word.slice(level.start);
      if (level.comma || SEQUENCE_RE.test(inside)) refuse({ construct: 'brace expansion', text: `{${inside}}` });
    }
    this.append(ch, false);
    this.i += 1;
  }

  private singleQuoted(): void {
    const end = this.text.indexOf("'", this.i + 1);
    if (end < 0) malformed('unbalanced single quote');
    this.append(this.text.slice(this.i + 1, end), true);
    this.i = end + 1;
  }

  /**
   * POSIX double quotes: `\"` and `\\` escape; any other backslash stays. The
   * shell still expands `$` and backticks in them, and `\$` / `` \` `` would be
   * read differently by a literal parser and by a shell, so all are refused.
   */
  private doubleQuoted(): void {
    let j = this.i + 1;
    let value = '';
    for (;;) {
      if (j >= this.text.length) malformed('unbalanced double quote');
      const c = this.text.charAt(j);
      if (c === '"') break;
      if (c === '$') refuse({ construct: 'dollar', text: '$', inDoubleQuotes: true });
      if (c === '`') refuse({ construct: 'backtick', inDoubleQuotes: true });
      if (c === '\\') {
        const escaped = this.text.charAt(j + 1);
        if (escaped === '$' || escaped === '`') refuse({ construct: 'escape in double quotes', escaped });
        if (escaped === '"' || escaped === '\\') {
          value += escaped;
          j += 2;
          continue;
        }
      }
      value += c;
      j += 1;
    }
    this.append(value, true);
    this.i = j + 1;
  }
}

/** Splits a command line into words (and pipes, if the dialect splits them), or says why not. */
export function splitWords(text: string, dialect: Dialect): WordsResult {
  try {
    if (text.length > dialect.maxChars) refuse({ construct: 'too long', length: text.length, limit: dialect.maxChars });
    checkCharacters(text);
    // Why: text that looks like a substitution is never needed by some backends, and refusing it even quoted leaves nothing to misread.
    if (dialect.singleQuotedSubstitutions === 'refuse') checkSubstitutions(text);
    return { ok: true, tokens: new Scanner(text, dialect).run() };
  } catch (error) {
    if (error instanceof Stop) return error.result;
    throw error;
  }
}
