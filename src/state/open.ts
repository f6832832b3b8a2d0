// Picks the state engine for a gateway config and opens it: SQLite (state/sqlite/), the
// embedded default, with the journal at journal.path and the approvals at approval.store;
// or PostgreSQL (state/postgres/) when the config sets state.url, shared by replicas.
// Also opens a state named directly by where it lives (`drawbridge state copy`) and migrates
// a config's state (`drawbridge state migrate`). The only file that knows which engines exist.

import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretEnvironment } from '../config/secrets.js';
import { existsSync } from 'node:fs';
import type { ApprovalsDump, JournalStore, StateStore } from './contract.js';
import { openSqliteState, sqliteApprovals } from './sqlite/index.js';
import { openSqliteApprovals } from './sqlite/approvals.js';
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
  { readonly kind: 'config'; readonly config: GatewayConfig; readonly environment?: SecretEnvironment } | { readonly kind: 'file'; readonly path: string };

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

/** Where a state lives, named directly rather than by a config: `drawbridge state copy`'s source and target. */
export type StateLocation =
  { readonly engine: 'sqlite'; readonly journal: string; readonly approvals: string } | { readonly engine: 'postgres'; readonly url: string };

/** A state opened to be copied from: its journal (read-only) and a dump of its approvals and grants. */
export interface StateSource {
  readonly journal: JournalStore;
  dumpApprovals(): Promise<ApprovalsDump>;
  close(): Promise<void>;
}

/**
 * Opens a state to copy from, changing nothing: SQLite opens the journal file read-only (it must
 * exist) and reads a missing approvals file as empty; PostgreSQL opens as a command does.
 */
export async function openStateSource(location: StateLocation): Promise<StateSource> {
  if (location.engine === 'postgres') {
    const { openPostgresState } = await import('./postgres/index.js');
    const state = await openPostgresState({ url: location.url, purpose: 'command' });
    return { journal: state.journal, dumpApprovals: () => state.approvals.dump(), close: () => state.close() };
  }
  const journal = openSqliteJournalReadOnly(location.journal);
  const approvals = existsSync(location.approvals) ? sqliteApprovals(() => openSqliteApprovals(location.approvals), location.approvals) : null;
  return {
    journal,
    dumpApprovals: async () => (approvals ? approvals.dump() : { approvals: [], grants: [] }),
    close: async () => {
      await Promise.all([journal.close(), approvals?.close()]);
    },
  };
}

/** Opens a state to copy into, as a gateway opens it: SQLite creates its files, PostgreSQL applies pending migrations. */
export async function openStateTarget(location: StateLocation): Promise<StateStore> {
  if (location.engine === 'postgres') {
    const { openPostgresState } = await import('./postgres/index.js');
    return openPostgresState({ url: location.url, purpose: 'serve' });
  }
  return openSqliteState({ journal: location.journal, journalSync: 'full', openJournal: 'now', approvals: location.approvals });
}

/** What `drawbridge state migrate` did: SQLite has nothing to migrate; PostgreSQL's schema version before and after. */
export type MigrationResult = { readonly engine: 'sqlite' } | { readonly engine: 'postgres'; readonly from: number; readonly to: number };

/** Applies the pending migrations of a config's state (PostgreSQL); SQLite files are created and checked when opened. */
export async function migrateState(config: GatewayConfig, environment: SecretEnvironment): Promise<MigrationResult> {
  if (config.state.engine === 'sqlite') return { engine: 'sqlite' };
  const url = resolveSecret(config.state.url, environment);
  const { migratePostgresState } = await import('./postgres/index.js');
  return { engine: 'postgres', ...(await migratePostgresState(url)) };
}
