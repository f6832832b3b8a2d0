// Replicas through an outage of their shared state: the state lives in a throwaway cluster
// of this file's own (the shared test cluster is never stopped), the target database in the
// shared one. While the state server is down, calls fail closed with a coded
// journal.unavailable (no stack trace, nothing about where the state lives) and the replicas
// stay up; once it is back, calls succeed again without restarting a replica, and nothing
// committed before the outage is lost.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../dev/cluster.js';
import { verifyStore } from '../../src/journal/verify.js';
import { requireBuiltCli } from '../support/cli.js';
import { freshDatabase, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';
import {
  callsTagged,
  freshStateDatabase,
  readJournal,
  startReplicas,
  tokenFor,
  until,
  type McpClient,
  type Replica,
  type StateDatabase,
  type ToolAnswer,
} from '../support/replicas.js';

let idp: TestIdp;
let db: FreshDatabase;
let cluster: Cluster;
let stateDb: StateDatabase;
let replicas: Replica[] = [];
const clients: McpClient[] = [];

function expectOk(a: ToolAnswer): void {
  expect(a.result.isError, a.text).toBeFalsy();
}

beforeAll(async () => {
  requireBuiltCli();
  [idp, db, cluster] = await Promise.all([startTestIdp(), freshDatabase('replicas_outage'), startCluster()]);
  stateDb = await freshStateDatabase(cluster.superuserUrl);
  const common = { stateUrl: stateDb.url, db, idp };
  replicas = await startReplicas([
    { ...common, name: 'o1' },
    { ...common, name: 'o2' },
  ]);
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all(replicas.map((r) => r.stop()));
  await stateDb?.drop().catch(() => undefined);
  await cluster?.stop();
  await db?.drop();
  await idp?.stop();
});

describe('replicas while their state database restarts', () => {
  it('fail closed during the outage, stay up, serve again afterwards, and lose nothing', async () => {
    const token = await tokenFor(idp, 'alice', ['developers']);
    for (const r of replicas) clients.push(await r.connect(token));
    const [c1, c2] = clients as [McpClient, McpClient];
    for (const [i, c] of [c1, c2].entries()) {
      for (let k = 0; k < 3; k++) expectOk(await c.sql(`SELECT count(*) AS n, 't6-before-${i}-${k}' AS tag FROM products`));
    }
    // Everything answered before the outage is committed (outcomes follow their answers closely).
    const state = await replicas[0]!.openState();
    let before: number;
    try {
      before = await until('the outcomes of the calls before the outage', async () => {
        const records = await readJournal(state);
        const calls = callsTagged(records, 't6-before-');
        const outcomes = records.filter((r) => r.type === 'outcome' && calls.some((c) => c.callId === r.callId));
        return calls.length === 6 && outcomes.length === 6 ? records.length : undefined;
      });
    } finally {
      await state.close();
    }

    await cluster.stopServer();
    for (const [i, c] of [c1, c2].entries()) {
      const down = await c.sql(`SELECT count(*) AS n, 't6-down-${i}' AS tag FROM products`);
      expect(down.code, down.text).toBe('journal.unavailable');
      expect(down.text).not.toMatch(/\n\s+at /);
      for (const secret of [stateDb.password, stateDb.role, stateDb.name, 'postgres://', `:${cluster.port}`]) expect(down.text).not.toContain(secret);
      if (i === 0) console.log(`[replicas-outage] during the outage: ${down.text.split('\n')[0]}`);
    }
    for (const r of replicas) expect(r.child.exitCode, r.stderr()).toBeNull();

    await cluster.startServer();
    // Each replica reconnects on its own: retried until its first call goes through, then it keeps serving.
    for (const [i, c] of [c1, c2].entries()) {
      let attempt = 0;
      await until(
        `replica o${i + 1} serving again`,
        async () => {
          const a = await c.sql(`SELECT count(*) AS n, 't6-retry-${i}-${attempt++}' AS tag FROM products`);
          return a.result.isError ? undefined : a;
        },
        20_000,
        200,
      );
      console.log(`[replicas-outage] o${i + 1} served again after ${attempt} attempt(s) once the state server was back`);
      expectOk(await c.sql(`SELECT count(*) AS n, 't6-after-${i}' AS tag FROM products`));
    }
    for (const r of replicas) expect(r.child.exitCode, r.stderr()).toBeNull();

    const after = await replicas[1]!.openState();
    try {
      const records = await readJournal(after);
      expect(records.length).toBeGreaterThan(before);
      expect(callsTagged(records, 't6-before-')).toHaveLength(6);
      // A call refused because its intent could not be written left no record at all.
      expect(callsTagged(records, 't6-down-')).toEqual([]);
      expect(callsTagged(records, 't6-after-')).toHaveLength(2);
      const verified = await verifyStore(after.journal);
      expect(verified.firstBad, JSON.stringify(verified.firstBad)).toBeUndefined();
      expect(verified.ok).toBe(true);
      expect(verified.records).toBe((await after.journal.head()).seq);
    } finally {
      await after.close();
    }
    const cli = await replicas[0]!.cli(['journal', 'verify']);
    expect(cli.status, cli.stdout + cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^OK .*: \d+ records, chain intact/);
  });
});
