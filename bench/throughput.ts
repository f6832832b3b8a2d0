// Throughput over Streamable HTTP with 50 concurrent clients: governed reads per second and
// p50/p99 latency as the callers see them, closed loop (each client sends its next call when the
// last one answered), for a list of scenarios run one after another against the same database:
// direct `pg` (a pool of 50) and @modelcontextprotocol/server-postgres over stdio as baselines,
// and `drawbridge serve --http` set-ups (SQLite state; PostgreSQL state and replicas are one
// entry each in SCENARIOS). For a gateway it also reports the journal's share of a call's
// latency, from the server's own clock (DRAWBRIDGE_JOURNAL_TIMINGS, src/state/timing.ts): the
// time calls spent awaiting their journal appends, over the time the callers waited in all.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import pg from 'pg';
import type { JournalTimings } from '../src/state/timing.js';
import type { ConcurrentJournalNumbers } from './journal.js';
import { freePort } from '../test/support/net.js';
import type { TestIdp } from '../test/support/oidc.js';
import { answerText, childEnv, DRAWBRIDGE_CLI, PLAIN, REPO_ROOT, SERVER_POSTGRES, sqlFor, stdioClient, type ToolAnswer } from './latency.js';
import { writeBenchConfig } from './setup.js';
import { int, ms, percentile, ratio, table } from './support.js';

export const THROUGHPUT_CLIENTS = 50;
/** A governed read of one row: the pipeline's fixed cost dominates, which is what this section measures. */
export const THROUGHPUT_SQL = sqlFor(PLAIN, 1);

/** What every scenario gets: the bench database (as the gateway role), the OpenID provider, and the gateway's secrets. */
export interface ThroughputContext {
  readonly gatewayUrl: string;
  readonly env: Readonly<Record<string, string>>;
  readonly idp: TestIdp;
  /** PostgreSQL state for the gateway scenarios that share it (a database the gateway role cannot reach through run_sql). */
  readonly stateUrl?: () => Promise<string>;
}

/** A scenario started and ready: one caller per client, each sticky to its server. */
interface Running {
  readonly callers: ReadonlyArray<() => Promise<'ok' | string>>;
  /** The server processes (for their CPU time); none for the in-process pg pool. */
  readonly pids: readonly number[];
  /** Stops everything it started; for a gateway, what its journal timings say (summed over replicas). */
  stop(): Promise<JournalTimings | null>;
}

export interface ThroughputScenario {
  readonly name: string;
  /** One line on what is measured, for the report. */
  readonly description: string;
  start(ctx: ThroughputContext): Promise<Running>;
}

export interface ThroughputResult {
  readonly name: string;
  readonly description: string;
  /** Calls answered (ok) inside the measured window. */
  readonly calls: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  /** Calls refused or failed during the whole run (warm-up included), and the first such answer. */
  readonly errors: number;
  readonly firstError: string | null;
  /** For a gateway: ms per call spent awaiting the journal (intent + outcome), and its share of the callers' mean latency. */
  readonly journal: { readonly msPerCall: number; readonly intentMsPerCall: number; readonly share: number; readonly appendsPerCall: number } | null;
  /** CPU used during the measured window, in cores (1 = one core busy): the server process(es), this load generator, the whole machine. */
  readonly cpu: { readonly server: number; readonly loadGenerator: number; readonly machine: number; readonly cores: number };
}

// ---------------------------------------------------------------------------
// CPU accounting (Linux /proc): what limits a row on a small machine

interface CpuSnapshot {
  readonly at: number;
  readonly bench: NodeJS.CpuUsage;
  /** utime + stime of the server processes, in clock ticks. */
  readonly serverTicks: number;
  /** Busy and total jiffies of the whole machine. */
  readonly machineBusy: number;
  readonly machineTotal: number;
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const TICKS_PER_SECOND = 100;

function processTicks(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  } catch {
    return 0;
  }
}

function snapshot(pids: readonly number[]): CpuSnapshot {
  let machineBusy = 0;
  let machineTotal = 0;
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    machineTotal = cpu.reduce((a, b) => a + b, 0);
    // idle and iowait are not busy.
    machineBusy = machineTotal - (cpu[3] ?? 0) - (cpu[4] ?? 0);
  } catch {
    // not Linux: the machine column stays 0
  }
  return { at: performance.now(), bench: process.cpuUsage(), serverTicks: pids.reduce((n, pid) => n + processTicks(pid), 0), machineBusy, machineTotal };
}

function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): ThroughputResult['cpu'] {
  const seconds = (b.at - a.at) / 1000;
  const benchUs = b.bench.user - a.bench.user + (b.bench.system - a.bench.system);
  const cores = availableParallelism();
  return {
    server: (b.serverTicks - a.serverTicks) / TICKS_PER_SECOND / seconds,
    loadGenerator: benchUs / 1e6 / seconds,
    machine: b.machineTotal > a.machineTotal ? ((b.machineBusy - a.machineBusy) / (b.machineTotal - a.machineTotal)) * cores : 0,
    cores,
  };
}

// ---------------------------------------------------------------------------
// Child processes, killed by the hard timeout of bench/run.ts too

const children = new Set<ChildProcess>();

export function killThroughputChildren(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

// ---------------------------------------------------------------------------
// Scenarios

export function pgPoolScenario(): ThroughputScenario {
  return {
    name: 'pg',
    description:
      `a \`pg.Pool\` of ${THROUGHPUT_CLIENTS} connections, ${THROUGHPUT_CLIENTS} concurrent \`pool.query(sql)\` loops: ` + 'no MCP, no policy, no journal',
    async start(ctx) {
      const pool = new pg.Pool({ connectionString: ctx.gatewayUrl, max: THROUGHPUT_CLIENTS });
      pool.on('error', () => undefined);
      const caller = async () => {
        const r = await pool.query(THROUGHPUT_SQL);
        return r.rows.length === 1 ? 'ok' : `pg returned ${r.rows.length} rows`;
      };
      return { callers: Array.from({ length: THROUGHPUT_CLIENTS }, () => caller), pids: [], stop: async () => (await pool.end(), null) };
    },
  };
}

export function serverPostgresScenario(): ThroughputScenario {
  return {
    name: 'server-postgres',
    description:
      `one \`@modelcontextprotocol/server-postgres\` over stdio (it serves one client per process), ${THROUGHPUT_CLIENTS} concurrent ` +
      'callers on its one MCP session, tool `query`: no policy, no masking, no journal',
    async start(ctx) {
      const { client, transport, stderr } = await stdioClient('server-postgres', process.execPath, [SERVER_POSTGRES, ctx.gatewayUrl], childEnv({}));
      const pid = transport.pid;
      const caller = async () => {
        const a = (await client.callTool({ name: 'query', arguments: { sql: THROUGHPUT_SQL } }, undefined, { timeout: 60_000 })) as ToolAnswer;
        if (a.isError) return `server-postgres failed: ${answerText(a)} ${stderr()}`;
        return (JSON.parse(answerText(a)) as unknown[]).length === 1 ? 'ok' : 'server-postgres returned a wrong row count';
      };
      return {
        callers: Array.from({ length: THROUGHPUT_CLIENTS }, () => caller),
        pids: pid === null ? [] : [pid],
        async stop() {
          await client.close().catch(() => undefined);
          if (pid !== null) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // already gone
            }
          }
          return null;
        },
      };
    },
  };
}

interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  readonly timingsFile: string;
  readonly stderr: () => string;
}

async function startServe(configDir: string, port: number, env: Record<string, string>): Promise<Served> {
  const timingsFile = join(configDir, 'journal-timings.json');
  // BENCH_CPU_PROF=DIR: each gateway writes a V8 CPU profile there when it exits (for `node --cpu-prof` analysis).
  const profile = process.env['BENCH_CPU_PROF'];
  const node = profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : [];
  const child = spawn(process.execPath, [...node, DRAWBRIDGE_CLI, 'serve', '--config', configDir, '--http', `127.0.0.1:${port}`], {
    cwd: REPO_ROOT,
    env: childEnv({ ...env, DRAWBRIDGE_JOURNAL_TIMINGS: timingsFile }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve --http did not announce itself:\n${stderr}`)), 30_000);
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 50_000) stderr += chunk;
      const found = /over Streamable HTTP at (http:\/\/[^\s"]+)/.exec(stderr)?.[1];
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve --http exited with ${String(code)}:\n${stderr}`));
    });
  });
  return { child, url, timingsFile, stderr: () => stderr };
}

function readTimings(file: string): JournalTimings | null {
  if (!existsSync(file)) return null;
  return JSON.parse(readFileSync(file, 'utf8')) as JournalTimings;
}

function sumTimings(all: ReadonlyArray<JournalTimings | null>): JournalTimings | null {
  const present = all.filter((t): t is JournalTimings => t !== null);
  if (present.length === 0) return null;
  const appends: Record<string, number> = {};
  const msBy: Record<string, number> = {};
  for (const t of present) {
    for (const [k, v] of Object.entries(t.appends)) appends[k] = (appends[k] ?? 0) + (v ?? 0);
    for (const [k, v] of Object.entries(t.ms)) msBy[k] = (msBy[k] ?? 0) + (v ?? 0);
  }
  return { appends, ms: msBy };
}

/**
 * `drawbridge serve --http` × `replicas`, each with its own config directory (as on separate hosts);
 * clients are spread round-robin over them, each sticky to its replica (its own MCP session).
 * `state: 'sqlite'` is the embedded default (one replica only: a SQLite file is one host's);
 * 'postgres' shares state.url from ctx.stateUrl.
 */
export function drawbridgeHttpScenario(options: { name: string; state: 'sqlite' | 'postgres'; replicas: number }): ThroughputScenario {
  if (options.state === 'sqlite' && options.replicas !== 1) throw new TypeError('SQLite state serves one replica');
  const where = options.state === 'sqlite' ? 'SQLite state (journal synced FULL)' : 'PostgreSQL state (`state.url`)';
  return {
    name: options.name,
    description:
      `${options.replicas === 1 ? 'one' : options.replicas} \`drawbridge serve --http\` ` +
      `${options.replicas === 1 ? 'process' : 'replicas, separate config directories,'} with ${where}; ` +
      `${THROUGHPUT_CLIENTS} MCP SDK clients (StreamableHTTPClientTransport, bearer token from the OpenID provider), ` +
      `${options.replicas === 1 ? 'one session each' : 'spread round-robin, each sticky to its replica'}`,
    async start(ctx) {
      const env: Record<string, string> = { ...ctx.env };
      if (options.state === 'postgres') {
        if (!ctx.stateUrl) throw new Error(`${options.name}: no PostgreSQL state database`);
        env['DRAWBRIDGE_STATE_URL'] = await ctx.stateUrl();
      }
      const served: Served[] = [];
      const clients: Client[] = [];
      const stop = async (): Promise<JournalTimings | null> => {
        await Promise.allSettled(clients.map((c) => c.close()));
        await Promise.all(served.map((s) => stopChild(s.child)));
        return sumTimings(served.map((s) => readTimings(s.timingsFile)));
      };
      try {
        for (let r = 0; r < options.replicas; r++) {
          const port = await freePort();
          const resource = `http://127.0.0.1:${port}/mcp`;
          const dir = writeBenchConfig({ oidc: { issuer: ctx.idp.issuer, audience: resource }, sharedState: options.state === 'postgres' });
          served.push(await startServe(dir, port, env));
        }
        const tokens = await Promise.all(served.map(async (s) => (await ctx.idp.deviceLogin(s.url, 'alice', 'mcp')).access_token));
        const callers: Array<() => Promise<'ok' | string>> = [];
        for (let i = 0; i < THROUGHPUT_CLIENTS; i++) {
          const replica = i % served.length;
          const s = served[replica] as Served;
          const client = new Client({ name: `drawbridge-bench-http-${i}`, version: '1.0.0' });
          await client.connect(
            new StreamableHTTPClientTransport(new URL(s.url), { requestInit: { headers: { Authorization: `Bearer ${tokens[replica] ?? ''}` } } }),
          );
          clients.push(client);
          // As an agent would: list the tools first (the SDK client then validates structured output against outputSchema).
          await client.listTools();
          callers.push(async () => {
            const a = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: THROUGHPUT_SQL } }, undefined, {
              timeout: 60_000,
            })) as ToolAnswer;
            if (a.isError) return `refused: ${answerText(a).slice(0, 300)}`;
            return a.structuredContent?.rowCount === 1 ? 'ok' : `wrong row count ${String(a.structuredContent?.rowCount)}`;
          });
        }
        return { callers, pids: served.flatMap((x) => (x.child.pid === undefined ? [] : [x.child.pid])), stop };
      } catch (error) {
        await stop().catch(() => undefined);
        throw new Error(`${options.name} did not start: ${(error as Error).message}\n${served.map((s) => s.stderr()).join('\n')}`, { cause: error });
      }
    },
  };
}

/**
 * The scenarios of one run, in order. (b) PostgreSQL state and (c) replicas on it are one entry
 * each: drawbridgeHttpScenario({ name, state: 'postgres', replicas: 1 | 2 | 3 }).
 */
/** Keys of the rows for BENCH_ROWS, in the report's order. */
const ROW_KEYS = ['pg', 'server-postgres', 'a', 'b', 'c2', 'c3'] as const;

/**
 * The rows to run: all of them, or those BENCH_ROWS names (comma-separated keys of ROW_KEYS, in
 * the order given, repeats allowed: `BENCH_ROWS=b,c3,b,c3` measures two variants back to back twice).
 */
export function throughputScenarios(options: { postgresState: boolean; rows?: string }): ThroughputScenario[] {
  const make: Record<(typeof ROW_KEYS)[number], () => ThroughputScenario | null> = {
    pg: () => pgPoolScenario(),
    'server-postgres': () => serverPostgresScenario(),
    a: () => drawbridgeHttpScenario({ name: '(a) Drawbridge, SQLite', state: 'sqlite', replicas: 1 }),
    b: () => (options.postgresState ? drawbridgeHttpScenario({ name: '(b) Drawbridge, PostgreSQL', state: 'postgres', replicas: 1 }) : null),
    c2: () => (options.postgresState ? drawbridgeHttpScenario({ name: '(c) Drawbridge, PostgreSQL, 2 replicas', state: 'postgres', replicas: 2 }) : null),
    c3: () => (options.postgresState ? drawbridgeHttpScenario({ name: '(c) Drawbridge, PostgreSQL, 3 replicas', state: 'postgres', replicas: 3 }) : null),
  };
  const selected = (options.rows ?? process.env['BENCH_ROWS'] ?? '').trim();
  const keys = selected === '' ? [...ROW_KEYS] : selected.split(',').map((k) => k.trim());
  const unknown = keys.filter((k) => !(ROW_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new TypeError(`BENCH_ROWS: unknown row ${unknown.join(', ')} (rows: ${ROW_KEYS.join(', ')})`);
  return keys.map((k) => make[k as (typeof ROW_KEYS)[number]]()).filter((s): s is ThroughputScenario => s !== null);
}

// ---------------------------------------------------------------------------
// The load

interface Load {
  readonly latencies: number[];
  readonly seconds: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** Every call of the run, warm-up included: what the server's journal timings cover. */
  readonly allCalls: number;
  readonly allMs: number;
}

/** Closed loop: every caller calls again as soon as it is answered, for warm-up + measured time. */
async function drive(callers: ReadonlyArray<() => Promise<'ok' | string>>, warmupMs: number, measureMs: number): Promise<Load> {
  const begin = performance.now();
  const windowStart = begin + warmupMs;
  const windowEnd = windowStart + measureMs;
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  let allCalls = 0;
  let allMs = 0;
  await Promise.all(
    callers.map(async (call) => {
      while (performance.now() < windowEnd) {
        const t0 = performance.now();
        let outcome: string;
        try {
          outcome = await call();
        } catch (error) {
          outcome = `failed: ${(error as Error).message}`;
        }
        const t1 = performance.now();
        allCalls += 1;
        allMs += t1 - t0;
        if (outcome !== 'ok') {
          errors += 1;
          firstError ??= outcome;
        } else if (t1 >= windowStart && t1 <= windowEnd) {
          latencies.push(t1 - t0);
        }
      }
    }),
  );
  return { latencies, seconds: measureMs / 1000, errors, firstError, allCalls, allMs };
}

export async function measureThroughput(
  scenarios: readonly ThroughputScenario[],
  ctx: ThroughputContext,
  timing: { warmupMs: number; measureMs: number },
  log: (line: string) => void,
): Promise<ThroughputResult[]> {
  const results: ThroughputResult[] = [];
  for (const scenario of scenarios) {
    log(`throughput: ${scenario.name}, ${THROUGHPUT_CLIENTS} clients, ${timing.warmupMs / 1000} s warm-up + ${timing.measureMs / 1000} s`);
    const running = await scenario.start(ctx);
    let load: Load;
    let timings: JournalTimings | null;
    const snaps: CpuSnapshot[] = [];
    const timers = [timing.warmupMs, timing.warmupMs + timing.measureMs].map((at) => setTimeout(() => snaps.push(snapshot(running.pids)), at));
    try {
      load = await drive(running.callers, timing.warmupMs, timing.measureMs);
    } finally {
      for (const t of timers) clearTimeout(t);
      timings = await running.stop();
    }
    const [from, to] = snaps;
    const cpu = from && to ? cpuBetween(from, to) : { server: 0, loadGenerator: 0, machine: 0, cores: availableParallelism() };
    const calls = load.latencies.length;
    const meanCallMs = load.allMs / Math.max(1, load.allCalls);
    const journal =
      timings === null
        ? null
        : (() => {
            const intent = timings.ms.call ?? 0;
            const total = intent + (timings.ms.outcome ?? 0);
            const appended = (timings.appends.call ?? 0) + (timings.appends.outcome ?? 0);
            const perCall = total / Math.max(1, load.allCalls);
            return {
              msPerCall: perCall,
              intentMsPerCall: intent / Math.max(1, load.allCalls),
              share: perCall / meanCallMs,
              appendsPerCall: appended / Math.max(1, load.allCalls),
            };
          })();
    results.push({
      name: scenario.name,
      description: scenario.description,
      calls,
      seconds: load.seconds,
      perSecond: calls / load.seconds,
      p50: calls > 0 ? percentile(load.latencies, 50) : Number.NaN,
      p99: calls > 0 ? percentile(load.latencies, 99) : Number.NaN,
      errors: load.errors,
      firstError: load.firstError,
      journal,
      cpu,
    });
    const last = results.at(-1) as ThroughputResult;
    log(
      `throughput: ${scenario.name}: ${last.perSecond.toFixed(0)} calls/s, p50 ${ms(last.p50)} ms, p99 ${ms(last.p99)} ms, ${last.errors} errors` +
        (journal ? `, journal ${ms(journal.msPerCall)} ms/call (${(journal.share * 100).toFixed(1)}%)` : '') +
        `; CPU server ${cpu.server.toFixed(2)}, load generator ${cpu.loadGenerator.toFixed(2)}, machine ${cpu.machine.toFixed(2)} of ${cpu.cores} cores`,
    );
  }
  return results;
}

// ---------------------------------------------------------------------------
// The report section

export const THROUGHPUT_HEADING = '## Throughput over Streamable HTTP, 50 concurrent clients';

export function renderThroughput(
  results: readonly ThroughputResult[],
  timing: { warmupMs: number; measureMs: number; loadAverage?: string },
  journal: readonly ConcurrentJournalNumbers[] = [],
): string {
  const out: string[] = [THROUGHPUT_HEADING, ''];
  out.push(
    `\`${THROUGHPUT_SQL}\`, ${THROUGHPUT_CLIENTS} concurrent callers in closed loop (each calls again as soon as it is answered), ` +
      `${timing.warmupMs / 1000} s warm-up then ${timing.measureMs / 1000} s measured per row, the rows one after another in one run; ` +
      'the load generator runs in the benchmark process on the same machine, so it competes with the server for the same cores ' +
      `(load average when the section started: ${timing.loadAverage ?? 'unknown'}). ` +
      'Calls/s counts answers received inside the measured window; p50/p99 are of those calls, measured by the caller. Rows:',
    '',
  );
  for (const r of results) out.push(`- **${r.name}**: ${r.description}.`);
  out.push('');
  const pg = results.find((r) => r.name === 'pg');
  const a = results.find((r) => r.name.startsWith('(a)'));
  out.push(
    table(
      [
        'Set-up',
        'Calls/s',
        'p50 (ms)',
        'p99 (ms)',
        '÷ pg (calls/s)',
        '÷ (a) (calls/s)',
        'Journal ms per call',
        'Journal share of latency',
        'Errors',
        'CPU: server / load generator / machine (cores)',
      ],
      results.map((r) => [
        r.name,
        int(r.perSecond),
        ms(r.p50),
        ms(r.p99),
        pg ? ratio(r.perSecond / pg.perSecond) : '',
        a ? ratio(r.perSecond / a.perSecond) : '',
        r.journal ? `${ms(r.journal.msPerCall)} (intent ${ms(r.journal.intentMsPerCall)})` : '—',
        r.journal ? `${(r.journal.share * 100).toFixed(1)}%` : '—',
        String(r.errors),
        `${r.cpu.server.toFixed(2)} / ${r.cpu.loadGenerator.toFixed(2)} / ${r.cpu.machine.toFixed(2)} of ${r.cpu.cores}`,
      ]),
    ),
  );
  out.push('');
  out.push(
    '*Journal ms per call*: the time a call spent awaiting its two journal appends (the intent, durable before the backend is touched, and the ' +
      'outcome, committed without an fsync of its own), as the gateway measured it around `JournalStore.append` (`DRAWBRIDGE_JOURNAL_TIMINGS`), ' +
      'queueing for the group commit included, averaged over every call of the row (warm-up included); its *share* is that over the mean latency ' +
      'the callers measured for the same calls. *CPU*: cores busy during the measured window (from /proc): the server process(es) ' +
      '(for pg: none, the pool lives in the load generator), the benchmark process generating the load (MCP clients, their JSON and schema ' +
      'validation), and the whole machine (the rest is mostly PostgreSQL’s backends).',
  );
  if (journal.length > 0) {
    const first = journal[0] as ConcurrentJournalNumbers;
    out.push(
      '',
      `The SQLite journal alone, in process: ${first.callers} concurrent callers, ${int(first.calls)} calls, each awaiting its durable intent, one turn ` +
        'of the event loop (standing in for the backend), then its outcome (`durable: false`), as the pipeline does; synced FULL. ' +
        '*Group commit* is the engine (`sqliteJournal`: the appends of one event-loop turn share one transaction and one fsync); ' +
        '*commit per append* is the same writer with one transaction each (what the engine did before).',
      '',
      table(
        ['Journal', 'Calls/s', 'p50 (ms)', 'p99 (ms)'],
        journal.map((j) => [j.mode, int(j.callsPerSecond), ms(j.p50), ms(j.p99)]),
      ),
    );
  }
  const failed = results.filter((r) => r.firstError !== null);
  for (const r of failed) out.push('', `${r.name}: first error: ${r.firstError ?? ''}`);
  out.push('');
  return out.join('\n');
}
