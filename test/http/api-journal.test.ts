// The journal over the approvals API (GET /api/v1/journal/calls, calls/{id}, sessions/{session})
// against a real serveHttp, the test OpenID provider and a real PostgreSQL shop database. alice
// opens two MCP sessions over Streamable HTTP: each session's calls carry its own Mcp-Session-Id
// in the journal. Her write waits for a DBA; dana votes over the API; audrey (journal.readers)
// searches, reads the call with the vote, and replays each session. Values returned are exactly
// the journaled ones; everyone else is refused journal.forbidden.

import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalls } from '../../src/journal/export.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';

const ACCOUNTS = {
  alice: { groups: ['analysts'] },
  dana: { groups: ['dba'] },
  audrey: { groups: ['auditors'] },
};

const POLICY = `kind: policy
rules:
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts], tables: [public.orders] }
    effect: approve
    approvers: { groups: [dba] }
    message: Writes to the shop database need a DBA's approval.
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

let h: HttpHarness<keyof typeof ACCOUNTS>;
let base: string;
let dir: string;

beforeAll(async () => {
  h = await startHttpGateway({
    prefix: 'apijournal',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db, pending_ttl: 1h }',
    journalReaders: ['auditors'],
  });
  base = `${h.origin}/api/v1`;
  dir = h.dir;
}, 60_000);

afterAll(async () => {
  await h?.close();
});

async function api(path: string, account: keyof typeof ACCOUNTS, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${await h.token(account)}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // JSON lines (the export) are read from `text`.
  }
  return { status: res.status, text, json };
}

/** One MCP session of alice's over Streamable HTTP. */
const aliceSession = (name: string) => h.mcpSession('alice', name);

const sql = async (client: Client, text: string): Promise<CallToolResult> =>
  (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: text } })) as CallToolResult;

describe('the journal over the API, and agent sessions over Streamable HTTP', () => {
  let one: string;
  let two: string;
  let writeCallId: string;

  beforeAll(async () => {
    const first = await aliceSession('agent-one');
    const second = await aliceSession('agent-two');
    try {
      one = first.transport.sessionId as string;
      two = second.transport.sessionId as string;
      expect((await sql(first.client, 'SELECT 1 AS a')).isError).toBeFalsy();
      expect((await sql(second.client, 'SELECT 2 AS b')).isError).toBeFalsy();
      const write = await sql(first.client, "UPDATE orders SET note = 'api-journal' WHERE id = 1");
      expect(write.isError).toBe(true);
      const approval = (write.structuredContent as { approval?: { id?: string } } | undefined)?.approval;
      expect(typeof approval?.id).toBe('string');
      writeCallId = (write.structuredContent as { callId: string }).callId;
      const vote = await api(`/approvals/${approval?.id}/approve`, 'dana', { reason: 'checked' });
      expect(vote.status, vote.text).toBe(200);
      expect((await sql(first.client, 'SELECT 3 AS c')).isError).toBeFalsy();
    } finally {
      await first.client.close();
      await second.client.close();
    }
  }, 60_000);

  it("journals each HTTP session's Mcp-Session-Id with its calls", () => {
    expect(one).toMatch(/^[0-9a-f-]{36}$/);
    expect(two).toMatch(/^[0-9a-f-]{36}$/);
    expect(one).not.toBe(two);
    const calls = [...readCalls(join(dir, 'journal.db'))];
    expect(calls.map((c) => [c.call['session'], (c.call['client'] as { name: string }).name])).toEqual([
      [one, 'agent-one'],
      [two, 'agent-two'],
      [one, 'agent-one'],
      [one, 'agent-one'],
    ]);
  });

  it('is for journal.readers only', async () => {
    for (const path of ['/journal/calls', `/journal/calls/${writeCallId}`, `/journal/sessions/${one}`]) {
      const refused = await api(path, 'dana');
      expect(refused.status, refused.text).toBe(403);
      expect(refused.json.error.code).toBe('journal.forbidden');
    }
  });

  it('searches newest first with filters and pages with next, returning the journaled entries as they are', async () => {
    const journaled = [...readCalls(join(dir, 'journal.db'))];
    const all = await api('/journal/calls', 'audrey');
    expect(all.status, all.text).toBe(200);
    expect(all.json).toEqual({ calls: JSON.parse(JSON.stringify([...journaled].reverse())), next: null });
    const page = await api('/journal/calls?limit=1&subject=alice&decision=allow', 'audrey');
    expect(page.json.calls.map((c: any) => c.call.input.sql)).toEqual(['SELECT 3 AS c']);
    const nextPage = await api(`/journal/calls?limit=1&subject=alice&decision=allow&before=${page.json.next}`, 'audrey');
    expect(nextPage.json.calls.map((c: any) => c.call.input.sql)).toEqual(['SELECT 2 AS b']);
    const refused = await api('/journal/calls?status=refused', 'audrey');
    expect(refused.json.calls.map((c: any) => c.callId)).toEqual([writeCallId]);
    const bySession = await api(`/journal/calls?session=${two}`, 'audrey');
    expect(bySession.json.calls.map((c: any) => c.call.input.sql)).toEqual(['SELECT 2 AS b']);
    const exported = await api(`/journal/export?format=jsonl&session=${two}`, 'audrey');
    expect(
      exported.text
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { call: { session: string } }).call.session),
    ).toEqual([two]);
    for (const bad of ['status=maybe', 'limit=0', 'limit=501', 'before=x', 'decision=perhaps', 'since=yesterday']) {
      const r = await api(`/journal/calls?${bad}`, 'audrey');
      expect(r.status, bad).toBe(400);
      expect(r.json.error.code).toBe('input.invalid');
    }
  });

  it("shows one call's record with the DBA's vote, and 404 for a call the journal does not hold", async () => {
    const r = await api(`/journal/calls/${writeCallId}`, 'audrey');
    expect(r.status, r.text).toBe(200);
    const journaled = [...readCalls(join(dir, 'journal.db'))].find((c) => c.callId === writeCallId);
    expect(r.json.call).toEqual(JSON.parse(JSON.stringify(journaled)));
    expect(r.json.call.events.map((e: any) => e.data.event)).toEqual(['requested', 'vote']);
    expect(r.json.call.events[1].data).toMatchObject({ decision: 'approve', via: 'api', reason: 'checked', approver: { subject: 'dana' } });
    const missing = await api('/journal/calls/no-such-call', 'audrey');
    expect(missing.status).toBe(404);
    expect(missing.json.error.code).toBe('input.invalid');
  });

  it("replays a session's calls in order with the approval's votes and totals", async () => {
    const r = await api(`/journal/sessions/${one}`, 'audrey');
    expect(r.status, r.text).toBe(200);
    expect(r.json.session).toBe(one);
    expect(r.json.steps.map((s: any) => [s.decision?.effect, s.outcome?.status])).toEqual([
      ['allow', 'ok'],
      ['approve', 'refused'],
      ['allow', 'ok'],
    ]);
    expect(r.json.steps[1].approvals).toHaveLength(1);
    expect(r.json.steps[1].approvals[0].votes).toEqual([expect.objectContaining({ subject: 'dana', decision: 'approve', via: 'api', reason: 'checked' })]);
    expect(r.json.totals).toMatchObject({ calls: 3, votes: 1, rows: 2, decisions: { allow: 2, approve: 1 }, outcomes: { ok: 2, refused: 1 } });
    const other = await api(`/journal/sessions/${two}`, 'audrey');
    expect(other.json.steps).toHaveLength(1);
    const unknown = await api('/journal/sessions/no-such-session', 'audrey');
    expect(unknown.status).toBe(404);
  });
});
