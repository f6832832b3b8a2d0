// Runs a parsed kubectl command: hands it to the executor of its verb family
// (read, write, rollout, exec), matching the parse modules in commands/.

import type { TabularResult } from '../../backend.js';
import type { KubeCommand } from '../types.js';
import type { Execution } from './context.js';
import { runExec } from './exec.js';
import { runRead } from './read.js';
import { runRollout } from './rollout.js';
import { runWrite } from './write.js';

export { requestsDryRun, type CallOptions, type Execution, type KubeApi } from './context.js';

export function runCommand(c: KubeCommand, x: Execution): Promise<TabularResult> {
  switch (c.verb) {
    case 'get':
    case 'describe':
    case 'logs':
    case 'events':
    case 'api-resources':
    case 'explain':
    case 'top':
      return runRead(c, x);
    case 'delete':
    case 'apply':
    case 'create':
    case 'patch':
    case 'scale':
    case 'label':
    case 'annotate':
    case 'cordon':
    case 'uncordon':
      return runWrite(c, x);
    case 'rollout status':
    case 'rollout restart':
    case 'rollout undo':
    case 'rollout history':
      return runRollout(c, x);
    case 'exec':
      return runExec(c, x);
  }
}
