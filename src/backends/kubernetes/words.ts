// kubectl's dialect of the shared POSIX-word tokenizer (../shared/words.ts) and
// the wording of its refusals. kubectl runs one command and never a shell, so
// a pipe is refused like every other operator, substitution text is refused
// even single-quoted (kubectl never needs it), and braces are literal except
// in a brace expansion (jsonpath templates such as {.items[*]} are common).
// Pure.

import type { DrawbridgeError } from '../../errors.js';
import { splitWords, type Dialect, type Malformation, type Operator, type Refusal } from '../shared/words.js';
import { GENERAL_HINT, invalid, refused } from './grammar.js';

const MAX_CHARS = 10_000;
const MAX_TOKENS = 200;

export const KUBECTL_WORDS: Dialect = { maxChars: MAX_CHARS, maxWords: MAX_TOKENS, pipes: 'refuse', braces: 'expansion', singleQuotedSubstitutions: 'refuse' };

const OPERATORS: Readonly<Record<Operator, string>> = {
  '|': 'a pipe (|)',
  '||': 'a pipe (|)',
  ';': 'a command separator (;)',
  '&': 'a shell operator (&, &&)',
  '<': 'an input redirection (<)',
  '>': 'an output redirection (>)',
  '(': 'a subshell or grouping parenthesis "("',
  ')': 'a subshell or grouping parenthesis ")"',
  '{': 'a brace group "{"',
  '}': 'a brace group "}"',
};

const SUBSTITUTIONS = {
  '`': { message: 'Refused: the command contains a backtick (`), shell command substitution. kubectl never needs it, even quoted.', construct: 'backtick' },
  '$(': { message: 'Refused: the command contains "$(", shell command substitution. kubectl never needs it, even quoted.', construct: '$(' },
  '${': { message: 'Refused: the command contains "${", shell parameter expansion. kubectl never needs it, even quoted.', construct: '${' },
} as const;

function refusalError(r: Refusal): DrawbridgeError {
  switch (r.construct) {
    case 'too long':
      return refused(`Refused: the command is ${r.length} characters long; at most ${r.limit} are accepted.`, { construct: 'length', length: r.length });
    case 'too many words':
      return refused(`Refused: the command has more than ${r.limit} words.`, { construct: 'token count' });
    case 'newline':
    case 'carriage return':
    case 'line continuation':
      return refused('Refused: the command contains a newline or carriage return (a second command line).', { construct: 'newline' });
    case 'control character':
      return refused(`Refused: the command contains the control character ${r.codePoint}.`, { construct: r.construct, codePoint: r.codePoint });
    case 'invisible character':
      return refused(`Refused: the command contains the invisible Unicode character ${r.codePoint}.`, { construct: r.construct, codePoint: r.codePoint });
    case 'unusual whitespace':
      return refused(`Refused: the command contains the unusual space character ${r.codePoint}; separate words with plain spaces.`, {
        construct: r.construct,
        codePoint: r.codePoint,
      });
    case 'substitution':
      return refused(SUBSTITUTIONS[r.text].message, { construct: SUBSTITUTIONS[r.text].construct });
    case 'backtick':
      return refused(SUBSTITUTIONS['`'].message, { construct: 'backtick' });
    case 'operator': {
      const construct = r.operator === '||' ? '|' : r.operator;
      return refused(`Refused: the command contains ${OPERATORS[r.operator]} outside quotes. The gateway runs one kubectl command and never a shell.`, {
        construct,
      });
    }
    case 'brace expansion':
      return refused(`Refused: the command contains the brace expansion ${r.text} outside quotes, which a shell would turn into several words; quote it.`, {
        construct: 'brace expansion',
      });
    case 'dollar':
      if (r.text !== '$') {
        const q = r.text.charAt(1);
        return refused(`Refused: the command contains $${q}…${q}, shell ANSI-C or locale quoting.`, { construct: r.text });
      }
      return refused(
        `Refused: the command contains "$" ${r.inDoubleQuotes ? 'inside double quotes' : 'outside quotes'}, ` +
          `which a shell would expand; put it in single quotes.`,
        {
          construct: '$',
        },
      );
    case 'escape in double quotes':
      return refused(
        `Refused: the command contains \\${r.escaped} inside double quotes, which a shell reads as a plain ${r.escaped}; put it in single quotes.`,
        {
          construct: `\\${r.escaped}`,
        },
      );
    case 'comment':
      return refused('Refused: a word starts with an unquoted "#", a shell comment.', { construct: '#' });
  }
}

function malformationError(problem: Malformation): DrawbridgeError {
  switch (problem) {
    case 'unbalanced single quote':
      return invalid("Unbalanced single quote: a quote opened with ' is never closed.", `Close every quote. ${GENERAL_HINT}`, {
        construct: 'unbalanced quote',
      });
    case 'unbalanced double quote':
      return invalid('Unbalanced double quote: a quote opened with " is never closed.', `Close every quote. ${GENERAL_HINT}`, {
        construct: 'unbalanced quote',
      });
    case 'trailing backslash':
      return invalid('The command ends with a lone backslash.', GENERAL_HINT, { construct: 'trailing backslash' });
  }
}

/**
 * Splits a kubectl command line into words with an explicit grammar (never a
 * shell): whitespace separates words; single quotes are literal; double quotes
 * take `\"` and `\\` escapes (any other backslash stays; `\$` and `` \` ``
 * are refused); a backslash outside quotes escapes the next character. Shell
 * syntax, `$` outside single quotes included, is refused, not interpreted.
 */
export function tokenize(command: string): string[] {
  if (typeof command !== 'string') throw invalid('The kubectl command must be a string.');
  const result = splitWords(command, KUBECTL_WORDS);
  if (!result.ok) throw result.kind === 'refused' ? refusalError(result.refusal) : malformationError(result.problem);
  return result.tokens.map((t) => {
    // KUBECTL_WORDS refuses pipes, so only words come back.
    if (t.kind !== 'word') throw new TypeError('the kubectl dialect yields words only');
    return t.value;
  });
}
