// The demo "shop" database: schema, deterministic sample data full of (fake but
// checksum-valid) PII, and a least-privilege gateway role. Used by the demo,
// the tests and the benchmarks; knows nothing about how the cluster is run.
// Every value is computed, never random, so tests can rely on it.

import pg from 'pg';
import { randomBytes } from 'node:crypto';
import type { Cluster } from './cluster.js';

export const GATEWAY_ROLE = 'drawbridge_gateway';

// ---------------------------------------------------------------------------
// Checksums

/** The Luhn check digit for a string of digits (without the check digit). */
function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    // Double every second digit counting from the right of the final number,
    // i.e. starting with the rightmost digit of the body.
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

function mod97(digits: string): number {
  let rem = 0;
  for (const ch of digits) rem = (rem * 10 + Number(ch)) % 97;
  return rem;
}

/** A checksummed IBAN (electronic format) from a country code and BBAN. */
function makeIban(country: string, bban: string): string {
  const rearranged = `${bban}${country}00`.toUpperCase();
  const numeric = [...rearranged].map((c) => (/[A-Z]/.test(c) ? String(c.charCodeAt(0) - 55) : c)).join('');
  const check = String(98 - mod97(numeric)).padStart(2, '0');
  return `${country}${check}${bban}`;
}

// ---------------------------------------------------------------------------
// Deterministic sample data

/** Sample full names (with apostrophes and non-ASCII letters): the demo's customers, and the benchmark's rows. */
export const NAMES: readonly string[] = [
  'Ada Lovelace',
  'Grace Hopper',
  'Alan Turing',
  'Katherine Johnson',
  'Linus Pauling',
  'Marie Curie',
  'Niels Bohr',
  'Rosalind Franklin',
  'Carl Gauss',
  'Emmy Noether',
  'Srinivasa Ramanujan',
  'Hedy Lamarr',
  'Barbara Liskov',
  'Donald Knuth',
  'Frances Allen',
  'Edsger Dijkstra',
  'Margaret Hamilton',
  'John Backus',
  'Radia Perlman',
  'Ken Thompson',
  'Dennis Ritchie',
  'Shafi Goldwasser',
  'Tim Berners-Lee',
  'Sophie Wilson',
  'Leslie Lamport',
  "Siobhan O'Connor",
  'José Álvarez',
  'Zoë Müller',
  'Björn Lindqvist',
  'Amara Okafor',
  'Mei Chen',
  'Ravi Patel',
  'Yuki Tanaka',
  'Fatima Zahra',
  'Lucas Moreau',
  'Ingrid Berg',
  'Mateo Rossi',
  'Chloé Dubois',
  'Olga Petrova',
  'Kwame Mensah',
  'Noor Haddad',
  'Liam Walsh',
  'Priya Nair',
  'Hannah Schmidt',
  'Diego Fernández',
  'Aisha Bello',
  'Tomás Novák',
  'Elena Popescu',
  'Sven Larsen',
  'Nadia Rahman',
];

const CITIES: readonly string[] = [
  'San Francisco',
  'New York',
  'Chicago',
  'Berlin',
  'London',
  'Paris',
  'Amsterdam',
  'Madrid',
  'Lisbon',
  'Dublin',
  'Stockholm',
  'Toronto',
  'Austin',
  'Seattle',
  'Munich',
];

const PHONE_AREAS: readonly string[] = ['415', '212', '312', '617', '206', '512', '303', '646'];

/** Well-known public test card numbers (all Luhn-valid); the rest are generated. */
const KNOWN_CARDS: readonly string[] = [
  '4111111111111111',
  '5500000000000004',
  '340000000000009',
  '6011000000000004',
  '4012888888881881',
  '5555555555554444',
  '378282246310005',
  '6011111111111117',
  '4242424242424242',
  '5105105105105100',
  '371449635398431',
  '6011000990139424',
];

const CARD_SHAPES: readonly { prefix: string; length: number }[] = [
  { prefix: '4000', length: 16 },
  { prefix: '5200', length: 16 },
  { prefix: '3700', length: 15 },
  { prefix: '6011', length: 16 },
];

function asciiSlug(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z]/g, '');
}

function emailFor(name: string): string {
  const [first = '', ...rest] = name.split(' ');
  return `${asciiSlug(first)}.${asciiSlug(rest.join(''))}@example.com`;
}

/** Valid-looking SSN: area 001–899 except 666, group 01–99, serial 0001–9999. */
function ssnFor(i: number): string {
  let area = 101 + ((i * 17) % 780);
  if (area === 666) area = 667;
  const group = 1 + ((i * 11) % 98);
  const serial = 1 + ((i * 1237) % 9998);
  return `${String(area).padStart(3, '0')}-${String(group).padStart(2, '0')}-${String(serial).padStart(4, '0')}`;
}

function cardFor(i: number): string {
  const known = KNOWN_CARDS[i];
  if (known !== undefined) return known;
  const shape = CARD_SHAPES[i % CARD_SHAPES.length] as { prefix: string; length: number };
  const digits = shape.length - 1 - shape.prefix.length;
  const fill = String(((i + 1) * 48_271 * 1_000_003) % 10 ** digits).padStart(digits, '0');
  const body = `${shape.prefix}${fill}`;
  return `${body}${luhnCheckDigit(body)}`;
}

function ibanFor(i: number): string {
  if (i === 0) return 'DE89370400440532013000'; // the standard documentation examples
  if (i === 1) return 'GB82WEST12345698765432';
  const n = i * 7919;
  switch (i % 3) {
    case 0: // DE: 8-digit bank code + 10-digit account
      return makeIban('DE', `${String(10_020_030 + n).padStart(8, '0')}${String(1_000_000_000 + n * 13).padStart(10, '0')}`);
    case 1: {
      // GB: 4-letter bank + 6-digit sort code + 8-digit account
      const banks = ['WEST', 'BARC', 'LOYD', 'MIDL', 'NWBK'];
      return makeIban(
        'GB',
        `${banks[i % banks.length] ?? 'WEST'}${String(200_000 + n)
          .padStart(6, '0')
          .slice(-6)}${String(31_926_819 + n * 3)
          .padStart(8, '0')
          .slice(-8)}`,
      );
    }
    default: // NL: 4-letter bank + 10-digit account
      return makeIban('NL', `${['ABNA', 'INGB', 'RABO'][Math.floor(i / 3) % 3] ?? 'ABNA'}${String(417_164_300 + n).padStart(10, '0')}`);
  }
}

function phoneFor(i: number): string {
  // 555-0100..0199 are reserved for fiction in the North American Numbering Plan.
  return `+1 ${PHONE_AREAS[i % PHONE_AREAS.length] ?? '415'} 555 ${String(100 + i).padStart(4, '0')}`;
}

interface CustomerRow {
  id: number;
  fullName: string;
  email: string;
  phone: string;
  ssn: string;
  cardNumber: string;
  iban: string;
  city: string;
  createdAt: string;
}

const CUSTOMERS: readonly CustomerRow[] = NAMES.map((fullName, i) => ({
  id: i + 1,
  fullName,
  email: emailFor(fullName),
  phone: phoneFor(i),
  ssn: ssnFor(i),
  cardNumber: cardFor(i),
  iban: ibanFor(i),
  city: CITIES[(i * 4) % CITIES.length] ?? 'Berlin',
  createdAt: new Date(Date.UTC(2023, 0, 2, 9, 0, 0) + i * (3 * 86_400_000 + 3_600_000)).toISOString(),
}));

/** The PII values actually stored in `customers` (audit_notes reuses some of them). */
export const DEMO_PII: { emails: string[]; ssns: string[]; cards: string[]; ibans: string[]; phones: string[] } = {
  emails: CUSTOMERS.map((c) => c.email),
  ssns: CUSTOMERS.map((c) => c.ssn),
  cards: CUSTOMERS.map((c) => c.cardNumber),
  ibans: CUSTOMERS.map((c) => c.iban),
  phones: CUSTOMERS.map((c) => c.phone),
};

/** Secrets embedded in audit_notes free text, for content-detector tests. */
export const DEMO_NOTE_SECRETS: { postgresUrl: string; jwt: string } = {
  postgresUrl: 'postgres://report_user:Tr0ub4dor-3@db.internal.example.com:5432/shop',
  // The well-known jwt.io example token (HS256, secret "your-256-bit-secret").
  jwt:
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.' + // header
    'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.' + // payload
    'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c', // signature
};

function spacedCard(card: string): string {
  return card.replace(/(\d{4})(?=\d)/g, '$1 ');
}

function first<T>(xs: readonly T[], i: number): T {
  const v = xs[i];
  if (v === undefined) throw new TypeError(`seed data index ${i} out of range`);
  return v;
}

const AUDIT_NOTES: readonly string[] = [
  `Customer asked us to change the contact address to ${first(DEMO_PII.emails, 0)} after a support call.`,
  `Refund issued to card ${spacedCard(first(DEMO_PII.cards, 0))}; the customer confirmed by phone.`,
  `Temporary export job used ${DEMO_NOTE_SECRETS.postgresUrl} -- rotate that password.`,
  `Agent pasted a session token into the ticket: Bearer ${DEMO_NOTE_SECRETS.jwt}`,
  `Identity check passed (SSN ${first(DEMO_PII.ssns, 2)}), payout to ${first(DEMO_PII.ibans, 1)}.`,
  `Call back on ${first(DEMO_PII.phones, 3)} about order 42; card on file ${first(DEMO_PII.cards, 1)}.`,
  'Routine note: warehouse restocked SKU-0007, nothing sensitive here.',
  'Quarterly review completed; no customer data involved.',
];

const PRODUCTS: readonly [string, string, string][] = [
  ['SKU-0001', 'Espresso Beans 1kg', '24.90'],
  ['SKU-0002', 'Pour-over Kettle', '49.00'],
  ['SKU-0003', 'Ceramic Mug', '12.50'],
  ['SKU-0004', 'Burr Grinder', '139.00'],
  ['SKU-0005', 'Paper Filters (100)', '6.99'],
  ['SKU-0006', 'Milk Frother', '29.95'],
  ['SKU-0007', 'Cold Brew Jar', '34.00'],
  ['SKU-0008', 'Travel Tumbler', '22.00'],
  ['SKU-0009', 'Digital Scale', '39.90'],
  ['SKU-0010', 'Tamper 58mm', '27.50'],
  ['SKU-0011', 'Decaf Beans 500g', '14.90'],
  ['SKU-0012', 'Chai Concentrate', '9.80'],
  ['SKU-0013', 'Moka Pot 6-cup', '44.00'],
  ['SKU-0014', 'French Press', '31.00'],
  ['SKU-0015', 'Descaler', '8.45'],
  ['SKU-0016', 'Knock Box', '19.00'],
  ['SKU-0017', 'Latte Art Pitcher', '17.25'],
  ['SKU-0018', 'Green Tea Tin', '11.10'],
  ['SKU-0019', 'Gift Card 50', '50.00'],
  ['SKU-0020', 'Barista Apron', '26.00'],
];

function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function buildSeedSql(): string {
  const customers = CUSTOMERS.map(
    (c) => `  (${c.id}, ${[c.fullName, c.email, c.phone, c.ssn, c.cardNumber, c.iban, c.city, c.createdAt].map(lit).join(', ')})`,
  ).join(',\n');
  const products = PRODUCTS.map(([sku, name, price], i) => `  (${i + 1}, ${lit(sku)}, ${lit(name)}, ${price})`).join(',\n');
  const notes = AUDIT_NOTES.map((body, i) => `  (${i + 1}, ${lit(body)})`).join(',\n');
  const n = CUSTOMERS.length;
  return `-- Drawbridge demo database (deterministic; generated by dev/seed.ts).
BEGIN;

CREATE TABLE customers (
  id          serial PRIMARY KEY,
  full_name   text NOT NULL,
  email       text NOT NULL UNIQUE,
  phone       text,
  ssn         text,
  card_number text,
  iban        text,
  city        text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
  id    serial PRIMARY KEY,
  sku   text NOT NULL UNIQUE,
  name  text NOT NULL,
  price numeric(10,2) NOT NULL
);

CREATE TABLE orders (
  id          serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id),
  status      text NOT NULL,
  total       numeric(10,2) NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  note        text
);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);

CREATE TABLE audit_notes (
  id   serial PRIMARY KEY,
  body text NOT NULL
);

INSERT INTO customers (id, full_name, email, phone, ssn, card_number, iban, city, created_at) VALUES
${customers};

INSERT INTO products (id, sku, name, price) VALUES
${products};

INSERT INTO orders (id, customer_id, status, total, created_at, note)
SELECT g,
       1 + ((g * 7) % ${n}),
       (ARRAY['pending','paid','shipped','delivered','cancelled'])[1 + (g % 5)],
       round(5 + ((g * 3779) % 49500) / 100.0, 2),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '7 hours',
       CASE WHEN g % 10 = 0 THEN 'gift wrap, please'
            WHEN g % 17 = 0 THEN 'leave at the front desk'
            ELSE NULL END
FROM generate_series(1, 500) AS g;

INSERT INTO audit_notes (id, body) VALUES
${notes};

SELECT setval(pg_get_serial_sequence('customers', 'id'), (SELECT max(id) FROM customers));
SELECT setval(pg_get_serial_sequence('products', 'id'), (SELECT max(id) FROM products));
SELECT setval(pg_get_serial_sequence('orders', 'id'), (SELECT max(id) FROM orders));
SELECT setval(pg_get_serial_sequence('audit_notes', 'id'), (SELECT max(id) FROM audit_notes));

-- Renamed PII columns, to test that masking follows columns through views.
CREATE VIEW customer_contacts AS
  SELECT id, full_name, email AS contact, phone AS reach, city FROM customers;

-- A user-defined volatile function that writes (idempotently: sets the note).
CREATE FUNCTION touch_order(order_id int) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY INVOKER
AS $fn$
BEGIN
  UPDATE orders SET note = 'touched' WHERE id = order_id;
END;
$fn$;

-- The gateway's least-privilege role: DML on the app tables, nothing else.
DO $do$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${GATEWAY_ROLE}') THEN
    CREATE ROLE ${GATEWAY_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
  END IF;
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO ${GATEWAY_ROLE}', current_database());
END
$do$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO ${GATEWAY_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${GATEWAY_ROLE};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${GATEWAY_ROLE};
REVOKE EXECUTE ON FUNCTION touch_order(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION touch_order(int) TO ${GATEWAY_ROLE};

COMMIT;
ANALYZE;
`;
}

/** The whole demo schema + data + gateway grants; run as a superuser in an empty database. */
const DEMO_SEED_SQL: string = buildSeedSql();

/**
 * Create `database` (dropping any previous one of that name), load DEMO_SEED_SQL
 * and set the gateway role's password. Returns URLs for the gateway and superuser.
 */
export async function seedDemo(
  cluster: Cluster,
  options: { database?: string; gatewayPassword?: string } = {},
): Promise<{ database: string; gatewayUrl: string; superuserUrl: string }> {
  const database = options.database ?? 'shop';
  const gatewayPassword = options.gatewayPassword ?? randomBytes(18).toString('hex');

  const admin = new pg.Client({ connectionString: cluster.superuserUrl });
  await admin.connect();
  try {
    const db = admin.escapeIdentifier(database);
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${db} TEMPLATE template0 ENCODING 'UTF8'`);
  } finally {
    await admin.end();
  }

  const superuserUrl = cluster.urlFor(database);
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    await client.query(DEMO_SEED_SQL);
    await client.query(`ALTER ROLE ${client.escapeIdentifier(GATEWAY_ROLE)} PASSWORD ${client.escapeLiteral(gatewayPassword)}`);
  } finally {
    await client.end();
  }

  return { database, gatewayUrl: cluster.urlFor(database, GATEWAY_ROLE, gatewayPassword), superuserUrl };
}
