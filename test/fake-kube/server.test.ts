// Proves the in-process fake Kubernetes API server is faithful by driving it with the real
// client library (@kubernetes/client-node): typed API clients, KubernetesObjectApi, Exec, Log,
// Watch, and raw fetches prepared by KubeConfig.applyToFetchOptions.

import {
  ApiException,
  AppsV1Api,
  AuthenticationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  Exec,
  KubeConfig,
  KubernetesObjectApi,
  Log,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type KubernetesObject,
  type V1Status,
} from '@kubernetes/client-node';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SEED, SEED_PLAINTEXT_CREDENTIALS, SEED_SECRET_VALUES, startFakeKube, type FakeKube, type KubeObject } from '../support/fake-kube/server.js';
import { WebSocket } from '../support/fake-kube/ws.js';

let fake: FakeKube;
let kc: KubeConfig;
let core: CoreV1Api;
let apps: AppsV1Api;
let objects: KubernetesObjectApi;

beforeAll(async () => {
  fake = await startFakeKube();
  kc = new KubeConfig();
  kc.loadFromString(fake.kubeconfig('shop'));
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
  objects = KubernetesObjectApi.makeApiClient(kc);
});

afterAll(async () => {
  await fake.close();
});

beforeEach(() => {
  fake.reset();
});

/**
 * The kubeconfig's request headers as fetch Headers. client-node types them as
 * node-fetch's HeadersInit and builds a node-fetch Headers, which iterates as
 * [name, value] pairs: the form fetch's Headers constructor copies.
 */
function fetchHeaders(opts: Awaited<ReturnType<KubeConfig['applyToFetchOptions']>>): Headers {
  return new Headers(opts.headers as HeadersInit);
}

/** A raw request to the fake with the kubeconfig's credentials. */
async function raw(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; config?: KubeConfig } = {},
): Promise<{ status: number; text: string; json: any; headers: Headers }> {
  const opts = await (init.config ?? kc).applyToFetchOptions({});
  const headers = fetchHeaders(opts);
  for (const [k, v] of Object.entries(init.headers ?? {})) headers.append(k, v);
  const res = await fetch(`${fake.url}${path}`, { method: init.method ?? 'GET', headers, ...(init.body !== undefined ? { body: init.body } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

/** The Status body of a failed client-node call. */
async function failure(p: Promise<unknown>): Promise<{ code: number; body: any }> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiException);
    const e = err as ApiException<unknown>;
    const body = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
    return { code: e.code, body };
  }
  throw new Error('expected the call to fail');
}

const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';

function collector(): { stream: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      cb();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('authentication and discovery', () => {
  it('rejects a missing or wrong bearer token with a 401 Status', async () => {
    const res = await fetch(`${fake.url}/api/v1/namespaces/shop/pods`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Unauthorized',
      reason: 'Unauthorized',
      code: 401,
    });

    const bad = new KubeConfig();
    bad.loadFromString(fake.kubeconfig('shop', { token: 'nope' }));
    const err = await failure(bad.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'shop' }));
    expect(err.code).toBe(401);
  });

  it('listens on 127.0.0.1 and writes a kubeconfig client-node accepts', () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(kc.getCurrentCluster()?.server).toBe(fake.url);
    expect(kc.getCurrentUser()?.token).toBe(fake.token);
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('shop');
  });

  it('serves core and group discovery like a real API server', async () => {
    const api = await raw('/api');
    expect(api.json).toMatchObject({ kind: 'APIVersions', versions: ['v1'] });

    const v1 = (await raw('/api/v1')).json;
    expect(v1).toMatchObject({ kind: 'APIResourceList', groupVersion: 'v1' });
    const byName = new Map<string, any>(v1.resources.map((r: any) => [r.name, r]));
    expect(byName.get('pods')).toMatchObject({ singularName: 'pod', namespaced: true, kind: 'Pod', shortNames: ['po'] });
    expect(byName.get('pods').verbs).toEqual(expect.arrayContaining(['get', 'list', 'create', 'delete', 'patch', 'update', 'watch', 'deletecollection']));
    for (const [name, short] of [
      ['services', 'svc'],
      ['configmaps', 'cm'],
      ['namespaces', 'ns'],
      ['nodes', 'no'],
      ['events', 'ev'],
      ['serviceaccounts', 'sa'],
      ['persistentvolumeclaims', 'pvc'],
    ]) {
      expect(byName.get(name!)?.shortNames).toContain(short);
    }
    expect(byName.get('secrets')).toMatchObject({ kind: 'Secret', namespaced: true });
    expect(byName.get('namespaces').namespaced).toBe(false);
    expect(byName.get('nodes').namespaced).toBe(false);
    expect(byName.get('pods/log')).toMatchObject({ kind: 'Pod', verbs: ['get'] });
    expect(byName.get('pods/exec')).toMatchObject({ kind: 'PodExecOptions' });

    const groups = (await raw('/apis')).json;
    expect(groups.kind).toBe('APIGroupList');
    const preferred = Object.fromEntries(groups.groups.map((g: any) => [g.name, g.preferredVersion.groupVersion]));
    expect(preferred).toMatchObject({
      apps: 'apps/v1',
      batch: 'batch/v1',
      'rbac.authorization.k8s.io': 'rbac.authorization.k8s.io/v1',
      'example.com': 'example.com/v1',
    });

    const appsV1 = (await raw('/apis/apps/v1')).json;
    const scale = appsV1.resources.find((r: any) => r.name === 'deployments/scale');
    expect(scale).toMatchObject({ group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
    expect(appsV1.resources.find((r: any) => r.name === 'deployments').shortNames).toEqual(['deploy']);

    const example = (await raw('/apis/example.com/v1')).json;
    expect(example.resources.find((r: any) => r.name === 'widgets')).toMatchObject({
      kind: 'Widget',
      singularName: 'widget',
      namespaced: true,
      shortNames: ['wd'],
    });
    expect((await raw('/apis/example.com')).json).toMatchObject({ kind: 'APIGroup', name: 'example.com' });

    expect((await raw('/apis/nope.example/v1')).status).toBe(404);
    const missing = await raw('/api/v1/namespaces/shop/gizmos');
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ kind: 'Status', reason: 'NotFound', message: 'the server could not find the requested resource' });
  });
});

describe('reads and selectors', () => {
  it('lists pods with equality, set-based and existence label selectors', async () => {
    const names = async (labelSelector: string): Promise<string[]> =>
      (await core.listNamespacedPod({ namespace: 'shop', labelSelector })).items.map((p) => p.metadata!.name!);
    expect(await names('app=web')).toEqual(['web-7d9c-abcde', 'web-7d9c-fghij']);
    expect(await names('app==web')).toEqual(['web-7d9c-abcde', 'web-7d9c-fghij']);
    expect(await names('app!=web')).toEqual(['worker-5b7c-klmno']);
    expect(await names('app in (web, worker)')).toHaveLength(3);
    expect(await names('app notin (web)')).toEqual(['worker-5b7c-klmno']);
    expect(await names('pod-template-hash')).toHaveLength(2);
    expect(await names('!pod-template-hash')).toEqual(['worker-5b7c-klmno']);
    expect(await names('app=web,pod-template-hash=nope')).toEqual([]);

    const bad = await raw('/api/v1/namespaces/shop/pods?labelSelector=' + encodeURIComponent('app in web'));
    expect(bad.status).toBe(400);
    expect(bad.json.reason).toBe('BadRequest');
  });

  it('filters by field selectors and rejects unsupported fields', async () => {
    const onNode1 = await core.listPodForAllNamespaces({ fieldSelector: 'spec.nodeName=node-1' });
    expect(onNode1.items.map((p) => p.metadata!.name)).toEqual(['coredns-5d78c9869d-q7x2v', 'web-7d9c-abcde']);
    const running = await core.listNamespacedPod({ namespace: 'shop', fieldSelector: 'status.phase==Running,metadata.name!=web-7d9c-abcde' });
    expect(running.items.map((p) => p.metadata!.name)).toEqual(['web-7d9c-fghij', 'worker-5b7c-klmno']);
    const byNs = await core.listPodForAllNamespaces({ fieldSelector: 'metadata.namespace=kube-system' });
    expect(byNs.items).toHaveLength(1);

    const err = await failure(core.listNamespacedPod({ namespace: 'shop', fieldSelector: 'spec.image=x' }));
    expect(err.code).toBe(400);
    expect(err.body).toMatchObject({ reason: 'BadRequest', message: 'field label not supported: spec.image' });
  });

  it('lists across namespaces and cluster-scoped resources; built-in list items carry no kind', async () => {
    const all = await raw('/api/v1/pods');
    expect(all.json.kind).toBe('PodList');
    expect(all.json.metadata.resourceVersion).toMatch(/^\d+$/);
    expect(all.json.items.map((p: any) => `${p.metadata.namespace}/${p.metadata.name}`)).toEqual([
      'kube-system/coredns-5d78c9869d-q7x2v',
      'shop/web-7d9c-abcde',
      'shop/web-7d9c-fghij',
      'shop/worker-5b7c-klmno',
    ]);
    expect(all.json.items[0].kind).toBeUndefined();

    const nodes = await core.listNode();
    expect(nodes.items.map((n) => n.metadata!.name)).toEqual(['node-1', 'node-2']);
    const namespaces = await core.listNamespace();
    expect(namespaces.items.map((n) => n.metadata!.name)).toEqual(['default', 'kube-system', 'shop']);

    const widgets = await raw('/apis/example.com/v1/namespaces/shop/widgets');
    expect(widgets.json.kind).toBe('WidgetList');
    expect(widgets.json.items[0]).toMatchObject({ apiVersion: 'example.com/v1', kind: 'Widget', spec: { size: 3 } });
  });

  it('paginates with limit and continue', async () => {
    const first = await core.listPodForAllNamespaces({ limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(first.metadata?._continue).toBeTruthy();
    expect(first.metadata?.remainingItemCount).toBe(1);
    const second = await core.listPodForAllNamespaces({ limit: 3, _continue: first.metadata!._continue! });
    expect(second.items.map((p) => p.metadata!.name)).toEqual(['worker-5b7c-klmno']);
    expect(second.metadata?._continue).toBeFalsy();
  });

  it('gets objects and answers NotFound with the real Status shape', async () => {
    const pod = await core.readNamespacedPod({ namespace: 'shop', name: 'web-7d9c-abcde' });
    expect(pod.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'ReplicaSet', name: 'web-7d9c' });
    expect(pod.spec?.containers[0]?.env?.find((e) => e.name === 'DB_PASSWORD')?.value).toBe('s3cr3t-db-pass');

    const err = await failure(core.readNamespacedPod({ namespace: 'shop', name: 'x' }));
    expect(err.code).toBe(404);
    expect(err.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'pods "x" not found',
      reason: 'NotFound',
      details: { name: 'x', kind: 'pods' },
      code: 404,
    });
    const dep = await failure(apps.readNamespacedDeployment({ namespace: 'shop', name: 'nope' }));
    expect(dep.body).toMatchObject({ message: 'deployments.apps "nope" not found', details: { name: 'nope', group: 'apps', kind: 'deployments' } });
  });

  it('serves the seeded secret with base64 data and the last-applied leak real clusters have', async () => {
    const secret = await core.readNamespacedSecret({ namespace: 'shop', name: 'web-secrets' });
    expect(secret.type).toBe('Opaque');
    expect(Buffer.from(secret.data!['password']!, 'base64').toString()).toBe('hunter2-super-secret');
    expect(Buffer.from(secret.data!['api-key']!, 'base64').toString()).toBe('AKIAIOSFODNN7EXAMPLE');
    const lastApplied = secret.metadata!.annotations!['kubectl.kubernetes.io/last-applied-configuration']!;
    expect(lastApplied).toContain('hunter2-super-secret');
    expect(lastApplied).toContain(Buffer.from('AKIAIOSFODNN7EXAMPLE').toString('base64'));
    expect(SEED_SECRET_VALUES).toEqual(
      expect.arrayContaining(['hunter2-super-secret', Buffer.from('hunter2-super-secret').toString('base64'), 'AKIAIOSFODNN7EXAMPLE']),
    );
    const cm = await core.readNamespacedConfigMap({ namespace: 'shop', name: 'web-config' });
    expect(cm.data).toMatchObject({ DATABASE_URL: SEED_PLAINTEXT_CREDENTIALS.DATABASE_URL, FEATURE_X: 'on' });
  });
});

describe('writes', () => {
  const newPod = (name: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels: { app: 'scratch' } },
    spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] },
  });

  it('creates objects with server-set metadata and refuses duplicates with AlreadyExists', async () => {
    const before = Number(fake.resourceVersion);
    const created = await core.createNamespacedPod({ namespace: 'shop', body: newPod('scratch') as never });
    expect(created.metadata).toMatchObject({ name: 'scratch', namespace: 'shop', generation: 1 });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(Date.parse(String(created.metadata?.creationTimestamp))).not.toBeNaN();
    expect(Number(created.metadata?.resourceVersion)).toBeGreaterThan(before);
    expect(created.status?.phase).toBe('Pending');

    const dup = await failure(core.createNamespacedPod({ namespace: 'shop', body: newPod('scratch') as never }));
    expect(dup.code).toBe(409);
    expect(dup.body).toMatchObject({ reason: 'AlreadyExists', message: 'pods "scratch" already exists' });

    const noNs = await failure(core.createNamespacedPod({ namespace: 'nowhere', body: { ...newPod('x'), metadata: { name: 'x' } } as never }));
    expect(noNs.body).toMatchObject({ code: 404, message: 'namespaces "nowhere" not found' });

    const invalid = await failure(core.createNamespacedPod({ namespace: 'shop', body: newPod('Bad_Name') as never }));
    expect(invalid.code).toBe(422);
    expect(invalid.body).toMatchObject({ reason: 'Invalid', details: { kind: 'Pod', causes: [{ field: 'metadata.name' }] } });
  });

  it('rejects an update carrying a stale resourceVersion with 409 Conflict', async () => {
    const cm = await core.readNamespacedConfigMap({ namespace: 'shop', name: 'web-config' });
    cm.data = { ...cm.data, FEATURE_X: 'off' };
    const updated = await core.replaceNamespacedConfigMap({ namespace: 'shop', name: 'web-config', body: cm });
    expect(Number(updated.metadata!.resourceVersion)).toBeGreaterThan(Number(cm.metadata!.resourceVersion));

    cm.data = { ...cm.data, FEATURE_X: 'maybe' }; // still carries the old resourceVersion
    const err = await failure(core.replaceNamespacedConfigMap({ namespace: 'shop', name: 'web-config', body: cm }));
    expect(err.code).toBe(409);
    expect(err.body).toMatchObject({
      reason: 'Conflict',
      message:
        'Operation cannot be fulfilled on configmaps "web-config": the object has been modified; please apply your changes to the latest version and try again',
    });
    expect(fake.object('configmaps', 'shop', 'web-config')?.['data']).toMatchObject({ FEATURE_X: 'off' });
  });

  it('applies JSON merge, strategic merge and JSON patches', async () => {
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await core.patchNamespacedConfigMap({ namespace: 'shop', name: 'web-config', body: { data: { FEATURE_X: null, NEW: 'yes' } } }, merge);
    expect(fake.object('configmaps', 'shop', 'web-config')?.['data']).toEqual({
      DATABASE_URL: SEED_PLAINTEXT_CREDENTIALS.DATABASE_URL,
      LOG_FORMAT: 'json',
      NEW: 'yes',
    });

    // Strategic merge: containers merge by name, so env survives an image change.
    const smp = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
    const dep = await apps.patchNamespacedDeployment(
      {
        namespace: 'shop',
        name: 'web',
        body: { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.example.com/shop/web:1.6.0' }] } } } },
      },
      smp,
    );
    const container = dep.spec!.template.spec!.containers[0]!;
    expect(container.image).toBe('registry.example.com/shop/web:1.6.0');
    expect(container.env?.map((e) => e.name)).toContain('DB_PASSWORD');
    expect(dep.metadata?.generation).toBe(3);

    // JSON patch (client-node's default patch content type).
    const scaled = await apps.patchNamespacedDeployment({
      namespace: 'shop',
      name: 'web',
      body: [
        { op: 'test', path: '/spec/replicas', value: 3 },
        { op: 'replace', path: '/spec/replicas', value: 4 },
      ],
    });
    expect(scaled.spec?.replicas).toBe(4);
    const failed = await failure(apps.patchNamespacedDeployment({ namespace: 'shop', name: 'web', body: [{ op: 'test', path: '/spec/replicas', value: 99 }] }));
    expect(failed.code).toBe(422);

    // A patch that pins a stale resourceVersion conflicts.
    const stale = await failure(
      core.patchNamespacedConfigMap({ namespace: 'shop', name: 'web-config', body: { metadata: { resourceVersion: '1' }, data: { A: 'b' } } }, merge),
    );
    expect(stale.code).toBe(409);

    // Strategic merge is refused for custom resources, like the real server.
    const cr = await raw('/apis/example.com/v1/namespaces/shop/widgets/gizmo', {
      method: 'PATCH',
      headers: { 'Content-Type': PatchStrategy.StrategicMergePatch },
      body: '{"spec":{"size":4}}',
    });
    expect(cr.status).toBe(415);
  });

  it('performs server-side apply through KubernetesObjectApi (create, then merge) and requires a field manager', async () => {
    const spec: KubernetesObject & { data: Record<string, string> } = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'applied', namespace: 'shop' },
      data: { a: '1' },
    };
    const created = await objects.patch(spec, undefined, undefined, 'drawbridge-test', true, PatchStrategy.ServerSideApply);
    expect(created.metadata?.name).toBe('applied');
    const again = await objects.patch({ ...spec, data: { b: '2' } }, undefined, undefined, 'drawbridge-test', true, PatchStrategy.ServerSideApply);
    expect(again.data).toEqual({ a: '1', b: '2' });
    expect(JSON.stringify(again.metadata?.managedFields)).toContain('drawbridge-test');

    const read = await objects.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'shop' } });
    expect(read.kind).toBe('Deployment');

    const noManager = await raw('/api/v1/namespaces/shop/configmaps/applied', {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/apply-patch+yaml' },
      body: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n',
    });
    expect(noManager.status).toBe(422);
  });

  it('deletes single objects, collections by label, dependents and whole namespaces', async () => {
    const gone = await core.deleteNamespacedPod({ namespace: 'shop', name: 'worker-5b7c-klmno' });
    expect(gone.metadata?.deletionTimestamp).toBeTruthy();
    expect((await failure(core.readNamespacedPod({ namespace: 'shop', name: 'worker-5b7c-klmno' }))).code).toBe(404);

    const status = (await core.deleteNamespacedConfigMap({ namespace: 'shop', name: 'web-config' })) as V1Status;
    expect(status).toMatchObject({ kind: 'Status', status: 'Success', details: { name: 'web-config', kind: 'configmaps' } });

    await core.deleteCollectionNamespacedPod({ namespace: 'shop', labelSelector: 'app=web' });
    expect((await core.listNamespacedPod({ namespace: 'shop' })).items).toEqual([]);

    fake.reset();
    await apps.deleteNamespacedDeployment({ namespace: 'shop', name: 'web' });
    expect((await apps.listNamespacedReplicaSet({ namespace: 'shop' })).items).toEqual([]);
    expect((await core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app=web' })).items).toEqual([]); // garbage collected via owners

    const ns = (await core.deleteNamespace({ name: 'shop' })) as { status?: { phase?: string } };
    expect(ns.status?.phase).toBe('Terminating');
    expect(Object.keys(fake.objects()).some((k) => k.includes('/shop/'))).toBe(false);
    expect((await failure(core.deleteNamespace({ name: 'kube-system' }))).code).toBe(403);
  });

  it('dry runs validate and answer without storing anything', async () => {
    const before = fake.objects();
    const rv = fake.resourceVersion;
    const created = await core.createNamespacedPod({ namespace: 'shop', body: newPod('dry') as never, dryRun: 'All' });
    expect(created.metadata?.name).toBe('dry');
    const patched = await apps.patchNamespacedDeployment({
      namespace: 'shop',
      name: 'web',
      body: [{ op: 'replace', path: '/spec/replicas', value: 9 }],
      dryRun: 'All',
    });
    expect(patched.spec?.replicas).toBe(9);
    await core.deleteNamespacedPod({ namespace: 'shop', name: 'web-7d9c-abcde', dryRun: 'All' });
    await core.deleteCollectionNamespacedPod({ namespace: 'shop', dryRun: 'All' });
    await core.deleteNamespace({ name: 'shop', dryRun: 'All' });
    const dup = await failure(core.createNamespacedPod({ namespace: 'shop', body: newPod('web-7d9c-abcde') as never, dryRun: 'All' }));
    expect(dup.code).toBe(409);
    expect(fake.objects()).toEqual(before);
    expect(fake.resourceVersion).toBe(rv);
    expect(fake.requests.filter((r) => r.query['dryRun'] === 'All').length).toBe(6);
  });

  it('reset() restores the seed', async () => {
    const before = fake.objects();
    await core.deleteNamespace({ name: 'shop' });
    expect(fake.objects()).not.toEqual(before);
    fake.reset();
    expect(fake.objects()).toEqual(before);
    expect(fake.requests).toEqual([]);
    expect(Object.keys(before)).toHaveLength(DEFAULT_SEED.length);
  });
});

describe('scale subresource and the deployment controller', () => {
  it('reads and patches deployments/scale; the controller reconciles status', async () => {
    const scale = await apps.readNamespacedDeploymentScale({ namespace: 'shop', name: 'web' });
    expect(scale).toMatchObject({ kind: 'Scale', apiVersion: 'autoscaling/v1', spec: { replicas: 3 }, status: { replicas: 3, selector: 'app=web' } });

    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const patched = await apps.patchNamespacedDeploymentScale({ namespace: 'shop', name: 'web', body: { spec: { replicas: 5 } } }, merge);
    expect(patched.spec?.replicas).toBe(5);
    const dep = await apps.readNamespacedDeployment({ namespace: 'shop', name: 'web' });
    expect(dep.spec?.replicas).toBe(5);
    expect(dep.status).toMatchObject({ replicas: 5, readyReplicas: 5, observedGeneration: dep.metadata?.generation });
    expect((await apps.readNamespacedReplicaSet({ namespace: 'shop', name: 'web-7d9c' })).spec?.replicas).toBe(5);

    scale.spec = { replicas: 2 };
    const conflict = await failure(apps.replaceNamespacedDeploymentScale({ namespace: 'shop', name: 'web', body: scale }));
    expect(conflict.code).toBe(409);
    const negative = await failure(apps.patchNamespacedDeploymentScale({ namespace: 'shop', name: 'web', body: { spec: { replicas: -1 } } }, merge));
    expect(negative.code).toBe(422);
  });

  it('creates a new ReplicaSet revision on a template change and reuses the old one on undo', async () => {
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await apps.patchNamespacedDeployment(
      {
        namespace: 'shop',
        name: 'web',
        body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': '2024-01-01T00:00:00Z' } } } } },
      },
      merge,
    );
    const revs = async (): Promise<Record<string, string>> =>
      Object.fromEntries(
        (await apps.listNamespacedReplicaSet({ namespace: 'shop' })).items.map((rs) => [
          rs.metadata!.name!,
          `${rs.metadata!.annotations!['deployment.kubernetes.io/revision']}:${rs.spec!.replicas}`,
        ]),
      );
    const afterRestart = await revs();
    expect(Object.keys(afterRestart)).toHaveLength(3);
    expect(afterRestart['web-7d9c']).toBe('2:0');
    expect(Object.values(afterRestart)).toContain('3:3');
    expect((await apps.readNamespacedDeployment({ namespace: 'shop', name: 'web' })).metadata?.annotations?.['deployment.kubernetes.io/revision']).toBe('3');

    // Undo to revision 1: put the old ReplicaSet's template back.
    const old = await apps.readNamespacedReplicaSet({ namespace: 'shop', name: 'web-5f6b' });
    const template = old.spec!.template!;
    delete template.metadata!.labels!['pod-template-hash'];
    await apps.patchNamespacedDeployment({ namespace: 'shop', name: 'web', body: [{ op: 'replace', path: '/spec/template', value: template }] });
    const afterUndo = await revs();
    expect(afterUndo['web-5f6b']).toBe('4:3');
  });
});

describe('server-side printing (Table)', () => {
  it('renders pods with real columns, priority-1 columns and PartialObjectMetadata rows', async () => {
    const { json: table, status } = await raw('/api/v1/namespaces/shop/pods', { headers: { Accept: TABLE } });
    expect(status).toBe(200);
    expect(table).toMatchObject({ kind: 'Table', apiVersion: 'meta.k8s.io/v1' });
    expect(table.columnDefinitions.map((c: any) => [c.name, c.priority])).toEqual([
      ['Name', 0],
      ['Ready', 0],
      ['Status', 0],
      ['Restarts', 0],
      ['Age', 0],
      ['IP', 1],
      ['Node', 1],
      ['Nominated Node', 1],
      ['Readiness Gates', 1],
    ]);
    expect(table.columnDefinitions[0]).toMatchObject({ type: 'string', format: 'name' });
    const row = table.rows.find((r: any) => r.cells[0] === 'web-7d9c-fghij');
    expect(row.cells.slice(1, 4)).toEqual(['1/1', 'Running', '2 (5h ago)']);
    expect(row.cells[4]).toBe('2d3h');
    expect(row.cells.slice(5, 7)).toEqual(['10.244.2.23', 'node-2']);
    expect(row.object).toMatchObject({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'web-7d9c-fghij', namespace: 'shop' } });
    expect(row.object.spec).toBeUndefined();
    expect(table.rows.find((r: any) => r.cells[0] === 'worker-5b7c-klmno').cells[1]).toBe('2/2');
  });

  it('renders deployments, secrets (key counts, never values) and CRD printer columns', async () => {
    const deps = (await raw('/apis/apps/v1/namespaces/shop/deployments', { headers: { Accept: TABLE } })).json;
    expect(deps.columnDefinitions.map((c: any) => c.name)).toEqual(['Name', 'Ready', 'Up-to-date', 'Available', 'Age', 'Containers', 'Images', 'Selector']);
    expect(deps.rows[0].cells.slice(0, 4)).toEqual(['web', '3/3', 3, 3]);
    expect(deps.rows[0].cells.slice(5)).toEqual(['app', 'registry.example.com/shop/web:1.5.0', 'app=web']);

    const secrets = await raw('/api/v1/namespaces/shop/secrets?includeObject=None', { headers: { Accept: TABLE } });
    expect(secrets.json.columnDefinitions.map((c: any) => c.name)).toEqual(['Name', 'Type', 'Data', 'Age']);
    expect(secrets.json.rows[0].cells.slice(0, 3)).toEqual(['web-secrets', 'Opaque', 2]);
    expect(secrets.json.rows[0].object).toBeUndefined();
    for (const v of SEED_SECRET_VALUES) expect(secrets.text).not.toContain(v);

    // Default includeObject=Metadata carries annotations, so last-applied-configuration leaks, as on a real server.
    const withMeta = await raw('/api/v1/namespaces/shop/secrets/web-secrets', { headers: { Accept: TABLE } });
    expect(withMeta.json.rows).toHaveLength(1);
    expect(withMeta.json.rows[0].object.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']).toContain('hunter2-super-secret');

    const full = (await raw('/api/v1/namespaces/shop/configmaps?includeObject=Object', { headers: { Accept: TABLE } })).json;
    expect(full.rows[0].object).toMatchObject({ kind: 'ConfigMap', data: { FEATURE_X: 'on' } });
    expect(full.rows[0].cells.slice(0, 2)).toEqual(['web-config', 3]);

    const widgets = (await raw('/apis/example.com/v1/namespaces/shop/widgets', { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } })).json;
    expect(widgets.columnDefinitions.map((c: any) => [c.name, c.type])).toEqual([
      ['Name', 'string'],
      ['Size', 'integer'],
      ['Age', 'date'],
    ]);
    expect(widgets.rows[0].cells[0]).toBe('gizmo');
    expect(widgets.rows[0].cells[1]).toBe(3);

    const nodes = (await raw('/api/v1/nodes', { headers: { Accept: TABLE } })).json;
    expect(nodes.rows.map((r: any) => r.cells.slice(0, 3))).toEqual([
      ['node-1', 'Ready', 'control-plane'],
      ['node-2', 'Ready', '<none>'],
    ]);

    const plain = await raw('/api/v1/namespaces/shop/pods', { headers: { Accept: 'application/json' } });
    expect(plain.json.kind).toBe('PodList');
    expect((await raw('/api/v1/namespaces/shop/pods', { headers: { Accept: 'application/vnd.kubernetes.protobuf' } })).status).toBe(406);
  });
});

describe('impersonation and authorization', () => {
  it('records Impersonate-User and Impersonate-Group headers and the Authorization header', async () => {
    const asAlice = new KubeConfig();
    asAlice.loadFromString(fake.kubeconfig('shop', { impersonate: 'alice@example.com' }));
    await asAlice.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'shop' });
    await raw('/api/v1/namespaces/shop/pods', { config: asAlice, headers: { 'Impersonate-Group': 'sre' } });
    const headers = new Headers();
    headers.append('Impersonate-Group', 'oncall');
    headers.set('Authorization', `Bearer ${fake.token}`);
    headers.set('Impersonate-User', 'bob');
    await fetch(`${fake.url}/api/v1/namespaces/shop/pods`, { headers: { ...Object.fromEntries(headers), 'impersonate-group': 'oncall' } });

    const reqs = fake.requests.filter((r) => r.verb === 'list' && r.resource === 'pods');
    expect(reqs).toHaveLength(3);
    expect(reqs[0]).toMatchObject({
      method: 'GET',
      path: '/api/v1/namespaces/shop/pods',
      impersonateUser: 'alice@example.com',
      namespace: 'shop',
      status: 200,
    });
    expect(reqs[0]!.headers['authorization']).toBe(`Bearer ${fake.token}`);
    expect(reqs[0]!.headers['impersonate-user']).toBe('alice@example.com');
    expect(reqs[1]).toMatchObject({ impersonateUser: 'alice@example.com', impersonateGroups: ['sre'] });
    expect(reqs[2]).toMatchObject({ impersonateUser: 'bob', impersonateGroups: ['oncall'] });

    const groupOnly = await fetch(`${fake.url}/api/v1/namespaces/shop/pods`, {
      headers: { Authorization: `Bearer ${fake.token}`, 'Impersonate-Group': 'sre' },
    });
    expect(groupOnly.status).toBe(500);
  });

  it('refuses with 403 Forbidden when the authorizer says no', async () => {
    const seen: unknown[] = [];
    fake.setRbac((req) => {
      seen.push(req);
      return !(req.user === 'alice' && req.verb === 'delete');
    });
    const asAlice = new KubeConfig();
    asAlice.loadFromString(fake.kubeconfig('shop', { impersonate: 'alice' }));
    const err = await failure(asAlice.makeApiClient(CoreV1Api).deleteNamespacedPod({ namespace: 'shop', name: 'web-7d9c-abcde' }));
    expect(err.code).toBe(403);
    expect(err.body).toMatchObject({
      reason: 'Forbidden',
      message: 'pods "web-7d9c-abcde" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "shop"',
      details: { name: 'web-7d9c-abcde', kind: 'pods' },
    });
    expect(seen).toContainEqual({
      user: 'alice',
      groups: [],
      verb: 'delete',
      group: '',
      resource: 'pods',
      subresource: '',
      namespace: 'shop',
      name: 'web-7d9c-abcde',
    });
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeDefined();
    // Others are unaffected.
    await asAlice.makeApiClient(CoreV1Api).readNamespacedPod({ namespace: 'shop', name: 'web-7d9c-abcde' });
  });
});

describe('SelfSubjectReview (authentication.k8s.io/v1)', () => {
  const review = { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' };

  it('answers 201 with the token user: a service account and its groups', async () => {
    const answer = await kc.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: review });
    expect(answer).toMatchObject({ apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
    expect(answer.status?.userInfo).toMatchObject({
      username: 'system:serviceaccount:drawbridge:gateway',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:drawbridge', 'system:authenticated'],
    });
    expect(answer.status?.userInfo?.uid).toMatch(/^[0-9a-f-]{36}$/);
    const rec = fake.requests.find((r) => r.resource === 'selfsubjectreviews');
    expect(rec).toMatchObject({ method: 'POST', verb: 'create', group: 'authentication.k8s.io', status: 201 });
    // Nothing is stored: the store is the seed.
    expect(Object.keys(fake.objects()).some((k) => k.includes('selfsubjectreviews'))).toBe(false);
  });

  it('answers with the impersonated user and groups, plus system:authenticated', async () => {
    const r = await raw('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Impersonate-User': 'alice', 'Impersonate-Group': 'sre' },
      body: JSON.stringify(review),
    });
    expect(r.status).toBe(201);
    expect(r.json.status.userInfo).toEqual({ username: 'alice', groups: ['sre', 'system:authenticated'] });
  });

  it('is served in discovery; create only (GET is 405), needs the token (401), and asks the authorizer', async () => {
    const groups = (await raw('/apis')).json.groups.map((g: { name: string }) => g.name);
    expect(groups).toContain('authentication.k8s.io');
    const list = (await raw('/apis/authentication.k8s.io/v1')).json;
    expect(list.resources).toEqual([expect.objectContaining({ name: 'selfsubjectreviews', namespaced: false, kind: 'SelfSubjectReview', verbs: ['create'] })]);
    expect((await raw('/apis/authentication.k8s.io/v1/selfsubjectreviews')).status).toBe(405);
    const anonymous = await fetch(`${fake.url}/apis/authentication.k8s.io/v1/selfsubjectreviews`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(review),
    });
    expect(anonymous.status).toBe(401);
    expect(
      (
        await raw('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ kind: 'Pod', apiVersion: 'v1' }),
        })
      ).status,
    ).toBe(400);
    fake.setRbac((req) => req.resource !== 'selfsubjectreviews');
    const forbidden = await raw('/apis/authentication.k8s.io/v1/selfsubjectreviews', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(review),
    });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.message).toBe(
      'selfsubjectreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:drawbridge:gateway" ' +
        'cannot create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the cluster scope',
    );
  });

  it('selfSubjectReview: false models a server before 1.28: not in discovery, 404', async () => {
    const old = await startFakeKube({ selfSubjectReview: false, tokenUser: 'kubernetes-admin', tokenGroups: ['system:masters', 'system:authenticated'] });
    try {
      const config = new KubeConfig();
      config.loadFromString(old.kubeconfig());
      const opts = await config.applyToFetchOptions({});
      const headers = fetchHeaders(opts);
      headers.set('Content-Type', 'application/json');
      const groups = (await (await fetch(`${old.url}/apis`, { headers })).json()) as { groups: Array<{ name: string }> };
      expect(groups.groups.map((g) => g.name)).not.toContain('authentication.k8s.io');
      const res = await fetch(`${old.url}/apis/authentication.k8s.io/v1/selfsubjectreviews`, { method: 'POST', headers, body: JSON.stringify(review) });
      expect(res.status).toBe(404);
    } finally {
      await old.close();
    }
  });

  it('tokenUser and tokenGroups set who the token is', async () => {
    const admin = await startFakeKube({ tokenUser: 'kubernetes-admin', tokenGroups: ['kubeadm:cluster-admins', 'system:authenticated'] });
    try {
      const config = new KubeConfig();
      config.loadFromString(admin.kubeconfig());
      const answer = await config.makeApiClient(AuthenticationV1Api).createSelfSubjectReview({ body: review });
      expect(answer.status?.userInfo).toMatchObject({ username: 'kubernetes-admin', groups: ['kubeadm:cluster-admins', 'system:authenticated'] });
    } finally {
      await admin.close();
    }
  });
});

describe('logs', () => {
  it('serves container logs through client-node Log and readNamespacedPodLog, honouring tailLines and previous', async () => {
    const out = collector();
    const log = new Log(kc);
    await log.log('shop', 'web-7d9c-abcde', 'app', out.stream, { tailLines: 2 });
    await new Promise((r) => out.stream.on('finish', r));
    expect(out.text()).toBe(
      'level=warn msg="slow query" table=orders duration=1.2s\nlevel=info msg="GET /api/orders" status=200 duration=35ms user=ops@example.com\n',
    );

    const previous = await core.readNamespacedPodLog({ namespace: 'shop', name: 'web-7d9c-fghij', container: 'app', previous: true });
    expect(previous).toContain('fatal error: runtime: out of memory');

    fake.setLogs('shop', 'web-7d9c-abcde', 'app', 'one\ntwo\nthree\n');
    const tail = await raw('/api/v1/namespaces/shop/pods/web-7d9c-abcde/log?tailLines=1&timestamps=true');
    expect(tail.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(tail.text).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z three\n$/);
    expect((await raw('/api/v1/namespaces/shop/pods/web-7d9c-abcde/log')).text).toBe('one\ntwo\nthree\n');
  });

  it('requires a container for multi-container pods, like the real server', async () => {
    const res = await raw('/api/v1/namespaces/shop/pods/worker-5b7c-klmno/log');
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({
      reason: 'BadRequest',
      message: 'a container name must be specified for pod worker-5b7c-klmno, choose one of: [worker sidecar]',
    });
    expect((await raw('/api/v1/namespaces/shop/pods/worker-5b7c-klmno/log?container=sidecar')).text).toContain('shipping logs');
    expect((await raw('/api/v1/namespaces/shop/pods/web-7d9c-abcde/log?previous=true')).status).toBe(400);
    expect((await raw('/api/v1/namespaces/shop/pods/nope/log')).status).toBe(404);
  });
});

describe('exec over WebSocket', () => {
  async function run(command: string[], pod = 'web-7d9c-abcde', container = 'app'): Promise<{ stdout: string; stderr: string; status: V1Status }> {
    const out = collector();
    const err = collector();
    const exec = new Exec(kc);
    const status = await new Promise<V1Status>((resolve, reject) => {
      exec.exec('shop', pod, container, command, out.stream, err.stream, null, false, resolve).catch(reject);
    });
    return { stdout: out.text(), stderr: err.text(), status };
  }

  it('runs the default echo handler and reports Success on v5.channel.k8s.io', async () => {
    const result = await run(['printenv', 'LOG_LEVEL']);
    expect(result.stdout).toBe('printenv LOG_LEVEL\n');
    expect(result.status).toEqual({ metadata: {}, status: 'Success' });
    expect(fake.execs).toEqual([
      expect.objectContaining({
        namespace: 'shop',
        pod: 'web-7d9c-abcde',
        container: 'app',
        command: ['printenv', 'LOG_LEVEL'],
        protocol: 'v5.channel.k8s.io',
      }),
    ]);
    const rec = fake.requests.find((r) => r.subresource === 'exec');
    expect(rec).toMatchObject({
      method: 'GET',
      verb: 'create',
      status: 101,
      query: { command: ['printenv', 'LOG_LEVEL'], container: 'app', stdout: 'true', stderr: 'true', stdin: 'false', tty: 'false' },
    });
  });

  it('reports a non-zero exit as a Failure status with an ExitCode cause', async () => {
    fake.setExecHandler((req) => ({ stdout: 'partial\n', stderr: `${req.command.at(-1)}: boom\n`, exitCode: 3 }));
    const result = await run(['sh', '-c', 'exit 3']);
    expect(result.stdout).toBe('partial\n');
    expect(result.stderr).toBe('exit 3: boom\n');
    expect(result.status).toEqual({
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    });
  });

  it('hands stdin to the handler on v5 (after the stdin close signal) and honours delayMs', async () => {
    fake.setExecHandler((req) => ({ stdout: req.stdin.toUpperCase(), stderr: '', exitCode: 0, delayMs: 150 }));
    const out = collector();
    const started = Date.now();
    const status = await new Promise<V1Status>((resolve, reject) => {
      new Exec(kc).exec('shop', 'web-7d9c-abcde', 'app', ['cat'], out.stream, null, Readable.from(['hello ', 'world']), false, resolve).catch(reject);
    });
    expect(status.status).toBe('Success');
    expect(out.text()).toBe('HELLO WORLD');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(fake.execs[0]).toMatchObject({ command: ['cat'], stdin: 'hello world' });
  });

  it('speaks v4.channel.k8s.io and the legacy channel.k8s.io protocol frame by frame', async () => {
    const rawExec = (protocols: string[]): Promise<{ protocol: string; frames: Array<[number, string]> }> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(
          `${fake.url.replace('http:', 'ws:')}/api/v1/namespaces/shop/pods/web-7d9c-abcde/exec?command=false&container=app&stdout=true&stderr=true`,
          protocols,
          { headers: { Authorization: `Bearer ${fake.token}` } },
        );
        const frames: Array<[number, string]> = [];
        ws.on('message', (d) => {
          const b = d as Buffer;
          frames.push([b[0]!, b.subarray(1).toString('utf8')]);
        });
        ws.on('close', () => resolve({ protocol: ws.protocol, frames }));
        ws.on('error', reject);
      });
    fake.setExecHandler(() => ({ stdout: 'out', stderr: 'err', exitCode: 2 }));
    const message = 'command terminated with non-zero exit code: error executing command [false], exit code 2';
    const v4 = await rawExec(['v4.channel.k8s.io', 'channel.k8s.io']);
    expect(v4.protocol).toBe('v4.channel.k8s.io');
    expect(v4.frames).toEqual([
      [1, ''],
      [1, 'out'],
      [2, 'err'],
      [3, JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: '2' }] } })],
    ]);
    const v1 = await rawExec(['channel.k8s.io']);
    expect(v1.protocol).toBe('channel.k8s.io');
    expect(v1.frames.at(-1)).toEqual([3, message]);
    await expect(rawExec(['v9.bogus.k8s.io'])).rejects.toThrow(/400/);
  });

  it('refuses exec into a missing pod or container before upgrading', async () => {
    await expect(run(['true'], 'missing-pod')).rejects.toBeTruthy();
    await expect(run(['true'], 'web-7d9c-abcde', 'nope')).rejects.toBeTruthy();
    expect(fake.requests.filter((r) => r.subresource === 'exec').map((r) => r.status)).toEqual([404, 400]);
    expect(fake.execs).toEqual([]);
  });
});

describe('watch', () => {
  it('streams ADDED for existing objects, then changes', async () => {
    const events: string[] = [];
    let controller: AbortController | undefined;
    const sawDelete = new Promise<void>((resolve, reject) => {
      void new Watch(kc)
        .watch(
          '/api/v1/namespaces/shop/pods',
          { labelSelector: 'app=web' },
          (phase, obj: KubeObject) => {
            events.push(`${phase} ${obj.metadata?.name ?? ''}`);
            if (phase === 'DELETED') resolve();
          },
          (err) => {
            if (err && !String(err).includes('abort')) reject(err);
          },
        )
        .then((c) => {
          controller = c;
        });
    });
    await new Promise((r) => setTimeout(r, 100));
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    await core.patchNamespacedPod({ namespace: 'shop', name: 'web-7d9c-abcde', body: { metadata: { labels: { extra: 'x' } } } }, merge);
    await core.patchNamespacedPod({ namespace: 'shop', name: 'worker-5b7c-klmno', body: { metadata: { labels: { extra: 'x' } } } }, merge);
    await core.deleteNamespacedPod({ namespace: 'shop', name: 'web-7d9c-fghij' });
    await sawDelete;
    controller?.abort();
    expect(events).toEqual(['ADDED web-7d9c-abcde', 'ADDED web-7d9c-fghij', 'MODIFIED web-7d9c-abcde', 'DELETED web-7d9c-fghij']);
  });
});

describe('custom resources', () => {
  it('reads and writes widgets through CustomObjectsApi', async () => {
    const custom = kc.makeApiClient(CustomObjectsApi);
    const w = (await custom.getNamespacedCustomObject({
      group: 'example.com',
      version: 'v1',
      namespace: 'shop',
      plural: 'widgets',
      name: 'gizmo',
    })) as KubeObject;
    expect(w).toMatchObject({ kind: 'Widget', spec: { size: 3 } });
    const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    const patched = (await custom.patchNamespacedCustomObject(
      { group: 'example.com', version: 'v1', namespace: 'shop', plural: 'widgets', name: 'gizmo', body: { spec: { size: 5 } } },
      merge,
    )) as KubeObject;
    expect(patched['spec']).toEqual({ size: 5, color: 'blue' });
    expect(patched.metadata?.generation).toBe(2);
  });
});
