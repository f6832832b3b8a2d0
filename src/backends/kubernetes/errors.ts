// The Kubernetes backend's own error code (kubectl features it refuses), with
// its hint, added to the one catalog in src/errors.ts.

import { defineErrorCodes } from '../../errors.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'kubectl.refused': true;
  }
}

export const KUBERNETES_ERRORS = defineErrorCodes({
  'kubectl.refused': {
    kind: 'refusal',
    hint:
      'This kubectl feature is not available through the gateway (it would change the connection ' +
      'or identity, open a tunnel, or escape parsing). Use a plain command from the supported list.',
  },
});
