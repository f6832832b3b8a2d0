// PLACEHOLDER on the i12 branches only: the PostgreSQL engine's entry points, implemented by the i12-pg branch.
import type { StateStore } from '../contract.js';
import type { StatePurpose } from '../open.js';

export interface PostgresStateOptions {
  readonly url: string;
  readonly purpose: StatePurpose;
}

export async function openPostgresState(_options: PostgresStateOptions): Promise<StateStore> {
  throw new TypeError('not implemented on this branch');
}

/** Applies pending migrations; returns the schema version before and after. */
export async function migratePostgresState(_url: string): Promise<{ readonly from: number; readonly to: number }> {
  throw new TypeError('not implemented on this branch');
}
