// In-band approval through MCP elicitation: the human at the agent's client
// sees the exact request in a form and answers approve / decline, with an
// optional grant and reason. One of the transport edges where the SDK lives
// (with server.ts, stdio.ts, http/ and bridge/); pipeline, policy, backends
// and masking never import it.
// A client that did not declare the capability gets no `elicit` hook at all,
// so it can never produce a silent yes.

import type { Server } from '@modelcontextprotocol/sdk/server/index.js';
import type { RequestId } from '@modelcontextprotocol/sdk/types.js';
import { formatDuration } from '../config/units.js';
import type { ApprovalChannel, ElicitAnswer, ElicitForm } from './approver.js';

const THIS_CALL = 'this call only';

/**
 * The elicit hook for this client, or undefined when it cannot show a form.
 * `relatedRequestId` is the tools/call being approved: over Streamable HTTP the
 * prompt then travels on that call's own response stream, not on the separate
 * GET stream, which may not be open (the SDK drops what it cannot send there).
 */
export function elicitationHook(server: Server, relatedRequestId?: RequestId): ApprovalChannel['elicit'] {
  if (!server.getClientCapabilities()?.elicitation?.form) return undefined;
  return async (form: ElicitForm, timeoutMs: number, signal?: AbortSignal): Promise<ElicitAnswer> => {
    const grants = form.grantChoices.map((ms) => (ms === 0 ? THIS_CALL : formatDuration(ms)));
    const result = await server.elicitInput(
      {
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
      },
      // The SDK's 60 s default is too short for a human. The signal withdraws the prompt
      // (notifications/cancelled) when the tool call it belongs to is cancelled.
      { timeout: timeoutMs, ...(signal ? { signal } : {}), ...(relatedRequestId !== undefined ? { relatedRequestId } : {}) },
    );
    if (result.action !== 'accept') return { action: result.action };
    const content = result.content ?? {};
    const chosen = typeof content['grant'] === 'string' ? grants.indexOf(content['grant']) : 0;
    const reason = typeof content['reason'] === 'string' && content['reason'].trim() !== '' ? content['reason'].trim() : undefined;
    return {
      action: 'accept',
      approve: content['decision'] === 'approve',
      grantMs: chosen > 0 ? (form.grantChoices[chosen] ?? 0) : 0,
      ...(reason ? { reason } : {}),
    };
  };
}
