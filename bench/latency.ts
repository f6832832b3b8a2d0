// Per-call latency of the same queries through three targets, measured from
// the caller's side: direct `pg`, Drawbridge over stdio (MCP SDK client →
// `drawbridge serve`), and @modelcontextprotocol/server-postgres over stdio.
// Calls are interleaved round-robin (with the starting target rotating every
// round) so that machine noise lands on all targets alike.

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import pg from 'pg';
import { roundRobin } from './support.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** dist/bench → repository root. */
export const REPO_ROOT = resolve(here, '..', '..');
export const DRAWBRIDGE_CLI = resolve(REPO_ROOT, 'dist', 'src', 'cli.js');
export const SERVER_POSTGRES = resolve(REPO_ROOT, 'node_modules', '@modelcontextprotocol', 'server-postgres', 'dist', 'index.js');

export interface Target {
  readonly name: string;
  /** The timed part: one call, returning whatever is needed to check it afterwards. */
  call(sql: string): Promise<unknown>;
  /** Untimed: throws unless the answer has `rows` rows, untruncated (and, for Drawbridge, the expected masking). */
  check(answer: unknown, rows: number, query: QueryShape): void;
  close(): Promise<void>;
  /** Child process id, if any (killed on a hard timeout). */
  readonly pid: number | null;
}

export interface QueryShape {
  readonly label: string;
  readonly columns: string;
  /** Whether the query selects bench_rows.email (column-masked by Drawbridge). */
  readonly selectsEmail: boolean;
}

export const PLAIN: QueryShape = { label: 'id, name, city, amount, created_at', columns: 'id, name, city, amount, created_at', selectsEmail: false };
export const WITH_EMAIL: QueryShape = { label: '… + email (column-masked)', columns: 'id, name, email, city, amount, created_at', selectsEmail: true };

export function sqlFor(shape: QueryShape, rows: number): string {
  return `SELECT ${shape.columns} FROM bench_rows ORDER BY id LIMIT ${rows}`;
}

// ---------------------------------------------------------------------------
// Targets

export async function pgTarget(url: string): Promise<Target> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  client.on('error', () => undefined);
  return {
    name: 'pg',
    pid: null,
    call: (sql) => client.query(sql),
    check(answer, rows) {
      const got = (answer as pg.QueryResult).rows.length;
      if (got !== rows) throw new Error(`pg returned ${got} rows, expected ${rows}`);
    },
    close: () => client.end(),
  };
}

export interface ToolAnswer {
  isError?: boolean;
  content?: Array<{ type: string; text?: string }>;
  structuredContent?: { rowCount?: number; truncated?: unknown; masked?: Array<{ target: string; by: string; count: number }> };
}

export function answerText(a: ToolAnswer): string {
  return (a.content ?? []).map((c) => c.text ?? '').join('\n');
}

export async function stdioClient(
  name: string,
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ client: Client; transport: StdioClientTransport; stderr: () => string }> {
  const transport = new StdioClientTransport({ command, args, env, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const client = new Client({ name: `drawbridge-bench-${name}`, version: '1.0.0' });
  try {
    await client.connect(transport);
    // As an agent would: list the tools first (this also makes the SDK client
    // validate structured output against a tool's outputSchema, as real clients do).
    await client.listTools();
  } catch (error) {
    await transport.close().catch(() => undefined);
    throw new Error(`${name} did not start: ${(error as Error).message}\n${stderr}`, { cause: error });
  }
  return { client, transport, stderr: () => stderr };
}

export function childEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

export async function drawbridgeTarget(name: string, configDir: string, env: Record<string, string>): Promise<Target> {
  const { client, transport, stderr } = await stdioClient(name, process.execPath, [DRAWBRIDGE_CLI, 'serve', '--config', configDir], childEnv(env));
  return {
    name,
    pid: transport.pid,
    call: (sql) => client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, { timeout: 60_000 }),
    check(answer, rows, shape) {
      const a = answer as ToolAnswer;
      if (a.isError) throw new Error(`${name} refused the call: ${answerText(a)}\n${stderr()}`);
      const s = a.structuredContent;
      if (s?.rowCount !== rows) throw new Error(`${name} returned ${String(s?.rowCount)} rows, expected ${rows}`);
      if (s.truncated !== null) throw new Error(`${name} truncated the answer: ${JSON.stringify(s.truncated)}`);
      const emailMasked = (s.masked ?? []).filter((m) => m.by === 'column' && m.target.endsWith('bench_rows.email')).reduce((n, m) => n + m.count, 0);
      const expected = shape.selectsEmail ? rows : 0;
      if (emailMasked !== expected) throw new Error(`${name} masked ${emailMasked} email cells, expected ${expected}: ${JSON.stringify(s.masked)}`);
      const other = (s.masked ?? []).filter((m) => !(m.by === 'column' && m.target.endsWith('bench_rows.email')));
      if (other.length > 0) unexpectedMasking.add(`${shape.label} ×${rows}: ${JSON.stringify(other)}`);
    },
    close: () => client.close(),
  };
}

/** Detector hits on bench data, which has no PII outside `email`: reported as a finding, not a failure. */
export const unexpectedMasking = new Set<string>();

export async function serverPostgresTarget(url: string): Promise<Target> {
  const { client, transport, stderr } = await stdioClient('server-postgres', process.execPath, [SERVER_POSTGRES, url], childEnv({}));
  return {
    name: 'server-postgres',
    pid: transport.pid,
    call: (sql) => client.callTool({ name: 'query', arguments: { sql } }, undefined, { timeout: 60_000 }),
    check(answer, rows) {
      const a = answer as ToolAnswer;
      if (a.isError) throw new Error(`server-postgres failed: ${answerText(a)}\n${stderr()}`);
      const got = (JSON.parse(answerText(a)) as unknown[]).length;
      if (got !== rows) throw new Error(`server-postgres returned ${got} rows, expected ${rows}`);
    },
    close: () => client.close(),
  };
}

// ---------------------------------------------------------------------------
// The measurement loop

export interface Sample {
  readonly target: string;
  readonly shape: QueryShape;
  readonly rows: number;
  readonly calls: number;
  readonly p50: number;
  readonly p95: number;
}

export async function measureRoundRobin(
  targets: readonly Target[],
  shape: QueryShape,
  rows: number,
  options: { warmup: number; calls: number },
): Promise<Sample[]> {
  const sql = sqlFor(shape, rows);
  const samples = await roundRobin(
    targets,
    options,
    (t) => t.call(sql),
    (t, answer, round, rounds) => {
      // Check the first warm-up answer and the last measured one.
      if (round === 0 || round === rounds - 1) t.check(answer, rows, shape);
    },
  );
  return samples.map((s) => ({ ...s, shape, rows }));
}
