// Shared checks for the fault tests (ssh, Kubernetes, OpenID provider): a
// recorder of everything that would have ended a gateway process — an uncaught
// exception, an unhandled rejection, an emitter listener leak — and the journal
// check every fault test ends with (the chain verifies, and every call that was
// journaled has exactly one outcome).

import Database from 'better-sqlite3';
import { verifyJournal } from '../../src/journal/verify.js';

export interface ProcessFaults {
  /** One line per event, in order: `uncaughtException: …`, `unhandledRejection: …`, `warning: …`. */
  readonly seen: readonly string[];
  /** Removes the listeners. */
  stop(): void;
}

function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}\n${value.stack ?? ''}`;
  return String(value);
}

/**
 * Listens on the test process for what would end (or slowly break) a gateway:
 * uncaught exceptions, unhandled rejections, and MaxListenersExceededWarning (a
 * listener added per call and never removed). Tests assert `seen` stays empty.
 */
export function watchProcessFaults(): ProcessFaults {
  const seen: string[] = [];
  const onException = (error: unknown) => seen.push(`uncaughtException: ${describe(error)}`);
  const onRejection = (reason: unknown) => seen.push(`unhandledRejection: ${describe(reason)}`);
  const onWarning = (warning: Error) => {
    if (warning.name === 'MaxListenersExceededWarning') seen.push(`warning: ${describe(warning)}`);
  };
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  process.on('warning', onWarning);
  return {
    seen,
    stop() {
      process.off('uncaughtException', onException);
      process.off('unhandledRejection', onRejection);
      process.off('warning', onWarning);
    },
  };
}

export interface JournaledCall {
  readonly callId: string;
  readonly intent: Record<string, unknown>;
  readonly outcome: Record<string, unknown>;
}

/**
 * `journal verify` on the file (the hash chain), then every call record paired
 * with its outcome: throws if the chain is broken, or a call has no outcome or
 * more than one.
 */
export function journaledCalls(path: string): JournaledCall[] {
  const verified = verifyJournal(path);
  if (!verified.ok) throw new Error(`journal verify failed at record ${verified.firstBad?.seq}: ${verified.firstBad?.reason}`);
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare("SELECT type, call_id, data FROM records WHERE type IN ('call', 'outcome') ORDER BY seq").all() as Array<{
      type: string;
      call_id: string;
      data: string;
    }>;
    const intents = new Map<string, Record<string, unknown>>();
    const outcomes = new Map<string, Record<string, unknown>[]>();
    for (const row of rows) {
      const data = JSON.parse(row.data) as Record<string, unknown>;
      if (row.type === 'call') intents.set(row.call_id, data);
      else outcomes.set(row.call_id, [...(outcomes.get(row.call_id) ?? []), data]);
    }
    const calls: JournaledCall[] = [];
    for (const [callId, intent] of intents) {
      const found = outcomes.get(callId) ?? [];
      if (found.length !== 1) throw new Error(`call ${callId} has ${found.length} outcome records`);
      calls.push({ callId, intent, outcome: found[0] as Record<string, unknown> });
    }
    for (const callId of outcomes.keys()) if (!intents.has(callId)) throw new Error(`outcome ${callId} has no call record`);
    return calls;
  } finally {
    db.close();
  }
}
