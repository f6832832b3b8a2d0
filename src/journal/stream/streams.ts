// The audit streams of a serving gateway: one streamer per journal.stream sink over the gateway's
// state, their metrics, and one wake/stop/status for all. `drawbridge serve` starts them, wakes
// them after each call, shows their status in /readyz's details and stops them when it closes.

import type { Registry } from 'prom-client';
import type { StreamSinkConfig } from '../../config/schema.js';
import type { SecretEnvironment } from '../../config/secrets.js';
import type { StateStore } from '../../state/contract.js';
import { streamMetrics } from './metrics.js';
import { createSink } from './sinks.js';
import { createStreamer, streamHolder, type SinkStatus, type Streamer, type StreamerOptions } from './streamer.js';

export interface Streams {
  readonly streamers: readonly Streamer[];
  wake(): void;
  status(): Promise<SinkStatus[]>;
  stop(): Promise<void>;
}

export interface StreamsOptions {
  readonly sinks: readonly StreamSinkConfig[];
  readonly state: Pick<StateStore, 'journal' | 'streams'>;
  readonly environment: SecretEnvironment;
  readonly clock: () => Date;
  /** Where the stream metrics go (the gateway's registry); none: not counted. */
  readonly registry?: Registry;
  readonly log?: StreamerOptions['log'];
  /** Tests: virtual time for the backoff, a short poll. */
  readonly tuning?: Partial<Pick<StreamerOptions, 'sleep' | 'pollMs' | 'backoff'>>;
  /** Default: one per process (streamHolder). */
  readonly holder?: string;
}

/** Starts a streamer per sink; none configured gives an empty set that does nothing. */
export function startStreams(options: StreamsOptions): Streams {
  const holder = options.holder ?? streamHolder();
  let streamers: Streamer[] = [];
  const events = options.registry
    ? streamMetrics(
        options.registry,
        options.sinks.map((s) => s.name),
        () => streamers,
      )
    : undefined;
  streamers = options.sinks.map((config) =>
    createStreamer({
      sink: createSink(config, { environment: options.environment, clock: options.clock }),
      journal: options.state.journal,
      cursors: options.state.streams,
      clock: options.clock,
      holder,
      ...(events ? { events } : {}),
      ...(options.log ? { log: options.log } : {}),
      ...options.tuning,
    }),
  );
  for (const s of streamers) s.start();
  return {
    streamers,
    wake: () => streamers.forEach((s) => s.wake()),
    status: () => Promise.all(streamers.map((s) => s.status())),
    stop: async () => {
      await Promise.all(streamers.map((s) => s.stop()));
    },
  };
}
