// The command line's vocabulary: every `drawbridge` command with its options,
// a one-line summary, usage lines and an example, in one table. From it come
// `drawbridge --help`, `drawbridge <command> --help`, and the parsing of each
// command's arguments, so an unknown option always names the options the
// command does have. No command's work happens here (src/cli/main.ts dispatches).

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BACKENDS } from '../backends/index.js';
import { STATE_COPY_EXAMPLES, STATE_COPY_NOTES, STATE_LOCATIONS } from './state-locations.js';

/** A mistake on the command line (exit 2) or a refusal the user can fix (exit 1); printed without a stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: 1 | 2;
  constructor(message: string, exitCode: 1 | 2 = 2) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly default?: string | boolean;
  /** The value's placeholder in help (`DIR`, `HOST:PORT`); string options only. */
  readonly value?: string;
  readonly help: string;
}

export interface CommandSpec<O extends Readonly<Record<string, OptionSpec>> = Readonly<Record<string, OptionSpec>>> {
  /** As typed after `drawbridge`: `serve`, `journal export`. */
  readonly path: string;
  readonly summary: string;
  /** Usage lines without the leading `drawbridge`. */
  readonly usage: readonly string[];
  readonly options: O;
  /** Positional arguments: how many, and their name for messages. */
  readonly positionals?: { readonly name: string; readonly min: number; readonly max: number };
  readonly examples: readonly string[];
  readonly notes?: readonly string[];
}

function define<const O extends Readonly<Record<string, OptionSpec>>>(spec: CommandSpec<O>): CommandSpec<O> {
  return spec;
}

const CONFIG = {
  type: 'string',
  value: 'DIR',
  help: 'the config directory holding tools/ and policies/ (default: $DRAWBRIDGE_CONFIG, else the current directory)',
} as const;
const TOKEN_FILE = { type: 'string', value: 'PATH', help: 'read your approver token from this file instead of $DRAWBRIDGE_APPROVER_TOKEN' } as const;
const JSON_OUT = { type: 'boolean', default: false, help: 'print JSON instead of text' } as const;
const BRIDGE_OPTIONS = {
  'client-id': { type: 'string', value: 'ID', help: 'the OAuth client registered for Drawbridge at your provider (default: $DRAWBRIDGE_CLIENT_ID)' },
  scope: { type: 'string', value: 'S', help: 'scopes to ask for (default: the ones the gateway advertises)' },
  'token-cache': { type: 'string', value: 'FILE', help: 'where tokens are cached, mode 0600 (default: ~/.cache/drawbridge/tokens.json)' },
  'no-token-cache': { type: 'boolean', default: false, help: 'keep tokens in memory only' },
} as const;

/** Remote approvers: the approvals API of a gateway, signed in as `drawbridge token` signs in. */
const REMOTE = {
  gateway: {
    type: 'string',
    value: 'URL',
    help: "a gateway's MCP URL: act through its approvals API, signed in with your own account (instead of --config)",
  },
  ...BRIDGE_OPTIONS,
} as const;
const REMOTE_USAGE = '[--config DIR | --gateway URL [--client-id ID]]';

export const COMMANDS = {
  serve: define({
    path: 'serve',
    summary: 'MCP server over stdio (what an agent’s MCP config runs), or over Streamable HTTP with OIDC bearer tokens',
    usage: ['serve [--config DIR]', 'serve --http HOST:PORT [--public-url URL] [--config DIR]'],
    options: {
      config: CONFIG,
      http: { type: 'string', value: 'HOST:PORT', help: 'serve MCP over Streamable HTTP on this address instead of stdio; needs OIDC identities' },
      'public-url': { type: 'string', value: 'URL', help: 'with --http: the public MCP URL behind your TLS proxy (must equal identity.audience)' },
    },
    examples: [
      'drawbridge serve --config /etc/drawbridge',
      'drawbridge serve --http 127.0.0.1:8080 --public-url https://drawbridge.example.com/mcp --config /etc/drawbridge',
    ],
  }),
  connect: define({
    path: 'connect',
    summary: 'stdio bridge to a remote Drawbridge: signs you in (device flow; client credentials with $DRAWBRIDGE_CLIENT_SECRET) and forwards MCP',
    usage: ['connect URL [--client-id ID] [--scope S] [--token-cache FILE | --no-token-cache]'],
    options: BRIDGE_OPTIONS,
    positionals: { name: 'URL', min: 1, max: 1 },
    examples: ['drawbridge connect https://drawbridge.example.com/mcp --client-id drawbridge-cli'],
    notes: ['Sign in once in a terminal first (drawbridge token URL --client-id ID): the bridge then starts with a cached token.'],
  }),
  token: define({
    path: 'token',
    summary: 'sign in and print an access token for a gateway (e.g. for approvers)',
    usage: ['token URL [--client-id ID] [--scope S] [--token-cache FILE | --no-token-cache]'],
    options: BRIDGE_OPTIONS,
    positionals: { name: 'URL', min: 1, max: 1 },
    examples: [
      'drawbridge token https://drawbridge.example.com/mcp --client-id drawbridge-cli > /dev/null    # sign in once; the bridge then starts signed in',
      'export DRAWBRIDGE_APPROVER_TOKEN=$(drawbridge token https://drawbridge.example.com/mcp --client-id drawbridge-cli)',
    ],
  }),
  reload: define({
    path: 'reload',
    summary: "ask a running gateway to reload tools/ and policies/ (its admin listener's POST /reload, like SIGHUP); prints the hash or the problems",
    usage: ['reload [--admin URL] [--config DIR]'],
    options: {
      config: CONFIG,
      admin: { type: 'string', value: 'URL', help: "the gateway's admin listener, e.g. http://127.0.0.1:9090 (default: admin.listen of the config)" },
    },
    examples: [
      'drawbridge reload --config /etc/drawbridge',
      'export DRAWBRIDGE_OPERATOR_TOKEN=$(drawbridge token https://drawbridge.example.com/mcp --client-id drawbridge-cli)',
      'drawbridge reload --admin http://10.0.0.5:9090',
    ],
    notes: [
      'Exit 0: the new config took effect. Exit 1: the gateway refused it (the running config is kept; the problems are printed), or it cannot be reached.',
      'With OIDC identities the gateway wants an operator (admin.operators) token: set DRAWBRIDGE_OPERATOR_TOKEN.',
    ],
  }),
  check: define({
    path: 'check',
    summary: 'validate tools/ and policies/; with --connect also reach every connection; exit 0 or 1',
    usage: ['check [--connect] [--config DIR]'],
    options: {
      config: CONFIG,
      connect: { type: 'boolean', default: false, help: 'also reach every declared connection as the gateway would, one line each' },
    },
    examples: ['drawbridge check --config /etc/drawbridge', 'drawbridge check --connect --config /etc/drawbridge'],
  }),
  'policy explain': define({
    path: 'policy explain',
    summary: 'show how a request is parsed and decided; runs and journals nothing',
    usage: [
      'policy explain --tool T --connection C (--sql SQL | --input JSON) [--subject S] [--groups a,b] [--principal KIND] [--offline] [--json] [--config DIR]',
    ],
    options: {
      config: CONFIG,
      tool: { type: 'string', value: 'T', help: 'the tool name (`name:` of a tool in tools/)' },
      connection: { type: 'string', value: 'C', help: 'the connection name' },
      sql: { type: 'string', value: 'SQL', help: 'shorthand for --input {"sql": SQL}' },
      input: { type: 'string', value: 'JSON', help: 'the tool input as a JSON object, without "connection"' },
      subject: { type: 'string', value: 'S', help: 'try another caller (default: the local identity in policies)' },
      groups: { type: 'string', value: 'a,b', help: 'the groups of --subject' },
      principal: { type: 'string', value: 'KIND', help: 'person (default) or service: the caller as a service token (client_credentials) would be' },
      offline: { type: 'boolean', default: false, help: 'do not read the live catalog (nothing is contacted)' },
      json: JSON_OUT,
    },
    // One example per registered backend, from the backend itself: the CLI names none.
    examples: BACKENDS.map(
      (b) => `drawbridge policy explain --tool ${b.toolType} --connection ${b.example.connection} --input '${JSON.stringify(b.example.input)}'`,
    ),
  }),
  'journal export': define({
    path: 'journal export',
    summary: 'export journal records as JSON lines or CSV, filtered',
    usage: [
      'journal export [--format jsonl|csv] [--since ISO] [--until ISO] [--subject S] [--tool T] [--connection C] ' +
        '[--decision allow|deny|approve] [--journal FILE | --config DIR | --gateway URL [--client-id ID]]',
    ],
    options: {
      config: CONFIG,
      journal: { type: 'string', value: 'FILE', help: 'the journal file (default: the one the config names)' },
      format: { type: 'string', value: 'jsonl|csv', default: 'jsonl', help: 'output format' },
      since: { type: 'string', value: 'ISO', help: 'records at or after this date or time' },
      until: { type: 'string', value: 'ISO', help: 'records before this date or time' },
      subject: { type: 'string', value: 'S', help: 'only this caller' },
      tool: { type: 'string', value: 'T', help: 'only this tool' },
      connection: { type: 'string', value: 'C', help: 'only this connection' },
      decision: { type: 'string', value: 'allow|deny|approve', help: 'only calls decided so' },
      ...REMOTE,
    },
    examples: ['drawbridge journal export --format csv --since 2026-11-01 --decision deny'],
  }),
  'journal verify': define({
    path: 'journal verify',
    summary: 'check the hash chain; names the first edited, deleted or reordered record',
    usage: ['journal verify [--expect-head HASH] [--checkpoints FILE --public-key FILE] [--journal FILE | --config DIR]'],
    options: {
      config: CONFIG,
      journal: { type: 'string', value: 'FILE', help: 'the journal file (default: the one the config names)' },
      'expect-head': { type: 'string', value: 'HASH', help: 'the head hash kept elsewhere: also detects a truncated tail' },
      checkpoints: {
        type: 'string',
        value: 'FILE',
        help: 'published checkpoints to check the journal against (default: journal.checkpoints.publish.file of the config)',
      },
      'public-key': {
        type: 'string',
        value: 'FILE',
        help: 'the Ed25519 public key (PEM) the checkpoints must be signed with (default: derived from the configured signing key)',
      },
    },
    examples: [
      'drawbridge journal verify --config /etc/drawbridge',
      'drawbridge journal verify --journal copy/journal.db --checkpoints copy/checkpoints.jsonl --public-key pub.pem',
    ],
    notes: ['With checkpoints, records deleted from the end are caught up to the last checkpoint; records after it are reported as unproven.'],
  }),
  'journal checkpoint': define({
    path: 'journal checkpoint',
    summary: 'sign the journal head now and append it to the checkpoint file (journal.checkpoints)',
    usage: ['journal checkpoint [--config DIR]'],
    options: { config: CONFIG },
    examples: ['drawbridge journal checkpoint --config /etc/drawbridge'],
  }),
  'journal stream': define({
    path: 'journal stream',
    summary: 'replay journal records from SEQ to an audit stream sink (journal.stream), or as JSON lines on stdout; the durable cursor does not move',
    usage: ['journal stream --from SEQ [--sink NAME | --to-stdout] [--config DIR]'],
    options: {
      config: CONFIG,
      from: { type: 'string', value: 'SEQ', help: 'the first record to send (1 is the first of the journal)' },
      sink: { type: 'string', value: 'NAME', help: 'the journal.stream sink to send to (default: the only one configured)' },
      'to-stdout': { type: 'boolean', default: false, help: 'print the records as JSON lines instead of sending them' },
    },
    examples: ['drawbridge journal stream --from 1200 --sink siem --config /etc/drawbridge', 'drawbridge journal stream --from 1 --to-stdout'],
    notes: ['Sends the records up to the head as it is when the command starts, in order, in the sink’s batch size; the sink may get records it already has.'],
  }),
  'state migrate': define({
    path: 'state migrate',
    summary: 'apply pending schema migrations to the PostgreSQL state (state.url); SQLite has none',
    usage: ['state migrate [--config DIR]'],
    options: { config: CONFIG },
    examples: ['drawbridge state migrate --config /etc/drawbridge'],
    notes: ['A gateway also migrates when it starts; it refuses to start on a schema newer than it knows.'],
  }),
  'state copy': define({
    path: 'state copy',
    summary: 'copy a journal, its approvals and grants from one state to another (an empty one), the hash chain intact',
    usage: ['state copy --from SOURCE --to TARGET'],
    options: {
      from: { type: 'string', value: 'SOURCE', help: `the state to copy: ${STATE_LOCATIONS}` },
      to: { type: 'string', value: 'TARGET', help: 'the empty state to copy into (same forms); created or migrated first' },
    },
    examples: STATE_COPY_EXAMPLES,
    notes: STATE_COPY_NOTES,
  }),
  'approvals list': define({
    path: 'approvals list',
    summary: 'pending approval requests (--all: every status)',
    usage: [`approvals list [--all] [--json] ${REMOTE_USAGE}`],
    options: { config: CONFIG, all: { type: 'boolean', default: false, help: 'also decided and expired requests' }, json: JSON_OUT, ...REMOTE },
    examples: ['drawbridge approvals list'],
  }),
  'approvals show': define({
    path: 'approvals show',
    summary: 'the exact request, its rule, impact preview and votes',
    usage: [`approvals show ID [--json] ${REMOTE_USAGE}`],
    options: { config: CONFIG, json: JSON_OUT, ...REMOTE },
    positionals: { name: 'ID', min: 1, max: 1 },
    examples: ['drawbridge approvals show ap_1a2b3c4d5e'],
  }),
  'approvals approve': define({
    path: 'approvals approve',
    summary: 'approve a pending request, optionally with a grant for similar calls',
    usage: [`approvals approve ID [--reason TEXT] [--grant 15m|none] [--token-file PATH] ${REMOTE_USAGE}`],
    options: {
      config: CONFIG,
      reason: { type: 'string', value: 'TEXT', help: 'why (journaled)' },
      grant: { type: 'string', value: '15m|none', help: 'also allow similar calls for this long (at most what the rule allows)' },
      'token-file': TOKEN_FILE,
      ...REMOTE,
    },
    positionals: { name: 'ID', min: 1, max: 1 },
    examples: [
      'drawbridge approvals approve ap_1a2b3c4d5e --grant 15m --reason "ticket OPS-42"',
      'drawbridge approvals approve ap_1a2b3c4d5e --gateway https://drawbridge.example.com/mcp --client-id drawbridge-cli',
    ],
  }),
  'approvals deny': define({
    path: 'approvals deny',
    summary: 'deny a pending request; the agent is told your reason',
    usage: [`approvals deny ID --reason TEXT [--token-file PATH] ${REMOTE_USAGE}`],
    options: { config: CONFIG, reason: { type: 'string', value: 'TEXT', help: 'why (required; the requester sees it)' }, 'token-file': TOKEN_FILE, ...REMOTE },
    positionals: { name: 'ID', min: 1, max: 1 },
    examples: ['drawbridge approvals deny ap_1a2b3c4d5e --reason "use the archive job instead"'],
  }),
  'grants list': define({
    path: 'grants list',
    summary: 'active grants (--all: also expired and revoked)',
    usage: [`grants list [--all] [--json] ${REMOTE_USAGE}`],
    options: { config: CONFIG, all: { type: 'boolean', default: false, help: 'also expired and revoked grants' }, json: JSON_OUT, ...REMOTE },
    examples: ['drawbridge grants list'],
  }),
  'grants revoke': define({
    path: 'grants revoke',
    summary: 'revoke a grant at once',
    usage: [`grants revoke ID [--token-file PATH] ${REMOTE_USAGE}`],
    options: { config: CONFIG, 'token-file': TOKEN_FILE, ...REMOTE },
    positionals: { name: 'ID', min: 1, max: 1 },
    examples: ['drawbridge grants revoke gr_1a2b3c4d5e'],
  }),
  demo: define({
    path: 'demo',
    summary: 'throwaway PostgreSQL with sample PII, a guided tour, then serves until Ctrl-C (--http: the remote deployment on one machine)',
    usage: ['demo [--port N] [--dir DIR] [--no-tour]', 'demo --http [--port N] [--http-port N] [--idp-port N] [--dir DIR]'],
    options: {
      port: { type: 'string', value: 'N', help: 'the database port on 127.0.0.1 (default: 54329)' },
      dir: {
        type: 'string',
        value: 'DIR',
        help: 'the demo’s working directory: its config, journal, approvals and mcp.json (default: $XDG_STATE_HOME/drawbridge/demo, else ./.drawbridge/demo)',
      },
      config: { type: 'string', value: 'DIR', help: 'use your own tools/ and policies/ instead of the demo’s (they must fit the shop database)' },
      'no-tour': { type: 'boolean', default: false, help: 'skip the guided tour (--http has none)' },
      'exit-after-tour': { type: 'boolean', default: false, help: 'stop after the tour instead of serving (for scripts)' },
      http: { type: 'boolean', default: false, help: 'the gateway over HTTP with a development OpenID provider' },
      'http-port': { type: 'string', value: 'N', help: 'with --http: the gateway’s port (default: 54380)' },
      'idp-port': { type: 'string', value: 'N', help: 'with --http: the development provider’s port (default: 54381)' },
    },
    examples: ['drawbridge demo', 'drawbridge demo --port 55432 --dir /tmp/dbdemo', 'drawbridge demo --http'],
  }),
} as const;

export type CommandName = keyof typeof COMMANDS;

/** The package's version, from the package.json shipped beside dist/. */
export function packageVersion(): string {
  const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
  const version = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'string') throw new TypeError('package.json has no version');
  return version;
}

function optionLabel(name: string, o: OptionSpec): string {
  return o.type === 'string' ? `--${name} ${o.value ?? 'VALUE'}` : `--${name}`;
}

/** `drawbridge <command> --help`. */
export function commandHelp(spec: CommandSpec): string {
  const labels = Object.entries(spec.options).map(([name, o]) => [optionLabel(name, o), o.help] as const);
  const width = Math.max(...labels.map(([l]) => l.length), '-h, --help'.length) + 2;
  const lines = [
    `drawbridge ${spec.path} — ${spec.summary}`,
    '',
    'Usage:',
    ...spec.usage.map((u) => `  drawbridge ${u}`),
    '',
    'Options:',
    ...labels.map(([l, h]) => `  ${l.padEnd(width)}${h}`),
    `  ${'-h, --help'.padEnd(width)}this help`,
    '',
    spec.examples.length > 1 ? 'Examples:' : 'Example:',
    ...spec.examples.map((e) => `  ${e}`),
    ...(spec.notes ?? []).flatMap((n) => ['', n]),
  ];
  return `${lines.join('\n')}\n`;
}

/** `drawbridge --help`. */
export function generalHelp(): string {
  const lines = ['drawbridge — governed production access for AI agents (an MCP server)', '', 'Usage:'];
  for (const spec of Object.values(COMMANDS) as CommandSpec[]) {
    lines.push(`  drawbridge ${spec.usage[0]}`);
    for (const more of spec.usage.slice(1)) lines.push(`  drawbridge ${more}`);
    lines.push(`      ${spec.summary}`);
  }
  lines.push(
    '  drawbridge --version',
    '',
    'drawbridge COMMAND --help shows a command’s options and an example.',
    '--config defaults to $DRAWBRIDGE_CONFIG, else the current directory (it must hold tools/ and/or policies/).',
    'Approvers prove who they are with $DRAWBRIDGE_APPROVER_TOKEN or --token-file: with OIDC identities an access token for',
    'this gateway (drawbridge token URL --client-id ID prints one); in local mode the token the operator issued them.',
    'Exit codes: 0 done; 1 refused or failed (a fixable problem: config, credentials, not allowed); 2 usage; 70 internal error.',
  );
  return `${lines.join('\n')}\n`;
}

/** The subcommand names under a group (`journal` → export, verify), for "Use: …" messages. */
export function subcommandsOf(group: string): string[] {
  return Object.keys(COMMANDS)
    .filter((k) => k.startsWith(`${group} `))
    .map((k) => k.slice(group.length + 1));
}

type Values<O extends Readonly<Record<string, OptionSpec>>> = {
  -readonly [K in keyof O]: O[K]['type'] extends 'boolean'
    ? O[K] extends { readonly default: boolean }
      ? boolean
      : boolean | undefined
    : O[K] extends { readonly default: string }
      ? string
      : string | undefined;
};

export type Parsed<O extends Readonly<Record<string, OptionSpec>>> =
  { readonly help: true } | { readonly help: false; readonly values: Values<O>; readonly positionals: string[] };

function optionList(spec: CommandSpec): string {
  return Object.entries(spec.options)
    .map(([name, o]) => optionLabel(name, o))
    .join(', ');
}

/**
 * Parses a command's arguments against its spec. `--help`/`-h` anywhere before
 * `--` asks for help. Every mistake is a CliError (exit 2) that names the
 * command's own options or its positional arguments.
 */
export function parseCommand<const O extends Readonly<Record<string, OptionSpec>>>(spec: CommandSpec<O>, args: readonly string[]): Parsed<O> {
  const end = args.indexOf('--');
  const head = end === -1 ? args : args.slice(0, end);
  if (head.includes('--help') || head.includes('-h')) return { help: true };
  const options: Record<string, { type: 'string' | 'boolean'; default?: string | boolean }> = {};
  for (const [name, o] of Object.entries(spec.options)) options[name] = { type: o.type, ...(o.default !== undefined ? { default: o.default } : {}) };
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const quoted = /'([^']+)'/.exec((error as Error).message)?.[1];
    const see = `(drawbridge ${spec.path} --help)`;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw new CliError(`drawbridge ${spec.path}: unknown option ${quoted ?? ''}. Its options: ${optionList(spec)} ${see}.`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = quoted?.replace(/^-+/, '').split(/[ ,]/)[0] ?? '';
      const o = spec.options[name];
      const label = o ? optionLabel(name, o) : (quoted ?? 'an option');
      throw new CliError(`drawbridge ${spec.path}: ${o?.type === 'boolean' ? `--${name} takes no value` : `${label} needs a value`} ${see}.`);
    }
    throw new CliError(`drawbridge ${spec.path}: ${(error as Error).message} ${see}.`);
  }
  const want = spec.positionals ?? { name: '', min: 0, max: 0 };
  const n = parsed.positionals.length;
  if (n < want.min || n > want.max) {
    const what =
      want.max === 0
        ? `takes no arguments (got ${JSON.stringify(parsed.positionals[0])})`
        : n < want.min
          ? `needs ${want.name}`
          : `takes one ${want.name} (got ${n})`;
    throw new CliError(`drawbridge ${spec.path} ${what}.\nUsage: ${spec.usage.map((u) => `drawbridge ${u}`).join('\n       ')}`);
  }
  return { help: false, values: parsed.values as Values<O>, positionals: parsed.positionals };
}

/** The parsed option values of one command. */
export type CommandValues<N extends CommandName> = Values<(typeof COMMANDS)[N]['options']>;

/** What a command is run with once its arguments parsed (help was not asked for). */
export interface CommandArgs<N extends CommandName> {
  readonly values: CommandValues<N>;
  readonly positionals: string[];
}
