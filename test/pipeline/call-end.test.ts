// The call-end event's stage timings from real calls through the pipeline (PostgreSQL): each
// stage once in the order it ran (the journal twice: intent and outcome), starts increasing, every
// stage inside the call, and stageTotals summing per stage; a refused call has no execute or mask.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageTotals, type CallEnd } from '../../src/pipeline/call-end.js';
import { freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

let db: FreshDatabase;
let gw: TestGateway;
const events = new Map<string, CallEnd>();

beforeAll(async () => {
  db = await freshDatabase('callend');
  gw = await testGateway(db, { identity: { subject: 'dev@example.com', groups: ['analysts'] } });
  gw.gateway.onCallEnd((event) => void events.set(event.callId, event));
});
afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

function eventOf(callId: string): CallEnd {
  const event = events.get(callId);
  if (!event) throw new Error(`no call-end event for ${callId}`);
  return event;
}

function expectConsistent(event: CallEnd): void {
  const starts = event.stages.map((s) => s.startMs);
  expect(starts).toEqual([...starts].sort((a, b) => a - b));
  for (const s of event.stages) {
    expect(s.startMs).toBeGreaterThanOrEqual(0);
    expect(s.durationMs).toBeGreaterThanOrEqual(0);
    // Rounded to the hundredth: a stage ends inside the call, give or take the rounding.
    expect(s.startMs + s.durationMs).toBeLessThanOrEqual(event.durationMs + 0.05);
  }
  expect(event.startedAtMs).toBeGreaterThan(Date.parse('2026-01-01'));
}

describe('stage timings on the call-end event', () => {
  it('an allowed read: parse, decide, journal, execute, mask, journal', async () => {
    const r = await gw.sql('SELECT id FROM customers ORDER BY id LIMIT 1');
    expect(r.ok).toBe(true);
    const event = eventOf(r.callId);
    expect(event.stages.map((s) => s.stage)).toEqual(['parse', 'decide', 'journal', 'execute', 'mask', 'journal']);
    expectConsistent(event);
    const totals = stageTotals(event.stages);
    const journal = event.stages.filter((s) => s.stage === 'journal').reduce((sum, s) => sum + s.durationMs, 0);
    expect(totals.journal).toBeCloseTo(journal, 2);
    expect(Object.keys(totals)).toEqual(['parse', 'decide', 'journal', 'execute', 'mask']);
  });

  it('a denied call: decided, journaled twice, never executed or masked', async () => {
    const r = await gw.sql('DROP TABLE customers');
    expect(r.ok).toBe(false);
    const event = eventOf(r.callId);
    expect(event.stages.map((s) => s.stage)).toEqual(['parse', 'decide', 'journal', 'journal']);
    expectConsistent(event);
  });

  it('input that does not parse: the parse stage, then the journal', async () => {
    const r = await gw.sql('SELEC nonsense FROM');
    expect(r.ok).toBe(false);
    const event = eventOf(r.callId);
    expect(event.stages.map((s) => s.stage)).toEqual(['parse', 'journal', 'journal']);
    expect(event.decision).toBeNull();
    expectConsistent(event);
  });
});
