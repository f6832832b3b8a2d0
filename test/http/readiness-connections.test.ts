// /readyz and the connections (issue 15): each connection's last known check is the last call that
// reached it; a backend going down does not make the gateway unready, unless admin.ready_requires
// names its connection; then readiness flips with the backend and back. The backend is the real
// PostgreSQL cluster behind a TCP forwarder the test takes down and brings up again.

import { appendFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHealth } from '../../src/http/health.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { freePort } from '../support/net.js';

/** A TCP forwarder to PostgreSQL: down() refuses new connections and cuts the open ones; up() listens again on the same port. */
interface Forwarder {
  readonly port: number;
  down(): Promise<void>;
  up(): Promise<void>;
}

async function forwarder(target: URL): Promise<Forwarder> {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const up = () =>
    new Promise<void>((resolve) => {
      server = createServer((client) => {
        const upstream = connect(Number(target.port), target.hostname);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  await up();
  return {
    port,
    up,
    down: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        if (server === null) resolve();
        else server.close(() => resolve());
        server = null;
      }),
  };
}

let db: FreshDatabase;
let fwd: Forwarder;
const dirs: string[] = [];
const gateways: Gateway[] = [];

beforeAll(async () => {
  db = await freshDatabase('readyconn');
  fwd = await forwarder(new URL(db.gatewayUrl));
}, 60_000);

afterAll(async () => {
  for (const g of gateways) await g.close();
  await fwd?.down();
  await db?.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function gatewayWith(admin: string): Promise<Gateway> {
  const dir = writeConfig({});
  dirs.push(dir);
  appendFileSync(join(dir, 'policies', 'gateway.yaml'), `admin: ${admin}\n`);
  const url = new URL(db.gatewayUrl);
  url.port = String(fwd.port);
  const gateway = await openGateway({ configDir: dir, env: { DB_URL: url.href } });
  gateways.push(gateway);
  return gateway;
}

const read = (gateway: Gateway) =>
  callTool(gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql: 'SELECT count(*) AS n FROM customers' },
    identity: makeIdentity({ kind: 'local', subject: 'tester@example.com', groups: ['analysts'], issuer: 'local' }),
  });

it('a required connection that fails makes the gateway not ready, and ready again once a call reaches it; one not required never does', async () => {
  const strict = await gatewayWith('{ ready_requires: [db] }');
  const lenient = await gatewayWith('{}');
  const strictHealth = createHealth(strict, null);
  const lenientHealth = createHealth(lenient, null);

  // Before any call: unchecked, which is not failing.
  expect(await strictHealth.readiness()).toMatchObject({ ready: true, checks: { connections: { db: { state: 'unchecked', required: true } } } });
  expect((await read(strict)).ok).toBe(true);
  expect((await read(lenient)).ok).toBe(true);
  expect((await strictHealth.readiness()).checks.connections['db']).toMatchObject({ state: 'ok', required: true });

  await fwd.down();
  try {
    const failed = await read(strict);
    expect(failed.ok).toBe(false);
    expect((await read(lenient)).ok).toBe(false);
    const strictNow = await strictHealth.readiness();
    expect(strictNow.ready).toBe(false);
    expect(strictNow.checks.connections['db']).toMatchObject({ state: 'failing', required: true, code: expect.stringMatching(/^backend\./) });
    expect(strictNow.checks.journal).toEqual({ ok: true });
    const lenientNow = await lenientHealth.readiness();
    expect(lenientNow.ready).toBe(true);
    expect(lenientNow.checks.connections['db']).toMatchObject({ state: 'failing', required: false });
  } finally {
    await fwd.up();
  }
  expect((await read(strict)).ok).toBe(true);
  expect(await strictHealth.readiness()).toMatchObject({ ready: true, checks: { connections: { db: { state: 'ok' } } } });
}, 60_000);

it('admin.ready_requires naming no declared connection is a config error', async () => {
  await expect(gatewayWith('{ ready_requires: [dbb] }')).rejects.toThrow(/connection "dbb" is not declared/);
});
