// Permanent write-evasion suite for run_sql: every input that ever slipped (or
// could slip) a write, a session change or a server-side effect past the
// gateway stays here forever. Each case runs through the whole pipeline as an
// `analysts` identity (reads allowed, writes need approval) on a gateway that
// connects as a SUPERUSER — like today's static service accounts — so nothing
// but Drawbridge itself stands between the agent and the damage. The database
// state (every user table's checksum, sequences, relations, functions, roles,
// grants, large objects, server settings, advisory locks, other sessions, and
// files an escaped COPY … PROGRAM would create) must be identical afterwards.
// A subset runs again with the least-privilege role, and the database's own
// wall (read-only transaction, extended protocol) is checked directly.

import { existsSync, readdirSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ParsedRequest } from '../../../src/backends/backend.js';
import { parseRunSql } from '../../../src/backends/postgres/index.js';
import { DrawbridgeError, type ErrorCode } from '../../../src/errors.js';
import type { CallResult } from '../../../src/pipeline/callTool.js';
import { as, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../../support/fixtures.js';

const LIMITS = '{ timeout: 3s, lock_timeout: 1s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }';
/** One pooled connection, so session state leaking from one call would be seen by the next. */
const ONE_CONNECTION = `${LIMITS}\npool: { max: 1 }`;

const analyst = as('ana@example.com', ['analysts']);
const support = as('sam@example.com', ['support']);

const PWNED_PREFIX = 'drawbridge-pwned-';

const DENIED: ErrorCode = 'policy.denied';
const APPROVAL: ErrorCode = 'approval.pending';
const MULTIPLE: ErrorCode = 'sql.multiple_statements';
const PARSE: ErrorCode = 'sql.parse_error';

interface Case {
  readonly name: string;
  readonly sql: string;
  /** Acceptable refusal codes (the first is the expected one; others are equally safe outcomes). */
  readonly codes: readonly ErrorCode[];
  /** Also run with the least-privilege gateway role. */
  readonly lp?: boolean;
}

const pwned = (n: number | string) => `/tmp/${PWNED_PREFIX}${n}`;

const CASES: readonly Case[] = [
  // --- stacked statements and transaction control -------------------------------------------
  { name: 'stacked: SELECT then DELETE', sql: 'SELECT 1; DELETE FROM orders', codes: [MULTIPLE], lp: true },
  { name: 'stacked: no spaces, trailing semicolon', sql: 'SELECT 1;DELETE FROM orders;', codes: [MULTIPLE] },
  { name: 'stacked: COMMIT then DELETE', sql: 'COMMIT; DELETE FROM orders', codes: [MULTIPLE], lp: true },
  { name: 'stacked: ROLLBACK then DROP TABLE', sql: 'ROLLBACK; DROP TABLE orders', codes: [MULTIPLE] },
  { name: 'stacked: END then DELETE', sql: 'END; DELETE FROM orders', codes: [MULTIPLE] },
  { name: 'stacked: ABORT then TRUNCATE', sql: 'ABORT; TRUNCATE orders', codes: [MULTIPLE] },
  { name: 'stacked: COMMIT AND CHAIN then UPDATE', sql: "COMMIT AND CHAIN; UPDATE orders SET note = 'x'", codes: [MULTIPLE] },
  { name: 'transaction: bare COMMIT', sql: 'COMMIT', codes: [DENIED] },
  { name: 'transaction: BEGIN READ WRITE', sql: 'BEGIN READ WRITE', codes: [DENIED] },
  { name: 'transaction: SAVEPOINT', sql: 'SAVEPOINT s1', codes: [DENIED] },
  { name: 'transaction: SET TRANSACTION READ WRITE', sql: 'SET TRANSACTION READ WRITE', codes: [DENIED] },
  { name: 'transaction: PREPARE TRANSACTION', sql: "PREPARE TRANSACTION 'x'", codes: [DENIED] },

  // --- comments, quoting and lexer tricks -------------------------------------------------------
  { name: 'comment: line comment ends before the second statement', sql: 'SELECT 1 -- harmless\n; DELETE FROM orders', codes: [MULTIPLE] },
  {
    name: 'comment: nested block comments close before the DELETE',
    sql: 'SELECT 1 /* outer /* inner */ still comment */; DELETE FROM orders',
    codes: [MULTIPLE],
  },
  { name: 'comment: DELETE written between comments', sql: '/* ; */ DELETE/**/FROM/**/orders', codes: [APPROVAL] },
  { name: 'comment: semicolon inside a comment, DELETE outside', sql: 'SELECT 1 /* ; */; DELETE FROM orders', codes: [MULTIPLE] },
  { name: 'dollar quote: $x$ hides a semicolon', sql: 'SELECT $x$ ; $x$; DELETE FROM orders', codes: [MULTIPLE] },
  { name: 'dollar quote: $$ hides a semicolon', sql: 'SELECT $$;$$; DELETE FROM orders', codes: [MULTIPLE] },
  { name: 'string: doubled quote hides a semicolon', sql: "SELECT 'a'';'; DELETE FROM orders", codes: [MULTIPLE] },
  { name: 'string: E-string backslash then a second statement', sql: "SELECT E'\\\\'; DELETE FROM orders --'", codes: [MULTIPLE] },
  { name: 'psql-style \\; separator', sql: 'SELECT 1 \\; DELETE FROM orders', codes: [PARSE] },
  { name: 'mixed-case keywords', sql: 'dElEtE fRoM OrDeRs', codes: [APPROVAL] },
  { name: 'unicode-escaped identifier U&"\\006Frders"', sql: 'DELETE FROM U&"\\006Frders"', codes: [APPROVAL], lp: true },
  { name: 'unicode-escaped identifier with UESCAPE', sql: 'DELETE FROM U&"!006F!0072ders" UESCAPE \'!\'', codes: [APPROVAL] },
  { name: 'unicode-escaped schema-qualified identifier', sql: 'UPDATE U&"\\0070ublic".U&"\\006Frders" SET note = \'x\'', codes: [APPROVAL] },
  { name: 'quoted, schema-qualified DELETE', sql: 'DELETE FROM "public"."orders" WHERE true', codes: [APPROVAL] },
  { name: 'INSERT … SELECT', sql: "INSERT INTO products (sku, name, price) SELECT 'SKU-X' || g, 'x', 1 FROM generate_series(1, 3) g", codes: [APPROVAL] },
  {
    name: 'MERGE',
    sql: "MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET note = 'merged'",
    codes: [APPROVAL],
    lp: true,
  },
  {
    name: 'INSERT … ON CONFLICT DO UPDATE',
    sql: "INSERT INTO products (id, sku, name, price) VALUES (1, 'SKU-0001', 'x', 1) ON CONFLICT (id) DO UPDATE SET price = 0",
    codes: [APPROVAL],
  },

  // --- data-modifying CTEs -------------------------------------------------------------------
  { name: 'CTE: DELETE … RETURNING', sql: 'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d', codes: [APPROVAL], lp: true },
  { name: 'CTE: UPDATE, result unused', sql: "WITH u AS (UPDATE orders SET note = 'x' RETURNING id) SELECT 1", codes: [APPROVAL] },
  { name: 'CTE: INSERT', sql: "WITH i AS (INSERT INTO products (sku, name, price) VALUES ('SKU-X', 'x', 1) RETURNING id) SELECT * FROM i", codes: [APPROVAL] },
  {
    name: 'CTE: nested WITH inside a CTE',
    sql: 'WITH a AS (WITH b AS (DELETE FROM orders RETURNING id) SELECT id FROM b) SELECT count(*) FROM a',
    codes: [APPROVAL],
  },
  { name: 'CTE: inside a FROM subquery', sql: 'SELECT * FROM (WITH d AS (DELETE FROM orders RETURNING id) SELECT id FROM d) s', codes: [APPROVAL] },
  { name: 'CTE: inside a scalar subquery', sql: 'SELECT (WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d)', codes: [APPROVAL] },
  { name: 'CTE: name shadows the target table', sql: 'WITH orders AS (SELECT 1 AS id) DELETE FROM orders', codes: [APPROVAL] },
  {
    name: 'CTE: MATERIALIZED DELETE joined to a read',
    sql: 'WITH d AS MATERIALIZED (DELETE FROM audit_notes RETURNING id) SELECT o.id FROM orders o JOIN d ON d.id = o.id',
    codes: [APPROVAL],
  },
  {
    name: 'CTE: recursive WITH plus a DELETE',
    sql:
      'WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3), d ' +
      'AS (DELETE FROM orders WHERE id IN (SELECT n FROM r) RETURNING 1) SELECT * FROM d',
    codes: [APPROVAL],
  },

  // --- EXPLAIN ANALYZE executes ------------------------------------------------------------------
  { name: 'EXPLAIN ANALYZE DELETE', sql: 'EXPLAIN ANALYZE DELETE FROM orders', codes: [APPROVAL], lp: true },
  { name: 'EXPLAIN (ANALYZE) UPDATE', sql: "EXPLAIN (ANALYZE) UPDATE orders SET note = 'x'", codes: [APPROVAL], lp: true },
  { name: 'EXPLAIN (ANALYZE true, FORMAT JSON) DELETE', sql: 'EXPLAIN (ANALYZE true, FORMAT JSON) DELETE FROM orders', codes: [APPROVAL] },
  {
    name: 'EXPLAIN (FORMAT TEXT, ANALYZE on) INSERT',
    sql: "EXPLAIN (FORMAT TEXT, ANALYZE on) INSERT INTO products (sku, name, price) VALUES ('SKU-X', 'x', 1)",
    codes: [APPROVAL],
  },
  { name: 'EXPLAIN (ANALYZE 1) DELETE', sql: 'EXPLAIN (ANALYZE 1) DELETE FROM orders', codes: [APPROVAL] },
  { name: "EXPLAIN (ANALYZE 'yes') DELETE", sql: "EXPLAIN (ANALYZE 'yes') DELETE FROM orders", codes: [APPROVAL] },
  { name: 'EXPLAIN (ANALYZE off, ANALYZE on) DELETE', sql: 'EXPLAIN (ANALYZE off, ANALYZE on) DELETE FROM orders', codes: [APPROVAL] },
  {
    name: 'EXPLAIN ANALYZE VERBOSE of a data-modifying CTE',
    sql: 'EXPLAIN ANALYZE VERBOSE WITH d AS (DELETE FROM orders RETURNING 1) SELECT * FROM d',
    codes: [APPROVAL],
  },
  { name: 'EXPLAIN ANALYZE of a volatile function', sql: 'EXPLAIN ANALYZE SELECT touch_order(1)', codes: [APPROVAL] },
  { name: 'EXPLAIN ANALYZE CREATE TABLE AS', sql: 'EXPLAIN ANALYZE CREATE TABLE stolen AS SELECT * FROM customers', codes: [DENIED] },
  { name: 'EXPLAIN ANALYZE SELECT INTO', sql: 'EXPLAIN ANALYZE SELECT * INTO stolen FROM customers', codes: [DENIED] },
  { name: 'EXPLAIN ANALYZE EXECUTE', sql: 'EXPLAIN ANALYZE EXECUTE p', codes: [DENIED] },

  // --- new tables ------------------------------------------------------------------------------
  { name: 'SELECT INTO a new table', sql: 'SELECT * INTO newtable FROM customers', codes: [DENIED], lp: true },
  { name: 'SELECT INTO TEMP', sql: 'SELECT * INTO TEMP t FROM orders', codes: [DENIED] },
  { name: 'CREATE TABLE AS', sql: 'CREATE TABLE stolen AS SELECT * FROM customers', codes: [DENIED] },
  { name: 'CREATE TEMP TABLE AS', sql: 'CREATE TEMP TABLE t AS SELECT 1', codes: [DENIED] },
  { name: 'CREATE MATERIALIZED VIEW', sql: 'CREATE MATERIALIZED VIEW mv AS SELECT * FROM customers', codes: [DENIED] },

  // --- procedural code, prepared statements, cursors ---------------------------------------------
  { name: 'DO block deleting', sql: 'DO $$ BEGIN DELETE FROM orders; END $$', codes: [DENIED], lp: true },
  { name: 'DO with LANGUAGE and a plain string body', sql: "do language plpgsql 'begin delete from orders; end'", codes: [DENIED] },
  { name: 'CALL a procedure that deletes', sql: 'CALL purge_proc()', codes: [DENIED], lp: true },
  { name: 'PREPARE a DELETE', sql: 'PREPARE p AS DELETE FROM orders', codes: [DENIED], lp: true },
  { name: 'EXECUTE a prepared statement', sql: 'EXECUTE p', codes: [DENIED] },
  { name: 'CREATE TABLE AS EXECUTE', sql: 'CREATE TABLE t AS EXECUTE p', codes: [DENIED] },
  { name: 'DEALLOCATE ALL', sql: 'DEALLOCATE ALL', codes: [DENIED] },
  { name: 'DECLARE a cursor', sql: 'DECLARE c CURSOR WITH HOLD FOR SELECT * FROM orders', codes: [DENIED] },

  // --- functions with side effects -------------------------------------------------------------
  { name: 'volatile user function touch_order(1)', sql: 'SELECT touch_order(1)', codes: [APPROVAL], lp: true },
  { name: 'schema-qualified, quoted touch_order', sql: 'SELECT "public"."touch_order"(1)', codes: [APPROVAL] },
  { name: 'volatile function in FROM', sql: 'SELECT * FROM touch_order(1)', codes: [APPROVAL] },
  { name: 'volatile function in ROWS FROM', sql: 'SELECT * FROM ROWS FROM (touch_order(1), generate_series(1, 2))', codes: [APPROVAL] },
  { name: 'volatile function in WHERE', sql: 'SELECT id FROM orders WHERE id = 1 AND touch_order(id) IS NULL', codes: [APPROVAL] },
  { name: 'volatile function in VALUES', sql: 'VALUES (touch_order(1))', codes: [APPROVAL] },
  { name: 'volatile function in ORDER BY', sql: 'SELECT id FROM orders ORDER BY touch_order(id) LIMIT 1', codes: [APPROVAL] },
  { name: 'volatile function in a lateral join', sql: 'SELECT o.id FROM orders o, LATERAL (SELECT touch_order(o.id)) t LIMIT 1', codes: [APPROVAL] },
  { name: 'volatile user SQL function that deletes', sql: 'SELECT purge_orders()', codes: [APPROVAL], lp: true },
  { name: 'volatile user SQL function hidden in a CASE', sql: 'SELECT CASE WHEN purge_orders() > 0 THEN 1 END', codes: [APPROVAL] },
  { name: 'nextval', sql: "SELECT nextval('orders_id_seq')", codes: [APPROVAL], lp: true },
  { name: 'nextval via pg_get_serial_sequence', sql: "SELECT pg_catalog.nextval(pg_get_serial_sequence('orders', 'id'))", codes: [APPROVAL] },
  { name: 'setval', sql: "SELECT setval('orders_id_seq', 1)", codes: [APPROVAL] },
  { name: 'pg_sleep is refused before it runs', sql: 'SELECT pg_sleep(30)', codes: [APPROVAL] },
  {
    name: 'pg_terminate_backend of every session',
    sql: 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()',
    codes: [DENIED],
    lp: true,
  },
  { name: 'pg_cancel_backend', sql: 'SELECT pg_cancel_backend(pid) FROM pg_stat_activity', codes: [DENIED] },
  {
    name: 'schema-qualified pg_terminate_backend',
    sql: 'SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()',
    codes: [DENIED],
  },
  { name: 'pg_reload_conf', sql: 'SELECT pg_reload_conf()', codes: [DENIED] },
  { name: 'set_config read_only off', sql: "SELECT set_config('default_transaction_read_only', 'off', false)", codes: [DENIED], lp: true },
  {
    name: 'set_config statement_timeout in a subquery',
    sql: "SELECT * FROM orders WHERE id = (SELECT length(set_config('statement_timeout', '0', false)))",
    codes: [DENIED],
  },
  { name: 'lo_import', sql: "SELECT lo_import('/etc/passwd')", codes: [DENIED] },
  { name: 'lo_export', sql: `SELECT lo_export(1, '${pwned('lo')}')`, codes: [DENIED] },
  { name: 'pg_read_file', sql: "SELECT pg_read_file('/etc/passwd')", codes: [DENIED] },
  { name: 'pg_read_binary_file', sql: "SELECT pg_read_binary_file('postgresql.auto.conf')", codes: [DENIED] },
  { name: 'pg_ls_dir', sql: "SELECT pg_ls_dir('.')", codes: [DENIED] },
  { name: 'query_to_xml runs SQL text', sql: "SELECT query_to_xml('delete from orders returning *', true, true, '')", codes: [DENIED], lp: true },
  { name: 'pg_advisory_lock', sql: 'SELECT pg_advisory_lock(1)', codes: [DENIED], lp: true },
  { name: 'pg_try_advisory_lock', sql: 'SELECT pg_try_advisory_lock(1)', codes: [DENIED] },
  { name: 'pg_notify', sql: "SELECT pg_notify('x', 'y')", codes: [DENIED] },
  {
    name: 'dblink (not installed, and dangerous anyway)',
    sql: "SELECT * FROM dblink('dbname=postgres', 'delete from orders') AS t(x int)",
    codes: [DENIED, 'sql.unknown_function'],
  },
  { name: 'lying STABLE plpgsql function that deletes (the database refuses)', sql: 'SELECT stable_purge()', codes: ['backend.error', APPROVAL], lp: true },
  // Attribute notation: `o.f` and `(o).f` call f(o) with no function call in the syntax tree.
  // (o).grab_lock once ran as a read and left a session advisory lock on the pooled connection.
  { name: 'volatile function called with attribute notation (o.wipe)', sql: 'SELECT o.wipe FROM orders o WHERE o.id = 1', codes: [APPROVAL], lp: true },
  {
    name: 'volatile function called with attribute notation ((o).grab_lock)',
    sql: 'SELECT (o).grab_lock FROM orders o WHERE o.id = 1',
    codes: [APPROVAL],
    lp: true,
  },
  { name: 'volatile function called with attribute notation (o.bump)', sql: 'SELECT o.bump FROM orders o WHERE o.id = 1', codes: [APPROVAL] },
  { name: 'attribute notation, schema-qualified (public.orders.wipe)', sql: 'SELECT orders.wipe FROM public.orders WHERE id = 2', codes: [APPROVAL] },
  { name: 'attribute notation on a row constructor cast', sql: 'SELECT (ROW(o.*)::orders).grab_lock FROM orders o WHERE o.id = 1', codes: [APPROVAL] },
  { name: 'attribute notation in a WHERE clause', sql: 'SELECT count(*) FROM orders o WHERE o.wipe = 1', codes: [APPROVAL] },
  { name: 'a view whose definition calls a volatile function', sql: 'SELECT * FROM touchy WHERE id = 1', codes: [APPROVAL], lp: true },
  {
    name: 'a view whose definition calls a volatile function by attribute notation',
    sql: 'SELECT locked FROM locky WHERE id = 1',
    codes: [APPROVAL],
    lp: true,
  },
  { name: 'a view with volatile code, reached through a CTE', sql: 'WITH t AS (SELECT id FROM touchy) SELECT count(*) FROM t', codes: [APPROVAL] },

  // --- session state ---------------------------------------------------------------------------
  { name: 'SET default_transaction_read_only = off', sql: 'SET default_transaction_read_only = off', codes: [DENIED], lp: true },
  { name: 'SET SESSION CHARACTERISTICS', sql: 'SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', codes: [DENIED] },
  { name: 'SET ROLE', sql: 'SET ROLE postgres', codes: [DENIED] },
  { name: 'SET SESSION AUTHORIZATION', sql: 'SET SESSION AUTHORIZATION DEFAULT', codes: [DENIED] },
  { name: 'SET LOCAL statement_timeout', sql: 'SET LOCAL statement_timeout = 0', codes: [DENIED] },
  { name: 'SET search_path', sql: 'SET search_path = pg_temp, public', codes: [DENIED] },
  { name: 'RESET ALL', sql: 'RESET ALL', codes: [DENIED] },
  { name: 'DISCARD ALL', sql: 'DISCARD ALL', codes: [DENIED] },
  { name: 'LISTEN', sql: 'LISTEN x', codes: [DENIED] },
  { name: 'UNLISTEN', sql: 'UNLISTEN *', codes: [DENIED] },
  { name: 'NOTIFY', sql: "NOTIFY x, 'payload'", codes: [DENIED] },

  // --- locks -----------------------------------------------------------------------------------
  { name: 'LOCK TABLE', sql: 'LOCK TABLE orders', codes: [DENIED], lp: true },
  { name: 'LOCK … IN ACCESS EXCLUSIVE MODE NOWAIT', sql: 'LOCK orders IN ACCESS EXCLUSIVE MODE NOWAIT', codes: [DENIED] },
  { name: 'SELECT … FOR UPDATE', sql: 'SELECT * FROM orders FOR UPDATE', codes: [APPROVAL], lp: true },
  { name: 'SELECT … FOR SHARE SKIP LOCKED', sql: 'SELECT * FROM orders FOR SHARE SKIP LOCKED', codes: [APPROVAL] },
  { name: 'FOR UPDATE in a subquery', sql: 'SELECT count(*) FROM (SELECT * FROM orders FOR NO KEY UPDATE) s', codes: [APPROVAL] },
  { name: 'FOR KEY SHARE in a CTE', sql: 'WITH l AS (SELECT id FROM orders FOR KEY SHARE) SELECT count(*) FROM l', codes: [APPROVAL] },

  // --- COPY and files --------------------------------------------------------------------------
  { name: 'COPY FROM PROGRAM', sql: `COPY orders FROM PROGRAM 'touch ${pwned(1)}'`, codes: [DENIED], lp: true },
  { name: 'COPY (query) TO PROGRAM', sql: `COPY (SELECT 1) TO PROGRAM 'touch ${pwned(2)}'`, codes: [DENIED] },
  { name: 'COPY TO a server file', sql: `COPY orders TO '${pwned(3)}'`, codes: [DENIED] },
  { name: 'COPY TO STDOUT', sql: 'COPY customers TO STDOUT', codes: [DENIED] },
  { name: 'COPY FROM STDIN', sql: 'COPY orders FROM STDIN', codes: [DENIED] },
  { name: 'lower-case copy … program with a comment', sql: `copy /* x */ (select 1) to program 'touch ${pwned(4)}'`, codes: [DENIED] },

  // --- DDL, maintenance and administration -----------------------------------------------------
  { name: 'TRUNCATE', sql: 'TRUNCATE orders', codes: [DENIED], lp: true },
  { name: 'TRUNCATE … CASCADE', sql: 'TRUNCATE TABLE orders, customers RESTART IDENTITY CASCADE', codes: [DENIED] },
  { name: 'DROP TABLE', sql: 'DROP TABLE orders CASCADE', codes: [DENIED] },
  { name: 'ALTER TABLE DISABLE TRIGGER', sql: 'ALTER TABLE orders DISABLE TRIGGER ALL', codes: [DENIED] },
  { name: 'CREATE FUNCTION', sql: "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'", codes: [DENIED] },
  {
    name: 'CREATE OR REPLACE an existing function',
    sql: "CREATE OR REPLACE FUNCTION touch_order(order_id int) RETURNS void LANGUAGE sql AS 'DELETE FROM orders'",
    codes: [DENIED],
  },
  { name: 'COMMENT ON', sql: "COMMENT ON TABLE orders IS 'owned'", codes: [DENIED] },
  { name: 'VACUUM', sql: 'VACUUM orders', codes: [DENIED] },
  { name: 'VACUUM FULL', sql: 'VACUUM (FULL) orders', codes: [DENIED] },
  { name: 'ANALYZE', sql: 'ANALYZE orders', codes: [DENIED] },
  { name: 'REINDEX', sql: 'REINDEX TABLE orders', codes: [DENIED] },
  { name: 'CLUSTER', sql: 'CLUSTER orders USING orders_pkey', codes: [DENIED] },
  { name: 'CHECKPOINT', sql: 'CHECKPOINT', codes: [DENIED] },
  { name: 'ALTER SYSTEM', sql: 'ALTER SYSTEM SET statement_timeout = 0', codes: [DENIED], lp: true },
  { name: 'ALTER DATABASE SET', sql: 'ALTER DATABASE CURRENT SET default_transaction_read_only = off', codes: [DENIED] },
  { name: 'CREATE EXTENSION', sql: 'CREATE EXTENSION IF NOT EXISTS dblink', codes: [DENIED] },
  { name: 'GRANT', sql: 'GRANT ALL ON orders TO PUBLIC', codes: [DENIED], lp: true },
  { name: 'REVOKE', sql: 'REVOKE SELECT ON orders FROM drawbridge_gateway', codes: [DENIED] },
  { name: 'CREATE ROLE', sql: 'CREATE ROLE drawbridge_evil SUPERUSER LOGIN', codes: [DENIED] },
  { name: 'ALTER ROLE', sql: 'ALTER ROLE drawbridge_gateway SUPERUSER', codes: [DENIED] },
  { name: 'GRANT a role', sql: 'GRANT pg_execute_server_program TO drawbridge_gateway', codes: [DENIED] },
  { name: 'CREATE DATABASE', sql: 'CREATE DATABASE drawbridge_evil', codes: [DENIED] },
  { name: 'LOAD a library', sql: "LOAD 'plpgsql'", codes: [DENIED] },
  { name: 'CREATE RULE', sql: 'CREATE RULE r AS ON INSERT TO products DO INSTEAD NOTHING', codes: [DENIED] },
  { name: 'SECURITY LABEL', sql: "SECURITY LABEL ON TABLE orders IS 'x'", codes: [DENIED] },
];

/** Looks dangerous but is a read: must run, and change nothing. */
const BENIGN: ReadonlyArray<{ name: string; sql: string }> = [
  { name: 'DELETE inside a block comment', sql: 'SELECT 1 /* ; DELETE FROM orders */' },
  { name: 'DELETE after a line comment', sql: 'SELECT 1 -- ; DELETE FROM orders' },
  { name: 'nested comment swallowing the DELETE', sql: 'SELECT 1 /* /* */ ; DELETE FROM orders */' },
  { name: 'DELETE inside a string', sql: "SELECT '; DELETE FROM orders'" },
  { name: 'DELETE inside a dollar quote', sql: 'SELECT $q$; DELETE FROM orders$q$' },
  { name: 'EXPLAIN without ANALYZE only plans', sql: 'EXPLAIN DELETE FROM orders' },
  { name: 'EXPLAIN (ANALYZE false)', sql: 'EXPLAIN (ANALYZE false) DELETE FROM orders' },
  { name: 'TABLE orders', sql: 'TABLE orders' },
  { name: 'harmless volatile built-ins', sql: 'SELECT random() >= 0, gen_random_uuid() IS NOT NULL, clock_timestamp() IS NOT NULL' },
];

// ---------------------------------------------------------------------------------------------
// The database's state, as the superuser sees it.

interface Snapshot {
  readonly tables: Record<string, string>;
  readonly sequences: unknown[];
  readonly relations: unknown[];
  readonly functions: unknown[];
  readonly triggers: unknown[];
  readonly roles: unknown[];
  readonly database: unknown[];
  readonly extensions: unknown[];
  readonly largeObjects: unknown[];
  readonly settings: unknown[];
  readonly locks: unknown[];
  readonly preparedXacts: unknown[];
  readonly files: string[];
  readonly sentinelAlive: boolean;
}

let sentinel: pg.Client;
let sentinelAlive = true;

async function snapshot(db: FreshDatabase): Promise<Snapshot> {
  const tables: Record<string, string> = {};
  const rels = await db.query<{ rel: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS rel
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
      ORDER BY 1`,
  );
  for (const { rel } of rels) {
    const [row] = await db.query<{ n: string; h: string }>(
      `SELECT count(*)::text AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM ${rel} t`,
    );
    tables[rel] = `${row?.n}:${row?.h}`;
  }
  const q = (sql: string) => db.query(sql);
  const [sequences, relations, functions, triggers, roles, database, extensions, largeObjects, settings, locks, preparedXacts] = await Promise.all([
    q(`SELECT schemaname, sequencename, last_value::text, start_value::text FROM pg_sequences ORDER BY 1, 2`),
    q(`SELECT n.nspname, c.relname, c.relkind, c.relacl::text, pg_get_userbyid(c.relowner) AS owner, c.relhastriggers, c.relrowsecurity
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' ORDER BY 1, 2`),
    q(`SELECT p.oid::regprocedure::text AS sig, md5(p.prosrc) AS src, p.provolatile, p.proacl::text
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`),
    q(`SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger ORDER BY 1, 2`),
    q(`SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolbypassrls,
              ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid ORDER BY 1)::text AS member_of
         FROM pg_roles r
        -- Roles are cluster-wide and other test files share the cluster: the ones these cases target.
        WHERE rolname IN (current_user, 'drawbridge_gateway', 'pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files')
           OR rolname LIKE 'drawbridge_evil%'
        ORDER BY 1`),
    q(`SELECT datname, datacl::text, (SELECT setconfig::text FROM pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole = 0) AS settings
         FROM pg_database d WHERE datname = current_database() OR datname LIKE 'drawbridge_evil%' ORDER BY 1`),
    q(`SELECT extname, extversion FROM pg_extension ORDER BY 1`),
    q(`SELECT oid::text FROM pg_largeobject_metadata ORDER BY 1`),
    q(`SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf' ORDER BY 1`),
    q(`SELECT locktype, classid::text, objid::text, mode, granted FROM pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 2, 3`),
    q(`SELECT gid FROM pg_prepared_xacts WHERE database = current_database() ORDER BY 1`),
  ]);
  try {
    await sentinel.query('SELECT 1');
  } catch {
    sentinelAlive = false;
  }
  const files = readdirSync('/tmp').filter((f) => f.startsWith(PWNED_PREFIX));
  return { tables, sequences, relations, functions, triggers, roles, database, extensions, largeObjects, settings, locks, preparedXacts, files, sentinelAlive };
}

/** What the journal recorded as the outcome of a call: 'refused' means it never reached the database. */
function outcomeStatus(gw: TestGateway, callId: string): string | undefined {
  const journal = new Database(gw.gateway.config.journal.path, { readonly: true, fileMustExist: true });
  try {
    const row = journal.prepare("SELECT data FROM records WHERE call_id = ? AND type = 'outcome'").get(callId) as { data: string } | undefined;
    return row ? (JSON.parse(row.data) as { status?: string }).status : undefined;
  } finally {
    journal.close();
  }
}

const POLICY_OR_PARSE = new Set<string>([
  'policy.denied',
  'approval.pending',
  'policy.no_match',
  'policy.unclassified',
  'sql.multiple_statements',
  'sql.parse_error',
  'sql.unknown_function',
  'sql.empty',
]);

async function expectRefusedAndUnchanged(db: FreshDatabase, gw: TestGateway, c: Case, who = analyst): Promise<CallResult> {
  const before = await snapshot(db);
  const r = await gw.sql(c.sql, who);
  expect(r.ok, `expected a refusal, got: ${r.text}`).toBe(false);
  if (!r.ok) {
    expect(c.codes, r.text).toContain(r.error.code);
    // A refusal by policy or parse never touches the database.
    if (POLICY_OR_PARSE.has(r.error.code)) expect(outcomeStatus(gw, r.callId)).toBe('refused');
  }
  expect(await snapshot(db)).toEqual(before);
  return r;
}

/** Settings a call could leave behind on a pooled connection, read through the gateway itself. */
const SESSION_PROBE = `SELECT current_setting('statement_timeout') AS statement_timeout,
       current_setting('lock_timeout') AS lock_timeout,
       current_setting('default_transaction_read_only') AS default_ro,
       current_setting('transaction_read_only') AS tx_ro,
       current_setting('search_path') AS search_path,
       current_setting('role') AS role,
       current_user::text AS cur_user,
       session_user::text AS sess_user,
       current_setting('application_name') AS app,
       (SELECT count(*) FROM pg_prepared_statements) AS prepared,
       (SELECT count(*) FROM pg_cursors) AS cursors,
       (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory,
       (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS temp_tables`;

async function sessionState(gw: TestGateway): Promise<unknown> {
  const r = await gw.sql(SESSION_PROBE, analyst);
  expect(r.ok, r.text).toBe(true);
  return r.ok ? r.structured.rows : null;
}

// ---------------------------------------------------------------------------------------------

let db: FreshDatabase;
let su: TestGateway; // connects as the superuser, one pooled connection
let lp: TestGateway; // connects as the least-privilege drawbridge_gateway role
let baselineSession: unknown;

const SETUP_SQL = `
CREATE PROCEDURE purge_proc() LANGUAGE sql AS $$ DELETE FROM orders $$;
CREATE FUNCTION purge_orders() RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d $$;
-- Lies about its volatility: PostgreSQL itself refuses the DELETE in a non-volatile function.
CREATE FUNCTION stable_purge() RETURNS int LANGUAGE plpgsql STABLE
  AS $$ BEGIN DELETE FROM orders; RETURN 1; END $$;
-- Honest VOLATILE functions of one composite argument: callable as o.wipe / (o).wipe.
CREATE FUNCTION wipe(o orders) RETURNS int LANGUAGE plpgsql VOLATILE
  AS $$ BEGIN DELETE FROM orders WHERE id = o.id; RETURN 1; END $$;
CREATE FUNCTION grab_lock(o orders) RETURNS text LANGUAGE sql VOLATILE
  AS $$ SELECT pg_advisory_lock(424242)::text $$;
CREATE FUNCTION bump(o orders) RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ SELECT nextval('orders_id_seq') $$;
CREATE FUNCTION purge_notes() RETURNS bigint LANGUAGE sql VOLATILE
  AS $$ WITH d AS (DELETE FROM audit_notes RETURNING 1) SELECT count(*) FROM d $$;
-- Views that run volatile code when read (an operator's view; the agent cannot create one).
CREATE VIEW touchy AS SELECT id, touch_order(id)::text AS touched FROM orders;
CREATE VIEW locky AS SELECT o.id, o.grab_lock AS locked FROM orders o;
GRANT SELECT ON touchy, locky TO drawbridge_gateway;
-- Lies about its volatility and takes a SESSION advisory lock, which a ROLLBACK does not release.
CREATE FUNCTION stable_lock() RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT pg_advisory_lock(434343)::text $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO drawbridge_gateway;
`;

function cleanupFiles(): void {
  for (const f of readdirSync('/tmp').filter((name) => name.startsWith(PWNED_PREFIX))) rmSync(`/tmp/${f}`, { force: true });
}

beforeAll(async () => {
  cleanupFiles();
  db = await freshDatabase('evasion_writes');
  await db.query(SETUP_SQL);
  sentinel = new pg.Client({ connectionString: db.superuserUrl, application_name: 'evasion-sentinel' });
  sentinel.on('error', () => undefined);
  await sentinel.connect();
  su = await testGateway({ ...db, gatewayUrl: db.superuserUrl }, { limits: ONE_CONNECTION });
  lp = await testGateway(db, { limits: ONE_CONNECTION });
  baselineSession = await sessionState(su);
  // The probe itself must see real values (nothing masked), or comparing it would prove nothing.
  // (One cursor: the portal running the probe itself.)
  expect(baselineSession).toEqual([['3s', '1s', 'off', 'on', '"$user", public', 'none', 'postgres', 'postgres', 'drawbridge', '0', '1', '0', '0']]);
});

afterAll(async () => {
  await su?.close();
  await lp?.close();
  await sentinel?.end().catch(() => undefined);
  await db?.drop();
});

describe('gateway connected as SUPERUSER: writes and side effects are refused and nothing changes', () => {
  it('the gateway really is a superuser here (so only Drawbridge stands in the way)', async () => {
    const r = await su.sql('SELECT usesuper FROM pg_user WHERE usename = current_user', analyst);
    expect(r.ok, r.text).toBe(true);
    if (r.ok) expect(r.structured.rows).toEqual([[true]]);
  });

  it(`has a large table of cases (${CASES.length})`, () => {
    expect(CASES.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
  });

  it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectRefusedAndUnchanged(db, su, c);
  });

  it.each(BENIGN.map((c) => [c.name, c] as const))('benign: %s — runs as a read and changes nothing', async (_name, c) => {
    const before = await snapshot(db);
    const r = await su.sql(c.sql, analyst);
    expect(r.ok, r.text).toBe(true);
    expect(await snapshot(db)).toEqual(before);
  });

  it('no session state leaked into the pooled connection after all the cases', async () => {
    expect(await sessionState(su)).toEqual(baselineSession);
    const timeout = await su.sql('SHOW statement_timeout', analyst);
    const readOnly = await su.sql('SHOW default_transaction_read_only', analyst);
    expect(timeout.ok && timeout.structured.rows).toEqual([['3s']]);
    expect(readOnly.ok && readOnly.structured.rows).toEqual([['off']]);
    expect(sentinelAlive).toBe(true);
    expect(readdirSync('/tmp').filter((f) => f.startsWith(PWNED_PREFIX))).toEqual([]);
    expect(existsSync(pwned(1))).toBe(false);
  });
});

describe('time and lock limits', () => {
  it('a long query is cut by statement_timeout, and the next call works on a clean session', async () => {
    const before = await snapshot(db);
    const r = await su.sql('SELECT count(*) FROM generate_series(1, 1e10)', analyst);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('backend.timeout');
      expect(outcomeStatus(su, r.callId)).toBe('error');
    }
    const next = await su.sql('SELECT 1 AS one', analyst);
    expect(next.ok, next.text).toBe(true);
    if (next.ok) expect(next.structured.rows).toEqual([[1]]);
    expect(await sessionState(su)).toEqual(baselineSession);
    expect(await snapshot(db)).toEqual(before);
  });

  it('pg_sleep is refused by policy without executing', async () => {
    const r = await su.sql('SELECT pg_sleep(30)', analyst);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('approval.pending');
    expect(outcomeStatus(su, r.callId)).toBe('refused');
  });

  it('a read blocked by another session’s lock is cut by lock_timeout', async () => {
    const holder = new pg.Client({ connectionString: db.superuserUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE products IN ACCESS EXCLUSIVE MODE');
      const r = await su.sql('SELECT count(*) FROM products', analyst);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('backend.timeout');
        expect(r.error.message).toContain('lock_timeout');
      }
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
    }
    const after = await su.sql('SELECT count(*)::int AS n FROM products', analyst);
    expect(after.ok, after.text).toBe(true);
    if (after.ok) expect(after.structured.rows).toEqual([[20]]);
    expect(await sessionState(su)).toEqual(baselineSession);
  });

  it('a lying STABLE function that takes a session advisory lock runs, but the lock does not outlive the call', async () => {
    const before = await snapshot(db);
    const r = await su.sql('SELECT stable_lock()', analyst);
    expect(r.ok, r.text).toBe(true);
    expect(await sessionState(su)).toEqual(baselineSession);
    const failing = await su.sql('SELECT stable_lock(), 1 / 0', analyst);
    expect(failing.ok).toBe(false);
    if (!failing.ok) expect(failing.error.code).toBe('backend.error');
    expect(await sessionState(su)).toEqual(baselineSession);
    expect(await snapshot(db)).toEqual(before);
  });

  it('a failed read (server error) leaves no state behind', async () => {
    const failed = await su.sql("SELECT 'x'::int", analyst);
    expect(failed.ok).toBe(false);
    if (!failed.ok) expect(failed.error.code).toBe('backend.error');
    const lying = await su.sql('SELECT stable_purge()', analyst);
    expect(lying.ok).toBe(false);
    expect(await sessionState(su)).toEqual(baselineSession);
  });
});

describe('the database wall: execute() with a request the classifier never saw', () => {
  /** A request classified from `classifiedAs`, then given other SQL and access: what a classifier bug would produce. */
  function forged(sql: string, access: 'read' | 'write', classifiedAs = 'SELECT 1'): ParsedRequest {
    const parsed = parseRunSql({ connection: 'db', sql: classifiedAs }, { tool: 'run_sql', connection: 'db' });
    return { ...parsed, access, operation: 'select', detail: { ...(parsed.detail as Record<string, unknown>), sql, lineage: null } };
  }

  async function expectWallHolds(gw: TestGateway, request: ParsedRequest, sqlstate: string | null): Promise<void> {
    const before = await snapshot(db);
    const error = await gw.gateway
      .connection('db')
      .execute(request, {})
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(DrawbridgeError);
    const e = error as DrawbridgeError;
    expect(['backend.error', 'backend.timeout']).toContain(e.code);
    if (sqlstate) expect(e.details['sqlstate']).toBe(sqlstate);
    expect(await snapshot(db)).toEqual(before);
  }

  for (const [label, gwOf] of [
    ['superuser', () => su],
    ['least-privilege', () => lp],
  ] as const) {
    it(`${label}: a DELETE sent as a read fails in the read-only transaction`, async () => {
      await expectWallHolds(gwOf(), forged('DELETE FROM orders', 'read'), '25006');
    });
    it(`${label}: a volatile function sent as a read cannot write`, async () => {
      await expectWallHolds(gwOf(), forged('SELECT touch_order(1)', 'read'), '25006');
      await expectWallHolds(gwOf(), forged("SELECT nextval('orders_id_seq')", 'read'), '25006');
    });
    it(`${label}: a data-modifying CTE sent as a read fails`, async () => {
      await expectWallHolds(gwOf(), forged('WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d', 'read'), '25006');
    });
    it(`${label}: stacked statements are refused by the server (extended protocol), for reads and writes`, async () => {
      await expectWallHolds(gwOf(), forged('SELECT 1; DELETE FROM orders', 'read'), '42601');
      await expectWallHolds(gwOf(), forged("SELECT 1; UPDATE orders SET note = 'x'", 'write', "UPDATE orders SET note = 'y' WHERE id = 1"), '42601');
      await expectWallHolds(gwOf(), forged('COMMIT; DELETE FROM orders', 'read'), '42601');
    });
    it(`${label}: COPY FROM sent as a read fails`, async () => {
      await expectWallHolds(gwOf(), forged(`COPY orders FROM PROGRAM 'touch ${pwned('wall')}'`, 'read'), null);
      expect(existsSync(pwned('wall'))).toBe(false);
    });
    it(`${label}: a write over max_affected_rows is rolled back`, async () => {
      const before = await snapshot(db);
      const request = { ...parseRunSql({ connection: 'db', sql: "UPDATE orders SET note = 'wall'" }, { tool: 'run_sql', connection: 'db' }) };
      const error = await gwOf()
        .gateway.connection('db')
        .execute(request, { maxAffectedRows: 5 })
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect((error as DrawbridgeError).code).toBe('limits.affected_rows');
      expect(await snapshot(db)).toEqual(before);
    });
  }

  it('after the forged requests the pooled session is still clean', async () => {
    expect(await sessionState(su)).toEqual(baselineSession);
  });
});

describe('gateway connected with the least-privilege role', () => {
  const subset = CASES.filter((c) => c.lp);
  it('covers a meaningful subset', () => {
    expect(subset.length).toBeGreaterThanOrEqual(20);
  });
  it.each(subset.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await expectRefusedAndUnchanged(db, lp, c);
  });
  it('no session state leaked into its pooled connection', async () => {
    expect(await sessionState(lp)).toEqual([
      ['3s', '1s', 'off', 'on', '"$user", public', 'none', 'drawbridge_gateway', 'drawbridge_gateway', 'drawbridge', '0', '1', '0', '0'],
    ]);
  });
});

describe('allowed writes by support', () => {
  for (const [label, gwOf] of [
    ['superuser', () => su],
    ['least-privilege', () => lp],
  ] as const) {
    it(`${label}: an UPDATE of one order is allowed and applied`, async () => {
      const note = `support-${label}`;
      const r = await gwOf().sql(`UPDATE orders SET note = '${note}' WHERE id = 1`, support);
      expect(r.ok, r.text).toBe(true);
      if (r.ok) expect(r.structured.affectedRows).toBe(1);
      const rows = await db.query<{ note: string }>('SELECT note FROM orders WHERE id = 1');
      expect(rows[0]?.note).toBe(note);
    });

    it(`${label}: an UPDATE touching 6 rows is rolled back (max_affected_rows 5)`, async () => {
      const before = await snapshot(db);
      const r = await gwOf().sql("UPDATE orders SET note = 'bulk' WHERE id BETWEEN 10 AND 15", support);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('limits.affected_rows');
      expect(await snapshot(db)).toEqual(before);
    });

    it(`${label}: an UPDATE of every order is rolled back`, async () => {
      const before = await snapshot(db);
      const r = await gwOf().sql("UPDATE orders SET status = 'cancelled'", support);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.code).toBe('limits.affected_rows');
      expect(await snapshot(db)).toEqual(before);
    });

    it(`${label}: a write to customers is refused (not in the allow rule)`, async () => {
      await expectRefusedAndUnchanged(
        db,
        gwOf(),
        { name: 'support customers', sql: "UPDATE customers SET city = 'Nowhere' WHERE id = 1", codes: ['policy.no_match'] },
        support,
      );
    });

    it(`${label}: an allowed UPDATE carrying a DELETE of customers in a CTE is refused`, async () => {
      await expectRefusedAndUnchanged(
        db,
        gwOf(),
        {
          name: 'support cte',
          sql: "WITH d AS (DELETE FROM audit_notes RETURNING id) UPDATE orders SET note = 'x' WHERE id IN (SELECT id FROM d)",
          codes: ['policy.no_match'],
        },
        support,
      );
    });

    it(`${label}: an allowed UPDATE that calls a volatile function writing elsewhere is refused`, async () => {
      // purge_notes() deletes audit_notes: the rule names only public.orders, and the gateway cannot see inside the function.
      await expectRefusedAndUnchanged(
        db,
        gwOf(),
        { name: 'support fn', sql: 'UPDATE orders SET note = purge_notes()::text WHERE id = 1', codes: ['policy.no_match'] },
        support,
      );
    });

    it(`${label}: a volatile function called in a SELECT of orders is refused (it is a write, and not only on orders)`, async () => {
      await expectRefusedAndUnchanged(
        db,
        gwOf(),
        { name: 'support select fn', sql: 'SELECT purge_notes() FROM orders LIMIT 1', codes: ['policy.no_match'] },
        support,
      );
    });

    it(`${label}: a volatile function called with no table at all is refused`, async () => {
      // No tables touched used to satisfy "every table is public.orders" vacuously.
      await expectRefusedAndUnchanged(db, gwOf(), { name: 'support bare fn', sql: 'SELECT purge_notes()', codes: ['policy.no_match'] }, support);
      await expectRefusedAndUnchanged(db, gwOf(), { name: 'support setval', sql: "SELECT setval('customers_id_seq', 1)", codes: ['policy.no_match'] }, support);
    });

    it(`${label}: a DELETE on orders is a write on orders, so this policy allows it within the limit`, async () => {
      // Asserted so that changing what the support rule covers is a conscious decision.
      const r = await gwOf().sql('DELETE FROM orders WHERE id = -1', support);
      expect(r.ok, r.text).toBe(true);
      if (r.ok) expect(r.structured.affectedRows).toBe(0);
    });
  }
});
