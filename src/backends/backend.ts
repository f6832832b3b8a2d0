// The contract every backend satisfies. A backend owns one protocol: it turns
// tool arguments into a structured request (pure), enriches it from the live
// system's catalog (resolve), and executes it over connections it brokers.
// Policy, approval, masking and the journal stay generic in the pipeline.

import type { z } from 'zod';
import type { ImpactPreview } from '../approval/approver.js';
import type { SecretEnvironment, SecretRef } from '../config/secrets.js';
import type { DrawbridgeError } from '../errors.js';

/** How much a request can change. `unknown` is always denied by the pipeline. */
export type Access = 'read' | 'write' | 'admin' | 'unknown';

export const ACCESS_LEVELS: readonly Access[] = ['read', 'write', 'admin', 'unknown'];

/** The one structured request all later stages work on. Pure data. */
export interface ParsedRequest {
  readonly tool: string;
  readonly toolType: string;
  readonly connection: string;
  /** Backend vocabulary (select, insert, ddl, transaction, …) or `unknown`. */
  readonly operation: string;
  readonly access: Access;
  /** Named resources touched: qualified tables for SQL. */
  readonly resources: readonly string[];
  /** Functions called, qualified where known. */
  readonly functions: readonly string[];
  /** Every field the request reads (`schema.table.column`): tells the mask stage what an error may carry. */
  readonly reads: readonly string[];
  /** Namespaces touched (Kubernetes); `*` for all namespaces. Absent for backends without namespaces. */
  readonly namespaces?: readonly string[];
  /** Object names touched (Kubernetes) or hosts (SSH). */
  readonly names?: readonly string[];
  /** Programs run (SSH): argv[0] of each command as written (a name or a path). */
  readonly programs?: readonly string[];
  /** The argv of each command of a pipeline (SSH): what `command:` patterns match, word by word. */
  readonly commands?: ReadonlyArray<readonly string[]>;
  /** Only a rule that names this operation may allow or approve it (SSH pipelines, programs that run programs). */
  readonly explicitOnly?: boolean;
  /** One line for humans: approval prompts, the journal, `policy explain`. */
  readonly summary: string;
  /** Why it was classified this way (e.g. "data-modifying CTE"), for explain and refusals. */
  readonly reasons: readonly string[];
  /** The canonical input as the agent sent it (after validation), journaled with detectors applied. */
  readonly input: Readonly<Record<string, unknown>>;
  /** Backend-private facts (syntax tree, lineage); never journaled or shown. */
  readonly detail: unknown;
}

export interface ColumnInfo {
  readonly name: string;
  readonly type: string;
  /** Where the values come from, as `schema.table.column`; what column masking rules match. */
  readonly sources: readonly string[];
}

/** What a backend returns; the mask stage rewrites it before it leaves the gateway. */
export interface TabularResult {
  readonly columns: readonly ColumnInfo[];
  readonly rows: ReadonlyArray<ReadonlyArray<Cell>>;
  /** The command tag (SELECT, UPDATE, …). */
  readonly command: string;
  /** Rows changed by a write, when the backend knows. */
  readonly affectedRows: number | null;
  readonly truncated: null | { readonly reason: 'rows' | 'bytes'; readonly limit: number };
  /** Server notices, masked like everything else. */
  readonly notices: readonly string[];
  /** Size of the raw result in bytes as received. */
  readonly bytes: number;
  /**
   * Values the backend already masked by field before building the rows
   * (Kubernetes Secret data, credential env values, last-applied-configuration,
   * managedFields), per target: the mask stage adds them to the answer's
   * `masked` summary, so it counts every mask, not only the detectors' and
   * column rules'.
   */
  readonly fieldMasks?: ReadonlyArray<{ readonly target: string; readonly count: number }>;
}

export type Cell = string | number | boolean | null;

export interface ExecuteContext {
  /** From the deciding rule, overriding the connection's default for writes. */
  readonly maxAffectedRows?: number;
  /** Hard cap on run time (ms), below the connection's own timeout: a grant's remaining life. */
  readonly timeLimitMs?: number;
  /** The caller, for backends that impersonate it (Kubernetes Impersonate-User/Group). */
  readonly identity?: { readonly subject: string; readonly groups: readonly string[] };
}

export interface PreviewContext {
  /** From the deciding rule, overriding the connection's default: a bigger write is refused, not offered. */
  readonly maxAffectedRows?: number;
  /** Affected keys to show at most (default 5). */
  readonly sampleSize?: number;
  /**
   * Masks the sample of affected keys (the caller's mask stage, for this request).
   * Without it the sample is withheld: keys are data, and nothing leaves unmasked.
   */
  readonly mask?: (result: TabularResult) => TabularResult;
  /** The caller, for backends that impersonate it. */
  readonly identity?: { readonly subject: string; readonly groups: readonly string[] };
}

export interface ProbeContext {
  /** How long one network step of the probe may wait (connecting, a query, a request), in ms. */
  readonly timeoutMs: number;
}

/** Facts for `--json` output: versions, names, flags. Never a secret. */
export type ProbeFacts = Readonly<Record<string, string | number | boolean | null>>;

/**
 * What `drawbridge check --connect` learned from reaching a connection as the
 * gateway would. A connection that cannot be used at all is a thrown
 * DrawbridgeError instead (config.secret_missing, backend.auth_failed, …).
 */
export interface ProbeResult {
  /** One line for humans: what was reached and who the gateway is there, e.g. "PostgreSQL 15.4, role app (not a superuser)". */
  readonly summary: string;
  /** It works, but a wall is weaker than it should be (a superuser role): reported as a warning. */
  readonly warnings: readonly string[];
  /** Set when part of the connection failed (one host of a group): the connection is reported failed with this error. */
  readonly failure?: DrawbridgeError;
  readonly facts: ProbeFacts;
}

/**
 * A backend's brokered connection. Credentials are resolved inside it and never
 * leave: not in descriptions, answers, errors or the journal.
 */
export interface BackendConnection {
  readonly name: string;
  /** Catalog lookups that refine the parsed request (qualified names, function volatility). */
  resolve(request: ParsedRequest): Promise<ParsedRequest>;
  execute(request: ParsedRequest, context: ExecuteContext): Promise<TabularResult>;
  /**
   * Dry-runs a write (access `write` only; anything else is a TypeError) and always
   * rolls it back: how many rows it would change and a masked sample of their keys.
   * Throws `limits.affected_rows` when it would change more than the limit, and the
   * statement's own error when it fails. Backends that cannot dry-run omit it.
   */
  preview?(request: ParsedRequest, context: PreviewContext): Promise<ImpactPreview>;
  /**
   * Reaches the system with the connection's own credentials, exactly as a call
   * would (connect, authenticate, the backend's own start-up checks), without
   * running anything an agent asked for: `drawbridge check --connect`. Throws a
   * DrawbridgeError when the connection cannot be used.
   */
  probe(context: ProbeContext): Promise<ProbeResult>;
  close(): Promise<void>;
}

export interface ConnectionDeclaration {
  readonly kind: 'connection';
  readonly name: string;
  readonly type: string;
  readonly description: string;
}

export interface Backend<C extends ConnectionDeclaration = ConnectionDeclaration> {
  /** Connection `type:` in tools/*.yaml. */
  readonly type: string;
  /** Tool `type:` in tools/*.yaml served by this backend. */
  readonly toolType: string;
  /** Strict zod schema of this backend's connection declaration (kind, name, type included). */
  readonly connectionSchema: z.ZodType<C>;
  /** The operation vocabulary of parse(); rules naming anything else are config errors. */
  readonly operations: readonly string[];
  /** Tool input fields besides `connection` (zod shape), e.g. `{ sql }`. */
  readonly inputShape: z.ZodRawShape;
  /** A sentence for the tool description explaining what the tool does. */
  readonly toolDescription: string;
  /** Extra text about one connection for the tool description (limits). */
  describeConnection(connection: C): string;
  /** Pure: tool arguments → request. Throws DrawbridgeError for input it rejects. */
  parse(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest;
  /** Secret references the connection needs; `check` reports missing ones without printing values. */
  secretsOf(connection: C): readonly SecretRef[];
  /** Opens the brokered connection (lazily connecting); resolves secrets here and only here. */
  connect(connection: C, environment: SecretEnvironment): BackendConnection;
}
