// In-band approval through MCP elicitation: the human at the agent's client
// sees the exact request in a form and answers approve / decline, with an
// optional grant and reason. One of the transport edges where the SDK lives
// (with server.ts, stdio.ts, http/ and bridge/); pipeline, policy, backends
// and masking never import it.
// The form is built once (prompt.ts approvalForm, SDK-free, typed here as the
// SDK's) for both protocol eras: pushed as elicitation/create on a 2025-11-25
// connection (elicitationHook), returned inside an InputRequiredResult on a
// 2026-07-28 request (adapters/input-required.ts, mapped by server.ts), and the
// answer read the same way (prompt.ts approvalAnswer).
// A client that did not declare the capability gets no `elicit` hook at all,
// so it can never produce a silent yes.

import type { ElicitRequestFormParams, ElicitResult, RequestOptions } from '@modelcontextprotocol/server';
import type { ApprovalChannel, ElicitAnswer, ElicitForm } from './approver.js';
import { approvalAnswer, approvalForm } from './prompt.js';

export { APPROVAL_INPUT_KEY } from './approver.js';

/** How the client's elicitation is sent on a 2025-11-25 connection: the SDK's `ctx.mcpReq.elicitInput`. */
export type ElicitInput = (params: ElicitRequestFormParams, options?: RequestOptions) => Promise<ElicitResult>;

/** The form the human sees, the same in both eras, as the SDK types it. */
export function approvalElicitation(form: ElicitForm): ElicitRequestFormParams {
  return approvalForm(form);
}

/** The client's answer to the form, in the approval contract's terms. Untrusted input: anything unexpected is read as no approval. */
export function readApprovalAnswer(
  form: ElicitForm,
  result: { readonly action: string; readonly content?: Readonly<Record<string, unknown>> | undefined },
): ElicitAnswer {
  return approvalAnswer(form, result.action, result.content);
}

/**
 * The elicit hook of a 2025-11-25 client that declared form elicitation (server.ts decides that).
 * `elicitInput` is the tools/call's own: over Streamable HTTP the prompt then travels on that
 * call's response stream, not on the separate GET stream, which may not be open.
 */
export function elicitationHook(elicitInput: ElicitInput): NonNullable<ApprovalChannel['elicit']> {
  return async (form: ElicitForm, timeoutMs: number, signal?: AbortSignal): Promise<ElicitAnswer> => {
    // The SDK's 60 s default is too short for a human. The signal withdraws the prompt
    // (notifications/cancelled) when the tool call it belongs to is cancelled.
    const result = await elicitInput(approvalElicitation(form), { timeout: timeoutMs, ...(signal ? { signal } : {}) });
    return readApprovalAnswer(form, result);
  };
}
