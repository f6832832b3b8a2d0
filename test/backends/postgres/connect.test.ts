// PostgreSQL wiring mistakes, named so an operator can fix them: a url secret
// that is not a postgres:// URL (config.secret_invalid naming the variable,
// never the value), a wrong password or a role that may not log in
// (backend.auth_failed naming the user: fix the credential, retrying will not
// help) and a stopped server ("could not connect to 127.0.0.1:PORT: connection
// refused"). Pure checks first, then each mistake through the whole pipeline as
// the agent sees it, journaled as refused or failed calls.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectError, requirePostgresUrl, secretSource } from '../../../src/backends/postgres/connect.js';
import type { SecretRef } from '../../../src/config/secrets.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { readCalls } from '../../../src/journal/export.js';
import { callTool, type CallResult } from '../../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../../src/pipeline/gateway.js';
import { as, freshDatabase, refusedPostgresUrl, testRole, withPassword, writeConfig, type FreshDatabase, type TestRole } from '../../support/fixtures.js';

const env = (name: string): SecretRef => ({ kind: 'env', name, describe: `$${name}` });
const template = (t: string, names: string[]): SecretRef => ({
  kind: 'template',
  template: t,
  describe: names.map((n) => `$${n}`).join(', ') || 'inline value',
});

function refusal(run: () => unknown): DrawbridgeError {
  try {
    run();
  } catch (error) {
    if (error instanceof DrawbridgeError) return error;
    throw error;
  }
  throw new Error('expected a DrawbridgeError');
}

describe('requirePostgresUrl', () => {
  it.each([
    ['postgres://u:p@db.internal:5432/shop', { host: 'db.internal', port: '5432', user: 'u' }],
    ['postgresql://u@10.0.0.5/shop', { host: '10.0.0.5', port: '5432', user: 'u' }],
    ['POSTGRES://app%40corp:pw@h:6543/d', { host: 'h', port: '6543', user: 'app@corp' }],
    ['postgres:///shop?host=/var/run/postgresql', { host: '/var/run/postgresql', port: '5432', user: null }],
    ['postgres://[::1]:5433/shop', { host: '::1', port: '5433', user: null }],
  ])('accepts %s', (url, target) => {
    expect(requirePostgresUrl(url, env('DB_URL'), 'shop')).toEqual(target);
  });

  it.each([
    ['base', 'is not a PostgreSQL URL (postgres://… or postgresql://…).'],
    ['host=db.internal dbname=shop password=hunter2-secret', 'is not a PostgreSQL URL (postgres://… or postgresql://…).'],
    ['mysql://root:hunter2-secret@db/shop', 'is not a PostgreSQL URL (postgres://… or postgresql://…).'],
    ['db.internal:5432/shop', 'is not a PostgreSQL URL'],
    ['postgres://u:100%hunter2-secret@h/d', 'is not a valid PostgreSQL URL (it does not parse).'],
    ['postgres://u:hunter2-secret@h:notaport/d', 'is not a valid PostgreSQL URL (it does not parse).'],
  ])('refuses %s as config.secret_invalid, naming the variable and the shape, never the value', (value, problem) => {
    const e = refusal(() => requirePostgresUrl(value, env('SHOP_DATABASE_URL'), 'shop'));
    expect(e.code).toBe('config.secret_invalid');
    expect(e.message).toContain('The value of environment variable SHOP_DATABASE_URL (the url of connection shop)');
    expect(e.message).toContain(problem);
    expect(e.message).toMatch(/\. The value is not shown because it is a secret\.$/);
    expect(e.hint).toMatch(
      /^The operator must set environment variable SHOP_DATABASE_URL on the gateway host to a URL of the form postgres:\/\/USER:PASSWORD@HOST:5432\/DATABASE/,
    );
    expect(e.hint).toContain('Retrying will not help');
    for (const text of [e.message, e.hint, JSON.stringify(e.details)]) {
      expect(text).not.toContain('hunter2');
      expect(text).not.toContain(value);
    }
  });

  it('names where the value came from: a variable, a file, a template, an inline value', () => {
    expect(secretSource(env('A'))).toBe('environment variable A');
    expect(secretSource({ kind: 'file', path: '/run/secrets/db', describe: 'file /run/secrets/db' })).toBe('secret file /run/secrets/db');
    expect(secretSource(template('${DB_URL}', ['DB_URL']))).toBe('environment variable DB_URL');
    expect(secretSource(template('postgres://app@${HOST}:${PORT}/shop', ['HOST', 'PORT']))).toBe('the url built from environment variables HOST, PORT');
    expect(secretSource(template('base', []))).toBe('the url written in the connection declaration');
  });
});

describe('connectError', () => {
  const target = { host: '127.0.0.1', port: '5999', user: 'app' };
  const withCode = (message: string, code: string, extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...extra });

  it('28P01 and 28000 are backend.auth_failed naming the user; the hint says the operator must fix the credential', () => {
    const pw = connectError(withCode('password authentication failed for user "app"', '28P01'), 'shop', target);
    expect(pw.code).toBe('backend.auth_failed');
    expect(pw.message).toBe(
      'PostgreSQL at 127.0.0.1:5999 refused to authenticate user "app" for connection ' +
        'shop (28P01: password authentication failed for user "app"). The credential in ' +
        "the connection's url is wrong or not allowed to log in; the operator must fix it.",
    );
    expect(pw.hint).toMatch(/Retrying will not help: tell the operator, who must fix the credential/);
    expect(pw.details).toMatchObject({ connection: 'shop', sqlstate: '28P01', user: 'app' });
    const nologin = connectError(withCode('role "app" is not permitted to log in', '28000'), 'shop', { ...target, user: null });
    expect(nologin.code).toBe('backend.auth_failed');
    expect(nologin.message).toContain('refused to authenticate the default user for connection shop (28000: role "app" is not permitted to log in)');
  });

  it('network failures say where and why, in words', () => {
    const refused = connectError(withCode('connect ECONNREFUSED 127.0.0.1:5999', 'ECONNREFUSED'), 'shop', target);
    expect(refused.code).toBe('backend.unavailable');
    expect(refused.message).toBe('Connection shop: could not connect to 127.0.0.1:5999: connection refused (is PostgreSQL running and listening there?).');
    // Node 20 tries each address of a name and reports an AggregateError without a message.
    const aggregate = Object.assign(new AggregateError([withCode('x', 'ECONNREFUSED')], ''), { code: 'ECONNREFUSED' });
    expect(connectError(aggregate, 'shop', { ...target, host: 'localhost' }).message).toContain('could not connect to localhost:5999: connection refused');
    expect(connectError(withCode('getaddrinfo ENOTFOUND base', 'ENOTFOUND'), 'shop', { ...target, host: 'base' }).message).toContain(
      'the host name base does not resolve',
    );
    expect(connectError(new Error('Connection terminated due to connection timeout'), 'shop', target).message).toContain('no answer in time');
    expect(connectError(withCode('the database system is starting up', '57P03'), 'shop', target).message).toBe(
      'Connection shop: could not connect to 127.0.0.1:5999: 57P03: the database system is starting up',
    );
  });
});

describe('through the pipeline: what the agent gets, and the journal', () => {
  let db: FreshDatabase;
  let nologin: TestRole;
  let dir: string;
  const gateways: Gateway[] = [];

  beforeAll(async () => {
    db = await freshDatabase('pgconnect');
    nologin = await testRole(db, { login: false });
    dir = writeConfig();
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await nologin?.drop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function gatewayWith(url: string | undefined): Promise<Gateway> {
    const gateway = await openGateway({ configDir: dir, env: url === undefined ? {} : { DB_URL: url }, journalPath: ':memory:' });
    gateways.push(gateway);
    return gateway;
  }

  async function call(gateway: Gateway, sql: string): Promise<CallResult> {
    return callTool(gateway, {
      tool: 'run_sql',
      args: { connection: 'db', sql },
      identity: as('tester@example.com', ['analysts']),
      client: { name: 'vitest' },
    });
  }

  /** The call's journal entry, read back from a journal file of its own. */
  async function journaled(url: string, sql: string): Promise<{ result: CallResult; call: Record<string, unknown>; outcome: Record<string, unknown> | null }> {
    const journalPath = `${dir}/journal-${Math.random().toString(36).slice(2)}.db`;
    const gateway = await openGateway({ configDir: dir, env: { DB_URL: url }, journalPath });
    try {
      const result = await call(gateway, sql);
      const entries = [...readCalls(journalPath)];
      expect(entries).toHaveLength(1);
      const entry = entries[0]!;
      return { result, call: entry.call, outcome: entry.outcome };
    } finally {
      await gateway.close();
    }
  }

  it('a url that is not a URL: config.secret_invalid names DB_URL and the shape, never the value; refused and journaled', async () => {
    const secret = 'host=127.0.0.1 dbname=shop password=hunter2-secret';
    const { result, call: intent, outcome } = await journaled(secret, 'SELECT * FROM orders LIMIT 1');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('config.secret_invalid');
    expect(result.text).toMatch(
      new RegExp(
        /^config\.secret_invalid: The value of environment variable DB_URL \(the url of connection db\) is not a PostgreSQL URL /.source +
          /\(postgres:\/\/… or postgresql:\/\/…\)\. The value is not shown because it is a secret\.\n/.source,
      ),
    );
    expect(result.text).toMatch(
      /\nWhat to do: The operator must set environment variable DB_URL on the gateway host to a URL of the form postgres:\/\/USER:PASSWORD@HOST:5432\/DATABASE/,
    );
    expect(result.text).not.toContain('hunter2');
    // A fault of the gateway, not a decision about the request: no decision, an error outcome (errors.ts, ErrorKind).
    expect(intent['decision']).toBeNull();
    expect(intent['error']).toMatchObject({ code: 'config.secret_invalid' });
    expect(outcome).toMatchObject({ status: 'error', errorCode: 'config.secret_invalid' });
    expect(JSON.stringify([intent, outcome])).not.toContain('hunter2');
  });

  it('a wrong password, when the catalog is read (resolve): backend.auth_failed names the user, says the operator must fix it', async () => {
    const { result, call: intent, outcome } = await journaled(withPassword(db.gatewayUrl, 'wrong-password-x1'), 'SELECT id FROM orders LIMIT 1');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('backend.auth_failed');
    expect(result.text).toContain(
      'refused to authenticate user "drawbridge_gateway" for connection db (28P01: password authentication failed for user "drawbridge_gateway")',
    );
    expect(result.text).toContain('the operator must fix it');
    expect(result.text).toMatch(/What to do: .*Retrying will not help/);
    expect(result.text).not.toMatch(/Retry later/);
    expect(result.text).not.toContain('wrong-password-x1');
    expect(outcome).toMatchObject({ status: 'error', errorCode: 'backend.auth_failed' });
    expect(JSON.stringify([intent, outcome])).not.toContain('wrong-password-x1');
  });

  it('a wrong password, when nothing needs the catalog (execute): the same error, journaled as a failed call', async () => {
    const { result, call: intent, outcome } = await journaled(withPassword(db.gatewayUrl, 'wrong-password-x2'), 'SELECT 1');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.code).toBe('backend.auth_failed');
    expect(result.text).toContain('user "drawbridge_gateway"');
    expect(intent['decision']).toMatchObject({ effect: 'allow', rule: 'read' });
    expect(outcome).toMatchObject({ status: 'error', errorCode: 'backend.auth_failed' });
  });

  it('a role that may not log in (28000) is backend.auth_failed too', async () => {
    const r = await call(await gatewayWith(nologin.url), 'SELECT 1');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('backend.auth_failed');
    expect(r.text).toContain(`refused to authenticate user "${nologin.name}" for connection db (28000: role "${nologin.name}" is not permitted to log in)`);
  });

  it('a stopped server: backend.unavailable, could not connect to 127.0.0.1:PORT: connection refused', async () => {
    const url = await refusedPostgresUrl();
    const port = new URL(url).port;
    const r = await call(await gatewayWith(url), 'SELECT id FROM orders');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('backend.unavailable');
    expect(r.text).toContain(`Connection db: could not connect to 127.0.0.1:${port}: connection refused`);
  });

  it('the right credential still works (the checks refuse only mistakes)', async () => {
    const r = await call(await gatewayWith(db.gatewayUrl), 'SELECT count(*)::int AS n FROM orders');
    expect(r.ok).toBe(true);
  });
});
