// The PostgreSQL engine's migrations (src/state/postgres/migrations.ts), on a fresh database
// per test, as the non-superuser state role: empty to current, idempotent, three replicas
// starting together migrate once, a newer schema refused, a CLI command on an unmigrated
// database told to migrate, and an unreachable or refused state reported without secrets.

import { afterEach, describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import type { StateStore } from '../../../src/state/contract.js';
import { migratePostgresState, openPostgresState } from '../../../src/state/postgres/index.js';
import { LATEST_VERSION } from '../../../src/state/postgres/migrations.js';
import { freshDatabase, refusedPostgresUrl, testRole, withPassword, type FreshDatabase } from '../../support/fixtures.js';
import { STATE_ROLE, STATE_ROLE_PASSWORD, stateRoleUrl } from '../../support/state-role.js';

const databases: FreshDatabase[] = [];
const opened: StateStore[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((s) => s.close()));
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});

async function fresh(): Promise<{ db: FreshDatabase; url: string }> {
  const db = await freshDatabase('state_migrate');
  databases.push(db);
  return { db, url: await stateRoleUrl(db) };
}

async function refusal(promise: Promise<unknown>): Promise<DrawbridgeError> {
  const error: unknown = await promise.then(
    () => new Error('expected a refusal, but it resolved'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DrawbridgeError);
  return error as DrawbridgeError;
}

describe('PostgreSQL state migrations', () => {
  it('migrate takes an empty database to the current version, owned by the state role; again it changes nothing', async () => {
    const { db, url } = await fresh();
    expect(await migratePostgresState(url)).toEqual({ from: 0, to: LATEST_VERSION });
    expect(await migratePostgresState(url)).toEqual({ from: LATEST_VERSION, to: LATEST_VERSION });
    const versions = await db.query<{ version: number }>('SELECT version FROM drawbridge.drawbridge_schema ORDER BY version');
    expect(versions.map((v) => v.version)).toEqual(Array.from({ length: LATEST_VERSION }, (_, i) => i + 1));
    const tables = await db.query<{ tablename: string; tableowner: string }>(
      "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'drawbridge' ORDER BY tablename",
    );
    expect(tables.map((t) => t.tablename)).toEqual(['approvals', 'drawbridge_schema', 'grants', 'records', 'shared_keys', 'stream_cursors', 'votes']);
    expect(new Set(tables.map((t) => t.tableowner))).toEqual(new Set([STATE_ROLE]));
    const role = await db.query<{ rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean }>(
      'SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1',
      [STATE_ROLE],
    );
    expect(role).toEqual([{ rolsuper: false, rolcreatedb: false, rolcreaterole: false }]);
  });

  it('three replicas starting together on an empty database migrate it once and all open', async () => {
    const { db, url } = await fresh();
    const states = await Promise.all([1, 2, 3].map(() => openPostgresState({ url, purpose: 'serve' })));
    opened.push(...states);
    const versions = await db.query<{ version: number }>('SELECT version FROM drawbridge.drawbridge_schema');
    expect(versions).toHaveLength(LATEST_VERSION);
    await Promise.all(states.map((s, i) => s.journal.append('call', `c${i}`, { i })));
    expect(await states[0]?.journal.head()).toMatchObject({ seq: 3 });
  });

  it('a schema newer than this build is refused to a gateway, a command and migrate, saying to upgrade Drawbridge', async () => {
    const { db, url } = await fresh();
    await migratePostgresState(url);
    await db.query("INSERT INTO drawbridge.drawbridge_schema (version, name) VALUES ($1, 'from the future')", [LATEST_VERSION + 1]);
    const attempts = [
      () => openPostgresState({ url, purpose: 'serve' }),
      () => openPostgresState({ url, purpose: 'command' }),
      () => migratePostgresState(url),
    ];
    for (const attempt of attempts) {
      const error = await refusal(attempt());
      expect(error.code).toBe('state.schema_version');
      expect(error.message).toContain(`schema version ${LATEST_VERSION + 1}`);
      expect(error.message).toMatch(/upgrade Drawbridge/);
    }
  });

  it('a command on an unmigrated database is told to run `drawbridge state migrate`, and creates nothing', async () => {
    const { db, url } = await fresh();
    const error = await refusal(openPostgresState({ url, purpose: 'command' }));
    expect(error.code).toBe('state.schema_version');
    expect(error.message).toContain('drawbridge state migrate');
    expect(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'drawbridge'")).toEqual([]);
    await migratePostgresState(url);
    const state = await openPostgresState({ url, purpose: 'command' });
    opened.push(state);
    expect(await state.journal.head()).toMatchObject({ seq: 0 });
  });

  it('an unreachable state and a wrong password are journal.unavailable, naming neither the host nor the password', async () => {
    const { url } = await fresh();
    const refused = await refusal(openPostgresState({ url: await refusedPostgresUrl(), purpose: 'serve' }));
    expect(refused.code).toBe('journal.unavailable');
    expect(refused.message).not.toMatch(/127\.0\.0\.1|localhost/);
    const wrong = withPassword(url, 'not-the-password-xyz');
    const denied = await refusal(openPostgresState({ url: wrong, purpose: 'serve' }));
    expect(denied.code).toBe('journal.unavailable');
    expect(denied.message).toMatch(/password authentication failed/);
    expect(denied.message).not.toContain('not-the-password-xyz');
    expect(denied.message).not.toContain(STATE_ROLE_PASSWORD);
    const failed = await refusal(migratePostgresState(wrong));
    expect(failed.code).toBe('journal.unavailable');
    expect(failed.message).not.toContain('not-the-password-xyz');
  });

  it('a role with CONNECT only migrates into a schema the operator created for it, and is refused cleanly without one', async () => {
    const db = await freshDatabase('state_migrate');
    databases.push(db);
    const role = await testRole(db, { login: true });
    try {
      const refused = await refusal(migratePostgresState(role.url));
      expect(refused.code).toBe('journal.unavailable');
      expect(refused.message).toMatch(/permission denied/);
      await db.query(`CREATE SCHEMA drawbridge AUTHORIZATION ${role.name}`);
      expect(await migratePostgresState(role.url)).toEqual({ from: 0, to: LATEST_VERSION });
      const state = await openPostgresState({ url: role.url, purpose: 'serve' });
      opened.push(state);
      expect((await state.journal.append('call', 'c1', {})).seq).toBe(1);
      await state.close();
    } finally {
      await db.query('DROP SCHEMA drawbridge CASCADE');
      await role.drop();
    }
  });
});
