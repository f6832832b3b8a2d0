// journal.stream in kind: gateway (src/config/schema.ts, load.ts): webhook and OTLP sinks load
// with their defaults; every problem is reported at its line at once: a name used twice, an
// http URL off loopback, a scheme other than https, a signing secret or header value written
// inline (never repeated back), a missing secret, an unknown type, and a batch out of range.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type ConfigProblem } from '../../src/config/load.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A minimal valid config whose gateway document's journal is `journal` (YAML, indented under `journal:`). */
function configWith(journal: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-stream-config-'));
  dirs.push(dir);
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(
    join(dir, 'tools', 'db.yaml'),
    'kind: connection\nname: db\ntype: postgres\ndescription: Test database\nurl: ${DB_URL}\n' +
      '---\nkind: tool\nname: run_sql\ntype: run_sql\nconnections: [db]\n',
  );
  writeFileSync(join(dir, 'policies', 'gateway.yaml'), `kind: gateway\nidentity: { mode: local, subject: dev }\njournal:\n${journal}`);
  return dir;
}

function problemsOf(dir: string): ConfigProblem[] {
  try {
    loadConfig(dir);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).problems];
  }
  throw new Error('expected the config to be refused');
}

function expectAt(problems: readonly ConfigProblem[], line: number, message: string | RegExp): void {
  const found = problems.some((p) => p.line === line && (typeof message === 'string' ? p.message.includes(message) : message.test(p.message)));
  expect(found, `${line}: ${String(message)} in\n${problems.map((p) => `${p.line}: ${p.message}`).join('\n')}`).toBe(true);
}

describe('journal.stream', () => {
  it('loads webhook and OTLP sinks with their defaults; none by default', () => {
    expect(loadConfig(configWith('  path: journal.db\n')).journal.stream).toEqual([]);
    const config = loadConfig(
      configWith(`  stream:
    - name: siem
      type: webhook
      url: https://siem.example.com/ingest/drawbridge
      secret: \${SIEM_SECRET}
    - name: otel
      type: otlp
      endpoint: http://127.0.0.1:4318/v1/logs
      headers: { authorization: { env: OTLP_AUTH } }
      batch: 500
      timeout: 5s
`),
    );
    expect(config.journal.stream).toEqual([
      {
        type: 'webhook',
        name: 'siem',
        batch: 100,
        timeoutMs: 10_000,
        url: { kind: 'template', template: 'https://siem.example.com/ingest/drawbridge', describe: 'inline value' },
        secret: { kind: 'template', template: '${SIEM_SECRET}', describe: '$SIEM_SECRET' },
      },
      {
        type: 'otlp',
        name: 'otel',
        batch: 500,
        timeoutMs: 5_000,
        endpoint: 'http://127.0.0.1:4318/v1/logs',
        headers: { authorization: { kind: 'env', name: 'OTLP_AUTH', describe: '$OTLP_AUTH' } },
      },
    ]);
  });

  it('reports every problem at its line: duplicate names, URLs off https, signing secrets and header values written inline', () => {
    const problems = problemsOf(
      configWith(`  stream:
    - name: siem
      type: webhook
      url: http://siem.example.com/ingest
      secret: whsec-written-inline
    - name: siem
      type: otlp
      endpoint: ftp://collector.example.com/v1/logs
      headers: { authorization: Bearer-inline-token-value }
`),
    );
    expectAt(problems, 7, 'a stream webhook URL must use https:// (http:// only to a loopback address, for tests); siem.example.com is not loopback');
    expectAt(problems, 8, 'a stream webhook signing secret is written inline; reference it instead');
    expectAt(problems, 9, 'stream sink "siem" is declared twice (also journal.stream[0]); the name keys its durable cursor');
    expectAt(problems, 11, 'an OTLP endpoint must use https:// (it uses ftp://)');
    expectAt(problems, 12, 'OTLP header authorization is written inline (header values are credentials)');
    expect(problems).toHaveLength(5);
    const text = JSON.stringify(problems);
    expect(text).not.toContain('whsec-written-inline');
    expect(text).not.toContain('Bearer-inline-token-value');
  });

  it('reports the shape problems: a bad name, a missing secret, an unknown type, a batch out of range', () => {
    const problems = problemsOf(
      configWith(`  stream:
    - name: bad name!
      type: webhook
      url: \${SIEM_URL}
    - name: kafka
      type: kafka
    - name: big
      type: otlp
      endpoint: https://collector.example.com/v1/logs
      batch: 5000
`),
    );
    expectAt(problems, 5, 'a sink name uses letters, digits, _ . or - (at most 64)');
    expectAt(problems, 5, /journal\.stream\.0\.secret: required/);
    expectAt(problems, 9, /journal\.stream\.1\.type: .*'webhook' \| 'otlp'/);
    expectAt(problems, 13, /journal\.stream\.2\.batch: Too big/);
  });
});
