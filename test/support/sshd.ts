// A throwaway OpenSSH server for ssh_exec tests: a fresh temp directory with
// its own ed25519 host key, client key, authorized_keys and sshd_config,
// listening only on 127.0.0.1 on a free port, run in the foreground (`-D -e`)
// as a child process and killed on stop() or when the test process exits.
//
// The login user is the current user (root in the CI sandbox). `root` is a
// scratch directory tests can write to and inspect for filesystem effects.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export const SSHD_PATH = '/usr/sbin/sshd';
export const SSH_KEYGEN_PATH = 'ssh-keygen';

export interface Sshd {
  host: '127.0.0.1';
  port: number;
  user: string;
  privateKeyPath: string;
  privateKey: string;
  /** 'SHA256:…' exactly as `ssh-keygen -lf` prints it (base64, no padding). */
  readonly hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, for a known_hosts file. */
  readonly knownHostsLine: string;
  /** A scratch directory the login user can write to. */
  root: string;
  /** PID of the listening sshd process (the `-D` parent); a new one after restart(). */
  readonly pid: number;
  /**
   * Every command the server was asked to exec, in order, as it arrived
   * (only with `logExecs`): proof that a refused request never reached the host.
   */
  execs(): string[];
  /**
   * Kills the listening sshd and every sshd process serving a session at once
   * (SIGKILL to its process group), as a crash would: clients see their
   * connections drop mid-command. Commands the sessions started run in their
   * own sessions (sshd calls setsid for them) and are not killed. The
   * directory, keys and port are kept for restart(). Resolves once it exited.
   */
  crash(): Promise<void>;
  /**
   * Starts sshd again on the same port (after crash()). `hostKey: 'new'` first
   * generates another host key, as a re-keyed (or impersonated) host would
   * present; `'original'` goes back to the key it started with; hostKeyFingerprint
   * and knownHostsLine name the key in use. Default: the same key as before.
   */
  restart(options?: { readonly hostKey?: 'same' | 'new' | 'original' }): Promise<void>;
  /** What sshd wrote on stderr since it last (re)started (see SshdOptions.logLevel). */
  log(): string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  /**
   * Log each exec request before running it: the client key gets an OpenSSH
   * `command=` wrapper that appends $SSH_ORIGINAL_COMMAND (base64, one per
   * line) to a log, then runs it with the login shell as sshd would.
   */
  readonly logExecs?: boolean;
  /** sshd's LogLevel (default ERROR). VERBOSE logs each key offered and accepted, and connections closed before authentication ([preauth]). */
  readonly logLevel?: 'ERROR' | 'INFO' | 'VERBOSE';
}

/** True when the OpenSSH server binary is installed (`.ci/run` installs openssh-server). */
export function sshdAvailable(): boolean {
  return existsSync(SSHD_PATH);
}

/** SHA256 fingerprint of an OpenSSH public key line (`type base64 [comment]`), as `ssh-keygen -lf` prints it. */
export function fingerprintOfPublicKeyLine(line: string): string {
  const b64 = line.trim().split(/\s+/)[1];
  if (!b64) throw new Error(`not an OpenSSH public key line: ${line}`);
  return fingerprintOfKeyBlob(Buffer.from(b64, 'base64'));
}

/** SHA256 fingerprint of a raw SSH public key blob (what ssh2's hostVerifier receives). */
export function fingerprintOfKeyBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

function keygen(path: string, comment: string): void {
  const r = spawnSync(SSH_KEYGEN_PATH, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed for ${path}: ${r.error?.message ?? r.stderr}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      sock.removeAllListeners();
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

const live = new Set<ChildProcess>();
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}
/**
 * The sshd processes below `root` (per-connection sshd and its privilege-separated
 * children), from /proc. sshd calls setsid() for each connection, so they are not
 * in the listener's process group; commands they run are not sshd and not listed.
 */
function sshdDescendants(root: number): number[] {
  const parents = new Map<number, { ppid: number; comm: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      parents.set(Number(entry), { ppid, comm });
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = [];
  const walk = (pid: number) => {
    for (const [child, info] of parents) {
      if (info.ppid !== pid) continue;
      if (info.comm.startsWith('sshd')) found.push(child);
      walk(child);
    }
  };
  walk(root);
  return found;
}

let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

async function startOnce(dir: string, port: number, logLevel: NonNullable<SshdOptions['logLevel']>): Promise<{ child: ChildProcess; stderr: () => string }> {
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `ListenAddress 127.0.0.1:${port}`,
      'AddressFamily inet',
      `PidFile ${join(dir, 'sshd.pid')}`,
      `HostKey ${join(dir, 'host_ed25519')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'AuthenticationMethods publickey',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'UseDNS no',
      'PrintMotd no',
      'PrintLastLog no',
      'X11Forwarding no',
      'AllowTcpForwarding no',
      'AllowAgentForwarding no',
      'PermitTunnel no',
      'MaxStartups 100',
      'MaxSessions 50',
      `LogLevel ${logLevel}`,
      '',
    ].join('\n'),
  );
  let stderr = '';
  // Own process group, so stop() can take the per-connection children down too.
  const child = spawn(SSHD_PATH, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < 64_000) stderr += chunk;
  });
  live.add(child);
  installExitHook();
  child.once('exit', () => live.delete(child));

  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    if (await canConnect(port)) return { child, stderr: () => stderr };
    await new Promise((r) => setTimeout(r, 50));
  }
  killGroup(child, 'SIGKILL');
  throw new Error(`sshd did not start listening on 127.0.0.1:${port}: ${stderr.trim() || '(no stderr)'}`);
}

export async function startSshd(options: SshdOptions = {}): Promise<Sshd> {
  if (!sshdAvailable()) {
    throw new Error(`OpenSSH server not found at ${SSHD_PATH}; install it (apt-get install openssh-server) to run the ssh_exec tests`);
  }
  // Privilege separation directory; sshd refuses to start without it.
  mkdirSync('/run/sshd', { recursive: true });

  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-sshd-'));
  try {
    chmodSync(dir, 0o755);
    const hostKeyPath = join(dir, 'host_ed25519');
    const clientKeyPath = join(dir, 'client_ed25519');
    keygen(hostKeyPath, 'drawbridge-test-host');
    keygen(clientKeyPath, 'drawbridge-test-client');
    const clientPub = readFileSync(`${clientKeyPath}.pub`, 'utf8').trim();
    const execLog = join(dir, 'exec.log');
    let keyOptions = '';
    if (options.logExecs) {
      const wrapper = join(dir, 'log-exec');
      writeFileSync(
        wrapper,
        [
          '#!/bin/sh',
          `printf '%s' "$SSH_ORIGINAL_COMMAND" | base64 -w0 >> '${execLog}'`,
          `echo >> '${execLog}'`,
          'exec "$SHELL" -c "$SSH_ORIGINAL_COMMAND"',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
      writeFileSync(execLog, '');
      keyOptions = `command="${wrapper}" `;
    }
    writeFileSync(join(dir, 'authorized_keys'), `${keyOptions}${clientPub}\n`, { mode: 0o600 });
    const hostKey = () => {
      const line = readFileSync(`${hostKeyPath}.pub`, 'utf8').trim();
      const [type, b64] = line.split(/\s+/);
      return { fingerprint: fingerprintOfPublicKeyLine(line), type: type ?? '', b64: b64 ?? '' };
    };
    let key = hostKey();
    const logLevel = options.logLevel ?? 'ERROR';
    const original = { private: readFileSync(hostKeyPath), public: readFileSync(`${hostKeyPath}.pub`) };
    const root = join(dir, 'root');
    mkdirSync(root, { mode: 0o777 });
    chmodSync(root, 0o777);

    let started: { child: ChildProcess; stderr: () => string } | undefined;
    let port = 0;
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3 && !started; attempt++) {
      port = await freePort();
      try {
        started = await startOnce(dir, port, logLevel);
      } catch (err) {
        lastErr = err; // most likely lost the free-port race; try another port
      }
    }
    if (!started) throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
    let child = started.child;
    let stderr = started.stderr;
    if (child.pid === undefined) throw new Error('sshd has no pid');

    const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;
    const kill = async (c: ChildProcess, signal: NodeJS.Signals): Promise<void> => {
      if (running(c)) {
        const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
        killGroup(c, signal);
        const timer = setTimeout(() => killGroup(c, 'SIGKILL'), 3_000);
        await exited;
        clearTimeout(timer);
      }
      live.delete(c);
    };

    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopped ??= (async () => {
        await kill(child, 'SIGTERM');
        rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    };

    return {
      host: '127.0.0.1',
      port,
      user: userInfo().username,
      privateKeyPath: clientKeyPath,
      privateKey: readFileSync(clientKeyPath, 'utf8'),
      get hostKeyFingerprint() {
        return key.fingerprint;
      },
      get knownHostsLine() {
        return `[127.0.0.1]:${port} ${key.type} ${key.b64}`;
      },
      root,
      get pid() {
        return child.pid as number;
      },
      execs() {
        if (!options.logExecs) throw new TypeError('execs() needs startSshd({ logExecs: true })');
        return readFileSync(execLog, 'utf8')
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => Buffer.from(line, 'base64').toString('utf8'));
      },
      async crash() {
        // The per-connection processes first: they hold the sessions' sockets.
        for (const pid of child.pid === undefined ? [] : sshdDescendants(child.pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await kill(child, 'SIGKILL');
      },
      async restart(restartOptions = {}) {
        if (stopped) throw new Error('sshd was stopped; start a new one');
        if (running(child)) throw new Error('sshd is running; crash() it first');
        if (restartOptions.hostKey === 'new') {
          rmSync(hostKeyPath, { force: true });
          rmSync(`${hostKeyPath}.pub`, { force: true });
          keygen(hostKeyPath, 'drawbridge-test-host-rekeyed');
        } else if (restartOptions.hostKey === 'original') {
          writeFileSync(hostKeyPath, original.private, { mode: 0o600 });
          writeFileSync(`${hostKeyPath}.pub`, original.public);
        }
        key = hostKey();
        const again = await startOnce(dir, port, logLevel);
        child = again.child;
        stderr = again.stderr;
      },
      log: () => stderr(),
      stop,
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** A server on 127.0.0.1 with a pinned host key: a throwaway sshd, or the fault server. */
export interface PinnedServer {
  readonly port: number;
  readonly hostKeyFingerprint: string;
}

/**
 * A `kind: connection` document (type ssh) for loopback test servers, each host
 * pinned to the given fingerprint, logging in as `login` (the sshd's user and
 * client key). `limits` is the YAML flow mapping, e.g. `{ timeout: 5s }`.
 */
export function sshConnectionYaml(o: {
  readonly name: string;
  readonly description: string;
  readonly hosts: ReadonlyArray<{ readonly name: string; readonly server: PinnedServer }>;
  readonly login: Pick<Sshd, 'user' | 'privateKeyPath'>;
  readonly limits?: string;
}): string {
  return [
    'kind: connection',
    `name: ${o.name}`,
    'type: ssh',
    `description: ${o.description}`,
    'hosts:',
    ...o.hosts.map((h) => `  - { name: ${h.name}, host: 127.0.0.1, port: ${h.server.port}, host_key: "${h.server.hostKeyFingerprint}" }`),
    `user: ${o.login.user}`,
    `private_key: { file: ${o.login.privateKeyPath} }`,
    ...(o.limits ? [`limits: ${o.limits}`] : []),
    '',
  ].join('\n');
}

/** The `kind: tool` document for ssh_exec over these connections. */
export function sshToolYaml(connections: readonly string[]): string {
  return `kind: tool\nname: ssh_exec\ntype: ssh_exec\nconnections: [${connections.join(', ')}]\n`;
}

/**
 * A fresh config directory for an ssh_exec test gateway: tools/hosts.yaml with
 * the given documents (connections and the tool), a local-identity gateway
 * (subject dev@example.com in developers, approvals never wait) and
 * policies/rules.yaml with the given policy document.
 */
export function writeSshConfig(prefix: string, o: { readonly tools: readonly string[]; readonly rules: string }): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'tools', 'hosts.yaml'), o.tools.join('---\n'));
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway
identity: { mode: local, subject: dev@example.com, groups: [developers] }
journal: { path: journal.db }
approval: { wait: 0ms, store: approvals.db }
`,
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), o.rules);
  return dir;
}
