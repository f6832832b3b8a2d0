// Shared test fixtures: a private copy of the seeded shop database per test
// file (so evasion tests can assert "nothing changed" without interference),
// a config directory written for it, and a gateway opened on that config.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import { makeIdentity, type Identity } from '../../src/identity/identity.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { freePort } from './net.js';

export interface FreshDatabase {
  readonly name: string;
  readonly superuserUrl: string;
  readonly gatewayUrl: string;
  /** Runs SQL as superuser (for setup and for asserting the database did not change). */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string, user?: string, password?: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (user) u.username = user;
  if (password) u.password = password;
  return u.toString();
}

/** A new database copied from the seeded template; the gateway role may connect to it. */
export async function freshDatabase(prefix: string): Promise<FreshDatabase> {
  const name = `${prefix}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  try {
    // Template copies fail while another session is connected to the template: retry briefly.
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)} TEMPLATE ${admin.escapeIdentifier(inject('pgTemplate'))}`);
        break;
      } catch (error) {
        if (attempt >= 20 || (error as { code?: string }).code !== '55006') throw error;
        await new Promise((r) => setTimeout(r, 100 + attempt * 50));
      }
    }
    await admin.query(`REVOKE ALL ON DATABASE ${admin.escapeIdentifier(name)} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${admin.escapeIdentifier(name)} TO drawbridge_gateway`);
  } finally {
    await admin.end();
  }
  const superuserUrl = withDatabase(inject('pgAdminUrl'), name);
  const gatewayUrl = withDatabase(inject('pgAdminUrl'), name, 'drawbridge_gateway', inject('pgGatewayPassword'));
  const pool = new pg.Pool({ connectionString: superuserUrl, max: 2 });
  pool.on('error', () => undefined);
  return {
    name,
    superuserUrl,
    gatewayUrl,
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await pool.query<T>(sql, params)).rows;
    },
    async drop() {
      await pool.end();
      const a = new pg.Client({ connectionString: inject('pgAdminUrl') });
      await a.connect();
      try {
        await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** The same URL with another password: PostgreSQL answers 28P01 (password authentication failed). */
export function withPassword(url: string, password: string): string {
  const u = new URL(url);
  u.password = password;
  return u.toString();
}

/** A URL for a stopped server: a free loopback port nobody listens on (connection refused). */
export async function refusedPostgresUrl(database = 'shop'): Promise<string> {
  return `postgres://drawbridge_gateway@127.0.0.1:${await freePort()}/${database}`;
}

export interface TestRole {
  readonly name: string;
  /** A URL logging in as this role (with its password) to `database`. */
  readonly url: string;
  drop(): Promise<void>;
}

/**
 * A role of the test's own (roles are cluster-wide: the name is unique and the
 * role is dropped afterwards). `login: false` makes a NOLOGIN role, which
 * PostgreSQL refuses with 28000 even with the right password.
 */
export async function testRole(db: FreshDatabase, options: { readonly login: boolean }): Promise<TestRole> {
  const name = `role_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE ${admin.escapeIdentifier(name)} ${options.login ? 'LOGIN' : 'NOLOGIN'} PASSWORD ${admin.escapeLiteral(password)}`);
    await admin.query(`GRANT CONNECT ON DATABASE ${admin.escapeIdentifier(db.name)} TO ${admin.escapeIdentifier(name)}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: withDatabase(inject('pgAdminUrl'), db.name, name, password),
    async drop() {
      const a = new pg.Client({ connectionString: inject('pgAdminUrl') });
      await a.connect();
      try {
        await a.query(`REVOKE ALL ON DATABASE ${a.escapeIdentifier(db.name)} FROM ${a.escapeIdentifier(name)}`).catch(() => undefined);
        await a.query(`DROP ROLE IF EXISTS ${a.escapeIdentifier(name)}`);
      } finally {
        await a.end();
      }
    },
  };
}

export interface ConfigOptions {
  /** Full YAML of policies/rules.yaml (kind: policy …); a permissive-but-sane default otherwise. */
  readonly policy?: string;
  readonly identity?: { subject: string; groups: string[] } | null;
  /** OIDC identities instead of a local one: tokens from `issuer` for `audience`, scope mcp required. */
  readonly oidc?: { readonly issuer: string; readonly audience: string; readonly clockTolerance?: string };
  /** Extra YAML appended to tools/db.yaml (e.g. more connections). */
  readonly limits?: string;
  readonly hashKey?: boolean;
  /** YAML flow mapping for `approval:` in kind: gateway. Default: no waiting (calls needing approval answer "pending" at once). */
  readonly approval?: string;
}

export const DEFAULT_POLICY = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin, session, prepared, copy, do, call, lock, listen, notify, maintenance, transaction] }
    effect: deny
    message: Schema changes go through migrations.
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts] }
    effect: approve
    approvers: { groups: [dba] }
  - name: support-updates-orders
    match: { tool: run_sql, groups: [support], access: write, tables: [public.orders] }
    effect: allow
    max_affected_rows: 5
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
masking:
  - name: pii
    match: { tool: run_sql }
    columns:
      - customers.email
      - customers.ssn
      - customers.phone
      - customers.iban
      - customers.full_name
      - { column: "*.card_number", style: last4 }
    detectors: all
`;

/** Writes tools/ and policies/ for a database URL (passed via env DB_URL) into a temp dir. */
/** Reads of run_sql allowed, nothing else: the policy of tests about what surrounds a call, not about deciding it. */
export const READ_ONLY_POLICY = `kind: policy
rules:
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

/** The default policy, and writes that only the requester approves (in the client) for the group selfers. */
export const SELF_APPROVED_POLICY = DEFAULT_POLICY.replace(
  'rules:\n',
  `rules:
  - name: self-approved-writes
    match: { tool: run_sql, access: write, groups: [selfers] }
    effect: approve
    approvers: { requester: true }
`,
);

export function writeConfig(options: ConfigOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-config-'));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'tools', 'db.yaml'),
    `kind: connection
name: db
type: postgres
description: Test shop database
url: \${DB_URL}
limits: ${options.limits ?? '{ timeout: 3s, lock_timeout: 1s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }'}
---
kind: tool
name: run_sql
type: run_sql
connections: [db]
`,
  );
  const identity = options.identity === undefined ? { subject: 'tester@example.com', groups: ['analysts'] } : options.identity;
  const oidc = options.oidc;
  const clockTolerance = oidc?.clockTolerance ? `, clock_tolerance: ${oidc.clockTolerance}` : '';
  const identityLine = oidc
    ? `identity: { mode: oidc, issuer: "${oidc.issuer}", audience: "${oidc.audience}", required_scopes: [mcp]${clockTolerance} }\n`
    : identity
      ? `identity: { mode: local, subject: ${JSON.stringify(identity.subject)}, groups: ${JSON.stringify(identity.groups)} }\n`
      : '';
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway
${identityLine}journal: { path: journal.db }
approval: ${options.approval ?? '{ wait: 0ms, store: approvals.db }'}
${options.hashKey ? 'masking: { hash_key: { env: HASH_KEY } }\n' : ''}`,
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), options.policy ?? DEFAULT_POLICY);
  return dir;
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly dir: string;
  readonly identity: Identity;
  /** One run_sql call through the whole pipeline, as `identity` (default: the configured one). */
  sql(sql: string, identity?: Identity): Promise<CallResult>;
  close(): Promise<void>;
}

/** A gateway on a fresh config for `db`; `clock` (default: the real one) dates its journal records and decisions. */
export async function testGateway(db: FreshDatabase, options: ConfigOptions = {}, clock?: () => Date): Promise<TestGateway> {
  const dir = writeConfig(options);
  const gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl, HASH_KEY: 'test-hash-key' }, ...(clock ? { clock } : {}) });
  const declared = gateway.config.identity?.mode === 'local' ? gateway.config.identity : { subject: 'tester@example.com', groups: ['analysts'] };
  const identity = makeIdentity({ kind: 'local', subject: declared.subject, groups: declared.groups, issuer: 'local' });
  return {
    gateway,
    dir,
    identity,
    sql: (sql, who) => callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity: who ?? identity, client: { name: 'vitest' } }),
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function as(subject: string, groups: string[]): Identity {
  return makeIdentity({ kind: 'local', subject, groups, issuer: 'local' });
}
