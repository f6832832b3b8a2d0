// The one registry of backends. Adding a backend is a folder under
// src/backends/ and one entry here — never a new switch elsewhere: connection
// schemas, the policy match keys, the operations rules may name and the error
// catalog are all composed from this list (or from a list a test passes to
// the loader).

import type { Backend } from './backend.js';
import { kubernetes } from './kubernetes/index.js';
import { postgres } from './postgres/index.js';
import { http } from './http/index.js';
import { ssh } from './ssh/index.js';

export const BACKENDS: readonly Backend[] = [postgres, kubernetes, ssh, http];

export function backendForConnectionType(type: string, backends: readonly Backend[] = BACKENDS): Backend | undefined {
  return backends.find((b) => b.type === type);
}

export function backendForToolType(type: string, backends: readonly Backend[] = BACKENDS): Backend | undefined {
  return backends.find((b) => b.toolType === type);
}

/** Every operation name any backend produces: rules may only name these. */
export function knownOperations(backends: readonly Backend[] = BACKENDS): ReadonlySet<string> {
  return new Set(backends.flatMap((b) => b.operations));
}

/**
 * The list is usable: connection types and tool types are unique (the loader and
 * defineBackend's checks find a backend by them). Policy match keys are checked
 * where the rule schema is composed (policy/schema.ts).
 */
export function checkBackends(backends: readonly Backend[]): readonly Backend[] {
  for (const [what, key] of [
    ['connection type', (b: Backend) => b.type],
    ['tool type', (b: Backend) => b.toolType],
  ] as const) {
    const seen = new Set<string>();
    for (const b of backends) {
      if (seen.has(key(b))) throw new TypeError(`two backends declare the ${what} ${key(b)}`);
      seen.add(key(b));
    }
  }
  return backends;
}
