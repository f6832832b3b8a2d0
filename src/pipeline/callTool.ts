// One path for every tool call, the stages in order:
//
//   identity → parse → resolve → decide → approve? → journal(intent) → execute → mask → journal(outcome) → answer
//
// `approve?` runs only for an approve decision: a grant, an out-of-band approval of
// this exact request, or a yes through elicitation clears it; anything else refuses.
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
import { renderAnswer, renderApprovalAnswer, type StructuredAnswer } from './answer.js';
import type { Gateway } from './gateway.js';
import { approvalAnswerSchema, type ApprovalChannel } from '../approval/approver.js';
import { approveStage, type Clearance } from '../approval/stage.js';

export interface CallInput {
  readonly tool: string;
  readonly args: unknown;
  readonly identity: Identity | null;
  /** Why there is no identity (an expired or rejected token), refused and journaled as such. */
  readonly identityError?: DrawbridgeError;
  readonly client?: { readonly name: string; readonly version?: string };
  /** How a human can be reached for this call (elicitation, progress); from the transport. */
  readonly channel?: ApprovalChannel;
}

export type CallResult =
  | { readonly ok: true; readonly callId: string; readonly text: string; readonly structured: StructuredAnswer }
  | { readonly ok: false; readonly callId: string; readonly error: DrawbridgeError; readonly text: string; readonly structured?: StructuredAnswer };

interface Prepared {
  readonly tool: LoadedTool;
  readonly request: ParsedRequest;
  readonly decision: Decision;
  readonly masker: Masker;
  /** How an `approve` decision was cleared (grant or approval); null for allow. */
  readonly clearance: Clearance | null;
}

export async function callTool(gateway: Gateway, call: CallInput): Promise<CallResult> {
  const callId = randomUUID();
  const started = performance.now();
  let prepared: Prepared | null = null;
  let refusal: DrawbridgeError | null = null;
  let partial: ParsedRequest | null = null;
  let masker: Masker = createMasker([], gateway.maskKey);

  // identity → parse → resolve → decide → approve?
  let clearance: Clearance | null = null;
  try {
    const identity = requireIdentity(call.identity, call.identityError);
    const tool = requireTool(gateway.config, call.tool);
    const input = validateInput(tool, call.args);
    const connection = String(input['connection']);
    masker = createMasker(applicableRules(gateway.config.masking, tool.declaration.name, connection, identity), gateway.maskKey);
    partial = tool.backend.parse(input, { tool: tool.declaration.name, connection });
    const request = await gateway.connection(connection).resolve(partial);
    partial = request;
    const decision = evaluate(request, identity, gateway.config.rules, gateway.clock());
    prepared = { tool, request, decision, masker, clearance: null };
    refusal = refusalFor(decision);
    if (!refusal && decision.effect === 'approve') {
      const backend = gateway.connection(connection);
      const maxAffectedRows = decision.rule?.max_affected_rows;
      // A dry run executes the write before anyone said yes. A rollback undoes rows, not
      // what opaque code (a volatile function: `*` among the resources) does elsewhere.
      const opaque = request.resources.includes('*');
      const preview =
        decision.rule?.preview === true && request.access === 'write' && backend.preview
          ? opaque
            ? async () => ({ affectedRows: null, sample: [], sampleColumns: [], note: 'not dry-run: the statement calls functions whose effects a rollback may not undo' })
            : () => backend.preview!(request, { identity, ...(maxAffectedRows === undefined ? {} : { maxAffectedRows }), mask: (r) => masker.maskResult(r, request).result })
          : null;
      clearance = await approveStage(gateway.approval, { callId, request, decision, identity, channel: call.channel ?? {}, preview });
      prepared = { ...prepared, clearance };
    }
  } catch (error) {
    refusal = toDrawbridgeError(error);
  }

  // journal(intent): durable before the backend sees the request.
  try {
    gateway.journal.append('call', callId, intentRecord(call, partial, prepared?.decision ?? null, refusal, clearance), gateway.clock());
  } catch (error) {
    const failure = error instanceof DrawbridgeError ? error : new DrawbridgeError('journal.unavailable', 'The audit journal cannot be written.', { cause: error });
    return refuse(callId, failure, masker, partial, null);
  }

  if (refusal || !prepared) {
    const error = refusal ?? new DrawbridgeError('internal', 'The call could not be prepared.');
    return refuse(callId, error, masker, partial, () => outcome(gateway, callId, { status: 'refused', errorCode: error.code, durationMs: elapsed(started) }), started);
  }

  // execute → mask → journal(outcome) → answer
  const { request, decision } = prepared;
  let result: TabularResult;
  try {
    const maxAffectedRows = decision.rule?.max_affected_rows;
    // A call under a grant may not run past the grant's absolute expiry.
    const timeLimitMs = clearance?.kind === 'grant' ? Date.parse(clearance.grant.expiresAt) - gateway.clock().getTime() : undefined;
    if (timeLimitMs !== undefined && timeLimitMs <= 0) {
      throw new DrawbridgeError('grant.expired', `Grant ${clearance?.kind === 'grant' ? clearance.grant.id : ''} expired before the call could start; nothing was run.`);
    }
    result = await gateway.connection(request.connection).execute(request, {
      identity: { subject: call.identity?.subject ?? '', groups: call.identity?.groups ?? [] },
      ...(maxAffectedRows === undefined ? {} : { maxAffectedRows }),
      ...(timeLimitMs === undefined ? {} : { timeLimitMs }),
    });
  } catch (error) {
    const failure = toDrawbridgeError(error);
    return refuse(callId, failure, masker, request, (masked) =>
      outcome(gateway, callId, { status: 'error', errorCode: failure.code, durationMs: elapsed(started), masked }),
    );
  }
  const { result: safe, masked } = masker.maskResult(result, request);
  const durationMs = elapsed(started);
  // The summary echoes the input: detectors run on it too before it is shown.
  const shown = { ...request, summary: masker.maskText(request.summary, null).text };
  const { text, structured } = renderAnswer({ callId, request: shown, decision, result: safe, masked, durationMs });
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

function requireIdentity(identity: Identity | null, why: DrawbridgeError | undefined): Identity {
  if (!identity) throw why ?? new DrawbridgeError('identity.missing', 'The caller has no identity, so nothing is allowed.');
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
  if (decision.effect !== 'deny') return null; // approve is cleared (or refused) by the approve stage
  const rule = decision.rule ? ` (rule ${decision.rule.name})` : '';
  return new DrawbridgeError(decision.code ?? 'policy.denied', `Denied${rule}: ${decision.message}`, { details: { rule: decision.rule?.name ?? null } });
}

/** Journaled input: content detectors applied, so the journal does not become a PII store. */
const journalScrubber = createMasker([{ name: 'journal', match: {}, columns: [], detectors: [...DETECTOR_NAMES], patterns: [], style: 'redact' }], new Uint8Array(32));

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

function intentRecord(call: CallInput, request: ParsedRequest | null, decision: Decision | null, refusal: DrawbridgeError | null, clearance: Clearance | null): Record<string, unknown> {
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
    // Which approval or grant let an `approve` decision through (the approval events are journaled before).
    clearance: clearanceRecord(clearance),
  };
}

function clearanceRecord(clearance: Clearance | null): Record<string, unknown> | null {
  if (!clearance) return null;
  if (clearance.kind === 'grant') return { kind: 'grant', grantId: clearance.grant.id, approvalId: clearance.grant.approvalId, expiresAt: clearance.grant.expiresAt };
  return {
    kind: 'approval',
    approvalId: clearance.approvalId,
    via: clearance.via,
    approvers: clearance.votes.filter((v) => v.decision === 'approve').map((v) => ({ subject: v.approver.subject, via: v.via, at: v.at, ...(v.client ? { client: v.client } : {}) })),
    grantId: clearance.grant?.id ?? null,
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
  started?: number,
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
  // A call held for (or refused by) an approval also says so as structured output: its id, status, and how to pick up the decision.
  const approval = approvalAnswerSchema.safeParse(safe.details['approval']);
  if (approval.success) {
    const shown = { ...approval.data, retry: masker.maskText(approval.data.retry, request).text };
    const structured = renderApprovalAnswer({ callId, approval: shown, durationMs: started === undefined ? 0 : elapsed(started) });
    return { ok: false, callId, error: safe, text: render(safe), structured };
  }
  return { ok: false, callId, error: safe, text: render(safe) };
}

function render(error: DrawbridgeError): string {
  return `${error.code}: ${error.message}\nWhat to do: ${error.hint}`;
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 100) / 100;
}

