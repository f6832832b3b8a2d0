// ssh_exec end to end through the pipeline against a real OpenSSH sshd on
// loopback (and an ssh2 fault server): allowed reads run, arguments arrive
// literally, host keys are pinned, secrets in output are masked, host groups
// fan out, limits hold. The evasion table is in evasion.test.ts.

import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { QUOTING_PROBE_ARGV, quoteArgv } from '../../../src/backends/ssh/parse.js';
import { startFaultServer, type FaultServer } from '../../support/ssh-fault-server.js';
import { sshConnectionYaml, sshToolYaml, startSshd, writeSshConfig, type Sshd } from '../../support/sshd.js';

let sshd: Sshd;
let fault: FaultServer;
let fish: FaultServer;
let gateway: Gateway;
let dir: string;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

describe('ssh_exec against OpenSSH', () => {
  beforeAll(async () => {
    sshd = await startSshd();
    fault = await startFaultServer();
    fish = await startFaultServer({ shell: 'fish' });
    const login = sshd;
    const documents = [
      sshConnectionYaml({
        name: 'web',
        description: 'loopback sshd',
        hosts: [{ name: 'web-1', server: sshd }],
        login,
        limits: '{ timeout: 3s, max_output: 64KiB }',
      }),
      sshConnectionYaml({
        name: 'group',
        description: 'two hosts',
        hosts: [
          { name: 'a', server: sshd },
          { name: 'b', server: fault },
        ],
        login,
        limits: '{ timeout: 3s, max_output: 64KiB, concurrency: 2 }',
      }),
      sshConnectionYaml({
        name: 'wrongkey',
        description: 'pinned to the wrong key',
        hosts: [{ name: 'w', server: { port: sshd.port, hostKeyFingerprint: fault.hostKeyFingerprint } }],
        login,
      }),
      sshConnectionYaml({
        name: 'faults',
        description: 'fault server',
        hosts: [{ name: 'f', server: fault }],
        login,
        limits: '{ timeout: 1s, max_output: 16KiB }',
      }),
      sshConnectionYaml({ name: 'fishy', description: 'a login shell that quotes like fish', hosts: [{ name: 'fish-1', server: fish }], login }),
      sshToolYaml(['web', 'group', 'wrongkey', 'faults', 'fishy']),
    ];
    dir = writeSshConfig('drawbridge-ssh-', {
      tools: documents,
      rules: `kind: policy
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
`,
    });
    gateway = await openGateway({ configDir: dir, env: {} });
  });

  afterAll(async () => {
    await gateway?.close();
    await fault?.stop();
    await fish?.stop();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const run = (connection: string, command: string) =>
    callTool(gateway, { tool: 'ssh_exec', args: { connection, command }, identity: dev, client: { name: 'vitest' } });

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

  it('probes the login shell once per connection and refuses a host that does not quote like POSIX sh', async () => {
    const r = await run('fishy', 'echo hi');
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('backend.unavailable');
      expect(r.text).toMatch(/does not read single quotes as POSIX sh does/);
      expect(r.text).toMatch(/chsh/);
    }
    // Only the probe reached it: the command itself was never sent.
    expect(fish.execs).toEqual([quoteArgv(QUOTING_PROBE_ARGV)]);
    const before = fault.execs.length;
    const ok = await run('faults', 'echo once');
    const again = await run('faults', 'echo twice');
    expect(ok.ok && again.ok).toBe(true);
    const probes = fault.execs.slice(before).filter((c) => c === quoteArgv(QUOTING_PROBE_ARGV));
    expect(probes.length).toBeLessThanOrEqual(1);
    expect(fault.execs.slice(before).filter((c) => c.startsWith('echo'))).toEqual(['echo once', 'echo twice']);
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
    if (!lost.ok) expect(lost.error.code).toBe('backend.interrupted');
    const again = await run('faults', 'exit:3');
    expect(again.ok).toBe(true);
    if (again.ok) expect(again.structured.rows[0]?.[1]).toBe(3);
  });
});
