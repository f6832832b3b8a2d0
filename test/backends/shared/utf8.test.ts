// decodeCut: output cut at a byte limit decodes without a partial character.

import { describe, expect, it } from 'vitest';
import { decodeCut } from '../../../src/backends/shared/utf8.js';

const bytes = (text: string, keep: number) => Buffer.from(text, 'utf8').subarray(0, keep);

describe('decodeCut', () => {
  it.each([
    // text, bytes kept by the cut, expected text
    ['abc', 2, 'ab'],
    ['é…', 1, ''], // é is 2 bytes: half of it goes
    ['é…', 2, 'é'],
    ['é…', 3, 'é'], // … is 3 bytes: one of them is not a character
    ['é…', 4, 'é'],
    ['é…', 5, 'é…'],
    ['a😀', 1, 'a'],
    ['a😀', 2, 'a'],
    ['a😀', 4, 'a'],
    ['a😀', 5, 'a😀'],
    ['', 0, ''],
  ] as const)('%j cut to %i bytes → %j', (text, keep, expected) => {
    const out = decodeCut([bytes(text, keep)], true);
    expect(out).toBe(expected);
    expect(out).not.toContain('\uFFFD');
    expect(Buffer.byteLength(out)).toBeLessThanOrEqual(keep);
  });

  it('a cut across chunks', () => {
    const all = Buffer.from('xé😀', 'utf8');
    expect(decodeCut([all.subarray(0, 2), all.subarray(2, 5)], true)).toBe('xé');
  });

  it('output that was not cut decodes as it is, invalid bytes included', () => {
    const invalid = Buffer.from([0x61, 0xc3]);
    expect(decodeCut([invalid], false)).toBe('a\uFFFD');
    expect(decodeCut([invalid], true)).toBe('a');
  });
});
