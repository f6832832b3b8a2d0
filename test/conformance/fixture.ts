// The loopback-only fixture the official MCP conformance suite runs against: a real
// Drawbridge (`drawbridge serve --http`, the built binary) on test/conformance/config,
// a throwaway PostgreSQL database, the development OpenID provider and, in front of
// the gateway, a token-adding proxy. The suite cannot send bearer tokens, so the proxy
// adds a real one (device flow as a person, not a service: an in-client approval needs
// a person) — no identity mode exists in src for this. The suite also calls its tools
// with no arguments, so the proxy fills in each tool's fixed statement (FIXED_SQL);
// everything else passes through unchanged, Host header included, and the gateway's
// public URL is the proxy's, so its Host/Origin checks and token audience are real.

import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startCluster } from '../../dev/cluster.js';
import { freePort } from '../support/net.js';
import { startTestIdp } from '../support/oidc.js';

/** The repository root, from test/conformance (sources) or dist/test/conformance (built). */
const ROOT = ((): string => {
  const here = dirname(fileURLToPath(import.meta.url));
  return here.includes(`${join('dist', 'test')}`) ? resolve(here, '../../..') : resolve(here, '../..');
})();

export const CONFIG_DIR = join(ROOT, 'test', 'conformance', 'config');

/** The statement each suite tool runs (the suite sends `{}`): what the tool's policy rule then decides. */
export const FIXED_SQL: Readonly<Record<string, string>> = {
  test_simple_text: "SELECT 'This is a simple text response for testing.' AS text",
  test_error_handling: 'SELECT 1 AS never_run',
  test_input_required_result_elicitation: "SELECT 'approved by its requester' AS outcome",
  test_input_required_result_request_state: "SELECT 'approved by its requester' AS outcome",
  test_input_required_result_tampered_state: "SELECT 'approved by its requester' AS outcome",
  test_input_required_result_capabilities: "SELECT 'approved by its requester' AS outcome",
};

export interface ConformanceFixture {
  /** The proxy's MCP URL (what the suite is pointed at), also the gateway's public URL and the tokens' audience. */
  readonly url: string;
  /** The bearer token the proxy adds (a person's, from the device flow). */
  readonly token: string;
  /** The gateway's stderr so far (for a failing run's report). */
  gatewayLog(): string;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** A superuser URL of an existing cluster (the vitest one); default: a throwaway cluster of its own. */
  readonly adminUrl?: string;
  /** Progress lines. */
  readonly log?: (line: string) => void;
}

export async function startConformanceFixture(options: FixtureOptions = {}): Promise<ConformanceFixture> {
  const log = options.log ?? (() => {});
  const closing: Array<() => Promise<void> | void> = [];
  const close = async (): Promise<void> => {
    for (const step of closing.splice(0).reverse()) await step();
  };
  try {
    let adminUrl = options.adminUrl;
    if (adminUrl === undefined) {
      log('starting a throwaway PostgreSQL cluster');
      const cluster = await startCluster();
      closing.push(() => cluster.stop());
      adminUrl = cluster.superuserUrl;
    }
    const dbName = `conformance_${process.pid}_${Date.now().toString(36)}`;
    await admin(adminUrl, `CREATE DATABASE ${dbName}`);
    const admitted = adminUrl;
    closing.push(() => admin(admitted, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
    const dbUrl = new URL(adminUrl);
    dbUrl.pathname = `/${dbName}`;

    const idp = await startTestIdp({ accessTokenTtlSeconds: 3600 });
    closing.push(() => idp.stop());
    const proxyPort = await freePort();
    const gatewayPort = await freePort();
    const url = `http://127.0.0.1:${proxyPort}/mcp`;

    const dir = mkdtempSync(join(tmpdir(), 'drawbridge-conformance-'));
    closing.push(() => rmSync(dir, { recursive: true, force: true }));
    cpSync(CONFIG_DIR, dir, { recursive: true });
    writeFileSync(
      join(dir, 'policies', 'gateway.yaml'),
      `kind: gateway
identity: { mode: oidc, issuer: "${idp.issuer}", audience: "${url}", required_scopes: [mcp] }
journal: { path: journal.db }
approval: { wait: 0ms, store: approvals.db }
`,
    );

    log(`starting the gateway on 127.0.0.1:${gatewayPort} (public URL ${url})`);
    const gateway = await startGateway(dir, gatewayPort, url, dbUrl.toString());
    closing.push(() => gateway.stop());
    const { access_token: token } = await idp.deviceLogin(url, 'alice');
    const proxy = await startProxy(proxyPort, gatewayPort, token);
    closing.push(() => new Promise<void>((r) => proxy.close(() => r())));
    log(`proxy on ${url}`);
    return { url, token, gatewayLog: () => gateway.stderr(), close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function admin(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

interface RunningGateway {
  stderr(): string;
  stop(): Promise<void>;
}

/** The built CLI (`npm run build` first), serving until stopped; resolves once it says it serves. */
async function startGateway(configDir: string, port: number, publicUrl: string, dbUrl: string): Promise<RunningGateway> {
  const cli = join(ROOT, 'dist', 'src', 'cli.js');
  const child: ChildProcess = spawn(process.execPath, [cli, 'serve', '--config', configDir, '--http', `127.0.0.1:${port}`, '--public-url', publicUrl], {
    env: { PATH: process.env['PATH'] ?? '', DB_URL: dbUrl },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolveReady, reject) => {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('"msg":"serving ')) resolveReady();
    });
    child.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before serving:\n${stderr}`)));
  });
  return {
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Loopback only: adds the bearer token and the suite tools' fixed statements, passes everything else through. */
async function startProxy(port: number, gatewayPort: number, token: string): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => forward(req, res, withFixedArguments(Buffer.concat(chunks)), gatewayPort, token));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  if ((server.address() as AddressInfo).address !== '127.0.0.1') throw new TypeError('the conformance proxy listens on loopback only');
  return server;
}

/** A tools/call of a suite tool without `sql` gets the tool's fixed statement on connection db; any other body is passed as sent. */
export function withFixedArguments(body: Buffer): Buffer {
  let message: unknown;
  try {
    message = JSON.parse(body.toString('utf8'));
  } catch {
    return body;
  }
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return body;
  const m = message as { method?: unknown; params?: unknown };
  if (m.method !== 'tools/call' || typeof m.params !== 'object' || m.params === null) return body;
  const params = m.params as { name?: unknown; arguments?: unknown };
  const sql = typeof params.name === 'string' ? FIXED_SQL[params.name] : undefined;
  if (sql === undefined) return body;
  const given = typeof params.arguments === 'object' && params.arguments !== null ? (params.arguments as Record<string, unknown>) : {};
  if ('sql' in given) return body;
  return Buffer.from(JSON.stringify({ ...m, params: { ...params, arguments: { connection: 'db', ...given, sql } } }), 'utf8');
}

function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, gatewayPort: number, token: string): void {
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  delete headers['content-length'];
  delete headers['transfer-encoding'];
  const upstream = request(
    {
      host: '127.0.0.1',
      port: gatewayPort,
      method: req.method,
      path: req.url,
      headers: { ...headers, ...(body.length ? { 'content-length': body.length } : {}) },
    },
    (reply) => {
      res.writeHead(reply.statusCode ?? 502, reply.headers);
      reply.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  res.on('close', () => upstream.destroy());
  upstream.end(body);
}
