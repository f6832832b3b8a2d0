// gateway.reload against the real gateway (PostgreSQL, SQLite journal): a call in flight during a
// reload finishes under the config it started with (its decision, masking and connection), while
// the next call gets the new one; a connection whose declaration changed is replaced and the old one
// serves its call to the end; tools/list follows the new config; concurrent reloads run one at a
// time; a restart-only setting is refused and the running config kept; observers hear every
// attempt; the config hash is the one `find | sort | sha256sum` computes from the files.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { configHash } from '../../src/config/load.js';
import { localIdentityProvider } from '../../src/identity/identity.js';
import { configEvents } from '../../src/journal/search.js';
import { verifyStore } from '../../src/journal/verify.js';
import type { ReloadOutcome } from '../../src/pipeline/reload.js';
import { createMcpServer } from '../../src/server.js';
import { freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

const MASKED = `kind: policy
rules:
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
masking:
  - name: pii
    match: { tool: run_sql }
    columns: [customers.email]
`;
const UNMASKED = `kind: policy
rules:
  - name: read-again
    match: { tool: run_sql, access: read }
    effect: allow
`;
/** Long enough that the held lock, not a timeout, decides when the in-flight read ends. */
const LIMITS = '{ timeout: 60s, lock_timeout: 60s, max_rows: 100, max_bytes: 1MiB, max_affected_rows: 10 }';

let db: FreshDatabase;
let gw: TestGateway;

beforeAll(async () => {
  db = await freshDatabase('reload');
  gw = await testGateway(db, { policy: MASKED, limits: LIMITS });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

async function journalRecords(type: string): Promise<Array<Record<string, unknown>>> {
  const found: Array<Record<string, unknown>> = [];
  for await (const row of gw.gateway.journal.read()) if (row.type === type) found.push(JSON.parse(String(row.data)) as Record<string, unknown>);
  return found;
}

/** Polls the journal (no wall-clock wait as such) until a call's intent with this SQL is there. */
async function intentOf(sql: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 1000; i++) {
    const found = (await journalRecords('call')).find((c) => (c['input'] as { sql?: string } | null)?.sql === sql);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no intent for ${sql}`);
}

it('a call in flight finishes under its config (decision, masking, old connection); the next call gets the new one; tools/list follows', async () => {
  const first = gw.gateway.config.hash;
  const server = createMcpServer(gw.gateway, localIdentityProvider({ subject: 'tester@example.com', groups: ['analysts'] }));
  const client = new Client({ name: 'reload', version: '1.0.0' });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  await client.connect(clientSide);
  const heard: ReloadOutcome[] = [];
  const unsubscribe = gw.gateway.onReload((outcome, config) => {
    heard.push(outcome);
    expect(config.hash).toBe(outcome.hash);
  });
  const before = (await client.listTools()).tools[0]?.description ?? '';
  expect(before).toContain('- read: allow');

  // A superuser holds the table: the read below is admitted, decided, journaled and then waits in the database.
  const holder = new pg.Client({ connectionString: db.superuserUrl });
  await holder.connect();
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE customers IN ACCESS EXCLUSIVE MODE');
    const sql = 'SELECT email FROM customers ORDER BY id LIMIT 2';
    const oldConnection = gw.gateway.connection('db');
    const closed = vi.spyOn(oldConnection, 'close');
    const inFlight = gw.sql(sql);
    const intent = await intentOf(sql);
    expect(intent['config']).toBe(first);

    // The new config: no masking, another rule name, and the connection declared anew (a new description).
    writeFileSync(join(gw.dir, 'policies', 'rules.yaml'), UNMASKED);
    const tools = join(gw.dir, 'tools', 'db.yaml');
    writeFileSync(tools, readFileSync(tools, 'utf8').replace('description: Test shop database', 'description: The shop, declared anew'));
    const outcome = await gw.gateway.reload({ via: 'signal' });
    expect(outcome).toMatchObject({ result: 'applied', previousHash: first, connections: { replaced: ['db'], added: [], removed: [] } });
    const second = gw.gateway.config.hash;
    expect(second).not.toBe(first);
    expect(outcome.hash).toBe(second);
    expect(gw.gateway.connection('db')).not.toBe(oldConnection);
    // Replaced, but a call still runs on it: not closed yet.
    expect(closed).not.toHaveBeenCalled();
    // tools/list shows the new policy and the new description at once.
    const after = (await client.listTools()).tools[0]?.description ?? '';
    expect(after).toContain('- read-again: allow');
    expect(after).toContain('The shop, declared anew');

    await holder.query('COMMIT');
    const done = await inFlight;
    // Not cut off by the swap, and masked under the config it started with.
    expect(done.ok, done.ok ? '' : done.text).toBe(true);
    // Its last call ended: the replaced connection is closed.
    expect(closed).toHaveBeenCalledTimes(1);
    if (!done.ok) return;
    expect(done.text).not.toMatch(/@example\.(com|org|net)/);
    expect(done.structured.masked).toEqual([expect.objectContaining({ by: 'column', rule: 'pii', count: 2 })]);
    const outcomes = await journalRecords('outcome');
    expect(outcomes.at(-1)).toMatchObject({ status: 'ok', rows: 2 });

    // The same read now, under the new config: rule read-again, nothing masked, the new connection.
    const now = await gw.sql(sql);
    expect(now.ok).toBe(true);
    if (!now.ok) return;
    expect(now.text).toMatch(/@/);
    expect(now.structured.rule).toBe('read-again');
    expect((await journalRecords('call')).at(-1)?.['config']).toBe(second);
  } finally {
    await holder.query('ROLLBACK').catch(() => undefined);
    await holder.end();
    unsubscribe();
    await client.close();
    await server.close();
  }
  expect(heard.map((o) => o.result)).toEqual(['applied']);
}, 60_000);

it('reloads asked at once run one at a time; a restart-only change is refused and the running config kept; the journal verifies', async () => {
  const running = gw.gateway.config.hash;
  const kept = gw.gateway.connection('db');
  const closed = vi.spyOn(kept, 'close');
  const [a, b] = await Promise.all([gw.gateway.reload({ via: 'signal' }), gw.gateway.reload({ via: 'admin', operator: 'sam' })]);
  // A connection whose declaration did not change is kept across reloads, open.
  expect(gw.gateway.connection('db')).toBe(kept);
  expect(closed).not.toHaveBeenCalled();
  expect(a).toMatchObject({ result: 'applied', hash: running, previousHash: running });
  expect(b).toMatchObject({ result: 'applied', hash: running, previousHash: running, by: { via: 'admin', operator: 'sam' } });

  // identity is read once at start: refused whole, even with a valid policy change beside it.
  const gatewayYaml = join(gw.dir, 'policies', 'gateway.yaml');
  const original = readFileSync(gatewayYaml, 'utf8');
  writeFileSync(gatewayYaml, original.replace('subject: "tester@example.com"', 'subject: "someone@example.com"'));
  const refused = await gw.gateway.reload({ via: 'signal' });
  expect(refused).toMatchObject({
    result: 'refused',
    code: 'config.restart_required',
    hash: running,
    problems: ['identity (kind: gateway) changed: restart to apply'],
  });
  expect(refused.attempted).not.toBe(running);
  expect(gw.gateway.config.hash).toBe(running);
  expect(gw.gateway.lastReload).toBe(refused);
  writeFileSync(gatewayYaml, original);

  const configs = (await journalRecords('config')).slice(-3);
  expect(configs.map((c) => [c['result'], c['hash'], (c['by'] as { via: string }).via])).toEqual([
    ['applied', running, 'signal'],
    ['applied', running, 'admin'],
    ['refused', running, 'signal'],
  ]);
  // As the console's config page reads them: newest first, with who asked.
  const events = await configEvents(gw.gateway.journal, 2);
  expect(events.map((e) => [e.result, e.code, e.via, e.operator])).toEqual([
    ['refused', 'config.restart_required', 'signal', null],
    ['applied', null, 'admin', 'sam'],
  ]);
  expect((await verifyStore(gw.gateway.journal)).ok).toBe(true);
});

it('the config hash is what sha256sum computes from the files, sorted by path', () => {
  const fromShell = execFileSync(
    'sh',
    ['-c', "find tools policies -maxdepth 1 \\( -name '*.yaml' -o -name '*.yml' \\) | LC_ALL=C sort | xargs sha256sum | sha256sum"],
    { cwd: gw.dir, encoding: 'utf8' },
  ).split(' ')[0];
  expect(gw.gateway.config.hash).toBe(fromShell);
  // Order-independent input, path-sensitive output.
  const bytes = new TextEncoder().encode('kind: policy\n');
  expect(
    configHash([
      { path: 'policies/b.yaml', bytes },
      { path: 'policies/a.yaml', bytes },
    ]),
  ).toBe(
    configHash([
      { path: 'policies/a.yaml', bytes },
      { path: 'policies/b.yaml', bytes },
    ]),
  );
  expect(configHash([{ path: 'policies/a.yaml', bytes }])).not.toBe(configHash([{ path: 'policies/c.yaml', bytes }]));
});
