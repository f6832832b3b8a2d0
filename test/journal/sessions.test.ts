// Every call's intent record names its agent session (issue 13): over stdio, each
// `drawbridge serve` process is one session with its own id, shared by all its calls,
// and sessionReplay finds exactly that process's calls. (Over Streamable HTTP the id is
// the Mcp-Session-Id: test/http/api-journal.test.ts.) Runs the built CLI (dist/).

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalls } from '../../src/journal/export.js';
import { sessionReplay } from '../../src/journal/search.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import type { JournalStore } from '../../src/state/contract.js';
import { CLI, REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';

let db: FreshDatabase;
let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('sessions');
  dir = writeConfig();
});

afterAll(async () => {
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One `drawbridge serve` process (one agent session over stdio): two calls, then it exits. */
async function stdioSession(marker: string): Promise<void> {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'serve', '--config', dir],
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '', DB_URL: db.gatewayUrl },
    cwd: REPO_ROOT,
    stderr: 'ignore',
  });
  const client = new Client({ name: `sessions-${marker}`, version: '1.0.0' });
  await client.connect(transport);
  try {
    for (const n of [1, 2]) {
      const result = await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `SELECT '${marker}-${n}' AS v` } });
      expect(result.isError, JSON.stringify(result)).toBeFalsy();
    }
  } finally {
    await client.close();
  }
}

describe('the agent session in the journal, over stdio', () => {
  it('gives each stdio process its own session id, shared by its calls, and replays each session alone', async () => {
    await stdioSession('first');
    await stdioSession('second');
    const calls = [...readCalls(join(dir, 'journal.db'))];
    expect(calls).toHaveLength(4);
    const sessions = calls.map((c) => c.call['session']);
    for (const s of sessions) expect(s).toMatch(/^stdio-[0-9a-f-]{36}$/);
    expect(sessions[0]).toBe(sessions[1]);
    expect(sessions[2]).toBe(sessions[3]);
    expect(sessions[0]).not.toBe(sessions[2]);
    expect(calls.map((c) => c.call['client'])).toEqual([
      { name: 'sessions-first', version: '1.0.0' },
      { name: 'sessions-first', version: '1.0.0' },
      { name: 'sessions-second', version: '1.0.0' },
      { name: 'sessions-second', version: '1.0.0' },
    ]);

    const journal = openJournal(join(dir, 'journal.db'));
    try {
      const store: JournalStore = {
        append: async (type, callId, data, now, options) => journal.append(type, callId, data, now, options),
        read: async function* () {
          yield* journal.rows();
        },
        readFrom: async (afterSeq, limit) => journal.readFrom(afterSeq, limit),
        head: async () => journal.head(),
        probe: async () => journal.probe(),
        close: async () => journal.close(),
      };
      const second = await sessionReplay(store, { session: sessions[2] as string });
      expect(second.steps.map((s) => s.callId)).toEqual([calls[2]?.callId, calls[3]?.callId]);
      expect(second.steps.map((s) => s.outcome?.status)).toEqual(['ok', 'ok']);
      expect(second.totals).toMatchObject({ calls: 2, rows: 2, decisions: { allow: 2 }, outcomes: { ok: 2 } });
    } finally {
      journal.close();
    }
  }, 60_000);
});
