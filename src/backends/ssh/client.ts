// Brokered SSH connections with ssh2: one pooled connection per host with
// keepalive and reconnect, the host key pinned (a fingerprint or a
// known_hosts file: an unknown or changed key refuses the call), exec without
// a PTY, a time limit (signal, then close), and stdout/stderr caps. Every new
// connection first proves its login shell quotes like POSIX sh (the probe),
// since the argv reaches the host re-quoted through that shell. The key and
// passphrase stay here.
//
// Faults: every ssh2 client and channel has an 'error' listener for its whole
// life (an emitter without one would end the gateway). A connection that
// fails, ends or closes leaves the pool at once and the next call reconnects.
// A connection lost mid-command ends that call with backend.interrupted
// (whether the command finished is unknown); a channel that could not even be
// opened on a dead pooled connection is retried once on a new one, since the
// command never left the gateway.

import { decodeCut } from '../shared/utf8.js';
import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';
import { DrawbridgeError, toDrawbridgeError } from '../../errors.js';

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

interface ExecOutcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly truncated: boolean;
  readonly timedOut: boolean;
}

/** `SHA256:base64-without-padding`, as ssh-keygen -lf prints. */
function fingerprintOf(key: Buffer): string {
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
  readonly client: ssh2.Client;
  readonly ready: Promise<ssh2.Client>;
  /** The fingerprint of the host key the server presented and the pin accepted; null before the handshake. */
  hostKey(): string | null;
  /** alive is false once the socket closed, ended or failed: a dead connection is never handed out again. */
  readonly state: { alive: boolean };
}

/** A command run once on each new connection, and the exact stdout that makes the connection usable. */
interface ShellProbe {
  readonly command: string;
  readonly expected: string;
}

/**
 * Why an exec channel could not be started. `not-sent`: the channel never
 * opened, so the command cannot have reached the host (one new connection may
 * be tried). `refused`: the host answered no to the exec request (nothing ran).
 * `unknown`: the connection broke after the exec request may have left.
 * Internal: turned into a DrawbridgeError before it leaves this module.
 */
class ExecNotStarted extends Error {
  constructor(
    readonly sent: 'not-sent' | 'refused' | 'unknown',
    message: string,
  ) {
    super(message);
  }
}

interface RunLimits {
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

export class SshPool {
  private readonly pool = new Map<string, Pooled>();

  constructor(
    private readonly credentials: () => Credentials,
    private readonly connectTimeoutMs: number,
    private readonly probe: ShellProbe | null = null,
  ) {}

  /** Forgets this connection (only if it is still the pooled one for the host) and ends it; the next call reconnects. */
  private discard(target: HostTarget, pooled: Pooled): void {
    pooled.state.alive = false;
    if (this.pool.get(target.name) === pooled) this.pool.delete(target.name);
    try {
      pooled.client.end();
    } catch {
      // already gone
    }
  }

  private connect(target: HostTarget): Pooled {
    const existing = this.pool.get(target.name);
    if (existing?.state.alive) return existing;
    if (existing) this.pool.delete(target.name);
    const client = new ssh2.Client();
    let rejected: string | null = null;
    let accepted: string | null = null;
    let login = '';
    const state = { alive: true };
    // Filled in below, before any event can fire: the probe and discard need the entry itself.
    let self: Pooled | null = null;
    const ready = new Promise<ssh2.Client>((resolve, reject) => {
      const drop = () => {
        state.alive = false;
        if (this.pool.get(target.name)?.client === client) this.pool.delete(target.name);
      };
      client.once('ready', () => {
        if (!this.probe) return resolve(client);
        const { command, expected } = this.probe;
        const pooled = self as Pooled;
        this.runOn(pooled, target, command, { timeoutMs: this.connectTimeoutMs, maxBytes: 4096 })
          .then(
            (r) => {
              if (r.stdout === expected && r.exitCode === 0) return resolve(client);
              this.discard(target, pooled);
              reject(
                new DrawbridgeError(
                  'backend.unavailable',
                  `Host ${target.name}: the login shell of ${login} does not read single quotes as POSIX ` +
                    `sh does (the quoting probe printed ` +
                    `${JSON.stringify(r.stdout.slice(0, 200))}${r.stderr ? `, stderr ${JSON.stringify(r.stderr.slice(0, 200))}` : ''}); no command was sent.`,
                  { hint: 'Give the account a POSIX shell (sh, bash, dash, ksh or zsh), e.g. chsh -s /bin/sh; fish and csh quote differently.' },
                ),
              );
            },
            (e: unknown) => {
              this.discard(target, pooled);
              // The probe is the gateway's own check: the agent's command was not sent yet, whatever broke.
              reject(
                new DrawbridgeError(
                  'backend.unavailable',
                  `Host ${target.name}: the connection failed during the gateway's quoting probe, before ` +
                    `the command was sent (${e instanceof Error ? e.message : String(e)}); nothing was run.`,
                  { cause: e },
                ),
              );
            },
          )
          .catch((e: unknown) => {
            // Never an unhandled rejection, never a connection that stays pending.
            this.discard(target, pooled);
            reject(toDrawbridgeError(e));
          });
      });
      // Registered for the client's whole life: ssh2 emits 'error' for socket
      // faults and keepalive timeouts at any time, and an emitter without an
      // 'error' listener would take the whole gateway down.
      client.on('error', (e: Error & { level?: string }) => {
        drop();
        reject(
          rejected !== null
            ? new DrawbridgeError(
                'backend.unavailable',
                `Host ${target.name}: ${rejected} (${target.host}:${target.port}). The connection ` +
                  `was refused before authentication: no key was offered and nothing was sent.`,
                {
                  hint:
                    'If the host was legitimately re-keyed, the operator must update host_key / ' +
                    'known_hosts; otherwise someone may be impersonating the host. Retrying will not help.',
                },
              )
            : e.level === 'client-authentication'
              ? new DrawbridgeError(
                  'backend.auth_failed',
                  `Host ${target.name} (${target.host}:${target.port}) refused the gateway's key for user ${login} (${e.message}). ` +
                    `The private key is not authorized for that account, or the user name is wrong; the operator must fix it.`,
                  { cause: e },
                )
              : new DrawbridgeError('backend.unavailable', `Cannot connect to ${target.name}: ${e.message}`, { cause: e }),
        );
      });
      client.on('close', () => {
        drop();
        reject(new DrawbridgeError('backend.unavailable', `Cannot connect to ${target.name}: the connection closed before login completed; nothing was sent.`));
      });
      client.on('end', drop);
      const creds = this.credentials();
      login = creds.username;
      const connect = (options: ssh2.ConnectConfig) => {
        try {
          client.connect(options);
        } catch (error) {
          // ssh2 parses the key before connecting; its message names the problem, never the key.
          drop();
          reject(
            new DrawbridgeError(
              'config.secret_invalid',
              `Host ${target.name}: the gateway's private key cannot be used (${(error as Error).message}); the key is not shown because it is a secret.`,
              {
                hint:
                  'The operator must point private_key at an OpenSSH private key (with passphrase set if ' +
                  'the key is encrypted) on the gateway host and restart the gateway. Retrying will not help.',
              },
            ),
          );
        }
      };
      connect({
        host: target.host,
        port: target.port,
        username: creds.username,
        privateKey: creds.privateKey,
        ...(creds.passphrase ? { passphrase: creds.passphrase } : {}),
        readyTimeout: this.connectTimeoutMs,
        // A host that vanishes without closing the socket is noticed within ~30 s: ssh2 then emits 'error' and 'close'.
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        // Pinned host key: anything not declared for this host refuses the connection
        // here, during key exchange, before the gateway authenticates or sends anything.
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
    self = { client, ready, hostKey: () => accepted, state };
    this.pool.set(target.name, self);
    return self;
  }

  async exec(target: HostTarget, command: string, o: RunLimits): Promise<ExecOutcome> {
    // At most two connections: a second only when the first could not even open a
    // channel (a pooled connection whose socket had just died), so the command
    // never reached the host and cannot run twice.
    for (let attempt = 1; ; attempt++) {
      const pooled = await this.ready(target);
      try {
        return await this.runOn(pooled, target, command, o);
      } catch (error) {
        if (error instanceof ExecNotStarted && error.sent === 'not-sent' && attempt === 1) continue;
        throw error instanceof ExecNotStarted ? this.notStarted(target, error) : error;
      }
    }
  }

  private notStarted(target: HostTarget, error: ExecNotStarted): DrawbridgeError {
    switch (error.sent) {
      case 'not-sent':
        return new DrawbridgeError('backend.unavailable', `exec on ${target.name} failed before the command was sent (${error.message}); nothing was run.`);
      case 'refused':
        return new DrawbridgeError('backend.unavailable', `${target.name} refused to run the command (${error.message}); nothing was run.`);
      case 'unknown':
        return new DrawbridgeError(
          'backend.interrupted',
          `The connection to ${target.name} was lost while the command was being started: whether ` +
            `it ran is unknown — check the host before retrying a command that changes state.`,
        );
    }
  }

  /**
   * Opens (or reuses) the connection to the host exactly as exec does: the pinned
   * host key, login, then the quoting probe. Returns the host key it accepted.
   */
  async check(target: HostTarget): Promise<{ readonly hostKey: string | null }> {
    const pooled = await this.ready(target);
    return { hostKey: pooled.hostKey() };
  }

  /** The pooled connection once it is ready (host key, login, quoting probe); one that fails to get there leaves the pool. */
  private async ready(target: HostTarget): Promise<Pooled> {
    const pooled = this.connect(target);
    try {
      await pooled.ready;
    } catch (error) {
      this.discard(target, pooled);
      throw error;
    }
    return pooled;
  }

  /** Opens an exec channel; rejects with ExecNotStarted saying whether the command may have reached the host. */
  private openExec(pooled: Pooled, command: string): Promise<ssh2.ClientChannel> {
    return new Promise<ssh2.ClientChannel>((resolve, reject) => {
      try {
        pooled.client.exec(command, { pty: false }, (err, stream) => {
          if (!err) return resolve(stream);
          // ssh2 answers "Unable to exec" both when the host refused the request and when
          // the connection died while the request was out; only a live connection tells them apart.
          if (err.message === 'Unable to exec') reject(new ExecNotStarted(pooled.state.alive ? 'refused' : 'unknown', err.message));
          else reject(new ExecNotStarted('not-sent', err.message));
        });
      } catch (error) {
        // ssh2 throws "Not connected" when the socket is already gone: nothing left the gateway.
        reject(new ExecNotStarted('not-sent', error instanceof Error ? error.message : String(error)));
      }
    });
  }

  private async runOn(pooled: Pooled, target: HostTarget, command: string, o: RunLimits): Promise<ExecOutcome> {
    let stream: ssh2.ClientChannel;
    try {
      stream = await this.openExec(pooled, command);
    } catch (error) {
      // A connection that cannot open a channel is not used again.
      this.discard(target, pooled);
      throw error;
    }
    return this.collect(pooled, target, stream, o);
  }

  /** Reads one exec channel to its end: output caps, the time limit, and a connection lost mid-command. */
  private collect(pooled: Pooled, target: HostTarget, stream: ssh2.ClientChannel, o: RunLimits): Promise<ExecOutcome> {
    const client = pooled.client;
    return new Promise<ExecOutcome>((resolve, reject) => {
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let size = 0;
      let truncated = false;
      let timedOut = false;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      // Timer and event callbacks must never throw: an exception there is uncaught and ends the process.
      const attempt = (what: () => void) => {
        try {
          what();
        } catch {
          // the channel or connection is already gone
        }
      };
      const done = () => {
        settled = true;
        for (const t of timers) clearTimeout(t);
        client.removeListener('close', onLost);
      };
      const finish = (code: number | null, signal: string | null) => {
        if (settled) return;
        done();
        resolve({ stdout: decodeCut(out, truncated), stderr: decodeCut(errs, truncated), exitCode: code, signal, truncated, timedOut });
      };
      const onLost = () => {
        if (settled) return;
        // Stopped at the time limit: the gateway itself ended the connection.
        if (timedOut) return finish(null, null);
        done();
        this.discard(target, pooled);
        reject(
          new DrawbridgeError(
            'backend.interrupted',
            `The connection to ${target.name} was lost while the command ran: whether it ` +
              `finished is unknown — check the host before retrying a command that changes state.`,
            {
              hint: 'Check the host (e.g. the state the command would change) before retrying; the next call opens a new connection.',
            },
          ),
        );
      };
      const take = (into: Buffer[], chunk: Buffer) => {
        if (truncated) return;
        if (size + chunk.length > o.maxBytes) {
          into.push(chunk.subarray(0, Math.max(0, o.maxBytes - size)));
          size = o.maxBytes;
          truncated = true;
          attempt(() => stream.close());
          return;
        }
        size += chunk.length;
        into.push(chunk);
      };
      stream.on('data', (c: Buffer) => take(out, c));
      stream.stderr.on('data', (c: Buffer) => take(errs, c));
      // A channel fault is followed by the channel's or the connection's close, which settles the call.
      stream.on('error', () => undefined);
      stream.stderr.on('error', () => undefined);
      // Time limit: ask the remote side to stop, then close the channel, then the connection.
      timers.push(
        setTimeout(() => {
          timedOut = true;
          attempt(() => stream.signal('TERM')); // not supported by every server
          timers.push(setTimeout(() => attempt(() => stream.close()), 1000));
          timers.push(
            setTimeout(() => {
              if (settled) return;
              this.discard(target, pooled);
              finish(null, null);
            }, 3000),
          );
        }, o.timeoutMs),
      );
      stream.on('close', (code: number | null, signal?: string) => {
        // ssh2 closes the channels of a dead connection after the connection's own 'close'.
        if (!pooled.state.alive && !timedOut && !truncated) return onLost();
        finish(typeof code === 'number' ? code : null, signal ?? null);
      });
      client.once('close', onLost);
    });
  }

  async close(): Promise<void> {
    for (const pooled of this.pool.values()) {
      pooled.state.alive = false;
      try {
        pooled.client.end();
      } catch {
        // already gone
      }
    }
    this.pool.clear();
  }
}
