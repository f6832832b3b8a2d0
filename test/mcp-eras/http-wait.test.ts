// A 2026-07-28 call that waits for an out-of-band approval over HTTP (issue 14): the
// answer is one HTTP response per request, so a client that goes away cancels the
// call (journaled as abandoned, nothing run, the request kept), and the same call
// re-issued once the approver decided runs — the wait is recovered by re-issuing.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalls } from '../../src/journal/export.js';
import { DEFAULT_POLICY } from '../support/fixtures.js';
import { startHttpGateway, waitForPending, type HttpHarness } from '../support/http-gateway.js';
import { modernToolsCall } from '../support/mcp-2026.js';

const WRITE = "UPDATE customers SET city = 'Leuven' WHERE id = 2";

type Account = 'ann' | 'dora';
let h: HttpHarness<Account>;

beforeAll(async () => {
  h = await startHttpGateway<Account>({
    prefix: 'eras_wait',
    accounts: { ann: { groups: ['analysts'] }, dora: { groups: ['dba'] } },
    policy: DEFAULT_POLICY,
    // Long enough that only a cancellation or a decision ends the wait in this test.
    approval: '{ wait: 60s, store: approvals.db }',
  });
});

afterAll(async () => {
  await h?.close();
});

async function call(token: string, signal?: AbortSignal): Promise<Response> {
  const params = { name: 'run_sql', arguments: { connection: 'db', sql: WRITE } };
  return modernToolsCall({ url: h.http.url, token, params, envelope: { client: 'raw-wait' }, ...(signal ? { signal } : {}) });
}

/** Polls the journal (a condition, not a wait for time) until `found` holds, for at most ~10 s. */
async function journalUntil(found: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !found(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(found()).toBe(true);
}

describe('a 2026-07-28 call waiting for an out-of-band approval over HTTP', () => {
  it('is cancelled when its client goes away (abandoned, nothing run), and the re-issued call runs once approved', async () => {
    const ann = await h.token('ann');
    const gone = new AbortController();
    const first = call(ann, gone.signal).then(
      (r) => r.text(),
      (error: unknown) => error,
    );
    const id = await waitForPending(h.gateway, WRITE);
    gone.abort();
    await first;
    const journalPath = join(h.dir, 'journal.db');
    // The abandoned event is journaled before the call's outcome: wait for both.
    const abandoned = (): boolean =>
      [...readCalls(journalPath)].some(
        (e) => e.outcome !== null && e.events.some((ev) => ev.type === 'approval' && ev.data['event'] === 'abandoned' && ev.data['approvalId'] === id),
      );
    await journalUntil(abandoned);
    const cancelledCall = [...readCalls(journalPath)].find((e) => e.events.some((ev) => ev.data['event'] === 'abandoned'));
    expect(cancelledCall?.outcome).toMatchObject({ status: 'refused' });

    // The approver decides over the approvals API, with their own token.
    const approved = await fetch(`${h.origin}/api/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await h.token('dora')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'ticket OPS-7' }),
    });
    expect(approved.status, await approved.text()).toBe(200);
    const again = await call(ann);
    const body = await again.text();
    expect(again.status).toBe(200);
    const message = JSON.parse(/^data: (.*)$/m.exec(body)?.[1] ?? body) as { result: { isError?: boolean; resultType: string } };
    expect(message.result.resultType).toBe('complete');
    expect(message.result.isError, body).toBeFalsy();
  });
});
