// Shared shapes and small helpers of the fake Kubernetes API server (test support only).

import { createHash } from 'node:crypto';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Loose JSON as clients send it: a field set to undefined is dropped when the object is served. */
export interface KubeMetadata {
  name?: string;
  generateName?: string;
  namespace?: string | undefined;
  uid?: string | undefined;
  resourceVersion?: string | undefined;
  generation?: number;
  creationTimestamp?: string | undefined;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: unknown[];
  [key: string]: unknown;
}

/** A Kubernetes object as plain JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeMetadata;
  [key: string]: unknown;
}

/**
 * Deep copy of the whole store, keyed `group/resource/namespace/name` for namespaced objects and
 * `group/resource/name` for cluster-scoped ones; the core group is spelled `core`
 * (`core/pods/shop/web-7d9c-abcde`, `apps/deployments/shop/web`, `core/nodes/node-1`).
 */
export type KubeObjectSnapshot = Record<string, KubeObject>;

/** Thrown inside the server; becomes a `Status` response. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** RFC 3339 without fractional seconds, as the API server writes metadata timestamps. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** JSON with sorted keys, for structural equality. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isRecord(value)) {
    return `{${Object.keys(value)
      .sort()
      .filter((k) => value[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/** A UUID derived from a string (stable seed uids). */
export function stableUid(seed: string): string {
  const h = createHash('sha1').update(seed).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The alphabet Kubernetes uses for generated name suffixes and pod-template-hash values. */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

export function safeEncode(bytes: Uint8Array, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) out += SAFE_ALPHABET[(bytes[i % bytes.length] ?? 0) % SAFE_ALPHABET.length];
  return out;
}

export function randomSuffix(length = 5): string {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return safeEncode(bytes, length);
}

export function metadataOf(obj: KubeObject): KubeMetadata {
  if (!isRecord(obj.metadata)) obj.metadata = {};
  return obj.metadata as KubeMetadata;
}

export function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const part of path) {
    if (Array.isArray(cur)) {
      const i = Number(part);
      cur = Number.isInteger(i) ? cur[i] : undefined;
    } else if (isRecord(cur)) {
      cur = cur[part];
    } else {
      return undefined;
    }
  }
  return cur;
}

export function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

export function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

export function asRecord(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}
