// Tests for the ssh_exec test harness itself: the throwaway OpenSSH server
// (test/support/sshd.ts) and the ssh2 fault server
// (test/support/ssh-fault-server.ts), driven with a plain ssh2 Client.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateEd25519KeyPair, startFaultServer, type FaultServer } from '../support/ssh-fault-server.js';
import { fingerprintOfKeyBlob, SSHD_PATH, startSshd, type Sshd } from '../support/sshd.js';

interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: string | null;
  /** Set when the connection failed or closed before the channel did. */
  error?: Error;
}

function connectClient(port: number, user: string, privateKey: string, fingerprint: string): Promise<ssh2.Client> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let seen: string | undefined;
    client.once('ready', () => resolve(client));
    client.once('error', (err) => reject(seen !== undefined && seen !== fingerprint ? new Error(`host key mismatch: ${seen}`) : err));
    client.connect({
      host: '127.0.0.1',
      port,
      username: user,
      privateKey,
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => {
        seen = fingerprintOfKeyBlob(key);
        return seen === fingerprint;
      },
    });
  });
}

function exec(client: ssh2.Client, command: string, opts: { maxStdout?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) {
        reject(err);
        return;
      }
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      let outLen = 0;
      let code: number | null = null;
      let signal: string | null = null;
      let settled = false;
      const done = (error?: Error): void => {
        if (settled) return;
        settled = true;
        const r: ExecResult = { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8'), code, signal };
        if (error) r.error = error;
        resolve(r);
      };
      ch.on('data', (d: Buffer) => {
        out.push(d);
        outLen += d.length;
        if (opts.maxStdout !== undefined && outLen >= opts.maxStdout) {
          // Enough: stop the command from our side.
          ch.close();
          done();
        }
      });
      ch.stderr.on('data', (d: Buffer) => errOut.push(d));
      ch.on('exit', (c: number | null, s?: string) => {
        code = c ?? null;
        signal = s ?? null;
      });
      ch.on('close', () => done());
      client.once('error', (e) => done(e));
      client.once('close', () => done(new Error('connection closed')));
    });
  });
}

// No silent skip: without sshd, startSshd fails with "install openssh-server" (.ci/run installs it).
describe(`throwaway OpenSSH server (${SSHD_PATH})`, () => {
  let sshd: Sshd;
  let client: ssh2.Client;

  beforeAll(async () => {
    sshd = await startSshd();
    client = await connectClient(sshd.port, sshd.user, sshd.privateKey, sshd.hostKeyFingerprint);
  });
  afterAll(async () => {
    client?.end();
    await sshd?.stop();
  });

  it('reports a fingerprint matching ssh-keygen -lf and a usable known_hosts line', () => {
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const r = spawnSync('ssh-keygen', ['-lf', '-'], { input: `${sshd.knownHostsLine}\n`, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(sshd.hostKeyFingerprint);
    expect(sshd.knownHostsLine.startsWith(`[127.0.0.1]:${sshd.port} ssh-ed25519 `)).toBe(true);
    expect(readFileSync(sshd.privateKeyPath, 'utf8')).toBe(sshd.privateKey);
  });

  it('runs commands with output and exit codes', async () => {
    expect(await exec(client, 'echo hello')).toMatchObject({ stdout: 'hello\n', code: 0 });
    expect(await exec(client, 'id -un')).toMatchObject({ stdout: `${sshd.user}\n`, code: 0 });
    expect(await exec(client, 'echo oops >&2; exit 3')).toMatchObject({ stdout: '', stderr: 'oops\n', code: 3 });
  });

  it('lets the user write to the scratch root', async () => {
    const r = await exec(client, `echo written > ${sshd.root}/probe.txt`);
    expect(r.code).toBe(0);
    expect(readFileSync(join(sshd.root, 'probe.txt'), 'utf8')).toBe('written\n');
  });

  it('rejects a wrong host key fingerprint', async () => {
    await expect(connectClient(sshd.port, sshd.user, sshd.privateKey, 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).rejects.toThrow(
      /host key mismatch/,
    );
  });

  it('rejects keys that are not authorized', async () => {
    const other = generateEd25519KeyPair();
    await expect(connectClient(sshd.port, sshd.user, other.private, sshd.hostKeyFingerprint)).rejects.toThrow(/authentication methods failed/i);
  });

  it('listens only on 127.0.0.1', () => {
    const r = spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const mine = r.stdout.split('\n').filter((l) => l.includes(`pid=${sshd.pid},`));
    expect(mine.length).toBeGreaterThan(0);
    for (const line of mine) {
      const local = line.trim().split(/\s+/)[3];
      expect(local).toBe(`127.0.0.1:${sshd.port}`);
    }
  });

  it('logExecs: logs each exec exactly as received, and still runs it with the login shell', async () => {
    const s = await startSshd({ logExecs: true });
    try {
      const c = await connectClient(s.port, s.user, s.privateKey, s.hostKeyFingerprint);
      try {
        expect(await exec(c, "echo 'a b' $((1+2))")).toMatchObject({ stdout: 'a b 3\n', code: 0 });
        expect(await exec(c, 'printf "%s\\n" x\necho y; exit 4')).toMatchObject({ stdout: 'x\ny\n', code: 4 });
      } finally {
        c.end();
      }
      expect(s.execs()).toEqual(["echo 'a b' $((1+2))", 'printf "%s\\n" x\necho y; exit 4']);
    } finally {
      await s.stop();
    }
    expect(() => sshd.execs()).toThrow(TypeError);
  });

  it('removes its temp directory on stop', async () => {
    const s = await startSshd();
    expect(existsSync(s.root)).toBe(true);
    await s.stop();
    expect(existsSync(s.root)).toBe(false);
    await s.stop(); // idempotent
  });
});

describe('ssh2 fault server', () => {
  let fault: FaultServer;
  const clientKey = generateEd25519KeyPair().private;
  const connectFault = (): Promise<ssh2.Client> => connectClient(fault.port, 'anyone', clientKey, fault.hostKeyFingerprint);

  beforeAll(async () => {
    fault = await startFaultServer();
  });
  afterAll(async () => {
    await fault?.stop();
  });

  it('verifies its host key and echoes commands', async () => {
    const c = await connectFault();
    try {
      expect(await exec(c, 'echo a  b')).toMatchObject({ stdout: 'echo a  b\n', code: 0 });
      expect(await exec(c, 'nope')).toMatchObject({ code: 127, stderr: expect.stringContaining('unknown mode') });
    } finally {
      c.end();
    }
    await expect(connectClient(fault.port, 'x', clientKey, 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).rejects.toThrow(/host key mismatch/);
  });

  it('exit:N and signal:TERM', async () => {
    const c = await connectFault();
    try {
      expect(await exec(c, 'exit:0')).toMatchObject({ code: 0, signal: null, stdout: '' });
      expect(await exec(c, 'exit:42')).toMatchObject({ code: 42, signal: null });
      expect(await exec(c, 'signal:TERM')).toMatchObject({ code: null, signal: 'SIGTERM' });
    } finally {
      c.end();
    }
  });

  it('slow writes a line every 200 ms then exits 0', async () => {
    const c = await connectFault();
    try {
      const t0 = Date.now();
      const r = await exec(c, 'slow:1');
      const elapsed = Date.now() - t0;
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n');
      expect(elapsed).toBeGreaterThanOrEqual(900);
    } finally {
      c.end();
    }
  });

  it('endless keeps writing until the client stops it', async () => {
    const c = await connectFault();
    try {
      const r = await exec(c, 'endless', { maxStdout: 4 * 1024 * 1024 });
      expect(r.stdout.length).toBeGreaterThanOrEqual(4 * 1024 * 1024);
      expect(r.code).toBeNull();
      // The connection is still usable afterwards.
      expect(await exec(c, 'exit:7')).toMatchObject({ code: 7 });
    } finally {
      c.end();
    }
  });

  it('disconnect drops the connection mid-command', async () => {
    const c = await connectFault();
    c.on('error', () => {});
    const r = await exec(c, 'disconnect');
    expect(r.stdout).toBe('partial output\n');
    expect(r.code).toBeNull();
    expect(r.signal).toBeNull();
    c.end();
  });

  it('records every exec command string', () => {
    expect(fault.execs).toEqual(['echo a  b', 'nope', 'exit:0', 'exit:42', 'signal:TERM', 'slow:1', 'endless', 'exit:7', 'disconnect']);
  });

  it('accepts the OpenSSH harness client key too', async () => {
    const s = await startSshd();
    try {
      const c = await connectClient(fault.port, s.user, s.privateKey, fault.hostKeyFingerprint);
      expect(await exec(c, 'echo from-sshd-key')).toMatchObject({ stdout: 'echo from-sshd-key\n', code: 0 });
      c.end();
    } finally {
      await s.stop();
    }
    fault.execs.pop();
  });
});
