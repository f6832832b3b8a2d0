// Label and field selectors with the API server's grammar and error messages.

import { ApiError, getPath, isRecord, type KubeObject } from './model.js';
import type { ResourceDef } from './resources.js';

export type LabelOp = '=' | '!=' | 'in' | 'notin' | 'exists' | '!exists' | 'gt' | 'lt';

export interface LabelRequirement {
  readonly key: string;
  readonly op: LabelOp;
  readonly values: readonly string[];
}

export interface FieldRequirement {
  readonly field: string;
  readonly op: '=' | '!=';
  readonly value: string;
}

const KEY = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const VALUE = String.raw`([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const RE_SET = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const RE_EQ = new RegExp(String.raw`^(${KEY})\s*(==|=|!=)\s*(\S*)$`);
const RE_CMP = new RegExp(String.raw`^(${KEY})\s*(>|<)\s*(\S+)$`);
const RE_EXISTS = new RegExp(String.raw`^(${KEY})$`);
const RE_NOT_EXISTS = new RegExp(String.raw`^!\s*(${KEY})$`);
const RE_VALUE = new RegExp(`^${VALUE}$`);

function badSelector(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

function checkValue(value: string, term: string): string {
  if (value.length > 63 || !RE_VALUE.test(value)) {
    throw badSelector(
      `unable to parse requirement: values[0][${term}]: Invalid value: "${value}": ` +
        `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', ` +
        `and must start and end with an alphanumeric character`,
    );
  }
  return value;
}

/** Splits on commas that are not inside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  terms.push(cur);
  return terms;
}

export function parseLabelSelector(selector: string | null | undefined): LabelRequirement[] {
  if (selector == null || selector.trim() === '') return [];
  const out: LabelRequirement[] = [];
  for (const raw of splitTerms(selector)) {
    const term = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = RE_NOT_EXISTS.exec(term))) {
      out.push({ key: m[1]!, op: '!exists', values: [] });
    } else if ((m = RE_SET.exec(term))) {
      const values = m[4]!.split(',').map((v) => checkValue(v.trim(), term));
      out.push({ key: m[1]!, op: m[3] === 'in' ? 'in' : 'notin', values });
    } else if ((m = RE_EQ.exec(term))) {
      out.push({ key: m[1]!, op: m[3] === '!=' ? '!=' : '=', values: [checkValue(m[4]!, term)] });
    } else if ((m = RE_CMP.exec(term))) {
      if (!/^-?\d+$/.test(m[4]!)) throw badSelector(`unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer`);
      out.push({ key: m[1]!, op: m[3] === '>' ? 'gt' : 'lt', values: [m[4]!] });
    } else if ((m = RE_EXISTS.exec(term))) {
      out.push({ key: m[1]!, op: 'exists', values: [] });
    } else {
      throw badSelector(`unable to parse requirement: found '${term}', expected: in, notin, =, ==, !=, gt, lt`);
    }
  }
  return out;
}

export function matchesLabels(reqs: readonly LabelRequirement[], labels: unknown): boolean {
  const l: Record<string, unknown> = isRecord(labels) ? labels : {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = typeof l[r.key] === 'string' ? (l[r.key] as string) : undefined;
    switch (r.op) {
      case '=':
        return has && v === r.values[0];
      case '!=':
        return !has || v !== r.values[0];
      case 'in':
        return has && v !== undefined && r.values.includes(v);
      case 'notin':
        return !has || v === undefined || !r.values.includes(v);
      case 'exists':
        return has;
      case '!exists':
        return !has;
      case 'gt':
        return has && v !== undefined && /^-?\d+$/.test(v) && Number(v) > Number(r.values[0]);
      case 'lt':
        return has && v !== undefined && /^-?\d+$/.test(v) && Number(v) < Number(r.values[0]);
    }
  });
}

/** Splits on `sep` unless escaped with a backslash. */
function splitEscaped(s: string, sep: string): string[] {
  const parts: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\' && i + 1 < s.length) {
      cur += ch + s[i + 1];
      i++;
    } else if (ch === sep) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  parts.push(cur);
  return parts;
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

export function parseFieldSelector(selector: string | null | undefined, def: ResourceDef): FieldRequirement[] {
  if (selector == null || selector.trim() === '') return [];
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...def.fieldLabels]);
  const out: FieldRequirement[] = [];
  for (const raw of splitEscaped(selector, ',')) {
    const term = raw.trim();
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new ApiError(400, 'BadRequest', `invalid selector: '${selector}'; can't understand '${term}'`);
    const field = m[1]!.trim();
    if (!allowed.has(field)) throw new ApiError(400, 'BadRequest', `field label not supported: ${field}`);
    out.push({ field, op: m[2] === '!=' ? '!=' : '=', value: unescape(m[3]!) });
  }
  return out;
}

function fieldValue(obj: KubeObject, field: string): string {
  if (field === 'source') {
    const v = getPath(obj, ['source', 'component']);
    return typeof v === 'string' ? v : '';
  }
  const v = getPath(obj, field.split('.'));
  if (v === undefined || v === null) return field === 'spec.unschedulable' || field === 'spec.hostNetwork' ? 'false' : '';
  return typeof v === 'string' ? v : String(v);
}

export function matchesFields(reqs: readonly FieldRequirement[], obj: KubeObject): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}

/** `app=web,tier in (a,b)`: a LabelSelector object printed the way kubectl prints it. */
export function formatLabelSelector(selector: unknown): string {
  if (!isRecord(selector)) return '<none>';
  const parts: string[] = [];
  const ml = selector['matchLabels'];
  if (isRecord(ml)) for (const [k, v] of Object.entries(ml)) parts.push(`${k}=${String(v)}`);
  const me = selector['matchExpressions'];
  if (Array.isArray(me)) {
    for (const e of me) {
      if (!isRecord(e)) continue;
      const key = String(e['key']);
      const values = Array.isArray(e['values']) ? e['values'].map(String) : [];
      switch (e['operator']) {
        case 'In':
          parts.push(`${key} in (${values.join(',')})`);
          break;
        case 'NotIn':
          parts.push(`${key} notin (${values.join(',')})`);
          break;
        case 'Exists':
          parts.push(key);
          break;
        case 'DoesNotExist':
          parts.push(`!${key}`);
          break;
      }
    }
  }
  return parts.length ? parts.join(',') : '<none>';
}
