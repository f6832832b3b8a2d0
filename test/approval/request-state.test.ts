// The sealed requestState (src/approval/request-state.ts), pure: a state opens only for the
// principal and request it was sealed for, with the key that sealed it, unaltered and before it
// expires; each refusal has its own reason. Time is passed in, never slept.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { requestHash } from '../../src/approval/approver.js';
import {
  MIN_REQUEST_STATE_KEY_BYTES,
  requestStateKeyOf,
  requestStateSealer,
  type RequestStateBinding,
  type RequestStateRefusal,
} from '../../src/approval/request-state.js';
import { DrawbridgeError } from '../../src/errors.js';

const KEY = new Uint8Array(randomBytes(32));
const T0 = new Date('2030-01-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const TTL = 600_000;
const alice: RequestStateBinding = { issuer: 'https://idp.example', subject: 'alice', digest: requestHash('run_sql', 'db', { sql: 'DELETE FROM t' }) };

/** Replaces part `index` (0 version, 1 key id, 2 principal tag, 3 digest tag, 4 sealed body) by `change(part)`. */
function withPart(state: string, index: number, change: (part: string) => string): string {
  const parts = state.split('.');
  parts[index] = change(parts[index] ?? '');
  return parts.join('.');
}

/** Flips one bit of a base64url part at byte `byte` (negative: from the end). */
function flip(part: string, byte: number): string {
  const bytes = Buffer.from(part, 'base64url');
  const i = byte < 0 ? bytes.length + byte : byte;
  bytes[i] = (bytes[i] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}

describe('requestState seal and open', () => {
  const sealer = requestStateSealer(KEY);
  const state = sealer.seal(alice, 'ap_0123456789', at(TTL));

  it('opens for the same principal and request before it expires, carrying the approval it names', () => {
    expect(state).toMatch(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const opened = sealer.open(state, alice, at(TTL - 1));
    expect(opened).toMatchObject({ ok: true, payload: { approvalId: 'ap_0123456789', exp: at(TTL).getTime() } });
    // Another sealer from the same key (another replica) opens it too.
    expect(requestStateSealer(new Uint8Array(KEY)).open(state, alice, T0).ok).toBe(true);
    // Sealed, not signed: neither the approval id nor the subject is readable in it.
    expect(Buffer.from(state.split('.')[4] ?? '', 'base64url').toString('latin1')).not.toContain('ap_0123456789');
    expect(state).not.toContain('alice');
    // Two states for the same approval never look alike (nonce, iv).
    expect(sealer.seal(alice, 'ap_0123456789', at(TTL))).not.toBe(state);
  });

  const cases: Array<[string, () => unknown, RequestStateRefusal]> = [
    ['not a string', () => 42, 'malformed'],
    ['empty', () => '', 'malformed'],
    ['too few parts', () => state.split('.').slice(0, 4).join('.'), 'malformed'],
    ['another version', () => withPart(state, 0, () => 'v2'), 'malformed'],
    ['not base64url', () => withPart(state, 4, (p) => `${p}!`), 'malformed'],
    ['far too long', () => `${state}${'A'.repeat(2_000)}`, 'malformed'],
    ['a body too short for iv and tag', () => withPart(state, 4, (p) => p.slice(0, 20)), 'malformed'],
    ['the key id changed', () => withPart(state, 1, (p) => flip(p, 0)), 'wrong_key'],
    ['the principal tag changed', () => withPart(state, 2, (p) => flip(p, 3)), 'tampered'],
    ['the digest tag changed', () => withPart(state, 3, (p) => flip(p, 5)), 'tampered'],
    ['the iv changed', () => withPart(state, 4, (p) => flip(p, 0)), 'tampered'],
    ['the ciphertext changed', () => withPart(state, 4, (p) => flip(p, 14)), 'tampered'],
    ['the GCM tag changed', () => withPart(state, 4, (p) => flip(p, -1)), 'tampered'],
    ['the ciphertext truncated by a byte', () => withPart(state, 4, (p) => Buffer.from(p, 'base64url').subarray(1).toString('base64url')), 'tampered'],
  ];

  it.each(cases)('refuses a state whose %s', (_what, make, reason) => {
    expect(sealer.open(make(), alice, T0)).toEqual({ ok: false, reason });
  });

  it('refuses it for another principal: another subject, or the same subject from another issuer', () => {
    expect(sealer.open(state, { ...alice, subject: 'mallory' }, T0)).toEqual({ ok: false, reason: 'cross_principal' });
    expect(sealer.open(state, { ...alice, issuer: 'https://other.example' }, T0)).toEqual({ ok: false, reason: 'cross_principal' });
  });

  it('refuses it for the same tool with other arguments, or another connection', () => {
    expect(sealer.open(state, { ...alice, digest: requestHash('run_sql', 'db', { sql: 'DELETE FROM t WHERE true' }) }, T0)).toEqual({
      ok: false,
      reason: 'other_arguments',
    });
    expect(sealer.open(state, { ...alice, digest: requestHash('run_sql', 'prod', { sql: 'DELETE FROM t' }) }, T0)).toEqual({
      ok: false,
      reason: 'other_arguments',
    });
  });

  it('refuses it at and after its expiry, by the clock passed in', () => {
    expect(sealer.open(state, alice, at(TTL)).ok).toBe(false);
    expect(sealer.open(state, alice, at(TTL))).toEqual({ ok: false, reason: 'expired' });
    expect(sealer.open(state, alice, at(10 * TTL))).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses a state sealed with another key as wrong_key, and a forged key id as tampered', () => {
    const other = requestStateSealer(new Uint8Array(randomBytes(32)));
    expect(other.open(state, alice, T0)).toEqual({ ok: false, reason: 'wrong_key' });
    // The other key's state with this key's id: the id matches, the seal does not.
    const forged = withPart(other.seal(alice, 'ap_0123456789', at(TTL)), 1, () => state.split('.')[1] ?? '');
    expect(sealer.open(forged, alice, T0)).toEqual({ ok: false, reason: 'tampered' });
  });

  it('checks in order: the key before the principal, the principal before the arguments, both before expiry', () => {
    const other = requestStateSealer(new Uint8Array(randomBytes(32)));
    const everythingWrong = { issuer: 'x', subject: 'mallory', digest: 'd' };
    expect(other.open(state, everythingWrong, at(10 * TTL))).toEqual({ ok: false, reason: 'wrong_key' });
    expect(sealer.open(state, everythingWrong, at(10 * TTL))).toEqual({ ok: false, reason: 'cross_principal' });
    expect(sealer.open(state, { ...alice, digest: 'd' }, at(10 * TTL))).toEqual({ ok: false, reason: 'other_arguments' });
  });

  it('needs 32 bytes of key: a shorter configured key is a coded fault naming the reference, never the value', () => {
    expect(() => requestStateSealer(new Uint8Array(31))).toThrow(TypeError);
    const short = 'too-short-secret-value';
    let error: unknown;
    try {
      requestStateKeyOf(short, '$DRAWBRIDGE_REQUEST_STATE_KEY');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('config.secret_invalid');
    expect((error as DrawbridgeError).message).toContain('$DRAWBRIDGE_REQUEST_STATE_KEY');
    expect((error as DrawbridgeError).message).not.toContain(short);
    expect(requestStateKeyOf('x'.repeat(MIN_REQUEST_STATE_KEY_BYTES), '$K').byteLength).toBe(32);
  });
});
