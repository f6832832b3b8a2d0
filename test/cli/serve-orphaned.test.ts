// `drawbridge serve` over stdio whose client vanished without a word (killed: every pipe end
// closed at once). The gateway must see stdin end and exit, even though each line it then tries
// to write to stderr fails with EPIPE. Found in a leaked test process that spun one core for 40
// minutes: the stderr stream's EPIPE 'error' reached the last-resort guard, whose line to the same
// stderr failed again on the next tick, a loop that starved the event loop so the drain never ended.

import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { afterAll, expect, it } from 'vitest';
import { requireBuiltCli } from '../support/cli.js';
import { writeConfig } from '../support/fixtures.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Resolves with the exit code, or with 'still running' once `ms` passed (the child is then killed). */
function exitWithin(child: ReturnType<typeof spawn>, ms: number): Promise<number | null | 'still running'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('still running');
    }, ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

it('exits 0 when its client vanishes, though stderr is gone too (EPIPE on every line)', async () => {
  const dir = writeConfig({ identity: { subject: 'dev@example.com', groups: ['analysts'] } });
  dirs.push(dir);
  const child = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir], {
    env: { PATH: process.env['PATH'], DB_URL: 'postgres://127.0.0.1:1/none', HASH_KEY: 'test-hash-key' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  await new Promise<void>((ready, failed) => {
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
      if (stderr.includes('"msg":"serving ')) ready();
    });
    child.once('exit', (code) => failed(new Error(`serve exited ${code} before serving: ${stderr}`)));
  });
  // The client is gone: its ends of stdout and stderr close, then stdin ends.
  child.stdout?.destroy();
  child.stderr?.destroy();
  child.stdin?.end();
  // Generous for a loaded machine; a gateway that spins never exits at all.
  expect(await exitWithin(child, 20_000)).toBe(0);
}, 60_000);
