// Where Drawbridge's time goes, in process (no stdio): the pipeline's stages
// replayed one by one with a timer around each (parse, catalog resolve,
// journal intent, execute, mask, render + hash, journal outcome), plus the
// MCP layer's own work on the answer (server-side result validation and
// serialisation, client-side buffering, JSON/zod parsing and outputSchema
// validation). Also: the whole in-process callTool with the journal synced
// FULL vs NORMAL vs in memory, which isolates the cost of fsync.
//
// The replay mirrors src/pipeline/callTool.ts; it is a measuring aid, not a
// second implementation: the end-to-end numbers come from latency.ts.

import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import { loadParser } from '../src/backends/postgres/ast.js';
import { loadConfig } from '../src/config/load.js';
import type { GatewayConfig } from '../src/config/schema.js';
import { makeIdentity, type Identity } from '../src/identity/identity.js';
import { openSqliteState } from '../src/state/sqlite/index.js';
import { applicableRules, createMasker } from '../src/masking/masker.js';
import { renderAnswer } from '../src/pipeline/answer.js';
import { callTool, inputSchemaFor } from '../src/pipeline/callTool.js';
import { createGateway, type Gateway } from '../src/pipeline/gateway.js';
import { evaluate } from '../src/policy/evaluate.js';
import { describeTools } from '../src/server.js';
import { sqlFor, type QueryShape } from './latency.js';
import { median } from './support.js';

export const STAGES = ['parse', 'resolve', 'journal intent', 'execute', 'mask', 'render + hash', 'journal outcome', 'MCP server', 'MCP client'] as const;
export type Stage = (typeof STAGES)[number];

export interface StageProfile {
  readonly shape: QueryShape;
  readonly rows: number;
  readonly iterations: number;
  /** Median ms per stage. */
  readonly stages: Readonly<Record<Stage, number>>;
  readonly total: number;
  /** Size of the JSON-RPC answer message, bytes. */
  readonly messageBytes: number;
}

export interface JournalModeProfile {
  readonly journal: string;
  readonly p50: number;
}

interface Env {
  readonly config: GatewayConfig;
  readonly environment: Record<string, string>;
  readonly identity: Identity;
}

function gatewayWith(env: Env, journalPath: string, sync: 'full' | 'normal'): Gateway {
  return createGateway({
    config: env.config,
    state: openSqliteState({ journal: journalPath, journalSync: sync, openJournal: 'now', approvals: env.config.approval.store }),
    maskKey: new TextEncoder().encode(env.environment['HASH_KEY'] ?? 'k'),
    environment: { env: env.environment, baseDir: env.config.dir },
  });
}

async function prepare(configDir: string, environment: Record<string, string>): Promise<Env> {
  await loadParser();
  const config = loadConfig(configDir);
  const declared = config.identity?.mode === 'local' ? config.identity : { subject: 'bench@example.com', groups: ['analysts'] };
  const identity = makeIdentity({ kind: 'local', subject: declared.subject, groups: declared.groups, issuer: 'local' });
  return { config, environment, identity };
}

/** One call, stage by stage; returns ms per stage and the answer message size. */
async function stagedCall(
  gateway: Gateway,
  env: Env,
  validate: (v: unknown) => { valid: boolean },
  sql: string,
): Promise<{ times: Record<Stage, number>; bytes: number }> {
  const times = {} as Record<Stage, number>;
  let t = performance.now();
  const lap = (stage: Stage) => {
    const now = performance.now();
    times[stage] = now - t;
    t = now;
  };
  const callId = randomUUID();
  const tool = env.config.tools.get('run_sql');
  if (!tool) throw new Error('run_sql is not configured');
  const input = inputSchemaFor(tool).parse({ connection: 'db', sql }) as Record<string, unknown>;
  const masker = createMasker(applicableRules(env.config.masking, 'run_sql', 'db', env.identity), gateway.maskKey);
  const parsed = tool.backend.parse(input, { tool: 'run_sql', connection: 'db' });
  lap('parse');
  const request = await gateway.connection('db').resolve(parsed);
  const decision = evaluate(request, env.identity, env.config.rules, new Date());
  if (decision.effect !== 'allow') throw new Error(`profile call not allowed: ${decision.message}`);
  lap('resolve');
  await gateway.journal.append('call', callId, {
    principal: { subject: env.identity.subject, groups: [...env.identity.groups], kind: env.identity.kind, issuer: env.identity.issuer },
    client: { name: 'bench' },
    tool: 'run_sql',
    connection: 'db',
    input: { connection: 'db', sql: masker.maskText(sql, null).text },
    request: {
      ...tool.backend.explain.facts(request),
      operation: request.operation,
      access: request.access,
      resources: [...request.resources],
      summary: request.summary,
      reasons: [...request.reasons],
    },
    decision: { effect: decision.effect, rule: decision.rule?.name ?? null, message: decision.message },
  });
  lap('journal intent');
  const result = await gateway.connection('db').execute(request, {});
  lap('execute');
  const { result: safe, masked } = masker.maskResult(result);
  lap('mask');
  const { text, structured } = renderAnswer({ callId, request, decision, result: safe, masked, durationMs: 1 });
  const answerHash = createHash('sha256').update(text).update(JSON.stringify(structured)).digest('hex');
  lap('render + hash');
  await gateway.journal.append('outcome', callId, {
    status: 'ok',
    rows: safe.rows.length,
    affectedRows: safe.affectedRows,
    bytes: safe.bytes,
    durationMs: 1,
    truncated: safe.truncated !== null,
    masked,
    answerHash,
  });
  lap('journal outcome');
  // The SDK server validates the handler's result (zod) and serialises the JSON-RPC line.
  const callResult = { content: [{ type: 'text', text }], structuredContent: structured };
  CallToolResultSchema.parse(callResult);
  const line = serializeMessage({ jsonrpc: '2.0', id: 1, result: callResult });
  lap('MCP server');
  // The SDK client: pipe chunks (64 KiB) into its ReadBuffer, parse the line
  // (JSON + JSON-RPC schema), the result schema, then the tool's outputSchema.
  const buffer = new ReadBuffer();
  const bytes = Buffer.from(line);
  let message = null;
  for (let at = 0; at < bytes.length; at += 65_536) {
    buffer.append(bytes.subarray(at, at + 65_536));
    message = buffer.readMessage() ?? message;
  }
  const parsedResult = CallToolResultSchema.parse((message as { result?: unknown } | null)?.result);
  if (!validate(parsedResult.structuredContent).valid) throw new Error('structured content does not validate');
  lap('MCP client');
  return { times, bytes: bytes.length };
}

export async function profileStages(
  configDir: string,
  environment: Record<string, string>,
  cases: ReadonlyArray<{ shape: QueryShape; rows: number; iterations: number }>,
  journalDir: string,
): Promise<StageProfile[]> {
  const env = await prepare(configDir, environment);
  const gateway = gatewayWith(env, join(journalDir, 'profile.db'), env.config.journal.sync);
  const outputSchema = describeTools(env.config).find((t) => t.name === 'run_sql')?.outputSchema;
  if (!outputSchema) throw new Error('run_sql has no outputSchema');
  const validate = new AjvJsonSchemaValidator().getValidator(outputSchema as never);
  try {
    const out: StageProfile[] = [];
    for (const c of cases) {
      const sql = sqlFor(c.shape, c.rows);
      for (let i = 0; i < 5; i++) await stagedCall(gateway, env, validate, sql);
      const samples = new Map<Stage, number[]>(STAGES.map((s) => [s, []]));
      const totals: number[] = [];
      let bytes = 0;
      for (let i = 0; i < c.iterations; i++) {
        const r = await stagedCall(gateway, env, validate, sql);
        bytes = r.bytes;
        let sum = 0;
        for (const s of STAGES) {
          samples.get(s)?.push(r.times[s]);
          sum += r.times[s];
        }
        totals.push(sum);
      }
      const stages = Object.fromEntries(STAGES.map((s) => [s, median(samples.get(s) ?? [0])])) as Record<Stage, number>;
      out.push({ shape: c.shape, rows: c.rows, iterations: c.iterations, stages, total: median(totals), messageBytes: bytes });
    }
    return out;
  } finally {
    await gateway.close();
  }
}

/** The real callTool in process, round-robin over gateways whose journals differ only in durability. */
export async function profileJournalModes(
  configDir: string,
  environment: Record<string, string>,
  sql: string,
  calls: number,
  journalDir: string,
): Promise<JournalModeProfile[]> {
  const env = await prepare(configDir, environment);
  const variants: Array<{ journal: string; gateway: Gateway }> = [
    { journal: 'SQLite, synchronous FULL (default)', gateway: gatewayWith(env, join(journalDir, 'full.db'), 'full') },
    { journal: 'SQLite, synchronous NORMAL', gateway: gatewayWith(env, join(journalDir, 'normal.db'), 'normal') },
    { journal: 'SQLite in memory (no disk)', gateway: gatewayWith(env, ':memory:', 'normal') },
  ];
  try {
    const times = variants.map(() => [] as number[]);
    const warmup = 20;
    for (let round = 0; round < warmup + calls; round++) {
      for (let k = 0; k < variants.length; k++) {
        const index = (round + k) % variants.length;
        const v = variants[index] as { gateway: Gateway };
        const t0 = performance.now();
        const r = await callTool(v.gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity: env.identity, client: { name: 'bench' } });
        const elapsed = performance.now() - t0;
        if (!r.ok) throw new Error(`in-process call failed: ${r.text}`);
        if (round >= warmup) times[index]?.push(elapsed);
      }
    }
    return variants.map((v, i) => ({ journal: v.journal, p50: median(times[i] ?? [0]) }));
  } finally {
    for (const v of variants) await v.gateway.close();
  }
}
