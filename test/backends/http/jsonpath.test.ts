// The http_request backend's JSONPath field selectors: which values each
// selector masks (table-driven), string escapes, syntax errors reported with
// their position at config load, counting per selector, and hostile documents
// (100,000-deep nesting, huge arrays) handled without recursion.

import { describe, expect, it } from 'vitest';
import { fieldMarker, fieldPathProblems, maskFields, parseFieldPaths, type FieldPath } from '../../../src/backends/http/jsonpath.js';

function paths(...selectors: string[]): FieldPath[] {
  const result = parseFieldPaths(selectors);
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return [...result.paths];
}

const doc = () => ({
  customer: { email: 'a@example.com', name: 'Ann', card_number: '4111111111111111' },
  items: [
    { sku: 'x', email: 'b@example.com', meta: { card_number: 5555 } },
    { sku: 'y', email: 'c@example.com' },
  ],
  'odd key': { "it's": 1, 'a"b': 2 },
  a: [{ b: 'first' }, { b: 'second' }],
  empty: {},
});

const M = fieldMarker;

// selector → the paths (as JS accessors) expected to hold the marker, and the count.
const selections: Array<[string, Array<(d: ReturnType<typeof doc>) => unknown>, number]> = [
  ['$.customer.email', [(d) => d.customer.email], 1],
  ["$['customer']['email']", [(d) => d.customer.email], 1],
  ['$["customer"].email', [(d) => d.customer.email], 1],
  ['$..card_number', [(d) => d.customer.card_number, (d) => d.items[0]?.meta?.card_number], 2],
  ['$.items[*].email', [(d) => d.items[0]?.email, (d) => d.items[1]?.email], 2],
  ['$.items.*.email', [(d) => d.items[0]?.email, (d) => d.items[1]?.email], 2],
  ['$.a[0].b', [(d) => d.a[0]?.b], 1],
  ['$.a[-1].b', [(d) => d.a[1]?.b], 1],
  ['$.a[0,1].b', [(d) => d.a[0]?.b, (d) => d.a[1]?.b], 2],
  ["$['odd key']", [(d) => d['odd key']], 1],
  ["$['odd key']['it\\'s']", [(d) => d['odd key']["it's"]], 1],
  ['$["odd key"]["a\\"b"]', [(d) => d['odd key']['a"b']], 1],
  ["$['odd key']['\\u0061\"b']", [(d) => d['odd key']['a"b']], 1],
  ['$.customer', [(d) => d.customer], 1],
  ['$.customer.*', [(d) => d.customer.email, (d) => d.customer.name, (d) => d.customer.card_number], 3],
  ['$..[\'email\',"sku"]', [(d) => d.customer.email, (d) => d.items[0]?.email, (d) => d.items[1]?.sku], 5],
  ['$ .items [ 1 ] .email', [(d) => d.items[1]?.email], 1],
  ['$.missing.email', [], 0],
  ['$.a[5].b', [], 0],
  ['$.empty.*', [], 0],
  ['$.customer[0]', [], 0],
  ['$.items.email', [], 0],
];

describe('selection', () => {
  it.each(selections)('%s', (selector, expected, count) => {
    const { value, counts } = maskFields(doc(), paths(selector));
    const masked = value as ReturnType<typeof doc>;
    for (const at of expected) expect(at(masked)).toBe(M(selector));
    expect(counts).toEqual(count === 0 ? [] : [{ target: selector, count }]);
    // Nothing else changed: exactly `count` markers in the document.
    expect(JSON.stringify(masked).split(JSON.stringify(M(selector))).length - 1).toBe(count);
  });

  it('masks the whole document with $', () => {
    expect(maskFields(doc(), paths('$'))).toEqual({ value: M('$'), counts: [{ target: '$', count: 1 }] });
  });

  it('masks numbers, booleans, null and objects as whole values', () => {
    const { value } = maskFields({ n: 1, b: true, z: null, o: { deep: [1, 2] } }, paths('$.*'));
    expect(value).toEqual({ n: M('$.*'), b: M('$.*'), z: M('$.*'), o: M('$.*') });
  });

  it('masks each value once: the first selector wins, values inside a masked one are gone with it', () => {
    const { value, counts } = maskFields(doc(), paths('$.customer.email', '$..email', '$.customer'));
    const masked = value as ReturnType<typeof doc>;
    expect(masked.customer).toBe(M('$.customer'));
    expect(masked.items[0]?.email).toBe(M('$..email'));
    expect(counts).toEqual([
      { target: '$.customer.email', count: 1 },
      { target: '$..email', count: 2 },
      { target: '$.customer', count: 1 },
    ]);
  });

  it('selects a "__proto__" member of parsed JSON as an own member, without touching prototypes', () => {
    const parsed = JSON.parse('{"__proto__": {"secret": "s"}, "x": 1}') as unknown;
    const { value, counts } = maskFields(parsed, paths('$..secret', "$['__proto__']"));
    expect(JSON.stringify(value)).toBe(`{"__proto__":${JSON.stringify(M("$['__proto__']"))},"x":1}`);
    expect(counts).toEqual([
      { target: '$..secret', count: 1 },
      { target: "$['__proto__']", count: 1 },
    ]);
    expect(({} as Record<string, unknown>)['secret']).toBeUndefined();
  });

  it('leaves scalar documents alone unless $ selects them', () => {
    expect(maskFields('text', paths('$.a', '$..b'))).toEqual({ value: 'text', counts: [] });
  });
});

describe('syntax errors are reported at config load', () => {
  const invalid: Array<[string, RegExp, number]> = [
    ['customer.email', /starts with \$/, 0],
    ['', /starts with \$/, 0],
    ['$.', /member name/, 2],
    ['$..', /member name/, 3],
    ['$.a.', /member name/, 4],
    ['$.1abc', /member name/, 2],
    ['$.a-b', /unexpected "-"/, 3],
    ['$[?(@.x)]', /filter/, 2],
    ['$.items[?@.price > 10]', /filter/, 8],
    ['$.a[0:2]', /slices/, 5],
    ['$.a[:2]', /slices/, 4],
    ['$.a[01]', /integer/, 5],
    ['$.a[-0]', /-0/, 4],
    ['$.a[1.5]', /integer/, 5],
    ['$.a[99999999999999999999]', /out of range/, 4],
    ["$['unterminated", /unterminated string/, 15],
    ['$.a[1', /unterminated \[/, 5],
    ['$.a[1 2]', /expected , or \]/, 6],
    ["$['\\x']", /unknown escape/, 3],
    ["$['a\\\"b']", /unknown escape/, 4],
    ["$['\\u12']", /four hex digits/, 3],
    ["$['a\nb']", /control character/, 4],
    ['$.a]', /unexpected "\]"/, 3],
    ['$.length()', /unexpected "\("/, 8],
    ['$[]', /unexpected "\]"/, 2],
  ];
  it.each(invalid)('%j', (selector, message, position) => {
    const problems = fieldPathProblems([selector]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ selector, position });
    expect(problems[0]?.message).toMatch(message);
  });

  it('reports every bad selector of a list, and none for good ones', () => {
    const result = parseFieldPaths(['$.ok', '$[?x]', '$.fine[*]', 'nope']);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => p.selector)).toEqual(['$[?x]', 'nope']);
    expect(fieldPathProblems(['$.ok', "$..['x y']", '$.a[-3]'])).toEqual([]);
  });
});

describe('hostile documents', () => {
  it('selects through 100,000 levels of nesting without recursion', () => {
    const depth = 100_000;
    const parsed = JSON.parse('{"a":'.repeat(depth) + '{"card_number":"4111111111111111"}' + '}'.repeat(depth)) as unknown;
    const { counts } = maskFields(parsed, paths('$..card_number', '$..nothing'));
    expect(counts).toEqual([{ target: '$..card_number', count: 1 }]);
    let node = parsed as Record<string, unknown>;
    for (let i = 0; i < depth; i++) node = node['a'] as Record<string, unknown>;
    expect(node['card_number']).toBe(M('$..card_number'));
  });

  it('masks every element of a 200,000-element array in linear time', () => {
    const items = Array.from({ length: 200_000 }, (_, i) => ({ id: i, email: `u${i}@example.com` }));
    const { value, counts } = maskFields({ items }, paths('$.items[*].email', '$..id'));
    expect(counts).toEqual([
      { target: '$.items[*].email', count: 200_000 },
      { target: '$..id', count: 200_000 },
    ]);
    expect((value as { items: Array<{ email: string }> }).items[199_999]?.email).toBe(M('$.items[*].email'));
  });

  it('descendant segments chained on a deep document stay linear (each container visited once per segment)', () => {
    const depth = 20_000;
    const parsed = JSON.parse('{"a":'.repeat(depth) + '1' + '}'.repeat(depth)) as unknown;
    const { counts } = maskFields(parsed, paths('$..a..a..a'));
    expect(counts).toEqual([{ target: '$..a..a..a', count: depth - 2 }]);
  });
});
