// A misbehaving SSH server for ssh_exec fault tests, built on ssh2's Server.
// It accepts any public key (including the client key from test/support/sshd.ts)
// and picks its behaviour from the exec command string:
//
//   slow          one line (`tick N`) every 200 ms for 2 s, then exit 0
//   slow:S        the same for S seconds (may be fractional)
//   endless       stdout as fast as the channel window allows, until the client goes away
//   disconnect    writes `partial output` then destroys the TCP connection mid-command
//   exit:N        exit status N (no output)
//   signal:NAME   exit-signal NAME (e.g. `signal:TERM`), no exit status
//   echo …        writes the whole command string plus '\n' to stdout, exit 0
//   the gateway's quoting probe: what a POSIX shell prints for it, or with
//                 `{ shell: 'fish' }` what fish prints (its single quotes honour \')
//   anything else writes `fault-server: unknown mode: …` to stderr, exit 127
//
// Every exec command string received is appended to `execs`, in order.

import { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ServerChannel } from 'ssh2';
import { QUOTING_PROBE_ARGV, QUOTING_PROBE_EXPECTED, quoteArgv } from '../../src/backends/ssh/parse.js';
import { fingerprintOfPublicKeyLine } from './sshd.js';

export interface FaultServerOptions {
  /** How the fake login shell answers the quoting probe (default posix). */
  readonly shell?: 'posix' | 'fish';
}

const PROBE = quoteArgv(QUOTING_PROBE_ARGV);
// fish reads `'a\' '` as one string (`\'` is an escaped quote inside single quotes).
const FISH_PROBE_OUTPUT = "a' b\\c c'd|$(x) `y` * ~|";

export interface FaultServer {
  host: '127.0.0.1';
  port: number;
  /** 'SHA256:…' fingerprint of the server's ed25519 host key. */
  hostKeyFingerprint: string;
  /** `[127.0.0.1]:PORT ssh-ed25519 AAAA…`, for a known_hosts file. */
  knownHostsLine: string;
  /** Every exec command string received, in arrival order. */
  execs: string[];
  stop(): Promise<void>;
}

const SLOW_INTERVAL_MS = 200;
const ENDLESS_CHUNK = Buffer.alloc(32 * 1024, 'y\n');

function runMode(command: string, ch: ServerChannel, conn: Connection, sock: Socket | undefined, shell: 'posix' | 'fish'): void {
  let closed = false;
  const timers: NodeJS.Timeout[] = [];
  ch.once('close', () => {
    closed = true;
    for (const t of timers) clearInterval(t);
  });
  const finish = (status: number | string): void => {
    if (closed) return;
    if (typeof status === 'number') ch.exit(status);
    else ch.exit(status, false, '');
    ch.end();
  };

  if (command === PROBE) {
    ch.write(shell === 'fish' ? FISH_PROBE_OUTPUT : QUOTING_PROBE_EXPECTED);
    finish(0);
    return;
  }
  const [mode, arg] = splitMode(command);
  switch (mode) {
    case 'slow': {
      const seconds = arg === undefined ? 2 : Number(arg);
      const total = Math.max(0, Math.round(((Number.isFinite(seconds) ? seconds : 2) * 1000) / SLOW_INTERVAL_MS));
      let n = 0;
      const t = setInterval(() => {
        if (closed) return;
        if (n >= total) {
          clearInterval(t);
          finish(0);
          return;
        }
        n++;
        ch.write(`tick ${n}\n`);
      }, SLOW_INTERVAL_MS);
      timers.push(t);
      return;
    }
    case 'endless': {
      const pump = (): void => {
        while (!closed && ch.write(ENDLESS_CHUNK)) {
          /* keep writing until backpressure */
        }
      };
      ch.on('drain', pump);
      pump();
      return;
    }
    case 'disconnect': {
      ch.write('partial output\n');
      const t = setTimeout(() => {
        if (sock) sock.destroy();
        else conn.end();
      }, 100);
      timers.push(t);
      return;
    }
    case 'exit': {
      const code = Number(arg);
      finish(Number.isInteger(code) ? code : 1);
      return;
    }
    case 'signal':
      finish(arg && arg.length > 0 ? arg : 'TERM');
      return;
    case 'echo':
      ch.write(`${command}\n`);
      finish(0);
      return;
    default:
      ch.stderr.write(`fault-server: unknown mode: ${command}\n`);
      finish(127);
  }
}

function splitMode(command: string): [string, string | undefined] {
  const trimmed = command.trim();
  if (trimmed === 'echo' || trimmed.startsWith('echo ')) return ['echo', undefined];
  const i = trimmed.indexOf(':');
  return i < 0 ? [trimmed, undefined] : [trimmed.slice(0, i), trimmed.slice(i + 1)];
}

/**
 * `ssh2.utils.generateKeyPairSync('ed25519')`, retried until ssh2 can parse the
 * private key it produced: about 1 in 300 of its OpenSSH-format ed25519 keys
 * fail `parseKey` with "Malformed OpenSSH private key" (ssh2 1.17).
 */
export function generateEd25519KeyPair(): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const keys = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(keys.private) instanceof Error)) return keys;
  }
  throw new Error('could not generate an ed25519 key pair ssh2 can parse');
}

export async function startFaultServer(options: FaultServerOptions = {}): Promise<FaultServer> {
  const keys = generateEd25519KeyPair();
  const execs: string[] = [];
  const conns = new Set<Connection>();
  const sockets = new Set<Socket>();

  const server = new ssh2.Server({ hostKeys: [keys.private] }, (conn) => {
    conns.add(conn);
    // ssh2 keeps the raw socket on a private field; used for the abrupt `disconnect` mode.
    const sock = '_sock' in conn && conn._sock instanceof Socket ? conn._sock : undefined;
    if (sock) sockets.add(sock);
    conn.on('error', () => {
      /* clients vanish mid-test on purpose */
    });
    conn.on('close', () => {
      conns.delete(conn);
      if (sock) sockets.delete(sock);
    });
    conn.on('authentication', (ctx) => {
      if (ctx.method === 'publickey') ctx.accept();
      else ctx.reject(['publickey']);
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('pty', (accept) => accept?.());
        session.on('env', (accept) => accept?.());
        session.on('exec', (accept, _reject, info) => {
          execs.push(info.command);
          const ch = accept();
          ch.on('error', () => {
            /* ignore */
          });
          runMode(info.command, ch, conn, sock, options.shell ?? 'posix');
        });
        session.on('shell', (_accept, reject) => reject?.());
        session.on('subsystem', (_accept, reject) => reject?.());
      });
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fault server has no TCP address');
  const port = addr.port;
  const [keyType, keyB64] = keys.public.trim().split(/\s+/);

  let stopped: Promise<void> | undefined;
  return {
    host: '127.0.0.1',
    port,
    hostKeyFingerprint: fingerprintOfPublicKeyLine(keys.public),
    knownHostsLine: `[127.0.0.1]:${port} ${keyType} ${keyB64}`,
    execs,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        for (const c of conns) c.end();
      });
      return stopped;
    },
  };
}
