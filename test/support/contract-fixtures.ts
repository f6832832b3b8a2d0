// One contract fixture per backend in BACKENDS, keyed by connection type: how
// to start its system (the shared throwaway PostgreSQL, the in-process fake
// Kubernetes API, a real sshd on loopback, a local HTTP API), its connections with a canary
// credential, and the inputs the contract suite sends. A backend added to the
// registry without an entry here fails test/backends/contract.test.ts.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { inject } from 'vitest';
import type { StructuredAnswer } from '../../src/pipeline/answer.js';
import { canary, type ContractFixture, type RunningSystem } from './backend-contract.js';
import { DEFAULT_EXEC_HANDLER, startFakeKube } from './fake-kube/server.js';
import { freshDatabase, type FreshDatabase } from './fixtures.js';
import { startRecordingServer } from './http-servers.js';
import { freePort } from './net.js';
import { SSH_KEYGEN_PATH, startSshd } from './sshd.js';

/** Bytes of the data cells of an answer (what a byte cap counts). */
function cellBytes(answer: StructuredAnswer, columns?: readonly string[]): number {
  const wanted = answer.columns.map((c, i) => (columns === undefined || columns.includes(c.name) ? i : -1)).filter((i) => i >= 0);
  return answer.rows.reduce(
    (n, row) => n + wanted.reduce((m, i) => m + (row[i] === null || row[i] === undefined ? 0 : Buffer.byteLength(String(row[i]))), 0),
    0,
  );
}

// ---------------------------------------------------------------------------
// PostgreSQL: a private copy of the shop database and a role of the suite's own,
// whose password is the canary.

async function asAdmin<T>(body: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: inject('pgAdminUrl') });
  await admin.connect();
  try {
    return await body(admin);
  } finally {
    await admin.end();
  }
}

async function startPostgres(): Promise<RunningSystem> {
  const db: FreshDatabase = await freshDatabase('contract');
  const role = `contract_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const password = canary('pg');
  const wrong = canary('pg-wrong');
  await asAdmin(async (admin) => {
    await admin.query(`CREATE ROLE ${admin.escapeIdentifier(role)} LOGIN PASSWORD ${admin.escapeLiteral(password)}`);
    await admin.query(`GRANT CONNECT ON DATABASE ${admin.escapeIdentifier(db.name)} TO ${admin.escapeIdentifier(role)}`);
  });
  const server = new URL(inject('pgAdminUrl'));
  const url = (secret: string, port: string) => `postgres://${role}:${secret}@${server.hostname}:${port}/${db.name}`;
  const closed = String(await freePort());
  const body = (env: string, limits = '{ timeout: 5s }') => `type: postgres\ndescription: contract database\nurl: \${${env}}\nlimits: ${limits}`;
  return {
    connections: {
      main: body('MAIN_URL'),
      unreachable: body('UNREACHABLE_URL'),
      rejected: body('REJECTED_URL'),
      capped_rows: body('MAIN_URL', '{ timeout: 5s, max_rows: 1 }'),
      capped_bytes: body('MAIN_URL', '{ timeout: 5s, max_bytes: 1 }'),
      capped_kib: body('MAIN_URL', '{ timeout: 5s, max_bytes: 1KiB }'),
    },
    env: { MAIN_URL: url(password, server.port), UNREACHABLE_URL: url(password, closed), REJECTED_URL: url(wrong, server.port) },
    canaries: [password, wrong],
    async stop() {
      await db.drop();
      await asAdmin((admin) => admin.query(`DROP ROLE IF EXISTS ${admin.escapeIdentifier(role)}`));
    },
  };
}

const ROWS_SQL = 'SELECT g, repeat($$x$$, 100) AS pad FROM generate_series(1, 50) AS g';

const postgres: ContractFixture = {
  type: 'postgres',
  read: { sql: 'SELECT 1 AS one' },
  refused: { args: { sql: 'SELECT 1; SELECT 2' }, code: 'sql.multiple_statements' },
  denied: { args: { sql: 'DELETE FROM orders WHERE id = -1' }, operation: 'delete' },
  missing: { args: { sql: 'SELECT * FROM public.contract_no_such_table' }, code: 'backend.error' },
  failing: [],
  oversized: [
    {
      outcome: 'truncated',
      name: 'max_rows: 1',
      call: { connection: 'capped_rows', args: { sql: ROWS_SQL } },
      truncated: { reason: 'rows', limit: 1 },
      measure: (answer) => answer.rowCount,
    },
    {
      outcome: 'truncated',
      name: 'max_bytes: 1',
      call: { connection: 'capped_bytes', args: { sql: ROWS_SQL } },
      truncated: { reason: 'bytes', limit: 1 },
      measure: (answer) => cellBytes(answer),
    },
    {
      outcome: 'truncated',
      name: 'max_bytes: 1KiB',
      call: { connection: 'capped_kib', args: { sql: ROWS_SQL } },
      truncated: { reason: 'bytes', limit: 1024 },
      measure: (answer) => cellBytes(answer),
    },
  ],
  start: startPostgres,
};

// ---------------------------------------------------------------------------
// Kubernetes: the fake API server, whose bearer token is the canary.

const BIG_EXEC = 'x'.repeat(256 * 1024);

async function startKubernetes(): Promise<RunningSystem> {
  const token = canary('kube');
  const wrong = canary('kube-wrong');
  const fake = await startFakeKube({ token });
  fake.setExecHandler((req) => (req.command.join(' ') === 'cat /big' ? { stdout: BIG_EXEC, stderr: '', exitCode: 0 } : DEFAULT_EXEC_HANDLER(req)));
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-contract-kube-'));
  const closed = `http://127.0.0.1:${await freePort()}`;
  writeFileSync(join(dir, 'kubeconfig'), fake.kubeconfig('shop'), { mode: 0o600 });
  writeFileSync(join(dir, 'kubeconfig-unreachable'), fake.kubeconfig('shop').replaceAll(fake.url, closed), { mode: 0o600 });
  writeFileSync(join(dir, 'kubeconfig-rejected'), fake.kubeconfig('shop', { token: wrong }), { mode: 0o600 });
  const body = (file: string, limits = '{ timeout: 5s }') =>
    `type: kubernetes\ndescription: contract cluster\nkubeconfig: { file: ${join(dir, file)} }\nnamespace: shop\nlimits: ${limits}`;
  return {
    connections: {
      main: body('kubeconfig'),
      unreachable: body('kubeconfig-unreachable'),
      rejected: body('kubeconfig-rejected'),
      capped: body('kubeconfig', '{ timeout: 5s, max_bytes: 64KiB }'),
      capped_min: body('kubeconfig', '{ timeout: 5s, max_bytes: 1 }'),
    },
    env: {},
    canaries: [token, wrong],
    async stop() {
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const kubernetes: ContractFixture = {
  type: 'kubernetes',
  read: { command: 'get pods -n shop' },
  refused: { args: { command: 'get pods --as=system:admin' }, code: 'kubectl.refused' },
  denied: { args: { command: 'delete pod web-7d9c-abcde -n shop' }, operation: 'delete' },
  missing: { args: { command: 'get pod contract-no-such-pod -n shop' }, code: 'backend.error' },
  failing: [],
  oversized: [
    {
      outcome: 'truncated',
      name: 'exec output over max_bytes: 64KiB',
      call: { connection: 'capped', args: { command: 'exec web-7d9c-abcde -- cat /big' } },
      truncated: { reason: 'bytes', limit: 64 * 1024 },
      measure: (answer) => cellBytes(answer, ['stdout', 'stderr']),
    },
    {
      outcome: 'refused',
      name: 'an API answer over max_bytes: 1',
      call: { connection: 'capped_min', args: { command: 'get pods -n shop' } },
      code: 'backend.error',
      says: /larger than 1 ?B/,
    },
  ],
  start: startKubernetes,
};

// ---------------------------------------------------------------------------
// SSH: a real sshd on loopback; the suite's copy of its client key is encrypted
// with the canary passphrase (and the key material is a canary too).

function encryptedCopy(privateKey: string, path: string, passphrase: string): void {
  writeFileSync(path, privateKey, { mode: 0o600 });
  const r = spawnSync(SSH_KEYGEN_PATH, ['-q', '-p', '-P', '', '-N', passphrase, '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen -p failed: ${r.error?.message ?? r.stderr}`);
}

function keygen(path: string, passphrase: string): void {
  const r = spawnSync(SSH_KEYGEN_PATH, ['-q', '-t', 'ed25519', '-N', passphrase, '-C', 'contract-stranger', '-f', path], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.error?.message ?? r.stderr}`);
}

/** The base64 lines of an OpenSSH private key: each is secret key material. */
function keyLines(key: string): string[] {
  return key.split('\n').filter((line) => /^[A-Za-z0-9+/=]{40,}$/.test(line.trim()));
}

async function startSsh(): Promise<RunningSystem> {
  const sshd = await startSshd();
  const passphrase = canary('ssh');
  const wrong = canary('ssh-wrong');
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-contract-ssh-'));
  const keyPath = join(dir, 'id_contract');
  encryptedCopy(sshd.privateKey, keyPath, passphrase);
  // A key of its own the host never authorized, encrypted with the same canary passphrase.
  const strangerPath = join(dir, 'id_stranger');
  keygen(strangerPath, passphrase);
  const closed = await freePort();
  const body = (port: number, passphraseEnv: string, limits = '{ timeout: 5s }', key = keyPath) =>
    [
      'type: ssh',
      'description: contract host',
      `hosts: [ { name: web-1, host: 127.0.0.1, port: ${port}, host_key: "${sshd.hostKeyFingerprint}" } ]`,
      `user: ${sshd.user}`,
      `private_key: { file: ${key} }`,
      `passphrase: { env: ${passphraseEnv} }`,
      `limits: ${limits}`,
    ].join('\n');
  return {
    connections: {
      main: body(sshd.port, 'SSH_PASSPHRASE'),
      unreachable: body(closed, 'SSH_PASSPHRASE'),
      rejected: body(sshd.port, 'SSH_PASSPHRASE', '{ timeout: 5s }', strangerPath),
      bad_passphrase: body(sshd.port, 'SSH_WRONG_PASSPHRASE'),
      capped: body(sshd.port, 'SSH_PASSPHRASE', '{ timeout: 5s, max_output: 1KiB }'),
      capped_min: body(sshd.port, 'SSH_PASSPHRASE', '{ timeout: 5s, max_output: 1 }'),
    },
    env: { SSH_PASSPHRASE: passphrase, SSH_WRONG_PASSPHRASE: wrong },
    canaries: [passphrase, wrong, ...[sshd.privateKey, readFileSync(keyPath, 'utf8'), readFileSync(strangerPath, 'utf8')].flatMap(keyLines)],
    async stop() {
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const ssh: ContractFixture = {
  type: 'ssh',
  read: { command: 'id -un' },
  refused: { args: { command: 'echo $(id -un)' }, code: 'ssh.refused' },
  denied: { args: { command: 'sudo id' }, operation: 'runs_programs' },
  missing: { args: { command: 'cat /contract/no/such/file' }, code: null },
  failing: [{ name: 'a wrong passphrase for the key', call: { connection: 'bad_passphrase', args: { command: 'id -un' } }, code: 'config.secret_invalid' }],
  oversized: [
    {
      outcome: 'truncated',
      name: 'max_output: 1KiB',
      call: { connection: 'capped', args: { command: 'seq 1 100000' } },
      truncated: { reason: 'bytes', limit: 1024 },
      measure: (answer) => cellBytes(answer, ['stdout', 'stderr']),
    },
    {
      outcome: 'truncated',
      name: 'max_output: 1',
      call: { connection: 'capped_min', args: { command: 'seq 1 100000' } },
      truncated: { reason: 'bytes', limit: 1 },
      measure: (answer) => cellBytes(answer, ['stdout', 'stderr']),
    },
  ],
  start: startSsh,
};

// ---------------------------------------------------------------------------
// HTTP: a local API that wants the canary bearer token (401 otherwise) and
// reflects each request it accepts, headers included: the token the gateway
// injected comes back in the body and must be scrubbed from the answer.

const BIG_HTTP_BODY = 'x'.repeat(64 * 1024);

async function startHttp(): Promise<RunningSystem> {
  const token = canary('http');
  const wrong = canary('http-wrong');
  const server = await startRecordingServer((req, res, recorded) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      res.end(JSON.stringify({ error: 'unauthorized', got: req.headers.authorization ?? null }));
      return;
    }
    const path = new URL(recorded.rawPath, 'http://x').pathname;
    if (path === '/big') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(BIG_HTTP_BODY);
      return;
    }
    res.writeHead(path === '/' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ method: recorded.method, path: recorded.rawPath, headers: recorded.headers }));
  });
  const closed = await freePort();
  const body = (port: number, env: string, limits = '{ timeout: 5s }') =>
    [
      'type: http',
      'description: contract API',
      `base_url: http://127.0.0.1:${port}`,
      `credential: { bearer: { env: ${env} } }`,
      'networks: [127.0.0.1/32]',
      `limits: ${limits}`,
    ].join('\n');
  return {
    connections: {
      main: body(server.port, 'HTTP_TOKEN'),
      unreachable: body(closed, 'HTTP_TOKEN'),
      rejected: body(server.port, 'HTTP_WRONG_TOKEN'),
      capped: body(server.port, 'HTTP_TOKEN', '{ timeout: 5s, max_response_bytes: 1KiB }'),
      capped_min: body(server.port, 'HTTP_TOKEN', '{ timeout: 5s, max_response_bytes: 1 }'),
    },
    env: { HTTP_TOKEN: token, HTTP_WRONG_TOKEN: wrong },
    canaries: [token, wrong],
    stop: () => server.close(),
  };
}

const http: ContractFixture = {
  type: 'http',
  read: { method: 'GET', path: '/' },
  refused: { args: { method: 'GET', path: '//evil.example/' }, code: 'http.path_invalid' },
  denied: { args: { method: 'DELETE', path: '/items/1' }, operation: 'delete' },
  missing: { args: { method: 'GET', path: '/contract/no/such/thing' }, code: null },
  failing: [],
  oversized: [
    {
      outcome: 'truncated',
      name: 'max_response_bytes: 1KiB',
      call: { connection: 'capped', args: { method: 'GET', path: '/big' } },
      truncated: { reason: 'bytes', limit: 1024 },
      measure: (answer) => cellBytes(answer, ['body']),
    },
    {
      outcome: 'truncated',
      name: 'max_response_bytes: 1',
      call: { connection: 'capped_min', args: { method: 'GET', path: '/big' } },
      truncated: { reason: 'bytes', limit: 1 },
      measure: (answer) => cellBytes(answer, ['body']),
    },
  ],
  start: startHttp,
};

/** The fixtures by connection type. */
export const CONTRACT_FIXTURES: Readonly<Record<string, ContractFixture>> = Object.fromEntries([postgres, kubernetes, ssh, http].map((f) => [f.type, f]));
