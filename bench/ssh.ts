// Per-call latency of one read-only command (`uname -n`) against a throwaway OpenSSH sshd on
// 127.0.0.1 (test/support/sshd.ts), through four targets, interleaved round-robin like the
// kubectl section:
//   - ssh2:          one ssh2 Client kept connected, `exec` per call (the floor);
//   - ssh2-per-call: a new ssh2 connection per call (connect, exec, end);
//   - drawbridge:    MCP SDK client → `drawbridge serve` over stdio, tool `ssh_exec`
//                    `{ connection, command }` (its pool keeps one connection per host);
//   - ssh-mcp:       MCP SDK client → ssh-mcp over stdio (quick-start flags), tool
//                    `read-command` `{ command }` (its registry keeps one connection per profile);
// plus, for the report, ssh2-env: the reused ssh2 client sending the `AI_AGENT` environment
// request ssh-mcp sends before each exec.

import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { fingerprintOfKeyBlob, sshConnectionYaml, sshToolYaml, SSHD_PATH, startSshd, type Sshd } from '../test/support/sshd.js';
import { answerText, childEnv, DRAWBRIDGE_CLI, REPO_ROOT, stdioClient, type ToolAnswer } from './latency.js';
import { percentile, roundRobin, tempDir } from './support.js';

export const SSH_MCP = resolve(REPO_ROOT, 'node_modules', 'ssh-mcp', 'build', 'index.js');
export const SSH_COMMAND = 'uname -n';

export interface SshTarget {
  readonly name: string;
  call(): Promise<unknown>;
  /** Untimed: the command's stdout from the answer (throws if the answer is an error). */
  stdout(answer: unknown): string;
  close(): Promise<void>;
  readonly pid: number | null;
}

export interface SshSample {
  readonly target: string;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
}

export interface SshBench {
  readonly sshd: Sshd;
  /** Drawbridge config dir with connection `host`. */
  readonly configDir: string;
  /** XDG dirs for ssh-mcp, so it reads no user config and writes its audit log here. */
  readonly sshMcpHome: string;
  /** What `uname -n` prints on the host (this machine). */
  readonly expected: string;
}

export async function startSshBench(): Promise<SshBench> {
  const sshd = await startSshd();
  const dir = tempDir('ssh');
  const configDir = join(dir, 'config');
  mkdirSync(join(configDir, 'tools'), { recursive: true });
  mkdirSync(join(configDir, 'policies'));
  const connection = sshConnectionYaml({
    name: 'host',
    description: 'Benchmark host (throwaway sshd on loopback)',
    hosts: [{ name: 'bench-1', server: sshd }],
    login: sshd,
  });
  writeFileSync(join(configDir, 'tools', 'host.yaml'), `${connection}---\n${sshToolYaml(['host'])}`);
  writeFileSync(
    join(configDir, 'policies', 'gateway.yaml'),
    `kind: gateway
identity: { mode: local, subject: bench@example.com, groups: [developers] }
journal: { path: journal.db, sync: full }
`,
  );
  writeFileSync(
    join(configDir, 'policies', 'rules.yaml'),
    `kind: policy
rules:
  - name: ssh-reads
    match: { tool: ssh_exec, access: read }
    effect: allow
masking:
  - name: detectors
    match: { tool: ssh_exec }
    detectors: all
`,
  );
  const sshMcpHome = join(dir, 'ssh-mcp');
  mkdirSync(sshMcpHome);
  return { sshd, configDir, sshMcpHome, expected: `${hostname()}\n` };
}

// ---------------------------------------------------------------------------
// Targets

interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

function connectOptions(sshd: Sshd): ssh2.ConnectConfig {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.user,
    privateKey: sshd.privateKey,
    readyTimeout: 10_000,
    // Pinned, as Drawbridge does: the check is one hash per connection.
    hostVerifier: (key: Buffer) => fingerprintOfKeyBlob(key) === sshd.hostKeyFingerprint,
  };
}

function connect(sshd: Sshd): Promise<ssh2.Client> {
  const client = new ssh2.Client();
  return new Promise((resolve, reject) => {
    client.once('ready', () => resolve(client));
    // Kept for the client's life: a later error is a no-op here, and never an unhandled 'error' event.
    client.on('error', reject);
    client.connect(connectOptions(sshd));
  });
}

function exec(client: ssh2.Client, command: string, env?: Record<string, string>): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, env ? { env } : {}, (err, stream) => {
      if (err) {
        reject(err);
        return;
      }
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      stream.on('data', (c: Buffer) => out.push(c));
      stream.stderr.on('data', (c: Buffer) => errs.push(c));
      stream.on('close', (code: number | null) =>
        resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8'), code: typeof code === 'number' ? code : null }),
      );
    });
  });
}

function execStdout(name: string, answer: unknown): string {
  const r = answer as ExecResult;
  if (r.code !== 0) throw new Error(`${name}: ${SSH_COMMAND} exited with ${String(r.code)}: ${r.stderr}`);
  return r.stdout;
}

/** ssh-mcp's announcement on every channel (build/ssh/connection.js, AGENT_ENV). */
export const SSH_MCP_AGENT_ENV = { AI_AGENT: 'ssh-mcp' };

export async function ssh2Target(sshd: Sshd, options: { name: string; env?: Record<string, string> } = { name: 'ssh2' }): Promise<SshTarget> {
  const client = await connect(sshd);
  return {
    name: options.name,
    pid: null,
    call: () => exec(client, SSH_COMMAND, options.env),
    stdout: (answer) => execStdout(options.name, answer),
    close: async () => {
      client.end();
    },
  };
}

export function ssh2PerCallTarget(sshd: Sshd): SshTarget {
  return {
    name: 'ssh2-per-call',
    pid: null,
    // Timed until the socket has closed, so connections never pile up on the sshd.
    async call() {
      const client = await connect(sshd);
      try {
        return await exec(client, SSH_COMMAND);
      } finally {
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        client.end();
        await closed;
      }
    },
    stdout: (answer) => execStdout('ssh2-per-call', answer),
    close: async () => undefined,
  };
}

export async function drawbridgeSshTarget(configDir: string): Promise<SshTarget> {
  const { client, transport, stderr } = await stdioClient('drawbridge-ssh', process.execPath, [DRAWBRIDGE_CLI, 'serve', '--config', configDir], childEnv({}));
  return {
    name: 'drawbridge',
    pid: transport.pid,
    call: () => client.callTool({ name: 'ssh_exec', arguments: { connection: 'host', command: SSH_COMMAND } }, undefined, { timeout: 60_000 }),
    stdout(answer) {
      const a = answer as ToolAnswer & { structuredContent?: { columns?: Array<{ name: string }>; rows?: unknown[][] } };
      if (a.isError) throw new Error(`drawbridge refused ${SSH_COMMAND}: ${answerText(a)}\n${stderr()}`);
      const s = a.structuredContent;
      const col = (name: string) => (s?.columns ?? []).findIndex((c) => c.name === name);
      const row = s?.rows?.[0];
      if (!row || s?.rows?.length !== 1 || col('stdout') < 0 || col('exit_code') < 0)
        throw new Error(`drawbridge answered without one host row: ${JSON.stringify(s).slice(0, 500)}`);
      if (row[col('exit_code')] !== 0) throw new Error(`drawbridge: ${SSH_COMMAND} exited with ${String(row[col('exit_code')])}: ${JSON.stringify(row)}`);
      return String(row[col('stdout')]);
    },
    close: () => client.close(),
  };
}

export async function sshMcpTarget(sshd: Sshd, home: string): Promise<SshTarget> {
  const args = [SSH_MCP, `--host=${sshd.host}`, `--port=${sshd.port}`, `--user=${sshd.user}`, `--key=${sshd.privateKeyPath}`];
  // A config file under XDG_CONFIG_HOME would override the flags; the audit log goes under XDG_DATA_HOME.
  const env = childEnv({ XDG_CONFIG_HOME: join(home, 'config'), XDG_DATA_HOME: join(home, 'data') });
  const { client, transport, stderr } = await stdioClient('ssh-mcp', process.execPath, args, env);
  return {
    name: 'ssh-mcp',
    pid: transport.pid,
    call: () => client.callTool({ name: 'read-command', arguments: { command: SSH_COMMAND } }, undefined, { timeout: 60_000 }),
    stdout(answer) {
      const a = answer as ToolAnswer;
      if (a.isError) throw new Error(`ssh-mcp failed: ${answerText(a)}\n${stderr()}`);
      // Its text is the (redacted) stdout, then `[stderr]` and the stderr if there was any.
      return answerText(a).split('\n\n[stderr]\n')[0] as string;
    },
    close: () => client.close(),
  };
}

export function sshMcpVersion(): string {
  return (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'ssh-mcp', 'package.json'), 'utf8')) as { version: string }).version;
}

/** `OpenSSH_9.2, OpenSSL …` (sshd -V prints it on stderr). */
export async function sshdVersion(): Promise<string> {
  try {
    const { stdout, stderr } = await promisify(execFile)(SSHD_PATH, ['-V']);
    return (stderr || stdout).trim();
  } catch (error) {
    return ((error as { stderr?: string }).stderr ?? '').trim() || 'version unknown';
  }
}

/**
 * Median ms of the login shell running the command locally the way sshd starts it
 * (`$SHELL -c CMD` with SSH_CLIENT set, with and without), for the report: on the host
 * every target pays this, and bash sources ~/.bashrc when it sees SSH_CLIENT. Stdin is
 * /dev/null because bash also sources it when stdin is a socket (Node's default pipe is one).
 */
export async function loginShellMs(runs: number): Promise<{ shell: string; withSshClient: number; without: number }> {
  const user = userInfo();
  const shell = user.shell ?? '/bin/sh';
  const base = { HOME: user.homedir, USER: user.username, LOGNAME: user.username, SHELL: shell, PATH: '/usr/local/bin:/usr/bin:/bin' };
  const once = (env: Record<string, string>) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(shell, ['-c', SSH_COMMAND], { env, cwd: user.homedir, stdio: ['ignore', 'ignore', 'ignore'] });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${shell} -c '${SSH_COMMAND}' exited with ${String(code)}`))));
    });
  const time = async (env: Record<string, string>) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await once(env);
      times.push(performance.now() - t0);
    }
    return percentile(times, 50);
  };
  const withSshClient = await time({ ...base, SSH_CLIENT: '127.0.0.1 40000 22', SSH_CONNECTION: '127.0.0.1 40000 127.0.0.1 22' });
  const without = await time(base);
  return { shell, withSshClient, without };
}

// ---------------------------------------------------------------------------
// The measurement loop (as measureKube in kube.ts)

/** Untimed: one call per target, failing unless each prints the expected output. */
export async function checkSshTargets(targets: readonly SshTarget[], expected: string): Promise<void> {
  for (const target of targets) checkAnswer(target, await target.call(), expected);
}

function checkAnswer(target: SshTarget, answer: unknown, expected: string): void {
  const got = target.stdout(answer);
  if (got !== expected) throw new Error(`${target.name} printed ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`);
}

export async function measureSsh(targets: readonly SshTarget[], expected: string, options: { warmup: number; calls: number }): Promise<SshSample[]> {
  return roundRobin(
    targets,
    options,
    (t) => t.call(),
    (t, answer) => checkAnswer(t, answer, expected),
  );
}
