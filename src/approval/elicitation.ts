// In-band approval through MCP elicitation on a 2025-11-25 connection: the human
// at the agent's client sees the exact request in a form and answers approve /
// decline, with an optional grant and reason. One of the transport edges where
// the SDK lives (with server.ts, stdio.ts, http/ and bridge/); pipeline, policy,
// backends and masking never import it. The form and the reading of its answer
// are prompt.ts's (approvalForm, approvalAnswer), shared with the 2026-07-28
// InputRequiredResult, so both revisions show the same prompt.
// A client that did not declare the capability gets no `elicit` hook at all
// (server.ts decides), so it can never produce a silent yes.

import type { ElicitRequestFormParams, ElicitResult, RequestOptions } from '@modelcontextprotocol/server';
import type { ApprovalChannel, ElicitAnswer, ElicitForm } from './approver.js';
import { approvalAnswer, approvalForm } from './prompt.js';

/** How a form is pushed to the client on a 2025-11-25 connection: the SDK's `ctx.mcpReq.elicitInput` of the tools/call. */
export type ElicitInput = (params: ElicitRequestFormParams, options?: RequestOptions) => Promise<ElicitResult>;

/**
 * The elicit hook of a 2025-11-25 client that declared form elicitation. `elicitInput` is the
 * tools/call's own: over Streamable HTTP the prompt then travels on that call's response
 * stream, not on the separate GET stream, which may not be open.
 */
export function elicitationHook(elicitInput: ElicitInput): NonNullable<ApprovalChannel['elicit']> {
  return async (form: ElicitForm, timeoutMs: number, signal?: AbortSignal): Promise<ElicitAnswer> => {
    const result = await elicitInput(
      approvalForm(form),
      // The SDK's 60 s default is too short for a human. The signal withdraws the prompt
      // (notifications/cancelled) when the tool call it belongs to is cancelled.
      { timeout: timeoutMs, ...(signal ? { signal } : {}) },
    );
    return approvalAnswer(form, result.action, result.content);
  };
}
