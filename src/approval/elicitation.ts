// In-band approval through MCP elicitation: the human at the agent's client
// sees the exact request in a form and answers approve / decline, with an
// optional grant and reason. One of the transport edges where the SDK lives
// (with server.ts, stdio.ts, http/ and bridge/); pipeline, policy, backends
// and masking never import it.
// The form is built once (approvalElicitation) for both protocol eras: pushed
// as elicitation/create on a 2025-11-25 connection (elicitationHook), returned
// inside an InputRequiredResult on a 2026-07-28 request (server.ts
// approvalInputRequired), and the answer read the same way (readApprovalAnswer).
// A client that did not declare the capability gets no `elicit` hook at all,
// so it can never produce a silent yes.

import type { ElicitRequestFormParams, ElicitResult, RequestOptions } from '@modelcontextprotocol/server';
import { formatDuration } from '../config/units.js';
import type { ApprovalChannel, ElicitAnswer, ElicitForm } from './approver.js';

const THIS_CALL = 'this call only';

/** The key of the approval form in a 2026-07-28 InputRequiredResult's inputRequests (and of its answer in inputResponses). */
export const APPROVAL_INPUT_KEY = 'approval';

/** How the client's elicitation is sent on a 2025-11-25 connection: the SDK's `ctx.mcpReq.elicitInput`. */
export type ElicitInput = (params: ElicitRequestFormParams, options?: RequestOptions) => Promise<ElicitResult>;

function grantLabels(form: ElicitForm): string[] {
  return form.grantChoices.map((ms) => (ms === 0 ? THIS_CALL : formatDuration(ms)));
}

/** The form the human sees, the same in both eras. */
export function approvalElicitation(form: ElicitForm): ElicitRequestFormParams {
  const grants = grantLabels(form);
  return {
    mode: 'form',
    message: form.message,
    requestedSchema: {
      type: 'object',
      properties: {
        decision: { type: 'string', title: 'Decision', enum: ['approve', 'decline'], description: 'Approve runs exactly the request shown above.' },
        ...(grants.length > 1 ? { grant: { type: 'string', title: 'Also allow similar calls for', enum: grants, default: THIS_CALL } } : {}),
        reason: { type: 'string', title: 'Reason (optional)', maxLength: 500 },
      },
      required: ['decision'],
    },
  };
}

/** The client's answer to the form, in the approval contract's terms. Untrusted input: anything unexpected is read as no approval. */
export function readApprovalAnswer(
  form: ElicitForm,
  result: { readonly action: string; readonly content?: Readonly<Record<string, unknown>> | undefined },
): ElicitAnswer {
  if (result.action !== 'accept') return { action: result.action === 'decline' ? 'decline' : 'cancel' };
  const grants = grantLabels(form);
  const content = result.content ?? {};
  const chosen = typeof content['grant'] === 'string' ? grants.indexOf(content['grant']) : 0;
  const reason = typeof content['reason'] === 'string' && content['reason'].trim() !== '' ? content['reason'].trim() : undefined;
  return {
    action: 'accept',
    approve: content['decision'] === 'approve',
    grantMs: chosen > 0 ? (form.grantChoices[chosen] ?? 0) : 0,
    ...(reason ? { reason } : {}),
  };
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
