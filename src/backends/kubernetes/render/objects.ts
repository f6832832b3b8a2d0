// kubectl -o yaml | json | name | jsonpath over one object, an array, a List
// or a Table. The single path of every structured output, jsonpath included:
// the objects are masked here again (maskObject is idempotent), whatever the
// caller did, so even an unmasked input leaves no Secret value, no sensitive
// env value and no last-applied copy of either. YAML is written without line
// folding, so the content detectors that run later on the text never see a
// sensitive value split across lines. Pure.

import YAML from 'yaml';
import { evaluateJsonPath, sortKeysDeep } from '../jsonpath.js';
import { isRecord, maskObject } from '../mask.js';

export type RenderFormat = { kind: 'yaml' | 'json' | 'name' } | { kind: 'jsonpath'; template: string };

const YAML_OPTIONS = {
  // Like sigs.k8s.io/yaml (go-yaml v2): YAML 1.1 quoting ("yes", timestamps),
  // sequences not indented under their key. Never fold lines (see top).
  version: '1.1',
  indentSeq: false,
  lineWidth: 0,
  minContentWidth: 0,
  aliasDuplicateObjects: false,
} as const;

export function toYaml(value: unknown): string {
  return YAML.stringify(value, YAML_OPTIONS);
}

interface Normalised {
  /** What kubectl prints: the object itself, or a List of all of them. */
  readonly document: unknown;
  readonly objects: readonly unknown[];
}

/** One object stays itself; an array, a List (typed or not) or a Table becomes kubectl's `kind: List`. */
function normalise(input: unknown): Normalised {
  let items: unknown[] | null = null;
  if (Array.isArray(input)) {
    items = input;
  } else if (isRecord(input) && input['kind'] === 'Table' && Array.isArray(input['rows'])) {
    items = input['rows'].map((row: unknown) => (isRecord(row) ? row['object'] : undefined)).filter((o) => o !== undefined && o !== null);
  } else if (isRecord(input) && Array.isArray(input['items']) && (typeof input['kind'] !== 'string' || input['kind'].endsWith('List'))) {
    const listKind = typeof input['kind'] === 'string' ? input['kind'] : '';
    const itemKind = listKind.length > 4 && listKind !== 'List' ? listKind.slice(0, -4) : null;
    const apiVersion = input['apiVersion'];
    items = input['items'].map((item: unknown) => {
      // Typed lists from the API omit kind/apiVersion on their items; kubectl fills them in.
      if (!isRecord(item) || itemKind === null || typeof item['kind'] === 'string') return item;
      const filled: Record<string, unknown> = { ...item, kind: itemKind };
      if (typeof item['apiVersion'] !== 'string' && typeof apiVersion === 'string') filled['apiVersion'] = apiVersion;
      return filled;
    });
  }
  if (items === null) return { document: input, objects: [input] };
  return { document: { apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } }, objects: items };
}

/**
 * kubectl -o yaml|json|name|jsonpath. `objects` is one object, an array, a
 * List or a Table (rows[].object); it is masked here again whatever the caller
 * did. `name` prints `${resourceKey}/${metadata.name}` per object.
 */
export function renderObjects(objects: unknown, format: RenderFormat, context: { resourceKey: string }): string {
  const masked = maskObject(objects).value;
  const { document, objects: list } = normalise(masked);
  switch (format.kind) {
    case 'yaml':
      return toYaml(sortKeysDeep(document));
    case 'json':
      return `${JSON.stringify(sortKeysDeep(document), null, 4)}\n`;
    case 'name': {
      let out = '';
      for (const obj of list) {
        const meta = isRecord(obj) ? obj['metadata'] : undefined;
        const name = isRecord(meta) ? meta['name'] : undefined;
        if (typeof name !== 'string' || name === '') continue;
        out += context.resourceKey === '' ? `${name}\n` : `${context.resourceKey}/${name}\n`;
      }
      return out;
    }
    case 'jsonpath':
      return evaluateJsonPath(format.template, sortKeysDeep(document));
    default: {
      const unknown: never = format;
      throw new TypeError(`renderObjects: unknown format ${JSON.stringify(unknown)}`);
    }
  }
}
