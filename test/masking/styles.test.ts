// Table-driven tests for mask styles: the exact replacement text of redact,
// last4 and hash, the last4 fallback for short values, HMAC keying, and the
// TypeErrors for programmer mistakes.

import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MASK_STYLES, maskValue, type MaskStyle } from '../../src/masking/styles.js';

const KEY = new TextEncoder().encode('test-masking-key-0123456789abcdef');
const OTHER_KEY = new TextEncoder().encode('another-masking-key-fedcba987654');

function expectedHash(key: Uint8Array, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('hex').slice(0, 16);
}

describe('MASK_STYLES', () => {
  it('lists the three styles', () => {
    expect([...MASK_STYLES]).toEqual(['redact', 'last4', 'hash']);
  });
});

describe('maskValue: redact', () => {
  it.each([
    ['alice@example.com', 'email', '[masked:email]'],
    ['4111111111111111', 'credit_card', '[masked:credit_card]'],
    ['x', 'customers.ssn', '[masked:customers.ssn]'],
    ['', 'notes', '[masked:notes]'],
    ['a'.repeat(10_000), 'blob', '[masked:blob]'],
  ] as const)('%s as %s -> %s', (value, label, expected) => {
    expect(maskValue(value, 'redact', KEY, label)).toBe(expected);
  });

  it('does not reveal the length of the value', () => {
    expect(maskValue('ab', 'redact', KEY, 'x')).toBe(maskValue('abcdefghijklmnop', 'redact', KEY, 'x'));
  });
});

describe('maskValue: last4', () => {
  it.each([
    ['4111111111111111', 'credit_card', '[masked:credit_card…1111]'],
    ['4111-1111-1111-1234', 'credit_card', '[masked:credit_card…1234]'],
    ['5500 0000 0000 0004', 'card', '[masked:card…0004]'],
    ['GB82WEST12345698765432', 'iban', '[masked:iban…5432]'],
    ['DE89 3704 0044 0532 0130 00', 'iban', '[masked:iban…3000]'], // separators are skipped
    ['alice@example.com', 'email', '[masked:email…ecom]'],
    ['(415) 555-0132', 'phone', '[masked:phone…0132]'], // 10 alphanumerics
    ['12345678', 'code', '[masked:code…5678]'], // exactly 8: last4 allowed
    ['1234567', 'code', '[masked:code]'], // 7: falls back to redact
    ['123-45-6789', 'ssn', '[masked:ssn…6789]'], // 9 digits
    ['A1B2C3', 'short', '[masked:short]'], // 4 of 6 would not be masking
    ['--__--**', 'punct', '[masked:punct]'], // no alphanumerics at all
    ['', 'empty', '[masked:empty]'],
    ['Jürgen-Müller-Straße', 'street', '[masked:street…raße]'], // non-ASCII letters count
  ] as const)('%s as %s -> %s', (value, label, expected) => {
    expect(maskValue(value, 'last4', KEY, label)).toBe(expected);
  });
});

describe('maskValue: hash', () => {
  it.each([
    ['alice@example.com', 'email'],
    ['123-45-6789', 'ssn'],
    ['', 'empty'],
    ['日本語のテキスト', 'notes'],
  ] as const)('%s as %s is the truncated HMAC-SHA256', (value, label) => {
    const out = maskValue(value, 'hash', KEY, label);
    expect(out).toBe(`[hash:${label}:${expectedHash(KEY, value)}]`);
    expect(out).toMatch(/^\[hash:[^:]+:[0-9a-f]{16}\]$/);
  });

  it('gives equal output for equal values under the same key', () => {
    expect(maskValue('alice@example.com', 'hash', KEY, 'email')).toBe(maskValue('alice@example.com', 'hash', KEY, 'email'));
  });

  it('gives different output for different values', () => {
    expect(maskValue('alice@example.com', 'hash', KEY, 'email')).not.toBe(maskValue('bob@example.com', 'hash', KEY, 'email'));
  });

  it('gives different output under a different key', () => {
    expect(maskValue('alice@example.com', 'hash', KEY, 'email')).not.toBe(maskValue('alice@example.com', 'hash', OTHER_KEY, 'email'));
  });

  it('is keyed, not a bare SHA-256 of the value', () => {
    const bare = createHash('sha256').update('alice@example.com').digest('hex').slice(0, 16);
    expect(maskValue('alice@example.com', 'hash', KEY, 'email')).not.toContain(bare);
  });

  it('throws a TypeError for an empty key', () => {
    expect(() => maskValue('x', 'hash', new Uint8Array(0), 'email')).toThrow(TypeError);
  });
});

describe('maskValue: programmer mistakes', () => {
  it.each(['REDACT', 'first4', '', 'none'])('throws a TypeError for style %j', (style) => {
    expect(() => maskValue('x', style as MaskStyle, KEY, 'email')).toThrow(TypeError);
  });

  it('does not need a key for redact or last4', () => {
    const empty = new Uint8Array(0);
    expect(maskValue('4111111111111111', 'redact', empty, 'card')).toBe('[masked:card]');
    expect(maskValue('4111111111111111', 'last4', empty, 'card')).toBe('[masked:card…1111]');
  });
});
