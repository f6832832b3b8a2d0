// Brokered SSH connections with ssh2: one pooled connection per host with
// keepalive and reconnect, the host key pinned (a fingerprint or a
// known_hosts file: an unknown or changed key refuses the call), exec without
// a PTY, a time limit (signal, then close), and stdout/stderr caps. Every new
// connection first proves its login shell quotes like POSIX sh (the probe),
// since the argv reaches the host re-quoted through that shell. The key and
// passphrase stay here.

import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import { DrawbridgeError } from '../../errors.js';

export interface HostTarget {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Accepted host keys: `SHA256:…` fingerprints and/or base64 key blobs from known_hosts. */
  readonly fingerprints: readonly string[];
}

export interface Credentials {
  readonly username: string;
  readonly privateKey: string;
  readonly passphrase?: string;
}

export interface ExecOutcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly truncated: boolean;
  readonly timedOut: boolean;
}

/** `SHA256:base64-without-padding`, as ssh-keygen -lf prints. */
export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Accepted keys for host:port from a known_hosts text (plain host names only; hashed entries are not supported). */
export function knownHostKeys(text: string, host: string, port: number): string[] {
  const names = port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
  const keys: string[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 3 || parts[0]?.startsWith('#') || parts[0]?.startsWith('|') || parts[0]?.startsWith('@')) continue;
    const hosts = (parts[0] as string).split(',');
    if (hosts.some((h) => names.includes(h))) keys.push(parts[2] as string);
  }
  return keys;
}

interface Pooled {
  client: ssh2.Client;
  ready: Promise<ssh2.Client>;
  /** The fingerprint of the host key the server presented and the pin accepted; null before the handshake. */
  hostKey(): string | null;
}

/** A command run once on each new connection, and the exact stdout that makes the connection usable. */
export interface ShellProbe {
  readonly command: string;
  readonly expected: string;
}

export class SshPool {
  private readonly pool = new Map<string, Pooled>();

  constructor(
    private readonly credentials: () => Credentials,
    private readonly connectTimeoutMs: number,
    private readonly probe: ShellProbe | null = null,
  ) {}

  private connect(target: HostTarget): Pooled {
    const existing = this.pool.get(target.name);
    if (existing) return existing;
    const client = new ssh2.Client();
    let rejected: string | null = null;
    let accepted: string | null = null;
    let login = '';
    const ready = new Promise<ssh2.Client>((resolve, reject) => {
      const drop = () => {
        if (this.pool.get(target.name)?.client === client) this.pool.delete(target.name);
      };
      client.once('ready', () => {
        if (!this.probe) return resolve(client);
        const { command, expected } = this.probe;
        this.run(client, target, command, { timeoutMs: this.connectTimeoutMs, maxBytes: 4096 }).then(
          (r) => {
            if (r.stdout === expected && r.exitCode === 0) return resolve(client);
            drop();
            client.end();
            reject(new DrawbridgeError('backend.unavailable', `Host ${target.name}: the login shell of ${this.credentials().username} does not read single quotes as POSIX sh does (the quoting probe printed ${JSON.stringify(r.stdout.slice(0, 200))}${r.stderr ? `, stderr ${JSON.stringify(r.stderr.slice(0, 200))}` : ''}); no command was sent.`, { hint: 'Give the account a POSIX shell (sh, bash, dash, ksh or zsh), e.g. chsh -s /bin/sh; fish and csh quote differently.' }));
          },
          (e: unknown) => {
            drop();
            client.end();
            reject(e);
          },
        );
      });
      client.on('error', (e: Error & { level?: string }) => {
        drop();
        reject(rejected !== null
          ? new DrawbridgeError('backend.unavailable', `Host ${target.name}: ${rejected}; the call was refused.`, { hint: 'If the host was legitimately re-keyed, the operator must update host_key / known_hosts.' })
          : e.level === 'client-authentication'
            ? new DrawbridgeError('backend.auth_failed', `Host ${target.name} (${target.host}:${target.port}) refused the gateway's key for user ${login} (${e.message}). The private key is not authorized for that account, or the user name is wrong; the operator must fix it.`, { cause: e })
            : new DrawbridgeError('backend.unavailable', `Cannot connect to ${target.name}: ${e.message}`, { cause: e }));
      });
      client.on('close', drop);
      client.on('end', drop);
      const creds = this.credentials();
      login = creds.username;
      const connect = (options: ssh2.ConnectConfig) => {
        try {
          client.connect(options);
        } catch (error) {
          // ssh2 parses the key before connecting; its message names the problem, never the key.
          drop();
          reject(new DrawbridgeError('config.secret_invalid', `Host ${target.name}: the gateway's private key cannot be used (${(error as Error).message}); the key is not shown because it is a secret.`, {
            hint: 'The operator must point private_key at an OpenSSH private key (with passphrase set if the key is encrypted) on the gateway host and restart the gateway. Retrying will not help.',
          }));
        }
      };
      connect({
        host: target.host,
        port: target.port,
        username: creds.username,
        privateKey: creds.privateKey,
        ...(creds.passphrase ? { passphrase: creds.passphrase } : {}),
        readyTimeout: this.connectTimeoutMs,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        // Pinned host key: anything not declared for this host refuses the connection.
        hostVerifier: (key: Buffer) => {
          const fp = fingerprintOf(key);
          const ok = target.fingerprints.includes(fp) || target.fingerprints.includes(key.toString('base64'));
          if (!ok) rejected = `the host key ${fp} is not the one pinned for this host (unknown or changed host key)`;
          else accepted = fp;
          return ok;
        },
      });
    });
    ready.catch(() => undefined);
    const pooled: Pooled = { client, ready, hostKey: () => accepted };
    this.pool.set(target.name, pooled);
    return pooled;
  }

  async exec(target: HostTarget, command: string, o: { timeoutMs: number; maxBytes: number }): Promise<ExecOutcome> {
    let client: ssh2.Client;
    try {
      client = await this.connect(target).ready;
    } catch (error) {
      this.pool.delete(target.name);
      throw error;
    }
    return this.run(client, target, command, o);
  }

  /**
   * Opens (or reuses) the connection to the host exactly as exec does: the pinned
   * host key, login, then the quoting probe. Returns the host key it accepted.
   */
  async check(target: HostTarget): Promise<{ readonly hostKey: string | null }> {
    const pooled = this.connect(target);
    try {
      await pooled.ready;
    } catch (error) {
      this.pool.delete(target.name);
      throw error;
    }
    return { hostKey: pooled.hostKey() };
  }

  private run(client: ssh2.Client, target: HostTarget, command: string, o: { timeoutMs: number; maxBytes: number }): Promise<ExecOutcome> {
    return new Promise<ExecOutcome>((resolve, reject) => {
      client.exec(command, { pty: false }, (err, stream) => {
        if (err) {
          // A broken pooled connection: drop it so the next call reconnects.
          this.pool.delete(target.name);
          client.end();
          reject(new DrawbridgeError('backend.unavailable', `exec on ${target.name} failed: ${err.message}`));
          return;
        }
        const out: Buffer[] = [];
        const errs: Buffer[] = [];
        let size = 0;
        let truncated = false;
        let timedOut = false;
        let settled = false;
        const take = (into: Buffer[], chunk: Buffer) => {
          if (truncated) return;
          if (size + chunk.length > o.maxBytes) {
            into.push(chunk.subarray(0, Math.max(0, o.maxBytes - size)));
            size = o.maxBytes;
            truncated = true;
            stream.close();
            return;
          }
          size += chunk.length;
          into.push(chunk);
        };
        stream.on('data', (c: Buffer) => take(out, c));
        stream.stderr.on('data', (c: Buffer) => take(errs, c));
        // Time limit: ask the remote side to stop, then close the channel, then the connection.
        const timer = setTimeout(() => {
          timedOut = true;
          try {
            stream.signal('TERM');
          } catch {
            // not supported by every server
          }
          setTimeout(() => stream.close(), 1000).unref();
          setTimeout(() => {
            if (!settled) {
              this.pool.delete(target.name);
              client.end();
              finish(null, null);
            }
          }, 3000).unref();
        }, o.timeoutMs);
        const finish = (code: number | null, signal: string | null) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errs).toString('utf8'), exitCode: code, signal, truncated, timedOut });
        };
        stream.on('close', (code: number | null, signal?: string) => finish(typeof code === 'number' ? code : null, signal ?? null));
        client.once('close', () => {
          if (settled || timedOut) return finish(null, null);
          settled = true;
          clearTimeout(timer);
          this.pool.delete(target.name);
          reject(new DrawbridgeError('backend.unavailable', `The connection to ${target.name} was lost while the command ran; whether it finished is unknown.`, { hint: 'Check the host before retrying a command that changes state.' }));
        });
      });
    });
  }

  async close(): Promise<void> {
    for (const { client } of this.pool.values()) client.end();
    this.pool.clear();
  }
}
