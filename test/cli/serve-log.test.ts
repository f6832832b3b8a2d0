// `drawbridge serve` over stdio (the built CLI, stderr a pipe, not a terminal)
// writes one JSON line per call on stderr, whose callId is the journal's, and no
// value of the call (SQL text, data, the database password) in any line.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, waitForOutput } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';

const CANARY = 'CANARY-9b07-value';

let db: FreshDatabase;
let dir: string;
let client: Client;
let stderr = '';

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('servelog');
  dir = writeConfig();
  // A config warning (style hash without masking.hash_key): serve logs it as a warn line in the same format.
  writeFileSync(
    join(dir, 'policies', 'hash.yaml'),
    'kind: policy\nmasking:\n  - name: hashed\n    match: { tool: run_sql }\n    columns: [{ column: orders.note, style: hash }]\n',
  );
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl },
    cwd: REPO_ROOT,
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  client = new Client({ name: 'serve-log', version: '1.0.0' });
  await client.connect(transport);
});
afterAll(async () => {
  await client?.close();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The JSON lines of stderr that are call lines (serve's startup line is plain text). */
function callLines(): Array<Record<string, unknown>> {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => typeof l['callId'] === 'string');
}

function journalCallIds(): string[] {
  const j = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    return (j.prepare("SELECT call_id AS id FROM records WHERE type = 'call' ORDER BY seq").all() as Array<{ id: string }>).map((r) => r.id);
  } finally {
    j.close();
  }
}

describe('drawbridge serve logs each call as a JSON line on stderr', () => {
  it('logs the config warnings as warn lines', () => {
    const warnings = stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l['level'] === 'warn');
    expect(warnings).toContainEqual(
      expect.objectContaining({ msg: expect.stringMatching(/^config: masking uses style "hash" but no masking\.hash_key is set/) }),
    );
  });

  it('an allowed read and a denied call: one line each, in order, with the journal call ids; no canary', async () => {
    const read = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `SELECT '${CANARY}' AS v` } })) as CallToolResult;
    expect(read.isError ?? false).toBe(false);
    const denied = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `DROP TABLE "${CANARY}"` } })) as CallToolResult;
    expect(denied.isError).toBe(true);
    // The line is written after the answer is built; wait for the second one to arrive on the pipe.
    await waitForOutput(() => stderr, /"msg":"call refused"/, 'the denied call’s log line', 10_000);

    const lines = callLines();
    expect(lines.map((l) => l['callId'])).toEqual(journalCallIds());
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'info', msg: 'call ok', tool: 'run_sql', connection: 'db', decision: 'allow', status: 'ok', rows: 1 });
    expect(lines[1]).toMatchObject({ level: 'info', msg: 'call refused', decision: 'deny', rule: 'no-ddl', error: 'policy.denied' });
    for (const line of lines) {
      expect(new Date(String(line['time'])).toISOString()).toBe(line['time']);
      expect(line['session']).toEqual(expect.any(String));
      expect(line).not.toHaveProperty('subject');
    }
    expect(stderr).not.toContain('CANARY');
    expect(stderr).not.toContain(new URL(db.gatewayUrl).password);
    expect(stderr).not.toContain('tester@example.com"');
  });
});
