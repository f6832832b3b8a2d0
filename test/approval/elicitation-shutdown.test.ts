// An in-client approval prompt (2025-11-25 elicitation) open when the gateway starts its graceful
// shutdown: the prompt is withdrawn (its signal aborts), the call answers gateway.shutting_down
// "call again", nothing runs, and the journal says why the request was abandoned. A client's own
// cancellation still answers approval.unavailable (test/approval/e2e.test.ts covers that over MCP).

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ElicitAnswer } from '../../src/approval/approver.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { DEFAULT_POLICY, freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

const POLICY = DEFAULT_POLICY.replace('approvers: { groups: [dba] }', 'approvers: { requester: true }\n    grant: 15m');

let db: FreshDatabase;
let gw: TestGateway;

beforeAll(async () => {
  db = await freshDatabase('elicitdrain');
  gw = await testGateway(db, { identity: { subject: 'dev@example.com', groups: ['analysts'] }, policy: POLICY });
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

it('a prompt open at SIGTERM is withdrawn; the call answers "call again"; nothing ran; journaled as abandoned by the shutdown', async () => {
  let asked: () => void = () => undefined;
  const prompted = new Promise<void>((resolve) => (asked = resolve));
  // The human never answers: only the withdrawn prompt (the signal) ends the wait.
  const elicit = (_form: unknown, _timeoutMs: number, signal?: AbortSignal): Promise<ElicitAnswer> => {
    asked();
    return new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(new Error('withdrawn')), { once: true }));
  };
  const sql = "UPDATE orders SET note = 'drain-elicit' WHERE id = 1";
  const call = callTool(gw.gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql },
    identity: gw.identity,
    client: { name: 'vitest' },
    channel: { elicit },
  });
  await prompted;
  const drained = gw.gateway.calls.drain(new Promise<void>(() => undefined));
  const result = await call;
  expect(await drained).toBe('drained');

  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.error.code).toBe('gateway.shutting_down');
  expect(result.text).toContain('Call again');
  const records: Array<{ type: unknown; data: Record<string, unknown> }> = [];
  for await (const r of gw.gateway.journal.read()) {
    // Stored as the engine keeps it: the data is JSON text.
    if (r.callId === result.callId) records.push({ type: r.type, data: JSON.parse(String(r.data)) as Record<string, unknown> });
  }
  const events = records.filter((r) => r.type === 'approval').map((r) => r.data['event']);
  expect(events).toEqual(['requested', 'abandoned']);
  expect(records.find((r) => r.type === 'approval' && r.data['event'] === 'abandoned')?.data).toMatchObject({
    via: 'elicitation',
    reason: 'the gateway is shutting down',
  });
  expect(records.find((r) => r.type === 'outcome')?.data).toMatchObject({ status: 'refused', errorCode: 'gateway.shutting_down' });
  expect(await db.query("SELECT id FROM orders WHERE note = 'drain-elicit'")).toEqual([]);
});
