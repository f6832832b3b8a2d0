// Who may read the journal remotely, and a journal query as URL parameters: the
// approvals API (/api/v1/journal/…) and the console's journal pages accept the
// same parameters and refuse the same way. Parsing only: the search itself is
// search.ts, the rendering is the caller's.

import { DrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { ExportFilter } from './export.js';
import { MAX_LIMIT, OUTCOME_STATUSES, type OutcomeStatus, type SearchFilter } from './search.js';

/** The journal (export, search, one call, a replay, the verify status) is for journal.readers only. */
export function assertJournalReader(readers: readonly string[], who: Identity): void {
  if (readers.some((g) => who.groups.includes(g))) return;
  throw new DrawbridgeError(
    'journal.forbidden',
    readers.length === 0
      ? 'Nobody may read the journal remotely: journal.readers is empty.'
      : `Reading the journal is for members of ${readers.join(', ')}; ${who.subject} is in none of them.`,
    { hint: 'The operator allows it with journal: { readers: [GROUP, …] } in the gateway config (policies, kind: gateway).' },
  );
}

export const isJournalReader = (readers: readonly string[], who: Identity): boolean => readers.some((g) => who.groups.includes(g));

function dateParam(params: URLSearchParams, name: string): Date | undefined {
  const v = params.get(name);
  if (v === null || v === '') return undefined;
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new DrawbridgeError('input.invalid', `${name} must be an ISO date or time, e.g. 2026-11-21 or 2026-11-21T10:00:00Z.`);
  return d;
}

/** since, until, subject, tool, connection, decision, session, client: empty values mean "any". */
export function exportFilterOf(params: URLSearchParams): ExportFilter {
  const decision = params.get('decision') || undefined;
  if (decision !== undefined && decision !== 'allow' && decision !== 'deny' && decision !== 'approve') {
    throw new DrawbridgeError('input.invalid', 'decision must be allow, deny or approve.');
  }
  const since = dateParam(params, 'since');
  const until = dateParam(params, 'until');
  const filter: ExportFilter = {};
  if (since) filter.since = since;
  if (until) filter.until = until;
  if (decision) filter.decision = decision;
  for (const name of ['subject', 'tool', 'connection', 'session', 'client'] as const) {
    const v = params.get(name);
    if (v) filter[name] = v;
  }
  return filter;
}

function positiveInt(params: URLSearchParams, name: string, max: number): number | undefined {
  const v = params.get(name);
  if (v === null || v === '') return undefined;
  const n = /^[0-9]{1,15}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > max) throw new DrawbridgeError('input.invalid', `${name} must be an integer from 1 to ${max}.`);
  return n;
}

/** The export filter plus status, limit and before (the paging cursor). Throws DrawbridgeError('input.invalid') saying which parameter. */
export function searchFilterOf(params: URLSearchParams): SearchFilter {
  const status = params.get('status') || undefined;
  if (status !== undefined && !OUTCOME_STATUSES.includes(status as OutcomeStatus)) {
    throw new DrawbridgeError('input.invalid', `status must be ${OUTCOME_STATUSES.join(', ')}.`);
  }
  const limit = positiveInt(params, 'limit', MAX_LIMIT);
  const before = positiveInt(params, 'before', Number.MAX_SAFE_INTEGER);
  const filter: SearchFilter = exportFilterOf(params);
  if (status) filter.status = status as OutcomeStatus;
  if (limit !== undefined) filter.limit = limit;
  if (before !== undefined) filter.before = before;
  return filter;
}
