// The console's HTML: server-rendered pages, every value escaped here (no
// template engine, no framework, no third-party assets). Knows nothing of
// sessions or HTTP; console.ts decides what is shown to whom.

import { approveCount, formatApproval } from '../approval/format.js';
import type { Identity } from '../identity/identity.js';
import type { StoredApproval, StoredGrant } from '../state/contract.js';

const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

const e = escapeHtml;

export interface Notice {
  readonly kind: 'ok' | 'error';
  readonly text: string;
}

/** "3m" / "2h 5m" from milliseconds. */
function span(ms: number): string {
  const m = Math.max(0, Math.round(ms / 60_000));
  if (m < 1) return `${Math.max(0, Math.round(ms / 1000))}s`;
  if (m < 60) return `${m}m`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

function page(title: string, body: string, nav: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(title)} · Drawbridge</title><link rel="stylesheet" href="/console/static/console.css"></head>
<body>${nav}<main>
<h1>${e(title)}</h1>
${body}
</main><script src="/console/static/console.js"></script></body></html>
`;
}

/** A page for a signed-in person, with the navigation and sign-out form. */
export function layout(who: Identity, title: string, body: string, csrf: string, links: { readonly journal: boolean }): string {
  const logout = signOut(csrf);
  const journal = links.journal ? ' <a href="/console/journal">Journal</a>' : '';
  const nav = `<header><nav><strong>Drawbridge</strong> <a href="/console/">Pending</a> <a href="/console/grants">Grants</a>${journal}</nav>
<p class="who">Signed in as <span data-subject>${e(who.subject)}</span> (${e(who.groups.join(', ') || 'no groups')})</p>${logout}</header>`;
  return page(title, body, nav);
}

const signOut = (csrf: string): string =>
  `<form method="post" action="/console/logout" class="logout"><input type="hidden" name="csrf" value="${e(csrf)}"><button>Sign out</button></form>`;

/** A page without a session (sign-in errors, refusals). */
export function messagePage(title: string, text: string, link?: { readonly href: string; readonly text: string }): string {
  const a = link ? `<p><a href="${e(link.href)}">${e(link.text)}</a></p>` : '';
  return page(title, `<p class="error" data-message>${e(text)}</p>${a}`, '<header><nav><strong>Drawbridge</strong></nav></header>');
}

function inputBlock(input: Readonly<Record<string, unknown>>): string {
  const rows = Object.entries(input).map(
    ([k, v]) => `<dt>${e(k)}</dt><dd><pre>${e(typeof v === 'string' ? v : (JSON.stringify(v) ?? 'undefined'))}</pre></dd>`,
  );
  return rows.length ? `<dl class="input">${rows.join('')}</dl>` : '<p>(no arguments)</p>';
}

function previewBlock(a: StoredApproval): string {
  const p = a.subject.preview;
  if (p === null) return '<p class="muted">No preview (the rule asks for none, or this is not a write).</p>';
  const rows = `<p>Affected rows: <strong data-affected>${p.affectedRows === null ? 'unknown' : e(String(p.affectedRows))}</strong></p>`;
  let sample = '';
  if (p.sample.length > 0) {
    const columns = p.sampleColumns.length ? p.sampleColumns : Object.keys(p.sample[0] ?? {});
    const head = columns.map((c) => `<th>${e(c)}</th>`).join('');
    const body = p.sample.map((r) => `<tr>${columns.map((c) => `<td>${e(String(r[c] ?? 'NULL'))}</td>`).join('')}</tr>`).join('');
    sample = `<p>Sample of affected rows (masked):</p><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
  }
  const note = p.note ? `<p class="note">${e(p.note)}</p>` : '';
  return rows + sample + note;
}

const voteItem = (v: StoredApproval['votes'][number]): string =>
  `<li>${e(v.decision)} by ${e(v.approver.subject)} via ${e(v.via)} at ${e(v.at)}${v.reason ? ` — ${e(v.reason)}` : ''}</li>`;

/** One request: who, what, the exact input, the rule, the preview, votes and times; with the decide forms when `canDecide`. */
export function approvalCard(
  a: StoredApproval,
  now: Date,
  o: { readonly canDecide: boolean; readonly why: string | null; readonly csrf: string; readonly notice: Notice | undefined; readonly detail: boolean },
): string {
  const s = a.subject;
  const age = span(now.getTime() - Date.parse(a.createdAt));
  const left = span(Date.parse(a.expiresAt) - now.getTime());
  const notice = o.notice ? `<p class="${o.notice.kind === 'ok' ? 'ok' : 'error'}" data-notice="${o.notice.kind}">${e(o.notice.text)}</p>` : '';
  const maxGrant = s.maxGrantMs ? span(s.maxGrantMs) : null;
  const grantField = maxGrant
    ? `<label>Grant (at most ${e(maxGrant)}; empty: this call only) <input name="grant" value="" placeholder="15m"></label>`
    : '<p class="muted">The rule allows no grant: an approval covers this one call.</p>';
  const forms = o.canDecide
    ? `<section class="decide"><form method="post" action="/console/approvals/${encodeURIComponent(a.id)}/approve">
<input type="hidden" name="csrf" value="${e(o.csrf)}">${grantField}
<label>Reason (optional) <input name="reason" value=""></label><button class="approve">Approve</button></form>
<form method="post" action="/console/approvals/${encodeURIComponent(a.id)}/deny"><input type="hidden" name="csrf" value="${e(o.csrf)}">
<label>Reason (required) <input name="reason" value="" required></label><button class="deny">Deny</button></form></section>`
    : o.why
      ? `<p class="muted" data-why>${e(o.why)}</p>`
      : '';
  const votes = a.votes.length ? `<ul>${a.votes.map(voteItem).join('')}</ul>` : '<p class="muted">No votes yet.</p>';
  const full = o.detail ? `<details><summary>Full record (as the CLI shows it)</summary><pre>${e(formatApproval(a, now))}</pre></details>` : '';
  return `${notice}<article class="request" data-approval="${e(a.id)}" data-status="${e(a.status)}">
<h2><a href="/console/approvals/${encodeURIComponent(a.id)}">${e(s.tool)} on ${e(s.connection)}</a> <span class="status">${e(a.status)}</span></h2>
<p>Requested by <strong>${e(s.requester.subject)}</strong> (${e(s.requester.groups.join(', ') || 'no groups')}) with client ${e(s.client ?? '(unknown)')},
${e(age)} ago; ${a.status === 'pending' ? `expires in ${e(left)}` : `expires ${e(a.expiresAt)}`}.</p>
<p>Rule <strong>${e(s.rule)}</strong>: ${e(s.message)}</p>
<p>Parsed: ${e(s.summary)}</p>
<h3>Input (exact)</h3>${inputBlock(s.input)}
<h3>Impact preview</h3>${previewBlock(a)}
<h3>Votes: ${approveCount(a)} of ${s.min}</h3>${votes}
${forms}${full}</article>`;
}

/** The pending list (also the live-refreshed fragment). */
export function pendingPage(list: readonly StoredApproval[], now: Date, mayDecide: (a: StoredApproval) => boolean): string {
  if (list.length === 0) return '<div id="pending" data-live="/console/pending.json"><p class="muted">Nothing waits for a decision.</p></div>';
  const cards = list.map((a) =>
    approvalCard(a, now, { canDecide: false, why: mayDecide(a) ? null : 'Your own request.', csrf: '', notice: undefined, detail: false }),
  );
  return `<div id="pending" data-live="/console/pending.json">${cards.join('\n')}</div>`;
}

export function grantsPage(grants: readonly StoredGrant[], now: Date, csrf: string, notice?: Notice): string {
  const n = notice ? `<p class="${notice.kind === 'ok' ? 'ok' : 'error'}" data-notice="${notice.kind}">${e(notice.text)}</p>` : '';
  if (grants.length === 0) return `${n}<p class="muted">No active grants.</p>`;
  const rows = grants.map(
    (g) => `<tr data-grant="${e(g.id)}"><td>${e(g.id)}</td><td>${e(g.subject)}</td><td>${e(g.tool)}</td><td>${e(g.connection)}</td><td>${e(g.rule)}</td>
<td><time>${e(g.expiresAt)}</time> (in ${e(span(Date.parse(g.expiresAt) - now.getTime()))})</td>
<td><form method="post" action="/console/grants/${encodeURIComponent(g.id)}/revoke">
<input type="hidden" name="csrf" value="${e(csrf)}"><button>Revoke</button></form></td></tr>`,
  );
  return `${n}<table class="grants"><thead><tr><th>Grant</th><th>Subject</th><th>Tool</th><th>Connection</th><th>Rule</th><th>Expires</th><th></th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

/** A path segment decoded, or null when it is not valid percent-encoding (shown as "not found", never a 500). */
export function decodeSegment(segment: string | undefined): string | null {
  try {
    return decodeURIComponent(segment ?? '');
  } catch {
    return null;
  }
}
