// Patch formats the API server accepts: JSON merge patch (RFC 7386), a strategic merge patch
// good enough for built-in types (lists of containers, env, volumes, ports… merged by their key,
// `$patch: delete|replace` directives), and JSON patch (RFC 6902).

import { ApiError, clone, deepEqual, isRecord } from './model.js';

export function jsonMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = jsonMergePatch(out[k], v);
  }
  return out;
}

/** Merge keys of built-in list fields (patchMergeKey in the OpenAPI schema). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  imagePullSecrets: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  hostAliases: 'ip',
  conditions: 'type',
  ownerReferences: 'uid',
  resourceClaims: 'name',
  topologySpreadConstraints: 'topologyKey',
};

/** Primitive lists merged as sets. */
const MERGE_PRIMITIVE_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, items: unknown[]): string | undefined {
  if (field === 'ports') {
    return items.some((i) => isRecord(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  }
  return MERGE_KEYS[field];
}

function strategicList(field: string, current: unknown, patch: unknown[]): unknown[] {
  const cur = Array.isArray(current) ? current : [];
  if (patch.some((i) => isRecord(i) && i['$patch'] === 'replace')) {
    return patch.filter((i) => !(isRecord(i) && i['$patch'] === 'replace')).map(stripDirectives);
  }
  if (MERGE_PRIMITIVE_LISTS.has(field) && patch.every((i) => !isRecord(i))) {
    const out = [...cur];
    for (const v of patch) if (!out.some((c) => deepEqual(c, v))) out.push(v);
    return out;
  }
  const key = mergeKeyFor(field, [...cur, ...patch]);
  if (!key || !patch.every(isRecord)) return patch.map(stripDirectives);
  const out = cur.map((c) => clone(c));
  for (const item of patch as Record<string, unknown>[]) {
    const idx = out.findIndex((c) => isRecord(c) && c[key] === item[key]);
    if (item['$patch'] === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = strategicMergePatch(out[idx], item);
    else out.push(stripDirectives(item));
  }
  return out;
}

function stripDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripDirectives);
  if (!isRecord(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (!k.startsWith('$')) out[k] = stripDirectives(x);
  return out;
}

export function strategicMergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  if (patch['$patch'] === 'replace') return stripDirectives(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const cur = out[field];
      if (Array.isArray(cur) && Array.isArray(v)) out[field] = cur.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) delete out[k];
    else if (isRecord(v) && v['$patch'] === 'delete') delete out[k];
    else if (Array.isArray(v)) out[k] = strategicList(k, out[k], v);
    else out[k] = strategicMergePatch(out[k], v);
  }
  return out;
}

// ---- JSON patch (RFC 6902) ----

function invalid(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw invalid(`invalid JSON pointer: ${path}`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: unknown, parts: string[], op: string, path: string): { parent: unknown; key: string } {
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isRecord(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined) throw invalid(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  }
  return { parent: cur, key: parts[parts.length - 1] ?? '' };
}

function getAt(doc: unknown, path: string, op: string): unknown {
  let cur = doc;
  for (const p of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isRecord(cur)) cur = cur[p];
    else cur = undefined;
    if (cur === undefined) throw invalid(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  }
  return cur;
}

function arrayIndex(arr: unknown[], key: string, forAdd: boolean, op: string, path: string): number {
  if (forAdd && key === '-') return arr.length;
  const i = Number(key);
  const max = forAdd ? arr.length : arr.length - 1;
  if (!/^\d+$/.test(key) || i > max) throw invalid(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  return i;
}

function addAt(doc: unknown, path: string, value: unknown, op = 'add'): unknown {
  const parts = parsePointer(path);
  if (parts.length === 0) return clone(value);
  const { parent, key } = parentOf(doc, parts, op, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true, op, path), 0, clone(value));
  else if (isRecord(parent)) parent[key] = clone(value);
  else throw invalid(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  return doc;
}

function removeAt(doc: unknown, path: string, op = 'remove'): unknown {
  const parts = parsePointer(path);
  const { parent, key } = parentOf(doc, parts, op, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false, op, path), 1);
  else if (isRecord(parent) && key in parent) delete parent[key];
  else throw invalid(`${op} operation does not apply: doc is missing path: "${path}": missing value`);
  return doc;
}

export function applyJsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw new ApiError(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc = clone(target);
  for (const raw of ops) {
    if (!isRecord(raw)) throw new ApiError(400, 'BadRequest', 'json: cannot unmarshal into Go value of type jsonpatch.Operation');
    const op = String(raw['op']);
    const path = typeof raw['path'] === 'string' ? raw['path'] : '';
    switch (op) {
      case 'add':
        doc = addAt(doc, path, raw['value']);
        break;
      case 'remove':
        doc = removeAt(doc, path);
        break;
      case 'replace':
        getAt(doc, path, 'replace');
        doc = removeAt(doc, path, 'replace');
        doc = addAt(doc, path, raw['value'], 'replace');
        break;
      case 'test': {
        const actual = getAt(doc, path, 'test');
        if (!deepEqual(actual, raw['value'])) throw invalid(`testing value ${path} failed: test failed`);
        break;
      }
      case 'move': {
        const from = String(raw['from']);
        const v = getAt(doc, from, 'move');
        doc = removeAt(doc, from, 'move');
        doc = addAt(doc, path, v, 'move');
        break;
      }
      case 'copy':
        doc = addAt(doc, path, getAt(doc, String(raw['from']), 'copy'), 'copy');
        break;
      default:
        throw invalid(`Unexpected kind: ${op}`);
    }
  }
  return doc;
}
