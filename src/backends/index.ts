// The one registry of backends. Adding a backend is a folder under
// src/backends/ and one entry here — never a new switch elsewhere.

import type { Backend } from './backend.js';
import { kubernetes } from './kubernetes/index.js';
import { postgres } from './postgres/index.js';
import { ssh } from './ssh/index.js';

export const BACKENDS: readonly Backend[] = [postgres as unknown as Backend, kubernetes as unknown as Backend, ssh as unknown as Backend];

export function backendForConnectionType(type: string): Backend | undefined {
  return BACKENDS.find((b) => b.type === type);
}

export function backendForToolType(type: string): Backend | undefined {
  return BACKENDS.find((b) => b.toolType === type);
}

/** Every operation name any backend produces: rules may only name these. */
export const KNOWN_OPERATIONS: ReadonlySet<string> = new Set(BACKENDS.flatMap((b) => b.operations));
