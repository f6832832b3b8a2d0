// The example configurations (the repository root's SQL demo, examples/kubernetes,
// examples/ssh) load and decide as their comments say, and each is least
// privilege: ordinary readers get the application's tables, namespace or
// programs only; wider reads belong to one group, granted on purpose; denies
// win. Decisions come from `policy explain` (parse → resolve → decide, nothing
// executed): SQL against the seeded demo database, kubectl against the fake API
// server (discovery, the connection's default namespace), ssh with the hosts of
// the connection.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { ConnectionDeclaration } from '../../src/backends/backend.js';
import { loadParser } from '../../src/backends/postgres/ast.js';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import { secretRefSchema } from '../../src/config/secrets.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { openState } from '../../src/state/open.js';
import { explain } from '../../src/pipeline/explain.js';
import { createGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { startFakeKube, type FakeKube } from '../support/fake-kube/server.js';

const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const person = (subject: string, groups: string[]) => makeIdentity({ kind: 'local', subject, groups, issuer: 'local' });
const IDENTITIES = {
  analyst: person('ann@example.com', ['analysts']),
  sre: person('sam@example.com', ['sre']),
  dev: person('dev@example.com', ['developers']),
  nobody: person('nobody@example.com', []),
} as const;
type Who = keyof typeof IDENTITIES;
type Effect = 'allow' | 'approve' | 'deny';

const scratch: string[] = [];
const gateways: Gateway[] = [];
afterAll(async () => {
  await Promise.allSettled(gateways.map((g) => g.close()));
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-examples-'));
  scratch.push(dir);
  return dir;
}

/** A gateway over `config` with a throwaway journal (explain writes nothing to it). */
async function gatewayFor(config: GatewayConfig, env: Record<string, string>): Promise<Gateway> {
  const gateway = createGateway({
    config,
    state: await openState(config, { journalPath: join(tempDir(), 'journal.db') }),
    maskKey: new Uint8Array(32),
    environment: { env, baseDir: config.dir },
  });
  gateways.push(gateway);
  return gateway;
}

async function decide(gateway: Gateway, tool: string, connection: string, input: Record<string, unknown>, who: Who) {
  const e = await explain(gateway, { tool, connection, input, identity: IDENTITIES[who], offline: false });
  expect(e.error, JSON.stringify(e.error)).toBeNull();
  expect(e.catalog).toBe('consulted');
  return e.decision;
}

describe('the repository root (run_sql demo): analysts read the shop tables only', () => {
  let gateway: Gateway;
  beforeAll(async () => {
    await loadParser();
    gateway = await gatewayFor(loadConfig(REPO_ROOT), { SHOP_DATABASE_URL: inject('pgGatewayUrl'), DRAWBRIDGE_DBA_TOKEN: 'unused' });
  });

  it('loads with its rules', () => {
    expect(gateway.config.rules.map((r) => r.name)).toEqual([
      'no-ddl',
      'no-credential-catalogs',
      'writes-need-a-dba',
      'analysts-read',
      'sre-reads-all-schemas',
    ]);
    expect(gateway.config.rules.find((r) => r.name === 'writes-need-a-dba')).toMatchObject({ approvers: { groups: ['dba'] }, preview: true });
  });

  it.each<[Who, string, Effect, string | null]>([
    // The demo tour's reads.
    ['analyst', 'SELECT id, full_name, email, ssn, phone, card_number, city FROM customers ORDER BY id LIMIT 3', 'allow', 'analysts-read'],
    ['analyst', 'SELECT * FROM customer_contacts LIMIT 2', 'allow', 'analysts-read'],
    ['analyst', 'SELECT id, body FROM audit_notes ORDER BY id LIMIT 3', 'allow', 'analysts-read'],
    ['analyst', 'SELECT p.name, count(*) FROM orders o JOIN products p ON p.id = o.product_id GROUP BY p.name', 'allow', 'analysts-read'],
    ['analyst', 'SELECT * FROM public.products', 'allow', 'analysts-read'],
    // Not the system catalogs, not other schemas, not a statement without a table.
    ['analyst', 'SELECT query FROM pg_stat_activity', 'deny', null],
    ['analyst', 'SELECT rolname FROM pg_roles', 'deny', null],
    ['analyst', 'SELECT table_name FROM information_schema.tables', 'deny', null],
    ['analyst', 'SELECT c.email FROM customers c JOIN pg_catalog.pg_roles r ON r.rolname = c.full_name', 'deny', null],
    ['analyst', 'SELECT version()', 'deny', null],
    ['analyst', 'SELECT rolpassword FROM pg_authid', 'deny', 'no-credential-catalogs'],
    // Denies and approvals, whoever asks.
    ['analyst', 'DROP TABLE customers', 'deny', 'no-ddl'],
    ['analyst', "UPDATE orders SET status = 'cancelled' WHERE id IN (1, 2, 3)", 'approve', 'writes-need-a-dba'],
    ['analyst', 'WITH gone AS (DELETE FROM orders WHERE id < 10 RETURNING id) SELECT count(*) FROM gone', 'approve', 'writes-need-a-dba'],
    ['analyst', 'SELECT touch_order(1)', 'approve', 'writes-need-a-dba'],
    // Wider reads: SREs, on purpose; credential catalogs stay denied.
    ['sre', 'SELECT query FROM pg_stat_activity', 'allow', 'sre-reads-all-schemas'],
    ['sre', 'SELECT * FROM customers', 'allow', 'sre-reads-all-schemas'],
    ['sre', 'SELECT rolpassword FROM pg_authid', 'deny', 'no-credential-catalogs'],
    ['sre', 'DROP TABLE customers', 'deny', 'no-ddl'],
    // No group, no reads.
    ['nobody', 'SELECT * FROM customers', 'deny', null],
  ])('%s: %s → %s (%s)', async (who, sql, effect, rule) => {
    expect(await decide(gateway, 'run_sql', 'shop', { sql }, who)).toMatchObject({ effect, rule });
  });
});

describe('examples/kubernetes: reads in the shop namespace; cluster-wide reads for SREs on purpose', () => {
  let fake: FakeKube;
  let gateway: Gateway;
  beforeAll(async () => {
    fake = await startFakeKube();
    const config = loadConfig(join(REPO_ROOT, 'examples/kubernetes'));
    // The example's connection, pointed at the fake API server (same context name).
    const kubeconfig = parseYaml(fake.kubeconfig()) as { contexts: Array<{ name: string }>; 'current-context': string };
    kubeconfig.contexts[0]!.name = 'staging';
    kubeconfig['current-context'] = 'staging';
    const file = join(tempDir(), 'staging.kubeconfig');
    writeFileSync(file, stringifyYaml(kubeconfig));
    const staging = config.connections.get('staging')!;
    const declaration = { ...staging.declaration, kubeconfig: secretRefSchema.parse({ file }) } as ConnectionDeclaration;
    gateway = await gatewayFor({ ...config, connections: new Map([['staging', { ...staging, declaration }]]) }, { DRAWBRIDGE_SRE_TOKEN: 'unused' });
  });
  afterAll(async () => {
    await fake?.close();
  });

  it('loads with its rules', () => {
    expect(gateway.config.tools.has('kubectl')).toBe(true);
    expect(gateway.config.rules.map((r) => r.name)).toEqual([
      'k8s-no-namespace-delete',
      'k8s-no-secrets',
      'k8s-exec-needs-approval',
      'k8s-writes-need-approval',
      'k8s-shop-reads',
      'k8s-discovery',
      'k8s-sre-cluster-wide-reads',
    ]);
  });

  it.each<[Who, string, Effect, string | null]>([
    // Developers: reads in shop (named, or the connection's default namespace).
    ['dev', 'get pods -n shop', 'allow', 'k8s-shop-reads'],
    ['dev', 'get pods', 'allow', 'k8s-shop-reads'],
    ['dev', 'get deploy web -o yaml', 'allow', 'k8s-shop-reads'],
    ['dev', 'describe deployment web -n shop', 'allow', 'k8s-shop-reads'],
    ['dev', 'logs web-7d9c-abcde -n shop --tail 20', 'allow', 'k8s-shop-reads'],
    ['dev', 'events -n shop', 'allow', 'k8s-shop-reads'],
    ['dev', 'api-resources', 'allow', 'k8s-discovery'],
    ['dev', 'explain nodes', 'allow', 'k8s-discovery'],
    // …and nowhere else: -A is namespace "*", which [shop] does not cover; nodes have no namespace.
    ['dev', 'get pods -A', 'deny', null],
    ['dev', 'events -A', 'deny', null],
    ['dev', 'get pods -n kube-system', 'deny', null],
    ['dev', 'get nodes', 'deny', null],
    ['dev', 'get namespaces', 'deny', null],
    // Secrets: denied for everyone, everywhere.
    ['dev', 'get secrets -n shop', 'deny', 'k8s-no-secrets'],
    ['dev', 'get secret web-secrets -o yaml', 'deny', 'k8s-no-secrets'],
    ['sre', 'get secrets -A', 'deny', 'k8s-no-secrets'],
    // Writes and exec in shop need an SRE; elsewhere they are refused, not asked.
    ['dev', 'delete pod web-7d9c-abcde -n shop', 'approve', 'k8s-writes-need-approval'],
    ['dev', 'rollout restart deployment web', 'approve', 'k8s-writes-need-approval'],
    ['dev', 'exec web-7d9c-abcde -n shop -- ls', 'approve', 'k8s-exec-needs-approval'],
    ['dev', 'delete pod coredns-5d78c9869d-q7x2v -n kube-system', 'deny', null],
    ['dev', 'exec coredns-5d78c9869d-q7x2v -n kube-system -- ls', 'deny', null],
    ['dev', 'cordon node-1', 'deny', null],
    ['dev', 'delete ns shop', 'deny', 'k8s-no-namespace-delete'],
    // Cluster-wide reads: the on-purpose rule, for SREs only.
    ['sre', 'get pods -A', 'allow', 'k8s-sre-cluster-wide-reads'],
    ['sre', 'get pods -n kube-system', 'allow', 'k8s-sre-cluster-wide-reads'],
    ['sre', 'get nodes', 'allow', 'k8s-sre-cluster-wide-reads'],
    ['nobody', 'get pods -n shop', 'deny', null],
  ])('%s: kubectl %s → %s (%s)', async (who, command, effect, rule) => {
    expect(await decide(gateway, 'kubectl', 'staging', { command }, who)).toMatchObject({ effect, rule });
  });

  it('offline (no discovery, as `policy explain --offline`): -A is namespace "*", still not a developer\'s; delete ns is refused', async () => {
    const offline = async (command: string, who: Who) =>
      (await explain(gateway, { tool: 'kubectl', connection: 'staging', input: { command }, identity: IDENTITIES[who], offline: true })).decision;
    expect(await offline('get pods -A', 'dev')).toMatchObject({ effect: 'deny', code: 'policy.no_match' });
    expect(await offline('get pods -A', 'sre')).toMatchObject({ effect: 'allow', rule: 'k8s-sre-cluster-wide-reads' });
    expect(await offline('get pods -n shop', 'dev')).toMatchObject({ effect: 'allow', rule: 'k8s-shop-reads' });
    expect(await offline('delete ns shop', 'dev')).toMatchObject({ effect: 'deny' });
  });
});

describe('examples/ssh: named health checks and nginx logs, restarts approved, rm denied', () => {
  let gateway: Gateway;
  beforeAll(async () => {
    await loadParser();
    gateway = await gatewayFor(loadConfig(join(REPO_ROOT, 'examples/ssh')), { DRAWBRIDGE_SRE_TOKEN: 'unused' });
  });

  it('loads with its rules', () => {
    expect(gateway.config.rules.map((r) => r.name)).toEqual([
      'ssh-no-rm',
      'ssh-grep-reads-its-input',
      'ssh-restarts-need-approval',
      'ssh-health',
      'ssh-nginx-status-and-logs',
      'ssh-nginx-log-pipelines',
    ]);
  });

  it.each<[Who, string, Effect, string | null]>([
    ['dev', 'df -h', 'allow', 'ssh-health'],
    ['dev', 'uptime', 'allow', 'ssh-health'],
    ['dev', 'systemctl status nginx', 'allow', 'ssh-nginx-status-and-logs'],
    ['dev', 'journalctl -u nginx --since today', 'allow', 'ssh-nginx-status-and-logs'],
    ['dev', 'tail -n 100 /var/log/nginx/error.log', 'allow', 'ssh-nginx-status-and-logs'],
    ['dev', 'journalctl -u nginx | grep error | tail -n 5', 'allow', 'ssh-nginx-log-pipelines'],
    ['dev', 'journalctl -u nginx --since 1h | grep 502 | sort | uniq -c', 'allow', 'ssh-nginx-log-pipelines'],
    // Not any file, not any unit, not any filter.
    ['dev', 'cat /etc/shadow', 'deny', null],
    ['dev', 'tail -n 5 /etc/shadow', 'deny', null],
    ['dev', 'tail -n 5 /var/log/nginx/../../../etc/shadow', 'deny', null],
    ['dev', 'tail -n 5 /var/log/nginx/error.log /etc/shadow', 'deny', null],
    ['dev', 'grep -r password /etc', 'deny', 'ssh-grep-reads-its-input'],
    ['dev', 'journalctl -u nginx | grep -re .', 'deny', 'ssh-grep-reads-its-input'],
    ['dev', 'journalctl -u nginx | grep error /etc/shadow', 'deny', null],
    ['dev', 'journalctl -u sshd | grep Accepted', 'deny', null],
    ['dev', 'journalctl | grep password', 'deny', null],
    ['dev', 'systemctl status sshd', 'deny', null],
    ['dev', 'ps aux', 'deny', null],
    ['dev', 'printenv', 'deny', null],
    ['dev', 'journalctl -u nginx | sh', 'deny', null],
    ['dev', 'bash -c id', 'deny', null],
    // Restarts of nginx wait for an SRE; of anything else they are refused.
    ['dev', 'systemctl restart nginx', 'approve', 'ssh-restarts-need-approval'],
    ['dev', 'systemctl restart sshd', 'deny', null],
    ['dev', 'rm -rf /var/log', 'deny', 'ssh-no-rm'],
    ['dev', '/tmp/x/rm -rf /var/log', 'deny', 'ssh-no-rm'],
    // Reads are for developers only.
    ['nobody', 'df -h', 'deny', null],
  ])('%s: %s → %s (%s)', async (who, command, effect, rule) => {
    expect(await decide(gateway, 'ssh_exec', 'web', { command }, who)).toMatchObject({ effect, rule });
  });

  it('a subset of the hosts is decided the same way', async () => {
    expect(await decide(gateway, 'ssh_exec', 'web', { command: 'df -h', hosts: ['web-1'] }, 'dev')).toMatchObject({ effect: 'allow', rule: 'ssh-health' });
  });
});
