// `drawbridge serve --http` as a process: it announces where it listens, MCP
// clients with a provider token work end to end, SIGTERM stops it cleanly (draining
// a long read while refusing new calls),
// and it refuses to serve HTTP without OIDC identities or with a bad address
// (those refusals run in process: the command line's own function).

import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runInProcess, waitForOutput } from '../support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startTestIdp, type TestIdp } from '../support/oidc.js';
import { freePort } from '../support/net.js';

let idp: TestIdp;
let db: FreshDatabase;
let dir: string;
let child: ChildProcess | null = null;

const POLICY = `kind: policy
rules:
  - name: developers-read
    match: { tool: run_sql, access: read, groups: [developers] }
    effect: allow
  - name: developers-sleep
    match: { tool: run_sql, functions: [pg_sleep], groups: [developers] }
    effect: allow
`;

function startServe(args: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const proc = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, DB_URL: db.gatewayUrl },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child = proc;
  let stderr = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve --http did not announce itself:\n${stderr}`)), 20_000);
    proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const url = /over Streamable HTTP at (http:\/\/[^\s"]+)/.exec(stderr)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve({ child: proc, url, stderr: () => stderr });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${stderr}`));
    });
  });
}

describe('drawbridge serve --http', () => {
  let port: number;
  let resource: string;

  beforeAll(async () => {
    requireBuiltCli();
    port = await freePort();
    resource = `http://127.0.0.1:${port}/mcp`;
    idp = await startTestIdp();
    db = await freshDatabase('serve_http');
    dir = writeConfig({ oidc: { issuer: idp.issuer, audience: resource }, policy: POLICY });
  });

  afterAll(async () => {
    child?.kill('SIGKILL');
    await idp?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves MCP to a token holder, then stops on SIGTERM', async () => {
    const served = await startServe(['--http', `127.0.0.1:${port}`]);
    expect(served.url).toBe(resource);
    expect(served.stderr()).toContain(`tokens from ${idp.issuer}`);

    const unauthenticated = await fetch(resource, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{}',
    });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers.get('www-authenticate')).toContain(`resource_metadata="http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp"`);

    const { access_token } = await idp.deviceLogin(resource, 'alice', 'mcp');
    const client = new Client({ name: 'serve-http-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(served.url), { requestInit: { headers: { Authorization: `Bearer ${access_token}` } } }));
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
    const r = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM customers' } })) as CallToolResult;
    expect(r.isError, JSON.stringify(r.content)).toBeFalsy();
    await client.close();

    // The console is on by default, signing approvers in as drawbridge-console.
    for (let i = 0; i < 100 && !served.stderr().includes('console at'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(served.stderr()).toContain(`approvers sign in to the console at http://127.0.0.1:${port}/console/`);
    const home = await fetch(`http://127.0.0.1:${port}/console/`, { redirect: 'manual' });
    expect(home.status).toBe(303);
    expect(home.headers.get('location')).toBe('/console/login');
    const login = await fetch(`http://127.0.0.1:${port}/console/login`, { redirect: 'manual' });
    const to = new URL(login.headers.get('location') ?? '');
    expect(to.href.startsWith(idp.issuer)).toBe(true);
    expect(to.searchParams.get('client_id')).toBe('drawbridge-console');

    const exited = new Promise<number | null>((resolve) => served.child.once('exit', (code) => resolve(code)));
    served.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
  });

  it('SIGHUP reloads over --http too: the next call on the same session is decided by the new policy; still serving', async () => {
    const served = await startServe(['--http', `127.0.0.1:${port}`]);
    const { access_token } = await idp.deviceLogin(resource, 'alice', 'mcp');
    const client = new Client({ name: 'serve-http-reload', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(served.url), { requestInit: { headers: { Authorization: `Bearer ${access_token}` } } }));
    const count = () =>
      client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM customers' } }) as Promise<CallToolResult>;
    const rules = join(dir, 'policies', 'rules.yaml');
    try {
      expect((await count()).isError).toBeFalsy();
      writeFileSync(rules, `${POLICY}  - name: no-customers\n    match: { tool: run_sql, tables: [public.customers] }\n    effect: deny\n`);
      served.child.kill('SIGHUP');
      await waitForOutput(served.stderr, /"msg":"config reloaded","by":"SIGHUP"/, 'the reload');
      const denied = await count();
      expect(denied.isError).toBe(true);
      expect(JSON.stringify(denied.content)).toContain('rule no-customers');
    } finally {
      writeFileSync(rules, POLICY);
      await client.close();
    }
    const exited = new Promise<number | null>((resolve) => served.child.once('exit', (code) => resolve(code)));
    served.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    child = null;
  });

  it('SIGTERM during a long read: /readyz false first, a new call refused (gateway.shutting_down), the read answered, exit 0', async () => {
    const served = await startServe(['--http', `127.0.0.1:${port}`]);
    const { access_token } = await idp.deviceLogin(resource, 'alice', 'mcp');
    const client = new Client({ name: 'serve-http-drain', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(served.url), { requestInit: { headers: { Authorization: `Bearer ${access_token}` } } }));
    expect(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.text())).toBe('ok\n');
    const long = client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT pg_sleep(2) AS slept' } }) as Promise<CallToolResult>;
    // A condition poll: the call is running once its intent is journaled (durable before the backend sees it).
    const journaled = (): string | null => {
      const j = new Database(join(dir, 'journal.db'), { readonly: true });
      try {
        const row = j.prepare("SELECT call_id FROM records WHERE type = 'call' AND data LIKE '%pg_sleep(2)%'").get() as { call_id: string } | undefined;
        return row?.call_id ?? null;
      } finally {
        j.close();
      }
    };
    let callId: string | null = null;
    for (let i = 0; i < 500 && callId === null; i++) {
      callId = journaled();
      if (callId === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(callId).not.toBeNull();
    const exited = new Promise<number | null>((resolve) => served.child.once('exit', (code) => resolve(code)));
    served.child.kill('SIGTERM');
    let status = 200;
    for (let i = 0; i < 500 && status === 200; i++) {
      status = (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(503);
    const refused = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT 1 AS one' } })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(refused.content[0]).toMatchObject({ text: expect.stringMatching(/^gateway\.shutting_down: /) });
    const done = await long;
    expect(done.isError, JSON.stringify(done.content)).toBeFalsy();
    expect(await exited).toBe(0);
    child = null;
    const j = new Database(join(dir, 'journal.db'), { readonly: true });
    try {
      const outcome = j.prepare("SELECT data FROM records WHERE type = 'outcome' AND call_id = ?").get(callId) as { data: string };
      expect(JSON.parse(outcome.data)).toMatchObject({ status: 'ok' });
    } finally {
      j.close();
    }
  });

  it('refuses HTTP without OIDC identities, and bad listen addresses', async () => {
    const local = writeConfig({ policy: POLICY });
    try {
      const r = await runInProcess(['serve', '--config', local, '--http', '127.0.0.1:0']);
      // A configuration to fix, not a usage mistake.
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/serve --http needs OIDC identities/);
    } finally {
      rmSync(local, { recursive: true, force: true });
    }
    for (const bad of ['8080', 'localhost', '127.0.0.1:99999', 'http://127.0.0.1:80']) {
      const r = await runInProcess(['serve', '--config', dir, '--http', bad]);
      expect(r.status, bad).toBe(2);
      expect(r.stderr).toMatch(/--http takes HOST:PORT/);
    }
    const r = await runInProcess(['serve', '--config', dir, '--public-url', 'https://x/mcp']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--public-url applies to --http only/);
  });

  it('says which secret is missing when the console client secret cannot be read, and does not listen', async () => {
    const secretless = writeConfig({ oidc: { issuer: idp.issuer, audience: resource }, policy: POLICY });
    appendFileSync(join(secretless, 'policies', 'gateway.yaml'), 'console:\n  client_id: drawbridge-console\n  client_secret: ${NO_SUCH_CONSOLE_SECRET}\n');
    try {
      const port = await freePort();
      const r = await runInProcess(['serve', '--config', secretless, '--http', `127.0.0.1:${port}`], { env: { DB_URL: db.gatewayUrl } });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/the console's client secret cannot be read \(console\.client_secret\): .*NO_SUCH_CONSOLE_SECRET/);
      expect(r.stderr).not.toMatch(/cannot listen/);
    } finally {
      rmSync(secretless, { recursive: true, force: true });
    }
  });

  it('serves no console with console: { enabled: false }', async () => {
    const off = writeConfig({ oidc: { issuer: idp.issuer, audience: resource }, policy: POLICY });
    appendFileSync(join(off, 'policies', 'gateway.yaml'), 'console: { enabled: false }\n');
    const saved = dir;
    dir = off;
    try {
      const other = await freePort();
      const served = await startServe(['--http', `127.0.0.1:${other}`]);
      expect((await fetch(`http://127.0.0.1:${other}/console/`, { redirect: 'manual' })).status).toBe(404);
      expect(served.stderr()).not.toContain('console at');
      served.child.kill('SIGTERM');
      await new Promise((resolve) => served.child.once('exit', resolve));
      child = null;
    } finally {
      dir = saved;
      rmSync(off, { recursive: true, force: true });
    }
  });

  it('warns when the advertised resource is not the configured audience', async () => {
    const other = await freePort();
    const served = await startServe(['--http', `127.0.0.1:${other}`]);
    expect(served.stderr()).toMatch(
      new RegExp(
        `tokens must be issued for audience ${resource.replace(/[.]/g, '\\.')}, but this server advertises the resource http://127\\.0\\.0\\.1:${other}/mcp`,
      ),
    );
    served.child.kill('SIGTERM');
    await new Promise((resolve) => served.child.once('exit', resolve));
    child = null;
  });
});
