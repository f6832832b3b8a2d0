// The console's journal HTML (src/console/journal-pages.ts), pure: results, one call's record,
// a replay and the verify line show what the journal holds, every value escaped, the links
// (call, session replay, older page, a client's window) built from the query.

import { describe, expect, it } from 'vitest';
import { CONFIG_PATH, journalCallPage, journalConfigPage, journalReplayPage, journalSearchPage, verifyLine } from '../../src/console/journal-pages.js';
import type { CallEntry } from '../../src/journal/export.js';
import type { ConfigEvent, SessionReplay, VerifyStatus } from '../../src/journal/search.js';

const EVIL = '<script>alert(1)</script>';

function entry(over: Partial<CallEntry> = {}): CallEntry {
  return {
    callId: 'c-1',
    seq: 7,
    time: '2026-12-05T09:00:00.000Z',
    call: {
      principal: { subject: 'alice', groups: ['analysts'], kind: 'oidc', issuer: 'http://127.0.0.1:1/idp' },
      client: { name: `agent ${EVIL}` },
      session: 'sess/1 ?',
      tool: 'run_sql',
      connection: 'db',
      input: { connection: 'db', sql: `UPDATE orders SET note = '${EVIL}'` },
      request: { operation: 'update', access: 'write', resources: ['public.orders'], summary: `UPDATE public.orders ${EVIL}`, reasons: [] },
      decision: { effect: 'approve', rule: 'writes-need-approval', message: 'A DBA approves.' },
      clearance: { kind: 'approval', approvalId: 'a-1' },
    },
    outcome: { status: 'ok', rows: 0, affectedRows: 1, durationMs: 4, masked: [{ target: 'email', by: 'rule', count: 2 }] },
    hash: 'h'.repeat(64),
    outcomeHash: 'o'.repeat(64),
    events: [
      {
        seq: 8,
        time: '2026-12-05T09:00:01.000Z',
        type: 'approval',
        data: { event: 'vote', decision: 'approve', approver: { subject: 'dana' }, via: 'console', approvalId: 'a-1' },
      },
    ],
    ...over,
  };
}

const OK: VerifyStatus = { ok: true, records: 9, head: 'ab'.repeat(32), firstBad: null, checkpoints: null, badCheckpoint: null, text: '9 records verify.' };

describe('verifyLine', () => {
  it.each([
    [OK, 'data-verify="ok"', 'The journal verifies.'],
    [
      { ...OK, ok: false, firstBad: { seq: 3, reason: 'hash mismatch' }, text: 'The chain breaks at record 3: hash mismatch.' },
      'data-verify="bad"',
      'does NOT verify',
    ],
    [{ error: `disk ${EVIL}` }, 'data-verify="unknown"', 'Verify status unavailable: disk &lt;script&gt;'],
  ])('%#', (verdict, marker, words) => {
    const html = verifyLine(verdict);
    expect(html).toContain(marker);
    expect(html).toContain(words);
    expect(html).not.toContain('<script>');
  });
});

describe('journalSearchPage', () => {
  it('lists calls with links to the record and the session replay, escaped, and links the older page with the same query', () => {
    const params = new URLSearchParams({ subject: `alice${EVIL}`, decision: 'approve' });
    const html = journalSearchPage(params, OK, { calls: [entry()], next: 7 });
    expect(html).toContain('href="/console/journal/calls/c-1"');
    expect(html).toContain('href="/console/journal/sessions/sess%2F1%20%3F"');
    expect(html).toContain('data-results="1"');
    expect(html).toContain('approve <span class="muted">(writes-need-approval)</span>');
    expect(html).toContain('<td>2</td>'); // masked values
    expect(html).toContain('<option value="approve" selected>');
    expect(html).toMatch(/data-older/);
    expect(html).toContain('before=7');
    expect(html).not.toContain('<script>');
    expect(html).toContain('alice&lt;script&gt;');
  });

  it('says when nothing matches, shows a query error in the page, and offers a client window replay', () => {
    expect(journalSearchPage(new URLSearchParams(), OK, { calls: [], next: null })).toContain('No calls match.');
    expect(journalSearchPage(new URLSearchParams('limit=0'), OK, { error: 'limit must be an integer from 1 to 500.' })).toContain('data-notice="error"');
    const w = journalSearchPage(new URLSearchParams({ client: 'claude', since: '2026-12-05T08:00Z', until: '2026-12-05T10:00Z' }), OK, {
      calls: [entry()],
      next: null,
    });
    expect(w).toContain('href="/console/journal/replay?client=claude&amp;since=2026-12-05T08%3A00Z&amp;until=2026-12-05T10%3A00Z"');
    expect(w).not.toMatch(/data-older/);
  });
});

describe('journalCallPage', () => {
  it('shows the intent, the parse, the decision, the votes, the outcome and the hashes, escaped', () => {
    const html = journalCallPage(entry());
    for (const part of [
      'c-1',
      'record #7',
      'alice (analysts)',
      'run_sql',
      'writes-need-approval',
      'A DBA approves.',
      'vote by dana via console',
      'h'.repeat(64),
      'o'.repeat(64),
    ]) {
      expect(html).toContain(part);
    }
    expect(html).toContain('&quot;affectedRows&quot;: 1');
    expect(html).not.toContain('<script>');
  });

  it('says a call has no outcome when the gateway stopped mid-call, and a fault has no decision', () => {
    const html = journalCallPage(
      entry({ outcome: null, outcomeHash: null, call: { ...entry().call, decision: null, error: { code: 'backend.unavailable' } } }),
    );
    expect(html).toContain('none (the gateway stopped before the call finished)');
    expect(html).toContain('<dt>Decision</dt><dd>fault</dd>');
  });

  it("shows the principal (a service's token or a person's) and the scopes the call needed and lacked", () => {
    const call = entry().call;
    const service = journalCallPage(
      entry({
        call: {
          ...call,
          principal: { ...(call['principal'] as object), subject: 'agent-svc', principal: 'service' },
          scopes: { needed: ['mcp', 'sql:write'], missing: ['sql:write'] },
        },
      }),
    );
    expect(service).toContain('<dt>Principal</dt><dd>service</dd>');
    expect(service).toContain('<dt>Scopes</dt><dd>needed mcp sql:write; missing sql:write</dd>');
    // A record without them (older, or a local identity) says nothing.
    const plain = journalCallPage(entry());
    expect(plain).toContain('<dt>Principal</dt><dd>—</dd>');
    expect(plain).toContain('<dt>Scopes</dt><dd>—</dd>');
  });
});

describe('journalReplayPage', () => {
  it('shows the totals and each step in order with its decision, votes, outcome and masking', () => {
    const replay: SessionReplay = {
      steps: [
        {
          seq: 1,
          time: 't1',
          callId: 'c-0',
          session: 's',
          subject: 'alice',
          client: 'agent',
          tool: 'run_sql',
          connection: 'db',
          summary: 'SELECT 1',
          decision: { effect: 'allow', rule: 'read', message: null },
          clearance: null,
          approvals: [],
          grants: [],
          outcome: { status: 'ok', rows: 1, affectedRows: null, errorCode: null, durationMs: 2 },
          masked: 0,
          maskedBy: [],
        },
        {
          seq: 7,
          time: 't2',
          callId: 'c-1',
          session: 's',
          subject: 'alice',
          client: 'agent',
          tool: 'run_sql',
          connection: 'db',
          summary: `UPDATE ${EVIL}`,
          decision: { effect: 'approve', rule: 'writes', message: null },
          clearance: 'approval',
          approvals: [{ approvalId: 'a-1', via: 'console', votes: [{ subject: 'dana', decision: 'approve', via: 'console', time: 't', reason: null }] }],
          grants: [],
          outcome: { status: 'ok', rows: 0, affectedRows: 1, errorCode: null, durationMs: 4 },
          masked: 2,
          maskedBy: [],
        },
      ],
      totals: {
        calls: 2,
        decisions: { allow: 1, deny: 0, approve: 1, none: 0 },
        outcomes: { ok: 2, refused: 0, error: 0, none: 0 },
        rows: 1,
        affectedRows: 1,
        masked: 2,
        votes: 1,
        durationMs: 6,
      },
    };
    const html = journalReplayPage(replay);
    expect(html).toContain('data-calls="2"');
    expect(html).toContain('1 allowed, 1 needed approval, 0 denied');
    expect(html.indexOf('data-step="c-0"')).toBeLessThan(html.indexOf('data-step="c-1"'));
    expect(html).toContain('cleared by approval; approve by dana via console');
    expect(html).toContain('ok, 0 row(s), 1 affected, 4 ms');
    expect(html).toContain('<span data-masked>2</span>');
    expect(html).not.toContain('<script>');
  });
});

describe('journalConfigPage', () => {
  const config = (over: Partial<ConfigEvent>): ConfigEvent => ({
    seq: 1,
    time: '2026-12-05T09:00:00.000Z',
    event: 'start',
    result: 'applied',
    hash: 'a'.repeat(64),
    previousHash: null,
    attempted: 'a'.repeat(64),
    code: null,
    problems: [],
    via: 'start',
    operator: null,
    ...over,
  });

  it('lists starts and reload attempts with who asked, the hashes and the problems of a refusal, escaped', () => {
    const html = journalConfigPage([
      config({
        seq: 9,
        event: 'reload',
        result: 'refused',
        code: 'config.invalid',
        hash: 'b'.repeat(64),
        previousHash: 'b'.repeat(64),
        attempted: 'c'.repeat(64),
        problems: [`rules.yaml:3: ${EVIL}`],
        via: 'signal',
      }),
      config({ seq: 5, event: 'reload', hash: 'b'.repeat(64), previousHash: 'a'.repeat(64), attempted: 'b'.repeat(64), via: 'admin', operator: 'sam' }),
      config({}),
    ]);
    expect(html).toContain('data-results="3"');
    expect(html).toMatch(/data-config-event="reload" data-result="refused">.*SIGHUP.*config\.invalid/s);
    expect(html).toContain('POST /reload by sam');
    expect(html).toContain(`<code title="${'c'.repeat(64)}">cccccccccccc…</code>`);
    expect(html).toContain('rules.yaml:3: &lt;script&gt;');
    expect(html).not.toContain('<script>');
    expect(journalConfigPage([])).toContain('data-results="0"');
  });

  it("a call's record names the config it was decided under, linked to the config page; the search page links there too", () => {
    const html = journalCallPage(entry({ call: { ...entry().call, config: 'd'.repeat(64) } }));
    expect(html).toContain(`<a href="${CONFIG_PATH}" data-config="${'d'.repeat(64)}">`);
    expect(journalCallPage(entry())).toMatch(/<dt>Config<\/dt><dd>—<\/dd>/);
    expect(journalSearchPage(new URLSearchParams(), OK, { calls: [], next: null })).toContain(`href="${CONFIG_PATH}" data-config-link`);
  });
});
