// `npm run bench`: one run measures
//   1. per-call latency of the same SELECTs (1 / 100 / 10,000 rows) through
//      direct pg, Drawbridge over stdio and @modelcontextprotocol/server-postgres
//      over stdio, interleaved round-robin, against a throwaway PostgreSQL;
//   2. where Drawbridge's time goes (stages replayed in process, and the journal
//      synced FULL vs NORMAL vs in memory);
//   3. masking throughput (cells/s) and detector scan throughput (MB/s);
//   4. journal appends per second (sync FULL and NORMAL);
//   5. per-call latency of `kubectl get pods -n shop` through Drawbridge over stdio, direct
//      @kubernetes/client-node and mcp-server-kubernetes over stdio (with a kubectl shim),
//      interleaved round-robin, against the in-process fake Kubernetes API server;
//   6. per-call latency of `uname -n` over SSH through direct ssh2 (one connection kept, and a
//      new connection per call), Drawbridge over stdio and ssh-mcp over stdio, interleaved
//      round-robin (with ssh2 sending ssh-mcp's env request as a fifth target), against a
//      throwaway OpenSSH sshd on 127.0.0.1;
//   7. throughput over Streamable HTTP with 50 concurrent clients (bench/throughput.ts): direct
//      pg, server-postgres over stdio and `drawbridge serve --http` set-ups, one after another;
//   8. what the observers cost a call (bench/observability.ts): in-process callTool with no
//      observers, log + metrics, and log + metrics + tracing exporting over OTLP/HTTP, interleaved;
//   9. per-call latency of a GET through the http_request backend (bench/http.ts): Node's fetch
//      directly, node:http with a new connection per call, Drawbridge in process (callTool) and
//      over stdio, interleaved round-robin, against a loopback node:http API;
// then prints a Markdown report and writes it to bench/results.md.
// Everything it starts is stopped and every temp dir removed, also on the hard
// timeout (BENCH_TIMEOUT_S, default 480). BENCH_QUICK=1 runs far fewer calls (for
// trying the harness, not for numbers). BENCH_ONLY=throughput runs section 7 alone and
// replaces that section of bench/results.md, leaving the others as they were;
// BENCH_ONLY=observability likewise for section 8, BENCH_ONLY=http for section 9.
// No assertions on timings anywhere.

import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { concurrentJournal, journalThroughput, type ConcurrentJournalNumbers, type JournalNumbers } from './journal.js';
import {
  clientNodeTarget,
  drawbridgeKubeTarget,
  KUBE_COMMAND,
  kubectlShimDir,
  mcpServerKubernetesTarget,
  measureKube,
  shimAloneMs,
  shimArgv,
  startKubeBench,
  type KubeBench,
  type KubeSample,
  type KubeTarget,
} from './kube.js';
import {
  drawbridgeTarget,
  measureRoundRobin,
  pgTarget,
  PLAIN,
  REPO_ROOT,
  serverPostgresTarget,
  sqlFor,
  unexpectedMasking,
  WITH_EMAIL,
  type QueryShape,
  type Sample,
  type Target,
} from './latency.js';
import {
  checkSshTargets,
  drawbridgeSshTarget,
  loginShellMs,
  measureSsh,
  SSH_COMMAND,
  SSH_MCP_AGENT_ENV,
  ssh2PerCallTarget,
  ssh2Target,
  sshMcpTarget,
  sshdVersion,
  sshMcpVersion,
  startSshBench,
  type SshBench,
  type SshSample,
  type SshTarget,
} from './ssh.js';
import { maskingTable, maskingThroughput, scanWorkloads, type MaskingNumbers, type ScanNumbers } from './masking.js';
import { fetchTarget, HTTP_HEADING, inProcessTarget, measureHttp, newConnectionTarget, renderHttp, startHttpBench, stdioTarget } from './http.js';
import type { HttpBench, HttpNumbers, HttpTarget } from './http.js';
import { measureObservability, OBSERVABILITY_HEADING, renderObservability, type ObservabilityNumbers } from './observability.js';
import { profileJournalModes, profileStages, STAGES, type JournalModeProfile, type StageProfile } from './profile.js';
import { BENCH_HASH_KEY, startBenchDatabase, stateDatabase, writeBenchConfig, type BenchDatabase } from './setup.js';
import { cleanupTempDirs, int, machineInfo, ms, ratio, table, tempDir, type MachineInfo } from './support.js';
import { killThroughputChildren, measureThroughput, renderThroughput, THROUGHPUT_HEADING, throughputScenarios, type ThroughputResult } from './throughput.js';
import { startTestIdp, type TestIdp } from '../test/support/oidc.js';

const QUICK = process.env['BENCH_QUICK'] === '1';
const ONLY = process.env['BENCH_ONLY'] ?? '';
const THROUGHPUT_TIMING = QUICK ? { warmupMs: 1_000, measureMs: 2_000 } : { warmupMs: 3_000, measureMs: 10_000 };
const HARD_TIMEOUT_S = Number(process.env['BENCH_TIMEOUT_S'] ?? 480);
const SIZES = [1, 100, 10_000] as const;
const WARMUP = QUICK ? 3 : 20;
const callsFor = (rows: number) => (QUICK ? 5 : rows >= 10_000 ? 30 : 200);
// mcp-server-kubernetes starts a process per call (the kubectl shim), ~0.5 s each: fewer calls.
const KUBE_WARMUP = QUICK ? 2 : 5;
const KUBE_CALLS = QUICK ? 5 : 60;
const SSH_WARMUP = QUICK ? 2 : 10;
const SSH_CALLS = QUICK ? 5 : 100;
const RESULTS = join(REPO_ROOT, 'bench', 'results.md');
const HTTP_CALLS = QUICK ? { warmup: 10, calls: 30 } : { warmup: 50, calls: 500 };
const OBSERVABILITY_CALLS = QUICK ? { warmup: 10, calls: 50 } : { warmup: 200, calls: 2_000 };

const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

interface Report {
  readonly machine: MachineInfo;
  readonly postgres: string;
  readonly latency: Sample[];
  readonly stages: StageProfile[];
  readonly journalModes: JournalModeProfile[];
  readonly observability: ObservabilityNumbers;
  readonly masking: MaskingNumbers;
  readonly scans: ScanNumbers[];
  readonly journal: JournalNumbers[];
  readonly kube: KubeNumbers;
  readonly ssh: SshNumbers;
  readonly http: HttpNumbers;
  readonly throughput: ThroughputResult[];
  readonly concurrentJournal: ConcurrentJournalNumbers[];
  readonly seconds: number;
}

interface KubeNumbers {
  readonly latency: KubeSample[];
  readonly pods: number;
  /** Distinct command lines the kubectl shim received from mcp-server-kubernetes. */
  readonly shimArgv: string[];
  /** Median ms of running the shim alone (process start + client-node + one list). */
  readonly shimAloneMs: number;
  readonly mcpServerKubernetesVersion: string;
}

interface SshNumbers {
  readonly latency: SshSample[];
  readonly sshMcpVersion: string;
  readonly sshd: string;
  /** The login shell running the command locally as sshd starts it (median ms), for the report. */
  readonly loginShell: { shell: string; withSshClient: number; without: number };
}

// ---------------------------------------------------------------------------
// Cleanup, shared by the normal path and the hard timeout

let database: BenchDatabase | null = null;
const targets: Target[] = [];
const kubeTargets: KubeTarget[] = [];
let kubeBench: KubeBench | null = null;
const sshTargets: SshTarget[] = [];
let sshBench: SshBench | null = null;
let idp: TestIdp | null = null;
const httpTargets: HttpTarget[] = [];
let httpBench: HttpBench | null = null;

function killChildren(): void {
  killThroughputChildren();
  for (const t of [...targets, ...kubeTargets, ...sshTargets, ...httpTargets]) {
    if (t.pid === null) continue;
    try {
      process.kill(t.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function cleanup(): Promise<void> {
  await Promise.allSettled([...targets, ...kubeTargets, ...sshTargets, ...httpTargets].map((t) => t.close()));
  httpTargets.length = 0;
  if (httpBench) await httpBench.close().catch(() => undefined);
  httpBench = null;
  killChildren();
  targets.length = 0;
  kubeTargets.length = 0;
  sshTargets.length = 0;
  if (database) await database.cluster.stop().catch(() => undefined);
  database = null;
  if (kubeBench) await kubeBench.fake.close().catch(() => undefined);
  kubeBench = null;
  if (sshBench) await sshBench.sshd.stop().catch(() => undefined);
  sshBench = null;
  if (idp) await idp.stop().catch(() => undefined);
  idp = null;
  cleanupTempDirs();
}

const hardTimeout = setTimeout(() => {
  log(`hard timeout after ${HARD_TIMEOUT_S}s: stopping everything`);
  killChildren();
  cleanupTempDirs();
  // The cluster module stops its cluster on process exit. The sshd has its own process group
  // and temp dir: stop() takes both down (SIGKILL after 3 s), so wait for it, but not forever.
  const sshd = sshBench?.sshd.stop() ?? Promise.resolve();
  void Promise.race([sshd, new Promise((r) => setTimeout(r, 5_000))]).finally(() => process.exit(2));
}, HARD_TIMEOUT_S * 1000);

// ---------------------------------------------------------------------------

async function main(): Promise<Report> {
  const started = performance.now();
  const machine = machineInfo();
  log(`${machine.node} on ${machine.cpu} (${machine.cores} cores)${QUICK ? ' — QUICK mode, numbers are not meaningful' : ''}`);

  database = await startBenchDatabase(log);
  const postgres = database.serverVersion;
  const env = { DB_URL: database.gatewayUrl, HASH_KEY: BENCH_HASH_KEY };
  const configDir = writeBenchConfig();
  const configDirNormal = writeBenchConfig({ sync: 'normal' });

  // 1. Latency: pg, Drawbridge, server-postgres (+ Drawbridge with the journal synced NORMAL), interleaved.
  targets.push(await pgTarget(database.gatewayUrl));
  targets.push(await drawbridgeTarget('drawbridge', configDir, env));
  targets.push(await serverPostgresTarget(database.gatewayUrl));
  // The same gateway with the journal synced NORMAL: isolates the cost of fsync end to end.
  targets.push(await drawbridgeTarget('drawbridge-normal', configDirNormal, env));
  const latency: Sample[] = [];
  for (const shape of [PLAIN, WITH_EMAIL]) {
    for (const rows of SIZES) {
      const calls = callsFor(rows);
      log(`latency: ${rows} rows (${shape.selectsEmail ? 'with email' : 'plain'}), ${WARMUP} warm-up + ${calls} calls × ${targets.length} targets`);
      latency.push(...(await measureRoundRobin(targets, shape, rows, { warmup: WARMUP, calls })));
    }
  }
  await Promise.allSettled(targets.map((t) => t.close()));
  targets.length = 0;

  // 7. Throughput over Streamable HTTP (needs the database; reported after the latency table).
  const throughput = await throughputSection(database);
  const concurrentJournal = await concurrentJournals();

  // 2. Where the time goes (in process).
  log('profile: pipeline stages in process');
  const profileDir = tempDir('profile');
  const stages = await profileStages(
    configDir,
    env,
    [
      { shape: PLAIN, rows: 1, iterations: QUICK ? 5 : 100 },
      { shape: PLAIN, rows: 100, iterations: QUICK ? 5 : 100 },
      { shape: PLAIN, rows: 10_000, iterations: QUICK ? 3 : 20 },
      { shape: WITH_EMAIL, rows: 10_000, iterations: QUICK ? 3 : 20 },
    ],
    profileDir,
  );
  log('profile: journal durability (in-process callTool, 1 row)');
  const journalModes = await profileJournalModes(configDir, env, sqlFor(PLAIN, 1), QUICK ? 10 : 200, profileDir);
  // 8. The observers' cost (in process, the same database).
  const observability = await measureObservability(configDir, env, sqlFor(PLAIN, 1), OBSERVABILITY_CALLS, profileDir, log);

  await database.cluster.stop();
  database = null;

  // 3. Masking and detectors.
  log('masking: 10,000 × 6 result');
  const masking = maskingThroughput(QUICK ? 2 : 7);
  log('detectors: 10 MB of text');
  const scans = scanWorkloads(QUICK);

  // 4. Journal.
  log('journal: appends with sync full and normal');
  const journal = [journalThroughput('full', QUICK ? 0.5 : 3, 100_000), journalThroughput('normal', QUICK ? 0.5 : 3, 100_000)];

  // 5. kubectl.
  const kube = await kubeLatency();

  // 6. SSH.
  const ssh = await sshLatency();

  // 9. http_request.
  const http = await httpLatency();

  return {
    machine,
    postgres,
    latency,
    stages,
    journalModes,
    observability,
    masking,
    scans,
    journal,
    kube,
    ssh,
    http,
    throughput,
    concurrentJournal,
    seconds: (performance.now() - started) / 1000,
  };
}

/** The 1, 5 and 15 minute load averages when the throughput section started: other work on the machine shows in its numbers. */
let throughputLoad = 'unknown';

async function throughputSection(db: BenchDatabase): Promise<ThroughputResult[]> {
  throughputLoad = loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
  idp = await startTestIdp();
  try {
    const ctx = { gatewayUrl: db.gatewayUrl, env: { DB_URL: db.gatewayUrl, HASH_KEY: BENCH_HASH_KEY }, idp, stateUrl: () => stateDatabase(db) };
    return await measureThroughput(throughputScenarios({ postgresState: true }), ctx, THROUGHPUT_TIMING, log);
  } finally {
    await idp.stop().catch(() => undefined);
    idp = null;
  }
}

/** The SQLite journal alone with 50 concurrent callers: group commit against one commit per append, twice each, alternating. */
async function concurrentJournals(): Promise<ConcurrentJournalNumbers[]> {
  log('journal: 50 concurrent callers, group commit vs commit per append');
  const calls = QUICK ? 500 : 5_000;
  const out: ConcurrentJournalNumbers[] = [];
  for (const mode of ['group commit', 'commit per append', 'group commit', 'commit per append'] as const) out.push(await concurrentJournal(mode, 50, calls));
  // The second round of each (the first warms the file system and the page cache).
  return out.slice(2);
}

/** BENCH_ONLY=throughput: section 7 alone, written over its section of bench/results.md (or inserted after the latency table). */
async function throughputOnly(): Promise<string> {
  const machine = machineInfo();
  log(`${machine.node} on ${machine.cpu} (${machine.cores} cores), throughput section only${QUICK ? ' — QUICK mode' : ''}`);
  database = await startBenchDatabase(log);
  const results = await throughputSection(database);
  const journal = await concurrentJournals();
  const section =
    renderThroughput(results, { ...THROUGHPUT_TIMING, loadAverage: throughputLoad }, journal) +
    `\nMeasured alone by \`BENCH_ONLY=throughput npm run bench\` on ${machine.date} (${machine.cpu} × ${machine.cores}, Node ${machine.node}, ` +
    `PostgreSQL ${database.serverVersion}); the other sections are from the full run above.\n`;
  const previous = readFileSync(RESULTS, 'utf8');
  const start = previous.indexOf(THROUGHPUT_HEADING);
  let next: string;
  if (start >= 0) {
    const end = previous.indexOf('\n## ', start + THROUGHPUT_HEADING.length);
    next = previous.slice(0, start) + section + (end >= 0 ? previous.slice(end + 1) : '');
  } else {
    const at = previous.indexOf('## Where Drawbridge’s time goes');
    next = at >= 0 ? `${previous.slice(0, at)}${section}\n${previous.slice(at)}` : `${previous}\n${section}`;
  }
  writeFileSync(RESULTS, next);
  return section;
}

/** BENCH_ONLY=observability: section 8 alone, written over its section of bench/results.md (or inserted before the masking section). */
async function observabilityOnly(): Promise<string> {
  const machine = machineInfo();
  log(`${machine.node} on ${machine.cpu} (${machine.cores} cores), observability section only${QUICK ? ' — QUICK mode' : ''}`);
  database = await startBenchDatabase(log);
  const env = { DB_URL: database.gatewayUrl, HASH_KEY: BENCH_HASH_KEY };
  const numbers = await measureObservability(writeBenchConfig(), env, sqlFor(PLAIN, 1), OBSERVABILITY_CALLS, tempDir('observability'), log);
  const section =
    renderObservability(numbers) +
    `\nMeasured alone by \`BENCH_ONLY=observability npm run bench\` on ${machine.date} (${machine.cpu} × ${machine.cores}, Node ${machine.node}, ` +
    `PostgreSQL ${database.serverVersion}, temp dir ${machine.tmpFs})${QUICK ? ' (**QUICK mode**)' : ''}; the other sections are from the full run above.\n`;
  const previous = readFileSync(RESULTS, 'utf8');
  const start = previous.indexOf(OBSERVABILITY_HEADING);
  let next: string;
  if (start >= 0) {
    const end = previous.indexOf('\n## ', start + OBSERVABILITY_HEADING.length);
    next = previous.slice(0, start) + section + (end >= 0 ? previous.slice(end) : '');
  } else {
    const at = previous.indexOf('## Masking throughput');
    next = at >= 0 ? `${previous.slice(0, at)}${section}\n${previous.slice(at)}` : `${previous}\n${section}`;
  }
  writeFileSync(RESULTS, next);
  return section;
}

async function httpLatency(): Promise<HttpNumbers> {
  const loadAverage = loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
  httpBench = await startHttpBench();
  log(`http: loopback API at ${httpBench.url.href} (${httpBench.documentBytes}-byte JSON document)`);
  httpTargets.push(fetchTarget(httpBench.url));
  httpTargets.push(newConnectionTarget(httpBench.url));
  httpTargets.push(await inProcessTarget(httpBench.configDir, 'file'));
  httpTargets.push(await inProcessTarget(httpBench.configDir, 'memory'));
  httpTargets.push(await stdioTarget(httpBench.configDir));
  log(`http: GET, ${HTTP_CALLS.warmup} warm-up + ${HTTP_CALLS.calls} calls × ${httpTargets.length} targets`);
  const latency = await measureHttp(httpTargets, HTTP_CALLS);
  await Promise.allSettled(httpTargets.map((t) => t.close()));
  httpTargets.length = 0;
  const requests = httpBench.requests();
  const documentBytes = httpBench.documentBytes;
  await httpBench.close();
  httpBench = null;
  return { latency, ...HTTP_CALLS, documentBytes, requests, loadAverage };
}

/** BENCH_ONLY=http: section 9 alone, written over its section of bench/results.md (or appended). */
async function httpOnly(): Promise<string> {
  const machine = machineInfo();
  log(`${machine.node} on ${machine.cpu} (${machine.cores} cores), http_request section only${QUICK ? ' — QUICK mode' : ''}`);
  const section =
    renderHttp(await httpLatency()) +
    `\nMeasured alone by \`BENCH_ONLY=http npm run bench\` on ${machine.date} (${machine.cpu} × ${machine.cores}, Node ${machine.node}, ` +
    `temp dir ${machine.tmpFs})${QUICK ? ' (**QUICK mode**)' : ''}; the other sections are from the full run above.\n`;
  const previous = readFileSync(RESULTS, 'utf8');
  const start = previous.indexOf(HTTP_HEADING);
  let next: string;
  if (start >= 0) {
    const end = previous.indexOf('\n## ', start + HTTP_HEADING.length);
    next = previous.slice(0, start) + section + (end >= 0 ? previous.slice(end) : '');
  } else {
    const at = previous.indexOf('\n## Notes');
    next = at >= 0 ? `${previous.slice(0, at)}\n${section}${previous.slice(at)}` : `${previous.trimEnd()}\n\n${section}`;
  }
  writeFileSync(RESULTS, next);
  return section;
}

async function kubeLatency(): Promise<KubeNumbers> {
  kubeBench = await startKubeBench();
  log(`kubectl: fake Kubernetes API server at ${kubeBench.fake.url}, ${kubeBench.expectedPods.length} pods in shop`);
  const shim = kubectlShimDir();
  kubeTargets.push(clientNodeTarget(kubeBench.kubeconfig));
  kubeTargets.push(await drawbridgeKubeTarget(kubeBench.configDir));
  kubeTargets.push(await mcpServerKubernetesTarget(kubeBench.kubeconfig, shim));
  log(`kubectl: ${KUBE_COMMAND}, ${KUBE_WARMUP} warm-up + ${KUBE_CALLS} calls × ${kubeTargets.length} targets`);
  const latency = await measureKube(kubeTargets, kubeBench.expectedPods, { warmup: KUBE_WARMUP, calls: KUBE_CALLS });
  await Promise.allSettled(kubeTargets.map((t) => t.close()));
  kubeTargets.length = 0;
  log('kubectl: the shim alone');
  const alone = await shimAloneMs(kubeBench.kubeconfig, shim, QUICK ? 3 : 15);
  const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', 'mcp-server-kubernetes', 'package.json'), 'utf8')) as { version: string }).version;
  const pods = kubeBench.expectedPods.length;
  await kubeBench.fake.close();
  kubeBench = null;
  return { latency, pods, shimArgv: shimArgv(shim), shimAloneMs: alone, mcpServerKubernetesVersion: version };
}

async function sshLatency(): Promise<SshNumbers> {
  sshBench = await startSshBench();
  const sshd = await sshdVersion();
  log(`ssh: sshd at 127.0.0.1:${sshBench.sshd.port} (${sshd}), user ${sshBench.sshd.user}`);
  sshTargets.push(await ssh2Target(sshBench.sshd));
  sshTargets.push(ssh2PerCallTarget(sshBench.sshd));
  sshTargets.push(await drawbridgeSshTarget(sshBench.configDir));
  sshTargets.push(await sshMcpTarget(sshBench.sshd, sshBench.sshMcpHome));
  sshTargets.push(await ssh2Target(sshBench.sshd, { name: 'ssh2-env', env: SSH_MCP_AGENT_ENV }));
  log(`ssh: checking that every target prints ${JSON.stringify(sshBench.expected)} for ${SSH_COMMAND}`);
  await checkSshTargets(sshTargets, sshBench.expected);
  log(`ssh: ${SSH_COMMAND}, ${SSH_WARMUP} warm-up + ${SSH_CALLS} calls × ${sshTargets.length} targets`);
  const latency = await measureSsh(sshTargets, sshBench.expected, { warmup: SSH_WARMUP, calls: SSH_CALLS });
  await Promise.allSettled(sshTargets.map((t) => t.close()));
  sshTargets.length = 0;
  await sshBench.sshd.stop();
  sshBench = null;
  log('ssh: the login shell alone');
  const loginShell = await loginShellMs(QUICK ? 3 : 15);
  return { latency, sshMcpVersion: sshMcpVersion(), sshd, loginShell };
}

// ---------------------------------------------------------------------------
// The Markdown report

function shapeName(shape: QueryShape): string {
  return shape.selectsEmail ? 'with `email` (column-masked)' : 'without `email`';
}

function render(r: Report): string {
  const m = r.machine;
  const out: string[] = [];
  out.push('# Drawbridge benchmarks', '');
  out.push(`Generated by \`npm run bench\` on ${m.date}${QUICK ? ' (**QUICK mode: too few calls for meaningful numbers**)' : ''}.`, '');
  out.push(
    table(
      ['', ''],
      [
        ['Node', m.node],
        ['CPU', `${m.cpu} × ${m.cores}`],
        ['OS', m.os],
        ['PostgreSQL', `${r.postgres} (throwaway local cluster, fsync off, TCP on 127.0.0.1)`],
        ['Temp dir (journals)', m.tmpFs],
        ['Run time', `${r.seconds.toFixed(0)} s`],
      ],
      ['l', 'l'],
    ),
  );
  out.push('');
  out.push(
    'One run on one machine: absolute numbers move between runs (other processes, CPU frequency, and above all concurrent disk I/O, which ' +
      'changes what an fsync costs); the ratios within a table were measured in the same interleaved rounds and are the steadier figures.',
  );
  out.push('');

  out.push('## Query latency per call', '');
  out.push(
    '`SELECT <columns> FROM bench_rows ORDER BY id LIMIT n` (10,000-row table with a primary key), measured by the caller. ' +
      '**pg**: a `pg.Client`, `client.query(sql)`. **Drawbridge**: MCP SDK client ' +
      '→ `drawbridge serve` over stdio; policy allows reads, masking rule with all ' +
      'detectors and a column rule on `bench_rows.email`, journal synced FULL, `max_rows` 10000 / `max_bytes` 4MiB. ' +
      '**server-postgres**: MCP SDK client → `@modelcontextprotocol/server-postgres` over stdio, tool `query`. ' +
      `All three use the same least-privilege role. A fourth target (Drawbridge with the journal synced ` +
      `NORMAL, below) ran in the same rounds. ${WARMUP} warm-up calls, then ${callsFor(1)} calls (1 and 100 ` +
      `rows) or ${callsFor(10_000)} calls (10,000 rows) per target, interleaved round-robin. Times in ms.`,
    '',
  );
  const rows: string[][] = [];
  for (const shape of [PLAIN, WITH_EMAIL]) {
    for (const n of SIZES) {
      const get = (target: string) => r.latency.find((s) => s.shape === shape && s.rows === n && s.target === target);
      const pg = get('pg');
      const db = get('drawbridge');
      const sp = get('server-postgres');
      if (!pg || !db || !sp) continue;
      rows.push([
        shapeName(shape),
        int(n),
        `${ms(pg.p50)} / ${ms(pg.p95)}`,
        `${ms(db.p50)} / ${ms(db.p95)}`,
        `${ms(sp.p50)} / ${ms(sp.p95)}`,
        ratio(db.p50 / pg.p50),
        ratio(db.p50 / sp.p50),
        `+${ms(db.p50 - pg.p50)}`,
      ]);
    }
  }
  out.push(
    table(
      [
        'Query',
        'Rows',
        'pg p50 / p95',
        'Drawbridge p50 / p95',
        'server-postgres p50 / p95',
        'Drawbridge ÷ pg (p50)',
        'Drawbridge ÷ server-postgres (p50)',
        'Drawbridge − pg (p50)',
      ],
      rows,
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  out.push('');

  out.push(renderThroughput(r.throughput, { ...THROUGHPUT_TIMING, loadAverage: throughputLoad }, r.concurrentJournal));

  out.push('## Where Drawbridge’s time goes', '');
  out.push(
    'The pipeline replayed in process, one timer per stage (median ms). *resolve*: catalog lookups (cached per connection for 60 s) and the policy decision; ' +
      '*execute*: `BEGIN READ ONLY` + `SET LOCAL` limits, the statement over the extended ' +
      'protocol, `ROLLBACK`; *journal*: one hash-chained append each, synced FULL; ' +
      '*MCP server*: the SDK’s result validation and JSON serialisation; *MCP ' +
      'client*: the SDK client’s line buffering (64 KiB chunks), JSON + schema parsing ' +
      'and outputSchema validation. Not included: pipe transfer and process scheduling (the rest of the stdio numbers above).',
    '',
  );
  out.push(
    table(
      ['Query', 'Rows', ...STAGES, 'sum', 'answer size'],
      r.stages.map((s) => [
        shapeName(s.shape),
        int(s.rows),
        ...STAGES.map((st) => ms(s.stages[st])),
        ms(s.total),
        `${(s.messageBytes / 1024).toFixed(s.messageBytes < 10_240 ? 1 : 0)} KiB`,
      ]),
    ),
  );
  out.push('');
  out.push('Drawbridge over stdio with the journal synced FULL (the default) vs NORMAL: a fourth target in the same round-robin as the latency table.', '');
  const syncRows: string[][] = [];
  for (const shape of [PLAIN, WITH_EMAIL]) {
    for (const n of SIZES) {
      const full = r.latency.find((s) => s.shape === shape && s.rows === n && s.target === 'drawbridge');
      const normal = r.latency.find((s) => s.shape === shape && s.rows === n && s.target === 'drawbridge-normal');
      if (!full || !normal) continue;
      syncRows.push([
        shapeName(shape),
        int(n),
        `${ms(full.p50)} / ${ms(full.p95)}`,
        `${ms(normal.p50)} / ${ms(normal.p95)}`,
        `${full.p50 >= normal.p50 ? '+' : '−'}${ms(Math.abs(full.p50 - normal.p50))}`,
      ]);
    }
  }
  out.push(table(['Query', 'Rows', 'FULL p50 / p95', 'NORMAL p50 / p95', 'FULL − NORMAL (p50)'], syncRows));
  out.push('');
  out.push('The whole in-process `callTool` (1 row, no MCP) with the journal at different durability, interleaved:', '');
  out.push(
    table(
      ['Journal', 'callTool p50 (ms)'],
      r.journalModes.map((j) => [j.journal, ms(j.p50)]),
    ),
  );
  out.push('');

  out.push(renderObservability(r.observability));

  out.push('## Masking throughput', '');
  out.push(maskingTable(r.masking, r.scans));
  out.push('');

  out.push('## Journal appends', '');
  out.push('`openJournal(…).append` of call/outcome records shaped like the pipeline’s, one open journal, sequential, in the temp dir above.', '');
  out.push(
    table(
      ['synchronous', 'Appends', 'Appends/s', 'p50 (ms)', 'p95 (ms)'],
      r.journal.map((j) => [j.sync === 'full' ? 'FULL (default: fsync per commit)' : 'NORMAL', int(j.appends), int(j.perSecond), ms(j.p50), ms(j.p95)]),
    ),
  );
  out.push('');
  out.push(`Each Drawbridge call appends two records (intent before execution, outcome after).`);
  out.push('');
  renderKube(out, r.kube);
  renderSsh(out, r.ssh);
  out.push(renderHttp(r.http));
  if (unexpectedMasking.size > 0) {
    out.push('', '## Notes', '', 'Content detectors masked values in `bench_rows` columns that hold no PII (false positives):', '');
    for (const line of unexpectedMasking) out.push(`- ${line}`);
  }
  out.push('');
  return out.join('\n');
}

function renderKube(out: string[], k: KubeNumbers): void {
  out.push('## kubectl latency per call', '');
  out.push(
    `\`${KUBE_COMMAND}\` (${k.pods} pods) against the in-process fake Kubernetes API ` +
      `server of the test suite (\`test/support/fake-kube\`, plain HTTP on 127.0.0.1, ` +
      'bearer token), measured by the caller. **client-node**: `@kubernetes/client-node` ' +
      "`CoreV1Api.listNamespacedPod({ namespace: 'shop' })`, one `KubeConfig` reused. " +
      `**Drawbridge**: MCP SDK client → \`drawbridge serve\` over stdio, tool \`kubectl\`, ` +
      `\`{ connection, command: '${KUBE_COMMAND}' }\`; policy allows reads, masking with all ` +
      'detectors, journal synced FULL; it asks the server for a Table and renders kubectl’s columns. ' +
      `**mcp-server-kubernetes** ${k.mcpServerKubernetesVersion}: MCP SDK client → the server ` +
      `over stdio, tool \`kubectl_get\` \`{ resourceType: 'pods', namespace: 'shop' }\`, ` +
      `KUBECONFIG pointing at the fake. ${KUBE_WARMUP} warm-up calls, then ${KUBE_CALLS} calls per target, interleaved round-robin. Times in ms.`,
    '',
  );
  const get = (name: string) => k.latency.find((s) => s.target === name);
  const cn = get('client-node');
  const db = get('drawbridge');
  const mk = get('mcp-server-kubernetes');
  if (cn && db && mk) {
    out.push(
      table(
        [
          'Command',
          'client-node p50 / p95',
          'Drawbridge p50 / p95',
          'mcp-server-kubernetes (kubectl shim) p50 / p95',
          'Drawbridge ÷ client-node (p50)',
          'Drawbridge ÷ mcp-server-kubernetes (p50)',
          'Drawbridge − client-node (p50)',
        ],
        [
          [
            `\`${KUBE_COMMAND}\``,
            `${ms(cn.p50)} / ${ms(cn.p95)}`,
            `${ms(db.p50)} / ${ms(db.p95)}`,
            `${ms(mk.p50)} / ${ms(mk.p95)}`,
            ratio(db.p50 / cn.p50),
            db.p50 / mk.p50 < 0.1 ? `${(db.p50 / mk.p50).toPrecision(2)}×` : ratio(db.p50 / mk.p50),
            `+${ms(db.p50 - cn.p50)}`,
          ],
        ],
        ['l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push('');
  }
  out.push(
    '**The mcp-server-kubernetes column does not run the real kubectl.** That server ' +
      'shells out to `kubectl` for `kubectl_get`. The machine this was written on ' +
      'has a kubectl (`/usr/bin/kubectl` from the Google Cloud SDK package, v1.32.4-dispatcher), but against the fake API server it fails discovery with ' +
      '“the server has asked for the client to provide credentials” (not investigated), so the benchmark does not ' +
      'use it. A shim (`bench/kubectl-shim.ts`, a Node script first on that server’s PATH) implements exactly the ' +
      `command line the server sent ` +
      `(${k.shimArgv.length > 0 ? k.shimArgv.map((a) => `\`kubectl ${(JSON.parse(a) as string[]).join(' ')}\``).join(', ') : 'none logged'}) ` +
      'by listing the pods with client-node and printing them as `kubectl -o json` does. So the column measures one Node process start + client-node import ' +
      `+ one list per call (the shim alone: ${ms(k.shimAloneMs)} ms median, run directly), not kubectl’s Go start-up, kubeconfig handling, discovery cache ` +
      'or printers. The process-per-call shape is the same as with the real binary, ' +
      'but the cost per process is not: a native kubectl usually starts faster than ' +
      'Node + client-node, so with the real binary this column could be lower — treat ' +
      'it as an estimate of the architecture, not of mcp-server-kubernetes with kubectl.',
  );
  out.push('');
}

function renderSsh(out: string[], s: SshNumbers): void {
  out.push('## SSH command latency per call', '');
  out.push(
    `\`${SSH_COMMAND}\` against a throwaway OpenSSH sshd (${s.sshd}) on 127.0.0.1 ` +
      `started by the bench (\`test/support/sshd.ts\`: ed25519 host and client keys, ` +
      'public-key login as the current user), measured by the caller; every answer is checked (untimed) to be this machine’s host name. ' +
      '**ssh2 (reused)**: one `ssh2` `Client` kept connected, `client.exec(cmd)` per call — the floor. ' +
      '**ssh2, new connection per call**: `connect` (key exchange, public-key auth), `exec`, `end`, until the socket has closed. ' +
      `**Drawbridge**: MCP SDK client → \`drawbridge serve\` over stdio, tool \`ssh_exec\`, ` +
      `\`{ connection, command: '${SSH_COMMAND}' }\`; the command is parsed and ` +
      'classified (read), policy allows reads, masking with all detectors, journal ' +
      'synced FULL; its pool keeps one `ssh2` connection per host, host key pinned. ' +
      `**ssh-mcp** ${s.sshMcpVersion}: MCP SDK client → \`ssh-mcp --host --port --user ` +
      `--key\` over stdio, tool \`read-command\` \`{ command }\`; it sanitises and ` +
      'classifies the command against its read-only allowlist, redacts the output (patterns ' +
      'and an entropy scan), appends an audit line to a log file (a write stream, no fsync) ' +
      'and sends an `AI_AGENT` environment request on each channel. It **reuses its ' +
      'connection**: `ConnectionRegistry.getOrCreate` returns the open `SSHConnection` ' +
      '(`if (existing && existing.isConnected()) return existing;`, `build/ssh/connection-registry.js`), ' +
      'so like Drawbridge it pays the SSH handshake once, not per call; ' +
      'with the quick-start flags its host key check is trust-on-first-use in memory (pinning needs its config file). ' +
      `All targets speak SSH through the same \`ssh2\` package (ssh-mcp with its ` +
      `own algorithm list, chacha20-poly1305 first). ${SSH_WARMUP} warm-up calls, ` +
      `then ${SSH_CALLS} calls per target, interleaved round-robin. Times in ms.`,
    '',
  );
  const get = (name: string) => s.latency.find((x) => x.target === name);
  const direct = get('ssh2');
  const perCall = get('ssh2-per-call');
  const db = get('drawbridge');
  const sm = get('ssh-mcp');
  if (direct && perCall && db && sm) {
    out.push(
      table(
        [
          'Command',
          'ssh2 (reused) p50 / p95',
          'ssh2, new connection per call p50 / p95',
          'Drawbridge p50 / p95',
          'ssh-mcp p50 / p95',
          'Drawbridge ÷ ssh2 (p50)',
          'Drawbridge ÷ ssh-mcp (p50)',
          'new ÷ reused connection (p50)',
          'Drawbridge − ssh2 (p50)',
        ],
        [
          [
            `\`${SSH_COMMAND}\``,
            `${ms(direct.p50)} / ${ms(direct.p95)}`,
            `${ms(perCall.p50)} / ${ms(perCall.p95)}`,
            `${ms(db.p50)} / ${ms(db.p95)}`,
            `${ms(sm.p50)} / ${ms(sm.p95)}`,
            ratio(db.p50 / direct.p50),
            ratio(db.p50 / sm.p50),
            ratio(perCall.p50 / direct.p50),
            `${db.p50 >= direct.p50 ? '+' : '−'}${ms(Math.abs(db.p50 - direct.p50))}`,
          ],
        ],
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    out.push('');
  }
  const env = get('ssh2-env');
  if (direct && env && db && sm) {
    out.push(
      `A fifth target ran in the same rounds: a second reused \`ssh2\` client, sending ` +
        `the \`AI_AGENT=ssh-mcp\` environment request before each exec, as ssh-mcp does: ` +
        `${ms(env.p50)} / ${ms(env.p95)} ms (p50 / p95), ` +
        `${env.p50 >= direct.p50 ? '+' : '−'}${ms(Math.abs(env.p50 - direct.p50))} ms over plain \`ssh2\` at p50 ` +
        `(ssh-mcp − Drawbridge: ${sm.p50 >= db.p50 ? '+' : '−'}${ms(Math.abs(sm.p50 - db.p50))} ` +
        `ms). \`ssh2\` leaves Nagle’s algorithm on (no \`TCP_NODELAY\`), so the exec request, ` +
        'written right after the env request while that segment is still unacknowledged, waits for the ' +
        'server’s delayed ACK; with `setNoDelay(true)` on the client the difference disappears (checked ' +
        'outside this benchmark). Drawbridge sends no env request.' +
        (sm.p50 > db.p50
          ? ` So ${(env.p50 - direct.p50) / (sm.p50 - db.p50) >= 0.5 ? 'most' : 'only part'} of what separates ` +
            `ssh-mcp from Drawbridge here is that TCP interaction rather than its policy, redaction or audit work.`
          : ''),
    );
    out.push('');
  }
  const l = s.loginShell;
  out.push(
    'Every target pays the same work on the host: sshd forks a session and runs the login shell with the command ' +
      `(\`${l.shell} -c '${SSH_COMMAND}'\`). Run locally the same way, that shell takes ` +
      `${ms(l.withSshClient)} ms (median) with \`SSH_CLIENT\` set, as sshd sets it, ` +
      `and ${ms(l.without)} ms without: ${l.shell.endsWith('bash') ? 'bash sources `~/.bashrc` when it sees `SSH_CLIENT`, and ' : ''}` +
      'a slow shell start-up on the benchmark host is part of every number above ' +
      'and shrinks the ratios; the differences (last column) are the steadier figure.',
  );
  out.push('');
}

// ---------------------------------------------------------------------------

let exitCode = 0;
try {
  if (ONLY === 'throughput') {
    process.stdout.write(`${await throughputOnly()}\n`);
    log(`wrote the throughput section of ${RESULTS}`);
  } else if (ONLY === 'observability') {
    process.stdout.write(`${await observabilityOnly()}\n`);
    log(`wrote the observability section of ${RESULTS}`);
  } else if (ONLY === 'http') {
    process.stdout.write(`${await httpOnly()}\n`);
    log(`wrote the http_request section of ${RESULTS}`);
  } else if (ONLY !== '') {
    throw new Error(`BENCH_ONLY=${ONLY}: the sections that run alone are throughput, observability and http`);
  } else {
    const report = await main();
    const markdown = render(report);
    writeFileSync(RESULTS, markdown);
    process.stdout.write(`${markdown}\n`);
    log(`wrote ${RESULTS}`);
  }
} catch (error) {
  exitCode = 1;
  log(`failed: ${(error as Error).stack ?? String(error)}`);
} finally {
  await cleanup();
  clearTimeout(hardTimeout);
}
process.exit(exitCode);
