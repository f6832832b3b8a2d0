// Picks the state engine for a gateway config and opens it. Today the only engine is
// SQLite (state/sqlite/), the embedded default: the journal at journal.path and the
// approvals store at approval.store, as before the contract existed.

import type { GatewayConfig } from '../config/schema.js';
import type { StateStore } from './contract.js';
import { openSqliteState } from './sqlite/index.js';

export interface OpenStateOptions {
  /** A journal file other than config.journal.path (tests, `serve --journal`). */
  readonly journalPath?: string;
  /** 'on first append' for a command that may only read approvals (no journal file is created); default 'now'. */
  readonly openJournal?: 'now' | 'on first append';
}

export function openState(config: GatewayConfig, options: OpenStateOptions = {}): StateStore {
  return openSqliteState({
    journal: options.journalPath ?? config.journal.path,
    journalSync: config.journal.sync,
    openJournal: options.openJournal ?? 'now',
    approvals: config.approval.store,
  });
}
