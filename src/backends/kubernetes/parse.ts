// The pure parser of the `kubectl` tool: the agent sends a kubectl command line
// without the word "kubectl" (e.g. `get pods -n shop -l app=web -o wide`) and
// this module turns it into a KubeCommand with an explicit grammar — never a
// shell, never kubectl itself. Everything unknown fails closed: an unknown verb,
// flag, flag value or extra argument is `input.invalid` with a hint listing what
// is supported; anything that would change the connection or the identity, open
// a tunnel, read local files, stream forever or smuggle shell syntax is
// `kubectl.refused`. No I/O here.

import { DrawbridgeError } from '../../errors.js';
import { KUBERNETES_ERRORS } from './errors.js';
import type { KubeCommand, KubeVerb, OutputFormat } from './types.js';

export const SUPPORTED_VERBS: readonly KubeVerb[] = Object.freeze([
  'get',
  'describe',
  'logs',
  'events',
  'api-resources',
  'explain',
  'top',
  'delete',
  'apply',
  'create',
  'patch',
  'scale',
  'label',
  'annotate',
  'cordon',
  'uncordon',
  'rollout status',
  'rollout restart',
  'rollout undo',
  'rollout history',
  'exec',
] as const satisfies readonly KubeVerb[]);

const MAX_CHARS = 10_000;
const MAX_TOKENS = 200;

type OptionValue = string | number | boolean | readonly string[] | null;
type Options = Record<string, OptionValue>;
type Target = { readonly type: string; readonly name: string };

// ---------------------------------------------------------------------------
// Errors

const EXAMPLE = 'get pods -n shop -l app=web -o wide';
const GENERAL_HINT =
  `Send a kubectl command line without the word "kubectl", e.g. "${EXAMPLE}". ` +
  `Supported verbs: ${SUPPORTED_VERBS.join(', ')}. Flags may appear anywhere; "--" is only used by exec, before the command to run.`;

function invalid(message: string, hint: string = GENERAL_HINT, details: Record<string, unknown> = {}): DrawbridgeError {
  return new DrawbridgeError('input.invalid', message, { hint, details });
}

function refused(message: string, details: Record<string, unknown> = {}): DrawbridgeError {
  return new DrawbridgeError('kubectl.refused', message, { hint: KUBERNETES_ERRORS['kubectl.refused'].hint, details });
}

// ---------------------------------------------------------------------------
// Tokenizer

const METACHARACTERS: Readonly<Record<string, string>> = {
  '|': 'a pipe (|)',
  ';': 'a command separator (;)',
  '&': 'a shell operator (&, &&)',
  '<': 'an input redirection (<)',
  '>': 'an output redirection (>)',
  '(': 'a subshell or grouping parenthesis "("',
  ')': 'a subshell or grouping parenthesis ")"',
};

function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Characters that are refused anywhere, quoted or not. */
function checkCharacters(command: string): void {
  for (const ch of command) {
    if (ch === ' ' || ch === '\t') continue;
    if (ch === '\n' || ch === '\r') {
      throw refused('Refused: the command contains a newline or carriage return (a second command line).', { construct: 'newline' });
    }
    if (/\p{Cc}/u.test(ch)) {
      throw refused(`Refused: the command contains the control character ${codePoint(ch)}.`, { construct: 'control character', codePoint: codePoint(ch) });
    }
    if (/[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u.test(ch)) {
      throw refused(`Refused: the command contains the invisible Unicode character ${codePoint(ch)}.`, {
        construct: 'invisible character',
        codePoint: codePoint(ch),
      });
    }
    if (/\p{Zs}/u.test(ch)) {
      throw refused(`Refused: the command contains the unusual space character ${codePoint(ch)}; separate words with plain spaces.`, {
        construct: 'unusual whitespace',
        codePoint: codePoint(ch),
      });
    }
  }
  if (command.includes('`')) {
    throw refused('Refused: the command contains a backtick (`), shell command substitution. kubectl never needs it, even quoted.', { construct: 'backtick' });
  }
  if (command.includes('$(')) {
    throw refused('Refused: the command contains "$(", shell command substitution. kubectl never needs it, even quoted.', { construct: '$(' });
  }
  if (command.includes('${')) {
    throw refused('Refused: the command contains "${", shell parameter expansion. kubectl never needs it, even quoted.', { construct: '${' });
  }
}

/**
 * Splits a command line into words with an explicit grammar (never a shell):
 * whitespace separates words; single quotes are literal; double quotes take
 * `\"` and `\\` escapes (any other backslash stays); a backslash outside quotes
 * escapes the next character. Shell syntax is refused, not interpreted.
 */
export function tokenize(command: string): string[] {
  if (typeof command !== 'string') throw invalid('The kubectl command must be a string.');
  if (command.length > MAX_CHARS) {
    throw refused(`Refused: the command is ${command.length} characters long; at most ${MAX_CHARS} are accepted.`, {
      construct: 'length',
      length: command.length,
    });
  }
  checkCharacters(command);

  const tokens: string[] = [];
  let current = '';
  let started = false;
  const push = (): void => {
    if (started) {
      tokens.push(current);
      if (tokens.length > MAX_TOKENS) {
        throw refused(`Refused: the command has more than ${MAX_TOKENS} words.`, { construct: 'token count' });
      }
    }
    current = '';
    started = false;
  };

  for (let i = 0; i < command.length; i++) {
    const ch = command.charAt(i);
    if (ch === ' ' || ch === '\t') {
      push();
      continue;
    }
    if (ch === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0)
        throw invalid("Unbalanced single quote: a quote opened with ' is never closed.", `Close every quote. ${GENERAL_HINT}`, {
          construct: 'unbalanced quote',
        });
      current += command.slice(i + 1, end);
      started = true;
      i = end;
      continue;
    }
    if (ch === '"') {
      let j = i + 1;
      let closed = false;
      while (j < command.length) {
        const c = command.charAt(j);
        if (c === '\\') {
          const next = command.charAt(j + 1);
          if (next === '"' || next === '\\') {
            current += next;
            j += 2;
            continue;
          }
          current += c;
          j += 1;
          continue;
        }
        if (c === '"') {
          closed = true;
          break;
        }
        current += c;
        j += 1;
      }
      if (!closed)
        throw invalid('Unbalanced double quote: a quote opened with " is never closed.', `Close every quote. ${GENERAL_HINT}`, {
          construct: 'unbalanced quote',
        });
      started = true;
      i = j;
      continue;
    }
    if (ch === '\\') {
      if (i + 1 >= command.length) throw invalid('The command ends with a lone backslash.', GENERAL_HINT, { construct: 'trailing backslash' });
      current += command.charAt(i + 1);
      started = true;
      i += 1;
      continue;
    }
    const meta = METACHARACTERS[ch];
    if (meta !== undefined) {
      throw refused(`Refused: the command contains ${meta} outside quotes. The gateway runs one kubectl command and never a shell.`, { construct: ch });
    }
    if (ch === '#' && !started) {
      throw refused('Refused: a word starts with an unquoted "#", a shell comment.', { construct: '#' });
    }
    if (ch === '$') {
      const next = command.charAt(i + 1);
      if (next === "'" || next === '"') {
        throw refused(`Refused: the command contains $${next}…${next}, shell ANSI-C or locale quoting.`, { construct: `$${next}` });
      }
    }
    current += ch;
    started = true;
  }
  push();
  return tokens;
}

// ---------------------------------------------------------------------------
// Refused verbs and flags

const REFUSED_VERBS: ReadonlyMap<string, string> = new Map([
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

const REFUSED_SHORT: ReadonlyMap<string, { flag: string; reason: string }> = new Map([
  ['s', { flag: '-s (--server)', reason: CONNECTION }],
  ['v', { flag: '-v (log verbosity)', reason: DEBUG }],
  ['w', { flag: '-w (--watch)', reason: WATCH }],
  ['k', { flag: '-k (--kustomize)', reason: FILES }],
  ['R', { flag: '-R (--recursive over files)', reason: FILES }],
  ['i', { flag: '-i (--stdin)', reason: TTY }],
  ['t', { flag: '-t (--tty)', reason: TTY }],
]);

/** kubectl normalises "_" to "-" in flag names, so every spelling is checked. */
function normalizeFlagName(name: string): string {
  return name.replace(/_/g, '-');
}

function refusedFlag(spelled: string, reason: string): DrawbridgeError {
  return refused(`Refused: ${spelled} is not available through the gateway: ${reason}.`, { flag: spelled });
}

function refusedShortF(verb: KubeVerb | null, spelled: string): DrawbridgeError {
  if (verb === 'logs') return refusedFlag(`${spelled} (--follow)`, 'following logs streams forever; use --tail or --since');
  return refusedFlag(`${spelled} (--filename)`, FILES);
}

/** The refusal for a word that looks like a refused flag, or null. Only the parts of a word that are surely flag names are examined. */
function refusalOf(token: string): DrawbridgeError | null {
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

interface FlagDef {
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

const ALL_LONG_NAMES: ReadonlySet<string> = new Set(FLAG_LIST.map((f) => f.key));

interface FlagTable {
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

const GLOBAL_TABLE = flagTable(GLOBAL_FLAGS);
const VERB_TABLES: ReadonlyMap<KubeVerb, FlagTable> = new Map(SUPPORTED_VERBS.map((verb) => [verb, flagTable([...GLOBAL_FLAGS, ...VERB_FLAGS[verb]])]));

function verbHint(verb: KubeVerb): string {
  const table = VERB_TABLES.get(verb);
  return `Flags accepted by "${verb}": ${table?.describe ?? ''}. Unknown flags are never ignored. ${GENERAL_HINT}`;
}

// ---------------------------------------------------------------------------
// Values

const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const TYPE_RE = /^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9-]*)*$/;
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._:@-]*[A-Za-z0-9_])?$/;
const QUALIFIED_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const LABEL_SELECTOR_RE = /^[A-Za-z0-9._/=!,() -]+$/;
const FIELD_SELECTOR_RE = /^[A-Za-z0-9._/=!,:-]+$/;

function checkNamespace(value: string, spelled: string): string {
  if (value.length > 63 || !NAMESPACE_RE.test(value)) {
    throw invalid(`${spelled} "${value}" is not a valid namespace name (lower-case letters, digits and "-", at most 63).`);
  }
  return value;
}

function checkType(value: string): string {
  if (value.length === 0) throw invalid('An empty resource type was given (check the commas).');
  if (value.length > 253 || !TYPE_RE.test(value)) {
    throw invalid(`"${value}" is not a valid resource type (e.g. pods, deploy, deployments.apps).`);
  }
  return value;
}

function checkName(value: string, what = 'object name'): string {
  if (value.length === 0) throw invalid(`An empty ${what} was given.`);
  if (value.length > 253 || !NAME_RE.test(value)) {
    throw invalid(`"${value}" is not a valid ${what}.`);
  }
  return value;
}

function checkContainer(value: string): string {
  if (value.length > 63 || !DNS_LABEL_RE.test(value)) throw invalid(`"${value}" is not a valid container name.`);
  return value;
}

function checkLabelSelector(value: string): string {
  if (value.trim().length === 0 || !LABEL_SELECTOR_RE.test(value)) {
    throw invalid(`"${value}" is not a valid label selector (e.g. app=web,tier!=cache or 'env in (prod,staging)').`);
  }
  return value;
}

function checkFieldSelector(value: string): string {
  if (!FIELD_SELECTOR_RE.test(value)) {
    throw invalid(`"${value}" is not a valid field selector (e.g. status.phase=Running,spec.nodeName!=node-1).`);
  }
  return value;
}

function parseCount(value: string, spelled: string, min = 0): number {
  if (!/^[0-9]{1,9}$/.test(value)) throw invalid(`${spelled} needs a whole number ≥ ${min}, got "${value}".`);
  const n = Number(value);
  if (n < min) throw invalid(`${spelled} needs a whole number ≥ ${min}, got "${value}".`);
  return n;
}

/** Go-style durations in whole seconds: 30s, 5m, 1h, 1h30m (and "0"). */
function parseDuration(value: string, spelled: string): number {
  if (value === '0') return 0;
  if (!/^([0-9]{1,7}[hms])+$/.test(value)) {
    throw invalid(`${spelled} needs a duration such as 30s, 5m, 1h or 1h30m, got "${value}".`);
  }
  let seconds = 0;
  for (const m of value.matchAll(/([0-9]+)([hms])/g)) {
    const n = Number(m[1]);
    seconds += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : n;
  }
  if (!Number.isSafeInteger(seconds)) throw invalid(`${spelled} is too large.`);
  return seconds;
}

function checkQualifiedKey(key: string, what: string): void {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? null : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  const ok =
    (prefix === null || (prefix.length > 0 && prefix.length <= 253 && DNS_SUBDOMAIN_RE.test(prefix))) &&
    name.length > 0 &&
    name.length <= 63 &&
    QUALIFIED_NAME_RE.test(name);
  if (!ok) {
    throw invalid(`"${key}" is not a valid ${what} key (optional DNS prefix and "/", then at most 63 letters, digits, "-", "_" or ".").`);
  }
}

function parseOutput(value: string, verb: KubeVerb, spelled: string): OutputFormat {
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

const SHELLS: ReadonlySet<string> = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh', 'fish', 'csh', 'tcsh']);

function invokesShell(argv: readonly string[]): boolean {
  const base = (word: string | undefined): string => (word ?? '').split('/').pop() ?? '';
  const first = base(argv[0]);
  if (SHELLS.has(first)) return true;
  if (first === 'busybox' || first === 'env') return SHELLS.has(base(argv[1]));
  return false;
}

function isKubectlWord(word: string): boolean {
  const base = (word.split(/[\\/]/).pop() ?? '').toLowerCase();
  return base === 'kubectl' || base === 'kubectl.exe';
}

// ---------------------------------------------------------------------------
// Parser

interface Resources {
  readonly types: string[];
  readonly targets: Target[];
  /** Names in `TYPE NAME…` form, or the names of `TYPE/NAME` forms. */
  readonly names: string[];
}

function resourceArgs(args: readonly string[]): Resources {
  const types: string[] = [];
  const targets: Target[] = [];
  const names: string[] = [];
  const addType = (t: string): void => {
    if (!types.includes(t)) types.push(t);
  };
  const first = args[0];
  if (first === undefined) return { types, targets, names };
  if (first.includes('/')) {
    for (const arg of args) {
      const slash = arg.indexOf('/');
      if (slash < 0) throw invalid(`Mixed forms: "${arg}" follows a TYPE/NAME argument; write every object as TYPE/NAME, or use TYPE NAME….`);
      const type = checkType(arg.slice(0, slash));
      const name = checkName(arg.slice(slash + 1));
      addType(type);
      targets.push({ type, name });
      names.push(name);
    }
    return { types, targets, names };
  }
  for (const t of first.split(',')) addType(checkType(t));
  for (const arg of args.slice(1)) {
    if (arg.includes('/'))
      throw invalid(`"${arg}": there is no need to give the type separately when passing TYPE/NAME; use either "TYPE NAME…" or "TYPE/NAME…".`);
    names.push(checkName(arg));
  }
  for (const type of types) for (const name of names) targets.push({ type, name });
  return { types, targets, names };
}

interface FlagValue<T> {
  readonly value: T;
  readonly spelled: string;
}

class Parser {
  private readonly values = new Map<string, FlagValue<string>>();
  private readonly bools = new Map<string, FlagValue<boolean>>();
  private readonly positionals: string[] = [];
  private verb: KubeVerb | null = null;
  private rolloutPending = false;
  private argv: string[] | null = null;

  constructor(private readonly tokens: readonly string[]) {}

  run(): void {
    const { tokens } = this;
    let i = 0;
    while (i < tokens.length) {
      const token = tokens[i] as string;
      if (token === '--') {
        if (this.verb !== 'exec') {
          throw invalid('"--" is only used by exec, before the command to run (exec POD -- COMMAND…).');
        }
        this.argv = tokens.slice(i + 1);
        break;
      }
      if (token.startsWith('-') && token.length > 1) {
        i = this.flag(i);
        continue;
      }
      if (this.verb === null && !this.rolloutPending) {
        this.resolveVerb(token, i);
      } else if (this.rolloutPending) {
        this.resolveRollout(token);
      } else {
        if (this.verb === 'create') throw createSubcommand(token);
        this.positionals.push(token);
      }
      i += 1;
    }
    if (this.rolloutPending) {
      throw invalid('rollout needs a subcommand: status, restart, undo or history (e.g. "rollout status deployment/web").');
    }
    if (this.verb === null) throw invalid('The command has flags but no verb.');
  }

  private table(): FlagTable {
    return this.verb === null ? GLOBAL_TABLE : (VERB_TABLES.get(this.verb) ?? GLOBAL_TABLE);
  }

  private unknownFlag(spelled: string, token: string): DrawbridgeError {
    if (this.verb === null) {
      return invalid(
        `Unknown or misplaced flag ${spelled}${token !== spelled ? ` (in "${token}")` : ''}: only -n/--namespace and --request-timeout may come before the verb.`,
        `Put flags after the verb. ${GENERAL_HINT}`,
        { flag: spelled },
      );
    }
    return invalid(`Unknown flag ${spelled}${token !== spelled ? ` (in "${token}")` : ''} for "${this.verb}".`, verbHint(this.verb), { flag: spelled });
  }

  private resolveVerb(word: string, index: number): void {
    const lower = word.toLowerCase();
    const reason = REFUSED_VERBS.get(lower);
    if (reason !== undefined) throw refused(`Refused: "${lower}" is not available through the gateway: ${reason}.`, { verb: lower });
    if (isKubectlWord(word)) throw leadingKubectl();
    if (word === 'rollout') {
      this.rolloutPending = true;
      return;
    }
    if (word.startsWith('rollout ')) throw invalid(`Unknown verb "${word}".`);
    const verb = SUPPORTED_VERBS.find((v) => v === word);
    if (verb === undefined) {
      throw invalid(`Unknown verb "${word}".`, GENERAL_HINT, { verb: word });
    }
    this.verb = verb;
    if (verb === 'create') {
      const next = this.tokens[index + 1];
      if (next !== undefined && !next.startsWith('-')) throw createSubcommand(next);
    }
  }

  private resolveRollout(word: string): void {
    this.rolloutPending = false;
    const verb = SUPPORTED_VERBS.find((v) => v === `rollout ${word}`);
    if (verb === undefined) {
      throw invalid(`Unknown rollout subcommand "${word}".`, `Supported: rollout status, rollout restart, rollout undo, rollout history. ${GENERAL_HINT}`);
    }
    this.verb = verb;
  }

  /** Parses the flag word at index i (and its value word, if any); returns the next index. */
  private flag(i: number): number {
    const token = this.tokens[i] as string;
    const early = refusalOf(token);
    if (early !== null) throw early;
    const table = this.table();

    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const raw = eq < 0 ? token.slice(2) : token.slice(2, eq);
      const name = normalizeFlagName(raw);
      const def = table.long.get(name);
      const spelled = `--${name}`;
      if (def === undefined) throw this.unknownFlag(`--${raw}`, token);
      if (eq >= 0) {
        this.set(def, token.slice(eq + 1), spelled);
        return i + 1;
      }
      return this.bare(def, spelled, i);
    }

    const body = token.slice(1);
    const eq = body.indexOf('=');
    const head = normalizeFlagName(eq < 0 ? body : body.slice(0, eq));
    if (head.length > 1 && ALL_LONG_NAMES.has(head)) {
      throw invalid(`Write --${head} with two dashes (got "${token}").`, this.verb === null ? GENERAL_HINT : verbHint(this.verb), { flag: token });
    }
    let k = 0;
    while (k < body.length) {
      const ch = body.charAt(k);
      if (ch === 'f') throw refusedShortF(this.verb, '-f');
      const short = REFUSED_SHORT.get(ch);
      if (short !== undefined) throw refusedFlag(short.flag, short.reason);
      const def = table.short.get(ch);
      const spelled = `-${ch}`;
      if (def === undefined) throw this.unknownFlag(spelled, token);
      const rest = body.slice(k + 1);
      if (def.kind === 'value') {
        if (rest.startsWith('=')) this.set(def, rest.slice(1), spelled);
        else if (rest.length > 0) this.set(def, rest, spelled);
        else return this.bare(def, spelled, i);
        return i + 1;
      }
      if (rest.startsWith('=')) {
        this.set(def, rest.slice(1), spelled);
        return i + 1;
      }
      if (rest.length === 0) return this.bare(def, spelled, i);
      this.set(def, undefined, spelled);
      k += 1;
    }
    return i + 1;
  }

  /** A flag word without "=": value flags take the next word; bool and optional flags take none. */
  private bare(def: FlagDef, spelled: string, i: number): number {
    const next = this.tokens[i + 1];
    if (def.kind === 'value') {
      if (next === undefined || next === '--')
        throw invalid(`${spelled} needs a value.`, this.verb === null ? GENERAL_HINT : verbHint(this.verb), { flag: spelled });
      if (next.startsWith('-') && next.length > 1) {
        const refusal = refusalOf(next);
        if (refusal !== null) throw refusal;
        if (!/^-[0-9]+$/.test(next)) {
          throw invalid(`${spelled} needs a value, but the next word is the flag "${next}". If it really is the value, write ${spelled}=${next}.`);
        }
      }
      this.set(def, next, spelled);
      return i + 2;
    }
    this.set(def, undefined, spelled);
    if (next !== undefined) {
      const lower = next.toLowerCase();
      if (def.kind === 'bool' && (lower === 'true' || lower === 'false')) {
        throw invalid(`${spelled} is a switch and does not take a separate value; write ${spelled}=${lower}.`);
      }
      if (def.kind === 'optional' && def.choices?.includes(lower)) {
        throw invalid(`${spelled} takes its value after "=": write ${spelled}=${lower}.`);
      }
    }
    return i + 1;
  }

  private set(def: FlagDef, value: string | undefined, spelled: string): void {
    if (def.kind === 'bool') {
      let b = true;
      if (value !== undefined) {
        const lower = value.toLowerCase();
        if (lower !== 'true' && lower !== 'false') throw invalid(`${spelled} takes true or false, got "${value}".`);
        b = lower === 'true';
      }
      const prior = this.bools.get(def.key);
      if (prior !== undefined && prior.value !== b) throw invalid(`${spelled} is given twice with different values.`);
      this.bools.set(def.key, { value: b, spelled });
      return;
    }
    const v = value ?? def.bare ?? '';
    if (value !== undefined && value.length === 0 && def.allowEmpty !== true) {
      throw invalid(`${spelled} needs a non-empty value.`);
    }
    if (this.values.has(def.key)) throw invalid(`${spelled} is given twice; give it once.`);
    this.values.set(def.key, { value: v, spelled });
  }

  // ---- results ----

  result(manifest: string | undefined): KubeCommand {
    const verb = this.verb as KubeVerb;
    if (verb === 'apply' || verb === 'create') {
      if (typeof manifest !== 'string' || manifest.trim().length === 0) {
        throw invalid(
          `${verb} needs the manifest (YAML or JSON) in the separate manifest argument.`,
          `Pass the objects in the manifest argument and send just "${verb}" (plus flags such as --dry-run=server). ${GENERAL_HINT}`,
        );
      }
    } else if (manifest !== undefined) {
      throw invalid(`The manifest argument is only used by apply and create, not by "${verb}".`, `Leave the manifest argument out. ${GENERAL_HINT}`);
    }

    const ns = this.values.get('namespace');
    const namespace = ns === undefined ? null : checkNamespace(ns.value, ns.spelled);
    const allNamespaces = this.bool('all-namespaces');
    if (allNamespaces && namespace !== null) throw invalid('Give either -n/--namespace or -A/--all-namespaces, not both.');
    const sel = this.values.get('selector');
    const labelSelector = sel === undefined ? null : checkLabelSelector(sel.value);
    const fsel = this.values.get('field-selector');
    const fieldSelector = fsel === undefined ? null : checkFieldSelector(fsel.value);
    const out = this.values.get('output');
    const output: OutputFormat = out === undefined ? { kind: 'table', wide: false } : parseOutput(out.value, verb, out.spelled);

    const rt = this.values.get('request-timeout');
    if (rt !== undefined && !/^[0-9]{1,9}$/.test(rt.value)) parseDuration(rt.value, rt.spelled);
    const chunk = this.values.get('chunk-size');
    if (chunk !== undefined) parseCount(chunk.value, chunk.spelled);
    const validate = this.values.get('validate');
    if (validate !== undefined && !['strict', 'warn', 'ignore', 'true', 'false'].includes(validate.value)) {
      throw invalid(`--validate takes strict, warn, ignore, true or false, got "${validate.value}".`);
    }

    if (this.argv !== null && verb !== 'exec') throw invalid('"--" is only used by exec.');
    const base = { verb, namespace, allNamespaces, labelSelector, fieldSelector, output };
    const built = this.build(verb, { namespace, allNamespaces, labelSelector, fieldSelector });
    return { ...base, types: built.types, targets: built.targets, options: built.options };
  }

  private bool(key: string): boolean {
    return this.bools.get(key)?.value ?? false;
  }

  private str(key: string): string | null {
    return this.values.get(key)?.value ?? null;
  }

  private count(key: string, min = 0): number | null {
    const v = this.values.get(key);
    return v === undefined ? null : parseCount(v.value, v.spelled, min);
  }

  private dryRun(): boolean {
    const v = this.values.get('dry-run');
    if (v === undefined) return false;
    switch (v.value) {
      case 'server':
        return true;
      case 'none':
        return false;
      case 'client':
        throw invalid('--dry-run=client is not available: the gateway has no local kubectl. Use --dry-run=server.');
      case '':
        throw invalid('Write --dry-run=server (or --dry-run=none).');
      default:
        throw invalid(`--dry-run takes server or none, got "${v.value}".`);
    }
  }

  private noPositionals(verb: KubeVerb, hint: string): void {
    const extra = this.positionals[0];
    if (extra !== undefined) throw invalid(`"${verb}" takes no arguments, got "${extra}".`, `${hint} ${verbHint(verb)}`);
  }

  private build(
    verb: KubeVerb,
    ctx: { namespace: string | null; allNamespaces: boolean; labelSelector: string | null; fieldSelector: string | null },
  ): { types: readonly string[]; targets: readonly Target[]; options: Options } {
    const args = this.positionals;
    const hint = verbHint(verb);
    switch (verb) {
      case 'get':
      case 'describe': {
        if (args.length === 0) throw invalid(`${verb} needs a resource type, e.g. "${verb} pods" or "${verb} deployment/web".`, hint);
        const r = resourceArgs(args);
        if (r.names.length > 0 && ctx.labelSelector !== null) throw invalid('Give either object names or -l/--selector, not both.', hint);
        if (r.names.length > 0 && ctx.allNamespaces) throw invalid('Objects cannot be named across all namespaces; drop -A or the names.', hint);
        const options: Options =
          verb === 'get'
            ? {
                showLabels: this.bool('show-labels'),
                noHeaders: this.bool('no-headers'),
                sortBy: this.str('sort-by'),
                ignoreNotFound: this.bool('ignore-not-found'),
              }
            : {};
        return { types: r.types, targets: r.targets, options };
      }

      case 'logs': {
        const containerFlag = this.str('container');
        let container = containerFlag === null ? null : checkContainer(containerFlag);
        let types: string[] = ['pods'];
        let targets: Target[] = [];
        if (ctx.labelSelector !== null) {
          if (args.length > 0) throw invalid('Give either a pod or -l/--selector, not both.', hint);
        } else {
          const [first, second, ...rest] = args;
          if (first === undefined) throw invalid('logs needs a pod (logs POD [CONTAINER], logs TYPE/NAME) or -l SELECTOR.', hint);
          if (rest.length > 0) throw invalid(`logs takes at most a pod and a container, got "${rest[0]}".`, hint);
          if (first.includes('/')) {
            const r = resourceArgs([first]);
            types = r.types;
            targets = r.targets;
          } else {
            targets = [{ type: 'pods', name: checkName(first, 'pod name') }];
          }
          if (second !== undefined) {
            if (container !== null) throw invalid('Give the container either as an argument or with -c/--container, not both.', hint);
            container = checkContainer(second);
          }
        }
        const sinceFlag = this.values.get('since');
        let sinceSeconds: number | null = null;
        if (sinceFlag !== undefined) {
          sinceSeconds = parseDuration(sinceFlag.value, sinceFlag.spelled);
          if (sinceSeconds <= 0) throw invalid('--since must be longer than 0s.', hint);
        }
        return {
          types,
          targets,
          options: { container, previous: this.bool('previous'), tail: this.count('tail'), sinceSeconds, timestamps: this.bool('timestamps') },
        };
      }

      case 'events': {
        this.noPositionals(verb, 'Filter with --for TYPE/NAME.');
        const forFlag = this.str('for');
        let forType: string | null = null;
        let forName: string | null = null;
        if (forFlag !== null) {
          const slash = forFlag.indexOf('/');
          if (slash < 0) throw invalid(`--for takes TYPE/NAME (e.g. --for pod/web), got "${forFlag}".`, hint);
          forType = checkType(forFlag.slice(0, slash));
          forName = checkName(forFlag.slice(slash + 1));
        }
        const typesFlag = this.str('types');
        const eventTypes: string[] = [];
        if (typesFlag !== null) {
          for (const t of typesFlag.split(',')) {
            const lower = t.trim().toLowerCase();
            if (lower !== 'normal' && lower !== 'warning') throw invalid(`--types takes Normal and/or Warning, got "${t}".`, hint);
            const canonical = lower === 'normal' ? 'Normal' : 'Warning';
            if (!eventTypes.includes(canonical)) eventTypes.push(canonical);
          }
        }
        return { types: ['events'], targets: [], options: { forType, forName, eventTypes, noHeaders: this.bool('no-headers') } };
      }

      case 'api-resources': {
        this.noPositionals(verb, 'Filter with --namespaced=true|false or --api-group=GROUP.');
        const group = this.str('api-group');
        if (group !== null && group !== '' && (group.length > 253 || !DNS_SUBDOMAIN_RE.test(group))) {
          throw invalid(`--api-group "${group}" is not a valid API group (e.g. apps, networking.k8s.io, or "" for the core group).`, hint);
        }
        const sortBy = this.str('sort-by');
        if (sortBy !== null && sortBy !== 'name' && sortBy !== 'kind') throw invalid(`--sort-by takes name or kind for api-resources, got "${sortBy}".`, hint);
        const namespaced = this.bools.get('namespaced')?.value ?? null;
        return { types: [], targets: [], options: { namespaced, apiGroup: group, noHeaders: this.bool('no-headers'), sortBy } };
      }

      case 'explain': {
        const [first, ...rest] = args;
        if (first === undefined) throw invalid('explain needs TYPE or TYPE.field.path, e.g. "explain deployment.spec.strategy".', hint);
        if (rest.length > 0) throw invalid(`explain takes one argument, got "${rest[0]}".`, hint);
        const dot = first.indexOf('.');
        const type = checkType(dot < 0 ? first : first.slice(0, dot));
        const fieldPath = dot < 0 ? null : first.slice(dot + 1);
        if (fieldPath !== null && !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(fieldPath)) {
          throw invalid(`"${first}" is not a valid TYPE.field.path.`, hint);
        }
        return { types: [type], targets: [], options: { fieldPath, recursive: this.bool('recursive') } };
      }

      case 'top': {
        const [first, ...names] = args;
        const kinds = ['pod', 'pods', 'po', 'node', 'nodes', 'no'];
        if (first === undefined || !kinds.includes(first)) {
          throw invalid(`top needs "pods" or "nodes"${first === undefined ? '' : `, got "${first}"`} (e.g. "top pods -n shop").`, hint);
        }
        const isNode = first.startsWith('no');
        if (isNode && ctx.allNamespaces) throw invalid('Nodes are not namespaced; drop -A.', hint);
        for (const n of names) checkName(n);
        if (names.length > 0 && ctx.labelSelector !== null) throw invalid('Give either names or -l/--selector, not both.', hint);
        const sortBy = this.str('sort-by');
        if (sortBy !== null && sortBy !== 'cpu' && sortBy !== 'memory') throw invalid(`--sort-by takes cpu or memory for top, got "${sortBy}".`, hint);
        return { types: [first], targets: names.map((name) => ({ type: first, name })), options: { sortBy, noHeaders: this.bool('no-headers') } };
      }

      case 'delete': {
        if (args.length === 0) throw invalid('delete needs TYPE NAME…, TYPE/NAME…, or a TYPE with -l/--field-selector/--all.', hint);
        const r = resourceArgs(args);
        const all = this.bool('all');
        const bySelector = ctx.labelSelector !== null || ctx.fieldSelector !== null;
        if (r.names.length > 0 && (all || bySelector)) throw invalid('Give either object names or -l/--field-selector/--all, not both.', hint);
        if (all && ctx.labelSelector !== null) throw invalid('Give either --all or -l/--selector, not both.', hint);
        if (r.names.length === 0 && !all && !bySelector) {
          throw invalid(`No object named: give names ("delete ${r.types.join(',')} NAME"), -l SELECTOR, --field-selector, or --all.`, hint);
        }
        if (r.names.length > 0 && ctx.allNamespaces) throw invalid('Objects cannot be named across all namespaces; drop -A or the names.', hint);
        const force = this.bool('force');
        let gracePeriod = this.count('grace-period');
        if (this.bool('now')) {
          if (gracePeriod !== null) throw invalid('--now and --grace-period cannot be given together.', hint);
          gracePeriod = 1;
        }
        // kubectl's own rules: --grace-period=0 without --force means 1; --force alone means 0.
        if (gracePeriod === 0 && !force) gracePeriod = 1;
        if (force && gracePeriod === null) gracePeriod = 0;
        const cascade = this.str('cascade') ?? 'background';
        if (cascade !== 'background' && cascade !== 'foreground' && cascade !== 'orphan') {
          throw invalid(`--cascade takes background, foreground or orphan, got "${cascade}".`, hint);
        }
        return {
          types: r.types,
          targets: r.targets,
          options: { all, gracePeriod, force, cascade, dryRun: this.dryRun(), ignoreNotFound: this.bool('ignore-not-found') },
        };
      }

      case 'apply': {
        this.noPositionals(verb, 'apply takes no arguments: pass the manifest in the manifest argument.');
        const serverSide = this.bool('server-side');
        const forceConflicts = this.bool('force-conflicts');
        if (forceConflicts && !serverSide) throw invalid('--force-conflicts only applies with --server-side.', hint);
        return { types: [], targets: [], options: { serverSide, forceConflicts, dryRun: this.dryRun() } };
      }

      case 'create':
        return { types: [], targets: [], options: { dryRun: this.dryRun() } };

      case 'patch': {
        const r = resourceArgs(args);
        if (r.targets.length !== 1 || r.types.length !== 1)
          throw invalid('patch needs exactly one object: patch TYPE NAME -p PATCH, or patch TYPE/NAME -p PATCH.', hint);
        const patch = this.str('patch');
        if (patch === null) throw invalid('patch needs -p/--patch with the patch as JSON, e.g. -p \'{"spec":{"replicas":2}}\'.', hint);
        const patchType = this.str('type') ?? 'strategic';
        if (patchType !== 'strategic' && patchType !== 'merge' && patchType !== 'json') {
          throw invalid(`--type takes strategic, merge or json, got "${patchType}".`, hint);
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(patch);
        } catch {
          throw invalid('The patch (-p/--patch) is not valid JSON (YAML patches are not accepted).', hint);
        }
        if (patchType === 'json') {
          if (!Array.isArray(parsed))
            throw invalid('A --type=json patch must be a JSON array of operations, e.g. \'[{"op":"replace","path":"/spec/replicas","value":2}]\'.', hint);
        } else if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
          throw invalid(`A --type=${patchType} patch must be a JSON object.`, hint);
        }
        return { types: r.types, targets: r.targets, options: { patch, patchType, dryRun: this.dryRun() } };
      }

      case 'scale': {
        const r = resourceArgs(args);
        if (r.targets.length === 0) throw invalid('scale needs TYPE NAME… or TYPE/NAME…, e.g. "scale deployment web --replicas=3".', hint);
        const replicas = this.count('replicas');
        if (replicas === null) throw invalid('scale needs --replicas N.', hint);
        return { types: r.types, targets: r.targets, options: { replicas, currentReplicas: this.count('current-replicas'), dryRun: this.dryRun() } };
      }

      case 'rollout status':
      case 'rollout restart':
      case 'rollout undo':
      case 'rollout history': {
        const r = resourceArgs(args);
        const single = verb === 'rollout status' || verb === 'rollout undo';
        if (r.targets.length === 0 || (single && r.targets.length !== 1)) {
          throw invalid(`${verb} needs ${single ? 'one object' : 'objects'}: ${verb} TYPE NAME, or ${verb} TYPE/NAME (e.g. deployment/web).`, hint);
        }
        let options: Options;
        if (verb === 'rollout status') {
          const t = this.values.get('timeout');
          options = { timeoutSeconds: t === undefined ? null : parseDuration(t.value, t.spelled) };
        } else if (verb === 'rollout restart') options = { dryRun: this.dryRun() };
        else if (verb === 'rollout undo') options = { toRevision: this.count('to-revision'), dryRun: this.dryRun() };
        else options = { revision: this.count('revision') };
        return { types: r.types, targets: r.targets, options };
      }

      case 'label':
      case 'annotate': {
        const objects: string[] = [];
        const changes: string[] = [];
        for (const arg of args) {
          if (objects.length > 0 && (arg.includes('=') || arg.endsWith('-'))) changes.push(arg);
          else if (changes.length > 0) throw invalid(`"${arg}": name the objects first, then the changes (${verb} TYPE NAME key=value key-).`, hint);
          else objects.push(arg);
        }
        if (objects.length === 0) throw invalid(`${verb} needs TYPE NAME… (or TYPE/NAME…) and then key=value or key- changes.`, hint);
        const r = resourceArgs(objects);
        if (changes.length === 0) throw invalid(`${verb} needs at least one change: key=value to set, key- to remove.`, hint);
        const what = verb === 'label' ? 'label' : 'annotation';
        const seen = new Set<string>();
        for (const change of changes) {
          const eq = change.indexOf('=');
          const key = eq < 0 ? change.slice(0, -1) : change.slice(0, eq);
          checkQualifiedKey(key, what);
          if (eq >= 0 && verb === 'label') {
            const value = change.slice(eq + 1);
            if (value.length > 63 || !LABEL_VALUE_RE.test(value)) {
              throw invalid(`"${value}" is not a valid label value (at most 63 letters, digits, "-", "_" or ".", starting and ending alphanumeric).`, hint);
            }
          }
          if (seen.has(key)) throw invalid(`The ${what} key "${key}" is changed twice.`, hint);
          seen.add(key);
        }
        const all = this.bool('all');
        const modes = (r.names.length > 0 ? 1 : 0) + (all ? 1 : 0) + (ctx.labelSelector !== null ? 1 : 0);
        if (modes === 0) throw invalid(`No object named: give names, -l SELECTOR, or --all.`, hint);
        if (modes > 1) throw invalid('Give exactly one of: object names, -l/--selector, --all.', hint);
        return { types: r.types, targets: r.targets, options: { changes, overwrite: this.bool('overwrite'), all, dryRun: this.dryRun() } };
      }

      case 'cordon':
      case 'uncordon': {
        const [node, ...rest] = args;
        if (ctx.labelSelector !== null) {
          if (node !== undefined) throw invalid('Give either a node name or -l/--selector, not both.', hint);
          return { types: ['nodes'], targets: [], options: { dryRun: this.dryRun() } };
        }
        if (node === undefined) throw invalid(`${verb} needs a node name (or -l SELECTOR).`, hint);
        if (rest.length > 0) throw invalid(`${verb} takes one node, got "${rest[0]}" as well.`, hint);
        return { types: ['nodes'], targets: [{ type: 'nodes', name: checkName(node, 'node name') }], options: { dryRun: this.dryRun() } };
      }

      case 'exec': {
        const [pod, ...rest] = args;
        if (pod === undefined) throw invalid('exec needs a pod: exec POD [-c CONTAINER] -- COMMAND [ARGS…].', hint);
        if (rest.length > 0 || this.argv === null) {
          throw invalid('exec needs "--" before the command to run: exec POD [-c CONTAINER] -- COMMAND [ARGS…].', hint);
        }
        if (this.argv.length === 0 || (this.argv[0] ?? '').length === 0) throw invalid('exec needs a command after "--".', hint);
        let types: string[] = ['pods'];
        let targets: Target[];
        if (pod.includes('/')) {
          const r = resourceArgs([pod]);
          types = r.types;
          targets = r.targets;
        } else {
          targets = [{ type: 'pods', name: checkName(pod, 'pod name') }];
        }
        const c = this.str('container');
        return {
          types,
          targets,
          options: { command: [...this.argv], container: c === null ? null : checkContainer(c), invokesShell: invokesShell(this.argv) },
        };
      }
    }
  }
}

function leadingKubectl(): DrawbridgeError {
  return invalid('Drop the leading "kubectl": send only its arguments, e.g. "get pods -n shop".', GENERAL_HINT, { construct: 'kubectl' });
}

function createSubcommand(word: string): DrawbridgeError {
  return refused(
    `Refused: "create ${word}" generates objects from flags; use a manifest: put the objects in the manifest argument and send just "create" (or "apply").`,
    { verb: 'create', subcommand: word },
  );
}

/**
 * Parses a kubectl command line (without the word kubectl) into a KubeCommand.
 * `manifest` is the separate manifest argument: required (non-empty) for apply
 * and create, absent for every other verb; it is not parsed here.
 */
export function parseKubectl(command: string, manifest?: string): KubeCommand {
  const tokens = tokenize(command);
  const first = tokens[0];
  if (first === undefined) throw invalid('The command is empty.', GENERAL_HINT, { construct: 'empty' });
  if (isKubectlWord(first)) throw leadingKubectl();
  // Refused flags win over every other error, wherever they stand (up to exec's "--").
  for (const token of tokens) {
    if (token === '--') break;
    if (token.startsWith('-')) {
      const refusal = refusalOf(token);
      if (refusal !== null) throw refusal;
    }
  }
  const parser = new Parser(tokens);
  parser.run();
  return parser.result(manifest);
}
