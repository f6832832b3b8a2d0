// Checkpoints in use: resolving the configured signing key, reading the head of today's SQLite
// journal (the one engine-specific piece: a thin adapter), appending signed checkpoints to the
// publish file, and the interval/shutdown checkpointer `serve` runs. Signing and checking live
// in checkpoint.ts; this module never judges a checkpoint.

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
import { GENESIS_HASH } from '../state/records.js';
import { openJournalReadOnly } from '../state/sqlite/journal.js';

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

/** The head of a SQLite journal file: record count and last hash, read in one statement (one snapshot). */
export function sqliteJournalHead(path: string, now: Date): JournalHead {
  const db = openJournalReadOnly(path);
  try {
    const row = db.prepare('SELECT (SELECT COUNT(*) FROM records) AS count, (SELECT hash FROM records ORDER BY seq DESC LIMIT 1) AS hash').get() as {
      count: number;
      hash: string | null;
    };
    return { count: row.count, hash: row.hash ?? GENESIS_HASH, at: now.toISOString() };
  } finally {
    db.close();
  }
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
export function writeCheckpoint(options: {
  readonly journalPath: string;
  readonly file: string;
  readonly keys: CheckpointKeys;
  readonly now: Date;
}): Checkpoint {
  const checkpoint = signCheckpoint(sqliteJournalHead(options.journalPath, options.now), options.keys);
  publishCheckpoint(options.file, checkpoint);
  return checkpoint;
}

/** Runs `tick` every `ms` until the returned function is called. Tests inject a manual one. */
export type IntervalTimer = (ms: number, tick: () => void) => () => void;

export const realInterval: IntervalTimer = (ms, tick) => {
  const handle = setInterval(tick, ms);
  handle.unref(); // a pending checkpoint never keeps a stopping gateway alive
  return () => clearInterval(handle);
};

export interface Checkpointer {
  /** Stops the interval and writes the shutdown checkpoint (call after the journal's last append). */
  stop(): void;
}

/**
 * Checkpoints on an interval while serving, and once more on stop. A failed interval checkpoint
 * is reported and serving goes on: the journal itself is intact, and the next checkpoint covers it.
 */
export function startCheckpointer(options: {
  readonly journalPath: string;
  readonly config: CheckpointsConfig;
  readonly keys: CheckpointKeys;
  readonly clock: () => Date;
  readonly timer: IntervalTimer;
  readonly report: (error: unknown) => void;
}): Checkpointer {
  const write = () => writeCheckpoint({ journalPath: options.journalPath, file: options.config.publishFile, keys: options.keys, now: options.clock() });
  const cancel = options.timer(options.config.everyMs, () => {
    try {
      write();
    } catch (error) {
      options.report(error);
    }
  });
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      cancel();
      try {
        write();
      } catch (error) {
        options.report(error);
      }
    },
  };
}
