// In-band approval through MCP elicitation: the human at the agent's client
// sees the exact request in a form and answers approve / decline, with an
// optional grant and reason. One of the transport edges where the SDK lives
// (with server.ts, stdio.ts, http/ and bridge/); pipeline, policy, backends
// and masking never import it.
// A client that did not declare the capability gets no `elicit` hook at all,
// so it can never produce a silent yes.

import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { ApprovalChannel, ElicitAnswer, ElicitForm } from './approver.js';
import { approvalAnswer, approvalForm } from './prompt.js';

/**
 * The elicit hook for this client, or undefined when it cannot show a form.
 * `relatedRequestId` is the tools/call being approved: over Streamable HTTP the
 * prompt then travels on that call's own response stream, not on the separate
 * GET stream, which may not be open (the SDK drops what it cannot send there).
 */
export function elicitationHook(server: Server, relatedRequestId?: RequestId): ApprovalChannel['elicit'] {
  if (!server.getClientCapabilities()?.elicitation?.form) return undefined;
  return async (form: ElicitForm, timeoutMs: number, signal?: AbortSignal): Promise<ElicitAnswer> => {
    const result = await server.elicitInput(
      approvalForm(form),
      // The SDK's 60 s default is too short for a human. The signal withdraws the prompt
      // (notifications/cancelled) when the tool call it belongs to is cancelled.
      { timeout: timeoutMs, ...(signal ? { signal } : {}), ...(relatedRequestId !== undefined ? { relatedRequestId } : {}) },
    );
    return approvalAnswer(form, result.action, result.content);
  };
}
