// `drawbridge journal export`, `journal verify`, `journal checkpoint` and `journal stream`: read the
// journal of a config's state (SQLite or PostgreSQL, through the state contract) or a
// SQLite file (--journal FILE), and print it, filtered, or the verdict on its hash chain
// and published checkpoints, or sign and publish its head now, or replay it to an audit
// stream sink. Nothing here writes to a journal or creates one, nor moves a stream cursor;
// checkpoint appends to the checkpoint file only.

import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { parsePublicKey } from '../journal/checkpoint.js';
import { checkpointKeys, readCheckpointFile, writeCheckpoint } from '../journal/checkpoint-file.js';
import { readStoreCalls, renderLines, type ExportFilter } from '../journal/export.js';
import { verifyStore, type VerifyOptions, type VerifyResult } from '../journal/verify.js';
import { openJournalReader, type JournalReader } from '../state/open.js';
import { createSink, streamRecord, type Sink, type StreamRecord } from '../journal/stream/sinks.js';
import type { CommandArgs } from './commands.js';
import { configDir, fail, type CliIo } from './io.js';
import { isRemote, remoteJournalExport } from './remote.js';

/** --journal FILE (a SQLite file), else the journal of the config's state; read-only, closed after `body`. */
async function withJournal<T>(
  values: { journal?: string | undefined; config?: string | undefined },
  io: CliIo,
  config: () => GatewayConfig,
  body: (reader: JournalReader) => Promise<T>,
): Promise<T> {
  const reader = await openJournalReader(
    values.journal
      ? { kind: 'file', path: resolve(io.cwd, values.journal) }
      : { kind: 'config', config: config(), environment: { env: io.env, baseDir: config().dir } },
  );
  try {
    return await body(reader);
  } finally {
    await reader.close();
  }
}

/** The config of --config (or $DRAWBRIDGE_CONFIG, or the working directory), loaded once when first asked for. */
function lazyConfig(values: { config?: string | undefined }, io: CliIo): () => GatewayConfig {
  let loaded: GatewayConfig | undefined;
  return () => (loaded ??= loadConfig(configDir(values.config, io)));
}

function exportFilter(values: CommandArgs<'journal export'>['values']): ExportFilter {
  const date = (flag: string, v: string | undefined): Date | undefined => {
    if (v === undefined) return undefined;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) fail(`--${flag} must be an ISO date or time, e.g. 2026-11-21 or 2026-11-21T10:00:00Z.`);
    return d;
  };
  if (values.decision !== undefined && !['allow', 'deny', 'approve'].includes(values.decision)) fail('--decision must be allow, deny or approve.');
  return {
    ...(values.since ? { since: date('since', values.since) as Date } : {}),
    ...(values.until ? { until: date('until', values.until) as Date } : {}),
    ...(values.subject ? { subject: values.subject } : {}),
    ...(values.tool ? { tool: values.tool } : {}),
    ...(values.connection ? { connection: values.connection } : {}),
    ...(values.decision ? { decision: values.decision as ExportFilter['decision'] & string } : {}),
  };
}

export async function journalExport({ values }: CommandArgs<'journal export'>, io: CliIo): Promise<number> {
  const format = values.format;
  if (format !== 'jsonl' && format !== 'csv') return fail('--format must be jsonl or csv.');
  const filter = exportFilter(values);
  if (isRemote(values, [['journal', values.journal]])) return remoteJournalExport(values, io);
  // Every entry is read before the first line is written: a missing or unreadable journal fails with no output.
  const entries = await withJournal(values, io, lazyConfig(values, io), (reader) => readStoreCalls(reader.journal, reader.where, filter));
  for (const line of renderLines(entries, format)) io.stdout.write(`${line}\n`);
  return 0;
}

type VerifyValues = CommandArgs<'journal verify'>['values'];

/**
 * The checkpoints verify checks: --checkpoints/--public-key (an auditor's own copies) or
 * the config's publish file and signing key. None when neither names any.
 */
function checkpointsToCheck(values: VerifyValues, io: CliIo, config: () => GatewayConfig): VerifyOptions['checkpoints'] {
  const fromConfig = values.journal && !values.config ? null : config().journal.checkpoints;
  const file = values.checkpoints !== undefined ? resolve(io.cwd, values.checkpoints) : fromConfig?.publishFile;
  if (file === undefined) {
    if (values['public-key'] !== undefined) fail('--public-key needs --checkpoints FILE (or a config with journal.checkpoints).');
    return undefined;
  }
  let publicKey: KeyObject;
  if (values['public-key'] !== undefined) {
    const keyFile = resolve(io.cwd, values['public-key']);
    let pem: string;
    try {
      pem = readFileSync(keyFile, 'utf8');
    } catch (error) {
      return fail(`Cannot read the public key ${keyFile}: ${(error as Error).message}`, 1);
    }
    publicKey = parsePublicKey(pem);
  } else if (fromConfig) {
    publicKey = checkpointKeys(fromConfig, { env: io.env, baseDir: config().dir }).publicKey;
  } else {
    return fail('--checkpoints needs --public-key FILE: the Ed25519 public key (PEM) the checkpoints are signed with.');
  }
  return { published: readCheckpointFile(file), publicKey };
}

/** What the checkpoints prove, for the OK line: and, precisely, what they do not. */
function checkpointLine(result: VerifyResult): string {
  const c = result.checkpoints;
  if (c === undefined) return 'no checkpoints checked, so records deleted from the end would not be detected';
  const proven = c.upTo === 0 ? 'proving no records yet' : `proving records 1..${c.upTo}`;
  const unproven =
    result.records > c.upTo
      ? `; records ${c.upTo + 1}..${result.records} come after the last checkpoint and are unproven (deleting them would not be detected)`
      : '';
  return `${c.checked} checkpoint(s) verified, ${proven}${unproven}`;
}

export async function journalVerify({ values }: CommandArgs<'journal verify'>, io: CliIo): Promise<number> {
  const config = lazyConfig(values, io);
  const checkpoints = checkpointsToCheck(values, io, config);
  const options: VerifyOptions = {
    ...(values['expect-head'] ? { expectHead: values['expect-head'] } : {}),
    ...(checkpoints ? { checkpoints } : {}),
  };
  const { result, path } = await withJournal(values, io, config, async (reader) => ({
    result: await verifyStore(reader.journal, options),
    path: reader.where,
  }));
  if (result.ok) {
    io.stdout.write(`OK ${path}: ${result.records} records, chain intact; head ${result.head}; ${checkpointLine(result)}\n`);
    return 0;
  }
  if (result.firstBad) {
    io.stdout.write(`FAILED ${path}: first bad record is #${result.firstBad.seq}: ${result.firstBad.reason} (${result.records} records read)\n`);
  }
  if (result.badCheckpoint) {
    io.stdout.write(`FAILED ${path}: bad checkpoint: ${result.badCheckpoint.reason}; the checkpoint file was altered or is not signed by this key\n`);
  }
  return 1;
}

export async function journalCheckpoint({ values }: CommandArgs<'journal checkpoint'>, io: CliIo): Promise<number> {
  const config = loadConfig(configDir(values.config, io));
  const settings = config.journal.checkpoints;
  if (settings === null) {
    return fail('No checkpoints are configured: add journal: { checkpoints: { signing_key, publish: { file } } } to kind: gateway.', 1);
  }
  const keys = checkpointKeys(settings, { env: io.env, baseDir: config.dir });
  const c = await withJournal(
    {},
    io,
    () => config,
    (reader) => writeCheckpoint({ journal: reader.journal, file: settings.publishFile, keys, now: new Date() }),
  );
  io.stdout.write(`checkpoint: ${c.count} records, head ${c.hash}, at ${c.at}, key ${c.keyId}; appended to ${settings.publishFile}\n`);
  return 0;
}

/** How many times `journal stream` tries one batch, and the backoff between tries (a person waits). */
const REPLAY_ATTEMPTS = 4;
const REPLAY_BACKOFF_MS = 1_000;
/** Records per page when printing. */
const REPLAY_PAGE = 500;

/**
 * `journal stream --from SEQ`: replays records SEQ..head (the head when it starts) to a configured
 * sink, in order and in its batch size, or as JSON lines on stdout. It never moves the sink's
 * durable cursor: the running gateway's streamer goes on from where it was.
 */
export async function journalStream({ values }: CommandArgs<'journal stream'>, io: CliIo): Promise<number> {
  const text = values.from;
  if (text === undefined) return fail('journal stream needs --from SEQ: the first record to send (1 is the first of the journal).');
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text))) {
    return fail(`--from takes a record number, 1 or more (got "${text}").`);
  }
  const from = Number(text);
  if (values['to-stdout'] && values.sink !== undefined) return fail('--sink and --to-stdout exclude each other: send to a sink, or print.');
  const config = loadConfig(configDir(values.config, io));
  const environment = { env: io.env, baseDir: config.dir };
  let sink: Sink | null = null;
  if (!values['to-stdout']) {
    const sinks = config.journal.stream;
    const names = sinks.map((s) => s.name).join(', ') || 'none';
    const chosen = values.sink === undefined ? (sinks.length === 1 ? sinks[0] : undefined) : sinks.find((s) => s.name === values.sink);
    if (chosen === undefined) {
      return fail(
        values.sink !== undefined
          ? `There is no stream sink named "${values.sink}" in journal.stream (configured: ${names}).`
          : sinks.length === 0
            ? 'No stream sink is configured (journal.stream in kind: gateway): name one there, or print with --to-stdout.'
            : `Several stream sinks are configured (${names}): choose one with --sink NAME.`,
        1,
      );
    }
    sink = createSink(chosen, { environment, clock: () => new Date() });
  }
  return withJournal(
    {},
    io,
    () => config,
    async (reader) => {
      const head = (await reader.journal.head()).seq;
      if (from > head) return fail(`--from ${from} is beyond the journal's head: ${reader.where} has ${head} record(s).`, 1);
      let after = from - 1;
      let sent = 0;
      while (after < head) {
        const rows = await reader.journal.readFrom(after, Math.min(sink?.batch ?? REPLAY_PAGE, head - after));
        if (rows.length === 0) break;
        const records = rows.map(streamRecord);
        if (sink === null) {
          for (const r of records) io.stdout.write(`${JSON.stringify(r)}\n`);
        } else {
          const error = await replayBatch(sink, records);
          if (error !== null) {
            const done = sent === 0 ? 'nothing was sent' : `records ${from}..${after} were sent`;
            return fail(`journal stream: sink ${sink.name} refused records ${after + 1}.. (${error}); ${done}. Retry with --from ${after + 1}.`, 1);
          }
        }
        sent += records.length;
        after = records[records.length - 1]?.seq ?? head;
      }
      if (sink !== null)
        io.stderr.write(`journal stream: ${sent} record(s), ${from}..${after}, sent to ${sink.name} (${sink.type}); its cursor did not move\n`);
      return 0;
    },
  );
}

/** One batch, retried a few times with backoff while retrying may help; null once acknowledged, else the last error. */
async function replayBatch(sink: Sink, records: readonly StreamRecord[]): Promise<string | null> {
  let error = '';
  for (let attempt = 1; attempt <= REPLAY_ATTEMPTS; attempt++) {
    const result = await sink.send(records, new AbortController().signal);
    if (result.ok) return null;
    error = result.error;
    if (!result.retry) break;
    if (attempt < REPLAY_ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, REPLAY_BACKOFF_MS * 2 ** (attempt - 1)));
  }
  return error;
}
