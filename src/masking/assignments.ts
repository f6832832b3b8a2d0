// Credentials found by their name rather than their shape: `NAME=value`,
// `"name": "value"`, `name: value` (and `:=`, `=>`), where NAME contains
// PASSWORD, PASSWD, SECRET, TOKEN, API_KEY, ACCESS_KEY, PRIVATE_KEY or
// CREDENTIAL with any prefix or suffix, in any case (`STRIPE_SECRET_KEY=`,
// `dbPassword:`, `X-Api-Key:`). The name stays, the value is masked. Also the
// name/value pairs of container env lists (`- name: DB_PASSWORD` / `value: …`,
// `{"name":"API_TOKEN","value":"…"}`), YAML block scalars under such a name, and
// the key members of Google service-account JSON. Our own rules (no upstream
// source). Pure and synchronous.
//
// Linear time: one global case-insensitive search for the keywords; every step
// after a hit is a hand-written scan with a fixed bound (name, separator,
// context look-back), except the value scan, and the search resumes after
// everything that was scanned. So each character is read a bounded number of
// times however the input is shaped (test/masking/linear.test.ts).

import type { Finding } from './detectors.js';

export type AssignmentDetectorName = 'gcp_service_account' | 'secret_assignment';

export const ASSIGNMENT_DETECTOR_NAMES: readonly AssignmentDetectorName[] = Object.freeze(['gcp_service_account', 'secret_assignment'] as const);

const KEYWORD_RE = /passw(?:or)?d|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential/gi;

/** Longest name (and value) we take apart; longer runs are not names. */
const MAX_NAME = 128;
/** A value's end is looked for this far; a value without one in reach runs to the end of its line (fail closed). */
const MAX_VALUE = 8192;
/** Deepest nesting of JSON strings followed: a quote written with up to this many backslashes. */
const MAX_ESCAPES = 15;
/** How far after `name: DB_PASSWORD` its `value:` may be. */
const PAIR_WINDOW = 256;

// Names that hold a reference to a credential, not the credential: `secretName:
// web-secrets`, `secretKeyRef:`, `PASSWORD_FILE=/run/secrets/db`, `token_type:
// bearer`. A value under such a name carries no secret of its own; if it did
// (a URL with a password), the shape detectors still see it.
const REFERENCE_SUFFIX = /(?:name|names|ref|refs|file|files|path|dir|type|url|uri|endpoint|length|len|count|prefix|seconds|ttl|expiry|expiration)$/i;

/**
 * `<…>` holding words (kubectl describe's `<set to the key 'password' in secret
 * 'web-secrets'>`) or one of kubectl's empty markers. A single word in angle
 * brackets could be a password, so it is not taken for a placeholder.
 */
const ANGLE_BRACKETS = /^<([^<>\n]{1,256})>/;
const EMPTY_MARKER = /^(?:none|unset|nil|empty|redacted|hidden)$/i;

function isPlaceholder(text: string, start: number): boolean {
  const inner = ANGLE_BRACKETS.exec(text.slice(start, start + 258))?.[1];
  return inner !== undefined && (/[ \t]/.test(inner) || EMPTY_MARKER.test(inner));
}

/** Values that are not secrets whatever the name: booleans and nulls. */
const PLAIN_VALUE = /^(?:true|false|null|nil|none|~)$/i;

const isNameChar = (c: number): boolean =>
  (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 /* _ */ || c === 46 /* . */ || c === 45; /* - */

const isBlank = (c: string | undefined): boolean => c === ' ' || c === '\t';
const isEol = (c: string | undefined): boolean => c === '\n' || c === '\r';

/** The end of the line holding `i`. Used when a value's end is out of reach: everything up to it is masked. */
function lineEnd(text: string, i: number): number {
  let end = i;
  while (end < text.length && !isEol(text[end])) end++;
  return end;
}

/** How the text around a name tells where an unquoted value ends. */
type ValueContext =
  /** The name starts a line: the value is the rest of the line (YAML `name: value`) or runs to the next blank (env files, `NAME=value`). */
  | 'line'
  /** The name starts a string, or follows a `\n` escape inside one (an env file inside JSON): the value ends at a quote or an escape. */
  | 'string'
  /** Anywhere else (logs, query strings, DSNs): the value ends at whitespace or punctuation. */
  | 'token';

/** Characters that end an unquoted value in the 'token' context. */
const TOKEN_END = new Set([' ', '\t', '\n', '\r', '"', "'", '`', ',', ';', '&', '<', '>', ')', ']', '}', '|']);

type Quote = '"' | "'" | '`';

interface Span {
  readonly start: number;
  readonly end: number;
}

/**
 * End of a quoted value whose content starts at `from`. `escapes` is how many
 * backslashes precede the opening quote: 0 for a plain string (a backslash
 * escapes the next character; YAML's '' is a quote), 1 for JSON inside a JSON
 * string (\"…\"), 3 one level deeper, and so on. Nested, the value ends at the
 * first quote preceded by at most that many backslashes: more belong to a
 * string inside the value, fewer end an enclosing one too. (A value ending in
 * an escaped backslash then runs on to a later quote: that masks more, never
 * less.) Unterminated: the value runs to the end of the line or the bound.
 * Returns [contentEnd, scanEnd].
 */
function quotedEnd(text: string, from: number, quote: Quote, escapes: number): [number, number] {
  const limit = Math.min(text.length, from + MAX_VALUE);
  let run = 0; // backslashes just before position i
  for (let i = from; i < limit; i++) {
    const c = text[i];
    if (c === '\n' || c === '\r') return [i, i];
    if (c === '\\') {
      if (escapes === 0 && quote !== "'") {
        i++; // a plain string: the next character is escaped, whatever it is
        continue;
      }
      run++;
      continue;
    }
    if (c === quote) {
      if (escapes === 0) {
        if (quote === "'" && text[i + 1] === "'") {
          i++; // YAML doubles a single quote to escape it
          continue;
        }
        return [i, i + 1];
      }
      if (run <= escapes) return [i - run, i + 1];
    }
    run = 0;
  }
  const end = limit < text.length ? lineEnd(text, limit) : limit;
  return [end, end];
}

/** How a name is joined to its value: `=` (also `:=`, `=>`, `?=`) or `:`. */
type Separator = '=' | ':';

const MASK_MARKER = /^\[(?:masked|hash):[^\]\n]{0,256}\]/;

/** The whole of text[start, end) is a mask written by the gateway: masked already. */
function isMarker(text: string, start: number, end: number): boolean {
  if (text[start] !== '[' || end - start > 300) return false;
  const m = MASK_MARKER.exec(text.slice(start, end));
  return m !== null && m[0].length === end - start;
}

/**
 * The value span starting at `at` (just after the separator and blanks); null
 * when there is none to mask. An unquoted value runs, by context: 'line' with
 * `:` (YAML) to the end of the line; 'line' with `=` (env files, shell) to the
 * next blank; 'string' to the end of the string or a `\n` escape; 'token' to
 * the next blank or punctuation.
 */
function valueAt(text: string, at: number, context: ValueContext, sep: Separator, keyIndent: number): Span | null {
  const c = text[at];
  if (c === undefined) return null;
  let escapes = 0;
  while (text[at + escapes] === '\\' && escapes < MAX_ESCAPES) escapes++;
  const q = text[at + escapes];
  if (q === '"' || q === "'" || (q === '`' && escapes === 0)) {
    const from = at + escapes + 1;
    const [end] = quotedEnd(text, from, q, escapes);
    return end > from && !isMarker(text, from, end) ? { start: from, end } : null;
  }
  // A nested structure (`"credentials": {`): its own members are scanned as they come.
  if (isEol(c) || c === '{') return null;
  if ((c === '|' || c === '>') && context !== 'token' && sep === ':') {
    const block = blockScalar(text, at, keyIndent, context === 'string');
    if (block) return block;
  }
  let start = at;
  while (text[start] === '[') {
    // Masked already (a backend's field mask, an operator pattern): nothing to do,
    // unless a YAML line goes on after the marker (a pattern that took only the
    // first word of `password: two words`): then the rest of the line is masked.
    // A `[` that is not a marker opens a list: its items are scanned as they come.
    const marker = MASK_MARKER.exec(text.slice(start, start + 300));
    if (!marker || context !== 'line' || sep !== ':') return null;
    start += marker[0].length;
    while (isBlank(text[start])) start++;
    if (start >= text.length || isEol(text[start])) return null;
  }
  // A placeholder, not a value: kubectl describe's `<set to the key 'password' in
  // secret 'web-secrets'>`, `<none>`, `<unset>`.
  if (text[start] === '<' && isPlaceholder(text, start)) return null;
  const limit = Math.min(text.length, start + MAX_VALUE);
  let end = start;
  if (context === 'line' && sep === ':') {
    end = lineEnd(text, start);
    while (end > start && isBlank(text[end - 1])) end--;
  } else if (context === 'line') {
    while (end < limit && !isEol(text[end]) && !isBlank(text[end])) end++;
  } else {
    while (end < limit) {
      const ch = text[end] ?? '';
      if (ch === '\\' && 'nrt"\''.includes(text[end + 1] ?? ' ')) break; // an escape: the string's next line or end
      if (context === 'string' ? ch === '"' || isEol(ch) : TOKEN_END.has(ch)) break;
      end++;
    }
  }
  if (end === limit && limit < text.length) end = lineEnd(text, end); // no end in reach: fail closed
  if (end === start) return null;
  if (PLAIN_VALUE.test(text.slice(start, end))) return null;
  return { start, end };
}

/**
 * Length of the line break at `i`: a real one (\n, \r\n, \r), or with
 * `escaped` (YAML inside a JSON string) an escape sequence `\n` / `\r` written
 * with any number of backslashes; 0 when there is none.
 */
function lineBreakAt(text: string, i: number, escaped: boolean): number {
  const c = text[i];
  if (c === '\n') return 1;
  if (c === '\r') return text[i + 1] === '\n' ? 2 : 1;
  if (!escaped || c !== '\\') return 0;
  let j = i;
  while (text[j] === '\\' && j - i < MAX_ESCAPES) j++;
  return text[j] === 'n' || text[j] === 'r' ? j + 1 - i : 0;
}

/**
 * A YAML block scalar (`key: |` / `key: >-`): every following line indented
 * deeper than the key, blank lines included. The span covers their content.
 * With `escaped`, the YAML sits inside a JSON string and its lines are
 * separated by `\n` escapes.
 */
function blockScalar(text: string, at: number, keyIndent: number, escaped: boolean): Span | null {
  let i = at + 1;
  while (i < text.length && (text[i] === '-' || text[i] === '+' || ((text[i] ?? '') >= '0' && (text[i] ?? '') <= '9'))) i++;
  while (isBlank(text[i])) i++;
  if (lineBreakAt(text, i, escaped) === 0) return null; // `| something`: not a block indicator
  // No bound: every line read belongs to the span, and the keyword search resumes after it.
  const limit = text.length;
  let start = -1;
  let end = -1;
  for (let br = lineBreakAt(text, i, escaped); i < limit && br > 0; br = lineBreakAt(text, i, escaped)) {
    i += br;
    let indent = 0;
    while (isBlank(text[i + indent])) indent++;
    const lineStart = i;
    const blank = i + indent >= limit || lineBreakAt(text, i + indent, escaped) > 0;
    if (!blank && indent <= keyIndent) break; // the block is over: this line is not read
    let stop = i + indent;
    while (stop < limit && lineBreakAt(text, stop, escaped) === 0) stop++;
    if (!blank) {
      if (start < 0) start = lineStart + indent;
      end = stop;
    }
    i = stop;
  }
  return start >= 0 && end > start ? { start, end } : null;
}

/**
 * What precedes the name on its line decides how an unquoted value ends: only
 * blanks, `export ` or a YAML `- ` → 'line'; a `\n` escape or an unclosed opening
 * quote → 'string'; anything else → 'token'.
 */
function contextBefore(
  text: string,
  outerStart: number,
  openedByQuote: boolean,
  closedByQuote: boolean,
): { readonly context: ValueContext; readonly indent: number } {
  let j = outerStart;
  let steps = 0;
  while (j > 0 && isBlank(text[j - 1]) && steps++ < 64) j--;
  if (j < outerStart && text.slice(Math.max(0, j - 6), j) === 'export' && (j === 6 || !isNameChar(text.charCodeAt(j - 7)))) {
    j -= 6;
    while (j > 0 && isBlank(text[j - 1]) && steps++ < 128) j--;
  } else if (text[j - 1] === '-' && j < outerStart) {
    j -= 1;
    while (j > 0 && isBlank(text[j - 1]) && steps++ < 128) j--;
  }
  // How deep the key sits on its line (a YAML list dash counts): block scalar lines must go deeper.
  const indent = outerStart - j;
  if (openedByQuote && !closedByQuote) return { context: 'string', indent };
  if (j === 0 || isEol(text[j - 1])) return { context: openedByQuote ? 'token' : 'line', indent };
  if (j >= 2 && text[j - 2] === '\\' && (text[j - 1] === 'n' || text[j - 1] === 'r')) return { context: 'string', indent };
  return { context: 'token', indent };
}

/** Separator after a name (and its closing quote and blanks): the index just past it and past following blanks, and its kind; null when there is none. */
function separatorAt(text: string, at: number): { readonly end: number; readonly sep: Separator } | null {
  let i = at;
  let blanks = 0;
  while (isBlank(text[i]) && blanks++ < 16) i++;
  const c = text[i];
  const next = text[i + 1];
  let sep: Separator;
  if ((c === ':' || c === '?') && next === '=') {
    sep = '='; // := ?=
    i += 2;
  } else if (c === '=' && next === '>') {
    sep = '='; // =>
    i += 2;
  } else if (c === '=') {
    if (next === '=' || next === '~') return null; // a comparison
    sep = '=';
    i += 1;
  } else if (c === ':') {
    if (next === ':' || (next === '/' && text[i + 2] === '/')) return null; // Foo::Token, scheme://
    sep = ':';
    i += 1;
  } else return null;
  blanks = 0;
  while (isBlank(text[i]) && blanks++ < 16) i++;
  return { end: i, sep };
}

/** `name: DB_PASSWORD` / `"name": "DB_PASSWORD"` / `key=API_TOKEN`: the name is the value of a name/key field. */
function isPairName(text: string, outerStart: number): boolean {
  let j = outerStart;
  let steps = 0;
  while (j > 0 && isBlank(text[j - 1]) && steps++ < 16) j--;
  if (text[j - 1] !== ':' && text[j - 1] !== '=') return false;
  j--;
  steps = 0;
  while (j > 0 && isBlank(text[j - 1]) && steps++ < 16) j--;
  if (text[j - 1] === '"' || text[j - 1] === "'") j--;
  while (text[j - 1] === '\\' && steps++ < 32) j--;
  const word = (k: string) => text.slice(j - k.length, j).toLowerCase() === k && !isNameChar(text.charCodeAt(j - k.length - 1));
  return word('name') || word('key');
}

// After `name: DB_PASSWORD`, the next `value` key before the next `name` key or
// the end of the object.
const PAIR_VALUE_RE = /(?<![A-Za-z0-9_])value(\\{0,15}["']?)[ \t]{0,16}[:=]/i;
const PAIR_STOP_RE = /(?<![A-Za-z0-9_])name\\{0,15}["']?[ \t]{0,16}[:=]|\}/i;

function pairValue(text: string, from: number): Span | null {
  const window = text.slice(from, Math.min(text.length, from + PAIR_WINDOW));
  const stop = PAIR_STOP_RE.exec(window);
  const scope = stop ? window.slice(0, stop.index) : window;
  const m = PAIR_VALUE_RE.exec(scope);
  if (!m) return null;
  const keyEnd = from + m.index + m[0].length - 1; // at the separator
  const separator = separatorAt(text, keyEnd);
  if (!separator) return null;
  const keyStart = from + m.index;
  const { context, indent } = contextBefore(text, keyStart, false, (m[1] ?? '') !== '');
  const quotedKey = (m[1] ?? '') !== '' || text[keyStart - 1] === '"' || text[keyStart - 1] === "'";
  return valueAt(text, separator.end, quotedKey ? 'token' : context, separator.sep, indent);
}

/** Generic rule: names containing a credential keyword. */
export function scanAssignments(text: string, out: Finding[]): void {
  // Every form needs a separator: text without ':' or '=' holds no assignment.
  if (!text.includes('=') && !text.includes(':')) return;
  const re = KEYWORD_RE;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const keywordEnd = m.index + m[0].length;
    // The whole name: back to its start (bounded), forward to its end.
    let nameStart = m.index;
    while (nameStart > 0 && m.index - nameStart < MAX_NAME && isNameChar(text.charCodeAt(nameStart - 1))) {
      // `\nDB_PASSWORD=` inside a JSON string: the name starts after the escape.
      if (text[nameStart - 2] === '\\' && 'nrt'.includes(text[nameStart - 1] ?? '')) break;
      nameStart--;
    }
    let nameEnd = keywordEnd;
    while (nameEnd < text.length && nameEnd - m.index < MAX_NAME && isNameChar(text.charCodeAt(nameEnd))) nameEnd++;
    re.lastIndex = nameEnd; // resume after the name whatever happens below
    if (nameEnd - m.index >= MAX_NAME) continue;
    const name = text.slice(nameStart, nameEnd);

    // Quotes around the name: "name", 'name', \"name\" (JSON inside a string), \\\"name\\\" (one level deeper)…
    let outerStart = nameStart;
    let opened = false;
    if (text[outerStart - 1] === '"' || text[outerStart - 1] === "'") {
      opened = true;
      outerStart--;
      let run = 0;
      while (text[outerStart - 1] === '\\' && run++ < MAX_ESCAPES) outerStart--;
    }
    let after = nameEnd;
    let closed = false;
    let run = 0;
    while (text[after + run] === '\\' && run < MAX_ESCAPES) run++;
    if (text[after + run] === '"' || text[after + run] === "'") {
      closed = true;
      after += run + 1;
    }

    const separator = separatorAt(text, after);
    if (!separator) {
      // Not followed by a separator: maybe the name of a name/value pair (container env).
      if (REFERENCE_SUFFIX.test(name) || !isPairName(text, outerStart)) continue;
      const span = pairValue(text, after);
      if (span) {
        out.push({ detector: 'secret_assignment', start: span.start, end: span.end });
        re.lastIndex = Math.max(re.lastIndex, span.end);
      }
      continue;
    }
    if (REFERENCE_SUFFIX.test(name)) continue;
    const { context, indent } = contextBefore(text, outerStart, opened, closed);
    const span = valueAt(text, separator.end, context, separator.sep, indent);
    if (!span) continue;
    out.push({ detector: 'secret_assignment', start: span.start, end: span.end });
    re.lastIndex = Math.max(re.lastIndex, span.end);
  }
}

// Google service-account JSON: the private key and its id, as JSON members (also
// escaped inside another JSON string). The PEM body alone is the private_key
// detector's; this masks the whole member value, so a key split, truncated or
// re-encoded inside the string still does not show.
const GCP_MEMBER_RE = /(\\{0,15})"private_key(?:_id)?\1"[ \t]{0,16}:[ \t]{0,16}\1"/g;

export function scanServiceAccount(text: string, out: Finding[]): void {
  if (!text.includes('_k') || !text.includes('private_key')) return; // '_' is rare: the cheap search first
  const re = GCP_MEMBER_RE;
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const from = m.index + m[0].length;
    const [end, scanned] = quotedEnd(text, from, '"', (m[1] ?? '').length);
    if (end > from) out.push({ detector: 'gcp_service_account', start: from, end });
    re.lastIndex = Math.max(scanned, from);
  }
}
