// Content detectors: find spans of sensitive data (emails, card numbers,
// secrets, ...) inside free text. Pure and synchronous: no I/O and no policy.
// The caller decides which detectors apply to a cell and how each span is
// replaced (see styles.ts); this module only says where the sensitive bytes are.
// Personal data and the original secret detectors live here; provider token
// formats come from the secret catalog (catalog.ts, ported from gitleaks and
// secretlint) and credentials found by their name from assignments.ts.

import { ASSIGNMENT_DETECTOR_NAMES, scanAssignments, scanServiceAccount, type AssignmentDetectorName } from './assignments.js';
import { SECRET_DETECTOR_NAMES, SECRET_SCANNERS, type SecretDetectorName } from './catalog.js';

type PiiDetectorName = 'email' | 'credit_card' | 'ssn' | 'phone' | 'iban';

/** Personal data, as opposed to credentials: the `pii` group. */
const PII_DETECTOR_NAMES: readonly PiiDetectorName[] = Object.freeze(['email', 'credit_card', 'ssn', 'phone', 'iban'] as const);

export type DetectorName = PiiDetectorName | 'jwt' | 'aws_key' | 'private_key' | 'password_in_url' | SecretDetectorName | AssignmentDetectorName;

// The order breaks ties between two detectors that find the same span (see
// findSensitive): shape detectors before the name-based rule, so
// `STRIPE_SECRET_KEY=sk_live_…` counts as stripe_key, not secret_assignment.
export const DETECTOR_NAMES: readonly DetectorName[] = Object.freeze([
  ...PII_DETECTOR_NAMES,
  'jwt',
  'aws_key',
  'private_key',
  'password_in_url',
  ...SECRET_DETECTOR_NAMES,
  ...ASSIGNMENT_DETECTOR_NAMES,
] as const);

/** Names that select several detectors at once in a masking rule's `detectors:` list. */
export const DETECTOR_GROUP_NAMES = Object.freeze(['pii', 'secrets'] as const);
export type DetectorGroup = (typeof DETECTOR_GROUP_NAMES)[number];

export function isDetectorGroup(name: string): name is DetectorGroup {
  return (DETECTOR_GROUP_NAMES as readonly string[]).includes(name);
}

/** `pii`: personal data; `secrets`: every credential detector (the original four, the catalog, the generic rule). */
export const DETECTOR_GROUPS: Readonly<Record<DetectorGroup, readonly DetectorName[]>> = Object.freeze({
  pii: PII_DETECTOR_NAMES,
  secrets: Object.freeze(DETECTOR_NAMES.filter((name) => !(PII_DETECTOR_NAMES as readonly string[]).includes(name))),
});

/** A [start, end) span of the scanned text that must be masked. */
export interface Finding {
  readonly detector: DetectorName;
  readonly start: number;
  readonly end: number;
}

// Every scan runs on every text cell of every result, so each detector is a
// single pass of one global regex (plus a cheap substring pre-check where one
// exists). All quantifiers are bounded and no pattern nests ambiguous
// repetitions, so there is no catastrophic backtracking on hostile input.
// The regexes are module-level and stateful (lastIndex); scan() resets them and
// everything here is synchronous, so sharing them is safe.

type Scanner = (text: string, out: Finding[]) => void;

function scan(re: RegExp, text: string, onMatch: (m: RegExpExecArray) => void): void {
  re.lastIndex = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) onMatch(m);
}

// --- email -----------------------------------------------------------------

// local@domain.tld. The local part must start at the start of its run (the
// lookbehind) so the engine does not retry from every character of a long word.
const EMAIL_RE = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])/g;

// "scheme://" followed by non-delimiters up to the end of the string, i.e. the
// candidate sits in the authority part of a URL.
const URL_AUTHORITY_TAIL_RE = /:\/\/[^\s/?#]{0,256}$/;

const scanEmail: Scanner = (text, out) => {
  if (!text.includes('@')) return;
  scan(EMAIL_RE, text, (m) => {
    // URL userinfo ("scheme://user:pass@host") is a credential, not an address:
    // password_in_url masks exactly the password, whereas "pass@host" taken as
    // an email would win the overlap (same start, longer) and mask the host
    // instead. Checked here, once per candidate, rather than as a lookbehind the
    // engine would evaluate at every position of the text.
    if (m.index >= 3 && URL_AUTHORITY_TAIL_RE.test(text.slice(Math.max(0, m.index - 260), m.index))) return;
    out.push({ detector: 'email', start: m.index, end: m.index + m[0].length });
  });
};

// --- credit card -------------------------------------------------------------

/** Luhn (mod 10) check over a string of ASCII digits only; anything else is false. */
export function luhnValid(digits: string): boolean {
  if (!/^\d{2,}$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

// Either one contiguous run of 13-19 digits, or the printed groupings
// 4-4-4-(1..4)[-3] and 4-6-(4|5) (Amex/Diners) with one consistent separator.
// The first digit must be 2-6: every major payment network lives there, while
// 13-digit epoch-millisecond timestamps and most snowflake ids start with 1, and
// a 1-in-10 Luhn pass on those would otherwise mask ordinary timestamps.
// Alphanumeric boundaries keep digit runs inside hex digests, ids and longer
// numbers from matching (a contiguous run longer than 19 is never a card).
const CARD_RE = /(?<![A-Za-z0-9])(?:[2-6]\d{12,18}|[2-6]\d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{3})?|[2-6]\d{3}([ -])\d{6}\2\d{4,5})(?![A-Za-z0-9])/g;

const scanCard: Scanner = (text, out) => {
  scan(CARD_RE, text, (m) => {
    const start = m.index;
    const raw = m[0];
    const digits = raw.replace(/[ -]/g, '');
    if (luhnValid(digits)) {
      out.push({ detector: 'credit_card', start, end: start + raw.length });
      return;
    }
    // A grouped 16-digit card followed by a 3-digit group (typically the CVV:
    // "4111 1111 1111 1111 123") reads as a 19-digit candidate that fails Luhn.
    // Retry the 16-digit prefix rather than leak the card number.
    if (m[1] !== undefined && digits.length === 19 && luhnValid(digits.slice(0, 16))) {
      out.push({ detector: 'credit_card', start, end: start + 19 });
      return;
    }
    // Let a later group start a candidate ("1234 4111 1111 1111 1111").
    CARD_RE.lastIndex = start + 1;
  });
};

// --- US social security number ---------------------------------------------

// AAA-GG-SSSS (or with spaces, same separator twice). Area 000, 666 and 900-999,
// group 00 and serial 0000 are never issued, which rules out many lookalikes.
// Not part of a longer digit-dash run ("1-123-45-6789-0").
const SSN_RE = /(?<![A-Za-z0-9])(?<!\d-)(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![A-Za-z0-9])(?!-\d)/g;

const scanSsn: Scanner = (text, out) => {
  scan(SSN_RE, text, (m) => {
    out.push({ detector: 'ssn', start: m.index, end: m.index + m[0].length });
  });
};

// --- phone -----------------------------------------------------------------

// Only formatted numbers: a bare digit run is indistinguishable from an order
// id or an amount, so it is never treated as a phone number.
//
// E.164: '+' and 8-15 digits, optionally separated by one space/dash/dot and
// parentheses. Each repetition consumes exactly one digit, so the pattern is
// unambiguous; the final element is a digit so a closing bracket of the
// surrounding text is not swallowed.
const E164_RE = /(?<![A-Za-z0-9_+])\+[1-9](?:[ .-]?\(?\d\)?){6,13}[ .-]?\(?\d(?![A-Za-z0-9_])/g;

// NANP: (415) 555-0132, 415-555-0132, 415.555.0132, 415 555 0132, 1-415-555-0132.
// Unparenthesised forms must use the same separator twice. Not preceded by a
// word character, '.', '+' or '-' and not followed by '.digit'/'-digit', which
// keeps IPv4 addresses, version strings and dotted/dashed ids out.
const NANP_RE = /(?<![A-Za-z0-9_.+-])(?:1[ .-])?(?:\(\d{3}\)[ .-]?\d{3}[ .-]?\d{4}|\d{3}([ .-])\d{3}\1\d{4})(?![A-Za-z0-9_])(?![.-]\d)/g;

const scanPhone: Scanner = (text, out) => {
  if (text.includes('+')) {
    scan(E164_RE, text, (m) => {
      const raw = m[0];
      // "+12345678.90" is a signed amount, not a phone number.
      const separators = raw.slice(1).replace(/\d/g, '');
      if (separators === '.') return;
      out.push({ detector: 'phone', start: m.index, end: m.index + raw.length });
    });
  }
  scan(NANP_RE, text, (m) => {
    out.push({ detector: 'phone', start: m.index, end: m.index + m[0].length });
  });
};

// --- IBAN ------------------------------------------------------------------

/** ISO 13616 check: 15-34 chars, country letters, check digits, mod-97 == 1. Spaces are ignored. */
export function ibanValid(s: string): boolean {
  const iban = s.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (let i = 0; i < rearranged.length; i++) {
    const code = rearranged.charCodeAt(i);
    // Digits count as themselves, letters as 10..35 (two decimal digits).
    if (code <= 57) remainder = (remainder * 10 + (code - 48)) % 97;
    else remainder = (remainder * 100 + (code - 55)) % 97;
  }
  return remainder === 1;
}

// Electronic (contiguous) or print format (groups of four separated by single
// spaces, last group shorter). Uppercase only, as ISO 13616 writes it; the
// mod-97 check is what makes a match trustworthy, length is checked in code.
const IBAN_RE = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,8}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])/g;

const scanIban: Scanner = (text, out) => {
  scan(IBAN_RE, text, (m) => {
    let candidate = m[0];
    // A grouped IBAN may be followed by a short uppercase word that the pattern
    // took as one more group ("BE68 5390 0754 7034 AND"); drop trailing groups
    // until the checksum holds or the candidate is too short.
    for (;;) {
      if (ibanValid(candidate)) {
        out.push({ detector: 'iban', start: m.index, end: m.index + candidate.length });
        return;
      }
      const lastSpace = candidate.lastIndexOf(' ');
      if (lastSpace < 0) return;
      candidate = candidate.slice(0, lastSpace);
      if (candidate.replace(/ /g, '').length < 15) return;
    }
  });
};

// --- JWT -------------------------------------------------------------------

// header.payload.signature, base64url; header and payload are JSON objects so
// both start with "eyJ" ('{"'). The signature may be empty (alg "none"): the
// payload is still sensitive. No trailing boundary: if a segment ever exceeds
// the bound, masking a truncated span is better than not masking at all.
const JWT_RE = /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{1,16384}\.eyJ[A-Za-z0-9_-]{1,65536}\.[A-Za-z0-9_-]{0,16384}/g;

const scanJwt: Scanner = (text, out) => {
  if (!text.includes('eyJ')) return;
  scan(JWT_RE, text, (m) => {
    out.push({ detector: 'jwt', start: m.index, end: m.index + m[0].length });
  });
};

// --- AWS keys --------------------------------------------------------------

const AWS_ACCESS_KEY_ID_RE = /(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])/g;

// A secret access key is 40 base64-ish chars, which on its own is
// indistinguishable from any other token, so it only counts after a context
// word and '=' or ':' (env files, INI, YAML, JSON incl. escaped quotes, and the
// "SecretAccessKey" field of AWS CLI/SDK output). Only the value is masked.
const AWS_SECRET_RE =
  /(?:aws_?secret(?:_?access)?(?:_?key)?|secret_?access_?key)[\\"']{0,3}[ \t]{0,8}[:=][ \t]{0,8}[\\"']{0,3}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/gi;

const scanAwsKey: Scanner = (text, out) => {
  if (text.includes('A')) {
    scan(AWS_ACCESS_KEY_ID_RE, text, (m) => {
      out.push({ detector: 'aws_key', start: m.index, end: m.index + m[0].length });
    });
  }
  if (!/secret/i.test(text)) return;
  scan(AWS_SECRET_RE, text, (m) => {
    const value = m[1] ?? '';
    const end = m.index + m[0].length;
    out.push({ detector: 'aws_key', start: end - value.length, end });
  });
};

// --- private keys ----------------------------------------------------------

// The whole PEM/OpenSSH/PGP block, BEGIN line through the matching END line.
// If the END line is missing (the value was truncated, or the END label does
// not match) the block runs to the end of the text: masking too much is safe,
// leaking the key body is not. The lazy body only stops at END or at the end of
// the input, so each BEGIN is scanned once and the whole pass stays linear.
const PRIVATE_KEY_RE = /-----BEGIN ((?:[A-Z0-9]{1,16} ){0,3})PRIVATE KEY( BLOCK)?-----[\s\S]*?(?:-----END \1PRIVATE KEY\2-----|$)/g;

// An END line with no BEGIN before it: the text starts inside the block (`tail`
// of a key file, a log cut at a size limit). The body lines just above it are
// the key: the span runs back over every line made of base64 (or a PEM header
// such as Proc-Type), through real or escaped (\n inside a JSON string) line
// breaks. Each END is scanned back once and stops at the first other line, so
// the pass stays linear.
const PRIVATE_KEY_END_RE = /-----END (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY(?: BLOCK)?-----/g;
const PEM_BODY_LINE = /^(?:[A-Za-z0-9+/=]{4,100}|(?:Proc-Type|DEK-Info|Comment|Version): [^\n]{0,100})$/;

/** Start of the run of key body lines that ends at `end` (the start of an END line). */
function bodyStart(text: string, end: number): number {
  let start = end;
  for (;;) {
    // The line break before `start`: a real one, or an escaped \n / \r\n.
    let lineEnd = start;
    if (text[lineEnd - 1] === '\n') lineEnd -= text[lineEnd - 2] === '\r' ? 2 : 1;
    else if (text[lineEnd - 1] === 'n' && text[lineEnd - 2] === '\\') lineEnd -= text.slice(lineEnd - 4, lineEnd - 2) === '\\r' ? 4 : 2;
    else return start;
    let lineStart = lineEnd;
    while (lineStart > 0 && lineEnd - lineStart <= 100 && text[lineStart - 1] !== '\n' && !(text[lineStart - 1] === 'n' && text[lineStart - 2] === '\\'))
      lineStart--;
    if (!PEM_BODY_LINE.test(text.slice(lineStart, lineEnd))) return start;
    start = lineStart;
  }
}

const scanPrivateKey: Scanner = (text, out) => {
  if (!text.includes('PRIVATE KEY')) return;
  const blocks: Finding[] = [];
  scan(PRIVATE_KEY_RE, text, (m) => {
    blocks.push({ detector: 'private_key', start: m.index, end: m.index + m[0].length });
  });
  out.push(...blocks);
  if (!text.includes('-----END ')) return;
  let next = 0; // blocks and END lines both come in text order: one pointer keeps this linear
  scan(PRIVATE_KEY_END_RE, text, (m) => {
    while (next < blocks.length && (blocks[next]?.end ?? 0) <= m.index) next++;
    const block = blocks[next];
    if (block && block.start <= m.index) return; // inside a BEGIN…END block
    const start = bodyStart(text, m.index);
    if (start < m.index) out.push({ detector: 'private_key', start, end: m.index + m[0].length });
  });
};

// --- password in URL -------------------------------------------------------

// scheme://user:password@host. Only the password is the span, so the agent still
// sees which host and account a connection string points at. The user part may
// contain '@' (an email as user name) and the password may too: like URL
// parsers, the last '@' before the path ends the userinfo.
const PASSWORD_IN_URL_RE = /(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/[^\s:/?#"'<>]{0,256}:([^\s/?#"'<>]{1,256})@/g;

const scanPasswordInUrl: Scanner = (text, out) => {
  if (!text.includes('://')) return;
  scan(PASSWORD_IN_URL_RE, text, (m) => {
    const password = m[1] ?? '';
    const end = m.index + m[0].length - 1; // before the '@'
    // GitHub's https://TOKEN:x-oauth-basic@github.com/ form (secretlint's npm rule):
    // the user name is the credential, the "password" a fixed word.
    if (password === 'x-oauth-basic') {
      const userStart = m[0].indexOf('://') + 3 + m.index;
      const userEnd = end - password.length - 1;
      if (userEnd > userStart) out.push({ detector: 'password_in_url', start: userStart, end: userEnd });
      return;
    }
    out.push({ detector: 'password_in_url', start: end - password.length, end });
  });
};

// --- entry point -----------------------------------------------------------

const SCANNERS: Readonly<Record<DetectorName, Scanner>> = {
  email: scanEmail,
  credit_card: scanCard,
  ssn: scanSsn,
  phone: scanPhone,
  iban: scanIban,
  jwt: scanJwt,
  aws_key: scanAwsKey,
  private_key: scanPrivateKey,
  password_in_url: scanPasswordInUrl,
  ...SECRET_SCANNERS,
  gcp_service_account: scanServiceAccount,
  secret_assignment: scanAssignments,
};

const RANK: Readonly<Record<DetectorName, number>> = Object.fromEntries(DETECTOR_NAMES.map((name, i) => [name, i])) as Record<DetectorName, number>;

interface Plan {
  readonly names: readonly DetectorName[];
  readonly scanners: readonly Scanner[];
}

// Callers pass the same detector list for every cell of a result, so its
// validation and de-duplication are done once per list, not once per cell.
// The cached plan keeps a copy of the names and is used only while the list
// still holds exactly those names (a caller may reuse and mutate an array).
const plans = new WeakMap<readonly DetectorName[], Plan>();

function planFor(detectors: readonly DetectorName[]): Plan {
  const cached = plans.get(detectors);
  if (cached && cached.names.length === detectors.length && cached.names.every((name, i) => detectors[i] === name)) return cached;
  const scanners: Scanner[] = [];
  const done = new Set<DetectorName>();
  for (const name of detectors) {
    if (!Object.hasOwn(SCANNERS, name)) throw new TypeError(`Unknown detector: ${String(name)}`);
    if (done.has(name)) continue;
    done.add(name);
    scanners.push(SCANNERS[name]);
  }
  const plan = { names: [...detectors], scanners };
  plans.set(detectors, plan);
  return plan;
}

/** All findings, sorted by start, non-overlapping (when spans overlap keep the earliest-starting/longest). */
export function findSensitive(text: string, detectors: readonly DetectorName[]): Finding[] {
  const found: Finding[] = [];
  for (const scanner of planFor(detectors).scanners) scanner(text, found);
  if (found.length < 2) return found;
  // Ties (same start and end from two detectors) break by DETECTOR_NAMES order
  // so the output is deterministic.
  found.sort((a, b) => a.start - b.start || b.end - a.end || RANK[a.detector] - RANK[b.detector]);
  const result: Finding[] = [];
  let lastEnd = 0;
  for (const f of found) {
    if (f.start < lastEnd) continue;
    result.push(f);
    lastEnd = f.end;
  }
  return result;
}
