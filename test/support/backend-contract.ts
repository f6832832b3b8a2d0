// The backend contract suite's harness: what a per-backend fixture declares
// (how to start its system, its connections with their credentials, a valid
// read, inputs its parser or the policy must refuse, inputs over an output
// cap), and a session that serves a gateway for one backend over the MCP SDK
// Client, the way an agent reaches it, keeping every answer, the tool list,
// the journal and the operator's log for the canary scan. The checks
// themselves are in test/backends/contract.test.ts; the fixtures in
// contract-fixtures.ts.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { vi } from 'vitest';
import type { Backend } from '../../src/backends/backend.js';
import type { ErrorCode } from '../../src/errors.js';
import { localIdentityProvider } from '../../src/identity/identity.js';
import { exportLines, readCalls, type CallEntry } from '../../src/journal/export.js';
import { openGateway } from '../../src/pipeline/gateway.js';
import { createLogger } from '../../src/observability/log.js';
import type { StructuredAnswer } from '../../src/pipeline/answer.js';
import { createMcpServer } from '../../src/server.js';

/** Tool arguments besides `connection`. */
export type ContractArgs = Readonly<Record<string, unknown>>;

/** A call on one of the fixture's connections. */
export interface ContractCall {
  readonly connection: string;
  readonly args: ContractArgs;
}

/**
 * An input that produces more output than a connection's cap: either the answer
 * is cut and says so (`truncated`), or the backend refuses the oversized answer
 * outright (a Kubernetes API response cannot be cut and still parsed).
 */
export type OversizeCase =
  | {
      readonly outcome: 'truncated';
      readonly name: string;
      readonly call: ContractCall;
      readonly truncated: { readonly reason: 'rows' | 'bytes'; readonly limit: number };
      /** What the cap counts in the answer (rows, or bytes of the data cells), to compare with the limit. */
      readonly measure: (answer: StructuredAnswer) => number;
    }
  | {
      readonly outcome: 'refused';
      readonly name: string;
      readonly call: ContractCall;
      readonly code: ErrorCode;
      /** What the refusal says about the cap. */
      readonly says: RegExp;
    };

/** The connection names every fixture declares (besides its capped ones). */
export type ContractConnection = 'main' | 'unreachable' | 'rejected';

/** A backend's system, started for the suite. */
export interface RunningSystem {
  /**
   * The body of each connection document (the lines after `kind` and `name`), by
   * name: `main` (works, with `credentials`), `unreachable` (the same credential,
   * a closed loopback port), `rejected` (a wrong credential the system refuses),
   * and the capped connections the oversize cases name.
   */
  readonly connections: Readonly<Record<ContractConnection, string>> & Readonly<Record<string, string>>;
  /** Environment of the gateway (secret references of the connections). */
  readonly env: Readonly<Record<string, string>>;
  /** Every secret value the connections use (passwords, tokens, key material): none may ever leave the gateway. */
  readonly canaries: readonly string[];
  stop(): Promise<void>;
}

/** How the contract suite exercises one backend. */
export interface ContractFixture {
  /** The backend's connection type (its key in BACKENDS). */
  readonly type: string;
  /** A read on `main` that succeeds. */
  readonly read: ContractArgs;
  /** An input the backend's parser refuses, with the code it refuses it with. */
  readonly refused: { readonly args: ContractArgs; readonly code: ErrorCode };
  /** An input the parser accepts whose operation the contract policy denies. */
  readonly denied: { readonly args: ContractArgs; readonly operation: string };
  /** A read of something that does not exist on `main`: the code it fails with, or null when the backend answers it (a non-zero exit code). */
  readonly missing: { readonly args: ContractArgs; readonly code: ErrorCode | null };
  /** Other calls that fail at the backend besides `unreachable` and `rejected` (a key that cannot be decrypted, …). */
  readonly failing: ReadonlyArray<{ readonly name: string; readonly call: ContractCall; readonly code: ErrorCode }>;
  readonly oversized: readonly OversizeCase[];
  /**
   * Defects of src/ this suite found, by check, each a sentence: the check is
   * run as expected to fail (it.fails) until the defect is fixed, then this entry goes.
   */
  readonly defects?: Readonly<Partial<Record<ContractCheck, string>>>;
  start(): Promise<RunningSystem>;
}

/** Checks a fixture may name in `defects`. */
export type ContractCheck = 'rejected';

/** A call as the agent saw it, and its journal entry. */
export interface ContractOutcome {
  readonly result: CallToolResult;
  readonly text: string;
  /** The refusal code an error answer starts with; null for a successful call. */
  readonly code: string | null;
  readonly structured: StructuredAnswer | undefined;
  readonly entry: CallEntry;
}

export interface ContractSession {
  readonly journalPath: string;
  /** One tools/call of the backend's tool with these arguments (connection included), as sent. */
  call(args: unknown): Promise<ContractOutcome>;
  /** Everything the suite's calls let out or recorded, by where: answers, tool list, journal (export and raw files), operator's log. */
  exposed(): ReadonlyArray<{ readonly where: string; readonly text: string }>;
  close(): Promise<void>;
}

export const CONTRACT_SUBJECT = 'contract@example.com';
export const DENY_RULE = 'contract-deny';
export const ALLOW_RULE = 'contract-allow';

/** A distinctive secret value: anything that contains it leaked it. */
export function canary(label: string): string {
  return `cnry-${label}-${Math.random().toString(36).slice(2, 10)}${Math.random().toString(36).slice(2, 10)}`;
}

function policyYaml(toolType: string, deniedOperation: string): string {
  return `kind: policy
rules:
  - name: ${DENY_RULE}
    match: { tool: ${toolType}, operation: [${deniedOperation}] }
    effect: deny
    message: The contract suite denies this operation.
  - name: ${ALLOW_RULE}
    match: { tool: ${toolType} }
    effect: allow
`;
}

function writeContractConfig(backend: Backend, fixture: ContractFixture, system: RunningSystem): string {
  const dir = mkdtempSync(join(tmpdir(), `drawbridge-contract-${backend.type}-`));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  const names = Object.keys(system.connections);
  const documents = names.map((name) => `kind: connection\nname: ${name}\n${system.connections[name]?.trim() ?? ''}\n`);
  documents.push(`kind: tool\nname: ${backend.toolType}\ntype: ${backend.toolType}\nconnections: [${names.join(', ')}]\n`);
  writeFileSync(join(dir, 'tools', 'contract.yaml'), documents.join('---\n'));
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway\nidentity: { mode: local, subject: ${CONTRACT_SUBJECT}, groups: [contract] }\n` +
      'journal: { path: journal.db }\napproval: { wait: 0ms, store: approvals.db }\n',
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), policyYaml(backend.toolType, fixture.denied.operation));
  return dir;
}

/**
 * A gateway serving only this backend's tool (named after its tool type) over
 * the fixture's connections, reached through the MCP SDK Client. No masking
 * rule is configured: a credential must stay inside the gateway by itself, not
 * because a detector happened to hide it.
 */
export async function openContractSession(backend: Backend, fixture: ContractFixture, system: RunningSystem): Promise<ContractSession> {
  const dir = writeContractConfig(backend, fixture, system);
  const journalPath = join(dir, 'journal.db');
  const operatorLog: string[] = [];
  // The operator's log (faults are written there in full) is kept for the scan, not shown.
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    operatorLog.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  });
  const opened = await (async () => {
    try {
      const gateway = await openGateway({ configDir: dir, env: system.env, backends: [backend] });
      // The operator's log as serve writes it (a JSON line per call, a fault's message in full): scanned below like the journal.
      gateway.onCallEnd(createLogger({ config: gateway.config.log, write: (line) => void process.stderr.write(line), isTTY: false }).call);
      const server = createMcpServer(gateway, localIdentityProvider({ subject: CONTRACT_SUBJECT, groups: ['contract'] }));
      const client = new Client({ name: 'contract-suite', version: '1.0.0' });
      const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
      await server.connect(serverTransport);
      await client.connect(clientTransport);
      // As real clients do: from now on the SDK checks every structuredContent against the tool's outputSchema.
      return { gateway, server, client, tools: await client.listTools() };
    } catch (error) {
      stderr.mockRestore();
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  })();
  const { gateway, server, client, tools } = opened;
  const answers: string[] = [];

  const call = async (args: unknown): Promise<ContractOutcome> => {
    const before = [...readCalls(journalPath)].length;
    // Sent as given, also when it is not an object: the pipeline must refuse it, not the client.
    const result = (await client.callTool({ name: backend.toolType, arguments: args as Record<string, unknown> })) as CallToolResult;
    answers.push(JSON.stringify(result));
    const text = result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
    const code = result.isError ? (/^([a-z_]+\.[a-z_]+): /.exec(text)?.[1] ?? 'unparsed') : null;
    const entries = [...readCalls(journalPath)];
    // Calls in the suite are sequential: this call's entry is the one journaled since it started.
    if (entries.length !== before + 1) throw new Error(`expected one journal entry for the call, found ${entries.length - before}`);
    const entry = entries[before] as CallEntry;
    const structured = result.structuredContent as StructuredAnswer | undefined;
    return { result, text, code, structured, entry };
  };

  const rawJournal = (): Array<{ where: string; text: string }> =>
    ['journal.db', 'journal.db-wal']
      .map((name) => join(dir, name))
      .filter((path) => existsSync(path))
      .map((path) => ({ where: `raw ${path.slice(dir.length + 1)}`, text: readFileSync(path).toString('latin1') }));

  return {
    journalPath,
    call,
    exposed: () => [
      ...answers.map((text, i) => ({ where: `answer ${i + 1}`, text })),
      { where: 'tools/list', text: JSON.stringify(tools) },
      { where: 'journal export', text: [...exportLines(journalPath, 'jsonl')].join('\n') },
      ...rawJournal(),
      { where: "operator's log", text: operatorLog.join('') },
    ],
    async close() {
      try {
        await client.close().catch(() => undefined);
        await server.close().catch(() => undefined);
        await gateway.close();
      } finally {
        stderr.mockRestore();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
