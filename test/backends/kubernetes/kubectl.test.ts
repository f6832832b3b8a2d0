// Functional coverage of the kubectl tool through the pipeline (parse → resolve → policy →
// execute → mask → answer) against the in-process fake API server, plus the approval path
// (server-side dry-run preview, out-of-band approval by the CLI in a second process, and
// in-band approval by elicitation).

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalChannel, ElicitForm } from '../../../src/approval/approver.js';
import { openSqliteApprovals as openApprovalStore } from '../../../src/state/sqlite/approvals.js';
import { renderObjects } from '../../../src/backends/kubernetes/render.js';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool, type CallResult } from '../../../src/pipeline/callTool.js';
import { expectOk as ok, expectRefused as refused, type OkResult } from '../../support/results.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { runCliAsync, requireBuiltCli } from '../../support/cli.js';
import { writeKubeConfigDir } from '../../support/kube-config.js';
import { startFakeKube, type FakeKube } from '../../support/fake-kube/server.js';

const SUBJECT = 'dev@example.com';
const dev = makeIdentity({ kind: 'local', subject: SUBJECT, groups: ['developers'], issuer: 'local' });
const SRE_TOKEN = 'tok-sre1-5c8e0a7b1d2f4e63';

let fake: FakeKube;
const dirs: string[] = [];
let gateway: Gateway;
let gated: Gateway;
let gatedDir: string;

const CONNECTIONS = `kind: connection
name: staging
type: kubernetes
description: fake cluster
kubeconfig: { file: kubeconfig }
namespace: shop
impersonate: true
---
kind: connection
name: tight
type: kubernetes
description: fake cluster with tight limits
kubeconfig: { file: kubeconfig }
namespace: shop
impersonate: true
limits: { exec_timeout: 1s, max_bytes: 256KiB, max_log_lines: 3 }
---
kind: tool
name: kubectl
type: kubectl
connections: [staging, tight]
`;

function writeDir(rules: string): string {
  const dir = writeKubeConfigDir(fake, {
    rules,
    tools: CONNECTIONS,
    approval:
      '{ wait: 0ms, elicitation_timeout: 5s, store: approvals.db, approvers: [ { subject: sre1@example.com, groups: [sre], token: { env: SRE_TOKEN } } ] }',
    identity: { subject: SUBJECT, groups: ['developers'] },
  });
  dirs.push(dir);
  return dir;
}

beforeAll(async () => {
  fake = await startFakeKube();
  gateway = await openGateway({
    configDir: writeDir(`  - name: no-namespaces
    match: { tool: kubectl, resources: core/namespaces, access: [write, admin] }
    effect: deny
  - name: everything-else
    match: { tool: kubectl }
    effect: allow`),
    env: { SRE_TOKEN },
  });
  gatedDir = writeDir(`  - name: pod-deletes
    match: { tool: kubectl, operation: delete, resources: core/pods }
    effect: approve
    approvers: { groups: [sre] }
    preview: true
  - name: exec-needs-a-yes
    match: { tool: kubectl, operation: exec }
    effect: approve
    approvers: { requester: true }
  - name: reads
    match: { tool: kubectl, access: read }
    effect: allow`);
  gated = await openGateway({ configDir: gatedDir, env: { SRE_TOKEN } });
});
afterAll(async () => {
  await gateway?.close();
  await gated?.close();
  await fake?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => fake.reset());

const run = (command: string, o: { manifest?: string; connection?: string; via?: Gateway; channel?: ApprovalChannel } = {}): Promise<CallResult> =>
  callTool(o.via ?? gateway, {
    tool: 'kubectl',
    args: { connection: o.connection ?? 'staging', command, ...(o.manifest !== undefined ? { manifest: o.manifest } : {}) },
    identity: dev,
    client: { name: 'vitest' },
    ...(o.channel ? { channel: o.channel } : {}),
  });

type Ok = OkResult;
const columns = (r: Ok) => r.structured.columns.map((c) => c.name);
const column = (r: Ok, name: string) => r.structured.rows.map((row) => row[columns(r).indexOf(name)]);
const doc = (r: Ok) => String(r.structured.rows[0]?.[0] ?? '');
const writes = () => fake.requests.filter((q) => !['GET', 'HEAD'].includes(q.method));

// ---------------------------------------------------------------------------

describe('get', () => {
  it('a table by default, with the server printer columns', async () => {
    const r = ok(await run('get pods'));
    expect(columns(r)).toEqual(expect.arrayContaining(['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']));
    expect(columns(r)).not.toContain('IP');
    expect(column(r, 'NAME')).toEqual(expect.arrayContaining(['web-7d9c-abcde', 'web-7d9c-fghij', 'worker-5b7c-klmno']));
    expect(r.text).toContain('web-7d9c-abcde');
  });

  it('-o wide adds the wide columns', async () => {
    const r = ok(await run('get pods -o wide'));
    expect(columns(r)).toEqual(expect.arrayContaining(['NAME', 'IP', 'NODE']));
  });

  it('-l filters by label, on the server', async () => {
    const r = ok(await run('get pods -l app=web'));
    expect(column(r, 'NAME').sort()).toEqual(['web-7d9c-abcde', 'web-7d9c-fghij']);
    expect(fake.requests.some((q) => q.resource === 'pods' && q.query['labelSelector'] === 'app=web')).toBe(true);
  });

  it('--field-selector filters by field, on the server', async () => {
    const r = ok(await run('get pods --field-selector metadata.name=worker-5b7c-klmno'));
    expect(column(r, 'NAME')).toEqual(['worker-5b7c-klmno']);
    expect(fake.requests.some((q) => q.resource === 'pods' && q.query['fieldSelector'] === 'metadata.name=worker-5b7c-klmno')).toBe(true);
  });

  it('-A lists every namespace with a NAMESPACE column', async () => {
    const r = ok(await run('get pods -A'));
    expect(columns(r)[0]).toBe('NAMESPACE');
    expect(column(r, 'NAMESPACE')).toEqual(expect.arrayContaining(['shop', 'kube-system']));
    expect(column(r, 'NAME')).toContain('coredns-5d78c9869d-q7x2v');
  });

  it('-n picks the namespace', async () => {
    const r = ok(await run('get pods -n kube-system'));
    expect(column(r, 'NAME')).toEqual(['coredns-5d78c9869d-q7x2v']);
  });

  it('-o yaml / json / name / jsonpath', async () => {
    const yaml = doc(ok(await run('get deploy web -o yaml')));
    expect(yaml).toContain('kind: Deployment');
    expect(yaml).toContain('name: web');
    const json = JSON.parse(doc(ok(await run('get deploy web -o json')))) as { kind: string; metadata: { name: string } };
    expect(json.kind).toBe('Deployment');
    expect(json.metadata.name).toBe('web');
    const list = JSON.parse(doc(ok(await run('get pods -l app=web -o json')))) as { kind: string; items: unknown[] };
    expect(list.kind).toBe('List');
    expect(list.items).toHaveLength(2);
    const names = doc(ok(await run('get pods -l app=web -o name')));
    expect(names.trim().split('\n').sort()).toEqual(['pod/web-7d9c-abcde', 'pod/web-7d9c-fghij']);
    const jp = doc(ok(await run('get pods -l app=web -o jsonpath={.items[*].metadata.name}')));
    expect(jp.split(' ').sort()).toEqual(['web-7d9c-abcde', 'web-7d9c-fghij']);
    const replicas = doc(ok(await run('get deploy web -o jsonpath={.spec.replicas}')));
    expect(replicas).toBe('3');
  });

  it('-o jsonpath prints what renderObjects (the unit-tested path) prints for the same objects', async () => {
    for (const [command, template] of [
      ['get deploy web', '{.metadata.*}'],
      ['get deploy web', '{.spec.template.spec.containers[0].*}'],
      ['get pods -l app=web', '{.items[*].metadata.*}'],
      ['get pods -l app=web', '{..image}'],
    ] as const) {
      const json: unknown = JSON.parse(doc(ok(await run(`${command} -o json`))));
      const expected = renderObjects(json, { kind: 'jsonpath', template }, { resourceKey: '' });
      expect(expected.length).toBeGreaterThan(0);
      expect(doc(ok(await run(`${command} -o 'jsonpath=${template}'`))), `${command} ${template}`).toBe(expected);
    }
  });

  it('a missing object is a backend error naming it', async () => {
    const text = refused(await run('get pod nope'), 'backend.error');
    expect(text).toContain('nope');
  });

  it('custom resources through discovery: widgets and the short name wd', async () => {
    const r = ok(await run('get widgets'));
    expect(column(r, 'NAME')).toContain('gizmo');
    expect(columns(r)).toContain('SIZE');
    const short = ok(await run('get wd gizmo -o yaml'));
    expect(doc(short)).toContain('kind: Widget');
    expect(fake.requests.some((q) => q.group === 'example.com' && q.resource === 'widgets' && q.name === 'gizmo')).toBe(true);
  });
});

describe('describe, logs, events, api-resources, explain', () => {
  it('describe shows the object and its events', async () => {
    const text = doc(ok(await run('describe pod web-7d9c-abcde')));
    expect(text).toMatch(/Name:\s+web-7d9c-abcde/);
    expect(text).toMatch(/Namespace:\s+shop/);
  });

  it('logs with --tail', async () => {
    const r = ok(await run('logs web-7d9c-abcde --tail 2'));
    const lines = doc(r).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain('GET /api/orders');
    expect(fake.requests.some((q) => q.subresource === 'log' && q.query['tailLines'] === '2')).toBe(true);
  });

  it("logs past the connection's max_log_lines: the newest lines, marked truncated", async () => {
    const r = ok(await run('logs web-7d9c-abcde', { connection: 'tight' }));
    const lines = doc(r).trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toContain('GET /api/orders');
    expect(r.structured.truncated).toEqual({ reason: 'rows', limit: 3 });
    expect(r.text).toContain('(truncated: more than 3 rows; the newest lines are shown');
    // One line more than the cap is asked for: that is how the answer knows it was cut.
    expect(fake.requests.some((q) => q.subresource === 'log' && q.query['tailLines'] === '4')).toBe(true);
  });

  it('logs with a --tail within max_log_lines are not marked truncated', async () => {
    const r = ok(await run('logs web-7d9c-abcde --tail 2', { connection: 'tight' }));
    expect(doc(r).trim().split('\n')).toHaveLength(2);
    expect(r.structured.truncated).toBeNull();
  });

  it('logs -c picks the container, --previous the last terminated instance', async () => {
    expect(doc(ok(await run('logs worker-5b7c-klmno -c sidecar')))).toContain('shipping logs');
    expect(doc(ok(await run('logs worker-5b7c-klmno -c worker')))).toContain('processed order 1002');
    expect(doc(ok(await run('logs web-7d9c-fghij --previous')))).toContain('out of memory');
    expect(doc(ok(await run('logs web-7d9c-fghij')))).not.toContain('out of memory');
  });

  it('logs of a multi-container pod without -c is an error naming the containers', async () => {
    const text = refused(await run('logs worker-5b7c-klmno'), 'backend.error');
    expect(text).toMatch(/container/i);
  });

  it('events lists the namespace events', async () => {
    const r = ok(await run('events'));
    expect(r.structured.rows.length).toBeGreaterThan(0);
    expect(columns(r).length).toBeGreaterThan(2);
  });

  it('api-resources lists the CRD widgets with its short name', async () => {
    const r = ok(await run('api-resources'));
    const widgets = r.structured.rows.find((row) => row[0] === 'widgets');
    expect(widgets).toEqual(['widgets', 'wd', 'example.com/v1', true, 'Widget']);
    expect(r.structured.rows.some((row) => row[0] === 'deployments' && row[2] === 'apps/v1')).toBe(true);
    const group = ok(await run('api-resources --api-group=example.com'));
    expect(group.structured.rows.map((row) => row[0])).toEqual(['widgets']);
  });

  it('explain names the kind and version', async () => {
    const text = doc(ok(await run('explain deployments')));
    expect(text).toContain('KIND:       Deployment');
    expect(text).toContain('VERSION:    apps/v1');
  });
});

// ---------------------------------------------------------------------------

describe('writes', () => {
  it('delete by name', async () => {
    const r = ok(await run('delete pod web-7d9c-abcde'));
    expect(r.text).toContain('pod "web-7d9c-abcde" deleted');
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-fghij')).toBeDefined();
  });

  it('delete by -l', async () => {
    ok(await run('delete pods -l app=web'));
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-fghij')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'worker-5b7c-klmno')).toBeDefined();
  });

  it('delete by -l and --field-selector deletes only what both select', async () => {
    ok(await run('delete pods -l app=web --field-selector metadata.name=web-7d9c-fghij'));
    expect(fake.object('pods', 'shop', 'web-7d9c-fghij')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeDefined();
    expect(fake.object('pods', 'shop', 'worker-5b7c-klmno')).toBeDefined();
  });

  it('delete by --field-selector alone', async () => {
    ok(await run('delete pods --field-selector metadata.name=worker-5b7c-klmno'));
    expect(fake.object('pods', 'shop', 'worker-5b7c-klmno')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeDefined();
  });

  it('deleting a namespace is denied by the policy', async () => {
    const before = fake.objects();
    refused(await run('delete namespace shop'), 'policy.denied');
    expect(fake.objects()).toEqual(before);
  });

  it('apply creates, then updates (server-side apply with the gateway field manager)', async () => {
    const manifest = (v: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: feature-flags, namespace: shop }\ndata: { checkout: "${v}" }\n`;
    const first = ok(await run('apply', { manifest: manifest('off') }));
    expect(first.text).toContain('feature-flags');
    expect(fake.object('configmaps', 'shop', 'feature-flags')?.['data']).toEqual({ checkout: 'off' });
    ok(await run('apply --server-side', { manifest: manifest('on') }));
    expect(fake.object('configmaps', 'shop', 'feature-flags')?.['data']).toEqual({ checkout: 'on' });
    const applies = writes().filter((q) => q.resource === 'configmaps');
    expect(applies.length).toBeGreaterThanOrEqual(2);
    for (const q of applies) {
      expect(q.method).toBe('PATCH');
      expect(q.headers['content-type']).toContain('application/apply-patch+yaml');
      expect(q.query['fieldManager']).toBe('drawbridge');
    }
  });

  it('apply --dry-run=server changes nothing', async () => {
    const before = fake.objects();
    const r = ok(await run('apply --dry-run=server', { manifest: 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: dry }\ndata: { a: b }\n' }));
    expect(r.text).toContain('dry run');
    expect(fake.objects()).toEqual(before);
    expect(writes().every((q) => q.query['dryRun'] === 'All')).toBe(true);
  });

  it('create, and create again → AlreadyExists', async () => {
    const manifest = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: created-once }\ndata: { a: b }\n';
    ok(await run('create', { manifest }));
    expect(fake.object('configmaps', 'shop', 'created-once')).toBeDefined();
    const text = refused(await run('create', { manifest }), 'backend.error');
    expect(text).toMatch(/already exists/i);
  });

  it('patch: merge, strategic and json', async () => {
    ok(await run(`patch deploy web --type merge -p '{"metadata":{"labels":{"tier":"frontend"}}}'`));
    expect(fake.object('deployments', 'shop', 'web')?.metadata?.labels?.['tier']).toBe('frontend');
    ok(await run(`patch deploy web -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"registry.example.com/shop/web:1.6.0"}]}}}}'`));
    const containers = (
      fake.object('deployments', 'shop', 'web')?.['spec'] as { template: { spec: { containers: Array<{ name: string; image: string; env?: unknown[] }> } } }
    ).template.spec.containers;
    expect(containers).toHaveLength(1);
    expect(containers[0]?.image).toBe('registry.example.com/shop/web:1.6.0');
    expect(containers[0]?.env).toBeDefined(); // strategic: merged by name, env kept
    ok(await run(`patch deploy web --type json -p '[{"op":"replace","path":"/spec/replicas","value":4}]'`));
    expect((fake.object('deployments', 'shop', 'web')?.['spec'] as { replicas: number }).replicas).toBe(4);
    const types = writes()
      .filter((q) => q.resource === 'deployments')
      .map((q) => String(q.headers['content-type']));
    expect(types.some((t) => t.includes('merge-patch+json') && !t.includes('strategic'))).toBe(true);
    expect(types.some((t) => t.includes('strategic-merge-patch+json'))).toBe(true);
    expect(types.some((t) => t.includes('json-patch+json'))).toBe(true);
  });

  it('scale, and --current-replicas mismatch refused without a write', async () => {
    ok(await run('scale deploy web --replicas=5'));
    expect((fake.object('deployments', 'shop', 'web')?.['spec'] as { replicas: number }).replicas).toBe(5);
    const before = fake.objects();
    fake.clearRequests();
    const text = refused(await run('scale deploy web --replicas=1 --current-replicas=3'), 'backend.error');
    expect(text).toContain('nothing changed');
    expect(writes()).toEqual([]);
    expect(fake.objects()).toEqual(before);
    ok(await run('scale deploy web --replicas=2 --current-replicas=5'));
    expect((fake.object('deployments', 'shop', 'web')?.['spec'] as { replicas: number }).replicas).toBe(2);
  });

  it('rollout status, restart, history and undo', async () => {
    expect(doc(ok(await run('rollout status deployment/web')))).toContain('successfully rolled out');
    const history = ok(await run('rollout history deployment/web'));
    expect(columns(history)).toEqual(['REVISION', 'CHANGE-CAUSE']);
    const revisions = history.structured.rows.map((row) => Number(row[0]));
    expect(revisions.length).toBeGreaterThanOrEqual(2);
    const image = () =>
      (fake.object('deployments', 'shop', 'web')?.['spec'] as { template: { spec: { containers: Array<{ image: string }> } } }).template.spec.containers[0]
        ?.image;
    expect(image()).toBe('registry.example.com/shop/web:1.5.0');
    const undo = ok(await run('rollout undo deployment/web'));
    expect(undo.text).toContain('rolled back to revision');
    expect(image()).toBe('registry.example.com/shop/web:1.4.1');
    const after = ok(await run('rollout history deployment/web'));
    expect(Math.max(...after.structured.rows.map((row) => Number(row[0])))).toBeGreaterThan(Math.max(...revisions));
    ok(await run('rollout restart deployment/web'));
    const annotations = (fake.object('deployments', 'shop', 'web')?.['spec'] as { template: { metadata: { annotations?: Record<string, string> } } }).template
      .metadata.annotations;
    expect(annotations?.['kubectl.kubernetes.io/restartedAt']).toBeTruthy();
    expect(image()).toBe('registry.example.com/shop/web:1.4.1');
  });

  it('label and annotate need --overwrite to change an existing key', async () => {
    ok(await run('label pod web-7d9c-abcde team=payments'));
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')?.metadata?.labels?.['team']).toBe('payments');
    const text = refused(await run('label pod web-7d9c-abcde team=search'), 'backend.error');
    expect(text).toContain('--overwrite');
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')?.metadata?.labels?.['team']).toBe('payments');
    ok(await run('label pod web-7d9c-abcde team=search --overwrite'));
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')?.metadata?.labels?.['team']).toBe('search');
    ok(await run('label pod web-7d9c-abcde team-'));
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')?.metadata?.labels?.['team']).toBeUndefined();

    ok(await run('annotate deploy web owner=sre'));
    expect(fake.object('deployments', 'shop', 'web')?.metadata?.annotations?.['owner']).toBe('sre');
    refused(await run('annotate deploy web owner=dev'), 'backend.error');
    ok(await run('annotate deploy web owner=dev --overwrite'));
    expect(fake.object('deployments', 'shop', 'web')?.metadata?.annotations?.['owner']).toBe('dev');
  });

  it('cordon and uncordon', async () => {
    ok(await run('cordon node-1'));
    expect((fake.object('nodes', null, 'node-1')?.['spec'] as { unschedulable?: boolean }).unschedulable).toBe(true);
    ok(await run('uncordon node-1'));
    expect((fake.object('nodes', null, 'node-1')?.['spec'] as { unschedulable?: boolean }).unschedulable).toBe(false);
  });
});

// ---------------------------------------------------------------------------

describe('exec', () => {
  const result = (r: Ok) => {
    const row = r.structured.rows[0] ?? [];
    const cols = columns(r);
    return { exitCode: row[cols.indexOf('exit_code')], stdout: String(row[cols.indexOf('stdout')]), stderr: String(row[cols.indexOf('stderr')]) };
  };

  it('returns stdout (the default handler echoes the argv)', async () => {
    const r = ok(await run('exec web-7d9c-abcde -- echo hello world'));
    expect(result(r)).toMatchObject({ exitCode: 0, stdout: 'echo hello world\n', stderr: '' });
    expect(fake.execs[0]).toMatchObject({ namespace: 'shop', pod: 'web-7d9c-abcde', command: ['echo', 'hello', 'world'], user: SUBJECT });
  });

  it('stderr, -c and a non-zero exit code in the structured result', async () => {
    fake.setExecHandler((req) => ({ stdout: `in ${req.container}\n`, stderr: 'cat: /nope: No such file or directory\n', exitCode: 2 }));
    const r = ok(await run('exec worker-5b7c-klmno -c sidecar -- cat /nope'));
    expect(result(r)).toEqual({ exitCode: 2, stdout: 'in sidecar\n', stderr: 'cat: /nope: No such file or directory\n' });
    expect(fake.execs[0]?.container).toBe('sidecar');
  });

  it('is stopped at the exec time limit → backend.timeout', async () => {
    fake.setExecHandler(() => ({ stdout: 'late\n', stderr: '', exitCode: 0, delayMs: 4_000 }));
    const t0 = Date.now();
    const text = refused(await run('exec web-7d9c-abcde -- sleep 10', { connection: 'tight' }), 'backend.timeout');
    expect(Date.now() - t0).toBeLessThan(3_500);
    expect(text).toContain('1s');
  });

  it('truncates output past the byte cap', async () => {
    fake.setExecHandler(() => ({ stdout: 'x'.repeat(600 * 1024), stderr: '', exitCode: 0 }));
    const r = ok(await run('exec web-7d9c-abcde -- cat /big', { connection: 'tight' }));
    expect(r.structured.truncated).toBeTruthy();
    expect(result(r).stdout.length).toBeLessThanOrEqual(256 * 1024);
    expect(result(r).stdout.length).toBeGreaterThan(0);
  });
});

describe('RBAC is a second wall', () => {
  it('a 403 from the cluster is a backend.error with the server message, and nothing changes', async () => {
    fake.setRbac((req) => !(req.verb === 'delete' && req.resource === 'pods'));
    const before = fake.objects();
    const text = refused(await run('delete pod web-7d9c-abcde'), 'backend.error');
    expect(text).toContain('403');
    expect(text).toMatch(/forbidden/i);
    // The impersonated user is named (as an e-mail address it is masked by the detectors).
    expect(text).toMatch(/User "[^"]+" cannot delete resource "pods"/);
    expect(fake.objects()).toEqual(before);
    ok(await run('get pods'));
  });

  it('reads refused by RBAC too', async () => {
    fake.setRbac((req) => req.resource !== 'secrets');
    const text = refused(await run('get secrets'), 'backend.error');
    expect(text).toContain('403');
  });
});

// ---------------------------------------------------------------------------

describe('approval', () => {
  const pendingId = (r: CallResult): string => {
    const id = /Pending approval (ap_[a-z0-9]+)/.exec(r.text)?.[1];
    if (!id) throw new Error(`not a pending refusal: ${r.text}`);
    return id;
  };

  it('a gated delete: server-side dry-run preview, nothing changed, then approved by the CLI in a second process', async () => {
    requireBuiltCli();
    const before = fake.objects();
    fake.clearRequests();
    const first = await run('delete pod web-7d9c-abcde', { via: gated });
    refused(first, 'approval.pending');
    const id = pendingId(first);

    // The preview came from a dry run on the server, and nothing was deleted.
    const deletes = fake.requests.filter((q) => q.method === 'DELETE');
    expect(deletes).toHaveLength(1);
    expect(deletes[0]?.query['dryRun']).toBe('All');
    expect(deletes[0]?.impersonateUser).toBe(SUBJECT);
    expect(fake.objects()).toEqual(before);

    const store = openApprovalStore(gated.config.approval.store);
    try {
      const stored = store.get(id, new Date());
      expect(stored?.status).toBe('pending');
      expect(stored?.subject.preview).toMatchObject({ affectedRows: 1, sample: [{ result: expect.stringContaining('web-7d9c-abcde') }] });
      expect(stored?.subject.preview?.note).toContain('dryRun=All');
    } finally {
      store.close();
    }

    const vote = await runCliAsync(['approvals', 'approve', id, '--reason', 'stuck pod', '--config', gatedDir], {
      env: { SRE_TOKEN, DRAWBRIDGE_APPROVER_TOKEN: SRE_TOKEN },
    });
    expect(vote.stderr).toBe('');
    expect(vote.status).toBe(0);

    fake.clearRequests();
    const done = ok(await run('delete pod web-7d9c-abcde', { via: gated }));
    expect(done.text).toContain('deleted');
    // The approved call may preview again (a dry run) before it finds the approval; exactly one real delete.
    const real = fake.requests.filter((q) => q.method === 'DELETE' && q.query['dryRun'] === undefined);
    expect(real).toHaveLength(1);
    expect(real[0]?.impersonateUser).toBe(SUBJECT);
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeUndefined();
  });

  it('a gated exec approved via elicitation runs', async () => {
    const prompts: ElicitForm[] = [];
    const channel: ApprovalChannel = {
      clientName: 'vitest',
      elicit: async (form) => {
        prompts.push(form);
        expect(fake.execs).toHaveLength(0);
        return { action: 'accept', approve: true, grantMs: 0, reason: 'debugging' };
      },
    };
    const r = ok(await run('exec web-7d9c-abcde -- env', { via: gated, channel }));
    expect(prompts).toHaveLength(1);
    expect(prompts[0]?.message).toContain('exec');
    expect(prompts[0]?.message).toContain('web-7d9c-abcde');
    expect(fake.execs).toHaveLength(1);
    expect(r.structured.rows[0]?.[0]).toBe(0);
  });

  it('a gated exec declined via elicitation does not run', async () => {
    const channel: ApprovalChannel = { clientName: 'vitest', elicit: async () => ({ action: 'decline' }) };
    refused(await run('exec web-7d9c-abcde -- env', { via: gated, channel }), 'approval.declined');
    expect(fake.execs).toHaveLength(0);
  });
});
