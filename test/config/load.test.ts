// Config loading and validation: the repo's example config loads; every
// problem of a broken config is reported at once with file:line (unknown keys
// at the key's own line); cross-references catch typos; secrets are referenced,
// never inline, and never printed. Also the `drawbridge check` CLI.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type ConfigProblem } from '../../src/config/load.js';
import { containsInlineCredential, resolveSecret, secretRefSchema, type SecretRef } from '../../src/config/secrets.js';
import { DrawbridgeError } from '../../src/errors.js';
import { REPO_ROOT, runInProcess } from '../support/cli.js';
import { READ_ONLY_POLICY } from '../support/fixtures.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const CONNECTION = `kind: connection
name: db
type: postgres
description: Test database
url: \${DB_URL}
`;
const TOOL = `kind: tool
name: run_sql
type: run_sql
connections: [db]
`;
const POLICY = READ_ONLY_POLICY;

/** Writes a config dir; keys are paths like `tools/db.yaml`. Defaults give a valid minimal config. */
function configDir(files: Record<string, string>, defaults = true): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-load-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  const all = defaults ? { 'tools/db.yaml': `${CONNECTION}---\n${TOOL}`, 'policies/rules.yaml': POLICY, ...files } : files;
  for (const [path, text] of Object.entries(all)) writeFileSync(join(dir, path), text);
  return dir;
}

function problemsOf(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const e = error as ConfigError;
    expect(e.code).toBe('config.invalid');
    return [...e.problems];
  }
  throw new Error('expected the config to be refused');
}

/** 1-based line of the first line containing `needle` (after line `after`). */
function lineOf(text: string, needle: string, after = 0): number {
  const lines = text.split('\n');
  for (let i = after; i < lines.length; i++) if (lines[i]?.includes(needle)) return i + 1;
  throw new Error(`"${needle}" not in text`);
}

/** Asserts one problem in `file` at `line` whose message matches. */
function expectProblem(problems: readonly ConfigProblem[], file: string, line: number, message: RegExp | string): void {
  const found = problems.find(
    (p) => p.file.endsWith(file) && p.line === line && (typeof message === 'string' ? p.message.includes(message) : message.test(p.message)),
  );
  expect(found, `no problem ${file}:${line} ${String(message)} in:\n${problems.map((p) => `${p.file}:${p.line}: ${p.message}`).join('\n')}`).toBeDefined();
}

describe('loadConfig: the example config', () => {
  it('loads the repo root config: 1 connection, 1 tool, 5 rules', () => {
    const config = loadConfig(REPO_ROOT);
    expect(config.connections.size).toBe(1);
    expect(config.tools.size).toBe(1);
    expect(config.rules).toHaveLength(5);
    expect([...config.connections.keys()]).toEqual(['shop']);
    expect([...config.tools.keys()]).toEqual(['run_sql']);
    expect(config.rules.map((r) => r.name)).toEqual(['no-ddl', 'no-credential-catalogs', 'writes-need-a-dba', 'analysts-read', 'sre-reads-all-schemas']);
    expect(config.masking.map((m) => m.name)).toEqual(['pii']);
    expect(config.identity).toEqual({ mode: 'local', subject: 'dev@example.com', groups: ['analysts'] });
    expect(config.journal.path).toBe(join(REPO_ROOT, '.drawbridge/journal.db'));
    // Units are parsed: 10s, 1MiB, 15m.
    expect(config.connections.get('shop')?.declaration).toMatchObject({ limits: { timeout: 10_000, max_bytes: 1024 * 1024 } });
    expect(config.rules.find((r) => r.name === 'writes-need-a-dba')?.grant).toBe(15 * 60_000);
  });

  it('loads a minimal config and warns about what is missing', () => {
    const config = loadConfig(configDir({}));
    expect(config.rules).toHaveLength(1);
    expect(config.warnings.join('\n')).toMatch(/no caller identity/);
  });

  it('refuses a directory without tools/ or policies/', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drawbridge-empty-'));
    dirs.push(dir);
    expect(problemsOf(dir)[0]?.message).toMatch(/no tools\/ or policies\/ directory/);
  });
});

describe('loadConfig: every problem at once, with file:line', () => {
  const tools = `kind: connection
name: db
type: postgres
description: Test database
url: \${DB_URL}
limts: { timeout: 10s }
limits:
  timeout: 10
  lock_timeout: 2 fortnights
  max_rows: many
  max_bytes: 10 parsecs
---
kind: connection
name: db
type: postgres
description: Same name again
url: \${DB_URL}
---
kind: tool
name: run_sql
type: run_sql
connections: [db, orders-prod]
---
kind: tool
name: run_sql
type: run_sql
connections: [db]
---
kind: tool
name: other
type: run_sql
connections: db
`;
  const rules = `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sqll, connection: dbb, operation: [dll, ddl] }
    efect: deny
    effect: deny
  - name: no-ddl
    match:
      tool: run_sql
      access: reed
    effect: allow
    approvers: { groups: [dba] }
  - name: approve-writes
    match: { tool: run_sql, access: write }
    effect: approve
    grant: 10
  - name: deny-with-grant
    match: { tool: run_sql }
    effect: deny
    grant: 15m
  - name: maybe
    match: { tool: run_sql }
    effect: perhaps
masking:
  - name: pii
    match: { tool: run_sql }
    colums: [customers.email]
  - name: pii2
    match: { tool: run_sql, connection: nope }
    detectors: [email, telepathy]
`;
  const gateway = `kind: gateway
identity: { mode: local, subject: dev@example.com, groups: [analysts] }
---
kind: gateway
journal: { path: other.db }
---
name: nokind
---
kind: polcy
`;
  let problems: ConfigProblem[];
  let dir: string;
  beforeAll(() => {
    dir = configDir({ 'tools/db.yaml': tools, 'policies/rules.yaml': rules, 'policies/gateway.yaml': gateway });
    problems = problemsOf(dir);
  });

  it('reports unknown keys at the key line, top level and nested', () => {
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'limts:'), 'unknown key "limts"');
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'efect:'), /unknown key "efect" in rules\.0/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'colums:'), /unknown key "colums" in masking\.0/);
  });

  it('reports wrong types and bad values at their lines', () => {
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'max_rows: many'), /limits\.max_rows: .*expected number/);
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'connections: db'), /connections: .*expected array/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'access: reed'), /rules\.1\.match\.access/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'effect: perhaps'), /rules\.4\.effect/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'telepathy'), /masking\.1\.detectors/);
  });

  it('reports bad durations and sizes (a number without unit, an unknown unit)', () => {
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, '  timeout: 10'), /limits\.timeout: 10 has no unit; write e\.g\. 10s/);
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'lock_timeout:'), /"2 fortnights" is not a duration/);
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'max_bytes:'), /"10 parsecs" is not a size/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'grant: 10'), /rules\.2\.grant: 10 has no unit/);
  });

  it('reports duplicate connection, tool and rule names with where the first is', () => {
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'name: db', 2), /connection "db" is declared twice \(first at .*tools\/db\.yaml:1\)/);
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'name: run_sql', lineOf(tools, 'name: run_sql')), /tool "run_sql" is declared twice/);
    expectProblem(
      problems,
      'policies/rules.yaml',
      lineOf(rules, 'name: no-ddl', lineOf(rules, 'name: no-ddl')),
      /rule name "no-ddl" is used twice \(also at .*rules\.yaml:3\)/,
    );
  });

  it('reports a tool listing an undeclared connection', () => {
    expectProblem(problems, 'tools/db.yaml', lineOf(tools, 'orders-prod'), /tool "run_sql" lists connection "orders-prod", which is not declared/);
  });

  it('protects against typos in rules: undeclared tool / connection, unknown operation', () => {
    const line = lineOf(rules, 'run_sqll');
    expectProblem(problems, 'policies/rules.yaml', line, /tool "run_sqll" is not declared \(declared: run_sql, other\)/);
    expectProblem(problems, 'policies/rules.yaml', line, /connection "dbb" is not declared \(declared: db\)/);
    expectProblem(problems, 'policies/rules.yaml', line, /unknown operation "dll"; known: .*ddl/);
    // ... even though the same rule also has an unknown key: one problem never hides another.
    expect(problems.filter((p) => p.message.includes('"ddl"'))).toEqual([]);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'connection: nope'), /connection "nope" is not declared/);
  });

  it('refuses approve-only settings on allow and deny rules', () => {
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'approvers:'), /rules\.1\.approvers: "approvers" only applies to rules with effect: approve/);
    expectProblem(problems, 'policies/rules.yaml', lineOf(rules, 'grant: 15m'), /"grant" only applies to rules with effect: approve/);
  });

  it('reports a missing or unknown kind and a second gateway document', () => {
    expectProblem(problems, 'policies/gateway.yaml', lineOf(gateway, 'name: nokind'), /missing "kind:"/);
    expectProblem(problems, 'policies/gateway.yaml', lineOf(gateway, 'kind: polcy'), /unknown kind "polcy"/);
    expectProblem(
      problems,
      'policies/gateway.yaml',
      lineOf(gateway, 'kind: gateway', 1),
      /only one "kind: gateway" document is allowed \(another is at .*gateway\.yaml:1\)/,
    );
  });

  it('lists problems sorted by file, then line, and the error message carries them all', () => {
    const files = problems.map((p) => p.file);
    expect(files.indexOf(files.find((f) => f.endsWith('tools/db.yaml'))!)).toBe(0);
    for (let i = 1; i < problems.length; i++) {
      const [a, b] = [problems[i - 1]!, problems[i]!];
      if (a.file === b.file) expect(a.line).toBeLessThanOrEqual(b.line);
    }
    let message = '';
    try {
      loadConfig(dir);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(new RegExp(`^Configuration has ${problems.length} problems:`));
    for (const p of problems) expect(message).toContain(`${p.file}:${p.line}: ${p.message}`);
  });

  it('does not cascade: references to an invalid declaration are not "not declared"', () => {
    expect(problems.some((p) => /connection "db".*not declared/.test(p.message))).toBe(false);
  });
});

describe('loadConfig: YAML itself', () => {
  it('reports syntax errors and duplicate keys with their lines, and keeps checking other files', () => {
    const broken = `kind: policy
rules:
  - name: a
    name: b
    match: {}
    effect: allow
`;
    const syntax = `kind: connection
name: x
type: postgres
description: "unterminated
url: \${X}
`;
    const problems = problemsOf(
      configDir({
        'policies/rules.yaml': broken,
        'tools/extra.yaml': syntax,
        'tools/db.yaml': `${CONNECTION}---\n${TOOL}---\nkind: tool\nname: t2\ntype: run_sql\nconnections: [nope]\n`,
      }),
    );
    expectProblem(problems, 'policies/rules.yaml', 4, /YAML: Map keys must be unique/);
    expect(problems.some((p) => p.file.endsWith('tools/extra.yaml') && p.line > 0 && p.message.startsWith('YAML:'))).toBe(true);
    expect(problems.every((p) => p.line > 0)).toBe(true);
    // The other file's problem is still reported.
    expect(problems.some((p) => p.message.includes('lists connection "nope"'))).toBe(true);
  });
});

describe('loadConfig: rule name references', () => {
  it('accepts globs that match a declared name and refuses globs that match none', () => {
    const ok = `kind: policy
rules:
  - name: any-sql
    match: { tool: "run_*", connection: "d?" }
    effect: allow
`;
    expect(loadConfig(configDir({ 'policies/rules.yaml': ok })).rules).toHaveLength(1);
    const bad = `kind: policy
rules:
  - name: typo-glob
    match: { tool: "kubectl*", connection: [db, "prod-*"] }
    effect: deny
`;
    const problems = problemsOf(configDir({ 'policies/rules.yaml': bad }));
    expectProblem(problems, 'policies/rules.yaml', 4, /tool "kubectl\*" matches no declared tool/);
    expectProblem(problems, 'policies/rules.yaml', 4, /connection "prod-\*" matches no declared connection/);
    expect(problems).toHaveLength(2);
  });

  it('points at the list item of a bad operation on a multi-line list', () => {
    const text = `kind: policy
rules:
  - name: ops
    match:
      tool: run_sql
      operation:
        - ddl
        - dll
    effect: deny
`;
    const problems = problemsOf(configDir({ 'policies/rules.yaml': text }));
    expect(problems).toEqual([expect.objectContaining({ line: 8, message: expect.stringMatching(/unknown operation "dll"/) })]);
  });

  it('refuses rules on operation "unknown" (unclassified requests never reach the rules)', () => {
    const text = `kind: policy
rules:
  - name: allow-unknown
    match: { tool: run_sql, operation: unknown }
    effect: allow
`;
    expect(problemsOf(configDir({ 'policies/rules.yaml': text }))[0]?.message).toMatch(/operation "unknown" never reaches the rules/);
  });
});

describe('loadConfig: secrets', () => {
  const secret = 'hunter2-s3cret';
  const withUrl = (url: string, extra = '') => configDir({ 'tools/db.yaml': `${CONNECTION.replace('url: ${DB_URL}', `url: ${url}`)}${extra}---\n${TOOL}` });

  it.each([
    ['a password in the URL', `postgres://u:${secret}@h/db`],
    ['a password with a referenced host', `postgres://u:${secret}@\${DB_HOST}/db`],
    ['a password query parameter', `postgres://u@h/db?sslmode=require&password=${secret}`],
    ['libpq key/value form', `"host=h user=u password=${secret}"`],
  ])('refuses %s, naming the field and never the value', (_what, url) => {
    const problems = problemsOf(withUrl(url));
    expect(problems).toEqual([
      expect.objectContaining({ line: 5, message: expect.stringMatching(/^url: a password is written inline; reference it instead/) }),
    ]);
    expect(JSON.stringify(problems)).not.toContain(secret);
  });

  it('refuses an inline password even when the connection has other problems, and in any field', () => {
    const dir = configDir({
      'tools/db.yaml': `kind: connection
name: db
type: postgres
description: Orders, reachable at postgres://admin:${secret}@db.internal/orders
url: postgres://u:${secret}@h/db
limts: {}
---
${TOOL}`,
    });
    const problems = problemsOf(dir);
    expectProblem(problems, 'tools/db.yaml', 4, /description: a password is written inline/);
    expectProblem(problems, 'tools/db.yaml', 5, /url: a password is written inline/);
    expectProblem(problems, 'tools/db.yaml', 6, 'unknown key "limts"');
    let message = '';
    try {
      loadConfig(dir);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).not.toContain(secret);
  });

  it('accepts references: ${VAR}, a referenced password, { env }, { file }', () => {
    expect(loadConfig(withUrl('${DB_URL}')).connections.size).toBe(1);
    expect(loadConfig(withUrl('postgres://u:${DB_PASSWORD}@h/db')).connections.size).toBe(1);
    expect(loadConfig(withUrl('{ env: DB_URL }')).connections.size).toBe(1);
    expect(loadConfig(withUrl('{ file: secrets/db-url }')).connections.size).toBe(1);
    expect(loadConfig(withUrl('postgres://u@h:5432/db?sslmode=require')).connections.size).toBe(1);
  });

  it('refuses an inline masking hash key, and bad reference shapes', () => {
    const problems = problemsOf(
      configDir({
        'policies/gateway.yaml': `kind: gateway\nmasking: { hash_key: ${secret} }\n`,
        'tools/db.yaml': `${CONNECTION.replace('url: ${DB_URL}', 'url: { env: "not a name", value: x }')}---\n${TOOL}`,
      }),
    );
    expectProblem(problems, 'policies/gateway.yaml', 2, /masking\.hash_key is written inline/);
    expect(problems.some((p) => p.file.endsWith('tools/db.yaml') && p.line === 5)).toBe(true);
    expect(JSON.stringify(problems)).not.toContain(secret);
  });

  it('refuses an inline approval.request_state_key; a reference is kept as one', () => {
    const inline = problemsOf(
      configDir({ 'policies/gateway.yaml': `kind: gateway\napproval: { request_state_key: ${secret} }\n`, 'tools/db.yaml': `${CONNECTION}---\n${TOOL}` }),
    );
    expectProblem(inline, 'policies/gateway.yaml', 2, /approval\.request_state_key is written inline/);
    expect(JSON.stringify(inline)).not.toContain(secret);
    const referenced = loadConfig(
      configDir({ 'policies/gateway.yaml': 'kind: gateway\napproval: { request_state_key: { env: RS_KEY } }\n', 'tools/db.yaml': `${CONNECTION}---\n${TOOL}` }),
    );
    expect(referenced.approval.requestStateKey).toEqual({ kind: 'env', name: 'RS_KEY', describe: '$RS_KEY' });
    expect(loadConfig(configDir({ 'tools/db.yaml': `${CONNECTION}---\n${TOOL}` })).approval.requestStateKey).toBeNull();
  });

  it('containsInlineCredential', () => {
    expect(containsInlineCredential('postgres://u:pw@h/db')).toBe(true);
    expect(containsInlineCredential('postgresql://:pw@h')).toBe(true);
    expect(containsInlineCredential('postgres://u:${P}@h/db')).toBe(false);
    expect(containsInlineCredential('postgres://u@h:5432/db')).toBe(false);
    expect(containsInlineCredential('postgres://h:5432/db')).toBe(false);
    expect(containsInlineCredential('Production orders database (PostgreSQL 15)')).toBe(false);
    expect(containsInlineCredential('postgres://u@h/db?password=${P}')).toBe(false);
    expect(containsInlineCredential('postgres://u@h/db?PASSWORD=x')).toBe(true);
  });
});

describe('resolveSecret', () => {
  const ref = (value: unknown): SecretRef => secretRefSchema.parse(value);
  const value = 'hunter2-s3cret';

  it('resolves ${X} templates, { env } and { file } (relative to the config dir)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'drawbridge-secret-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'secrets'));
    writeFileSync(join(dir, 'secrets', 'url'), `postgres://u:${value}@h/db\n`);
    const environment = { env: { PW: value, HOST: 'db.internal', URL: 'postgres://x' }, baseDir: dir };
    expect(resolveSecret(ref('postgres://u:${PW}@${HOST}/db'), environment)).toBe(`postgres://u:${value}@db.internal/db`);
    expect(resolveSecret(ref({ env: 'URL' }), environment)).toBe('postgres://x');
    expect(resolveSecret(ref({ file: 'secrets/url' }), environment)).toBe(`postgres://u:${value}@h/db`);
    expect(resolveSecret(ref({ file: join(dir, 'secrets', 'url') }), environment)).toBe(`postgres://u:${value}@h/db`);
  });

  it('describes references by name only', () => {
    expect(ref('${A}-${B}').describe).toBe('$A, $B');
    expect(ref({ env: 'A' }).describe).toBe('$A');
    expect(ref({ file: '/run/x' }).describe).toBe('file /run/x');
  });

  it.each([
    ['a missing variable in a template', 'postgres://u:${PW}@${MISSING_HOST}/db', /environment variable MISSING_HOST is not set/],
    ['an empty variable', '${EMPTY}', /environment variable EMPTY is not set/],
    ['a missing { env }', { env: 'MISSING_URL' }, /environment variable MISSING_URL is not set/],
    ['a missing { file }', { file: 'nope/url' }, /secret file .*nope\/url cannot be read/],
  ])('%s: config.secret_missing naming it, never a value', (_what, input, message) => {
    let error: unknown;
    try {
      resolveSecret(ref(input), { env: { PW: value, EMPTY: '' }, baseDir: tmpdir() });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DrawbridgeError);
    const e = error as DrawbridgeError;
    expect(e.code).toBe('config.secret_missing');
    expect(e.message).toMatch(message);
    expect(`${e.message} ${e.hint} ${JSON.stringify(e.details)}`).not.toContain(value);
  });
});

describe('drawbridge check (CLI)', () => {
  it('exits 0 on the repo config and prints a summary, without secret values', async () => {
    const secret = 'cli-s3cret-value';
    const r = await runInProcess(['check', '--config', REPO_ROOT], {
      env: { SHOP_DATABASE_URL: `postgres://drawbridge_gateway:${secret}@127.0.0.1:5432/shop` },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK .*: 1 connection\(s\), 1 tool\(s\), 5 rule\(s\), 1 masking rule\(s\)/);
    expect(r.stdout).toContain('shop: $SHOP_DATABASE_URL');
    expect(r.stdout).not.toContain(secret);
    expect(r.stdout).not.toMatch(/warning: connection shop/);
  });

  it('warns (exit 0) when a referenced secret is not set, naming the variable', async () => {
    const r = await runInProcess(['check'], { cwd: REPO_ROOT });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/warning: connection shop: .*SHOP_DATABASE_URL is not set/);
  });

  it('exits 1 listing every problem of a broken config, never printing a secret', async () => {
    const secret = 'inline-s3cret';
    const dir = configDir({
      'tools/db.yaml': `kind: connection
name: db
type: postgres
description: Test
url: postgres://u:${secret}@h/db
limits: { timeot: 10s, max_bytes: 10 parsecs }
---
${TOOL}`,
      'policies/rules.yaml': `kind: policy
rules:
  - name: r
    match: { tool: run_sql, operation: dll }
    efect: allow
`,
    });
    const r = await runInProcess(['check', '--config', dir]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^Configuration has 6 problems:/);
    expect(r.stderr).toMatch(/policies\/rules\.yaml:3: rules\.0\.effect: required \(expected one of "allow"\|"deny"\|"approve"\)/);
    expect(r.stderr).toMatch(/tools\/db\.yaml:5: url: a password is written inline/);
    expect(r.stderr).toMatch(/tools\/db\.yaml:6: unknown key "timeot" in limits/);
    expect(r.stderr).toMatch(/tools\/db\.yaml:6: limits\.max_bytes: "10 parsecs" is not a size/);
    expect(r.stderr).toMatch(/policies\/rules\.yaml:4: unknown operation "dll"/);
    expect(r.stderr).toMatch(/policies\/rules\.yaml:5: unknown key "efect" in rules\.0/);
    expect(r.stderr + r.stdout).not.toContain(secret);
  });

  it('a YAML syntax error on a line holding a password does not echo the line', async () => {
    const secret = 'yaml-s3cret';
    const dir = configDir({ 'tools/db.yaml': `kind: connection\nname: db\ntype: postgres\ndescription: x\nurl: postgres://u:${secret}@h/db\n  oops: [\n` });
    const r = await runInProcess(['check', '--config', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/tools\/db\.yaml:\d+: YAML: /);
    expect(r.stderr + r.stdout).not.toContain(secret);
  });

  it('exits 1 for serve on a broken config, with the same report', async () => {
    const dir = configDir({ 'policies/rules.yaml': 'kind: policy\nrules:\n  - name: r\n    match: {}\n    efect: allow\n' });
    const r = await runInProcess(['serve', '--config', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/config\.invalid: Configuration has 2 problems/);
    expect(r.stderr).toMatch(/rules\.yaml:5: unknown key "efect"/);
  });
});

describe('loadConfig: OIDC identities', () => {
  const gateway = (identity: string) => ({ 'policies/gateway.yaml': `kind: gateway\nidentity:\n${identity}` });

  it('loads an OIDC identity with its defaults', () => {
    const config = loadConfig(
      configDir(gateway('  mode: oidc\n  issuer: https://login.example.com/realms/eng\n  audience: https://drawbridge.example.com/mcp\n')),
    );
    expect(config.identity).toEqual({
      mode: 'oidc',
      issuer: 'https://login.example.com/realms/eng',
      audience: 'https://drawbridge.example.com/mcp',
      algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
      groups_claim: 'groups',
      required_scopes: [],
      scopes: [],
      service_principal: 'rfc9068',
      clock_tolerance: 30_000,
      jwks: { cache_max_age: 600_000, cooldown: 30_000 },
      token_env: 'DRAWBRIDGE_TOKEN',
    });
  });

  it('loads identity.scopes with rule matches (backend keys too) and a claim-based service_principal', () => {
    const config = loadConfig(
      configDir(
        gateway(
          '  mode: oidc\n  issuer: https://login.example.com\n  audience: https://gw.example.com/mcp\n' +
            '  service_principal: { claim: gty, matches: client-credentials }\n' +
            '  scopes:\n' +
            '    - { scope: "sql:write", match: { tool: run_sql, access: [write, admin] } }\n' +
            '    - { scope: "pii:read", match: { tables: [customers], principal: person } }\n',
        ),
      ),
    );
    if (config.identity?.mode !== 'oidc') throw new Error('expected oidc');
    expect(config.identity.service_principal).toEqual({ claim: 'gty', matches: ['client-credentials'] });
    expect(config.identity.scopes.map((s) => [s.scope, s.match.tool, s.match.access, s.match.principal])).toEqual([
      ['sql:write', ['run_sql'], ['write', 'admin'], undefined],
      ['pii:read', undefined, undefined, ['person']],
    ]);
    // The backend key (tables:) is bound to its backend's matcher, as in a rule.
    expect(config.identity.scopes[1]?.match.backends).toHaveLength(1);
  });

  it('refuses a scope entry as a rule would be refused: unknown key, unknown tool, bad scope token, no match', () => {
    const problems = problemsOf(
      configDir(
        gateway(
          '  mode: oidc\n  issuer: https://login.example.com\n  audience: https://gw.example.com/mcp\n' +
            '  scopes:\n' +
            '    - { scope: "sql:write", match: { tool: run_sql, acess: write } }\n' +
            '    - { scope: "sql:write", match: { tool: run_sqll } }\n' +
            '    - { scope: "two words", match: { tool: run_sql } }\n' +
            '    - { scope: "x" }\n' +
            '    - { scope: "y", match: { principal: robot } }\n',
        ),
      ),
    );
    expectProblem(problems, 'policies/gateway.yaml', 7, /unknown key "acess"/);
    expectProblem(problems, 'policies/gateway.yaml', 8, /tool "run_sqll" is not declared/);
    expectProblem(problems, 'policies/gateway.yaml', 9, /a scope is printable ASCII without spaces/);
    expectProblem(problems, 'policies/gateway.yaml', 10, /identity\.scopes\.3\.match: required/);
    expectProblem(problems, 'policies/gateway.yaml', 11, /principal/);
  });

  it.each([
    ['  algorithms: [RS256, HS256]\n', /HS256 is not allowed: use asymmetric algorithms only/],
    ['  algorithms: [none]\n', /none is not allowed/],
    ['  clock_tolerance: 10m\n', /at most 5m/],
    ['  token_env: "not a var"\n', /environment variable name/],
    ['  groups: [x]\n', /groups/],
  ])('refuses %j', (extra, message) => {
    const text = `  mode: oidc\n  issuer: https://login.example.com\n  audience: https://gw.example.com/mcp\n${extra}`;
    const problems = problemsOf(configDir(gateway(text)));
    expect(problems.map((p) => p.message).join('\n')).toMatch(message);
  });

  it('refuses a plain-http issuer except on loopback', () => {
    const problems = problemsOf(configDir(gateway('  mode: oidc\n  issuer: http://login.example.com\n  audience: x\n')));
    expect(problems.map((p) => p.message).join('\n')).toMatch(/https:\/\/ \(http:\/\/ only on loopback/);
    expect(loadConfig(configDir(gateway('  mode: oidc\n  issuer: http://127.0.0.1:8080\n  audience: x\n'))).identity).toMatchObject({
      issuer: 'http://127.0.0.1:8080',
    });
  });

  it('warns that approval.approvers is not used with OIDC identities', () => {
    const config = loadConfig(
      configDir({
        'policies/gateway.yaml':
          'kind: gateway\nidentity: { mode: oidc, issuer: "https://login.example.com", audience: x }\n' +
          'approval:\n  approvers:\n    - { subject: a, token: "${T}" }\n',
      }),
    );
    expect(config.warnings.join('\n')).toMatch(/approval.approvers is not used with OIDC identities/);
  });
});

describe('state (kind: gateway)', () => {
  const gateway = (state: string) => ({ 'policies/gateway.yaml': `kind: gateway\nidentity: { mode: local, subject: dev }\n${state}` });

  it('is SQLite without state:, PostgreSQL with a referenced url', () => {
    expect(loadConfig(configDir(gateway(''))).state).toEqual({ engine: 'sqlite' });
    const block = loadConfig(configDir(gateway('state:\n  url: ${DRAWBRIDGE_STATE_URL}\n'))).state;
    expect(block).toMatchObject({ engine: 'postgres', url: { kind: 'template', template: '${DRAWBRIDGE_STATE_URL}' } });
    const quoted = loadConfig(configDir(gateway('state: { url: "${DRAWBRIDGE_STATE_URL}" }\n'))).state;
    expect(quoted).toEqual(block);
    expect(loadConfig(configDir(gateway('state: { url: { env: STATE } }\n'))).state).toMatchObject({ engine: 'postgres', url: { kind: 'env', name: 'STATE' } });
  });

  it('refuses a url written inline, without repeating it', () => {
    const problems = problemsOf(configDir(gateway('state:\n  url: postgres://drawbridge:hunter2@db/state\n')));
    expectProblem(problems, 'policies/gateway.yaml', 4, /state\.url is written inline; reference it instead/);
    expect(JSON.stringify(problems)).not.toContain('hunter2');
  });

  it('an unquoted ${VAR} in a flow mapping is one YAML problem that says to quote it, never quoting the line', () => {
    const problems = problemsOf(configDir(gateway('state: { url: ${DRAWBRIDGE_STATE_URL} }\n')));
    expect(problems).toHaveLength(1);
    expectProblem(problems, 'policies/gateway.yaml', 3, /YAML: .*must be quoted, e\.g\. \{ url: "\$\{DRAWBRIDGE_STATE_URL\}" \}, or written in block style/);
    const other = problemsOf(configDir(gateway('state: { url: [oops }\n')));
    expect(other.every((p) => !p.message.includes('must be quoted'))).toBe(true);
  });
});

describe('tracing (kind: gateway)', () => {
  const gateway = (tracing: string) => ({ 'policies/gateway.yaml': `kind: gateway\nidentity: { mode: local, subject: dev }\n${tracing}` });

  it('is off without tracing:, on with an endpoint; defaults for the rest', () => {
    expect(loadConfig(configDir(gateway(''))).tracing).toBeNull();
    expect(loadConfig(configDir(gateway('tracing: { endpoint: "https://otel.example.com/v1/traces" }\n'))).tracing).toEqual({
      endpoint: 'https://otel.example.com/v1/traces',
      headers: {},
      sampleRatio: 1,
      serviceName: 'drawbridge',
    });
    const full = loadConfig(
      configDir(
        gateway(
          'tracing:\n  endpoint: http://127.0.0.1:4318/v1/traces\n  headers:\n    x-api-key: ${OTEL_KEY}\n    authorization: { file: /run/secrets/otel }\n' +
            '  sample_ratio: 0.25\n  service_name: gw-eu\n',
        ),
      ),
    ).tracing;
    expect(full).toMatchObject({
      endpoint: 'http://127.0.0.1:4318/v1/traces',
      headers: { 'x-api-key': { kind: 'template', template: '${OTEL_KEY}' }, authorization: { kind: 'file', path: '/run/secrets/otel' } },
      sampleRatio: 0.25,
      serviceName: 'gw-eu',
    });
  });

  it('refuses plain http off loopback, credentials in the URL, an inline header value, a ratio out of 0..1, and a non-URL, at their lines', () => {
    const text = 'tracing:\n  endpoint: http://collector.internal:4318/v1/traces\n  headers:\n    x-api-key: hunter2-inline\n  sample_ratio: 1.5\n';
    const problems = problemsOf(configDir(gateway(text)));
    const file = `kind: gateway\nidentity: { mode: local, subject: dev }\n${text}`;
    expectProblem(problems, 'policies/gateway.yaml', lineOf(file, 'sample_ratio'), /less than or equal to 1|<=1/);
    // The schema's problems come first; the endpoint and header checks run once the block is valid.
    const second = problemsOf(configDir(gateway(text.replace('1.5', '0.5'))));
    expectProblem(second, 'policies/gateway.yaml', lineOf(file, 'endpoint'), /must use https:\/\/ .*collector\.internal is not loopback/);
    expectProblem(second, 'policies/gateway.yaml', lineOf(file, 'x-api-key'), /tracing header x-api-key is written inline; reference it instead/);
    expect(JSON.stringify(second)).not.toContain('hunter2');
    const userinfo = problemsOf(configDir(gateway('tracing: { endpoint: "https://u:pw-secret@otel.example.com/v1/traces" }\n')));
    expect(userinfo.map((p) => p.message)).toEqual([expect.stringMatching(/^tracing\.endpoint: a password is written inline/)]);
    expect(JSON.stringify(userinfo)).not.toContain('pw-secret');
    const token = problemsOf(configDir(gateway('tracing: { endpoint: "https://tok-secret@otel.example.com/v1/traces" }\n')));
    expect(token.map((p) => p.message)).toEqual([expect.stringMatching(/tracing\.endpoint carries credentials in the URL/)]);
    expect(JSON.stringify(token)).not.toContain('tok-secret');
    const notUrl = problemsOf(configDir(gateway('tracing: { endpoint: "otel:4318" }\n')));
    expect(notUrl.map((p) => p.message)).toEqual([expect.stringMatching(/tracing\.endpoint takes the OTLP\/HTTP traces URL/)]);
    const grpc = problemsOf(configDir(gateway('tracing: { endpoint: "grpc://otel:4317" }\n')));
    expect(grpc.map((p) => p.message)).toEqual([expect.stringMatching(/tracing\.endpoint takes the OTLP\/HTTP traces URL/)]);
  });
});
