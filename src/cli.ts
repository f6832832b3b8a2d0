#!/usr/bin/env node
// The `drawbridge` command: serve (MCP over stdio), check, policy explain,
// journal export / verify, and demo. Argument parsing and printing only; the
// work happens in the modules each command calls.

import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from './config/load.js';
import { resolveSecret, type SecretRef } from './config/secrets.js';
import { DrawbridgeError, isDrawbridgeError } from './errors.js';
import { localIdentityProvider, makeIdentity, type Identity } from './identity/identity.js';
import { exportLines, type ExportFilter } from './journal/export.js';
import { verifyJournal } from './journal/verify.js';
import { openGateway } from './pipeline/gateway.js';
import { explain, formatExplanation } from './pipeline/explain.js';
import { serveStdio } from './server.js';

const USAGE = `drawbridge — governed production access for AI agents (MCP server)

Usage:
  drawbridge serve   [--config DIR]                 MCP server over stdio (what an agent's mcp.json runs)
  drawbridge check   [--config DIR]                 validate tools/ and policies/; exit 0 or 1
  drawbridge policy explain --tool T --connection C (--sql SQL | --input JSON)
                     [--subject S] [--groups a,b] [--offline] [--config DIR]
                                                    show the parsed request and the decision; runs nothing
  drawbridge journal export [--format jsonl|csv] [--since ISO] [--until ISO] [--subject S]
                     [--tool T] [--connection C] [--decision allow|deny|approve] [--journal FILE | --config DIR]
  drawbridge journal verify [--expect-head HASH] [--journal FILE | --config DIR]
  drawbridge demo    [--port N] [--no-tour]         throwaway PostgreSQL with sample PII + a guided tour

--config defaults to $DRAWBRIDGE_CONFIG, else the current directory (it must hold tools/ and/or policies/).`;

function configDir(value: string | undefined): string {
  return resolve(value ?? process.env['DRAWBRIDGE_CONFIG'] ?? '.');
}

function fail(message: string, code = 2): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'policy':
      if (rest[0] !== 'explain') fail(`Unknown policy command "${rest[0] ?? ''}". Try: drawbridge policy explain --help`);
      return policyExplain(rest.slice(1));
    case 'journal':
      if (rest[0] === 'export') return journalExport(rest.slice(1));
      if (rest[0] === 'verify') return journalVerify(rest.slice(1));
      return fail(`Unknown journal command "${rest[0] ?? ''}". Use: journal export | journal verify`);
    case 'demo': {
      const { runDemo } = await import('./devdb/demo.js');
      return runDemo(rest);
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      return fail(`Unknown command "${command}".\n\n${USAGE}`);
  }
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  const gateway = await openGateway({ configDir: configDir(values.config) });
  for (const w of gateway.config.warnings) process.stderr.write(`drawbridge: warning: ${w}\n`);
  const identity = gateway.config.identity;
  const identities = identity
    ? localIdentityProvider(identity)
    : {
        identify: (): Identity => {
          throw new DrawbridgeError('identity.missing', 'No caller identity is configured.');
        },
      };
  const server = await serveStdio(gateway, identities);
  process.stderr.write(`drawbridge: serving ${gateway.config.tools.size} tool(s) over stdio as ${identity ? `${identity.subject} [local]` : 'nobody (every call will be refused)'}; journal ${gateway.config.journal.path}\n`);
  await new Promise<void>((done) => {
    server.onclose = () => done();
    process.stdin.on('end', () => done());
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  await gateway.close();
  return 0;
}

function check(args: string[]): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string' } }, strict: true });
  const dir = configDir(values.config);
  try {
    const config = loadConfig(dir);
    const environment = { env: process.env, baseDir: config.dir };
    const unresolved: string[] = [];
    // Resolve each reference to see whether it is available here; the value is dropped at once, never printed.
    const probe = (owner: string, ref: SecretRef) => {
      try {
        resolveSecret(ref, environment);
      } catch (error) {
        unresolved.push(`${owner}: ${isDrawbridgeError(error) ? error.message : 'cannot be resolved'}`);
      }
    };
    const secrets = [...config.connections.values()].flatMap((c) =>
      c.backend.secretsOf(c.declaration).map((ref) => {
        probe(`connection ${c.declaration.name}`, ref);
        return `${c.declaration.name}: ${ref.describe}`;
      }),
    );
    if (config.hashKey) probe('masking.hash_key', config.hashKey);
    process.stdout.write(
      `OK ${dir}: ${config.connections.size} connection(s), ${config.tools.size} tool(s), ${config.rules.length} rule(s), ${config.masking.length} masking rule(s)\n` +
        (config.identity ? `identity: ${config.identity.subject} [local] groups: ${config.identity.groups.join(', ') || '(none)'}\n` : '') +
        (secrets.length ? `secrets referenced (resolved only at connect time): ${secrets.join('; ')}\n` : '') +
        [...config.warnings, ...unresolved.map((u) => `${u} (calls that need it will be refused until it is set)`)].map((w) => `warning: ${w}\n`).join(''),
    );
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
}

async function policyExplain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      tool: { type: 'string' },
      connection: { type: 'string' },
      sql: { type: 'string' },
      input: { type: 'string' },
      subject: { type: 'string' },
      groups: { type: 'string' },
      offline: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.tool || !values.connection) fail('policy explain needs --tool and --connection (and --sql or --input).');
  let input: Record<string, unknown>;
  if (values.input !== undefined) {
    try {
      input = JSON.parse(values.input) as Record<string, unknown>;
    } catch {
      return fail('--input must be a JSON object, e.g. --input \'{"sql":"select 1"}\'');
    }
  } else if (values.sql !== undefined) input = { sql: values.sql };
  else return fail('policy explain needs --sql or --input.');
  const gateway = await openGateway({ configDir: configDir(values.config), journalPath: ':memory:' });
  try {
    const declared = gateway.config.identity;
    const subject = values.subject ?? declared?.subject;
    if (!subject) fail('No identity: pass --subject (and --groups), or configure one in policies (kind: gateway).');
    const groups = values.groups !== undefined ? values.groups.split(',').map((g) => g.trim()).filter(Boolean) : values.subject ? [] : [...(declared?.groups ?? [])];
    const identity = makeIdentity({ kind: 'local', subject, groups, issuer: 'local' });
    const result = await explain(gateway, { tool: values.tool, connection: values.connection, input, identity, offline: values.offline });
    process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatExplanation(result));
    return 0;
  } finally {
    await gateway.close();
  }
}

function journalPath(values: { journal?: string | undefined; config?: string | undefined }): string {
  if (values.journal) return resolve(values.journal);
  return loadConfig(configDir(values.config)).journal.path;
}

function journalExport(args: string[]): number {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      journal: { type: 'string' },
      format: { type: 'string', default: 'jsonl' },
      since: { type: 'string' },
      until: { type: 'string' },
      subject: { type: 'string' },
      tool: { type: 'string' },
      connection: { type: 'string' },
      decision: { type: 'string' },
    },
    strict: true,
  });
  if (values.format !== 'jsonl' && values.format !== 'csv') fail('--format must be jsonl or csv.');
  const date = (flag: string, v: string | undefined): Date | undefined => {
    if (v === undefined) return undefined;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) fail(`--${flag} must be an ISO date or time, e.g. 2026-11-21 or 2026-11-21T10:00:00Z.`);
    return d;
  };
  if (values.decision !== undefined && !['allow', 'deny', 'approve'].includes(values.decision)) fail('--decision must be allow, deny or approve.');
  const filter: ExportFilter = {
    ...(values.since ? { since: date('since', values.since) as Date } : {}),
    ...(values.until ? { until: date('until', values.until) as Date } : {}),
    ...(values.subject ? { subject: values.subject } : {}),
    ...(values.tool ? { tool: values.tool } : {}),
    ...(values.connection ? { connection: values.connection } : {}),
    ...(values.decision ? { decision: values.decision as ExportFilter['decision'] & string } : {}),
  };
  for (const line of exportLines(journalPath(values), values.format, filter)) process.stdout.write(`${line}\n`);
  return 0;
}

function journalVerify(args: string[]): number {
  const { values } = parseArgs({ args, options: { config: { type: 'string' }, journal: { type: 'string' }, 'expect-head': { type: 'string' } }, strict: true });
  const path = journalPath(values);
  const result = verifyJournal(path, values['expect-head'] ? { expectHead: values['expect-head'] } : {});
  if (result.ok) {
    process.stdout.write(`OK ${path}: ${result.records} records, chain intact; head ${result.head}\n`);
    return 0;
  }
  process.stdout.write(`FAILED ${path}: first bad record is #${result.firstBad?.seq}: ${result.firstBad?.reason} (${result.records} records read)\n`);
  return 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (isDrawbridgeError(error)) {
      process.stderr.write(`drawbridge: ${error.code}: ${error.message}\n${error.hint}\n`);
      process.exitCode = error.code === 'config.invalid' ? 1 : 2;
      return;
    }
    if (error instanceof Error && 'code' in error && String((error as { code: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`drawbridge: ${error.message}\n\n${USAGE}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`drawbridge: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 70;
  },
);
