// One path for every tool call, the stages in order:
//
//   identity → parse → resolve → decide → approve? → journal(intent) → execute → mask → journal(outcome) → answer
//
// Invariants, each with tests:
// - Default deny: a missing identity, unknown tool or connection, input that does
//   not parse, an unclassified request, or no matching rule refuses the call.
// - The agent's request never reaches a backend before its intent is durable in
//   the journal; if the journal cannot be written the call is refused. (The
//   resolve stage's catalog lookups are the gateway's own metadata reads.)
// - Nothing leaves unmasked: rows, notices and error messages all pass the masker.
// - Every call, refused or not, is journaled with its decision and outcome.

import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ParsedRequest, TabularResult } from '../backends/backend.js';
import type { GatewayConfig, LoadedTool } from '../config/schema.js';
import { DrawbridgeError, toDrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import type { Journal } from '../journal/journal.js';
import { DETECTOR_NAMES } from '../masking/detectors.js';
import { applicableRules, createMasker, type MaskCount, type Masker } from '../masking/masker.js';
import { evaluate, type Decision } from '../policy/evaluate.js';
import { renderAnswer, type StructuredAnswer } from './answer.js';
import type { Gateway } from './gateway.js';

export interface CallInput {
  readonly tool: string;
  readonly args: unknown;
  readonly identity: Identity | null;
  readonly client?: { readonly name: string; readonly version?: string };
}

export type CallResult =
  | { readonly ok: true; readonly callId: string; readonly text: string; readonly structured: StructuredAnswer }
  | { readonly ok: false; readonly callId: string; readonly error: DrawbridgeError; readonly text: string };

interface Prepared {
  readonly tool: LoadedTool;
  readonly request: ParsedRequest;
  readonly decision: Decision;
  readonly masker: Masker;
}

export async function callTool(gateway: Gateway, call: CallInput): Promise<CallResult> {
  const callId = randomUUID();
  const started = performance.now();
  let prepared: Prepared | null = null;
  let refusal: DrawbridgeError | null = null;
  let partial: ParsedRequest | null = null;
  let masker: Masker = createMasker([], gateway.maskKey);

  // identity → parse → resolve → decide
  try {
    const identity = requireIdentity(call.identity);
    const tool = requireTool(gateway.config, call.tool);
    const input = validateInput(tool, call.args);
    const connection = String(input['connection']);
    masker = createMasker(applicableRules(gateway.config.masking, tool.declaration.name, connection, identity), gateway.maskKey);
    partial = tool.backend.parse(input, { tool: tool.declaration.name, connection });
    const request = await gateway.connection(connection).resolve(partial);
    partial = request;
    const decision = evaluate(request, identity, gateway.config.rules, gateway.clock());
    prepared = { tool, request, decision, masker };
    refusal = refusalFor(decision);
  } catch (error) {
    refusal = toDrawbridgeError(error);
  }

  // journal(intent): durable before the backend sees the request.
  try {
    gateway.journal.append('call', callId, intentRecord(call, partial, prepared?.decision ?? null, refusal), gateway.clock());
  } catch (error) {
    const failure = error instanceof DrawbridgeError ? error : new DrawbridgeError('journal.unavailable', 'The audit journal cannot be written.', { cause: error });
    return refuse(callId, failure, masker, partial, null);
  }

  if (refusal || !prepared) {
    const error = refusal ?? new DrawbridgeError('internal', 'The call could not be prepared.');
    return refuse(callId, error, masker, partial, () => outcome(gateway, callId, { status: 'refused', errorCode: error.code, durationMs: elapsed(started) }));
  }

  // execute → mask → journal(outcome) → answer
  const { request, decision } = prepared;
  let result: TabularResult;
  try {
    const maxAffectedRows = decision.rule?.max_affected_rows;
    result = await gateway.connection(request.connection).execute(request, maxAffectedRows === undefined ? {} : { maxAffectedRows });
  } catch (error) {
    const failure = toDrawbridgeError(error);
    return refuse(callId, failure, masker, request, (masked) =>
      outcome(gateway, callId, { status: 'error', errorCode: failure.code, durationMs: elapsed(started), masked }),
    );
  }
  const { result: safe, masked } = masker.maskResult(result, request);
  const durationMs = elapsed(started);
  const { text, structured } = renderAnswer({ callId, request, decision, result: safe, masked, durationMs });
  const answerHash = createHash('sha256').update(text).update(JSON.stringify(structured)).digest('hex');
  try {
    outcome(gateway, callId, {
      status: 'ok',
      rows: safe.rows.length,
      affectedRows: safe.affectedRows,
      bytes: safe.bytes,
      durationMs,
      truncated: safe.truncated !== null,
      masked,
      answerHash,
    });
  } catch (error) {
    // The statement ran but its outcome cannot be recorded: withhold the data.
    return { ok: false, callId, error: toDrawbridgeError(error), text: render(toDrawbridgeError(error)) };
  }
  return { ok: true, callId, text, structured };
}

function requireIdentity(identity: Identity | null): Identity {
  if (!identity) throw new DrawbridgeError('identity.missing', 'The caller has no identity, so nothing is allowed.');
  return identity;
}

function requireTool(config: GatewayConfig, name: string): LoadedTool {
  const tool = config.tools.get(name);
  if (!tool) throw new DrawbridgeError('tool.unknown', `There is no tool named "${name}".`);
  return tool;
}

export function inputSchemaFor(tool: LoadedTool): z.ZodObject {
  const names = tool.declaration.connections as [string, ...string[]];
  return z.strictObject({ connection: z.enum(names), ...tool.backend.inputShape });
}

function validateInput(tool: LoadedTool, args: unknown): Record<string, unknown> {
  const parsed = inputSchemaFor(tool).safeParse(args ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ');
    const unknownConnection = parsed.error.issues.some((i) => i.path[0] === 'connection');
    throw new DrawbridgeError(unknownConnection ? 'connection.unknown' : 'input.invalid', `Invalid arguments: ${problems}.`, {
      hint: unknownConnection ? `Use one of: ${tool.declaration.connections.join(', ')}.` : undefined,
    });
  }
  return parsed.data as Record<string, unknown>;
}

function refusalFor(decision: Decision): DrawbridgeError | null {
  if (decision.effect === 'allow') return null;
  const rule = decision.rule ? ` (rule ${decision.rule.name})` : '';
  if (decision.effect === 'approve') {
    const who = decision.rule?.approvers?.groups ? ` by someone in ${decision.rule.approvers.groups.join(', ')}` : '';
    return new DrawbridgeError('policy.needs_approval', `${decision.message}${rule} It needs approval${who}.`, { details: { rule: decision.rule?.name } });
  }
  return new DrawbridgeError(decision.code ?? 'policy.denied', `Denied${rule}: ${decision.message}`, { details: { rule: decision.rule?.name ?? null } });
}

/** Journaled input: content detectors applied, so the journal does not become a PII store. */
const journalScrubber = createMasker([{ name: 'journal', match: {}, columns: [], detectors: [...DETECTOR_NAMES], style: 'redact' }], new Uint8Array(32));

function scrubbed(value: unknown): unknown {
  const masker = journalScrubber;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return masker.maskText(v, null).text;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    return v;
  };
  return walk(value);
}

function intentRecord(call: CallInput, request: ParsedRequest | null, decision: Decision | null, refusal: DrawbridgeError | null): Record<string, unknown> {
  const identity = call.identity;
  return {
    principal: identity ? { subject: identity.subject, groups: [...identity.groups], kind: identity.kind, issuer: identity.issuer } : null,
    client: call.client ? { name: call.client.name, ...(call.client.version ? { version: call.client.version } : {}) } : null,
    tool: call.tool,
    connection: request?.connection ?? (typeof (call.args as Record<string, unknown> | null)?.['connection'] === 'string' ? (call.args as Record<string, string>)['connection'] : null),
    input: scrubbed(request?.input ?? call.args ?? null),
    request: request
      ? { operation: request.operation, access: request.access, resources: [...request.resources], functions: [...request.functions], summary: request.summary, reasons: [...request.reasons] }
      : null,
    decision: decision
      ? { effect: decision.effect, rule: decision.rule?.name ?? null, message: decision.message }
      : { effect: 'deny', rule: null, message: refusal ? `${refusal.code}: ${scrubbed(refusal.message)}` : 'refused' },
  };
}

function outcome(gateway: Gateway, callId: string, data: Record<string, unknown>): void {
  // The outcome commits without its own fsync: it reaches the disk with the next
  // intent's fsync (or at close). Only the intent must be durable before execute.
  gateway.journal.append('outcome', callId, data, gateway.clock(), { durable: false });
}

function refuse(
  callId: string,
  error: DrawbridgeError,
  masker: Masker,
  request: ParsedRequest | null,
  record: ((masked: MaskCount[]) => void) | null,
): CallResult {
  // Error text may quote data (PostgreSQL puts the offending value in the message).
  const { text: message, masked } = masker.maskText(error.message, request);
  const safe = new DrawbridgeError(error.code, message, { hint: error.hint, details: { ...error.details } });
  try {
    record?.(masked);
  } catch (journalError) {
    const failure = toDrawbridgeError(journalError);
    return { ok: false, callId, error: failure, text: render(failure) };
  }
  return { ok: false, callId, error: safe, text: render(safe) };
}

function render(error: DrawbridgeError): string {
  return `${error.code}: ${error.message}\nWhat to do: ${error.hint}`;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}

