// Linear time, measured as a ratio: every detector together scans hostile
// inputs (1 MB of one token prefix repeated, `a=` a hundred thousand times,
// long runs of base64, nested and escaped quotes, keyword floods) of size n and
// 8n, and the larger must cost about eight times the smaller, not sixty-four. Only
// the ratio of two timings taken in the same test is asserted, never a
// duration; each input is scanned several times and the fastest run counts, so
// a pause of the machine does not decide. The test timeout is the smoke check
// that every scan finishes at all.

import { describe, expect, it } from 'vitest';
import { DETECTOR_NAMES, findSensitive } from '../../src/masking/detectors.js';

const N = 128 * 1024;
/** The large input is this many times the small one: far apart, so a loaded machine's noise cannot blur linear into quadratic. */
const GROWTH = 8;
/**
 * Linear is 8 (sorting many findings adds a log factor, ~9); quadratic would
 * be 64. The margin absorbs cache and GC effects on a busy 2-core machine (a
 * full suite run measured 11 for a linear detector at 4n, where the limit was 10).
 */
const MAX_RATIO = 24;

/** `unit` repeated to exactly `size` characters. */
const fill = (unit: string, size: number): string => unit.repeat(Math.ceil(size / unit.length)).slice(0, size);

/** Base64 alphabet, cycled: a run with no separator anywhere. */
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// [name, input of the given size]
const HOSTILE: ReadonlyArray<readonly [string, (size: number) => string]> = [
  // The brief's cases.
  ['sk_live_ repeated', (n) => fill('sk_' + 'live_', n)],
  ['a= repeated', (n) => fill('a=', n)],
  ['one long base64 run', (n) => fill(BASE64, n)],
  ['nested escaped quotes after a name', (n) => `"password": "${fill('\\"', n)}`],
  ['nested quotes after a name', (n) => `password=${fill('"', n)}`],
  ['quote runs of growing depth', (n) => fill('\\\\\\"password\\\\\\": \\\\\\"', n)],
  // Each family's prefix, flooded, and followed by a run that never ends.
  ...(
    [
      'sk_' + 'live_',
      'whsec_',
      'ghp_',
      'ghs_1_',
      'github_pat_',
      'glpat-',
      'GR1348941',
      'xoxb-1-',
      'xoxa-',
      'xapp-1-',
      'AIza',
      'sk-',
      'sk-proj-',
      'sk-ant-api03-',
      'npm_',
      'SG.',
      'SK',
      'AC',
      'AccountKey=',
      '&sig=',
      'hooks.slack.com/services/',
      'Authorization: Bearer ',
      'authorization=',
    ] as const
  ).flatMap((prefix): Array<readonly [string, (size: number) => string]> => [
    [`${prefix} flood`, (n) => fill(prefix, n)],
    [`${prefix} then an endless run`, (n) => prefix + fill(ALNUM, n - prefix.length)],
    [`${prefix} with separators`, (n) => fill(`${prefix}${ALNUM.slice(0, 12)} `, n)],
  ]),
  ['Twilio SID + token pairs without end', (n) => fill(`AC${'a'.repeat(32)} `, n)],
  ['Slack segments without end', (n) => 'xoxb-1' + fill('-a', n)],
  // The generic rule.
  ['keyword flood', (n) => fill('password', n)],
  ['keyword names without end', (n) => fill('secret_', n)],
  ['assignments without blanks', (n) => fill('password=', n)],
  ['YAML keys without values', (n) => fill('token: ', n)],
  ['env names without values', (n) => fill('- name: DB_PASSWORD\n', n)],
  ['JSON env pairs without values', (n) => fill('{"name":"API_TOKEN",', n)],
  ['a block scalar without end', (n) => `password: |\n${fill('    x\n', n)}`],
  ['mask markers without end', (n) => `password: ${fill('[masked:x] ', n)}`],
  ['angle-bracket values', (n) => fill(`password: <${'a '.repeat(60)}\n`, n)],
  ['escaped newlines before names', (n) => fill('\\nSECRET=', n)],
  ['service-account members', (n) => fill('"private_key": "', n)],
  ['escaped service-account members', (n) => fill('\\"private_key_id\\":\\"', n)],
  // The detectors that were there before the catalog.
  ['digits', (n) => fill('1', n)],
  ['grouped digits', (n) => fill('4111 ', n)],
  ['at signs', (n) => fill('@', n)],
  ['long local parts', (n) => fill(`${'a'.repeat(70)}@`, n)],
  ['eyJ runs', (n) => fill('eyJ', n)],
  ['BEGIN markers', (n) => fill('-----BEGIN PRIVATE KEY-----', n)],
  ['END markers', (n) => fill('-----END PRIVATE KEY-----', n)],
  ['whole key blocks', (n) => fill('-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n', n)],
  ['body lines before END markers', (n) => fill(`${'QUJDREVG\n'.repeat(20)}-----END PRIVATE KEY-----\n`, n)],
  ['scheme separators', (n) => fill('a://b:', n)],
  ['iban-like groups', (n) => `GB82${fill(' ABCD', n - 4)}`],
];

type Scan = (text: string) => unknown;

const allDetectors: Scan = (text) => findSensitive(text, DETECTOR_NAMES);

/** One timed pass: `repeat` scans of `text`, in ms. */
function timed(scan: Scan, text: string, repeat: number): number {
  const t0 = performance.now();
  for (let i = 0; i < repeat; i++) scan(text);
  return performance.now() - t0;
}

/**
 * How much longer `scan` takes on `large` (GROWTH× the size) than on `small`: the
 * fastest of interleaved passes of each (so a busy machine slows both sizes
 * alike), and the smallest ratio of up to six such measurements. Noise only
 * ever adds time, so the smallest ratio is the truest; a quadratic scan stays
 * near 64 in every measurement and still fails.
 */
function growth(scan: Scan, small: string, large: string): number {
  timed(scan, small, 1); // warm up
  const once = timed(scan, small, 1);
  // Enough repeats that the small input is measurable, the same for both sizes.
  const repeat = Math.min(64, Math.max(1, Math.ceil(4 / Math.max(once, 0.05))));
  let ratio = Infinity;
  for (let attempt = 0; attempt < 6 && ratio >= MAX_RATIO; attempt++) {
    let bestSmall = Infinity;
    let bestLarge = Infinity;
    for (let r = 0; r < 5; r++) {
      bestSmall = Math.min(bestSmall, timed(scan, small, repeat));
      bestLarge = Math.min(bestLarge, timed(scan, large, repeat));
    }
    ratio = Math.min(ratio, bestLarge / bestSmall);
  }
  return ratio;
}

describe('the measurement itself', () => {
  it('tells a quadratic scan from a linear one', () => {
    // From every position, look ahead to the end for a character that is not there — in plain
    // JavaScript, one comparison per step: String.indexOf's memchr made the small size mostly
    // call overhead, and a loaded machine then measured a quadratic scan at 5x per 4x.
    const quadratic: Scan = (text) => {
      let found = 0;
      for (let i = 0; i < text.length; i++) for (let j = i; j < text.length; j++) if (text.charCodeAt(j) === 35) found++;
      return found;
    };
    const linear: Scan = (text) => text.indexOf('#');
    const small = fill('a', 2048);
    const large = fill('a', GROWTH * 2048);
    expect(growth(quadratic, small, large)).toBeGreaterThan(MAX_RATIO);
    expect(growth(linear, fill('a', N), fill('a', GROWTH * N))).toBeLessThan(MAX_RATIO);
  });
});

describe('detectors run in linear time (n vs 8n)', () => {
  it.each(HOSTILE)(
    '%s',
    (_name, make) => {
      const small = make(N);
      const large = make(GROWTH * N);
      expect(small.length).toBeGreaterThanOrEqual(N - 16);
      expect(large.length).toBeGreaterThanOrEqual(GROWTH * N - 16);
      const ratio = growth(allDetectors, small, large);
      expect(ratio, `${GROWTH}n took ${ratio.toFixed(2)}× the time of n`).toBeLessThan(MAX_RATIO);
    },
    60_000,
  );
});
