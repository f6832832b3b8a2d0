// `drawbridge state migrate` (apply a config's pending PostgreSQL schema migrations) and
// `drawbridge state copy --from … --to …` (move a journal, its approvals and grants from one
// engine to another with the hash chain intact). Parsing the locations and checking the copy
// record by record happen here; opening and migrating the engines is state/open.ts's.

import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { isDrawbridgeError } from '../errors.js';
import { verifyStore } from '../journal/verify.js';
import type { StoredRecord } from '../state/contract.js';
import { migrateState, openStateSource, openStateTarget, stateLabel, type StateLocation } from '../state/open.js';
import type { RecordType } from '../state/records.js';
import type { CommandArgs } from './commands.js';
import { configDir, fail, type CliIo } from './io.js';
import { STATE_LOCATIONS } from './state-locations.js';

export async function stateMigrate({ values }: CommandArgs<'state migrate'>, io: CliIo): Promise<number> {
  const config = loadConfig(configDir(values.config, io));
  const result = await migrateState(config, { env: io.env, baseDir: config.dir });
  if (result.engine === 'sqlite') {
    io.stdout.write(
      `state: SQLite (embedded), journal ${config.journal.path}: nothing to migrate; its files are created and checked when the gateway starts.\n`,
    );
    return 0;
  }
  const what = result.from === result.to ? `schema already at version ${result.to}` : `schema migrated from version ${result.from} to ${result.to}`;
  io.stdout.write(`state: ${stateLabel(config)}: ${what}\n`);
  return 0;
}

/** The default environment variable holding the PostgreSQL state URL. */
const DEFAULT_URL_VARIABLE = 'DRAWBRIDGE_STATE_URL';

/** A parsed --from/--to, with how to name it in messages (never a URL). */
interface Location {
  readonly at: StateLocation;
  readonly label: string;
}

/**
 * `sqlite:DIR` (journal.db and approvals.db in DIR), `sqlite:FILE.db` (the journal; approvals.db
 * next to it), `postgres` (the URL in $DRAWBRIDGE_STATE_URL) or `postgres:VAR` (the URL in $VAR).
 * A URL is never taken from the command line: it holds a password, and `ps` shows arguments.
 */
function parseLocation(flag: 'from' | 'to', value: string | undefined, io: CliIo): Location {
  const usage = STATE_LOCATIONS;
  if (value === undefined || value === '') return fail(`state copy needs --${flag}: ${usage}.`);
  const colon = value.indexOf(':');
  const scheme = colon === -1 ? value : value.slice(0, colon);
  const rest = colon === -1 ? '' : value.slice(colon + 1);
  if (scheme === 'postgres' || scheme === 'postgresql') {
    if (rest.startsWith('//')) {
      return fail(`--${flag} takes the name of an environment variable holding the URL (postgres:VAR), never the URL itself: it holds a password.`);
    }
    const variable = rest === '' ? DEFAULT_URL_VARIABLE : rest.replace(/^\$/, '');
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) return fail(`--${flag} ${value}: postgres:VAR names an environment variable (got "${variable}").`);
    const url = io.env[variable];
    if (url === undefined || url.trim() === '')
      return fail(`--${flag} ${value}: environment variable ${variable} is not set (it must hold the PostgreSQL URL).`, 1);
    return { at: { engine: 'postgres', url: url.trim() }, label: `postgres ($${variable})` };
  }
  if (scheme === 'sqlite' && rest !== '') {
    const path = resolve(io.cwd, rest);
    const isDir = existsSync(path) ? statSync(path).isDirectory() : !path.endsWith('.db');
    const journal = isDir ? join(path, 'journal.db') : path;
    const approvals = join(isDir ? path : dirname(path), 'approvals.db');
    if (journal === approvals) return fail(`--${flag} ${value}: the journal cannot be approvals.db, the approvals file next to it.`);
    return { at: { engine: 'sqlite', journal, approvals }, label: `sqlite:${journal}` };
  }
  return fail(`--${flag} must be ${usage} (got "${value}").`);
}

function sameLocation(a: StateLocation, b: StateLocation): boolean {
  if (a.engine === 'sqlite' && b.engine === 'sqlite') return a.journal === b.journal || a.approvals === b.approvals;
  return a.engine === 'postgres' && b.engine === 'postgres' && a.url === b.url;
}

/** A copy that must stop: exit 1 with the reason; nothing is printed as copied. */
function stop(message: string): never {
  return fail(`drawbridge state copy: ${message}`, 1);
}

export async function stateCopy({ values }: CommandArgs<'state copy'>, io: CliIo): Promise<number> {
  const from = parseLocation('from', values.from, io);
  const to = parseLocation('to', values.to, io);
  if (sameLocation(from.at, to.at)) return fail('--from and --to name the same state.');
  if (from.at.engine === 'sqlite' && !existsSync(from.at.journal)) return stop(`the source journal ${from.at.journal} does not exist.`);

  const source = await openStateSource(from.at);
  try {
    // The source's chain is checked first: a broken source is refused before anything is written.
    const verified = await verifyStore(source.journal);
    if (!verified.ok) {
      const bad = verified.firstBad;
      return stop(`the source ${from.label} fails verification${bad ? ` at record #${bad.seq}: ${bad.reason}` : ''}; nothing was copied.`);
    }
    const dump = await source.dumpApprovals();
    const target = await openStateTarget(to.at);
    try {
      const head = await target.journal.head();
      const existing = await target.approvals.dump();
      if (head.seq > 0 || existing.approvals.length > 0 || existing.grants.length > 0) {
        return stop(
          `the target ${to.label} is not empty (${head.seq} journal record(s), ${existing.approvals.length} approval(s), ` +
            `${existing.grants.length} grant(s)); nothing was written. Copy into a new database or directory.`,
        );
      }
      const copied = await copyJournal(source.journal.read(), verified.records, async (row, durable) => {
        const record = await target.journal.append(
          row.type as RecordType,
          String(row.callId),
          JSON.parse(String(row.data)) as Record<string, unknown>,
          new Date(String(row.time)),
          {
            durable,
          },
        );
        if (record.seq !== row.seq || record.hash !== row.hash) {
          return stop(
            `record #${String(row.seq)} copies as #${record.seq} with hash ${record.hash}, not the source's ${String(row.hash)} ` +
              `(its time or data does not survive the copy unchanged). The target ${to.label} now holds ${record.seq} record(s): ` +
              'discard it before copying again.',
          );
        }
      });
      await target.approvals.load(dump);
      const check = await verifyStore(target.journal);
      if (!check.ok || check.records !== verified.records || check.head !== verified.head) {
        return stop(`the copy in ${to.label} does not verify as the source did (${check.records} records, head ${check.head}): discard it.`);
      }
      io.stdout.write(
        `copied ${from.label} → ${to.label}: ${copied} journal record(s), chain verified, head ${check.head}; ` +
          `${dump.approvals.length} approval(s), ${dump.grants.length} grant(s)\n`,
      );
      return 0;
    } finally {
      await target.close();
    }
  } catch (error) {
    if (isDrawbridgeError(error)) return stop(`${error.code}: ${error.message}`);
    throw error;
  } finally {
    await source.close();
  }
}

/** Appends of a copy awaiting their commit at once. */
const COPY_WINDOW = 256;

/**
 * Appends the first `count` source records (the verified snapshot; a gateway may still append
 * to the source) in order through `append`. Only the last append is durable: it makes every
 * earlier one durable too (the engines' AppendOptions), instead of one sync per record.
 */
async function copyJournal(rows: AsyncIterable<StoredRecord>, count: number, append: (row: StoredRecord, durable: boolean) => Promise<void>): Promise<number> {
  // Up to COPY_WINDOW appends in flight, so the target's group commit batches them: one handle
  // chains its appends in call order (the contract), and each is still checked against its source.
  const inFlight: Promise<void>[] = [];
  const started = (p: Promise<void>): void => {
    p.catch(() => undefined); // observed here, thrown below when awaited in order
    inFlight.push(p);
  };
  let pending: StoredRecord | undefined;
  let seen = 0;
  for await (const row of rows) {
    if (seen === count) break;
    seen++;
    if (pending) started(append(pending, false));
    if (inFlight.length >= COPY_WINDOW) await inFlight.shift();
    pending = row;
  }
  for (const p of inFlight.splice(0)) await p;
  if (pending) await append(pending, true);
  return seen;
}
