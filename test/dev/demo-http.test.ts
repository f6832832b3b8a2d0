// The README's remote walkthrough, as a newcomer runs it: `drawbridge demo
// --http` (throwaway PostgreSQL, development OpenID provider, gateway over
// HTTP), then an MCP client through `drawbridge connect`: the bridge prints a
// code, the person signs in as alice at the provider's pages, queries run
// masked, a write waits, and dana approves it with a token from `drawbridge
// token`. Every process is a real child process.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ToolListChangedNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runCliAsync, runInProcess, waitForOutput as waitFor } from '../support/cli.js';
import { freePort } from '../support/net.js';
import { playDeviceFlow } from '../support/oidc.js';

const children: ChildProcess[] = [];

const textOf = (r: unknown) => ((r as CallToolResult).content ?? []).map((c) => (c.type === 'text' ? c.text : '')).join('\n');

const dirs: string[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('drawbridge demo --http, through the bridge', () => {
  it('a newcomer signs in through the bridge, queries masked data, and a DBA approves a write', async () => {
    const cli = requireBuiltCli();
    const [pgPort, httpPort, idpPort] = [await freePort(), await freePort(), await freePort()];
    const workDir = mkdtempSync(join(tmpdir(), 'drawbridge-demo-http-'));
    dirs.push(workDir);
    // --no-tour is accepted (there is no tour over HTTP), as a newcomer may well type it.
    const demo = spawn(
      process.execPath,
      [cli, 'demo', '--http', '--no-tour', '--port', String(pgPort), '--http-port', String(httpPort), '--idp-port', String(idpPort), '--dir', workDir],
      { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(demo);
    let demoOut = '';
    demo.stdout!.setEncoding('utf8').on('data', (c: string) => (demoOut += c));
    demo.stderr!.setEncoding('utf8').on('data', (c: string) => (demoOut += c));
    const url = (await waitFor(() => demoOut, /serving over HTTP at (http:\/\/127\.0\.0\.1:\d+\/mcp)/, 'the demo to serve', 120_000))[1]!;
    const issuer = `http://127.0.0.1:${idpPort}`;
    const httpDir = (await waitFor(() => demoOut, /approvals list --config (\S+)/, 'the approval instructions'))[1]!;

    // The console it prints sends the browser to the development provider, with its PKCE client.
    const consoleUrl = (await waitFor(() => demoOut, /in the browser: open (\S+) and sign in as dana/, 'the console URL'))[1]!;
    expect(consoleUrl).toBe(`http://127.0.0.1:${httpPort}/console/`);
    let to = new URL(consoleUrl);
    // The console's own sign-in page first, then the provider.
    for (let hop = 0; hop < 3 && to.origin !== issuer; hop++) {
      const answer = await fetch(to, { redirect: 'manual' });
      expect([302, 303]).toContain(answer.status);
      to = new URL(answer.headers.get('location') ?? '', to);
    }
    expect(to.origin).toBe(issuer);
    expect(to.searchParams.get('client_id')).toBe('drawbridge-console');
    expect(to.searchParams.get('code_challenge_method')).toBe('S256');

    // The agent's side: the bridge, exactly as the printed mcp.json runs it (without touching ~/.cache).
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [cli, 'connect', url, '--client-id', 'drawbridge-cli', '--no-token-cache'],
      cwd: REPO_ROOT,
      stderr: 'pipe',
    });
    let bridgeErr = '';
    transport.stderr?.on('data', (c: Buffer) => (bridgeErr += c.toString('utf8')));
    const client = new Client({ name: 'newcomer', version: '1.0.0' });
    // Without a token the bridge answers initialize itself at once; once alice signed in, it says the tools changed.
    let toolsChanged!: () => void;
    const changed = new Promise<void>((resolve) => (toolsChanged = resolve));
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => toolsChanged());
    await client.connect(transport);
    const code = (await waitFor(() => bridgeErr, /open (\S+) and enter (\S+)/, 'the sign-in prompt'))[2]!;
    expect(bridgeErr).toContain(`${issuer}/device`);
    await playDeviceFlow(issuer, code, 'alice');
    await changed;

    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['run_sql']);
      const read = await client.callTool({
        name: 'run_sql',
        arguments: { connection: 'shop', sql: 'SELECT id, email, city FROM customers ORDER BY id LIMIT 2' },
      });
      expect(read.isError, textOf(read)).toBeFalsy();
      expect(textOf(read)).not.toMatch(/@example\.(com|org|net)/);
      const ddl = await client.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql: 'DROP TABLE customers' } });
      expect(textOf(ddl)).toMatch(/^policy\.denied: /);

      // A write waits for a DBA; dana signs in with `drawbridge token` and approves it.
      const sql = "UPDATE orders SET status = 'cancelled' WHERE id = 1";
      const write = client.callTool({ name: 'run_sql', arguments: { connection: 'shop', sql } }, undefined, { timeout: 180_000, resetTimeoutOnProgress: true });
      const tokenRun = spawn(process.execPath, [cli, 'token', url, '--client-id', 'drawbridge-cli', '--no-token-cache'], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.push(tokenRun);
      let tokenOut = '';
      let tokenErr = '';
      tokenRun.stdout!.setEncoding('utf8').on('data', (c: string) => (tokenOut += c));
      tokenRun.stderr!.setEncoding('utf8').on('data', (c: string) => (tokenErr += c));
      const danaCode = (await waitFor(() => tokenErr, /open (\S+) and enter (\S+)/, 'the token sign-in prompt'))[2]!;
      await playDeviceFlow(issuer, danaCode, 'dana');
      const danaToken = (await waitFor(() => tokenOut, /^(\S+)\n$/, 'the token'))[1]!;

      // Waiting for the request to appear: the listing runs in process (the approval itself is the binary's).
      let id: string | undefined;
      for (let i = 0; i < 100 && !id; i++) {
        const list = await runInProcess(['approvals', 'list', '--json', '--config', httpDir]);
        id = (JSON.parse(list.stdout || '[]') as Array<{ id: string; status: string }>).find((a) => a.status === 'pending')?.id;
        if (!id) await new Promise((r) => setTimeout(r, 200));
      }
      expect(id).toBeDefined();
      const approved = await runCliAsync(['approvals', 'approve', id!, '--config', httpDir], { env: { DRAWBRIDGE_APPROVER_TOKEN: danaToken } });
      expect(approved.status, approved.stderr).toBe(0);
      expect(approved.stdout).toMatch(/approve by dana recorded/);
      const done = await write;
      expect(done.isError, textOf(done)).toBeFalsy();
      expect(textOf(done), textOf(done)).toMatch(/^shop · update \(write\) on public\.orders · UPDATE, 1 affected · /);

      const journal = await runCliAsync(['journal', 'export', '--format', 'jsonl', '--config', httpDir]);
      const calls = journal.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, any>);
      expect(calls.map((c) => c['call']?.principal)).toContainEqual({ subject: 'alice', groups: ['analysts'], kind: 'oidc', principal: 'person', issuer });
      expect(journal.stdout).not.toContain(danaToken);
    } finally {
      await client.close();
    }

    const exited = new Promise<number | null>((resolve) => demo.once('exit', (c) => resolve(c)));
    demo.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(httpDir).toBe(join(workDir, 'http'));
  });
});
