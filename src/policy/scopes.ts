// Per-operation scopes: which OAuth scopes one call needs, and which of them
// the caller's token lacks. Pure. A call needs the gateway's required_scopes
// and the scope of every identity.scopes entry whose match applies to the
// parsed request. Entries match in the deny direction (any touched table,
// namespace, host… is enough): a scope guards an operation, so reading the
// patterns generously can only ask for a scope more, never let one slip.

import type { ParsedRequest } from '../backends/backend.js';
import type { ScopeMapping } from '../config/schema.js';
import type { Identity } from '../identity/identity.js';
import { matchApplies } from './evaluate.js';

export interface ScopeCheck {
  /** Every scope the call needs, required_scopes first, then the entries' in file order; no duplicates. */
  readonly needed: readonly string[];
  /** The needed scopes the token does not carry, in the same order. Empty: the call may go on to the decision. */
  readonly missing: readonly string[];
}

export function scopesNeeded(request: ParsedRequest, identity: Identity, mappings: readonly ScopeMapping[], required: readonly string[]): string[] {
  const needed = new Set(required);
  for (const entry of mappings) if (matchApplies(entry.match, 'deny', request, identity)) needed.add(entry.scope);
  return [...needed];
}

export function checkScopes(
  request: ParsedRequest,
  identity: Identity,
  mappings: readonly ScopeMapping[],
  required: readonly string[],
  held: readonly string[],
): ScopeCheck {
  const needed = scopesNeeded(request, identity, mappings, required);
  const have = new Set(held);
  return { needed, missing: needed.filter((scope) => !have.has(scope)) };
}
