// What a human is shown when asked to approve: the exact request, what the
// gateway parsed it as, the rule and its message, and the impact preview. Used
// by the elicitation form and by `drawbridge approvals show`. Also the form
// itself and how its answer is read, shared by the two in-client channels
// (elicitation/create on 2025-11-25, an InputRequiredResult on 2026-07-28), so
// both show the same prompt. Pure.

import { formatDuration } from '../config/units.js';
import type { ApprovalSubject, ElicitAnswer, ElicitForm } from './approver.js';

const THIS_CALL = 'this call only';

/** The form-mode elicitation a human answers (message and requested schema), the same on both protocol revisions. */
export function approvalForm(form: ElicitForm) {
  const grants = form.grantChoices.map((ms) => (ms === 0 ? THIS_CALL : formatDuration(ms)));
  return {
    mode: 'form' as const,
    message: form.message,
    requestedSchema: {
      type: 'object' as const,
      properties: {
        decision: {
          type: 'string' as const,
          title: 'Decision',
          enum: ['approve', 'decline'],
          description: 'Approve runs exactly the request shown above.',
        },
        ...(grants.length > 1 ? { grant: { type: 'string' as const, title: 'Also allow similar calls for', enum: grants, default: THIS_CALL } } : {}),
        reason: { type: 'string' as const, title: 'Reason (optional)', maxLength: 500 },
      },
      required: ['decision'],
    },
  };
}

export type ApprovalFormParams = ReturnType<typeof approvalForm>;

/**
 * The human's answer to approvalForm, read from what the client returned (untrusted): only an
 * accepted form whose decision is exactly "approve" approves; a grant not offered is no grant.
 */
export function approvalAnswer(form: ElicitForm, action: unknown, content: unknown): ElicitAnswer {
  if (action !== 'accept') return { action: action === 'decline' ? 'decline' : 'cancel' };
  const fields = content !== null && typeof content === 'object' && !Array.isArray(content) ? (content as Record<string, unknown>) : {};
  const grants = form.grantChoices.map((ms) => (ms === 0 ? THIS_CALL : formatDuration(ms)));
  const chosen = typeof fields['grant'] === 'string' ? grants.indexOf(fields['grant']) : 0;
  const reason = typeof fields['reason'] === 'string' && fields['reason'].trim() !== '' ? fields['reason'].trim().slice(0, 500) : undefined;
  return {
    action: 'accept',
    approve: fields['decision'] === 'approve',
    grantMs: chosen > 0 ? (form.grantChoices[chosen] ?? 0) : 0,
    ...(reason ? { reason } : {}),
  };
}

/** Grant choices offered to a human: none, common steps below the rule's maximum, and the maximum. */
export function grantChoices(maxGrantMs: number | null): number[] {
  if (!maxGrantMs) return [0];
  const steps = [5 * 60_000, 15 * 60_000, 60 * 60_000, 4 * 3_600_000, 8 * 3_600_000].filter((ms) => ms < maxGrantMs);
  return [0, ...steps, maxGrantMs];
}

/** The text a human judges: the exact request, what it is, the rule, the preview. */
export function describeForApproval(subject: ApprovalSubject): string {
  const lines = [
    `Approve this ${subject.tool} request on ${subject.connection}?`,
    `Requested by ${subject.requester.subject}${subject.client ? ` via ${subject.client}` : ''}.`,
    `Rule ${subject.rule}: ${subject.message}`,
    `Parsed: ${subject.summary}${subject.reasons.length ? ` — ${subject.reasons.join('; ')}` : ''}`,
  ];
  const p = subject.preview;
  if (p) {
    const rows = p.affectedRows === null ? 'unknown number of rows' : `${p.affectedRows} row${p.affectedRows === 1 ? '' : 's'}`;
    lines.push(`Impact (dry run, rolled back): ${rows} would change.`);
    if (p.sample.length > 0)
      lines.push(
        `Sample of affected keys: ${p.sample
          .map((r) =>
            Object.entries(r)
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(', '),
          )
          .join(' | ')}`,
      );
    if (p.note) lines.push(`(${p.note})`);
  }
  lines.push('', 'Exact input:');
  for (const [key, value] of Object.entries(subject.input)) {
    if (key === 'connection') continue;
    lines.push(typeof value === 'string' ? value : JSON.stringify(value));
  }
  return lines.join('\n');
}
