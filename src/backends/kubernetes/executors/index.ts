// Runs a parsed kubectl command: hands it to the executor of its verb family
// (read, write, rollout, exec), matching the parse modules in commands/.

import type { TabularResult } from '../../backend.js';
import { isReadCommand, isRolloutCommand, isWriteCommand, type KubeCommand } from '../types.js';
import type { Execution } from './context.js';
import { runExec } from './exec.js';
import { runRead } from './read.js';
import { runRollout } from './rollout.js';
import { runWrite } from './write.js';

export { requestsDryRun, type CallOptions, type Execution, type KubeApi } from './context.js';

export function runCommand(c: KubeCommand, x: Execution): Promise<TabularResult> {
  if (isReadCommand(c)) return runRead(c, x);
  if (isWriteCommand(c)) return runWrite(c, x);
  if (isRolloutCommand(c)) return runRollout(c, x);
  // The compiler checks that only exec is left: a verb outside every family does not build.
  return runExec(c, x);
}
