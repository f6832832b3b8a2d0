// Runs kubectl exec: one command in one container, without TTY or stdin,
// within the exec time limit; the answer is the exit code, stdout and stderr
// (masked later like every answer). exec has no dry run.

import type { Cell, TabularResult } from '../../backend.js';
import { formatDuration } from '../../../config/units.js';
import { DrawbridgeError } from '../../../errors.js';
import type { ExecCommand } from '../types.js';
import { lines, type Execution } from './context.js';

export async function runExec(c: ExecCommand, x: Execution): Promise<TabularResult> {
  if (x.dryRun) return lines([`exec has no dry run: it would run ${JSON.stringify(c.options.command)} in pod ${c.targets[0]?.name ?? ''}`]);
  const target = c.targets[0];
  if (!target) throw new DrawbridgeError('input.invalid', 'exec needs a pod name.');
  const result = await x.api.exec({ namespace: x.namespace, pod: target.name, container: c.options.container, command: c.options.command });
  if (result.timedOut) throw new DrawbridgeError('backend.timeout', `exec was stopped after ${formatDuration(x.api.execTimeoutMs)}.`);
  const row: Cell[] = [result.exitCode, result.stdout, result.stderr];
  return {
    columns: [
      { name: 'exit_code', type: 'int4', sources: [] },
      { name: 'stdout', type: 'document', sources: [] },
      { name: 'stderr', type: 'document', sources: [] },
    ],
    rows: [row],
    command: 'EXEC',
    affectedRows: null,
    truncated: result.truncated ? { reason: 'bytes', limit: x.api.maxBytes, hint: "narrow the command's output to see the rest (grep, head, tail)" } : null,
    notices: result.message ? [result.message] : [],
    bytes: result.stdout.length + result.stderr.length,
  };
}
