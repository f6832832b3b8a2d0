// A stand-in for the `kubectl` binary, used only by the kubectl benchmark (there is no
// kubectl on the benchmark machine). mcp-server-kubernetes shells out to `kubectl` for its
// `kubectl_get` tool; this shim implements exactly the one command line that tool sends for
// "list the pods in a namespace as JSON" — `get pods -n <ns> -o json` — by calling the API
// server from $KUBECONFIG with @kubernetes/client-node and printing what `kubectl … -o json`
// prints (a v1 List with apiVersion/kind set on every item, 4-space indent). Anything else
// exits 1, so the benchmark cannot silently measure a different command. With
// KUBECTL_SHIM_ARGV_LOG set, the argv is appended (one JSON line per call) to that file.
//
// Not the real kubectl: it is a Node process (different start-up cost from kubectl's Go
// binary) and skips kubectl's discovery cache, its config flags and its printers.

import { appendFileSync } from 'node:fs';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
// Not re-exported by the package index; the generated serializer turns models back into API JSON.
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';

const argv = process.argv.slice(2);
const logFile = process.env['KUBECTL_SHIM_ARGV_LOG'];
if (logFile) appendFileSync(logFile, `${JSON.stringify(argv)}\n`);

function fail(message: string): never {
  process.stderr.write(`kubectl (bench shim): ${message}\n`);
  process.exit(1);
}

// Exactly: get pods -n <namespace> -o json
const [verb, resource, nsFlag, namespace, oFlag, output, ...rest] = argv;
if (verb !== 'get' || resource !== 'pods' || nsFlag !== '-n' || !namespace || oFlag !== '-o' || output !== 'json' || rest.length > 0) {
  fail(`unsupported command line ${JSON.stringify(argv)} (the shim only implements "get pods -n <namespace> -o json")`);
}

try {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const api = kc.makeApiClient(CoreV1Api);
  const list = await api.listNamespacedPod({ namespace });
  const items = (list.items ?? []).map((pod) => ({
    apiVersion: 'v1',
    kind: 'Pod',
    ...(ObjectSerializer.serialize(pod, 'V1Pod', '') as Record<string, unknown>),
  }));
  process.stdout.write(`${JSON.stringify({ apiVersion: 'v1', items, kind: 'List', metadata: { resourceVersion: '' } }, null, 4)}\n`);
} catch (error) {
  fail((error as Error).message);
}
