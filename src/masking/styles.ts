// How one sensitive value is replaced before a result reaches the agent.
// Pure: given the value, a style, the gateway's masking key and a label, return
// the replacement text. Finding values (detectors.ts) and choosing the style per
// column or detector (policy) happen elsewhere.

import { createHmac } from 'node:crypto';

export type MaskStyle = 'redact' | 'last4' | 'hash';

export const MASK_STYLES: readonly [MaskStyle, ...MaskStyle[]] = Object.freeze(['redact', 'last4', 'hash'] as const);

// Below this many alphanumeric characters, showing the last four reveals most
// of the value (4 of 6 digits of a short code is not masking), so last4 falls
// back to redact.
const LAST4_MIN_ALNUM = 8;

const HASH_HEX_CHARS = 16;

/** `label` names what was masked (detector or column) and appears in the replacement, e.g. "[masked:email]". */
export function maskValue(value: string, style: MaskStyle, key: Uint8Array, label: string): string {
  switch (style) {
    case 'redact':
      // Fixed text whatever the input: the replacement must not reveal length.
      return `[masked:${label}]`;
    case 'last4': {
      // Count letters and digits only, so separators ("4111-1111-...") neither
      // pad the count nor take one of the four revealed characters.
      const alnum = value.match(/[\p{L}\p{N}]/gu) ?? [];
      if (alnum.length < LAST4_MIN_ALNUM) return `[masked:${label}]`;
      return `[masked:${label}…${alnum.slice(-4).join('')}]`;
    }
    case 'hash': {
      // Keyed (HMAC), not a bare hash: SSNs, phone numbers and cards have small
      // value spaces, so an unkeyed digest could be reversed by enumeration.
      // With an empty key it would be exactly that, hence the refusal.
      if (!(key instanceof Uint8Array) || key.length === 0) {
        throw new TypeError('maskValue: the hash style needs a non-empty key');
      }
      const digest = createHmac('sha256', key).update(value, 'utf8').digest('hex');
      return `[hash:${label}:${digest.slice(0, HASH_HEX_CHARS)}]`;
    }
    default: {
      const unknown: never = style;
      throw new TypeError(`maskValue: unknown mask style ${JSON.stringify(unknown)}`);
    }
  }
}
