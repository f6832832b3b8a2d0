// The difference table of the shared POSIX-word tokenizer (src/backends/shared/words.ts):
// for every input on which kubectl's and ssh_exec's former tokenizers disagreed
// (double quotes, backslashes, empty words, unterminated quotes, metacharacters,
// Unicode, limits) — and a control row for each area where they agreed — what each
// did before and what both do now, checked through each backend's own tokenize.
// Where they disagreed, both now take the stricter reading (refuse rather than guess);
// the only differences left are a Dialect setting, named in the row, each because an
// evasion suite pins the other side. Plus: the tokenizer never throws, and ssh's
// re-quoting reads back as the same words.

import { describe, expect, it } from 'vitest';
import { tokenize as kubectlTokenize } from '../../../src/backends/kubernetes/parse.js';
import { KUBECTL_WORDS } from '../../../src/backends/kubernetes/words.js';
import { splitWords, type Dialect } from '../../../src/backends/shared/words.js';
import { quoteArgv, SSH_WORDS, tokenize as sshTokenize } from '../../../src/backends/ssh/parse.js';
import { DrawbridgeError } from '../../../src/errors.js';

/** The words, or how the line was turned down: refused (kubectl.refused / ssh.refused) or invalid (input.invalid). */
type Outcome = readonly string[] | 'refused' | 'invalid';
type DialectSetting = keyof Omit<Dialect, 'maxChars' | 'maxWords'> | 'limits';

interface Row {
  readonly input: string;
  readonly area:
    'double quotes' | 'single quotes' | 'dollar' | 'backslash' | 'empty words' | 'unterminated' | 'metacharacters' | 'newlines' | 'unicode' | 'limits';
  /** What the two tokenizers did before they shared one (documentation: the old code is gone). */
  readonly before: { readonly kubectl: Outcome; readonly ssh: Outcome };
  readonly now: { readonly kubectl: Outcome; readonly ssh: Outcome };
  /** The dialect setting that explains why the two still differ now. */
  readonly dialect?: DialectSetting;
}

const same = (o: Outcome): { kubectl: Outcome; ssh: Outcome } => ({ kubectl: o, ssh: o });

const MANY_WORDS = Array.from({ length: 201 }, () => 'x');

const ROWS: readonly Row[] = [
  // Double quotes: kubectl took \" and \\ only, ssh also \$ \` and \<newline>; ssh refused $ and ` inside, kubectl only $( ${ `.
  { input: 'a "b\\"c"', area: 'double quotes', before: same(['a', 'b"c']), now: same(['a', 'b"c']) },
  { input: 'a "b\\\\c"', area: 'double quotes', before: same(['a', 'b\\c']), now: same(['a', 'b\\c']) },
  { input: 'a "b\\nc"', area: 'double quotes', before: same(['a', 'b\\nc']), now: same(['a', 'b\\nc']) },
  { input: 'a "b\\$c"', area: 'double quotes', before: { kubectl: ['a', 'b\\$c'], ssh: ['a', 'b$c'] }, now: same('refused') },
  { input: 'a "b\\`c"', area: 'double quotes', before: { kubectl: 'refused', ssh: ['a', 'b`c'] }, now: same('refused') },
  { input: 'a "$HOME"', area: 'double quotes', before: { kubectl: ['a', '$HOME'], ssh: 'refused' }, now: same('refused') },
  { input: 'a "$"', area: 'double quotes', before: { kubectl: ['a', '$'], ssh: 'refused' }, now: same('refused') },
  { input: 'a "\'"', area: 'double quotes', before: same(['a', "'"]), now: same(['a', "'"]) },
  { input: 'a "$(id)"', area: 'double quotes', before: same('refused'), now: same('refused') },
  // Unquoted $: ssh refused every one, kubectl only $'…' $"…" $( ${.
  { input: 'a $HOME', area: 'dollar', before: { kubectl: ['a', '$HOME'], ssh: 'refused' }, now: same('refused') },
  { input: 'a $', area: 'dollar', before: { kubectl: ['a', '$'], ssh: 'refused' }, now: same('refused') },
  { input: 'a b$', area: 'dollar', before: { kubectl: ['a', 'b$'], ssh: 'refused' }, now: same('refused') },
  { input: "a $'x'", area: 'dollar', before: same('refused'), now: same('refused') },
  { input: 'a $"x"', area: 'dollar', before: same('refused'), now: same('refused') },
  // Single quotes: literal for both, except that kubectl refuses substitution text even there (ssh's literal suite pins the other side).
  { input: "a '$HOME'", area: 'single quotes', before: same(['a', '$HOME']), now: same(['a', '$HOME']) },
  { input: "a '\"'", area: 'single quotes', before: same(['a', '"']), now: same(['a', '"']) },
  {
    input: "a '$(id)'",
    area: 'single quotes',
    before: { kubectl: 'refused', ssh: ['a', '$(id)'] },
    now: { kubectl: 'refused', ssh: ['a', '$(id)'] },
    dialect: 'singleQuotedSubstitutions',
  },
  {
    input: "a '`id`'",
    area: 'single quotes',
    before: { kubectl: 'refused', ssh: ['a', '`id`'] },
    now: { kubectl: 'refused', ssh: ['a', '`id`'] },
    dialect: 'singleQuotedSubstitutions',
  },
  {
    input: "a '${x}'",
    area: 'single quotes',
    before: { kubectl: 'refused', ssh: ['a', '${x}'] },
    now: { kubectl: 'refused', ssh: ['a', '${x}'] },
    dialect: 'singleQuotedSubstitutions',
  },
  // Backslashes outside quotes: the same for both.
  { input: 'a\\ b', area: 'backslash', before: same(['a b']), now: same(['a b']) },
  { input: 'a \\|', area: 'backslash', before: same(['a', '|']), now: same(['a', '|']) },
  { input: 'a \\#b', area: 'backslash', before: same(['a', '#b']), now: same(['a', '#b']) },
  { input: "a '\\'", area: 'backslash', before: same(['a', '\\']), now: same(['a', '\\']) },
  { input: 'a \\', area: 'backslash', before: same('invalid'), now: same('invalid') },
  // Empty words: kept by both.
  { input: "a ''", area: 'empty words', before: same(['a', '']), now: same(['a', '']) },
  { input: 'a ""', area: 'empty words', before: same(['a', '']), now: same(['a', '']) },
  { input: 'a \'\'""', area: 'empty words', before: same(['a', '']), now: same(['a', '']) },
  { input: '', area: 'empty words', before: same([]), now: same([]) },
  // Unterminated quotes: input.invalid for both (only the wording differs).
  { input: "a 'b", area: 'unterminated', before: same('invalid'), now: same('invalid') },
  { input: 'a "b', area: 'unterminated', before: same('invalid'), now: same('invalid') },
  { input: 'a "\\"', area: 'unterminated', before: same('invalid'), now: same('invalid') },
  // Metacharacters: the same set for both, except | (a pipeline for ssh) and braces (jsonpath templates for kubectl).
  {
    input: 'a | b',
    area: 'metacharacters',
    before: { kubectl: 'refused', ssh: ['a', '|', 'b'] },
    now: { kubectl: 'refused', ssh: ['a', '|', 'b'] },
    dialect: 'pipes',
  },
  { input: 'a || b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a |& b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a ; b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a & b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a < b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a > b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a (b)', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a #b', area: 'metacharacters', before: same('refused'), now: same('refused') },
  { input: 'a b#c', area: 'metacharacters', before: same(['a', 'b#c']), now: same(['a', 'b#c']) },
  { input: "a ''#b", area: 'metacharacters', before: same(['a', '#b']), now: same(['a', '#b']) },
  { input: 'a {b,c}', area: 'metacharacters', before: { kubectl: ['a', '{b,c}'], ssh: 'refused' }, now: same('refused') },
  { input: 'a web-{1..3}', area: 'metacharacters', before: { kubectl: ['a', 'web-{1..3}'], ssh: 'refused' }, now: same('refused') },
  { input: 'a {x{b,c}}', area: 'metacharacters', before: { kubectl: ['a', '{x{b,c}}'], ssh: 'refused' }, now: same('refused') },
  {
    input: 'a ={.x}',
    area: 'metacharacters',
    before: { kubectl: ['a', '={.x}'], ssh: 'refused' },
    now: { kubectl: ['a', '={.x}'], ssh: 'refused' },
    dialect: 'braces',
  },
  {
    input: 'a {..x}',
    area: 'metacharacters',
    before: { kubectl: ['a', '{..x}'], ssh: 'refused' },
    now: { kubectl: ['a', '{..x}'], ssh: 'refused' },
    dialect: 'braces',
  },
  { input: 'a {', area: 'metacharacters', before: { kubectl: ['a', '{'], ssh: 'refused' }, now: { kubectl: ['a', '{'], ssh: 'refused' }, dialect: 'braces' },
  { input: "a '{b,c}'", area: 'metacharacters', before: same(['a', '{b,c}']), now: same(['a', '{b,c}']) },
  { input: 'a b,c', area: 'metacharacters', before: same(['a', 'b,c']), now: same(['a', 'b,c']) },
  // Newlines: kubectl refused them anywhere, ssh only outside quotes.
  { input: 'a\nb', area: 'newlines', before: same('refused'), now: same('refused') },
  { input: 'a\rb', area: 'newlines', before: same('refused'), now: same('refused') },
  { input: 'a \\\nb', area: 'newlines', before: same('refused'), now: same('refused') },
  { input: 'a "a\nb"', area: 'newlines', before: { kubectl: 'refused', ssh: ['a', 'a\nb'] }, now: same('refused') },
  { input: "a 'a\nb'", area: 'newlines', before: { kubectl: 'refused', ssh: ['a', 'a\nb'] }, now: same('refused') },
  { input: "a 'a\rb'", area: 'newlines', before: { kubectl: 'refused', ssh: ['a', 'a\rb'] }, now: same('refused') },
  // Control characters and Unicode: kubectl refused every control, invisible and unusual-space character; ssh only C0 controls.
  { input: 'a\tb', area: 'unicode', before: same(['a', 'b']), now: same(['a', 'b']) },
  { input: 'a\u0000b', area: 'unicode', before: same('refused'), now: same('refused') },
  { input: 'a\u000bb', area: 'unicode', before: same('refused'), now: same('refused') },
  { input: 'a\u007fb', area: 'unicode', before: same('refused'), now: same('refused') },
  { input: 'a\u0085b', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u0085b'] }, now: same('refused') },
  { input: 'a\u00a0b', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u00a0b'] }, now: same('refused') },
  { input: 'a\u3000b', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u3000b'] }, now: same('refused') },
  { input: 'a\u200bb', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u200bb'] }, now: same('refused') },
  { input: 'a\u202eb', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u202eb'] }, now: same('refused') },
  { input: 'a\u2028b', area: 'unicode', before: { kubectl: 'refused', ssh: ['a\u2028b'] }, now: same('refused') },
  { input: "a '\u00a0'", area: 'unicode', before: { kubectl: 'refused', ssh: ['a', '\u00a0'] }, now: same('refused') },
  { input: 'a；b é', area: 'unicode', before: same(['a；b', 'é']), now: same(['a；b', 'é']) },
  // Limits: each backend keeps its own (kubectl: 10,000 characters and 200 words; ssh: 8,192 characters).
  {
    input: MANY_WORDS.join(' '),
    area: 'limits',
    before: { kubectl: 'refused', ssh: MANY_WORDS },
    now: { kubectl: 'refused', ssh: MANY_WORDS },
    dialect: 'limits',
  },
  {
    input: 'a'.repeat(9000),
    area: 'limits',
    before: { kubectl: ['a'.repeat(9000)], ssh: 'refused' },
    now: { kubectl: ['a'.repeat(9000)], ssh: 'refused' },
    dialect: 'limits',
  },
];

function outcome(fn: () => readonly string[], refusedCode: string): Outcome {
  try {
    return fn();
  } catch (error) {
    if (!(error instanceof DrawbridgeError)) throw error;
    if (error.code === refusedCode) return 'refused';
    if (error.code === 'input.invalid') return 'invalid';
    throw error;
  }
}

const kubectl = (input: string): Outcome => outcome(() => kubectlTokenize(input), 'kubectl.refused');
const ssh = (input: string): Outcome => outcome(() => sshTokenize(input).map((t) => (t.kind === 'pipe' ? '|' : t.value)), 'ssh.refused');
const label = (row: Row): string => `${row.area}: ${JSON.stringify(row.input.length > 40 ? `${row.input.slice(0, 40)}…` : row.input)}`;
const isTurnedDown = (o: Outcome): boolean => o === 'refused' || o === 'invalid';

describe('the difference table', () => {
  it.each(ROWS.map((row) => [label(row), row] as const))('%s', (_label, row) => {
    expect(kubectl(row.input), 'kubectl').toEqual(row.now.kubectl);
    expect(ssh(row.input), 'ssh').toEqual(row.now.ssh);
  });

  it('the two dialects differ only where a row names the setting that explains it', () => {
    for (const row of ROWS) {
      const differ = JSON.stringify(row.now.kubectl) !== JSON.stringify(row.now.ssh);
      expect(differ, label(row)).toBe(row.dialect !== undefined);
    }
    const settings = new Set(ROWS.flatMap((row) => (row.dialect === undefined ? [] : [row.dialect])));
    expect([...settings].sort()).toEqual(['braces', 'limits', 'pipes', 'singleQuotedSubstitutions']);
  });

  it('where the old tokenizers disagreed and no dialect setting explains it, both now refuse (the stricter reading)', () => {
    const disagreed = ROWS.filter((row) => JSON.stringify(row.before.kubectl) !== JSON.stringify(row.before.ssh) && row.dialect === undefined);
    expect(disagreed.length).toBeGreaterThan(15);
    // Either one of them refused, or both accepted with different words ("b\\$c" and "b$c"): both are refused now.
    for (const row of disagreed) expect(row.now, label(row)).toEqual(same('refused'));
  });

  it('nothing either tokenizer turned down before is accepted now', () => {
    for (const row of ROWS) {
      if (isTurnedDown(row.before.kubectl)) expect(isTurnedDown(row.now.kubectl), label(row)).toBe(true);
      if (isTurnedDown(row.before.ssh)) expect(isTurnedDown(row.now.ssh), label(row)).toBe(true);
    }
  });

  it('every area the brief names is covered', () => {
    expect(new Set(ROWS.map((row) => row.area)).size).toBe(10);
  });
});

describe('splitWords', () => {
  it('returns typed refusals instead of throwing', () => {
    expect(splitWords('a "b\\$c"', KUBECTL_WORDS)).toEqual({ ok: false, kind: 'refused', refusal: { construct: 'escape in double quotes', escaped: '$' } });
    expect(splitWords('a {b,c}', KUBECTL_WORDS)).toEqual({ ok: false, kind: 'refused', refusal: { construct: 'brace expansion', text: '{b,c}' } });
    expect(splitWords('a\u00a0b', SSH_WORDS)).toEqual({ ok: false, kind: 'refused', refusal: { construct: 'unusual whitespace', codePoint: 'U+00A0' } });
    expect(splitWords('a \\\nb', SSH_WORDS)).toEqual({ ok: false, kind: 'refused', refusal: { construct: 'line continuation' } });
    expect(splitWords("a 'b", SSH_WORDS)).toEqual({ ok: false, kind: 'malformed', problem: 'unbalanced single quote' });
    expect(splitWords('a | "b c"', SSH_WORDS)).toEqual({
      ok: true,
      tokens: [{ kind: 'word', value: 'a', quoted: false }, { kind: 'pipe' }, { kind: 'word', value: 'b c', quoted: true }],
    });
  });

  // A small deterministic generator over the characters that matter.
  const ALPHABET = ['a', 'b', ' ', '\t', "'", '"', '\\', '$', '`', '|', '&', ';', '{', '}', ',', '.', '#', '(', ')', '<', '>', '\n', '\u00a0', '-', '=', '*'];
  function* inputs(count: number): Generator<string> {
    let seed = 0x2545f491;
    const next = (n: number): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    for (let i = 0; i < count; i++) {
      let text = '';
      const length = next(24);
      for (let j = 0; j < length; j++) text += ALPHABET[next(ALPHABET.length)] ?? '';
      yield text;
    }
  }

  it('never throws, in either dialect', () => {
    for (const text of inputs(5000)) {
      for (const dialect of [KUBECTL_WORDS, SSH_WORDS]) expect(() => splitWords(text, dialect), JSON.stringify(text)).not.toThrow();
    }
  });

  it("ssh's re-quoting of accepted words reads back as the same words", () => {
    let accepted = 0;
    for (const text of inputs(5000)) {
      const first = splitWords(text, SSH_WORDS);
      if (!first.ok) continue;
      const words = first.tokens.flatMap((t) => (t.kind === 'word' ? [t.value] : []));
      if (words.length === 0) continue;
      accepted += 1;
      const again = splitWords(quoteArgv(words), SSH_WORDS);
      expect(again.ok, JSON.stringify(text)).toBe(true);
      if (again.ok)
        expect(
          again.tokens.map((t) => (t.kind === 'word' ? t.value : '|')),
          JSON.stringify(text),
        ).toEqual(words);
    }
    expect(accepted).toBeGreaterThan(100);
  });
});
