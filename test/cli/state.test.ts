// The commands on a config's state, on both engines (SQLite files, and PostgreSQL through
// state.url logged in as a non-superuser state role), run in process: journal verify, export
// and checkpoint through the state contract, truncation caught against published checkpoints,
// approvals and grants, `check`, `serve` refusing a state it cannot open, `state migrate`,
// and `state copy` between engines with the chain intact. Never a local file with state.url.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { ApprovalsDump, StateStore } from '../../src/state/contract.js';
import { openState } from '../../src/state/open.js';
import { recordHash, type RecordType } from '../../src/state/records.js';
import { openSqliteState } from '../../src/state/sqlite/index.js';
import { openJournal } from '../../src/state/sqlite/journal.js';
import { approvalSubject } from '../support/approvals.js';
import { spawn } from 'node:child_process';
import { requireBuiltCli, runInProcess, waitForOutput, type CliRun } from '../support/cli.js';
import { freshDatabase, refusedPostgresUrl, type FreshDatabase } from '../support/fixtures.js';
import { stateRoleUrl } from '../support/state-role.js';

type Engine = 'sqlite' | 'postgres';

const BOB_TOKEN = 'tok-bob-state-9d1c2b7e';
const CHECKPOINT_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const dirs: string[] = [];
const databases: FreshDatabase[] = [];
const outputs: string[] = [];
const secrets: string[] = [BOB_TOKEN];

afterEach(async () => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  await Promise.all(databases.splice(0).map((db) => db.drop()));
});
afterAll(() => {
  // No command printed a token, a state URL or its password.
  const all = outputs.join('\n');
  for (const secret of secrets) expect(all).not.toContain(secret);
  expect(all).not.toMatch(/postgres(ql)?:\/\//);
});

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

async function newDatabase(prefix: string): Promise<{ db: FreshDatabase; url: string }> {
  const db = await freshDatabase(prefix);
  databases.push(db);
  const url = await stateRoleUrl(db);
  secrets.push(url, new URL(url).password);
  return { db, url };
}

interface Setup {
  readonly engine: Engine;
  readonly dir: string;
  readonly env: Record<string, string | undefined>;
  /** PostgreSQL only: the state database, for the superuser's tampering. */
  readonly db: FreshDatabase | null;
}

/** A config directory on `engine`, with checkpoints and one approver (bob, group dba). */
async function setup(engine: Engine, options: { checkpoints?: boolean } = {}): Promise<Setup> {
  const dir = tempDir(`drawbridge-state-${engine}-`);
  fs.mkdirSync(path.join(dir, 'policies'));
  const checkpoints =
    options.checkpoints === false ? '' : ', checkpoints: { every: 1m, signing_key: "${CHECKPOINT_KEY}", publish: { file: checkpoints.jsonl } }';
  const database = engine === 'postgres' ? await newDatabase('state_cli') : null;
  fs.writeFileSync(
    path.join(dir, 'policies', 'gateway.yaml'),
    [
      'kind: gateway',
      'identity: { mode: local, subject: alice@example.com, groups: [analysts] }',
      `journal: { path: journal.db${checkpoints} }`,
      'approval: { store: approvals.db, wait: 0ms, approvers: [{ subject: bob@example.com, groups: [dba], token: "${BOB_TOKEN}" }] }',
      ...(engine === 'postgres' ? ['state: { url: "${DRAWBRIDGE_STATE_URL}" }'] : []),
      '',
    ].join('\n'),
  );
  const env = { CHECKPOINT_KEY, BOB_TOKEN, DRAWBRIDGE_STATE_URL: database?.url };
  return { engine, dir, env, db: database?.db ?? null };
}

async function cli(s: Setup, args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  const r = await runInProcess([...args, '--config', s.dir], { env: { ...s.env, ...env } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

async function run(args: string[], env: Record<string, string | undefined> = {}, cwd?: string): Promise<CliRun> {
  const r = await runInProcess(args, { env, ...(cwd ? { cwd } : {}) });
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** The config's state, opened as a gateway opens it. */
async function openFor(s: Setup): Promise<StateStore> {
  const config = loadConfig(s.dir);
  return openState(config, { purpose: 'serve', environment: { env: s.env, baseDir: config.dir } });
}

const T = (minute: number) => new Date(Date.UTC(2026, 11, 1, 10, minute));

function callData(subject: string, effect: 'allow' | 'deny' | 'approve'): Record<string, unknown> {
  return {
    principal: { subject, groups: ['analysts'], kind: 'local' },
    tool: 'run_sql',
    connection: 'db',
    input: { sql: 'select 1' },
    request: { operation: 'select', access: 'read', resources: ['public.orders'] },
    decision: { effect, rule: 'readers' },
  };
}

/**
 * Eight records at fixed times (so both engines hash them alike): c1's approval is requested
 * before its call, voted after its outcome and its grant revoked last; c3 has no outcome.
 */
async function appendRecords(state: StateStore): Promise<void> {
  const records: Array<[RecordType, string, Record<string, unknown>]> = [
    ['approval', 'c1', { event: 'requested', approvalId: 'ap_0000000001', via: 'cli' }],
    ['call', 'c1', callData('alice', 'approve')],
    ['outcome', 'c1', { status: 'ok', rows: 1 }],
    ['call', 'c2', callData('bob', 'allow')],
    ['approval', 'c1', { event: 'vote', approvalId: 'ap_0000000001', decision: 'approve' }],
    ['outcome', 'c2', { status: 'ok', rows: 2 }],
    ['call', 'c3', callData('carol', 'deny')],
    ['grant', 'c1', { event: 'revoked', grantId: 'gr_0000000001' }],
  ];
  for (const [i, [type, callId, data]] of records.entries()) await state.journal.append(type, callId, data, T(i));
}

/** The records, and one pending request for a DBA (alice asks; bob may approve). */
async function populate(s: Setup): Promise<string> {
  const state = await openFor(s);
  try {
    await appendRecords(state);
    const { approval } = await state.approvals.openRequest(approvalSubject({ callId: 'c1' }), new Date(), 3_600_000);
    return approval.id;
  } finally {
    await state.close();
  }
}

/** Deletes the records after `keep`, as someone with write access to the state could. */
async function deleteNewest(s: Setup, keep: number): Promise<void> {
  if (s.db) {
    // As the superuser, with the append-only trigger disabled: what an attacker with DB access does.
    await s.db.query(
      `ALTER TABLE drawbridge.records DISABLE TRIGGER records_no_update;
       DELETE FROM drawbridge.records WHERE seq > ${keep};
       ALTER TABLE drawbridge.records ENABLE TRIGGER records_no_update;`,
    );
    return;
  }
  const db = new Database(path.join(s.dir, 'journal.db'));
  try {
    db.exec('DROP TRIGGER records_no_delete;');
    db.prepare('DELETE FROM records WHERE seq > ?').run(keep);
  } finally {
    db.close();
  }
}

type Tamper = 'edit' | 'delete-middle' | 'reorder';

/** Rewrites stored records behind the engine's back (triggers off), as someone with write access to the state could. */
async function tamper(s: Setup, how: Tamper): Promise<void> {
  const sql: Record<Tamper, string> = {
    edit: "UPDATE records SET data = replace(data, 'bob', 'mallory') WHERE seq = 4",
    'delete-middle': 'DELETE FROM records WHERE seq = 3',
    // Records 4 and 5 trade places, each keeping its own hash: the order is what changed.
    reorder:
      'UPDATE records SET time = o.time, type = o.type, call_id = o.call_id, data = o.data, prev_hash = o.prev_hash, hash = o.hash ' +
      'FROM (SELECT * FROM records WHERE seq IN (4, 5)) o WHERE records.seq IN (4, 5) AND o.seq = 9 - records.seq',
  };
  if (s.db) {
    await s.db.query(
      `SET search_path = drawbridge; ALTER TABLE records DISABLE TRIGGER records_no_update; ${sql[how]};
       ALTER TABLE records ENABLE TRIGGER records_no_update; RESET search_path;`,
    );
    return;
  }
  const db = new Database(path.join(s.dir, 'journal.db'));
  try {
    db.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
    db.exec(sql[how]);
  } finally {
    db.close();
  }
}

/** The files a command may leave in the config dir besides policies/: only the checkpoint file. */
function stateFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => /\.db(-wal|-shm)?$/.test(f) || f.startsWith('.drawbridge'));
}

const LABEL: Record<Engine, RegExp> = { sqlite: /\/journal\.db/, postgres: /PostgreSQL state \(\$DRAWBRIDGE_STATE_URL\)/ };

describe.each(['sqlite', 'postgres'] as const)('commands on the %s state', (engine) => {
  it('verify, export and checkpoint read the state; the newest records deleted are caught against the published checkpoint', async () => {
    const s = await setup(engine);
    await populate(s);

    const cp = await cli(s, ['journal', 'checkpoint']);
    expect(cp.stderr).toBe('');
    expect(cp.stdout).toMatch(/^checkpoint: 8 records, head [0-9a-f]{64}, at \S+, key [0-9a-f]{16}; appended to .*checkpoints\.jsonl\n$/);

    const ok = await cli(s, ['journal', 'verify']);
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^OK .*: 8 records, chain intact; head [0-9a-f]{64}; 1 checkpoint\(s\) verified, proving records 1\.\.8\n$/);
    expect(ok.stdout).toMatch(LABEL[engine]);

    const exported = await cli(s, ['journal', 'export']);
    expect(exported.status).toBe(0);
    const entries = exported.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { callId: string; outcome: unknown; events: Array<{ seq: number; type: string }> });
    expect(entries.map((e) => [e.callId, e.events.map((ev) => `${ev.type}#${ev.seq}`)])).toEqual([
      ['c1', ['approval#1', 'approval#5', 'grant#8']],
      ['c2', []],
      ['c3', []],
    ]);
    expect(entries.map((e) => e.outcome)).toEqual([{ status: 'ok', rows: 1 }, { status: 'ok', rows: 2 }, null]);
    const denied = await cli(s, ['journal', 'export', '--format', 'csv', '--decision', 'deny']);
    expect(denied.stdout.split('\n')[1]).toMatch(/^2026-12-01T10:06:00\.000Z,c3,carol,/);

    await deleteNewest(s, 5);
    const cut = await cli(s, ['journal', 'verify']);
    expect(cut.status).toBe(1);
    expect(cut.stdout).toMatch(
      /^FAILED .*: first bad record is #6: the checkpoint on line 1 \(\S+\) attests 8 records but the journal has 5: records 6\.\.8 were deleted/,
    );
    if (engine === 'postgres') expect(stateFiles(s.dir)).toEqual([]);
  });

  it('approvals and grants with --config use the state; a vote from the CLI is journaled in it', async () => {
    const s = await setup(engine, { checkpoints: false });
    const id = await populate(s);
    const list = await cli(s, ['approvals', 'list']);
    expect(list.status).toBe(0);
    expect(list.stdout).toContain(id);

    const approved = await cli(s, ['approvals', 'approve', id, '--grant', '5m', '--reason', 'ticket OPS-1'], { DRAWBRIDGE_APPROVER_TOKEN: BOB_TOKEN });
    expect(approved.stderr).toBe('');
    expect(approved.stdout).toMatch(new RegExp(`^${id}: approve by bob@example\\.com recorded \\(journal #9\\)\\. .* is now approved \\(1/1\\); grant 5m`));
    const shown = await cli(s, ['approvals', 'show', id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, status: 'approved', grantMs: 300_000, votes: [{ approver: { subject: 'bob@example.com' } }] });

    const state = await openFor(s);
    let grantId: string;
    try {
      const a = approvalSubject({ callId: 'c1' });
      const query = { subject: a.requester.subject, issuer: a.requester.issuer, tool: a.tool, connection: a.connection, rule: a.rule };
      grantId = (await state.approvals.createGrant({ ...query, approvalId: id, grantMs: 300_000 }, new Date())).id;
    } finally {
      await state.close();
    }
    expect((await cli(s, ['grants', 'list'])).stdout).toContain(grantId);
    const revoked = await cli(s, ['grants', 'revoke', grantId], { DRAWBRIDGE_APPROVER_TOKEN: BOB_TOKEN });
    expect(revoked.stderr).toBe('');
    expect(revoked.stdout).toMatch(new RegExp(`^${grantId}: revoked by bob@example\\.com`));
    expect((await cli(s, ['grants', 'list'])).stdout).not.toContain(grantId);

    const verified = await cli(s, ['journal', 'verify']);
    expect(verified.stdout).toMatch(/^OK .*: 10 records, chain intact/);
    const events = JSON.parse((await cli(s, ['journal', 'export'])).stdout.split('\n')[0] as string) as { events: Array<{ data: { event: string } }> };
    expect(events.events.map((e) => e.data.event)).toEqual(['requested', 'vote', 'revoked', 'vote', 'revoked']);
    if (engine === 'postgres') expect(stateFiles(s.dir)).toEqual([]);
  });

  it.each(['edit', 'delete-middle', 'reorder'] as const)('verify --config catches a record %s inside the checkpointed chain, naming it', async (how) => {
    const s = await setup(engine);
    await populate(s);
    expect((await cli(s, ['journal', 'checkpoint'])).status).toBe(0);
    await tamper(s, how);
    const r = await cli(s, ['journal', 'verify']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('');
    const why: Record<Tamper, RegExp> = {
      edit: /first bad record is #4: hash mismatch: record content or hash was edited/,
      'delete-middle': /first bad record is #4: seq gap: expected 3, found 4 \(record\(s\) 3\.\.3 missing\)/,
      reorder: /first bad record is #4: prev_hash does not match the hash of record 3/,
    };
    expect(r.stdout).toMatch(why[how]);
    expect(r.stdout).toMatch(LABEL[engine]);
  });

  it('check names the engine (and never the URL)', async () => {
    const s = await setup(engine, { checkpoints: false });
    const r = await cli(s, ['check']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      engine === 'sqlite'
        ? /^state: SQLite \(embedded\): journal .*journal\.db, approvals .*approvals\.db$/m
        : /^state: PostgreSQL, shared by replicas: state\.url \$DRAWBRIDGE_STATE_URL \(resolves\)$/m,
    );
    expect(stateFiles(s.dir)).toEqual([]);
  });
});

describe('the SQLite journal read-only', () => {
  it('verify, export and checkpoint on a config without a journal say so, and create no file', async () => {
    const s = await setup('sqlite');
    for (const args of [
      ['journal', 'export'],
      ['journal', 'checkpoint'],
    ]) {
      const r = await cli(s, args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^drawbridge: journal\.unavailable: Audit journal not found: .*journal\.db\n/);
    }
    const noCheckpoints = await setup('sqlite', { checkpoints: false });
    const verify = await cli(noCheckpoints, ['journal', 'verify']);
    expect(verify.status).toBe(1);
    expect(verify.stderr).toMatch(/^drawbridge: journal\.unavailable: Audit journal not found: .*journal\.db\n/);
    const exported = await cli(noCheckpoints, ['journal', 'export', '--format', 'csv']);
    expect(exported.stdout).toBe('');
    expect(exported.stderr).toMatch(/Audit journal not found/);
    expect(stateFiles(s.dir)).toEqual([]);
    expect(stateFiles(noCheckpoints.dir)).toEqual([]);
  });
});

describe('the PostgreSQL state and the commands around it', () => {
  it('check reports an unresolved state.url, and with --connect opens the state', async () => {
    const s = await setup('postgres', { checkpoints: false });
    const unset = await cli(s, ['check'], { DRAWBRIDGE_STATE_URL: undefined });
    expect(unset.status).toBe(1);
    expect(unset.stderr).toMatch(/^error: state\.url \(\$DRAWBRIDGE_STATE_URL\) cannot be resolved: environment variable DRAWBRIDGE_STATE_URL is not set/m);
    await populate(s);
    const connected = await cli(s, ['check', '--connect']);
    expect(connected.stdout).toMatch(/^state: reachable; journal has 8 record\(s\), head [0-9a-f]{64}$/m);
  });

  it('serve refuses to start in one line when the state cannot be opened: unresolved, unreachable, or a newer schema', async () => {
    const s = await setup('postgres', { checkpoints: false });
    const oneLine = (r: CliRun, reason: RegExp) => {
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^drawbridge: cannot serve: the state \(PostgreSQL state \(\$DRAWBRIDGE_STATE_URL\)\) cannot be opened: /);
      expect(r.stderr).toMatch(reason);
    };
    oneLine(
      await cli(s, ['serve'], { DRAWBRIDGE_STATE_URL: undefined }),
      /state\.url cannot be resolved \(environment variable DRAWBRIDGE_STATE_URL is not set\)/,
    );
    const refused = await refusedPostgresUrl();
    oneLine(await cli(s, ['serve'], { DRAWBRIDGE_STATE_URL: refused }), /journal\.unavailable: Cannot open the shared state/);

    expect((await cli(s, ['state', 'migrate'])).status).toBe(0);
    await s.db?.query(`INSERT INTO drawbridge.drawbridge_schema (version, name) VALUES (999, 'from the future')`);
    oneLine(await cli(s, ['serve']), /state\.schema_version: .*newer than this Drawbridge knows/);
    const verify = await cli(s, ['journal', 'verify']);
    expect(verify.status).toBe(1);
    expect(verify.stderr).toMatch(/state\.schema_version/);
    expect(stateFiles(s.dir)).toEqual([]);
  });

  it('serve (the binary) serves on the shared state, creates no local file, and checkpoints its head when stopped', async () => {
    const binary = requireBuiltCli();
    const s = await setup('postgres');
    await populate(s);
    const child = spawn(process.execPath, [binary, 'serve', '--config', s.dir], { env: { ...process.env, ...s.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitForOutput(() => stderr, /serving 0 tool\(s\) over stdio as .*; journal PostgreSQL state \(\$DRAWBRIDGE_STATE_URL\)"/, 'serve to start', 30_000);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      outputs.push(stderr);
    }
    const lines = fs.readFileSync(path.join(s.dir, 'checkpoints.jsonl'), 'utf8').split('\n').filter(Boolean);
    // The 8 records before, and the `config` record of serve's start.
    expect(lines.map((l) => (JSON.parse(l) as { count: number }).count)).toEqual([9]);
    expect((await cli(s, ['journal', 'verify'])).stdout).toMatch(/1 checkpoint\(s\) verified, proving records 1\.\.9\n$/);
    expect(stateFiles(s.dir)).toEqual([]);
  });

  it('state migrate applies the migrations once, and says SQLite has none', async () => {
    const s = await setup('postgres', { checkpoints: false });
    const first = await cli(s, ['state', 'migrate']);
    expect(first.stderr).toBe('');
    const m = /^state: PostgreSQL state \(\$DRAWBRIDGE_STATE_URL\): schema migrated from version 0 to (\d+)\n$/.exec(first.stdout);
    expect(m).not.toBeNull();
    const again = await cli(s, ['state', 'migrate']);
    expect(again.stdout).toBe(`state: PostgreSQL state ($DRAWBRIDGE_STATE_URL): schema already at version ${m?.[1]}\n`);

    const lite = await setup('sqlite', { checkpoints: false });
    const none = await cli(lite, ['state', 'migrate']);
    expect(none.status).toBe(0);
    expect(none.stdout).toMatch(/^state: SQLite \(embedded\), journal .*journal\.db: nothing to migrate/);
    expect(stateFiles(lite.dir)).toEqual([]);
  });

  it('exports the same bytes from either engine for the same records', async () => {
    const lite = await setup('sqlite', { checkpoints: false });
    const shared = await setup('postgres', { checkpoints: false });
    await populate(lite);
    await populate(shared);
    for (const format of ['jsonl', 'csv']) {
      const a = await cli(lite, ['journal', 'export', '--format', format]);
      const b = await cli(shared, ['journal', 'export', '--format', format]);
      expect(a.stdout.split('\n').length).toBeGreaterThan(3);
      expect(b.stdout).toBe(a.stdout);
    }
  });
});

describe('drawbridge state copy', () => {
  /** A SQLite state directory with the eight records, an approved request and its grant. */
  async function sqliteSource(): Promise<{ dir: string; dump: ApprovalsDump }> {
    const dir = tempDir('drawbridge-copy-src-');
    const state = openSqliteState({
      journal: path.join(dir, 'journal.db'),
      journalSync: 'full',
      openJournal: 'now',
      approvals: path.join(dir, 'approvals.db'),
    });
    try {
      await appendRecords(state);
      const a = approvalSubject({ callId: 'c1' });
      const now = new Date();
      const { approval } = await state.approvals.openRequest(a, now, 3_600_000);
      await state.approvals.vote(
        approval.id,
        { approver: { subject: 'bob', groups: ['dba'], kind: 'local' }, decision: 'approve', via: 'cli', grantMs: 60_000, at: now.toISOString() },
        now,
      );
      const query = { subject: a.requester.subject, issuer: a.requester.issuer, tool: a.tool, connection: a.connection, rule: a.rule };
      await state.approvals.createGrant({ ...query, approvalId: approval.id, grantMs: 60_000 }, now);
      await state.approvals.openRequest(approvalSubject({ callId: 'c9', input: { sql: 'DELETE FROM orders' } }), now, 3_600_000);
      return { dir, dump: await state.approvals.dump() };
    } finally {
      await state.close();
    }
  }

  async function headOf(journal: string): Promise<string> {
    const r = await run(['journal', 'verify', '--journal', journal]);
    expect(r.status).toBe(0);
    return /head ([0-9a-f]{64})/.exec(r.stdout)?.[1] ?? '';
  }

  it('copies SQLite → PostgreSQL → SQLite with the chain, approvals and grants intact, and refuses a target that is not empty', async () => {
    const source = await sqliteSource();
    const sourceHead = await headOf(path.join(source.dir, 'journal.db'));
    const { db, url } = await newDatabase('state_copy');

    const toPg = await run(['state', 'copy', '--from', `sqlite:${source.dir}`, '--to', 'postgres'], { DRAWBRIDGE_STATE_URL: url });
    expect(toPg.stderr).toBe('');
    expect(toPg.status).toBe(0);
    expect(toPg.stdout).toBe(
      `copied sqlite:${path.join(source.dir, 'journal.db')} → postgres ($DRAWBRIDGE_STATE_URL): 8 journal record(s), chain verified, head ${sourceHead}; ` +
        '2 approval(s), 1 grant(s)\n',
    );

    const again = await run(['state', 'copy', '--from', `sqlite:${path.join(source.dir, 'journal.db')}`, '--to', 'postgres:OTHER_URL'], { OTHER_URL: url });
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/target postgres \(\$OTHER_URL\) is not empty \(8 journal record\(s\), 2 approval\(s\), 1 grant\(s\)\); nothing was written/);
    expect(await db.query('SELECT count(*)::int AS n FROM drawbridge.records')).toEqual([{ n: 8 }]);

    const back = tempDir('drawbridge-copy-back-');
    const toLite = await run(['state', 'copy', '--from', 'postgres:SRC_URL', '--to', `sqlite:${back}`], { SRC_URL: url });
    expect(toLite.stderr).toBe('');
    expect(toLite.stdout).toContain(`8 journal record(s), chain verified, head ${sourceHead}; 2 approval(s), 1 grant(s)`);
    expect(await headOf(path.join(back, 'journal.db'))).toBe(sourceHead);
    const copied = openSqliteState({
      journal: path.join(back, 'journal.db'),
      journalSync: 'full',
      openJournal: 'now',
      approvals: path.join(back, 'approvals.db'),
    });
    try {
      expect(await copied.approvals.dump()).toEqual(source.dump);
    } finally {
      await copied.close();
    }
    const exportOf = async (journal: string) => (await run(['journal', 'export', '--journal', journal])).stdout;
    expect(await exportOf(path.join(back, 'journal.db'))).toBe(await exportOf(path.join(source.dir, 'journal.db')));
  });

  it('stops at a record that does not copy to the same hash, naming it; refuses a source that fails verification', async () => {
    const dir = tempDir('drawbridge-copy-odd-');
    const journal = path.join(dir, 'journal.db');
    const j = openJournal(journal);
    const first = j.append('call', 'c1', callData('alice', 'allow'), T(0));
    j.close();
    // A valid record whose time is not in the form the engines write (no milliseconds): it verifies, but cannot be copied as is.
    const odd = { seq: 2, time: '2026-12-01T10:01:00Z', type: 'outcome' as const, callId: 'c1', data: { status: 'ok' }, prevHash: first.hash };
    const raw = new Database(journal);
    raw.prepare('INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)').run(2, odd.time, odd.type, odd.callId, '{"status":"ok"}', odd.prevHash, recordHash(odd));
    raw.close();
    expect((await run(['journal', 'verify', '--journal', journal])).status).toBe(0);

    const target = tempDir('drawbridge-copy-odd-to-');
    const r = await run(['state', 'copy', '--from', `sqlite:${journal}`, '--to', `sqlite:${target}`]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^drawbridge state copy: record #2 copies as #2 with hash [0-9a-f]{64}, not the source's [0-9a-f]{64} .*discard it/);

    const edited = new Database(journal);
    edited.exec('DROP TRIGGER records_no_update; UPDATE records SET data = \'{"status":"edited"}\' WHERE seq = 2;');
    edited.close();
    const fresh = tempDir('drawbridge-copy-edited-to-');
    const refused = await run(['state', 'copy', '--from', `sqlite:${dir}`, '--to', `sqlite:${fresh}`]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/fails verification at record #2: hash mismatch.*nothing was copied/);
    expect(fs.readdirSync(fresh)).toEqual([]);
  });

  it('refuses a URL on the command line, an unset variable, and a missing source', async () => {
    const url = await run(['state', 'copy', '--from', 'sqlite:/nonexistent/x', '--to', 'postgres://u:hunter2@127.0.0.1/db']);
    expect(url.status).toBe(2);
    expect(url.stderr).toMatch(/never the URL itself/);
    expect(url.stderr).not.toContain('hunter2');
    const unset = await run(['state', 'copy', '--from', 'sqlite:/nonexistent/x', '--to', 'postgres'], { DRAWBRIDGE_STATE_URL: undefined });
    expect(unset.status).toBe(1);
    expect(unset.stderr).toMatch(/environment variable DRAWBRIDGE_STATE_URL is not set/);
    const dir = tempDir('drawbridge-copy-none-');
    const missing = await run(['state', 'copy', '--from', `sqlite:${dir}`, '--to', `sqlite:${path.join(dir, 'to')}`]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/the source journal .*journal\.db does not exist/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
