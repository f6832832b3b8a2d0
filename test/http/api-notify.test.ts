// approval.notify through the approvals API: a vote cast over /api/v1/ by an approver
// signed in at the test OpenID provider sends the decided message through the serving
// gateway's notifier, with the link to the console page under the public URL's origin.
// A receiver that never answers well does not change the API's answer.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';

const ACCOUNTS = { alice: { groups: ['analysts'] }, dana: { groups: ['dba'] } };
const POLICY = `kind: policy
rules:
  - name: writes-need-approval
    match: { tool: run_sql, access: write, groups: [analysts] }
    effect: approve
    approvers: { groups: [dba] }
    message: Writes need a DBA.
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;

let h: HttpHarness<keyof typeof ACCOUNTS>;
let receiverClose: () => Promise<void>;
const texts: string[] = [];
let failingHits = 0;
const logs: string[] = [];

beforeAll(async () => {
  // One receiver: /slack records the text, /broken always answers 500.
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/broken') {
        failingHits += 1;
        res.writeHead(500).end();
        return;
      }
      texts.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { text: string }).text);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  receiverClose = () => new Promise<void>((resolve) => server.close(() => resolve()));
  h = await startHttpGateway({
    prefix: 'apinotify',
    accounts: ACCOUNTS,
    policy: POLICY,
    approval: '{ wait: 0ms, store: approvals.db, notify: [{ kind: slack, url: "${SLACK_URL}" }, { kind: slack, url: "${BROKEN_URL}" }] }',
    env: { SLACK_URL: `http://127.0.0.1:${address.port}/slack`, BROKEN_URL: `http://127.0.0.1:${address.port}/broken` },
    // The broken target's retries run at once (no wall-clock backoff in a test).
    notify: { sleep: async () => undefined, log: (line) => logs.push(line) },
  });
  // The harness links notifications to the console as serve --http does once it listens.
}, 60_000);

afterAll(async () => {
  await h?.close();
  await receiverClose?.();
});

describe('approval.notify through the approvals API', () => {
  it('an API approve sends the decided message with the console link; a failing target does not change the answer', async () => {
    const result = await h.call('alice', "UPDATE orders SET note = 'api-notify' WHERE id = 1");
    const id = result.structured?.approval?.id as string;
    expect(result.structured?.approval?.status).toBe('pending');
    await h.gateway.notifier?.idle();
    expect(texts).toHaveLength(1);
    const origin = new URL(h.resource).origin;
    expect(texts[0]).toContain(`<${origin}/console/approvals/${id}|Open in the console>`);

    const token = await h.token('dana');
    const started = performance.now();
    const res = await fetch(`${origin}/api/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'ticket 7' }),
    });
    expect(res.status, await res.text()).toBe(200);
    expect(performance.now() - started).toBeLessThan(5_000);
    await h.gateway.notifier?.idle();
    expect(texts).toHaveLength(2);
    expect(texts[1]).toContain(`Approval ${id} was approved: run_sql on db for alice`);
    expect(texts[1]).toContain('• dana: approve (ticket 7)');
    expect(texts[1]).toContain(`${origin}/console/approvals/${id}`);
    expect(texts.join('\n')).not.toContain(token);
    // The broken target: 5 attempts for each of the two messages, then journaled.
    expect(failingHits).toBe(10);
    const failed: unknown[] = [];
    for await (const r of h.gateway.journal.read()) {
      const data = JSON.parse(String(r.data)) as Record<string, unknown>;
      if (data['event'] === 'notify_failed') failed.push(data);
    }
    expect(logs).toEqual([expect.stringContaining('approval.pending for approval'), expect.stringContaining('approval.decided for approval')]);
    expect(failed).toEqual([
      expect.objectContaining({ approvalId: id, notification: 'approval.pending', attempts: 5, error: 'HTTP 500' }),
      expect.objectContaining({ approvalId: id, notification: 'approval.decided', attempts: 5, error: 'HTTP 500' }),
    ]);
  });
});
