// Throwaway PostgreSQL clusters for the demo, the tests and the benchmarks:
// find the binaries, initdb into a private temp dir, start on 127.0.0.1 only,
// and stop + delete everything again (also on exit / SIGINT / SIGTERM).
// For fault tests it can also restart the server, or stop and start it again
// on the same port and data, without deleting anything.
// Not for real data: fsync is off. Knows nothing about schemas or seed data.

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';

interface ClusterOptions {
  /** TCP port on 127.0.0.1; default: a free port picked by the OS. */
  port?: number;
  /** Data directory; default: `data` inside a fresh mkdtemp dir. A caller-given dir is kept by stop(). */
  dataDir?: string;
  /** Password of the `postgres` superuser; default: random. */
  superuserPassword?: string;
  /** Progress lines (commands run, port chosen); default: silent. */
  log?: (line: string) => void;
  /** fsync WAL and data like a real server (benchmarks of durable commits); default false: a throwaway cluster skips it. */
  fsync?: boolean;
}

export interface Cluster {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** postgres://postgres:PW@127.0.0.1:PORT/postgres */
  readonly superuserUrl: string;
  readonly dataDir: string;
  /** URL for `database`; user defaults to `postgres` (with the superuser password). */
  urlFor(database: string, user?: string, password?: string): string;
  /** Idempotent: fast shutdown (pg_ctl stop -m fast), then remove the temp dir. */
  stop(): Promise<void>;
  /**
   * `pg_ctl restart -m fast`: every session is ended (FATAL 57P01), then the
   * server is up again on the same port; resolves once it accepts connections.
   */
  restart(): Promise<void>;
  /** Shuts the server down (fast) but keeps the cluster: startServer() brings it back on the same port. */
  stopServer(): Promise<void>;
  /** Starts a server stopped by stopServer() again; resolves once it accepts connections. */
  startServer(): Promise<void>;
}

const HOST = '127.0.0.1';
const PG_OS_USER = 'postgres';
const START_ATTEMPTS = 4;
const INSTALL_HINT = 'install PostgreSQL (apt-get install postgresql) or set DRAWBRIDGE_PG_BIN to the directory holding initdb and pg_ctl';

// ---------------------------------------------------------------------------
// Locating the binaries

function hasTools(dir: string): boolean {
  return existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'));
}

/** $DRAWBRIDGE_PG_BIN, else the highest /usr/lib/postgresql/<v>/bin, else a PATH dir with initdb + pg_ctl. */
function findPostgresBin(): string {
  const fromEnv = process.env['DRAWBRIDGE_PG_BIN'];
  if (fromEnv !== undefined && fromEnv !== '') {
    const dir = resolve(fromEnv);
    if (!hasTools(dir)) {
      throw new Error(`DRAWBRIDGE_PG_BIN=${fromEnv} does not contain initdb and pg_ctl; ${INSTALL_HINT}`);
    }
    return dir;
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number.parseFloat(b) - Number.parseFloat(a));
    for (const v of versions) {
      const dir = join(root, v, 'bin');
      if (hasTools(dir)) return dir;
    }
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && hasTools(dir)) return dir;
  }
  throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found; ${INSTALL_HINT}`);
}

// ---------------------------------------------------------------------------
// Running commands as the cluster owner

interface RunAs {
  /** Prefix that runs a command as the cluster owner (empty when we are that user). */
  readonly prefix: readonly string[];
  /** uid/gid to chown our files to, when we are root. */
  readonly owner: { uid: number; gid: number } | undefined;
}

function resolveRunAs(): RunAs {
  if (process.getuid?.() !== 0) return { prefix: [], owner: undefined };
  // initdb and pg_ctl refuse to run as root, so the cluster belongs to the postgres OS user.
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  const entry = passwd.map((l) => l.split(':')).find((f) => f[0] === PG_OS_USER);
  const uid = Number(entry?.[2]);
  const gid = Number(entry?.[3]);
  if (entry === undefined || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`running as root, but there is no '${PG_OS_USER}' OS user to own the cluster; ${INSTALL_HINT}, or run as a non-root user`);
  }
  const runuser = ['/usr/sbin/runuser', '/sbin/runuser', '/usr/bin/runuser', '/bin/runuser'].find((p) => existsSync(p));
  if (runuser === undefined) throw new Error('running as root, but runuser(1) was not found (util-linux); run as a non-root user instead');
  return { prefix: [runuser, '-u', PG_OS_USER, '--'], owner: { uid, gid } };
}

interface RunResult {
  code: number | null;
  out: string;
}

/** The environment for child processes, without PG* variables that could redirect the tools. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PG')) env[k] = v;
  return env;
}

function command(runAs: RunAs, bin: string, args: readonly string[]): [string, string[]] {
  const argv = [...runAs.prefix, bin, ...args];
  return [argv[0] as string, argv.slice(1)];
}

function run(runAs: RunAs, bin: string, args: readonly string[], cwd: string): Promise<RunResult> {
  const [file, argv] = command(runAs, bin, args);
  return new Promise((resolvePromise) => {
    const child = spawn(file, argv, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', (err) => resolvePromise({ code: null, out: out + String(err) }));
    child.on('close', (code) => resolvePromise({ code, out }));
  });
}

function runSync(runAs: RunAs, bin: string, args: readonly string[], cwd: string): RunResult {
  const [file, argv] = command(runAs, bin, args);
  const r = spawnSync(file, argv, { cwd, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
  return { code: r.status, out: `${r.stdout?.toString() ?? ''}${r.stderr?.toString() ?? ''}` };
}

function chownTo(runAs: RunAs, path: string): void {
  if (runAs.owner !== undefined) chownSync(path, runAs.owner.uid, runAs.owner.gid);
}

/** Single-quote for /bin/sh: pg_ctl hands its -o string to the shell. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------
// Ports

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => (port > 0 ? resolvePromise(port) : reject(new Error('could not pick a free port'))));
    });
  });
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

// ---------------------------------------------------------------------------
// Cleanup on exit and on signals

interface Live {
  stopSync(): void;
  stop(): Promise<void>;
}

const live = new Set<Live>();
const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
let hooked = false;

function onExit(): void {
  for (const c of [...live]) c.stopSync();
}

function onSignal(signal: NodeJS.Signals): void {
  // Counted now: a `once` listener of the program (e.g. the demo's shutdown) is
  // already gone by the time the clusters have stopped.
  const handledElsewhere = process.listenerCount(signal) > 1;
  // Drop our signal handlers first so re-raising gets the default action
  // (and a second Ctrl-C is not swallowed while we clean up).
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  void Promise.allSettled([...live].map((c) => c.stop())).then(() => {
    // Someone else listening owns the signal's handling; otherwise re-raise it.
    if (!handledElsewhere) process.kill(process.pid, signal);
  });
}

function register(c: Live): void {
  live.add(c);
  if (hooked) return;
  hooked = true;
  process.on('exit', onExit);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function unregister(c: Live): void {
  live.delete(c);
  if (live.size > 0 || !hooked) return;
  hooked = false;
  process.removeListener('exit', onExit);
  for (const s of SIGNALS) process.removeListener(s, onSignal);
}

// ---------------------------------------------------------------------------
// Temp dirs

/** A fresh temp dir the cluster owner can use (its parent must be traversable by that user). */
function makeBaseDir(runAs: RunAs, bin: string): string {
  const candidates = [...new Set([tmpdir(), '/tmp'])];
  for (const parent of candidates) {
    if (!existsSync(parent)) continue;
    const base = mkdtempSync(join(parent, 'drawbridge-pg-'));
    chownTo(runAs, base);
    if (runAs.owner === undefined) return base;
    // Root can always write; check that the postgres user can actually reach it.
    const probe = runSync(runAs, '/bin/sh', ['-c', `test -w ${shQuote(base)} && test -x ${shQuote(join(bin, 'postgres'))}`], '/');
    if (probe.code === 0) return base;
    rmSync(base, { recursive: true, force: true });
  }
  throw new Error(`no temp dir reachable by the '${PG_OS_USER}' OS user (tried ${candidates.join(', ')}); set TMPDIR to a world-traversable directory`);
}

// ---------------------------------------------------------------------------
// Start

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const log = options.log ?? (() => {});
  const bin = findPostgresBin();
  const runAs = resolveRunAs();
  const base = makeBaseDir(runAs, bin);
  const ownDataDir = options.dataDir === undefined;
  const dataDir = ownDataDir ? join(base, 'data') : resolve(options.dataDir as string);
  const sockDir = join(base, 'sock');
  const logFile = join(base, 'server.log');
  const password = options.superuserPassword ?? randomBytes(18).toString('hex');

  const removeTemp = (): void => {
    rmSync(base, { recursive: true, force: true });
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    mkdirSync(sockDir, { mode: 0o700 });
    chownTo(runAs, sockDir);

    if (existsSync(join(dataDir, 'PG_VERSION'))) {
      if (options.superuserPassword === undefined) {
        throw new Error(`${dataDir} already holds a cluster; pass its superuserPassword to reuse it, or use an empty dataDir`);
      }
      log(`reusing existing cluster in ${dataDir}`);
    } else {
      if (!ownDataDir) {
        mkdirSync(dataDir, { recursive: true, mode: 0o700 });
        chownTo(runAs, dataDir);
      }
      await initdb(runAs, bin, dataDir, base, password, log);
    }

    const fixedPort = options.port;
    let lastError = '';
    for (let attempt = 1; attempt <= (fixedPort === undefined ? START_ATTEMPTS : 1); attempt++) {
      const port = fixedPort ?? (await freePort());
      const startArgs = ['start', '-w', '-t', '60', '-D', dataDir, '-l', logFile, '-o', serverSettings(port, sockDir, options.fsync ?? false)];
      log(`starting postgres on ${HOST}:${port} (data ${dataDir})`);
      const r = await run(runAs, join(bin, 'pg_ctl'), startArgs, base);
      if (r.code === 0) {
        log(`postgres ready on ${HOST}:${port}`);
        return makeCluster({ runAs, bin, base, dataDir, ownDataDir, port, password, log, removeTemp, startArgs, logFile });
      }
      const serverLog = tail(logFile);
      lastError = `pg_ctl start failed (exit ${String(r.code)}): ${r.out.trim()}\n--- server log (tail) ---\n${serverLog}`;
      // A timed-out start may have left a postmaster behind.
      if (existsSync(join(dataDir, 'postmaster.pid'))) await run(runAs, join(bin, 'pg_ctl'), ['stop', '-D', dataDir, '-m', 'immediate', '-w'], base);
      const portClash = /address already in use|could not (create|bind).*(socket|address)/i.test(serverLog + r.out);
      if (!portClash) break;
      log(`port ${port} is in use; retrying`);
    }
    throw new Error(lastError);
  } catch (err) {
    removeTemp();
    throw err;
  }
}

/** The server's command-line settings (pg_ctl -o). */
function serverSettings(port: number, sockDir: string, fsync: boolean): string {
  return [
    `-c listen_addresses=${HOST}`,
    `-p ${port}`,
    `-c unix_socket_directories=${shQuote(sockDir)}`,
    // Throwaway cluster: durability is pointless, speed matters. Never do this with real data.
    `-c fsync=${fsync ? 'on' : 'off'}`,
    '-c max_connections=100',
    '-c shared_buffers=32MB',
  ].join(' ');
}

async function initdb(runAs: RunAs, bin: string, dataDir: string, base: string, password: string, log: (line: string) => void): Promise<void> {
  const pwFile = join(base, 'pwfile');
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  chownTo(runAs, pwFile);
  try {
    const common = ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8'];
    log(`initdb ${dataDir}`);
    let r = await run(runAs, join(bin, 'initdb'), [...common, '--locale=C.UTF-8'], base);
    if (r.code !== 0 && /locale/i.test(r.out)) {
      log('locale C.UTF-8 unavailable; retrying initdb with --no-locale');
      // initdb cleans up a data dir it created, but not the contents of a pre-existing one.
      if (existsSync(dataDir)) for (const f of readdirSync(dataDir)) rmSync(join(dataDir, f), { recursive: true, force: true });
      r = await run(runAs, join(bin, 'initdb'), [...common, '--no-locale'], base);
    }
    if (r.code !== 0) throw new Error(`initdb failed (exit ${String(r.code)}):\n${r.out.trim()}`);
  } finally {
    rmSync(pwFile, { force: true });
  }
}

interface ClusterParts {
  runAs: RunAs;
  bin: string;
  base: string;
  dataDir: string;
  ownDataDir: boolean;
  port: number;
  password: string;
  log: (line: string) => void;
  removeTemp: () => void;
  /** pg_ctl arguments that started the server (same port, settings and log). */
  startArgs: readonly string[];
  logFile: string;
}

function makeCluster(p: ClusterParts): Cluster {
  const pgCtl = join(p.bin, 'pg_ctl');
  const running = (): boolean => existsSync(join(p.dataDir, 'postmaster.pid'));
  let stopping: Promise<void> | undefined;
  let stopped = false;

  const finish = (): void => {
    stopped = true;
    p.removeTemp();
    unregister(handle);
  };

  const handle: Live = {
    stopSync(): void {
      if (stopped) return;
      if (running()) {
        const r = runSync(p.runAs, pgCtl, ['stop', '-D', p.dataDir, '-m', 'fast', '-w', '-t', '10'], '/');
        if (r.code !== 0 && running()) runSync(p.runAs, pgCtl, ['stop', '-D', p.dataDir, '-m', 'immediate', '-w', '-t', '10'], '/');
      }
      finish();
    },
    stop(): Promise<void> {
      stopping ??= (async () => {
        if (stopped) return;
        if (running()) {
          p.log(`stopping postgres on ${HOST}:${p.port}`);
          const r = await run(p.runAs, pgCtl, ['stop', '-D', p.dataDir, '-m', 'fast', '-w', '-t', '30'], '/');
          if (r.code !== 0 && running()) {
            const r2 = await run(p.runAs, pgCtl, ['stop', '-D', p.dataDir, '-m', 'immediate', '-w', '-t', '30'], '/');
            if (r2.code !== 0 && running()) throw new Error(`pg_ctl stop failed: ${r.out.trim()} / ${r2.out.trim()}`);
          }
        }
        finish();
      })().catch((err: unknown) => {
        stopping = undefined; // let the caller retry
        throw err;
      });
      return stopping;
    },
  };
  register(handle);

  const ensureLive = (what: string): void => {
    if (stopped || stopping !== undefined) throw new Error(`cannot ${what}: the cluster on ${HOST}:${p.port} has been stopped and removed`);
  };
  const ctl = async (what: string, args: readonly string[]): Promise<void> => {
    ensureLive(what);
    p.log(`${what} postgres on ${HOST}:${p.port}`);
    const r = await run(p.runAs, pgCtl, args, p.base);
    if (r.code !== 0)
      throw new Error(`pg_ctl ${args[0] ?? ''} failed (exit ${String(r.code)}): ${r.out.trim()}\n--- server log (tail) ---\n${tail(p.logFile)}`);
  };

  const urlFor = (database: string, user = 'postgres', password?: string): string => {
    const pw = password ?? (user === 'postgres' ? p.password : undefined);
    const auth = pw === undefined ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${encodeURIComponent(pw)}`;
    return `postgres://${auth}@${HOST}:${p.port}/${encodeURIComponent(database)}`;
  };

  return {
    host: HOST,
    port: p.port,
    superuserUrl: urlFor('postgres'),
    dataDir: p.dataDir,
    urlFor,
    stop: () => handle.stop(),
    // restart keeps the options of the previous start (postmaster.opts).
    restart: () => ctl('restarting', ['restart', '-D', p.dataDir, '-m', 'fast', '-w', '-t', '60', '-l', p.logFile]),
    stopServer: () => ctl('stopping (keeping the data)', ['stop', '-D', p.dataDir, '-m', 'fast', '-w', '-t', '60']),
    startServer: () => ctl('starting again', p.startArgs),
  };
}
