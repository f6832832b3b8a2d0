// kubectl under real connection faults, through the whole pipeline, against
// the in-process fake API server's fault hooks: the socket destroyed in the
// middle of an answer (a read, and a write the server had applied), dropped
// before the server handled a write, after an earlier write of the same
// command, and in the middle of an exec. For each: the call gets a coded error
// that says whether anything may have been applied, the process survives
// (nothing uncaught, no unhandled rejection, no listener leak), the command
// goes no further than the fault, the next call works, and the journal
// verifies with one outcome per call.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool, type CallResult } from '../../../src/pipeline/callTool.js';
import { expectOk as ok, expectRefused as refused } from '../../support/results.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { journaledCalls, watchProcessFaults, type ProcessFaults } from '../../support/faults.js';
import { writeKubeConfigDir } from '../../support/kube-config.js';
import { startFakeKube, type FakeKube } from '../../support/fake-kube/server.js';

const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });
const PODS = '/api/v1/namespaces/shop/pods';

let fake: FakeKube;
let gateway: Gateway;
let dir: string;
let faults: ProcessFaults;
const callIds: string[] = [];

beforeAll(async () => {
  faults = watchProcessFaults();
  fake = await startFakeKube();
  dir = writeKubeConfigDir(fake, { rules: '  - name: everything\n    match: { tool: kubectl }\n    effect: allow' });
  gateway = await openGateway({ configDir: dir, env: {} });
});
beforeEach(() => fake.reset());
afterEach(() => {
  expect(faults.seen).toEqual([]);
});
afterAll(async () => {
  faults?.stop();
  await gateway?.close();
  await fake?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function run(command: string): Promise<CallResult> {
  const r = await callTool(gateway, { tool: 'kubectl', args: { connection: 'staging', command }, identity: dev, client: { name: 'vitest' } });
  callIds.push(r.callId);
  return r;
}
const writes = () => fake.requests.filter((q) => q.method !== 'GET').map((q) => `${q.method} ${q.path}`);
const outcomeOf = (callId: string) => journaledCalls(join(dir, 'journal.db')).find((c) => c.callId === callId)?.outcome;

describe('the API server closes the connection mid-response', () => {
  it('on a read: backend.unavailable, this read changed nothing, and the next read works', async () => {
    const before = fake.objects();
    fake.setFault({ method: 'GET', path: PODS, kind: 'cut-response' });
    const r = await run('get pods');
    const text = refused(r, 'backend.unavailable');
    expect(text).toContain(`The Kubernetes API server closed the connection while answering GET ${PODS} (status 200`);
    expect(text).toContain('this read changed nothing');
    expect(fake.faultsHit).toBe(1);
    expect(fake.objects()).toEqual(before);
    expect(outcomeOf(r.callId)).toMatchObject({ status: 'error', errorCode: 'backend.unavailable' });

    const again = ok(await run('get pods'));
    expect(again.structured.rows.map((row) => row[0])).toContain('web-7d9c-abcde');
  });

  it('on a write the server applied: backend.interrupted, "may or may not have been applied — check with get", and the command goes no further', async () => {
    const second = fake.object('pods', 'shop', 'web-7d9c-fghij');
    fake.setFault({ method: 'DELETE', path: `${PODS}/web-7d9c-abcde`, kind: 'cut-response' });
    const r = await run('delete pod web-7d9c-abcde web-7d9c-fghij');
    const text = refused(r, 'backend.interrupted');
    expect(text).toContain(`The Kubernetes API server closed the connection while answering DELETE ${PODS}/web-7d9c-abcde`);
    expect(text).toContain('the change may or may not have been applied — check with get.');
    expect(text).toMatch(/What to do: The connection to the backend broke while the request was in flight/);
    // The server had committed the first delete; the gateway did not go on to the second.
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-fghij')).toEqual(second);
    expect(writes()).toEqual([`DELETE ${PODS}/web-7d9c-abcde`]);
    expect(outcomeOf(r.callId)).toMatchObject({ status: 'error', errorCode: 'backend.interrupted' });

    // Checking with get, as told, works at once.
    const check = ok(await run('get pods'));
    expect(check.structured.rows.map((row) => row[0])).toEqual(expect.not.arrayContaining(['web-7d9c-abcde']));
  });

  it('dropped before the server handled a write: the same answer (the gateway cannot tell), and nothing changed', async () => {
    const before = fake.objects();
    const scale = '/apis/apps/v1/namespaces/shop/deployments/web/scale';
    fake.setFault({ method: 'PATCH', path: scale, kind: 'drop-request' });
    const text = refused(await run('scale deployment web --replicas=5'), 'backend.interrupted');
    expect(text).toContain(`The Kubernetes API server closed the connection before answering PATCH ${scale}`);
    expect(text).toContain('the change may or may not have been applied — check with get.');
    expect(fake.objects()).toEqual(before);

    ok(await run('scale deployment web --replicas=5'));
    expect(fake.object('apps/deployments', 'shop', 'web')?.['spec']).toMatchObject({ replicas: 5 });
  });

  it('after an earlier write of the same command: says what was already applied', async () => {
    fake.setFault({ method: 'DELETE', path: `${PODS}/web-7d9c-fghij`, kind: 'drop-request' });
    const text = refused(await run('delete pod web-7d9c-abcde web-7d9c-fghij'), 'backend.interrupted');
    expect(text).toContain(`closed the connection before answering DELETE ${PODS}/web-7d9c-fghij`);
    expect(text).toContain(`Before that, this command had already applied 1 change: DELETE ${PODS}/web-7d9c-abcde; the rest was not done.`);
    expect(text).toContain('What to do: Part of the command was applied. Check the current state with get before calling again.');
    expect(fake.object('pods', 'shop', 'web-7d9c-abcde')).toBeUndefined();
    expect(fake.object('pods', 'shop', 'web-7d9c-fghij')).toBeDefined();
    ok(await run('get pod web-7d9c-fghij'));
  });
});

describe('the connection closes mid-exec', () => {
  it('backend.interrupted: whether the command finished is unknown; nothing else happened, and the next exec works', async () => {
    const before = fake.objects();
    fake.setFault({ path: `${PODS}/web-7d9c-abcde/exec`, kind: 'cut-exec' });
    const r = await run('exec web-7d9c-abcde -- echo hello world');
    const text = refused(r, 'backend.interrupted');
    expect(text).toContain(
      'The connection to the Kubernetes API closed (code 1006) during exec in pod shop/web-7d9c-abcde, ' +
        "before the command's exit status arrived: whether the command finished is unknown — check the pod",
    );
    expect(fake.faultsHit).toBe(1);
    expect(fake.execs.map((e) => e.command)).toEqual([['echo', 'hello', 'world']]);
    expect(fake.objects()).toEqual(before);
    expect(outcomeOf(r.callId)).toMatchObject({ status: 'error', errorCode: 'backend.interrupted' });

    const again = ok(await run('exec web-7d9c-abcde -- echo again'));
    expect(again.structured.rows[0]?.[0]).toBe(0);
    expect(String(again.structured.rows[0]?.[1])).toBe('echo again\n');
  });
});

describe('the journal after the faults', () => {
  it('verifies, with exactly one outcome for every call', () => {
    const calls = journaledCalls(join(dir, 'journal.db'));
    expect(calls.map((c) => c.callId).sort()).toEqual([...callIds].sort());
    expect(calls.filter((c) => c.outcome['errorCode'] === 'backend.interrupted')).toHaveLength(4);
  });
});
