// The approvals API under /api/v1/ on the `serve --http` listener: what the CLI's
// --gateway (and any other remote approver tool) uses to list, show and decide
// approval requests, list and revoke grants, and export the journal. Every
// request carries a bearer token from the gateway's OpenID provider, verified
// exactly as MCP requests are (auth.ts: issuer, audience = this gateway's
// resource, signature, expiry, scopes); the approver's groups come from it.
// Decisions go through approval/decide.ts, so they are journaled exactly as the
// CLI's, and the store's change notice releases a waiting call at once.
// Every refusal is JSON {error: {code, message, hint}} with a catalog code.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApproverIdentity } from '../approval/approver.js';
import { decideApproval, journalRevocation, revokeGrant } from '../approval/decide.js';
import { revokeMessage, voteMessage } from '../approval/format.js';
import { durationSchema } from '../config/units.js';
import { DrawbridgeError, isDrawbridgeError, type ErrorCode } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { readStoreCalls, renderLines } from '../journal/export.js';
import { assertJournalReader, exportFilterOf, searchFilterOf } from '../journal/query.js';
import { callRecord, searchCalls, sessionReplay } from '../journal/search.js';
import type { Gateway } from '../pipeline/gateway.js';
import type { StoredApproval, StoredGrant } from '../state/contract.js';
import { authenticate, type AuthContext } from './auth.js';
import { readJsonBody } from './body.js';
import { sendJson } from './reply.js';

export const API_PREFIX = '/api/v1/';

export interface ApiSite {
  readonly gateway: Gateway;
  readonly auth: AuthContext;
  readonly maxBodyBytes: number;
  /** The clock decisions and expiry are judged by. */
  readonly now: () => Date;
}

/** HTTP status of each refusal the API answers with; anything unlisted is a 500 'internal'. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  'input.invalid': 400,
  'approval.not_found': 404,
  'grant.not_found': 404,
  'approval.forbidden': 403,
  'journal.forbidden': 403,
  'approval.duplicate_vote': 409,
  'approval.not_pending': 409,
  'approval.not_approved': 409,
  'approval.store_unavailable': 503,
  'journal.unavailable': 503,
  'identity.unavailable': 503,
};

function sendError(res: ServerResponse, error: unknown, headers: Readonly<Record<string, string>> = {}): void {
  // Never a stack trace or an internal message: a non-catalog failure is 'internal'.
  const e = isDrawbridgeError(error) ? error : new DrawbridgeError('internal', 'The request failed because of an internal gateway error.');
  const declared = e.details['httpStatus'];
  const status = typeof declared === 'number' ? declared : (STATUS[e.code] ?? 500);
  sendJson(res, status, { error: { code: e.code, message: e.message, hint: e.hint } }, headers);
}

const approverOf = (identity: Identity): ApproverIdentity => Object.freeze({ subject: identity.subject, groups: identity.groups, kind: 'oidc' as const });

const isRequester = (a: StoredApproval, who: Identity): boolean => a.subject.requester.subject === who.subject && a.subject.requester.issuer === who.issuer;

/** May `who` vote on `a` by the rule (the store checks again when they do): the requester only if the rule allows it. */
function mayDecide(a: StoredApproval, who: Identity): boolean {
  if (isRequester(a, who)) return a.subject.allowRequester;
  return a.subject.approverGroups.some((g) => who.groups.includes(g));
}

/** What a caller may see: the requests they may decide, and their own. */
const visible = (a: StoredApproval, who: Identity): boolean => mayDecide(a, who) || isRequester(a, who);

/** The approval as the API shows it, with whether the caller may vote on it now. */
function approvalView(a: StoredApproval, who: Identity): Record<string, unknown> {
  const voted = a.votes.some((v) => v.approver.subject === who.subject);
  return { ...a, canDecide: a.status === 'pending' && mayDecide(a, who) && !voted };
}

function notFound(id: string): DrawbridgeError {
  return new DrawbridgeError('approval.not_found', `No approval request ${JSON.stringify(id)} that you may see.`);
}

/** The server's Host/Origin refusal (hosts.ts), in the API's shape. */
export function sendHostRefusal(res: ServerResponse, message: string): void {
  sendJson(res, 403, { error: { code: 'input.invalid', message, hint: "Call the API at the gateway's own address, not through another origin." } });
}

/** Handles one request under /api/v1/ (Host and Origin already checked by the server). */
export async function serveApi(site: ApiSite, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const auth = await authenticate(req, url, site.auth);
  if (!auth.ok) {
    const { refusal } = auth;
    const hint = new DrawbridgeError(refusal.code, refusal.message).hint;
    sendJson(res, refusal.status, { error: { code: refusal.code, message: refusal.message, hint } }, refusal.headers);
    return;
  }
  const who = auth.verified.identity;
  try {
    await route(site, req, res, url, who);
  } catch (error) {
    sendError(res, error);
  }
}

type Handler = (site: ApiSite, req: IncomingMessage, res: ServerResponse, url: URL, who: Identity, id: string) => Promise<void>;

const ROUTES: ReadonlyArray<{ readonly method: 'GET' | 'POST'; readonly pattern: RegExp; readonly handler: Handler }> = [
  { method: 'GET', pattern: /^approvals$/, handler: listApprovals },
  { method: 'GET', pattern: /^approvals\/([^/]+)$/, handler: showApproval },
  { method: 'POST', pattern: /^approvals\/([^/]+)\/approve$/, handler: (s, q, r, _u, w, id) => decide(s, q, r, w, id, 'approve') },
  { method: 'POST', pattern: /^approvals\/([^/]+)\/deny$/, handler: (s, q, r, _u, w, id) => decide(s, q, r, w, id, 'deny') },
  { method: 'GET', pattern: /^grants$/, handler: listGrants },
  { method: 'POST', pattern: /^grants\/([^/]+)\/revoke$/, handler: revoke },
  { method: 'GET', pattern: /^journal\/export$/, handler: exportJournal },
  { method: 'GET', pattern: /^journal\/calls$/, handler: journalCalls },
  { method: 'GET', pattern: /^journal\/calls\/([^/]+)$/, handler: journalCall },
  { method: 'GET', pattern: /^journal\/sessions\/([^/]+)$/, handler: journalSession },
];

async function route(site: ApiSite, req: IncomingMessage, res: ServerResponse, url: URL, who: Identity): Promise<void> {
  const rest = url.pathname.slice(API_PREFIX.length);
  const matching = ROUTES.filter((r) => r.pattern.test(rest));
  if (matching.length === 0) {
    sendJson(res, 404, { error: { code: 'input.invalid', message: `No API endpoint ${url.pathname}.`, hint: 'See the README, section Approving.' } });
    return;
  }
  const found = matching.find((r) => r.method === req.method);
  if (!found) {
    const allow = matching.map((r) => r.method).join(', ');
    sendJson(
      res,
      405,
      { error: { code: 'input.invalid', message: `Method ${req.method ?? ''} is not allowed here.`, hint: `Use ${allow}.` } },
      { Allow: allow },
    );
    return;
  }
  const id = decodeURIComponent(found.pattern.exec(rest)?.[1] ?? '');
  await found.handler(site, req, res, url, who, id);
}

async function listApprovals(site: ApiSite, _req: IncomingMessage, res: ServerResponse, url: URL, who: Identity): Promise<void> {
  const status = url.searchParams.get('status') ?? 'pending';
  if (status !== 'pending' && status !== 'all') throw new DrawbridgeError('input.invalid', 'status must be pending or all.');
  const now = site.now();
  const approvals = await site.gateway.state.approvals.list(now, status === 'all' ? {} : { status: 'pending' });
  sendJson(res, 200, { approvals: approvals.filter((a) => visible(a, who)).map((a) => approvalView(a, who)) });
}

async function showApproval(site: ApiSite, _req: IncomingMessage, res: ServerResponse, _url: URL, who: Identity, id: string): Promise<void> {
  const approval = await site.gateway.state.approvals.get(id, site.now());
  if (!approval || !visible(approval, who)) throw notFound(id);
  sendJson(res, 200, { approval: approvalView(approval, who) });
}

/** The JSON body of a POST as an object of optional strings; anything else is input.invalid. */
async function stringFields(req: IncomingMessage, limit: number, names: readonly string[]): Promise<Record<string, string | undefined>> {
  const declared = req.headers['content-length'];
  if (declared === '0') return {};
  const read = await readJsonBody(req, limit);
  if (!read.ok) {
    if (read.status === 413) throw new DrawbridgeError('input.invalid', read.message, { details: { httpStatus: 413 } });
    throw new DrawbridgeError('input.invalid', 'The request body is not JSON.');
  }
  if (read.value === null || typeof read.value !== 'object' || Array.isArray(read.value)) {
    throw new DrawbridgeError('input.invalid', 'The request body must be a JSON object.');
  }
  const body = read.value as Record<string, unknown>;
  const out: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries(body)) {
    if (!names.includes(key)) throw new DrawbridgeError('input.invalid', `Unknown field ${JSON.stringify(key)}; expected ${names.join(', ')}.`);
    if (value !== undefined && value !== null && typeof value !== 'string') throw new DrawbridgeError('input.invalid', `${key} must be a string.`);
    out[key] = value ?? undefined;
  }
  return out;
}

function grantMsOf(value: string | undefined): number {
  if (value === undefined || value === 'none' || value === '0') return 0;
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success || parsed.data <= 0) throw new DrawbridgeError('input.invalid', 'grant must be a duration such as 15m or 1h, or none.');
  return parsed.data;
}

async function decide(site: ApiSite, req: IncomingMessage, res: ServerResponse, who: Identity, id: string, decision: 'approve' | 'deny'): Promise<void> {
  const body = await stringFields(req, site.maxBodyBytes, decision === 'approve' ? ['grant', 'reason'] : ['reason']);
  const reason = body['reason']?.trim() || undefined;
  if (decision === 'deny' && reason === undefined)
    throw new DrawbridgeError('input.invalid', 'A denial needs a reason the requester will see: {"reason": "…"}.');
  const grantMs = decision === 'approve' ? grantMsOf(body['grant']) : 0;
  const now = site.now();
  const state = site.gateway.state;
  // Someone who may not even see the request is told it does not exist, not why they may not vote.
  const before = await state.approvals.get(id, now);
  if (!before || !visible(before, who)) throw notFound(id);
  // An approval is a person's decision: a service's own client-credentials token never votes, whatever its groups.
  if (who.principal === 'service') {
    throw new DrawbridgeError(
      'approval.forbidden',
      `${who.subject} is a service (a client_credentials token): approving or denying is for a person. Nothing was recorded.`,
      { hint: 'Sign in as yourself: drawbridge token --gateway URL (the device flow), then vote with that token.' },
    );
  }
  const approver = approverOf(who);
  const result = await decideApproval(
    state,
    approver,
    { approvalId: id, decision, via: 'api', ...(reason !== undefined ? { reason } : {}), ...(grantMs > 0 ? { grantMs } : {}) },
    now,
    site.gateway.notifier?.notify,
  );
  if (!result.ok) {
    if (result.orphan !== null) {
      throw new DrawbridgeError(
        'approval.store_unavailable',
        `Journal record #${result.orphan.seq} says ${decision} on ${id}, but the approvals store did not keep the vote; the request is unchanged.`,
        { hint: 'Tell the operator, then vote again.' },
      );
    }
    throw result.error;
  }
  sendJson(res, 200, {
    approval: approvalView(result.approval, who),
    journalSeq: result.record?.seq ?? null,
    message: voteMessage(result.approval, decision, approver, result.record),
  });
}

/** Grants a caller may see: their own, and those from requests they may decide. */
async function grantVisible(site: ApiSite, g: StoredGrant, who: Identity, now: Date): Promise<boolean> {
  if (g.subject === who.subject && g.issuer === who.issuer) return true;
  const approval = await site.gateway.state.approvals.get(g.approvalId, now);
  return approval !== undefined && mayDecide(approval, who);
}

async function listGrants(site: ApiSite, _req: IncomingMessage, res: ServerResponse, url: URL, who: Identity): Promise<void> {
  const all = url.searchParams.has('all') && url.searchParams.get('all') !== 'false';
  const now = site.now();
  const grants = await site.gateway.state.approvals.listGrants(now, all ? {} : { active: true });
  const shown: StoredGrant[] = [];
  for (const g of grants) if (await grantVisible(site, g, who, now)) shown.push(g);
  sendJson(res, 200, { grants: shown });
}

/** Revoking reduces access: it does not wait on the journal (see decide.ts); a journal failure after it is said, not hidden. */
async function revoke(site: ApiSite, _req: IncomingMessage, res: ServerResponse, _url: URL, who: Identity, id: string): Promise<void> {
  const now = site.now();
  const state = site.gateway.state;
  const current = (await state.approvals.listGrants(now, { active: true })).find((g) => g.id === id);
  if (!current || !(await grantVisible(site, current, who, now))) {
    throw new DrawbridgeError('grant.not_found', `No active grant ${JSON.stringify(id)} that you may revoke.`);
  }
  const approver = approverOf(who);
  const revocation = await revokeGrant(state.approvals, approver, id, now);
  const message = revokeMessage(revocation.grant, approver);
  try {
    const record = await journalRevocation(state, approver, revocation, now);
    sendJson(res, 200, { grant: revocation.grant, journalSeq: record.seq, message });
  } catch (error) {
    const why = isDrawbridgeError(error) ? error.message : 'the journal is unavailable';
    sendJson(res, 500, {
      error: {
        code: 'journal.unavailable',
        message: `Grant ${revocation.grant.id} IS revoked, but the revocation could not be journaled (${why}).`,
        hint: 'Tell the operator.',
      },
      grant: revocation.grant,
      message,
    });
  }
}

/** GET journal/calls?since&until&subject&tool&connection&decision&session&client&status&limit&before: newest first, `next` pages on. */
async function journalCalls(site: ApiSite, _req: IncomingMessage, res: ServerResponse, url: URL, who: Identity): Promise<void> {
  assertJournalReader(site.gateway.config.journal.readers, who);
  const page = await searchCalls(site.gateway.state.journal, searchFilterOf(url.searchParams));
  sendJson(res, 200, page, { 'Cache-Control': 'no-store' });
}

async function journalCall(site: ApiSite, _req: IncomingMessage, res: ServerResponse, _url: URL, who: Identity, id: string): Promise<void> {
  assertJournalReader(site.gateway.config.journal.readers, who);
  const entry = await callRecord(site.gateway.state.journal, id);
  if (!entry) throw new DrawbridgeError('input.invalid', `No call ${JSON.stringify(id)} in the journal.`, { details: { httpStatus: 404 } });
  sendJson(res, 200, { call: entry }, { 'Cache-Control': 'no-store' });
}

async function journalSession(site: ApiSite, _req: IncomingMessage, res: ServerResponse, _url: URL, who: Identity, id: string): Promise<void> {
  assertJournalReader(site.gateway.config.journal.readers, who);
  const replay = await sessionReplay(site.gateway.state.journal, { session: id });
  if (replay.steps.length === 0) {
    throw new DrawbridgeError('input.invalid', `No calls of session ${JSON.stringify(id)} in the journal.`, { details: { httpStatus: 404 } });
  }
  sendJson(res, 200, { session: id, ...replay }, { 'Cache-Control': 'no-store' });
}

async function exportJournal(site: ApiSite, _req: IncomingMessage, res: ServerResponse, url: URL, who: Identity): Promise<void> {
  assertJournalReader(site.gateway.config.journal.readers, who);
  const format = url.searchParams.get('format') ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw new DrawbridgeError('input.invalid', 'format must be jsonl or csv.');
  const entries = await readStoreCalls(site.gateway.state.journal, 'the gateway journal', exportFilterOf(url.searchParams));
  const text = [...renderLines(entries, format)].map((l) => `${l}\n`).join('');
  res.writeHead(200, {
    'Content-Type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}
