// The sealed requestState of an in-client approval on MCP 2026-07-28 (adapters/input-required.ts).
// The client echoes the state back verbatim when it re-issues the call with the human's answer,
// so it is attacker-controlled: it is AES-256-GCM sealed (node:crypto), names only the approval
// request it belongs to (the approval itself lives in the state store, single use), expires, and
// is bound to the principal (issuer + subject) and the request digest (tool, connection, exact
// input). Opening it refuses a malformed, foreign-key, tampered, cross-principal, other-arguments
// or expired state, each with its own reason for the journal. Pure except for the key lookup
// at the end (the store's shared key when the config names none).

import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import type { ApprovalStore } from '../state/contract.js';
import { canonicalJson } from '../util/canonical-json.js';

/** The format's version prefix: a later format gets a new one, and this code refuses it as malformed. */
export const REQUEST_STATE_VERSION = 'v1';
/** The least key material accepted (approval.request_state_key, or the generated shared key). */
export const MIN_REQUEST_STATE_KEY_BYTES = 32;
/** The name of the generated key in the state store (ApprovalStore.sharedKey). */
export const REQUEST_STATE_KEY_NAME = 'request-state-v1';
/** Longer input is refused before any work: a real state is about 150 characters. */
const MAX_STATE_CHARS = 1_024;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BINDING_BYTES = 16;
const B64URL = /^[A-Za-z0-9_-]+$/;

/** Who the state was issued to and for exactly which request. */
export interface RequestStateBinding {
  readonly issuer: string;
  readonly subject: string;
  /** requestHash(tool, connection, input): the approval's own hash. */
  readonly digest: string;
}

/** What the sealed part carries. */
export interface RequestStatePayload {
  readonly approvalId: string;
  /** Epoch milliseconds after which the state is refused as expired. */
  readonly exp: number;
  /** Random, so that two states for the same approval never look alike. */
  readonly nonce: string;
}

/**
 * Why a state was refused, in the order they are checked: its form or version, the key it was
 * sealed with, its integrity, the principal, the request, then its time.
 */
export type RequestStateRefusal = 'malformed' | 'wrong_key' | 'tampered' | 'cross_principal' | 'other_arguments' | 'expired';

export type OpenedRequestState = { readonly ok: true; readonly payload: RequestStatePayload } | { readonly ok: false; readonly reason: RequestStateRefusal };

export interface RequestStateSealer {
  seal(binding: RequestStateBinding, approvalId: string, expiresAt: Date): string;
  /** `state` as the client sent it (anything); `now` decides expiry. */
  open(state: unknown, binding: RequestStateBinding, now: Date): OpenedRequestState;
}

/**
 * Format: `v1.<kid>.<principal tag>.<digest tag>.<iv ‖ ciphertext ‖ GCM tag>`, base64url parts.
 * The first four parts are the header and the AEAD's additional data: the key id says which key
 * sealed it (a state from another deployment is told apart from a tampered one), and the two
 * tags are keyed hashes (HMAC, a subkey) of the principal and of the request digest, so the
 * binding is authenticated with the payload without writing the subject in clear.
 */
export function requestStateSealer(key: Uint8Array): RequestStateSealer {
  if (key.byteLength < MIN_REQUEST_STATE_KEY_BYTES) throw new TypeError(`a requestState key needs at least ${MIN_REQUEST_STATE_KEY_BYTES} bytes`);
  const derive = (info: string) => Buffer.from(hkdfSync('sha256', key, 'drawbridge requestState', info, 32));
  const encKey = derive('aes-256-gcm');
  const bindKey = derive('binding');
  const kid = createHmac('sha256', bindKey).update('key id').digest().subarray(0, 8).toString('base64url');
  const bind = (kind: 'principal' | 'digest', value: string) => createHmac('sha256', bindKey).update(`${kind}\0${value}`).digest().subarray(0, BINDING_BYTES);
  const principalOf = (b: RequestStateBinding) => canonicalJson([b.issuer, b.subject]);
  return {
    seal(binding, approvalId, expiresAt) {
      const header = [
        REQUEST_STATE_VERSION,
        kid,
        bind('principal', principalOf(binding)).toString('base64url'),
        bind('digest', binding.digest).toString('base64url'),
      ].join('.');
      const payload: RequestStatePayload = { approvalId, exp: expiresAt.getTime(), nonce: randomBytes(12).toString('base64url') };
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', encKey, iv);
      cipher.setAAD(Buffer.from(header, 'utf8'));
      const sealed = Buffer.concat([iv, cipher.update(canonicalJson(payload), 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return `${header}.${sealed.toString('base64url')}`;
    },
    open(state, binding, now) {
      if (typeof state !== 'string' || state.length > MAX_STATE_CHARS) return { ok: false, reason: 'malformed' };
      const parts = state.split('.');
      if (parts.length !== 5 || parts[0] !== REQUEST_STATE_VERSION || !parts.slice(1).every((p) => B64URL.test(p))) return { ok: false, reason: 'malformed' };
      const [, stateKid = '', principalTag = '', digestTag = '', body = ''] = parts;
      const sealed = Buffer.from(body, 'base64url');
      if (sealed.length <= IV_BYTES + TAG_BYTES) return { ok: false, reason: 'malformed' };
      if (stateKid !== kid) return { ok: false, reason: 'wrong_key' };
      let plain: string;
      try {
        const decipher = createDecipheriv('aes-256-gcm', encKey, sealed.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(parts.slice(0, 4).join('.'), 'utf8'));
        decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
        plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        return { ok: false, reason: 'tampered' };
      }
      const payload = payloadOf(plain);
      // Authentic but not ours to read: only a holder of the key could have written it.
      if (payload === null) return { ok: false, reason: 'tampered' };
      if (!sameBytes(Buffer.from(principalTag, 'base64url'), bind('principal', principalOf(binding)))) return { ok: false, reason: 'cross_principal' };
      if (!sameBytes(Buffer.from(digestTag, 'base64url'), bind('digest', binding.digest))) return { ok: false, reason: 'other_arguments' };
      if (now.getTime() >= payload.exp) return { ok: false, reason: 'expired' };
      return { ok: true, payload };
    },
  };
}

function payloadOf(text: string): RequestStatePayload | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object') return null;
  const { approvalId, exp, nonce } = value as Record<string, unknown>;
  if (typeof approvalId !== 'string' || typeof exp !== 'number' || !Number.isFinite(exp) || typeof nonce !== 'string') return null;
  return { approvalId, exp, nonce };
}

function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** What each refusal tells the agent (and the journal's reader). */
export const REFUSAL_TEXT: Readonly<Record<RequestStateRefusal, string>> = {
  malformed: 'is not a requestState this gateway issues',
  wrong_key: 'was sealed with another key (another gateway, or before the key changed)',
  tampered: 'was altered after the gateway sealed it',
  cross_principal: 'was issued to another principal',
  other_arguments: 'was issued for a call with other arguments',
  expired: 'has expired',
};

/**
 * The key that seals requestStates: approval.request_state_key when the config names one (resolved
 * when the gateway opens), else one generated once and kept in the state store, so that every
 * replica sharing that state (PostgreSQL) opens what another sealed. Looked up once per context;
 * a failed lookup (the store unreachable) is not remembered.
 */
export function requestStateKeySource(configured: (() => Uint8Array) | null, store: () => ApprovalStore): () => Promise<RequestStateSealer> {
  let made: Promise<RequestStateSealer> | null = null;
  return () => {
    made ??= (async () =>
      requestStateSealer(
        configured ? configured() : await store().sharedKey(REQUEST_STATE_KEY_NAME, () => new Uint8Array(randomBytes(MIN_REQUEST_STATE_KEY_BYTES))),
      ))();
    made.catch(() => (made = null));
    return made;
  };
}

/** approval.request_state_key's value as key material: at least 32 bytes (UTF-8), else a coded fault naming the reference. */
export function requestStateKeyOf(value: string, describe: string): Uint8Array {
  const key = new TextEncoder().encode(value);
  if (key.byteLength < MIN_REQUEST_STATE_KEY_BYTES) {
    throw new DrawbridgeError(
      'config.secret_invalid',
      `approval.request_state_key (${describe}) has ${key.byteLength} bytes; it needs at least ${MIN_REQUEST_STATE_KEY_BYTES}.`,
      { hint: 'Set the referenced variable or file to a random value of at least 32 bytes (e.g. `openssl rand -base64 48`), then restart the gateway.' },
    );
  }
  return key;
}
