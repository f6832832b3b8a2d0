// Permanent masking-evasion suite for run_sql: every way of getting a masked
// value out of the database that ever worked (or could) stays here forever. No
// value from DEMO_PII (emails, SSNs, cards except their last four digits,
// IBANs, phones) nor any customer's full name (masked by the default policy),
// nor the secrets in audit_notes, may appear in the answer text, the structured
// content or the error text — in any of these forms: as stored, upper-case,
// lower-case, reversed, base64 or hex. Values that are not sensitive must keep
// coming back exactly (false positives are bugs too). Rows holding provider
// tokens and named credentials (every family of the secret catalog, fake values
// from test/support/fake-secrets.ts) come back masked in every shape a read
// gives them: as stored, as JSON, aggregated, and inside error text.

import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cell } from '../../../src/backends/backend.js';
import { DEMO_NOTE_SECRETS, DEMO_PII } from '../../../dev/seed.js';
import { callTool, type CallResult } from '../../../src/pipeline/callTool.js';
import { openGateway } from '../../../src/pipeline/gateway.js';
import { DEFAULT_POLICY, as, freshDatabase, testGateway, writeConfig, type FreshDatabase, type TestGateway } from '../../support/fixtures.js';
import { SHAPE_DETECTED, encodings, expectedMasks, fakeSecrets, leakedSecrets } from '../../support/fake-secrets.js';

const analyst = as('ana@example.com', ['analysts']);

// ---------------------------------------------------------------------------------------------
// Leak detection

/**
 * True when `text` contains `value` in any recognisable form. For cards the last
 * four digits may show (the last4 style), so only the full number counts.
 */
export function leaks(text: string, value: string): boolean {
  if (value.length === 0) return false;
  return encodings(value).some((form) => text.includes(form));
}

interface Secret {
  readonly kind: string;
  readonly value: string;
  /** Only the value as stored counts (secrets found by content detectors, not masked columns). */
  readonly exact?: boolean;
}

let secrets: Secret[] = [];

function allText(r: CallResult): string {
  return r.ok ? `${r.text}\n${JSON.stringify(r.structured)}` : `${r.text}\n${r.error.message}\n${r.error.hint}\n${JSON.stringify(r.error.details)}`;
}

function expectNoLeak(r: CallResult): void {
  const text = allText(r);
  const found = secrets.filter((s) => (s.exact ? s.value.length > 0 && text.includes(s.value) : leaks(text, s.value)));
  expect(
    found.map((s) => `${s.kind}: ${s.value}`),
    `leaked in:\n${text.slice(0, 2000)}`,
  ).toEqual([]);
}

const isMasked = (cell: Cell): boolean => typeof cell === 'string' && /^\[(masked|hash):/.test(cell);

// ---------------------------------------------------------------------------------------------
// Cases

interface Case {
  readonly name: string;
  readonly sql: string;
  /** 'rows': runs and every non-null cell of the listed columns (default: all) is masked. 'error': refused or failed. */
  readonly expect: 'rows' | 'error';
  readonly maskedColumns?: readonly number[];
}

const r = (name: string, sql: string, maskedColumns?: number[]): Case => ({ name, sql, expect: 'rows', ...(maskedColumns ? { maskedColumns } : {}) });
const e = (name: string, sql: string): Case => ({ name, sql, expect: 'error' });

const CASES: readonly Case[] = [
  // direct columns and aliases
  r('plain columns', 'SELECT email, ssn, phone, iban, full_name, card_number FROM customers'),
  r('alias', 'SELECT email AS x FROM customers'),
  r('qualified alias', 'SELECT c.email AS x FROM customers c'),
  r('quoted alias', 'SELECT email AS "Harmless Column", ssn AS "city" FROM customers'),
  r('swapped aliases', 'SELECT email AS city, city AS email FROM customers', [0]),
  r('schema-qualified', 'SELECT public.customers.ssn FROM public.customers'),
  r('SELECT *', 'SELECT * FROM customers', [1, 2, 3, 4, 5, 6]),
  r('TABLE customers', 'TABLE customers', [1, 2, 3, 4, 5, 6]),
  // functions
  r('upper/lower/reverse', 'SELECT upper(email), lower(full_name), reverse(ssn) FROM customers'),
  r('md5', 'SELECT md5(email) FROM customers'),
  r('substr/left/right', 'SELECT substr(ssn, 1, 3), left(card_number, 6), right(iban, 6) FROM customers'),
  r('concat and ||', "SELECT concat('x', phone), 'mailto:' || email, full_name || '' FROM customers"),
  r('replace/translate', "SELECT replace(email, '@', ' at '), translate(ssn, '-', ''), translate(full_name, 'aeiou', 'AEIOU') FROM customers"),
  r('format/overlay', "SELECT format('%s', iban), overlay(email placing 'X' from 1 for 1), format('%I', full_name) FROM customers"),
  r(
    'split_part/regexp_replace',
    "SELECT split_part(email, '@', 1), regexp_replace(ssn, '-', '', 'g'), regexp_replace(card_number, '(.)', '\\1 ', 'g') FROM customers",
  ),
  r(
    'base64 and hex',
    "SELECT encode(convert_to(email, 'UTF8'), 'base64'), encode(convert_to(ssn, 'UTF8'), 'hex'), encode(full_name::bytea, 'escape') FROM customers",
  ),
  r('casts', 'SELECT email::bytea, ssn::varchar(20), CAST(iban AS char(40)), phone::text::varchar, card_number::numeric FROM customers'),
  r('initcap/btrim/lpad', "SELECT initcap(full_name), btrim(' ' || ssn || ' '), lpad(phone, 30, '*') FROM customers"),
  r('string_to_array/array subscript', "SELECT string_to_array(email, '.'), (ARRAY[iban])[1] FROM customers"),
  r('set-returning function in the target list', "SELECT regexp_split_to_table(full_name, ' ') FROM customers"),
  r('collate', 'SELECT email COLLATE "C" FROM customers'),
  r('xml functions', 'SELECT xmlelement(name x, email), xmlforest(ssn, full_name) FROM customers'),
  r('tsvector', 'SELECT to_tsvector(full_name) FROM customers'),
  // whole-row references
  r('row_to_json(c)', 'SELECT row_to_json(c) FROM customers c'),
  r('to_json / to_jsonb', 'SELECT to_json(c), to_jsonb(c) FROM customers c'),
  r('json_agg(c)', 'SELECT json_agg(c) FROM customers c'),
  r('bare row alias', 'SELECT c FROM customers c'),
  r('row cast to text', 'SELECT c::text FROM customers c'),
  r('ROW(c.*)', 'SELECT ROW(c.*) FROM customers c'),
  r('(c).email field selection', 'SELECT (c).email, (c).full_name FROM customers c'),
  r('row alias without table alias', 'SELECT customers FROM customers'),
  r('jsonb_each_text of the row', 'SELECT t.* FROM customers c, jsonb_each_text(to_jsonb(c)) t'),
  r('json_populate_record round trip', 'SELECT (json_populate_record(null::customers, row_to_json(c))).ssn FROM customers c'),
  r('(c).* expansion', 'SELECT (c).* FROM customers c', [1, 2, 3, 4, 5, 6]),
  r('row from a scalar subquery, expanded', 'SELECT ((SELECT c FROM customers c ORDER BY id LIMIT 1)).*', [1, 2, 3, 4, 5, 6]),
  r('row column of a subquery, field selected', 'SELECT (s.x).email FROM (SELECT c FROM customers c) s(x)'),
  r(
    'jsonb_populate_recordset back into rows',
    'SELECT x.email, x.full_name FROM jsonb_populate_recordset(null::customers, (SELECT jsonb_agg(c) FROM customers c)) x',
  ),
  r('json_to_recordset with a column definition list', 'SELECT * FROM json_to_recordset((SELECT json_agg(c) FROM customers c)) AS x(ssn text, iban text)'),
  r('jsonb_path_query on the row', "SELECT jsonb_path_query(to_jsonb(c), '$.email') FROM customers c"),
  r('LATERAL VALUES', 'SELECT v.* FROM customers c CROSS JOIN LATERAL (VALUES (c.phone, c.full_name)) v'),
  r('array of rows', 'SELECT ARRAY[ROW(c.*)] FROM customers c'),
  r('GROUP BY ROLLUP', 'SELECT email FROM customers GROUP BY ROLLUP (email)'),
  // aggregates
  r('string_agg', "SELECT string_agg(email, ',') FROM customers"),
  r('array_agg', 'SELECT array_agg(ssn) FROM customers'),
  r('max/min', 'SELECT max(ssn), min(iban), max(full_name) FROM customers'),
  r('ordered-set aggregate', 'SELECT mode() WITHIN GROUP (ORDER BY email), percentile_disc(0.5) WITHIN GROUP (ORDER BY phone) FROM customers'),
  r('json_object_agg', 'SELECT json_object_agg(id, email) FROM customers'),
  r('GROUP BY masked column', 'SELECT email, count(*) FROM customers GROUP BY email', [0]),
  r('DISTINCT ON', 'SELECT DISTINCT ON (email) email FROM customers'),
  // views
  r('view renames: contact / reach', 'SELECT contact, reach FROM customer_contacts'),
  r('view via SELECT *', 'SELECT * FROM customer_contacts', [1, 2, 3]),
  r('view column through a function', 'SELECT upper(contact), reverse(reach) FROM customer_contacts'),
  r('view whole row', 'SELECT to_jsonb(v) FROM customer_contacts v'),
  r('join with USING through a view', 'SELECT * FROM customers JOIN customer_contacts USING (id)', [1, 2, 3, 4, 5, 6, 9, 10, 11]),
  // CTEs and subqueries
  r('CTE', 'WITH x AS (SELECT email AS e FROM customers) SELECT e FROM x'),
  r('CTE with column aliases', 'WITH x(a, b) AS (SELECT ssn, iban FROM customers) SELECT b, a FROM x'),
  r(
    'recursive CTE',
    'WITH RECURSIVE r(n, v) AS (SELECT 1, (SELECT email FROM customers ORDER BY id LIMIT 1) UNION ALL SELECT n + 1, v FROM r WHERE n < 2) SELECT v FROM r',
  ),
  r('subquery in FROM', 'SELECT s.e FROM (SELECT email AS e FROM customers) s'),
  r('scalar subquery', 'SELECT (SELECT email FROM customers c WHERE c.id = o.customer_id) FROM orders o ORDER BY o.id LIMIT 5'),
  r('ARRAY subquery', 'SELECT ARRAY(SELECT ssn FROM customers)'),
  r('VALUES with a subquery', 'SELECT * FROM (VALUES ((SELECT full_name FROM customers ORDER BY id LIMIT 1))) v(x)'),
  // set operations, joins, lateral
  r('UNION with a non-masked column', 'SELECT city FROM customers UNION ALL SELECT email FROM customers'),
  r('INTERSECT/EXCEPT', 'SELECT ssn FROM customers EXCEPT SELECT city FROM customers'),
  r('LATERAL', 'SELECT l.e FROM customers c, LATERAL (SELECT c.email AS e) l'),
  r('unnest(array[email])', 'SELECT u FROM customers, unnest(array[email, ssn]) u'),
  r('unnest in target list', 'SELECT unnest(array[email, iban]) FROM customers'),
  r('generate_series join', 'SELECT g, c.email FROM generate_series(1, 3) g JOIN customers c ON c.id = g', [1]),
  r('join with orders', 'SELECT c.full_name, o.total FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 5', [0]),
  // json builders, windows, conditionals
  r('jsonb_build_object', "SELECT jsonb_build_object('e', email, 'n', full_name) FROM customers"),
  r('json_build_array', 'SELECT json_build_array(ssn, iban, phone) FROM customers'),
  r('window lag/first_value', 'SELECT lag(email) OVER (ORDER BY id), first_value(ssn) OVER (ORDER BY id) FROM customers'),
  r('CASE', 'SELECT CASE WHEN true THEN ssn END FROM customers'),
  r('coalesce/nullif/greatest', "SELECT coalesce(null, iban), nullif(email, ''), greatest(full_name, '') FROM customers"),
  // catalog views that carry other tables' values
  r('pg_stats histogram of customers', "SELECT attname, most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename = 'customers'", [1, 2]),
  r('pg_stats whole row', "SELECT s FROM pg_stats s WHERE tablename = 'customers' AND attname = 'full_name'"),
  r('pg_stats via SELECT *', "SELECT * FROM pg_stats WHERE tablename = 'customers' AND attname = 'full_name'", []),
  // content detectors: free text
  r('audit notes free text', 'SELECT body FROM audit_notes ORDER BY id', []),
  r('audit notes through functions', "SELECT upper(body), body || ' ' FROM audit_notes", []),
  r('secrets typed as literals by the agent', `SELECT '${DEMO_NOTE_SECRETS.jwt}' AS t, '${DEMO_NOTE_SECRETS.postgresUrl}' AS u`, []),
  // error text
  e('email::int error', 'SELECT email::int FROM customers'),
  e('ssn::date error', 'SELECT ssn::date FROM customers'),
  e('full_name::numeric error', 'SELECT full_name::numeric FROM customers'),
  e('iban::uuid error', 'SELECT iban::uuid FROM customers'),
  e('phone::inet error', 'SELECT phone::inet FROM customers'),
  e('division by zero filtered on email', `SELECT 1/0 FROM customers WHERE email = '${DEMO_PII.emails[0]}'`),
  e('xml cast error (value echoed unquoted in the detail)', "SELECT ('<' || full_name)::xml FROM customers"),
  e('xmlparse document error', 'SELECT xmlparse(document full_name) FROM customers'),
  e('agent-made quotes around the value in an error', `SELECT ('customers" ' || full_name || ' "customers')::int FROM customers`),
  e('agent-made lone quote before the value in an error', `SELECT ('customers" ' || full_name)::int FROM customers`),
  e(
    'invalid byte sequence echoes the bytes in hex',
    "SELECT convert_from('\\xe0'::bytea || convert_to(substr(full_name, 1, 2), 'UTF8'), 'UTF8') FROM customers",
  ),
  e('pg_stats value in an error', "SELECT histogram_bounds::text::int FROM pg_stats WHERE tablename = 'customers' AND attname = 'full_name'"),
  e('email::json error', 'SELECT email::json FROM customers'),
  e('full_name::regclass error', 'SELECT full_name::regclass FROM customers'),
  e('to_date error', "SELECT to_date(full_name, 'YYYY') FROM customers"),
  e('array literal error', "SELECT (full_name || '{')::int[] FROM customers"),
  e('current_setting error', 'SELECT current_setting(full_name) FROM customers'),
  e('cast error in WHERE', 'SELECT id FROM customers WHERE full_name::int > 0'),
  e('cast error via a view', 'SELECT contact::int FROM customer_contacts'),
  e('cast error via a whole row', 'SELECT (c::text)::int FROM customers c'),
  e('cast error via a CTE', 'WITH x AS (SELECT ssn FROM customers) SELECT ssn::int FROM x'),
  e('audit note cast error', 'SELECT body::int FROM audit_notes WHERE id = 4'),
  e('STABLE function raising an exception with the name', 'SELECT fail_with(full_name) FROM customers'),
  e('STABLE function raising an exception with the email', 'SELECT fail_with(email) FROM customers'),
];

const NOTICE_CASES: readonly Case[] = [
  r('notice with an email read inside the function', 'SELECT notify_contact(1)', []),
  r('notice with a name read inside the function', 'SELECT notify_name(1)', []),
  r('notice echoing a masked argument', 'SELECT shout(full_name) FROM customers WHERE id = 2', [0]),
  r('notice echoing an email argument', 'SELECT shout(email) FROM customers WHERE id = 3', [0]),
  r('function returning a name it reads itself', 'SELECT name_of(1)', [0]),
];

const SETUP_SQL = `
CREATE FUNCTION notify_contact(cid int) RETURNS int LANGUAGE plpgsql STABLE AS $$
DECLARE e text;
BEGIN
  SELECT email INTO e FROM customers WHERE id = cid;
  RAISE NOTICE 'contact is %', e;
  RETURN cid;
END $$;
CREATE FUNCTION notify_name(cid int) RETURNS int LANGUAGE plpgsql STABLE AS $$
DECLARE n text;
BEGIN
  SELECT full_name INTO n FROM customers WHERE id = cid;
  RAISE NOTICE 'customer is %', n;
  RETURN cid;
END $$;
CREATE FUNCTION shout(v text) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
  RAISE NOTICE 'value: %', v;
  RETURN length(v);
END $$;
CREATE FUNCTION fail_with(v text) RETURNS int LANGUAGE plpgsql STABLE AS $$
BEGIN
  RAISE EXCEPTION 'cannot process %', v USING DETAIL = 'value was ' || v;
END $$;
CREATE FUNCTION name_of(cid int) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT full_name FROM customers WHERE id = cid
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO drawbridge_gateway;
CREATE TABLE app_config (id int PRIMARY KEY, name text NOT NULL, body text NOT NULL);
GRANT SELECT ON app_config TO drawbridge_gateway;
`;

/** Fake credentials of every catalog family, stored as whole files and one row per env line. */
const TOKENS = fakeSecrets(3);

// ---------------------------------------------------------------------------------------------

let db: FreshDatabase;
let gw: TestGateway;
let names: string[] = [];

beforeAll(async () => {
  db = await freshDatabase('evasion_masking');
  await db.query(SETUP_SQL);
  let id = 0;
  for (const [name, body] of Object.entries(TOKENS.files)) await db.query('INSERT INTO app_config VALUES ($1, $2, $3)', [++id, name, body]);
  for (const line of TOKENS.files['app.env'].split('\n')) {
    const name = /^(?:export )?([A-Z0-9_]+)=/.exec(line)?.[1];
    if (name) await db.query('INSERT INTO app_config VALUES ($1, $2, $3)', [100 + ++id, `line:${name}`, line]);
  }
  await db.query('ANALYZE customers');
  names = (await db.query<{ full_name: string }>('SELECT full_name FROM customers ORDER BY id')).map((row) => row.full_name);
  const password = /:([^:@/]+)@/.exec(DEMO_NOTE_SECRETS.postgresUrl)?.[1] ?? '';
  secrets = [
    ...DEMO_PII.emails.map((value) => ({ kind: 'email', value })),
    ...DEMO_PII.ssns.map((value) => ({ kind: 'ssn', value })),
    ...DEMO_PII.cards.map((value) => ({ kind: 'card', value })),
    ...DEMO_PII.ibans.map((value) => ({ kind: 'iban', value })),
    ...DEMO_PII.phones.map((value) => ({ kind: 'phone', value })),
    ...names.map((value) => ({ kind: 'name', value })),
    // Free-text secrets are the content detectors' job; an agent that rewrites free text
    // (reverse, encode) defeats any detector — only a column rule holds (tested below).
    { kind: 'url password', value: password, exact: true },
    { kind: 'jwt', value: DEMO_NOTE_SECRETS.jwt, exact: true },
  ];
  gw = await testGateway(db);
});

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

describe('the leak detector itself', () => {
  it('finds every form and allows a card’s last four', () => {
    const email = DEMO_PII.emails[0] ?? '';
    const card = DEMO_PII.cards[0] ?? '';
    expect(names.length).toBe(50);
    expect(leaks(`x ${email.toUpperCase()} y`, email)).toBe(true);
    expect(leaks([...email].reverse().join(''), email)).toBe(true);
    expect(leaks(Buffer.from(email).toString('base64'), email)).toBe(true);
    expect(leaks(Buffer.from(email).toString('hex'), email)).toBe(true);
    expect(leaks(`[masked:card_number…${card.slice(-4)}]`, card)).toBe(false);
    expect(leaks('[masked:customers.email]', email)).toBe(false);
  });
});

describe('masked values never leave the gateway', () => {
  it(`has a large table of cases (${CASES.length + NOTICE_CASES.length})`, () => {
    expect(CASES.length + NOTICE_CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set([...CASES, ...NOTICE_CASES].map((c) => c.name)).size).toBe(CASES.length + NOTICE_CASES.length);
  });

  it.each([...CASES, ...NOTICE_CASES].map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const result = await gw.sql(c.sql, analyst);
    expectNoLeak(result);
    if (c.expect === 'error') {
      expect(result.ok, allText(result)).toBe(false);
      return;
    }
    expect(result.ok, allText(result)).toBe(true);
    if (!result.ok) return;
    const rows = result.structured.rows;
    expect(rows.length).toBeGreaterThan(0);
    const columns = c.maskedColumns ?? result.structured.columns.map((_, i) => i);
    for (const row of rows) {
      for (const i of columns) {
        const cell = row[i];
        if (cell !== null && cell !== undefined) expect(isMasked(cell), `column ${i}: ${String(cell)}`).toBe(true);
      }
    }
  });

  it('a notice carrying an email never shows it, and says it was masked', async () => {
    const result = await gw.sql('SELECT notify_contact(1)', analyst);
    expect(result.ok, allText(result)).toBe(true);
    if (!result.ok) return;
    expect(result.structured.notices.length).toBe(1);
    expect(result.structured.notices[0]).toContain('[masked');
    expectNoLeak(result);
  });

  it('the content detectors mask audit note secrets and keep the rest of the text', async () => {
    const result = await gw.sql('SELECT id, body FROM audit_notes ORDER BY id', analyst);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    const bodies = result.structured.rows.map((row) => String(row[1]));
    expect(bodies[0]).toMatch(/^Customer asked us to change the contact address to \[masked:email\]/);
    expect(bodies[2]).toContain('db.internal.example.com');
    expect(bodies[6]).toBe('Routine note: warehouse restocked SKU-0007, nothing sensitive here.');
    const detectors = new Set(result.structured.masked.filter((m) => m.by === 'detector').map((m) => m.target));
    for (const d of ['email', 'credit_card', 'password_in_url', 'jwt', 'ssn', 'iban', 'phone']) expect(detectors).toContain(d);
  });

  it('the journal holds no detectable PII from these calls', () => {
    const journal = new Database(gw.gateway.config.journal.path, { readonly: true, fileMustExist: true });
    try {
      const text = (journal.prepare('SELECT data FROM records').all() as Array<{ data: string }>).map((row) => row.data).join('\n');
      const detectable = secrets.filter((s) => s.kind !== 'name');
      expect(detectable.filter((s) => leaks(text, s.value)).map((s) => s.value)).toEqual([]);
    } finally {
      journal.close();
    }
  });
});

describe('values that are not sensitive come back exactly', () => {
  async function one(sql: string): Promise<Cell[][]> {
    const result = await gw.sql(sql, analyst);
    expect(result.ok, allText(result)).toBe(true);
    if (!result.ok) return [];
    expect(result.structured.masked).toEqual([]);
    return result.structured.rows;
  }

  it('order ids, totals, timestamps, dates', async () => {
    const expected = await db.query<{ id: number; total: string; created_at: string; day: string; status: string }>(
      'SELECT id, total::text, created_at::text, created_at::date::text AS day, status FROM orders WHERE id IN (1, 2, 3) ORDER BY id',
    );
    const rows = await one('SELECT id, total, created_at, created_at::date AS day, status FROM orders WHERE id IN (1, 2, 3) ORDER BY id');
    expect(rows).toEqual(expected.map((x) => [x.id, x.total, x.created_at, x.day, x.status]));
  });

  it('uuids', async () => {
    const rows = await one('SELECT gen_random_uuid()');
    expect(String(rows[0]?.[0])).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('product SKUs, names and prices', async () => {
    const rows = await one('SELECT sku, name, price FROM products ORDER BY id LIMIT 3');
    expect(rows).toEqual([
      ['SKU-0001', 'Espresso Beans 1kg', '24.90'],
      ['SKU-0002', 'Pour-over Kettle', '49.00'],
      ['SKU-0003', 'Ceramic Mug', '12.50'],
    ]);
  });

  it('city names', async () => {
    const expected = await db.query<{ city: string }>('SELECT city FROM customers ORDER BY id');
    const rows = await one('SELECT city FROM customers ORDER BY id');
    expect(rows).toEqual(expected.map((x) => [x.city]));
  });

  it('count(email) and count(*)', async () => {
    expect(await one('SELECT count(email), count(*) FROM customers')).toEqual([['50', '50']]);
  });

  it('EXISTS on a masked column is a plain boolean', async () => {
    expect(await one("SELECT EXISTS (SELECT 1 FROM customers WHERE email = 'nobody@example.org')")).toEqual([[false]]);
    expect(await one(`SELECT EXISTS (SELECT 1 FROM customers WHERE email = '${DEMO_PII.emails[1]}') AS found`)).toEqual([[true]]);
  });

  it('literals that look like identifiers, addresses and dates', async () => {
    expect(await one("SELECT 'ORD-2024-000123', '192.168.1.20', '2024-01-15'::date, 42, 19.99::numeric(10,2), 'v1.2.3'")).toEqual([
      ['ORD-2024-000123', '192.168.1.20', '2024-01-15', 42, '19.99', 'v1.2.3'],
    ]);
  });

  it('a join of orders and products by id', async () => {
    const rows = await one('SELECT o.id, o.customer_id, o.total FROM orders o WHERE o.id <= 2 ORDER BY o.id');
    const expected = await db.query<{ id: number; customer_id: number; total: string }>(
      'SELECT id, customer_id, total::text FROM orders WHERE id <= 2 ORDER BY id',
    );
    expect(rows).toEqual(expected.map((x) => [x.id, x.customer_id, x.total]));
  });
});

describe('statistics through a superuser connection', () => {
  it('pg_statistic sample values are of unknown origin and masked', async () => {
    const su = await testGateway({ ...db, gatewayUrl: db.superuserUrl });
    try {
      const cases = [
        "SELECT stavalues1::text, stavalues2::text, stavalues3::text FROM pg_statistic WHERE starelid = 'customers'::regclass",
        "SELECT s.* FROM pg_statistic s WHERE starelid = 'customers'::regclass",
        "SELECT histogram_bounds FROM pg_stats WHERE tablename = 'customers'",
      ];
      for (const sql of cases) {
        const result = await su.sql(sql, analyst);
        expect(result.ok, allText(result)).toBe(true);
        if (result.ok) expect(result.structured.rows.length).toBeGreaterThan(0);
        expectNoLeak(result);
      }
    } finally {
      await su.close();
    }
  });
});

describe('free text the agent transforms: a column rule holds where detectors cannot', () => {
  it('reverse / hex / base64 of audit_notes.body are masked once the column has a rule', async () => {
    const policy = DEFAULT_POLICY.replace('      - customers.full_name\n', '      - customers.full_name\n      - audit_notes.body\n');
    expect(policy).not.toBe(DEFAULT_POLICY);
    const g = await testGateway(db, { policy });
    try {
      const result = await g.sql(
        "SELECT reverse(body), encode(convert_to(body, 'UTF8'), 'hex'), encode(convert_to(body, 'UTF8'), 'base64'), upper(body) FROM audit_notes",
        analyst,
      );
      expect(result.ok, allText(result)).toBe(true);
      if (!result.ok) return;
      expect(result.structured.rows.length).toBe(8);
      for (const row of result.structured.rows) for (const cell of row) expect(isMasked(cell)).toBe(true);
      const text = allText(result);
      expect(secrets.filter((x) => leaks(text, x.value)).map((x) => x.value)).toEqual([]);
    } finally {
      await g.close();
    }
  });
});

describe('hash style: equal values correlate, keys matter', () => {
  const HASH_POLICY = DEFAULT_POLICY.replace('      - customers.email\n', '      - { column: customers.email, style: hash }\n');

  async function hashGateway(key: string) {
    const dir = writeConfig({ policy: HASH_POLICY, hashKey: true });
    const gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl, HASH_KEY: key } });
    return {
      sql: (sql: string) => callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity: analyst }),
      async close() {
        await gateway.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }

  it('hashes instead of redacting, consistently across columns, joins, views and calls', async () => {
    expect(HASH_POLICY).not.toBe(DEFAULT_POLICY);
    const h = await hashGateway('key-one');
    try {
      const a = await h.sql('SELECT a.email, b.email, a.id FROM customers a JOIN customers b ON a.id = b.id ORDER BY a.id');
      expect(a.ok, allText(a)).toBe(true);
      if (!a.ok) return;
      expectNoLeak(a);
      const rows = a.structured.rows;
      expect(rows.length).toBe(50);
      for (const row of rows) {
        expect(String(row[0])).toMatch(/^\[hash:customers\.email:[0-9a-f]{16}\]$/);
        expect(row[1]).toBe(row[0]);
      }
      expect(new Set(rows.map((row) => row[0])).size).toBe(50);
      // The same customer's email through the view, in a later call: the same mask.
      const v = await h.sql('SELECT contact FROM customer_contacts WHERE id = 1');
      expect(v.ok && v.structured.rows[0]?.[0]).toBe(rows[0]?.[0]);
      // Orders correlate with customers through the masked email.
      const j = await h.sql('SELECT c.email, count(*) FROM orders o JOIN customers c ON c.id = o.customer_id GROUP BY c.email ORDER BY 2 DESC, 1 LIMIT 3');
      expect(j.ok, allText(j)).toBe(true);
      if (j.ok) for (const row of j.structured.rows) expect(rows.map((x) => x[0])).toContain(row[0]);
      // Keyed: not an unkeyed digest the agent could compute itself.
      const email = DEMO_PII.emails[0] ?? '';
      const digest = /:([0-9a-f]{16})\]$/.exec(String(rows[0]?.[0]))?.[1] ?? '';
      expect(createHash('sha256').update(email).digest('hex').startsWith(digest)).toBe(false);
      expect(createHash('md5').update(email).digest('hex').startsWith(digest)).toBe(false);
      // Other masked columns keep their own style.
      const s = await h.sql('SELECT ssn FROM customers WHERE id = 1');
      expect(s.ok && s.structured.rows[0]?.[0]).toBe('[masked:customers.ssn]');
    } finally {
      await h.close();
    }
  });

  it('a different key gives different masks', async () => {
    const one = await hashGateway('key-one');
    const two = await hashGateway('key-two');
    try {
      const a = await one.sql('SELECT email FROM customers ORDER BY id LIMIT 5');
      const b = await two.sql('SELECT email FROM customers ORDER BY id LIMIT 5');
      expect(a.ok && b.ok).toBe(true);
      if (!a.ok || !b.ok) return;
      a.structured.rows.forEach((row, i) => {
        expect(String(row[0])).toMatch(/^\[hash:/);
        expect(row[0]).not.toBe(b.structured.rows[i]?.[0]);
      });
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('provider tokens and named credentials in rows', () => {
  const noTokenLeak = (r: CallResult) => expect(leakedSecrets(allText(r), TOKENS.secrets), allText(r).slice(0, 3000)).toEqual([]);

  it.each([
    ['every row', 'SELECT id, name, body FROM app_config ORDER BY id'],
    ['rows as JSON', 'SELECT row_to_json(c) FROM app_config c ORDER BY id'],
    ['one JSON array', 'SELECT jsonb_agg(c ORDER BY id) FROM app_config c'],
    ['aggregated into one text', "SELECT string_agg(body, E'\\n' ORDER BY id) FROM app_config"],
    ['the service-account file as json and jsonb', "SELECT body::json, body::jsonb FROM app_config WHERE name = 'sa.json'"],
    ['the private key member', "SELECT body::jsonb -> 'private_key', body::jsonb ->> 'private_key' FROM app_config WHERE name = 'sa.json'"],
    ['config.yaml', "SELECT body FROM app_config WHERE name = 'config.yaml'"],
    [
      'each line rebuilt by string functions',
      "SELECT upper(split_part(body, '=', 1)) || '=' || substr(body, strpos(body, '=') + 1) FROM app_config WHERE name LIKE 'line:%'",
    ],
  ])('%s', async (_name, sql) => {
    const r = await gw.sql(sql, analyst);
    expect(r.ok, allText(r)).toBe(true);
    noTokenLeak(r);
  });

  it('the whole env file: each token counted by its detector in the masked summary', async () => {
    const r = await gw.sql("SELECT body FROM app_config WHERE name = 'app.env'", analyst);
    expect(r.ok, allText(r)).toBe(true);
    if (!r.ok) return;
    noTokenLeak(r);
    const counted = Object.fromEntries(r.structured.masked.map((m) => [m.target, m.count]));
    expect(counted).toEqual(Object.fromEntries(expectedMasks(TOKENS, ['app.env'])));
    expect(String(r.structured.rows[0]?.[0])).toContain('STRIPE_SECRET_KEY=[masked:stripe_key]');
  });

  it('tokens whose shape identifies them stay masked when the agent strips their names', async () => {
    const r = await gw.sql("SELECT substr(body, strpos(body, '=') + 1) FROM app_config WHERE name LIKE 'line:%' ORDER BY id", analyst);
    expect(r.ok, allText(r)).toBe(true);
    // Beyond the tokens whose shape alone identifies them: credentials inside URLs and connection strings.
    const standalone = TOKENS.secrets.filter((t) => [...SHAPE_DETECTED, 'password_in_url', 'azure_connection_string', 'slack_webhook'].includes(t.detector));
    expect(leakedSecrets(allText(r), standalone)).toEqual([]);
  });

  it.each([
    ['a cast error quoting a row', "SELECT body::int FROM app_config WHERE name = 'line:STRIPE_SECRET_KEY'"],
    ['a cast error quoting the whole file', "SELECT body::int FROM app_config WHERE name = 'app.env'"],
    ['a uuid error quoting a line', "SELECT body::uuid FROM app_config WHERE name = 'line:GITHUB_PAT'"],
  ])('error text: %s', async (_name, sql) => {
    const r = await gw.sql(sql, analyst);
    expect(r.ok).toBe(false);
    noTokenLeak(r);
    expect(allText(r)).toContain('[masked:');
  });
});

describe('a refusal keeps the caller’s own identity readable', () => {
  const bob = as('bob@example.com', ['guests']);

  it('policy: "No rule allows … for bob@example.com"', async () => {
    const r = await gw.sql('UPDATE products SET price = price WHERE id = 1', bob);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('policy.no_match');
    expect(r.text).toContain('for bob@example.com.');
  });

  it('exactly the caller’s subject: another address in the same error is masked', async () => {
    const r = await gw.sql("SELECT 'bob@example.com wrote to carol@example.org'::int", bob);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toContain('bob@example.com');
    expect(r.error.message).not.toContain('carol@example.org');
    expect(r.error.message).toContain('[masked:email]');
  });

  it('rows never get the exemption: the caller’s own address in data is masked', async () => {
    const r = await gw.sql("SELECT 'bob@example.com' AS me", bob);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.structured.rows[0]?.[0]).toBe('[masked:email]');
  });
});
