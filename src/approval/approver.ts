// Just-in-time approval: the types every approval path shares. A request that
// needs approval is bound to the hash of its canonical form (tool, connection,
// exact input), so an approval can only ever run the statement that was shown.
// How a call is cleared is behind `Approver`: grants, elicitation and the
// out-of-band request are adapters of it (src/approval/adapters/), asked in a
// fixed order by the approve stage; the pipeline never knows which answered.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Notifier } from './notify.js';
import type { ApprovalFormParams } from './prompt.js';
import type { RequestStateSealer } from './request-state.js';
import type { ImpactPreview, ParsedRequest } from '../backends/backend.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Identity, PrincipalKind } from '../identity/identity.js';
import type { Rule } from '../policy/schema.js';
import type { ApprovalStore, JournalStore, StoredGrant } from '../state/contract.js';
import { canonicalJson } from '../util/canonical-json.js';

/** Who acted on an approval, and how. */
export interface ApproverIdentity {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly kind: 'local' | 'oidc';
}

/**
 * The channels a vote or clearance can come through: in band (the MCP client's form), the CLI on
 * the gateway host, or the approvals API. An adapter for a new channel adds its name by declaration
 * merging (`declare module '…/approver.js' { interface ApprovalVias { console: true } }`).
 */
export interface ApprovalVias {
  elicitation: true;
  cli: true;
  api: true;
}

export type ApprovalVia = Extract<keyof ApprovalVias, string>;

export interface Vote {
  readonly approver: ApproverIdentity;
  readonly decision: 'approve' | 'deny';
  readonly via: ApprovalVia;
  /** The MCP client's name for in-band approvals. */
  readonly client?: string;
  readonly reason?: string;
  /** Grant the approver chose (ms), bounded by the rule's `grant`. */
  readonly grantMs?: number;
  readonly at: string;
}

/** What a human is asked to approve: everything needed to judge, nothing secret. */
export interface ApprovalSubject {
  /** sha256 of the canonical request: the approval is for exactly this. */
  readonly hash: string;
  readonly callId: string;
  readonly tool: string;
  readonly connection: string;
  readonly input: Readonly<Record<string, unknown>>;
  readonly summary: string;
  readonly reasons: readonly string[];
  readonly rule: string;
  readonly message: string;
  /** `principal`: a person, or a service's own token (absent in requests stored before principals were recorded). */
  readonly requester: ApproverIdentity & { readonly issuer: string; readonly principal?: PrincipalKind };
  readonly client?: string;
  /** Rule settings. */
  readonly approverGroups: readonly string[];
  readonly allowRequester: boolean;
  readonly min: number;
  readonly maxGrantMs: number | null;
  readonly preview: ImpactPreview | null;
}

/** Per-call hooks the transport offers (server.ts builds them from the MCP request). */
export interface ApprovalChannel {
  readonly clientName?: string;
  /**
   * The MCP protocol era of the request: 2025-11-25 ('legacy': the server can push an
   * elicitation/create while the call waits) or 2026-07-28 ('modern': no server→client
   * request; a form reaches the human only as an input_required answer and a re-issued call).
   * Absent: the call did not come over MCP (in-process callers).
   */
  readonly era?: 'legacy' | 'modern';
  /** Whether the client declared form elicitation (on 2026-07-28: in this request's envelope). */
  readonly formElicitation?: boolean;
  /** Present only when the client declared the elicitation capability. Rejects when `signal` aborts. */
  readonly elicit?: (request: ElicitForm, timeoutMs: number, signal?: AbortSignal) => Promise<ElicitAnswer>;
  /** Progress notifications keep a long call open; absent when the client sent no progressToken. */
  readonly progress?: (message: string) => Promise<void>;
  /**
   * Aborts when the client cancelled the call (or gave up on it): nobody is waiting for
   * the result any more, so the approve stage stops asking and nothing runs.
   */
  readonly signal?: AbortSignal;
  /**
   * Present only on an MCP 2026-07-28 request whose client declared form elicitation: the human
   * is asked by answering the call "input required" (a form and a sealed requestState), and the
   * client re-issues the call with the answer (adapters/input-required.ts).
   */
  readonly rounds?: InputRounds;
}

/** A 2026-07-28 call's multi-round-trip input, as the client sent it (plain data, untrusted). */
export interface InputRounds {
  /** The requestState the client echoed back; absent on the first round. */
  readonly requestState?: unknown;
  /** The client's answer to the approval form (an elicitation result: action, content); absent when it sent none. */
  readonly response?: unknown;
}

/** The key of the approval form among an InputRequiredResult's input requests (and of its answer among the responses). */
export const APPROVAL_INPUT_KEY = 'approval';

/** One embedded form-mode elicitation of an InputRequiredResult, as plain data (server.ts maps it onto the SDK's). */
export interface FormInputRequest {
  readonly method: 'elicitation/create';
  readonly params: ApprovalFormParams;
}

/**
 * The call cannot be decided in this round: the client must show `inputRequests` to its human
 * and call again with the answers and `requestState` (sealed, request-state.ts). Nothing ran.
 */
export interface InputRequired {
  readonly kind: 'input_required';
  readonly approvalId: string;
  readonly inputRequests: Readonly<Record<string, FormInputRequest>>;
  readonly requestState: string;
}

export interface ElicitForm {
  readonly message: string;
  /** Grant choices offered, in ms (0 = this call only). */
  readonly grantChoices: readonly number[];
}

export type ElicitAnswer =
  { readonly action: 'accept'; readonly approve: boolean; readonly grantMs: number; readonly reason?: string } | { readonly action: 'decline' | 'cancel' };

/** What the approve stage works with: the state store (opened on first use), journal, clock, settings and the adapters. */
export interface ApprovalContext {
  readonly store: () => ApprovalStore;
  readonly journal: JournalStore;
  readonly clock: () => Date;
  readonly settings: GatewayConfig['approval'];
  /** The adapters, in the order they are asked (default: grant, elicitation, out of band; see adapters/index.ts). */
  readonly approvers?: readonly Approver[];
  /** Real-time sleep; injectable (with `monotonic`) so tests run a long wait in virtual time. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Milliseconds on a monotonic clock, for how long a call has waited (default performance.now). */
  readonly monotonic?: () => number;
  /** How often a waiting call sends progress notifications (default 5 s). */
  readonly progressEveryMs?: number;
  /** approval.notify: queues a notification (never blocks, never throws). */
  readonly notify?: Notifier['notify'];
  /**
   * An in-client decision no store records (the elicitation prompt's), once journaled: the gateway's
   * observers (metrics) count it with the store's (ApprovalStore.onDecided). Never throws.
   */
  readonly decided?: (result: 'approved' | 'denied') => void;
  /**
   * The requestState sealer (request-state.ts: requestStateKeySource): the gateway's, from
   * approval.request_state_key or the store's shared key. Absent: built from the store's shared key.
   */
  readonly requestState?: () => Promise<RequestStateSealer>;
}

/** How often a waiting call sends progress notifications unless the context says otherwise. */
export const PROGRESS_EVERY_MS = 5_000;

/** What let an `approve` decision through: journaled with the call (callTool's clearance record). */
export type Clearance =
  | { readonly kind: 'grant'; readonly grant: StoredGrant }
  | {
      readonly kind: 'approval';
      readonly approvalId: string;
      readonly via: ApprovalVia;
      readonly votes: readonly Vote[];
      readonly grant: StoredGrant | null;
    };

/** One call whose decision is `approve`, as every adapter sees it. */
export interface ApprovalCall {
  readonly callId: string;
  readonly request: ParsedRequest;
  /** The approve rule that matched. */
  readonly rule: Rule;
  readonly identity: Identity;
  readonly channel: ApprovalChannel;
  /**
   * What a human is asked to approve. Built on first use and then shared: building it may
   * run the impact preview (a dry run), which an adapter that clears without a human skips.
   */
  subject(): Promise<ApprovalSubject>;
}

/**
 * One way a call that needs approval is cleared: a grant, the human at the client
 * (elicitation), the out-of-band request, or the next channel. The stage asks each
 * adapter in order; the first that does not answer null decides the call.
 */
export interface Approver {
  /** Names the adapter (tests, logs); not shown to agents. */
  readonly name: string;
  /**
   * null: this adapter cannot decide this call (its channel is missing, or the rule does not
   * allow it), and the next one is asked. Otherwise the clearance, "input required" (the client
   * must ask its human and call again: nothing runs in this round), or a thrown coded refusal
   * (approval.declined, .pending, .timeout, .unavailable, .state_invalid); every step is journaled by the adapter.
   */
  clear(call: ApprovalCall, ctx: ApprovalContext): Promise<ApproverOutcome | null>;
}

/** What an adapter that takes a call answers: cleared, or asking the client for input first. */
export type ApproverOutcome = Clearance | InputRequired;

/**
 * What the agent is told about the approval its call waits for, or was refused by
 * (structuredContent.approval of an approval.pending or approval.declined result):
 * which request, where it stands, and exactly how to pick up the decision.
 */
export const approvalAnswerSchema = z.object({
  id: z.string().describe('The approval request, ap_…'),
  status: z
    .enum(['pending', 'approved', 'denied', 'expired', 'consumed'])
    .describe(
      'pending: no decision yet; approved: the next identical call runs it; denied: ' +
        'refused (reported once); expired or consumed: the next identical call asks anew',
    ),
  tool: z.string().describe('The tool to call again'),
  connection: z.string().describe('The connection to pass again'),
  rule: z.string().describe('The policy rule that asks for the approval'),
  expiresAt: z.string().nullable().describe('When an undecided request lapses'),
  waitSeconds: z.number().describe('How long each identical call waits for the decision before answering "pending" again'),
  retry: z.string().describe('What to do next, in words an agent follows'),
});

export type ApprovalAnswer = z.infer<typeof approvalAnswerSchema>;

/** The hash an approval is bound to: tool, connection and the exact input. */
export function requestHash(tool: string, connection: string, input: Readonly<Record<string, unknown>>): string {
  return createHash('sha256').update(canonicalJson({ tool, connection, input })).digest('hex');
}
