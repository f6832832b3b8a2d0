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
// - Every call, refused or not, is journaled with its decision and outcome, whatever
//   its arguments: they are measured without recursion first, input over the limits
//   (journal/bounded.ts: 32 levels, 1 MiB, 10,000 values) is refused with
//   input.invalid after an intent holding its first 64 KiB and sha256 is written.
// - A fault (an outage: backend unreachable, secret missing, store or journal
//   unavailable) is no decision: journaled as `decision: null` with an error outcome,
//   never as a deny. Agents never see gateway-host paths; the operator's log does.

import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve as resolvePath, sep } from 'node:path';
import { z } from 'zod';
import type { Backend, ParsedRequest, TabularResult } from '../backends/backend.js';
import type { GatewayConfig, LoadedTool } from '../config/schema.js';
import type { SecretRef } from '../config/secrets.js';
import { DrawbridgeError, errorKind, errorText, toDrawbridgeError } from '../errors.js';
import type { Identity } from '../identity/identity.js';
import { boundText, INPUT_LIMITS, measureInput, storedInput, type InputMeasure } from '../journal/bounded.js';
import { DETECTOR_NAMES } from '../masking/detectors.js';
import { applicableRules, createMasker, mergeMaskCounts, type MaskCount, type Masker } from '../masking/masker.js';
import { evaluate, type Decision } from '../policy/evaluate.js';
import { checkScopes, scopesNeeded, type ScopeCheck } from '../policy/scopes.js';
import { renderAnswer, renderApprovalAnswer, type StructuredAnswer } from './answer.js';
import type { Gateway, GatewaySnapshot } from './gateway.js';
import { shuttingDown, type Admission } from './drain.js';
import type { CallEnd, CallStage, MaskedBy, StageTiming } from './call-end.js';
import type { TraceContext } from './trace-context.js';
import { approvalAnswerSchema, type ApprovalChannel } from '../approval/approver.js';
import { approveStage, type Clearance, type InputRequired } from '../approval/stage.js';

export interface CallInput {
  readonly tool: string;
  readonly args: unknown;
  readonly identity: Identity | null;
  /** Why there is no identity (an expired or rejected token), refused and journaled as such. */
  readonly identityError?: DrawbridgeError;
  /**
   * The scopes of the access token the identity was proven by (HTTP: this request's bearer
   * token; stdio with OIDC: the token in the environment). Checked against what the call needs
   * (identity.scopes, required_scopes) before the decision. An identity without a token (local)
   * is not scope-checked; an OIDC identity whose transport passed no scopes is checked as
   * holding none (fails closed).
   */
  readonly scopes?: readonly string[];
  readonly client?: { readonly name: string; readonly version?: string };
  /**
   * The agent session the call came in on: the Streamable HTTP `Mcp-Session-Id`, or the
   * per-process id of a stdio server. Journaled as `session` (absent for a call made
   * without a transport), so a session's calls can be replayed in order.
   */
  readonly session?: string;
  /** How a human can be reached for this call (elicitation, progress); from the transport. */
  readonly channel?: ApprovalChannel;
  /** The caller's W3C trace context, already validated by the transport (trace-context.ts); absent: none or invalid. */
  readonly trace?: TraceContext;
}

export type CallResult =
  | { readonly ok: true; readonly callId: string; readonly text: string; readonly structured: StructuredAnswer }
  | {
      readonly ok: false;
      readonly callId: string;
      readonly error: DrawbridgeError;
      readonly text: string;
      readonly structured?: StructuredAnswer;
      readonly inputRequired?: never;
    }
  | {
      /**
       * MCP 2026-07-28: nothing ran yet; the client must show `inputRequests` (the approval form) to
       * its human and call again with the answers and `requestState` (server.ts maps this onto the
       * protocol's InputRequiredResult). Plain data: the pipeline knows no SDK. `error` and `text`
       * (approval.pending) are what a transport that cannot carry input requests answers instead.
       */
      readonly ok: false;
      readonly callId: string;
      readonly error: DrawbridgeError;
      readonly text: string;
      readonly structured?: never;
      readonly inputRequired: { readonly inputRequests: InputRequired['inputRequests']; readonly requestState: string };
    };

interface Prepared {
  readonly tool: LoadedTool;
  readonly request: ParsedRequest;
  readonly decision: Decision;
  readonly masker: Masker;
  /** How an `approve` decision was cleared (grant or approval); null for allow. */
  readonly clearance: Clearance | null;
}

/**
 * Runs one call through the pipeline. What the agent is shown of a failure never
 * names a file on the gateway host; a fault (an outage, not a refusal) is also
 * handed, in full, to the gateway's call-end observers (the operator's log).
 */
export async function callTool(live: Gateway, call: CallInput): Promise<CallResult> {
  const seen = newSeen();
  // The config of this moment, for the whole call: a reload meanwhile never changes how it is decided, approved, run or masked.
  const pinned = live.pin();
  const gateway = pinned.gateway;
  // Counted from here to the answer (journal records included), so a graceful shutdown waits for it; refused once it drains.
  const admission = gateway.calls.enter(call.channel?.signal);
  try {
    const result = await runPipeline(gateway, call, admission, seen);
    gateway.callEnded(callEnd(gateway, call, result, seen));
    if (result.ok || result.inputRequired) return result;
    return withoutHostPaths(gateway, result);
  } finally {
    admission?.release();
    pinned.release();
  }
}

/** What the pipeline saw of a call, filled in as the stages run: the call-end event is built from it. */
interface Seen {
  started: number;
  request: ParsedRequest | null;
  decision: Decision | null;
  clearance: Clearance | null;
  /** The status the outcome record was journaled with; null when none was (the journal refused the intent). */
  status: CallEnd['status'] | null;
  rows: number | null;
  affectedRows: number | null;
  masked: readonly MaskCount[];
  /** Each stage as it ran, in order (the journal twice: intent and outcome). */
  stages: StageTiming[];
}

function newSeen(): Seen {
  return {
    started: performance.now(),
    request: null,
    decision: null,
    clearance: null,
    status: null,
    rows: null,
    affectedRows: null,
    masked: [],
    stages: [],
  };
}

/** Records that `stage` ran from `from` (performance.now()) until now. */
function timed(seen: Seen, stage: CallStage, from: number): void {
  seen.stages.push({ stage, startMs: round(from - seen.started), durationMs: elapsed(from) });
}

function callEnd(gateway: GatewaySnapshot, call: CallInput, result: CallResult, seen: Seen): CallEnd {
  const error = result.ok ? null : result.error;
  const kind = error ? errorKind(error.code) : null;
  const args = call.args !== null && typeof call.args === 'object' ? (call.args as Record<string, unknown>) : null;
  // Only names the config declares: what an agent sent in their place is its own text, which the log does not carry.
  const named = args !== null && typeof args['connection'] === 'string' && gateway.config.connections.has(args['connection']) ? args['connection'] : null;
  return {
    callId: result.callId,
    at: gateway.clock(),
    tool: typeof call.tool === 'string' && gateway.config.tools.has(call.tool) ? call.tool : null,
    connection: seen.request?.connection ?? named,
    operation: seen.request?.operation ?? null,
    access: seen.request?.access ?? null,
    decision: seen.decision ? { effect: seen.decision.effect, rule: seen.decision.rule?.name ?? null } : null,
    clearance: seen.clearance?.kind ?? null,
    status: seen.status ?? (result.ok ? 'ok' : kind === 'fault' ? 'error' : 'refused'),
    error: error && kind ? { code: error.code, kind } : null,
    faultMessage: error && kind === 'fault' ? faultText(error) : null,
    rows: seen.rows,
    affectedRows: seen.affectedRows,
    masked: seen.masked.reduce((sum, m) => sum + m.count, 0),
    maskedBy: maskedBy(seen.masked),
    startedAtMs: performance.timeOrigin + seen.started,
    // The whole call, the outcome's append included (the answer's durationMs stops before it).
    durationMs: elapsed(seen.started),
    stages: [...seen.stages],
    session: call.session === undefined ? null : boundText(String(call.session), MAX_NAME_CHARS),
    subject: call.identity?.subject ?? null,
    trace: call.trace ?? null,
  };
}

/** The masks by rule and detector: the column a mask hit, or the field, is left out (not a name the config declares). */
function maskedBy(masks: readonly MaskCount[]): MaskedBy[] {
  const out = new Map<string, MaskedBy>();
  for (const m of masks) {
    const detector = m.by !== 'detector' ? null : m.target.startsWith('pattern:') ? 'pattern' : m.target;
    const key = `${m.rule}\u0000${detector ?? ''}`;
    out.set(key, { rule: m.rule, detector, count: (out.get(key)?.count ?? 0) + m.count });
  }
  return [...out.values()];
}

async function runPipeline(gateway: GatewaySnapshot, call: CallInput, admission: Admission | null, seen: Seen): Promise<CallResult> {
  const callId = randomUUID();
  const started = seen.started;
  // Measured once, without recursion, whatever the arguments' shape: the limits are
  // checked against it and the intent record stores its bounded form.
  const measured = measureInput(call.args);
  let prepared: Prepared | null = null;
  let refusal: DrawbridgeError | null;
  let partial: ParsedRequest | null = null;
  /** The backend of the tool called, once known: it says which facts of the request are journaled. */
  let backend: Backend | null = null;
  let masker: Masker = createMasker([], gateway.maskKey);

  // identity → parse → resolve → scopes → decide → approve?
  let clearance: Clearance | null = null;
  /** The approve stage asked the client for input (2026-07-28): journaled, nothing runs in this round. */
  let held: InputRequired | null = null;
  let scopes: ScopeCheck | null = null;
  /** Whether the parse stage (identity, input, parse, resolve, scopes) was timed: a refusal inside it times it when caught. */
  let parsed = false;
  try {
    // A call arriving while the gateway drains is refused (and journaled like any refusal): nothing of it runs.
    if (admission === null) throw shuttingDown();
    const identity = requireIdentity(call.identity, call.identityError);
    requireBoundedInput(measured);
    const tool = requireTool(gateway.config, call.tool);
    backend = tool.backend;
    const input = validateInput(tool, call.args);
    const connection = String(input['connection']);
    masker = createMasker(applicableRules(gateway.config.masking, tool.declaration.name, connection, identity), gateway.maskKey, tool.backend.redactQuoted);
    partial = tool.backend.parse(input, { tool: tool.declaration.name, connection });
    const request = await gateway
      .connection(connection)
      .resolve(partial)
      .catch((error: unknown) => {
        // Resolving asks the backend (catalog lookups): a fault here is the connection's last check too.
        const failure = toDrawbridgeError(error);
        if (errorKind(failure.code) === 'fault') gateway.connectionHealth.failing(connection, failure.code, gateway.clock());
        throw error;
      });
    partial = request;
    seen.request = request;
    scopes = scopeCheck(gateway.config, request, identity, call.scopes);
    requireScopes(scopes);
    timed(seen, 'parse', started);
    parsed = true;
    const deciding = performance.now();
    const decision = evaluate(request, identity, gateway.config.rules, gateway.clock());
    prepared = { tool, request, decision, masker, clearance: null };
    seen.decision = decision;
    timed(seen, 'decide', deciding);
    refusal = refusalFor(decision);
    if (!refusal && decision.effect === 'approve') {
      const opened = gateway.connection(connection);
      const maxAffectedRows = decision.rule?.max_affected_rows;
      // A dry run executes the write before anyone said yes: the backend says when a
      // rollback would not undo it (opaque code), and what the approver is told instead.
      const dryRun = opened.preview?.bind(opened);
      const plan = tool.backend.previewDecision(request);
      const preview =
        decision.rule?.preview === true && request.access === 'write' && dryRun
          ? plan.kind === 'skip'
            ? async () => ({ affectedRows: null, sample: [], sampleColumns: [], note: plan.note })
            : () =>
                dryRun(request, {
                  identity,
                  ...(maxAffectedRows === undefined ? {} : { maxAffectedRows }),
                  mask: (r) => masker.maskResult(r, request).result,
                })
          : null;
      // The requester's client is named on the request as the intent names it, whichever way the call came in.
      // Its signal: the client's cancellation, or the gateway shutting down (the wait answers "call again").
      const channel: ApprovalChannel = { ...(call.client ? { clientName: call.client.name } : {}), ...call.channel, signal: admission.signal };
      const asking = performance.now();
      let approved: Awaited<ReturnType<typeof approveStage>>;
      try {
        approved = await approveStage(gateway.approval, { callId, request, decision, identity, channel, preview });
      } finally {
        // Timed whether it cleared the call or refused it (pending, denied, expired).
        timed(seen, 'approval', asking);
      }
      if (approved.kind === 'input_required') held = approved;
      else {
        clearance = approved;
        seen.clearance = approved;
        prepared = { ...prepared, clearance };
      }
    }
  } catch (error) {
    refusal = toDrawbridgeError(error);
    if (!parsed) timed(seen, 'parse', started);
  }
  seen.request = partial;

  // journal(intent): durable before the backend sees the request. Built so that it
  // cannot fail on the input's shape: only the journal itself can refuse it. `config`:
  // the hash of the config the call is decided under (its pinned snapshot; README: Reload).
  const journaling = performance.now();
  try {
    await gateway.journal.append(
      'call',
      callId,
      { ...safeIntentRecord(call, measured, partial, backend, prepared?.decision ?? null, refusal, clearance, scopes), config: gateway.config.hash },
      gateway.clock(),
    );
    timed(seen, 'journal', journaling);
  } catch (error) {
    timed(seen, 'journal', journaling);
    const failure =
      error instanceof DrawbridgeError ? error : new DrawbridgeError('journal.unavailable', 'The audit journal cannot be written.', { cause: error });
    return refuse(callId, failure, masker, partial, null, undefined, call.identity);
  }

  if (refusal || !prepared) {
    const error = refusal ?? new DrawbridgeError('internal', 'The call could not be prepared.');
    // A fault (backend unreachable, store unavailable…) is an error outcome, not a refusal of the request.
    const status = errorKind(error.code) === 'fault' ? 'error' : 'refused';
    seen.status = status;
    return refuse(
      callId,
      error,
      masker,
      partial,
      () => outcome(gateway, seen, callId, { status, errorCode: error.code, durationMs: elapsed(started) }),
      started,
      call.identity,
    );
  }

  if (held) {
    // Held for the human's answer: an outcome like an out-of-band pending call's, naming the approval asked for.
    const asked = held;
    seen.status = 'refused';
    try {
      await outcome(gateway, seen, callId, {
        status: 'refused',
        errorCode: 'approval.pending',
        durationMs: elapsed(started),
        inputRequired: { approvalId: asked.approvalId },
      });
    } catch (error) {
      const failure = toDrawbridgeError(error);
      return { ok: false, callId, error: failure, text: errorText(failure) };
    }
    const error = new DrawbridgeError('approval.pending', INPUT_REQUIRED_MESSAGE, { details: { approvalId: asked.approvalId } });
    return { ok: false, callId, error, text: errorText(error), inputRequired: { inputRequests: asked.inputRequests, requestState: asked.requestState } };
  }

  // execute → mask → journal(outcome) → answer
  const { request, decision } = prepared;
  let result: TabularResult;
  try {
    const maxAffectedRows = decision.rule?.max_affected_rows;
    // A call under a grant may not run past the grant's absolute expiry.
    const timeLimitMs = clearance?.kind === 'grant' ? Date.parse(clearance.grant.expiresAt) - gateway.clock().getTime() : undefined;
    if (timeLimitMs !== undefined && timeLimitMs <= 0) {
      throw new DrawbridgeError(
        'grant.expired',
        `Grant ${clearance?.kind === 'grant' ? clearance.grant.id : ''} expired before the call could start; nothing was run.`,
      );
    }
    const executing = performance.now();
    try {
      result = await gateway.connection(request.connection).execute(request, {
        identity: { subject: call.identity?.subject ?? '', groups: call.identity?.groups ?? [] },
        ...(maxAffectedRows === undefined ? {} : { maxAffectedRows }),
        ...(timeLimitMs === undefined ? {} : { timeLimitMs }),
      });
    } finally {
      timed(seen, 'execute', executing);
    }
  } catch (error) {
    const failure = toDrawbridgeError(error);
    if (errorKind(failure.code) === 'fault') gateway.connectionHealth.failing(request.connection, failure.code, gateway.clock());
    seen.status = 'error';
    return refuse(
      callId,
      failure,
      masker,
      request,
      (masked) => {
        seen.masked = masked;
        return outcome(gateway, seen, callId, { status: 'error', errorCode: failure.code, durationMs: elapsed(started), masked });
      },
      undefined,
      call.identity,
    );
  }
  gateway.connectionHealth.ok(request.connection, gateway.clock());
  const masking = performance.now();
  const { result: safe, masked: inResult } = masker.maskResult(result, request);
  // The summary echoes the input: detectors run on it too before it is shown, and
  // what they mask there is counted with the rest (the answer's `masked` counts every mask).
  const summary = masker.maskText(request.summary, null);
  const masked = mergeMaskCounts(inResult, summary.masked);
  const shown = { ...request, summary: summary.text };
  timed(seen, 'mask', masking);
  const durationMs = elapsed(started);
  const { text, structured } = renderAnswer({ callId, request: shown, decision, result: safe, masked, durationMs });
  const answerHash = createHash('sha256').update(text).update(JSON.stringify(structured)).digest('hex');
  Object.assign(seen, { status: 'ok', rows: safe.rows.length, affectedRows: safe.affectedRows, masked } satisfies Partial<Seen>);
  try {
    await outcome(gateway, seen, callId, {
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
    return { ok: false, callId, error: toDrawbridgeError(error), text: errorText(toDrawbridgeError(error)) };
  }
  return { ok: true, callId, text, structured };
}

const INPUT_REQUIRED_MESSAGE =
  'This call needs the approval of the human at the client: the client shows the approval form and calls again with the answer. Nothing was run yet.';

function requireIdentity(identity: Identity | null, why: DrawbridgeError | undefined): Identity {
  if (!identity) throw why ?? new DrawbridgeError('identity.missing', 'The caller has no identity, so nothing is allowed.');
  return identity;
}

/**
 * What the call needs of its token: null when there is nothing to check — an identity without a
 * token (local), or no identity.scopes entry matches the call (required_scopes alone were checked
 * by the verifier on this very token). When an entry matches, every needed scope is listed,
 * required ones included, so one step-up gets them all. The scopes come from the token, never
 * from the agent; an OIDC identity whose transport passed none is checked as holding none.
 */
function scopeCheck(config: GatewayConfig, request: ParsedRequest, identity: Identity, held: readonly string[] | undefined): ScopeCheck | null {
  const settings = config.identity;
  if (identity.kind !== 'oidc' || settings?.mode !== 'oidc') return null;
  if (scopesNeeded(request, identity, settings.scopes, []).length === 0) return null;
  return checkScopes(request, identity, settings.scopes, settings.required_scopes, held ?? []);
}

/** A token without every scope the call needs is refused before any rule is asked; the answer lists them all, so a client can step up once. */
function requireScopes(check: ScopeCheck | null): void {
  if (!check || check.missing.length === 0) return;
  const s = (list: readonly string[]) => (list.length > 1 ? 's' : '');
  throw new DrawbridgeError(
    'identity.insufficient_scope',
    `This call needs the scope${s(check.needed)} ${check.needed.join(' ')}; the access token lacks ${check.missing.join(' ')}. Nothing was run.`,
    { details: { neededScopes: [...check.needed], missingScopes: [...check.missing] } },
  );
}

function requireTool(config: GatewayConfig, name: string): LoadedTool {
  const tool = config.tools.get(name);
  if (!tool) throw new DrawbridgeError('tool.unknown', `There is no tool named "${boundText(name, MAX_NAME_CHARS)}".`);
  return tool;
}

/** Built once per loaded tool: zod compiles a schema on its first parse, so a schema built per call is compiled per call. */
const inputSchemas = new WeakMap<LoadedTool, z.ZodObject>();

export function inputSchemaFor(tool: LoadedTool): z.ZodObject {
  let schema = inputSchemas.get(tool);
  if (schema === undefined) {
    const names = tool.declaration.connections as [string, ...string[]];
    schema = z.strictObject({ connection: z.enum(names), ...tool.backend.inputShape });
    inputSchemas.set(tool, schema);
  }
  return schema;
}

function validateInput(tool: LoadedTool, args: unknown): Record<string, unknown> {
  if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args))) {
    const shape = args === null ? 'null' : Array.isArray(args) ? 'an array' : `a ${typeof args}`;
    throw new DrawbridgeError('input.invalid', `Invalid arguments: they must be a JSON object of named arguments, not ${shape}.`);
  }
  const parsed = inputSchemaFor(tool).safeParse(args ?? {});
  if (!parsed.success) {
    // Bounded: an issue can quote the agent's keys, and there can be thousands of them.
    const issues = parsed.error.issues;
    const listed = issues.slice(0, MAX_LISTED_ISSUES).map((i) => boundText(`${i.path.join('.') || 'input'}: ${i.message}`, MAX_NAME_CHARS));
    const problems = `${listed.join('; ')}${issues.length > MAX_LISTED_ISSUES ? `; and ${issues.length - MAX_LISTED_ISSUES} more` : ''}`;
    const unknownConnection = parsed.error.issues.some((i) => i.path[0] === 'connection');
    throw new DrawbridgeError(
      unknownConnection ? 'connection.unknown' : 'input.invalid',
      `Invalid arguments: ${problems}.`,
      unknownConnection ? { hint: `Use one of: ${tool.declaration.connections.join(', ')}.` } : {},
    );
  }
  return parsed.data as Record<string, unknown>;
}

function refusalFor(decision: Decision): DrawbridgeError | null {
  if (decision.effect !== 'deny') return null; // approve is cleared (or refused) by the approve stage
  const rule = decision.rule ? ` (rule ${decision.rule.name})` : '';
  return new DrawbridgeError(decision.code ?? 'policy.denied', `Denied${rule}: ${decision.message}`, { details: { rule: decision.rule?.name ?? null } });
}

/** Journaled input: content detectors applied, so the journal does not become a PII store. */
const journalScrubber = createMasker(
  [{ name: 'journal', match: {}, columns: [], detectors: [...DETECTOR_NAMES], patterns: [], style: 'redact' }],
  new Uint8Array(32),
);

function scrubText(text: string): string {
  return journalScrubber.maskText(text, null).text;
}

/** Names (tool, connection, client) and messages in a record or an answer are cut beyond these. */
const MAX_NAME_CHARS = 200;
const MAX_MESSAGE_CHARS = 2_000;
const MAX_LISTED_ISSUES = 5;

/**
 * The input limits, checked before anything else looks at the arguments (zod, the
 * backend's parser). Over a limit the call is refused; the intent record still
 * keeps the input's first 64 KiB, size and sha256 (storedInput).
 */
function requireBoundedInput(measured: InputMeasure): void {
  if (measured.exceeded.length === 0) return;
  const limits = INPUT_LIMITS;
  const why = measured.exceeded.map((limit) => {
    switch (limit) {
      case 'depth':
        return `nested ${measured.depth} levels deep (at most ${limits.maxDepth})`;
      case 'bytes':
        return `${measured.bytes} bytes of JSON (at most ${limits.maxBytes}, 1 MiB)`;
      case 'values':
        return `${measured.values ?? 'too many'} values (at most ${limits.maxValues})`;
      case 'json':
        return 'not a JSON value';
    }
  });
  throw new DrawbridgeError('input.invalid', `The arguments exceed the gateway's input limits: ${why.join('; ')}. Nothing was run.`, {
    hint:
      `Send the tool's arguments as a flat JSON object as in its input schema, at most ` +
      `${limits.maxBytes / 1024 / 1024} MiB, nested at most ${limits.maxDepth} levels, ` +
      `with at most ${limits.maxValues} values; split a large job into several calls.`,
    details: { exceeded: [...measured.exceeded] },
  });
}

/**
 * The intent record. It must not fail on anything an agent sends: the input is
 * stored bounded (storedInput: the value within the limits, else the first 64 KiB of
 * its canonical JSON with a cut marker and the sha256 of the whole), names and
 * messages are cut. Should building it still throw (a bug), a minimal record that
 * says so is journaled instead, so the call is never missing from the journal.
 */
function safeIntentRecord(
  call: CallInput,
  measured: InputMeasure,
  request: ParsedRequest | null,
  backend: Backend | null,
  decision: Decision | null,
  refusal: DrawbridgeError | null,
  clearance: Clearance | null,
  scopes: ScopeCheck | null,
): Record<string, unknown> {
  try {
    return intentRecord(call, measured, request, backend, decision, refusal, clearance, scopes);
  } catch (error) {
    return {
      principal: principalRecord(call.identity),
      client: null,
      ...sessionRecord(call),
      tool: boundText(String(call.tool), MAX_NAME_CHARS),
      connection: null,
      input: null,
      inputCut: {
        exceeded: ['json'],
        form: measured.form,
        bytes: measured.bytes,
        kept: 0,
        sha256: measured.sha256,
        depth: measured.depth,
        values: measured.values,
        limits: null,
      },
      request: null,
      decision: null,
      error: {
        code: 'internal',
        message: `The intent record could not be built (${error instanceof Error ? error.name : 'unknown error'}); recorded without its details.`,
      },
      clearance: null,
    };
  }
}

/** `session` only when the call came over a transport; the id is the gateway's own (a UUID), bounded all the same. */
function sessionRecord(call: CallInput): { session?: string } {
  return call.session === undefined ? {} : { session: boundText(String(call.session), MAX_NAME_CHARS) };
}

function principalRecord(identity: Identity | null): Record<string, unknown> | null {
  return identity
    ? { subject: identity.subject, groups: [...identity.groups], kind: identity.kind, principal: identity.principal, issuer: identity.issuer }
    : null;
}

function intentRecord(
  call: CallInput,
  measured: InputMeasure,
  request: ParsedRequest | null,
  backend: Backend | null,
  decision: Decision | null,
  refusal: DrawbridgeError | null,
  clearance: Clearance | null,
  scopes: ScopeCheck | null,
): Record<string, unknown> {
  const args = call.args !== null && typeof call.args === 'object' ? (call.args as Record<string, unknown>) : null;
  const named = args !== null && typeof args['connection'] === 'string' ? args['connection'] : null;
  // The validated input when there is one (within the limits by then), else the arguments as sent.
  const stored = storedInput(request ? measureInput(request.input) : measured, scrubText);
  // A fault before any decision (a backend unreachable while resolving, a missing
  // secret, the approvals store…) is no decision about the request: recorded as
  // `decision: null` with the error, never as a `deny` (see errors.ts, ErrorKind).
  const fault = !decision && refusal !== null && errorKind(refusal.code) === 'fault';
  const refusalText = refusal ? `${refusal.code}: ${scrubText(boundText(refusal.message, MAX_MESSAGE_CHARS))}` : 'refused';
  return {
    principal: principalRecord(call.identity),
    client: call.client
      ? {
          name: boundText(String(call.client.name), MAX_NAME_CHARS),
          ...(call.client.version ? { version: boundText(String(call.client.version), MAX_NAME_CHARS) } : {}),
        }
      : null,
    ...sessionRecord(call),
    tool: boundText(String(call.tool), MAX_NAME_CHARS),
    connection: request?.connection ?? (named === null ? null : boundText(named, MAX_NAME_CHARS)),
    input: stored.input,
    // Present only when `input` is the cut text of input over the limits.
    ...(stored.cut ? { inputCut: stored.cut } : {}),
    request: request
      ? {
          // What the backend's policy keys matched (functions, namespaces, hosts, …), then the generic facts.
          ...(backend ? backend.explain.facts(request) : {}),
          operation: request.operation,
          access: request.access,
          resources: [...request.resources],
          summary: request.summary,
          reasons: [...request.reasons],
        }
      : null,
    decision: decision
      ? { effect: decision.effect, rule: decision.rule?.name ?? null, message: decision.message }
      : fault
        ? null
        : { effect: 'deny', rule: null, message: refusalText },
    ...(fault && refusal ? { error: { code: refusal.code, message: scrubText(boundText(refusal.message, MAX_MESSAGE_CHARS)) } } : {}),
    // Which approval or grant let an `approve` decision through (the approval events are journaled before).
    clearance: clearanceRecord(clearance),
    // What the call needed of its token, when anything was checked (OIDC identities with scopes configured).
    ...(scopes ? { scopes: { needed: [...scopes.needed], missing: [...scopes.missing] } } : {}),
  };
}

function clearanceRecord(clearance: Clearance | null): Record<string, unknown> | null {
  if (!clearance) return null;
  if (clearance.kind === 'grant')
    return { kind: 'grant', grantId: clearance.grant.id, approvalId: clearance.grant.approvalId, expiresAt: clearance.grant.expiresAt };
  return {
    kind: 'approval',
    approvalId: clearance.approvalId,
    via: clearance.via,
    approvers: clearance.votes
      .filter((v) => v.decision === 'approve')
      .map((v) => ({ subject: v.approver.subject, via: v.via, at: v.at, ...(v.client ? { client: v.client } : {}) })),
    grantId: clearance.grant?.id ?? null,
  };
}

async function outcome(gateway: GatewaySnapshot, seen: Seen, callId: string, data: Record<string, unknown>): Promise<void> {
  // The outcome commits without its own fsync: it reaches the disk with the next
  // intent's fsync (or at close). Only the intent must be durable before execute.
  const journaling = performance.now();
  try {
    await gateway.journal.append('outcome', callId, data, gateway.clock(), { durable: false });
  } finally {
    timed(seen, 'journal', journaling);
  }
}

async function refuse(
  callId: string,
  error: DrawbridgeError,
  masker: Masker,
  request: ParsedRequest | null,
  record: ((masked: MaskCount[]) => Promise<void>) | null,
  started?: number,
  caller: Identity | null = null,
): Promise<CallResult> {
  // Error text may quote data (a database puts the offending value in the message).
  // The caller's own subject and groups stay readable ("No rule allows … for
  // dev@example.com", a cluster's "User \"dev@example.com\" cannot …"): exactly
  // those strings, nothing else, and only in this refusal text.
  const exempt = caller ? [caller.subject, ...caller.groups] : [];
  const { text: message, masked } = masker.maskText(error.message, request, { exempt });
  const safe = new DrawbridgeError(error.code, message, { hint: error.hint, details: { ...error.details } });
  try {
    await record?.(masked);
  } catch (journalError) {
    const failure = toDrawbridgeError(journalError);
    return { ok: false, callId, error: failure, text: errorText(failure) };
  }
  // A call held for (or refused by) an approval also says so as structured output: its id, status, and how to pick up the decision.
  const approval = approvalAnswerSchema.safeParse(safe.details['approval']);
  if (approval.success) {
    const shown = { ...approval.data, retry: masker.maskText(approval.data.retry, request).text };
    const structured = renderApprovalAnswer({ callId, approval: shown, durationMs: started === undefined ? 0 : elapsed(started) });
    return { ok: false, callId, error: safe, text: errorText(safe), structured };
  }
  return { ok: false, callId, error: safe, text: errorText(safe) };
}

function elapsed(started: number): number {
  return round(performance.now() - started);
}

/** Milliseconds to the hundredth. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

// ---------------------------------------------------------------------------
// What the agent is shown of a failure, and what the operator's log gets

/** A fault as the operator's log has it, in full and on one line: the agent's copy hides host paths, this one does not. */
function faultText(error: DrawbridgeError): string {
  const path = typeof error.details['path'] === 'string' ? ` [${error.details['path']}]` : '';
  return boundText(`${error.message}${path}`.replace(/[\r\n]+/g, ' '), 4 * MAX_MESSAGE_CHARS);
}

const HOST_PATH = '<path on the gateway host>';
const hostPathPatterns = new WeakMap<GatewayConfig, readonly RegExp[]>();

/**
 * Where the gateway keeps its files: the config directory, the journal, the
 * approvals store, secret files and the other files a backend names (filesOf: a
 * known_hosts file), and their directories. Error text from anywhere (a store, a
 * secret resolver, a backend's connect) may name them.
 */
function hostPaths(gateway: GatewaySnapshot): readonly RegExp[] {
  const config = gateway.config;
  const cached = hostPathPatterns.get(config);
  if (cached) return cached;
  const found = new Set<string>();
  const addDir = (path: string): void => {
    const full = (isAbsolute(path) ? path : resolvePath(config.dir, path)).replace(/[/\\]+$/, '');
    if (full.length > 1 && full !== sep) found.add(full);
  };
  // A file, and the directory it is in (a neighbouring file may be named: the WAL, a lock).
  const add = (path: string): void => {
    const full = isAbsolute(path) ? path : resolvePath(config.dir, path);
    addDir(full);
    addDir(dirname(full));
  };
  const addRef = (ref: SecretRef | null | undefined): void => {
    if (ref?.kind === 'file') add(ref.path);
  };
  addDir(config.dir);
  add(config.journal.path);
  add(config.approval.store);
  addRef(config.hashKey);
  for (const approver of config.approval.approvers) addRef(approver.token);
  addRef(config.approval.requestStateKey);
  for (const loaded of config.connections.values()) {
    for (const ref of loaded.backend.secretsOf(loaded.declaration)) addRef(ref);
    for (const path of loaded.backend.filesOf(loaded.declaration)) add(path);
  }
  // Longest first, so a file is replaced whole before its directory would be.
  const patterns = [...found]
    .sort((a, b) => b.length - a.length)
    .map((p) => new RegExp(`${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=$|[\\\\/\\s"'\`,;:()<>\\[\\]])(?:[\\\\/][^\\s"'\`,;:()<>\\[\\]]*)?`, 'g'));
  hostPathPatterns.set(config, patterns);
  return patterns;
}

/** An absolute path in text: a slash not inside a URL or a relative path, up to a delimiter. */
const PATH_TOKEN = /(?<![\w.~:/\\-])\/[^\s"'`,;:()<>[\]]+/g;

/**
 * The gateway's own paths replaced; for a fault also any other absolute path that
 * exists on this host (or a directory above it does, other than the root): a fault's text
 * can quote a file no configuration names (a CA or key file a kubeconfig points at, a
 * library's ENOENT). Paths that exist nowhere here (an API path, a remote file) stay.
 */
function hidePaths(gateway: GatewaySnapshot, text: string, fault: boolean): string {
  let shown = text;
  for (const pattern of hostPaths(gateway)) shown = shown.replace(pattern, HOST_PATH);
  if (!fault) return shown;
  return shown.replace(PATH_TOKEN, (token) => {
    const path = token.replace(/[.]+$/, '');
    return onThisHost(path) ? `${HOST_PATH}${token.slice(path.length)}` : token;
  });
}

/** True when the path, or a directory above it other than the root, exists on the gateway host. */
function onThisHost(path: string): boolean {
  for (let p = path, n = 0; p !== sep && p !== '.' && n < 64; p = dirname(p), n++) if (existsSync(p)) return true;
  return false;
}

/**
 * The failure as the agent sees it: no file on the gateway host is named (the journal's
 * path, the approvals store, the config directory, secret files). The operator's log
 * (the call-end observers: the log's fault field) and the journal keep the full text.
 */
function withoutHostPaths(gateway: GatewaySnapshot, result: CallResult & { readonly ok: false }): CallResult {
  const error = result.error;
  const fault = errorKind(error.code) === 'fault';
  const message = hidePaths(gateway, error.message, fault);
  const hint = hidePaths(gateway, error.hint, fault);
  const text = hidePaths(gateway, result.text, fault);
  if (message === error.message && hint === error.hint && text === result.text && !('path' in error.details)) return result;
  const { path: _path, ...details } = error.details;
  return { ...result, error: new DrawbridgeError(error.code, message, { hint, details }), text };
}
