// Per-call latency of `get pods -n shop` against the in-process fake Kubernetes API server
// (test/support/fake-kube), through three targets, interleaved round-robin like the SQL
// latency section:
//   - client-node: @kubernetes/client-node `CoreV1Api.listNamespacedPod({ namespace: 'shop' })`;
//   - drawbridge:  MCP SDK client → `drawbridge serve` over stdio, tool `kubectl`,
//                  `{ connection, command: 'get pods -n shop' }`;
//   - mcp-server-kubernetes: MCP SDK client → mcp-server-kubernetes over stdio, tool
//                  `kubectl_get` `{ resourceType: 'pods', namespace: 'shop' }`. That server shells
//                  out to `kubectl`; there is no kubectl here, so a shim (bench/kubectl-shim.ts)
//                  placed first on its PATH answers the one command line it sends.

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { startFakeKube, type FakeKube } from '../test/support/fake-kube/server.js';
import { answerText, childEnv, DRAWBRIDGE_CLI, REPO_ROOT, stdioClient, type ToolAnswer } from './latency.js';
import { percentile, roundRobin, tempDir } from './support.js';

export const MCP_SERVER_KUBERNETES = resolve(REPO_ROOT, 'node_modules', 'mcp-server-kubernetes', 'dist', 'index.js');
const KUBECTL_SHIM = resolve(REPO_ROOT, 'dist', 'bench', 'kubectl-shim.js');
export const KUBE_NAMESPACE = 'shop';
export const KUBE_COMMAND = `get pods -n ${KUBE_NAMESPACE}`;

export interface KubeTarget {
  readonly name: string;
  call(): Promise<unknown>;
  /** Untimed: the pod names in the answer (throws if the answer is an error). */
  podNames(answer: unknown): string[];
  close(): Promise<void>;
  readonly pid: number | null;
}

export interface KubeSample {
  readonly target: string;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
}

export interface KubeBench {
  readonly fake: FakeKube;
  /** The kubeconfig file (namespace shop). */
  readonly kubeconfig: string;
  /** Drawbridge config dir with connection `cluster`. */
  readonly configDir: string;
  /** The pods in shop, as client-node lists them. */
  readonly expectedPods: string[];
}

export async function startKubeBench(): Promise<KubeBench> {
  const fake = await startFakeKube();
  const dir = tempDir('kube');
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, fake.kubeconfig(KUBE_NAMESPACE));
  const configDir = join(dir, 'config');
  mkdirSync(join(configDir, 'tools'), { recursive: true });
  mkdirSync(join(configDir, 'policies'));
  writeFileSync(
    join(configDir, 'tools', 'cluster.yaml'),
    `kind: connection
name: cluster
type: kubernetes
description: Benchmark cluster (fake API server)
kubeconfig: { file: ${kubeconfig} }
namespace: ${KUBE_NAMESPACE}
---
kind: tool
name: kubectl
type: kubectl
connections: [cluster]
`,
  );
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
  - name: k8s-reads
    match: { tool: kubectl, access: read }
    effect: allow
masking:
  - name: detectors
    match: { tool: kubectl }
    detectors: all
`,
  );
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const list = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: KUBE_NAMESPACE });
  const expectedPods = list.items.map((p) => p.metadata?.name ?? '').sort();
  if (expectedPods.length === 0) throw new Error(`the fake cluster has no pods in ${KUBE_NAMESPACE}`);
  return { fake, kubeconfig, configDir, expectedPods };
}

// ---------------------------------------------------------------------------
// Targets

export function clientNodeTarget(kubeconfig: string): KubeTarget {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const api = kc.makeApiClient(CoreV1Api);
  return {
    name: 'client-node',
    pid: null,
    call: () => api.listNamespacedPod({ namespace: KUBE_NAMESPACE }),
    podNames: (answer) => (answer as Awaited<ReturnType<CoreV1Api['listNamespacedPod']>>).items.map((p) => p.metadata?.name ?? ''),
    close: async () => undefined,
  };
}

export async function drawbridgeKubeTarget(configDir: string): Promise<KubeTarget> {
  const { client, transport, stderr } = await stdioClient(
    'drawbridge-kubectl',
    process.execPath,
    [DRAWBRIDGE_CLI, 'serve', '--config', configDir],
    childEnv({}),
  );
  return {
    name: 'drawbridge',
    pid: transport.pid,
    call: () => client.callTool({ name: 'kubectl', arguments: { connection: 'cluster', command: KUBE_COMMAND } }, undefined, { timeout: 60_000 }),
    podNames(answer) {
      const a = answer as ToolAnswer & { structuredContent?: { columns?: Array<{ name: string }>; rows?: unknown[][] } };
      if (a.isError) throw new Error(`drawbridge refused kubectl ${KUBE_COMMAND}: ${answerText(a)}\n${stderr()}`);
      const s = a.structuredContent;
      const col = (s?.columns ?? []).findIndex((c) => c.name === 'NAME');
      if (!s?.rows || col < 0) throw new Error(`drawbridge answered without a NAME column: ${JSON.stringify(s).slice(0, 500)}`);
      return s.rows.map((r) => String(r[col]));
    },
    close: () => client.close(),
  };
}

/** A temp dir holding `kubectl` (the shim, started with this Node) to put first on PATH. */
export function kubectlShimDir(): { dir: string; argvLog: string } {
  const dir = tempDir('kubectl-shim');
  const shim = join(dir, 'kubectl');
  // Extensionless, so Node loads it as CommonJS; the shim itself is ESM under dist/.
  writeFileSync(shim, `#!${process.execPath}\nimport(${JSON.stringify(KUBECTL_SHIM)});\n`);
  chmodSync(shim, 0o755);
  return { dir, argvLog: join(dir, 'argv.log') };
}

export async function mcpServerKubernetesTarget(kubeconfig: string, shim: { dir: string; argvLog: string }): Promise<KubeTarget> {
  const env = childEnv({
    KUBECONFIG: kubeconfig,
    PATH: `${shim.dir}:${process.env['PATH'] ?? ''}`,
    KUBECTL_SHIM_ARGV_LOG: shim.argvLog,
  });
  const { client, transport, stderr } = await stdioClient('mcp-server-kubernetes', process.execPath, [MCP_SERVER_KUBERNETES], env);
  return {
    name: 'mcp-server-kubernetes',
    pid: transport.pid,
    call: () => client.callTool({ name: 'kubectl_get', arguments: { resourceType: 'pods', namespace: KUBE_NAMESPACE } }, undefined, { timeout: 60_000 }),
    podNames(answer) {
      const a = answer as ToolAnswer;
      if (a.isError) throw new Error(`mcp-server-kubernetes failed: ${answerText(a)}\n${stderr()}`);
      const parsed = JSON.parse(answerText(a)) as { items?: Array<{ name: string }> };
      if (!parsed.items) throw new Error(`mcp-server-kubernetes answered without items: ${answerText(a).slice(0, 500)}`);
      return parsed.items.map((i) => i.name);
    },
    close: () => client.close(),
  };
}

/** The argv lines the shim logged (distinct), for the report. */
export function shimArgv(shim: { argvLog: string }): string[] {
  try {
    return [
      ...new Set(
        readFileSync(shim.argvLog, 'utf8')
          .split('\n')
          .filter((l) => l.length > 0),
      ),
    ];
  } catch {
    return [];
  }
}

/** Median wall time (ms) of running the shim alone (`node` start + client-node + one list), for the report. */
// Asynchronous on purpose: the fake API server runs in this process.
export async function shimAloneMs(kubeconfig: string, shim: { dir: string }, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await promisify(execFile)(join(shim.dir, 'kubectl'), ['get', 'pods', '-n', KUBE_NAMESPACE, '-o', 'json'], { env: childEnv({ KUBECONFIG: kubeconfig }) });
    times.push(performance.now() - t0);
  }
  return percentile(times, 50);
}

// ---------------------------------------------------------------------------
// The measurement loop

export async function measureKube(
  targets: readonly KubeTarget[],
  expected: readonly string[],
  options: { warmup: number; calls: number },
): Promise<KubeSample[]> {
  const want = [...expected].sort().join(',');
  return roundRobin(
    targets,
    options,
    (t) => t.call(),
    (t, answer, round, rounds) => {
      if (round !== 0 && round !== rounds - 1) return;
      const got = t.podNames(answer).sort().join(',');
      if (got !== want) throw new Error(`${t.name} listed pods [${got}], expected [${want}]`);
    },
  );
}
