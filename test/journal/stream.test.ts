// Audit streaming (src/journal/stream/) against real parts: a gateway on each state engine
// (SQLite files; PostgreSQL as the state role) makes real calls against its PostgreSQL test
// database, and a streamer delivers its journal to node:http receivers on 127.0.0.1. A webhook
// receiver that answers 503 for a while gets every record in order (duplicates allowed, nothing
// missing), each request's HMAC signature verifies, calls succeed without waiting for the sink,
// and a new streamer resumes from the durable cursor. An OTLP/HTTP JSON receiver gets one log
// record per journal record. Two streamers on one PostgreSQL state never send at once, and the
// second takes over when the first stops. Backoff runs in virtual time (an injected sleep).

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { openState } from '../../src/state/open.js';
import type { StateStore } from '../../src/state/contract.js';
import { startStreams, type Streams } from '../../src/journal/stream/streams.js';
import { freshDatabase, writeConfig, as, type FreshDatabase } from '../support/fixtures.js';
import { stateRoleUrl } from '../support/state-role.js';
import { Registry } from 'prom-client';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SECRET = 'stream-secret-0123456789abcdef';

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly at: number;
}

interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** The most requests that were in flight at once. */
  maxConcurrent(): number;
}

/** A receiver on 127.0.0.1 that records each request; `answer` decides the reply (default 200), `hold` delays it. */
async function receiver(answer: (n: number, req: Received, res: ServerResponse) => void = (_n, _r, res) => res.end('ok')): Promise<Receiver> {
  const received: Received[] = [];
  let inFlight = 0;
  let max = 0;
  const server: Server = createServer((req, res) => {
    inFlight += 1;
    max = Math.max(max, inFlight);
    res.on('finish', () => (inFlight -= 1));
    res.on('close', () => {
      if (!res.writableFinished) inFlight -= 1;
    });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: received.length };
      received.push(r);
      // Answered on a later turn, so a second sender would have a chance to overlap.
      setImmediate(() => answer(r.at + 1, r, res));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}/siem/drawbridge`, received, maxConcurrent: () => max };
}

type Engine = 'sqlite' | 'postgres';

interface Setup {
  readonly gateway: Gateway;
  readonly dir: string;
  readonly db: FreshDatabase;
  readonly env: Record<string, string>;
  read(): Promise<void>;
  /** Opens another handle on the same state (a second replica's). */
  openOther(): Promise<StateStore>;
}

/** A gateway whose config has `stream` as its journal.stream, on `engine`. */
async function setup(engine: Engine, stream: string, env: Record<string, string>): Promise<Setup> {
  const db = await freshDatabase('stream');
  cleanups.push(() => db.drop());
  const dir = writeConfig();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policies', 'gateway.yaml');
  let yaml = readFileSync(file, 'utf8').replace('journal: { path: journal.db }', `journal:\n  path: journal.db\n  stream:\n${stream}`);
  const allEnv: Record<string, string> = { DB_URL: db.gatewayUrl, ...env };
  if (engine === 'postgres') {
    yaml += 'state: { url: "${STATE_URL}" }\n';
    allEnv['STATE_URL'] = await stateRoleUrl(db);
  }
  writeFileSync(file, yaml);
  const gateway = await openGateway({ configDir: dir, env: allEnv });
  cleanups.push(() => gateway.close());
  const identity = as('tester@example.com', ['analysts']);
  return {
    gateway,
    dir,
    db,
    env: allEnv,
    async read() {
      const r = await callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql: 'SELECT id FROM orders ORDER BY id LIMIT 1' }, identity });
      expect(r.ok).toBe(true);
    },
    async openOther() {
      const state = await openState(loadConfig(dir), { environment: { env: allEnv, baseDir: dir } });
      cleanups.push(() => state.close());
      return state;
    },
  };
}

/** Virtual time for the backoff: each wait is recorded and over at once. */
function virtualBackoff(): { readonly waits: number[]; sleep(ms: number): Promise<void> } {
  const waits: number[] = [];
  return { waits, sleep: (ms) => (waits.push(ms), new Promise<void>((resolve) => setImmediate(resolve))) };
}

function start(s: Setup, state: Pick<StateStore, 'journal' | 'streams'>, sleep: (ms: number) => Promise<void>, holder: string, registry?: Registry): Streams {
  const streams = startStreams({
    sinks: s.gateway.config.journal.stream,
    state,
    environment: s.gateway.environment,
    clock: () => new Date(),
    holder,
    ...(registry ? { registry } : {}),
    // The poll is what another replica's appends wait for; calls here wake the streamer directly.
    tuning: { sleep, pollMs: 50 },
  });
  cleanups.push(() => streams.stop());
  s.gateway.onCallEnd(() => streams.wake());
  return streams;
}

interface Delivered {
  readonly seq: number;
  readonly type: string;
  readonly callId: string;
  readonly hash: string;
}

/** Checks each webhook request's signature and returns the records of the acknowledged ones, in arrival order. */
function acknowledged(r: Receiver, acceptedFrom: (n: number) => boolean): Delivered[] {
  const out: Delivered[] = [];
  r.received.forEach((req, i) => {
    const timestamp = String(req.headers['x-drawbridge-timestamp']);
    const expected = `sha256=${createHmac('sha256', SECRET).update(`${timestamp}.${req.body}`).digest('hex')}`;
    const given = String(req.headers['x-drawbridge-signature']);
    expect(given.length).toBe(expected.length);
    expect(timingSafeEqual(Buffer.from(given), Buffer.from(expected))).toBe(true);
    expect(req.headers['x-drawbridge-event']).toBe('journal.records');
    const body = JSON.parse(req.body) as { sink: string; records: Delivered[] };
    expect(body.sink).toBe('siem');
    if (acceptedFrom(i + 1)) out.push(...body.records);
  });
  return out;
}

/** Every seq 1..head, in order; a record sent again only repeats a run already delivered (at least once, nothing skipped). */
function expectInOrderNothingMissing(records: readonly Delivered[], head: number): void {
  let next = 1;
  for (const r of records) {
    expect(r.seq).toBeLessThanOrEqual(next);
    if (r.seq === next) next += 1;
  }
  expect(next - 1).toBe(head);
}

const WEBHOOK = (url: string) => `    - { name: siem, type: webhook, url: "${url}", secret: "\${SIEM_SECRET}", batch: 3 }\n`;

describe.each<Engine>(['sqlite', 'postgres'])('a webhook sink on the %s state', (engine) => {
  it('gets every record in order across an outage (503s), signed; calls are not held up; a new streamer resumes from the cursor', async () => {
    let down = true;
    const refusedUpTo: number[] = [];
    const r = await receiver((n, _req, res) => {
      if (down) {
        refusedUpTo.push(n);
        res.writeHead(503).end('down');
      } else res.end('ok');
    });
    const s = await setup(engine, WEBHOOK(r.url), { SIEM_SECRET: SECRET });
    const backoff = virtualBackoff();
    const registry = new Registry();
    const streams = start(s, s.gateway.state, backoff.sleep, 'replica-a', registry);

    // The sink is down: calls succeed, each far quicker than any retry would take.
    for (let i = 0; i < 4; i++) {
      const started = performance.now();
      await s.read();
      expect(performance.now() - started).toBeLessThan(2_000);
    }
    await waitFor(() => refusedUpTo.length >= 6, 'the streamer retried');
    expect(backoff.waits.slice(0, 4)).toEqual([1_000, 2_000, 4_000, 8_000]);
    const status = await streams.status();
    expect(status[0]).toMatchObject({ sink: 'siem', role: 'streaming', cursor: 0, lastError: { message: 'HTTP 503' } });
    expect(status[0]?.backlog).toBeGreaterThanOrEqual(8);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/drawbridge_stream_failures_total\{sink="siem"\} [1-9]/);
    expect(metrics).toMatch(/drawbridge_stream_backlog_records\{sink="siem"\} ([89]|\d\d)/);

    down = false;
    await streams.streamers[0]?.flushed();
    const head = (await s.gateway.journal.head()).seq;
    expect(head).toBeGreaterThanOrEqual(8);
    const firstRun = acknowledged(r, (n) => !refusedUpTo.includes(n));
    expectInOrderNothingMissing(firstRun, head);
    // The records are the journal's own.
    const stored = await s.gateway.journal.readFrom(0, 1_000);
    expect(firstRun.slice(0, head).map((x) => [x.seq, x.hash])).toEqual(stored.map((x) => [x.seq, x.hash]));
    const after = await streams.status();
    expect(after[0]).toMatchObject({ cursor: head, head, backlog: 0, lastError: null });
    expect(after[0]?.lastDeliveredAt).not.toBeNull();
    expect(await registry.metrics()).toContain(`drawbridge_stream_delivered_total{sink="siem"} ${head}`);

    // A restart: the streamer stops, calls go on, a new one (another holder) resumes at the durable cursor.
    await streams.stop();
    const seen = r.received.length;
    await s.read();
    await s.read();
    const resumed = start(s, s.gateway.state, backoff.sleep, 'replica-b');
    await resumed.streamers[0]?.flushed();
    const newHead = (await s.gateway.journal.head()).seq;
    const secondRun = acknowledged({ ...r, received: r.received.slice(seen) }, () => true);
    expect(secondRun[0]?.seq).toBe(head + 1);
    expect(secondRun.map((x) => x.seq)).toEqual(Array.from({ length: newHead - head }, (_, i) => head + 1 + i));
  });
});

describe('an OTLP/HTTP logs sink', () => {
  it('gets one log record per journal record: body the record, attributes seq, type and call id; the header from its secret', async () => {
    const r = await receiver();
    const s = await setup(
      'sqlite',
      `    - { name: otel, type: otlp, endpoint: "${r.url.replace('/siem/drawbridge', '/v1/logs')}", headers: { authorization: "\${OTLP_AUTH}" } }\n`,
      {
        OTLP_AUTH: 'Bearer otlp-token',
      },
    );
    const streams = start(s, s.gateway.state, virtualBackoff().sleep, 'otlp-holder');
    await s.read();
    await s.read();
    await streams.streamers[0]?.flushed();
    const head = (await s.gateway.journal.head()).seq;
    const logs: Array<{ seq: number; type: string; callId: string; attributes: Record<string, unknown> }> = [];
    for (const req of r.received) {
      expect(req.headers['content-type']).toBe('application/json');
      expect(req.headers['authorization']).toBe('Bearer otlp-token');
      const body = JSON.parse(req.body) as {
        resourceLogs: Array<{
          resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
          scopeLogs: Array<{
            scope: { name: string };
            logRecords: Array<{ timeUnixNano: string; body: { stringValue: string }; attributes: Array<{ key: string; value: Record<string, unknown> }> }>;
          }>;
        }>;
      };
      const resource = body.resourceLogs[0];
      expect(resource?.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'drawbridge' } });
      for (const scope of resource?.scopeLogs ?? []) {
        expect(scope.scope.name).toBe('drawbridge.journal');
        for (const log of scope.logRecords) {
          const record = JSON.parse(log.body.stringValue) as { seq: number; type: string; callId: string; time: string };
          expect(BigInt(log.timeUnixNano) / 1_000_000n).toBe(BigInt(Date.parse(record.time)));
          logs.push({ ...record, attributes: Object.fromEntries(log.attributes.map((a) => [a.key, Object.values(a.value)[0]])) });
        }
      }
    }
    expect(logs.map((l) => l.seq)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
    for (const l of logs) expect(l.attributes).toEqual({ 'drawbridge.seq': l.seq, 'drawbridge.type': l.type, 'drawbridge.call_id': l.callId });
    expect(new Set(logs.map((l) => l.type))).toEqual(new Set(['call', 'outcome']));
  });
});

describe('two streamers on one PostgreSQL state (two replicas)', () => {
  it('deliver everything with never two requests at once; the standby takes over when the holder stops', async () => {
    const r = await receiver();
    const s = await setup('postgres', WEBHOOK(r.url), { SIEM_SECRET: SECRET });
    const other = await s.openOther();
    const backoff = virtualBackoff();
    const a = start(s, s.gateway.state, backoff.sleep, 'replica-a');
    const b = start(s, other, backoff.sleep, 'replica-b');
    for (let i = 0; i < 5; i++) await s.read();
    // Whichever holds the claim delivers; the other stands by.
    await waitFor(async () => (await a.status())[0]?.backlog === 0, 'the stream caught up');
    const roles = [(await a.status())[0]?.role, (await b.status())[0]?.role].sort();
    expect(roles).toEqual(['standby', 'streaming']);
    const [holder, standby] = (await a.status())[0]?.role === 'streaming' ? [a, b] : [b, a];

    await holder.stop();
    await s.read();
    await s.read();
    b.wake();
    a.wake();
    await standby.streamers[0]?.flushed();
    expect((await standby.status())[0]?.role).toBe('streaming');
    const head = (await s.gateway.journal.head()).seq;
    expectInOrderNothingMissing(
      acknowledged(r, () => true),
      head,
    );
    expect(r.maxConcurrent()).toBe(1);
  });
});

/** Polls `probe` until it holds: what it waits for is real network I/O (a receiver, the server), which no clock can speed up. */
async function waitFor(probe: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1_000; i++) {
    if (await probe()) return;
    await new Promise<void>((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${what}: never happened`);
}
