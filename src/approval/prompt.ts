// What a human is shown when asked to approve: the exact request, what the
// gateway parsed it as, the rule and its message, and the impact preview. Used
// by the elicitation form and by `drawbridge approvals show`. Pure.

import type { ApprovalSubject } from './approver.js';

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
