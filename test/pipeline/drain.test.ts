// The call gate of the graceful shutdown (src/pipeline/drain.ts), on its own: no call is let in
// once it drains, admitted calls' signals abort with gateway.shutting_down (a client's own
// cancellation still comes through), and the drain ends when the last call leaves or at the deadline.

import { expect, it } from 'vitest';
import { DrawbridgeError } from '../../src/errors.js';
import { createCallGate, isShutdownReason } from '../../src/pipeline/drain.js';

it('drains once the last admitted call leaves; refuses new calls meanwhile; aborts waits with gateway.shutting_down', async () => {
  const gate = createCallGate();
  const a = gate.enter();
  const b = gate.enter();
  expect(gate.inFlight).toBe(2);
  let outcome: string | null = null;
  const drained = gate.drain(new Promise<void>(() => undefined)).then((o) => (outcome = o));
  expect(gate.draining).toBe(true);
  expect(gate.enter()).toBeNull();
  expect(a?.signal.aborted).toBe(true);
  expect(isShutdownReason(a?.signal.reason)).toBe(true);
  expect((a?.signal.reason as DrawbridgeError).code).toBe('gateway.shutting_down');
  a?.release();
  a?.release(); // twice is once
  await Promise.resolve();
  expect(outcome).toBeNull();
  b?.release();
  expect(await drained).toBe('drained');
  expect(gate.inFlight).toBe(0);
});

it('the deadline ends the drain with calls still in flight', async () => {
  const gate = createCallGate();
  gate.enter();
  let fire: () => void = () => undefined;
  const deadline = new Promise<void>((resolve) => (fire = resolve));
  const drained = gate.drain(deadline);
  fire();
  expect(await drained).toBe('timed out');
  expect(gate.inFlight).toBe(1);
});

it("an empty gate drains at once; a client's cancellation aborts its call's signal with the client's reason", async () => {
  const gate = createCallGate();
  const client = new AbortController();
  const admitted = gate.enter(client.signal);
  client.abort('gone');
  expect(admitted?.signal.reason).toBe('gone');
  expect(isShutdownReason(admitted?.signal.reason)).toBe(false);
  admitted?.release();
  expect(await gate.drain(new Promise<void>(() => undefined))).toBe('drained');
});
