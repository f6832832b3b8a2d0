// Table-driven tests for structural masking of Kubernetes objects: Secret
// values in every wrapper the API returns (object, typed List, List, Table,
// WatchEvent), copies in last-applied-configuration and other JSON
// annotations (the real leak), container env by name wherever a pod template
// sits, ConfigMap keys and binaryData, managedFields, counts, and that the
// input is never mutated; a tally adds up the counts of one answer.

import { describe, expect, it } from 'vitest';
import {
  CONFIGMAP_MASK,
  ENV_MASK,
  LAST_APPLIED_ANNOTATION,
  LAST_APPLIED_MASK,
  SECRET_MASK,
  SENSITIVE_ENV,
  createMaskTally,
  maskObject,
  type ObjectMaskReport,
} from '../../../src/backends/kubernetes/mask.js';

const PLAIN_PASSWORD = 'S3cr3t-Pa55w0rd-9f2k';
const PLAIN_USER = 'app_admin_7731';
const PLAIN_TOKEN = 'tok-4f9a0c2e8b7d';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

function secret(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'db-creds', namespace: 'prod' },
    type: 'Opaque',
    data: { password: b64(PLAIN_PASSWORD), username: b64(PLAIN_USER) },
    ...extra,
  };
}

function podSpec(env: unknown[], key: 'containers' | 'initContainers' | 'ephemeralContainers' = 'containers'): Record<string, unknown> {
  return { [key]: [{ name: 'app', image: 'app:1', env }] };
}

const SENSITIVE_ENVS = [
  { name: 'DB_PASSWORD', value: PLAIN_PASSWORD },
  { name: 'API_TOKEN', value: PLAIN_TOKEN },
  { name: 'LOG_LEVEL', value: 'info' },
  { name: 'SECRET_FROM_REF', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } },
];

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function countsOf(masked: ObjectMaskReport[]): Record<string, number> {
  return Object.fromEntries(masked.map((m) => [m.target, m.count]));
}

function get(value: unknown, ...path: Array<string | number>): unknown {
  let cur = value;
  for (const p of path) cur = (cur as Record<string | number, unknown> | undefined)?.[p];
  return cur;
}

describe('maskObject: Secrets in every wrapper', () => {
  type Row = readonly [name: string, input: unknown, dataPath: ReadonlyArray<string | number>, counts: Record<string, number>];
  const rows: Row[] = [
    ['single Secret', secret(), ['data'], { 'secret.data': 2 }],
    [
      'stringData of a Secret',
      secret({ data: undefined, stringData: { password: PLAIN_PASSWORD, username: PLAIN_USER } }),
      ['stringData'],
      { 'secret.data': 2 },
    ],
    [
      'typed SecretList, items without kind (as the API returns them)',
      {
        apiVersion: 'v1',
        kind: 'SecretList',
        metadata: {},
        items: [{ metadata: { name: 'a' }, type: 'Opaque', data: { password: b64(PLAIN_PASSWORD), username: b64(PLAIN_USER) } }],
      },
      ['items', 0, 'data'],
      { 'secret.data': 2 },
    ],
    [
      'SecretList item without kind and without type',
      { apiVersion: 'v1', kind: 'SecretList', items: [{ metadata: { name: 'a' }, data: { password: b64(PLAIN_PASSWORD), username: b64(PLAIN_USER) } }] },
      ['items', 0, 'data'],
      { 'secret.data': 2 },
    ],
    [
      'generic List with kinds',
      { apiVersion: 'v1', kind: 'List', items: [{ kind: 'ConfigMap', data: {} }, secret()] },
      ['items', 1, 'data'],
      { 'secret.data': 2 },
    ],
    [
      'Table rows[].object',
      { kind: 'Table', apiVersion: 'meta.k8s.io/v1', columnDefinitions: [{ name: 'Name', type: 'string' }], rows: [{ cells: ['db-creds'], object: secret() }] },
      ['rows', 0, 'object', 'data'],
      { 'secret.data': 2 },
    ],
    ['WatchEvent wrapper', { type: 'MODIFIED', object: secret() }, ['object', 'data'], { 'secret.data': 2 }],
    [
      'shape only: apiVersion v1 + type + data, no kind',
      { apiVersion: 'v1', type: 'Opaque', data: { password: b64(PLAIN_PASSWORD), username: b64(PLAIN_USER) } },
      ['data'],
      { 'secret.data': 2 },
    ],
    [
      'shape only: type + data, no kind, no apiVersion',
      { type: 'kubernetes.io/basic-auth', data: { password: b64(PLAIN_PASSWORD), username: b64(PLAIN_USER) } },
      ['data'],
      { 'secret.data': 2 },
    ],
    ['plain array of Secrets', [secret()], [0, 'data'], { 'secret.data': 2 }],
  ];

  it.each(rows)('%s', (_name, input, dataPath, counts) => {
    const { value, masked } = maskObject(input);
    expect(get(value, ...dataPath)).toEqual({ password: SECRET_MASK, username: SECRET_MASK });
    expect(countsOf(masked)).toEqual(counts);
    const text = JSON.stringify(value);
    for (const leak of [PLAIN_PASSWORD, PLAIN_USER, b64(PLAIN_PASSWORD), b64(PLAIN_USER)]) expect(text).not.toContain(leak);
  });

  it('replaces a data field that is not a map whole', () => {
    const { value, masked } = maskObject(secret({ data: b64(PLAIN_PASSWORD) }));
    expect(get(value, 'data')).toBe(SECRET_MASK);
    expect(countsOf(masked)).toEqual({ 'secret.data': 1 });
  });

  it('keeps type, metadata and other fields of a Secret', () => {
    const { value } = maskObject(secret({ immutable: true }));
    expect(get(value, 'type')).toBe('Opaque');
    expect(get(value, 'immutable')).toBe(true);
    expect(get(value, 'metadata', 'name')).toBe('db-creds');
  });

  it.each([
    ['an Event (type, no data)', { apiVersion: 'v1', kind: 'Event', type: 'Warning', reason: 'Failed', message: 'x' }],
    ['an ownerReference to a Secret', { kind: 'Pod', metadata: { ownerReferences: [{ kind: 'Secret', name: 'x' }] } }],
    ['a custom resource with data but no type', { apiVersion: 'example.com/v1', kind: 'Widget', data: { a: '1' } }],
  ])('leaves %s alone', (_name, input) => {
    const { value, masked } = maskObject(input);
    expect(value).toEqual(input);
    expect(masked).toEqual([]);
  });
});

describe('maskObject: last-applied-configuration and JSON annotations', () => {
  const lastAppliedSecret =
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db-creds', namespace: 'prod', annotations: {} },
      stringData: { password: PLAIN_PASSWORD, username: PLAIN_USER },
      type: 'Opaque',
    }) + '\n';

  it("masks the plaintext copy in the Secret's own last-applied (the real leak)", () => {
    const input = secret({ metadata: { name: 'db-creds', annotations: { [LAST_APPLIED_ANNOTATION]: lastAppliedSecret } } });
    const { value, masked } = maskObject(input);
    const annotation = get(value, 'metadata', 'annotations', LAST_APPLIED_ANNOTATION) as string;
    expect(annotation.endsWith('\n')).toBe(true);
    const parsed = JSON.parse(annotation) as Record<string, unknown>;
    expect(parsed['stringData']).toEqual({ password: SECRET_MASK, username: SECRET_MASK });
    expect(parsed['metadata']).toEqual({ name: 'db-creds', namespace: 'prod', annotations: {} });
    expect(JSON.stringify(value)).not.toContain(PLAIN_PASSWORD);
    expect(countsOf(masked)).toEqual({ 'secret.data': 4, 'last-applied-configuration': 1 });
  });

  it('masks a kind-less last-applied copy inside a Secret (the enclosing kind applies)', () => {
    const copy = JSON.stringify({ data: { password: b64(PLAIN_PASSWORD) } });
    const { value } = maskObject(secret({ metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: copy } } }));
    expect(JSON.parse(get(value, 'metadata', 'annotations', LAST_APPLIED_ANNOTATION) as string)).toEqual({ data: { password: SECRET_MASK } });
  });

  it("masks env in a Deployment's last-applied", () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web' },
      spec: { template: { spec: podSpec(SENSITIVE_ENVS) } },
    };
    const input = { ...deployment, metadata: { name: 'web', annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify(deployment) } } };
    const { value, masked } = maskObject(input);
    const text = JSON.stringify(value);
    expect(text).not.toContain(PLAIN_PASSWORD);
    expect(text).not.toContain(PLAIN_TOKEN);
    expect(countsOf(masked)).toEqual({ env: 4, 'last-applied-configuration': 1 });
    const inner = JSON.parse(get(value, 'metadata', 'annotations', LAST_APPLIED_ANNOTATION) as string) as unknown;
    expect(get(inner, 'spec', 'template', 'spec', 'containers', 0, 'env', 2)).toEqual({ name: 'LOG_LEVEL', value: 'info' });
  });

  it('masks a Secret inside a List inside last-applied', () => {
    const copy = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [secret()] });
    const { value } = maskObject({ kind: 'ConfigMap', metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: copy } } });
    expect(get(JSON.parse(get(value, 'metadata', 'annotations', LAST_APPLIED_ANNOTATION) as string), 'items', 0, 'data')).toEqual({
      password: SECRET_MASK,
      username: SECRET_MASK,
    });
  });

  it.each([
    ['not JSON', `password=${PLAIN_PASSWORD}`],
    ['truncated JSON', lastAppliedSecret.slice(0, 60)],
    ['JSON but not an object', JSON.stringify(PLAIN_PASSWORD)],
    ['JSON array', JSON.stringify([PLAIN_PASSWORD])],
    ['not a string', { password: PLAIN_PASSWORD }],
  ])('fails closed on a last-applied that is %s', (_name, annotation) => {
    const { value, masked } = maskObject({ kind: 'Deployment', metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: annotation, team: 'a' } } });
    expect(get(value, 'metadata', 'annotations')).toEqual({ [LAST_APPLIED_ANNOTATION]: LAST_APPLIED_MASK, team: 'a' });
    expect(countsOf(masked)).toEqual({ 'last-applied-configuration': 1 });
  });

  it('leaves a last-applied with nothing to mask byte for byte', () => {
    const copy = '{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}\n';
    const input = { kind: 'Service', metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: copy } } };
    const { value, masked } = maskObject(input);
    expect(get(value, 'metadata', 'annotations', LAST_APPLIED_ANNOTATION)).toBe(copy);
    expect(masked).toEqual([]);
  });

  it('masks a Secret in any other JSON annotation', () => {
    const input = { kind: 'ConfigMap', metadata: { annotations: { 'example.com/backup': JSON.stringify(secret()), note: 'plain text' } }, data: {} };
    const { value, masked } = maskObject(input);
    expect(get(JSON.parse(get(value, 'metadata', 'annotations', 'example.com/backup') as string), 'data')).toEqual({
      password: SECRET_MASK,
      username: SECRET_MASK,
    });
    expect(get(value, 'metadata', 'annotations', 'note')).toBe('plain text');
    expect(countsOf(masked)).toEqual({ 'secret.data': 2, 'annotation.json': 1 });
  });

  it.each([
    ['JSON without secrets', '{"a":1,"b":[2,3]}'],
    ['JSON-looking but invalid', '{not json'],
    ['text', 'hello'],
  ])('leaves another annotation holding %s untouched', (_name, annotation) => {
    const input = { kind: 'Pod', metadata: { annotations: { 'example.com/x': annotation } } };
    const { value, masked } = maskObject(input);
    expect(value).toEqual(input);
    expect(masked).toEqual([]);
  });
});

describe('maskObject: container env by name', () => {
  type Row = readonly [name: string, input: unknown, containerPath: ReadonlyArray<string | number>];
  const rows: Row[] = [
    ['Pod containers', { kind: 'Pod', spec: podSpec(SENSITIVE_ENVS) }, ['spec', 'containers', 0]],
    ['Pod initContainers', { kind: 'Pod', spec: podSpec(SENSITIVE_ENVS, 'initContainers') }, ['spec', 'initContainers', 0]],
    ['Pod ephemeralContainers', { kind: 'Pod', spec: podSpec(SENSITIVE_ENVS, 'ephemeralContainers') }, ['spec', 'ephemeralContainers', 0]],
    ['Deployment template', { kind: 'Deployment', spec: { template: { spec: podSpec(SENSITIVE_ENVS) } } }, ['spec', 'template', 'spec', 'containers', 0]],
    [
      'CronJob jobTemplate',
      { kind: 'CronJob', spec: { jobTemplate: { spec: { template: { spec: podSpec(SENSITIVE_ENVS) } } } } },
      ['spec', 'jobTemplate', 'spec', 'template', 'spec', 'containers', 0],
    ],
    ['PodList items', { kind: 'PodList', items: [{ spec: podSpec(SENSITIVE_ENVS) }] }, ['items', 0, 'spec', 'containers', 0]],
    [
      'custom resource embedding a pod template',
      { kind: 'Rollout', apiVersion: 'argoproj.io/v1alpha1', spec: { template: { spec: podSpec(SENSITIVE_ENVS) } } },
      ['spec', 'template', 'spec', 'containers', 0],
    ],
  ];

  it.each(rows)('%s', (_name, input, path) => {
    const { value, masked } = maskObject(input);
    expect(get(value, ...path, 'env')).toEqual([
      { name: 'DB_PASSWORD', value: ENV_MASK },
      { name: 'API_TOKEN', value: ENV_MASK },
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'SECRET_FROM_REF', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } },
    ]);
    expect(get(value, ...path, 'image')).toBe('app:1');
    expect(countsOf(masked)).toEqual({ env: 2 });
  });

  it.each([
    ['DB_PASSWORD', true],
    ['db_passwd', true],
    ['GITHUB_TOKEN', true],
    ['CLIENT_SECRET', true],
    ['AWS_ACCESS_KEY_ID', true],
    ['GOOGLE_APPLICATION_CREDENTIALS', true],
    ['PRIVATE_PEM', true],
    ['apiKey', true],
    ['LOG_LEVEL', false],
    ['PORT', false],
    ['DATABASE_HOST', false],
  ] as const)('SENSITIVE_ENV %s -> %s', (name, sensitive) => {
    expect(SENSITIVE_ENV.test(name)).toBe(sensitive);
  });

  it('does not mask an env array outside a container list', () => {
    const input = { kind: 'Widget', spec: { env: [{ name: 'PASSWORD', value: 'x' }] } };
    expect(maskObject(input).value).toEqual(input);
  });

  it('masks non-string values and leaves empty ones', () => {
    const { value, masked } = maskObject({
      spec: podSpec([
        { name: 'PIN_SECRET', value: 1234 },
        { name: 'EMPTY_TOKEN', value: '' },
      ]),
    });
    expect(get(value, 'spec', 'containers', 0, 'env')).toEqual([
      { name: 'PIN_SECRET', value: ENV_MASK },
      { name: 'EMPTY_TOKEN', value: '' },
    ]);
    expect(countsOf(masked)).toEqual({ env: 1 });
  });
});

describe('maskObject: ConfigMaps', () => {
  it.each([
    ['single ConfigMap', (cm: Record<string, unknown>) => cm, ['data'], ['binaryData']],
    [
      'typed ConfigMapList without item kinds',
      (cm: Record<string, unknown>) => ({ kind: 'ConfigMapList', items: [{ ...cm, kind: undefined }] }),
      ['items', 0, 'data'],
      ['items', 0, 'binaryData'],
    ],
  ] as const)('%s: sensitive keys and all binaryData masked', (_name, wrap, dataPath, binaryPath) => {
    const cm = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'app' },
      data: { 'db.password': PLAIN_PASSWORD, api_token: PLAIN_TOKEN, 'app.properties': 'mode=fast', LOG_LEVEL: 'debug' },
      binaryData: { 'blob.bin': b64('binary-bytes'), 'logo.png': 'iVBORw0KGgo=' },
    };
    const { value, masked } = maskObject(wrap(cm));
    expect(get(value, ...dataPath)).toEqual({ 'db.password': CONFIGMAP_MASK, api_token: CONFIGMAP_MASK, 'app.properties': 'mode=fast', LOG_LEVEL: 'debug' });
    expect(get(value, ...binaryPath)).toEqual({ 'blob.bin': CONFIGMAP_MASK, 'logo.png': CONFIGMAP_MASK });
    expect(countsOf(masked)).toEqual({ 'configmap.data': 2, 'configmap.binaryData': 2 });
  });

  it('does not apply ConfigMap key rules to other kinds', () => {
    const input = { kind: 'Widget', data: { password: 'not a configmap' } };
    expect(maskObject(input).value).toEqual(input);
  });
});

describe('maskObject: managedFields, counts, purity', () => {
  it('drops metadata.managedFields everywhere and counts them', () => {
    const managed = [{ manager: 'kubectl', fieldsV1: { 'f:data': { 'f:password': {} } } }];
    const input = {
      kind: 'List',
      items: [secret({ metadata: { name: 'a', managedFields: managed } }), { kind: 'Pod', metadata: { name: 'p', managedFields: managed } }],
    };
    const { value, masked } = maskObject(input);
    expect(get(value, 'items', 0, 'metadata')).toEqual({ name: 'a' });
    expect(get(value, 'items', 1, 'metadata')).toEqual({ name: 'p' });
    expect(countsOf(masked)).toEqual({ 'secret.data': 2, managedFields: 2 });
  });

  it('sums counts over everything and lists targets in a fixed order', () => {
    const input = {
      kind: 'List',
      items: [
        secret({ metadata: { name: 'a', managedFields: [], annotations: { [LAST_APPLIED_ANNOTATION]: 'garbage' } } }),
        secret(),
        { kind: 'Deployment', spec: { template: { spec: podSpec(SENSITIVE_ENVS) } } },
        { kind: 'ConfigMap', data: { token: 'x' } },
      ],
    };
    expect(maskObject(input).masked).toEqual([
      { target: 'secret.data', count: 4 },
      { target: 'env', count: 2 },
      { target: 'configmap.data', count: 1 },
      { target: 'last-applied-configuration', count: 1 },
      { target: 'managedFields', count: 1 },
    ]);
  });

  it('never mutates its input (frozen input, unchanged afterwards)', () => {
    const input = deepFreeze({
      kind: 'List',
      items: [
        secret({ metadata: { name: 'a', managedFields: [{}], annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify(secret()) } } }),
        { kind: 'Pod', spec: podSpec(SENSITIVE_ENVS) },
        { kind: 'ConfigMap', data: { token: 'x' }, binaryData: { b: 'AA==' } },
      ],
    });
    const before = structuredClone(input);
    const { value } = maskObject(input);
    expect(input).toEqual(before);
    expect(value).not.toBe(input);
    expect(get(input, 'items', 0, 'data', 'password')).toBe(b64(PLAIN_PASSWORD));
  });

  it('is idempotent: masking the masked value changes nothing and counts nothing', () => {
    const input = {
      kind: 'List',
      items: [
        secret({ metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify(secret()) + '\n', other: JSON.stringify(secret()) } } }),
        { kind: 'Pod', spec: podSpec(SENSITIVE_ENVS) },
        { kind: 'ConfigMap', data: { token: 'x' }, binaryData: { b: 'AA==' } },
        { kind: 'Deployment', metadata: { annotations: { [LAST_APPLIED_ANNOTATION]: 'garbage' } } },
      ],
    };
    const once = maskObject(input);
    const twice = maskObject(once.value);
    expect(twice.value).toEqual(once.value);
    expect(twice.masked).toEqual([]);
  });

  it.each([
    ['null', null],
    ['a string', 'hello'],
    ['a number', 42],
    ['an empty object', {}],
    ['an empty array', []],
  ])('passes %s through', (_name, input) => {
    expect(maskObject(input)).toEqual({ value: input, masked: [] });
  });

  it('keeps a "__proto__" key from JSON as data, without touching prototypes', () => {
    const input = JSON.parse('{"kind":"Secret","data":{"__proto__":"c2VjcmV0"},"metadata":{"labels":{"__proto__":"x"}}}') as unknown;
    const { value } = maskObject(input);
    expect(Object.getPrototypeOf(get(value, 'data'))).toBe(Object.prototype);
    expect(JSON.stringify(value)).toBe('{"kind":"Secret","data":{"__proto__":"[masked:secret]"},"metadata":{"labels":{"__proto__":"x"}}}');
  });

  it('replaces absurdly deep subtrees instead of overflowing the stack', () => {
    let deep: unknown = { kind: 'Secret', data: { password: b64(PLAIN_PASSWORD) } };
    for (let i = 0; i < 5000; i++) deep = { nested: deep };
    const { value, masked } = maskObject(deep);
    expect(JSON.stringify(value)).not.toContain(b64(PLAIN_PASSWORD));
    expect(countsOf(masked)).toEqual({ depth: 1 });
  });
});

describe('createMaskTally', () => {
  it('adds up the counts of every object masked for one answer, in target order', () => {
    const tally = createMaskTally();
    const first = tally.mask(secret({ metadata: { name: 'a', managedFields: [{ manager: 'kubectl' }] } }));
    const second = tally.mask(secret());
    expect(first).toEqual(maskObject(secret({ metadata: { name: 'a', managedFields: [{ manager: 'kubectl' }] } })).value);
    expect(second).toEqual(maskObject(secret()).value);
    const one = countsOf(maskObject(secret()).masked)['secret.data'] ?? 0;
    expect(one).toBeGreaterThan(0);
    expect(tally.report()).toEqual([
      { target: 'secret.data', count: 2 * one },
      { target: 'managedFields', count: 1 },
    ]);
  });

  it('masking an already masked copy again adds nothing (render helpers mask again as defense in depth)', () => {
    const tally = createMaskTally();
    const once = tally.mask(secret());
    const before = tally.report();
    const again = maskObject(once);
    expect(again.masked).toEqual([]);
    expect(tally.report()).toEqual(before);
  });
});
