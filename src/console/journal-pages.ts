// The console's journal pages as HTML: the search form and its results, one call's
// full record, an agent session's replay, and the verify verdict line. Pure: data
// from journal/search.ts in, escaped HTML out. Everything shown is what the journal
// holds — the masked, bounded values the agent saw; the journal holds no result data
// and no credentials, so none can be shown.

import type { CallEntry } from '../journal/export.js';
import type { ConfigEvent, ReplayStep, SearchPage, SessionReplay, VerifyStatus } from '../journal/search.js';
import { escapeHtml as e } from './pages.js';

export const JOURNAL_PATH = '/console/journal';

const callHref = (id: string): string => `${JOURNAL_PATH}/calls/${encodeURIComponent(id)}`;
const sessionHref = (id: string): string => `${JOURNAL_PATH}/sessions/${encodeURIComponent(id)}`;
export const CONFIG_PATH = `${JOURNAL_PATH}/config`;

function asObject(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
const text = (value: unknown): string => (value === null || value === undefined ? '—' : typeof value === 'string' ? value : JSON.stringify(value));

/** The verify verdict, or why it could not be computed. */
export function verifyLine(verify: VerifyStatus | { readonly error: string }): string {
  if ('error' in verify) return `<p class="verify error" data-verify="unknown">Verify status unavailable: ${e(verify.error)}</p>`;
  const head = verify.head ? ` Head <code>${e(verify.head.slice(0, 16))}…</code>.` : '';
  return verify.ok
    ? `<p class="verify ok" data-verify="ok"><strong>The journal verifies.</strong> ${e(verify.text)}${head}</p>`
    : `<p class="verify error" data-verify="bad"><strong>The journal does NOT verify.</strong> ${e(verify.text)}</p>`;
}

const FIELDS = ['since', 'until', 'subject', 'tool', 'connection', 'session', 'client'] as const;

function select(name: string, label: string, values: readonly string[], current: string | null): string {
  const options = ['', ...values].map((v) => `<option value="${e(v)}"${v === (current ?? '') ? ' selected' : ''}>${v === '' ? 'any' : e(v)}</option>`);
  return `<label>${e(label)} <select name="${name}">${options.join('')}</select></label>`;
}

function searchForm(params: URLSearchParams): string {
  const inputs = FIELDS.map((f) => {
    const hint = f === 'since' || f === 'until' ? ' placeholder="2026-12-05T09:00Z"' : '';
    return `<label>${f} <input name="${f}" value="${e(params.get(f) ?? '')}"${hint}></label>`;
  });
  return `<p><a href="${CONFIG_PATH}" data-config-link>Config changes</a> (serve starts and reloads, with the config hash each call names)</p>
<form method="get" action="${JOURNAL_PATH}" class="search">${inputs.join('')}
${select('decision', 'decision', ['allow', 'deny', 'approve'], params.get('decision'))}
${select('status', 'outcome', ['ok', 'refused', 'error'], params.get('status'))}<button>Search</button></form>`;
}

function decisionCell(call: Record<string, unknown>): string {
  const d = asObject(call.decision);
  if (!d) return asObject(call.error) ? 'fault' : '—';
  return `${e(text(d.effect))}${d.rule ? ` <span class="muted">(${e(text(d.rule))})</span>` : ''}`;
}

function maskedCount(outcome: Record<string, unknown> | null): number {
  const list = Array.isArray(outcome?.masked) ? outcome.masked : [];
  return list.reduce((sum: number, m) => sum + (typeof asObject(m)?.count === 'number' ? (asObject(m)?.count as number) : 0), 0);
}

function resultRow(c: CallEntry): string {
  const call = c.call;
  const session = typeof call.session === 'string' ? call.session : null;
  const outcome = c.outcome ? e(text(c.outcome.status)) : '<span class="muted">none</span>';
  return `<tr data-call="${e(c.callId)}"><td><a href="${callHref(c.callId)}">${e(c.time)}</a></td><td>${c.seq}</td>
<td>${e(text(asObject(call.principal)?.subject))}</td><td>${e(text(asObject(call.client)?.name))}</td><td>${e(text(call.tool))}</td>
<td>${e(text(call.connection))}</td><td>${e(text(asObject(call.request)?.summary))}</td><td>${decisionCell(call)}</td><td>${outcome}</td>
<td>${maskedCount(c.outcome)}</td><td>${session ? `<a href="${sessionHref(session)}">replay</a>` : '—'}</td></tr>`;
}

/** The search page: verify line, form, newest-first results, a link to the older page. */
export function journalSearchPage(
  params: URLSearchParams,
  verify: VerifyStatus | { readonly error: string },
  result: SearchPage | { readonly error: string },
): string {
  const form = searchForm(params);
  if ('error' in result) return `${verifyLine(verify)}${form}<p class="error" data-notice="error">${e(result.error)}</p>`;
  if (result.calls.length === 0) return `${verifyLine(verify)}${form}<p class="muted" data-results="0">No calls match.</p>`;
  const head = ['Time', 'Seq', 'Subject', 'Client', 'Tool', 'Connection', 'Request', 'Decision', 'Outcome', 'Masked', 'Session'];
  let older = '';
  if (result.next !== null) {
    const next = new URLSearchParams(params);
    next.set('before', String(result.next));
    older = `<p><a href="${JOURNAL_PATH}?${e(next.toString())}" data-older>Older calls</a></p>`;
  }
  const client = params.get('client');
  const since = params.get('since');
  const until = params.get('until');
  let window = '';
  if (client && since && until) {
    const w = new URLSearchParams({ client, since, until });
    const subject = params.get('subject');
    if (subject) w.set('subject', subject);
    window = `<p><a href="${JOURNAL_PATH}/replay?${e(w.toString())}" data-window>Replay ${e(client)}'s calls in this window</a></p>`;
  }
  const columns = head.map((h) => `<th>${h}</th>`).join('');
  return `${verifyLine(verify)}${form}${window}<table class="calls" data-results="${result.calls.length}"><thead><tr>${columns}</tr></thead>
<tbody>${result.calls.map(resultRow).join('\n')}</tbody></table>${older}`;
}

function dl(rows: ReadonlyArray<readonly [string, string]>): string {
  return `<dl class="record">${rows.map(([k, v]) => `<dt>${e(k)}</dt><dd>${v}</dd>`).join('')}</dl>`;
}
const pre = (value: unknown): string => `<pre>${e(typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? 'null'))}</pre>`;

function eventItem(ev: CallEntry['events'][number]): string {
  const d = ev.data;
  const who = asObject(d.approver)?.subject;
  const parts = [ev.type, text(d.event), who ? `by ${text(who)}` : '', d.via ? `via ${text(d.via)}` : '', d.reason ? `— ${text(d.reason)}` : ''];
  return `<li data-event="${e(text(d.event))}">#${ev.seq} ${e(ev.time)}: ${e(parts.filter((p) => p !== '').join(' '))}</li>`;
}

/** What the call needed of its token and what it lacked (OIDC identities with scopes configured); — when nothing was checked. */
function scopesCell(scopes: Record<string, unknown> | undefined): string {
  if (!scopes) return '—';
  const list = (v: unknown) => (Array.isArray(v) ? v.map((s) => text(s)).join(' ') : '');
  const missing = list(scopes['missing']);
  return `needed ${e(list(scopes['needed']) || '(none)')}${missing ? `; missing ${e(missing)}` : ''}`;
}

/** One call's full record: intent, decision, approvals and grants, outcome, hashes, and the raw records. */
export function journalCallPage(c: CallEntry): string {
  const call = c.call;
  const principal = asObject(call.principal);
  const request = asObject(call.request);
  const session = typeof call.session === 'string' ? call.session : null;
  const o = c.outcome;
  const rows: Array<readonly [string, string]> = [
    ['Call', `<code>${e(c.callId)}</code> (record #${c.seq}, ${e(c.time)})`],
    ['Session', session ? `<a href="${sessionHref(session)}">${e(session)}</a> (replay)` : '—'],
    ['Subject', `${e(text(principal?.subject))} (${e(Array.isArray(principal?.groups) ? principal.groups.join(', ') : '—')})`],
    // A service's own token (client_credentials) or a person's; records from before principals were journaled say nothing.
    ['Principal', typeof principal?.principal === 'string' ? e(principal.principal) : '—'],
    ['Client', e(text(asObject(call.client)?.name))],
    ['Tool', e(text(call.tool))],
    ['Connection', e(text(call.connection))],
    // The hash of the config the call was decided under (records from before reloads existed have none).
    ['Config', typeof call.config === 'string' ? `<a href="${CONFIG_PATH}" data-config="${e(call.config)}"><code>${e(call.config)}</code></a>` : '—'],
    ['Input (as journaled)', pre(call.input)],
    ['Parsed', request ? pre(request) : '—'],
    ['Decision', decisionCell(call) + (asObject(call.decision)?.message ? `: ${e(text(asObject(call.decision)?.message))}` : '')],
    ['Scopes', scopesCell(asObject(call.scopes))],
    ['Cleared by', e(text(asObject(call.clearance)?.kind))],
    ['Approvals and grants', c.events.length ? `<ul>${c.events.map(eventItem).join('')}</ul>` : '—'],
    ['Outcome', o ? pre(o) : '<span class="muted">none (the gateway stopped before the call finished)</span>'],
    ['Hashes', `intent <code>${e(c.hash)}</code>${c.outcomeHash ? `, outcome <code>${e(c.outcomeHash)}</code>` : ''}`],
  ];
  return `<article class="record" data-record="${e(c.callId)}">${dl(rows)}</article>`;
}

function stepItem(s: ReplayStep): string {
  const decision = s.decision ? `${s.decision.effect}${s.decision.rule ? ` (${s.decision.rule})` : ''}` : 'no decision';
  const votes = s.approvals.flatMap((a) => a.votes.map((v) => `${v.decision} by ${v.subject ?? '?'}${v.via ? ` via ${v.via}` : ''}`));
  const o = s.outcome;
  const outcome = o
    ? [
        o.status ?? '?',
        o.rows !== null ? `${o.rows} row(s)` : null,
        o.affectedRows !== null ? `${o.affectedRows} affected` : null,
        o.errorCode,
        o.durationMs !== null ? `${o.durationMs} ms` : null,
      ]
        .filter((part) => part !== null)
        .join(', ')
    : 'no outcome';
  return `<li class="step" data-step="${e(s.callId)}" data-decision="${e(s.decision?.effect ?? 'none')}" data-outcome="${e(s.outcome?.status ?? 'none')}">
<p><time>${e(s.time)}</time> <a href="${callHref(s.callId)}">${e(s.tool ?? '?')} on ${e(s.connection ?? '?')}</a> by ${e(s.subject ?? '?')}</p>
<p class="summary">${e(s.summary ?? '(not parsed)')}</p>
<p>Decision: <strong>${e(decision)}</strong>${s.clearance ? `; cleared by ${e(s.clearance)}` : ''}${votes.length ? `; ${e(votes.join(', '))}` : ''}</p>
<p>Outcome: ${e(outcome)}; masked values: <span data-masked>${s.masked}</span></p></li>`;
}

/** An agent session's replay: totals, then every call in order. */
export function journalReplayPage(replay: SessionReplay): string {
  const t = replay.totals;
  const totals =
    `<p class="totals" data-calls="${t.calls}">${t.calls} call(s): ${t.decisions.allow} allowed, ${t.decisions.approve} needed approval, ` +
    `${t.decisions.deny} denied; outcomes ${t.outcomes.ok} ok, ${t.outcomes.refused} refused, ${t.outcomes.error} error, ${t.outcomes.none} none; ` +
    `${t.rows} row(s) returned, ${t.affectedRows} affected, ${t.masked} value(s) masked, ${t.votes} vote(s), ${t.durationMs} ms in calls.</p>`;
  return `${totals}<ol class="replay">${replay.steps.map(stepItem).join('\n')}</ol>`;
}

const short = (hash: string | null): string => (hash === null ? '—' : `<code title="${e(hash)}">${e(hash.slice(0, 12))}…</code>`);

function configRow(c: ConfigEvent): string {
  const who = c.via === 'admin' ? `POST /reload${c.operator ? ` by ${c.operator}` : ''}` : c.via === 'signal' ? 'SIGHUP' : (c.via ?? '—');
  const problems = c.problems.length ? `<ul>${c.problems.map((p) => `<li>${e(p)}</li>`).join('')}</ul>` : '—';
  return `<tr data-config-event="${e(c.event ?? '')}" data-result="${e(c.result ?? '')}"><td>${e(c.time)}</td><td>${c.seq}</td><td>${e(c.event ?? '—')}</td>
<td>${e(who)}</td><td>${e(c.result ?? '—')}${c.code ? ` <span class="muted">(${e(c.code)})</span>` : ''}</td>
<td>${short(c.hash)}</td><td>${short(c.previousHash)}</td>
<td>${short(c.attempted)}</td><td>${problems}</td></tr>`;
}

/** The config records, newest first: each start and reload attempt, the hash in effect, what was attempted, the problems of a refusal. */
export function journalConfigPage(events: readonly ConfigEvent[]): string {
  const intro =
    "<p>Every call's record names the hash of the config it was decided under (<em>Config</em>). " +
    'The hash is sha256 over the sha256sum manifest of tools/ and policies/ (README: Reload).</p>';
  if (events.length === 0) return `${intro}<p class="muted" data-results="0">No config records (a gateway before reloads were journaled).</p>`;
  const head = ['Time', 'Seq', 'Event', 'By', 'Result', 'In effect', 'Before', 'Attempted', 'Problems'].map((h) => `<th>${h}</th>`).join('');
  return `${intro}<table class="calls" data-results="${events.length}"><thead><tr>${head}</tr></thead>
<tbody>${events.map(configRow).join('\n')}</tbody></table>`;
}
