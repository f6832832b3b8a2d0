// Gateway replicas for end-to-end tests: N real `drawbridge serve --http` processes of the
// built CLI, each with its own config directory (as on separate hosts) and one shared
// PostgreSQL state (state.url), in front of one target database. Also: an empty state
// database owned by a role of its own (no superuser, as the README asks of the state role),
// MCP clients with provider tokens, the approver CLI through any replica's config, and the
// shared journal as records. Knows nothing about what a test asserts.

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import type { StateStore } from '../../src/state/contract.js';
import { openState } from '../../src/state/open.js';
import { REPO_ROOT, requireBuiltCli, runInProcess, type CliRun } from './cli.js';
import { writeConfig, type FreshDatabase } from './fixtures.js';
import { freePort } from './net.js';
import type { TestIdp } from './oidc.js';

/** The public MCP URL every replica advertises, as behind one load balancer (never fetched: .test is reserved). */
export const PUBLIC_URL = 'http://drawbridge.test/mcp';

/** The environment variable the replicas' `state.url` names. */
export const STATE_VARIABLE = 'DRAWBRIDGE_STATE_URL';

/** Variables of the developer's shell that must not reach a replica. */
const LEAKY_VARIABLES = ['DRAWBRIDGE_CONFIG', 'DB_URL', 'SHOP_DATABASE_URL', 'DRAWBRIDGE_APPROVER_TOKEN', STATE_VARIABLE, 'DRAWBRIDGE_DEBUG'] as const;

// ---------------------------------------------------------------------------
// The state database

export interface StateDatabase {
  readonly name: string;
  readonly role: string;
  readonly password: string;
  /** Logs in as the state role (CONNECT and CREATE on the database, nothing else). */
  readonly url: string;
  /** Runs SQL as superuser (for assertions on the stored state). */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

function urlFor(adminUrl: string, database: string, user?: string, password?: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  if (user !== undefined) u.username = user;
  if (password !== undefined) u.password = password;
  return u.toString();
}

async function asAdmin<T>(adminUrl: string, body: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await body(client);
  } finally {
    await client.end();
  }
}

/**
 * An empty database for shared state on the cluster behind `adminUrl` (a superuser URL of
 * its maintenance database), and a new LOGIN role with only CONNECT and CREATE on it: the
 * gateway migrates the schema as that role. Both are dropped by drop().
 */
export async function freshStateDatabase(adminUrl: string, prefix = 'state'): Promise<StateDatabase> {
  const suffix = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const name = `${prefix}_${suffix}`;
  const role = `${prefix}_role_${suffix}`;
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  await asAdmin(adminUrl, async (admin) => {
    await admin.query(`CREATE ROLE ${admin.escapeIdentifier(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD ${admin.escapeLiteral(password)}`);
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)} TEMPLATE template0`);
    await admin.query(`REVOKE ALL ON DATABASE ${admin.escapeIdentifier(name)} FROM PUBLIC`);
    // Exactly what the README tells an operator to grant the state role.
    await admin.query(`GRANT CONNECT, CREATE ON DATABASE ${admin.escapeIdentifier(name)} TO ${admin.escapeIdentifier(role)}`);
  });
  const pool = new pg.Pool({ connectionString: urlFor(adminUrl, name), max: 2 });
  pool.on('error', () => undefined);
  let dropped = false;
  return {
    name,
    role,
    password,
    url: urlFor(adminUrl, name, role, password),
    async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []) {
      return (await pool.query<T>(sql, params)).rows;
    },
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end();
      await asAdmin(adminUrl, async (admin) => {
        await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
        await admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(role)}`);
      });
    },
  };
}

// ---------------------------------------------------------------------------
// Replicas

/** A policy for OIDC callers: developers read; their writes need one approver in dba, who may grant up to 15 minutes. */
export const REPLICA_POLICY = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin, session, prepared, copy, do, call, lock, listen, notify, maintenance, transaction] }
    effect: deny
    message: Schema changes go through migrations.
  - name: writes-need-approval
    match: { tool: run_sql, access: write }
    effect: approve
    message: Writes to the shop need a DBA's yes.
    approvers: { groups: [dba] }
    grant: 15m
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

export interface ReplicaSettings {
  /** A label for messages. */
  readonly name: string;
  /** The shared state: every replica of a test gets the same URL. */
  readonly stateUrl: string;
  /** The target database the replicas govern (tools/db.yaml's DB_URL). */
  readonly db: FreshDatabase;
  readonly idp: TestIdp;
  /** approval.wait (default 0ms: a call needing approval answers "pending" at once). */
  readonly approvalWait?: string;
  /** Connection limits (YAML flow mapping); the fixtures' default otherwise. */
  readonly limits?: string;
}

export interface Replica {
  readonly name: string;
  /** Its own config directory, as on its own host. */
  readonly dir: string;
  /** Where it listens: http://127.0.0.1:PORT/mcp. */
  readonly url: string;
  readonly child: ChildProcess;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string | null>;
  /** An MCP client connected to this replica with `token` (a new session). */
  connect(token: string): Promise<McpClient>;
  /** `drawbridge ARGS --config <this replica's dir>` in process, with the replica's environment and `token` as the approver's. */
  cli(args: readonly string[], token?: string): Promise<CliRun>;
  /** The shared state, opened through this replica's config as a CLI command would. */
  openState(): Promise<StateStore>;
  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; removes the config directory; resolves with how it exited. Idempotent. */
  stop(graceMs?: number): Promise<number | string | null>;
  /** SIGKILL now (a crash), and waits for the exit; the config directory stays until stop(). */
  kill(): Promise<void>;
}

export interface ToolAnswer {
  readonly result: CallToolResult;
  readonly text: string;
  /** The refusal code at the start of an error's text (`approval.pending` …), null on success. */
  readonly code: string | null;
}

export interface McpClient {
  readonly client: Client;
  readonly transport: StreamableHTTPClientTransport;
  sql(sql: string, options?: { readonly timeoutMs?: number }): Promise<ToolAnswer>;
  close(): Promise<void>;
}

function replicaEnv(settings: ReplicaSettings): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of LEAKY_VARIABLES) delete env[name];
  return { ...env, DB_URL: settings.db.gatewayUrl, [STATE_VARIABLE]: settings.stateUrl };
}

/** Writes a replica's config directory: OIDC identities for PUBLIC_URL, its approval settings, and the shared state. */
export function writeReplicaConfig(settings: Pick<ReplicaSettings, 'idp' | 'approvalWait' | 'limits'>): string {
  const dir = writeConfig({
    oidc: { issuer: settings.idp.issuer, audience: PUBLIC_URL },
    policy: REPLICA_POLICY,
    approval: `{ wait: ${settings.approvalWait ?? '0ms'}, store: approvals.db }`,
    ...(settings.limits === undefined ? {} : { limits: settings.limits }),
  });
  // journal.path and approval.store stay configured: with state.url they must not be used.
  // Block style: in a flow mapping (`{ url: \${…} }`) YAML would read the braces of \${…} as syntax.
  appendFileSync(join(dir, 'policies', 'gateway.yaml'), `state:\n  url: \${${STATE_VARIABLE}}\n`);
  return dir;
}

/** Every file in `dir` other than the config itself (tools/*.yaml, policies/*.yaml): what a replica left behind. */
export function strayFiles(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(relative(dir, path));
    }
  };
  walk(dir);
  return found.filter((f) => !/^(tools|policies)\/[^/]+\.yaml$/.test(f)).sort();
}

function toolAnswer(result: CallToolResult): ToolAnswer {
  const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
  const code = result.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(text)?.[1] ?? 'unparsed') : null;
  return { result, text, code };
}

/** An MCP client session on `url` with a bearer token. */
export async function connectMcp(url: string, token: string, name = 'replica-test'): Promise<McpClient> {
  const client = new Client({ name, version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  return {
    client,
    transport,
    async sql(sql, options = {}) {
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, {
        timeout: options.timeoutMs ?? 60_000,
      })) as CallToolResult;
      return toolAnswer(result);
    },
    close: () => client.close(),
  };
}

/** Starts one replica and resolves once it announced where it serves. */
export async function startReplica(settings: ReplicaSettings): Promise<Replica> {
  const dir = writeReplicaConfig(settings);
  const port = await freePort();
  const env = replicaEnv(settings);
  const child = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir, '--http', `127.0.0.1:${port}`, '--public-url', PUBLIC_URL], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  let stopped = false;

  const stop = async (graceMs = 10_000): Promise<number | string | null> => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
    }
    rmSync(dir, { recursive: true, force: true });
    return exited;
  };

  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`replica ${settings.name} did not announce itself:\n${stderr}`)), 30_000);
      const onData = (): void => {
        const announced = /over Streamable HTTP at (http:\/\/[^\s"]+)/.exec(stderr)?.[1];
        if (announced === undefined) return;
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve(announced);
      };
      child.stderr!.on('data', onData);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`replica ${settings.name} exited with ${code}:\n${stderr}`));
      });
    });
    return {
      name: settings.name,
      dir,
      url,
      child,
      stderr: () => stderr,
      exited,
      connect: (token) => connectMcp(url, token, `client-of-${settings.name}`),
      cli: (args, token) =>
        runInProcess([...args, '--config', dir], {
          env: { DB_URL: settings.db.gatewayUrl, [STATE_VARIABLE]: settings.stateUrl, DRAWBRIDGE_APPROVER_TOKEN: token },
        }),
      openState: () => openState(loadConfig(dir), { purpose: 'command', environment: { env: { [STATE_VARIABLE]: settings.stateUrl }, baseDir: dir } }),
      stop,
      async kill() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
    };
  } catch (error) {
    await stop(1_000);
    throw error;
  }
}

/** Starts replicas side by side (names r1, r2, … unless given); if one fails, the others are stopped. */
export async function startReplicas(settings: readonly ReplicaSettings[]): Promise<Replica[]> {
  const started = await Promise.allSettled(settings.map((s) => startReplica(s)));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  if (failed) {
    await Promise.all(replicas.map((r) => r.stop(1_000)));
    throw failed.reason;
  }
  return replicas;
}

// ---------------------------------------------------------------------------
// Tokens and the journal

/** An access token for PUBLIC_URL from the test provider: `sub` with `groups`, scopes mcp and approvals. */
export function tokenFor(idp: TestIdp, sub: string, groups: readonly string[]): Promise<string> {
  return idp.mint({ sub, aud: PUBLIC_URL, scope: 'mcp approvals', groups: [...groups] });
}

/** A journal record as the shared state holds it, with `data` parsed. */
export interface SharedRecord {
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  readonly callId: string;
  readonly data: Record<string, unknown>;
}

/** Every record of the shared journal, in seq order. */
export async function readJournal(state: StateStore): Promise<SharedRecord[]> {
  const records: SharedRecord[] = [];
  for await (const r of state.journal.read()) {
    records.push({
      seq: Number(r.seq),
      time: String(r.time),
      type: String(r.type),
      callId: String(r.callId),
      data: JSON.parse(String(r.data)) as Record<string, unknown>,
    });
  }
  return records;
}

/** The intent ('call') records whose journaled input contains `tag`. */
export function callsTagged(records: readonly SharedRecord[], tag: string): SharedRecord[] {
  return records.filter((r) => r.type === 'call' && JSON.stringify(r.data['input'] ?? null).includes(tag));
}

/**
 * Re-reads until `probe` returns a value (not undefined), or fails after `timeoutMs` with
 * what it last saw. For conditions another process brings about (a journal record, an exit).
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const found = await probe();
      if (found !== undefined) return found;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
