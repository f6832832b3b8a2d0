// `policy explain` when the connection cannot be used: the explanation still
// decides (without the catalog), and says which connection, why (a stopped
// server, a wrong password, a url that is not a URL, a missing secret) and
// that --offline skips the catalog. In process, against a private database.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { explain, formatExplanation, type Explanation } from '../../src/pipeline/explain.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { as, freshDatabase, refusedPostgresUrl, withPassword, writeConfig, type FreshDatabase } from '../support/fixtures.js';

let db: FreshDatabase;
let dir: string;
const gateways: Gateway[] = [];

beforeAll(async () => {
  db = await freshDatabase('explain_unreachable');
  dir = writeConfig();
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function explainWith(env: Record<string, string>, sql: string, offline = false): Promise<{ e: Explanation; text: string }> {
  const gateway = await openGateway({ configDir: dir, env, journalPath: ':memory:' });
  gateways.push(gateway);
  const e = await explain(gateway, { tool: 'run_sql', connection: 'db', input: { sql }, identity: as('tester@example.com', ['analysts']), offline });
  return { e, text: formatExplanation(e) };
}

function catalogLines(text: string): string[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('  catalog   '));
  expect(start).toBeGreaterThan(0);
  return lines.slice(start, start + 3);
}

describe('policy explain with a connection that cannot be used', () => {
  it('a stopped server: the connection, "could not connect to 127.0.0.1:PORT: connection refused", and --offline', async () => {
    const url = await refusedPostgresUrl(db.name);
    const { e, text } = await explainWith({ DB_URL: url }, 'SELECT * FROM orders');
    expect(e.catalog).toBe('unreachable');
    expect(e.catalogError).toMatchObject({ connection: 'db', code: 'backend.unavailable' });
    expect(catalogLines(text)).toEqual([
      '  catalog   unreachable: connection db could not be used, so table schemas and ' +
        'function volatility were not checked against the server — the live decision may differ',
      `            cause: backend.unavailable: Connection db: could not connect to ` +
        `127.0.0.1:${new URL(url).port}: connection refused (is PostgreSQL running and listening there?).`,
      '            --offline skips the catalog (and this connection)',
    ]);
    // It still decides, without the catalog.
    expect(text).toMatch(/^Decision: {3}ALLOW by rule read/m);
  });

  it('a wrong password: authentication failed for the user, the operator must fix it', async () => {
    const { e, text } = await explainWith({ DB_URL: withPassword(db.gatewayUrl, 'nope-explain-2') }, 'SELECT * FROM orders');
    expect(e.catalogError?.code).toBe('backend.auth_failed');
    expect(catalogLines(text)[1]).toMatch(
      new RegExp(
        /^ {12}cause: backend\.auth_failed: PostgreSQL at 127\.0\.0\.1:\d+ refused to authenticate user "drawbridge_gateway" for connection db /.source +
          /\(28P01: password authentication failed for user "drawbridge_gateway"\)\. .*the operator must fix it\.$/.source,
      ),
    );
    expect(text).not.toContain('nope-explain-2');
  });

  it('a url that is not a URL: names the variable, never the value', async () => {
    const { e, text } = await explainWith({ DB_URL: 'base' }, 'SELECT * FROM orders');
    expect(e.catalogError?.code).toBe('config.secret_invalid');
    expect(catalogLines(text)[1]).toBe(
      '            cause: config.secret_invalid: The value of environment variable DB_URL (the url of connection ' +
        'db) is not a PostgreSQL URL (postgres://… or postgresql://…). The value is not shown because it is a secret.',
    );
  });

  it('a missing secret: names the variable', async () => {
    const { e, text } = await explainWith({}, 'SELECT * FROM orders');
    expect(e.catalogError?.code).toBe('config.secret_missing');
    expect(catalogLines(text)[1]).toBe(
      '            cause: config.secret_missing: A secret needed by this connection is missing: environment variable DB_URL is not set.',
    );
  });

  it('--offline and a reachable catalog show no cause', async () => {
    const offline = await explainWith({}, 'SELECT * FROM orders', true);
    expect(offline.e.catalogError).toBeNull();
    expect(offline.text).toMatch(/^ {2}catalog {3}offline: table schemas and function volatility were not checked/m);
    expect(offline.text).not.toMatch(/cause:/);
    const live = await explainWith({ DB_URL: db.gatewayUrl }, 'SELECT * FROM orders');
    expect(live.e).toMatchObject({ catalog: 'consulted', catalogError: null });
    expect(live.text).not.toMatch(/catalog/);
  });
});
