// An in-process Drawbridge MCP server (createMcpServer) wired to the SDK's
// Client over InMemoryTransport, with a controllable gateway clock, a
// scripted elicitation handler, the journal as records, and the approver CLI
// (run in process too, opening the store and journal as its own process
// would). For end-to-end tests of just-in-time approval.

import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { ElicitRequestSchema, type CallToolResult, type ElicitRequest, type ElicitResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import type { StoredApproval, StoredGrant } from '../../src/state/contract.js';
import { openSqliteApprovals as openApprovalStore } from '../../src/state/sqlite/approvals.js';
import { loadParser } from '../../src/backends/postgres/ast.js';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import { localIdentityProvider } from '../../src/identity/identity.js';
import { openState } from '../../src/state/open.js';
import { verifyJournal } from '../../src/journal/verify.js';
import { createGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { createMcpServer } from '../../src/server.js';
import { runInProcess, type CliRun } from './cli.js';
import { writeConfig, type FreshDatabase } from './fixtures.js';
import type { VirtualTime } from './virtualTime.js';

export const CLIENT_NAME = 'scripted-client';
export const REQUESTER = { subject: 'tester@example.com', groups: ['analysts'] };

/** Approver tokens, by who holds them. tester@example.com is the requester, and also a dba. */
export const TOKENS = {
  dba1: 'tok-dba1-0f3a9c5e21b84d7a',
  dba2: 'tok-dba2-6b2e8d14c09f37a5',
  self: 'tok-self-93c1a7e4f5d20b68',
} as const;
export type Approver = keyof typeof TOKENS;

const TOKEN_ENV = { DBA1_TOKEN: TOKENS.dba1, DBA2_TOKEN: TOKENS.dba2, SELF_TOKEN: TOKENS.self };

/** `approval:` of kind: gateway, with the three approvers above. wait 'default': not set, so the gateway's default applies. */
export function approvalSettings(options: { wait?: string; elicitationTimeout?: string } = {}): string {
  const wait = options.wait === 'default' ? '' : `wait: ${options.wait ?? '0ms'}, `;
  return `{ ${wait}elicitation_timeout: ${options.elicitationTimeout ?? '2s'}, store: approvals.db, approvers: [
    { subject: dba1@example.com, groups: [dba], token: { env: DBA1_TOKEN } },
    { subject: dba2@example.com, groups: [dba], token: { env: DBA2_TOKEN } },
    { subject: tester@example.com, groups: [dba], token: { env: SELF_TOKEN } } ] }`;
}

/** A policy whose writes need approval under rule `writes-need-approval`, configured by `approve` (indented YAML lines). */
export function approvalPolicy(approve: string): string {
  return `kind: policy
rules:
  - name: no-ddl
    match: { tool: run_sql, operation: [ddl, admin, session, prepared, copy, do, call, lock, listen, notify, maintenance, transaction] }
    effect: deny
    message: Schema changes go through migrations.
  - name: writes-need-approval
    match: { tool: run_sql, access: write }
    effect: approve
    message: Writes to the shop need a human's yes.
${approve
  .trim()
  .split('\n')
  .map((l) => `    ${l.trim()}`)
  .join('\n')}
  - name: read
    match: { tool: run_sql, access: read }
    effect: allow
`;
}

/**
 * One scripted answer: an elicitation result; 'never' (the handler never answers); or a
 * result given only after `delayMs`, even if the server withdrew the prompt meanwhile
 * (a client whose form stays open).
 */
export type ScriptedAnswer = ElicitResult | 'never' | { readonly delayMs: number; readonly result: ElicitResult };

export interface JournalRow {
  readonly seq: number;
  readonly time: string;
  readonly type: string;
  readonly callId: string;
  readonly data: Record<string, any>;
}

export interface CallOutcome {
  readonly result: CallToolResult;
  readonly text: string;
  /** The refusal code (`approval.pending` …), or null for a successful call. */
  readonly code: string | null;
  readonly progress: Progress[];
  /** The journal records of this call: its intent ('call'), outcome, and the approval/grant events journaled under its id. */
  readonly call: JournalRow;
  readonly outcome: JournalRow | undefined;
  readonly events: JournalRow[];
}

export interface Session {
  readonly dir: string;
  readonly config: GatewayConfig;
  readonly gateway: Gateway;
  readonly client: Client;
  /** Every elicitation request the client received, in order. */
  readonly elicitations: Array<ElicitRequest['params']>;
  /** Answers still to give, in order; the handler takes the first one. */
  readonly answers: ScriptedAnswer[];
  /** The gateway clock is real time plus this skew (ms); tests move it. */
  skewMs: number;
  now(): Date;
  /** Sets the gateway clock to `at` (from now on it runs from there). */
  setClock(at: Date | number): void;
  /** run_sql on connection db through the MCP client. */
  sql(sql: string, options?: CallOptions): Promise<CallOutcome>;
  /** Starts run_sql and returns the pending promise (for approving while it waits). */
  startSql(sql: string, options?: CallOptions): Promise<CallOutcome>;
  /** `drawbridge ARGS --config DIR` in a second process, as `who` (DRAWBRIDGE_APPROVER_TOKEN), or with no token. */
  cli(args: readonly string[], who?: Approver | null): Promise<CliRun>;
  journal(): JournalRow[];
  /** The approvals store as another process sees it (a second handle), at real time. */
  approvals(): StoredApproval[];
  grants(): StoredGrant[];
  /** Polls the store until an approval request matching `predicate` exists. */
  waitForApproval(predicate: (a: StoredApproval) => boolean, timeoutMs?: number): Promise<StoredApproval>;
  close(): Promise<void>;
}

export interface CallOptions {
  /** Ask for progress notifications (onprogress, resetTimeoutOnProgress). */
  readonly progress?: boolean;
  /** The client's request timeout (default 60 s). */
  readonly timeoutMs?: number;
}

export interface SessionOptions {
  /** Indented YAML lines of the approve rule (approvers, grant, preview, max_affected_rows). */
  readonly approve: string;
  /** approval.wait; 'default' leaves it unset (the gateway's default). Default 0ms. */
  readonly wait?: string;
  /** Virtual time for the approve stage's wait (see virtualTime.ts); real time otherwise. */
  readonly time?: VirtualTime;
  readonly elicitationTimeout?: string;
  /** Declare the elicitation capability (default true). */
  readonly elicitation?: boolean;
  /** YAML flow mapping of the connection limits. */
  readonly limits?: string;
  /** How often a waiting approval sends progress (the gateway's default otherwise). */
  readonly progressEveryMs?: number;
}

export async function openSession(db: FreshDatabase, options: SessionOptions): Promise<Session> {
  await loadParser();
  const dir = writeConfig({
    policy: approvalPolicy(options.approve),
    approval: approvalSettings({
      ...(options.wait ? { wait: options.wait } : {}),
      ...(options.elicitationTimeout ? { elicitationTimeout: options.elicitationTimeout } : {}),
    }),
    identity: { subject: REQUESTER.subject, groups: [...REQUESTER.groups] },
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const config = loadConfig(dir);
  const state = await openState(config);
  const session: Session = {
    dir,
    config,
    skewMs: 0,
    now: () => new Date(Date.now() + session.skewMs),
    setClock(at) {
      session.skewMs = (typeof at === 'number' ? at : at.getTime()) - Date.now();
    },
  } as Session;
  const gateway = createGateway({
    config,
    state,
    maskKey: new TextEncoder().encode('e2e-approval-mask-key'),
    environment: { env: { DB_URL: db.gatewayUrl }, baseDir: config.dir },
    clock: () => session.now(),
    approvals: {
      ...(options.progressEveryMs ? { progressEveryMs: options.progressEveryMs } : {}),
      ...(options.time ? { sleep: options.time.sleep, monotonic: options.time.now } : {}),
    },
  });
  const server = createMcpServer(gateway, localIdentityProvider(REQUESTER));
  const elicitation = options.elicitation ?? true;
  const client = new Client({ name: CLIENT_NAME, version: '1.2.3' }, { capabilities: elicitation ? { elicitation: {} } : {} });
  const elicitations: Array<ElicitRequest['params']> = [];
  const answers: ScriptedAnswer[] = [];
  if (elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
      elicitations.push(request.params);
      const answer = answers.shift();
      if (answer === undefined) throw new Error('the test scripted no answer for this elicitation');
      if (answer !== 'never' && typeof answer['delayMs'] === 'number') {
        const delayed = answer as { delayMs: number; result: ElicitResult };
        await new Promise((r) => setTimeout(r, delayed.delayMs));
        return delayed.result;
      }
      if (answer !== 'never') return answer as ElicitResult;
      // Never answers; the server gives up (and cancels the request) after elicitation_timeout.
      return new Promise<ElicitResult>((_resolve, reject) => {
        extra.signal.addEventListener('abort', () => reject(new Error('elicitation cancelled by the server')), { once: true });
      });
    });
  }
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await server.connect(serverTransport);
  await client.connect(clientTransport);
  // As real clients do: from now on the SDK checks every structuredContent against the tool's outputSchema.
  await client.listTools();

  const readJournal = (): JournalRow[] => {
    const handle = new Database(config.journal.path, { readonly: true });
    try {
      const rows = handle.prepare('SELECT seq, time, type, call_id, data FROM records ORDER BY seq').all() as Array<{
        seq: number;
        time: string;
        type: string;
        call_id: string;
        data: string;
      }>;
      return rows.map((r) => ({ seq: r.seq, time: r.time, type: r.type, callId: r.call_id, data: JSON.parse(r.data) as Record<string, any> }));
    } finally {
      handle.close();
    }
  };

  const startSql = async (sql: string, callOptions: CallOptions = {}): Promise<CallOutcome> => {
    const before = readJournal().length;
    const progress: Progress[] = [];
    const result = (await client.callTool({ name: 'run_sql', arguments: { connection: 'db', sql } }, undefined, {
      ...(callOptions.progress ? { onprogress: (p: Progress) => progress.push(p), resetTimeoutOnProgress: true } : {}),
      timeout: callOptions.timeoutMs ?? 60_000,
    })) as CallToolResult;
    const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
    const code = result.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(text)?.[1] ?? 'unparsed') : null;
    const records = readJournal();
    // This call's intent record: the last one written since it started (calls in a test are sequential).
    const calls = records.slice(before).filter((r) => r.type === 'call');
    const call = calls.at(-1);
    if (!call) throw new Error(`no call record was journaled for ${sql}`);
    return {
      result,
      text,
      code,
      progress,
      call,
      outcome: records.find((r) => r.type === 'outcome' && r.callId === call.callId),
      events: records.filter((r) => (r.type === 'approval' || r.type === 'grant') && r.callId === call.callId),
    };
  };

  const withStore = <T>(body: (store: ReturnType<typeof openApprovalStore>) => T): T => {
    const store = openApprovalStore(config.approval.store);
    try {
      return body(store);
    } finally {
      store.close();
    }
  };

  Object.assign(session, {
    gateway,
    client,
    elicitations,
    answers,
    sql: startSql,
    startSql,
    cli: (args: readonly string[], who: Approver | null = null) =>
      runInProcess([...args, '--config', dir], { env: { ...TOKEN_ENV, DRAWBRIDGE_APPROVER_TOKEN: who === null ? undefined : TOKENS[who] } }),
    journal: readJournal,
    approvals: () => withStore((s) => s.list(new Date())),
    grants: () => withStore((s) => s.listGrants(new Date())),
    async waitForApproval(predicate: (a: StoredApproval) => boolean, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = withStore((s) => s.list(new Date())).find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error('no matching approval request appeared in the store');
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      await client.close().catch(() => undefined);
      await server.close().catch(() => undefined);
      await gateway.close();
      // Several writers (the gateway, each approver command) shared the journal: its chain must be intact.
      const verified = verifyJournal(config.journal.path);
      rmSync(dir, { recursive: true, force: true });
      if (!verified.ok) throw new Error(`journal verify failed: #${verified.firstBad?.seq} ${verified.firstBad?.reason}`);
    },
  });
  return session;
}

/** The approval id an `approval.pending` refusal names. */
export function pendingId(outcome: CallOutcome): string {
  const id = /Pending approval (ap_[a-z0-9]+)/.exec(outcome.text)?.[1];
  if (!id) throw new Error(`not a pending refusal: ${outcome.text}`);
  return id;
}
