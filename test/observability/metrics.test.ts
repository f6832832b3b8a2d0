// /metrics after real calls through the pipeline (SQLite journal, the test OpenID provider, a real
// PostgreSQL database): the calls counter moves by exactly the calls made, by decision and status;
// histogram counts match; an undeclared tool is "other"; no SQL text or subject in the output.
// Served on the admin listener always, and on the `serve --http` listener only with admin.metrics_on_main.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveAdmin, type AdminListener } from '../../src/http/health.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';

const ACCOUNTS = { alice: { groups: ['analysts'] } };

const POLICY = `kind: policy
rules:
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

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
    expect(after.some((s) => s.name === 'drawbridge_masked_values_total' && s.labels['tool'] === 'run_sql')).toBe(true);
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
