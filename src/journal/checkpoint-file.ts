// Checkpoints in use: resolving the configured signing key, signing the head of any engine's
// journal (JournalStore.head), appending signed checkpoints to the publish file, and the
// interval/shutdown checkpointer `serve` runs. Signing and checking live in checkpoint.ts;
// this module never judges a checkpoint.

import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import type { CheckpointsConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { DrawbridgeError } from '../errors.js';
import {
  parseCheckpointFile,
  parseSigningKey,
  signCheckpoint,
  type Checkpoint,
  type CheckpointKeys,
  type JournalHead,
  type PublishedCheckpoint,
} from './checkpoint.js';
import type { JournalStore } from '../state/contract.js';

/** The configured signing key, resolved and parsed (config.secret_missing / config.secret_invalid, never showing the key). */
export function checkpointKeys(config: CheckpointsConfig, environment: SecretEnvironment): CheckpointKeys {
  let pem: string;
  try {
    pem = resolveSecret(config.signingKey, environment);
  } catch (cause) {
    // resolveSecret speaks of "this connection"; say which secret it is (by reference, never by value).
    throw new DrawbridgeError('config.secret_missing', `The checkpoint signing key cannot be read (${config.signingKey.describe}).`, { cause });
  }
  return parseSigningKey(pem);
}

/**
 * The journal's head as a checkpoint attests it: the record count is the last seq, since
 * seq runs 1, 2, 3… without a gap (a journal with a gap fails verify on its own).
 */
export async function journalHead(journal: Pick<JournalStore, 'head'>, now: Date): Promise<JournalHead> {
  const head = await journal.head();
  return { count: head.seq, hash: head.hash, at: now.toISOString() };
}

/**
 * Appends one checkpoint as one JSON line and fsyncs. The file is opened for append only
 * (created 0600): earlier lines are never rewritten, so a published checkpoint stays as the
 * auditor may already have copied it.
 */
export function publishCheckpoint(file: string, checkpoint: Checkpoint): void {
  let fd: number;
  try {
    fd = openSync(file, 'a', 0o600);
  } catch (cause) {
    throw new DrawbridgeError('journal.unavailable', `Cannot open the checkpoint file ${file}: ${(cause as Error).message}`, { details: { file }, cause });
  }
  try {
    writeSync(fd, `${JSON.stringify(checkpoint)}\n`);
    fsyncSync(fd);
  } catch (cause) {
    throw new DrawbridgeError('journal.unavailable', `Cannot write the checkpoint file ${file}: ${(cause as Error).message}`, { details: { file }, cause });
  } finally {
    closeSync(fd);
  }
}

export function readCheckpointFile(file: string): PublishedCheckpoint[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new DrawbridgeError('journal.unavailable', `Cannot read the checkpoint file ${file}: ${(cause as Error).message}`, {
      details: { file },
      cause,
      hint:
        'Give the published checkpoint file (journal.checkpoints.publish.file, or --checkpoints FILE). ' +
        'A gateway writes its first one after journal.checkpoints.every; drawbridge journal checkpoint writes one now.',
    });
  }
  return parseCheckpointFile(text);
}

/** Signs the journal's current head and publishes it; returns what was published. */
export async function writeCheckpoint(options: {
  readonly journal: Pick<JournalStore, 'head'>;
  readonly file: string;
  readonly keys: CheckpointKeys;
  readonly now: Date;
}): Promise<Checkpoint> {
  const checkpoint = signCheckpoint(await journalHead(options.journal, options.now), options.keys);
  publishCheckpoint(options.file, checkpoint);
  return checkpoint;
}

/**
 * Runs `tick` every `ms` until the returned function is called. Tests inject a manual one, and
 * may await a tick: it settles once that checkpoint is written (or its failure reported).
 */
export type IntervalTimer = (ms: number, tick: () => Promise<void>) => () => void;

export const realInterval: IntervalTimer = (ms, tick) => {
  const handle = setInterval(() => void tick(), ms);
  handle.unref(); // a pending checkpoint never keeps a stopping gateway alive
  return () => clearInterval(handle);
};

export interface Checkpointer {
  /** Stops the interval and writes the shutdown checkpoint: call after the journal's last append, before it closes. */
  stop(): Promise<void>;
}

/**
 * Checkpoints on an interval while serving, and once more on stop. A failed interval checkpoint
 * is reported and serving goes on: the journal itself is intact, and the next checkpoint covers it.
 * Checkpoints are written one at a time, in order, so the file's lines never go backwards.
 */
export function startCheckpointer(options: {
  readonly journal: Pick<JournalStore, 'head'>;
  readonly config: CheckpointsConfig;
  readonly keys: CheckpointKeys;
  readonly clock: () => Date;
  readonly timer: IntervalTimer;
  readonly report: (error: unknown) => void;
}): Checkpointer {
  let last: Promise<void> = Promise.resolve();
  const write = (): Promise<void> => {
    last = last.then(async () => {
      try {
        await writeCheckpoint({ journal: options.journal, file: options.config.publishFile, keys: options.keys, now: options.clock() });
      } catch (error) {
        options.report(error);
      }
    });
    return last;
  };
  const cancel = options.timer(options.config.everyMs, write);
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      if (stopped === undefined) {
        cancel();
        stopped = write();
      }
      return stopped;
    },
  };
}
