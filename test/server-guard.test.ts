// The last-resort guard of `drawbridge serve`: one line on stderr per fault
// that reached the process level (its type and first message line, credentials
// blanked, no stack unless DRAWBRIDGE_DEBUG=1), a count tests can assert is 0,
// and — wired into the real `serve` — the gateway keeps serving after an
// uncaught exception and an unhandled rejection (injected into the child
// process by a preload module, on a signal).

import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, describe, expect, it } from 'vitest';
import { describeFault, GUARD_LINE_PREFIX, installProcessGuard, redactSecrets, type GuardTarget } from '../src/server-guard.js';
import { REPO_ROOT, requireBuiltCli, waitForOutput } from './support/cli.js';
import { freshDatabase, writeConfig, type FreshDatabase } from './support/fixtures.js';

function fakeProcess(): EventEmitter & GuardTarget {
  return new EventEmitter();
}

describe('installProcessGuard', () => {
  it('writes one line per fault, counts them, and leaves no stack without DRAWBRIDGE_DEBUG', () => {
    const target = fakeProcess();
    const lines: string[] = [];
    const guard = installProcessGuard({ target, write: (l) => lines.push(l), debug: false });
    expect(guard.fired).toBe(0);
    target.emit('uncaughtException', Object.assign(new Error('Connection terminated unexpectedly\nsecond line'), { code: 'ECONNRESET' }));
    target.emit('unhandledRejection', new TypeError('x is not a function'));
    expect(guard.fired).toBe(2);
    expect(lines).toEqual([
      `${GUARD_LINE_PREFIX} an uncaught exception (Error [ECONNRESET]: Connection terminated unexpectedly) was ` +
        `caught; still serving. This is a bug in Drawbridge: report it (DRAWBRIDGE_DEBUG=1 adds the details).\n`,
      `${GUARD_LINE_PREFIX} an unhandled promise rejection (TypeError: x is not a function) was caught; ` +
        `still serving. This is a bug in Drawbridge: report it (DRAWBRIDGE_DEBUG=1 adds the details).\n`,
    ]);
    guard.uninstall();
    expect(target.listenerCount('uncaughtException')).toBe(0);
    expect(target.listenerCount('unhandledRejection')).toBe(0);
  });

  it('adds the stack only in debug mode, and survives a failing writer', () => {
    const target = fakeProcess();
    const lines: string[] = [];
    const guard = installProcessGuard({ target, write: (l) => lines.push(l), debug: true });
    target.emit('uncaughtException', new Error('boom'));
    expect(lines[0]).toMatch(/\n\s+at /);
    guard.uninstall();
    const broken = installProcessGuard({
      target,
      write: () => {
        throw new Error('EPIPE');
      },
    });
    expect(() => target.emit('uncaughtException', new Error('boom'))).not.toThrow();
    expect(broken.fired).toBe(1);
    broken.uninstall();
  });

  it('counts a broken pipe but writes no line about it (stderr may be the broken stream)', () => {
    const target = fakeProcess();
    const lines: string[] = [];
    const guard = installProcessGuard({ target, write: (l) => lines.push(l), debug: false });
    target.emit('uncaughtException', Object.assign(new Error('write EPIPE'), { code: 'EPIPE', syscall: 'write' }));
    target.emit('uncaughtException', Object.assign(new Error('Cannot call write after a stream was destroyed'), { code: 'ERR_STREAM_DESTROYED' }));
    expect(guard.fired).toBe(2);
    expect(lines).toEqual([]);
    target.emit('uncaughtException', new Error('boom'));
    expect(lines).toHaveLength(1);
    guard.uninstall();
  });

  it('never shows a credential: URL passwords, key=value secrets, bearer tokens, JWTs', () => {
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';
    const text = `connect postgres://gateway:hunter2@db:5432/shop failed; password=hunter3 token: abc.def Authorization: Bearer ${jwt} id ${jwt}`;
    const redacted = redactSecrets(text);
    for (const secret of ['hunter2', 'hunter3', 'abc.def', jwt, 'eyJ']) expect(redacted).not.toContain(secret);
    expect(redacted).toContain('postgres://gateway:***@db:5432/shop');
    expect(describeFault(new Error(text))).not.toContain('hunter2');
    expect(describeFault(new Error('x'.repeat(500))).length).toBeLessThan(260);
    expect(describeFault('a string with postgres://u:pw@h/d')).toBe('a thrown string (not an Error)');
    expect(describeFault(null)).toBe('a thrown null (not an Error)');
  });
});

describe('drawbridge serve keeps serving after a fault nobody handled (the guard is wired)', () => {
  let db: FreshDatabase;
  let dir: string;
  let preloadDir: string;
  let client: Client | null = null;

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (preloadDir) rmSync(preloadDir, { recursive: true, force: true });
  });

  it('logs one line per fault without the secret, and the next call works', async () => {
    const cli = requireBuiltCli();
    db = await freshDatabase('server_guard');
    dir = writeConfig();
    preloadDir = mkdtempSync(join(tmpdir(), 'drawbridge-guard-'));
    const preload = join(preloadDir, 'inject-faults.mjs');
    // On SIGUSR2, the child throws from a timer and rejects a promise nobody awaits.
    writeFileSync(
      preload,
      `process.on('SIGUSR2', () => {
  setImmediate(() => { throw new Error('injected fault postgres://gateway:hunter2@db/shop'); });
  Promise.reject(new Error('injected rejection token=hunter3'));
});
`,
    );
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ['--import', preload, cli, 'serve', '--config', dir],
      cwd: REPO_ROOT,
      env: { ...(process.env as Record<string, string>), DB_URL: db.gatewayUrl },
      stderr: 'pipe',
    });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    client = new Client({ name: 'guard-test', version: '1.0.0' });
    await client.connect(transport);
    const call = async () =>
      (await client!.callTool({ name: 'run_sql', arguments: { connection: 'db', sql: 'SELECT count(*) AS n FROM customers' } })) as CallToolResult;
    expect((await call()).isError).toBeFalsy();
    expect(stderr).not.toContain(GUARD_LINE_PREFIX);

    process.kill(transport.pid!, 'SIGUSR2');
    await waitForOutput(
      () => stderr,
      /an uncaught exception[\s\S]*an unhandled promise rejection|an unhandled promise rejection[\s\S]*an uncaught exception/,
      'both guard lines',
      10_000,
    );
    const lines = stderr.split('\n').filter((l) => l.startsWith(GUARD_LINE_PREFIX));
    expect(lines).toHaveLength(2);
    expect(stderr).not.toContain('hunter2');
    expect(stderr).not.toContain('hunter3');
    expect(stderr).not.toMatch(/\n\s+at /);
    expect((await call()).isError).toBeFalsy();
  });
});
