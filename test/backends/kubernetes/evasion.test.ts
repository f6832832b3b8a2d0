// The permanent kubectl evasion suite, through the whole pipeline (parse → resolve →
// policy → execute → mask) against the in-process fake API server. Every attempt to
// escape the grammar, the policy, the masking or the gateway's identity must fail,
// and a refused command must never reach the API server.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool, type CallResult } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { maskObject } from '../../../src/backends/kubernetes/mask.js';
import { SEED_PLAINTEXT_CREDENTIALS, SEED_SECRET_VALUES, startFakeKube, type FakeKube } from '../../support/fake-kube/server.js';
import { SHAPE_DETECTED, expectedMasks, fakeSecrets, leakedSecrets } from '../../support/fake-secrets.js';
import { writeKubeConfigDir } from '../../support/kube-config.js';

const SUBJECT = 'dev@example.com';
const GROUPS = ['developers'];
const dev = makeIdentity({ kind: 'local', subject: SUBJECT, groups: GROUPS, issuer: 'local' });

let fake: FakeKube;
const dirs: string[] = [];
/** Rules: secret writes denied; everything else allowed in namespace shop only. */
let shopOnly: Gateway;
/** Rules: anything in kube-system denied; everything else allowed. */
let denyKubeSystem: Gateway;

async function gatewayWith(rules: string): Promise<Gateway> {
  const dir = writeKubeConfigDir(fake, { rules, identity: { subject: SUBJECT, groups: GROUPS } });
  dirs.push(dir);
  return openGateway({ configDir: dir, env: {} });
}

beforeAll(async () => {
  fake = await startFakeKube();
  shopOnly = await gatewayWith(`  - name: no-secret-writes
    match: { tool: kubectl, resources: core/secrets, access: [write, admin] }
    effect: deny
  - name: shop-only
    match: { tool: kubectl, namespaces: [shop] }
    effect: allow
  - name: cluster-reads
    match: { tool: kubectl, operation: [api-resources, explain] }
    effect: allow`);
  denyKubeSystem = await gatewayWith(`  - name: no-kube-system
    match: { tool: kubectl, namespaces: kube-system }
    effect: deny
  - name: everything-else
    match: { tool: kubectl }
    effect: allow`);
});
afterAll(async () => {
  await shopOnly?.close();
  await denyKubeSystem?.close();
  await fake?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => fake.reset());

const run = (command: string, manifest?: string, gateway: Gateway = shopOnly): Promise<CallResult> =>
  callTool(gateway, {
    tool: 'kubectl',
    args: { connection: 'staging', command, ...(manifest !== undefined ? { manifest } : {}) },
    identity: dev,
    client: { name: 'vitest' },
  });

const everything = (r: CallResult): string => (r.ok ? r.text + '\n' + JSON.stringify(r.structured) : r.text);

/** Requests that touched a resource (not discovery). */
const resourceRequests = () => fake.requests.filter((q) => q.resource !== null);
const writes = () => fake.requests.filter((q) => !['GET', 'HEAD'].includes(q.method));

function expectRefused(r: CallResult, code: string): void {
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.error.code, r.text).toBe(code);
}

// ---------------------------------------------------------------------------

const SHELL: ReadonlyArray<[string, string]> = [
  ['get pods | sh', 'kubectl.refused'],
  ['get pods; rm -rf /', 'kubectl.refused'],
  ['get pods && whoami', 'kubectl.refused'],
  ['get pods || true', 'kubectl.refused'],
  ['get pods &', 'kubectl.refused'],
  ['get pods > /tmp/pods', 'kubectl.refused'],
  ['get pods < /etc/passwd', 'kubectl.refused'],
  ['get pods `id`', 'kubectl.refused'],
  ['get pods $(id)', 'kubectl.refused'],
  ['get pods "$(id)"', 'kubectl.refused'],
  ["get pods '`id`'", 'kubectl.refused'],
  ['get pods ${HOME}', 'kubectl.refused'],
  ["get pods $'\\x41'", 'kubectl.refused'],
  ['get pods\nget secrets -o yaml', 'kubectl.refused'],
  ['get pods\rdelete pod web-7d9c-abcde', 'kubectl.refused'],
  ['#get pods', 'kubectl.refused'],
  ['get pods \u200b-A', 'kubectl.refused'],
  ['get pods\u00a0-A', 'kubectl.refused'],
  ['get pods \u0007', 'kubectl.refused'],
  // From the shared tokenizer's difference table (test/backends/shared/words.test.ts): where kubectl and ssh read a line differently, both refuse.
  ['get pods -n $NS', 'kubectl.refused'],
  ['get secrets -l "app=$APP" -o yaml', 'kubectl.refused'],
  ['get secret "web-\\$x" -o yaml', 'kubectl.refused'],
  ['get pods -o jsonpath={.items[0,1].metadata.name}', 'kubectl.refused'],
  ['get secrets web-{secrets,config} -o yaml', 'kubectl.refused'],
  ['get pods web-{1..3}', 'kubectl.refused'],
  ["get pods -l 'app=web\nget secrets'", 'kubectl.refused'],
  ["get secrets -l '$(id)'", 'kubectl.refused'],
  ['get pods\u0085-A', 'kubectl.refused'],
  ['get pods -l app=web\u3000-A', 'kubectl.refused'],
];

const IDENTITY_AND_CONNECTION: ReadonlyArray<[string, string]> = [
  ['get pods --as=system:admin', 'kubectl.refused'],
  ['get pods --as system:admin', 'kubectl.refused'],
  ['get pods -as=system:admin', 'kubectl.refused'],
  ['get pods --as-group=system:masters', 'kubectl.refused'],
  ['get pods --as_group=system:masters', 'kubectl.refused'],
  ['get pods --as-uid=0', 'kubectl.refused'],
  ['get pods --as-user-extra=scopes=all', 'kubectl.refused'],
  ['-n shop --as=system:admin get pods', 'kubectl.refused'],
  ['get pods --token=abc', 'kubectl.refused'],
  ['get pods --username=admin', 'kubectl.refused'],
  ['get pods --password=admin', 'kubectl.refused'],
  ['get pods --user=admin', 'kubectl.refused'],
  ['get pods --kubeconfig=/etc/kubernetes/admin.conf', 'kubectl.refused'],
  ['get pods --context=prod', 'kubectl.refused'],
  ['get pods --cluster=prod', 'kubectl.refused'],
  ['get pods --server=https://evil.example.com', 'kubectl.refused'],
  ['get pods -s https://evil.example.com', 'kubectl.refused'],
  ['get pods --insecure-skip-tls-verify', 'kubectl.refused'],
  ['get pods --certificate-authority=/tmp/ca.pem', 'kubectl.refused'],
  ['get pods --client-certificate=/tmp/c.pem', 'kubectl.refused'],
  ['get pods --client-key=/tmp/k.pem', 'kubectl.refused'],
  ['get pods --cache-dir=/tmp', 'kubectl.refused'],
];

const FLAGS: ReadonlyArray<[string, string]> = [
  ['get --raw /api/v1/namespaces/shop/secrets', 'kubectl.refused'],
  ['get pods --raw=/api', 'kubectl.refused'],
  ['get pods -w', 'kubectl.refused'],
  ['get pods --watch', 'kubectl.refused'],
  ['get pods --watch-only', 'kubectl.refused'],
  ['get pods --output-watch-events', 'kubectl.refused'],
  ['logs web-7d9c-abcde -f', 'kubectl.refused'],
  ['logs web-7d9c-abcde --follow', 'kubectl.refused'],
  ['apply -f /etc/passwd', 'kubectl.refused'],
  ['apply --filename=manifest.yaml', 'kubectl.refused'],
  ['apply -k overlays/prod', 'kubectl.refused'],
  ['apply -R -f dir', 'kubectl.refused'],
  ['apply --prune -l app=web', 'kubectl.refused'],
  ['patch deploy web --patch-file=/tmp/p.json', 'kubectl.refused'],
  ['get secrets -o go-template={{.data}}', 'kubectl.refused'],
  ['get secrets -o template={{.data}}', 'kubectl.refused'],
  ['get secrets --template={{.data}}', 'kubectl.refused'],
  ['get secrets -o custom-columns=PW:.data.password', 'kubectl.refused'],
  ['get secrets -o custom-columns-file=/tmp/cols', 'kubectl.refused'],
  ['get secrets -o jsonpath-file=/tmp/tpl', 'kubectl.refused'],
  ['exec -it web-7d9c-abcde -- sh', 'kubectl.refused'],
  ['exec -i web-7d9c-abcde -- sh', 'kubectl.refused'],
  ['exec --stdin web-7d9c-abcde -- sh', 'kubectl.refused'],
  ['exec --tty web-7d9c-abcde -- sh', 'kubectl.refused'],
  ['get pods -v=9', 'kubectl.refused'],
  ['get pods --v=9', 'kubectl.refused'],
  ['get pods --log-file=/tmp/log', 'kubectl.refused'],
  ['get pods --profile=cpu', 'kubectl.refused'],
  ['apply --record', 'kubectl.refused'],
  ['create secret generic x --from-literal=password=x', 'kubectl.refused'],
  ['create deployment x --image=busybox', 'kubectl.refused'],
];

const VERBS: ReadonlyArray<[string, string]> = [
  ['proxy', 'kubectl.refused'],
  ['port-forward web-7d9c-abcde 8080:80', 'kubectl.refused'],
  ['cp web-7d9c-abcde:/etc/passwd /tmp/passwd', 'kubectl.refused'],
  ['attach web-7d9c-abcde', 'kubectl.refused'],
  ['debug node/node-1 --image=busybox', 'kubectl.refused'],
  ['config view --raw', 'kubectl.refused'],
  ['config use-context prod', 'kubectl.refused'],
  ['auth can-i --list', 'kubectl.refused'],
  ['run shell --image=busybox', 'kubectl.refused'],
  ['edit deploy web', 'kubectl.refused'],
  ['plugin list', 'kubectl.refused'],
  ['certificate approve csr-1', 'kubectl.refused'],
  ['drain node-1', 'kubectl.refused'],
  ['taint nodes node-1 k=v:NoSchedule', 'kubectl.refused'],
  ['set image deploy/web app=evil', 'kubectl.refused'],
  ['autoscale deploy web --max=5', 'kubectl.refused'],
  ['expose deploy web --port=80', 'kubectl.refused'],
  ['replace --force -f x.yaml', 'kubectl.refused'],
  ['wait --for=condition=ready pod/web-7d9c-abcde', 'kubectl.refused'],
  ['kustomize .', 'kubectl.refused'],
  ['alpha debug web', 'kubectl.refused'],
  ['version', 'kubectl.refused'],
  ['cluster-info dump', 'kubectl.refused'],
  ['diff -f x.yaml', 'kubectl.refused'],
  ['PROXY', 'kubectl.refused'],
];

const MALFORMED: ReadonlyArray<[string, string]> = [
  ['kubectl get pods', 'input.invalid'],
  ['sudo get pods', 'input.invalid'],
  ['frobnicate pods', 'input.invalid'],
  ['get pods --unknown-flag', 'input.invalid'],
  ['get pods -n ../kube-system', 'input.invalid'],
  ['get pods -n KUBE-SYSTEM', 'input.invalid'],
  ['get pods -l "app=web;rm"', 'input.invalid'],
  ['get pods/../secrets', 'input.invalid'],
  ['get', 'input.invalid'],
  ['rollout', 'input.invalid'],
];

describe('refused at the gateway: nothing reaches the API server', () => {
  it.each([...SHELL, ...IDENTITY_AND_CONNECTION, ...FLAGS, ...VERBS, ...MALFORMED])('%j → %s', async (command, code) => {
    const requests = fake.requests.length;
    const before = fake.objects();
    const r = await run(command);
    expectRefused(r, code);
    expect(fake.requests.length).toBe(requests);
    expect(fake.objects()).toEqual(before);
  });

  it.each([
    ['apply', 'not: [valid: yaml', 'input.invalid'],
    ['apply', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n', 'input.invalid'],
    ['apply', '- just\n- a list\n', 'input.invalid'],
    ['apply', '', 'input.invalid'],
    ['apply -f -', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n', 'kubectl.refused'],
  ])('manifest %j %j → %s', async (command, manifest, code) => {
    const requests = fake.requests.length;
    const before = fake.objects();
    const r = await run(command, manifest);
    expectRefused(r, code);
    expect(fake.requests.length).toBe(requests);
    expect(fake.objects()).toEqual(before);
  });
});

// ---------------------------------------------------------------------------

describe('Secrets never leak, whatever the output format', () => {
  const commands = [
    'get secrets',
    'get secrets -o wide',
    'get secret web-secrets',
    'get secret web-secrets -o yaml',
    'get secret web-secrets -o json',
    'get secret web-secrets -o name',
    'get secrets -o yaml',
    'get secrets -o json',
    'get secret web-secrets -o jsonpath={.data}',
    'get secret web-secrets -o jsonpath={.data.password}',
    "get secret web-secrets -o jsonpath='{.data.api-key}'",
    'get secret web-secrets -o jsonpath={.metadata.annotations}',
    "get secret web-secrets -o jsonpath='{.metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration}'",
    'get secrets -o jsonpath={.items[*].data}',
    'get secrets -o jsonpath={.items[*].metadata.annotations}',
    'get secrets -o jsonpath={..password}',
    'get secrets -o jsonpath={..data}',
    'get secrets -o jsonpath=\'{range .items[*]}{.metadata.name}={.data}{"\\n"}{end}\'',
    'describe secret web-secrets',
    'describe secrets',
    'get deploy web -o yaml',
    'get deploy web -o json',
    'get deploy web -o jsonpath={.metadata.annotations}',
    'get deployments -o wide',
    'describe deploy web',
    'get cm web-config -o yaml',
    'get cm web-config -o json',
    'get cm web-config -o jsonpath={.metadata.annotations}',
    'get cm web-config -o jsonpath={.data}',
    'describe cm web-config',
    'get pod web-7d9c-abcde -o yaml',
    'get pods -o json',
    'get pods -o jsonpath={..env}',
    'describe pod web-7d9c-abcde',
    'get pods -o wide',
  ];

  it.each(commands)('%s (shop)', async (command) => {
    const r = await run(command);
    expect(r.ok, everything(r)).toBe(true);
    const text = everything(r);
    for (const v of SEED_SECRET_VALUES) expect(text).not.toContain(v);
    for (const v of [SEED_PLAINTEXT_CREDENTIALS.DB_PASSWORD, SEED_PLAINTEXT_CREDENTIALS.API_TOKEN, SEED_PLAINTEXT_CREDENTIALS.DATABASE_URL_PASSWORD])
      expect(text).not.toContain(v);
  });

  it.each([
    'get secrets -A',
    'get secrets -A -o yaml',
    'get secrets -A -o json',
    'get secrets -A -o jsonpath={.items[*].data}',
    'get secrets -A -o jsonpath={..aws_secret_access_key}',
    'describe secrets -A',
    'get all -A',
    'get deploy,cm,secrets,pods -A -o yaml',
  ])('%s (all namespaces)', async (command) => {
    const r = await run(command, undefined, gatewayAllowAll);
    const text = everything(r);
    for (const v of SEED_SECRET_VALUES) expect(text).not.toContain(v);
    for (const v of [SEED_PLAINTEXT_CREDENTIALS.DB_PASSWORD, SEED_PLAINTEXT_CREDENTIALS.API_TOKEN, SEED_PLAINTEXT_CREDENTIALS.DATABASE_URL_PASSWORD])
      expect(text).not.toContain(v);
  });

  it('the values are really there: the masked output shows the keys, not the values', async () => {
    const r = await run('get secret web-secrets -o yaml');
    expect(r.ok).toBe(true);
    expect(everything(r)).toContain('password');
    expect(everything(r)).toContain('api-key');
    const deploy = await run('get deploy web -o yaml');
    expect(everything(deploy)).toContain('DB_PASSWORD');
    expect(everything(deploy)).toContain('API_TOKEN');
    expect(everything(deploy)).toContain('LOG_LEVEL');
    expect(everything(deploy)).toContain('info');
    const cm = await run('get cm web-config -o yaml');
    expect(everything(cm)).toContain('DATABASE_URL');
    expect(everything(cm)).toContain('db:5432/shop');
  });

  it('a write answer echoes nothing secret either (dry run of a Secret apply in a permissive gateway)', async () => {
    const manifest = 'apiVersion: v1\nkind: Secret\nmetadata: { name: web-secrets, namespace: shop }\nstringData: { password: hunter2-super-secret }\n';
    const r = await run('apply --dry-run=server', manifest, gatewayAllowAll);
    const text = everything(r);
    for (const v of SEED_SECRET_VALUES) expect(text).not.toContain(v);
  });
});

// A third gateway that allows everything (for -A reads and echo checks).
let gatewayAllowAll: Gateway;
beforeAll(async () => {
  gatewayAllowAll = await gatewayWith(`  - name: everything
    match: { tool: kubectl }
    effect: allow`);
});
afterAll(async () => {
  await gatewayAllowAll?.close();
});

// ---------------------------------------------------------------------------

describe('namespace escapes', () => {
  const noResourceTouched = (requests: number, before: ReturnType<FakeKube['objects']>) => {
    expect(fake.requests.slice(requests).filter((q) => q.resource !== null)).toEqual([]);
    expect(fake.objects()).toEqual(before);
  };

  it.each([
    'get pods -n kube-system',
    'get secrets -n kube-system -o yaml',
    '-n kube-system get secret cloud-credentials -o yaml',
    'get secret cloud-credentials --namespace=kube-system -o json',
    'describe secret cloud-credentials -n kube-system',
    'logs coredns-5d78c9869d-q7x2v -n kube-system',
    'exec coredns-5d78c9869d-q7x2v -n kube-system -- cat /etc/resolv.conf',
    'delete pod coredns-5d78c9869d-q7x2v -n kube-system',
    'get pods -A',
    'get secrets --all-namespaces -o yaml',
  ])('allow-only-shop refuses %s', async (command) => {
    const requests = fake.requests.length;
    const before = fake.objects();
    const r = await run(command);
    expectRefused(r, 'policy.no_match');
    noResourceTouched(requests, before);
  });

  it('the same gateway allows shop', async () => {
    const r = await run('get pods -n shop');
    expect(r.ok).toBe(true);
  });

  it.each(['get pods -A', 'get secrets -A -o yaml', 'get pods -n kube-system', 'describe pods -A', 'events -A', 'delete pods -A -l app=web'])(
    'a deny rule on kube-system refuses %s',
    async (command) => {
      const requests = fake.requests.length;
      const before = fake.objects();
      const r = await run(command, undefined, denyKubeSystem);
      expectRefused(r, 'policy.denied');
      noResourceTouched(requests, before);
    },
  );

  it('the deny-kube-system gateway still serves shop', async () => {
    const r = await run('get pods -n shop', undefined, denyKubeSystem);
    expect(r.ok).toBe(true);
  });

  it.each([
    ['apply', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: evil, namespace: kube-system }\ndata: { a: b }\n'],
    ['create', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: evil, namespace: kube-system }\ndata: { a: b }\n'],
    ['apply -n shop', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: evil, namespace: kube-system }\ndata: { a: b }\n'],
    // One innocent object, one escaping one: the whole manifest is refused.
    [
      'apply',
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ok, namespace: shop }\n---\n' +
        'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: evil, namespace: kube-system }\n',
    ],
    ['apply', '{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"evil","namespace":"kube-system"}}]}'],
  ])('a manifest naming kube-system cannot escape an allow-only-shop rule: %s', async (command, manifest) => {
    const requests = fake.requests.length;
    const before = fake.objects();
    const r = await run(command, manifest);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(['policy.no_match', 'input.invalid']).toContain(r.error.code);
    noResourceTouched(requests, before);
    expect(fake.object('configmaps', 'kube-system', 'evil')).toBeUndefined();
  });

  it('a manifest naming kube-system is denied by the kube-system deny rule', async () => {
    const before = fake.objects();
    const r = await run('apply -n shop', 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: evil, namespace: kube-system }\n', denyKubeSystem);
    expectRefused(r, 'policy.denied');
    expect(fake.objects()).toEqual(before);
  });
});

describe('a manifest cannot smuggle another kind past a rule', () => {
  const secret = 'apiVersion: v1\nkind: Secret\nmetadata: { name: stolen, namespace: shop }\nstringData: { password: x }\n';
  const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: harmless, namespace: shop }\ndata: { a: b }\n';

  it.each([
    ['apply', secret],
    ['create', secret],
    ['apply --server-side', secret],
    ['apply', `${cm}---\n${secret}`],
    ['create', `${cm}---\n${secret}`],
    [
      'apply',
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'List',
        items: [
          { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'harmless', namespace: 'shop' } },
          { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'stolen', namespace: 'shop' } },
        ],
      }),
    ],
    // The command names configmaps, the manifest holds a Secret: the manifest decides.
    ['apply configmap', secret],
    ['create cm', secret],
  ])('%s with a Secret in the manifest → refused, nothing written', async (command, manifest) => {
    const before = fake.objects();
    const r = await run(command, manifest);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(['policy.denied', 'input.invalid', 'kubectl.refused']).toContain(r.error.code);
    expect(writes()).toEqual([]);
    expect(fake.objects()).toEqual(before);
    expect(fake.object('secrets', 'shop', 'stolen')).toBeUndefined();
  });

  it('deleting or patching a Secret by name is denied too', async () => {
    const before = fake.objects();
    for (const command of [
      'delete secret web-secrets',
      `patch secret web-secrets -p '{"data":{"password":"eA=="}}'`,
      'label secret web-secrets a=b',
      'annotate secrets/web-secrets a=b',
      'delete secrets -l app=web',
    ]) {
      const r = await run(command);
      expectRefused(r, 'policy.denied');
    }
    expect(writes()).toEqual([]);
    expect(fake.objects()).toEqual(before);
  });

  it('the ConfigMap alone is allowed (the rule is not simply refusing everything)', async () => {
    const r = await run('apply', cm);
    expect(r.ok, everything(r)).toBe(true);
    expect(fake.object('configmaps', 'shop', 'harmless')).toBeDefined();
  });
});

// ---------------------------------------------------------------------------

describe('impersonation comes only from the gateway', () => {
  it('every resource request impersonates the configured caller, never anyone the agent named', async () => {
    fake.clearRequests();
    for (const command of [
      'get pods',
      'get secrets -o yaml',
      'describe deploy web',
      'logs web-7d9c-abcde --tail 2',
      'exec web-7d9c-abcde -- id',
      'label pod web-7d9c-abcde team=a',
      'get pods --as=system:admin',
      'get pods --as-group=system:masters',
      '-n shop --as system:admin get pods',
    ]) {
      await run(command);
    }
    const touched = resourceRequests();
    expect(touched.length).toBeGreaterThan(4);
    for (const q of touched) {
      expect(q.impersonateUser, `${q.method} ${q.path}`).toBe(SUBJECT);
      expect(q.impersonateGroups).toEqual(GROUPS);
    }
    for (const q of fake.requests) {
      expect(q.impersonateUser === null || q.impersonateUser === SUBJECT).toBe(true);
      expect(JSON.stringify(q.headers)).not.toContain('system:admin');
      expect(JSON.stringify(q.headers)).not.toContain('system:masters');
    }
    expect(fake.execs.map((e) => e.user)).toEqual([SUBJECT]);
  });

  it('impersonation spelled inside a value, a label or a manifest is data, not a header', async () => {
    fake.clearRequests();
    const r = await run('get pods -l impersonate-user=system.admin');
    expect(r.ok).toBe(true);
    const manifest =
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: as-admin\n  namespace: shop\n' +
      '  annotations: { Impersonate-User: "system:admin" }\ndata: { as: "system:admin" }\n';
    const applied = await run('apply', manifest);
    expect(applied.ok, everything(applied)).toBe(true);
    for (const q of resourceRequests()) expect(q.impersonateUser).toBe(SUBJECT);
    for (const q of fake.requests) expect(q.headers['impersonate-user'] === undefined || q.headers['impersonate-user'] === SUBJECT).toBe(true);
  });

  it('the exec command after -- goes to the container, not to kubectl', async () => {
    const r = await run('exec web-7d9c-abcde -- kubectl --as=system:admin get secrets');
    expect(r.ok, everything(r)).toBe(true);
    expect(fake.execs).toHaveLength(1);
    expect(fake.execs[0]?.user).toBe(SUBJECT);
    expect(fake.execs[0]?.command).toEqual(['kubectl', '--as=system:admin', 'get', 'secrets']);
  });
});

// ---------------------------------------------------------------------------

describe('provider tokens and named credentials outside Secret objects', () => {
  // Every family of the secret catalog, as fake values (test/support/fake-secrets.ts): in a
  // ConfigMap (and its last-applied copy), in a container log, and in exec output.
  const SET = fakeSecrets(7);
  const configMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'app-env', namespace: 'shop', labels: { app: 'web' } },
    data: { 'app.env': SET.files['app.env'], 'config.yaml': SET.files['config.yaml'], 'sa.json': SET.files['sa.json'] },
  };
  const seedConfigMap = () =>
    fake.upsert({
      ...configMap,
      metadata: { ...configMap.metadata, annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${JSON.stringify(configMap)}\n` } },
    });
  const noLeak = (r: CallResult) => expect(leakedSecrets(everything(r), SET.secrets), everything(r).slice(0, 3000)).toEqual([]);

  it.each([
    'get cm app-env -o yaml',
    'get cm app-env -o json',
    'get cm -o yaml',
    'get cm -o json',
    'get cm app-env -o jsonpath={.data}',
    "get cm app-env -o jsonpath='{.data.app\\.env}'",
    'get cm app-env -o jsonpath={.metadata.annotations}',
    'describe cm app-env',
  ])('a ConfigMap holding app.env, config.yaml and a service-account key: %s', async (command) => {
    seedConfigMap();
    const r = await run(command);
    expect(r.ok, everything(r)).toBe(true);
    noLeak(r);
    expect(everything(r)).toContain('[masked:');
  });

  it('container log lines with each token, alone and as the setting it came from', async () => {
    // Tokens whose shape alone identifies them, logged bare; every setting logged as a quoted entry.
    const standalone = new Set(SHAPE_DETECTED);
    const bare = SET.secrets
      .filter((s) => standalone.has(s.detector))
      .map((s, i) => `2024-05-01T10:00:0${i % 10}Z level=warn msg="upstream rejected credential" family="${s.family}" value=${s.values.join(' ')}`);
    const settings = SET.files['app.env']
      .split('\n')
      .filter((line) => /^[A-Z_ a-z]+=/.test(line) && !line.startsWith('TLS_KEY'))
      .map((line, i) => `2024-05-01T10:01:0${i % 10}Z level=debug msg="loaded setting" entry="${line.replaceAll('"', '\\"')}"`);
    fake.setLogs('shop', 'web-7d9c-abcde', 'app', `${[...bare, ...settings].join('\n')}\n${SET.files['app.env']}`);
    const r = await run('logs web-7d9c-abcde --tail 500');
    expect(r.ok, everything(r)).toBe(true);
    noLeak(r);
  });

  it('exec output: cat of the env file, counted per detector', async () => {
    fake.setExecHandler(() => ({ stdout: SET.files['app.env'], stderr: '', exitCode: 0 }));
    const r = await run('exec web-7d9c-abcde -- cat /app/app.env');
    expect(r.ok, everything(r)).toBe(true);
    noLeak(r);
    if (!r.ok) return;
    const counted = new Map(r.structured.masked.filter((m) => m.by === 'detector').map((m) => [m.target, m.count]));
    expect(Object.fromEntries(counted)).toEqual(Object.fromEntries(expectedMasks(SET, ['app.env'])));
    expect(everything(r)).toContain('STRIPE_SECRET_KEY=[masked:stripe_key]');
  });
});

describe('the masked summary counts every mask, field masks included', () => {
  const fieldCounts = (r: CallResult) => (r.ok ? Object.fromEntries(r.structured.masked.filter((m) => m.by === 'field').map((m) => [m.target, m.count])) : {});

  it.each([
    ['get secret web-secrets -o yaml', 'secrets', 'web-secrets'],
    ['get secret web-secrets -o json', 'secrets', 'web-secrets'],
    ['get secret web-secrets -o jsonpath={.metadata.name}', 'secrets', 'web-secrets'],
    ['get deploy web -o yaml', 'apps/deployments', 'web'],
    ['get cm web-config -o yaml', 'configmaps', 'web-config'],
  ])('%s: the same counts as masking the object itself', async (command, resource, name) => {
    const object = fake.object(resource, 'shop', name);
    expect(object).toBeDefined();
    const expected = Object.fromEntries(maskObject(object).masked.map((m) => [m.target, m.count]));
    expect(Object.keys(expected).length).toBeGreaterThan(0);
    const r = await run(command);
    expect(r.ok, everything(r)).toBe(true);
    expect(fieldCounts(r)).toEqual(expected);
  });

  it('Secret data values, the last-applied copy and managedFields are all counted, in the text too', async () => {
    const r = await run('get secret web-secrets -o yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const counts = fieldCounts(r);
    // Two data keys, plus the two values of the last-applied copy (stringData and data).
    expect(counts['secret.data']).toBe(4);
    expect(counts['last-applied-configuration']).toBe(1);
    for (const m of r.structured.masked.filter((x) => x.by === 'field')) {
      expect(m.rule).toBe('built-in');
      expect(r.text).toContain(`${m.target} (field, ${m.count})`);
    }
  });

  it('env values under credential names are counted (a list of pods)', async () => {
    const r = await run('get pods -o json');
    expect(r.ok).toBe(true);
    // Two web pods with a DB_PASSWORD and an API_TOKEN value each.
    expect(fieldCounts(r)['env']).toBe(4);
  });

  it('a table listing (get secrets) counts nothing it did not mask', async () => {
    const r = await run('get secrets');
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.structured.masked.filter((m) => m.by === 'field').every((m) => m.count > 0)).toBe(true);
  });
});

describe('a refusal keeps the caller’s own identity readable', () => {
  it('policy: "No rule allows … for dev@example.com"', async () => {
    const r = await run('get pods -n kube-system');
    expectRefused(r, 'policy.no_match');
    expect(r.text).toContain(`for ${SUBJECT}.`);
    expect(r.text).not.toContain('[masked:email]');
  });

  it('the cluster’s RBAC answer names the impersonated caller; other addresses stay masked', async () => {
    fake.setRbac((req) => req.resource !== 'secrets');
    const r = await run('get secrets');
    expect(r.ok).toBe(false);
    expect(r.text).toContain(`"${SUBJECT}"`);
  });
});
