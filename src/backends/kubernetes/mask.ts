// Structural masking of Kubernetes objects, before anything is rendered.
// Pure: takes any JSON (one object, a List, a Table with rows[].object, a
// WatchEvent {type, object}, ...) and returns a masked deep copy plus counts
// per target. The content detectors (src/masking/detectors.ts) run later on the
// rendered text; this module removes what they cannot recognise: Secret values
// (base64 or plain), credentials in container env and ConfigMaps by key name,
// copies of all of these inside annotations (last-applied-configuration is the
// classic leak: `kubectl apply` of a Secret stores its plaintext there), and
// managedFields.
//
// Fail closed: what looks like it should be masked but cannot be parsed is
// replaced whole.

export interface ObjectMaskReport {
  readonly target: MaskTarget;
  readonly count: number;
}

export const SECRET_MASK = '[masked:secret]';
export const ENV_MASK = '[masked:env]';
export const CONFIGMAP_MASK = '[masked:configmap]';
export const LAST_APPLIED_MASK = '[masked:last-applied-configuration]';
const DEPTH_MASK = '[masked:too-deep]';

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** Env var names and ConfigMap keys whose values are credentials. */
export const SENSITIVE_ENV = /PASSWORD|PASSWD|TOKEN|SECRET|KEY|CREDENTIAL|PRIVATE/i;

/** Report targets, in the order they are listed. */
const MASK_TARGETS = Object.freeze([
  'secret.data',
  'env',
  'configmap.data',
  'configmap.binaryData',
  'last-applied-configuration',
  'annotation.json',
  'managedFields',
  'depth',
] as const);
type MaskTarget = (typeof MASK_TARGETS)[number];

// Kubernetes objects are never this deep, and CRD schemas stay far below it. A
// deeper subtree (hostile or broken input) is replaced, which also keeps the
// recursion away from the stack limit.
const MAX_DEPTH = 256;

const CONTAINER_ARRAYS: ReadonlySet<string> = new Set(['containers', 'initContainers', 'ephemeralContainers']);

type Counts = Map<MaskTarget, number>;

interface Context {
  /** Kind implied by the enclosing List (SecretList → Secret) for items without their own kind. */
  readonly impliedKind: string | null;
  readonly depth: number;
}

/**
 * Masked deep copy of `obj` and how many values were masked per target. Never
 * mutates its input. Idempotent: masking a masked value changes nothing more
 * (counts may repeat for values already masked).
 */
export function maskObject(obj: unknown): { value: unknown; masked: ObjectMaskReport[] } {
  const counts: Counts = new Map();
  const value = walk(obj, { impliedKind: null, depth: 0 }, counts);
  return { value, masked: toReport(counts) };
}

/**
 * Masks many objects for one answer and adds up what was masked, so the answer's
 * `masked` summary can count every field mask (TabularResult.fieldMasks). Render
 * helpers mask again as defense in depth; that pass is idempotent and counts
 * nothing new, so only the backend's own pass is tallied.
 */
export interface MaskTally {
  /** maskObject(obj).value, with its counts added to the tally. */
  mask(obj: unknown): unknown;
  /** Totals per target, in MASK_TARGETS order. */
  report(): ObjectMaskReport[];
}

export function createMaskTally(): MaskTally {
  const totals: Counts = new Map();
  return {
    mask(obj) {
      const { value, masked } = maskObject(obj);
      for (const m of masked) add(totals, m.target, m.count);
      return value;
    },
    report: () => toReport(totals),
  };
}

function toReport(counts: Counts): ObjectMaskReport[] {
  const out: ObjectMaskReport[] = [];
  for (const target of MASK_TARGETS) {
    const count = counts.get(target) ?? 0;
    if (count > 0) out.push({ target, count });
  }
  return out;
}

function add(counts: Counts, target: MaskTarget, n = 1): void {
  if (n > 0) counts.set(target, (counts.get(target) ?? 0) + n);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Own-property assignment that also works for a "__proto__" key from JSON.parse. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** "SecretList" → "Secret"; null for anything that is not a typed list. */
function itemKindOf(listKind: unknown): string | null {
  if (typeof listKind !== 'string' || !listKind.endsWith('List') || listKind.length <= 4) return null;
  return listKind.slice(0, -4);
}

function walk(node: unknown, ctx: Context, counts: Counts): unknown {
  if (typeof node !== 'object' || node === null) return node;
  if (ctx.depth > MAX_DEPTH) {
    add(counts, 'depth');
    return DEPTH_MASK;
  }
  const depth = ctx.depth + 1;
  if (Array.isArray(node)) {
    return node.map((child) => walk(child, { impliedKind: ctx.impliedKind, depth }, counts));
  }
  const src = node as Record<string, unknown>;
  const ownKind = typeof src['kind'] === 'string' ? src['kind'] : null;
  const kind = ownKind ?? ctx.impliedKind;
  const itemKind = itemKindOf(ownKind);

  const out: Record<string, unknown> = {};
  for (const key of Object.keys(src)) {
    const child = src[key];
    if (key === 'metadata' && isRecord(child)) {
      setOwn(out, key, maskMetadata(child, kind, depth, counts));
    } else if (key === 'items' && Array.isArray(child)) {
      setOwn(
        out,
        key,
        child.map((item) => walk(item, { impliedKind: itemKind, depth: depth + 1 }, counts)),
      );
    } else if (CONTAINER_ARRAYS.has(key) && Array.isArray(child)) {
      setOwn(
        out,
        key,
        child.map((c) => maskContainer(c, depth + 1, counts)),
      );
    } else {
      setOwn(out, key, walk(child, { impliedKind: null, depth }, counts));
    }
  }

  if (isSecretLike(src, kind)) maskSecret(out, counts);
  else if (isConfigMapLike(src, kind)) maskConfigMap(out, counts);
  return out;
}

/**
 * Generous on purpose: kind Secret, or kind implied by a SecretList, or the
 * shape of one (a `type` string next to a `data`/`stringData` map) when the kind
 * is missing or the apiVersion is core v1 (where only Secret has both).
 */
function isSecretLike(src: Record<string, unknown>, kind: string | null): boolean {
  if (kind === 'Secret') return true;
  const hasType = typeof src['type'] === 'string';
  const hasData = isRecord(src['data']) || isRecord(src['stringData']);
  if (!hasType || !hasData) return false;
  return kind === null || src['apiVersion'] === 'v1';
}

function isConfigMapLike(src: Record<string, unknown>, kind: string | null): boolean {
  if (kind === 'ConfigMap') return true;
  return kind === null && isRecord(src['binaryData']);
}

function maskSecret(out: Record<string, unknown>, counts: Counts): void {
  for (const field of ['data', 'stringData'] as const) {
    if (!Object.hasOwn(out, field)) continue;
    const data = out[field];
    if (isRecord(data)) {
      const masked: Record<string, unknown> = {};
      for (const k of Object.keys(data)) {
        setOwn(masked, k, SECRET_MASK);
        if (data[k] !== SECRET_MASK) add(counts, 'secret.data');
      }
      setOwn(out, field, masked);
    } else if (data !== null && data !== undefined && data !== SECRET_MASK) {
      // Not a map: nothing to keep, replace it whole.
      setOwn(out, field, SECRET_MASK);
      add(counts, 'secret.data');
    }
  }
}

function maskConfigMap(out: Record<string, unknown>, counts: Counts): void {
  const data = out['data'];
  if (isRecord(data)) {
    const masked: Record<string, unknown> = {};
    for (const k of Object.keys(data)) {
      if (SENSITIVE_ENV.test(k)) {
        setOwn(masked, k, CONFIGMAP_MASK);
        if (data[k] !== CONFIGMAP_MASK) add(counts, 'configmap.data');
      } else {
        setOwn(masked, k, data[k]);
      }
    }
    setOwn(out, 'data', masked);
  }
  if (!Object.hasOwn(out, 'binaryData')) return;
  const binary = out['binaryData'];
  if (isRecord(binary)) {
    // Opaque bytes: no way to tell what they hold.
    const masked: Record<string, unknown> = {};
    for (const k of Object.keys(binary)) {
      setOwn(masked, k, CONFIGMAP_MASK);
      if (binary[k] !== CONFIGMAP_MASK) add(counts, 'configmap.binaryData');
    }
    setOwn(out, 'binaryData', masked);
  } else if (binary !== null && binary !== undefined && binary !== CONFIGMAP_MASK) {
    setOwn(out, 'binaryData', CONFIGMAP_MASK);
    add(counts, 'configmap.binaryData');
  }
}

/** A container (or anything in a containers array): the generic walk, then env values by name. */
function maskContainer(container: unknown, depth: number, counts: Counts): unknown {
  const copy = walk(container, { impliedKind: null, depth }, counts);
  if (!isRecord(copy) || !Array.isArray(copy['env'])) return copy;
  copy['env'] = copy['env'].map((entry: unknown) => {
    if (!isRecord(entry) || typeof entry['name'] !== 'string' || !SENSITIVE_ENV.test(entry['name'])) return entry;
    if (!Object.hasOwn(entry, 'value')) return entry; // valueFrom: a reference, not a value
    const value = entry['value'];
    if (value === null || value === '' || value === ENV_MASK) return entry;
    add(counts, 'env');
    const masked: Record<string, unknown> = {};
    for (const k of Object.keys(entry)) setOwn(masked, k, k === 'value' ? ENV_MASK : entry[k]);
    return masked;
  });
  return copy;
}

function maskMetadata(meta: Record<string, unknown>, kind: string | null, depth: number, counts: Counts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(meta)) {
    const child = meta[key];
    if (key === 'managedFields') {
      add(counts, 'managedFields');
      continue;
    }
    if (key === 'annotations' && isRecord(child)) {
      setOwn(out, key, maskAnnotations(child, kind, depth + 1, counts));
      continue;
    }
    setOwn(out, key, walk(child, { impliedKind: null, depth: depth + 1 }, counts));
  }
  return out;
}

function maskAnnotations(annotations: Record<string, unknown>, kind: string | null, depth: number, counts: Counts): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(annotations)) {
    const value = annotations[key];
    if (key === LAST_APPLIED_ANNOTATION) {
      setOwn(out, key, maskLastApplied(value, kind, depth, counts));
    } else if (typeof value === 'string' && /^\s*[[{]/.test(value)) {
      setOwn(out, key, maskJsonAnnotation(value, depth, counts));
    } else {
      setOwn(out, key, walk(value, { impliedKind: null, depth }, counts));
    }
  }
  return out;
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false };
  }
}

/** Masks the embedded object like any other; the enclosing kind applies when the copy has none. */
function maskLastApplied(value: unknown, kind: string | null, depth: number, counts: Counts): unknown {
  if (value === LAST_APPLIED_MASK) return value;
  const parsed = typeof value === 'string' ? parseJson(value) : { ok: false as const };
  if (!parsed.ok || !isRecord(parsed.value)) {
    add(counts, 'last-applied-configuration');
    return LAST_APPLIED_MASK;
  }
  const inner: Counts = new Map();
  const masked = walk(parsed.value, { impliedKind: kind, depth }, inner);
  if (inner.size === 0) return value;
  for (const [target, n] of inner) add(counts, target, n);
  add(counts, 'last-applied-configuration');
  return JSON.stringify(masked) + ((value as string).endsWith('\n') ? '\n' : '');
}

/** Any other annotation holding JSON (a Secret, a pod template...): masked when it contains something to mask. */
function maskJsonAnnotation(value: string, depth: number, counts: Counts): string {
  const parsed = parseJson(value);
  if (!parsed.ok) return value; // not JSON after all: plain text, for the content detectors
  const inner: Counts = new Map();
  const masked = walk(parsed.value, { impliedKind: null, depth }, inner);
  if (inner.size === 0) return value;
  for (const [target, n] of inner) add(counts, target, n);
  add(counts, 'annotation.json');
  return JSON.stringify(masked) + (value.endsWith('\n') ? '\n' : '');
}
