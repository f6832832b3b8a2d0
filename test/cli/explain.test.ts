// `drawbridge policy explain`: shows how a request is classified and which
// rule decides it, run in process (the command line's own function). It consults the catalog (read-only
// metadata) unless --offline, executes nothing and journals nothing.

import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runInProcess, type CliRun } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';

let db: FreshDatabase;
let dir: string;

beforeAll(async () => {
  db = await freshDatabase('explain');
  dir = writeConfig();
});
afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function explain(sql: string, extra: string[] = [], env: Record<string, string> = { DB_URL: db.gatewayUrl }): Promise<CliRun> {
  return runInProcess(['policy', 'explain', '--config', dir, '--tool', 'run_sql', '--connection', 'db', '--sql', sql, ...extra], { env });
}

function ok(r: CliRun): string {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

describe('policy explain', () => {
  it('a read: operation, access, tables, ALLOW by rule read', async () => {
    const out = ok(await explain('SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id'));
    expect(out).toMatch(/^Identity: {3}tester@example\.com \[local, person\] groups: analysts$/m);
    expect(out).toMatch(/^Request: {4}run_sql on db$/m);
    expect(out).toMatch(/^ {2}operation select {3}access read$/m);
    expect(out).toMatch(/^ {2}tables {4}public\.orders, public\.customers$/m);
    expect(out).toMatch(/^Matched: {4}read \(allow\)$/m);
    expect(out).toMatch(/^Decision: {3}ALLOW by rule read — Allowed by rule read\.$/m);
    expect(out).not.toMatch(/catalog/); // consulted: no caveat line
  });

  it('a DELETE: APPROVE by writes-need-approval, and nothing is deleted', async () => {
    const before = await db.query('SELECT count(*)::int AS n FROM orders');
    const out = ok(await explain('DELETE FROM orders WHERE id <= 10'));
    expect(out).toMatch(/^ {2}operation delete {3}access write$/m);
    expect(out).toMatch(/^ {2}tables {4}public\.orders$/m);
    expect(out).toMatch(/^Decision: {3}APPROVE by rule writes-need-approval/m);
    expect(await db.query('SELECT count(*)::int AS n FROM orders')).toEqual(before);
  });

  it('a DROP: DENY by no-ddl with the operator message, and the table stays', async () => {
    const out = ok(await explain('DROP TABLE orders'));
    expect(out).toMatch(/^ {2}operation ddl {3}access admin$/m);
    expect(out).toMatch(/^Decision: {3}DENY by rule no-ddl — Schema changes go through migrations\.$/m);
    expect((await db.query("SELECT to_regclass('public.orders') IS NOT NULL AS present"))[0]?.['present']).toBe(true);
  });

  it('a volatile function in a SELECT is a write after the catalog is consulted, and is not run', async () => {
    const before = await db.query('SELECT note FROM orders WHERE id = 1');
    const out = ok(await explain('SELECT touch_order(1)'));
    expect(out).toMatch(/^ {2}operation select {3}access write$/m);
    expect(out).toMatch(/^ {2}functions public\.touch_order$/m);
    expect(out).toMatch(/because .*calls public\.touch_order\(\), which the server marks VOLATILE/);
    expect(out).toMatch(/^Decision: {3}APPROVE by rule writes-need-approval/m);
    expect(await db.query('SELECT note FROM orders WHERE id = 1')).toEqual(before);
    expect(before[0]?.['note']).not.toBe('touched');
  });

  it('--offline: the catalog is not consulted (no database needed), and says so', async () => {
    const out = ok(await explain('SELECT touch_order(1)', ['--offline'], {}));
    expect(out).toMatch(/^ {2}operation select {3}access read$/m);
    expect(out).toMatch(/^ {2}functions touch_order$/m);
    expect(out).toMatch(/^ {2}catalog {3}offline: table schemas and function volatility were not checked/m);
    expect(out).toMatch(/^Decision: {3}ALLOW by rule read/m);
  });

  it('without the database secret and without --offline: the catalog is reported unreachable', async () => {
    const out = ok(await explain('SELECT * FROM orders', [], {}));
    expect(out).toMatch(/^ {2}catalog {3}unreachable: connection db could not be used/m);
    expect(out).toMatch(/^ {12}cause: config\.secret_missing: .*environment variable DB_URL is not set\.$/m);
    expect(out).toMatch(/^ {12}--offline skips the catalog/m);
    expect(out).toMatch(/^Decision: {3}ALLOW by rule read/m);
  });

  it('--subject x --groups support: decides for that identity', async () => {
    const update = ok(await explain("UPDATE orders SET note = 'x' WHERE id = 1", ['--subject', 'sam@example.com', '--groups', 'support']));
    expect(update).toMatch(/^Identity: {3}sam@example\.com \[local, person\] groups: support$/m);
    expect(update).toMatch(/^Decision: {3}ALLOW by rule support-updates-orders/m);
    const customers = ok(await explain("UPDATE customers SET city = 'x' WHERE id = 1", ['--subject', 'sam@example.com', '--groups', 'support']));
    expect(customers).toMatch(/^Decision: {3}DENY — No rule allows write access \(update\) on run_sql\/db for sam@example\.com\.$/m);
    // A write done by a function touches no table: a rule scoped to orders does not cover it.
    const fn = ok(await explain('SELECT touch_order(1)', ['--subject', 'sam@example.com', '--groups', 'support']));
    expect(fn).toMatch(/^Decision: {3}DENY — No rule allows write access/m);
    // --subject alone means no groups.
    expect(ok(await explain('DELETE FROM orders', ['--subject', 'nobody@example.com']))).toMatch(/groups: \(none\)[\s\S]*Decision: {3}DENY/);
  });

  it('--principal service: decides for a service principal; with OIDC scopes mapped, shows the scopes a token needs', async () => {
    const oidcDir = writeConfig({
      oidc: { issuer: 'http://127.0.0.1:9', audience: 'http://127.0.0.1:9/mcp' },
      policy: `kind: policy
rules:
  - name: services-read
    match: { tool: run_sql, principal: service, access: read }
    effect: allow
`,
    });
    try {
      const gatewayYaml = join(oidcDir, 'policies', 'gateway.yaml');
      writeFileSync(
        gatewayYaml,
        readFileSync(gatewayYaml, 'utf8').replace(
          'required_scopes: [mcp]',
          'required_scopes: [mcp], scopes: [{ scope: "pii:read", match: { tables: [customers] } }]',
        ),
      );
      const run = (principal: string) =>
        runInProcess(
          ['policy', 'explain', '--config', oidcDir, '--tool', 'run_sql', '--connection', 'db', '--sql', 'SELECT city FROM customers', '--offline'].concat([
            '--subject',
            'agent-svc',
            '--principal',
            principal,
          ]),
          { env: { DB_URL: db.gatewayUrl } },
        );
      const service = ok(await run('service'));
      expect(service).toMatch(/^Identity: {3}agent-svc \[local, service\] groups: \(none\)$/m);
      expect(service).toMatch(/^Scopes: {5}a token needs mcp pii:read$/m);
      expect(service).toMatch(/^Decision: {3}ALLOW by rule services-read/m);
      expect(ok(await run('person'))).toMatch(/^Decision: {3}DENY/m);
      // `check` says how scopes are mapped and how services are told from persons.
      const check = ok(await runInProcess(['check', '--config', oidcDir], { env: { DB_URL: db.gatewayUrl } }));
      expect(check).toMatch(/^per-operation scopes: pii:read \(1 mapping\(s\)\)$/m);
      expect(check).toMatch(/^services: tokens whose sub is their client \(RFC 9068\)$/m);
      const bad = await run('robot');
      expect(bad.status).not.toBe(0);
      expect(bad.stderr).toMatch(/--principal must be person or service/);
    } finally {
      rmSync(oidcDir, { recursive: true, force: true });
    }
  });

  it('--json: the same facts, machine-readable', async () => {
    const e = JSON.parse(ok(await explain('DELETE FROM orders WHERE id = 1', ['--json']))) as Record<string, any>;
    expect(e.identity).toEqual({ subject: 'tester@example.com', groups: ['analysts'], kind: 'local', principal: 'person' });
    expect(e.scopes).toBeNull(); // a local identity config maps no scopes
    expect(e.request).toMatchObject({ tool: 'run_sql', connection: 'db', operation: 'delete', access: 'write', resources: ['public.orders'], functions: [] });
    expect(e.request.detail).toBeUndefined();
    expect(e.catalog).toBe('consulted');
    expect(e.matched).toEqual([{ name: 'writes-need-approval', effect: 'approve' }]);
    expect(e.decision).toMatchObject({ effect: 'approve', rule: 'writes-need-approval', code: null });
    expect(e.error).toBeNull();
  });

  it('refusals before policy: parse error, bad input, unknown tool or connection', async () => {
    expect(ok(await explain('SELEC 1'))).toMatch(/^Refused before policy: sql\.parse_error: [\s\S]*Decision: {3}DENY/m);
    const input = ok(
      await runInProcess(['policy', 'explain', '--config', dir, '--tool', 'run_sql', '--connection', 'db', '--input', '{"sql": 5}', '--offline']),
    );
    expect(input).toMatch(/^Refused before policy: input\.invalid: Invalid arguments: sql: /m);
    expect(ok(await runInProcess(['policy', 'explain', '--config', dir, '--tool', 'kubectl', '--connection', 'db', '--sql', 'select 1', '--offline']))).toMatch(
      /tool\.unknown/,
    );
    expect(
      ok(await runInProcess(['policy', 'explain', '--config', dir, '--tool', 'run_sql', '--connection', 'prod', '--sql', 'select 1', '--offline'])),
    ).toMatch(/connection\.unknown/);
    expect((await runInProcess(['policy', 'explain', '--config', dir, '--sql', 'select 1'])).status).toBe(2);
  });

  it('journals nothing: no journal file is created in the config directory', async () => {
    expect(existsSync(join(dir, 'journal.db'))).toBe(false);
    expect(existsSync(join(dir, 'journal.db-wal'))).toBe(false);
  });
});
