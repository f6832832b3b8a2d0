// `check --connect` (checkConnections + formatConnectionReports) against real
// parts: a private PostgreSQL database (the least-privilege gateway role, a
// superuser, a wrong password, a stopped port, a url that is not a URL, a
// missing secret, a server that accepts and never answers), the fake
// Kubernetes API (SelfSubjectReview, a server without it, a wrong token, a
// stopped server), a real OpenSSH sshd and the ssh2 fault server (wrong host
// key, a fish-like login shell, a key the host does not accept, a host group
// with one bad host). One line per connection; failures carry the catalog
// code and hint; nothing prints a secret; every connection is closed.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineBackend, type BackendConnection, type ConnectionDeclaration } from '../../src/backends/backend.js';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig, LoadedConnection } from '../../src/config/schema.js';
import { DrawbridgeError } from '../../src/errors.js';
import { checkConnections, connectionCheckFailed, formatConnectionReports, type ConnectionReport } from '../../src/pipeline/probe.js';
import { startFakeKube, type FakeKube } from '../support/fake-kube/server.js';
import { freshDatabase, refusedPostgresUrl, withPassword, type FreshDatabase } from '../support/fixtures.js';
import { freePort } from '../support/net.js';
import { generateEd25519KeyPair, startFaultServer, type FaultServer } from '../support/ssh-fault-server.js';
import { sshConnectionYaml, startSshd, type Sshd } from '../support/sshd.js';

const WRONG_PASSWORD = 'wrong-password-probe-7f3a';
const NOT_A_URL = 'host=127.0.0.1 dbname=shop password=not-a-url-secret-91c2';

let db: FreshDatabase;
let fake: FakeKube;
let oldFake: FakeKube;
let sshd: Sshd;
let fault: FaultServer;
let fish: FaultServer;
let silent: Server;
const silentSockets = new Set<Socket>();
let dir: string;
let config: GatewayConfig;
let env: Record<string, string>;
let reports: ConnectionReport[];
let output: string;

const pg = (name: string, variable: string) => `kind: connection\nname: ${name}\ntype: postgres\ndescription: ${name}\nurl: \${${variable}}\n`;
const kube = (name: string, file: string, extra = '') =>
  `kind: connection\nname: ${name}\ntype: kubernetes\ndescription: ${name}\nkubeconfig: { file: ${file} }\nnamespace: shop\n${extra}`;

beforeAll(async () => {
  db = await freshDatabase('probe');
  [fake, oldFake, sshd, fault, fish] = await Promise.all([
    startFakeKube(),
    startFakeKube({ selfSubjectReview: false }),
    startSshd(),
    startFaultServer(),
    startFaultServer({ shell: 'fish' }),
  ]);
  // Accepts TCP connections and never says a word: a hung server.
  silent = createServer((socket) => {
    silentSockets.add(socket);
    socket.on('close', () => silentSockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as { port: number }).port;

  dir = mkdtempSync(join(tmpdir(), 'drawbridge-probe-'));
  mkdirSync(join(dir, 'tools'));
  writeFileSync(join(dir, 'kube-ok.kubeconfig'), fake.kubeconfig('shop'));
  writeFileSync(join(dir, 'kube-old.kubeconfig'), oldFake.kubeconfig('shop'));
  writeFileSync(join(dir, 'kube-badtoken.kubeconfig'), fake.kubeconfig('shop', { token: 'not-the-token' }));
  writeFileSync(join(dir, 'kube-garbage.kubeconfig'), 'users: [{ name: x, user: { token: garbage-token-5e1d }\n');
  writeFileSync(join(dir, 'not-a-key'), 'this is not a private key\n');
  writeFileSync(join(dir, 'kube-down.kubeconfig'), fake.kubeconfig('shop').replace(fake.url, `http://127.0.0.1:${await freePort()}`));
  const stranger = generateEd25519KeyPair();
  writeFileSync(join(dir, 'stranger_ed25519'), stranger.private, { mode: 0o600 });
  const login = sshd;
  const documents = [
    pg('pg-ok', 'PG_OK'),
    pg('pg-super', 'PG_SUPER'),
    pg('pg-wrong-password', 'PG_WRONG'),
    pg('pg-down', 'PG_DOWN'),
    pg('pg-not-a-url', 'PG_NOT_A_URL'),
    pg('pg-missing', 'PG_MISSING'),
    pg('pg-silent', 'PG_SILENT'),
    kube('kube-ok', 'kube-ok.kubeconfig', 'impersonate: true\n'),
    kube('kube-old', 'kube-old.kubeconfig'),
    kube('kube-bad-token', 'kube-badtoken.kubeconfig'),
    kube('kube-down', 'kube-down.kubeconfig', 'limits: { timeout: 2s }\n'),
    kube('kube-garbage', 'kube-garbage.kubeconfig'),
    `kind: connection\nname: kube-in-cluster\ntype: kubernetes\ndescription: not in a pod\nin_cluster: true\n`,
    `kind: connection\nname: kube-missing\ntype: kubernetes\ndescription: kube-missing\nkubeconfig: \${KUBE_MISSING}\n`,
    sshConnectionYaml({ name: 'ssh-ok', description: 'sshd', hosts: [{ name: 'web-1', server: sshd }], login }),
    sshConnectionYaml({
      name: 'ssh-wrong-key',
      description: 'pinned to another key',
      hosts: [{ name: 'w', server: { port: sshd.port, hostKeyFingerprint: fault.hostKeyFingerprint } }],
      login,
    }),
    sshConnectionYaml({ name: 'ssh-fish', description: 'fish-like shell', hosts: [{ name: 'fish-1', server: fish }], login }),
    sshConnectionYaml({
      name: 'ssh-stranger',
      description: 'a key the host does not accept',
      hosts: [{ name: 's', server: sshd }],
      login: { user: sshd.user, privateKeyPath: join(dir, 'stranger_ed25519') },
    }),
    sshConnectionYaml({
      name: 'ssh-group',
      description: 'one good host, one bad',
      hosts: [
        { name: 'good', server: sshd },
        { name: 'bad', server: { port: sshd.port, hostKeyFingerprint: fault.hostKeyFingerprint } },
      ],
      login,
    }),
    sshConnectionYaml({
      name: 'ssh-bad-key',
      description: 'private_key is not a key',
      hosts: [{ name: 'k', server: sshd }],
      login: { user: sshd.user, privateKeyPath: join(dir, 'not-a-key') },
    }),
    'kind: connection\nname: ssh-missing\ntype: ssh\ndescription: key not set\n' +
      `hosts: [{ name: m, host: 127.0.0.1, port: ${sshd.port}, host_key: "${sshd.hostKeyFingerprint}" }]\n` +
      `user: ${sshd.user}\nprivate_key: \${SSH_KEY_MISSING}\n`,
  ];
  writeFileSync(join(dir, 'tools', 'connections.yaml'), documents.join('---\n'));
  config = loadConfig(dir);
  env = {
    PG_OK: db.gatewayUrl,
    PG_SUPER: db.superuserUrl,
    PG_WRONG: withPassword(db.gatewayUrl, WRONG_PASSWORD),
    PG_DOWN: await refusedPostgresUrl(db.name),
    PG_NOT_A_URL: NOT_A_URL,
    PG_SILENT: `postgres://drawbridge_gateway@127.0.0.1:${silentPort}/shop`,
  };
  // Everything but the hung server, which gets its own short check below.
  reports = await checkConnections(config, { env, only: [...config.connections.keys()].filter((n) => n !== 'pg-silent') });
  output = formatConnectionReports(reports);
});

afterAll(async () => {
  for (const s of silentSockets) s.destroy();
  await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
  await Promise.all([fake?.close(), oldFake?.close(), sshd?.stop(), fault?.stop(), fish?.stop()]);
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function report(name: string): ConnectionReport {
  const r = reports.find((x) => x.name === name);
  if (!r) throw new Error(`no report for ${name}`);
  return r;
}

function failed(name: string, code: string): ConnectionReport {
  const r = report(name);
  expect(r.status).toBe('failed');
  expect(r.error?.code).toBe(code);
  expect(r.line).toMatch(new RegExp(`^${code.replace('.', '\\.')}: `));
  expect(r.error?.hint.length).toBeGreaterThan(20);
  return r;
}

describe('the report: one per connection, in declaration order', () => {
  it('covers every selected connection with name and type', () => {
    expect(reports.map((r) => [r.name, r.type])).toEqual(
      [...config.connections.values()].filter((c) => c.declaration.name !== 'pg-silent').map((c) => [c.declaration.name, c.declaration.type]),
    );
    expect(connectionCheckFailed(reports)).toBe(true);
    expect(connectionCheckFailed(reports.filter((r) => r.status !== 'failed'))).toBe(false);
  });

  it('never prints a secret', () => {
    for (const secret of [
      WRONG_PASSWORD,
      'not-a-url-secret-91c2',
      'garbage-token-5e1d',
      'this is not a private key',
      'gateway-test-password',
      fake.token,
      new URL(db.superuserUrl).password,
      sshd.privateKey.split('\n')[1]!,
    ]) {
      expect(output).not.toContain(secret);
      expect(JSON.stringify(reports)).not.toContain(secret);
    }
  });
});

describe('PostgreSQL', () => {
  it('ok: server version, database, the role and that it is not a superuser, the read-only transaction', () => {
    const r = report('pg-ok');
    expect(r.status).toBe('ok');
    expect(r.line).toMatch(
      new RegExp(
        `^PostgreSQL \\d+\\.\\d+\\S* at 127\\.0\\.0\\.1:\\d+, database ${db.name}, role ` +
          `drawbridge_gateway \\(not a superuser\\), reads run in a read-only transaction$`,
      ),
    );
    expect(r.facts).toMatchObject({ role: 'drawbridge_gateway', superuser: false, database: db.name, readOnlyTransaction: true, standby: false });
    expect(r.error).toBeNull();
  });

  it('a superuser: WARN, the database cannot be the second wall, connect as a least-privilege role', () => {
    const r = report('pg-super');
    expect(r.status).toBe('warning');
    expect(r.line).toContain('role postgres (SUPERUSER)');
    expect(r.warnings).toEqual([
      expect.stringMatching(/^role postgres is a SUPERUSER: the database cannot be the second wall .*connect the gateway as a least-privilege role/),
    ]);
    expect(r.facts).toMatchObject({ superuser: true });
  });

  it('a wrong password: backend.auth_failed naming the user, the operator must fix the credential', () => {
    const r = failed('pg-wrong-password', 'backend.auth_failed');
    expect(r.line).toContain(
      'refused to authenticate user "drawbridge_gateway" for connection pg-wrong-password ' +
        '(28P01: password authentication failed for user "drawbridge_gateway")',
    );
    expect(r.error?.hint).toMatch(/Retrying will not help/);
  });

  it('a stopped server: could not connect to 127.0.0.1:PORT: connection refused', () => {
    const r = failed('pg-down', 'backend.unavailable');
    expect(r.line).toBe(
      `backend.unavailable: Connection pg-down: could not connect to 127.0.0.1:${new URL(env['PG_DOWN']!).port}: ` +
        `connection refused (is PostgreSQL running and listening there?).`,
    );
  });

  it('a url that is not a URL: config.secret_invalid names the variable and the shape', () => {
    const r = failed('pg-not-a-url', 'config.secret_invalid');
    expect(r.line).toBe(
      'config.secret_invalid: The value of environment variable PG_NOT_A_URL (the url of connection pg-not-a-url) ' +
        'is not a PostgreSQL URL (postgres://… or postgresql://…). The value is not shown because it is a secret.',
    );
    expect(r.error?.hint).toContain('postgres://USER:PASSWORD@HOST:5432/DATABASE');
  });

  it('a missing secret: config.secret_missing naming the variable', () => {
    const r = failed('pg-missing', 'config.secret_missing');
    expect(r.line).toBe('config.secret_missing: A secret needed by this connection is missing: environment variable PG_MISSING is not set.');
  });

  it("a server that never answers: backend.timeout within the time bound, not the driver's own 5 s", async () => {
    const [r] = await checkConnections(config, { env, only: ['pg-silent'], timeoutMs: 300 });
    expect(r).toMatchObject({ name: 'pg-silent', status: 'failed', error: { code: 'backend.timeout' } });
    expect(r!.line).toBe('backend.timeout: No answer from connection pg-silent within 300ms; the check gave up.');
    expect(r!.error?.hint).toMatch(/reachable from the gateway host/);
    expect(r!.durationMs).toBeLessThan(4000);
  });
});

describe('Kubernetes', () => {
  it('ok: the API server version and who the credentials are (SelfSubjectReview), without impersonating', () => {
    const r = report('kube-ok');
    expect(r.status).toBe('ok');
    expect(r.line).toBe(
      `Kubernetes v1.30.2 at ${fake.url}, credentials are system:serviceaccount:drawbridge:gateway (groups ` +
        `system:serviceaccounts, system:serviceaccounts:drawbridge, system:authenticated); calls impersonate the caller`,
    );
    expect(r.facts).toMatchObject({ version: 'v1.30.2', user: 'system:serviceaccount:drawbridge:gateway', impersonate: true });
    const review = fake.requests.find((q) => q.resource === 'selfsubjectreviews');
    expect(review).toMatchObject({ method: 'POST', status: 201, impersonateUser: null });
  });

  it('a server without SelfSubjectReview (404): still ok, identity unknown', () => {
    const r = report('kube-old');
    expect(r.status).toBe('ok');
    expect(r.line).toBe(
      `Kubernetes v1.30.2 at ${oldFake.url}, credentials are unknown (the server has ` +
        `no SelfSubjectReview API (authentication.k8s.io/v1, Kubernetes 1.28 and later))`,
    );
    expect(r.facts).toMatchObject({ user: null });
  });

  it('a wrong token: backend.auth_failed', () => {
    const r = failed('kube-bad-token', 'backend.auth_failed');
    expect(r.line).toContain(`The Kubernetes API at ${fake.url} refused the gateway's credentials (GET /version: 401 Unauthorized)`);
  });

  it('a stopped API server: backend.unavailable', () => {
    const r = failed('kube-down', 'backend.unavailable');
    expect(r.line).toMatch(/^backend\.unavailable: Cannot reach the Kubernetes API: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
  });

  it('a kubeconfig that does not parse: config.secret_invalid, without quoting it (it holds tokens)', () => {
    expect(failed('kube-garbage', 'config.secret_invalid').line).toBe(
      'config.secret_invalid: The kubeconfig of this connection cannot be read (it is not a kubeconfig: ' +
        'YAML with clusters, users and contexts); its content is not shown because it is a secret.',
    );
  });

  it.skipIf(process.env['KUBERNETES_SERVICE_HOST'] !== undefined)('in_cluster outside a pod: config.invalid saying so', () => {
    expect(failed('kube-in-cluster', 'config.invalid').line).toContain('but the gateway is not running in a Kubernetes pod');
  });

  it('a missing kubeconfig secret: config.secret_missing naming the variable', () => {
    expect(failed('kube-missing', 'config.secret_missing').line).toContain('environment variable KUBE_MISSING is not set');
  });
});

describe('SSH', () => {
  it('ok: the host key matches the pin, login works, the quoting probe passes', () => {
    const r = report('ssh-ok');
    expect(r.status).toBe('ok');
    expect(r.line).toBe(
      `SSH as ${sshd.user} to web-1 (127.0.0.1:${sshd.port}): host key ${sshd.hostKeyFingerprint} ` +
        `matches the pin, login works, the login shell quotes like POSIX sh (quoting probe passed)`,
    );
    expect(r.facts).toMatchObject({ user: sshd.user, hosts: 1, ok: 1, 'hostKey.web-1': sshd.hostKeyFingerprint });
  });

  it('a wrong host key: refused before authentication', () => {
    const r = failed('ssh-wrong-key', 'backend.unavailable');
    expect(r.line).toContain('the host key SHA256:');
    expect(r.line).toContain('is not the one pinned for this host (unknown or changed host key)');
    expect(r.error?.hint).toMatch(/update host_key/);
  });

  it('a login shell that quotes like fish: the quoting probe fails', () => {
    const r = failed('ssh-fish', 'backend.unavailable');
    expect(r.line).toContain('does not read single quotes as POSIX sh does');
    expect(r.error?.hint).toMatch(/POSIX shell/);
    // The probe ran; nothing else was sent.
    expect(fish.execs).toHaveLength(1);
  });

  it('a key the host does not accept: backend.auth_failed naming the user', () => {
    const r = failed('ssh-stranger', 'backend.auth_failed');
    expect(r.line).toContain(`Host s (127.0.0.1:${sshd.port}) refused the gateway's key for user ${sshd.user}`);
  });

  it('a host group with one bad host: failed, and the line still says how each host fared', () => {
    const r = report('ssh-group');
    expect(r.status).toBe('failed');
    expect(r.error?.code).toBe('backend.unavailable');
    expect(r.line).toMatch(
      new RegExp(
        `^SSH as ${sshd.user} to 2 hosts: good \\(127\\.0\\.0\\.1:${sshd.port}\\) ok, bad ` +
          `\\(127\\.0\\.0\\.1:${sshd.port}\\) FAILED \\(backend\\.unavailable\\) — where ok: host ` +
          `keys match their pins, .* — backend\\.unavailable: Host bad: the host key SHA256:`,
      ),
    );
  });

  it('a private key that is not a key: config.secret_invalid', () => {
    expect(failed('ssh-bad-key', 'config.secret_invalid').line).toBe(
      "config.secret_invalid: Host k: the gateway's private key cannot be used (Cannot parse " +
        'privateKey: Unsupported key format); the key is not shown because it is a secret.',
    );
  });

  it('a missing private key secret: config.secret_missing naming the variable', () => {
    expect(failed('ssh-missing', 'config.secret_missing').line).toContain('environment variable SSH_KEY_MISSING is not set');
  });
});

describe('formatConnectionReports', () => {
  it('one line per connection (ok / WARN / FAIL, name, type, what was found), warnings and what to do indented below, a tally', () => {
    const lines = output.trimEnd().split('\n');
    const first = (name: string) => lines.find((l) => new RegExp(`^(ok  |WARN|FAIL)  ${name} +`).test(l));
    expect(first('pg-ok')).toMatch(/^ok {4}pg-ok +postgres {4}PostgreSQL /);
    expect(first('pg-super')).toMatch(/^WARN {2}pg-super +postgres {4}PostgreSQL .*role postgres \(SUPERUSER\)/);
    expect(first('pg-wrong-password')).toMatch(/^FAIL {2}pg-wrong-password +postgres {4}backend\.auth_failed: /);
    expect(first('kube-ok')).toMatch(/^ok {4}kube-ok +kubernetes {2}Kubernetes v1\.30\.2 /);
    expect(first('ssh-fish')).toMatch(/^FAIL {2}ssh-fish +ssh {9}backend\.unavailable: /);
    const superIndex = lines.indexOf(first('pg-super')!);
    expect(lines[superIndex + 1]).toMatch(/^ {6}warning: role postgres is a SUPERUSER: /);
    const wrongIndex = lines.indexOf(first('pg-wrong-password')!);
    expect(lines[wrongIndex + 1]).toMatch(/^ {6}what to do: The backend refused the gateway's own credential/);
    const statusLines = lines.filter((l) => /^(ok {2}|WARN|FAIL) {2}/.test(l));
    expect(statusLines).toHaveLength(reports.length);
    const counts = { ok: reports.filter((r) => r.status === 'ok').length, warning: 1, failed: reports.filter((r) => r.status === 'failed').length };
    expect(lines[lines.length - 1]).toBe(`${reports.length} connections checked: ${counts.ok} ok, 1 with warnings, ${counts.failed} failed.`);
  });

  it('says so when nothing is declared', () => {
    expect(formatConnectionReports([])).toBe('No connections declared: nothing to check.\n');
  });
});

describe('checkConnections itself', () => {
  it('refuses an unknown name in `only` with connection.unknown', async () => {
    await expect(checkConnections(config, { env, only: ['nope'] })).rejects.toMatchObject({ code: 'connection.unknown' });
  });

  it('closes every connection it opened: after success, failure, a throw and a timeout', async () => {
    const closed: string[] = [];
    const never = new Promise<never>(() => undefined);
    const stub = (
      name: string,
      probe: () => Promise<never> | Promise<{ summary: string; warnings: string[]; facts: Record<string, string> }>,
    ): LoadedConnection => {
      const backend = defineBackend({
        type: 'stub',
        toolType: 'stub_tool',
        connectionSchema: config.connections.get('pg-ok')!.backend.connectionSchema,
        operations: [],
        inputShape: {},
        toolDescription: 'stub',
        example: { connection: 'stub', input: {} },
        describeConnection: () => 'stub',
        parse: () => {
          throw new TypeError('not used');
        },
        secretsOf: () => [],
        matchShape: {},
        matches: () => true,
        explain: { lines: () => [], facts: () => ({}), withoutCatalog: 'nothing' },
        errors: {},
        connect(declaration: ConnectionDeclaration): BackendConnection {
          return {
            name: declaration.name,
            resolve: () => Promise.reject(new TypeError('not used')),
            execute: () => Promise.reject(new TypeError('not used')),
            probe,
            async close() {
              closed.push(declaration.name);
            },
          };
        },
      });
      return { declaration: { kind: 'connection', name, type: 'stub', description: name }, backend, source: { file: 'stub', line: 1 } };
    };
    const stubs = new Map<string, LoadedConnection>([
      ['fine', stub('fine', async () => ({ summary: 'fine', warnings: [], facts: {} }))],
      ['refused', stub('refused', () => Promise.reject(new DrawbridgeError('backend.unavailable', 'no')))],
      ['bug', stub('bug', () => Promise.reject(new TypeError('a programmer mistake with a secret-looking detail')))],
      ['hung', stub('hung', () => never)],
    ]);
    const out = await checkConnections({ ...config, connections: stubs }, { env: {}, timeoutMs: 50 });
    expect(out.map((r) => [r.name, r.status, r.error?.code ?? null])).toEqual([
      ['fine', 'ok', null],
      ['refused', 'failed', 'backend.unavailable'],
      ['bug', 'failed', 'internal'],
      ['hung', 'failed', 'backend.timeout'],
    ]);
    // An unexpected error never shows its text (nor a stack).
    expect(out[2]!.line).toBe('internal: Internal gateway error.');
    expect(closed.sort()).toEqual(['bug', 'fine', 'hung', 'refused']);
  });
});
