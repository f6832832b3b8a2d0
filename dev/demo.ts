// `drawbridge demo`: the main job out of the box. Starts a throwaway
// PostgreSQL seeded with sample PII, runs a short guided tour through a real
// MCP client talking to `drawbridge serve` over stdio (masking, a denial, the
// journal), then keeps the database up and prints how to connect your own
// MCP client until SIGINT/SIGTERM, and stops everything it started. `--http`
// runs the remote deployment on one machine instead: the gateway over
// Streamable HTTP with OIDC identities from a development OpenID provider.
//
// Everything the demo writes (its copy of the shipped tools/ and policies/,
// the journal, approvals, mcp.json) goes to a working directory of the user's
// (--dir, else $XDG_STATE_HOME/drawbridge/demo, else ./.drawbridge/demo),
// never into the package: a global install must work as well as a clone.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError, type CommandValues } from '../src/cli/commands.js';
import type { CliIo } from '../src/cli/io.js';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { startCluster, type Cluster } from './cluster.js';
import { formatDuration } from '../src/config/units.js';
import { seedDemo } from './seed.js';
import { exportLines } from '../src/journal/export.js';
import { verifyJournal } from '../src/journal/verify.js';
import { loadConfig } from '../src/config/load.js';
import { openSqliteApprovals as openApprovalStore } from '../src/state/sqlite/approvals.js';
import { serveHttp } from '../src/http/server.js';
import { createOidcVerifier } from '../src/identity/oidc.js';
import { openGateway } from '../src/pipeline/gateway.js';
import { installProcessGuard } from '../src/server-guard.js';
import { OidcProviderMissingError } from './idp/missing.js';

const DEMO_PORT = 54329;
const DEMO_HTTP_PORT = 54380;
const DEMO_IDP_PORT = 54381;
/** The HTTP demo's people: their groups match the repository's policies (analysts read, a dba approves writes). */
export const DEMO_ACCOUNTS = { alice: { groups: ['analysts'] }, dana: { groups: ['dba'] } } as const;
const DEMO_PASSWORD = 'drawbridge-demo';

const here = fileURLToPath(new URL('.', import.meta.url));
/** dist/dev → the package root, which ships the demo's tools/ and policies/. */
const PACKAGE_ROOT = resolve(here, '..', '..');
/** The built `drawbridge` binary (dist/src/cli.js), which the tour and the printed instructions run. */
const CLI = resolve(here, '..', 'src', 'cli.js');

interface TourStep {
  readonly title: string;
  readonly sql: string;
  /** A DBA acts on the approval request from a second process while the call waits. */
  readonly approver?: { readonly decision: 'approve' | 'deny'; readonly args: readonly string[] };
}

const TOUR: readonly TourStep[] = [
  {
    title: 'A read: PII columns are masked (email, SSN, phone by column rule; card keeps its last 4)',
    sql: 'SELECT id, full_name, email, ssn, phone, card_number, city FROM customers ORDER BY id LIMIT 3',
  },
  {
    title: 'Aliases and functions do not escape masking (lineage follows the data)',
    sql: "SELECT c.email AS contact, upper(c.ssn) AS x, row_to_json(c)->>'iban' AS j FROM customers c ORDER BY id LIMIT 2",
  },
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

type DemoOptions = CommandValues<'demo'>;

/** Where the demo works: --dir, else $XDG_STATE_HOME/drawbridge/demo, else ./.drawbridge/demo. */
export function demoDirectory(dir: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  if (dir !== undefined) return resolve(cwd, dir);
  const state = env['XDG_STATE_HOME'];
  // The XDG spec: a relative path is invalid and must be ignored.
  if (state && isAbsolute(state)) return join(state, 'drawbridge', 'demo');
  return resolve(cwd, '.drawbridge', 'demo');
}

/**
 * The config the demo runs with: the operator's own (--config), or a fresh
 * copy of the shipped tools/ and policies/ in the working directory (rewritten
 * each run, so the tour always matches the package; copy it elsewhere to edit).
 */
function demoConfig(values: DemoOptions, dir: string, cwd: string): string {
  if (values.config !== undefined) return resolve(cwd, values.config);
  for (const sub of ['tools', 'policies'] as const) {
    mkdirSync(join(dir, sub), { recursive: true });
    for (const name of readdirSync(join(PACKAGE_ROOT, sub))) if (name.endsWith('.yaml')) copyFileSync(join(PACKAGE_ROOT, sub, name), join(dir, sub, name));
  }
  return dir;
}

export async function runDemo(values: DemoOptions, io: CliIo): Promise<number> {
  const { env, cwd } = io;
  const port = tcpPort(values.port, DEMO_PORT, '--port');
  if (values.http && values['exit-after-tour']) throw new CliError('demo --http has no tour to exit after: it serves until Ctrl-C. Drop --exit-after-tour.');
  if (!values.http && (values['http-port'] !== undefined || values['idp-port'] !== undefined))
    throw new CliError('--http-port and --idp-port apply to demo --http only.');
  const dir = demoDirectory(values.dir, env, cwd);
  if (values.http) {
    const httpPort = tcpPort(values['http-port'], DEMO_HTTP_PORT, '--http-port');
    const idpPort = tcpPort(values['idp-port'], DEMO_IDP_PORT, '--idp-port');
    await ensurePortsFree([
      [port, '--port'],
      [httpPort, '--http-port'],
      [idpPort, '--idp-port'],
    ]);
    mkdirSync(dir, { recursive: true });
    return runHttpDemo({ port, httpPort, idpPort, dir, source: values.config !== undefined ? resolve(cwd, values.config) : PACKAGE_ROOT }, io);
  }
  await ensurePortsFree([[port, '--port']]);
  mkdirSync(dir, { recursive: true });
  const configDir = demoConfig(values, dir, cwd);
  const config = loadConfig(configDir);
  const out = (s = '') => void io.stdout.write(`${s}\n`);

  out(`Working directory: ${dir}`);
  out(`Starting a throwaway PostgreSQL on 127.0.0.1:${port} …`);
  const cluster = await startDemoCluster(port);
  try {
    const seeded = await seedDemo(cluster, { database: 'shop', gatewayPassword: DEMO_PASSWORD });
    out(`Seeded database "shop" (customers with sample PII, orders, products, a view, audit notes).`);
    out(`The gateway connects as the least-privilege role drawbridge_gateway.\n`);
    // The demo DBA's approver token (config: approval.approvers, token ${DRAWBRIDGE_DBA_TOKEN}).
    const dbaToken = env['DRAWBRIDGE_DBA_TOKEN'] || randomBytes(18).toString('hex');
    const childEnv: Record<string, string> = { ...definedOnly(env), SHOP_DATABASE_URL: seeded.gatewayUrl, DRAWBRIDGE_DBA_TOKEN: dbaToken };
    // Approval requests and grants belong to the throwaway database of one run: a
    // request left from an earlier run (e.g. a denial nobody picked up) would
    // answer this run's identical call. The journal stays: it is the record.
    for (const suffix of ['', '-wal', '-shm']) rmSync(`${config.approval.store}${suffix}`, { force: true });

    if (!values['no-tour']) await tour(configDir, config.journal.path, config.approval.store, childEnv, out);
    if (values['exit-after-tour']) return 0;

    const mcpJson = {
      mcpServers: { drawbridge: { command: process.execPath, args: [CLI, 'serve', '--config', configDir], env: { SHOP_DATABASE_URL: seeded.gatewayUrl } } },
    };
    const snippet = join(dir, 'mcp.json');
    writeFileSync(snippet, `${JSON.stringify(mcpJson, null, 2)}\n`);
    const cli = `${shellWord(process.execPath)} ${shellWord(CLI)}`;
    const cfg = `--config ${shellWord(configDir)}`;
    const wait = formatDuration(config.approval.waitMs);
    out(`
Drawbridge is ready for your own MCP client. The database stays up until you press Ctrl-C.

  Your client's MCP config (absolute paths; written to ${snippet}):
${indent(JSON.stringify(mcpJson, null, 2), '    ')}

  MCP Inspector, with that file (2.x wants Node 22; add --cli … --method tools/list for the command line):
    npx @modelcontextprotocol/inspector --config ${shellWord(snippet)} --server drawbridge
    npx @modelcontextprotocol/inspector --cli --config ${shellWord(snippet)} --server drawbridge --method tools/list

  Then try: tools/call run_sql {"connection":"shop","sql":"select email, city from customers limit 5"}
  Afterwards:
    ${cli} journal export ${cfg} --format csv
    ${cli} journal verify ${cfg}
    ${cli} policy explain ${cfg} --tool run_sql --connection shop --sql "delete from orders"

  Approving writes your agent asks for (a call waits ${wait}, then answers "pending"; calling again with the same input picks up the decision):
    export DRAWBRIDGE_DBA_TOKEN=${dbaToken} DRAWBRIDGE_APPROVER_TOKEN=${dbaToken}
    ${cli} approvals list ${cfg}
    ${cli} approvals approve ap_… ${cfg} --grant 15m`);
    await untilStopped(io);
    out('\nStopping the throwaway PostgreSQL …');
    return 0;
  } finally {
    await cluster.stop();
  }
}

/** The guided tour: a real MCP SDK client runs `drawbridge serve` over stdio and calls run_sql. */
async function tour(configDir: string, journalPath: string, storePath: string, env: Record<string, string>, out: (s?: string) => void): Promise<void> {
  const client = new Client({ name: 'drawbridge-demo-tour', version: '1.0.0' });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve', '--config', configDir], env, stderr: 'ignore' }));
  try {
    const { tools } = await client.listTools();
    out(`Connected to drawbridge over stdio with the MCP SDK client. Tools: ${tools.map((t) => t.name).join(', ')}`);
    for (const step of TOUR) {
      out(`\n── ${step.title}`);
      out(`   run_sql  ${step.sql}`);
      const call = client.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql: step.sql } }, { timeout: 300_000, resetTimeoutOnProgress: true });
      if (step.approver)
        await actAsDba(storePath, step.sql, step.approver, { ...env, DRAWBRIDGE_APPROVER_TOKEN: env['DRAWBRIDGE_DBA_TOKEN'] ?? '' }, configDir, out);
      const result = await call;
      const text = (result.content as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');
      out(`${result.isError ? '   ✗ refused' : '   ✓ answered'}\n${indent(text)}`);
    }
  } finally {
    await client.close();
  }
  out(`\n── The journal: every call above, hash-chained (${journalPath})`);
  const lines = [...exportLines(journalPath, 'csv')];
  for (const line of [lines[0], ...lines.slice(-TOUR.length)]) if (line) out(indent(line.length > 220 ? `${line.slice(0, 217)}…` : line));
  const verdict = verifyJournal(journalPath);
  out(`   journal verify: ${verdict.ok ? `OK, ${verdict.records} records, head ${verdict.head.slice(0, 16)}…` : `FAILED at #${verdict.firstBad?.seq}`}`);
}

/**
 * Resolves on the request to stop (SIGINT or SIGTERM). The interval keeps the
 * event loop alive: signal listeners alone do not, and without it Node would
 * exit (and its exit hook stop the database) right after the instructions were printed.
 */
function untilStopped(io: CliIo): Promise<void> {
  return new Promise<void>((done) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    io.onStop(() => {
      clearInterval(keepAlive);
      done();
    });
  });
}

/** A throwaway cluster on a fixed port; a port taken meanwhile is the user's to resolve, not a crash. */
async function startDemoCluster(port: number): Promise<Cluster> {
  try {
    return await startCluster({ port });
  } catch (error) {
    if (/address already in use|could not (create|bind)/i.test((error as Error).message)) throw portTaken(port, '--port');
    throw new CliError(`Could not start the throwaway PostgreSQL: ${(error as Error).message}`, 1);
  }
}

function portTaken(port: number, flag: string): CliError {
  return new CliError(
    `Port ${port} on 127.0.0.1 is already in use (another drawbridge demo still running?). ` +
      `Stop that program, or pick another port: drawbridge demo ${flag} ${port + 1}`,
    1,
  );
}

/** Fails early, with the flag to change, when a port the demo needs is taken. */
async function ensurePortsFree(ports: ReadonlyArray<readonly [number, string]>): Promise<void> {
  for (const [port, flag] of ports) {
    const free = await new Promise<boolean>((done) => {
      const probe = createServer();
      probe.once('error', () => done(false));
      probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => probe.close(() => done(true)));
    });
    if (!free) throw portTaken(port, flag);
  }
}

/** A word for a POSIX shell: as is when it is plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

/** Plays the DBA: waits for the pending request, shows it, and approves or denies it with the CLI. */
async function actAsDba(
  storePath: string,
  sql: string,
  step: NonNullable<TourStep['approver']>,
  env: Record<string, string>,
  configDir: string,
  out: (s?: string) => void,
): Promise<void> {
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
  const port = value === undefined ? fallback : /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new CliError(`${flag} takes a TCP port number from 1 to 65535 (got ${JSON.stringify(value)}).`);
  return port;
}

/**
 * The HTTP demo's config in `dir` (emptied first): the tools and policies of
 * `source`, with an OIDC identity from `issuer` for `resource` instead of the
 * local one, and the journal and approvals beside them.
 */
export function writeHttpDemoConfig(o: { source: string; dir: string; issuer: string; resource: string; wait: string }): void {
  rmSync(o.dir, { recursive: true, force: true });
  for (const sub of ['tools', 'policies'] as const) {
    mkdirSync(join(o.dir, sub), { recursive: true });
    for (const name of readdirSync(join(o.source, sub))) {
      if (name.endsWith('.yaml') && !(sub === 'policies' && name === 'gateway.yaml')) copyFileSync(join(o.source, sub, name), join(o.dir, sub, name));
    }
  }
  writeFileSync(
    join(o.dir, 'policies', 'gateway.yaml'),
    `# Written by drawbridge demo --http: OIDC identities from the development provider.
kind: gateway
identity:
  mode: oidc
  issuer: ${o.issuer}
  audience: ${o.resource}
  groups_claim: groups
  required_scopes: [mcp]
journal: { path: journal.db }
approval: { wait: ${o.wait}, store: approvals.db }
`,
  );
}

/**
 * The development OpenID provider, loaded for `demo --http` only: it loads oidc-provider,
 * which warns about the runtime on Node 20 as soon as it is imported.
 */
async function loadDevIdp(): Promise<typeof import('./idp.js')> {
  try {
    return await import('./idp.js');
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes("'oidc-provider'")) throw new OidcProviderMissingError({ cause: error });
    throw error;
  }
}

/**
 * `demo --http`: the remote deployment on one machine. A throwaway PostgreSQL,
 * a development OpenID provider (loopback only, accounts without passwords),
 * and the gateway over Streamable HTTP with OIDC identities, configured from
 * the repository's tools/ and policies/ (the local identity replaced by OIDC).
 * The person then connects an MCP client through `drawbridge connect`.
 */
async function runHttpDemo(o: { port: number; httpPort: number; idpPort: number; dir: string; source: string }, io: CliIo): Promise<number> {
  const out = (s = '') => void io.stdout.write(`${s}\n`);
  const resource = `http://127.0.0.1:${o.httpPort}/mcp`;
  out(`Working directory: ${o.dir}`);
  out(`Starting a throwaway PostgreSQL on 127.0.0.1:${o.port} …`);
  const cluster = await startDemoCluster(o.port);
  const closers: Array<() => Promise<void>> = [() => cluster.stop()];
  try {
    const seeded = await seedDemo(cluster, { database: 'shop', gatewayPassword: DEMO_PASSWORD });
    out('Seeded database "shop" (customers with sample PII, orders, products, a view, audit notes).');
    const { DEV_CLIENTS, startDevIdp } = await loadDevIdp();
    const idp = await startDevIdp({ port: o.idpPort, accounts: DEMO_ACCOUNTS, defaultAudience: resource }).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? portTaken(o.idpPort, '--idp-port') : error;
    });
    closers.unshift(() => idp.stop());
    out(`Started a development OpenID provider at ${idp.issuer} (loopback only; never for production).`);

    const dir = join(o.dir, 'http');
    writeHttpDemoConfig({ source: o.source, dir, issuer: idp.issuer, resource, wait: '45s' });
    const gateway = await openGateway({ configDir: dir, env: { ...io.env, SHOP_DATABASE_URL: seeded.gatewayUrl } });
    closers.unshift(() => gateway.close());
    const identity = gateway.config.identity;
    if (identity?.mode !== 'oidc') throw new TypeError('the HTTP demo config must have an OIDC identity');
    // As `serve --http`: a fault nobody foresaw is logged and the demo keeps serving.
    installProcessGuard({ write: (line) => void io.stderr.write(line), debug: io.env['DRAWBRIDGE_DEBUG'] === '1' });
    // The web console, with the development provider's public PKCE client (no secret).
    const consoleClient = { clientId: gateway.config.console.clientId };
    const http = await serveHttp(gateway, createOidcVerifier(identity), { host: '127.0.0.1', port: o.httpPort, console: consoleClient }).catch(
      (error: unknown) => {
        throw /EADDRINUSE/.test(String((error as Error).message ?? error)) || (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
          ? portTaken(o.httpPort, '--http-port')
          : error;
      },
    );
    closers.unshift(() => http.close());

    const bridge = { mcpServers: { drawbridge: { command: process.execPath, args: [CLI, 'connect', http.url, '--client-id', DEV_CLIENTS.cli.clientId] } } };
    const direct = { mcpServers: { drawbridge: { type: 'http', url: http.url } } };
    const snippet = join(o.dir, 'http-mcp.json');
    writeFileSync(snippet, `${JSON.stringify(bridge, null, 2)}\n`);
    const cli = `${shellWord(process.execPath)} ${shellWord(CLI)}`;
    const cfg = `--config ${shellWord(dir)}`;
    const wait = formatDuration(gateway.config.approval.waitMs);
    const danaToken = `$(${cli} token ${http.url} --client-id ${DEV_CLIENTS.cli.clientId} --token-cache ${shellWord(join(o.dir, 'dana-token.json'))})`;
    out(`
Drawbridge is serving over HTTP at ${http.url} — every request needs a token from ${idp.issuer}.
Everything stays up until you press Ctrl-C.

  People at the provider (no passwords, development only):
    alice  groups analysts: reads are allowed, writes wait for a DBA
    dana   groups dba:      approves writes

  An MCP client that speaks Streamable HTTP and MCP authorization signs in by itself
  (it registers, opens the provider's page in your browser: pick alice, allow):
${indent(JSON.stringify(direct, null, 2), '    ')}

  Any other client, through the bridge (stdio; written to ${snippet}):
${indent(JSON.stringify(bridge, null, 2), '    ')}
  The bridge signs in first: run this once in a terminal (open the page it prints, enter the code, sign in as alice),
  and the bridge then starts with the cached token:
    ${cli} token ${http.url} --client-id ${DEV_CLIENTS.cli.clientId} > /dev/null

  Approve a write as dana in the browser: open ${new URL(http.url).origin}/console/ and sign in as dana
  (the agent's call waits ${wait}, then answers "pending"; calling again picks up the decision). Or with the CLI:
    export DRAWBRIDGE_APPROVER_TOKEN=${danaToken}   # sign in as dana
    ${cli} approvals list ${cfg}
    ${cli} approvals approve ap_… ${cfg}

  The journal: ${cli} journal export ${cfg} --format csv`);
    await untilStopped(io);
    out('\nStopping the gateway, the provider and the throwaway PostgreSQL …');
    return 0;
  } finally {
    for (const close of closers) await close().catch(() => undefined);
  }
}
