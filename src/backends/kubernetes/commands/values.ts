// The values a kubectl command line carries, checked one by one (namespaces,
// resource types, object and container names, selectors, counts, durations,
// label and annotation keys, TYPE NAME… / TYPE/NAME arguments), and the
// read-only view of the parsed flags that each verb family builds its command
// from. Pure: every problem is input.invalid.

import { invalid } from '../grammar.js';
import type { CommandScope, KubeVerb, Target } from '../types.js';

/** The flags and arguments of one command line, as the verb families read them. */
export interface FlagReader {
  readonly verb: KubeVerb;
  readonly scope: CommandScope;
  /** Arguments that are not flags, in order. */
  readonly positionals: readonly string[];
  /** exec's words after "--", or null when there was no "--". */
  readonly argv: readonly string[] | null;
  /** The verb's flag list, for hints. */
  readonly hint: string;
  bool(key: string): boolean;
  /** A switch as given (true or false), or null when absent. */
  switchValue(key: string): boolean | null;
  str(key: string): string | null;
  count(key: string): number | null;
  /** A Go-style duration flag in whole seconds, or null when absent. */
  duration(key: string): number | null;
  /** --dry-run: server (true), none (false); client and a bare --dry-run are refused as mistakes. */
  dryRun(): boolean;
  /** input.invalid if the verb was given arguments. */
  noPositionals(hint: string): void;
}

const NAMESPACE_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const DNS_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const TYPE_RE = /^[A-Za-z][A-Za-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9-]*)*$/;
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._:@-]*[A-Za-z0-9_])?$/;
const QUALIFIED_NAME_RE = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
export const LABEL_VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const LABEL_SELECTOR_RE = /^[A-Za-z0-9._/=!,() -]+$/;
const FIELD_SELECTOR_RE = /^[A-Za-z0-9._/=!,:-]+$/;

export function checkNamespace(value: string, spelled: string): string {
  if (value.length > 63 || !NAMESPACE_RE.test(value)) {
    throw invalid(`${spelled} "${value}" is not a valid namespace name (lower-case letters, digits and "-", at most 63).`);
  }
  return value;
}

export function checkType(value: string): string {
  if (value.length === 0) throw invalid('An empty resource type was given (check the commas).');
  if (value.length > 253 || !TYPE_RE.test(value)) {
    throw invalid(`"${value}" is not a valid resource type (e.g. pods, deploy, deployments.apps).`);
  }
  return value;
}

export function checkName(value: string, what = 'object name'): string {
  if (value.length === 0) throw invalid(`An empty ${what} was given.`);
  if (value.length > 253 || !NAME_RE.test(value)) {
    throw invalid(`"${value}" is not a valid ${what}.`);
  }
  return value;
}

export function checkContainer(value: string): string {
  if (value.length > 63 || !DNS_LABEL_RE.test(value)) throw invalid(`"${value}" is not a valid container name.`);
  return value;
}

export function checkLabelSelector(value: string): string {
  if (value.trim().length === 0 || !LABEL_SELECTOR_RE.test(value)) {
    throw invalid(`"${value}" is not a valid label selector (e.g. app=web,tier!=cache or 'env in (prod,staging)').`);
  }
  return value;
}

export function checkFieldSelector(value: string): string {
  if (!FIELD_SELECTOR_RE.test(value)) {
    throw invalid(`"${value}" is not a valid field selector (e.g. status.phase=Running,spec.nodeName!=node-1).`);
  }
  return value;
}

export function parseCount(value: string, spelled: string, min = 0): number {
  if (!/^[0-9]{1,9}$/.test(value)) throw invalid(`${spelled} needs a whole number ≥ ${min}, got "${value}".`);
  const n = Number(value);
  if (n < min) throw invalid(`${spelled} needs a whole number ≥ ${min}, got "${value}".`);
  return n;
}

/** Go-style durations in whole seconds: 30s, 5m, 1h, 1h30m (and "0"). */
export function parseDuration(value: string, spelled: string): number {
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

export function checkQualifiedKey(key: string, what: string): void {
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

/** A flag value that is null or one of the choices, as a type guard. */
export function isChoiceOrNull<T extends string>(value: string | null, choices: readonly T[]): value is T | null {
  return value === null || (choices as readonly string[]).includes(value);
}

interface Resources {
  readonly types: string[];
  readonly targets: Target[];
  /** Names in `TYPE NAME…` form, or the names of `TYPE/NAME` forms. */
  readonly names: string[];
}

/** `TYPE[,TYPE…] [NAME…]` or `TYPE/NAME…`, never a mix. */
export function resourceArgs(args: readonly string[]): Resources {
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

/** A pod given as NAME (a pod) or TYPE/NAME (anything with pods, e.g. deploy/web). */
export function podArg(arg: string): { types: string[]; targets: Target[] } {
  if (arg.includes('/')) {
    const r = resourceArgs([arg]);
    return { types: r.types, targets: r.targets };
  }
  return { types: ['pods'], targets: [{ type: 'pods', name: checkName(arg, 'pod name') }] };
}
