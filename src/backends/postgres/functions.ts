// What the gateway knows about functions before asking the server: built-ins
// that are dangerous whatever their volatility (they read files, signal
// backends, run SQL given as text and so escape lineage, or change session
// state), and the few volatile built-ins that are harmless in a read.

import { globMatch } from '../../policy/match.js';

interface FunctionVerdict {
  readonly operation: 'admin' | 'session' | 'notify';
  readonly reason: string;
}

const DANGEROUS: ReadonlyArray<readonly [pattern: string, operation: FunctionVerdict['operation'], why: string]> = [
  ['pg_terminate_backend', 'admin', 'terminates other sessions'],
  ['pg_cancel_backend', 'admin', 'cancels other sessions'],
  ['pg_signal_backend', 'admin', 'signals other sessions'],
  ['pg_log_backend_memory_contexts', 'admin', 'signals other sessions'],
  ['pg_reload_conf', 'admin', 'reloads server configuration'],
  ['pg_rotate_logfile*', 'admin', 'rotates server logs'],
  ['pg_promote', 'admin', 'promotes a standby'],
  ['pg_switch_wal', 'admin', 'forces a WAL switch'],
  ['pg_create_restore_point', 'admin', 'writes to the WAL'],
  ['pg_backup_*', 'admin', 'controls backups'],
  ['pg_start_backup', 'admin', 'controls backups'],
  ['pg_stop_backup', 'admin', 'controls backups'],
  ['pg_wal_replay_*', 'admin', 'controls replication'],
  ['pg_*replication*', 'admin', 'controls replication'],
  ['pg_logical_*', 'admin', 'controls logical decoding'],
  ['pg_create_*_slot', 'admin', 'creates replication slots'],
  ['pg_drop_replication_slot', 'admin', 'drops replication slots'],
  ['pg_read_file', 'admin', 'reads server files'],
  ['pg_read_binary_file', 'admin', 'reads server files'],
  ['pg_ls_*', 'admin', 'lists server directories'],
  ['pg_stat_file', 'admin', 'inspects server files'],
  ['pg_file_*', 'admin', 'writes server files'],
  ['pg_current_logfile', 'admin', 'reveals server log paths'],
  ['pg_stat_reset*', 'admin', 'resets statistics'],
  ['pg_import_system_collations', 'admin', 'changes the catalog'],
  ['lo_*', 'admin', 'reads or writes large objects and server files'],
  ['loread', 'admin', 'reads large objects'],
  ['lowrite', 'admin', 'writes large objects'],
  ['dblink*', 'admin', 'opens connections to other servers'],
  ['query_to_xml*', 'admin', 'runs SQL given as text, hiding what it reads'],
  ['cursor_to_xml*', 'admin', 'reads a cursor, hiding what it reads'],
  ['table_to_xml*', 'admin', 'reads a table named by a string, hiding what it reads'],
  ['schema_to_xml*', 'admin', 'reads whole schemas'],
  ['database_to_xml*', 'admin', 'reads the whole database'],
  ['ts_stat', 'admin', 'runs SQL given as text'],
  ['ts_rewrite', 'admin', 'can run SQL given as text'],
  ['pg_advisory_*', 'admin', 'takes advisory locks'],
  ['pg_try_advisory_*', 'admin', 'takes advisory locks'],
  ['pg_export_snapshot', 'admin', 'exports a snapshot'],
  ['pg_log_standby_snapshot', 'admin', 'writes to the WAL'],
  ['binary_upgrade_*', 'admin', 'changes the catalog'],
  ['pg_stat_statements_reset', 'admin', 'resets statistics'],
  // Contrib functions that run SQL given as text, or read a table named by a string.
  ['crosstab*', 'admin', 'runs SQL given as text, hiding what it reads'],
  ['connectby', 'admin', 'reads a table named by a string, hiding what it reads'],
  ['xpath_table', 'admin', 'reads a table named by a string, hiding what it reads'],
  ['pg_background_*', 'admin', 'runs SQL given as text in another session'],
  ['set_config', 'session', 'changes session settings'],
  ['setseed', 'session', 'changes session state'],
  ['pg_notify', 'notify', 'sends notifications to other sessions'],
];

/** Dangerous by name, matched on the bare name so schema qualification cannot hide it. */
export function dangerousFunction(qualifiedName: string): FunctionVerdict | null {
  const bare = qualifiedName.slice(qualifiedName.lastIndexOf('.') + 1).toLowerCase();
  for (const [pattern, operation, why] of DANGEROUS) {
    if (globMatch(pattern, bare)) return { operation, reason: `calls ${bare}(), which ${why}` };
  }
  return null;
}

/** Volatile built-ins with no side effects; anything else volatile makes a read a write. */
const HARMLESS_VOLATILE = new Set(['random', 'random_normal', 'gen_random_uuid', 'uuid_generate_v4', 'clock_timestamp', 'timeofday']);

export function harmlessVolatile(schema: string, name: string): boolean {
  return schema === 'pg_catalog' && HARMLESS_VOLATILE.has(name);
}
