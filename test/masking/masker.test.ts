// The mask stage's bookkeeping: every mask is counted (column rules, detectors,
// operator patterns and a backend's own field masks), counts merge, a refusal
// keeps exactly the caller's own subject and groups readable, and the
// `detectors:` list of a masking rule accepts `all`, groups and names.

import { describe, expect, it } from 'vitest';
import type { TabularResult } from '../../src/backends/backend.js';
import { DETECTOR_GROUPS, DETECTOR_NAMES } from '../../src/masking/detectors.js';
import { BUILT_IN_RULE, createMasker, mergeMaskCounts, type MaskCount } from '../../src/masking/masker.js';
import { maskingRuleSchema, type MaskingRule } from '../../src/masking/rules.js';
import { fakeSecrets } from '../support/fake-secrets.js';

const key = new TextEncoder().encode('masker-test-key');
const rule = (over: Partial<MaskingRule> = {}): MaskingRule => ({
  name: 'r',
  match: {},
  columns: [],
  detectors: [...DETECTOR_NAMES],
  patterns: [],
  style: 'redact',
  ...over,
});

const result = (rows: string[][], over: Partial<TabularResult> = {}): TabularResult => ({
  columns: [{ name: 'output', type: 'document', sources: [] }],
  rows,
  command: 'GET',
  affectedRows: null,
  truncated: null,
  notices: [],
  bytes: 0,
  ...over,
});

const total = (masked: readonly MaskCount[], by?: MaskCount['by']): number =>
  masked.filter((m) => by === undefined || m.by === by).reduce((n, m) => n + m.count, 0);

describe('masked counts', () => {
  it('a backend’s field masks are counted next to the detectors’', () => {
    const masker = createMasker([rule()], key);
    const { masked } = masker.maskResult(
      result([['data:\n  password: [masked:secret]\n  token: [masked:secret]\nnote: mail ops@example.com']], {
        fieldMasks: [
          { target: 'secret.data', count: 2 },
          { target: 'managedFields', count: 1 },
        ],
      }),
    );
    expect(masked).toEqual([
      { target: 'secret.data', by: 'field', rule: BUILT_IN_RULE, count: 2 },
      { target: 'managedFields', by: 'field', rule: BUILT_IN_RULE, count: 1 },
      { target: 'email', by: 'detector', rule: 'r', count: 1 },
    ]);
  });

  it('values masked already are not masked or counted again by the generic rule', () => {
    const masker = createMasker([rule()], key);
    const text = 'DB_PASSWORD:  [masked:env]\n"password": "[masked:secret]"';
    expect(masker.maskText(text, null)).toEqual({ text, masked: [] });
  });

  it('operator patterns and detectors each count their own masks', () => {
    const masker = createMasker([rule({ name: 'ssh', patterns: ['(?i)(password|passwd|secret|token|api[_-]?key)\\s*[=:]\\s*(\\S+)'] })], key);
    const { text, masked } = masker.maskText(SECRETS.files['app.env'], null);
    // The README's pattern wants `secret` right before `=`: STRIPE_SECRET_KEY is the stripe_key detector's.
    expect(text).toContain('STRIPE_SECRET_KEY=[masked:stripe_key]');
    expect(text).toContain('DB_PASSWORD=[masked:pattern:ssh]');
    const pattern = masked.find((m) => m.target === 'pattern:ssh');
    expect(pattern?.count).toBeGreaterThan(0);
    expect(masked.find((m) => m.target === 'stripe_key')?.count).toBe(2);
  });

  it('mergeMaskCounts adds counts of the same target, kind and rule', () => {
    const a: MaskCount[] = [
      { target: 'email', by: 'detector', rule: 'r', count: 2 },
      { target: 'secret.data', by: 'field', rule: BUILT_IN_RULE, count: 1 },
    ];
    const b: MaskCount[] = [
      { target: 'email', by: 'detector', rule: 'r', count: 3 },
      { target: 'email', by: 'detector', rule: 'other', count: 1 },
    ];
    expect(mergeMaskCounts(a, b)).toEqual([
      { target: 'email', by: 'detector', rule: 'r', count: 5 },
      { target: 'secret.data', by: 'field', rule: BUILT_IN_RULE, count: 1 },
      { target: 'email', by: 'detector', rule: 'other', count: 1 },
    ]);
    expect(a[0]?.count).toBe(2); // inputs untouched
  });
});

const SECRETS = fakeSecrets();

describe('the caller’s own identity in a refusal', () => {
  const masker = createMasker([rule()], key);
  const exempt = ['dev@example.com', 'developers'];

  it('is kept exactly; every other finding is still masked', () => {
    const message = 'No rule allows write access (delete) on kubectl/staging for dev@example.com. Ask ops@example.com.';
    const { text, masked } = masker.maskText(message, null, { exempt });
    expect(text).toBe('No rule allows write access (delete) on kubectl/staging for dev@example.com. Ask [masked:email].');
    expect(total(masked)).toBe(1);
  });

  it('only whole findings equal to the subject: a longer address that contains it is masked', () => {
    const { text } = masker.maskText('User "dev@example.com.evil.io" cannot list pods; User "xdev@example.com" neither', null, { exempt });
    expect(text).not.toContain('dev@example.com.evil.io');
    expect(text).not.toContain('xdev@example.com');
  });

  it('without the exemption (any other text) the subject is masked as usual', () => {
    expect(masker.maskText('for dev@example.com.', null).text).toBe('for [masked:email].');
  });

  it('applies to operator patterns too, and to nothing else', () => {
    const withPattern = createMasker([rule({ name: 'p', detectors: [], patterns: ['(?i)user\\s+"([^"]+)"'] })], key);
    expect(withPattern.maskText('User "dev@example.com" cannot list pods', null, { exempt }).text).toBe('User "dev@example.com" cannot list pods');
    expect(withPattern.maskText('User "admin@example.com" cannot list pods', null, { exempt }).text).toBe('User "[masked:pattern:p]" cannot list pods');
  });
});

describe('selecting detectors in a masking rule', () => {
  const parse = (detectors: unknown) => maskingRuleSchema.parse({ name: 'x', detectors }).detectors;

  it('all, a group, names and groups mixed, each detector once in catalog order', () => {
    expect(parse('all')).toEqual([...DETECTOR_NAMES]);
    expect(parse('secrets')).toEqual([...DETECTOR_GROUPS.secrets]);
    expect(parse(['pii'])).toEqual(['email', 'credit_card', 'ssn', 'phone', 'iban']);
    expect(parse(['secret_assignment', 'email', 'stripe_key', 'email'])).toEqual(['email', 'stripe_key', 'secret_assignment']);
    expect(parse(['pii', 'jwt'])).toEqual(['email', 'credit_card', 'ssn', 'phone', 'iban', 'jwt']);
    expect(parse(undefined)).toEqual([]);
  });

  it('the groups split the catalog: pii are personal data, secrets everything else', () => {
    expect(new Set([...DETECTOR_GROUPS.pii, ...DETECTOR_GROUPS.secrets])).toEqual(new Set(DETECTOR_NAMES));
    expect(DETECTOR_GROUPS.pii.filter((d) => DETECTOR_GROUPS.secrets.includes(d))).toEqual([]);
  });

  it('rejects an unknown name', () => {
    expect(maskingRuleSchema.safeParse({ name: 'x', detectors: ['stripe'] }).success).toBe(false);
    expect(maskingRuleSchema.safeParse({ name: 'x', detectors: 'everything' }).success).toBe(false);
  });
});
