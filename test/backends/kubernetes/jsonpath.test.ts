// Table-driven tests for kubectl's JSONPath template subset: fields, escaped
// and quoted keys with dots, indexes, slices, wildcards, unions, filters,
// recursive descent, range/end, string literals, kubectl's printing rules
// (space-joined results, compact JSON with sorted keys, <nil>), and the
// refusals (input.invalid naming what is not supported).

import { describe, expect, it } from 'vitest';
import { evaluateJsonPath, parseJsonPath } from '../../../src/backends/kubernetes/jsonpath.js';
import { DrawbridgeError } from '../../../src/errors.js';

const pods = {
  apiVersion: 'v1',
  kind: 'List',
  metadata: { resourceVersion: '' },
  items: [
    {
      kind: 'Pod',
      metadata: {
        name: 'web-1',
        namespace: 'prod',
        labels: { app: 'web', 'app.kubernetes.io/name': 'web' },
        annotations: { 'kubectl.kubernetes.io/restartedAt': '2024-05-01T10:00:00Z' },
      },
      spec: {
        nodeName: 'node-a',
        containers: [
          { name: 'nginx', image: 'nginx:1.25' },
          { name: 'sidecar', image: 'envoy:1.30' },
        ],
      },
      status: { phase: 'Running', restartCount: 0, ready: true, hostIP: null },
    },
    {
      kind: 'Pod',
      metadata: { name: 'web-2', namespace: 'prod', labels: { app: 'web' } },
      spec: { nodeName: 'node-b', containers: [{ name: 'nginx', image: 'nginx:1.25' }] },
      status: { phase: 'Pending', restartCount: 3, ready: false },
    },
    {
      kind: 'Pod',
      metadata: { name: 'batch-1', namespace: 'jobs', labels: { app: 'batch' } },
      spec: { nodeName: 'node-a', containers: [{ name: 'job', image: 'busybox' }] },
      status: { phase: 'Succeeded', restartCount: 1, ready: false },
    },
  ],
};

describe('evaluateJsonPath: supported syntax', () => {
  type Row = readonly [template: string, expected: string];
  const rows: Row[] = [
    ['{.kind}', 'List'],
    ['{$.kind}', 'List'],
    ['{.items[*].metadata.name}', 'web-1 web-2 batch-1'],
    ['{.items[0].metadata.name}', 'web-1'],
    ['{.items[-1].metadata.name}', 'batch-1'],
    ['{.items[-1:].metadata.name}', 'batch-1'],
    ['{.items[0:2].metadata.name}', 'web-1 web-2'],
    ['{.items[:2].metadata.name}', 'web-1 web-2'],
    ['{.items[1:].metadata.name}', 'web-2 batch-1'],
    ['{.items[::2].metadata.name}', 'web-1 batch-1'],
    ['{.items[0,2].metadata.name}', 'web-1 batch-1'],
    ['{.items[0].metadata.labels.app}', 'web'],
    ['{.items[0].metadata.labels.app\\.kubernetes\\.io/name}', 'web'],
    ["{.items[0].metadata.labels['app.kubernetes.io/name']}", 'web'],
    ['{.items[0].metadata.labels["app.kubernetes.io/name"]}', 'web'],
    ["{.items[0].metadata['name','namespace']}", 'web-1 prod'],
    ['{.items[0].spec.containers[*].image}', 'nginx:1.25 envoy:1.30'],
    ['{.items[*].spec.containers[0].name}', 'nginx nginx job'],
    ['{.items[?(@.status.phase=="Running")].metadata.name}', 'web-1'],
    ["{.items[?(@.status.phase != 'Running')].metadata.name}", 'web-2 batch-1'],
    ['{.items[?(@.status.restartCount>0)].metadata.name}', 'web-2 batch-1'],
    ['{.items[?(@.status.restartCount<=1)].metadata.name}', 'web-1 batch-1'],
    ['{.items[?(@.status.ready==true)].metadata.name}', 'web-1'],
    ['{.items[?(@.metadata.annotations)].metadata.name}', 'web-1'],
    ['{.items[?(@.spec.nodeName==@.spec.nodeName)].metadata.name}', 'web-1 web-2 batch-1'],
    ['{.items[?(@.metadata.labels.app=="web")].spec.containers[?(@.name=="sidecar")].image}', 'envoy:1.30'],
    ['{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', 'web-1\tRunning\nweb-2\tPending\nbatch-1\tSucceeded\n'],
    ["{range .items[*]}{.metadata.name}{'\\n'}{end}", 'web-1\nweb-2\nbatch-1\n'],
    ['{range .items[*]}{.metadata.name}:{range .spec.containers[*]}[{.name}]{end};{end}', 'web-1:[nginx][sidecar];web-2:[nginx];batch-1:[job];'],
    ['{range .items[?(@.metadata.namespace=="jobs")]}{.metadata.name}{end}', 'batch-1'],
    ['{range .items[*]}{$.kind}{end}', 'PodPodPod'],
    ['names: {.items[*].metadata.name} (done)', 'names: web-1 web-2 batch-1 (done)'],
    ['{.items[0].metadata.name} {.items[1].metadata.name}', 'web-1 web-2'],
    ['plain text, no actions', 'plain text, no actions'],
    ['{.items[0].metadata.labels}', '{"app":"web","app.kubernetes.io/name":"web"}'],
    ['{.items[1].spec.containers}', '[{"image":"nginx:1.25","name":"nginx"}]'],
    ['{.items[0].metadata.labels.*}', 'web web'],
    ['{.items[0].status.restartCount} {.items[0].status.ready}', '0 true'],
    ['{.items[0].status.hostIP}', '<nil>'],
    ['{.items[0].missing.field}', ''],
    ['{.items.metadata.name}', ''],
    ['{.items[5:5]}', ''],
    ['{..nodeName}', 'node-a node-b node-a'],
    ['{.items[1]..image}', 'nginx:1.25'],
    ['{ .kind }', 'List'],
    ['{"literal }"}', 'literal }'],
    ['{"\\u00e9t\\u00e9"}', 'été'],
  ];

  it.each(rows)('%s', (template, expected) => {
    expect(evaluateJsonPath(template, pods)).toBe(expected);
  });

  it('{.} and {@} print the whole object as compact JSON with sorted keys', () => {
    expect(evaluateJsonPath('{.}', { b: 1, a: { d: 2, c: 3 } })).toBe('{"a":{"c":3,"d":2},"b":1}');
    expect(evaluateJsonPath('{@}', [1, 'x'])).toBe('[1,"x"]');
  });

  it('a range over no results prints nothing and continues after {end}', () => {
    expect(evaluateJsonPath('[{range .items[?(@.kind=="Node")]}{.metadata.name}{end}]', pods)).toBe('[]');
  });

  it('prints masked values as they are', () => {
    const secret = { kind: 'Secret', data: { password: '[masked:secret]' } };
    expect(evaluateJsonPath('{.data.password}', secret)).toBe('[masked:secret]');
  });

  it('reads "__proto__" only as an own key', () => {
    expect(evaluateJsonPath('{.__proto__}', {})).toBe('');
    expect(evaluateJsonPath('{.constructor}', {})).toBe('');
  });
});

describe('evaluateJsonPath: errors and refusals', () => {
  type Row = readonly [template: string, message: RegExp];
  const rows: Row[] = [
    ['{.items[?(@.metadata.name=~"web.*")]}', /regular-expression.*not supported/],
    ['{.items[?(@.a=="x" && @.b=="y")]}', /"&&" in filters is not supported/],
    ['{.items[?(@.a=="x" || @.b=="y")]}', /"\|\|" in filters is not supported/],
    ['{.items[?(@.a="x")]}', /use "=="/],
    ['{.items[?(@.a==null)]}', /null literal in filters is not supported/],
    ['{.kind .apiVersion}', /one path, string literal, range or end per/],
    ['{metadata.name}', /unrecognized identifier "metadata".*start with a dot/],
    ['{len(.items)}', /unrecognized identifier "len"/],
    ['{.kind', /unclosed action/],
    ['{.items[0}', /unexpected "}" in \[\.\.\.\]/],
    ['{.items[a]}', /invalid array index/],
    ['{.items[?(@.a=="x"}', /expected "\)\]"/],
    ['{"unterminated}', /unterminated quoted string/],
    ['{"\\q"}', /invalid escape/],
    ['{end}', /\{end\} without a matching \{range\}/],
    ['{range .items[*]}{.kind}', /\{range\} without a matching \{end\}/],
    ['{.items[0]...name}', /unexpected|recursive descent needs a field name/],
    ['{.a}}{', /unclosed action/],
  ];

  it.each(rows)('%s', (template, message) => {
    let error: unknown;
    try {
      evaluateJsonPath(template, pods);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('input.invalid');
    expect((error as DrawbridgeError).message).toMatch(message);
    // parseJsonPath refuses the same templates without evaluating anything
    expect(() => parseJsonPath(template)).toThrow(DrawbridgeError);
  });

  it.each([
    ['{.items[5].metadata.name}', /array index out of bounds: index 5, length 3/],
    ['{.items[-4]}', /array index out of bounds/],
    ['{.items[2:1]}', /starting index 2 is greater than ending index 1/],
    ['{.items[0:3:0]}', /step must be > 0/],
    ['{.kind[0]}', /applied to a string, not an array/],
    ['{.metadata[0]}', /applied to a map, not an array/],
    ['{.metadata[?(@.x)]}', /filter .* applied to a map/],
    ['{.items[?(@.spec.containers[*].name=="nginx")]}', /one value at a time/],
  ])('evaluation error like kubectl: %s', (template, message) => {
    expect(() => evaluateJsonPath(template, pods)).toThrow(message);
    expect(() => parseJsonPath(template)).not.toThrow();
  });

  it('refuses templates that would visit too many values', () => {
    const wide = { items: Array.from({ length: 200 }, (_, i) => ({ n: i })) };
    const template = '{range .items[*]}{range $.items[*]}{range $.items[*]}{.n}{end}{end}{end}';
    // $ is the current object inside a range (as in kubectl), so this stays small:
    expect(() => evaluateJsonPath(template, wide)).not.toThrow();
    // Nested recursive descent over a deep chain is cubic: refused, not run for minutes.
    let chain: unknown = { n: 0 };
    for (let i = 1; i < 300; i++) chain = { n: i, a: chain };
    const bomb = '{range ..*}{range ..*}{range ..*}{.n}{end}{end}{end}';
    expect(() => evaluateJsonPath(bomb, chain)).toThrow(/more than 1000000 values/);
  });

  it('refuses ranges nested too deep', () => {
    const template = '{range .a}'.repeat(40) + '{end}'.repeat(40);
    expect(() => evaluateJsonPath(template, {})).toThrow(/nested deeper than 32/);
  });
});
