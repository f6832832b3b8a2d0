// kubectl end to end through the pipeline against the in-process fake API server.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { writeKubeConfigDir } from '../../support/kube-config.js';
import { SEED_SECRET_VALUES, startFakeKube, type FakeKube } from '../../support/fake-kube/server.js';

let fake: FakeKube;
let gateway: Gateway;
let dir: string;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

beforeAll(async () => {
  fake = await startFakeKube();
  dir = writeKubeConfigDir(fake, {
    rules: `  - name: k8s-no-namespace-delete
    match: { tool: kubectl, operation: delete, resources: core/namespaces }
    effect: deny
  - name: k8s-writes
    match: { tool: kubectl, access: [write, admin] }
    effect: approve
    approvers: { groups: [sre] }
  - name: k8s-reads
    match: { tool: kubectl, access: read }
    effect: allow`,
  });
  gateway = await openGateway({ configDir: dir, env: {} });
});
afterAll(async () => {
  await gateway?.close();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

const run = (command: string, manifest?: string) =>
  callTool(gateway, {
    tool: 'kubectl',
    args: { connection: 'staging', command, ...(manifest ? { manifest } : {}) },
    identity: dev,
    client: { name: 'vitest' },
  });

describe('kubectl smoke', () => {
  it('gets pods as a table, impersonating the caller', async () => {
    const r = await run('get pods -n shop');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.structured.columns.map((c) => c.name)).toContain('NAME');
    expect(r.text).toContain('web-7d9c-abcde');
    expect(fake.requests.some((q) => q.impersonateUser === 'dev@example.com')).toBe(true);
  });

  it.each([
    'get secret web-secrets -o yaml',
    'get secret web-secrets -o json',
    'get secrets -o yaml',
    'describe secret web-secrets',
    'get deploy web -o yaml',
    'get cm web-config -o json',
    'get secret web-secrets -o jsonpath={.data.password}',
    'get secrets',
  ])('never shows a Secret value: %s', async (command) => {
    const r = await run(command);
    const text = r.ok ? r.text + JSON.stringify(r.structured) : r.text;
    for (const v of SEED_SECRET_VALUES) expect(text).not.toContain(v);
  });

  it('refuses shell syntax and identity flags', async () => {
    for (const command of ['get pods | sh', 'get pods --as=system:admin', 'get pods --kubeconfig=/tmp/x', 'port-forward web 80']) {
      const r = await run(command);
      expect(r.ok).toBe(false);
    }
  });

  it('gates a delete behind approval and denies deleting a namespace', async () => {
    const before = fake.objects();
    const del = await run('delete pod web-7d9c-abcde -n shop');
    expect(del.ok).toBe(false);
    if (!del.ok) expect(del.error.code).toBe('approval.pending');
    const ns = await run('delete namespace shop');
    expect(ns.ok).toBe(false);
    if (!ns.ok) expect(ns.error.code).toBe('policy.denied');
    expect(fake.objects()).toEqual(before);
  });

  it('reads logs', async () => {
    const r = await run('logs web-7d9c-abcde -n shop --tail 5');
    expect(r.ok).toBe(true);
  });
});
