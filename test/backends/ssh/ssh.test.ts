// ssh_exec end to end through the pipeline against a real OpenSSH sshd on
// loopback (and an ssh2 fault server): allowed reads run, refused shell
// constructs never reach the host (asserted on its file system), host keys are
// pinned, secrets in output are masked, host groups fan out.

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { startFaultServer, type FaultServer } from '../../support/ssh-fault-server.js';
import { startSshd, type Sshd } from '../../support/sshd.js';

let sshd: Sshd;
let fault: FaultServer;
let gateway: Gateway;
let dir: string;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

describe('ssh_exec against OpenSSH', () => {
  beforeAll(async () => {
    sshd = await startSshd();
    fault = await startFaultServer();
    dir = mkdtempSync(join(tmpdir(), 'drawbridge-ssh-'));
    mkdirSync(join(dir, 'tools'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'tools', 'hosts.yaml'), `kind: connection
name: web
type: ssh
description: loopback sshd
hosts:
  - { name: web-1, host: 127.0.0.1, port: ${sshd.port}, host_key: "${sshd.hostKeyFingerprint}" }
user: ${sshd.user}
private_key: { file: ${sshd.privateKeyPath} }
limits: { timeout: 3s, max_output: 64KiB }
---
kind: connection
name: group
type: ssh
description: two hosts
hosts:
  - { name: a, host: 127.0.0.1, port: ${sshd.port}, host_key: "${sshd.hostKeyFingerprint}" }
  - { name: b, host: 127.0.0.1, port: ${fault.port}, host_key: "${fault.hostKeyFingerprint}" }
user: ${sshd.user}
private_key: { file: ${sshd.privateKeyPath} }
limits: { timeout: 3s, max_output: 64KiB, concurrency: 2 }
---
kind: connection
name: wrongkey
type: ssh
description: pinned to the wrong key
hosts:
  - { name: w, host: 127.0.0.1, port: ${sshd.port}, host_key: "${fault.hostKeyFingerprint}" }
user: ${sshd.user}
private_key: { file: ${sshd.privateKeyPath} }
---
kind: connection
name: faults
type: ssh
description: fault server
hosts:
  - { name: f, host: 127.0.0.1, port: ${fault.port}, host_key: "${fault.hostKeyFingerprint}" }
user: ${sshd.user}
private_key: { file: ${sshd.privateKeyPath} }
limits: { timeout: 1s, max_output: 16KiB }
---
kind: tool
name: ssh_exec
type: ssh_exec
connections: [web, group, wrongkey, faults]
`);
    writeFileSync(join(dir, 'policies', 'gateway.yaml'), `kind: gateway
identity: { mode: local, subject: dev@example.com, groups: [developers] }
journal: { path: journal.db }
approval: { wait: 0ms, store: approvals.db }
`);
    writeFileSync(join(dir, 'policies', 'rules.yaml'), `kind: policy
rules:
  - name: no-rm
    match: { tool: ssh_exec, programs: [rm] }
    effect: deny
    message: Deleting files goes through the runbook.
  - name: restarts-need-approval
    match: { tool: ssh_exec, command: ["systemctl restart *"] }
    effect: approve
    approvers: { groups: [sre] }
  - name: reads
    match: { tool: ssh_exec, access: read }
    effect: allow
  - name: echo-and-touch-for-tests
    match: { tool: ssh_exec, programs: [echo, touch, "slow:*", endless, disconnect, "exit:*"] }
    effect: allow
masking:
  - name: output
    match: { tool: ssh_exec }
    detectors: all
    patterns: ['(?i)(password|secret|token)\\s*[=:]\\s*(\\S+)']
`);
    gateway = await openGateway({ configDir: dir, env: {} });
  });

  afterAll(async () => {
    await gateway?.close();
    await fault?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (connection: string, command: string) => callTool(gateway, { tool: 'ssh_exec', args: { connection, command }, identity: dev, client: { name: 'vitest' } });

  it('runs an allowed read and reports the exit code', async () => {
    const r = await run('web', 'id -un');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.structured.rows[0]?.[0]).toBe('web-1');
    expect(r.structured.rows[0]?.[1]).toBe(0);
    expect(String(r.structured.rows[0]?.[3]).trim()).toBe(sshd.user);
  });

  it('passes arguments literally: a quoted $(…) is just text on the host', async () => {
    const marker = join(sshd.root, 'literal-$(touch pwned)');
    const r = await run('web', `touch '${marker}'`);
    expect(r.ok).toBe(true);
    expect(existsSync(marker)).toBe(true);
    expect(existsSync(join(sshd.root, 'pwned'))).toBe(false);
  });

  it.each([
    'echo $(touch ROOT/pwned1)',
    'echo `touch ROOT/pwned2`',
    'echo ok; touch ROOT/pwned3',
    'echo ok && touch ROOT/pwned4',
    'echo ok | touch ROOT/pwned5',
    'echo ok > ROOT/pwned6',
    'touch ROOT/pwned7 &',
    'sh -c "touch ROOT/pwned8"',
    'env touch ROOT/pwned9',
    'xargs touch ROOT/pwned10',
    'find ROOT -exec touch ROOT/pwned11 ;',
    'FOO=1 touch ROOT/pwned12',
    'echo ok\ntouch ROOT/pwned13',
    'rm -rf ROOT/keep',
  ])('never lets %j reach the host', async (template) => {
    mkdirSync(join(sshd.root, 'keep'), { recursive: true });
    const r = await run('web', template.replaceAll('ROOT', sshd.root));
    expect(r.ok).toBe(false);
    for (let i = 1; i <= 13; i++) expect(existsSync(join(sshd.root, `pwned${i}`))).toBe(false);
    expect(existsSync(join(sshd.root, 'keep'))).toBe(true);
  });

  it('gates restarts behind approval', async () => {
    const r = await run('web', 'systemctl restart nginx');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('approval.pending');
  });

  it('refuses a host whose key does not match the pinned one', async () => {
    const r = await run('wrongkey', 'uptime');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.text).toMatch(/host key .* is not the one pinned/);
  });

  it('masks secrets in output', async () => {
    const r = await run('web', 'echo postgres://app:s3cr3t-pass@db:5432/x alice@example.com');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const text = r.text + JSON.stringify(r.structured);
    expect(text).not.toContain('s3cr3t-pass');
    expect(text).not.toContain('alice@example.com');
  });

  it('masks values after operator patterns, keeping the key', async () => {
    const r = await run('web', 'echo PASSWORD=hunter2 token: abc123 other=fine');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const out = String(r.structured.rows[0]?.[3]);
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('abc123');
    expect(out).toContain('PASSWORD=');
    expect(out).toContain('other=fine');
    expect(r.structured.masked.some((m) => m.target === 'pattern:output')).toBe(true);
  });

  it('fans out over a host group with per-host results', async () => {
    const r = await run('group', 'echo hi');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.structured.rows.map((row) => row[0])).toEqual(['a', 'b']);
    expect(r.structured.rows.every((row) => row[1] === 0)).toBe(true);
  });

  it('stops a slow command at the time limit and caps endless output', async () => {
    const slow = await run('faults', 'slow:5');
    expect(slow.ok).toBe(true);
    if (slow.ok) expect(String(slow.structured.rows[0]?.[5])).toMatch(/stopped after/);
    const endless = await run('faults', 'endless');
    expect(endless.ok).toBe(true);
    if (endless.ok) expect(endless.structured.truncated).toEqual({ reason: 'bytes', limit: 16 * 1024 });
  });

  it('reports a connection lost mid-command, then reconnects', async () => {
    const lost = await run('faults', 'disconnect');
    expect(lost.ok).toBe(false);
    if (!lost.ok) expect(lost.error.code).toBe('backend.unavailable');
    const again = await run('faults', 'exit:3');
    expect(again.ok).toBe(true);
    if (again.ok) expect(again.structured.rows[0]?.[1]).toBe(3);
  });
});
