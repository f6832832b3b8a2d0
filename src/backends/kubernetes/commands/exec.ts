// kubectl exec: a pod (or TYPE/NAME), an optional container, and the command
// after "--", run without a TTY or stdin. Whether the command starts a shell
// is recorded for policy and the approval prompt. Pure.

import { invalid } from '../grammar.js';
import type { ExecCommand } from '../types.js';
import { checkContainer, podArg, type FlagReader } from './values.js';

const SHELLS: ReadonlySet<string> = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh', 'fish', 'csh', 'tcsh']);

function invokesShell(argv: readonly string[]): boolean {
  const base = (word: string | undefined): string => (word ?? '').split('/').pop() ?? '';
  const first = base(argv[0]);
  if (SHELLS.has(first)) return true;
  if (first === 'busybox' || first === 'env') return SHELLS.has(base(argv[1]));
  return false;
}

export function buildExec(verb: 'exec', f: FlagReader): ExecCommand {
  const [pod, ...rest] = f.positionals;
  if (pod === undefined) throw invalid('exec needs a pod: exec POD [-c CONTAINER] -- COMMAND [ARGS…].', f.hint);
  if (rest.length > 0 || f.argv === null) {
    throw invalid('exec needs "--" before the command to run: exec POD [-c CONTAINER] -- COMMAND [ARGS…].', f.hint);
  }
  if (f.argv.length === 0 || (f.argv[0] ?? '').length === 0) throw invalid('exec needs a command after "--".', f.hint);
  const { types, targets } = podArg(pod);
  const c = f.str('container');
  const options = { command: [...f.argv], container: c === null ? null : checkContainer(c), invokesShell: invokesShell(f.argv) };
  return { verb, ...f.scope, types, targets, options };
}
