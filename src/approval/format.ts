// Text rendering of approvals and grants for `drawbridge approvals` and
// `drawbridge grants`. Everything shown comes from the agent's request, so
// every string is made inert first: control characters, bidi overrides and
// invisible characters are printed as escapes, so a request cannot repaint the
// terminal or make its SQL read differently from what would run.

import { formatDuration } from '../config/units.js';
import type { ApproverIdentity, Vote } from './approver.js';
import type { StoredApproval, StoredGrant } from '../state/contract.js';

// C0 (except \t and \n), DEL, C1, zero-width and direction marks, line/paragraph
// separators, bidi embeddings/overrides/isolates, word joiners, BOM.
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;
const UNSAFE_INLINE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

const escapeChar = (c: string): string => {
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  if (c === '\r') return '\\r';
  return `\\u{${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}}`;
};

/** Multi-line text (SQL): newlines and tabs kept, everything else unsafe escaped. */
export function safeBlock(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/** One line: newlines and tabs escaped too. */
export function safeLine(text: string): string {
  return text.replace(UNSAFE_INLINE, escapeChar);
}

function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** "45s", "12m", "3h 5m", "2d 4h". */
function formatSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`;
}

function relative(at: string, now: Date): string {
  const delta = Date.parse(at) - now.getTime();
  return delta >= 0 ? `in ${formatSpan(delta)}` : `${formatSpan(-delta)} ago`;
}

function grantText(ms: number | null | undefined): string {
  return ms ? formatDuration(ms) : 'none';
}

/** Distinct approvers who approved so far. */
export function approveCount(a: StoredApproval): number {
  return new Set(a.votes.filter((v) => v.decision === 'approve').map((v) => v.approver.subject)).size;
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat((widths[i] ?? 0) - [...c].length)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

export function formatApprovalList(approvals: readonly StoredApproval[], now: Date, options: { all: boolean }): string {
  if (approvals.length === 0) return options.all ? 'No approval requests.\n' : 'No pending approval requests.\n';
  const header = ['ID', ...(options.all ? ['STATUS'] : []), 'AGE', 'REQUESTER', 'TOOL/CONNECTION', 'RULE', 'VOTES', 'EXPIRES', 'SUMMARY'];
  const rows = approvals.map((a) => {
    const s = a.subject;
    const expires = a.status === 'pending' || a.status === 'approved' ? relative(a.expiresAt, now) : '-';
    return [
      a.id,
      ...(options.all ? [a.status] : []),
      formatSpan(now.getTime() - Date.parse(a.createdAt)),
      safeLine(s.requester.subject),
      safeLine(`${s.tool}/${s.connection}`),
      safeLine(s.rule),
      `${approveCount(a)}/${s.min}`,
      expires,
      truncate(safeLine(s.summary), 80),
    ];
  });
  return table(header, rows);
}

function formatVote(v: Vote): string {
  const groups = v.approver.groups.length ? v.approver.groups.join(', ') : 'no groups';
  const grant = v.decision === 'approve' ? `, grant ${grantText(v.grantMs)}` : '';
  const client = v.client ? ` (${safeLine(v.client)})` : '';
  const reason = v.reason ? ` — ${safeLine(v.reason)}` : '';
  return (
    `  ${v.decision.toUpperCase().padEnd(7)}  ${safeLine(v.approver.subject)} ` +
    `[${v.approver.kind}; ${safeLine(groups)}] via ${v.via}${client} at ${v.at}${grant}${reason}`
  );
}

/**
 * The input exactly as it would run. The tool's own text fields (every string but
 * the connection's name: a statement, a command line, a manifest) are shown as
 * blocks, line by line, however short; everything else as JSON.
 */
function formatInput(input: Readonly<Record<string, unknown>>): string {
  const out: string[] = [];
  for (const [key, value] of Object.entries(input)) {
    if (typeof value === 'string' && (key !== 'connection' || value.includes('\n'))) {
      out.push(`  ${safeLine(key)}:`);
      for (const line of safeBlock(value).split('\n')) out.push(`    ${line}`);
    } else {
      out.push(`  ${safeLine(key)}: ${safeBlock(JSON.stringify(value) ?? 'undefined')}`);
    }
  }
  return out.length ? out.join('\n') : '  (no arguments)';
}

function formatPreview(a: StoredApproval): string {
  const p = a.subject.preview;
  if (p === null) return '  (none: the rule asks for no preview, or this is not a write)';
  const lines = [`  affected rows: ${p.affectedRows === null ? 'unknown (the server cannot tell in advance)' : p.affectedRows}`];
  if (p.sample.length > 0) {
    lines.push('  sample of affected rows (masked):');
    const columns = p.sampleColumns.length ? p.sampleColumns : Object.keys(p.sample[0] ?? {});
    const rows = p.sample.map((r) => columns.map((c) => safeLine(String(r[c] ?? 'NULL'))));
    lines.push(
      ...table(columns.map(safeLine), rows)
        .trimEnd()
        .split('\n')
        .map((l) => `    ${l}`),
    );
  }
  if (p.note) lines.push(`  note: ${safeLine(p.note)}`);
  return lines.join('\n');
}

function statusLine(a: StoredApproval, now: Date): string {
  const s = a.subject;
  switch (a.status) {
    case 'pending': {
      const missing = Math.max(1, s.min - approveCount(a));
      return `PENDING: ${missing} more approval${missing === 1 ? '' : 's'} needed; expires ${a.expiresAt} (${relative(a.expiresAt, now)})`;
    }
    case 'approved':
      return `APPROVED at ${a.decidedAt ?? '?'}, grant ${grantText(a.grantMs)}; not used yet (the agent must call again before ${a.expiresAt})`;
    case 'denied': {
      const told = a.consumedAt ? `; the requester was told at ${a.consumedAt}` : '; the requester is told on their next identical call';
      return `DENIED at ${a.decidedAt ?? '?'}${told}`;
    }
    case 'consumed':
      return `APPROVED at ${a.decidedAt ?? '?'} and used at ${a.consumedAt ?? '?'}, grant ${grantText(a.grantMs)}`;
    case 'expired':
      return `EXPIRED at ${a.expiresAt}${a.decidedAt ? ` (approved at ${a.decidedAt}, never used)` : ' (nobody decided)'}`;
  }
}

/** Everything an approver needs to judge one request. */
export function formatApproval(a: StoredApproval, now: Date): string {
  const s = a.subject;
  const r = s.requester;
  const who = [
    ...(s.approverGroups.length ? [`members of ${s.approverGroups.map(safeLine).join(', ')}`] : []),
    ...(s.allowRequester ? ['the requester'] : []),
  ].join(' or ');
  const maxGrant = s.maxGrantMs
    ? `${formatDuration(s.maxGrantMs)} (approvers may also allow this requester's further calls under this rule for up to this long)`
    : 'none (an approval covers this one call)';
  const lines = [
    `Approval ${a.id}`,
    `  status      ${statusLine(a, now)}`,
    `  requested   ${a.createdAt} (${relative(a.createdAt, now)}) by ${safeLine(r.subject)} ` +
      `[${r.kind}${r.principal === 'service' ? ', a service (no person)' : ''}, issuer ${safeLine(r.issuer)}] ` +
      `groups: ${safeLine(r.groups.join(', ') || '(none)')}`,
    `  client      ${s.client ? safeLine(s.client) : '(unknown)'}`,
    `  call        ${safeLine(s.callId)}`,
    `  request     ${safeLine(s.tool)} on ${safeLine(s.connection)}`,
    `  hash        ${a.hash}`,
    `  rule        ${safeLine(s.rule)} — ${safeLine(s.message)}`,
    `  approvers   ${who || '(nobody)'}; ${s.min} distinct approval${s.min === 1 ? '' : 's'} ` +
      `needed${s.allowRequester ? '' : '; the requester may not approve'}`,
    `  max grant   ${maxGrant}`,
    '',
    'Summary',
    `  ${safeLine(s.summary)}`,
    ...(s.reasons.length ? ['Reasons', ...s.reasons.map((x) => `  - ${safeLine(x)}`)] : []),
    '',
    'Input (exact: approving runs this and nothing else)',
    formatInput(s.input),
    '',
    'Impact preview',
    formatPreview(a),
    '',
    'Votes',
    ...(a.votes.length ? a.votes.map(formatVote) : ['  (none yet)']),
  ];
  return `${lines.join('\n')}\n`;
}

function grantStatus(g: StoredGrant, now: Date): string {
  if (g.revokedAt) return `revoked ${g.revokedAt} by ${safeLine(g.revokedBy ?? '?')}`;
  if (now.getTime() >= Date.parse(g.expiresAt)) return 'expired';
  return 'active';
}

export function formatGrantList(grants: readonly StoredGrant[], now: Date, options: { all: boolean }): string {
  if (grants.length === 0) return options.all ? 'No grants.\n' : 'No active grants.\n';
  const header = ['ID', ...(options.all ? ['STATUS'] : []), 'PRINCIPAL', 'TOOL/CONNECTION', 'RULE', 'EXPIRES', 'APPROVAL'];
  const rows = grants.map((g) => [
    g.id,
    ...(options.all ? [grantStatus(g, now)] : []),
    safeLine(`${g.subject} (${g.issuer})`),
    safeLine(`${g.tool}/${g.connection}`),
    safeLine(g.rule),
    `${g.expiresAt} (${relative(g.expiresAt, now)})`,
    g.approvalId,
  ]);
  return table(header, rows);
}

/** What the approver is told after a vote was kept; the same text for every channel that prints one. */
export function voteMessage(after: StoredApproval, decision: 'approve' | 'deny', approver: ApproverIdentity, record: { readonly seq: number } | null): string {
  const approvals = approveCount(after);
  const grant = after.grantMs ? formatDuration(after.grantMs) : 'none: this call only';
  const outcome =
    after.status === 'approved'
      ? `approved (${approvals}/${after.subject.min}); grant ${grant}. The waiting call, or the agent's next identical call, runs it.`
      : after.status === 'denied'
        ? 'denied. The agent is told your reason; nothing runs.'
        : `pending (${approvals}/${after.subject.min} approvals).`;
  return (
    `${after.id}: ${decision} by ${safeLine(approver.subject)} recorded (journal #${record?.seq ?? '?'}). ` +
    `Request ${safeLine(after.subject.tool)} on ${safeLine(after.subject.connection)} is now ${outcome}\n`
  );
}

/** What the approver is told after revoking a grant; the same text for the CLI on the host and over the API. */
export function revokeMessage(grant: StoredGrant, approver: ApproverIdentity): string {
  return (
    `${grant.id}: revoked by ${safeLine(approver.subject)}; ${safeLine(grant.subject)} no longer has ${safeLine(grant.tool)} ` +
    `on ${safeLine(grant.connection)} under rule ${safeLine(grant.rule)} (it would have expired ${grant.expiresAt}).\n`
  );
}
