// approval.notify end to end: a real gateway (its PostgreSQL database, journal and
// approvals store) sends to local node:http receivers on 127.0.0.1. A Slack-style
// receiver gets the pending and decided messages; a generic webhook's HMAC header
// verifies; a failing receiver (500s, then no answer) is retried with backoff in
// virtual time, journaled after the last attempt, and the call is not held up.
// Also the configuration checks (inline secrets, bad kind, http off loopback).

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decideApproval } from '../../src/approval/decide.js';
import { describeApproval, slackText } from '../../src/approval/notify.js';
import { loadConfig, ConfigError } from '../../src/config/load.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import type { StoredApproval } from '../../src/state/contract.js';
import { approvalSubject } from '../support/approvals.js';
import { runInProcess } from '../support/cli.js';
import { as, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

interface Receiver {
  readonly url: string;
  readonly received: Received[];
}

/** A receiver on 127.0.0.1 that records each request and answers with `answer` (default 200). */
async function receiver(answer: (req: Received, res: ServerResponse, n: number) => void = (_r, res) => res.end('ok')): Promise<Receiver> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(r);
      answer(r, res, received.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  // The path stands for the credential a Slack webhook URL carries.
  return { url: `http://127.0.0.1:${address.port}/services/T000/B000/SeCrEtHoOkToKeN`, received };
}

const WRITE = "UPDATE orders SET note = 'call jane.doe@example.com about 4111 1111 1111 1111' WHERE id = 1";
const SECRET = 'whsec-test-0123456789abcdef';
const POLICY = `kind: policy
rules:
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts] }
    effect: approve
    message: Writes need a DBA.
    approvers: { groups: [dba] }
    grant: 15m
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

/** The gateways' clock runs this far ahead of real time (a test moves it past an expiry). */
let clockOffsetMs = 0;

interface Setup {
  readonly dir: string;
  readonly gateway: Gateway;
  readonly db: FreshDatabase;
  readonly logs: string[];
  call(): Promise<CallResult>;
}

async function setup(notify: string, env: Record<string, string>, timing: Parameters<typeof openGateway>[0]['notify'] = {}, approvers = ''): Promise<Setup> {
  const db = await freshDatabase('notify');
  cleanups.push(() => db.drop());
  const dir = writeConfig({ policy: POLICY, approval: `{ wait: 0ms, store: approvals.db, notify: ${notify}${approvers} }` });
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const logs: string[] = [];
  const gateway = await openGateway({
    configDir: dir,
    env: { DB_URL: db.gatewayUrl, ...env },
    notify: { log: (line) => logs.push(line), ...timing },
    clock: () => new Date(Date.now() + clockOffsetMs),
  });
  cleanups.push(() => gateway.close());
  return {
    dir,
    gateway,
    db,
    logs,
    call: () =>
      callTool(gateway, {
        tool: 'run_sql',
        args: { connection: 'db', sql: WRITE },
        identity: as('alice', ['analysts']),
        client: { name: 'vitest' },
        channel: { clientName: 'vitest' },
      }),
  };
}

function pendingId(r: CallResult): string {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error('unreachable');
  expect(r.error.code).toBe('approval.pending');
  const id = (r.error.details as { approvalId?: unknown } | undefined)?.approvalId;
  if (typeof id !== 'string') throw new Error(`no approval id in ${r.text}`);
  return id;
}

interface Row {
  readonly type: string;
  readonly callId: string;
  readonly data: Record<string, unknown>;
}

/** The journal as stored, parsed. */
async function journal(gateway: Gateway): Promise<Row[]> {
  const rows: Row[] = [];
  for await (const r of gateway.journal.read()) {
    rows.push({ type: String(r.type), callId: String(r.callId), data: JSON.parse(String(r.data)) as Record<string, unknown> });
  }
  return rows;
}

const dana = { subject: 'dana', groups: ['dba'], kind: 'local' as const };

/** Nothing a receiver got may carry the write's literal values, the webhook secret or the hook's credential path. */
function expectNothingSecret(all: readonly Received[], db: FreshDatabase): void {
  for (const r of all) {
    for (const forbidden of ['jane.doe@example.com', '4111 1111 1111 1111', SECRET, 'SeCrEtHoOkToKeN', db.gatewayUrl, 'UPDATE orders SET']) {
      expect(r.body).not.toContain(forbidden);
      expect(JSON.stringify(r.headers)).not.toContain(forbidden);
    }
  }
}

/** The check a receiver makes: HMAC-SHA256 over `<timestamp>.<raw body>`, compared in constant time. */
function verify(r: Received, secret: string): boolean {
  const timestamp = String(r.headers['x-drawbridge-timestamp']);
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.${r.body}`).digest('hex')}`);
  const given = Buffer.from(String(r.headers['x-drawbridge-signature']));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('approval.notify', () => {
  it('sends the pending and decided messages to a Slack-style receiver and a signed webhook', async () => {
    const slack = await receiver();
    const hook = await receiver();
    const s = await setup('[{ kind: slack, url: "${SLACK_URL}" }, { kind: webhook, url: { env: HOOK_URL }, secret: { env: HOOK_SECRET } }]', {
      SLACK_URL: slack.url,
      HOOK_URL: hook.url,
      HOOK_SECRET: SECRET,
    });
    s.gateway.notifier?.linkTo('https://gw.example.com/mcp');
    const id = pendingId(await s.call());
    await s.gateway.notifier?.idle();

    expect(slack.received).toHaveLength(1);
    const pending = (JSON.parse(slack.received[0]?.body ?? '{}') as { text: string }).text;
    expect(pending).toContain(`Approval ${id} is waiting: alice (vitest) asks to run run_sql on db`);
    expect(pending).toContain('update (write) on public.orders');
    expect(pending).toContain('Rule writes-need-approval: Writes need a DBA.');
    expect(pending).toContain('Votes 0/1 from dba');
    expect(pending).toMatch(/Expires \d{4}-\d\d-\d\dT/);
    expect(pending).toContain(`<https://gw.example.com/console/approvals/${id}|Open in the console>`);

    expect(hook.received).toHaveLength(1);
    const first = hook.received[0]!;
    expect(verify(first, SECRET)).toBe(true);
    expect(verify(first, 'another-secret')).toBe(false);
    expect(first.headers['x-drawbridge-event']).toBe('approval.pending');
    expect(Math.abs(Number(first.headers['x-drawbridge-timestamp']) - Date.now() / 1000)).toBeLessThan(60);
    const body = JSON.parse(first.body) as { event: string; approval: Record<string, unknown> };
    expect(body.event).toBe('approval.pending');
    expect(body.approval).toMatchObject({
      id,
      status: 'pending',
      tool: 'run_sql',
      connection: 'db',
      rule: 'writes-need-approval',
      requester: { subject: 'alice', kind: 'local', client: 'vitest' },
      approverGroups: ['dba'],
      min: 1,
      approvals: 0,
      url: `https://gw.example.com/console/approvals/${id}`,
    });

    // The decided message: after the vote that decided the request, whatever channel cast it.
    const decided = await decideApproval(
      s.gateway.state,
      dana,
      { approvalId: id, decision: 'approve', via: 'cli', reason: 'ticket 42', grantMs: 15 * 60_000 },
      new Date(),
      s.gateway.notifier?.notify,
    );
    expect(decided.ok).toBe(true);
    await s.gateway.notifier?.idle();
    expect(slack.received).toHaveLength(2);
    const done = (JSON.parse(slack.received[1]?.body ?? '{}') as { text: string }).text;
    expect(done).toContain(`Approval ${id} was approved: run_sql on db for alice (vitest)`);
    expect(done).toContain('• dana: approve (ticket 42)');
    expect(done).toContain('Grant: 15 min');
    const second = hook.received[1]!;
    expect(verify(second, SECRET)).toBe(true);
    expect(second.headers['x-drawbridge-event']).toBe('approval.decided');
    expect(JSON.parse(second.body)).toMatchObject({ event: 'approval.decided', approval: { id, status: 'approved', approvals: 1 } });
    // One delivery id per notification, the same across retries: a receiver can drop duplicates.
    expect(first.headers['x-drawbridge-delivery']).not.toBe(second.headers['x-drawbridge-delivery']);

    expectNothingSecret([...slack.received, ...hook.received], s.db);
    expect(s.logs).toEqual([]);
  });

  it('announces a request that expired without a decision, and only that one', async () => {
    const slack = await receiver();
    const timers: Array<{ ms: number; fire: () => void }> = [];
    const untilExpiry = (ms: number) => new Promise<void>((fire) => timers.push({ ms, fire }));
    const s = await setup('[{ kind: slack, url: "${SLACK_URL}" }]', { SLACK_URL: slack.url }, { untilExpiry });
    const expiring = pendingId(await s.call());
    await s.gateway.notifier?.idle();
    expect(timers).toHaveLength(1);
    // The watch waits until the request's expiry (pending_ttl, 24 h by default) and a second more.
    const approval = await s.gateway.state.approvals.get(expiring, new Date());
    const ttl = Date.parse(approval!.expiresAt) - Date.parse(approval!.createdAt);
    expect(Math.abs(timers[0]!.ms - (ttl + 1_000))).toBeLessThan(5_000);

    clockOffsetMs = ttl + 60_000;
    try {
      timers[0]!.fire();
      for (let i = 0; i < 200 && slack.received.length < 2; i++) {
        await s.gateway.notifier?.idle();
        await new Promise((r) => setImmediate(r)); // a condition poll: the watch reads the store, then queues
      }
    } finally {
      clockOffsetMs = 0;
    }
    expect(slack.received).toHaveLength(2);
    const text = (JSON.parse(slack.received[1]?.body ?? '{}') as { text: string }).text;
    expect(text).toContain(`Approval ${expiring} expired without a decision: run_sql on db for alice (vitest)`);
    expect(text).toContain('The agent must call again to ask anew.');

    // Decided before its time: the watch finds it approved, and says nothing more.
    const decided = pendingId(await s.call()); // the same input re-asks: the expired request is not reused
    expect(decided).not.toBe(expiring);
    await s.gateway.notifier?.idle();
    expect(
      (await decideApproval(s.gateway.state, dana, { approvalId: decided, decision: 'approve', via: 'cli' }, new Date(), s.gateway.notifier?.notify)).ok,
    ).toBe(true);
    await s.gateway.notifier?.idle();
    expect(slack.received).toHaveLength(4);
    timers[1]!.fire();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    await s.gateway.notifier?.idle();
    expect(slack.received).toHaveLength(4);
    expect(s.logs).toEqual([]);
  });

  it('drawbridge approvals deny on the gateway host sends the decided message before it exits', async () => {
    const slack = await receiver();
    const token = 'tok-dana-4b1d9e2c7a6f0853';
    const s = await setup(
      '[{ kind: slack, url: { env: SLACK_URL } }]',
      { SLACK_URL: slack.url },
      {},
      ', approvers: [{ subject: dana, groups: [dba], token: { env: DANA_TOKEN } }]',
    );
    const id = pendingId(await s.call());
    await s.gateway.notifier?.idle();
    expect(slack.received).toHaveLength(1);
    const r = await runInProcess(['approvals', 'deny', id, '--reason', 'not during the freeze', '--config', s.dir], {
      env: { SLACK_URL: slack.url, DANA_TOKEN: token, DRAWBRIDGE_APPROVER_TOKEN: token },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The command returned only after the delivery: the message is there already.
    expect(slack.received).toHaveLength(2);
    const text = (JSON.parse(slack.received[1]?.body ?? '{}') as { text: string }).text;
    expect(text).toContain(`Approval ${id} was denied: run_sql on db for alice (vitest)`);
    expect(text).toContain('• dana: deny (not during the freeze)');
    expect(text).not.toContain(token);
    expectNothingSecret(slack.received, s.db);
  });

  it('retries a failing receiver with backoff in virtual time, journals the failure, and never holds up the call', async () => {
    // The first request is held until the test releases it (after the call answered): 500.
    // The second: 500 at once. Then no answer at all: each attempt times out.
    let releaseFirst: () => void = () => undefined;
    const hung: Array<() => void> = [];
    const failing = await receiver((_r, res, n) => {
      if (n === 1) releaseFirst = () => void res.writeHead(500).end('boom');
      else if (n === 2) res.writeHead(500).end('boom');
      else hung.at(-1)?.();
    });
    const slept: number[] = [];
    let now = 0;
    const s = await setup(
      '[{ kind: slack, url: { env: SLACK_URL } }]',
      { SLACK_URL: failing.url },
      {
        sleep: async (ms) => {
          slept.push(ms);
          now += ms;
        },
        monotonic: () => now,
        // An attempt's deadline passes once the receiver has the request and sits on it.
        deadline: (ms) =>
          new Promise<void>((resolve) => {
            hung.push(() => {
              now += ms;
              resolve();
            });
          }),
      },
    );
    const started = performance.now();
    const result = await s.call();
    const id = pendingId(result);
    // The call answered while the receiver still held the first delivery.
    expect(failing.received).toHaveLength(1);
    expect(performance.now() - started).toBeLessThan(5_000);
    releaseFirst();
    await s.gateway.notifier?.idle();

    expect(failing.received).toHaveLength(5);
    expect(slept).toEqual([1_000, 2_000, 4_000, 8_000]);
    expect(s.logs).toHaveLength(1);
    expect(s.logs[0]).toContain(`notification approval.pending for approval ${id} to slack target 1 (url from $SLACK_URL) failed after 5 attempts`);
    expect(s.logs[0]).toMatch(/no answer within 10000 ms/);
    expect(s.logs[0]).not.toContain('SeCrEtHoOkToKeN');

    const records = await journal(s.gateway);
    const failed = records.filter((r) => r.type === 'approval' && r.data['event'] === 'notify_failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]?.callId).toBe(result.callId);
    expect(failed[0]?.data).toEqual({
      event: 'notify_failed',
      approvalId: id,
      notification: 'approval.pending',
      target: { index: 0, kind: 'slack', url: '$SLACK_URL' },
      attempts: 5,
      error: 'no answer within 10000 ms',
    });
    expect(JSON.stringify(records)).not.toContain('SeCrEtHoOkToKeN');
    // The call's own records are what they are without notifications: intent and a pending outcome.
    expect(records.find((r) => r.type === 'outcome' && r.callId === result.callId)?.data).toMatchObject({ status: 'refused', errorCode: 'approval.pending' });
  });

  it('gives up at once on a permanent refusal (404) and on an http URL off loopback, without sending it', async () => {
    const gone = await receiver((_r, res) => res.writeHead(404).end('no_service'));
    const s = await setup('[{ kind: slack, url: { env: GONE_URL } }, { kind: webhook, url: { env: PLAIN_URL }, secret: { file: hook-secret } }]', {
      GONE_URL: gone.url,
      PLAIN_URL: 'http://hooks.example.com/notify',
    });
    writeFileSync(join(s.gateway.config.dir, 'hook-secret'), SECRET);
    const id = pendingId(await s.call());
    await s.gateway.notifier?.idle();
    expect(gone.received).toHaveLength(1);
    const failed = (await journal(s.gateway)).filter((r) => r.data['event'] === 'notify_failed').map((r) => r.data);
    // Targets deliver independently: the two failures are journaled in either order.
    expect(failed).toHaveLength(2);
    expect(failed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ approvalId: id, target: { index: 0, kind: 'slack', url: '$GONE_URL' }, attempts: 1, error: 'HTTP 404' }),
        expect.objectContaining({
          approvalId: id,
          target: { index: 1, kind: 'webhook', url: '$PLAIN_URL' },
          attempts: 1,
          error: expect.stringMatching(/must use https:\/\/ .*http:\/\/hooks\.example\.com$/),
        }),
      ]),
    );
  });
});

describe('notification content', () => {
  it('applies the content detectors to the summary and sends no input, sample row or credential', () => {
    const subject = approvalSubject({
      summary: 'kubectl exec pod/api -- notify jane.doe@example.com <@U123> & more',
      input: { command: 'notify jane.doe@example.com' },
      preview: { affectedRows: 3, sample: [{ email: 'row-secret@example.com' }], sampleColumns: ['email'] },
    });
    const approval: StoredApproval = {
      id: 'ap_0123456789',
      hash: subject.hash,
      status: 'pending',
      subject,
      votes: [],
      createdAt: '2026-12-05T05:00:00.000Z',
      expiresAt: '2026-12-06T05:00:00.000Z',
      decidedAt: null,
      consumedAt: null,
      grantMs: null,
    };
    const described = describeApproval(approval, null);
    const text = slackText('approval.pending', described);
    for (const out of [JSON.stringify(described), text]) {
      expect(out).not.toContain('jane.doe@example.com');
      expect(out).not.toContain('row-secret@example.com');
    }
    expect(described.affectedRows).toBe(3);
    expect(text).toContain('Preview: 3 rows affected');
    // Slack control characters are escaped: a summary cannot mention a user or forge a link.
    expect(text).toContain('&lt;@U123&gt; &amp; more');
    expect(text).toContain('Decide with: drawbridge approvals approve ap_0123456789');
  });
});

describe('approval.notify configuration', () => {
  function problems(notify: string): string[] {
    const dir = writeConfig({ approval: `{ notify: ${notify} }` });
    try {
      loadConfig(dir);
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems.map((p) => p.message);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('accepts references, and https or loopback http written around them', () => {
    expect(problems('[{ kind: slack, url: "${SLACK_URL}" }, { kind: webhook, url: { file: /run/secrets/hook }, secret: { env: S } }]')).toEqual([]);
    expect(problems('[{ kind: slack, url: "https://hooks.slack.com/services/${SLACK_PATH}" }]')).toEqual([]);
    expect(problems('[{ kind: webhook, url: "http://127.0.0.1:9000/${HOOK_PATH}", secret: "${S}" }]')).toEqual([]);
  });

  it('refuses an inline URL or secret, a bad kind, and http to a non-loopback host', () => {
    expect(problems('[{ kind: slack, url: "https://hooks.slack.com/services/T0/B0/abc" }]')).toEqual([
      expect.stringMatching(/slack notification URL is written inline/),
    ]);
    expect(problems('[{ kind: webhook, url: "${U}", secret: "plain-secret" }]')).toEqual([expect.stringMatching(/webhook signing secret is written inline/)]);
    expect(problems('[{ kind: email, url: "${U}" }]').join('\n')).toMatch(/kind/);
    expect(problems('[{ kind: webhook, url: "${U}" }]').join('\n')).toMatch(/secret/);
    expect(problems('[{ kind: slack, url: "http://hooks.example.com/${P}" }]')).toEqual([expect.stringMatching(/hooks\.example\.com is not loopback/)]);
    expect(problems('[{ kind: slack, url: "ftp://hooks.example.com/${P}" }]')).toEqual([expect.stringMatching(/must use https/)]);
  });
});
