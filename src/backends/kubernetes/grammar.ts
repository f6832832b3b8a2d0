// The vocabulary every part of the kubectl parser shares: the supported verbs,
// the general hint, and the two error kinds (input.invalid for a mistake,
// kubectl.refused for what the gateway never does). Pure.

import { DrawbridgeError } from '../../errors.js';
import { KUBERNETES_ERRORS } from './errors.js';
import { READ_VERBS, ROLLOUT_VERBS, WRITE_VERBS, type KubeVerb } from './types.js';

export const SUPPORTED_VERBS: readonly KubeVerb[] = Object.freeze([...READ_VERBS, ...WRITE_VERBS, ...ROLLOUT_VERBS, 'exec'] as const);

const EXAMPLE = 'get pods -n shop -l app=web -o wide';

export const GENERAL_HINT =
  `Send a kubectl command line without the word "kubectl", e.g. "${EXAMPLE}". ` +
  `Supported verbs: ${SUPPORTED_VERBS.join(', ')}. Flags may appear anywhere; "--" is only used by exec, before the command to run.`;

export function invalid(message: string, hint: string = GENERAL_HINT, details: Record<string, unknown> = {}): DrawbridgeError {
  return new DrawbridgeError('input.invalid', message, { hint, details });
}

export function refused(message: string, details: Record<string, unknown> = {}): DrawbridgeError {
  return new DrawbridgeError('kubectl.refused', message, { hint: KUBERNETES_ERRORS['kubectl.refused'].hint, details });
}
