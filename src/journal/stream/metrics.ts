// The audit stream's Prometheus metrics, registered into the gateway's own registry (metrics.ts's
// `registry`): the backlog per sink (read from the state when scraped, so a standby replica shows
// the shared cursor's backlog too), records delivered and failed attempts. The label is the sink
// name, which only the config declares: bounded.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { StreamEvents, Streamer } from './streamer.js';

export function streamMetrics(registry: Registry, sinks: readonly string[], streamers: () => readonly Streamer[]): StreamEvents {
  const delivered = new Counter({
    name: 'drawbridge_stream_delivered_total',
    help: 'Journal records the audit stream sink acknowledged (at least once: a resent batch counts again), by sink.',
    labelNames: ['sink'] as const,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'drawbridge_stream_failures_total',
    help: 'Failed audit stream delivery attempts (each retried with backoff), by sink.',
    labelNames: ['sink'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'drawbridge_stream_backlog_records',
    help: 'Journal records not yet acknowledged by the audit stream sink (head minus its durable cursor), by sink.',
    labelNames: ['sink'] as const,
    registers: [registry],
    async collect() {
      const statuses = await Promise.all(streamers().map((s) => s.status()));
      for (const s of statuses) this.set({ sink: s.sink }, s.backlog);
    },
  });
  for (const sink of sinks) {
    // Every sink has its series from the start, at zero.
    delivered.inc({ sink }, 0);
    failures.inc({ sink }, 0);
  }
  return {
    delivered: (sink, records) => delivered.inc({ sink }, records),
    failed: (sink) => failures.inc({ sink }),
  };
}
