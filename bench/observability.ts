// What the operator's observers cost a call, in process: the same allowed 1-row SELECT through the
// real callTool on the bench's PostgreSQL, round-robin over three gateways that differ only in who
// listens to their call-end event: (a) nobody, (b) the log (JSON lines, written to /dev/null with a
// write(2) per line, as serve writes stderr) and the Prometheus metrics, (c) the same plus tracing
// (a span per call and per stage, batched and exported over OTLP/HTTP JSON to an in-process
// receiver, as serve sets it up, the export's serialisation and HTTP round trip included). Twice:
// with the journal synced FULL on disk (the default) and in memory, where the observers' share
// stands out from fsync's noise. No assertions on timings.

import { closeSync, openSync, writeSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { loadParser } from '../src/backends/postgres/ast.js';
import { loadConfig } from '../src/config/load.js';
import type { GatewayConfig } from '../src/config/schema.js';
import { makeIdentity, type Identity } from '../src/identity/identity.js';
import { createLogger } from '../src/observability/log.js';
import { createMetrics } from '../src/observability/metrics.js';
import { createTracing, type Tracing } from '../src/observability/tracing.js';
import { callTool } from '../src/pipeline/callTool.js';
import { createGateway, type Gateway } from '../src/pipeline/gateway.js';
import { SERVER_VERSION } from '../src/server.js';
import { openSqliteState } from '../src/state/sqlite/index.js';
import { startOtlpReceiver, type OtlpReceiver } from '../test/support/otlp-receiver.js';
import { ms, percentile, ratio, table } from './support.js';

export const OBSERVABILITY_HEADING = '## Cost of the log, metrics and tracing per call';

export type ObserverSetup = 'none' | 'log + metrics' | 'log + metrics + tracing';
const SETUPS: readonly ObserverSetup[] = ['none', 'log + metrics', 'log + metrics + tracing'];

export interface ObserverSample {
  readonly journal: string;
  readonly setup: ObserverSetup;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
  readonly mean: number;
}

export interface ObservabilityNumbers {
  readonly samples: ObserverSample[];
  readonly warmup: number;
  readonly calls: number;
  /** Spans the receiver got from (c), and how many (c)'s calls should have made (a call span + one per stage). */
  readonly spansReceived: number;
  readonly spansExpected: number;
  readonly exports: number;
  /** The 1, 5 and 15 minute load averages when the section started: other work on the machine shows in its numbers. */
  readonly loadAverage: string;
}

interface Variant {
  readonly setup: ObserverSetup;
  readonly gateway: Gateway;
  readonly tracing: Tracing | null;
}

function open(config: GatewayConfig, environment: Record<string, string>, journal: string): Gateway {
  return createGateway({
    config,
    state: openSqliteState({
      journal,
      journalSync: 'full',
      openJournal: 'now',
      approvals: join(config.dir, `approvals-${Math.random().toString(36).slice(2)}.db`),
    }),
    maskKey: new TextEncoder().encode(environment['HASH_KEY'] ?? 'k'),
    environment: { env: environment, baseDir: config.dir },
  });
}

/** The three variants on one journal kind; (b) and (c) subscribe the observers as serve does. */
function variants(
  config: GatewayConfig,
  environment: Record<string, string>,
  journal: (setup: number) => string,
  devNull: number,
  receiver: OtlpReceiver,
): Variant[] {
  return SETUPS.map((setup, i) => {
    const gateway = open(config, environment, journal(i));
    let tracing: Tracing | null = null;
    if (setup !== 'none') {
      const logger = createLogger({ config: { level: 'info', format: 'json', subjects: false }, write: (line) => void writeSync(devNull, line), isTTY: false });
      gateway.onCallEnd(logger.call);
      const metrics = createMetrics({ tools: config.tools.keys(), connections: config.connections.keys() });
      gateway.onCallEnd(metrics.call);
    }
    if (setup === 'log + metrics + tracing') {
      tracing = createTracing({
        config: { endpoint: receiver.url, headers: {}, sampleRatio: 1, serviceName: 'drawbridge-bench' },
        headers: {},
        version: SERVER_VERSION,
      });
      gateway.onCallEnd(tracing.call);
    }
    return { setup, gateway, tracing };
  });
}

export async function measureObservability(
  configDir: string,
  environment: Record<string, string>,
  sql: string,
  options: { readonly warmup: number; readonly calls: number },
  journalDir: string,
  log: (line: string) => void,
): Promise<ObservabilityNumbers> {
  const loadAverage = loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');
  await loadParser();
  const config = loadConfig(configDir);
  const declared = config.identity?.mode === 'local' ? config.identity : { subject: 'bench@example.com', groups: ['analysts'] };
  const identity: Identity = makeIdentity({ kind: 'local', subject: declared.subject, groups: declared.groups, issuer: 'local' });
  const receiver = await startOtlpReceiver();
  const devNull = openSync('/dev/null', 'w');
  const samples: ObserverSample[] = [];
  let tracedCalls = 0;
  try {
    const journals: Array<{ label: string; path: (i: number) => string }> = [
      { label: 'SQLite, synchronous FULL (default)', path: (i) => join(journalDir, `observers-${i}.db`) },
      { label: 'SQLite in memory', path: () => ':memory:' },
    ];
    for (const journal of journals) {
      log(`observability: ${journal.label}, ${options.warmup} warm-up + ${options.calls} calls × ${SETUPS.length} observer set-ups`);
      const vs = variants(config, environment, journal.path, devNull, receiver);
      try {
        const times = vs.map(() => [] as number[]);
        for (let round = 0; round < options.warmup + options.calls; round++) {
          for (let k = 0; k < vs.length; k++) {
            const index = (round + k) % vs.length;
            const v = vs[index] as Variant;
            const t0 = performance.now();
            const r = await callTool(v.gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity, client: { name: 'bench' } });
            const elapsed = performance.now() - t0;
            if (!r.ok) throw new Error(`in-process call failed: ${r.text}`);
            if (v.tracing !== null) tracedCalls += 1;
            if (round >= options.warmup) times[index]?.push(elapsed);
          }
        }
        vs.forEach((v, i) => {
          const sample = times[i] ?? [];
          const mean = sample.reduce((a, b) => a + b, 0) / sample.length;
          samples.push({ journal: journal.label, setup: v.setup, calls: sample.length, p50: percentile(sample, 50), p95: percentile(sample, 95), mean });
        });
      } finally {
        for (const v of vs) {
          await v.tracing?.shutdown();
          await v.gateway.close();
        }
      }
    }
    // A call's span plus one per stage: parse, decide, journal (intent), execute, mask, journal (outcome).
    const spansReceived = receiver.spans().length;
    return {
      samples,
      warmup: options.warmup,
      calls: options.calls,
      spansReceived,
      spansExpected: tracedCalls * 7,
      exports: receiver.payloads.length,
      loadAverage,
    };
  } finally {
    closeSync(devNull);
    await receiver.close();
  }
}

/** The section of bench/results.md. */
export function renderObservability(n: ObservabilityNumbers): string {
  const out: string[] = [OBSERVABILITY_HEADING, ''];
  out.push(
    'The same allowed `SELECT id, name, city, amount, created_at FROM bench_rows ORDER BY id LIMIT 1` through the real `callTool` in process ' +
      '(no MCP, no stdio), round-robin over three gateways that differ only in what observes the call-end event: ' +
      '**(a)** nothing; **(b)** the log (one JSON line per call, each written to /dev/null with its own write(2), as serve writes stderr) and the ' +
      'Prometheus metrics (counters and stage histograms, prom-client); **(c)** the same plus tracing: a call span and one span per stage, ' +
      'batched (`BatchSpanProcessor`, its default 5 s / 512 spans) and exported over OTLP/HTTP JSON to an in-process receiver on 127.0.0.1 ' +
      '(serialising the batch and its HTTP round trip happen in the same process, between calls, and count). ' +
      `${n.warmup} warm-up calls, then ${n.calls} calls per set-up, interleaved; twice, with the journal synced FULL on disk and in memory ` +
      '(where fsync’s variance does not hide the observers’ share). Times in ms, measured around `callTool`. ' +
      `Load average when the section started: ${n.loadAverage} (on ${cpus().length} cores).`,
    '',
  );
  const rows: string[][] = [];
  for (const journal of [...new Set(n.samples.map((s) => s.journal))]) {
    const get = (setup: ObserverSetup) => n.samples.find((s) => s.journal === journal && s.setup === setup);
    const a = get('none');
    if (!a) continue;
    for (const setup of SETUPS) {
      const s = get(setup);
      if (!s) continue;
      const us = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 1000).toFixed(0)} µs`;
      rows.push([
        journal,
        setup === 'none' ? '(a) none' : setup === 'log + metrics' ? '(b) log + metrics' : '(c) log + metrics + tracing',
        `${ms(s.p50)} / ${ms(s.p95)}`,
        ms(s.mean),
        ratio(s.p50 / a.p50),
        ratio(s.mean / a.mean),
        setup === 'none' ? '—' : `${us(s.p50 - a.p50)} / ${us(s.mean - a.mean)}`,
      ]);
    }
  }
  out.push(table(['Journal', 'Observers', 'p50 / p95', 'mean', '÷ (a) p50', '÷ (a) mean', '− (a) p50 / mean'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r']));
  out.push('');
  out.push(
    `The receiver got ${n.spansReceived.toLocaleString('en-US')} spans in ${n.exports} exports for (c)’s ` +
      `${(n.spansExpected / 7).toLocaleString('en-US')} calls (warm-up included; ${n.spansExpected.toLocaleString('en-US')} expected: 7 per call).`,
  );
  out.push('');
  return out.join('\n');
}
