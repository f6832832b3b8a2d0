// In-client approval on 2026-07-28 (issue 14, item 2), end to end, against its attacks. A rule only
// the requester approves, in the client: a raw JSON-RPC client on 2026-07-28, over HTTP (serveHttp,
// bearer tokens) and over stdio (`drawbridge serve`, the built CLI), gets InputRequiredResult with
// the form, then re-issues with a tampered state, a state that is not a string and a replayed state:
// refused with a JSON-RPC error (-32602 with approval.state_invalid and the reason in its data),
// journaled with the reason; the genuine state runs the write once.
// The SDK v2 Client (input_required answered by its driver) and the SDK v1 Client (elicitation/create),
// accepted and declined, over both transports: clients.test.ts.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { SELF_APPROVED_POLICY, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startHttpGateway, type HttpHarness } from '../support/http-gateway.js';
import { FORM, envelope, messageOf, modernToolsCall } from '../support/mcp-2026.js';

const insert = (body: string) => `INSERT INTO audit_notes (body) VALUES ('${body}')`;

/** The default policy, and writes that only the requester approves, in the client, for the group selfers. */
const POLICY = SELF_APPROVED_POLICY;

type Message = {
  readonly id?: number;
  readonly result?: Record<string, unknown>;
  readonly error?: { code: number; message: string; data?: Record<string, unknown> };
};

/** Flips one bit inside the sealed body of a requestState. */
function tamper(state: string): string {
  const parts = state.split('.');
  const body = Buffer.from(parts[4] ?? '', 'base64url');
  body[16] = (body[16] ?? 0) ^ 0x01;
  return [...parts.slice(0, 4), body.toString('base64url')].join('.');
}

const ACCEPT = { action: 'accept', content: { decision: 'approve' } };

/**
 * The raw client's script, whatever the transport: round 1 held as input_required with the form;
 * a tampered state refused; the genuine one runs the write; the same state again refused as a replay.
 */
async function rawRounds(
  tools: (params: Record<string, unknown>) => Promise<Message>,
  body: string,
  rows: () => Promise<number>,
  journal: () => Promise<CallEntry[]>,
): Promise<void> {
  const args = { name: 'run_sql', arguments: { connection: 'db', sql: insert(body) } };
  const first = await tools(args);
  expect(first.error).toBeUndefined();
  expect(first.result?.['resultType']).toBe('input_required');
  const requests = first.result?.['inputRequests'] as Record<string, { method: string; params: { mode: string; message: string } }>;
  expect(requests['approval']).toMatchObject({ method: 'elicitation/create', params: { mode: 'form' } });
  expect(requests['approval']?.params.message).toContain(insert(body));
  const state = first.result?.['requestState'];
  if (typeof state !== 'string') throw new Error('no requestState');
  expect(await rows()).toBe(0);

  // A refused state is a JSON-RPC error (-32602), as the revision asks, carrying Drawbridge's code and reason.
  const refused = (answer: Message, refusal: string, text: RegExp): void => {
    expect(answer.result).toBeUndefined();
    expect(answer.error?.code).toBe(-32602);
    expect(answer.error?.message).toMatch(text);
    expect(answer.error?.data).toMatchObject({ reason: 'invalid_request_state', code: 'approval.state_invalid', refusal });
  };
  refused(
    await tools({ ...args, inputResponses: { approval: ACCEPT }, requestState: tamper(state) }),
    'tampered',
    /^approval\.state_invalid: The requestState sent with this call was altered after the gateway sealed it/,
  );
  // Not even a string: the SDK refuses it before any handler, and it still reaches the pipeline and the journal.
  refused(await tools({ ...args, inputResponses: { approval: ACCEPT }, requestState: 42 }), 'malformed', /^approval\.state_invalid: /);
  expect(await rows()).toBe(0);

  const ran = await tools({ ...args, inputResponses: { approval: ACCEPT }, requestState: state });
  expect(ran.result?.['resultType']).toBe('complete');
  expect(ran.result?.['isError']).toBeUndefined();
  expect(await rows()).toBe(1);

  refused(
    await tools({ ...args, inputResponses: { approval: ACCEPT }, requestState: state }),
    'replayed',
    /^approval\.state_invalid: The requestState sent with this call was already answered/,
  );
  expect(await rows()).toBe(1);

  // Journaled: the request, the refusals with their reasons, the approval and its single use.
  const mine = (await journal()).filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === insert(body));
  const events = mine.flatMap((e) => e.events.filter((x) => x.type === 'approval').map((x) => [x.data['event'], x.data['reason'] ?? null, x.data['via']]));
  expect(events).toEqual([
    ['requested', null, 'input_required'],
    ['refused', 'tampered', 'input_required'],
    ['refused', 'malformed', 'input_required'],
    ['approved', null, 'input_required'],
    ['consumed', null, 'input_required'],
    ['refused', 'replayed', 'input_required'],
  ]);
  expect(mine.map((e) => e.outcome?.['status'])).toEqual(['refused', 'refused', 'refused', 'ok', 'refused']);
  expect(mine.map((e) => e.outcome?.['errorCode'] ?? null)).toEqual([
    'approval.pending',
    'approval.state_invalid',
    'approval.state_invalid',
    null,
    'approval.state_invalid',
  ]);
}

describe('over HTTP', () => {
  type Account = 'sam';
  let h: HttpHarness<Account>;
  let sam: string;

  beforeAll(async () => {
    h = await startHttpGateway<Account>({
      prefix: 'eras_approval_http',
      accounts: { sam: { groups: ['selfers'] } },
      policy: POLICY,
      approval: '{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m }',
    });
    sam = await h.token('sam');
  });

  afterAll(async () => {
    await h?.close();
  });

  const rows = (body: string) => async () => (await h.db.query('SELECT id FROM audit_notes WHERE body = $1', [body])).length;
  const journal = async () => [...readCalls(join(h.dir, 'journal.db'))];

  it('a raw client: input_required with the form, a tampered state refused, the genuine one runs once, a replay refused; all journaled', async () => {
    const tools = async (params: Record<string, unknown>): Promise<Message> => {
      const { name, arguments: args, ...rest } = params as { name: string; arguments: Record<string, unknown> };
      const call = { url: h.resource, token: sam, params: { name, arguments: args, ...rest }, envelope: { client: 'raw-http', capabilities: FORM } };
      return messageOf<Message>(await modernToolsCall(call));
    };
    await rawRounds(tools, 'raw-http', rows('raw-http'), journal);
  });
});

describe('over stdio (drawbridge serve)', () => {
  let db: FreshDatabase;
  let dir: string;

  beforeAll(async () => {
    requireBuiltCli();
    db = await freshDatabase('eras_approval_stdio');
    dir = writeConfig({
      policy: POLICY,
      approval: '{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m }',
      identity: { subject: 'sam@example.com', groups: ['selfers'] },
    });
  });

  afterAll(async () => {
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const rows = (body: string) => async () => (await db.query('SELECT id FROM audit_notes WHERE body = $1', [body])).length;
  const journal = async () => [...readCalls(join(dir, 'journal.db'))];

  it('a raw client: input_required with the form, a tampered state refused, the genuine one runs once, a replay refused; all journaled', async () => {
    const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', dir], {
      cwd: REPO_ROOT,
      env: { ...process.env, DB_URL: db.gatewayUrl },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const waiting = new Map<number, (m: Message) => void>();
    createInterface({ input: child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Message;
      if (typeof message.id === 'number') waiting.get(message.id)?.(message);
    });
    let next = 0;
    const tools = (params: Record<string, unknown>): Promise<Message> => {
      const id = ++next;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer (stderr: ${stderr})`)), 30_000);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        const meta = envelope({ client: 'raw-stdio', capabilities: FORM });
        child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { ...params, _meta: meta } })}\n`);
      });
    };
    try {
      await rawRounds(tools, 'raw-stdio', rows('raw-stdio'), journal);
    } finally {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin.end();
      await exited;
    }
  });
});
