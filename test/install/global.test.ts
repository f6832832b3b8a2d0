// Installed as a user installs it: `npm pack`, then a global install of the
// tarball into a private prefix, then the installed `drawbridge` run from a
// directory outside the repository — `--version`, `demo --no-tour` and
// `demo --http` — which must work without the repository, without dev
// dependencies and without writing into the install directory.
//
// The install fetches the runtime dependencies from the npm registry (the
// cache `npm ci` filled is preferred) without running their install scripts:
// compiling better-sqlite3 (and ssh2's optional accelerators) again took 50 of
// this file's 60 seconds, and proves nothing about this package. The one
// native addon the demo needs, better-sqlite3's, is copied from the
// repository's own build of the same version (`npm ci` compiled it on this
// machine); a different version is rebuilt in the installed package instead.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { freePort } from '../support/net.js';

const NO_STACK = /^\s+at .+:\d+:\d+\)?$/m;
const children: ChildProcess[] = [];
let root: string;
let bin: string;
let packageDir: string;
let before: Map<string, number>;

/** Every file under `dir` with its mtime, to prove nothing was written there. */
function snapshot(dir: string): Map<string, number> {
  const files = new Map<string, number>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      if (d === dir && name === 'node_modules') continue;
      const p = join(d, name);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else files.set(relative(dir, p), s.mtimeMs);
    }
  };
  walk(dir);
  return files;
}

/** A user's shell: nothing of the test's, no XDG state dir (so the default ./.drawbridge/demo is used). */
function userEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined || k.startsWith('DRAWBRIDGE_') || k.startsWith('npm_') || k === 'SHOP_DATABASE_URL' || k === 'XDG_STATE_HOME' || k === 'NODE_OPTIONS')
      continue;
    env[k] = v;
  }
  return env;
}

async function runUntil(args: string[], cwd: string, ready: RegExp): Promise<{ out: string; code: number | null }> {
  const child = spawn(bin, args, { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  const deadline = Date.now() + 120_000;
  while (!ready.test(out)) {
    if (child.exitCode !== null) throw new Error(`drawbridge ${args.join(' ')} exited ${child.exitCode}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${ready}:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGINT');
  return { out, code: await exited };
}

/** better-sqlite3's compiled addon in an install made with --ignore-scripts: the repository's, when the versions match. */
function provideSqliteAddon(installed: string): void {
  const version = (dir: string) => (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  const built = join(REPO_ROOT, 'node_modules', 'better-sqlite3');
  const addon = join('build', 'Release', 'better_sqlite3.node');
  if (version(installed) === version(built) && existsSync(join(built, addon))) {
    mkdirSync(join(installed, 'build', 'Release'), { recursive: true });
    copyFileSync(join(built, addon), join(installed, addon));
    return;
  }
  const rebuild = spawnSync('npm', ['rebuild', 'better-sqlite3', '--no-audit', '--no-fund'], {
    cwd: packageDirOf(installed),
    encoding: 'utf8',
    timeout: 480_000,
  });
  expect(rebuild.status, `${rebuild.stdout}\n${rebuild.stderr}`).toBe(0);
}

/** The package a dependency under node_modules/ belongs to. */
function packageDirOf(dependency: string): string {
  return join(dependency, '..', '..');
}

beforeAll(() => {
  requireBuiltCli();
  root = mkdtempSync(join(tmpdir(), 'drawbridge-install-'));
  // dist/ is already built by `npm test`: skip the prepare script's second build.
  const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--pack-destination', root], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  expect(pack.status, pack.stderr).toBe(0);
  const tarball = join(root, pack.stdout.trim().split('\n').pop()!);
  const prefix = join(root, 'prefix');
  const install = spawnSync('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
    cwd: root,
    env: userEnv(),
    encoding: 'utf8',
    timeout: 480_000,
  });
  expect(install.status, `${install.stdout}\n${install.stderr}`).toBe(0);
  bin = join(prefix, 'bin', 'drawbridge');
  packageDir = join(prefix, 'lib', 'node_modules', 'drawbridge-mcp');
  provideSqliteAddon(join(packageDir, 'node_modules', 'better-sqlite3'));
  before = snapshot(packageDir);
}, 600_000);

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  if (root) rmSync(root, { recursive: true, force: true });
});

describe('npm pack + global install', () => {
  it('ships what runs and nothing else: no tests, no benchmarks, no TypeScript sources', () => {
    const files = [...before.keys()];
    expect(files).toContain('LICENSE');
    expect(files).toContain(join('dist', 'src', 'cli.js'));
    expect(files).toContain(join('tools', 'shop.yaml'));
    expect(files.filter((f) => f.startsWith(`dist${'/'}test`) || f.startsWith(`dist${'/'}bench`) || f.startsWith('test') || f.endsWith('.ts'))).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('drawbridge-mcp');
  });

  it('drawbridge --version works from anywhere', () => {
    const r = spawnSync(bin, ['--version'], { cwd: root, env: userEnv(), encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^drawbridge \d+\.\d+\.\d+/);
  });

  it('drawbridge demo --no-tour serves from a directory of the user’s, and stops cleanly on SIGINT', async () => {
    const cwd = mkdtempSync(join(root, 'user-'));
    const port = await freePort();
    const { out, code } = await runUntil(['demo', '--no-tour', '--port', String(port)], cwd, /ready for your own MCP client[\s\S]*approvals approve ap_…/);
    expect(code, out).toBe(0);
    expect(out).not.toMatch(NO_STACK);
    expect(out).toContain(`Working directory: ${join(cwd, '.drawbridge', 'demo')}`);
    const mcp = JSON.parse(readFileSync(join(cwd, '.drawbridge', 'demo', 'mcp.json'), 'utf8')) as { mcpServers: { drawbridge: { args: string[] } } };
    expect(mcp.mcpServers.drawbridge.args[0]).toBe(join(packageDir, 'dist', 'src', 'cli.js'));
    expect(existsSync(join(cwd, '.drawbridge', 'demo', 'policies', 'gateway.yaml'))).toBe(true);
  });

  it('drawbridge demo --http works installed (no dev dependency needed) and stops cleanly on SIGINT', async () => {
    const cwd = mkdtempSync(join(root, 'user-'));
    const [port, httpPort, idpPort] = [await freePort(), await freePort(), await freePort()];
    const { out, code } = await runUntil(
      ['demo', '--http', '--port', String(port), '--http-port', String(httpPort), '--idp-port', String(idpPort)],
      cwd,
      /serving over HTTP at http:\/\/127\.0\.0\.1:\d+\/mcp[\s\S]*journal export/,
    );
    expect(code, out).toBe(0);
    expect(out).not.toMatch(NO_STACK);
    expect(existsSync(join(cwd, '.drawbridge', 'demo', 'http', 'policies', 'gateway.yaml'))).toBe(true);
  });

  it('wrote nothing into the install directory', () => {
    expect(snapshot(packageDir)).toEqual(before);
  });
});
