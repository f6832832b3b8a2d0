// /metrics after real calls through the pipeline (the test OpenID provider, a real PostgreSQL
// database): the calls counter moves by exactly the calls made, by decision and status; histogram
// counts match; an undeclared tool is "other"; no SQL text or subject in the output. Served on the
// admin listener always, and on the `serve --http` listener only with admin.metrics_on_main.
// With the state on PostgreSQL: masking by rule and detector, approvals pending and decided
// (approved, denied, expired), grants active, journal appends by record type, the backend pool,
// backend faults and HTTP sessions each move as the calls, votes and sessions say; every label is a
// declared name or from a fixed list; a state store that does not answer (a table lock) leaves the
// scrape quick, without the state's gauges and with drawbridge_state_counts_up 0.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DETECTOR_NAMES } from '../../src/masking/detectors.js';
import { serveAdmin, type AdminListener } from '../../src/http/health.js';
import { callTool } from '../../src/pipeline/callTool.js';
import type { CallEnd } from '../../src/pipeline/call-end.js';
import type { ElicitAnswer } from '../../src/approval/approver.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { READ_ONLY_POLICY } from '../support/fixtures.js';

const ACCOUNTS = { alice: { groups: ['analysts'] } };

const POLICY = READ_ONLY_POLICY;

/** Samples of Prometheus text: `name{labels} value` lines, comments left out. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and (at least) these labels; 0 when absent. */
function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(found.length).toBeLessThanOrEqual(1);
  return found[0]?.value ?? 0;
}

async function scrape(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`${url}/metrics`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

describe('metrics on the admin listener, not on the main one by default', () => {
  let h: HttpHarness<keyof typeof ACCOUNTS>;
  let admin: AdminListener;

  beforeAll(async () => {
    h = await startHttpGateway({ prefix: 'metrics', accounts: ACCOUNTS, policy: POLICY, approval: '{ wait: 0ms, store: approvals.db }', metrics: true });
    if (h.metrics === null) throw new TypeError('the harness made no metrics');
    admin = await serveAdmin(h.http.health, { host: '127.0.0.1', port: 0 }, h.metrics);
  }, 60_000);

  afterAll(async () => {
    await admin?.close();
    await h?.close();
  });

  it('counts exactly the calls made, by decision and status, with matching histograms and bounded labels', async () => {
    const before = parse((await scrape(admin.url)).body);
    const allowed = await h.call('alice', 'SELECT 4242 AS secret_marker');
    expect(allowed.ok).toBe(true);
    const denied = await h.call('alice', 'CREATE TABLE metrics_marker_table (x int)');
    expect(denied.ok).toBe(false);
    const unknown = await callTool(h.gateway, {
      tool: 'no_such_tool_marker',
      args: { connection: 'db', sql: 'SELECT 1' },
      identity: h.identity('alice'),
      client: { name: 'vitest' },
    });
    expect(unknown.ok).toBe(false);

    const r = await scrape(admin.url);
    expect(r.status).toBe(200);
    expect(r.type).toBe(h.metrics?.registry.contentType);
    const after = parse(r.body);
    const delta = (name: string, labels: Record<string, string>): number => value(after, name, labels) - value(before, name, labels);

    const calls = 'drawbridge_calls_total';
    expect(delta(calls, { tool: 'run_sql', connection: 'db', decision: 'allow', status: 'ok' })).toBe(1);
    expect(delta(calls, { tool: 'run_sql', connection: 'db', decision: 'deny', status: 'refused' })).toBe(1);
    // The undeclared tool: "other", never the agent's text; it ended before a decision.
    const others = after.filter((s) => s.name === calls && s.labels['tool'] === 'other');
    expect(
      others.reduce((n, s) => n + s.value, 0) - before.filter((s) => s.name === calls && s.labels['tool'] === 'other').reduce((n, s) => n + s.value, 0),
    ).toBe(1);
    expect(others.every((s) => s.labels['decision'] === 'none' && s.labels['status'] !== 'ok')).toBe(true);
    // Exactly three calls in all.
    const total = (samples: readonly Sample[]): number => samples.filter((s) => s.name === calls).reduce((n, s) => n + s.value, 0);
    expect(total(after) - total(before)).toBe(3);

    // One total observation per call; the execute stage only for the call that ran.
    const count = 'drawbridge_call_duration_seconds_count';
    expect(delta(count, { tool: 'run_sql', stage: 'total' })).toBe(2);
    expect(delta(count, { tool: 'other', stage: 'total' })).toBe(1);
    expect(delta(count, { tool: 'run_sql', stage: 'execute' })).toBe(1);
    expect(delta(count, { tool: 'run_sql', stage: 'parse' })).toBe(2);
    expect(delta(count, { tool: 'run_sql', stage: 'decide' })).toBe(2);
    expect(delta(count, { tool: 'run_sql', stage: 'journal' })).toBe(2);
    expect(delta(count, { tool: 'run_sql', stage: 'mask' })).toBe(1);
    expect(delta(count, { tool: 'run_sql', stage: 'added' })).toBe(2);
    expect(value(after, 'drawbridge_call_duration_seconds_bucket', { tool: 'run_sql', stage: 'total', le: '+Inf' })).toBe(
      value(after, count, { tool: 'run_sql', stage: 'total' }),
    );
    // The SQLite state: nothing pending, and a gateway that never asked for approval has no approvals file (a scrape creates none).
    expect(value(after, 'drawbridge_state_counts_up')).toBe(1);
    expect(value(after, 'drawbridge_approvals_pending')).toBe(0);
    expect(existsSync(join(h.dir, 'approvals.db'))).toBe(false);
    // prom-client's process metrics, under the same registry.
    expect(after.some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);

    // No data of the calls, no subject.
    for (const marker of ['4242', 'secret_marker', 'metrics_marker_table', 'CREATE', 'no_such_tool_marker', 'alice', h.identity('alice').subject]) {
      expect(r.body).not.toContain(marker);
    }
  });

  it('is not on the main listener without admin.metrics_on_main', async () => {
    expect((await scrape(h.origin)).body).not.toContain('drawbridge_calls_total');
  });

  it('answers HEAD, and refuses other methods', async () => {
    expect((await fetch(`${admin.url}/metrics`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${admin.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
  });
});

describe('admin.metrics_on_main', () => {
  let h: HttpHarness<keyof typeof ACCOUNTS>;

  beforeAll(async () => {
    h = await startHttpGateway({
      prefix: 'metrics_main',
      accounts: ACCOUNTS,
      policy: POLICY,
      approval: '{ wait: 0ms, store: approvals.db }',
      admin: '{ metrics_on_main: true }',
      metrics: true,
    });
  }, 60_000);

  afterAll(async () => {
    await h?.close();
  });

  it('serves /metrics on the `serve --http` listener too, without a token', async () => {
    expect((await h.call('alice', 'SELECT 1')).ok).toBe(true);
    const r = await scrape(h.origin);
    expect(r.status).toBe(200);
    expect(value(parse(r.body), 'drawbridge_calls_total', { tool: 'run_sql', connection: 'db', decision: 'allow', status: 'ok' })).toBe(1);
  });
});

const TEAM = { alice: { groups: ['analysts'] }, dana: { groups: ['dba'] }, sam: { groups: ['selfers'] } };

const TEAM_POLICY = `kind: policy
rules:
  - name: self-approved-writes
    match: { tool: run_sql, access: write, groups: [selfers] }
    effect: approve
    approvers: { requester: true }
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts], tables: [public.orders] }
    effect: approve
    approvers: { groups: [dba] }
    grant: 15m
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
masking:
  - name: pii
    match: { tool: run_sql }
    columns: [customers.email]
    detectors: all
`;

describe('the series read from the state, the journal, the pools and the sessions (state on PostgreSQL)', () => {
  let h: HttpHarness<keyof typeof TEAM>;
  let admin: AdminListener;
  let offsetMs = 0;

  beforeAll(async () => {
    h = await startHttpGateway({
      prefix: 'metrics_state',
      accounts: TEAM,
      policy: TEAM_POLICY,
      approval: '{ wait: 0ms, pending_ttl: 1h }',
      state: 'postgres',
      metrics: true,
      clock: () => new Date(Date.now() + offsetMs),
    });
    if (h.metrics === null) throw new TypeError('the harness made no metrics');
    admin = await serveAdmin(h.http.health, { host: '127.0.0.1', port: 0 }, h.metrics);
    // Tokens up front, before the clock moves.
    await h.token('alice');
    await h.token('dana');
  }, 60_000);

  afterAll(async () => {
    await admin?.close();
    await h?.close();
  });

  /** dana decides over the approvals API, as the console and the API record decisions in this process. */
  async function decide(id: string, how: 'approve' | 'deny', body: Record<string, string>): Promise<void> {
    const res = await fetch(`${h.origin}/api/v1/approvals/${id}/${how}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await h.token('dana')}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status, await res.text()).toBe(200);
  }

  async function pendingWrite(marker: string): Promise<string> {
    const result = await h.call('alice', `UPDATE orders SET note = '${marker}' WHERE id = 1`);
    const approval = result.structured?.approval;
    expect(approval?.status).toBe('pending');
    return approval?.id as string;
  }

  const scrapeState = async (): Promise<Sample[]> => parse((await scrape(admin.url)).body);

  it('each new series moves as the calls, votes and sessions say, with declared names only', async () => {
    const before = await scrapeState();
    expect(value(before, 'drawbridge_state_counts_up')).toBe(1);
    expect(value(before, 'drawbridge_approvals_pending')).toBe(0);
    expect(value(before, 'drawbridge_grants_active')).toBe(0);
    for (const result of ['approved', 'denied', 'expired']) expect(value(before, 'drawbridge_approvals_decided_total', { result })).toBe(0);

    // Masking: a column rule (no detector) and a detector, both of rule pii.
    const read = await h.call('alice', "SELECT email, 'mask-canary@example.com' AS contact FROM customers ORDER BY id LIMIT 2");
    expect(read.ok).toBe(true);
    let now = await scrapeState();
    expect(value(now, 'drawbridge_masked_values_total', { tool: 'run_sql', rule: 'pii', detector: 'none' })).toBe(2);
    expect(value(now, 'drawbridge_masked_values_total', { tool: 'run_sql', rule: 'pii', detector: 'email' })).toBe(2);

    // Pending, then denied.
    const denied = await pendingWrite('metrics-deny');
    now = await scrapeState();
    expect(value(now, 'drawbridge_approvals_pending')).toBe(1);
    await decide(denied, 'deny', { reason: 'not today' });
    now = await scrapeState();
    expect(value(now, 'drawbridge_approvals_pending')).toBe(0);
    expect(value(now, 'drawbridge_approvals_decided_total', { result: 'denied' })).toBe(1);

    // Pending, then past its expiry: out of the gauge at once, counted expired when this process marks it (a listing).
    await pendingWrite('metrics-expire');
    expect(value(await scrapeState(), 'drawbridge_approvals_pending')).toBe(1);
    offsetMs += 2 * 60 * 60_000;
    now = await scrapeState();
    expect(value(now, 'drawbridge_approvals_pending')).toBe(0);
    expect(value(now, 'drawbridge_approvals_decided_total', { result: 'expired' })).toBe(0);
    await h.gateway.state.approvals.list(h.gateway.clock());
    expect(value(await scrapeState(), 'drawbridge_approvals_decided_total', { result: 'expired' })).toBe(1);

    // Approved with a 15-minute grant: the re-issued call runs and the grant is active.
    const approved = await pendingWrite('metrics-approve');
    await decide(approved, 'approve', { grant: '15m' });
    const ran = await h.call('alice', "UPDATE orders SET note = 'metrics-approve' WHERE id = 1");
    expect(ran.ok).toBe(true);
    now = await scrapeState();
    expect(value(now, 'drawbridge_approvals_decided_total', { result: 'approved' })).toBe(1);
    expect(value(now, 'drawbridge_approvals_pending')).toBe(0);
    expect(value(now, 'drawbridge_grants_active')).toBe(1);

    // In-client prompts (no store holds them): sam approves one write and declines another.
    const prompted = (sql: string, answer: ElicitAnswer) =>
      callTool(h.gateway, {
        tool: 'run_sql',
        args: { connection: 'db', sql },
        identity: h.identity('sam'),
        client: { name: 'vitest' },
        channel: { clientName: 'vitest', elicit: async () => answer },
      });
    expect((await prompted("UPDATE orders SET note = 'metrics-self' WHERE id = 2", { action: 'accept', approve: true, grantMs: 0 })).ok).toBe(true);
    expect((await prompted("UPDATE orders SET note = 'metrics-self-no' WHERE id = 2", { action: 'decline' })).ok).toBe(false);
    now = await scrapeState();
    expect(value(now, 'drawbridge_approvals_decided_total', { result: 'approved' })).toBe(2);
    expect(value(now, 'drawbridge_approvals_decided_total', { result: 'denied' })).toBe(2);

    // A statement the database fails: a backend fault on connection db.
    const failed = await h.call('alice', 'SELECT 1 / 0');
    expect(failed.ok).toBe(false);
    const code = failed.ok ? '' : failed.error.code;
    expect(code).toMatch(/^backend\./);
    now = await scrapeState();
    expect(value(now, 'drawbridge_backend_errors_total', { connection: 'db', code })).toBe(1);

    // The journal: every append of this test by record type (calls and outcomes, approval events, the grant), none failed.
    const appended = (type: string) =>
      value(now, 'drawbridge_journal_append_seconds_count', { type }) - value(before, 'drawbridge_journal_append_seconds_count', { type });
    expect(appended('call')).toBe(8);
    expect(appended('outcome')).toBe(8);
    // Out of band three requested, two votes, one consumed; in the client two requested, one approved, one declined.
    expect(appended('approval')).toBe(10);
    expect(appended('grant')).toBe(1);
    for (const type of ['call', 'outcome', 'approval', 'grant']) expect(value(now, 'drawbridge_journal_append_errors_total', { type })).toBe(0);

    // The backend's pool: opened by the calls, each client idle again.
    const total = value(now, 'drawbridge_backend_pool_connections', { connection: 'db', state: 'total' });
    expect(total).toBeGreaterThanOrEqual(1);
    expect(value(now, 'drawbridge_backend_pool_connections', { connection: 'db', state: 'idle' })).toBe(total);
    expect(value(now, 'drawbridge_backend_pool_connections', { connection: 'db', state: 'waiting' })).toBe(0);

    // HTTP sessions: one open, then closed.
    expect(value(now, 'drawbridge_http_sessions')).toBe(0);
    const { client, transport } = await h.mcpSession('alice', 'metrics-session');
    expect(value(await scrapeState(), 'drawbridge_http_sessions')).toBe(1);
    await transport.terminateSession();
    await client.close();
    expect(value(await scrapeState(), 'drawbridge_http_sessions')).toBe(0);

    // Every label value is a declared name or from a fixed list; no data, subject or SQL.
    const allowed: Record<string, ReadonlySet<string>> = {
      tool: new Set(['run_sql', 'other']),
      connection: new Set(['db', 'other']),
      rule: new Set(['pii', 'built-in', 'withheld', 'quoted-values', 'other']),
      detector: new Set<string>([...DETECTOR_NAMES, 'pattern', 'none', 'other']),
      result: new Set(['approved', 'denied', 'expired', 'applied', 'refused']),
      type: new Set(['call', 'outcome', 'approval', 'grant', 'config']),
      state: new Set(['total', 'idle', 'waiting']),
      decision: new Set(['allow', 'deny', 'approve', 'none']),
      status: new Set(['ok', 'refused', 'error']),
    };
    const body = (await scrape(admin.url)).body;
    for (const sample of parse(body).filter((x) => x.name.startsWith('drawbridge_'))) {
      for (const [label, v] of Object.entries(sample.labels)) {
        if (label === 'le' || label === 'stage') continue;
        if (label === 'code') expect(v).toMatch(/^backend\.[a-z_]+$/);
        else expect(allowed[label]?.has(v), `${sample.name}{${label}="${v}"}`).toBe(true);
      }
    }
    for (const marker of ['mask-canary', 'example.com', 'metrics-approve', 'metrics-deny', 'metrics-self', 'not today', 'UPDATE', 'alice', 'dana']) {
      expect(body).not.toContain(marker);
    }
  });

  it('a state that does not answer (its approvals table locked) leaves the scrape quick, without its gauges, and they come back', async () => {
    const locker = new pg.Client({ connectionString: h.db.superuserUrl });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE drawbridge.approvals IN ACCESS EXCLUSIVE MODE');
      const started = performance.now();
      const r = await scrape(admin.url);
      const tookMs = performance.now() - started;
      expect(r.status).toBe(200);
      // The default 1 s timeout, and not the lock's (which lasts until the test lets go).
      expect(tookMs).toBeLessThan(2_500);
      const samples = parse(r.body);
      expect(value(samples, 'drawbridge_state_counts_up')).toBe(0);
      expect(samples.some((x) => x.name === 'drawbridge_approvals_pending' || x.name === 'drawbridge_grants_active')).toBe(false);
      // What does not need the state is there as ever.
      expect(samples.some((x) => x.name === 'drawbridge_calls_total')).toBe(true);
      // A second scrape joins the read still waiting, rather than queueing another query on the locked table.
      expect(value(parse((await scrape(admin.url)).body), 'drawbridge_state_counts_up')).toBe(0);
      const waiting = await locker.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      expect(Number(waiting.rows[0]?.n)).toBe(1);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    const after = parse((await scrape(admin.url)).body);
    expect(value(after, 'drawbridge_state_counts_up')).toBe(1);
    expect(value(after, 'drawbridge_grants_active')).toBe(1);
  });
});

describe('declared names', () => {
  const event = (tool: string, rule: string): CallEnd => ({
    callId: '0b6c5a55-0000-4000-8000-000000000002',
    at: new Date('2026-12-05T08:00:00.000Z'),
    trace: null,
    tool,
    connection: 'db',
    operation: 'select',
    access: 'read',
    decision: { effect: 'allow', rule: 'read' },
    clearance: null,
    status: 'ok',
    error: null,
    faultMessage: null,
    rows: 1,
    affectedRows: null,
    masked: 3,
    maskedBy: [
      { rule, detector: 'email', count: 1 },
      { rule: 'built-in', detector: null, count: 1 },
      { rule, detector: 'no_such_detector', count: 1 },
    ],
    startedAtMs: 0,
    durationMs: 1,
    stages: [],
    session: null,
    subject: 'alice',
  });

  it('labels only the declared names (else other), and updateNames swaps them in one place', async () => {
    const metrics = createMetrics({ tools: ['run_sql'], connections: ['db'], maskingRules: ['pii'] });
    metrics.call(event('run_sql', 'pii'));
    metrics.call(event('new_tool', 'secrets'));
    metrics.updateNames({ tools: ['run_sql', 'new_tool'], connections: ['db'], maskingRules: ['pii', 'secrets'] });
    metrics.call(event('new_tool', 'secrets'));
    const samples = parse(await metrics.registry.metrics());
    const masked = 'drawbridge_masked_values_total';
    expect(value(samples, masked, { tool: 'run_sql', rule: 'pii', detector: 'email' })).toBe(1);
    expect(value(samples, masked, { tool: 'run_sql', rule: 'pii', detector: 'other' })).toBe(1);
    expect(value(samples, masked, { tool: 'run_sql', rule: 'built-in', detector: 'none' })).toBe(1);
    expect(value(samples, masked, { tool: 'other', rule: 'other', detector: 'email' })).toBe(1);
    expect(value(samples, masked, { tool: 'new_tool', rule: 'secrets', detector: 'email' })).toBe(1);
    expect(value(samples, 'drawbridge_calls_total', { tool: 'other' })).toBe(1);
    expect(value(samples, 'drawbridge_calls_total', { tool: 'new_tool' })).toBe(1);
    // Not attached to a gateway: nothing read from a state, no pools, no sessions.
    expect(samples.some((x) => x.name === 'drawbridge_state_counts_up' || x.name === 'drawbridge_http_sessions')).toBe(false);
  });
});
