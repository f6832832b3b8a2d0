// The flag tables of the kubectl grammar, as data: verbs and flags that are
// refused (with the reason the agent is told), every supported flag with its
// kind, which verbs accept which flags, and which output formats each verb
// prints. Also the lookups over them: refusalOf (is this word a refused flag,
// in any spelling?), verbHint and parseOutput. Pure.

import { parseJsonPath } from './jsonpath.js';
import type { DrawbridgeError } from '../../errors.js';
import { GENERAL_HINT, invalid, refused, SUPPORTED_VERBS } from './grammar.js';
import type { KubeVerb, OutputFormat } from './types.js';

export const REFUSED_VERBS: ReadonlyMap<string, string> = new Map([
  ['proxy', 'it opens a tunnel to the API server'],
  ['port-forward', 'it opens a tunnel into the cluster'],
  ['cp', 'it copies files between the gateway host and containers'],
  ['attach', "it is interactive (attaches to a running container's stdin and TTY)"],
  ['debug', 'it is interactive and creates privileged debugging containers or node shells'],
  ['config', 'it reads or changes the kubeconfig (connection and identity)'],
  ['auth', 'it concerns identity (can-i, whoami, reconcile); the gateway owns the identity'],
  ['run', 'it starts ad-hoc, often interactive pods; describe the workload in a manifest and use apply'],
  ['edit', 'it is interactive (opens an editor); use patch or apply'],
  ['plugin', 'it runs local executables'],
  ['completion', 'it prints a shell completion script, which is not needed here'],
  ['certificate', 'it approves or denies certificate requests (identity)'],
  ['drain', 'it evicts every pod of a node; not available for now'],
  ['taint', 'node taints are not available for now'],
  ['set', 'use patch or apply instead'],
  ['autoscale', 'describe the HorizontalPodAutoscaler in a manifest and use apply'],
  ['expose', 'describe the Service in a manifest and use apply'],
  ['replace', 'it reads local files and can force-replace objects; use apply with the manifest argument'],
  ['wait', 'it blocks while watching; poll with get instead'],
  ['kustomize', 'it reads local files; render the manifest yourself and pass it to apply'],
  ['alpha', 'alpha commands are experimental'],
  ['options', "it lists kubectl's global flags, which are not needed here"],
  ['version', 'it is not needed: the gateway owns the client and the connection'],
  ['cluster-info', 'it reveals connection endpoints; use api-resources or get instead'],
  ['diff', 'it reads local files and runs a local diff program; use apply --dry-run=server'],
]);

const CONNECTION = 'it would change the connection';
const IDENTITY = 'it would change the identity';
const DEBUG = 'it controls client-side debugging, logging or local files';
const WATCH = 'watching streams forever; call again (e.g. get) to see the current state';
const FILES = 'kubectl would read local files: pass the manifest in the manifest argument (apply, create), or name the objects';
const TTY = 'exec runs without a TTY or stdin';
const MASKING = 'this output format cannot be masked reliably';

const REFUSED_LONG: ReadonlyMap<string, string> = new Map([
  ['kubeconfig', CONNECTION],
  ['kuberc', CONNECTION],
  ['server', CONNECTION],
  ['cluster', CONNECTION],
  ['context', CONNECTION],
  ['user', CONNECTION],
  ['certificate-authority', CONNECTION],
  ['client-certificate', CONNECTION],
  ['client-key', CONNECTION],
  ['insecure-skip-tls-verify', CONNECTION],
  ['tls-server-name', CONNECTION],
  ['cache-dir', CONNECTION],
  ['disable-compression', CONNECTION],
  ['match-server-version', CONNECTION],
  ['token', IDENTITY],
  ['as', IDENTITY],
  ['as-group', IDENTITY],
  ['as-uid', IDENTITY],
  ['as-user-extra', IDENTITY],
  ['username', IDENTITY],
  ['password', IDENTITY],
  ['profile', DEBUG],
  ['profile-output', DEBUG],
  ['v', DEBUG],
  ['vmodule', DEBUG],
  ['log-file', DEBUG],
  ['log-dir', DEBUG],
  ['log-backtrace-at', DEBUG],
  ['logtostderr', DEBUG],
  ['alsologtostderr', DEBUG],
  ['stderrthreshold', DEBUG],
  ['log-flush-frequency', DEBUG],
  ['log-file-max-size', DEBUG],
  ['skip-headers', DEBUG],
  ['skip-log-headers', DEBUG],
  ['add-dir-header', DEBUG],
  ['one-output', DEBUG],
  ['watch', WATCH],
  ['watch-only', WATCH],
  ['output-watch-events', WATCH],
  ['follow', 'following logs streams forever; use --tail or --since'],
  ['raw', 'it sends a raw request to an arbitrary API path, escaping parsing'],
  ['prune', 'pruning deletes objects that are not in the manifest'],
  ['prune-allowlist', 'pruning deletes objects that are not in the manifest'],
  ['prune-whitelist', 'pruning deletes objects that are not in the manifest'],
  ['record', 'it is deprecated and writes the command line into the object'],
  ['filename', FILES],
  ['kustomize', FILES],
  ['patch-file', 'kubectl would read a local file: pass the patch inline with -p/--patch'],
  ['stdin', TTY],
  ['tty', TTY],
  ['template', MASKING],
  ['edit', 'it is interactive (opens an editor)'],
]);

export const REFUSED_SHORT: ReadonlyMap<string, { flag: string; reason: string }> = new Map([
  ['s', { flag: '-s (--server)', reason: CONNECTION }],
  ['v', { flag: '-v (log verbosity)', reason: DEBUG }],
  ['w', { flag: '-w (--watch)', reason: WATCH }],
  ['k', { flag: '-k (--kustomize)', reason: FILES }],
  ['R', { flag: '-R (--recursive over files)', reason: FILES }],
  ['i', { flag: '-i (--stdin)', reason: TTY }],
  ['t', { flag: '-t (--tty)', reason: TTY }],
]);

/** kubectl normalises "_" to "-" in flag names, so every spelling is checked. */
export function normalizeFlagName(name: string): string {
  return name.replace(/_/g, '-');
}

export function refusedFlag(spelled: string, reason: string): DrawbridgeError {
  return refused(`Refused: ${spelled} is not available through the gateway: ${reason}.`, { flag: spelled });
}

export function refusedShortF(verb: KubeVerb | null, spelled: string): DrawbridgeError {
  if (verb === 'logs') return refusedFlag(`${spelled} (--follow)`, 'following logs streams forever; use --tail or --since');
  return refusedFlag(`${spelled} (--filename)`, FILES);
}

/** The refusal for a word that looks like a refused flag, or null. Only the parts of a word that are surely flag names are examined. */
export function refusalOf(token: string): DrawbridgeError | null {
  if (token.startsWith('--') && token.length > 2) {
    const eq = token.indexOf('=');
    const name = normalizeFlagName(eq < 0 ? token.slice(2) : token.slice(2, eq)).toLowerCase();
    const reason = REFUSED_LONG.get(name);
    return reason === undefined ? null : refusedFlag(`--${name}`, reason);
  }
  if (token.startsWith('-') && !token.startsWith('--') && token.length > 1) {
    const body = token.slice(1);
    const eq = body.indexOf('=');
    const head = normalizeFlagName(eq < 0 ? body : body.slice(0, eq));
    if (head.length > 1) {
      // Case-sensitive here: "-As" is -A then -s, handled below and by the parser.
      const reason = REFUSED_LONG.get(head);
      if (reason !== undefined) return refusedFlag(`-${head} (read as --${head})`, reason);
      // "-tail 10": a supported long flag with one dash; the parser asks for two dashes.
      if (ALL_LONG_NAMES.has(head)) return null;
    }
    const short = REFUSED_SHORT.get(body.charAt(0));
    if (short !== undefined) return refusedFlag(short.flag, short.reason);
  }
  return null;
}

// ---------------------------------------------------------------------------
// Flags

type FlagKind = 'bool' | 'value' | 'optional';

export interface FlagDef {
  /** Canonical long name, without dashes. */
  readonly key: string;
  readonly short?: string;
  /** bool: `--x`, `--x=false`; value: `--x v`, `--x=v`; optional: `--x` or `--x=v` only (kubectl's NoOptDefVal). */
  readonly kind: FlagKind;
  readonly allowEmpty?: boolean;
  /** For optional flags: what a bare `--x` means ("" = a value is required), and the values a following word would be mistaken for. */
  readonly bare?: string;
  readonly choices?: readonly string[];
}

const FLAG_LIST: readonly FlagDef[] = [
  { key: 'namespace', short: 'n', kind: 'value' },
  { key: 'request-timeout', kind: 'value' },
  { key: 'all-namespaces', short: 'A', kind: 'bool' },
  { key: 'selector', short: 'l', kind: 'value' },
  { key: 'field-selector', kind: 'value' },
  { key: 'output', short: 'o', kind: 'value' },
  { key: 'show-labels', kind: 'bool' },
  { key: 'sort-by', kind: 'value' },
  { key: 'no-headers', kind: 'bool' },
  { key: 'chunk-size', kind: 'value' },
  { key: 'ignore-not-found', kind: 'bool' },
  { key: 'container', short: 'c', kind: 'value' },
  { key: 'previous', short: 'p', kind: 'bool' },
  { key: 'tail', kind: 'value' },
  { key: 'since', kind: 'value' },
  { key: 'timestamps', kind: 'bool' },
  { key: 'for', kind: 'value' },
  { key: 'types', kind: 'value' },
  { key: 'namespaced', kind: 'bool' },
  { key: 'api-group', kind: 'value', allowEmpty: true },
  { key: 'recursive', kind: 'bool' },
  { key: 'all', kind: 'bool' },
  { key: 'grace-period', kind: 'value' },
  { key: 'now', kind: 'bool' },
  { key: 'force', kind: 'bool' },
  { key: 'cascade', kind: 'optional', bare: 'background', choices: ['background', 'foreground', 'orphan', 'true', 'false'] },
  { key: 'dry-run', kind: 'optional', bare: '', choices: ['server', 'none', 'client', 'true', 'false'] },
  { key: 'server-side', kind: 'bool' },
  { key: 'force-conflicts', kind: 'bool' },
  { key: 'validate', kind: 'optional', bare: 'strict', choices: ['strict', 'warn', 'ignore', 'true', 'false'] },
  { key: 'patch', short: 'p', kind: 'value' },
  { key: 'type', kind: 'value' },
  { key: 'replicas', kind: 'value' },
  { key: 'current-replicas', kind: 'value' },
  { key: 'timeout', kind: 'value' },
  { key: 'to-revision', kind: 'value' },
  { key: 'revision', kind: 'value' },
  { key: 'overwrite', kind: 'bool' },
];

const FLAGS: ReadonlyMap<string, FlagDef> = new Map(FLAG_LIST.map((f) => [f.key, f]));

const GLOBAL_FLAGS = ['namespace', 'request-timeout'] as const;

const VERB_FLAGS: Readonly<Record<KubeVerb, readonly string[]>> = {
  get: ['all-namespaces', 'selector', 'field-selector', 'output', 'show-labels', 'sort-by', 'no-headers', 'chunk-size', 'ignore-not-found'],
  describe: ['all-namespaces', 'selector', 'chunk-size'],
  logs: ['container', 'previous', 'tail', 'since', 'timestamps', 'selector'],
  events: ['all-namespaces', 'for', 'types', 'output', 'no-headers', 'chunk-size'],
  'api-resources': ['namespaced', 'api-group', 'output', 'no-headers', 'sort-by'],
  explain: ['recursive'],
  top: ['all-namespaces', 'selector', 'sort-by', 'no-headers'],
  delete: [
    'all-namespaces',
    'selector',
    'field-selector',
    'all',
    'grace-period',
    'now',
    'force',
    'cascade',
    'dry-run',
    'ignore-not-found',
    'output',
    'chunk-size',
  ],
  apply: ['server-side', 'force-conflicts', 'dry-run', 'validate', 'output'],
  create: ['dry-run', 'validate', 'output'],
  patch: ['patch', 'type', 'dry-run', 'output'],
  scale: ['replicas', 'current-replicas', 'dry-run', 'output'],
  label: ['overwrite', 'all', 'selector', 'dry-run', 'output'],
  annotate: ['overwrite', 'all', 'selector', 'dry-run', 'output'],
  cordon: ['selector', 'dry-run'],
  uncordon: ['selector', 'dry-run'],
  'rollout status': ['timeout'],
  'rollout restart': ['dry-run', 'output'],
  'rollout undo': ['to-revision', 'dry-run'],
  'rollout history': ['revision', 'output'],
  exec: ['container'],
};

export const ALL_LONG_NAMES: ReadonlySet<string> = new Set(FLAG_LIST.map((f) => f.key));

export interface FlagTable {
  readonly long: ReadonlyMap<string, FlagDef>;
  readonly short: ReadonlyMap<string, FlagDef>;
  readonly describe: string;
}

function flagTable(keys: readonly string[]): FlagTable {
  const long = new Map<string, FlagDef>();
  const short = new Map<string, FlagDef>();
  const parts: string[] = [];
  for (const key of keys) {
    const def = FLAGS.get(key);
    if (def === undefined) throw new TypeError(`unknown flag definition ${key}`);
    long.set(def.key, def);
    if (def.short !== undefined) short.set(def.short, def);
    parts.push(def.short === undefined ? `--${def.key}` : `-${def.short}/--${def.key}`);
  }
  return { long, short, describe: parts.join(', ') };
}

export const GLOBAL_TABLE = flagTable(GLOBAL_FLAGS);
export const VERB_TABLES: ReadonlyMap<KubeVerb, FlagTable> = new Map(SUPPORTED_VERBS.map((verb) => [verb, flagTable([...GLOBAL_FLAGS, ...VERB_FLAGS[verb]])]));

export function verbHint(verb: KubeVerb): string {
  const table = VERB_TABLES.get(verb);
  return `Flags accepted by "${verb}": ${table?.describe ?? ''}. Unknown flags are never ignored. ${GENERAL_HINT}`;
}

// ---------------------------------------------------------------------------
// Output formats

export function parseOutput(value: string, verb: KubeVerb, spelled: string): OutputFormat {
  const lower = value.toLowerCase();
  const refusedFormat = /^(go-template|go-template-file|template|templatefile|custom-columns|custom-columns-file|jsonpath-file)(=|$)/.exec(lower);
  if (refusedFormat !== null) {
    throw refused(`Refused: ${spelled} ${refusedFormat[1]}: ${MASKING}. Use -o yaml, -o json or -o jsonpath=TEMPLATE.`, {
      flag: spelled,
      format: refusedFormat[1],
    });
  }
  let format: OutputFormat;
  if (value === 'wide') format = { kind: 'table', wide: true };
  else if (value === 'yaml' || value === 'json' || value === 'name') format = { kind: value };
  else if (value.startsWith('jsonpath=')) {
    let template = value.slice('jsonpath='.length);
    const q = template.charAt(0);
    if (template.length >= 2 && (q === "'" || q === '"') && template.endsWith(q)) template = template.slice(1, -1);
    if (template.trim().length === 0) throw invalid(`${spelled} jsonpath needs a template, e.g. -o jsonpath='{.items[*].metadata.name}'.`);
    // Checked here, before policy: a template the gateway cannot evaluate is refused without a call to the API server.
    parseJsonPath(template);
    format = { kind: 'jsonpath', template };
  } else if (value === 'jsonpath') {
    throw invalid(`${spelled} jsonpath needs a template, e.g. -o jsonpath='{.items[*].metadata.name}'.`);
  } else {
    throw invalid(`Unknown output format "${value}".`, `Output formats: wide, yaml, json, name, jsonpath=TEMPLATE. ${GENERAL_HINT}`);
  }
  const allowed = OUTPUT_KINDS[verb];
  const kind = format.kind === 'table' ? 'wide' : format.kind;
  if (allowed !== undefined && !allowed.includes(kind)) {
    throw invalid(`"${verb}" does not support -o ${kind}.`, `"${verb}" supports -o ${allowed.join(', ')}. ${GENERAL_HINT}`);
  }
  return format;
}

/** Output formats per verb where not all are accepted (verbs without -o never reach here). */
const OUTPUT_KINDS: Partial<Record<KubeVerb, readonly string[]>> = {
  'api-resources': ['wide', 'name'],
  delete: ['name'],
  apply: ['yaml', 'json', 'name'],
  create: ['yaml', 'json', 'name'],
  patch: ['yaml', 'json', 'name'],
  scale: ['yaml', 'json', 'name'],
  label: ['yaml', 'json', 'name'],
  annotate: ['yaml', 'json', 'name'],
  'rollout restart': ['yaml', 'json', 'name'],
  'rollout history': ['yaml', 'json', 'name'],
};
