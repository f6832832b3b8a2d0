// `drawbridge demo`: the main job out of the box. Starts a throwaway
// PostgreSQL seeded with sample PII, runs a short guided tour through a real
// MCP client talking to `drawbridge serve` over stdio (masking, a denial, the
// journal), then keeps the database up and prints how to connect your own
// MCP client until Ctrl-C. `--http` runs the remote deployment on one machine
// instead: the gateway over Streamable HTTP with OIDC identities from a
// development OpenID provider, reached through `drawbridge connect`.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startCluster } from './cluster.js';
import { seedDemo } from './seed.js';
import { exportLines } from '../journal/export.js';
import { verifyJournal } from '../journal/verify.js';
import { loadConfig } from '../config/load.js';
import { openApprovalStore } from '../approval/store.js';
import { serveHttp } from '../http/server.js';
import { createOidcVerifier } from '../identity/oidc.js';
import { openGateway } from '../pipeline/gateway.js';
import { DEV_CLIENTS, startDevIdp } from './idp.js';

export const DEMO_PORT = 54329;
export const DEMO_HTTP_PORT = 54380;
export const DEMO_IDP_PORT = 54381;
/** The HTTP demo's people: their groups match the repository's policies (analysts read, a dba approves writes). */
export const DEMO_ACCOUNTS = { alice: { groups: ['analysts'] }, dana: { groups: ['dba'] } } as const;
export const DEMO_PASSWORD = 'drawbridge-demo';

const here = fileURLToPath(new URL('.', import.meta.url));
/** dist/src/devdb → repository root (where tools/ and policies/ live). */
const REPO_ROOT = resolve(here, '..', '..', '..');
const CLI = resolve(here, '..', 'cli.js');

interface TourStep {
  readonly title: string;
  readonly sql: string;
  /** A DBA acts on the approval request from a second process while the call waits. */
  readonly approver?: { readonly decision: 'approve' | 'deny'; readonly args: readonly string[] };
}

const TOUR: readonly TourStep[] = [
  { title: 'A read: PII columns are masked (email, SSN, phone by column rule; card keeps its last 4)', sql: 'SELECT id, full_name, email, ssn, phone, card_number, city FROM customers ORDER BY id LIMIT 3' },
  { title: 'Aliases and functions do not escape masking (lineage follows the data)', sql: "SELECT c.email AS contact, upper(c.ssn) AS x, row_to_json(c)->>'iban' AS j FROM customers c ORDER BY id LIMIT 2" },
  { title: 'A view that renames email to contact is still masked', sql: 'SELECT * FROM customer_contacts LIMIT 2' },
  { title: 'Free text: content detectors catch PII the column rules cannot see', sql: 'SELECT id, body FROM audit_notes ORDER BY id LIMIT 3' },
  { title: 'DDL is denied by rule no-ddl', sql: 'DROP TABLE customers' },
  { title: 'Stacked statements are refused outright', sql: 'SELECT 1; DELETE FROM orders' },
  {
    title: 'A write waits for a DBA: the call stays open while a DBA approves from another terminal (with a dry-run preview)',
    sql: "UPDATE orders SET status = 'cancelled' WHERE id IN (1, 2, 3)",
    approver: { decision: 'approve', args: ['--reason', 'ticket OPS-42'] },
  },
  {
    title: 'A write hidden in a CTE is recognised as a write — and this time the DBA says no',
    sql: 'WITH gone AS (DELETE FROM orders WHERE id < 10 RETURNING id) SELECT count(*) FROM gone',
    approver: { decision: 'deny', args: ['--reason', 'use the archive job instead'] },
  },
];

export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      config: { type: 'string' },
      'no-tour': { type: 'boolean', default: false },
      'exit-after-tour': { type: 'boolean', default: false },
      http: { type: 'boolean', default: false },
      'http-port': { type: 'string' },
      'idp-port': { type: 'string' },
    },
    strict: true,
  });
  const port = tcpPort(values.port, DEMO_PORT, '--port');
  if (values.http) {
    if (values['no-tour'] || values['exit-after-tour']) throw new TypeError('--http has no tour: it serves over HTTP until Ctrl-C (drop --no-tour / --exit-after-tour)');
    return runHttpDemo({ port, httpPort: tcpPort(values['http-port'], DEMO_HTTP_PORT, '--http-port'), idpPort: tcpPort(values['idp-port'], DEMO_IDP_PORT, '--idp-port'), configDir: resolve(values.config ?? REPO_ROOT) });
  }
  if (values['http-port'] !== undefined || values['idp-port'] !== undefined) throw new TypeError('--http-port and --idp-port apply to --http only');
  const configDir = resolve(values.config ?? REPO_ROOT);
  const config = loadConfig(configDir);
  const out = (s = '') => process.stdout.write(`${s}\n`);

  out(`Starting a throwaway PostgreSQL on 127.0.0.1:${port} …`);
  const cluster = await startCluster({ port });
  try {
    const seeded = await seedDemo(cluster, { database: 'shop', gatewayPassword: DEMO_PASSWORD });
    out(`Seeded database "shop" (customers with sample PII, orders, products, a view, audit notes).`);
    out(`The gateway connects as the least-privilege role drawbridge_gateway.\n`);
    // The demo DBA's approver token (config: approval.approvers, token ${DRAWBRIDGE_DBA_TOKEN}).
    const dbaToken = process.env['DRAWBRIDGE_DBA_TOKEN'] ?? randomBytes(18).toString('hex');
    const env = { ...process.env, SHOP_DATABASE_URL: seeded.gatewayUrl, DRAWBRIDGE_DBA_TOKEN: dbaToken } as Record<string, string>;
    mkdirSync(join(configDir, '.drawbridge'), { recursive: true });
    // Approval requests and grants belong to the throwaway database of one run: a
    // request left from an earlier run (e.g. a denial nobody picked up) would
    // answer this run's identical call. The journal stays: it is the record.
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${config.approval.store}${suffix}`, { force: true });

    if (!values['no-tour']) {
      const client = new Client({ name: 'drawbridge-demo-tour', version: '1.0.0' });
      await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--config', configDir], env, stderr: 'ignore' }));
      try {
        const { tools } = await client.listTools();
        out(`Connected to drawbridge over stdio with the MCP SDK client. Tools: ${tools.map((t) => t.name).join(', ')}`);
        for (const step of TOUR) {
          out(`\n── ${step.title}`);
          out(`   run_sql  ${step.sql}`);
          const call = client.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql: step.sql } }, undefined, { timeout: 300_000, resetTimeoutOnProgress: true });
          if (step.approver) await actAsDba(config.approval.store, step.sql, step.approver, { ...env, DRAWBRIDGE_APPROVER_TOKEN: env['DRAWBRIDGE_DBA_TOKEN'] ?? '' }, configDir, out);
          const result = await call;
          const text = (result.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
          out(`${result.isError ? '   ✗ refused' : '   ✓ answered'}\n${indent(text)}`);
        }
      } finally {
        await client.close();
      }
      out(`\n── The journal: every call above, hash-chained (${config.journal.path})`);
      const lines = [...exportLines(config.journal.path, 'csv')];
      for (const line of [lines[0], ...lines.slice(-TOUR.length)]) if (line) out(indent(line.length > 220 ? `${line.slice(0, 217)}…` : line));
      const verdict = verifyJournal(config.journal.path);
      out(`   journal verify: ${verdict.ok ? `OK, ${verdict.records} records, head ${verdict.head.slice(0, 16)}…` : `FAILED at #${verdict.firstBad?.seq}`}`);
    }

    if (values['exit-after-tour']) return 0;
    const mcpJson = { mcpServers: { drawbridge: { command: 'node', args: [CLI, 'serve', '--config', configDir], env: { SHOP_DATABASE_URL: seeded.gatewayUrl } } } };
    const snippet = join(configDir, '.drawbridge', 'demo-mcp.json');
    writeFileSync(snippet, `${JSON.stringify(mcpJson, null, 2)}\n`);
    out(`
Drawbridge is ready for your own MCP client. The database stays up until you press Ctrl-C.

  MCP Inspector:
    npx @modelcontextprotocol/inspector -e SHOP_DATABASE_URL=${seeded.gatewayUrl} node ${CLI} serve --config ${configDir}

  Any agent (Claude Code, Cursor, …): add this to its MCP config (also written to ${snippet}):
${indent(JSON.stringify(mcpJson, null, 2), '    ')}

  Then try: tools/call run_sql {"connection":"shop","sql":"select email, city from customers limit 5"}
  Afterwards:  node ${CLI} journal export --config ${configDir} --format csv
               node ${CLI} journal verify --config ${configDir}
               node ${CLI} policy explain --config ${configDir} --tool run_sql --connection shop --sql "delete from orders"

  Approving writes your agent asks for (they wait up to 2 minutes, then answer "pending"):
    export DRAWBRIDGE_DBA_TOKEN=${dbaToken} DRAWBRIDGE_APPROVER_TOKEN=${dbaToken}
    node ${CLI} approvals list --config ${configDir}
    node ${CLI} approvals approve ap_… --config ${configDir} [--grant 15m]`);
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    out('\nStopping the throwaway PostgreSQL …');
    return 0;
  } finally {
    await cluster.stop();
  }
}

/** Plays the DBA: waits for the pending request, shows it, and approves or denies it with the CLI. */
async function actAsDba(storePath: string, sql: string, step: NonNullable<TourStep['approver']>, env: Record<string, string>, configDir: string, out: (s?: string) => void): Promise<void> {
  const deadline = Date.now() + 30_000;
  let id: string | undefined;
  while (!id && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    if (!existsSync(storePath)) continue;
    const store = openApprovalStore(storePath);
    try {
      id = store.list(new Date(), { status: 'pending' }).find((a) => a.subject.input['sql'] === sql)?.id;
    } finally {
      store.close();
    }
  }
  if (!id) throw new Error('the demo approval request never appeared in the approvals store');
  const cli = (args: string[]) => execFileSync(process.execPath, [CLI, ...args, '--config', configDir], { env, encoding: 'utf8' });
  out(`   … the call waits. Meanwhile a DBA, in another terminal:`);
  out(`   $ drawbridge approvals show ${id}`);
  out(indent(cli(['approvals', 'show', id]).trimEnd(), '     '));
  out(`   $ drawbridge approvals ${step.decision} ${id} ${step.args.join(' ')}`);
  out(indent(cli(['approvals', step.decision, id, ...step.args]).trimEnd(), '     '));
}

function indent(text: string, pad = '   '): string {
  return text
    .split('\n')
    .map((l) => `${pad}${l}`)
    .join('\n');
}

function tcpPort(value: string | undefined, fallback: number, flag: string): number {
  const port = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TypeError(`${flag} must be a TCP port number`);
  return port;
}

/**
 * `demo --http`: the remote deployment on one machine. A throwaway PostgreSQL,
 * a development OpenID provider (loopback only, accounts without passwords),
 * and the gateway over Streamable HTTP with OIDC identities, configured from
 * the repository's tools/ and policies/ (the local identity replaced by OIDC).
 * The person then connects an MCP client through `drawbridge connect`.
 */
async function runHttpDemo(o: { port: number; httpPort: number; idpPort: number; configDir: string }): Promise<number> {
  const out = (s = '') => process.stdout.write(`${s}\n`);
  const resource = `http://127.0.0.1:${o.httpPort}/mcp`;
  out(`Starting a throwaway PostgreSQL on 127.0.0.1:${o.port} …`);
  const cluster = await startCluster({ port: o.port });
  const closers: Array<() => Promise<void>> = [() => cluster.stop()];
  try {
    const seeded = await seedDemo(cluster, { database: 'shop', gatewayPassword: DEMO_PASSWORD });
    out('Seeded database "shop" (customers with sample PII, orders, products, a view, audit notes).');
    const idp = await startDevIdp({ port: o.idpPort, accounts: DEMO_ACCOUNTS, defaultAudience: resource });
    closers.unshift(() => idp.stop());
    out(`Started a development OpenID provider at ${idp.issuer} (loopback only; never for production).`);

    // The repository's tools and policies, with an OIDC identity instead of the local one.
    const dir = join(o.configDir, '.drawbridge', 'http-demo');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'tools'), { recursive: true });
    mkdirSync(join(dir, 'policies'), { recursive: true });
    for (const sub of ['tools', 'policies'] as const) {
      for (const name of readdirSync(join(o.configDir, sub))) {
        if (name.endsWith('.yaml') && !(sub === 'policies' && name === 'gateway.yaml')) copyFileSync(join(o.configDir, sub, name), join(dir, sub, name));
      }
    }
    writeFileSync(
      join(dir, 'policies', 'gateway.yaml'),
      `# Written by drawbridge demo --http: OIDC identities from the development provider.
kind: gateway
identity:
  mode: oidc
  issuer: ${idp.issuer}
  audience: ${resource}
  groups_claim: groups
  required_scopes: [mcp]
journal: { path: journal.db }
approval: { wait: 2m, store: approvals.db }
`,
    );
    const gateway = await openGateway({ configDir: dir, env: { ...process.env, SHOP_DATABASE_URL: seeded.gatewayUrl } });
    closers.unshift(() => gateway.close());
    const identity = gateway.config.identity;
    if (identity?.mode !== 'oidc') throw new TypeError('the HTTP demo config must have an OIDC identity');
    const http = await serveHttp(gateway, createOidcVerifier(identity), { host: '127.0.0.1', port: o.httpPort });
    closers.unshift(() => http.close());

    const bridge = { mcpServers: { drawbridge: { command: 'node', args: [CLI, 'connect', http.url, '--client-id', DEV_CLIENTS.cli.clientId] } } };
    const snippet = join(o.configDir, '.drawbridge', 'demo-http-mcp.json');
    writeFileSync(snippet, `${JSON.stringify(bridge, null, 2)}\n`);
    out(`
Drawbridge is serving over HTTP at ${http.url} — every request needs a token from ${idp.issuer}.
Everything stays up until you press Ctrl-C.

  People at the provider (no passwords, development only):
    alice  groups analysts: reads are allowed, writes wait for a DBA
    dana   groups dba:      approves writes

  Connect an MCP client through the bridge (stdio). Add this to its MCP config (also written to ${snippet}):
${indent(JSON.stringify(bridge, null, 2), '    ')}
  The bridge prints a code on stderr the first time: open ${idp.deviceUri}, enter it, sign in as alice.
  Or try it in a terminal, typing MCP messages by hand:
    node ${CLI} connect ${http.url} --client-id ${DEV_CLIENTS.cli.clientId}

  Approve a write as dana (the agent's call waits up to 2 minutes):
    export DRAWBRIDGE_APPROVER_TOKEN=$(node ${CLI} token ${http.url} --client-id ${DEV_CLIENTS.cli.clientId} --token-cache ${join(o.configDir, '.drawbridge', 'dana-token.json')})   # sign in as dana
    node ${CLI} approvals list --config ${dir}
    node ${CLI} approvals approve ap_… --config ${dir}

  The journal: node ${CLI} journal export --config ${dir} --format csv`);
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    out('\nStopping the gateway, the provider and the throwaway PostgreSQL …');
    return 0;
  } finally {
    for (const close of closers) await close().catch(() => undefined);
  }
}
