// The login role the PostgreSQL state tests use: no superuser, no role attributes, owning
// nothing but what the migrations create. It gets exactly the grants the README tells an
// operator to give the state role: CONNECT and CREATE on the state database.

import pg from 'pg';
import { inject } from 'vitest';
import type { FreshDatabase } from './fixtures.js';

const ROLE = `drawbridge_state_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
const PASSWORD = `state-pw-${process.pid}-${Math.random().toString(36).slice(2)}`;
let created: Promise<void> | null = null;

async function admin<T>(body: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await c.connect();
  try {
    return await body(c);
  } finally {
    await c.end();
  }
}

/** The state role's URL for `db`, after granting it CONNECT and CREATE there. */
export async function stateRoleUrl(db: FreshDatabase): Promise<string> {
  created ??= admin(async (c) => {
    await c.query(`CREATE ROLE ${c.escapeIdentifier(ROLE)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${c.escapeLiteral(PASSWORD)}`);
  });
  await created;
  await admin((c) => c.query(`GRANT CONNECT, CREATE ON DATABASE ${c.escapeIdentifier(db.name)} TO ${c.escapeIdentifier(ROLE)}`));
  const u = new URL(db.superuserUrl);
  u.username = ROLE;
  u.password = PASSWORD;
  return u.toString();
}

export const STATE_ROLE = ROLE;
export const STATE_ROLE_PASSWORD = PASSWORD;
