// The write verbs of kubectl (delete, apply, create, patch, scale, label,
// annotate, cordon, uncordon): each builds its typed command from the parsed
// flags and arguments, or says what is wrong (input.invalid). The manifest of
// apply and create is checked by the caller. Pure.

import { invalid } from '../grammar.js';
import type {
  ApplyCommand,
  Cascade,
  CordonCommand,
  CreateCommand,
  DeleteCommand,
  MetadataCommand,
  PatchCommand,
  PatchType,
  ScaleCommand,
  WriteCommand,
  WriteVerb,
} from '../types.js';
import { checkName, checkQualifiedKey, LABEL_VALUE_RE, resourceArgs, type FlagReader } from './values.js';

export function buildWrite(verb: WriteVerb, f: FlagReader): WriteCommand {
  switch (verb) {
    case 'delete':
      return del(f);
    case 'apply':
      return apply(f);
    case 'create':
      return create(f);
    case 'patch':
      return patch(f);
    case 'scale':
      return scale(f);
    case 'label':
    case 'annotate':
      return metadata(verb, f);
    case 'cordon':
    case 'uncordon':
      return cordon(verb, f);
  }
}

const CASCADES: readonly string[] = ['background', 'foreground', 'orphan'] satisfies readonly Cascade[];

function isCascade(value: string): value is Cascade {
  return CASCADES.includes(value);
}

/** kubectl's own rules: --now means 1; --grace-period=0 without --force means 1; --force alone means 0. */
function gracePeriodOf(f: FlagReader, force: boolean): number | null {
  let gracePeriod = f.count('grace-period');
  if (f.bool('now')) {
    if (gracePeriod !== null) throw invalid('--now and --grace-period cannot be given together.', f.hint);
    gracePeriod = 1;
  }
  if (gracePeriod === 0 && !force) gracePeriod = 1;
  if (force && gracePeriod === null) gracePeriod = 0;
  return gracePeriod;
}

function del(f: FlagReader): DeleteCommand {
  const { scope, hint } = f;
  if (f.positionals.length === 0) throw invalid('delete needs TYPE NAME…, TYPE/NAME…, or a TYPE with -l/--field-selector/--all.', hint);
  const r = resourceArgs(f.positionals);
  const all = f.bool('all');
  const bySelector = scope.labelSelector !== null || scope.fieldSelector !== null;
  if (r.names.length > 0 && (all || bySelector)) throw invalid('Give either object names or -l/--field-selector/--all, not both.', hint);
  if (all && scope.labelSelector !== null) throw invalid('Give either --all or -l/--selector, not both.', hint);
  if (r.names.length === 0 && !all && !bySelector) {
    throw invalid(`No object named: give names ("delete ${r.types.join(',')} NAME"), -l SELECTOR, --field-selector, or --all.`, hint);
  }
  if (r.names.length > 0 && scope.allNamespaces) throw invalid('Objects cannot be named across all namespaces; drop -A or the names.', hint);
  const force = f.bool('force');
  const gracePeriod = gracePeriodOf(f, force);
  const cascade = f.str('cascade') ?? 'background';
  if (!isCascade(cascade)) throw invalid(`--cascade takes background, foreground or orphan, got "${cascade}".`, hint);
  const options = { all, gracePeriod, force, cascade, dryRun: f.dryRun(), ignoreNotFound: f.bool('ignore-not-found') };
  return { verb: 'delete', ...scope, types: r.types, targets: r.targets, options };
}

function apply(f: FlagReader): ApplyCommand {
  f.noPositionals('apply takes no arguments: pass the manifest in the manifest argument.');
  const serverSide = f.bool('server-side');
  const forceConflicts = f.bool('force-conflicts');
  if (forceConflicts && !serverSide) throw invalid('--force-conflicts only applies with --server-side.', f.hint);
  return { verb: 'apply', ...f.scope, types: [], targets: [], options: { serverSide, forceConflicts, dryRun: f.dryRun() } };
}

function create(f: FlagReader): CreateCommand {
  return { verb: 'create', ...f.scope, types: [], targets: [], options: { dryRun: f.dryRun() } };
}

function isPatchType(value: string): value is PatchType {
  return value === 'strategic' || value === 'merge' || value === 'json';
}

/** The patch must be JSON of the shape its type needs (YAML patches are not accepted). */
function checkPatch(patch: string, patchType: PatchType, hint: string): void {
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
}

function patch(f: FlagReader): PatchCommand {
  const r = resourceArgs(f.positionals);
  if (r.targets.length !== 1 || r.types.length !== 1)
    throw invalid('patch needs exactly one object: patch TYPE NAME -p PATCH, or patch TYPE/NAME -p PATCH.', f.hint);
  const text = f.str('patch');
  if (text === null) throw invalid('patch needs -p/--patch with the patch as JSON, e.g. -p \'{"spec":{"replicas":2}}\'.', f.hint);
  const patchType = f.str('type') ?? 'strategic';
  if (!isPatchType(patchType)) throw invalid(`--type takes strategic, merge or json, got "${patchType}".`, f.hint);
  checkPatch(text, patchType, f.hint);
  return { verb: 'patch', ...f.scope, types: r.types, targets: r.targets, options: { patch: text, patchType, dryRun: f.dryRun() } };
}

function scale(f: FlagReader): ScaleCommand {
  const r = resourceArgs(f.positionals);
  if (r.targets.length === 0) throw invalid('scale needs TYPE NAME… or TYPE/NAME…, e.g. "scale deployment web --replicas=3".', f.hint);
  const replicas = f.count('replicas');
  if (replicas === null) throw invalid('scale needs --replicas N.', f.hint);
  const options = { replicas, currentReplicas: f.count('current-replicas'), dryRun: f.dryRun() };
  return { verb: 'scale', ...f.scope, types: r.types, targets: r.targets, options };
}

/** `label`/`annotate` arguments: the objects first, then the changes (key=value or key-). */
function splitChanges(verb: 'label' | 'annotate', f: FlagReader): { objects: string[]; changes: string[] } {
  const objects: string[] = [];
  const changes: string[] = [];
  for (const arg of f.positionals) {
    if (objects.length > 0 && (arg.includes('=') || arg.endsWith('-'))) changes.push(arg);
    else if (changes.length > 0) throw invalid(`"${arg}": name the objects first, then the changes (${verb} TYPE NAME key=value key-).`, f.hint);
    else objects.push(arg);
  }
  if (objects.length === 0) throw invalid(`${verb} needs TYPE NAME… (or TYPE/NAME…) and then key=value or key- changes.`, f.hint);
  return { objects, changes };
}

function checkChanges(verb: 'label' | 'annotate', changes: readonly string[], hint: string): void {
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
}

function metadata(verb: 'label' | 'annotate', f: FlagReader): MetadataCommand {
  const { objects, changes } = splitChanges(verb, f);
  const r = resourceArgs(objects);
  checkChanges(verb, changes, f.hint);
  const all = f.bool('all');
  const modes = (r.names.length > 0 ? 1 : 0) + (all ? 1 : 0) + (f.scope.labelSelector !== null ? 1 : 0);
  if (modes === 0) throw invalid(`No object named: give names, -l SELECTOR, or --all.`, f.hint);
  if (modes > 1) throw invalid('Give exactly one of: object names, -l/--selector, --all.', f.hint);
  return { verb, ...f.scope, types: r.types, targets: r.targets, options: { changes, overwrite: f.bool('overwrite'), all, dryRun: f.dryRun() } };
}

function cordon(verb: 'cordon' | 'uncordon', f: FlagReader): CordonCommand {
  const [node, ...rest] = f.positionals;
  if (f.scope.labelSelector !== null) {
    if (node !== undefined) throw invalid('Give either a node name or -l/--selector, not both.', f.hint);
    return { verb, ...f.scope, types: ['nodes'], targets: [], options: { dryRun: f.dryRun() } };
  }
  if (node === undefined) throw invalid(`${verb} needs a node name (or -l SELECTOR).`, f.hint);
  if (rest.length > 0) throw invalid(`${verb} takes one node, got "${rest[0]}" as well.`, f.hint);
  return { verb, ...f.scope, types: ['nodes'], targets: [{ type: 'nodes', name: checkName(node, 'node name') }], options: { dryRun: f.dryRun() } };
}
