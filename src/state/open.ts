// Picks the state engine for a gateway config and opens it: SQLite (state/sqlite/), the
// embedded default, with the journal at journal.path and the approvals at approval.store;
// or PostgreSQL (state/postgres/) when the config sets state.url, shared by replicas.
// The only file outside state/ that knows which engines exist.

import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import type { JournalStore, StateStore } from './contract.js';
import { openSqliteState } from './sqlite/index.js';
import { openSqliteJournalReadOnly } from './sqlite/readonly.js';

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
  /**
   * A journal file other than config.journal.path (tests; `policy explain` gives ':memory:'):
   * selects the SQLite engine even when the config sets state.url, so explaining a request never
   * reaches the shared state.
   */
  readonly journalPath?: string;
  /** Resolves state.url (a secret reference); default process.env and the config directory. */
  readonly environment?: SecretEnvironment;
}

export async function openState(config: GatewayConfig, options: OpenStateOptions = {}): Promise<StateStore> {
  const purpose = options.purpose ?? 'serve';
  if (config.state.engine === 'postgres' && options.journalPath === undefined) {
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

/** A journal opened only to be read (verify, export, checkpoint, state copy), and what to call it in messages. */
export interface JournalReader {
  readonly journal: JournalStore;
  /**
   * Where it lives, for the person running the command: the SQLite file's path, or
   * "PostgreSQL state ($VAR)" naming the reference, never the URL (it holds a password).
   */
  readonly where: string;
  close(): Promise<void>;
}

/** Which journal to read: a config's (its state engine decides), or one SQLite file (`--journal FILE`, an auditor's copy). */
export type JournalSource =
  | { readonly kind: 'config'; readonly config: GatewayConfig; readonly environment?: SecretEnvironment }
  | { readonly kind: 'file'; readonly path: string };

/**
 * Opens a journal for reading only: SQLite opens the existing file read-only and never creates
 * one (journal.unavailable "Audit journal not found: PATH" when it is missing); PostgreSQL opens
 * the state as for a command (schema checked, nothing migrated).
 */
export async function openJournalReader(source: JournalSource): Promise<JournalReader> {
  if (source.kind === 'config' && source.config.state.engine === 'postgres') {
    const state = await openState(source.config, { purpose: 'command', ...(source.environment ? { environment: source.environment } : {}) });
    return { journal: state.journal, where: stateLabel(source.config), close: () => state.close() };
  }
  const path = source.kind === 'file' ? source.path : source.config.journal.path;
  const journal = openSqliteJournalReadOnly(path);
  return { journal, where: path, close: () => journal.close() };
}

/** What a config's state is called in messages: the SQLite journal's path, or the PostgreSQL reference (never the URL). */
export function stateLabel(config: GatewayConfig): string {
  return config.state.engine === 'postgres' ? `PostgreSQL state (${config.state.url.describe})` : config.journal.path;
}
