// Table-driven tests for kubectl-like rendering: no Secret value (plaintext or
// base64), sensitive env value or last-applied copy survives renderObjects in
// any format or describeObject — even for UNMASKED input, since both mask
// again; the exact yaml/json/name shapes kubectl prints; describe per kind;
// server-side Tables with wide/priority columns, -A and kind prefixes; ages.

import { describe, expect, it } from 'vitest';
import { ENV_MASK, LAST_APPLIED_ANNOTATION, SECRET_MASK } from '../../../src/backends/kubernetes/mask.js';
import { ageOf, describeObject, renderObjects, renderTable, truncateAnnotation, type RenderFormat } from '../../../src/backends/kubernetes/render.js';
import type { KubeObject } from '../../../src/backends/kubernetes/types.js';
import { DrawbridgeError } from '../../../src/errors.js';

const NOW = new Date('2024-06-01T12:00:00Z');
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

// Every one of these must never appear in any rendering.
const SECRETS = {
  password: 'S3cr3t-Pa55w0rd-9f2k',
  username: 'app_admin_7731',
  stringData: 'plain-string-data-81xq',
  lastApplied: 'last-applied-plaintext-55tz',
  jsonAnnotation: 'json-annotation-secret-3hh0',
  envPassword: 'env-password-value-0p0p',
  envToken: 'env-token-value-7y7y',
  configToken: 'configmap-token-4k4k',
  binary: 'binary-payload-6m6m',
};

function leakForms(): string[] {
  return Object.values(SECRETS).flatMap((v) => [v, b64(v), b64(v).replace(/=+$/, '')]);
}

function expectNoLeak(text: string): void {
  for (const form of leakForms()) expect(text, `leaked ${form}`).not.toContain(form);
}

function secret(name = 'db-creds'): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: 'prod',
      annotations: {
        [LAST_APPLIED_ANNOTATION]:
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: { name, namespace: 'prod' },
            stringData: { password: SECRETS.lastApplied },
          }) + '\n',
        'example.com/copy': JSON.stringify({ kind: 'Secret', type: 'Opaque', data: { password: b64(SECRETS.jsonAnnotation) } }),
      },
      managedFields: [{ manager: 'kubectl', fieldsV1: { 'f:data': { 'f:password': {} } } }],
    },
    type: 'Opaque',
    data: { password: b64(SECRETS.password), username: b64(SECRETS.username) },
    stringData: { extra: SECRETS.stringData },
  };
}

function deployment(): Record<string, unknown> {
  const spec = {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        containers: [
          {
            name: 'web',
            image: 'web:1.2',
            env: [
              { name: 'DB_PASSWORD', value: SECRETS.envPassword },
              { name: 'API_TOKEN', value: SECRETS.envToken },
              { name: 'LOG_LEVEL', value: 'info' },
            ],
          },
        ],
      },
    },
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'prod',
      annotations: { [LAST_APPLIED_ANNOTATION]: JSON.stringify({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec }) },
    },
    spec,
    status: { replicas: 2, updatedReplicas: 2, availableReplicas: 2 },
  };
}

function configMap(): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'app-config', namespace: 'prod' },
    data: { 'api.token': SECRETS.configToken, 'app.properties': 'mode=fast\nretries=3\n' },
    binaryData: { 'blob.bin': b64(SECRETS.binary) },
  };
}

function withoutKind(obj: Record<string, unknown>): Record<string, unknown> {
  const { kind: _kind, apiVersion: _apiVersion, ...rest } = obj;
  return rest;
}

const INPUTS: ReadonlyArray<readonly [string, unknown]> = [
  ['a single Secret', secret()],
  [
    'a typed SecretList (items without kind)',
    { apiVersion: 'v1', kind: 'SecretList', metadata: {}, items: [withoutKind(secret('a')), withoutKind(secret('b'))] },
  ],
  ['a List of mixed kinds', { apiVersion: 'v1', kind: 'List', items: [secret(), deployment(), configMap()] }],
  [
    'a Table with rows[].object',
    {
      apiVersion: 'meta.k8s.io/v1',
      kind: 'Table',
      columnDefinitions: [{ name: 'Name', type: 'string' }],
      rows: [
        { cells: ['db-creds'], object: secret() },
        { cells: ['web'], object: deployment() },
      ],
    },
  ],
  ['an array of objects', [secret(), configMap(), deployment()]],
];

const FORMATS: ReadonlyArray<readonly [string, RenderFormat]> = [
  ['yaml', { kind: 'yaml' }],
  ['json', { kind: 'json' }],
  ['name', { kind: 'name' }],
  ['jsonpath {.data.password}', { kind: 'jsonpath', template: '{.data.password}' }],
  ['jsonpath {.data}', { kind: 'jsonpath', template: '{.data}' }],
  ['jsonpath {.items[*].data}', { kind: 'jsonpath', template: '{.items[*].data}' }],
  ['jsonpath {.metadata.annotations}', { kind: 'jsonpath', template: '{.metadata.annotations}' }],
  ['jsonpath {.items[*].metadata.annotations}', { kind: 'jsonpath', template: '{.items[*].metadata.annotations}' }],
  [
    'jsonpath last-applied by escaped key',
    { kind: 'jsonpath', template: '{.items[*].metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}' },
  ],
  ['jsonpath {..password}', { kind: 'jsonpath', template: '{..password}' }],
  ['jsonpath {..value}', { kind: 'jsonpath', template: '{..value}' }],
  ['jsonpath range over stringData/binaryData', { kind: 'jsonpath', template: '{range .items[*]}{.stringData}{.binaryData}{"\\n"}{end}' }],
  ['jsonpath {.}', { kind: 'jsonpath', template: '{.}' }],
];

describe('renderObjects: nothing sensitive survives, even from unmasked input', () => {
  const cases = INPUTS.flatMap(([inputName, input]) => FORMATS.map(([formatName, format]) => [`${formatName} of ${inputName}`, input, format] as const));

  it.each(cases)('%s', (_name, input, format) => {
    const text = renderObjects(input, format, { resourceKey: 'secret' });
    expectNoLeak(text);
  });

  it('shows that masking happened (keys kept, mask tokens present)', () => {
    const text = renderObjects(secret(), { kind: 'jsonpath', template: '{.data.password} {.data.username} {.stringData.extra}' }, { resourceKey: 'secret' });
    expect(text).toBe(`${SECRET_MASK} ${SECRET_MASK} ${SECRET_MASK}`);
    const env = renderObjects(
      deployment(),
      { kind: 'jsonpath', template: '{range .spec.template.spec.containers[0].env[*]}{.name}={.value};{end}' },
      { resourceKey: 'deployment.apps' },
    );
    expect(env).toBe(`DB_PASSWORD=${ENV_MASK};API_TOKEN=${ENV_MASK};LOG_LEVEL=info;`);
  });

  it('does not mutate its input', () => {
    const input = secret();
    const before = structuredClone(input);
    renderObjects(input, { kind: 'yaml' }, { resourceKey: 'secret' });
    expect(input).toEqual(before);
  });
});

describe('renderObjects: kubectl shapes', () => {
  const pod = (name: string): Record<string, unknown> => ({
    metadata: { name, namespace: 'prod', creationTimestamp: '2024-05-01T00:00:00Z', managedFields: [{ manager: 'k' }] },
    spec: { containers: [{ name: 'c', image: 'nginx' }] },
    status: { phase: 'Running' },
  });
  const podList = { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '123' }, items: [pod('web-1'), pod('web-2')] };

  it('yaml of one object: the object itself, keys sorted, managedFields gone, timestamps quoted like kubectl', () => {
    const text = renderObjects({ kind: 'Pod', apiVersion: 'v1', ...pod('web-1') }, { kind: 'yaml' }, { resourceKey: 'pod' });
    expect(text).toBe(
      [
        'apiVersion: v1',
        'kind: Pod',
        'metadata:',
        '  creationTimestamp: "2024-05-01T00:00:00Z"',
        '  name: web-1',
        '  namespace: prod',
        'spec:',
        '  containers:',
        '  - image: nginx',
        '    name: c',
        'status:',
        '  phase: Running',
        '',
      ].join('\n'),
    );
  });

  it('yaml of a typed list: kind List with items, item kind/apiVersion filled in', () => {
    const text = renderObjects(podList, { kind: 'yaml' }, { resourceKey: 'pod' });
    expect(text.startsWith('apiVersion: v1\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n')).toBe(true);
    expect(text.endsWith('kind: List\nmetadata:\n  resourceVersion: ""\n')).toBe(true);
    expect(text).not.toContain('managedFields');
  });

  it('json is pretty-printed with 4 spaces and a final newline', () => {
    const text = renderObjects(
      { kind: 'ConfigMap', apiVersion: 'v1', metadata: { name: 'x' }, data: { a: '1' } },
      { kind: 'json' },
      { resourceKey: 'configmap' },
    );
    expect(text).toBe(
      '{\n    "apiVersion": "v1",\n    "data": {\n        "a": "1"\n    },\n    "kind": "ConfigMap",\n    "metadata": {\n        "name": "x"\n    }\n}\n',
    );
  });

  it('json of several objects is a List', () => {
    const parsed = JSON.parse(renderObjects([pod('a'), pod('b')], { kind: 'json' }, { resourceKey: 'pod' })) as Record<string, unknown>;
    expect(parsed['kind']).toBe('List');
    expect(parsed['metadata']).toEqual({ resourceVersion: '' });
    expect((parsed['items'] as unknown[]).length).toBe(2);
  });

  it.each([
    ['pod', podList, 'pod/web-1\npod/web-2\n'],
    ['deployment.apps', { kind: 'DeploymentList', items: [{ metadata: { name: 'web' } }] }, 'deployment.apps/web\n'],
    ['pod', { kind: 'Pod', ...pod('solo') }, 'pod/solo\n'],
    ['pod', { kind: 'PodList', items: [] }, ''],
    ['pod', [{ metadata: {} }, pod('named')], 'pod/named\n'],
  ] as const)('name with resource key %s', (resourceKey, input, expected) => {
    expect(renderObjects(input, { kind: 'name' }, { resourceKey })).toBe(expected);
  });

  it.each([
    ['{.items[*].metadata.name}', 'web-1 web-2'],
    ['{.kind}', 'List'],
    ['{.items[0].kind}/{.items[0].metadata.name}', 'Pod/web-1'],
    ['{range .items[*]}{.metadata.name}{"\\n"}{end}', 'web-1\nweb-2\n'],
  ])('jsonpath %s on a list', (template, expected) => {
    expect(renderObjects(podList, { kind: 'jsonpath', template }, { resourceKey: 'pod' })).toBe(expected);
  });

  it('jsonpath on a single object addresses the object', () => {
    expect(renderObjects({ kind: 'Pod', ...pod('web-1') }, { kind: 'jsonpath', template: '{.metadata.name}' }, { resourceKey: 'pod' })).toBe('web-1');
  });

  it('unsupported jsonpath is input.invalid', () => {
    expect(() => renderObjects(podList, { kind: 'jsonpath', template: '{.items[?(@.x=~"a")]}' }, { resourceKey: 'pod' })).toThrow(DrawbridgeError);
  });

  it('a Table becomes a List of its row objects', () => {
    const table = { kind: 'Table', rows: [{ cells: [], object: { kind: 'Pod', metadata: { name: 'a' } } }, { cells: [] }] };
    expect(renderObjects(table, { kind: 'name' }, { resourceKey: 'pod' })).toBe('pod/a\n');
  });

  it('yaml never folds long values across lines (the content detectors see them whole)', () => {
    const jwt = `eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.${'x'.repeat(80)}`;
    const text = renderObjects(
      { kind: 'Pod', metadata: { name: 'a', labels: { long: 'word '.repeat(60).trim() } }, spec: { note: `token ${jwt} end` } },
      { kind: 'yaml' },
      { resourceKey: 'pod' },
    );
    expect(text).toContain(`note: token ${jwt} end\n`);
    expect(text).toContain(`long: ${'word '.repeat(60).trim()}\n`);
  });

  it('yaml quotes strings YAML 1.1 would read as something else', () => {
    const text = renderObjects({ kind: 'ConfigMap', data: { a: 'yes', b: 'on', c: '123', d: 'true', e: '' } }, { kind: 'yaml' }, { resourceKey: 'configmap' });
    expect(text).toContain('a: "yes"\n  b: "on"\n  c: "123"\n  d: "true"\n  e: ""\n');
  });
});

describe('describeObject', () => {
  it('Secret from UNMASKED input: sizes only, never values', () => {
    const text = describeObject(secret() as KubeObject, [], NOW);
    expectNoLeak(text);
    expect(text).toContain(
      `Data\n====\nextra:     ${Buffer.byteLength(SECRETS.stringData)} bytes\n` +
        `password:  ${SECRETS.password.length} bytes\nusername:  ${SECRETS.username.length} bytes\n`,
    );
    expect(text).toContain('Type:  Opaque');
    expect(text).not.toContain(LAST_APPLIED_ANNOTATION);
    expect(text).toContain('example.com/copy: ');
  });

  it('Secret already masked upstream: says so instead of a wrong size', () => {
    const masked = { kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { password: SECRET_MASK } };
    expect(describeObject(masked, [], NOW)).toContain(`Data\n====\npassword:  ${SECRET_MASK}\n`);
  });

  it('Secret with a non-map data field, or without kind but with the shape of one', () => {
    const odd = describeObject({ kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: b64(SECRETS.password) }, [], NOW);
    expectNoLeak(odd);
    const kindless = describeObject({ apiVersion: 'v1', metadata: { name: 's' }, type: 'Opaque', data: { password: b64(SECRETS.password) } }, [], NOW);
    expectNoLeak(kindless);
    expect(kindless).toContain('password:  20 bytes');
  });

  it('exact layout of a Secret', () => {
    const obj = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'db', namespace: 'prod', labels: { app: 'db', tier: 'data' } },
      type: 'Opaque',
      data: { pw: b64('12345678') },
    };
    expect(describeObject(obj, [], NOW)).toBe(
      [
        'Name:         db',
        'Namespace:    prod',
        'Labels:       app=db',
        '              tier=data',
        'Annotations:  <none>',
        '',
        'Type:  Opaque',
        '',
        'Data',
        '====',
        'pw:  8 bytes',
        '',
        'Events:  <none>',
        '',
      ].join('\n'),
    );
  });

  it('Deployment: replicas, selector, strategy, template containers, env masked', () => {
    const text = describeObject(deployment() as KubeObject, [], NOW);
    expectNoLeak(text);
    expect(text).toContain('Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable\n');
    expect(text).toContain('Selector:               app=web\n');
    expect(text).toContain('StrategyType:           RollingUpdate\n');
    expect(text).toContain('Pod Template:\n  Labels:  app=web\n  Containers:\n    web:\n      Image:  web:1.2\n');
    expect(text).toMatch(/DB_PASSWORD: +\[masked:env\]\n/);
    expect(text).toMatch(/API_TOKEN: +\[masked:env\]\n/);
    expect(text).toMatch(/LOG_LEVEL: +info\n/);
  });

  it('Pod: status, node, IP, containers with state, env, and the rest as YAML', () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-1', namespace: 'prod', ownerReferences: [{ kind: 'ReplicaSet', name: 'web-abc', controller: true }] },
      spec: {
        nodeName: 'node-a',
        restartPolicy: 'Always',
        initContainers: [{ name: 'init', image: 'busybox', env: [{ name: 'INIT_SECRET', value: SECRETS.envToken }] }],
        containers: [
          {
            name: 'web',
            image: 'nginx:1.25',
            ports: [{ containerPort: 80, protocol: 'TCP' }],
            env: [
              { name: 'DB_PASSWORD', value: SECRETS.envPassword },
              { name: 'MODE', value: 'prod' },
              { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'db-creds', key: 'password' } } },
              { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
            ],
          },
        ],
      },
      status: {
        phase: 'Running',
        hostIP: '192.168.1.5',
        podIP: '10.1.2.3',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [{ name: 'web', ready: true, restartCount: 2, state: { running: { startedAt: '2024-06-01T11:00:00Z' } } }],
      },
    };
    const text = describeObject(pod, [], NOW);
    expectNoLeak(text);
    for (const line of [
      /^Status: +Running$/m,
      /^Node: +node-a\/192\.168\.1\.5$/m,
      /^IP: +10\.1\.2\.3$/m,
      /^Controlled By: +ReplicaSet\/web-abc$/m,
      /^Init Containers:\n {2}init:$/m,
      /^ {6}INIT_SECRET: +\[masked:env\]$/m,
      /^ {4}Image: +nginx:1\.25$/m,
      /^ {4}Port: +80\/TCP$/m,
      /^ {4}State: +Running$/m,
      /^ {6}Started: +2024-06-01T11:00:00Z$/m,
      /^ {4}Ready: +True$/m,
      /^ {4}Restart Count: +2$/m,
      /^ {6}DB_PASSWORD: +\[masked:env\]$/m,
      /^ {6}MODE: +prod$/m,
      /^ {6}FROM_SECRET: +<set to the key 'password' in secret 'db-creds'> {2}Optional: false$/m,
      /^ {6}POD_NAME: +\(v1:metadata\.name\)$/m,
      /^Spec:\n {2}restartPolicy: Always$/m,
      /^Status:\n {2}conditions:\n {2}- status: "True"\n {4}type: Ready$/m,
    ]) {
      expect(text).toMatch(line);
    }
    expect(text).not.toMatch(/containerStatuses|nodeName/);
  });

  it('ConfigMap: data keys and values, sensitive keys masked, binaryData as sizes', () => {
    const text = describeObject(configMap() as KubeObject, [], NOW);
    expectNoLeak(text);
    expect(text).toContain('api.token:\n----\n[masked:configmap]\n');
    expect(text).toContain('app.properties:\n----\nmode=fast\nretries=3\n');
    expect(text).toContain(`BinaryData\n====\nblob.bin:  ${SECRETS.binary.length} bytes\n`);
  });

  it('any other kind: header, then spec/status as YAML', () => {
    const svc = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'prod' },
      spec: { type: 'ClusterIP', ports: [{ port: 80 }] },
      status: { loadBalancer: {} },
    };
    expect(describeObject(svc, [], NOW)).toBe(
      [
        'Name:         web',
        'Namespace:    prod',
        'Labels:       <none>',
        'Annotations:  <none>',
        'Spec:',
        '  ports:',
        '  - port: 80',
        '  type: ClusterIP',
        'Status:',
        '  loadBalancer: {}',
        '',
        'Events:  <none>',
        '',
      ].join('\n'),
    );
  });

  it('Events table: sorted by time, repeated events as "(xN over …)", sources, masked', () => {
    const events: KubeObject[] = [
      {
        kind: 'Event',
        type: 'Warning',
        reason: 'BackOff',
        message: 'Back-off restarting failed container',
        source: { component: 'kubelet' },
        firstTimestamp: '2024-06-01T11:00:00Z',
        lastTimestamp: '2024-06-01T11:58:00Z',
        count: 7,
      },
      {
        kind: 'Event',
        type: 'Normal',
        reason: 'Scheduled',
        message: 'Successfully assigned prod/web-1 to node-a',
        reportingComponent: 'default-scheduler',
        firstTimestamp: '2024-06-01T10:00:00Z',
        lastTimestamp: '2024-06-01T10:00:00Z',
        count: 1,
      },
      { kind: 'Event', type: 'Normal', reason: 'Pulled', note: 'Image pulled\nin 2s', reportingController: 'kubelet', eventTime: '2024-06-01T11:59:15Z' },
    ];
    const text = describeObject({ kind: 'Pod', metadata: { name: 'web-1' } }, events, NOW);
    expect(text.slice(text.indexOf('Events:'))).toBe(
      [
        'Events:',
        '  Type     Reason     Age               From               Message',
        '  ----     ------     ----              ----               -------',
        '  Normal   Scheduled  120m              default-scheduler  Successfully assigned prod/web-1 to node-a',
        '  Warning  BackOff    2m (x7 over 60m)  kubelet            Back-off restarting failed container',
        '  Normal   Pulled     45s               kubelet            Image pulled in 2s',
        '',
      ].join('\n'),
    );
  });

  it('Annotations: one per line, long ones truncated, last-applied left out', () => {
    const obj = { kind: 'Service', metadata: { name: 'x', annotations: { short: 'v', long: 'a'.repeat(500), [LAST_APPLIED_ANNOTATION]: '{}' } } };
    const text = describeObject(obj, [], NOW);
    expect(text).toContain(`Annotations:  long: ${'a'.repeat(200)} … (truncated, 500 chars)\n              short: v\n`);
  });

  it('does not mutate its input', () => {
    const input = secret();
    const before = structuredClone(input);
    describeObject(input as KubeObject, [], NOW);
    expect(input).toEqual(before);
  });
});

describe('truncateAnnotation never cuts a detector finding in half', () => {
  const jwt = `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.${'S'.repeat(43)}`;
  it.each([
    ['short value', 'v', 'v'],
    ['newlines become \\n', 'a\nb', 'a\\nb'],
    [
      'JWT across the cut is kept whole',
      `${'a'.repeat(180)} ${jwt} tail ${'b'.repeat(100)}`,
      `${'a'.repeat(180)} ${jwt} … (truncated, ${181 + jwt.length + 106} chars)`,
    ],
    [
      'email across the cut is kept whole',
      `${'a'.repeat(190)} alice.long@example.com ${'b'.repeat(100)}`,
      `${'a'.repeat(190)} alice.long@example.com … (truncated, ${190 + 23 + 101} chars)`,
    ],
    ['plain text is cut at 200', 'c'.repeat(250), `${'c'.repeat(200)} … (truncated, 250 chars)`],
  ])('%s', (_name, input, expected) => {
    expect(truncateAnnotation(input)).toBe(expected);
  });
});

describe('renderTable', () => {
  const table = {
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name' },
      { name: 'Ready', type: 'string' },
      { name: 'Status', type: 'string' },
      { name: 'Restarts', type: 'integer' },
      { name: 'Age', type: 'string' },
      { name: 'IP', type: 'string', priority: 1 },
      { name: 'Nominated Node', type: 'string', priority: 1 },
      { name: 'Created', type: 'date', priority: 1 },
    ],
    rows: [
      { cells: ['web-1', '1/1', 'Running', 0, '5d', '10.1.2.3', '<none>', '2024-06-01T11:00:00Z'], object: { metadata: { name: 'web-1', namespace: 'prod' } } },
      { cells: ['job-1', '0/1', 'Error\nexit code 1', 3, '2h', null, undefined, 'not a date'], object: { metadata: { name: 'job-1', namespace: 'batch' } } },
    ],
  };

  it.each([
    [
      'default: priority 0 columns only, names upper-cased like kubectl headers',
      { wide: false },
      ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'],
      [
        ['web-1', '1/1', 'Running', 0, '5d'],
        ['job-1', '0/1', 'Error...', 3, '2h'],
      ],
    ],
    [
      '-o wide: priority columns too; date cells become ages',
      { wide: true },
      ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NOMINATED NODE', 'CREATED'],
      [
        ['web-1', '1/1', 'Running', 0, '5d', '10.1.2.3', '<none>', '60m'],
        ['job-1', '0/1', 'Error...', 3, '2h', null, null, 'not a date'],
      ],
    ],
    [
      '-A: NAMESPACE column first',
      { wide: false, namespaceColumn: true },
      ['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'],
      [
        ['prod', 'web-1', '1/1', 'Running', 0, '5d'],
        ['batch', 'job-1', '0/1', 'Error...', 3, '2h'],
      ],
    ],
    [
      'showKind prefixes the name column',
      { wide: false, showKind: 'pod' },
      ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'],
      [
        ['pod/web-1', '1/1', 'Running', 0, '5d'],
        ['pod/job-1', '0/1', 'Error...', 3, '2h'],
      ],
    ],
    [
      "-A -o wide with kind and noHeaders (headers are the caller's business)",
      { wide: true, namespaceColumn: true, showKind: 'pod', noHeaders: true },
      ['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE', 'IP', 'NOMINATED NODE', 'CREATED'],
      [
        ['prod', 'pod/web-1', '1/1', 'Running', 0, '5d', '10.1.2.3', '<none>', '60m'],
        ['batch', 'pod/job-1', '0/1', 'Error...', 3, '2h', null, null, 'not a date'],
      ],
    ],
  ] as const)('%s', (_name, opts, names, rows) => {
    const result = renderTable(table, { ...opts, now: NOW });
    expect(result.columns.map((c) => c.name)).toEqual(names);
    expect(result.rows).toEqual(rows);
  });

  it('keeps column types, reports converted date columns as strings', () => {
    const result = renderTable(table, { wide: true, now: NOW, namespaceColumn: true });
    expect(result.columns.map((c) => c.type)).toEqual(['string', 'string', 'string', 'string', 'integer', 'string', 'string', 'string', 'string']);
  });

  it('handles short rows, missing objects, object cells and no rows', () => {
    const result = renderTable(
      {
        columnDefinitions: [
          { name: 'Name', type: 'string' },
          { name: 'Data', type: 'string' },
          { name: 'Extra', type: 'string' },
        ],
        rows: [{ cells: ['a', { k: 1 }] }],
      },
      { wide: false, namespaceColumn: true, now: NOW },
    );
    expect(result.rows).toEqual([['', 'a', '{"k":1}', null]]);
    expect(renderTable({ columnDefinitions: [{ name: 'Name', type: 'string' }], rows: [] }, { wide: false, now: NOW })).toEqual({
      columns: [{ name: 'NAME', type: 'string' }],
      rows: [],
    });
  });
});

describe('ageOf (kubectl HumanDuration)', () => {
  const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();
  const S = 1000;
  const M = 60 * S;
  const H = 60 * M;
  const D = 24 * H;
  it.each([
    ['just now', ago(0), '0s'],
    ['clock skew of 1s', ago(-1 * S), '0s'],
    ['in the future', ago(-5 * S), '<invalid>'],
    ['45 seconds', ago(45 * S), '45s'],
    ['119 seconds', ago(119 * S), '119s'],
    ['2 minutes', ago(2 * M), '2m'],
    ['3m20s', ago(3 * M + 20 * S), '3m20s'],
    ['12 minutes', ago(12 * M + 30 * S), '12m'],
    ['179 minutes', ago(179 * M), '179m'],
    ['3 hours', ago(3 * H), '3h'],
    ['5h30m', ago(5 * H + 30 * M), '5h30m'],
    ['20 hours', ago(20 * H + 10 * M), '20h'],
    ['3 days', ago(3 * D), '3d'],
    ['3d4h', ago(3 * D + 4 * H), '3d4h'],
    ['20 days', ago(20 * D + 5 * H), '20d'],
    ['400 days', ago(400 * D), '400d'],
    ['2 years', ago(730 * D), '2y'],
    ['2y30d', ago(760 * D), '2y30d'],
    ['10 years', ago(3650 * D), '10y'],
    ['undefined', undefined, '<unknown>'],
    ['empty', '', '<unknown>'],
    ['garbage', 'yesterday-ish', '<unknown>'],
  ] as const)('%s', (_name, ts, expected) => {
    expect(ageOf(ts, NOW)).toBe(expected);
  });
});
