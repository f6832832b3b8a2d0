// Both MCP protocol eras from the same stdio server (issue 14, item 1): `drawbridge
// serve` (the built CLI) as a child process, driven by
//   - a raw JSON-RPC client speaking 2026-07-28 (server/discover, -32022 for an
//     unknown revision, resultType and ttlMs/cacheScope on tools/list, resultType on
//     tools/call) and, in another process, 2025-11-25 (initialize still works);
//   - in-client approval on 2026-07-28: input_required when the envelope declares
//     form elicitation, the clear refusal without, never an elicitation/create.
// The SDK v1/v2 Clients and the Inspector CLI over stdio are in clients.test.ts.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PII } from '../../dev/seed.js';
import { readCalls } from '../../src/journal/export.js';
import { TOOLS_LIST_TTL_MS } from '../../src/server.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { SELF_APPROVED_POLICY, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { FORM, LEGACY, MODERN, envelope, type Envelope } from '../support/mcp-2026.js';

const MASKED_READ = 'SELECT id, email, city FROM customers ORDER BY id LIMIT 2';
const WRITE = "UPDATE customers SET city = 'Ghent' WHERE id = 1";
/** The default policy, and writes that only the requester approves, in the client, for the group selfers. */
const SELF_APPROVED = SELF_APPROVED_POLICY;

let db: FreshDatabase;
let dir: string;
/** A config whose stdio caller is in selfers (approves its own writes in the client). */
let selfDir: string;

beforeAll(async () => {
  requireBuiltCli();
  db = await freshDatabase('eras_stdio');
  dir = writeConfig();
  selfDir = writeConfig({ policy: SELF_APPROVED, identity: { subject: 'sam@example.com', groups: ['selfers'] } });
});

afterAll(async () => {
  await db?.drop();
  for (const d of [dir, selfDir]) if (d) rmSync(d, { recursive: true, force: true });
});

type Message = Record<string, unknown> & { readonly id?: number; readonly result?: Record<string, unknown>; readonly error?: Record<string, unknown> };

/** A raw newline-delimited JSON-RPC peer of one `drawbridge serve` process. */
class RawStdio {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting = new Map<number, (m: Message) => void>();
  private next = 0;
  stderr = '';
  /** Every message the server wrote, answers and requests alike. */
  readonly seen: Message[] = [];

  constructor(configDir = dir) {
    this.child = spawn(process.execPath, [requireBuiltCli(), 'serve', '--config', configDir], {
      cwd: REPO_ROOT,
      env: { ...process.env, DB_URL: db.gatewayUrl },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const message = JSON.parse(line) as Message;
      this.seen.push(message);
      if (typeof message.id === 'number') this.waiting.get(message.id)?.(message);
    });
  }

  request(method: string, params: Record<string, unknown>): Promise<Message> {
    const id = ++this.next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer to ${method} (stderr: ${this.stderr})`)), 30_000);
      this.waiting.set(id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
    });
  }

  notify(method: string, params: Record<string, unknown> = {}): void {
    this.child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method, params })}\n`);
  }

  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    await exited;
  }
}

/** The 2026-07-28 request envelope: protocol version, client info and capabilities in every request's _meta. */
/** This file's raw client's envelope. */
const modern = (options: Omit<Envelope, 'client'> = {}): Record<string, unknown> => envelope({ client: 'raw-modern', ...options });

const textOf = (result: Record<string, unknown> | undefined): string =>
  ((result?.['content'] ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');

describe('a raw JSON-RPC client on 2026-07-28 (no initialize)', () => {
  let raw: RawStdio;
  beforeAll(() => {
    raw = new RawStdio();
  });
  afterAll(async () => {
    await raw?.close();
  });

  it('server/discover names 2026-07-28 among the supported revisions', async () => {
    const answer = await raw.request('server/discover', { _meta: modern() });
    expect(answer.error).toBeUndefined();
    const versions = answer.result?.['supportedVersions'];
    expect(versions).toEqual(expect.arrayContaining([MODERN]));
    expect(answer.result?.['resultType']).toBe('complete');
  });

  it('an unknown revision is answered -32022 with the supported list', async () => {
    const answer = await raw.request('tools/list', { _meta: modern({ version: '2099-01-01' }) });
    expect(answer.error?.['code']).toBe(-32022);
    const data = answer.error?.['data'] as Record<string, unknown>;
    expect(data['supported']).toEqual(expect.arrayContaining([MODERN]));
    expect(data['requested']).toBe('2099-01-01');
  });

  it('tools/list carries resultType, ttlMs and a private cacheScope', async () => {
    const answer = await raw.request('tools/list', { _meta: modern() });
    expect(answer.result).toMatchObject({ resultType: 'complete', ttlMs: TOOLS_LIST_TTL_MS, cacheScope: 'private' });
    expect((answer.result?.['tools'] as Array<{ name: string }>).map((t) => t.name)).toEqual(['run_sql']);
  });

  it('tools/call carries resultType; the read is masked and journaled under this connection’s stdio session, with the client of the envelope', async () => {
    const answer = await raw.request('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ }, _meta: modern() });
    expect(answer.result?.['resultType']).toBe('complete');
    expect(answer.result?.['isError']).toBeFalsy();
    expect(textOf(answer.result)).toContain('[masked:customers.email]');
    for (const email of DEMO_PII.emails) expect(JSON.stringify(answer)).not.toContain(email);
    const entry = [...readCalls(join(dir, 'journal.db'))].find((e) => e.call['input'] && JSON.stringify(e.call['input']).includes('LIMIT 2'));
    expect(entry?.call['session']).toMatch(/^stdio-[0-9a-f-]{36}$/);
    expect(entry?.call['client']).toMatchObject({ name: 'raw-modern', version: '0.0.1' });
  });

  it('a malformed tools/call (a name that is not a string) still reaches the pipeline and is journaled', async () => {
    const before = [...readCalls(join(dir, 'journal.db'))].length;
    const answer = await raw.request('tools/call', { name: 42, arguments: 'x', _meta: modern() });
    expect(answer.error).toBeUndefined();
    expect(answer.result?.['isError']).toBe(true);
    expect(textOf(answer.result)).toMatch(/^tool\.unknown: /);
    const after = [...readCalls(join(dir, 'journal.db'))];
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)?.call['tool']).toBe('(not a string: 42)');
  });

  it('the connection stays on 2026-07-28: a later initialize on the same pipe is refused with -32022', async () => {
    const answer = await raw.request('initialize', { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'late', version: '1' } });
    expect(answer.error?.['code']).toBe(-32022);
  });
});

describe('a raw JSON-RPC client on 2025-11-25, another process of the same server', () => {
  it('initialize, tools/list and tools/call answer as before (no resultType, no ttlMs)', async () => {
    const raw = new RawStdio();
    try {
      const init = await raw.request('initialize', { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'raw-legacy', version: '1' } });
      expect(init.result).toMatchObject({ protocolVersion: LEGACY, serverInfo: { name: 'drawbridge' }, capabilities: { tools: {} } });
      raw.notify('notifications/initialized');
      const list = await raw.request('tools/list', {});
      expect((list.result?.['tools'] as Array<{ name: string }>).map((t) => t.name)).toEqual(['run_sql']);
      expect(list.result?.['ttlMs']).toBeUndefined();
      expect(list.result?.['resultType']).toBeUndefined();
      const call = await raw.request('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: MASKED_READ } });
      expect(textOf(call.result)).toContain('[masked:customers.email]');
      expect(call.result?.['resultType']).toBeUndefined();
    } finally {
      await raw.close();
    }
  });
});

describe('in-client approval over stdio, raw 2026-07-28 (the SDK clients: clients.test.ts)', () => {
  it('2026-07-28: no elicitation/create is pushed — input_required with the form when declared, else the clear refusal', async () => {
    const raw = new RawStdio(selfDir);
    try {
      const held = await raw.request('tools/call', {
        name: 'run_sql',
        arguments: { connection: 'db', sql: WRITE },
        _meta: modern({ capabilities: FORM }),
      });
      expect(held.result?.['resultType']).toBe('input_required');
      expect(Object.keys((held.result?.['inputRequests'] ?? {}) as object)).toEqual(['approval']);
      expect(typeof held.result?.['requestState']).toBe('string');
      const refused = await raw.request('tools/call', { name: 'run_sql', arguments: { connection: 'db', sql: WRITE }, _meta: modern() });
      expect(refused.result?.['resultType']).toBe('complete');
      expect(textOf(refused.result)).toMatch(/^approval\.unavailable: Rule self-approved-writes needs your approval in the client/);
      expect([...readCalls(join(selfDir, 'journal.db'))].at(-1)?.outcome).toMatchObject({ status: 'refused', errorCode: 'approval.unavailable' });
      expect(raw.seen.filter((m) => (m as { method?: unknown }).method === 'elicitation/create')).toEqual([]);
    } finally {
      await raw.close();
    }
  });
});
