// Virtual time for the approve stage's wait (createGateway's approvals.sleep and
// approvals.monotonic): a sleep advances the clock at once, so a call that
// waits the default 45 s answers in milliseconds. Events scheduled at a virtual
// time run (and are awaited) by the sleep that passes it, exactly as if they
// happened while the call waited: an approver voting 10 s into the wait.

export interface VirtualTime {
  /** Virtual milliseconds since creation. */
  now(): number;
  /** Advances the clock by `ms`, first running the events due by then, in order. */
  sleep(ms: number): Promise<void>;
  /** Runs `event` once the clock reaches `atMs`; the waiting call resumes when it settled. */
  at(atMs: number, event: () => Promise<unknown>): void;
  /** Total virtual time slept. */
  slept(): number;
}

export function virtualTime(): VirtualTime {
  let now = 0;
  let slept = 0;
  const events: Array<{ readonly at: number; readonly run: () => Promise<unknown> }> = [];
  return {
    now: () => now,
    slept: () => slept,
    at(atMs, run) {
      events.push({ at: atMs, run });
      events.sort((a, b) => a.at - b.at);
    },
    async sleep(ms) {
      const target = now + ms;
      while (events.length > 0 && (events[0]?.at ?? Infinity) <= target) {
        const event = events.shift()!;
        now = Math.max(now, event.at);
        await event.run();
      }
      slept += ms;
      now = target;
      // Let the transports deliver what the wait produced (progress, a cancellation).
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}
