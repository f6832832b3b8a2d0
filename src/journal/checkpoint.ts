// Signed checkpoints of the journal head: build, sign, parse and check them, and check a
// sequence of record hashes against them. Pure and engine-neutral (node:crypto only): it
// never reads a journal or a file; the SQLite adapter and the publisher (checkpoint-file.ts)
// and verify.ts feed it heads and record hashes.

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import { canonicalJson } from '../util/canonical-json.js';

/** The journal head a checkpoint attests: how many records, the hash of the last one, and when. */
export interface JournalHead {
  readonly count: number;
  readonly hash: string;
  readonly at: string;
}

export interface Checkpoint extends JournalHead {
  readonly v: 1;
  /** Which key signed: the first 16 hex digits of sha256 over the public key (SPKI DER). */
  readonly keyId: string;
  /** Base64 Ed25519 signature over the canonical JSON of {v,count,hash,at,keyId}. */
  readonly sig: string;
}

export interface CheckpointKeys {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
}

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_HINT =
  'Give an Ed25519 key in PEM: openssl genpkey -algorithm ed25519 -out key.pem (and openssl pkey -in key.pem -pubout -out pub.pem for auditors).';

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

function invalidKey(what: string): DrawbridgeError {
  // The message names what is wrong, never the key's text.
  return new DrawbridgeError('config.secret_invalid', `The checkpoint ${what} is not an Ed25519 key in PEM form.`, { hint: KEY_HINT });
}

/** The signing key from its PEM text; config.secret_invalid (without the text) when it is not an Ed25519 private key. */
export function parseSigningKey(pem: string): CheckpointKeys {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw invalidKey('signing key');
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw invalidKey('signing key');
  const publicKey = createPublicKey(privateKey);
  return { privateKey, publicKey, keyId: keyIdOf(publicKey) };
}

/** An auditor's public key from its PEM text (a private key is accepted too: its public half is used). */
export function parsePublicKey(pem: string): KeyObject {
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw invalidKey('public key');
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') throw invalidKey('public key');
  return publicKey;
}

function signedBody(c: Omit<Checkpoint, 'sig'>): Buffer {
  return Buffer.from(canonicalJson({ v: c.v, count: c.count, hash: c.hash, at: c.at, keyId: c.keyId }), 'utf8');
}

export function signCheckpoint(head: JournalHead, keys: CheckpointKeys): Checkpoint {
  const unsigned = { v: 1 as const, count: head.count, hash: head.hash, at: head.at, keyId: keys.keyId };
  return { ...unsigned, sig: sign(null, signedBody(unsigned), keys.privateKey).toString('base64') };
}

/** Why this checkpoint's signature does not hold under `publicKey`, or undefined when it does. */
export function signatureProblem(c: Checkpoint, publicKey: KeyObject): string | undefined {
  if (c.keyId !== keyIdOf(publicKey)) return `signed by key ${c.keyId}, not by the given public key ${keyIdOf(publicKey)}`;
  const ok = verify(null, signedBody(c), publicKey, Buffer.from(c.sig, 'base64'));
  return ok ? undefined : 'signature does not match its content (count, hash or time was altered, or it was not signed by this key)';
}

/** One line of a publish file as a checkpoint, or why it is not one. */
export function parseCheckpointLine(line: string): Checkpoint | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const { v, count, hash, at, keyId, sig } = value as Record<string, unknown>;
  if (v !== 1) return 'unknown checkpoint version';
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) return 'malformed count';
  if (typeof hash !== 'string' || !HEX64.test(hash)) return 'malformed hash';
  if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) return 'malformed time';
  if (typeof keyId !== 'string' || typeof sig !== 'string') return 'malformed keyId or sig';
  return { v, count, hash, at, keyId, sig };
}

/** A checkpoint as read from a publish file: its line number (1-based) for messages. */
export interface PublishedCheckpoint {
  readonly line: number;
  readonly checkpoint: Checkpoint | string;
}

export function parseCheckpointFile(text: string): PublishedCheckpoint[] {
  const lines = text.split('\n');
  const out: PublishedCheckpoint[] = [];
  lines.forEach((line, index) => {
    if (line.trim() !== '') out.push({ line: index + 1, checkpoint: parseCheckpointLine(line) });
  });
  return out;
}

export type CheckpointFailure =
  /** A record the checkpoints disprove: `seq` is the first record not proven good. */
  | { readonly kind: 'record'; readonly seq: number; readonly line: number; readonly reason: string }
  /** A checkpoint that is itself bad (forged, altered, malformed): the publish file was tampered with. */
  | { readonly kind: 'checkpoint'; readonly line: number; readonly reason: string };

export interface CheckpointSummary {
  readonly checked: number;
  /** The highest record count a good checkpoint proves (0 when none). */
  readonly upTo: number;
}

export interface CheckpointChecker {
  /** Feed every record's stored hash in journal order; `position` counts from 1. */
  record(position: number, hash: string): void;
  /** The first record failure (earliest record), else the first bad checkpoint, and the summary. */
  finish(total: number): { readonly failure?: CheckpointFailure; readonly summary: CheckpointSummary };
}

/**
 * Checks record hashes against published checkpoints. Signatures are checked first; then
 * each good checkpoint's count must exist and the hash at that position must be its hash.
 */
export function checkpointChecker(published: readonly PublishedCheckpoint[], publicKey: KeyObject): CheckpointChecker {
  const good: Array<{ readonly line: number; readonly c: Checkpoint }> = [];
  let badCheckpoint: CheckpointFailure | undefined;
  for (const p of published) {
    const problem = typeof p.checkpoint === 'string' ? p.checkpoint : signatureProblem(p.checkpoint, publicKey);
    if (problem === undefined && typeof p.checkpoint !== 'string') good.push({ line: p.line, c: p.checkpoint });
    else badCheckpoint ??= { kind: 'checkpoint', line: p.line, reason: `checkpoint on line ${p.line}: ${problem ?? ''}` };
  }
  const byCount = new Map<number, Array<{ readonly line: number; readonly c: Checkpoint }>>();
  for (const g of good) byCount.set(g.c.count, [...(byCount.get(g.c.count) ?? []), g]);
  const counts = [...byCount.keys()].sort((a, b) => a - b);
  let recordFailure: Extract<CheckpointFailure, { kind: 'record' }> | undefined;
  let upTo = 0;
  return {
    record(position, hash) {
      for (const { line, c } of byCount.get(position) ?? []) {
        if (c.hash === hash) {
          upTo = Math.max(upTo, position);
          continue;
        }
        if (recordFailure !== undefined) continue;
        // The chain itself was intact up to here (verify reports a broken link first), so the
        // tail was rewritten and rehashed: the first record no earlier checkpoint proves is the first suspect.
        const from = (counts.filter((n) => n < position && n <= upTo).pop() ?? 0) + 1;
        recordFailure = {
          kind: 'record',
          seq: from,
          line,
          reason:
            `record ${position} does not have the hash the checkpoint on line ${line} (${c.at}) attests: ` +
            `records ${from}..${position} were edited, reordered or replaced`,
        };
      }
    },
    finish(total) {
      const beyond = counts.find((n) => n > total);
      if (recordFailure === undefined && beyond !== undefined) {
        const { line, c } = (byCount.get(beyond) ?? [])[0] as { line: number; c: Checkpoint };
        recordFailure = {
          kind: 'record',
          seq: total + 1,
          line,
          reason:
            `the checkpoint on line ${line} (${c.at}) attests ${c.count} records but the journal has ${total}: ` +
            `records ${total + 1}..${c.count} were deleted from the end`,
        };
      }
      const summary = { checked: published.length, upTo };
      const failure = recordFailure ?? badCheckpoint;
      return failure === undefined ? { summary } : { failure, summary };
    },
  };
}
