// The everyday command line: --version, --help for every command (from the one
// command table), usage mistakes that name what the command does take, exit
// codes (0 done, 1 a fixable refusal, 2 usage), a reader that leaves a pipe
// early, and never a stack trace. The commands run in process; what only the
// binary shows (--version from the shipped package.json, the process's exit
// code, EPIPE) runs the built CLI.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS, type CommandSpec } from '../../src/cli/commands.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import { REPO_ROOT, requireBuiltCli, runCli, runInProcess } from '../support/cli.js';

const NO_STACK = /^\s+at .+:\d+:\d+\)?$/m;
const specs = Object.values(COMMANDS) as CommandSpec[];
let scratch: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'drawbridge-usage-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('--version and --help', () => {
  it('--version prints the package version (the binary)', () => {
    requireBuiltCli();
    const version = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    for (const flag of ['--version', '-V']) {
      const r = runCli([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`drawbridge ${version}\n`);
    }
  });

  it('drawbridge --help lists every command; no command at all is a usage error with the same list', async () => {
    const help = await runInProcess(['--help']);
    expect(help.status).toBe(0);
    for (const spec of specs) expect(help.stdout).toContain(`drawbridge ${spec.usage[0]}`);
    const none = await runInProcess([]);
    expect(none.status).toBe(2);
    expect(none.stderr).toBe(help.stdout);
  });

  it.each(specs.map((s) => [s.path, s] as const))('drawbridge %s --help shows its usage, every option and an example', async (path, spec) => {
    const r = await runInProcess([...path.split(' '), '--help']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(new RegExp(`^drawbridge ${path} — `));
    expect(r.stdout).toContain('\nUsage:\n');
    for (const name of Object.keys(spec.options)) expect(r.stdout).toMatch(new RegExp(`^  --${name}\\b`, 'm'));
    expect(r.stdout).toMatch(/\nExamples?:\n {2}drawbridge /);
    // `drawbridge help <command>` is the same page.
    expect((await runInProcess(['help', ...path.split(' ')])).stdout).toBe(r.stdout);
  });
});

describe('usage mistakes: exit 2, a message that says what to do, no stack trace', () => {
  it.each(specs.map((s) => [s.path, s] as const))('drawbridge %s --no-such-option names the options it has', async (path, spec) => {
    const r = await runInProcess([...path.split(' '), '--no-such-option']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`drawbridge ${path}: unknown option --no-such-option. Its options: `);
    for (const name of Object.keys(spec.options)) expect(r.stderr).toContain(`--${name}`);
    expect(r.stderr).toContain(`(drawbridge ${path} --help)`);
  });

  const cases: Array<[string, string[], RegExp]> = [
    ['an unknown command', ['serv'], /^drawbridge: Unknown command "serv"\. Run drawbridge --help for the list of commands\.$/m],
    [
      'a group without its command',
      ['approvals'],
      /approvals needs a command\. Use: drawbridge approvals list \| drawbridge approvals show \| drawbridge approvals approve \| drawbridge approvals deny/,
    ],
    ['an unknown subcommand', ['journal', 'show'], /Unknown journal command "show"\. Use: drawbridge journal export \| drawbridge journal verify/],
    ['a missing ID', ['approvals', 'show'], /drawbridge approvals show needs ID\.\nUsage: drawbridge approvals show ID/],
    ['a stray argument', ['check', 'extra'], /drawbridge check takes no arguments \(got "extra"\)/],
    ['a value for a flag that takes none', ['check', '--connect=yes'], /--connect takes no value/],
    ['a missing value', ['serve', '--http'], /drawbridge serve: --http HOST:PORT needs a value/],
    ['a malformed listen address', ['serve', '--http', 'localhost'], /--http takes HOST:PORT, e\.g\. 127\.0\.0\.1:8080 \(got "localhost"\)/],
    ['a bad --format', ['journal', 'export', '--format', 'xml', '--journal', '/nonexistent.db'], /--format must be jsonl or csv/],
    ['help for no such command', ['help', 'frobnicate'], /No command "drawbridge frobnicate"/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const r = await runInProcess(args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(NO_STACK);
  });

  it('the binary exits with the same code and message (an unknown command)', () => {
    requireBuiltCli();
    const r = runCli(['serv']);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^drawbridge: Unknown command "serv"\. Run drawbridge --help for the list of commands\.$/m);
    expect(r.stderr).not.toMatch(NO_STACK);
  });
});

describe('fixable problems: exit 1, no stack trace', () => {
  it('a config directory without tools/ or policies/', async () => {
    const r = await runInProcess(['approvals', 'list', '--config', scratch]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no tools\/ or policies\/ directory here; pass --config DIR/);
    expect(r.stderr).not.toMatch(NO_STACK);
  });
});

describe('journal export | head', () => {
  it('ends quietly with exit 0 when the reader leaves early (EPIPE)', () => {
    const path = join(scratch, 'journal.db');
    const journal = openJournal(path, { sync: 'normal' });
    try {
      for (let i = 0; i < 3000; i++)
        journal.append('call', `call-${i}`, { tool: 'run_sql', connection: 'db', input: { sql: `select ${i}, '${'x'.repeat(200)}'` } }, new Date());
    } finally {
      journal.close();
    }
    const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(requireBuiltCli())}`;
    const r = spawnSync('/bin/bash', ['-c', `set -o pipefail; ${cli} journal export --journal ${JSON.stringify(path)} | head -n 1`], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toHaveLength(1);
  });
});
