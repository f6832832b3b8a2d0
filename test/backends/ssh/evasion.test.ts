// The permanent ssh_exec evasion suite, through the whole pipeline against a
// real OpenSSH sshd that logs every exec it receives. The policy is a
// permissive one an operator might write (reads allowed, read-only pipelines
// allowed, `touch` allowed under one directory, `rm` denied, restarts
// approved). Each attempt tries to create a file in the host's scratch
// directory or to delete one; the verdict is read off the host: nothing new
// was exec'd for a refused attempt, and the directory is exactly as before.
// Attempts that are accepted must arrive as literal words. And whatever a
// permitted read returns is masked: files full of provider tokens and named
// credentials (every family of the secret catalog) come back with none of
// their values, in any encoding, under the README's recommended masking rule.

import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../../src/identity/identity.js';
import { callTool } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { QUOTING_PROBE_ARGV, quoteArgv } from '../../../src/backends/ssh/parse.js';
import { sshConnectionYaml, sshToolYaml, startSshd, type Sshd } from '../../support/sshd.js';
import { expectedMasks, fakeSecrets, leakedSecrets } from '../../support/fake-secrets.js';
import type { CallResult } from '../../../src/pipeline/callTool.js';

let sshd: Sshd;
let gateway: Gateway;
let dir: string;
let ROOT: string;
const dev = makeIdentity({ kind: 'local', subject: 'dev@example.com', groups: ['developers'], issuer: 'local' });

const GRAMMAR = /^ssh\.refused$/;
const POLICY = /^policy\.(denied|no_match)$/;
const PENDING = /^approval\.pending$/;

// [attempt, expected refusal code]; ROOT is the host's scratch directory.
const refused: Array<[string, RegExp]> = [
  // Substitutions and expansions.
  ['echo $(touch ROOT/pwned)', GRAMMAR],
  ['echo `touch ROOT/pwned`', GRAMMAR],
  ['echo "$(touch ROOT/pwned)"', GRAMMAR],
  ['echo "`touch ROOT/pwned`"', GRAMMAR],
  ['echo ${IFS}touch', GRAMMAR],
  ["echo $'\\x41'", GRAMMAR],
  ['echo $((1+1))', GRAMMAR],
  ['echo "$"', GRAMMAR],
  // Lists, background, newlines.
  ['ls; touch ROOT/pwned', GRAMMAR],
  ['ls && touch ROOT/pwned', GRAMMAR],
  ['false || touch ROOT/pwned', GRAMMAR],
  ['ls & touch ROOT/pwned', GRAMMAR],
  ['touch ROOT/scratch/x &', GRAMMAR],
  ['ls\ntouch ROOT/pwned', GRAMMAR],
  ['ls\r\ntouch ROOT/pwned', GRAMMAR],
  ['ls \\\ntouch ROOT/pwned', GRAMMAR],
  ['ls\u0000touch ROOT/pwned', GRAMMAR],
  // From the shared tokenizer's difference table (test/backends/shared/words.test.ts): where kubectl and ssh read a line differently, both refuse.
  ['echo "\\$(touch ROOT/pwned)"', GRAMMAR],
  ['echo "\\`touch ROOT/pwned\\`"', GRAMMAR],
  ['echo "a\ntouch ROOT/pwned"', GRAMMAR],
  ["echo 'a\rtouch ROOT/pwned'", GRAMMAR],
  ['echo x\u0085touch ROOT/pwned', GRAMMAR],
  ['touch ROOT/scratch/a\u00a0ROOT/pwned', GRAMMAR],
  ['touch\u200b ROOT/pwned', GRAMMAR],
  ['touch ROOT/scratch/x\u2028touch ROOT/pwned', GRAMMAR],
  ['ls # ; touch ROOT/pwned', GRAMMAR],
  ['echo ok |& touch ROOT/pwned', GRAMMAR],
  // Redirections, heredocs, process substitution.
  ['echo x > ROOT/pwned', GRAMMAR],
  ['echo x >> ROOT/pwned', GRAMMAR],
  ['echo x >| ROOT/pwned', GRAMMAR],
  ['ls 2> ROOT/pwned', GRAMMAR],
  ['ls &> ROOT/pwned', GRAMMAR],
  ['cat <<EOF\nx\nEOF', GRAMMAR],
  ['cat <<< x', GRAMMAR],
  ['cat <(touch ROOT/pwned)', GRAMMAR],
  ['ls >(touch ROOT/pwned)', GRAMMAR],
  // Subshells, groups, brace expansion, assignments.
  ['(touch ROOT/pwned)', GRAMMAR],
  ['{ touch ROOT/pwned; }', GRAMMAR],
  ['touch ROOT/scratch/{a,../../pwned}', GRAMMAR],
  ['FOO=1 touch ROOT/scratch/x', GRAMMAR],
  ['PATH=ROOT/bin cat /etc/hostname', GRAMMAR],
  // A disguised program name.
  ["'rm' -f ROOT/victim", GRAMMAR],
  ['"rm" -f ROOT/victim', GRAMMAR],
  ['\\rm -f ROOT/victim', GRAMMAR],
  ["r''m -f ROOT/victim", GRAMMAR],
  ['/bin/r? -f ROOT/victim', GRAMMAR],
  ['/bin/r[m] -f ROOT/victim', GRAMMAR],
  ['~/../../bin/rm -f ROOT/victim', GRAMMAR],
  ['../../bin/rm -f ROOT/victim', GRAMMAR],
  // Plain but forbidden, or not allowed.
  ['rm -f ROOT/victim', POLICY],
  ['/bin/rm -f ROOT/victim', POLICY],
  ['! rm -f ROOT/victim', POLICY],
  ['tee ROOT/pwned', POLICY],
  ['cp /etc/hostname ROOT/pwned', POLICY],
  ['ln -s /etc/hostname ROOT/pwned', POLICY],
  // An uploaded program named like a read-only one is not the system's.
  ['ROOT/bin/cat /etc/hostname', POLICY],
  ['ROOT/bin/uptime', POLICY],
  // Read-only programs in forms that write.
  ['sort -o ROOT/pwned /etc/hostname', POLICY],
  ['sort --out=ROOT/pwned /etc/hostname', POLICY],
  ['uniq /etc/hostname ROOT/pwned', POLICY],
  ['file -C -m ROOT/pwned', POLICY],
  ['journalctl --cursor-file=ROOT/pwned -n 1', POLICY],
  // A command rule scoped to a directory does not stretch.
  ['touch ROOT/scratch/../pwned', POLICY],
  ['touch ROOT/scratch/a ROOT/pwned', POLICY],
  // Programs that run programs.
  ["sh -c 'touch ROOT/pwned'", POLICY],
  ["bash -c 'touch ROOT/pwned'", POLICY],
  ["/bin/sh -c 'touch ROOT/pwned'", POLICY],
  ['env touch ROOT/pwned', POLICY],
  ['/usr/bin/env rm -f ROOT/victim', POLICY],
  ['xargs -a ROOT/victim touch', POLICY],
  ['sudo rm -f ROOT/victim', POLICY],
  ['su -c "touch ROOT/pwned"', POLICY],
  ['nohup touch ROOT/pwned', POLICY],
  ['timeout 5 touch ROOT/pwned', POLICY],
  ['nice touch ROOT/pwned', POLICY],
  ['watch touch ROOT/pwned', POLICY],
  ['setsid touch ROOT/pwned', POLICY],
  ['flock ROOT/pwned true', POLICY],
  ['exec touch ROOT/pwned', POLICY],
  ['command touch ROOT/pwned', POLICY],
  ["eval 'touch ROOT/pwned'", POLICY],
  ['busybox touch ROOT/pwned', POLICY],
  ['ssh localhost touch ROOT/pwned', POLICY],
  ['find ROOT -maxdepth 0 -exec touch ROOT/pwned \\;', POLICY],
  ['find ROOT -name victim -delete', POLICY],
  ['find ROOT -fprint ROOT/pwned', POLICY],
  ['awk \'BEGIN { system("touch ROOT/pwned") }\'', POLICY],
  ['awk \'BEGIN { print 1 > "ROOT/pwned" }\'', POLICY],
  ['perl -e \'open F, ">ROOT/pwned"\'', POLICY],
  ['python3 -c \'open("ROOT/pwned", "w")\'', POLICY],
  ["sed -n '1e touch ROOT/pwned' /etc/hostname", POLICY],
  ["sed -n 'w ROOT/pwned' /etc/hostname", POLICY],
  ["tar -cf /dev/null --checkpoint=1 --checkpoint-action=exec='touch ROOT/pwned' /etc/hostname", POLICY],
  ["git -c core.pager='touch ROOT/pwned' log", POLICY],
  ['sort --compress-program=ROOT/bin/cat /etc/hostname', POLICY],
  ["less '+!touch ROOT/pwned' /etc/hostname", POLICY],
  ["man -P 'touch ROOT/pwned' ls", POLICY],
  // Pipelines: allowed only of read-only programs.
  ['echo touch ROOT/pwned | sh', POLICY],
  ['cat /etc/hostname | tee ROOT/pwned', POLICY],
  ['cat /etc/hostname | sort -o ROOT/pwned', POLICY],
  ['ls ROOT | xargs touch', POLICY],
  ['ls | ROOT/bin/cat', POLICY],
  // Approval gates: nothing runs while pending.
  ['systemctl restart nginx', PENDING],
];

// [attempt, what the program prints]: accepted, and the host sees literal words.
const literal: Array<[string, string]> = [
  ["echo '$(touch ROOT/pwned)'", '$(touch ROOT/pwned)'],
  ["echo '`touch ROOT/pwned`'", '`touch ROOT/pwned`'],
  ["echo 'a; touch ROOT/pwned'", 'a; touch ROOT/pwned'],
  ['echo a\\;touch\\ ROOT/pwned', 'a;touch ROOT/pwned'],
  ['echo "a && touch ROOT/pwned"', 'a && touch ROOT/pwned'],
  ["echo 'x > ROOT/pwned'", 'x > ROOT/pwned'],
  ["echo 'x'\"'\"'; touch ROOT/pwned; echo '", "x'; touch ROOT/pwned; echo "],
  ["echo '\\$(touch ROOT/pwned)'", '\\$(touch ROOT/pwned)'],
  ['echo x；touch ROOT/pwned', 'x；touch ROOT/pwned'],
  ['echo ~', '~'],
  ['echo ROOT/*', 'ROOT/*'],
];

describe('ssh_exec evasion suite (OpenSSH, exec-logged)', () => {
  beforeAll(async () => {
    sshd = await startSshd({ logExecs: true });
    ROOT = sshd.root;
    dir = mkdtempSync(join(tmpdir(), 'drawbridge-ssh-evasion-'));
    mkdirSync(join(dir, 'tools'));
    mkdirSync(join(dir, 'policies'));
    const connection = sshConnectionYaml({
      name: 'web',
      description: 'loopback sshd',
      hosts: [{ name: 'web-1', server: sshd }],
      login: sshd,
      limits: '{ timeout: 5s, max_output: 64KiB }',
    });
    writeFileSync(join(dir, 'tools', 'hosts.yaml'), `${connection}---\n${sshToolYaml(['web'])}`);
    writeFileSync(
      join(dir, 'policies', 'gateway.yaml'),
      `kind: gateway
identity: { mode: local, subject: dev@example.com, groups: [developers] }
journal: { path: journal.db }
approval: { wait: 0ms, store: approvals.db }
`,
    );
    writeFileSync(
      join(dir, 'policies', 'rules.yaml'),
      `kind: policy
rules:
  - name: no-rm
    match: { tool: ssh_exec, programs: [rm, shred, dd] }
    effect: deny
    message: Deleting files goes through the runbook.
  - name: restarts-need-approval
    match: { tool: ssh_exec, command: ["systemctl restart *"] }
    effect: approve
    approvers: { groups: [sre] }
  - name: scratch-files
    match: { tool: ssh_exec, command: ["touch ${ROOT}/scratch/*"] }
    effect: allow
  - name: read-pipelines
    match: { tool: ssh_exec, operation: pipeline, access: read }
    effect: allow
  - name: reads
    match: { tool: ssh_exec, access: read }
    effect: allow
masking:
  - name: ssh-output
    match: { tool: ssh_exec }
    detectors: all
    patterns: ['(?i)(password|passwd|secret|token|api[_-]?key)\\s*[=:]\\s*(\\S+)']
`,
    );
    gateway = await openGateway({ configDir: dir, env: {} });
    // Open the pooled connection now: its quoting probe is the first exec the host sees.
    const warm = await callTool(gateway, { tool: 'ssh_exec', args: { connection: 'web', command: 'true' }, identity: dev, client: { name: 'vitest' } });
    expect(warm.ok).toBe(true);
    expect(sshd.execs()).toEqual([quoteArgv(QUOTING_PROBE_ARGV), 'true']);
  });

  afterAll(async () => {
    await gateway?.close();
    await sshd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // The scratch directory before every attempt: a victim file, an empty scratch
  // dir, and uploaded programs named like read-only ones that would leave a mark.
  const BASELINE = ['bin', 'scratch', 'victim'];
  beforeEach(() => {
    for (const name of readdirSync(ROOT)) rmSync(join(ROOT, name), { recursive: true, force: true });
    writeFileSync(join(ROOT, 'victim'), 'keep me\n');
    mkdirSync(join(ROOT, 'scratch'));
    mkdirSync(join(ROOT, 'bin'));
    for (const name of ['cat', 'uptime']) {
      writeFileSync(join(ROOT, 'bin', name), `#!/bin/sh\ntouch '${join(ROOT, 'pwned')}'\n`);
      chmodSync(join(ROOT, 'bin', name), 0o755);
    }
  });
  const listing = () => readdirSync(ROOT).sort();
  const run = (command: string) => callTool(gateway, { tool: 'ssh_exec', args: { connection: 'web', command }, identity: dev, client: { name: 'vitest' } });

  it('control: an allowed write reaches the host, exec-logged, and shows up in the listing', async () => {
    const before = sshd.execs().length;
    const r = await run(`touch ${ROOT}/scratch/control`);
    expect(r.ok).toBe(true);
    expect(sshd.execs().slice(before)).toEqual([`touch ${ROOT}/scratch/control`]);
    expect(readdirSync(join(ROOT, 'scratch'))).toEqual(['control']);
    // And the uploaded decoy would leave its mark if anything ran it.
    const { spawnSync } = await import('node:child_process');
    spawnSync(join(ROOT, 'bin', 'cat'));
    expect(listing()).toEqual([...BASELINE, 'pwned'].sort());
  });

  it.each(refused)('refuses %j before it reaches the host', async (template, code) => {
    const before = sshd.execs().length;
    const r = await run(template.replaceAll('ROOT', ROOT));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toMatch(code);
    expect(sshd.execs().slice(before)).toEqual([]);
    expect(listing()).toEqual(BASELINE);
    expect(readdirSync(join(ROOT, 'scratch'))).toEqual([]);
  });

  it.each(literal)('runs %j with literal words only', async (template, printed) => {
    const before = sshd.execs().length;
    const r = await run(template.replaceAll('ROOT', ROOT));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(sshd.execs().slice(before)).toHaveLength(1);
    expect(r.structured.rows[0]?.[1]).toBe(0);
    expect(String(r.structured.rows[0]?.[3])).toBe(`${printed.replaceAll('ROOT', ROOT)}\n`);
    expect(listing()).toEqual(BASELINE);
  });

  it('a glob argument is not expanded on the host', async () => {
    const r = await run(`ls ${ROOT}/vic*`);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.structured.rows[0]?.[1]).not.toBe(0);
    expect(String(r.structured.rows[0]?.[3])).toBe('');
    expect(String(r.structured.rows[0]?.[4])).toContain('vic*');
  });

  it('an allowed read-only pipeline runs as one pipeline of literal words', async () => {
    const before = sshd.execs().length;
    const r = await run(`cat ${ROOT}/victim | grep -c keep`);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(String(r.structured.rows[0]?.[3])).toBe('1\n');
    expect(sshd.execs().slice(before)).toEqual([`cat ${ROOT}/victim | grep -c keep`]);
  });

  describe('secrets in files a permitted read returns', () => {
    const SET = fakeSecrets(11);
    const conf = () => {
      mkdirSync(join(ROOT, 'conf'));
      for (const [name, text] of Object.entries(SET.files)) writeFileSync(join(ROOT, 'conf', name), text);
      return join(ROOT, 'conf');
    };
    const everything = (r: CallResult): string =>
      r.ok ? `${r.text}\n${JSON.stringify(r.structured)}` : `${r.text}\n${r.error.message}\n${JSON.stringify(r.error.details)}`;
    const noLeak = (r: CallResult) => expect(leakedSecrets(everything(r), SET.secrets), everything(r).slice(0, 3000)).toEqual([]);

    it('cat app.env: every token family masked, each counted by its detector', async () => {
      const r = await run(`cat ${conf()}/app.env`);
      expect(r.ok, everything(r)).toBe(true);
      noLeak(r);
      if (!r.ok) return;
      const out = String(r.structured.rows[0]?.[3]);
      // The measured leak: the README pattern wants `secret` right before `=`.
      expect(out).toContain('STRIPE_SECRET_KEY=[masked:stripe_key]');
      expect(out).toContain('DB_PASSWORD=[masked:pattern:ssh-output]');
      expect(out).toContain('S3_ACCESS_KEY=[masked:secret_assignment]');
      // Shape detectors count exactly what they masked (the pattern takes some named credentials first).
      const counted = new Map(r.structured.masked.map((m) => [m.target, m.count]));
      for (const [detector, n] of expectedMasks(SET, ['app.env'])) if (detector !== 'secret_assignment') expect(counted.get(detector), detector).toBe(n);
      expect(r.text).toMatch(/Masked: .*stripe_key \(detector, 2\)/);
    });

    it.each([
      ['cat DIR/config.yaml', 'YAML: plain, quoted, block scalar, env name/value pair'],
      ['cat DIR/sa.json', 'a Google service-account key'],
      ['cat DIR/app.env DIR/config.yaml DIR/sa.json', 'all three at once'],
      ['head -n 20 DIR/app.env', 'the first lines'],
      ['grep = DIR/app.env', 'grep of the assignments'],
      ['cat DIR/app.env | head -n 60', 'a read-only pipeline'],
      ['tail -n 12 DIR/app.env', 'the tail of the file: a private key without its BEGIN line'],
      ['cat DIR/missing DIR/app.env', 'stderr next to stdout'],
    ])('%s (%s)', async (template) => {
      const r = await run(template.replaceAll('DIR', conf()));
      expect(r.ok, everything(r)).toBe(true);
      noLeak(r);
    });

    it('a token the agent puts in the command comes back masked in the error output and the summary', async () => {
      const token = SET.secrets.find((x) => x.detector === 'github_token')?.values[0] ?? '';
      const r = await run(`ls ${conf()}/${token}`);
      expect(r.ok, everything(r)).toBe(true);
      noLeak(r);
      if (r.ok) expect(String(r.structured.rows[0]?.[4])).toContain('[masked:github_token]');
    });
  });
});
