// The PostgreSQL engine's schema: a versioned, ordered list of migrations applied in one
// transaction under an advisory lock (replicas starting together migrate once), recorded
// in drawbridge.drawbridge_schema. A database whose schema is newer than this build knows
// is refused (state.schema_version): an older gateway must not write a layout it does not know.

import type pg from 'pg';
import { DrawbridgeError } from '../../errors.js';

/** The schema every table lives in, so the state can share a database without clashing. */
export const SCHEMA = 'drawbridge';

/** Two-key advisory lock space of Drawbridge ('Draw'); the second key names the lock. */
export const LOCK_SPACE = 0x44726177;
export const MIGRATION_LOCK = 1;
export const JOURNAL_LOCK = 2;
/** Lock space of the audit stream's per-sink session locks ('Dstr'); the second key is hashtext(sink name). */
export const STREAM_LOCK_SPACE = 0x44737472;

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'journal, approvals, votes, grants',
    sql: `
CREATE TABLE drawbridge.records (
  seq bigint PRIMARY KEY,
  time text NOT NULL,
  type text NOT NULL,
  call_id text NOT NULL,
  data text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX records_call_id ON drawbridge.records (call_id, type, seq);
CREATE FUNCTION drawbridge.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'journal records are append-only';
END
$$;
CREATE TRIGGER records_no_update BEFORE UPDATE OR DELETE ON drawbridge.records FOR EACH ROW EXECUTE FUNCTION drawbridge.refuse_change();
CREATE TRIGGER records_no_truncate BEFORE TRUNCATE ON drawbridge.records FOR EACH STATEMENT EXECUTE FUNCTION drawbridge.refuse_change();

CREATE TABLE drawbridge.approvals (
  id text PRIMARY KEY,
  hash text NOT NULL,
  requester_subject text NOT NULL,
  requester_issuer text NOT NULL,
  policy_key text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'consumed')),
  subject text NOT NULL,
  created_ms bigint NOT NULL,
  expires_ms bigint NOT NULL,
  decided_ms bigint,
  consumed_ms bigint,
  grant_ms bigint
);
CREATE INDEX approvals_open ON drawbridge.approvals (hash, requester_subject, requester_issuer, status);
CREATE INDEX approvals_status ON drawbridge.approvals (status, expires_ms);
CREATE TABLE drawbridge.votes (
  approval_id text NOT NULL REFERENCES drawbridge.approvals (id),
  seq integer NOT NULL,
  approver_subject text NOT NULL,
  vote text NOT NULL,
  PRIMARY KEY (approval_id, seq),
  UNIQUE (approval_id, approver_subject)
);
CREATE TABLE drawbridge.grants (
  id text PRIMARY KEY,
  subject text NOT NULL,
  issuer text NOT NULL,
  tool text NOT NULL,
  connection text NOT NULL,
  rule text NOT NULL,
  approval_id text NOT NULL UNIQUE,
  created_ms bigint NOT NULL,
  expires_ms bigint NOT NULL,
  revoked_ms bigint,
  revoked_by text
);
CREATE INDEX grants_lookup ON drawbridge.grants (subject, issuer, tool, connection, rule, expires_ms);
`,
  },
  {
    version: 2,
    name: 'shared keys',
    sql: `
CREATE TABLE drawbridge.shared_keys (
  name text PRIMARY KEY,
  value text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 3,
    name: 'audit stream cursors',
    sql: `
CREATE TABLE drawbridge.stream_cursors (
  name text PRIMARY KEY,
  seq bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
];

/** The newest schema version this build knows. */
export const LATEST_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

function newer(found: number): DrawbridgeError {
  return new DrawbridgeError(
    'state.schema_version',
    `The shared state has schema version ${found}, newer than this Drawbridge knows (${LATEST_VERSION}): upgrade Drawbridge before using this state.`,
    {
      hint: 'Upgrade Drawbridge on this host to the version the other gateways run; never run an older one against a newer schema.',
      details: { found, known: LATEST_VERSION },
    },
  );
}

/** The applied version, 0 when nothing is there yet. Reads only: no CREATE needed. */
export async function schemaVersion(client: pg.ClientBase): Promise<number> {
  const exists = await client.query<{ t: string | null }>(`SELECT to_regclass('${SCHEMA}.drawbridge_schema')::text AS t`);
  if (exists.rows[0]?.t == null) return 0;
  const result = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA}.drawbridge_schema`);
  return Number(result.rows[0]?.v ?? 0);
}

/** For a CLI command: the schema must be exactly this build's (it migrates nothing). */
export async function checkSchema(client: pg.ClientBase): Promise<void> {
  const found = await schemaVersion(client);
  if (found > LATEST_VERSION) throw newer(found);
  if (found < LATEST_VERSION) {
    throw new DrawbridgeError(
      'state.schema_version',
      found === 0
        ? 'The shared state has no Drawbridge schema yet: run `drawbridge state migrate --config DIR` (or start a gateway, which migrates) first.'
        : `The shared state has schema version ${found}, older than this Drawbridge (${LATEST_VERSION}): run \`drawbridge state migrate --config DIR\` first.`,
      { hint: 'Run `drawbridge state migrate --config DIR` as the state role, then retry.', details: { found, known: LATEST_VERSION } },
    );
  }
}

/**
 * Applies every pending migration in one transaction under the migration lock, so that
 * replicas starting together migrate once and the others see the result. The schema is
 * created only when missing (CREATE SCHEMA checks the database privilege even with IF NOT
 * EXISTS, and an operator may have created it for the role instead of granting CREATE).
 */
export async function migrate(client: pg.ClientBase): Promise<{ readonly from: number; readonly to: number }> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(${LOCK_SPACE}, ${MIGRATION_LOCK})`);
    const hasSchema = await client.query(`SELECT 1 FROM pg_namespace WHERE nspname = '${SCHEMA}'`);
    if (hasSchema.rowCount === 0) await client.query(`CREATE SCHEMA ${SCHEMA}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${SCHEMA}.drawbridge_schema (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const from = await schemaVersion(client);
    if (from > LATEST_VERSION) throw newer(from);
    for (const m of MIGRATIONS) {
      if (m.version <= from) continue;
      await client.query(m.sql);
      await client.query(`INSERT INTO ${SCHEMA}.drawbridge_schema (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
    await client.query('COMMIT');
    return { from, to: Math.max(from, LATEST_VERSION) };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
