// `drawbridge demo`: the main job out of the box. Starts a throwaway
// PostgreSQL seeded with sample PII, runs a short guided tour through a real
// MCP client talking to `drawbridge serve` over stdio (masking, a denial, the
// journal), then keeps the database up and prints how to connect your own
// MCP client until Ctrl-C.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
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

export const DEMO_PORT = 54329;
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
  const { values } = parseArgs({ args, options: { port: { type: 'string' }, config: { type: 'string' }, 'no-tour': { type: 'boolean', default: false }, 'exit-after-tour': { type: 'boolean', default: false } }, strict: true });
  const port = values.port ? Number(values.port) : DEMO_PORT;
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new TypeError('--port must be a TCP port number');
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
