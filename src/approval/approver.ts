// Just-in-time approval: the types every approval path shares. A request that
// needs approval is bound to the hash of its canonical form (tool, connection,
// exact input), so an approval can only ever run the statement that was shown.
// How a human is reached is behind `Approver`; the pipeline never knows.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ImpactPreview } from '../backends/backend.js';
import { canonicalJson } from '../util/canonical-json.js';

/** Who acted on an approval, and how. */
export interface ApproverIdentity {
  readonly subject: string;
  readonly groups: readonly string[];
  readonly kind: 'local' | 'oidc';
}

/** How a vote reached the gateway: in band (the MCP client's form), the CLI on the gateway host, or the approvals API. */
export type ApprovalVia = 'elicitation' | 'cli' | 'api';

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
  readonly requester: ApproverIdentity & { readonly issuer: string };
  readonly client?: string;
  /** Rule settings. */
  readonly approverGroups: readonly string[];
  readonly allowRequester: boolean;
  readonly min: number;
  readonly maxGrantMs: number | null;
  readonly preview: ImpactPreview | null;
}

export type ApprovalOutcome =
  | { readonly status: 'approved'; readonly approvalId: string; readonly votes: readonly Vote[]; readonly grantMs: number | null }
  | { readonly status: 'declined'; readonly approvalId: string; readonly votes: readonly Vote[]; readonly reason: string }
  | { readonly status: 'pending'; readonly approvalId: string }
  | { readonly status: 'unavailable'; readonly reason: string };

/** Per-call hooks the transport offers (server.ts builds them from the MCP request). */
export interface ApprovalChannel {
  readonly clientName?: string;
  /** Present only when the client declared the elicitation capability. Rejects when `signal` aborts. */
  readonly elicit?: (request: ElicitForm, timeoutMs: number, signal?: AbortSignal) => Promise<ElicitAnswer>;
  /** Progress notifications keep a long call open; absent when the client sent no progressToken. */
  readonly progress?: (message: string) => Promise<void>;
  /**
   * Aborts when the client cancelled the call (or gave up on it): nobody is waiting for
   * the result any more, so the approve stage stops asking and nothing runs.
   */
  readonly signal?: AbortSignal;
}

export interface ElicitForm {
  readonly message: string;
  /** Grant choices offered, in ms (0 = this call only). */
  readonly grantChoices: readonly number[];
}

export type ElicitAnswer =
  { readonly action: 'accept'; readonly approve: boolean; readonly grantMs: number; readonly reason?: string } | { readonly action: 'decline' | 'cancel' };

export interface Approver {
  /** Asks for approval of `subject`; resolves when decided, or pending/unavailable. */
  request(subject: ApprovalSubject, channel: ApprovalChannel): Promise<ApprovalOutcome>;
}

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
