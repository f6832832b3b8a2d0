// The rollout verbs of kubectl (rollout status, restart, undo, history): each
// builds its typed command from the parsed flags and arguments, or says what
// is wrong (input.invalid). Pure.

import { invalid } from '../grammar.js';
import type { RolloutCommand, RolloutVerb } from '../types.js';
import { resourceArgs, type FlagReader } from './values.js';

export function buildRollout(verb: RolloutVerb, f: FlagReader): RolloutCommand {
  const r = resourceArgs(f.positionals);
  const single = verb === 'rollout status' || verb === 'rollout undo';
  if (r.targets.length === 0 || (single && r.targets.length !== 1)) {
    throw invalid(`${verb} needs ${single ? 'one object' : 'objects'}: ${verb} TYPE NAME, or ${verb} TYPE/NAME (e.g. deployment/web).`, f.hint);
  }
  const base = { ...f.scope, types: r.types, targets: r.targets };
  switch (verb) {
    case 'rollout status':
      return { verb, ...base, options: { timeoutSeconds: f.duration('timeout') } };
    case 'rollout restart':
      return { verb, ...base, options: { dryRun: f.dryRun() } };
    case 'rollout undo':
      return { verb, ...base, options: { toRevision: f.count('to-revision'), dryRun: f.dryRun() } };
    case 'rollout history':
      return { verb, ...base, options: { revision: f.count('revision') } };
  }
}
