// The PostgreSQL journal's readiness probe against the real cluster: it answers whether an append
// could commit now without writing one, and flips when the role loses INSERT on the journal table
// (the database stops taking this gateway's writes) and back when it is granted again.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { openPostgresState } from '../../../src/state/postgres/index.js';
import type { StateStore } from '../../../src/state/contract.js';
import { freshDatabase, type FreshDatabase } from '../../support/fixtures.js';
import { STATE_ROLE, stateRoleUrl } from '../../support/state-role.js';

let db: FreshDatabase;
let state: StateStore;

beforeAll(async () => {
  db = await freshDatabase('probe');
  state = await openPostgresState({ url: await stateRoleUrl(db), purpose: 'serve' });
}, 60_000);

afterAll(async () => {
  await state?.close();
  await db?.drop();
});

it('probe flips when the role may no longer insert into the journal, and back; it writes nothing', async () => {
  await state.journal.append('call', 'c1', { n: 1 });
  await state.journal.probe();
  await db.query(`REVOKE INSERT ON drawbridge.records FROM "${STATE_ROLE}"`);
  try {
    const error: unknown = await state.journal.probe().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DrawbridgeError);
    expect((error as DrawbridgeError).code).toBe('journal.unavailable');
    expect((error as DrawbridgeError).message).toMatch(/does not accept writes/);
    // What the probe predicted: an append fails too.
    await expect(state.journal.append('call', 'c2', { n: 2 })).rejects.toMatchObject({ code: 'journal.unavailable' });
  } finally {
    await db.query(`GRANT INSERT ON drawbridge.records TO "${STATE_ROLE}"`);
  }
  await state.journal.probe();
  expect((await state.journal.head()).seq).toBe(1);
});
