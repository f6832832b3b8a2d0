// What the pipeline says about a call when it ends: pure data, for the operator's
// observers (the log line, metrics, traces). No data of the call
// (rows, SQL text, arguments), no secrets: names, decision, counts and timings only.
// The pipeline knows no sink: it hands the event to whatever subscribed
// (gateway.onCallEnd), and an observer's failure never touches the call.

import type { ErrorCode, ErrorKind } from '../errors.js';
import type { TraceContext } from './trace-context.js';

/**
 * The stages a call is timed in: parse (identity, input, parse, resolve, scopes), decide (the rules),
 * approval (the wait for a grant or a human), journal (the intent's and the outcome's appends),
 * execute (the backend), mask (masking the result and rendering the answer).
 */
export type CallStage = 'parse' | 'decide' | 'approval' | 'journal' | 'execute' | 'mask';

export const CALL_STAGES: readonly CallStage[] = ['parse', 'decide', 'approval', 'journal', 'execute', 'mask'];

/** One stage as it ran: its start, in milliseconds after the call's, and its duration. */
export interface StageTiming {
  readonly stage: CallStage;
  readonly startMs: number;
  readonly durationMs: number;
}

export interface CallEnd {
  /** The call's id, as journaled (links the event to the journal's intent and outcome). */
  readonly callId: string;
  /** When the call ended (the gateway's clock). */
  readonly at: Date;
  /** The tool called, when the config declares it (an unknown name is the agent's text: left out). */
  readonly tool: string | null;
  /** Null until the arguments named a declared connection. */
  readonly connection: string | null;
  /** The parsed request's operation and access, once the backend parsed it. */
  readonly operation: string | null;
  readonly access: string | null;
  /** The policy's decision; null when the call ended before one (an invalid input, a fault). */
  readonly decision: { readonly effect: 'allow' | 'deny' | 'approve'; readonly rule: string | null } | null;
  /** How an approve decision was cleared; null otherwise. */
  readonly clearance: 'grant' | 'approval' | null;
  /** As the journal's outcome says it: ok, refused (a refusal, an approval pending) or error (a fault, a failed execution). */
  readonly status: 'ok' | 'refused' | 'error';
  /** The error's code and kind when not ok. */
  readonly error: { readonly code: ErrorCode; readonly kind: ErrorKind } | null;
  /**
   * A fault's message as the operator's log has always had it: masked like the agent's copy,
   * but with the host paths the agent is not shown. Null for anything but a fault.
   */
  readonly faultMessage: string | null;
  readonly rows: number | null;
  readonly affectedRows: number | null;
  /** How many values masking replaced in the answer. */
  readonly masked: number;
  /** The same values by masking rule and detector (their counts add up to `masked`); none when nothing was masked. */
  readonly maskedBy: readonly MaskedBy[];
  /** When the call started, in epoch milliseconds of the process's own clock (performance.timeOrigin based, for spans). */
  readonly startedAtMs: number;
  readonly durationMs: number;
  /** The stages in the order they ran; a stage the call never reached is absent, the journal's appears once per append. */
  readonly stages: readonly StageTiming[];
  /** The agent session (transport), when the call came over one. */
  readonly session: string | null;
  /** The caller's subject; observers decide whether to show it (personal data). */
  readonly subject: string | null;
  /** The caller's W3C trace context (the request's `_meta`, else its HTTP headers), when valid; null: the call starts a trace. */
  readonly trace: TraceContext | null;
}

/** Values masked by one rule, one way: names and a count (never a column, a value or a pattern). */
export interface MaskedBy {
  /** The masking rule's name as declared, or the gateway's own (built-in: a backend's field masks; withheld; quoted-values). */
  readonly rule: string;
  /** The content detector that found the values, `pattern` for a rule's own patterns, null for a column rule or a field mask. */
  readonly detector: string | null;
  readonly count: number;
}

export type CallEndObserver = (event: CallEnd) => void;

/** Milliseconds per stage, summed (a call's two journal appends are one journal figure); stages not reached are absent. */
export function stageTotals(stages: readonly StageTiming[]): Partial<Record<CallStage, number>> {
  const totals: Partial<Record<CallStage, number>> = {};
  for (const { stage, durationMs } of stages) totals[stage] = Math.round(((totals[stage] ?? 0) + durationMs) * 100) / 100;
  return totals;
}

/** The observers of a gateway: subscribe (returns the unsubscribe) and notify; a throwing observer is ignored. */
export interface CallEndObservers {
  subscribe(observer: CallEndObserver): () => void;
  notify(event: CallEnd): void;
}

export function callEndObservers(): CallEndObservers {
  const observers = new Set<CallEndObserver>();
  return {
    subscribe(observer) {
      // A wrapper, so the same function subscribed twice is called twice and unsubscribed once each.
      const entry: CallEndObserver = (event) => observer(event);
      observers.add(entry);
      return () => void observers.delete(entry);
    },
    notify(event) {
      for (const observer of observers) {
        try {
          observer(event);
        } catch {
          // An observer (a log sink, a metric) must never fail or delay the call it observes.
        }
      }
    },
  };
}
