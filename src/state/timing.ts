// How long the journal holds up calls, measured from the caller's side of JournalStore.append:
// the time from the call to its resolution (queueing for a group commit, the transaction and
// its fsync), per record type. Engine-neutral; `drawbridge serve` wraps its journal in it only
// when DRAWBRIDGE_JOURNAL_TIMINGS names a file (the benchmark's view into the server), so a
// gateway that is not measured pays nothing.

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
