// Table-driven tests for column lineage: for each statement, the base columns
// every output column derives from, against a fake in-memory catalog (two
// tables, a view that renames columns, a view on that view, a pg_catalog table).
// Lineage must err towards MORE sources: every row here that once came out
// short was a masking leak. Every row also checks that `referenced` holds every
// column of every relation the statement reads (what error messages may quote).

import { beforeAll, describe, expect, it } from 'vitest';
import { loadParser, parseSql, type AstObject } from '../../../src/backends/postgres/ast.js';
import { collectTables } from '../../../src/backends/postgres/classify.js';
import { analyzeLineage, OPAQUE, type LineageCatalog, type RelationColumns } from '../../../src/backends/postgres/lineage.js';

const CUSTOMERS = ['id', 'full_name', 'email', 'ssn', 'phone', 'card_number', 'iban', 'city', 'created_at'] as const;
const ORDERS = ['id', 'customer_id', 'status', 'total', 'created_at', 'note'] as const;
const CONTACTS = ['id', 'full_name', 'contact', 'reach', 'city'] as const;
const NAMES = ['who', 'contact'] as const;

let relations: RelationColumns[] = [];

function statement(sql: string): AstObject {
  const { stmts } = parseSql(sql);
  expect(stmts).toHaveLength(1);
  return (stmts[0] as { stmt: AstObject }).stmt;
}

beforeAll(async () => {
  await loadParser();
  const table = (schema: string, name: string, columns: readonly string[]): RelationColumns => ({ schema, name, kind: 'r', columns, view: null });
  const view = (name: string, columns: readonly string[], sql: string): RelationColumns => ({
    schema: 'public',
    name,
    kind: 'v',
    columns,
    view: statement(sql),
  });
  relations = [
    table('public', 'customers', CUSTOMERS),
    table('public', 'orders', ORDERS),
    view('customer_contacts', CONTACTS, 'SELECT id, full_name, email AS contact, phone AS reach, city FROM customers'),
    view('contact_names', NAMES, 'SELECT full_name AS who, contact FROM customer_contacts'),
    table('pg_catalog', 'pg_class', ['oid', 'relname', 'relnamespace', 'relkind']),
  ];
});

/** search_path: pg_catalog (implicitly first), then public. */
function find(schema: string | null, name: string): RelationColumns | undefined {
  if (schema !== null) return relations.find((r) => r.schema === schema && r.name === name);
  return relations.find((r) => r.schema === 'pg_catalog' && r.name === name) ?? relations.find((r) => r.schema === 'public' && r.name === name);
}

const catalog: LineageCatalog = { relation: find };

/** User functions live in public (they may read any table); everything else is pg_catalog. */
const USER_FUNCTIONS = new Set(['lookup_ssn', 'get_customers']);
const withFunctions: LineageCatalog = {
  relation: find,
  functionSchemas: (schema, name) => {
    if (name === 'mystery') return undefined; // not looked up
    if (USER_FUNCTIONS.has(name)) return schema === null || schema === 'public' ? ['public'] : [];
    if (CUSTOMERS.includes(name as never) || ORDERS.includes(name as never)) return []; // a column, not a function
    return ['pg_catalog'];
  },
};

/** `customers.email` → `public.customers.email`; `pg_catalog.…` and `?` as written. */
function q(source: string): string {
  return source === OPAQUE || source.startsWith('pg_catalog.') ? source : `public.${source}`;
}

const all = (table: string, columns: readonly string[]): string[] => columns.map((c) => `${table}.${c}`);
const each = (table: string, columns: readonly string[]): string[][] => columns.map((c) => [`${table}.${c}`]);
const ALL_CUSTOMERS = all('customers', CUSTOMERS);
const ALL_ORDERS = all('orders', ORDERS);

type Row = readonly [sql: string, outputs: ReadonlyArray<readonly string[]> | null];

function sorted(set: ReadonlySet<string> | readonly string[]): string[] {
  return [...set].sort();
}

/** Every column of every relation the statement names (views: and what they read) must be in `referenced`. */
function expectReferencedComplete(stmt: AstObject, referenced: ReadonlySet<string>): void {
  const pending = collectTables(stmt);
  const seen = new Set<string>();
  while (pending.length > 0) {
    const t = pending.pop() as { schema: string | null; name: string };
    const rel = find(t.schema, t.name);
    if (!rel) continue;
    const key = `${rel.schema}.${rel.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    for (const column of rel.columns) expect(referenced, `referenced lacks ${key}.${column}`).toContain(`${key}.${column}`);
    if (rel.view) pending.push(...collectTables(rel.view));
  }
}

function check(rows: readonly Row[], using: LineageCatalog): void {
  it.each(rows.map(([sql, outputs]) => ({ sql, outputs })))('$sql', ({ sql, outputs }) => {
    const stmt = statement(sql);
    const lineage = analyzeLineage(stmt, using);
    if (outputs === null) {
      expect(lineage.outputs).toBeNull();
    } else {
      expect(lineage.outputs?.map(sorted)).toEqual(outputs.map((sources) => sorted(sources.map(q))));
    }
    expectReferencedComplete(stmt, lineage.referenced);
    // Whatever an output derives from was read.
    for (const sources of lineage.outputs ?? []) for (const s of sources) expect(lineage.referenced).toContain(s);
  });
}

const DIRECT: readonly Row[] = [
  ['SELECT email FROM customers', [['customers.email']]],
  ['SELECT c.email AS contact, c.id FROM customers c', [['customers.email'], ['customers.id']]],
  ['SELECT public.customers.email FROM public.customers', [['customers.email']]],
  ['SELECT "email" FROM "customers"', [['customers.email']]],
  ['SELECT EMAIL FROM Customers', [['customers.email']]],
  ['SELECT c.* FROM customers c', each('customers', CUSTOMERS)],
  ['SELECT * FROM customers', each('customers', CUSTOMERS)],
  ['TABLE customers', each('customers', CUSTOMERS)],
  ['SELECT * FROM customers AS c(a, b)', each('customers', CUSTOMERS)],
  ['SELECT b FROM customers AS c(a, b)', [['customers.full_name']]],
  ['SELECT * FROM customers c JOIN orders o ON o.customer_id = c.id', [...each('customers', CUSTOMERS), ...each('orders', ORDERS)]],
  ['SELECT o.*, c.email FROM orders o JOIN customers c ON c.id = o.customer_id', [...each('orders', ORDERS), ['customers.email']]],
  ['SELECT * FROM customers, orders', [...each('customers', CUSTOMERS), ...each('orders', ORDERS)]],
];

const JOINS: readonly Row[] = [
  // USING / NATURAL: the join columns first and merged, then the rest of each side.
  [
    'SELECT * FROM customers JOIN orders USING (id)',
    [['customers.id', 'orders.id'], ...each('customers', CUSTOMERS.slice(1)), ...each('orders', ORDERS.slice(1))],
  ],
  [
    'SELECT * FROM customers NATURAL JOIN orders',
    [
      ['customers.id', 'orders.id'],
      ['customers.created_at', 'orders.created_at'],
      ...each('customers', ['full_name', 'email', 'ssn', 'phone', 'card_number', 'iban', 'city']),
      ...each('orders', ['customer_id', 'status', 'total', 'note']),
    ],
  ],
  ['SELECT id, email FROM customers JOIN orders USING (id)', [['customers.id', 'orders.id'], ['customers.email']]],
  ['SELECT c.* FROM customers c JOIN orders o USING (id)', each('customers', CUSTOMERS)],
  ['SELECT u.id FROM customers JOIN orders USING (id) AS u', [['customers.id', 'orders.id']]],
  ['SELECT u.* FROM customers JOIN orders USING (id) AS u', [['customers.id', 'orders.id']]],
  [
    'SELECT * FROM customers c JOIN orders o USING (id) JOIN orders o2 ON o2.id = o.id',
    [['customers.id', 'orders.id'], ...each('customers', CUSTOMERS.slice(1)), ...each('orders', ORDERS.slice(1)), ...each('orders', ORDERS)],
  ],
  ['SELECT j.email, j.note FROM (customers c JOIN orders o ON o.customer_id = c.id) AS j', [['customers.email'], ['orders.note']]],
  ['SELECT j.* FROM (customers c JOIN orders o ON true) AS j', [...each('customers', CUSTOMERS), ...each('orders', ORDERS)]],
  ['SELECT * FROM (customers c JOIN orders o ON true) AS j', [...each('customers', CUSTOMERS), ...each('orders', ORDERS)]],
  // A join alias with a column list renames the join's first columns (and hides c and o).
  ['SELECT id FROM (customers c JOIN orders o USING (id)) AS j(x, y, z, id)', [['customers.ssn']]],
  ['SELECT j.id, j.x FROM (customers c JOIN orders o USING (id)) AS j(x, y, z, id)', [['customers.ssn'], ['customers.id', 'orders.id']]],
  ['SELECT (SELECT note FROM (customers c2 CROSS JOIN (SELECT 1) s) AS j(a)) FROM orders', [['orders.note']]],
  [
    'SELECT * FROM customers c LEFT JOIN LATERAL (SELECT note FROM orders o WHERE o.customer_id = c.id) x ON true',
    [...each('customers', CUSTOMERS), ['orders.note']],
  ],
];

const EXPRESSIONS: readonly Row[] = [
  [
    'SELECT upper(email), lower(email), reverse(ssn), md5(ssn) FROM customers',
    [['customers.email'], ['customers.email'], ['customers.ssn'], ['customers.ssn']],
  ],
  ["SELECT encode(convert_to(email, 'UTF8'), 'base64') FROM customers", [['customers.email']]],
  [
    'SELECT substr(ssn, 1, 3), substring(ssn FROM 2), concat(email, city), email || phone FROM customers',
    [['customers.ssn'], ['customers.ssn'], ['customers.email', 'customers.city'], ['customers.email', 'customers.phone']],
  ],
  [
    "SELECT format('%s-%s', iban, card_number), overlay(card_number placing 'x' from 1) FROM customers",
    [['customers.iban', 'customers.card_number'], ['customers.card_number']],
  ],
  [
    'SELECT email::text, CAST(ssn AS bytea), ssn::varchar(3), (phone)::int FROM customers',
    [['customers.email'], ['customers.ssn'], ['customers.ssn'], ['customers.phone']],
  ],
  // CASE: the branches and the conditions (a condition on ssn tells something about ssn).
  ['SELECT CASE WHEN id > 1 THEN email ELSE city END FROM customers', [['customers.id', 'customers.email', 'customers.city']]],
  ["SELECT CASE ssn WHEN '1' THEN 'a' ELSE 'b' END FROM customers", [['customers.ssn']]],
  [
    "SELECT COALESCE(phone, ssn), NULLIF(email, ''), GREATEST(city, email) FROM customers",
    [['customers.phone', 'customers.ssn'], ['customers.email'], ['customers.city', 'customers.email']],
  ],
  [
    'SELECT ROW(email, ssn), ARRAY[iban, card_number] FROM customers',
    [
      ['customers.email', 'customers.ssn'],
      ['customers.iban', 'customers.card_number'],
    ],
  ],
  ["SELECT jsonb_build_object('e', email)->>'e', (ARRAY[ssn])[1] FROM customers", [['customers.email'], ['customers.ssn']]],
  ['SELECT email COLLATE "C", ssn IS NULL, email LIKE \'%@x\' FROM customers', [['customers.email'], ['customers.ssn'], ['customers.email']]],
  ["SELECT 1, 'constant', now(), NULL::text FROM customers", [[], [], [], []]],
];

const AGGREGATES: readonly Row[] = [
  [
    "SELECT string_agg(email, ','), max(ssn), array_agg(phone ORDER BY created_at), json_agg(c) FROM customers c",
    [['customers.email'], ['customers.ssn'], ['customers.phone', 'customers.created_at'], ALL_CUSTOMERS],
  ],
  // count() is a number, never a value.
  ['SELECT count(*), count(email), count(DISTINCT ssn), pg_catalog.count(iban) FROM customers', [[], [], [], []]],
  ['SELECT city, count(*) FROM customers GROUP BY city HAVING max(ssn) > $$1$$', [['customers.city'], []]],
  ["SELECT min(email) FILTER (WHERE city = 'x') FROM customers", [['customers.email', 'customers.city']]],
  ['SELECT row_number() OVER (ORDER BY ssn), lag(email) OVER (PARTITION BY city) FROM customers', [['customers.ssn'], ['customers.email', 'customers.city']]],
  ['SELECT sum(total) OVER w FROM orders WINDOW w AS (PARTITION BY customer_id)', [['orders.total']]],
  ['SELECT count(*) OVER (PARTITION BY ssn) FROM customers', [['customers.ssn']]],
];

const WHOLE_ROWS: readonly Row[] = [
  ['SELECT row_to_json(c), to_jsonb(c), c, c::text FROM customers c', [ALL_CUSTOMERS, ALL_CUSTOMERS, ALL_CUSTOMERS, ALL_CUSTOMERS]],
  ['SELECT (c).email FROM customers c', [ALL_CUSTOMERS]],
  ['SELECT customers FROM customers', [ALL_CUSTOMERS]],
  ['SELECT row_to_json(customers.*) FROM customers', [ALL_CUSTOMERS]],
  ['SELECT row_to_json(s) FROM (SELECT email FROM customers) s', [['customers.email']]],
  ['SELECT to_json(o), c.id FROM orders o JOIN customers c ON c.id = o.customer_id', [ALL_ORDERS, ['customers.id']]],
  // A system column is not in the catalog's list: the whole row, never nothing.
  ['SELECT ctid, c.xmin FROM customers c', [ALL_CUSTOMERS, ALL_CUSTOMERS]],
];

const SUBQUERIES: readonly Row[] = [
  ['SELECT (SELECT email FROM customers c WHERE c.id = o.customer_id) FROM orders o', [['customers.email']]],
  ['SELECT o.id, (SELECT max(c.ssn) FROM customers c WHERE c.id = o.customer_id) AS s FROM orders o', [['orders.id'], ['customers.ssn']]],
  ['SELECT (SELECT o.note) FROM orders o', [['orders.note']]],
  ['SELECT EXISTS (SELECT email FROM customers) FROM orders', [[]]],
  ["SELECT id FROM orders WHERE customer_id IN (SELECT id FROM customers WHERE ssn LIKE '1%')", [['orders.id']]],
  ['SELECT ARRAY(SELECT ssn FROM customers)', [['customers.ssn']]],
  ['SELECT customer_id = ANY (SELECT id FROM customers) FROM orders', [['orders.customer_id']]],
  ['SELECT (SELECT * FROM (SELECT ssn FROM customers) q LIMIT 1) FROM orders', [['customers.ssn']]],
  ['SELECT (SELECT c FROM customers c LIMIT 1)', [ALL_CUSTOMERS]],
];

const CTES: readonly Row[] = [
  ['WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x', [['customers.email']]],
  ['WITH x(a, b) AS (SELECT ssn, city FROM customers) SELECT b, a FROM x', [['customers.city'], ['customers.ssn']]],
  ['WITH x AS (SELECT * FROM customers) SELECT * FROM x', each('customers', CUSTOMERS)],
  ['WITH x AS (SELECT email FROM customers), y AS (SELECT upper(email) AS u FROM x) SELECT u FROM y', [['customers.email']]],
  ['WITH customers AS (SELECT note AS email FROM orders) SELECT email FROM customers', [['orders.note']]],
  ['WITH x AS (SELECT 1 AS a) SELECT email, a FROM customers, x', [['customers.email'], []]],
  ['WITH x AS MATERIALIZED (SELECT ssn FROM customers) SELECT * FROM x', [['customers.ssn']]],
  ['WITH RECURSIVE r(n, v) AS (SELECT 1, email FROM customers UNION ALL SELECT n + 1, v FROM r WHERE n < 3) SELECT * FROM r', [[], ['customers.email']]],
  ['WITH RECURSIVE r(n, v) AS (SELECT 1, email FROM customers UNION ALL SELECT * FROM r) SELECT v FROM r', [['customers.email']]],
  // The value walks one column per iteration: the fixed point must follow it all the way.
  [
    'WITH RECURSIVE r(a, b, c, d, e, f, g, h, i, j) AS (SELECT ssn, 1, 1, 1, 1, 1, 1, 1, 1, ' +
      '1 FROM customers UNION ALL SELECT 1, a, b, c, d, e, f, g, h, i FROM r) SELECT j FROM r',
    [['customers.ssn']],
  ],
  // WITH RECURSIVE: an item may use one written after it, which hides the table of that name.
  ['WITH RECURSIVE a AS (SELECT * FROM orders), orders AS (SELECT ssn FROM customers) SELECT * FROM a', [['customers.ssn']]],
  // SEARCH / CYCLE add columns made of the row's values.
  [
    'WITH RECURSIVE t(a) AS (SELECT ssn FROM customers UNION ALL SELECT a FROM t) SEARCH DEPTH FIRST BY a SET ord SELECT ord, a FROM t',
    [['customers.ssn'], ['customers.ssn']],
  ],
  [
    'WITH RECURSIVE t(a) AS (SELECT ssn FROM customers UNION ALL SELECT a FROM t) CYCLE a SET cyc USING pth SELECT * FROM t',
    [['customers.ssn'], [], ['customers.ssn']],
  ],
  ['WITH u AS (UPDATE customers SET city = ssn RETURNING city) SELECT * FROM u', [['customers.city', 'customers.ssn']]],
];

const FROM_SUBSELECTS: readonly Row[] = [
  ['SELECT s.a FROM (SELECT email, city FROM customers) AS s(a, b)', [['customers.email']]],
  ['SELECT b FROM (SELECT email, city FROM customers) AS s(a, b)', [['customers.city']]],
  ['SELECT * FROM (SELECT upper(email) AS u FROM customers) s', [['customers.email']]],
  ['SELECT s.upper FROM (SELECT upper(email) FROM customers) s', [['customers.email']]],
  ['SELECT x.e FROM (SELECT (SELECT email FROM customers LIMIT 1) AS e) x', [['customers.email']]],
  ['SELECT x.email FROM (SELECT (SELECT email FROM customers LIMIT 1)) x', [['customers.email']]],
  // Output names follow PostgreSQL's FigureColname: `x.case` is the first column, `s.email` the CASE.
  ['SELECT x.case FROM (SELECT CASE WHEN true THEN ssn END COLLATE "C", (CASE WHEN true THEN city END)::text FROM customers) x', [['customers.ssn']]],
  ['SELECT s.email FROM (SELECT CASE WHEN id > 0 THEN city ELSE email END FROM customers) s', [['customers.id', 'customers.city', 'customers.email']]],
  ["SELECT s.text FROM (SELECT (ssn || '')::text FROM customers) s", [['customers.ssn']]],
  ['SELECT l.e FROM orders o, LATERAL (SELECT email AS e FROM customers c WHERE c.id = o.customer_id) l', [['customers.email']]],
  ['SELECT l.ssn FROM customers c JOIN LATERAL (SELECT c.ssn) l ON true', [['customers.ssn']]],
  ['SELECT l.x FROM customers c, LATERAL (SELECT c.ssn AS x) l', [['customers.ssn']]],
  ['SELECT l.ssn FROM customers c, LATERAL (SELECT * FROM generate_series(1, 2), (SELECT c.ssn AS ssn) z) l', [['customers.ssn']]],
  // A sub-select that is not LATERAL does not see earlier FROM items: `o` is the outer customers.
  ['SELECT (SELECT t.x FROM orders o, (SELECT o.ssn AS x) t) FROM customers o', [['customers.ssn']]],
  // A column at an outer level beats a whole-row reference at an inner one.
  ['SELECT (SELECT ssn FROM orders ssn) FROM customers', [['customers.ssn']]],
  // A column may come from an entry of unknown width, or from further out.
  ['SELECT (SELECT ssn FROM generate_series(1, 1) g) FROM customers', [['customers.ssn']]],
  // s's column is named ssn by PostgreSQL (from the `*`); its name is unknown here, so it may be the one.
  ['SELECT (SELECT ssn FROM (SELECT (SELECT * FROM (SELECT note AS ssn FROM orders) q)) s) FROM customers', [['orders.note', 'customers.ssn']]],
  ['SELECT s.ssn FROM (SELECT (SELECT * FROM (SELECT note AS ssn FROM orders) q)) s', [['orders.note']]],
];

const SET_OPERATIONS: readonly Row[] = [
  ['SELECT email FROM customers UNION SELECT city FROM customers', [['customers.email', 'customers.city']]],
  [
    'SELECT id, email FROM customers UNION ALL SELECT id, note FROM orders',
    [
      ['customers.id', 'orders.id'],
      ['customers.email', 'orders.note'],
    ],
  ],
  ['SELECT email FROM customers INTERSECT SELECT note FROM orders EXCEPT SELECT status FROM orders', [['customers.email', 'orders.note', 'orders.status']]],
  ['(SELECT email FROM customers) UNION (SELECT ssn FROM customers ORDER BY 1 LIMIT 1)', [['customers.email', 'customers.ssn']]],
  ['SELECT email FROM customers UNION SELECT * FROM generate_series(1, 2)', [['customers.email']]],
  ['SELECT * FROM generate_series(1, 2) UNION SELECT ssn FROM customers', [['customers.ssn']]],
  ['SELECT e FROM (SELECT email AS e FROM customers UNION SELECT phone FROM customers) s', [['customers.email', 'customers.phone']]],
];

const VALUES_ROWS: readonly Row[] = [
  ["VALUES (1, 'a')", [[], []]],
  ["SELECT * FROM (VALUES (1, 'x')) v(a, b)", [[], []]],
  ['SELECT v.a FROM customers c, LATERAL (VALUES (c.email), (c.phone)) v(a)', [['customers.email', 'customers.phone']]],
  ['VALUES ((SELECT ssn FROM customers LIMIT 1), 2)', [['customers.ssn'], []]],
  ['SELECT column1 FROM (VALUES ((SELECT iban FROM customers LIMIT 1))) v', [['customers.iban']]],
];

const VIEWS: readonly Row[] = [
  [
    'SELECT * FROM customer_contacts',
    [
      ['customer_contacts.id', 'customers.id'],
      ['customer_contacts.full_name', 'customers.full_name'],
      ['customer_contacts.contact', 'customers.email'],
      ['customer_contacts.reach', 'customers.phone'],
      ['customer_contacts.city', 'customers.city'],
    ],
  ],
  [
    'SELECT contact, reach FROM customer_contacts',
    [
      ['customer_contacts.contact', 'customers.email'],
      ['customer_contacts.reach', 'customers.phone'],
    ],
  ],
  ['SELECT upper(v.contact) FROM customer_contacts v', [['customer_contacts.contact', 'customers.email']]],
  [
    'SELECT * FROM contact_names',
    [
      ['contact_names.who', 'customer_contacts.full_name', 'customers.full_name'],
      ['contact_names.contact', 'customer_contacts.contact', 'customers.email'],
    ],
  ],
  ['SELECT n.contact FROM contact_names n JOIN orders o ON true', [['contact_names.contact', 'customer_contacts.contact', 'customers.email']]],
  [
    'SELECT row_to_json(v) FROM customer_contacts v',
    [[...all('customer_contacts', CONTACTS), 'customers.id', 'customers.full_name', 'customers.email', 'customers.phone', 'customers.city']],
  ],
  ['WITH v AS (SELECT reach FROM public.customer_contacts) SELECT reach FROM v', [['customer_contacts.reach', 'customers.phone']]],
];

const FUNCTIONS_IN_FROM: readonly Row[] = [
  ['SELECT u FROM customers, unnest(array[email]) u', [['customers.email']]],
  ['SELECT x FROM customers c, unnest(array[c.ssn]) AS u(x)', [['customers.ssn']]],
  ['SELECT * FROM customers c, unnest(array[c.ssn]) AS u(x)', null],
  ['SELECT g FROM generate_series(1, 3) g', [[]]],
  ['SELECT j.value FROM customers c, jsonb_each_text(to_jsonb(c)) j', [ALL_CUSTOMERS]],
  ["SELECT r.a FROM customers c, json_to_record(json_build_object('a', c.iban)) AS r(a text, b int)", [['customers.iban']]],
  ['SELECT t.e FROM customers c, ROWS FROM (unnest(array[c.email]), unnest(array[c.phone])) AS t(e, p)', [['customers.email', 'customers.phone']]],
];

const DML: readonly Row[] = [
  ["UPDATE customers SET city = 'x' RETURNING email", [['customers.email']]],
  // RETURNING shows the new row: what was assigned flows out.
  ['UPDATE customers SET city = ssn RETURNING city', [['customers.city', 'customers.ssn']]],
  [
    'UPDATE customers c SET (city, phone) = (SELECT iban, card_number FROM customers LIMIT 1) RETURNING c.city',
    [['customers.city', 'customers.iban', 'customers.card_number']],
  ],
  [
    'UPDATE customers SET city = upper(o.note) FROM orders o WHERE o.customer_id = customers.id RETURNING customers.city, o.status',
    [['customers.city', 'orders.note'], ['orders.status']],
  ],
  ['DELETE FROM customers RETURNING *', each('customers', CUSTOMERS)],
  ['DELETE FROM orders o USING customers c WHERE c.id = o.customer_id RETURNING c.email', [['customers.email']]],
  ['DELETE FROM customers', []],
  ['INSERT INTO customers (id, city) SELECT id, ssn FROM customers RETURNING city, email', [['customers.city', 'customers.ssn'], ['customers.email']]],
  [
    "INSERT INTO orders VALUES (1, 2, 'new', 10, now(), (SELECT ssn FROM customers LIMIT 1)) RETURNING note, status",
    [['orders.note', 'customers.ssn'], ['orders.status']],
  ],
  [
    'INSERT INTO customers (id, city) SELECT id, ssn FROM customers ON CONFLICT (id) DO UPDATE SET email = excluded.city RETURNING email',
    [['customers.email', 'customers.ssn']],
  ],
  [
    'MERGE INTO customers t USING orders s ON t.id = s.id WHEN MATCHED THEN UPDATE SET city = s.note ' +
      'WHEN NOT MATCHED THEN INSERT (id, email) VALUES (s.id, s.status) RETURNING t.city, t.email, t.ssn',
    [['customers.city', 'orders.note'], ['customers.email', 'orders.status'], ['customers.ssn']],
  ],
  // The target is the real table even when a CTE has its name.
  ["WITH customers AS (SELECT 1 AS x) UPDATE customers SET city = 'a' RETURNING ssn", [['customers.ssn']]],
  ['WITH orders AS (SELECT ssn FROM customers) INSERT INTO orders (note) SELECT ssn FROM orders RETURNING note', [['orders.note', 'customers.ssn']]],
];

const UNKNOWN: readonly Row[] = [
  ['SELECT a FROM nowhere', [['?']]],
  ['SELECT * FROM nowhere', null],
  ['SELECT n.a, c.email FROM nowhere n, customers c', [['?'], ['customers.email']]],
  // `email` might be a column of nowhere.
  ['SELECT email FROM customers, nowhere', [['customers.email', '?']]],
  ['SELECT x FROM (SELECT * FROM nowhere) s(x)', [['?']]],
  ['SELECT email FROM customers UNION SELECT * FROM nowhere', [['customers.email', '?']]],
  ['SELECT relname FROM pg_class', [['pg_catalog.pg_class.relname']]],
  ['SELECT c.relname, n.email FROM pg_catalog.pg_class c, customers n', [['pg_catalog.pg_class.relname'], ['customers.email']]],
];

describe('analyzeLineage', () => {
  describe('direct columns, aliases and stars', () => check(DIRECT, catalog));
  describe('joins', () => check(JOINS, catalog));
  describe('functions, casts and operators', () => check(EXPRESSIONS, catalog));
  describe('aggregates and window functions', () => check(AGGREGATES, catalog));
  describe('whole-row references', () => check(WHOLE_ROWS, catalog));
  describe('scalar, correlated and EXISTS sub-queries', () => check(SUBQUERIES, catalog));
  describe('CTEs', () => check(CTES, catalog));
  describe('sub-selects in FROM and LATERAL', () => check(FROM_SUBSELECTS, catalog));
  describe('set operations', () => check(SET_OPERATIONS, catalog));
  describe('VALUES', () => check(VALUES_ROWS, catalog));
  describe('views', () => check(VIEWS, catalog));
  describe('functions in FROM', () => check(FUNCTIONS_IN_FROM, catalog));
  describe('DML with RETURNING', () => check(DML, catalog));
  describe('unknown relations and pg_catalog', () => check(UNKNOWN, catalog));

  describe('functions outside pg_catalog are opaque (when the catalog says where a function lives)', () =>
    check(
      [
        ['SELECT lookup_ssn(id) FROM customers', [['customers.id', '?']]],
        ['SELECT public.lookup_ssn(1)', [['?']]],
        ['SELECT upper(email), pg_catalog.lower(city) FROM customers', [['customers.email'], ['customers.city']]],
        ['SELECT mystery(email) FROM customers', [['customers.email', '?']]],
        // A count is a number, whatever it counts.
        ['SELECT count(*), count(lookup_ssn(id)) FROM customers', [[], []]],
        ['SELECT x FROM get_customers() AS g(x text)', [['?']]],
        // Attribute notation: c.f and (c).f mean f(c).
        ['SELECT c.lookup_ssn FROM customers c', [[...ALL_CUSTOMERS, '?']]],
        ['SELECT (c).lookup_ssn FROM customers c', [[...ALL_CUSTOMERS, '?']]],
        ['SELECT (c).email, c.email FROM customers c', [ALL_CUSTOMERS, ['customers.email']]],
      ],
      withFunctions,
    ));

  it('without the function hook, a call derives from its arguments only', () => {
    const lineage = analyzeLineage(statement('SELECT lookup_ssn(id) FROM customers'), catalog);
    expect(lineage.outputs?.map(sorted)).toEqual([['public.customers.id']]);
  });

  it('has a large table', () => {
    const rows = [
      DIRECT,
      JOINS,
      EXPRESSIONS,
      AGGREGATES,
      WHOLE_ROWS,
      SUBQUERIES,
      CTES,
      FROM_SUBSELECTS,
      SET_OPERATIONS,
      VALUES_ROWS,
      VIEWS,
      FUNCTIONS_IN_FROM,
      DML,
      UNKNOWN,
    ];
    expect(rows.reduce((n, r) => n + r.length, 0)).toBeGreaterThanOrEqual(100);
  });
});

describe('referenced', () => {
  const referenced = (sql: string, using: LineageCatalog = catalog): string[] => sorted(analyzeLineage(statement(sql), using).referenced);

  it('holds every column of each relation read, wherever it is read', () => {
    const both = sorted([...ALL_CUSTOMERS, ...ALL_ORDERS].map(q));
    expect(referenced('SELECT count(*) FROM customers WHERE id IN (SELECT customer_id FROM orders)')).toEqual(both);
    expect(referenced('SELECT 1 WHERE EXISTS (SELECT 1 FROM customers c JOIN orders o ON true)')).toEqual(both);
    expect(referenced('SELECT 1 ORDER BY (SELECT max(ssn) FROM customers), (SELECT 1 FROM orders LIMIT 1)')).toEqual(both);
    expect(referenced('DELETE FROM orders WHERE note = (SELECT ssn FROM customers LIMIT 1)')).toEqual(both);
  });

  it('holds a view and what its definition reads', () => {
    expect(referenced('SELECT 1 FROM contact_names')).toEqual(
      sorted([...all('contact_names', NAMES), ...all('customer_contacts', CONTACTS), ...ALL_CUSTOMERS].map(q)),
    );
  });

  it('marks an unknown relation as opaque', () => {
    expect(referenced('SELECT 1 FROM nowhere')).toContain(OPAQUE);
    expect(referenced('SELECT email FROM customers WHERE EXISTS (SELECT 1 FROM nowhere)')).toContain(OPAQUE);
  });

  it('covers what EXPLAIN ANALYZE reads (its errors can quote values), but not the plan text', () => {
    const lineage = analyzeLineage(statement('EXPLAIN ANALYZE SELECT ssn::int FROM customers'), catalog);
    expect(lineage.outputs?.map(sorted)).toEqual([[]]);
    expect(sorted(lineage.referenced)).toEqual(sorted(ALL_CUSTOMERS.map(q)));
  });

  it('covers what CREATE TABLE AS, SELECT INTO, DECLARE and COPY read', () => {
    for (const sql of [
      'CREATE TABLE b AS SELECT ssn FROM customers',
      'SELECT ssn INTO b FROM customers',
      'DECLARE c CURSOR FOR SELECT ssn FROM customers',
      'COPY customers TO STDOUT',
      'COPY (SELECT ssn FROM customers) TO STDOUT',
    ]) {
      expect(referenced(sql), sql).toEqual(expect.arrayContaining(ALL_CUSTOMERS.map(q)));
    }
  });

  it('is opaque for statements whose rows or errors come from where the tree does not show', () => {
    for (const sql of [
      'FETCH ALL FROM c',
      'EXECUTE p',
      'CALL p()',
      'ALTER TABLE customers ALTER ssn TYPE int USING ssn::int',
      'CREATE UNIQUE INDEX ON customers (email)',
    ]) {
      const lineage = analyzeLineage(statement(sql), catalog);
      expect(lineage.outputs, sql).toBeNull();
      expect(lineage.referenced, sql).toContain(OPAQUE);
    }
  });

  it('is empty for statements that carry no data', () => {
    for (const sql of ['SHOW search_path', 'SET search_path = x', 'BEGIN', 'LISTEN x']) {
      expect(referenced(sql), sql).toEqual([]);
    }
  });

  it('gives up safely on a statement too large to analyse', () => {
    const sql = `SELECT ${Array.from({ length: 21_000 }, () => '(SELECT email FROM customers)').join(', ')}`;
    const lineage = analyzeLineage(statement(sql), catalog);
    expect(lineage.outputs).toBeNull();
    expect(lineage.referenced).toContain(OPAQUE);
  });
});
