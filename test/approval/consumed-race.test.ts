// The race replicas make likely: a call finds its request approved, and before it can
// consume it another identical call (here: "another replica", played by a second handle
// consuming in between) uses it. The call answers approval.pending "used by another
// identical call" and runs nothing — the same answer as losing the consume itself — and
// never the misleading approval.timeout. Deterministic: the store the gateway sees consumes
// the approval at the exact step between finding it and reading it again.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { createGateway, type Gateway } from '../../src/pipeline/gateway.js';
import type { ApprovalStore, StateStore } from '../../src/state/contract.js';
import { openState } from '../../src/state/open.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { as, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { approvalPolicy, approvalSettings, REQUESTER, TOKENS } from '../support/inProcess.js';
import { runInProcess } from '../support/cli.js';
import { rmSync } from 'node:fs';

let db: FreshDatabase;
let dir: string;
let state: StateStore;
let gateway: Gateway;
/** The approval the next get() consumes first, as another replica would. */
let consumeBeforeGet: string | null = null;

/** The engine's store, except that get() of the armed id is preceded by a consume through the same store. */
function racingStore(inner: ApprovalStore): ApprovalStore {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'get') {
        return async (id: string, now: Date) => {
          if (consumeBeforeGet === id) {
            consumeBeforeGet = null;
            await target.consume(id, now);
          }
          return target.get(id, now);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

beforeAll(async () => {
  db = await freshDatabase('consumed_race');
  dir = writeConfig({
    policy: approvalPolicy('approvers: { groups: [dba] }'),
    approval: approvalSettings({ wait: '0ms' }),
    identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
  });
  const config = loadConfig(dir);
  state = await openState(config);
  gateway = createGateway({
    config,
    state: { journal: state.journal, approvals: racingStore(state.approvals), streams: state.streams, close: () => state.close() },
    maskKey: new TextEncoder().encode('consumed-race-mask-key'),
    environment: { env: { DB_URL: db.gatewayUrl }, baseDir: config.dir },
  });
});

afterAll(async () => {
  await gateway?.close();
  await state?.close();
  if (dir) {
    const verified = verifyJournal(loadConfig(dir).journal.path);
    rmSync(dir, { recursive: true, force: true });
    expect(verified.ok).toBe(true);
  }
  await db?.drop();
});

describe('an approval consumed by another identical call between finding and reading it', () => {
  it('answers approval.pending "used by another identical call" and runs nothing', async () => {
    const requester = as(REQUESTER.subject, [...REQUESTER.groups]);
    const sql = "INSERT INTO audit_notes (body) VALUES ('race-once')";
    const call = () => callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity: requester, client: { name: 'vitest' } });

    const asked = await call();
    if (asked.ok) throw new Error('expected a pending answer');
    expect(asked.error.code).toBe('approval.pending');
    const id = /Pending approval (ap_[a-z0-9]+)/.exec(asked.text)?.[1];
    if (id === undefined) throw new Error(`no approval id in ${asked.text}`);
    const vote = await runInProcess(['approvals', 'approve', id, '--config', dir], {
      env: { DBA1_TOKEN: TOKENS.dba1, DBA2_TOKEN: TOKENS.dba2, SELF_TOKEN: TOKENS.self, DRAWBRIDGE_APPROVER_TOKEN: TOKENS.dba1 },
    });
    expect(vote.status, vote.stderr).toBe(0);

    consumeBeforeGet = id;
    const lost = await call();
    expect(consumeBeforeGet).toBeNull();
    if (lost.ok) throw new Error('the call ran an approval another call had used');
    expect(lost.error.code).toBe('approval.pending');
    expect(lost.text).toContain(`Approval ${id} was used by another identical call that was waiting for it; this call ran nothing.`);
    expect(lost.text).not.toMatch(/\n\s+at /);
    expect(await db.query('SELECT id FROM audit_notes WHERE body = $1', ['race-once'])).toEqual([]);
  });
});
