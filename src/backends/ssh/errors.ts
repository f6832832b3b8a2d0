// The SSH backend's own error code (shell constructs it refuses), with its
// hint, added to the one catalog in src/errors.ts.

import { defineErrorCodes } from '../../errors.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'ssh.refused': true;
  }
}

export const SSH_ERRORS = defineErrorCodes({
  'ssh.refused': {
    kind: 'refusal',
    hint:
      'This shell construct is not run through the gateway: it runs exactly one program with literal arguments. ' +
      'Send a plain command (no pipes, lists, substitutions, redirections or variables) and let policy decide.',
  },
});
