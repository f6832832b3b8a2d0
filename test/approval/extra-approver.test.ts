// An approval channel is one adapter: a test-only `button` channel, defined
// here and nowhere else (its `via` name by declaration merging), given to the
// gateway as one more entry after the default adapters, clears a call through
// the real pipeline — the write runs, and the approval and the call's
// clearance are journaled under its name — without touching any other file.
// A call it does not take still gets the default answer, unchanged.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPROVERS } from '../../src/approval/adapters/index.js';
import { requestHash, type ApprovalSubject, type Approver, type Vote } from '../../src/approval/approver.js';
import { readCalls } from '../../src/journal/export.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { as, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { approvalPolicy, approvalSettings, REQUESTER } from '../support/inProcess.js';

declare module '../../src/approval/approver.js' {
  interface ApprovalVias {
    button: true;
  }
}

/** What the button adapter was shown, per call it took. */
const shown: ApprovalSubject[] = [];

/** A big green button on the requester's desk: it takes calls from the client named "button-client" only. */
const button: Approver = {
  name: 'button',
  async clear(call, ctx) {
    if (call.channel.clientName !== 'button-client') return null;
    const s = await call.subject();
    shown.push(s);
    const approvalId = `ap_button${shown.length}`;
    const at = ctx.clock();
    const vote: Vote = {
      approver: { subject: 'pressed@example.com', groups: ['desk'], kind: 'local' },
      decision: 'approve',
      via: 'button',
      at: at.toISOString(),
    };
    await ctx.journal.append('approval', s.callId, { event: 'approved', approvalId, via: 'button', approver: vote.approver.subject }, at);
    return { kind: 'approval', approvalId, via: 'button', votes: [vote], grant: null };
  },
};

let db: FreshDatabase;
let dir: string;
let gateway: Gateway;

beforeAll(async () => {
  db = await freshDatabase('extra_approver');
  dir = writeConfig({
    // The requester alone may approve, in the client: no default adapter takes a call from a client without elicitation.
    policy: approvalPolicy('approvers: { requester: true }'),
    approval: approvalSettings(),
    identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
  });
  gateway = await openGateway({ configDir: dir, env: { DB_URL: db.gatewayUrl }, approvers: [...APPROVERS, button] });
});

afterAll(async () => {
  await gateway?.close();
  if (dir) {
    const verified = verifyJournal(join(dir, 'journal.db'));
    rmSync(dir, { recursive: true, force: true });
    expect(verified.ok).toBe(true);
  }
  await db?.drop();
});

const insert = (body: string, client: string) =>
  callTool(gateway, {
    tool: 'run_sql',
    args: { connection: 'db', sql: `INSERT INTO audit_notes (body) VALUES ('${body}')` },
    identity: as(REQUESTER.subject, [...REQUESTER.groups]),
    client: { name: client },
    channel: { clientName: client },
  });

describe('an extra approval adapter, given to the gateway', () => {
  it('does not take a call it cannot decide: the default answer stands, and nothing runs', async () => {
    const r = await insert('not-pressed', 'vitest');
    if (r.ok) throw new Error('a call no adapter could decide ran');
    expect(r.error.code).toBe('approval.unavailable');
    expect(r.text).toContain('Rule writes-need-approval needs your approval in the client, but vitest cannot show an approval prompt');
    expect(shown).toEqual([]);
    expect(await db.query('SELECT id FROM audit_notes WHERE body = $1', ['not-pressed'])).toEqual([]);
  });

  it('clears a call it takes: the write runs, and the approval and the clearance are journaled under its channel', async () => {
    const r = await insert('pressed', 'button-client');
    expect(r.ok, r.text).toBe(true);
    expect(await db.query('SELECT body FROM audit_notes WHERE body = $1', ['pressed'])).toEqual([{ body: 'pressed' }]);

    // It was shown exactly what the other channels show: the request's hash, rule and requester.
    const sql = "INSERT INTO audit_notes (body) VALUES ('pressed')";
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatchObject({
      hash: requestHash('run_sql', 'db', { connection: 'db', sql }),
      tool: 'run_sql',
      connection: 'db',
      rule: 'writes-need-approval',
      requester: { subject: REQUESTER.subject, issuer: 'local' },
      client: 'button-client',
      allowRequester: true,
      min: 1,
    });

    const entry = [...readCalls(join(dir, 'journal.db'))].find((c) => c.callId === shown[0]?.callId);
    expect(entry?.events.map((e) => e.data)).toEqual([{ event: 'approved', approvalId: 'ap_button1', via: 'button', approver: 'pressed@example.com' }]);
    expect(entry?.call['clearance']).toEqual({
      kind: 'approval',
      approvalId: 'ap_button1',
      via: 'button',
      approvers: [{ subject: 'pressed@example.com', via: 'button', at: expect.any(String) }],
      grantId: null,
    });
    expect(entry?.outcome?.['status']).toBe('ok');
  });
});
