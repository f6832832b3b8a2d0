// Real MCP clients end to end (issue 14, item 5), one table: the SDK v1 Client
// (2025-11-25), the SDK v2 Client pinned to 2026-07-28 and the MCP Inspector CLI in
// both of its protocol eras, each over stdio (`drawbridge serve`, the built CLI) and
// over HTTP (serveHttp with the test OpenID provider's bearer tokens). Each lists the
// tools, reads a masked column, is refused a denied call (journaled), meets an
// in-client approval (accepted and declined where the client can answer a prompt; the
// Inspector CLI cannot, so it gets the clear approval.unavailable refusal), and picks
// up an out-of-band approval by re-issuing the same call after an approver voted (the
// approvals API over HTTP; the store, as `drawbridge approvals approve` does, for stdio).
// Protocol details per era live in stdio/http/approval.test.ts; this file is the matrix.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as V2Client, StreamableHTTPClientTransport as V2HttpClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport as V2StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as V1StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as V1HttpClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_PII } from '../../dev/seed.js';
import { decideApproval } from '../../src/approval/decide.js';
import { loadConfig } from '../../src/config/load.js';
import { readCalls, type CallEntry } from '../../src/journal/export.js';
import { openState } from '../../src/state/open.js';
import { REPO_ROOT, requireBuiltCli } from '../support/cli.js';
import { DEFAULT_POLICY, freshDatabase, writeConfig, type FreshDatabase } from '../support/fixtures.js';
import { startHttpGateway, waitForPending, type HttpHarness } from '../support/http-gateway.js';

const MODERN = '2026-07-28';
const INSPECTOR = join(REPO_ROOT, 'node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js');

/**
 * The default policy (DDL denied, analysts' writes approved out of band by a dba, reads allowed,
 * customers' PII masked), and notes that a selfer writes only after approving them in the client.
 */
const POLICY = DEFAULT_POLICY.replace(
  'rules:\n',
  `rules:
  - name: self-approved-notes
    match: { tool: run_sql, access: write, groups: [selfers], tables: [public.audit_notes] }
    effect: approve
    approvers: { requester: true }
`,
);
/** The requester everywhere: approves their own notes in the client; their customer updates wait for a dba. */
const REQUESTER_GROUPS = ['selfers', 'analysts'];
const APPROVAL = '{ wait: 0ms, store: approvals.db, elicitation_timeout: 1m }';

// Each client × transport writes its own SQL (tagged), so journal entries and rows are told apart.
const maskedRead = (tag: string) => `SELECT id, email, city, '${tag}' AS via FROM customers ORDER BY id LIMIT 2`;
const denied = (tag: string) => `DROP TABLE customers_${tag}`;
const note = (tag: string) => `INSERT INTO audit_notes (body) VALUES ('${tag}')`;
const update = (tag: string, id: number) => `UPDATE customers SET city = '${tag}' WHERE id = ${id}`;

/** Where a client reaches Drawbridge. */
type Endpoint =
  { readonly kind: 'stdio'; readonly dir: string; readonly dbUrl: string } | { readonly kind: 'http'; readonly url: string; readonly token: string };

/** What a tools/call came back as, whatever the client. */
interface Outcome {
  readonly isError: boolean;
  readonly text: string;
  readonly result: Record<string, unknown>;
}

/** One client connected to one endpoint (for the Inspector CLI: one process per operation). */
interface Session {
  tools(): Promise<string[]>;
  call(sql: string): Promise<Outcome>;
  /** A 2025-11-25 HTTP session's Mcp-Session-Id, where the client tells it. */
  readonly sessionId?: () => string | undefined;
  close(): Promise<void>;
}

/** What a prompting client answers to the approval form, and the prompts it was shown. */
interface Answers {
  decision: 'approve' | 'decline';
  readonly shown: string[];
}

interface ClientCase {
  readonly label: string;
  /** Short, SQL-safe: tags this client's statements. */
  readonly tag: string;
  /** The clientInfo name the journal records. */
  readonly journaledAs: string;
  /** How it is asked in the client: elicitation/create (2025-11-25), input_required (2026-07-28), or not at all. */
  readonly prompt: 'elicitation' | 'input_required' | null;
  /** The era the answers prove: a 2026-07-28 result carries the server's info in _meta. */
  readonly era: 'legacy' | 'modern';
  open(endpoint: Endpoint, answers: Answers): Promise<Session>;
}

const textOf = (result: Record<string, unknown>): string =>
  ((result['content'] ?? []) as Array<{ type: string; text?: string }>).map((c) => c.text ?? '').join('\n');

const outcome = (result: Record<string, unknown>): Outcome => ({ isError: result['isError'] === true, text: textOf(result), result });

const serveArgs = (dir: string): string[] => [requireBuiltCli(), 'serve', '--config', dir];
const childEnv = (dbUrl: string): Record<string, string> => ({ ...(process.env as Record<string, string>), DB_URL: dbUrl });
const bearer = (token: string) => ({ requestInit: { headers: { authorization: `Bearer ${token}` } } });

const FORM_ANSWER = (answers: Answers) => ({ action: 'accept' as const, content: { decision: answers.decision } });

function sdkSession(
  listTools: () => Promise<{ tools: Array<{ name: string }> }>,
  callTool: (sql: string) => Promise<unknown>,
  close: () => Promise<void>,
  sessionId?: () => string | undefined,
): Session {
  return {
    tools: async () => (await listTools()).tools.map((t) => t.name),
    call: async (sql) => outcome((await callTool(sql)) as Record<string, unknown>),
    close,
    ...(sessionId ? { sessionId } : {}),
  };
}

const v1: ClientCase = {
  label: 'SDK v1 Client (2025-11-25)',
  tag: 'v1',
  journaledAs: 'sdk-v1',
  prompt: 'elicitation',
  era: 'legacy',
  async open(endpoint, answers) {
    const client = new V1Client({ name: 'sdk-v1', version: '1.32.2' }, { capabilities: { elicitation: { form: {} } } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      answers.shown.push(request.params.message);
      return FORM_ANSWER(answers);
    });
    let sessionId: (() => string | undefined) | undefined;
    if (endpoint.kind === 'stdio') {
      const cmd = { command: process.execPath, args: serveArgs(endpoint.dir), env: childEnv(endpoint.dbUrl), cwd: REPO_ROOT, stderr: 'ignore' } as const;
      await client.connect(new V1StdioClientTransport(cmd));
    } else {
      const http = new V1HttpClientTransport(new URL(endpoint.url), bearer(endpoint.token));
      await client.connect(http);
      expect(http.sessionId).toBeTruthy();
      sessionId = () => http.sessionId;
    }
    expect(client.getServerVersion()?.name).toBe('drawbridge');
    return sdkSession(
      () => client.listTools(),
      (sql) => client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }),
      () => client.close(),
      sessionId,
    );
  },
};

const v2: ClientCase = {
  label: 'SDK v2 Client pinned to 2026-07-28',
  tag: 'v2',
  journaledAs: 'sdk-v2',
  prompt: 'input_required',
  era: 'modern',
  async open(endpoint, answers) {
    const client = new V2Client(
      { name: 'sdk-v2', version: '2.4.0' },
      { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: MODERN } } },
    );
    // The SDK's driver answers each input_required round with this handler and re-issues the call.
    client.setRequestHandler('elicitation/create', async (request) => {
      answers.shown.push(request.params.message);
      return FORM_ANSWER(answers);
    });
    await client.connect(
      endpoint.kind === 'stdio'
        ? new V2StdioClientTransport({
            command: process.execPath,
            args: serveArgs(endpoint.dir),
            env: childEnv(endpoint.dbUrl),
            cwd: REPO_ROOT,
            stderr: 'ignore',
          })
        : new V2HttpClientTransport(new URL(endpoint.url), bearer(endpoint.token)),
    );
    expect(client.getProtocolEra()).toBe('modern');
    expect(client.getDiscoverResult()?.supportedVersions).toEqual(expect.arrayContaining([MODERN]));
    return sdkSession(
      () => client.listTools(),
      (sql) => client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }),
      () => client.close(),
    );
  },
};

/** A home of its own for the Inspector's catalog and stored auth, so the runs never touch the user's. */
let inspectorHome: string;

/** One Inspector CLI process (`inspector --cli`, as `npx @modelcontextprotocol/inspector --cli` runs it), JSON on stdout. */
function inspector(endpoint: Endpoint, era: 'legacy' | 'modern', method: readonly string[]): Promise<{ status: number | null; json: Record<string, unknown> }> {
  const target =
    endpoint.kind === 'stdio'
      ? ['-e', `DB_URL=${endpoint.dbUrl}`, ...method, '--', process.execPath, ...serveArgs(endpoint.dir)]
      : ['--transport', 'http', '--server-url', endpoint.url, ...method, '--header', `Authorization: Bearer ${endpoint.token}`];
  const args = [INSPECTOR, '--cli', '--format', 'json', '--protocol-era', era, '--connect-timeout', '30000', ...target];
  return new Promise((resolve, reject) => {
    // Asynchronous: over HTTP the gateway runs in this process and must keep serving meanwhile.
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, HOME: inspectorHome, MCP_INSPECTOR_SECRET_STORE: 'memory' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      try {
        resolve({ status, json: JSON.parse(stdout) as Record<string, unknown> });
      } catch {
        reject(new Error(`the Inspector CLI (exit ${status}) wrote no JSON result:\n${stdout}\n${stderr}`));
      }
    });
  });
}

function inspectorCase(era: 'legacy' | 'modern'): ClientCase {
  return {
    label: `Inspector CLI --protocol-era ${era}`,
    tag: `inspector_${era}`,
    journaledAs: 'inspector-cli',
    prompt: null,
    era,
    async open(endpoint) {
      return {
        async tools() {
          const r = await inspector(endpoint, era, ['--method', 'tools/list']);
          expect(r.status).toBe(0);
          return ((r.json['result'] as { tools: Array<{ name: string }> }).tools ?? []).map((t) => t.name);
        },
        async call(sql) {
          const args = JSON.stringify({ connection: 'db', sql });
          const r = await inspector(endpoint, era, ['--method', 'tools/call', '--tool-name', 'run_sql', '--tool-args-json', args]);
          const result = r.json['result'] as Record<string, unknown>;
          // The CLI's exit code says whether the tool answered isError (5) or not (0).
          expect(r.status).toBe(result['isError'] === true ? 5 : 0);
          return outcome(result);
        },
        close: async () => undefined,
      };
    },
  };
}

/** The approval events an in-client answer journals, per way of asking (input_required also journals the single use). */
const JOURNALED = {
  elicitation: {
    approve: [
      ['requested', 'elicitation'],
      ['approved', 'elicitation'],
    ],
    decline: [
      ['requested', 'elicitation'],
      ['declined', 'elicitation'],
    ],
  },
  input_required: {
    approve: [
      ['requested', 'input_required'],
      ['approved', 'input_required'],
      ['consumed', 'input_required'],
    ],
    decline: [
      ['requested', 'input_required'],
      ['declined', 'input_required'],
    ],
  },
} as const;

/**
 * A row's limit: an Inspector CLI row starts up to two CLI processes (and, over stdio, a `drawbridge serve` each),
 * about 2 s each alone, several at once beside the rest of the suite on two cores (14 s seen for one row at load 8).
 */
const ROW_TIMEOUT_MS = 120_000;

const CLIENTS: readonly ClientCase[] = [v1, v2, inspectorCase('legacy'), inspectorCase('modern')];

/** One transport's gateway, shared by every client of the table. */
interface Gateway {
  endpoint(): Promise<Endpoint>;
  journal(): CallEntry[];
  rows(sql: string, params: unknown[]): Promise<Array<Record<string, unknown>>>;
  /** An approver (a dba) approves the pending request for `sql` out of band; its id. */
  approvePending(sql: string): Promise<string>;
  /** How that vote is journaled. */
  readonly via: 'api' | 'cli';
}

function stdioGateway(): Gateway & { open(): Promise<void>; close(): Promise<void> } {
  let db: FreshDatabase;
  let dir: string;
  return {
    async open() {
      requireBuiltCli();
      db = await freshDatabase('eras_clients_stdio');
      dir = writeConfig({ policy: POLICY, approval: APPROVAL, identity: { subject: 'sam@example.com', groups: REQUESTER_GROUPS } });
    },
    async close() {
      await db?.drop();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    endpoint: async () => ({ kind: 'stdio', dir, dbUrl: db.gatewayUrl }),
    journal: () => [...readCalls(join(dir, 'journal.db'))],
    rows: (sql, params) => db.query(sql, params),
    via: 'cli',
    async approvePending(sql) {
      // What `drawbridge approvals approve` does on the gateway host: a vote in the shared store, journaled with it.
      const state = await openState(loadConfig(dir), { purpose: 'command', environment: { env: { DB_URL: db.gatewayUrl }, baseDir: dir } });
      try {
        const pending = (await state.approvals.list(new Date(), { status: 'pending' })).find((a) => a.subject.input['sql'] === sql);
        if (!pending) throw new Error(`no pending request for ${sql}`);
        const dora = { subject: 'dora@example.com', groups: ['dba'], kind: 'local' } as const;
        const decided = await decideApproval(state, dora, { approvalId: pending.id, decision: 'approve', via: 'cli', reason: 'ticket OPS-14' }, new Date());
        if (!decided.ok) throw decided.error;
        return pending.id;
      } finally {
        await state.close();
      }
    },
  };
}

function httpGateway(): Gateway & { open(): Promise<void>; close(): Promise<void> } {
  let h: HttpHarness<'sam' | 'dora'>;
  return {
    async open() {
      h = await startHttpGateway<'sam' | 'dora'>({
        prefix: 'eras_clients_http',
        accounts: { sam: { groups: REQUESTER_GROUPS }, dora: { groups: ['dba'] } },
        policy: POLICY,
        approval: APPROVAL,
      });
    },
    async close() {
      await h?.close();
    },
    endpoint: async () => ({ kind: 'http', url: h.resource, token: await h.token('sam') }),
    journal: () => [...readCalls(join(h.dir, 'journal.db'))],
    rows: (sql, params) => h.db.query(sql, params),
    via: 'api',
    async approvePending(sql) {
      const id = await waitForPending(h.gateway, sql);
      if (id === null) throw new Error(`no pending request for ${sql}`);
      const approved = await fetch(`${h.origin}/api/v1/approvals/${id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await h.token('dora')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'ticket OPS-14' }),
      });
      expect(approved.status, await approved.text()).toBe(200);
      return id;
    },
  };
}

const TRANSPORTS = [
  { transport: 'stdio', gateway: stdioGateway() },
  { transport: 'http', gateway: httpGateway() },
] as const;

beforeAll(() => {
  inspectorHome = mkdtempSync(join(tmpdir(), 'drawbridge-inspector-home-'));
});

afterAll(() => {
  if (inspectorHome) rmSync(inspectorHome, { recursive: true, force: true });
});

describe.each(TRANSPORTS)('over $transport', ({ transport, gateway }) => {
  beforeAll(() => gateway.open());
  afterAll(() => gateway.close());

  describe.each(CLIENTS)('$label', (client) => {
    const tag = `${transport}_${client.tag}`;
    const answers: Answers = { decision: 'approve', shown: [] };
    let session: Session;

    beforeAll(async () => {
      session = await client.open(await gateway.endpoint(), answers);
    });
    afterAll(async () => {
      await session?.close();
    });

    // An SDK client keeps one connection (and one answer for its prompts), so its rows run in order; the
    // Inspector CLI starts a process per operation, and its rows touch only their own SQL, so they run side by side.
    const row = client.prompt === null ? it.concurrent : it;

    /** The journal entry of the last call whose SQL is `sql`. */
    const entryOf = (sql: string): CallEntry | undefined =>
      gateway
        .journal()
        .filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql)
        .at(-1);
    const approvalEvents = (entry: CallEntry | undefined) => (entry?.events ?? []).filter((e) => e.type === 'approval').map((e) => e.data);

    row(
      'lists the tools',
      async () => {
        expect(await session.tools()).toEqual(['run_sql']);
      },
      ROW_TIMEOUT_MS,
    );

    row(
      'reads with the PII column masked, journaled under its client name',
      async () => {
        const read = await session.call(maskedRead(tag));
        expect(read.isError, read.text).toBe(false);
        expect(read.text).toContain('[masked:customers.email]');
        for (const email of DEMO_PII.emails) expect(JSON.stringify(read.result)).not.toContain(email);
        // The era the client really spoke: a 2026-07-28 result names the server in _meta, a 2025-11-25 one does not.
        const meta = read.result['_meta'] as Record<string, unknown> | undefined;
        expect(meta?.['io.modelcontextprotocol/serverInfo'] !== undefined).toBe(client.era === 'modern');
        const entry = entryOf(maskedRead(tag));
        expect(entry?.call['client']).toMatchObject({ name: client.journaledAs });
        expect(entry?.outcome).toMatchObject({ status: 'ok' });
        // The session it is journaled under: per stdio connection; the Mcp-Session-Id of a 2025-11-25 HTTP session; none on 2026-07-28 HTTP.
        const journaled = entry?.call['session'];
        if (transport === 'stdio') expect(journaled).toMatch(/^stdio-[0-9a-f-]{36}$/);
        else if (client.era === 'modern') expect(journaled).toBeUndefined();
        else expect(journaled).toEqual(session.sessionId?.() ?? expect.stringMatching(/^[\w-]{16,}$/));
      },
      ROW_TIMEOUT_MS,
    );

    row(
      'is refused a denied call with a coded answer, journaled as a refusal',
      async () => {
        const refused = await session.call(denied(tag));
        expect(refused.isError).toBe(true);
        expect(refused.text).toMatch(/^policy\.denied: Denied \(rule no-ddl\): Schema changes go through migrations\./);
        const entry = entryOf(denied(tag));
        expect(entry?.call['decision']).toMatchObject({ effect: 'deny', rule: 'no-ddl' });
        expect(entry?.outcome).toMatchObject({ status: 'refused', errorCode: 'policy.denied' });
      },
      ROW_TIMEOUT_MS,
    );

    const notes = async (body: string) => (await gateway.rows('SELECT id FROM audit_notes WHERE body = $1', [body])).length;

    if (client.prompt !== null) {
      const via = client.prompt;
      it.each(['approve', 'decline'] as const)(`in-client approval (${via}): %s`, async (decision) => {
        const body = `${tag}_${decision}`;
        answers.decision = decision;
        answers.shown.length = 0;
        const result = await session.call(note(body));
        expect(answers.shown).toHaveLength(1);
        expect(answers.shown[0]).toContain('Approve this run_sql request on db?');
        expect(answers.shown[0]).toContain(note(body));
        const entries = gateway.journal().filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === note(body));
        expect(entries.at(-1)?.call['decision']).toMatchObject({ effect: 'approve', rule: 'self-approved-notes' });
        const events = entries.flatMap((e) => approvalEvents(e).map((x) => [x['event'], x['via']]));
        if (decision === 'approve') {
          expect(result.isError, result.text).toBe(false);
          expect(await notes(body)).toBe(1);
          expect(entries.at(-1)?.outcome).toMatchObject({ status: 'ok' });
        } else {
          expect(result.isError).toBe(true);
          expect(result.text).toMatch(new RegExp(`^approval\\.declined: The approval was declined in ${client.journaledAs}`));
          expect(await notes(body)).toBe(0);
          expect(entries.at(-1)?.outcome).toMatchObject({ status: 'refused', errorCode: 'approval.declined' });
        }
        expect(events).toEqual(JOURNALED[via][decision]);
      });
    } else {
      row(
        'in-client approval: it cannot show a prompt, so the clear refusal (approval.unavailable), nothing run',
        async () => {
          const body = `${tag}_prompt`;
          const result = await session.call(note(body));
          expect(result.isError).toBe(true);
          expect(result.text).toMatch(
            /^approval\.unavailable: Rule self-approved-notes needs your approval in the client, but inspector-cli cannot show an approval prompt/,
          );
          expect(await notes(body)).toBe(0);
          expect(entryOf(note(body))?.outcome).toMatchObject({ status: 'refused', errorCode: 'approval.unavailable' });
        },
        ROW_TIMEOUT_MS,
      );
    }

    row(
      `out-of-band approval (${gateway.via}): pending, an approver votes, the same call re-issued runs once`,
      async () => {
        const id = CLIENTS.indexOf(client) + 1;
        const sql = update(tag, id);
        const pending = await session.call(sql);
        expect(pending.isError).toBe(true);
        expect(pending.text).toMatch(/^approval\.pending: /);
        const approvalId = await gateway.approvePending(sql);
        expect(pending.text).toContain(approvalId);
        const ran = await session.call(sql);
        expect(ran.isError, ran.text).toBe(false);
        expect(await gateway.rows('SELECT city FROM customers WHERE id = $1', [id])).toEqual([{ city: tag }]);
        const calls = gateway.journal().filter((e) => (e.call['input'] as { sql?: string } | null)?.sql === sql);
        expect(calls.map((e) => e.outcome?.['status'])).toEqual(['refused', 'ok']);
        expect(approvalEvents(calls[0]).map((e) => [e['event'], e['via']])).toEqual([
          ['requested', 'cli'],
          ['vote', gateway.via],
        ]);
        expect(approvalEvents(calls[1]).map((e) => [e['event'], e['approvalId']])).toEqual([['consumed', approvalId]]);
      },
      ROW_TIMEOUT_MS,
    );
  });
});
