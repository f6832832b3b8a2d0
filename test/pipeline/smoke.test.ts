// End-to-end through the pipeline on a private database: a masked read, a
// denial and an allowed write within max_affected_rows.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { as, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

let db: FreshDatabase;
let gw: TestGateway;

beforeAll(async () => {
  db = await freshDatabase('smoke');
  gw = await testGateway(db);
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

describe('pipeline smoke', () => {
  it('masks a read', async () => {
    const r = await gw.sql('SELECT id, email, city FROM customers ORDER BY id LIMIT 2');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.structured.rows[0]?.[1]).toBe('[masked:customers.email]');
    expect(r.structured.masked).toEqual([{ target: 'customers.email', by: 'column', rule: 'pii', count: 2 }]);
  });

  it('denies DDL', async () => {
    const r = await gw.sql('DROP TABLE orders');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('policy.denied');
    expect((await db.query('SELECT count(*)::int AS n FROM orders'))[0]?.['n']).toBe(500);
  });

  it('runs an allowed write and rolls back one over max_affected_rows', async () => {
    const support = as('sam@example.com', ['support']);
    const ok = await gw.sql("UPDATE orders SET note = 'checked' WHERE id IN (1, 2)", support);
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.structured.affectedRows).toBe(2);
    const tooMany = await gw.sql("UPDATE orders SET note = 'bulk' WHERE id <= 6", support);
    expect(tooMany.ok).toBe(false);
    if (!tooMany.ok) expect(tooMany.error.code).toBe('limits.affected_rows');
    const rows = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM orders WHERE note = 'bulk'");
    expect(rows[0]?.n).toBe(0);
  });
});
