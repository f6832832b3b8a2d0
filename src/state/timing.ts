// How long the journal holds up calls, measured from the caller's side of JournalStore.append:
// the time from the call to its resolution (queueing for a group commit, the transaction and
// its fsync), per record type. Engine-neutral. timedJournal sums them for the benchmark
// (`drawbridge serve` wraps its journal in it only when DRAWBRIDGE_JOURNAL_TIMINGS names a
// file); observedJournal reports each append as it resolves (the gateway's, for /metrics).

import type { JournalStore } from './contract.js';
import type { RecordType } from './records.js';

export interface JournalTimings {
  /** Appends resolved (successfully or not), by record type. */
  readonly appends: Readonly<Partial<Record<RecordType, number>>>;
  /** Summed milliseconds from append() to its resolution, by record type. */
  readonly ms: Readonly<Partial<Record<RecordType, number>>>;
}

export function timedJournal(inner: JournalStore): { readonly journal: JournalStore; timings(): JournalTimings } {
  const appends: Partial<Record<RecordType, number>> = {};
  const ms: Partial<Record<RecordType, number>> = {};
  const journal: JournalStore = {
    async append(type, callId, data, now, options) {
      const started = performance.now();
      try {
        return await inner.append(type, callId, data, now, options);
      } finally {
        appends[type] = (appends[type] ?? 0) + 1;
        ms[type] = (ms[type] ?? 0) + (performance.now() - started);
      }
    },
    read: () => inner.read(),
    readFrom: (afterSeq, limit) => inner.readFrom(afterSeq, limit),
    head: () => inner.head(),
    probe: () => inner.probe(),
    close: () => inner.close(),
  };
  return { journal, timings: () => ({ appends: { ...appends }, ms: { ...ms } }) };
}

/** One append as it resolved: its record type, how long it took, and whether it committed. */
export interface JournalAppend {
  readonly type: RecordType;
  readonly ms: number;
  readonly ok: boolean;
}

/** `inner` with each append reported to `report` once it resolves or rejects; `report` must not throw. */
export function observedJournal(inner: JournalStore, report: (append: JournalAppend) => void): JournalStore {
  return {
    async append(type, callId, data, now, options) {
      const started = performance.now();
      let ok = false;
      try {
        const record = await inner.append(type, callId, data, now, options);
        ok = true;
        return record;
      } finally {
        report({ type, ms: performance.now() - started, ok });
      }
    },
    read: () => inner.read(),
    readFrom: (afterSeq, limit) => inner.readFrom(afterSeq, limit),
    head: () => inner.head(),
    probe: () => inner.probe(),
    close: () => inner.close(),
  };
}
