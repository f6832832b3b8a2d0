// End to end through a real MCP client: the SDK's Client over
// StdioClientTransport spawning `node dist/src/cli.js serve --config DIR`, with
// the database URL only in the server's environment (DB_URL).

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { DEMO_PII } from '../../dev/seed.js';
import { tabularOutputShape } from '../../src/pipeline/answer.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';

const CLIENT = { name: 'drawbridge-e2e', version: '9.9.9' };

interface Session {
  readonly client: Client;
  readonly transport: StdioClientTransport;
  readonly stderr: () => string;
  close(): Promise<void>;
}

async function connect(dir: string, env: Record<string, string>): Promise<Session> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env,
    cwd: REPO_ROOT,
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const client = new Client(CLIENT);
  await client.connect(transport);
  return {
    client,
    transport,
    stderr: () => stderr,
    async close() {
      await client.close();
    },
  };
}

function text(result: CallToolResult | Record<string, unknown>): string {
  const content = (result as CallToolResult).content ?? [];
  return content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

let db: FreshDatabase;
const dirs: string[] = [];
let main: Session;
let mainDir: string;
let tools: Tool[];

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('e2e');
  mainDir = writeConfig();
  dirs.push(mainDir);
  main = await connect(mainDir, { DB_URL: db.gatewayUrl });
  tools = (await main.client.listTools()).tools;
});

afterAll(async () => {
  await main?.close();
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('tools/list', () => {
  it('offers run_sql with connection as an enum of declared names', () => {
    expect(tools.map((t) => t.name)).toEqual(['run_sql']);
    const tool = tools[0]!;
    const props = tool.inputSchema.properties as Record<string, { enum?: string[]; type?: string }>;
    expect(props['connection']?.enum).toEqual(['db']);
    expect(props['sql']?.type).toBe('string');
    expect(tool.inputSchema.required).toEqual(expect.arrayContaining(['connection', 'sql']));
    expect((tool.inputSchema as { additionalProperties?: unknown }).additionalProperties).toBe(false);
  });

  it('describes the connections and the rules, and never the database URL', () => {
    const d = tools[0]!.description ?? '';
    expect(d).toMatch(/Connections:\n- db: Test shop database \(PostgreSQL; at most 100 rows/);
    for (const rule of ['no-ddl', 'writes-need-approval', 'support-updates-orders', 'read']) expect(d).toContain(`- ${rule}: `);
    expect(d).toMatch(/- no-ddl: deny .*\(Schema changes go through migrations\.\)/);
    expect(d).not.toContain(new URL(db.gatewayUrl).password);
    expect(d).not.toContain('drawbridge_gateway');
  });

  it('declares an outputSchema and honest annotations (writes possible under the default policy)', () => {
    const tool = tools[0]!;
    expect(tool.outputSchema?.type).toBe('object');
    expect(Object.keys(tool.outputSchema?.properties ?? {})).toEqual(expect.arrayContaining(['connection', 'columns', 'rows', 'masked', 'callId']));
    expect(tool.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true, openWorldHint: false });
  });

  it('a config whose only allow rules are reads is annotated read-only', async () => {
    const dir = writeConfig({
      policy: `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin] }
    effect: deny
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`,
    });
    dirs.push(dir);
    const s = await connect(dir, { DB_URL: db.gatewayUrl });
    try {
      const [tool] = (await s.client.listTools()).tools;
      expect(tool?.annotations).toMatchObject({ readOnlyHint: true, destructiveHint: false });
    } finally {
      await s.close();
    }
  });
});

describe('tools/call', () => {
  it('a read returns text and structuredContent matching the outputSchema, with masked values', async () => {
    const result = (await main.client.callTool({
      name: 'run_sql',
      arguments: { connection: 'db', sql: 'SELECT id, email, city FROM customers ORDER BY id LIMIT 2' },
    })) as CallToolResult;
    expect(result.isError ?? false).toBe(false);
    // Valid against the JSON Schema the server published (as the client checks it) and the zod shape.
    const validate = new AjvJsonSchemaValidator().getValidator(tools[0]!.outputSchema as Record<string, unknown>);
    expect(validate(result.structuredContent).errorMessage).toBeUndefined();
    expect(validate({ ...result.structuredContent, rows: 'nope' }).valid).toBe(false);
    const structured = z.strictObject(tabularOutputShape).parse(result.structuredContent);
    expect(structured.columns.map((c) => c.name)).toEqual(['id', 'email', 'city']);
    expect(structured.rows).toHaveLength(2);
    expect(structured.rows[0]?.[1]).toBe('[masked:customers.email]');
    expect(structured.masked).toEqual([{ target: 'customers.email', by: 'column', rule: 'pii', count: 2 }]);
    expect(structured.rule).toBe('read');
    const t = text(result);
    expect(t).toMatch(/^db · select \(read\) on public\.customers · 2 rows/);
    expect(t).toContain('[masked:customers.email]');
    for (const email of DEMO_PII.emails) expect(JSON.stringify(result)).not.toContain(email);
  });

  it('a denied call is isError with a text that says why and what to do', async () => {
    const result = (await main.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'DROP TABLE orders' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toBeUndefined();
    expect(text(result)).toMatch(
      /^policy\.denied: Denied \(rule no-ddl\): Schema changes go through migrations\.\nWhat to do: This is refused by policy\. Do not retry/,
    );
    expect((await db.query('SELECT count(*)::int AS n FROM orders'))[0]?.['n']).toBe(500);
  });

  it('an approve decision is isError saying it is pending and who must approve', async () => {
    const result = (await main.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'DELETE FROM orders WHERE id = 1' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(
      // Built from parts only for the line width; the back-references \1 stay in the part that holds their group.
      new RegExp(
        /^approval\.pending: Pending approval (ap_[a-z0-9]{10}): a human must approve \1 \(someone in dba must run `drawbridge approvals approve \1`/.source +
          /\); nothing was run yet\.\n/.source +
          /What to do: Call run_sql again with exactly the same arguments \(connection db, same sql\) to pick up the decision; it /.source,
      ),
    );
    // The same as structured output, valid against the outputSchema the server published.
    const validate = new AjvJsonSchemaValidator().getValidator(tools[0]!.outputSchema as Record<string, unknown>);
    expect(validate(result.structuredContent).errorMessage).toBeUndefined();
    expect(result.structuredContent).toMatchObject({
      connection: 'db',
      rows: [],
      rowCount: 0,
      approval: { id: expect.stringMatching(/^ap_/), status: 'pending', tool: 'run_sql', connection: 'db' },
    });
    expect((await db.query('SELECT count(*)::int AS n FROM orders WHERE id = 1'))[0]?.['n']).toBe(1);
  });

  it('an undeclared connection name is isError connection.unknown naming the valid ones', async () => {
    const result = (await main.client.callTool({ name: 'run_sql', arguments: { connection: 'prod', sql: 'SELECT 1' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^connection\.unknown: .*\nWhat to do: Use one of: db\./s);
  });

  it('an unknown tool is isError tool.unknown', async () => {
    const result = (await main.client.callTool({ name: 'drop_database', arguments: { connection: 'db' } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^tool\.unknown: There is no tool named "drop_database"/);
  });

  it('invalid arguments are isError input.invalid', async () => {
    const result = (await main.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 42 } })) as CallToolResult;
    expect(result.isError).toBe(true);
    expect(text(result)).toMatch(/^input\.invalid: /);
  });

  it('the journal has every call with the client name and version from initialize', () => {
    const j = new Database(join(mainDir, 'journal.db'), { readonly: true });
    let rows: Array<{ type: string; data: string }>;
    try {
      rows = j.prepare('SELECT type, data FROM records ORDER BY seq').all() as Array<{ type: string; data: string }>;
    } finally {
      j.close();
    }
    const calls = rows.filter((r) => r.type === 'call').map((r) => JSON.parse(r.data) as Record<string, any>);
    const outcomes = rows.filter((r) => r.type === 'outcome').map((r) => JSON.parse(r.data) as Record<string, any>);
    expect(calls.length).toBeGreaterThanOrEqual(6);
    expect(outcomes).toHaveLength(calls.length);
    for (const c of calls) {
      expect(c.client).toEqual(CLIENT);
      expect(c.principal).toMatchObject({ subject: 'tester@example.com', groups: ['analysts'], kind: 'local' });
    }
    expect(calls.map((c) => [c.tool, c.connection, c.decision.effect])).toEqual(
      expect.arrayContaining([
        ['run_sql', 'db', 'allow'],
        ['run_sql', 'db', 'deny'],
        ['run_sql', 'db', 'approve'],
        ['run_sql', 'prod', 'deny'],
        ['drop_database', 'db', 'deny'],
      ]),
    );
    expect(outcomes.map((o) => o.errorCode ?? o.status)).toEqual(
      expect.arrayContaining(['ok', 'policy.denied', 'approval.pending', 'connection.unknown', 'tool.unknown', 'input.invalid']),
    );
    // The URL with the gateway's password is nowhere in the journal.
    expect(readFileSync(join(mainDir, 'journal.db')).toString('latin1')).not.toContain(new URL(db.gatewayUrl).password);
  });

  it('reports who it serves as on stderr, never the database URL', () => {
    expect(main.stderr()).toMatch(/"level":"info","msg":"serving 1 tool\(s\) over stdio as tester@example\.com \[local\]/);
    expect(main.stderr()).not.toContain(new URL(db.gatewayUrl).password);
  });
});

describe('a missing secret', () => {
  it('DB_URL unset: tools/list works, calls are isError config.secret_missing, and the server keeps running', async () => {
    const dir = writeConfig();
    dirs.push(dir);
    const s = await connect(dir, {});
    try {
      expect((await s.client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      for (let i = 0; i < 2; i++) {
        const result = (await s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 1' } })) as CallToolResult;
        expect(result.isError).toBe(true);
        expect(text(result)).toMatch(
          /^config\.secret_missing: A secret needed by this connection is missing: environment variable DB_URL is not set\.\nWhat to do: Set the referenced/,
        );
      }
      await s.client.ping();
      // Refusals that do not need the connection still work as usual.
      const denied = (await s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELEC 1' } })) as CallToolResult;
      expect(text(denied)).toMatch(/^sql\.parse_error: /);
      const j = new Database(join(dir, 'journal.db'), { readonly: true });
      try {
        const outcomes = (j.prepare("SELECT data FROM records WHERE type = 'outcome' ORDER BY seq").all() as Array<{ data: string }>).map((r) =>
          JSON.parse(r.data),
        );
        expect(outcomes.map((o) => o.errorCode)).toEqual(['config.secret_missing', 'config.secret_missing', 'sql.parse_error']);
      } finally {
        j.close();
      }
    } finally {
      await s.close();
    }
  });

  it('no identity configured: every call is isError identity.missing', async () => {
    const dir = writeConfig({ identity: null });
    dirs.push(dir);
    const s = await connect(dir, { DB_URL: db.gatewayUrl });
    try {
      const result = (await s.client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 1' } })) as CallToolResult;
      expect(result.isError).toBe(true);
      expect(text(result)).toMatch(/^identity\.missing: /);
      expect(s.stderr()).toMatch(/nobody \(every call will be refused\)/);
    } finally {
      await s.close();
    }
  });
});

describe('mcp.json', () => {
  const path = join(REPO_ROOT, 'mcp.json');
  it('is valid JSON with an mcpServers.drawbridge entry that runs serve', () => {
    const config = JSON.parse(readFileSync(path, 'utf8')) as { mcpServers?: Record<string, { command?: string; args?: string[] }> };
    const entry = config.mcpServers?.['drawbridge'];
    expect(entry).toBeDefined();
    expect(typeof entry?.command).toBe('string');
    const argv = [entry?.command ?? '', ...(entry?.args ?? [])];
    expect(argv).toContain('serve');
    // It runs the drawbridge CLI: the built file or the package bin.
    expect(argv.some((a) => /(^|\/)dist\/src\/cli\.js$|^drawbridge$/.test(a))).toBe(true);
  });
});
