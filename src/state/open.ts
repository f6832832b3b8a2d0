// Picks the state engine for a gateway config and opens it: SQLite (state/sqlite/), the
// embedded default, with the journal at journal.path and the approvals at approval.store;
// or PostgreSQL (state/postgres/) when the config sets state.url, shared by replicas.
// The only file outside state/ that knows which engines exist.

import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import type { StateStore } from './contract.js';
import { openSqliteState } from './sqlite/index.js';

/**
 * What the state is opened for:
 * - 'serve': a gateway; the journal must be writable now (SQLite creates its file, PostgreSQL
 *   applies pending migrations), and a schema newer than this build is refused;
 * - 'command': a CLI command that reads, votes or revokes; SQLite creates no journal file until
 *   something is appended; PostgreSQL checks the schema version but migrates nothing.
 */
export type StatePurpose = 'serve' | 'command';

export interface OpenStateOptions {
  readonly purpose?: StatePurpose;
  /** A journal file other than config.journal.path (tests, `serve --journal`); SQLite only. */
  readonly journalPath?: string;
  /** Resolves state.url (a secret reference); default process.env and the config directory. */
  readonly environment?: SecretEnvironment;
}

export async function openState(config: GatewayConfig, options: OpenStateOptions = {}): Promise<StateStore> {
  const purpose = options.purpose ?? 'serve';
  if (config.state.engine === 'postgres') {
    const url = resolveSecret(config.state.url, options.environment ?? { env: process.env, baseDir: config.dir });
    const { openPostgresState } = await import('./postgres/index.js');
    return openPostgresState({ url, purpose });
  }
  return openSqliteState({
    journal: options.journalPath ?? config.journal.path,
    journalSync: config.journal.sync,
    openJournal: purpose === 'serve' ? 'now' : 'on first append',
    approvals: config.approval.store,
  });
}
