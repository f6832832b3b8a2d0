// Tests for the throwaway-cluster module and the demo seed: the shared cluster
// from test/setup/global.ts (counts, PII checksums, gateway least privilege)
// and a second, private cluster's start/stop lifecycle.

import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCluster } from '../../dev/cluster.js';
import { DEMO_PII, GATEWAY_ROLE } from '../../dev/seed.js';

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function ibanValid(iban: string): boolean {
  const re = `${iban.slice(4)}${iban.slice(0, 4)}`;
  let rem = 0;
  for (const ch of re) {
    const v = /[A-Z]/.test(ch) ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of v) rem = (rem * 10 + Number(d)) % 97;
  }
  return rem === 1;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

describe('seeded demo database (shared cluster)', () => {
  let su: pg.Client;
  let gw: pg.Client;

  beforeAll(async () => {
    su = new pg.Client({ connectionString: inject('pgSuperuserUrl') });
    gw = new pg.Client({ connectionString: inject('pgGatewayUrl') });
    await su.connect();
    await gw.connect();
  });

  afterAll(async () => {
    await su?.end();
    await gw?.end();
  });

  it('connects to the seeded database with the expected row counts', async () => {
    const { rows } = await su.query<{ db: string; customers: number; orders: number; products: number; notes: number; contacts: number }>(`
      SELECT current_database() AS db,
             (SELECT count(*)::int FROM customers) AS customers,
             (SELECT count(*)::int FROM orders) AS orders,
             (SELECT count(*)::int FROM products) AS products,
             (SELECT count(*)::int FROM audit_notes) AS notes,
             (SELECT count(*)::int FROM customer_contacts) AS contacts`);
    expect(rows[0]).toEqual({ db: inject('pgDatabase'), customers: 50, orders: 500, products: 20, notes: 8, contacts: 50 });
  });

  it('stores exactly the exported PII values, and they pass their checksums', async () => {
    const { rows } = await su.query<{ email: string; ssn: string; card_number: string; iban: string; phone: string }>(
      'SELECT email, ssn, card_number, iban, phone FROM customers ORDER BY id',
    );
    expect(rows.map((r) => r.email)).toEqual(DEMO_PII.emails);
    expect(rows.map((r) => r.ssn)).toEqual(DEMO_PII.ssns);
    expect(rows.map((r) => r.card_number)).toEqual(DEMO_PII.cards);
    expect(rows.map((r) => r.iban)).toEqual(DEMO_PII.ibans);
    expect(rows.map((r) => r.phone)).toEqual(DEMO_PII.phones);

    for (const list of Object.values(DEMO_PII)) expect(new Set(list).size).toBe(list.length);
    expect(DEMO_PII.cards).toContain('4111111111111111');
    for (const card of DEMO_PII.cards) expect(luhnValid(card), card).toBe(true);
    for (const iban of DEMO_PII.ibans) expect(ibanValid(iban), iban).toBe(true);
    for (const email of DEMO_PII.emails) expect(email).toMatch(/^[a-z]+\.[a-z]+@example\.com$/);
    for (const phone of DEMO_PII.phones) expect(phone).toMatch(/^\+1 \d{3} 555 01\d\d$/);
    for (const ssn of DEMO_PII.ssns) {
      const m = /^(\d{3})-(\d{2})-(\d{4})$/.exec(ssn);
      expect(m, ssn).not.toBeNull();
      const [area, group, serial] = [Number(m?.[1]), Number(m?.[2]), Number(m?.[3])];
      expect(area > 0 && area < 900 && area !== 666 && group > 0 && serial > 0, ssn).toBe(true);
    }
  });

  it('renames PII columns in the customer_contacts view', async () => {
    const { rows } = await su.query<{ contact: string; reach: string }>('SELECT contact, reach FROM customer_contacts WHERE id = 1');
    expect(rows[0]).toEqual({ contact: DEMO_PII.emails[0], reach: DEMO_PII.phones[0] });
  });

  it('gives the gateway role least privilege', async () => {
    const { rows } = await gw.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; me: string }>(
      'SELECT rolsuper, rolcreaterole, rolcreatedb, current_user AS me FROM pg_roles WHERE rolname = current_user',
    );
    expect(rows[0]).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, me: GATEWAY_ROLE });

    await expect(gw.query('CREATE TABLE public.gw_should_fail (id int)')).rejects.toMatchObject({ code: '42501' });
    await expect(gw.query('CREATE TEMP TABLE gw_tmp (id int)')).rejects.toMatchObject({ code: '42501' });

    const count = await gw.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
    expect(count.rows[0]?.n).toBe(500);

    // DML and the user-defined function are allowed; roll back to keep shared data intact.
    await gw.query('BEGIN');
    try {
      await gw.query('SELECT touch_order(1)');
      const ins = await gw.query<{ id: number }>("INSERT INTO products (sku, name, price) VALUES ('SKU-TEST', 'Test', 1) RETURNING id");
      expect(ins.rows[0]?.id).toBe(21);
      const note = await gw.query<{ note: string }>('SELECT note FROM orders WHERE id = 1');
      expect(note.rows[0]?.note).toBe('touched');
    } finally {
      await gw.query('ROLLBACK');
    }
  });

  it('marks touch_order as a volatile SECURITY INVOKER function', async () => {
    const { rows } = await su.query<{ prosecdef: boolean; provolatile: string }>("SELECT prosecdef, provolatile FROM pg_proc WHERE proname = 'touch_order'");
    expect(rows).toEqual([{ prosecdef: false, provolatile: 'v' }]);
  });
});

describe('startCluster lifecycle', () => {
  it('starts a second cluster, answers select 1, and leaves nothing behind after stop', async () => {
    const cluster = await startCluster();
    try {
      expect(cluster.host).toBe('127.0.0.1');
      expect(cluster.superuserUrl).toMatch(new RegExp(`^postgres://postgres:[^@]+@127\\.0\\.0\\.1:${cluster.port}/postgres$`));
      expect(existsSync(cluster.dataDir)).toBe(true);
      const client = new pg.Client({ connectionString: cluster.superuserUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ one: number; listen: string }>("SELECT 1 AS one, current_setting('listen_addresses') AS listen");
        expect(rows[0]).toEqual({ one: 1, listen: '127.0.0.1' });
      } finally {
        await client.end();
      }
    } finally {
      await cluster.stop();
    }
    expect(existsSync(cluster.dataDir)).toBe(false);
    expect(await portOpen(cluster.port)).toBe(false);
    await cluster.stop(); // idempotent
  });
});
