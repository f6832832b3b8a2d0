// The log lines of real calls through the pipeline (gateway.onCallEnd → the
// logger, lines captured): an allowed read, a denied call, an approval-pending
// call and a backend fault, each one line with the journal's call id, and no
// canary value of the call (SQL text, data, password, subject) in any line.

import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/log.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { as, freshDatabase, refusedPostgresUrl, testGateway, withPassword, writeConfig, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

const CANARY = 'CANARY-5d1e-value';
const PASSWORD = 'CANARY-5d1e-password';
const SUBJECT = 'canary-5d1e@example.com';

let db: FreshDatabase;
let gw: TestGateway;
const lines: string[] = [];

function capture(gateway: Gateway, subjects = false): () => void {
  const logger = createLogger({ config: { level: 'info', format: 'json', subjects }, write: (line) => void lines.push(line), isTTY: false });
  return gateway.onCallEnd(logger.call);
}

/** The one line logged for this call (by its id), parsed. */
function lineOf(result: CallResult): Record<string, unknown> {
  const mine = lines.filter((l) => l.includes(result.callId));
  expect(mine).toHaveLength(1);
  return JSON.parse(mine[0] ?? '') as Record<string, unknown>;
}

async function journaled(gateway: Gateway, callId: string): Promise<string[]> {
  const types: string[] = [];
  for await (const record of gateway.journal.read()) if (record.callId === callId) types.push(String(record.type));
  return types;
}

beforeAll(async () => {
  db = await freshDatabase('calllog');
  gw = await testGateway(db, { identity: { subject: SUBJECT, groups: ['analysts'] } });
  capture(gw.gateway);
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

describe('one log line per call, linked to the journal by the call id', () => {
  it('an allowed read: info, allow by rule read, rows and masked counts, timings; no data', async () => {
    const r = await gw.sql(`SELECT email, '${CANARY}' AS v FROM customers ORDER BY id LIMIT 2`);
    expect(r.ok).toBe(true);
    expect(await journaled(gw.gateway, r.callId)).toEqual(['call', 'outcome']);
    const line = lineOf(r);
    expect(line).toMatchObject({ level: 'info', msg: 'call ok', callId: r.callId, tool: 'run_sql', connection: 'db', operation: 'select' });
    expect(line).toMatchObject({ access: 'read', decision: 'allow', rule: 'read', status: 'ok', rows: 2, masked: 2 });
    expect(line['durationMs']).toEqual(expect.any(Number));
    expect(Object.keys(line['stagesMs'] as object)).toEqual(['parse', 'decide', 'journal', 'execute', 'mask']);
    expect(line).not.toHaveProperty('subject');
  });

  it('a denied call: info, deny by rule no-ddl, policy.denied', async () => {
    const r = await gw.sql(`DROP TABLE "${CANARY}"`);
    expect(r.ok).toBe(false);
    expect(lineOf(r)).toMatchObject({ level: 'info', msg: 'call refused', decision: 'deny', rule: 'no-ddl', status: 'refused', error: 'policy.denied' });
    expect(lineOf(r)).not.toHaveProperty('rows');
  });

  it('an approval-pending call: info, approve, approval.pending, the approval stage timed', async () => {
    const r = await gw.sql(`UPDATE orders SET note = '${CANARY}' WHERE id = 1`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('approval.pending');
    const line = lineOf(r);
    expect(line).toMatchObject({ level: 'info', decision: 'approve', rule: 'writes-need-approval', status: 'refused', error: 'approval.pending' });
    expect(line['stagesMs']).toHaveProperty('approval');
  });

  it('a backend fault: error level, the fault named; the password is not in it', async () => {
    const dir = writeConfig({ identity: { subject: SUBJECT, groups: ['analysts'] } });
    const down = await openGateway({ configDir: dir, env: { DB_URL: withPassword(await refusedPostgresUrl(db.name), PASSWORD) } });
    try {
      capture(down);
      const r = await callTool(down, { tool: 'run_sql', args: { connection: 'db', sql: `SELECT '${CANARY}'` }, identity: as(SUBJECT, ['analysts']) });
      expect(r.ok).toBe(false);
      const line = lineOf(r);
      // Nothing to look up in the catalog: allowed, then the connection fails at execute.
      expect(line).toMatchObject({ level: 'error', msg: 'call error', status: 'error', connection: 'db', decision: 'allow', rule: 'read' });
      expect(line['error']).toMatch(/^backend\./);
      expect(line['fault']).toEqual(expect.any(String));
      expect(line['stagesMs']).toHaveProperty('execute');
      expect(line).not.toHaveProperty('rows');
      expect(await journaled(down, r.callId)).toEqual(['call', 'outcome']);
    } finally {
      await down.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unknown tool or connection: the agent’s text is left out of the line', async () => {
    const identity = as(SUBJECT, ['analysts']);
    const noTool = await callTool(gw.gateway, { tool: CANARY, args: { connection: 'db', sql: 'SELECT 1' }, identity });
    expect(lineOf(noTool)).toMatchObject({ status: 'refused', error: 'tool.unknown' });
    expect(lineOf(noTool)).not.toHaveProperty('tool');
    const noConnection = await callTool(gw.gateway, { tool: 'run_sql', args: { connection: CANARY, sql: 'SELECT 1' }, identity });
    expect(lineOf(noConnection)).toMatchObject({ tool: 'run_sql', status: 'refused' });
    expect(lineOf(noConnection)).not.toHaveProperty('connection');
  });

  it('no line holds a canary: the SQL text, the data, the password, the subject', () => {
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line).not.toContain('CANARY');
      expect(line).not.toContain(SUBJECT);
      expect(line).not.toContain('@example.com');
    }
  });

  it('the subject with log: { subjects: true }, and an observer that throws does not fail the call', async () => {
    const stop = capture(gw.gateway, true);
    gw.gateway.onCallEnd(() => {
      throw new Error('a broken observer');
    });
    const r = await gw.sql('SELECT 1');
    expect(r.ok).toBe(true);
    const mine = lines.filter((l) => l.includes(r.callId)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(mine.map((l) => l['subject'] ?? null).sort()).toEqual([SUBJECT, null]);
    stop();
  });
});
