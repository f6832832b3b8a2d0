// `drawbridge approvals` and `drawbridge grants`, run in process (the command
// line's own function, as the binary runs it): a config with three approvers
// (tokens from env), requests seeded directly in the store, then list / show /
// approve / deny / grants, each opening the store and journal afresh as an
// approver's separate process would. Asserts the exit codes, the store, the
// journal records, and that no token is ever printed.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestHash, type ApprovalSubject } from '../../src/approval/approver.js';
import type { StoredApproval } from '../../src/state/contract.js';
import { openSqliteApprovals as openApprovalStore } from '../../src/state/sqlite/approvals.js';
import { runInProcess, type CliRun } from '../support/cli.js';
import { writeConfig } from '../support/fixtures.js';

const TOKENS = {
  BOB_APPROVER_TOKEN: 'tok-bob-7c1e9a0d55f24b1c',
  CAROL_APPROVER_TOKEN: 'tok-carol-3f8b2e61a9d04e77',
  DAVE_APPROVER_TOKEN: 'tok-dave-b0c4d2e8f1a39c66',
  ALICE_APPROVER_TOKEN: 'tok-alice-5e7a9c1b3d2f4e60',
};

/** Replaces the fixture's kind: gateway document with one that has an approval section. */
function writeGateway(configDir: string, approvers: string): void {
  writeFileSync(
    join(configDir, 'policies', 'gateway.yaml'),
    `kind: gateway
identity: { mode: local, subject: alice@example.com, groups: [analysts] }
journal: { path: journal.db }
approval:
  store: approvals.db
  wait: 0ms
  approvers:${approvers}
`,
  );
}

let dir: string;
let storePath: string;
let journalPath: string;
const outputs: string[] = [];

beforeAll(() => {
  dir = writeConfig();
  storePath = join(dir, 'approvals.db');
  journalPath = join(dir, 'journal.db');
  writeGateway(
    dir,
    `
    - { subject: bob@example.com, groups: [dba], token: "\${BOB_APPROVER_TOKEN}" }
    - { subject: carol@example.com, groups: [dba, sre], token: { env: CAROL_APPROVER_TOKEN } }
    - { subject: dave@example.com, groups: [support], token: { env: DAVE_APPROVER_TOKEN } }
    - { subject: alice@example.com, groups: [dba], token: { env: ALICE_APPROVER_TOKEN } }`,
  );
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  // No command ever printed a token.
  const all = outputs.join('\n');
  for (const token of Object.values(TOKENS)) expect(all).not.toContain(token);
});

type Who = 'bob' | 'carol' | 'dave' | 'alice' | null;

async function cli(args: string[], who: Who = null, extraEnv: Record<string, string | undefined> = {}): Promise<CliRun> {
  const token = who === null ? undefined : TOKENS[`${who.toUpperCase()}_APPROVER_TOKEN` as keyof typeof TOKENS];
  const r = await runInProcess([...args, '--config', dir], { env: { ...TOKENS, DRAWBRIDGE_APPROVER_TOKEN: token, ...extraEnv } });
  outputs.push(r.stdout, r.stderr);
  return r;
}

function ok(r: CliRun): string {
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

function refused(r: CliRun, code: string, status = 1): string {
  expect(r.stdout).toBe('');
  expect(r.stderr).toContain(`drawbridge: ${code}: `);
  expect(r.status).toBe(status);
  return r.stderr;
}

let seq = 0;
function subject(overrides: Partial<ApprovalSubject> = {}): ApprovalSubject {
  seq += 1;
  const input = overrides.input ?? { sql: `DELETE FROM orders\nWHERE id <= ${seq} AND status = 'cancelled'` };
  return {
    hash: requestHash('run_sql', 'db', input),
    callId: `call-${seq}`,
    tool: 'run_sql',
    connection: 'db',
    input,
    summary: `delete on public.orders (write) #${seq}`,
    reasons: ['writes public.orders', 'no LIMIT'],
    rule: 'writes-need-approval',
    message: 'Writes to production need a DBA.',
    requester: { subject: 'alice@example.com', groups: ['analysts', 'dba'], kind: 'local', issuer: 'local' },
    client: 'claude-code',
    approverGroups: ['dba'],
    allowRequester: false,
    min: 1,
    maxGrantMs: 15 * 60_000,
    preview: {
      affectedRows: 3,
      sample: [
        { id: 1, email: 'a***@example.com' },
        { id: 2, email: 'b***@example.com' },
      ],
      sampleColumns: ['id', 'email'],
    },
    ...overrides,
  };
}

function seed(overrides: Partial<ApprovalSubject> = {}): StoredApproval {
  const store = openApprovalStore(storePath);
  try {
    return store.openRequest(subject(overrides), new Date(), 24 * 3_600_000).approval;
  } finally {
    store.close();
  }
}

function stored(id: string): StoredApproval {
  const store = openApprovalStore(storePath);
  try {
    const a = store.get(id, new Date());
    if (!a) throw new Error(`no ${id}`);
    return a;
  } finally {
    store.close();
  }
}

interface RawRecord {
  seq: number;
  type: string;
  call_id: string;
  data: Record<string, unknown>;
}

function journal(type?: string): RawRecord[] {
  const db = new Database(journalPath, { readonly: true });
  try {
    const rows = db.prepare('SELECT seq, type, call_id, data FROM records ORDER BY seq').all() as Array<Omit<RawRecord, 'data'> & { data: string }>;
    return rows.map((r) => ({ ...r, data: JSON.parse(r.data) as Record<string, unknown> })).filter((r) => type === undefined || r.type === type);
  } catch (error) {
    if (/no such table/.test(String(error))) return [];
    throw error;
  } finally {
    db.close();
  }
}

function journalCount(): number {
  try {
    return journal().length;
  } catch {
    return 0;
  }
}

describe('drawbridge approvals list / show', () => {
  it('list: nothing pending yet', async () => {
    expect(ok(await cli(['approvals', 'list']))).toBe('No pending approval requests.\n');
  });

  it('list: pending requests with age, requester, tool/connection, rule, votes/min, expiry and summary', async () => {
    const a = seed({ min: 2 });
    const out = ok(await cli(['approvals', 'list']));
    const [header, ...rows] = out.trimEnd().split('\n');
    expect(header).toMatch(/^ID +AGE +REQUESTER +TOOL\/CONNECTION +RULE +VOTES +EXPIRES +SUMMARY$/);
    const row = rows.find((r) => r.startsWith(a.id));
    expect(row).toMatch(
      new RegExp(`^${a.id} +\\d+s +alice@example\\.com +run_sql/db +writes-need-approval +0/2 +in 23h 59m +delete on public\\.orders \\(write\\) #\\d+$`),
    );
    const json = JSON.parse(ok(await cli(['approvals', 'list', '--json']))) as StoredApproval[];
    expect(json.find((x) => x.id === a.id)).toEqual(stored(a.id));
  });

  it('show: everything an approver needs, with the exact SQL', async () => {
    const a = seed({ min: 2 });
    const out = ok(await cli(['approvals', 'show', a.id]));
    expect(out).toContain(`Approval ${a.id}\n`);
    expect(out).toMatch(/^ {2}status {6}PENDING: 2 more approvals needed; expires \S+ \(in 23h 59m\)$/m);
    expect(out).toMatch(/^ {2}requested {3}\S+ \(\d+s ago\) by alice@example\.com \[local, issuer local\] groups: analysts, dba$/m);
    expect(out).toMatch(/^ {2}client {6}claude-code$/m);
    expect(out).toMatch(new RegExp(`^ {2}call {8}${a.subject.callId}$`, 'm'));
    expect(out).toMatch(/^ {2}request {5}run_sql on db$/m);
    expect(out).toContain(`  hash        ${a.hash}\n`);
    expect(out).toMatch(/^ {2}rule {8}writes-need-approval — Writes to production need a DBA\.$/m);
    expect(out).toMatch(/^ {2}approvers {3}members of dba; 2 distinct approvals needed; the requester may not approve$/m);
    expect(out).toMatch(/^ {2}max grant {3}15m /m);
    expect(out).toContain(`Summary\n  ${a.subject.summary}\n`);
    expect(out).toContain('Reasons\n  - writes public.orders\n  - no LIMIT\n');
    expect(out).toContain(`  sql:\n    DELETE FROM orders\n    WHERE id <= ${a.subject.callId.slice(5)} AND status = 'cancelled'\n`);
    expect(out).toContain('  affected rows: 3\n  sample of affected rows (masked):\n    id  email\n    1   a***@example.com\n    2   b***@example.com\n');
    expect(out).toContain('Votes\n  (none yet)\n');
    const json = JSON.parse(ok(await cli(['approvals', 'show', a.id, '--json']))) as StoredApproval;
    expect(json).toEqual(stored(a.id));
  });

  it('show: a request cannot repaint the terminal or hide text with control or bidi characters', async () => {
    const a = seed({ input: { sql: 'DELETE FROM orders\u001b[2K\r-- harmless\u202e WHERE 1=1' }, summary: 'delete\u001b]0;pwned\u0007' });
    const out = ok(await cli(['approvals', 'show', a.id]));
    expect(out).toContain('DELETE FROM orders\\u{001b}[2K\\r-- harmless\\u{202e} WHERE 1=1');
    expect(out).toContain('delete\\u{001b}]0;pwned\\u{0007}');
    expect(out).not.toMatch(/[\u001b\u0007\r\u202e]/);
    expect(ok(await cli(['approvals', 'list']))).not.toMatch(/[\u001b\u0007\r\u202e]/);
  });

  it('show: unknown id → 1; missing id → usage 2', async () => {
    refused(await cli(['approvals', 'show', 'ap_nosuchthing']), 'approval.not_found');
    const r = await cli(['approvals', 'show']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Usage: drawbridge approvals show ID/);
  });
});

describe('drawbridge approvals approve / deny', () => {
  it('min 2: two distinct approvers; each vote is journaled under the call; the grant is the smaller choice', async () => {
    const a = seed({ min: 2 });
    const before = journalCount();
    const first = ok(await cli(['approvals', 'approve', a.id, '--grant', '15m', '--reason', 'ticket OPS-1'], 'bob'));
    expect(first).toMatch(
      new RegExp(`^${a.id}: approve by bob@example\\.com recorded \\(journal #\\d+\\)\\. Request run_sql on db is now pending \\(1/2 approvals\\)\\.\\n$`),
    );
    // The same approver again: refused, nothing journaled.
    refused(await cli(['approvals', 'approve', a.id], 'bob'), 'approval.duplicate_vote');
    expect(journalCount()).toBe(before + 1);

    // Second approver, token from a file (wins over the environment).
    const tokenDir = mkdtempSync(join(tmpdir(), 'drawbridge-token-'));
    try {
      writeFileSync(join(tokenDir, 'carol'), `${TOKENS.CAROL_APPROVER_TOKEN}\n`);
      const second = ok(await cli(['approvals', 'approve', a.id, '--grant', '5m', '--token-file', join(tokenDir, 'carol')], 'dave'));
      expect(second).toMatch(/by carol@example\.com recorded .* is now approved \(2\/2\); grant 5m\./);
    } finally {
      rmSync(tokenDir, { recursive: true, force: true });
    }
    expect(stored(a.id)).toMatchObject({ status: 'approved', grantMs: 5 * 60_000 });
    expect(stored(a.id).votes.map((v) => [v.approver.subject, v.via, v.grantMs ?? 0, v.reason])).toEqual([
      ['bob@example.com', 'cli', 15 * 60_000, 'ticket OPS-1'],
      ['carol@example.com', 'cli', 5 * 60_000, undefined],
    ]);

    const records = journal('approval').filter((r) => r.data['approvalId'] === a.id);
    expect(records.map((r) => r.call_id)).toEqual([a.subject.callId, a.subject.callId]);
    expect(records.map((r) => r.data)).toEqual([
      {
        event: 'vote',
        approvalId: a.id,
        hash: a.hash,
        decision: 'approve',
        approver: { subject: 'bob@example.com', groups: ['dba'], kind: 'local' },
        via: 'cli',
        reason: 'ticket OPS-1',
        grantMs: 15 * 60_000,
        status: 'pending',
      },
      {
        event: 'vote',
        approvalId: a.id,
        hash: a.hash,
        decision: 'approve',
        approver: { subject: 'carol@example.com', groups: ['dba', 'sre'], kind: 'local' },
        via: 'cli',
        reason: null,
        grantMs: 5 * 60_000,
        status: 'approved',
      },
    ]);

    // Decided: no more votes, and show says so.
    refused(await cli(['approvals', 'deny', a.id, '--reason', 'late'], 'dave'), 'approval.not_pending');
    const out = ok(await cli(['approvals', 'show', a.id]));
    expect(out).toMatch(/^ {2}status {6}APPROVED at \S+, grant 5m; not used yet/m);
    expect(out).toMatch(/^ {2}APPROVE {2}bob@example\.com \[local; dba\] via cli at \S+, grant 15m — ticket OPS-1$/m);
  });

  it('deny needs a reason (usage 2); any deny decides; a decided request is not pending', async () => {
    const a = seed({ min: 2 });
    const usage = await cli(['approvals', 'deny', a.id], 'bob');
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/needs a reason/);
    ok(await cli(['approvals', 'approve', a.id], 'carol'));
    const out = ok(await cli(['approvals', 'deny', a.id, '--reason', 'not during the sale'], 'bob'));
    expect(out).toMatch(/is now denied/);
    expect(stored(a.id)).toMatchObject({ status: 'denied' });
    const last = journal('approval').at(-1);
    expect(last?.data).toMatchObject({ event: 'vote', approvalId: a.id, decision: 'deny', reason: 'not during the sale', grantMs: null, status: 'denied' });
    refused(await cli(['approvals', 'approve', 'ap_nosuchthing'], 'bob'), 'approval.not_found');
    const again = seed({ min: 1 });
    ok(await cli(['approvals', 'deny', again.id, '--reason', 'no'], 'carol'));
    refused(await cli(['approvals', 'approve', again.id], 'bob'), 'approval.not_pending');
  });

  it('approvers outside the rule groups and the requester themselves are refused, and nothing is journaled', async () => {
    const a = seed();
    const before = journalCount();
    expect(refused(await cli(['approvals', 'approve', a.id], 'dave'), 'approval.forbidden')).toMatch(
      /dave@example\.com is not in the approver groups of rule writes-need-approval \(dba\)/,
    );
    expect(refused(await cli(['approvals', 'approve', a.id], 'alice'), 'approval.forbidden')).toMatch(/may not approve or deny their own request/);
    expect(journalCount()).toBe(before);
    expect(stored(a.id)).toMatchObject({ status: 'pending', votes: [] });
  });

  it('no token → usage 2; a wrong token → 1 with one message that names no approver', async () => {
    const a = seed();
    const none = await cli(['approvals', 'approve', a.id]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/DRAWBRIDGE_APPROVER_TOKEN/);
    const wrong = refused(
      await cli(['approvals', 'approve', a.id], null, { DRAWBRIDGE_APPROVER_TOKEN: `${TOKENS.BOB_APPROVER_TOKEN}x` }),
      'identity.unknown_approver',
    );
    expect(wrong).not.toMatch(/bob|carol|dave|alice/);
    expect(wrong).not.toContain(TOKENS.BOB_APPROVER_TOKEN);
    // A configured approver whose token is not set on this host never matches (and the refusal says the variable is unset).
    expect(refused(await cli(['approvals', 'approve', a.id], 'bob', { BOB_APPROVER_TOKEN: undefined }), 'identity.unknown_approver')).toContain(
      'BOB_APPROVER_TOKEN is not set in this environment',
    );
    const missingFile = await cli(['approvals', 'approve', a.id, '--token-file', join(dir, 'nope')]);
    expect(missingFile.status).toBe(2);
    expect(stored(a.id).votes).toEqual([]);
  });

  it("the gateway's token variables unset in the approver's shell → 1, naming the variables (not whose token it is) and what to do", async () => {
    const a = seed();
    const before = journalCount();
    const unset = { BOB_APPROVER_TOKEN: undefined, CAROL_APPROVER_TOKEN: undefined };
    // bob's own token, someone else's, and a made-up one: the same answer.
    const answers = [
      await cli(['approvals', 'approve', a.id], 'bob', unset),
      await cli(['approvals', 'deny', a.id, '--reason', 'no'], 'carol', unset),
      await cli(['approvals', 'approve', a.id], null, { ...unset, DRAWBRIDGE_APPROVER_TOKEN: 'made-up' }),
    ];
    for (const r of answers) {
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(
        'drawbridge: identity.unknown_approver: The approver token matches none of the approvers that can be checked here: ' +
          'BOB_APPROVER_TOKEN and CAROL_APPROVER_TOKEN are not set in this environment, ' +
          'so approvers whose tokens come from them (approval.approvers) cannot be recognised.\n',
      );
      expect(r.stderr).toContain(
        "Export the variables the gateway uses in this shell (export BOB_APPROVER_TOKEN=… with the gateway's value), " +
          "or run drawbridge approvals where the gateway's environment is (its host and user); then retry.",
      );
      expect(r.stderr.trim().split('\n')).toHaveLength(2);
      expect(r.stderr).not.toMatch(/\bat .*\.js:\d+|Error:/);
      for (const token of Object.values(TOKENS)) expect(r.stderr).not.toContain(token);
    }
    // With the variables exported as the gateway has them, the same vote counts.
    expect(journalCount()).toBe(before);
    expect(ok(await cli(['approvals', 'approve', a.id], 'bob'))).toContain(`${a.id}: approve by bob@example.com recorded`);
  });

  it('--grant: longer than the rule allows → 2, a bad duration → 2, a rule without grant refuses one', async () => {
    const a = seed();
    refused(await cli(['approvals', 'approve', a.id, '--grant', '1h'], 'bob'), 'input.invalid', 2);
    const bad = await cli(['approvals', 'approve', a.id, '--grant', 'soon'], 'bob');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--grant must be a duration/);
    const noGrant = seed({ maxGrantMs: null });
    refused(await cli(['approvals', 'approve', noGrant.id, '--grant', '5m'], 'bob'), 'input.invalid', 2);
    expect(ok(await cli(['approvals', 'approve', noGrant.id, '--grant', 'none'], 'bob'))).toMatch(/approved \(1\/1\); grant none: this call only/);
    expect(stored(noGrant.id)).toMatchObject({ status: 'approved', grantMs: null });
    expect(ok(await cli(['approvals', 'approve', a.id], 'bob'))).toMatch(/grant none: this call only/);
    expect(stored(a.id)).toMatchObject({ status: 'approved', grantMs: 0 });
  });

  it('the journal unavailable: the vote does not count (fail closed), exit 1', async () => {
    const broken = writeConfig();
    try {
      mkdirSync(join(broken, 'journal.db')); // a directory where the journal file should be
      writeGateway(broken, '\n    - { subject: bob@example.com, groups: [dba], token: { env: BOB_APPROVER_TOKEN } }');
      const store = openApprovalStore(join(broken, 'approvals.db'));
      const a = store.openRequest(subject(), new Date(), 3_600_000).approval;
      store.close();
      const r = await runInProcess(['approvals', 'approve', a.id, '--config', broken], {
        env: { ...TOKENS, DRAWBRIDGE_APPROVER_TOKEN: TOKENS.BOB_APPROVER_TOKEN },
      });
      outputs.push(r.stdout, r.stderr);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('drawbridge: journal.unavailable: ');
      const check = openApprovalStore(join(broken, 'approvals.db'));
      try {
        expect(check.get(a.id, new Date())).toMatchObject({ status: 'pending', votes: [] });
      } finally {
        check.close();
      }
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('list --all shows every status; the default shows pending only', async () => {
    const all = ok(await cli(['approvals', 'list', '--all']));
    expect(all.split('\n')[0]).toMatch(/^ID +STATUS +AGE +REQUESTER/);
    for (const status of ['pending', 'approved', 'denied']) expect(all).toMatch(new RegExp(`^ap_[a-z0-9]{10} +${status} `, 'm'));
    const pending = ok(await cli(['approvals', 'list']));
    expect(pending).not.toMatch(/approved|denied/);
  });
});

describe('drawbridge grants', () => {
  it('list active grants, revoke one with an approver token (journaled), then it is gone', async () => {
    const a = seed();
    ok(await cli(['approvals', 'approve', a.id, '--grant', '15m'], 'bob'));
    const store = openApprovalStore(storePath);
    let grantId: string;
    try {
      store.consume(a.id, new Date());
      grantId = store.createGrant(
        {
          subject: 'alice@example.com',
          issuer: 'local',
          tool: 'run_sql',
          connection: 'db',
          rule: 'writes-need-approval',
          approvalId: a.id,
          grantMs: 15 * 60_000,
        },
        new Date(),
      ).id;
    } finally {
      store.close();
    }
    const list = ok(await cli(['grants', 'list']));
    expect(list.split('\n')[0]).toMatch(/^ID +PRINCIPAL +TOOL\/CONNECTION +RULE +EXPIRES +APPROVAL$/);
    expect(list).toMatch(new RegExp(`^${grantId} +alice@example\\.com \\(local\\) +run_sql/db +writes-need-approval +\\S+ \\(in 1[45]m\\) +${a.id}$`, 'm'));
    expect((JSON.parse(ok(await cli(['grants', 'list', '--json']))) as Array<{ id: string }>).map((g) => g.id)).toContain(grantId);

    const noToken = await cli(['grants', 'revoke', grantId]);
    expect(noToken.status).toBe(2);
    refused(await cli(['grants', 'revoke', grantId], null, { DRAWBRIDGE_APPROVER_TOKEN: 'guess' }), 'identity.unknown_approver');

    expect(ok(await cli(['grants', 'revoke', grantId], 'carol'))).toMatch(
      new RegExp(`^${grantId}: revoked by carol@example\\.com; alice@example\\.com no longer has run_sql on db under rule writes-need-approval`),
    );
    const record = journal('grant').at(-1);
    expect(record?.call_id).toBe(a.subject.callId);
    expect(record?.data).toEqual({
      event: 'revoked',
      grantId,
      approvalId: a.id,
      by: 'carol@example.com',
      approver: { subject: 'carol@example.com', groups: ['dba', 'sre'], kind: 'local' },
    });

    expect(ok(await cli(['grants', 'list']))).toBe('No active grants.\n');
    expect(ok(await cli(['grants', 'list', '--all']))).toMatch(new RegExp(`^${grantId} +revoked \\S+ by carol@example\\.com `, 'm'));
    refused(await cli(['grants', 'revoke', grantId], 'bob'), 'grant.not_found');
    refused(await cli(['grants', 'revoke', 'gr_nosuchthing'], 'bob'), 'grant.not_found');
  });

  it('the journal stays a valid chain after all of the above', async () => {
    const out = ok(await cli(['journal', 'verify']));
    expect(out).toMatch(/^OK .*chain intact/);
  });

  it('unknown subcommands are usage errors', async () => {
    expect((await cli(['approvals', 'frobnicate'])).status).toBe(2);
    expect((await cli(['grants', 'frobnicate'])).status).toBe(2);
  });
});
