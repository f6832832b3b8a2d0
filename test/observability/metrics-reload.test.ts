// Metrics across safe reloads (real gateway, PostgreSQL): each attempt counts in
// drawbridge_config_reloads_total by result, and the bounded label values follow the config in
// effect — a tool a reload added gets its own series instead of "other"; a refused reload changes nothing.

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createMetrics, declaredNames, type Metrics } from '../../src/observability/metrics.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { freshDatabase, testGateway, type FreshDatabase, type TestGateway } from '../support/fixtures.js';

const REPORTS = `kind: tool
name: reports
type: run_sql
connections: [db]
`;

let db: FreshDatabase;
let gw: TestGateway;
let metrics: Metrics;

beforeAll(async () => {
  db = await freshDatabase('metricsreload');
  gw = await testGateway(db, { identity: { subject: 'dev@example.com', groups: ['analysts'] } });
  metrics = createMetrics(declaredNames(gw.gateway.config));
  metrics.attach(gw.gateway);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await db?.drop();
});

/** One sample's value from the registry's Prometheus text (0 when absent). */
async function sample(line: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? 0 : Number(found.slice(line.length + 1));
}

const reportsCall = () =>
  callTool(gw.gateway, { tool: 'reports', args: { connection: 'db', sql: 'SELECT 1 AS n' }, identity: gw.identity, client: { name: 'vitest' } });

it('counts reloads by result; a tool added by a reload is labelled by its name; a refused reload keeps the names', async () => {
  expect(await sample('drawbridge_config_reloads_total{result="applied"}')).toBe(0);
  // Before: an undeclared tool is "other" (and refused).
  expect((await reportsCall()).ok).toBe(false);
  expect(await sample('drawbridge_calls_total{tool="other",connection="db",decision="none",status="refused"}')).toBe(1);

  writeFileSync(join(gw.dir, 'tools', 'reports.yaml'), REPORTS);
  expect((await gw.gateway.reload({ via: 'signal' })).result).toBe('applied');
  expect(await sample('drawbridge_config_reloads_total{result="applied"}')).toBe(1);
  // Declared now, so labelled by its name; no rule names it, so the default deny decides it.
  expect((await reportsCall()).ok).toBe(false);
  expect(await sample('drawbridge_calls_total{tool="reports",connection="db",decision="deny",status="refused"}')).toBe(1);

  // A broken file: refused, counted, the running config (and its names) kept.
  writeFileSync(join(gw.dir, 'tools', 'broken.yaml'), 'kind: tool\nname: [\n');
  expect((await gw.gateway.reload({ via: 'signal' })).result).toBe('refused');
  rmSync(join(gw.dir, 'tools', 'broken.yaml'));
  expect(await sample('drawbridge_config_reloads_total{result="refused"}')).toBe(1);
  expect((await reportsCall()).ok).toBe(false);
  expect(await sample('drawbridge_calls_total{tool="reports",connection="db",decision="deny",status="refused"}')).toBe(2);
});
