#!/usr/bin/env node
// The `drawbridge` command: serve (MCP over stdio), check, policy explain,
// journal export / verify, approvals, grants and demo. Argument parsing and printing only; the
// work happens in the modules each command calls.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ApproverIdentity, Vote } from './approval/approver.js';
import { authenticateApprover } from './approval/approvers.js';
import { formatApproval, formatApprovalList, formatGrantList, safeLine } from './approval/format.js';
import { openApprovalStore, type ApprovalStore } from './approval/store.js';
import { ConfigError, loadConfig } from './config/load.js';
import type { GatewayConfig } from './config/schema.js';
import { resolveSecret, type SecretRef } from './config/secrets.js';
import { durationSchema, formatDuration } from './config/units.js';
import { DrawbridgeError, isDrawbridgeError } from './errors.js';
import { localIdentityProvider, makeIdentity, type Identity, type IdentityProvider } from './identity/identity.js';
import { createOidcVerifier, tokenIdentityProvider } from './identity/oidc.js';
import { exportLines, type ExportFilter } from './journal/export.js';
import { openJournal, type JournalRecord } from './journal/journal.js';
import { verifyJournal } from './journal/verify.js';
import { openGateway } from './pipeline/gateway.js';
import { explain, formatExplanation } from './pipeline/explain.js';
import { obtainAccessToken, runBridge, type BridgeOptions } from './bridge/connect.js';
import { serveHttp, type HttpGateway } from './http/server.js';
import { serveStdio } from './server.js';
import { installProcessGuard } from './server-guard.js';
import { checkConnections, connectionCheckFailed, formatConnectionReports } from './pipeline/probe.js';
import { CliError, COMMANDS, commandHelp, generalHelp, packageVersion, parseCommand, subcommandsOf, type CommandSpec } from './cli/commands.js';

function configDir(value: string | undefined): string {
  return resolve(value ?? process.env['DRAWBRIDGE_CONFIG'] ?? '.');
}

/** A usage mistake (2) or a fixable refusal (1): printed by main without a stack trace. */
function fail(message: string, code: 1 | 2 = 2): never {
  throw new CliError(message, code);
}

function help(spec: CommandSpec): number {
  process.stdout.write(commandHelp(spec));
  return 0;
}

function unknownSubcommand(group: string, given: string | undefined): never {
  const names = subcommandsOf(group);
  return fail(
    `${given === undefined || given === '--help' || given === '-h' ? `drawbridge ${group} needs a command` : `Unknown ${group} command "${safeLine(given)}"`}. Use: ${names.map((n) => `drawbridge ${group} ${n}`).join(' | ')} (each has --help).`,
  );
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'check':
      return check(rest);
    case 'connect':
      return connect(rest);
    case 'token':
      return token(rest);
    case 'policy':
      if (rest[0] !== 'explain') unknownSubcommand('policy', rest[0]);
      return policyExplain(rest.slice(1));
    case 'journal':
      if (rest[0] === 'export') return journalExport(rest.slice(1));
      if (rest[0] === 'verify') return journalVerify(rest.slice(1));
      return unknownSubcommand('journal', rest[0]);
    case 'approvals':
      if (rest[0] === 'list') return approvalsList(rest.slice(1));
      if (rest[0] === 'show') return approvalsShow(rest.slice(1));
      if (rest[0] === 'approve') return approvalsVote('approve', rest.slice(1));
      if (rest[0] === 'deny') return approvalsVote('deny', rest.slice(1));
      return unknownSubcommand('approvals', rest[0]);
    case 'grants':
      if (rest[0] === 'list') return grantsList(rest.slice(1));
      if (rest[0] === 'revoke') return grantsRevoke(rest.slice(1));
      return unknownSubcommand('grants', rest[0]);
    case 'demo': {
      const parsed = parseCommand(COMMANDS.demo, rest);
      if (parsed.help) return help(COMMANDS.demo);
      const { runDemo } = await import('../dev/demo.js');
      return runDemo(parsed.values);
    }
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`drawbridge ${packageVersion()}\n`);
      return 0;
    case undefined:
      process.stderr.write(generalHelp());
      return 2;
    case 'help':
    case '--help':
    case '-h': {
      const spec = rest.length > 0 ? (COMMANDS as Record<string, CommandSpec>)[rest.join(' ')] : undefined;
      if (rest.length > 0 && !spec) return fail(`No command "drawbridge ${safeLine(rest.join(' '))}". Run drawbridge --help for the list.`);
      process.stdout.write(spec ? commandHelp(spec) : generalHelp());
      return 0;
    }
    default:
      return fail(`Unknown command "${safeLine(command)}". Run drawbridge --help for the list of commands.`);
  }
}

async function serve(args: string[]): Promise<number> {
  const parsed = parseCommand(COMMANDS.serve, args);
  if (parsed.help) return help(COMMANDS.serve);
  const { values } = parsed;
  if (values['public-url'] !== undefined && values.http === undefined) fail('--public-url applies to --http only.');
  const listen = values.http === undefined ? null : parseListen(values.http);
  const gateway = await openGateway({ configDir: configDir(values.config) });
  for (const w of gateway.config.warnings) process.stderr.write(`drawbridge: warning: ${w}\n`);
  installProcessGuard(); // last resort while serving: a fault nobody foresaw is logged and the gateway keeps serving
  const stopped = new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  if (listen !== null) {
    const identity = gateway.config.identity;
    if (identity?.mode !== 'oidc') {
      await gateway.close();
      return fail(
        'serve --http needs OIDC identities (policies, kind: gateway, identity: { mode: oidc, issuer, audience }): over HTTP every caller proves who they are with a token from your OpenID provider.',
        1,
      );
    }
    let http: HttpGateway;
    try {
      http = await serveHttp(gateway, createOidcVerifier(identity), {
        ...listen,
        ...(values['public-url'] !== undefined ? { publicUrl: values['public-url'] } : {}),
      });
    } catch (error) {
      await gateway.close();
      return fail(`drawbridge: cannot listen on ${values.http}: ${(error as Error).message}`, 1);
    }
    if (http.resource !== identity.audience) {
      process.stderr.write(
        `drawbridge: warning: tokens must be issued for audience ${identity.audience}, but this server advertises the resource ${http.resource}; MCP clients ask the provider for the advertised one. Set audience to ${http.resource} (or --public-url to ${identity.audience}).\n`,
      );
    }
    process.stderr.write(
      `drawbridge: serving ${gateway.config.tools.size} tool(s) over Streamable HTTP at ${http.url} (resource ${http.resource}; tokens from ${identity.issuer}); journal ${gateway.config.journal.path}\n`,
    );
    await stopped;
    await http.close();
    await gateway.close();
    return 0;
  }
  let served: { identities: IdentityProvider; who: string };
  try {
    served = await stdioIdentities(gateway.config, process.env);
  } catch (error) {
    await gateway.close();
    if (isDrawbridgeError(error)) return fail(`drawbridge: cannot serve: ${error.code}: ${error.message}\n${error.hint}`, 1);
    throw error;
  }
  const server = await serveStdio(gateway, served.identities);
  process.stderr.write(`drawbridge: serving ${gateway.config.tools.size} tool(s) over stdio as ${served.who}; journal ${gateway.config.journal.path}\n`);
  await Promise.race([
    stopped,
    new Promise<void>((done) => {
      server.onclose = () => done();
      process.stdin.on('end', () => done());
    }),
  ]);
  await gateway.close();
  return 0;
}

/** `HOST:PORT` (IPv6 in brackets) for --http. */
function parseListen(value: string): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(m?.[2]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) return fail(`--http takes HOST:PORT, e.g. 127.0.0.1:8080 (got "${value}").`);
  return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
}

/** Options shared by `connect` and `token`: which gateway, which OAuth client, where tokens are cached. */
function bridgeOptions(args: string[], command: 'connect' | 'token'): BridgeOptions | null {
  const parsed = parseCommand(COMMANDS[command], args);
  if (parsed.help) return null;
  const { values, positionals } = parsed;
  const usage = `drawbridge ${command} URL [--client-id ID] [--scope S] [--token-cache FILE | --no-token-cache]`;
  if (positionals.length !== 1) fail(`${command} takes the gateway's MCP URL, e.g. https://drawbridge.example.com/mcp.\nUsage: ${usage}`);
  const clientId = values['client-id'] ?? process.env['DRAWBRIDGE_CLIENT_ID'];
  if (!clientId)
    fail(`${command} needs the OAuth client registered for Drawbridge at your provider: --client-id ID (or $DRAWBRIDGE_CLIENT_ID).\nUsage: ${usage}`);
  if (values['token-cache'] !== undefined && values['no-token-cache']) fail('--token-cache and --no-token-cache exclude each other.');
  // A secret on the command line would show in `ps`: the environment only.
  const clientSecret = process.env['DRAWBRIDGE_CLIENT_SECRET'];
  return {
    url: positionals[0] as string,
    clientId,
    ...(clientSecret ? { clientSecret } : {}),
    ...(values.scope !== undefined ? { scope: values.scope } : {}),
    ...(values['no-token-cache'] ? { tokenCache: null } : values['token-cache'] !== undefined ? { tokenCache: resolve(values['token-cache']) } : {}),
    log: (line: string) => process.stderr.write(`drawbridge: ${line}\n`),
  };
}

async function connect(args: string[]): Promise<number> {
  const options = bridgeOptions(args, 'connect');
  if (options === null) return help(COMMANDS.connect);
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  try {
    await runBridge({ ...options, signal: controller.signal });
    return 0;
  } catch (error) {
    if (controller.signal.aborted) return 0;
    return fail(`drawbridge connect: ${isDrawbridgeError(error) ? `${error.code}: ${error.message}` : (error as Error).message}`, 1);
  }
}

async function token(args: string[]): Promise<number> {
  const options = bridgeOptions(args, 'token');
  if (options === null) return help(COMMANDS.token);
  try {
    const source = await obtainAccessToken(options);
    process.stdout.write(`${await source.current()}\n`);
    return 0;
  } catch (error) {
    return fail(`drawbridge token: ${isDrawbridgeError(error) ? `${error.code}: ${error.message}` : (error as Error).message}`, 1);
  }
}

/**
 * The stdio caller: declared by the operator (local), or proven by an OIDC
 * access token in the environment, verified before the server starts.
 */
async function stdioIdentities(config: GatewayConfig, env: NodeJS.ProcessEnv): Promise<{ identities: IdentityProvider; who: string }> {
  const identity = config.identity;
  if (identity === null) {
    return {
      identities: {
        identify: (): Identity => {
          throw new DrawbridgeError('identity.missing', 'No caller identity is configured.');
        },
      },
      who: 'nobody (every call will be refused)',
    };
  }
  if (identity.mode === 'local') return { identities: localIdentityProvider(identity), who: `${identity.subject} [local]` };
  const token = env[identity.token_env]?.trim();
  if (!token) {
    throw new DrawbridgeError('identity.missing', `OIDC identities: set ${identity.token_env} to your access token for ${identity.audience}.`, {
      hint: `For example: ${identity.token_env}=$(drawbridge token ${identity.audience} --client-id CLIENT) drawbridge serve. Or run the gateway over HTTP and use drawbridge connect.`,
    });
  }
  const { provider, verified } = await tokenIdentityProvider(createOidcVerifier(identity), token);
  const groups = verified.identity.groups.join(', ') || 'no groups';
  return {
    identities: provider,
    who: `${verified.identity.subject} [oidc ${identity.issuer}; ${groups}] until ${new Date(verified.expiresAt * 1000).toISOString()}`,
  };
}

async function check(args: string[]): Promise<number> {
  const parsed = parseCommand(COMMANDS.check, args);
  if (parsed.help) return help(COMMANDS.check);
  const { values } = parsed;
  const dir = configDir(values.config);
  let config: GatewayConfig;
  try {
    config = loadConfig(dir);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  describeConfig(dir, config, !values.connect);
  if (!values.connect) return 0;
  process.stdout.write(`Reaching ${config.connections.size} connection(s) as the gateway would …\n`);
  const reports = await checkConnections(config, { env: process.env });
  process.stdout.write(formatConnectionReports(reports));
  const code = connectionCheckFailed(reports) ? 1 : 0;
  // A server that accepted a connection and never answered leaves the driver's
  // socket open for a while after its report; the answer is complete, so exit now.
  await new Promise<void>((done) => process.stdout.write('', () => done()));
  process.exit(code);
}

/**
 * What `check` prints about a valid config: counts, identity, secrets (never
 * their values) and warnings. With `probeSecrets` each reference is resolved
 * here to warn about the missing ones; `--connect` reports those per connection.
 */
function describeConfig(dir: string, config: GatewayConfig, probeSecrets: boolean): void {
  const environment = { env: process.env, baseDir: config.dir };
  const unresolved: string[] = [];
  // Resolve each reference to see whether it is available here; the value is dropped at once, never printed.
  const probe = (owner: string, ref: SecretRef) => {
    try {
      if (probeSecrets) resolveSecret(ref, environment);
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
      (config.identity?.mode === 'local' ? `identity: ${config.identity.subject} [local] groups: ${config.identity.groups.join(', ') || '(none)'}\n` : '') +
      (config.identity?.mode === 'oidc'
        ? `identity: OIDC, issuer ${config.identity.issuer}, audience ${config.identity.audience}, groups from ${config.identity.groups_claim}${config.identity.required_scopes.length ? `, scopes ${config.identity.required_scopes.join(' ')}` : ''}\n`
        : '') +
      (secrets.length ? `secrets referenced (resolved only at connect time): ${secrets.join('; ')}\n` : '') +
      [...config.warnings, ...unresolved.map((u) => `${u} (calls that need it will be refused until it is set)`)].map((w) => `warning: ${w}\n`).join(''),
  );
}

async function policyExplain(args: string[]): Promise<number> {
  const parsed = parseCommand(COMMANDS['policy explain'], args);
  if (parsed.help) return help(COMMANDS['policy explain']);
  const { values } = parsed;
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
    const declared = gateway.config.identity?.mode === 'local' ? gateway.config.identity : null;
    const subject = values.subject ?? declared?.subject;
    if (!subject) fail('No identity: pass --subject (and --groups), or configure a local one in policies (kind: gateway).');
    const groups =
      values.groups !== undefined
        ? values.groups
            .split(',')
            .map((g) => g.trim())
            .filter(Boolean)
        : values.subject
          ? []
          : [...(declared?.groups ?? [])];
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
  const parsed = parseCommand(COMMANDS['journal export'], args);
  if (parsed.help) return help(COMMANDS['journal export']);
  const { values } = parsed;
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
  const parsed = parseCommand(COMMANDS['journal verify'], args);
  if (parsed.help) return help(COMMANDS['journal verify']);
  const { values } = parsed;
  const path = journalPath(values);
  const result = verifyJournal(path, values['expect-head'] ? { expectHead: values['expect-head'] } : {});
  if (result.ok) {
    process.stdout.write(`OK ${path}: ${result.records} records, chain intact; head ${result.head}\n`);
    return 0;
  }
  process.stdout.write(`FAILED ${path}: first bad record is #${result.firstBad?.seq}: ${result.firstBad?.reason} (${result.records} records read)\n`);
  return 1;
}

// ---------------------------------------------------------------------------
// approvals and grants

/** Prints a catalog error and returns the exit code: 2 for a bad argument, 1 for any refusal or unavailability. */
function refused(error: unknown): number {
  if (!isDrawbridgeError(error) || error.code === 'config.invalid') throw error;
  process.stderr.write(`drawbridge: ${error.code}: ${error.message}\n${error.hint}\n`);
  return error.code === 'input.invalid' ? 2 : 1;
}

function withStore<T>(config: GatewayConfig, body: (store: ApprovalStore) => T): T {
  const store = openApprovalStore(config.approval.store);
  try {
    return body(store);
  } finally {
    store.close();
  }
}

/** The presented approver token: --token-file wins over $DRAWBRIDGE_APPROVER_TOKEN. Never printed. */
function approverToken(tokenFile: string | undefined): string {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(resolve(tokenFile), 'utf8').trim();
    } catch {
      return fail(`Cannot read the token file ${tokenFile}.`);
    }
    if (text === '') fail(`The token file ${tokenFile} is empty.`);
    return text;
  }
  const token = process.env['DRAWBRIDGE_APPROVER_TOKEN'];
  if (token === undefined || token.trim() === '') fail('This needs your approver token: set DRAWBRIDGE_APPROVER_TOKEN, or pass --token-file PATH.');
  return token.trim();
}

function parseGrant(value: string | undefined): number {
  if (value === undefined || value === 'none' || value === '0') return 0;
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success || parsed.data <= 0) fail(`--grant must be a duration such as 15m or 1h, or none (got ${JSON.stringify(safeLine(value))}).`);
  return parsed.data;
}

/** The one ID argument (parseCommand has checked there is exactly one); an empty string is a usage mistake too. */
function oneId(positionals: string[], spec: CommandSpec): string {
  const id = positionals[0];
  if (!id) fail(`drawbridge ${spec.path} needs an ID.\nUsage: drawbridge ${spec.usage[0] ?? ''}`);
  return id;
}

function approvalsList(args: string[]): number {
  const parsed = parseCommand(COMMANDS['approvals list'], args);
  if (parsed.help) return help(COMMANDS['approvals list']);
  const { values } = parsed;
  const config = loadConfig(configDir(values.config));
  try {
    const now = new Date();
    const approvals = withStore(config, (store) => store.list(now, values.all ? {} : { status: 'pending' }));
    process.stdout.write(values.json ? `${JSON.stringify(approvals, null, 2)}\n` : formatApprovalList(approvals, now, { all: values.all }));
    return 0;
  } catch (error) {
    return refused(error);
  }
}

function approvalsShow(args: string[]): number {
  const parsed = parseCommand(COMMANDS['approvals show'], args);
  if (parsed.help) return help(COMMANDS['approvals show']);
  const { values } = parsed;
  const id = oneId(parsed.positionals, COMMANDS['approvals show']);
  const config = loadConfig(configDir(values.config));
  try {
    const now = new Date();
    const approval = withStore(config, (store) => store.get(id, now));
    if (!approval) throw new DrawbridgeError('approval.not_found', `No approval request ${JSON.stringify(safeLine(id))}.`);
    process.stdout.write(values.json ? `${JSON.stringify(approval, null, 2)}\n` : formatApproval(approval, now));
    return 0;
  } catch (error) {
    return refused(error);
  }
}

function approverRecord(a: ApproverIdentity): Record<string, unknown> {
  return { subject: a.subject, groups: [...a.groups], kind: a.kind };
}

/**
 * A vote and its journal record commit together or not at all, as far as two
 * files allow. The journal is opened first (fail early when it is unavailable),
 * then the vote runs in one store write transaction, and the journal record is
 * appended (and fsynced) from inside that transaction, after the vote is
 * validated and before it commits. If the append fails, the store rolls the
 * vote back: a vote never counts without its journal record. The remaining
 * window is the store's COMMIT failing after the append; then the journal holds
 * a vote the store did not keep (an over-record, never a silent approval): the
 * request is unchanged, the command says so loudly and exits non-zero.
 */
async function approvalsVote(decision: 'approve' | 'deny', args: string[]): Promise<number> {
  const spec = decision === 'approve' ? COMMANDS['approvals approve'] : COMMANDS['approvals deny'];
  const parsed = decision === 'approve' ? parseCommand(COMMANDS['approvals approve'], args) : parseCommand(COMMANDS['approvals deny'], args);
  if (parsed.help) return help(spec);
  const values: { config?: string | undefined; reason?: string | undefined; grant?: string | undefined; 'token-file'?: string | undefined } = parsed.values;
  const usage = `drawbridge ${spec.usage[0] ?? ''}`;
  const id = oneId(parsed.positionals, spec);
  const reason = values.reason?.trim() || undefined;
  if (decision === 'deny' && reason === undefined) fail(`A denial needs a reason the requester will see: --reason TEXT.\nUsage: ${usage}`);
  if (decision === 'deny' && values.grant !== undefined) fail('--grant applies to approve only.');
  const grantMs = decision === 'approve' ? parseGrant(values.grant) : 0;
  const token = approverToken(values['token-file']);
  const config = loadConfig(configDir(values.config));
  let record: JournalRecord | undefined;
  let committed = false;
  try {
    const approver = await authenticateApprover(config, token, process.env);
    const journal = openJournal(config.journal.path, { sync: config.journal.sync });
    try {
      const now = new Date();
      const vote: Vote = {
        approver,
        decision,
        via: 'cli',
        ...(reason !== undefined ? { reason } : {}),
        ...(grantMs > 0 ? { grantMs } : {}),
        at: now.toISOString(),
      };
      const after = withStore(config, (store) =>
        store.vote(id, vote, now, {
          beforeCommit: (a) => {
            record = journal.append(
              'approval',
              a.subject.callId,
              {
                event: 'vote',
                approvalId: a.id,
                hash: a.hash,
                decision,
                approver: approverRecord(approver),
                via: 'cli',
                reason: reason ?? null,
                grantMs: decision === 'approve' ? grantMs : null,
                status: a.status,
              },
              now,
            );
          },
        }),
      );
      committed = true;
      const approvals = new Set(after.votes.filter((v) => v.decision === 'approve').map((v) => v.approver.subject)).size;
      const outcome =
        after.status === 'approved'
          ? `approved (${approvals}/${after.subject.min}); grant ${after.grantMs ? formatDuration(after.grantMs) : 'none: this call only'}. The waiting call, or the agent's next identical call, runs it.`
          : after.status === 'denied'
            ? 'denied. The agent is told your reason; nothing runs.'
            : `pending (${approvals}/${after.subject.min} approvals).`;
      process.stdout.write(
        `${after.id}: ${decision} by ${safeLine(approver.subject)} recorded (journal #${record?.seq ?? '?'}). Request ${safeLine(after.subject.tool)} on ${safeLine(after.subject.connection)} is now ${outcome}\n`,
      );
      return 0;
    } finally {
      journal.close();
    }
  } catch (error) {
    if (record !== undefined && !committed) {
      process.stderr.write(
        `drawbridge: ERROR: journal record #${record.seq} says ${decision} on ${id}, but the approvals store did not keep the vote; the request is unchanged. Tell the operator, then vote again.\n`,
      );
    }
    return refused(error);
  }
}

function grantsList(args: string[]): number {
  const parsed = parseCommand(COMMANDS['grants list'], args);
  if (parsed.help) return help(COMMANDS['grants list']);
  const { values } = parsed;
  const config = loadConfig(configDir(values.config));
  try {
    const now = new Date();
    const grants = withStore(config, (store) => store.listGrants(now, values.all ? {} : { active: true }));
    process.stdout.write(values.json ? `${JSON.stringify(grants, null, 2)}\n` : formatGrantList(grants, now, { all: values.all }));
    return 0;
  } catch (error) {
    return refused(error);
  }
}

/**
 * Revoking reduces access, so it must not wait on the journal: the grant is
 * revoked first, then the revocation is journaled. If the journal cannot be
 * written the grant stays revoked, and the command says so and exits 1.
 */
async function grantsRevoke(args: string[]): Promise<number> {
  const parsed = parseCommand(COMMANDS['grants revoke'], args);
  if (parsed.help) return help(COMMANDS['grants revoke']);
  const { values } = parsed;
  const id = oneId(parsed.positionals, COMMANDS['grants revoke']);
  const token = approverToken(values['token-file']);
  const config = loadConfig(configDir(values.config));
  try {
    const approver = await authenticateApprover(config, token, process.env);
    const now = new Date();
    const { grant, callId } = withStore(config, (store) => {
      const revoked = store.revokeGrant(id, approver.subject, now);
      // Journal under the call that requested the approval; in-band grants have no stored request.
      return { grant: revoked, callId: store.get(revoked.approvalId, now)?.subject.callId ?? revoked.id };
    });
    process.stdout.write(
      `${grant.id}: revoked by ${safeLine(approver.subject)}; ${safeLine(grant.subject)} no longer has ${safeLine(grant.tool)} on ${safeLine(grant.connection)} under rule ${safeLine(grant.rule)} (it would have expired ${grant.expiresAt}).\n`,
    );
    try {
      const journal = openJournal(config.journal.path, { sync: config.journal.sync });
      try {
        journal.append(
          'grant',
          callId,
          { event: 'revoked', grantId: grant.id, approvalId: grant.approvalId, by: approver.subject, approver: approverRecord(approver) },
          now,
        );
      } finally {
        journal.close();
      }
    } catch (error) {
      process.stderr.write(`drawbridge: ERROR: grant ${grant.id} IS revoked, but the revocation could not be journaled. Tell the operator.\n`);
      return refused(error);
    }
    return 0;
  } catch (error) {
    return refused(error);
  }
}

// `drawbridge journal export | head`: the reader leaving is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = reportFailure(error);
  },
);

/**
 * Prints what went wrong for a person and returns the exit code: 2 for usage,
 * 1 for anything they (or the operator) can fix, 70 only for a real internal
 * fault. A stack trace is printed only with DRAWBRIDGE_DEBUG=1.
 */
function reportFailure(error: unknown): number {
  if (error instanceof CliError) {
    process.stderr.write(`${error.message.startsWith('drawbridge') ? '' : 'drawbridge: '}${error.message}\n`);
    return error.exitCode;
  }
  if (isDrawbridgeError(error)) {
    process.stderr.write(`drawbridge: ${error.code}: ${error.message}\n${error.hint}\n`);
    return error.code === 'input.invalid' ? 2 : 1;
  }
  const debug = process.env['DRAWBRIDGE_DEBUG'] === '1';
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(
    `drawbridge: internal error: ${message}\nThis is a bug in Drawbridge, not something you did. Run again with DRAWBRIDGE_DEBUG=1 for the details and report them.\n` +
      (debug && error instanceof Error && error.stack ? `${error.stack}\n` : ''),
  );
  return 70;
}
