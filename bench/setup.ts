// The benchmark's database and Drawbridge configuration: a throwaway cluster
// seeded with the demo shop database, plus `bench_rows` (10,000 rows) readable
// by the gateway role, and a config dir whose connection lets a 10,000-row
// answer through untruncated.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { startCluster, type Cluster } from '../dev/cluster.js';
import { GATEWAY_ROLE, NAMES, seedDemo } from '../dev/seed.js';
import { tempDir } from './support.js';

export const BENCH_ROWS = 10_000;

export interface BenchDatabase {
  readonly cluster: Cluster;
  /** As drawbridge_gateway: what all three targets connect with. */
  readonly gatewayUrl: string;
  readonly superuserUrl: string;
  readonly serverVersion: string;
}

const CITIES = ['San Francisco', 'New York', 'Chicago', 'Berlin', 'London', 'Paris', 'Amsterdam', 'Madrid', 'Lisbon', 'Toronto', 'Austin', 'Munich'];

const sqlArray = (items: readonly string[]) => `ARRAY[${items.map((s) => `'${s.replace(/'/g, "''")}'`).join(', ')}]`;

export const BENCH_TABLE_SQL = `
CREATE TABLE bench_rows (
  id int PRIMARY KEY,
  name text NOT NULL,
  email text NOT NULL,
  city text NOT NULL,
  amount numeric(12,2) NOT NULL,
  created_at timestamptz NOT NULL
);
INSERT INTO bench_rows
SELECT g,
       (${sqlArray(NAMES)})[1 + g % ${NAMES.length}],
       'customer' || g || '@example.com',
       (${sqlArray(CITIES)})[1 + (g * 7) % ${CITIES.length}],
       round(((g * 7919) % 100000) / 100.0 + 1, 2),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '17 minutes 3 seconds'
  FROM generate_series(1, ${BENCH_ROWS}) AS g;
GRANT SELECT ON bench_rows TO ${GATEWAY_ROLE};
ANALYZE bench_rows;
`;

export async function startBenchDatabase(log: (line: string) => void): Promise<BenchDatabase> {
  const cluster = await startCluster();
  try {
    log(`PostgreSQL cluster on 127.0.0.1:${cluster.port}`);
    const seeded = await seedDemo(cluster, { database: 'shop' });
    const admin = new pg.Client({ connectionString: seeded.superuserUrl });
    await admin.connect();
    let serverVersion = 'unknown';
    try {
      await admin.query(BENCH_TABLE_SQL);
      serverVersion = String((await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? 'unknown');
    } finally {
      await admin.end();
    }
    log(`seeded "shop" + bench_rows (${BENCH_ROWS} rows), PostgreSQL ${serverVersion}`);
    return { cluster, gatewayUrl: seeded.gatewayUrl, superuserUrl: seeded.superuserUrl, serverVersion };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

let stateDatabases = 0;
const STATE_ROLE = 'drawbridge_state';
const STATE_PASSWORD = 'bench-state-password-not-secret';

/**
 * A fresh database for PostgreSQL state in the bench cluster, owned by nobody special: the state
 * role (no superuser, created once) gets CONNECT and CREATE on it, as the README tells operators,
 * and the gateway role cannot connect to it (so run_sql cannot reach it). Returns the state role's URL.
 */
export async function stateDatabase(db: BenchDatabase): Promise<string> {
  stateDatabases += 1;
  const name = `drawbridge_state_${stateDatabases}`;
  const admin = new pg.Client({ connectionString: db.superuserUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [STATE_ROLE]);
    if (exists.rowCount === 0) {
      await admin.query(`CREATE ROLE ${STATE_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${STATE_PASSWORD}'`);
    }
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.query(`REVOKE ALL ON DATABASE ${name} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT, CREATE ON DATABASE ${name} TO ${STATE_ROLE}`);
  } finally {
    await admin.end();
  }
  const url = new URL(db.superuserUrl);
  url.username = STATE_ROLE;
  url.password = STATE_PASSWORD;
  url.pathname = `/${name}`;
  return url.toString();
}

export const BENCH_POLICY = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin] }
    effect: deny
    message: Schema changes go through migrations.
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
masking:
  - name: pii
    match: { tool: run_sql }
    columns:
      - bench_rows.email
      - customers.email
      - customers.ssn
      - { column: "*.card_number", style: last4 }
    detectors: all
`;

/**
 * A Drawbridge config dir for the database URL in env DB_URL: connection `db`
 * with max_rows 10000 and max_bytes 4MiB (nothing truncated), a read policy, masking with
 * all detectors and a column rule on bench_rows.email, journal `journal.db` (sync as given).
 */
export interface BenchConfigOptions {
  readonly sync?: 'full' | 'normal';
  /** Identities from this OpenID provider (for `serve --http`) instead of the local bench identity. */
  readonly oidc?: { readonly issuer: string; readonly audience: string };
  /** Shared state: the gateway's `state.url` is read from env DRAWBRIDGE_STATE_URL (no local journal file). */
  readonly sharedState?: boolean;
}

export function writeBenchConfig(options: BenchConfigOptions = {}): string {
  const dir = tempDir('config');
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'tools', 'db.yaml'),
    `kind: connection
name: db
type: postgres
description: Benchmark database
url: \${DB_URL}
limits: { timeout: 30s, lock_timeout: 1s, max_rows: ${BENCH_ROWS}, max_bytes: 4MiB, max_affected_rows: 10 }
---
kind: tool
name: run_sql
type: run_sql
connections: [db]
`,
  );
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway
${
  options.oidc
    ? `identity: { mode: oidc, issuer: "${options.oidc.issuer}", audience: "${options.oidc.audience}", required_scopes: [mcp] }`
    : 'identity: { mode: local, subject: bench@example.com, groups: [analysts] }'
}
journal: { path: journal.db, sync: ${options.sync ?? 'full'} }
${options.sharedState ? 'state: { url: { env: DRAWBRIDGE_STATE_URL } }\n' : ''}masking: { hash_key: { env: HASH_KEY } }
`,
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), BENCH_POLICY);
  return dir;
}

export const BENCH_HASH_KEY = 'bench-hash-key-not-secret';
