// `drawbridge journal export` and `drawbridge journal verify`: read the
// journal a config names (or --journal FILE) and print it, filtered, or the
// verdict on its hash chain. Nothing here writes to a journal.

import { resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { exportLines, type ExportFilter } from '../journal/export.js';
import { verifyJournal } from '../journal/verify.js';
import type { CommandArgs } from './commands.js';
import { configDir, fail, type CliIo } from './io.js';

function journalPath(values: { journal?: string | undefined; config?: string | undefined }, io: CliIo): string {
  if (values.journal) return resolve(io.cwd, values.journal);
  return loadConfig(configDir(values.config, io)).journal.path;
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

export function journalExport({ values }: CommandArgs<'journal export'>, io: CliIo): number {
  if (values.format !== 'jsonl' && values.format !== 'csv') fail('--format must be jsonl or csv.');
  const filter = exportFilter(values);
  for (const line of exportLines(journalPath(values, io), values.format, filter)) io.stdout.write(`${line}\n`);
  return 0;
}

export function journalVerify({ values }: CommandArgs<'journal verify'>, io: CliIo): number {
  const path = journalPath(values, io);
  const result = verifyJournal(path, values['expect-head'] ? { expectHead: values['expect-head'] } : {});
  if (result.ok) {
    io.stdout.write(`OK ${path}: ${result.records} records, chain intact; head ${result.head}\n`);
    return 0;
  }
  io.stdout.write(`FAILED ${path}: first bad record is #${result.firstBad?.seq}: ${result.firstBad?.reason} (${result.records} records read)\n`);
  return 1;
}
