// `drawbridge demo` as a newcomer runs it, as a real child process: the tour,
// then the demo keeps serving (it used to exit two seconds after saying it
// stays up); every command it prints works as printed — the MCP Inspector's
// CLI (a client nobody here wrote), the mcp.json it writes from another
// directory, the drawbridge commands; SIGINT stops everything it started.
// Its refusals (a busy port, usage mistakes) run in process.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli, runInProcess, waitForOutput as waitFor } from '../support/cli.js';
import { freePort } from '../support/net.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-demo-test-'));
  dirs.push(dir);
  return dir;
}

/** The environment a newcomer's shell has: none of the test's secrets or config. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('DRAWBRIDGE_') || k === 'SHOP_DATABASE_URL' || k === 'XDG_STATE_HOME') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs one printed shell command line as a person would paste it. */
function sh(line: string, env: Record<string, string>, cwd = REPO_ROOT): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('/bin/sh', ['-c', line], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const NO_STACK = /^\s+at .+\(.+:\d+:\d+\)$/m;

async function acceptsConnections(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

describe('drawbridge demo', () => {
  it('tours, keeps serving until SIGINT, every printed command works as printed, then stops cleanly', async () => {
    const cli = requireBuiltCli();
    const dir = tempDir();
    const port = await freePort();
    const demo = spawn(process.execPath, [cli, 'demo', '--port', String(port), '--dir', dir], {
      cwd: tempDir(),
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(demo);
    let out = '';
    demo.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    demo.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    let exitCode: number | null = null;
    demo.once('exit', (c) => (exitCode = c));

    await waitFor(() => out, /ready for your own MCP client[\s\S]*journal export[\s\S]*approvals approve ap_… .*\n/, 'the demo to be ready', 240_000);
    // The tour ran through a real client: masking, the denial, the approvals, the journal.
    expect(out).toMatch(/DDL is denied[\s\S]*policy\.denied/);
    expect(out).toMatch(/approve by dba@example\.com recorded/);
    expect(out).toMatch(/journal verify: OK/);
    expect(out).not.toMatch(NO_STACK);

    // The bug this guards against: the process exited ~2 s after saying it stays up.
    await new Promise((r) => setTimeout(r, 4_000));
    expect(exitCode, out).toBeNull();

    const mcpJson = JSON.parse(readFileSync(join(dir, 'mcp.json'), 'utf8')) as {
      mcpServers: { drawbridge: { command: string; args: string[]; env: Record<string, string> } };
    };
    const entry = mcpJson.mcpServers.drawbridge;
    const dbUrl = entry.env['SHOP_DATABASE_URL']!;
    expect(await acceptsConnections(dbUrl)).toBe(true);

    // The written mcp.json works from anywhere: absolute paths, launched from /.
    const client = new Client({ name: 'newcomer', version: '1.0.0' });
    await client.connect(
      new StdioClientTransport({ command: entry.command, args: entry.args, env: { ...cleanEnv(), ...entry.env }, cwd: '/', stderr: 'ignore' }),
    );
    try {
      const read = (await client.callTool({
        name: 'run_sql',
        arguments: { connection: 'shop', sql: 'SELECT email, city FROM customers ORDER BY id LIMIT 2' },
      })) as CallToolResult;
      expect(read.isError).toBeFalsy();
      const text = read.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
      expect(text).toContain('[masked:');
      expect(text).not.toMatch(/@example\.(com|org|net)/);
    } finally {
      await client.close();
    }

    // The MCP Inspector CLI command, exactly as printed (npx finds the dev dependency).
    const inspector = /^ {4}(npx @modelcontextprotocol\/inspector --cli .*)$/m.exec(out)?.[1];
    expect(inspector, out).toBeDefined();
    const listed = sh(inspector!, cleanEnv({ MCP_INSPECTOR_SECRET_STORE: 'memory' }));
    expect(listed.status, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { tools: Array<{ name: string }> }).tools.map((t) => t.name)).toEqual(['run_sql']);
    // The web UI line takes the same --config/--server pair (the Inspector's own options, not the server's).
    expect(out).toMatch(/^ {4}npx @modelcontextprotocol\/inspector --config \S+mcp\.json --server drawbridge$/m);

    // The drawbridge commands, as printed.
    const token = /export DRAWBRIDGE_DBA_TOKEN=(\S+) DRAWBRIDGE_APPROVER_TOKEN=\1/.exec(out)?.[1];
    expect(token).toBeDefined();
    const env = cleanEnv({ DRAWBRIDGE_DBA_TOKEN: token!, DRAWBRIDGE_APPROVER_TOKEN: token! });
    const printed = [...out.matchAll(/^ {4}(\S*node \S+cli\.js (?:journal|policy|approvals) .*)$/gm)].map((m) => m[1]!);
    expect(printed.length).toBe(5);
    for (const line of printed) {
      if (line.includes('ap_…')) {
        // The template needs a real id: with an unknown one it must get as far as the store.
        const r = sh(line.replace('ap_…', 'ap_0000000000'), env, '/');
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toMatch(/approval\.not_found/);
        continue;
      }
      const r = sh(line, env, '/');
      expect(r.status, `${line}\n${r.stderr}`).toBe(0);
      expect(r.stderr).toBe('');
    }

    const exited = new Promise<number | null>((resolve) => (exitCode !== null ? resolve(exitCode) : demo.once('exit', (c) => resolve(c))));
    demo.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toMatch(/Stopping the throwaway PostgreSQL/);
    expect(await acceptsConnections(dbUrl)).toBe(false);
    // Nothing left running: no postmaster on the demo's port.
    const left = spawnSync('pgrep', ['-f', `-p ${port}( |$)`], { encoding: 'utf8' });
    expect(left.stdout.trim()).toBe('');
  }, 180_000); // a PostgreSQL cluster, the tour and every printed command (Node processes each): 35-60 s alone, 84 s seen on a loaded 2-core machine

  it('a busy port is a clear error naming --port, exit 1, no stack trace', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await runInProcess(['demo', '--port', String(port), '--dir', tempDir()], { env: cleanEnv() });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`Port ${port} on 127\\.0\\.0\\.1 is already in use .*drawbridge demo --port ${port + 1}`));
      expect(r.stderr).not.toMatch(NO_STACK);
    } finally {
      busy.close();
    }
  });

  it('usage mistakes are usage errors (exit 2) that say what to do', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['demo', '--http', '--exit-after-tour'], /demo --http has no tour to exit after/],
      [['demo', '--http-port', '1234'], /apply to demo --http only/],
      [['demo', '--port', 'abc'], /--port takes a TCP port number/],
      [['demo', '--prot', '1'], /unknown option --prot\. Its options: --port N, --dir DIR/],
    ];
    for (const [args, message] of cases) {
      const r = await runInProcess(args, { env: cleanEnv() });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(NO_STACK);
    }
  });

  it('works in --dir, else $XDG_STATE_HOME/drawbridge/demo, else ./.drawbridge/demo', async () => {
    const { demoDirectory } = await import('../../dev/demo.js');
    expect(demoDirectory('x', {}, '/home/u')).toBe('/home/u/x');
    expect(demoDirectory(undefined, { XDG_STATE_HOME: '/home/u/.state' }, '/work')).toBe('/home/u/.state/drawbridge/demo');
    expect(demoDirectory(undefined, { XDG_STATE_HOME: 'relative' }, '/work')).toBe('/work/.drawbridge/demo');
    expect(demoDirectory(undefined, {}, '/work')).toBe('/work/.drawbridge/demo');
  });
});
