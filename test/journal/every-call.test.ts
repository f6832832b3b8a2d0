// Every call is journaled, whatever its arguments (issue 10, item 3). Through the
// MCP SDK Client end to end — in process, over stdio (`drawbridge serve` as a child
// process) and over Streamable HTTP — calls nested 100,000 deep and of 10 MB are
// refused with input.invalid AFTER their intent (bounded: 64 KiB, sha256, cut
// marker) and outcome are journaled, and the chain verifies. A seeded fuzz of 1,000
// malformed calls yields exactly one journaled call per tool result. Outages are
// journaled as errors, not as denials (`journal export --decision deny` lists
// refusals only), and no error an agent receives names a path on the gateway host.

import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolRequest, CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { localIdentityProvider } from '../../src/identity/identity.js';
import { INPUT_LIMITS, STORED_PREFIX_BYTES } from '../../src/journal/bounded.js';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { createMcpServer } from '../../src/server.js';
import { MAX_STDIO_MESSAGE_BYTES } from '../../src/stdio.js';
import { createLogger } from '../../src/observability/log.js';
import { CLI, REPO_ROOT, requireBuiltCli, runInProcess } from '../support/cli.js';
import { freshDatabase, refusedPostgresUrl, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { IterativeStdioClientTransport } from '../support/iterativeStdio.js';

const CALLER = { subject: 'tester@example.com', groups: ['analysts'] };

let db: FreshDatabase;
const dirs: string[] = [];

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('everycall');
});

afterAll(async () => {
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Helpers

function nested(depth: number, leaf: unknown = 'x'): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const textOf = (r: CallToolResult): string => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
const codeOf = (r: CallToolResult): string => (r.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(textOf(r))?.[1] ?? 'unparsed') : 'ok');

/** Any params at all, as a malformed client could send them (the SDK Client passes them through as given). */
function params(name: unknown, args: unknown): CallToolRequest['params'] {
  return { name, arguments: args } as CallToolRequest['params'];
}

interface InProcess {
  readonly dir: string;
  readonly gateway: Gateway;
  readonly client: Client;
  readonly journalPath: string;
  close(): Promise<void>;
}

/** The operator's log as serve writes it: one line per call on stderr (JSON; the tests spy on process.stderr.write). */
function logToStderr(gateway: Gateway): void {
  gateway.onCallEnd(createLogger({ config: gateway.config.log, write: (line) => void process.stderr.write(line), isTTY: false }).call);
}

/** The gateway in this process, served by createMcpServer to the SDK Client over InMemoryTransport. */
async function inProcess(dir: string, env: Record<string, string>, options: { readonly log?: boolean } = {}): Promise<InProcess> {
  const gateway = await openGateway({ configDir: dir, env });
  if (options.log === true) logToStderr(gateway);
  const server = createMcpServer(gateway, localIdentityProvider(CALLER));
  const client = new Client({ name: 'every-call', version: '1.0.0' });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  await client.connect(clientTransport);
  return {
    dir,
    gateway,
    client,
    journalPath: gateway.config.journal.path,
    async close() {
      await client.close().catch(() => undefined);
      await server.close().catch(() => undefined);
      await gateway.close();
    },
  };
}

async function verifyWithCli(journalPath: string): Promise<void> {
  const verified = await runInProcess(['journal', 'verify', '--journal', journalPath]);
  expect(verified.stdout + verified.stderr).toMatch(/chain intact/);
  expect(verified.status).toBe(0);
}

/** `drawbridge journal export`, run in process (the fuzz journal holds 64 KiB inputs). */
async function exportWithCli(journalPath: string, args: readonly string[] = []): Promise<CallEntry[]> {
  const r = await runInProcess(['journal', 'export', '--journal', journalPath, ...args]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as CallEntry);
}

/** Asserts a refused over-limit call's journal entry: the intent keeps at most 64 KiB, the cut marker and the sha256. */
function expectCutEntry(entry: CallEntry | undefined, exceeded: readonly string[], whole?: { readonly bytes?: number; readonly sha256: string }): void {
  expect(entry).toBeDefined();
  const call = entry!.call;
  expect(call['decision']).toMatchObject({
    effect: 'deny',
    rule: null,
    message: expect.stringMatching(/^input\.invalid: The arguments exceed the gateway's input limits: /),
  });
  expect(typeof call['input']).toBe('string');
  expect(Buffer.byteLength(call['input'] as string)).toBeLessThanOrEqual(STORED_PREFIX_BYTES);
  expect(call['inputCut']).toMatchObject({ exceeded, limits: { depth: INPUT_LIMITS.maxDepth, bytes: INPUT_LIMITS.maxBytes, values: INPUT_LIMITS.maxValues } });
  if (whole) expect(call['inputCut']).toMatchObject(whole);
  expect(entry!.outcome).toMatchObject({ status: 'refused', errorCode: 'input.invalid' });
  // The whole record is small, whatever the input was.
  expect(canonicalJson(call).length).toBeLessThan(STORED_PREFIX_BYTES + 8 * 1024);
}

// ---------------------------------------------------------------------------

describe('in process, through the MCP SDK Client', () => {
  let s: InProcess;
  beforeAll(async () => {
    const dir = writeConfig();
    dirs.push(dir);
    s = await inProcess(dir, { DB_URL: db.gatewayUrl });
  });
  afterAll(async () => {
    await s?.close();
  });

  it('arguments nested 100,000 deep: refused input.invalid, journaled (intent + outcome), the chain verifies', async () => {
    const args = { connection: 'db', sql: nested(100_000) };
    const result = (await s.client.callTool({ name: 'run_sql', arguments: args })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(
      new RegExp(
        /^input\.invalid: The arguments exceed the gateway's input limits: nested 100001 levels deep \(at most 32\); /.source +
          /100003 values \(at most 10000\)\. Nothing was run\.\nWhat to do: Send the tool's arguments as a flat JSON object/.source,
      ),
    );
    const entries = [...readCalls(s.journalPath)];
    expectCutEntry(entries.at(-1), ['depth', 'values'], { sha256: sha256(canonicalJson(args)), bytes: Buffer.byteLength(canonicalJson(args)) });
    expect(entries.at(-1)!.call['connection']).toBe('db');
    await verifyWithCli(s.journalPath);
  });

  it('arguments of 10 MB: refused input.invalid, journaled with its first 64 KiB and the sha256 of all of it', async () => {
    const args = { connection: 'db', sql: `SELECT '${'y'.repeat(10_000_000)}'` };
    const result = (await s.client.callTool({ name: 'run_sql', arguments: args })) as CallToolResult;
    const bytes = Buffer.byteLength(canonicalJson(args));
    expect(textOf(result)).toContain(
      `input.invalid: The arguments exceed the gateway's input limits: ${bytes} bytes of JSON (at most 1048576, 1 MiB). Nothing was run.`,
    );
    const entry = [...readCalls(s.journalPath)].at(-1);
    expectCutEntry(entry, ['bytes'], { sha256: sha256(canonicalJson(args)), bytes });
    expect((entry!.call['input'] as string).startsWith(`{"connection":"db","sql":"SELECT 'yyy`)).toBe(true);
    await verifyWithCli(s.journalPath);
  });

  const invalidParams =
    'params the SDK Server would reject before any handler (a name that is not a string, arguments that are not an object) ' + 'are tool results, journaled';
  it(invalidParams, async () => {
    const before = [...readCalls(s.journalPath)].length;
    const cases: Array<[unknown, unknown, string]> = [
      [5, { connection: 'db', sql: 'SELECT 1' }, 'tool.unknown'],
      [['run_sql'], { connection: 'db', sql: 'SELECT 1' }, 'tool.unknown'],
      ['run_sql', ['db', 'SELECT 1'], 'input.invalid'],
      ['run_sql', 'SELECT 1', 'input.invalid'],
      ['run_sql', null, 'input.invalid'],
    ];
    for (const [name, args, code] of cases) {
      const result = (await s.client.callTool(params(name, args))) as CallToolResult;
      expect(codeOf(result), textOf(result)).toBe(code);
    }
    const entries = [...readCalls(s.journalPath)].slice(before);
    expect(entries.map((e) => e.outcome?.['errorCode'])).toEqual(cases.map((c) => c[2]));
    expect(entries[0]!.call['tool']).toBe('(not a string: 5)');
    expect(entries[3]!.call['input']).toBe('SELECT 1');
  });
});

describe('a seeded fuzz of 1,000 malformed calls through the MCP SDK Client', () => {
  // mulberry32: small, seeded, reproducible.
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const SEED = 0x0d1a5b0c;
  const CALLS = 1_000;
  const random = prng(SEED);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

  const ODD = [
    '',
    ' ',
    '\u0000',
    '\ud800',
    '\udfff',
    'a\ud83d',
    '\ufeff',
    '\u202egnp.exe',
    '\u2028',
    '😀',
    'e\u0301',
    '𝕏',
    '\\',
    '"',
    "'",
    '${x}',
    '$(id)',
    '`id`',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'db',
    'run_sql',
    '123',
    '-0',
    '1e400',
    'null',
    'true',
    'alice@example.com',
    '4242 4242 4242 4242',
    'connection',
    'sql',
  ];
  const SQL = [
    'SELECT 1',
    'SELECT id FROM orders ORDER BY id LIMIT 1',
    'DROP TABLE orders',
    'SELEC 1',
    'SELECT 1; SELECT 2',
    'DELETE FROM orders WHERE id = 1',
    "SELECT 'alice@example.com' AS contact",
    '',
    '   ',
    '-- only a comment',
  ];
  const KEYS = ['__proto__', 'constructor', 'prototype', 'as_user', 'role', 'connection ', 'SQL', 'hosts', '\u0000', '😀', 'toString'];

  function oddString(): string {
    if (random() < 0.5) return pick(ODD);
    let s = '';
    const n = int(24);
    for (let i = 0; i < n; i++) s += String.fromCharCode(int(0x10000));
    return s;
  }
  function scalar(): unknown {
    return pick([
      () => null,
      () => undefined,
      () => int(1000) - 500,
      () => random() * 1e308,
      () => random() < 0.5,
      () => oddString(),
      () => String(int(100)),
    ])();
  }
  function value(depth: number): unknown {
    if (depth <= 0 || random() < 0.4) return scalar();
    if (random() < 0.5) return Array.from({ length: int(4) }, () => value(depth - 1));
    const out: Record<string, unknown> = {};
    for (let i = int(4); i > 0; i--)
      Object.defineProperty(out, pick([...KEYS, ...ODD]), { value: value(depth - 1), enumerable: true, writable: true, configurable: true });
    return out;
  }
  function deep(): unknown {
    const depth = random() < 0.05 ? 100_000 : 33 + int(5_000);
    let v: unknown = oddString();
    for (let i = 0; i < depth; i++) v = random() < 0.5 ? [v] : { [pick(KEYS)]: v };
    return v;
  }
  function args(): unknown {
    switch (int(12)) {
      case 0:
        return { connection: 'db', sql: pick(SQL) };
      case 1: // wrong types
        return { connection: scalar(), sql: value(2) };
      case 2: // unknown keys, including prototype-pollution keys as own properties (as JSON.parse makes them)
        return JSON.parse(
          `{"connection":"db","sql":"SELECT 1",${JSON.stringify(pick(KEYS))}:{"polluted":true},"constructor":{"prototype":{"polluted":true}}}`,
        ) as unknown;
      case 3: // missing fields
        return pick([{}, { connection: 'db' }, { sql: 'SELECT 1' }, { connection: undefined, sql: undefined }]);
      case 4: // null / undefined / scalars where an object belongs
        return pick([null, undefined, 0, '', 'SELECT 1', true]);
      case 5: // arrays where objects belong
        return pick([[], ['db', 'SELECT 1'], [{ connection: 'db', sql: 'SELECT 1' }], { connection: ['db'], sql: ['SELECT 1'] }]);
      case 6: // numbers as strings, strings as numbers
        return pick([
          { connection: 'db', sql: 1 },
          { connection: '1', sql: '1' },
          { connection: 0, sql: 'SELECT 1' },
          { connection: 'db', sql: '1e400' },
        ]);
      case 7: // deep nesting
        return { connection: 'db', sql: deep() };
      case 8: // huge strings, sometimes over the byte limit
        return { connection: 'db', sql: `SELECT '${'z'.repeat(random() < 0.5 ? 200_000 : 1_100_000 + int(1_000_000))}'` };
      case 9: // many values
        return { connection: 'db', sql: 'SELECT 1', hosts: Array.from({ length: 10_001 + int(5_000) }, (_, i) => i) };
      case 10: // unicode oddities
        return { connection: pick(['db', 'db\u0000', 'ｄｂ', 'DB', '\u202edb']), sql: `SELECT '${oddString()}'` };
      default:
        return value(4);
    }
  }
  function name(): unknown {
    return random() < 0.85
      ? 'run_sql'
      : pick<unknown>([oddString(), 5, null, undefined, [], {}, '__proto__', 'constructor', 'RUN_SQL', 'run_sql\u0000', 'x'.repeat(100_000)]);
  }

  it(`yields one journaled call per tool result (seed ${SEED}), no internal errors, and the chain verifies`, { timeout: 180_000 }, async () => {
    const dir = writeConfig();
    dirs.push(dir);
    const s = await inProcess(dir, { DB_URL: db.gatewayUrl });
    const codes: string[] = [];
    const started = Date.now();
    try {
      for (let i = 0; i < CALLS; i++) {
        const result = (await s.client.callTool(params(name(), args()))) as CallToolResult;
        codes.push(codeOf(result));
      }
    } finally {
      await s.close();
    }
    // Bounded in time as well as in count.
    expect(Date.now() - started).toBeLessThan(150_000);
    expect(codes).toHaveLength(CALLS);
    // Nothing broke the gateway: no internal error, no journal failure, nothing unparsed.
    expect(codes.filter((c) => c === 'internal' || c === 'journal.unavailable' || c === 'unparsed')).toEqual([]);
    // The fuzz reached every stage: successes, policy denials, input limits, parse errors.
    for (const code of ['ok', 'input.invalid', 'tool.unknown', 'policy.denied', 'sql.parse_error', 'connection.unknown']) expect(codes).toContain(code);
    const entries = await exportWithCli(join(dir, 'journal.db'));
    expect(entries).toHaveLength(codes.length);
    expect(entries.map((e) => (e.outcome?.['status'] === 'ok' ? 'ok' : e.outcome?.['errorCode'])).sort()).toEqual([...codes].sort());
    await verifyWithCli(join(dir, 'journal.db'));
    // Keys such as __proto__ and constructor stayed data: nothing was polluted.
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });
});

describe('over stdio: drawbridge serve and the MCP SDK Client', () => {
  let dir: string;
  let transport: IterativeStdioClientTransport;
  let client: Client;

  beforeAll(async () => {
    dir = writeConfig();
    dirs.push(dir);
    transport = new IterativeStdioClientTransport({
      command: process.execPath,
      args: [CLI, 'serve', '--config', dir],
      env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', DB_URL: db.gatewayUrl },
      cwd: REPO_ROOT,
    });
    client = new Client({ name: 'every-call-stdio', version: '1.0.0' });
    await client.connect(transport);
  });
  afterAll(async () => {
    await client?.close();
  });

  it('a call nested 100,000 deep: parsed by the transport, refused input.invalid and journaled', async () => {
    const args = { connection: 'db', sql: nested(100_000) };
    const result = (await client.callTool({ name: 'run_sql', arguments: args })) as CallToolResult;
    expect(textOf(result)).toMatch(/^input\.invalid: The arguments exceed the gateway's input limits: nested 100001 levels deep/);
    expectCutEntry([...readCalls(join(dir, 'journal.db'))].at(-1), ['depth', 'values'], { sha256: sha256(canonicalJson(args)) });
  });

  const tenMegabytes =
    `a call of 10 MB (over the ${MAX_STDIO_MESSAGE_BYTES}-byte message size, never held whole): ` + 'refused input.invalid and journaled from its raw bytes';
  it(tenMegabytes, async () => {
    const sql = 'w'.repeat(10_000_000);
    const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } })) as CallToolResult;
    // The raw text of the arguments as the client sent it (canonicalJson: keys sorted), hashed in full.
    const rawArgs = canonicalJson({ connection: 'db', sql });
    expect(textOf(result)).toContain(`input.invalid: The arguments exceed the gateway's input limits: ${Buffer.byteLength(rawArgs)} bytes of JSON`);
    const entry = [...readCalls(join(dir, 'journal.db'))].at(-1);
    expectCutEntry(entry, ['bytes'], { bytes: Buffer.byteLength(rawArgs), sha256: sha256(rawArgs) });
    expect(entry!.call['inputCut']).toMatchObject({ form: 'raw' });
  });

  it('keeps serving: the session is intact, the journal verifies, every call has its outcome', async () => {
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
    const ok = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 1 AS one' } })) as CallToolResult;
    expect(ok.isError ?? false).toBe(false);
    const entries = await exportWithCli(join(dir, 'journal.db'));
    expect(entries.map((e) => e.outcome?.['errorCode'] ?? e.outcome?.['status'])).toEqual(['input.invalid', 'input.invalid', 'ok']);
    await verifyWithCli(join(dir, 'journal.db'));
  });

  it('journal.unavailable (another writer holds the lock): the agent is not shown the journal path; the operator log has it', async () => {
    const path = join(dir, 'journal.db');
    const other = new Database(path);
    try {
      other.exec('BEGIN IMMEDIATE');
      const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 2' } })) as CallToolResult;
      expect(textOf(result)).toMatch(/^journal\.unavailable: Cannot append to the audit journal: database is locked\n/);
      expect(textOf(result)).not.toContain(dir);
      expect(textOf(result)).not.toMatch(/\/tmp\//);
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    expect(transport.stderr()).toMatch(
      // The call's log line (JSON: stderr is not a terminal) names the fault in full, the path included.
      new RegExp(
        `"error":"journal\\.unavailable","fault":"Cannot append to the audit journal: database is locked \\[${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\]"`,
      ),
    );
  }, 30_000);
});

describe('outages are not denials, and errors never name gateway paths', () => {
  let dir: string;
  let s: InProcess;
  const ids: Record<string, string> = {};
  let log: string[] = [];

  beforeAll(async () => {
    dir = writeConfig();
    dirs.push(dir);
    // A second connection to a server that is not running, and a third whose URL is in a secret file that is missing.
    writeFileSync(
      join(dir, 'tools', 'db.yaml'),
      [
        ['db', '${DB_URL}'],
        ['down', '${DOWN_URL}'],
        ['filed', '{ file: secrets/missing-url }'],
      ]
        .map(
          ([name, url]) =>
            `kind: connection\nname: ${name}\ntype: postgres\ndescription: ${name}\nurl: ${url}\n` +
            'limits: { timeout: 3s, lock_timeout: 1s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }\n---\n',
        )
        .join('') + 'kind: tool\nname: run_sql\ntype: run_sql\nconnections: [db, down, filed]\n',
    );
    // The approvals store cannot be opened: a directory stands where its file belongs.
    mkdirSync(join(dir, 'approvals.db'));
    s = await inProcess(dir, { DB_URL: db.gatewayUrl, DOWN_URL: await refusedPostgresUrl() }, { log: true });
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      log.push(String(chunk));
      return true;
    });
    try {
      const call = async (key: string, connection: string, sql: string | undefined): Promise<CallToolResult> => {
        const result = (await s.client.callTool({ name: 'run_sql', arguments: { connection, ...(sql === undefined ? {} : { sql }) } })) as CallToolResult;
        ids[key] = [...readCalls(s.journalPath)].at(-1)!.callId;
        return result;
      };
      await call('policy', 'db', 'DROP TABLE orders');
      await call('invalid', 'db', undefined);
      await call('resolveOutage', 'down', 'SELECT id FROM orders');
      await call('executeOutage', 'down', 'SELECT 1');
      await call('storeOutage', 'db', 'DELETE FROM orders WHERE id = 1');
      await call('read', 'db', 'SELECT 1');
    } finally {
      spy.mockRestore();
    }
  });
  afterAll(async () => {
    await s?.close();
  });

  const entry = (key: string): CallEntry => [...readCalls(s.journalPath)].find((e) => e.callId === ids[key])!;

  it('a backend unreachable before any decision: no decision, the error, an error outcome', () => {
    const e = entry('resolveOutage');
    expect(e.call['decision']).toBeNull();
    expect(e.call['error']).toMatchObject({ code: 'backend.unavailable', message: expect.stringContaining('could not connect') });
    expect(e.outcome).toMatchObject({ status: 'error', errorCode: 'backend.unavailable' });
  });

  it('after the decision (allow, then execute) and in the approve stage (store unavailable): the decision stands, the outcome is an error', () => {
    expect(entry('executeOutage').call['decision']).toMatchObject({ effect: 'allow', rule: 'read' });
    expect(entry('executeOutage').outcome).toMatchObject({ status: 'error', errorCode: 'backend.unavailable' });
    expect(entry('storeOutage').call['decision']).toMatchObject({ effect: 'approve', rule: 'writes-need-approval' });
    expect(entry('storeOutage').outcome).toMatchObject({ status: 'error', errorCode: 'approval.store_unavailable' });
  });

  it('journal export --decision deny lists the refusals only (the policy denial, the invalid input), never an outage', async () => {
    const denied = await exportWithCli(s.journalPath, ['--decision', 'deny']);
    expect(denied.map((e) => e.callId)).toEqual([ids['policy'], ids['invalid']]);
    expect(denied.map((e) => e.outcome?.['errorCode'])).toEqual(['policy.denied', 'input.invalid']);
    const csv = (await runInProcess(['journal', 'export', '--journal', s.journalPath, '--format', 'csv'])).stdout.trim().split('\n');
    const header = csv[0]!.split(',');
    const row = csv.find((l) => l.includes(ids['resolveOutage']!))!.split(',');
    expect([row[header.indexOf('decision')], row[header.indexOf('status')], row[header.indexOf('error_code')]]).toEqual(['', 'error', 'backend.unavailable']);
    await verifyWithCli(s.journalPath);
  });

  it('the approvals store error shown to the agent names no path; the operator log does', async () => {
    const result = (await s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'DELETE FROM orders WHERE id = 2' } })) as CallToolResult;
    expect(codeOf(result)).toBe('approval.store_unavailable');
    expect(textOf(result)).toContain('<path on the gateway host>');
    expect(textOf(result)).not.toContain(dir);
    expect(log.join('')).toContain(join(dir, 'approvals.db'));
  });

  it('a secret file that cannot be read: the agent learns that, not where the file is', async () => {
    const result = (await s.client.callTool({ name: 'run_sql', arguments: { connection: 'filed', sql: 'SELECT 1' } })) as CallToolResult;
    expect(textOf(result)).toMatch(
      /^config\.secret_missing: A secret needed by this connection is missing: secret file <path on the gateway host> cannot be read\./,
    );
    expect(textOf(result)).not.toContain(dir);
    expect([...readCalls(s.journalPath)].at(-1)!.outcome).toMatchObject({ status: 'error', errorCode: 'config.secret_missing' });
  });

  it('journal.unavailable names no path either (here: a journal that was closed under the gateway)', async () => {
    const other = writeConfig();
    dirs.push(other);
    const gateway = await openGateway({ configDir: other, env: { DB_URL: db.gatewayUrl } });
    logToStderr(gateway);
    await gateway.journal.close();
    log = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      log.push(String(chunk));
      return true;
    });
    try {
      const r = await callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql: 'SELECT 1' }, identity: null });
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe('journal.unavailable');
      expect(r.text).toMatch(/^journal\.unavailable: Cannot append to the audit journal: journal is closed\n/);
      expect(r.text).not.toContain(other);
      expect(r.error.details).not.toHaveProperty('path');
    } finally {
      spy.mockRestore();
      await gateway.close();
    }
    expect(log.join('')).toContain(join(other, 'journal.db'));
  });
});

describe('over Streamable HTTP', () => {
  it(
    'a body nested 100,000 deep (under the body cap) is refused input.invalid and journaled; a 10 MB body is refused by the cap (413) before it is a call',
    { timeout: 120_000 },
    async () => {
      const { startHarness, openSession, raw } = await import('../http/harness.js');
      const h = await startHarness();
      try {
        const token = await h.login('alice');
        const sessionId = await openSession(h.http.url, token);
        const command = `${'['.repeat(100_000)}"id"${']'.repeat(100_000)}`;
        const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ssh_exec","arguments":{"connection":"web","command":${command}}}}`;
        const reply = await raw(h.http.url, { token, sessionId, body });
        expect(reply.status).toBe(200);
        const result = reply.messages.find((m: { id?: unknown }) => m.id === 7)?.result as CallToolResult;
        expect(textOf(result)).toMatch(/^input\.invalid: The arguments exceed the gateway's input limits: nested 100001 levels deep/);
        const calls = h.journal().filter((r) => r.type === 'call');
        const last = calls.at(-1)!;
        expect(last.data['inputCut']).toMatchObject({ exceeded: ['depth', 'values'], form: 'canonical' });
        expect(h.journal().find((r) => r.type === 'outcome' && r.callId === last.callId)?.data).toMatchObject({
          status: 'refused',
          errorCode: 'input.invalid',
        });
        const big = await raw(h.http.url, {
          token,
          sessionId,
          body:
            `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"ssh_exec","arguments":{"connection":"web",` +
            `"command":"${'v'.repeat(10_000_000)}"}}}`,
        });
        expect(big.status).toBe(413);
        await verifyWithCli(join(h.dir, 'journal.db'));
      } finally {
        await h.close();
      }
    },
  );
});
