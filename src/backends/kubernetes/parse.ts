// The pure parser of the `kubectl` tool: the agent sends a kubectl command line
// without the word "kubectl" (e.g. `get pods -n shop -l app=web -o wide`) and
// this module turns it into a KubeCommand — a union discriminated by verb, with
// typed options per verb — with an explicit grammar, never a shell, never
// kubectl itself. Words come from the shared tokenizer (words.ts); this module
// reads the flags against the tables in flags.ts and hands the verb's family
// (commands/read, write, rollout, exec) what it needs to build the command.
// Everything unknown fails closed: an unknown verb, flag, flag value or extra
// argument is `input.invalid` with a hint listing what is supported; anything
// that would change the connection or the identity, open a tunnel, read local
// files, stream forever or smuggle shell syntax is `kubectl.refused`. No I/O.

import type { DrawbridgeError } from '../../errors.js';
import { buildExec } from './commands/exec.js';
import { buildRead } from './commands/read.js';
import { buildRollout } from './commands/rollout.js';
import { checkFieldSelector, checkLabelSelector, checkNamespace, parseCount, parseDuration, type FlagReader } from './commands/values.js';
import { buildWrite } from './commands/write.js';
import {
  ALL_LONG_NAMES,
  GLOBAL_TABLE,
  normalizeFlagName,
  parseOutput,
  REFUSED_SHORT,
  REFUSED_VERBS,
  refusalOf,
  refusedFlag,
  refusedShortF,
  VERB_TABLES,
  verbHint,
  type FlagDef,
  type FlagTable,
} from './flags.js';
import { GENERAL_HINT, invalid, refused, SUPPORTED_VERBS } from './grammar.js';
import { isReadVerb, isRolloutVerb, isWriteVerb, type CommandScope, type KubeCommand, type KubeVerb, type OutputFormat } from './types.js';
import { tokenize } from './words.js';

export { SUPPORTED_VERBS } from './grammar.js';
export { tokenize } from './words.js';

function isKubectlWord(word: string): boolean {
  const base = (word.split(/[\\/]/).pop() ?? '').toLowerCase();
  return base === 'kubectl' || base === 'kubectl.exe';
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

interface FlagValue<T> {
  readonly value: T;
  readonly spelled: string;
}

/** Reads the words of a command line: the verb, the flags (against the verb's table), the arguments, and exec's argv. */
class FlagScanner {
  readonly values = new Map<string, FlagValue<string>>();
  readonly bools = new Map<string, FlagValue<boolean>>();
  readonly positionals: string[] = [];
  verb: KubeVerb | null = null;
  private rolloutPending = false;
  argv: string[] | null = null;

  constructor(private readonly tokens: readonly string[]) {}

  /** Scans every word; returns the verb (or throws). */
  run(): KubeVerb {
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
    return this.verb;
  }

  private table(): FlagTable {
    return this.verb === null ? GLOBAL_TABLE : (VERB_TABLES.get(this.verb) ?? GLOBAL_TABLE);
  }

  private unknownFlag(spelled: string, token: string): DrawbridgeError {
    if (this.verb === null) {
      return invalid(
        `Unknown or misplaced flag ${spelled}${token !== spelled ? ` (in "${token}")` : ''}: ` +
          `only -n/--namespace and --request-timeout may come before the verb.`,
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
}

/** The scanned flags and arguments of one command, as the verb families read them (commands/values.ts). */
class Flags implements FlagReader {
  readonly hint: string;

  constructor(
    readonly verb: KubeVerb,
    readonly scope: CommandScope,
    private readonly scanned: FlagScanner,
  ) {
    this.hint = verbHint(verb);
  }

  get positionals(): readonly string[] {
    return this.scanned.positionals;
  }

  get argv(): readonly string[] | null {
    return this.scanned.argv;
  }

  bool(key: string): boolean {
    return this.scanned.bools.get(key)?.value ?? false;
  }

  switchValue(key: string): boolean | null {
    return this.scanned.bools.get(key)?.value ?? null;
  }

  str(key: string): string | null {
    return this.scanned.values.get(key)?.value ?? null;
  }

  count(key: string): number | null {
    const v = this.scanned.values.get(key);
    return v === undefined ? null : parseCount(v.value, v.spelled);
  }

  duration(key: string): number | null {
    const v = this.scanned.values.get(key);
    return v === undefined ? null : parseDuration(v.value, v.spelled);
  }

  dryRun(): boolean {
    const v = this.scanned.values.get('dry-run');
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

  noPositionals(hint: string): void {
    const extra = this.scanned.positionals[0];
    if (extra !== undefined) throw invalid(`"${this.verb}" takes no arguments, got "${extra}".`, `${hint} ${this.hint}`);
  }
}

/** apply and create need the separate manifest argument; every other verb refuses it. */
function checkManifest(verb: KubeVerb, manifest: string | undefined): void {
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
}

/** The flags every verb shares: namespace, selectors, output. */
function scopeOf(s: FlagScanner, verb: KubeVerb): CommandScope {
  const ns = s.values.get('namespace');
  const namespace = ns === undefined ? null : checkNamespace(ns.value, ns.spelled);
  const allNamespaces = s.bools.get('all-namespaces')?.value ?? false;
  if (allNamespaces && namespace !== null) throw invalid('Give either -n/--namespace or -A/--all-namespaces, not both.');
  const sel = s.values.get('selector');
  const labelSelector = sel === undefined ? null : checkLabelSelector(sel.value);
  const fsel = s.values.get('field-selector');
  const fieldSelector = fsel === undefined ? null : checkFieldSelector(fsel.value);
  const out = s.values.get('output');
  const output: OutputFormat = out === undefined ? { kind: 'table', wide: false } : parseOutput(out.value, verb, out.spelled);
  return { namespace, allNamespaces, labelSelector, fieldSelector, output };
}

/** Flags that are accepted and checked but change nothing the gateway does. */
function checkIgnoredFlags(s: FlagScanner): void {
  const rt = s.values.get('request-timeout');
  if (rt !== undefined && !/^[0-9]{1,9}$/.test(rt.value)) parseDuration(rt.value, rt.spelled);
  const chunk = s.values.get('chunk-size');
  if (chunk !== undefined) parseCount(chunk.value, chunk.spelled);
  const validate = s.values.get('validate');
  if (validate !== undefined && !['strict', 'warn', 'ignore', 'true', 'false'].includes(validate.value)) {
    throw invalid(`--validate takes strict, warn, ignore, true or false, got "${validate.value}".`);
  }
}

/** Hands the command to its verb family. */
function build(f: Flags): KubeCommand {
  const verb = f.verb;
  if (isReadVerb(verb)) return buildRead(verb, f);
  if (isWriteVerb(verb)) return buildWrite(verb, f);
  if (isRolloutVerb(verb)) return buildRollout(verb, f);
  // The compiler checks that only exec is left: a verb outside every family does not build.
  return buildExec(verb, f);
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
  const scanned = new FlagScanner(tokens);
  const verb = scanned.run();
  checkManifest(verb, manifest);
  const scope = scopeOf(scanned, verb);
  checkIgnoredFlags(scanned);
  if (scanned.argv !== null && verb !== 'exec') throw invalid('"--" is only used by exec.');
  return build(new Flags(verb, scope, scanned));
}
