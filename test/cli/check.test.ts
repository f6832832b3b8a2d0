// `drawbridge check --connect`, run in process (the command line's own function): one line per connection,
// exit 0 when every connection is reachable, 1 when one is not, and the wiring
// mistakes a newcomer makes (wrong password, a URL that is not a URL, a stopped
// server) each named with what to do — never a stack trace or a secret.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess } from '../support/cli.js';
import { freshDatabase, refusedPostgresUrl, withPassword, writeConfig, type FreshDatabase } from '../support/fixtures.js';

const NO_STACK = /^\s+at .+:\d+:\d+\)?$/m;
let db: FreshDatabase;
let dir: string;

beforeAll(async () => {
  db = await freshDatabase('check_cli');
  dir = writeConfig();
});
afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('drawbridge check --connect', () => {
  it('reaches the database as the gateway would: version, role, not a superuser; exit 0', async () => {
    const r = await runInProcess(['check', '--connect', '--config', dir], { env: { DB_URL: db.gatewayUrl } });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK .*: 1 connection\(s\)/m);
    expect(r.stdout).toMatch(/^ok +db +postgres +PostgreSQL \d+\.\d+ at 127\.0\.0\.1:\d+, database \S+, role drawbridge_gateway \(not a superuser\)/m);
  });

  it('warns about a superuser connection (the database is no longer a second wall), still exit 0', async () => {
    const r = await runInProcess(['check', '--connect', '--config', dir], { env: { DB_URL: db.superuserUrl } });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^WARN +db +postgres .*role postgres \(SUPERUSER\)/m);
    expect(r.stdout).toMatch(/warning: role postgres is a SUPERUSER/);
  });

  const failures: Array<[string, () => string, RegExp]> = [
    [
      'a wrong password',
      () => withPassword(db.gatewayUrl, 'not-the-password'),
      /FAIL +db +postgres +backend\.auth_failed: .*user "drawbridge_gateway".*the operator must fix it/,
    ],
    [
      'a URL that is not a URL',
      () => 'base',
      /FAIL +db +postgres +config\.secret_invalid: The value of environment variable DB_URL .* is not a PostgreSQL URL/,
    ],
    ['a stopped server', () => '', /FAIL +db +postgres +backend\.unavailable: .*could not connect to 127\.0\.0\.1:\d+: connection refused/],
  ];
  it.each(failures)('%s: FAIL with the code and what to do, exit 1, no stack trace, no secret', async (_what, url, line) => {
    const value = url() || (await refusedPostgresUrl());
    const r = await runInProcess(['check', '--connect', '--config', dir], { env: { DB_URL: value } });
    expect(r.status, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(line);
    expect(r.stdout).toMatch(/what to do: /);
    expect(r.stdout + r.stderr).not.toMatch(NO_STACK);
    expect(r.stdout + r.stderr).not.toContain('not-the-password');
  });

  it('a missing secret names its variable', async () => {
    const r = await runInProcess(['check', '--connect', '--config', dir], { env: { DB_URL: undefined } });
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL +db +postgres +config\.secret_missing: .*DB_URL/);
  });
});
