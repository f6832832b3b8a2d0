// The PostgreSQL state through an outage of its server, on a cluster of this file's own (the
// shared test cluster must never be stopped): while the server is down every journal append
// and approvals call fails closed with a coded error that names no secret; once it is back the
// next calls work on the same handle (no restart), nothing committed is lost, and a call that
// waited on changed() across the outage is woken by a vote made after it.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../../../dev/cluster.js';
import type { ApproverIdentity } from '../../../src/approval/approver.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { verifyStore } from '../../../src/journal/verify.js';
import { openPostgresState } from '../../../src/state/postgres/index.js';
import { approvalSubject } from '../../support/approvals.js';

let cluster: Cluster;
let url: string;
const PASSWORD = 'outage-state-password';

beforeAll(async () => {
  cluster = await startCluster();
  const admin = new pg.Client({ connectionString: cluster.superuserUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE drawbridge_state LOGIN PASSWORD '${PASSWORD}'`);
    await admin.query('CREATE DATABASE state');
    await admin.query('REVOKE ALL ON DATABASE state FROM PUBLIC');
    await admin.query('GRANT CONNECT, CREATE ON DATABASE state TO drawbridge_state');
  } finally {
    await admin.end();
  }
  url = cluster.urlFor('state', 'drawbridge_state', PASSWORD);
});

afterAll(async () => {
  await cluster?.stop();
});

const T0 = new Date('2030-01-01T10:00:00.000Z');
const bob: ApproverIdentity = { subject: 'bob', groups: ['dba'], kind: 'local' };

async function failure(promise: Promise<unknown>): Promise<DrawbridgeError> {
  const error: unknown = await promise.then(
    () => new Error('expected a failure, but it resolved'),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DrawbridgeError);
  expect((error as DrawbridgeError).message).not.toContain(PASSWORD);
  expect((error as DrawbridgeError).message).not.toContain(String(cluster.port));
  return error as DrawbridgeError;
}

/** Polls the server (not the wall clock) until `probe` holds. */
async function until(probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2_000; i++) {
    if (await probe()) return;
    await new Promise<void>((r) => setImmediate(r));
  }
  throw new Error('condition never held');
}

describe('PostgreSQL state outage', () => {
  it('fails closed while the server is down, and the same handle works again once it is back, nothing lost', async () => {
    const state = await openPostgresState({ url, purpose: 'serve' });
    try {
      const before = await Promise.all(Array.from({ length: 20 }, (_, i) => state.journal.append('call', `before${i}`, { i })));
      const { approval } = await state.approvals.openRequest(
        approvalSubject({ requester: { subject: 'alice', groups: [], kind: 'local', issuer: 'local' }, preview: null }),
        T0,
        3_600_000,
      );
      const woken = state.approvals.changed(approval.id, new AbortController().signal);

      await cluster.stopServer();
      expect((await failure(state.journal.append('call', 'during', {}))).code).toBe('journal.unavailable');
      expect((await failure(state.journal.head())).code).toBe('journal.unavailable');
      expect((await failure(state.approvals.get(approval.id, T0))).code).toBe('approval.store_unavailable');
      expect((await failure(state.approvals.vote(approval.id, { approver: bob, decision: 'approve', via: 'cli', at: T0.toISOString() }, T0))).code).toBe(
        'approval.store_unavailable',
      );

      await cluster.startServer();
      const after = await state.journal.append('call', 'after', {});
      expect(after.seq).toBe(before.length + 1);
      expect(after.prevHash).toBe(before[before.length - 1]?.hash);
      // The listener reconnects on its own while a call waits: this vote, after the outage, wakes it.
      await until(async () => {
        const admin = new pg.Client({ connectionString: cluster.superuserUrl });
        await admin.connect();
        try {
          const rows = await admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'drawbridge listener' AND query LIKE 'LISTEN%'");
          return rows.rowCount === 1;
        } finally {
          await admin.end();
        }
      });
      const other = await openPostgresState({ url, purpose: 'command' });
      try {
        expect((await other.approvals.vote(approval.id, { approver: bob, decision: 'approve', via: 'cli', at: T0.toISOString() }, T0)).status).toBe('approved');
        await woken;
      } finally {
        await other.close();
      }
      expect(await verifyStore(state.journal)).toMatchObject({ ok: true, records: before.length + 1 });
    } finally {
      await state.close();
    }
  });
});
