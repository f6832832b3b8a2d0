// Impact previews of SQL writes against the real test database, without the
// pipeline: parse → resolve → preview on the brokered connection. A preview
// must count exactly what the write then changes when executed, leave the
// database unchanged (always rolled back), sample masked primary keys of
// UPDATE/DELETE targets, refuse writes over max_affected_rows, report the
// statement's own errors, and leave the (single pooled) session clean.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BackendConnection, ParsedRequest, PreviewContext, TabularResult } from '../../../src/backends/backend.js';
import { loadParser, parseSql, type AstObject } from '../../../src/backends/postgres/ast.js';
import { parseRunSql } from '../../../src/backends/postgres/index.js';
import { planPreview, returningVariant } from '../../../src/backends/postgres/preview.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { applicableRules, createMasker } from '../../../src/masking/masker.js';
import { DEFAULT_POLICY, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../../support/fixtures.js';

/** One pooled session: anything a preview left behind would be seen by the next call. */
const LIMITS = '{ timeout: 3s, lock_timeout: 1s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }\npool: { max: 1 }';

/** The default policy plus a rule masking the orders primary key. */
const POLICY = `${DEFAULT_POLICY}  - name: order-keys
    match: { tool: run_sql }
    columns: [orders.id]
`;

const MANY = 100_000;
const identity: NonNullable<PreviewContext['mask']> = (r) => r;

let db: FreshDatabase;
let gw: TestGateway;
let conn: BackendConnection;

async function request(sql: string): Promise<ParsedRequest> {
  return conn.resolve(parseRunSql({ connection: 'db', sql }, { tool: 'run_sql', connection: 'db' }));
}

async function preview(sql: string, context: PreviewContext = { maxAffectedRows: MANY, mask: identity }) {
  const r = await request(sql);
  if (!conn.preview) throw new Error('postgres connections must implement preview');
  return conn.preview(r, context);
}

async function execute(sql: string): Promise<TabularResult> {
  return conn.execute(await request(sql), { maxAffectedRows: MANY });
}

/** Every user table's row count and content hash, read as superuser. */
async function checksum(): Promise<Record<string, string>> {
  const rels = await db.query<{ rel: string }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS rel
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_' ORDER BY 1`,
  );
  const out: Record<string, string> = {};
  for (const { rel } of rels) {
    const [row] = await db.query<{ n: string; h: string }>(
      `SELECT count(*)::text AS n, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) AS h FROM ${rel} t`,
    );
    out[rel] = `${row?.n}:${row?.h}`;
  }
  return out;
}

async function advisoryLocks(): Promise<number> {
  const [row] = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  return Number(row?.n);
}

async function ids(sql: string): Promise<number[]> {
  return (await db.query<{ id: number }>(sql)).map((r) => r.id);
}

/** The session is usable and outside any transaction: a read answers, and a later write commits. */
async function expectCleanSession(): Promise<void> {
  const one = await execute('SELECT 1 AS one');
  expect(one.rows).toEqual([[1]]);
  const state = await execute(`SELECT pg_catalog.current_setting('transaction_read_only') AS ro`);
  expect(state.rows).toEqual([['on']]);
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<DrawbridgeError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DrawbridgeError);
  expect((error as DrawbridgeError).code).toBe(code);
  return error as DrawbridgeError;
}

beforeAll(async () => {
  await loadParser();
  db = await freshDatabase('preview');
  await db.query(`
    CREATE TABLE nopk (a int, b text);
    INSERT INTO nopk SELECT g, 'v' || g FROM generate_series(1, 6) g;
    CREATE TABLE deferred_child (id int PRIMARY KEY, order_id int REFERENCES orders(id) DEFERRABLE INITIALLY DEFERRED);
    CREATE TABLE blind (id int PRIMARY KEY, v text);
    INSERT INTO blind VALUES (1, 'a'), (2, 'b');
    CREATE TABLE secured (id int PRIMARY KEY, v text);
    INSERT INTO secured VALUES (1, 'a'), (2, 'b');
    ALTER TABLE secured ENABLE ROW LEVEL SECURITY;
    CREATE POLICY everything ON secured USING (true) WITH CHECK (true);
    CREATE TABLE "Odd ""Keys""" ("Key Part" int, "other;--" text, v text, PRIMARY KEY ("other;--", "Key Part"));
    INSERT INTO "Odd ""Keys""" VALUES (1, 'x', 'a'), (2, 'y', 'b');
    CREATE FUNCTION lock_it() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1 FROM (SELECT pg_catalog.pg_advisory_lock(4242)) s';
    GRANT SELECT, INSERT, UPDATE, DELETE ON nopk, deferred_child, secured, "Odd ""Keys""" TO drawbridge_gateway;
    GRANT UPDATE ON blind TO drawbridge_gateway;
    GRANT EXECUTE ON FUNCTION lock_it() TO drawbridge_gateway;
  `);
  gw = await testGateway(db, { limits: LIMITS, policy: POLICY });
  conn = gw.gateway.connection('db');
});

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

describe('impact preview: the count matches what executing then changes', () => {
  const cases: ReadonlyArray<{ name: string; sql: string; expected: string }> = [
    {
      name: 'UPDATE',
      sql: `UPDATE orders SET note = 'previewed' WHERE customer_id = 3`,
      expected: 'SELECT count(*)::int AS n FROM orders WHERE customer_id = 3',
    },
    { name: 'DELETE', sql: 'DELETE FROM orders WHERE id BETWEEN 480 AND 489', expected: 'SELECT count(*)::int AS n FROM orders WHERE id BETWEEN 480 AND 489' },
    {
      name: 'INSERT … SELECT',
      sql: `INSERT INTO audit_notes (body) SELECT 'copy: ' || body FROM audit_notes WHERE id <= 4`,
      expected: 'SELECT count(*)::int AS n FROM audit_notes WHERE id <= 4',
    },
    {
      name: 'MERGE',
      sql: `MERGE INTO orders o USING (SELECT id FROM orders WHERE id BETWEEN 10 AND 17) s ON o.id = s.id WHEN MATCHED THEN UPDATE SET note = 'merged'`,
      expected: 'SELECT count(*)::int AS n FROM orders WHERE id BETWEEN 10 AND 17',
    },
    {
      name: 'INSERT … ON CONFLICT DO UPDATE',
      sql: `INSERT INTO products (id, sku, name, price) VALUES (1, 'SKU-0001', 'x', 1), (9999, 'SKU-NEW', 'new', 2) ON CONFLICT (id) DO UPDATE SET price = 0`,
      expected: 'SELECT 2 AS n',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const [{ n } = { n: -1 }] = await db.query<{ n: number }>(c.expected);
      expect(n).toBeGreaterThan(0);
      const before = await checksum();
      const p = await preview(c.sql);
      expect(p.affectedRows).toBe(n);
      expect(await checksum()).toEqual(before);
      const done = await execute(c.sql);
      expect(done.affectedRows).toBe(p.affectedRows);
      expect(await checksum()).not.toEqual(before);
    });
  }
});

describe('impact preview: samples of affected keys', () => {
  it('samples primary keys of an UPDATE, at most sampleSize of them', async () => {
    const expected = await ids('SELECT id FROM orders WHERE customer_id = 5');
    expect(expected.length).toBeGreaterThan(5);
    const before = await checksum();
    const p = await preview(`UPDATE orders SET note = 'sampled' WHERE customer_id = 5`);
    expect(p.affectedRows).toBe(expected.length);
    expect(p.sampleColumns).toEqual(['id']);
    expect(p.sample).toHaveLength(5);
    for (const row of p.sample) expect(expected).toContain(row['id']);
    expect(p.note).toBeUndefined();
    const three = await preview(`UPDATE orders SET note = 'sampled' WHERE customer_id = 5`, { maxAffectedRows: MANY, sampleSize: 3, mask: identity });
    expect(three.affectedRows).toBe(expected.length);
    expect(three.sample).toHaveLength(3);
    expect(await checksum()).toEqual(before);
  });

  it('samples primary keys of a DELETE', async () => {
    const before = await checksum();
    const p = await preview('DELETE FROM orders WHERE id IN (101, 102, 103)');
    expect(p.affectedRows).toBe(3);
    expect(p.sample.map((r) => r['id']).sort()).toEqual([101, 102, 103]);
    expect(await checksum()).toEqual(before);
  });

  it('masks the sample with the caller hook when the key column is masked', async () => {
    const rules = applicableRules(gw.gateway.config.masking, 'run_sql', 'db', gw.identity);
    const masker = createMasker(rules, gw.gateway.maskKey);
    const r = await request('DELETE FROM orders WHERE id IN (201, 202)');
    const p = await conn.preview?.(r, { maxAffectedRows: MANY, mask: (result) => masker.maskResult(result, r).result });
    expect(p?.affectedRows).toBe(2);
    expect(p?.sample).toHaveLength(2);
    for (const row of p?.sample ?? []) expect(row['id']).toBe('[masked:orders.id]');
  });

  it('hands the hook the key column with its source, and shows only what the hook returns', async () => {
    const seen: TabularResult[] = [];
    const p = await preview(`UPDATE orders SET note = 'x' WHERE id = 7`, {
      maxAffectedRows: MANY,
      mask: (result) => {
        seen.push(result);
        return { ...result, rows: result.rows.map(() => ['hidden']) };
      },
    });
    expect(seen).not.toHaveLength(0);
    const s = seen.at(-1)!; // the result the hook saw last
    expect(s.columns).toHaveLength(1);
    expect(s.columns[0]?.name).toBe('id');
    expect(s.columns[0]?.sources).toContain('public.orders.id');
    expect(s.rows).toEqual([[7]]);
    expect(p.sample).toEqual([{ id: 'hidden' }]);
  });

  it('withholds the sample when no masking hook is given', async () => {
    const p = await preview(`UPDATE orders SET note = 'x' WHERE id = 7`, { maxAffectedRows: MANY });
    expect(p.affectedRows).toBe(1);
    expect(p.sample).toEqual([]);
    expect(p.note).toMatch(/withheld/);
  });

  const amended: ReadonlyArray<{ name: string; sql: string; expected: number[] }> = [
    { name: 'a trailing -- comment before the semicolon', sql: `UPDATE orders SET note = 'c' WHERE id IN (1, 2) -- fix the notes\n;`, expected: [1, 2] },
    { name: 'a trailing -- comment after the semicolon', sql: `UPDATE orders SET note = 'c' WHERE id IN (1, 2); -- fix the notes`, expected: [1, 2] },
    { name: 'a trailing -- comment and no semicolon', sql: `DELETE FROM orders WHERE id IN (3, 4) -- gone`, expected: [3, 4] },
    { name: 'a trailing block comment and semicolons with whitespace', sql: `UPDATE orders SET note = 'c' WHERE id = 5 /* done */ ;  \n `, expected: [5] },
    { name: 'leading comments and non-ASCII text', sql: `/* é */ -- ü\n UPDATE orders SET note = 'déjà vu 😀' WHERE id = 6 -- fini 😀`, expected: [6] },
    {
      name: 'an alias and a FROM table with a column of the same name',
      sql: `UPDATE orders o SET note = 'x' FROM customers c WHERE c.id = o.customer_id AND o.id IN (8, 9)`,
      expected: [8, 9],
    },
    {
      name: 'a schema-qualified target and USING',
      sql: `DELETE FROM public.orders USING customers WHERE customers.id = orders.customer_id AND orders.id = 11`,
      expected: [11],
    },
    { name: 'a read-only CTE', sql: `WITH t AS (SELECT 12 AS id) UPDATE orders SET note = 'x' FROM t WHERE orders.id = t.id`, expected: [12] },
  ];
  for (const c of amended) {
    it(`still samples with ${c.name}`, async () => {
      const before = await checksum();
      const p = await preview(c.sql);
      expect(p.note).toBeUndefined();
      expect(p.affectedRows).toBe(c.expected.length);
      expect(p.sample.map((r) => r['id']).sort()).toEqual(c.expected);
      expect(await checksum()).toEqual(before);
    });
  }

  it('samples a composite key with identifiers that need quoting', async () => {
    const p = await preview(`UPDATE "Odd ""Keys""" SET v = 'z'`);
    expect(p.affectedRows).toBe(2);
    expect(p.sampleColumns).toEqual(['other;--', 'Key Part']);
    expect(p.sample).toEqual(
      expect.arrayContaining([
        { 'other;--': 'x', 'Key Part': 1 },
        { 'other;--': 'y', 'Key Part': 2 },
      ]),
    );
  });

  it('gives only the count for a table without a primary key', async () => {
    const before = await checksum();
    const p = await preview(`UPDATE nopk SET b = 'y' WHERE a < 3`);
    expect(p.affectedRows).toBe(2);
    expect(p.sample).toEqual([]);
    expect(p.note).toMatch(/no primary key/);
    expect(await checksum()).toEqual(before);
  });

  it('gives only the count for a statement that already has RETURNING', async () => {
    const p = await preview(`UPDATE orders SET note = 'r' WHERE id IN (1, 2) RETURNING id, note`);
    expect(p.affectedRows).toBe(2);
    expect(p.sample).toEqual([]);
    expect(p.note).toBe('sample unavailable: statement has RETURNING');
  });

  it('gives only the count for INSERT', async () => {
    const p = await preview(`INSERT INTO audit_notes (body) VALUES ('a'), ('b')`);
    expect(p).toEqual({ affectedRows: 2, sample: [], sampleColumns: [] });
  });

  it('falls back to the count when RETURNING is not allowed (no SELECT privilege)', async () => {
    const before = await checksum();
    const p = await preview(`UPDATE blind SET v = 'z'`);
    expect(p.affectedRows).toBe(2);
    expect(p.sample).toEqual([]);
    expect(p.note).toMatch(/sample unavailable: the statement with RETURNING failed \(42501\)/);
    expect(await checksum()).toEqual(before);
  });

  it('gives only the count on a table with row-level security', async () => {
    const p = await preview(`UPDATE secured SET v = 'z'`);
    expect(p.affectedRows).toBe(2);
    expect(p.sample).toEqual([]);
    expect(p.note).toMatch(/row-level security/);
  });
});

describe('impact preview: what it cannot count', () => {
  it('a write inside a CTE: affectedRows null with a note, nothing run', async () => {
    const before = await checksum();
    const p = await preview('WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING id) SELECT count(*) FROM d');
    expect(p.affectedRows).toBeNull();
    expect(p.sample).toEqual([]);
    expect(p.note).toMatch(/WITH clause.*DELETE.*not dry-run/);
    expect(await checksum()).toEqual(before);
  });

  it('a write in a CTE under a top-level UPDATE is not counted as the UPDATE alone', async () => {
    const p = await preview(`WITH d AS (DELETE FROM audit_notes WHERE id = 1 RETURNING id) UPDATE orders SET note = 'x' WHERE id = 1`);
    expect(p.affectedRows).toBeNull();
    expect(p.note).toMatch(/WITH clause/);
  });

  it('EXPLAIN ANALYZE of a write: affectedRows null with a note', async () => {
    const p = await preview(`EXPLAIN ANALYZE UPDATE orders SET note = 'x' WHERE id = 1`);
    expect(p.affectedRows).toBeNull();
    expect(p.note).toMatch(/EXPLAIN ANALYZE/);
  });
});

describe('impact preview: refusals and errors', () => {
  it('refuses a write over the connection max_affected_rows, unchanged database', async () => {
    const before = await checksum();
    const [{ n } = { n: -1 }] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    expect(n).toBeGreaterThan(10);
    const r = await request(`UPDATE orders SET note = 'everything'`);
    const error = await expectCode(conn.preview!(r, { mask: identity }), 'limits.affected_rows');
    expect(error.message).toContain(`would change ${n} rows, more than the limit of 10, so it will not be offered for approval`);
    expect(error.details).toEqual({ affectedRows: n, limit: 10 });
    expect(await checksum()).toEqual(before);
    await expectCleanSession();
  });

  it('uses the rule maxAffectedRows over the connection default', async () => {
    const before = await checksum();
    const r = await request('DELETE FROM orders WHERE id BETWEEN 300 AND 304');
    const error = await expectCode(conn.preview!(r, { maxAffectedRows: 3, mask: identity }), 'limits.affected_rows');
    expect(error.details).toEqual({ affectedRows: 5, limit: 3 });
    const allowed = await conn.preview!(r, { maxAffectedRows: 5, mask: identity });
    expect(allowed.affectedRows).toBe(5);
    expect(await checksum()).toEqual(before);
  });

  it('reports a constraint violation as backend.error, unchanged database', async () => {
    const before = await checksum();
    const fk = await expectCode(preview('UPDATE orders SET customer_id = 999999 WHERE id = 1'), 'backend.error');
    expect(fk.message).toMatch(/23503/);
    const unique = await expectCode(preview(`INSERT INTO customers (id, full_name, email) VALUES (1, 'x', 'y@example.com')`), 'backend.error');
    expect(unique.message).toMatch(/23505/);
    expect(await checksum()).toEqual(before);
    await expectCleanSession();
  });

  it('checks deferred constraints as the commit would', async () => {
    const before = await checksum();
    const error = await expectCode(preview('INSERT INTO deferred_child (id, order_id) VALUES (1, 999999)'), 'backend.error');
    expect(error.message).toMatch(/23503/);
    expect(await checksum()).toEqual(before);
    await expectCleanSession();
  });

  it('releases advisory locks a function took, and notes the VOLATILE call', async () => {
    const before = await checksum();
    const p = await preview(`UPDATE orders SET note = 'locked' WHERE id = 1 AND lock_it() = 1`);
    expect(p.affectedRows).toBe(1);
    expect(p.note).toMatch(/VOLATILE/);
    expect(await advisoryLocks()).toBe(0);
    expect(await checksum()).toEqual(before);
    await expectCleanSession();
  });

  it('leaves the session usable after a successful preview', async () => {
    await preview(`UPDATE orders SET note = 'x' WHERE id = 1`);
    await expectCleanSession();
    const done = await execute(`UPDATE audit_notes SET body = body WHERE id = 1`);
    expect(done.affectedRows).toBe(1);
  });

  it('is a TypeError for reads and admin statements', async () => {
    const read = await request('SELECT 1');
    await expect(conn.preview!(read, {})).rejects.toBeInstanceOf(TypeError);
    const ddl = await request('DROP TABLE orders');
    await expect(conn.preview!(ddl, {})).rejects.toBeInstanceOf(TypeError);
    await expect(preview(`UPDATE orders SET note = 'x' WHERE id = 1`, { sampleSize: -1, mask: identity })).rejects.toBeInstanceOf(TypeError);
  });
});

describe('returningVariant (pure)', () => {
  const stmtOf = (sql: string): AstObject => {
    const first = parseSql(sql).stmts[0];
    if (!first) throw new Error('no statement');
    return first.stmt;
  };
  const variant = (sql: string, qualifier: string[] = ['t'], columns: string[] = ['id']) => returningVariant(sql, stmtOf(sql), qualifier, columns);

  it('appends RETURNING on a new line, without the trailing semicolon', () => {
    expect(variant('DELETE FROM t WHERE a = 1;')).toBe('DELETE FROM t WHERE a = 1\nRETURNING "t"."id"');
    expect(variant('DELETE FROM t -- c')).toBe('DELETE FROM t -- c\nRETURNING "t"."id"');
    expect(variant('UPDATE t SET a = 1 -- c\n;', ['s', 't'], ['a"b', 'c'])).toBe('UPDATE t SET a = 1 -- c\nRETURNING "s"."t"."a""b", "s"."t"."c"');
  });

  it('cuts by byte offsets, so non-ASCII text before the end is kept whole', () => {
    expect(variant(`UPDATE t SET a = 'ü😀'; -- é`)).toBe(`UPDATE t SET a = 'ü😀'\nRETURNING "t"."id"`);
  });

  it('refuses anything that is not an UPDATE/DELETE without RETURNING, or no key', () => {
    expect(variant('INSERT INTO t VALUES (1)')).toBeNull();
    expect(variant('DELETE FROM t RETURNING id')).toBeNull();
    expect(variant('DELETE FROM t', ['t'], [])).toBeNull();
  });

  it('refuses when the amended text is a different statement than the one given', () => {
    // The tree passed in is not the text's tree: the re-parse comparison catches it.
    expect(returningVariant('DELETE FROM t WHERE a = 1', stmtOf('DELETE FROM t WHERE a = 2'), ['t'], ['id'])).toBeNull();
  });

  it('plans by statement shape', () => {
    expect(planPreview(stmtOf('UPDATE s.t AS x SET a = 1'))).toEqual({ kind: 'sample', target: { schema: 's', name: 't', qualifier: ['x'] } });
    expect(planPreview(stmtOf('DELETE FROM s.t'))).toEqual({ kind: 'sample', target: { schema: 's', name: 't', qualifier: ['s', 't'] } });
    expect(planPreview(stmtOf('INSERT INTO t VALUES (1)'))).toEqual({ kind: 'count' });
    expect(planPreview(stmtOf('WITH d AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM d')).kind).toBe('uncountable');
    expect(planPreview(stmtOf('SELECT f()')).kind).toBe('uncountable');
  });
});
