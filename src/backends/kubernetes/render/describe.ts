// kubectl describe: Name, Namespace, Labels, Annotations, what matters for the
// kind (Pod, Deployment, Secret, ConfigMap), the rest of the object as YAML,
// then Events. Pure.
//
// Defense in depth: describeObject runs maskObject itself (it is idempotent),
// so even an unmasked input leaves no Secret value, no sensitive env value and
// no last-applied copy of either; a Secret prints sizes only, computed from the
// input and never its bytes. The content detectors run later on the text, so a
// truncated annotation is never cut inside a detector finding (the cut moves
// to the end of the finding).

import { Buffer } from 'node:buffer';
import { DETECTOR_NAMES, findSensitive } from '../../../masking/detectors.js';
import { sortKeysDeep } from '../jsonpath.js';
import { CONFIGMAP_MASK, LAST_APPLIED_ANNOTATION, SECRET_MASK, isRecord, maskObject } from '../mask.js';
import type { KubeObject } from '../types.js';
import { ageOf } from './age.js';
import { toYaml } from './objects.js';

const ANNOTATION_MAX_CHARS = 200;

type Line =
  | { readonly type: 'kv'; readonly indent: number; readonly key: string; readonly value: readonly string[] }
  | { readonly type: 'text'; readonly indent: number; readonly text: string };

/** kubectl describe's tabwriter, simplified: consecutive "Key: value" lines share a value column. */
class DescribeWriter {
  readonly lines: Line[] = [];

  kv(indent: number, key: string, value: string | readonly string[]): void {
    const values = typeof value === 'string' ? value.split('\n') : value.length === 0 ? [''] : value.flatMap((v) => v.split('\n'));
    this.lines.push({ type: 'kv', indent, key, value: values });
  }

  text(indent: number, text: string): void {
    for (const line of text.split('\n')) this.lines.push({ type: 'text', indent, text: line });
  }

  blank(): void {
    this.lines.push({ type: 'text', indent: 0, text: '' });
  }

  toString(): string {
    const out: string[] = [];
    let i = 0;
    while (i < this.lines.length) {
      const line = this.lines[i] as Line;
      if (line.type === 'text') {
        out.push(line.text === '' ? '' : ' '.repeat(line.indent) + line.text);
        i++;
        continue;
      }
      // Like tabwriter: the value column of a run of key/value lines (whatever
      // their indent) is shared; a plain text line ends the run.
      let j = i;
      let width = 0;
      for (; j < this.lines.length; j++) {
        const l = this.lines[j] as Line;
        if (l.type !== 'kv') break;
        width = Math.max(width, l.indent + l.key.length + 1);
      }
      for (let k = i; k < j; k++) {
        const l = this.lines[k] as Extract<Line, { type: 'kv' }>;
        const [first = '', ...rest] = l.value;
        out.push(`${`${' '.repeat(l.indent)}${l.key}:`.padEnd(width + 2)}${first}`.trimEnd());
        for (const more of rest) out.push(`${' '.repeat(width + 2)}${more}`.trimEnd());
      }
      i = j;
    }
    return `${out.join('\n')}\n`;
  }
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
}

function rec(value: unknown): Record<string, unknown> {
  return isRecord(value) ? value : {};
}

function arr(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function sortedEntries(value: unknown): Array<[string, unknown]> {
  return Object.entries(rec(value)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function labelLines(labels: unknown): string[] {
  const lines = sortedEntries(labels).map(([k, v]) => `${k}=${str(v) ?? ''}`);
  return lines.length === 0 ? ['<none>'] : lines;
}

/** One line; cut at ANNOTATION_MAX_CHARS, but never inside something a content detector would mask. */
export function truncateAnnotation(value: string): string {
  const flat = value.replace(/\r?\n/g, '\\n');
  if (flat.length <= ANNOTATION_MAX_CHARS) return flat;
  let cut = ANNOTATION_MAX_CHARS;
  for (const f of findSensitive(flat, DETECTOR_NAMES)) {
    if (f.start < cut && f.end > cut) cut = f.end;
  }
  if (cut >= flat.length) return flat;
  return `${flat.slice(0, cut)} … (truncated, ${flat.length} chars)`;
}

function annotationLines(annotations: unknown): string[] {
  const lines: string[] = [];
  for (const [k, v] of sortedEntries(annotations)) {
    // kubectl describe leaves this one out too: it repeats the object.
    if (k === LAST_APPLIED_ANNOTATION) continue;
    lines.push(`${k}: ${truncateAnnotation(str(v) ?? JSON.stringify(v) ?? '')}`);
  }
  return lines.length === 0 ? ['<none>'] : lines;
}

function indentBlock(text: string, indent: number): string {
  const pad = ' '.repeat(indent);
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l === '' ? l : pad + l))
    .join('\n');
}

function capitalise(key: string): string {
  return key.charAt(0).toUpperCase() + key.slice(1);
}

/** Deep copy without the given paths; parents left empty by the removal are removed too. */
function omitPaths(value: unknown, paths: ReadonlyArray<readonly string[]>): unknown {
  if (!isRecord(value)) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (paths.some((p) => p.length === 1 && p[0] === key)) continue;
    const sub = paths.filter((p) => p.length > 1 && p[0] === key).map((p) => p.slice(1));
    if (sub.length === 0) {
      Object.defineProperty(out, key, { value: value[key], enumerable: true, writable: true, configurable: true });
      continue;
    }
    const child = omitPaths(value[key], sub);
    if (isRecord(child) && Object.keys(child).length === 0 && isRecord(value[key]) && Object.keys(value[key] as object).length > 0) continue;
    Object.defineProperty(out, key, { value: child, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function writeRemaining(w: DescribeWriter, obj: Record<string, unknown>, skip: ReadonlySet<string>): void {
  for (const [key, value] of sortedEntries(obj)) {
    if (skip.has(key) || value === undefined) continue;
    if (isRecord(value) || Array.isArray(value)) {
      if ((isRecord(value) && Object.keys(value).length === 0) || (Array.isArray(value) && value.length === 0)) continue;
      w.text(0, `${capitalise(key)}:`);
      w.text(0, indentBlock(toYaml(sortKeysDeep(value)), 2));
    } else {
      w.kv(0, capitalise(key), str(value) ?? '<nil>');
    }
  }
}

function selectorText(selector: unknown): string {
  const s = rec(selector);
  const parts = sortedEntries(s['matchLabels']).map(([k, v]) => `${k}=${str(v) ?? ''}`);
  for (const e of arr(s['matchExpressions'])) {
    const r = rec(e);
    const key = str(r['key']) ?? '';
    const op = str(r['operator']) ?? '';
    const values = arr(r['values'])
      .map((v) => str(v) ?? '')
      .join(',');
    if (op === 'Exists') parts.push(key);
    else if (op === 'DoesNotExist') parts.push(`!${key}`);
    else parts.push(`${key} ${op.toLowerCase() === 'notin' ? 'notin' : 'in'} (${values})`);
  }
  return parts.length === 0 ? '<none>' : parts.join(',');
}

function envValue(entry: Record<string, unknown>): string {
  if (Object.hasOwn(entry, 'value')) return str(entry['value']) ?? '';
  const from = rec(entry['valueFrom']);
  const optional = (ref: Record<string, unknown>): string => `  Optional: ${ref['optional'] === true ? 'true' : 'false'}`;
  if (isRecord(from['secretKeyRef'])) {
    const r = from['secretKeyRef'];
    return `<set to the key '${str(r['key']) ?? ''}' in secret '${str(r['name']) ?? ''}'>${optional(r)}`;
  }
  if (isRecord(from['configMapKeyRef'])) {
    const r = from['configMapKeyRef'];
    return `<set to the key '${str(r['key']) ?? ''}' of config map '${str(r['name']) ?? ''}'>${optional(r)}`;
  }
  if (isRecord(from['fieldRef'])) {
    const r = from['fieldRef'];
    return ` (${str(r['apiVersion']) ?? 'v1'}:${str(r['fieldPath']) ?? ''})`;
  }
  if (isRecord(from['resourceFieldRef'])) return ` (${str(from['resourceFieldRef']['resource']) ?? ''})`;
  return '';
}

function writeContainerState(w: DescribeWriter, indent: number, label: string, state: unknown): void {
  const s = rec(state);
  const [name, detail] = Object.entries(s)[0] ?? [];
  if (name === undefined) {
    w.kv(indent, label, 'Waiting');
    return;
  }
  w.kv(indent, label, capitalise(name));
  const d = rec(detail);
  for (const [field, labelText] of [
    ['reason', 'Reason'],
    ['message', 'Message'],
    ['exitCode', 'Exit Code'],
    ['signal', 'Signal'],
    ['startedAt', 'Started'],
    ['finishedAt', 'Finished'],
  ] as const) {
    const v = str(d[field]);
    if (v !== undefined) w.kv(indent + 2, labelText, v);
  }
}

function writeContainers(w: DescribeWriter, indent: number, title: string, containers: unknown, statuses: unknown, withState: boolean): void {
  const list = arr(containers).filter(isRecord);
  if (list.length === 0) return;
  w.text(indent, `${title}:`);
  const statusByName = new Map<string, Record<string, unknown>>();
  for (const s of arr(statuses).filter(isRecord)) {
    const n = str(s['name']);
    if (n !== undefined) statusByName.set(n, s);
  }
  for (const c of list) {
    const name = str(c['name']) ?? '<unnamed>';
    const at = indent + 2;
    const inner = at + 2;
    w.text(at, `${name}:`);
    const status = statusByName.get(name);
    if (withState && status !== undefined && str(status['containerID']) !== undefined) w.kv(inner, 'Container ID', str(status['containerID']) ?? '');
    w.kv(inner, 'Image', str(c['image']) ?? '<none>');
    const ports = arr(c['ports'])
      .filter(isRecord)
      .map((p) => `${str(p['containerPort']) ?? '?'}/${str(p['protocol']) ?? 'TCP'}`);
    w.kv(inner, ports.length > 1 ? 'Ports' : 'Port', ports.length === 0 ? '<none>' : ports.join(', '));
    for (const [field, labelText] of [
      ['command', 'Command'],
      ['args', 'Args'],
    ] as const) {
      const items = arr(c[field]).map((x) => str(x) ?? JSON.stringify(x) ?? '');
      if (items.length > 0) {
        w.text(inner, `${labelText}:`);
        for (const item of items) w.text(inner + 2, item);
      }
    }
    if (withState) {
      if (status !== undefined) {
        writeContainerState(w, inner, 'State', status['state']);
        if (isRecord(status['lastState']) && Object.keys(status['lastState']).length > 0) writeContainerState(w, inner, 'Last State', status['lastState']);
        w.kv(inner, 'Ready', status['ready'] === true ? 'True' : 'False');
        w.kv(inner, 'Restart Count', str(status['restartCount']) ?? '0');
      } else {
        w.kv(inner, 'State', '<unknown>');
      }
    }
    const resources = rec(c['resources']);
    for (const [field, labelText] of [
      ['limits', 'Limits'],
      ['requests', 'Requests'],
    ] as const) {
      const entries = sortedEntries(resources[field]);
      if (entries.length === 0) continue;
      w.text(inner, `${labelText}:`);
      for (const [k, v] of entries) w.kv(inner + 2, k, str(v) ?? '');
    }
    const env = arr(c['env']).filter(isRecord);
    const envFrom = arr(c['envFrom']).filter(isRecord);
    if (envFrom.length > 0) {
      w.text(inner, 'Environment Variables from:');
      for (const f of envFrom) {
        const ref = isRecord(f['secretRef']) ? f['secretRef'] : rec(f['configMapRef']);
        const kind = isRecord(f['secretRef']) ? 'Secret' : 'ConfigMap';
        const prefix = str(f['prefix']);
        w.kv(
          inner + 2,
          str(ref['name']) ?? '',
          `${kind}${prefix === undefined ? '' : ` with prefix '${prefix}'`}  Optional: ${ref['optional'] === true ? 'true' : 'false'}`,
        );
      }
    }
    if (env.length === 0) {
      w.kv(inner, 'Environment', '<none>');
    } else {
      w.text(inner, 'Environment:');
      for (const e of env) w.kv(inner + 2, str(e['name']) ?? '', envValue(e));
    }
    const mounts = arr(c['volumeMounts'])
      .filter(isRecord)
      .map((m) => `${str(m['mountPath']) ?? ''} from ${str(m['name']) ?? ''} (${m['readOnly'] === true ? 'ro' : 'rw'})`);
    if (mounts.length === 0) {
      w.kv(inner, 'Mounts', '<none>');
    } else {
      w.text(inner, 'Mounts:');
      for (const m of mounts) w.text(inner + 2, m);
    }
  }
}

function describePod(w: DescribeWriter, obj: Record<string, unknown>, meta: Record<string, unknown>): Record<string, unknown> {
  const spec = rec(obj['spec']);
  const status = rec(obj['status']);
  const phase = str(status['phase']) ?? 'Unknown';
  w.kv(0, 'Status', meta['deletionTimestamp'] !== undefined ? `Terminating (since ${str(meta['deletionTimestamp']) ?? '?'})` : phase);
  if (str(status['reason']) !== undefined) w.kv(0, 'Reason', str(status['reason']) ?? '');
  if (str(status['message']) !== undefined) w.kv(0, 'Message', str(status['message']) ?? '');
  const node = str(spec['nodeName']);
  w.kv(0, 'Node', node === undefined ? '<none>' : `${node}${str(status['hostIP']) === undefined ? '' : `/${str(status['hostIP']) ?? ''}`}`);
  if (str(status['startTime']) !== undefined) w.kv(0, 'Start Time', str(status['startTime']) ?? '');
  w.kv(0, 'IP', str(status['podIP']) ?? '<none>');
  if (str(spec['serviceAccountName']) !== undefined) w.kv(0, 'Service Account', str(spec['serviceAccountName']) ?? '');
  const owner = arr(meta['ownerReferences'])
    .filter(isRecord)
    .find((o) => o['controller'] === true);
  if (owner !== undefined) w.kv(0, 'Controlled By', `${str(owner['kind']) ?? ''}/${str(owner['name']) ?? ''}`);
  writeContainers(w, 0, 'Init Containers', spec['initContainers'], status['initContainerStatuses'], true);
  writeContainers(w, 0, 'Containers', spec['containers'], status['containerStatuses'], true);
  return omitPaths(obj, [
    ['spec', 'containers'],
    ['spec', 'initContainers'],
    ['spec', 'nodeName'],
    ['spec', 'serviceAccountName'],
    ['status', 'phase'],
    ['status', 'reason'],
    ['status', 'message'],
    ['status', 'hostIP'],
    ['status', 'podIP'],
    ['status', 'startTime'],
    ['status', 'containerStatuses'],
    ['status', 'initContainerStatuses'],
  ]) as Record<string, unknown>;
}

function describeDeployment(w: DescribeWriter, obj: Record<string, unknown>): Record<string, unknown> {
  const spec = rec(obj['spec']);
  const status = rec(obj['status']);
  const n = (v: unknown): string => str(v) ?? '0';
  w.kv(
    0,
    'Replicas',
    `${str(spec['replicas']) ?? '1'} desired | ${n(status['updatedReplicas'])} updated | ${n(status['replicas'])} ` +
      `total | ${n(status['availableReplicas'])} available | ${n(status['unavailableReplicas'])} unavailable`,
  );
  w.kv(0, 'Selector', selectorText(spec['selector']));
  const strategy = rec(spec['strategy']);
  const strategyType = str(strategy['type']) ?? 'RollingUpdate';
  w.kv(0, 'StrategyType', strategyType);
  w.kv(0, 'MinReadySeconds', str(spec['minReadySeconds']) ?? '0');
  if (strategyType === 'RollingUpdate') {
    const ru = rec(strategy['rollingUpdate']);
    w.kv(0, 'RollingUpdateStrategy', `${str(ru['maxUnavailable']) ?? '25%'} max unavailable, ${str(ru['maxSurge']) ?? '25%'} max surge`);
  }
  const template = rec(spec['template']);
  const tmeta = rec(template['metadata']);
  const tspec = rec(template['spec']);
  w.text(0, 'Pod Template:');
  w.kv(2, 'Labels', labelLines(tmeta['labels']));
  if (Object.keys(rec(tmeta['annotations'])).length > 0) w.kv(2, 'Annotations', annotationLines(tmeta['annotations']));
  if (str(tspec['serviceAccountName']) !== undefined) w.kv(2, 'Service Account', str(tspec['serviceAccountName']) ?? '');
  writeContainers(w, 2, 'Init Containers', tspec['initContainers'], undefined, false);
  writeContainers(w, 2, 'Containers', tspec['containers'], undefined, false);
  return omitPaths(obj, [
    ['spec', 'replicas'],
    ['spec', 'selector'],
    ['spec', 'strategy'],
    ['spec', 'minReadySeconds'],
    ['spec', 'template', 'metadata', 'labels'],
    ['spec', 'template', 'metadata', 'annotations'],
    ['spec', 'template', 'spec', 'containers'],
    ['spec', 'template', 'spec', 'initContainers'],
    ['spec', 'template', 'spec', 'serviceAccountName'],
    ['status', 'replicas'],
    ['status', 'updatedReplicas'],
    ['status', 'availableReplicas'],
    ['status', 'unavailableReplicas'],
  ]) as Record<string, unknown>;
}

/** Decoded size of a Secret/binaryData value, from the input only: never its bytes. */
function sizeText(value: unknown, encoding: 'base64' | 'utf8', mask: string): string {
  if (value === mask) return mask;
  if (typeof value !== 'string') return '<invalid>';
  return `${encoding === 'base64' ? Buffer.from(value, 'base64').length : Buffer.byteLength(value, 'utf8')} bytes`;
}

function describeSecret(w: DescribeWriter, original: Record<string, unknown>, masked: Record<string, unknown>): void {
  w.blank();
  w.kv(0, 'Type', str(masked['type']) ?? '<none>');
  w.blank();
  w.text(0, 'Data');
  w.text(0, '====');
  const sizes: Array<[string, string]> = [];
  for (const [field, encoding] of [
    ['data', 'base64'],
    ['stringData', 'utf8'],
  ] as const) {
    const data = original[field];
    if (data === undefined || data === null) continue;
    if (!isRecord(data)) {
      sizes.push([field, SECRET_MASK]);
      continue;
    }
    for (const key of Object.keys(data)) sizes.push([key, sizeText(data[key], encoding, SECRET_MASK)]);
  }
  sizes.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, size] of sizes) w.kv(0, key, size);
}

function describeConfigMap(w: DescribeWriter, original: Record<string, unknown>, masked: Record<string, unknown>): void {
  w.blank();
  w.text(0, 'Data');
  w.text(0, '====');
  for (const [key, value] of sortedEntries(masked['data'])) {
    w.text(0, `${key}:`);
    w.text(0, '----');
    w.text(0, (str(value) ?? '').replace(/\n$/, ''));
    w.blank();
  }
  const binary = original['binaryData'];
  if (Object.keys(rec(masked['data'])).length === 0) w.blank();
  w.text(0, 'BinaryData');
  w.text(0, '====');
  if (isRecord(binary)) {
    for (const [key, value] of sortedEntries(binary)) w.kv(0, key, sizeText(value, 'base64', CONFIGMAP_MASK));
  } else if (binary !== undefined && binary !== null) {
    w.text(0, CONFIGMAP_MASK);
  }
}

function eventTime(e: Record<string, unknown>): string | undefined {
  const series = rec(e['series']);
  return str(series['lastObservedTime']) ?? str(e['lastTimestamp']) ?? str(e['eventTime']) ?? str(e['firstTimestamp']) ?? str(e['deprecatedLastTimestamp']);
}

function eventRow(e: Record<string, unknown>, now: Date): string[] {
  const source = rec(e['source']);
  const from = str(source['component']) ?? str(e['reportingComponent']) ?? str(e['reportingController']) ?? '';
  const first = str(e['eventTime']) ?? str(e['firstTimestamp']) ?? str(e['deprecatedFirstTimestamp']);
  const firstAge = ageOf(first, now);
  const series = rec(e['series']);
  const count = typeof e['count'] === 'number' ? e['count'] : typeof e['deprecatedCount'] === 'number' ? e['deprecatedCount'] : 0;
  let age: string;
  if (isRecord(e['series']) && typeof series['count'] === 'number') {
    age = `${ageOf(str(series['lastObservedTime']), now)} (x${series['count']} over ${firstAge})`;
  } else if (count > 1) {
    age = `${ageOf(str(e['lastTimestamp']) ?? str(e['deprecatedLastTimestamp']), now)} (x${count} over ${firstAge})`;
  } else {
    age = firstAge;
  }
  const message = (str(e['message']) ?? str(e['note']) ?? '').trim().replace(/\s*[\r\n]+\s*/g, ' ');
  return [str(e['type']) ?? '', str(e['reason']) ?? '', age, from, message];
}

function writeEvents(w: DescribeWriter, events: readonly KubeObject[], now: Date): void {
  const masked = events.map((e) => maskObject(e).value).filter(isRecord);
  if (masked.length === 0) {
    w.kv(0, 'Events', '<none>');
    return;
  }
  const ordered = masked
    .map((e, i) => ({ e, i, t: Date.parse(eventTime(e) ?? '') }))
    .sort((a, b) => (Number.isFinite(a.t) && Number.isFinite(b.t) && a.t !== b.t ? a.t - b.t : a.i - b.i));
  const rows = [['Type', 'Reason', 'Age', 'From', 'Message'], ['----', '------', '----', '----', '-------'], ...ordered.map(({ e }) => eventRow(e, now))];
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  w.text(0, 'Events:');
  for (const r of rows) {
    const line = r.map((cell, c) => (c < 4 ? cell.padEnd((widths[c] ?? 0) + 2) : cell)).join('');
    w.text(2, line.trimEnd());
  }
}

/**
 * kubectl describe: Name, Namespace, Labels, Annotations, then what matters
 * for the kind (Pod, Deployment, Secret, ConfigMap), then the rest of the
 * object as YAML, then Events. Masks its input itself; a Secret shows key
 * sizes only.
 */
export function describeObject(obj: KubeObject, events: KubeObject[], now: Date): string {
  const original: Record<string, unknown> = isRecord(obj) ? obj : {};
  const maskedValue = maskObject(original).value;
  const masked = isRecord(maskedValue) ? maskedValue : {};
  const meta = rec(masked['metadata']);
  const kind = str(masked['kind']) ?? '';
  const w = new DescribeWriter();

  w.kv(0, 'Name', str(meta['name']) ?? '<none>');
  if (str(meta['namespace']) !== undefined) w.kv(0, 'Namespace', str(meta['namespace']) ?? '');
  w.kv(0, 'Labels', labelLines(meta['labels']));
  w.kv(0, 'Annotations', annotationLines(meta['annotations']));
  if (str(meta['creationTimestamp']) !== undefined) {
    w.kv(0, 'CreationTimestamp', `${str(meta['creationTimestamp']) ?? ''} (${ageOf(str(meta['creationTimestamp']), now)} ago)`);
  }

  const skip = new Set(['apiVersion', 'kind', 'metadata']);
  let rest: Record<string, unknown> = masked;
  const isSecret = kind === 'Secret' || (kind === '' && typeof masked['type'] === 'string' && (isRecord(original['data']) || isRecord(original['stringData'])));
  if (isSecret) {
    describeSecret(w, original, masked);
    for (const k of ['type', 'data', 'stringData']) skip.add(k);
  } else if (kind === 'ConfigMap') {
    describeConfigMap(w, original, masked);
    for (const k of ['data', 'binaryData']) skip.add(k);
  } else if (kind === 'Pod') {
    rest = describePod(w, masked, meta);
  } else if (kind === 'Deployment') {
    rest = describeDeployment(w, masked);
  }
  writeRemaining(w, rest, skip);
  w.blank();
  writeEvents(w, events, now);
  return w.toString();
}
