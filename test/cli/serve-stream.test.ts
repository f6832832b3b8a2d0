// `drawbridge serve` (stdio, the built binary as a child process) with journal.stream: a webhook
// receiver on 127.0.0.1 that is down (503) at first. Calls succeed meanwhile and /readyz stays
// ready (a sink outage never makes the gateway unready); /metrics shows the backlog and the
// failures; once the receiver accepts, it gets every record in order; SIGTERM exits 0 with the
// sink's durable cursor at the journal's head. In process: /readyz's details show each sink.

import { appendFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createHealth } from '../../src/http/health.js';
import { startStreams } from '../../src/journal/stream/streams.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway } from '../../src/pipeline/gateway.js';
import { REPO_ROOT, requireBuiltCli, waitForOutput } from '../support/cli.js';
import { as, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { IterativeStdioClientTransport } from '../support/iterativeStdio.js';

let db: FreshDatabase;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  db = await freshDatabase('serve_stream');
}, 60_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  await db?.drop();
});

/** A receiver that answers 503 while `down()` says so; the records of the requests it accepted, in order. */
async function receiver(down: () => boolean): Promise<{ url: string; accepted: number[]; refused(): number }> {
  const accepted: number[] = [];
  let refused = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (down()) {
        refused += 1;
        res.writeHead(503).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { records: Array<{ seq: number }> };
      accepted.push(...body.records.map((r) => r.seq));
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}/ingest`, accepted, refused: () => refused };
}

/** A config whose journal streams to `url`, plus `extra` YAML in the gateway document. */
function configFor(url: string, extra = ''): string {
  const dir = writeConfig();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policies', 'gateway.yaml');
  const stream = `journal:\n  path: journal.db\n  stream:\n    - { name: siem, type: webhook, url: "${url}", secret: "\${SIEM_SECRET}", batch: 4 }\n`;
  writeFileSync(file, readFileSync(file, 'utf8').replace('journal: { path: journal.db }\n', stream));
  if (extra) appendFileSync(file, extra);
  return dir;
}

/** Polls a condition: what the child does shows up at the receiver, on the listener or in the journal file. */
async function until(what: string, probe: () => Promise<boolean> | boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never: ${what}`);
}

const textOf = (r: CallToolResult): string => r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');

it('serve streams the journal: calls and /readyz unaffected by a sink outage, metrics show it, all delivered after; SIGTERM keeps the cursor', async () => {
  let down = true;
  const r = await receiver(() => down);
  const dir = configFor(r.url, 'admin: { listen: "127.0.0.1:0" }\n');
  const transport = new IterativeStdioClientTransport({
    command: process.execPath,
    args: [requireBuiltCli(), 'serve', '--config', dir],
    env: { DB_URL: db.gatewayUrl, SIEM_SECRET: 'serve-stream-secret', PATH: process.env['PATH'] ?? '' },
    cwd: REPO_ROOT,
  });
  const client = new Client({ name: 'serve-stream-test', version: '1.0.0' });
  await client.connect(transport);
  const admin = (
    await waitForOutput(() => transport.stderr(), /admin listener \(\/healthz, \/readyz, \/metrics\) at (http:\/\/[^\s"]+)/, 'the admin listener')
  )[1] as string;

  for (let i = 0; i < 3; i++) {
    const answer = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: `SELECT ${i} AS n` } })) as CallToolResult;
    expect(answer.isError, textOf(answer)).toBeFalsy();
  }
  await until('the sink was tried', () => r.refused() > 0);
  const ready = await fetch(`${admin}/readyz`);
  expect([ready.status, await ready.text()]).toEqual([200, 'ok\n']);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  expect(metrics).toMatch(/^drawbridge_stream_failures_total\{sink="siem"\} [1-9]\d*$/m);
  // Serve's start record (the config it runs) and three calls' intents and outcomes.
  expect(metrics).toMatch(/^drawbridge_stream_backlog_records\{sink="siem"\} 7$/m);
  expect(metrics).toMatch(/^drawbridge_stream_delivered_total\{sink="siem"\} 0$/m);
  expect(transport.stderr()).toMatch(/audit stream siem: delivery failed, retrying with backoff: HTTP 503/);

  down = false;
  // The first retry comes after 1 s of backoff (real time here: the child's own clock).
  await until('every record delivered', () => r.accepted.length >= 7);
  expect(r.accepted.slice(0, 7)).toEqual([1, 2, 3, 4, 5, 6, 7]);
  expect(await transport.terminate()).toBe(0);

  const journal = new Database(join(dir, 'journal.db'), { readonly: true });
  try {
    const head = journal.prepare('SELECT max(seq) AS seq FROM records').get() as { seq: number };
    const cursor = journal.prepare("SELECT seq FROM stream_cursors WHERE name = 'siem'").get() as { seq: number };
    expect(cursor.seq).toBe(head.seq);
  } finally {
    journal.close();
  }
});

it('/readyz details show each sink’s backlog and last error, and the gateway stays ready while it fails', async () => {
  const r = await receiver(() => true);
  const dir = configFor(r.url);
  const gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl, SIEM_SECRET: 's' } });
  cleanups.push(() => gateway.close());
  const streams = startStreams({
    sinks: gateway.config.journal.stream,
    state: gateway.state,
    environment: gateway.environment,
    clock: gateway.clock,
    // Virtual time for the backoff: retries at once.
    tuning: { sleep: () => new Promise<void>((resolve) => setImmediate(resolve)) },
  });
  cleanups.push(() => streams.stop());
  gateway.onCallEnd(() => streams.wake());
  const call = await callTool(gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql: 'SELECT 1 AS one' },
    identity: as('tester@example.com', ['analysts']),
  });
  expect(call.ok).toBe(true);
  await until('the sink was tried', () => r.refused() > 0);
  const state = await createHealth(gateway, null, streams.status).readiness();
  expect(state.ready).toBe(true);
  expect(state.checks.streams?.['siem']).toMatchObject({ type: 'webhook', role: 'streaming', cursor: 0, head: 2, backlog: 2, lastDeliveredAt: null });
  expect(state.checks.streams?.['siem']?.lastError?.message).toBe('HTTP 503');
  // Without sinks, the details have no streams entry.
  expect((await createHealth(gateway, null).readiness()).checks.streams).toBeUndefined();
});
