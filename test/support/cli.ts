// Runs `drawbridge` commands for tests: in this process (runInProcess: the
// command line's own function with captured output, no child process, no
// build needed), or the built CLI (dist/src/cli.js) as a child process for
// what only the binary shows (--version, exit codes of the process, EPIPE,
// serving until a signal). `npm test` builds first; when dist is missing the
// binary's tests fail with a message saying so, instead of an obscure spawn error.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { CliIo } from '../../src/cli/io.js';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/src/cli.js', import.meta.url));

/** Throws a clear error when the CLI has not been built. Call in beforeAll. */
export function requireBuiltCli(): string {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} does not exist: run \`npm run build\` first (\`npm test\` does it before vitest).`);
  }
  return CLI;
}

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Variables a developer's shell may set that must never leak into a test's command. */
const LEAKY_VARIABLES = ['DRAWBRIDGE_CONFIG', 'DB_URL', 'SHOP_DATABASE_URL', 'DRAWBRIDGE_APPROVER_TOKEN', 'DRAWBRIDGE_OPERATOR_TOKEN'] as const;

/** A Writable that keeps what was written, as text. */
function capture(): { readonly stream: Writable; text(): Promise<string> } {
  const chunks: string[] = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, done) {
      chunks.push(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
      done();
    },
  });
  // Everything written has arrived once the stream finished.
  const text = () => new Promise<string>((done) => stream.end(() => done(chunks.join(''))));
  return { stream, text };
}

/**
 * Runs `drawbridge ARGS` in this process: the command line's function (src/cli/main.ts)
 * with captured stdout and stderr, an empty stdin, this process's environment without
 * the leaky variables, plus `env` (a value of undefined unsets one), and `cwd` (default:
 * the repository). The exit code is the command's; nothing is spawned, so the test's own
 * event loop (an in-process gateway) keeps running meanwhile. Config paths in messages are
 * shown relative to this process's working directory, which is the repository under vitest.
 * No stop signal ever comes: commands that serve until one (serve, connect, demo) run as the
 * binary; in process only their refusals, which return before serving.
 */
export async function runInProcess(args: readonly string[], options: { env?: Record<string, string | undefined>; cwd?: string } = {}): Promise<CliRun> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of LEAKY_VARIABLES) delete env[name];
  Object.assign(env, options.env ?? {});
  const stdout = capture();
  const stderr = capture();
  const io: CliIo = {
    stdin: Readable.from([]),
    stdout: stdout.stream,
    stderr: stderr.stream,
    env,
    cwd: options.cwd ?? REPO_ROOT,
    onStop: () => undefined,
  };
  // Loaded on first use: files that only run the binary do not load every command's modules.
  const { runCommandLine } = await import('../../src/cli/main.js');
  const status = await runCommandLine(args, io);
  return { status, stdout: await stdout.text(), stderr: await stderr.text() };
}

/** Runs `drawbridge ARGS` synchronously. `env` replaces the inherited environment's DB/secret variables. */
export function runCli(args: readonly string[], options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {}): CliRun {
  const env: Record<string, string | undefined> = { ...process.env };
  // Never let the developer's shell leak a config dir or secrets into a test.
  delete env['DRAWBRIDGE_CONFIG'];
  delete env['DB_URL'];
  delete env['SHOP_DATABASE_URL'];
  Object.assign(env, options.env ?? {});
  const r = spawnSync(process.execPath, [requireBuiltCli(), ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs `drawbridge ARGS` as a separate process WITHOUT blocking this process's
 * event loop, so an in-process gateway keeps serving (and polling) meanwhile.
 */
export function runCliAsync(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<CliRun> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env['DRAWBRIDGE_CONFIG'];
  delete env['DB_URL'];
  delete env['SHOP_DATABASE_URL'];
  delete env['DRAWBRIDGE_APPROVER_TOKEN'];
  Object.assign(env, options.env ?? {});
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [requireBuiltCli(), ...args], { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * Waits until `text()` (a child's growing output) matches `pattern`, or fails
 * with what was seen. Polls: a child process's output has no event to await.
 */
export async function waitForOutput(text: () => string, pattern: RegExp, what: string, ms = 60_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms;
  for (;;) {
    const m = pattern.exec(text());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${text()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
