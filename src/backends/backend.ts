// The contract every backend satisfies, and defineBackend, which turns one
// backend's typed definition into the uniform Backend the registry lists. A
// backend owns one protocol and its vocabulary: it turns tool arguments into a
// structured request (pure), enriches it from the live system's catalog
// (resolve) and executes it over connections it brokers; it declares its
// policy match keys and their matcher, how `policy explain` shows its
// requests, when a write may be dry-run, its error codes and how its error
// text quotes data. Policy, approval, masking and the journal stay generic.

import { z } from 'zod';
import type { SecretEnvironment, SecretRef } from '../config/secrets.js';
import type { DrawbridgeError, ErrorCatalog } from '../errors.js';
import type { Effect } from '../policy/match.js';

/** How much a request can change. `unknown` is always denied by the pipeline. */
export type Access = 'read' | 'write' | 'admin' | 'unknown';

export const ACCESS_LEVELS: readonly Access[] = ['read', 'write', 'admin', 'unknown'];

/**
 * The one structured request all later stages work on. Pure data. The generic
 * fields are what every stage reads; what only the backend knows (its syntax
 * tree, the namespaces or hosts its policy keys match) is in the typed `detail`.
 */
export interface ParsedRequest<D = unknown> {
  readonly tool: string;
  readonly toolType: string;
  readonly connection: string;
  /** Backend vocabulary (select, insert, ddl, transaction, …) or `unknown`. */
  readonly operation: string;
  readonly access: Access;
  /** Named resources touched, in the backend's words: qualified tables for SQL, `group/resource` for Kubernetes. */
  readonly resources: readonly string[];
  /** Every field the request reads (`schema.table.column`): tells the mask stage what an error may carry. */
  readonly reads: readonly string[];
  /** Only a rule that names this operation may allow or approve it (SSH pipelines, programs that run programs). */
  readonly explicitOnly?: boolean;
  /** One line for humans: approval prompts, the journal, `policy explain`. */
  readonly summary: string;
  /** Why it was classified this way (e.g. "data-modifying CTE"), for explain and refusals. */
  readonly reasons: readonly string[];
  /** The canonical input as the agent sent it (after validation), journaled with detectors applied. */
  readonly input: Readonly<Record<string, unknown>>;
  /** The backend's own facts (syntax tree, lineage, what its policy keys match); never journaled or shown as such. */
  readonly detail: D;
}

/**
 * A column source (ColumnInfo.sources) or read (ParsedRequest.reads) whose origin
 * is unknown (lineage could not establish it): with any column rule in force, the
 * mask stage masks it (fails closed).
 */
export const UNKNOWN_SOURCE = '?';

/**
 * Separates the parts of an error text a backend assembles (message, detail, hint)
 * so that quoted values are masked part by part. NUL: a backend uses it only where
 * data cannot contain it (PostgreSQL text never does); the mask stage turns it into a space.
 */
export const TEXT_PART = '\u0000';

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
  /** The answer was cut at a limit; `hint` says, in the backend's terms, how to see the rest. */
  readonly truncated: null | { readonly reason: 'rows' | 'bytes'; readonly limit: number; readonly hint: string };
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

/** A dry run of a write, rolled back: what approving would change. */
export interface ImpactPreview {
  /** Rows the write would change, or null when the server cannot say (a write inside a CTE). */
  readonly affectedRows: number | null;
  /** A masked sample of the keys of affected rows (UPDATE/DELETE), as column → value. */
  readonly sample: ReadonlyArray<Readonly<Record<string, string | number | boolean | null>>>;
  readonly sampleColumns: readonly string[];
  readonly note?: string;
}

/** Whether an approval's preview may dry-run a write, or what the approver is told instead. */
export type PreviewDecision = { readonly kind: 'dry-run' } | { readonly kind: 'skip'; readonly note: string };

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
export interface BackendConnection<D = unknown> {
  readonly name: string;
  /** Catalog lookups that refine the parsed request (qualified names, function volatility). */
  resolve(request: ParsedRequest<D>): Promise<ParsedRequest<D>>;
  execute(request: ParsedRequest<D>, context: ExecuteContext): Promise<TabularResult>;
  /**
   * Dry-runs a write (access `write` only; anything else is a TypeError) and always
   * rolls it back: how many rows it would change and a masked sample of their keys.
   * Throws `limits.affected_rows` when it would change more than the limit, and the
   * statement's own error when it fails. Backends that cannot dry-run omit it.
   */
  preview?(request: ParsedRequest<D>, context: PreviewContext): Promise<ImpactPreview>;
  /**
   * Reaches the system with the connection's own credentials, exactly as a call
   * would (connect, authenticate, the backend's own start-up checks), without
   * running anything an agent asked for: `drawbridge check --connect`. Throws a
   * DrawbridgeError when the connection cannot be used.
   */
  probe(context: ProbeContext): Promise<ProbeResult>;
  /**
   * The connection's pool as it is now, for /metrics (read at scrape time, so cheap and
   * synchronous; never connects). Backends without a pool of their own omit it.
   */
  stats?(): PoolStats;
  close(): Promise<void>;
}

/** A backend connection's pool: connections open (idle ones included), idle, and calls waiting for one. */
export interface PoolStats {
  readonly total: number;
  readonly idle: number;
  readonly waiting: number;
}

export interface ConnectionDeclaration {
  readonly kind: 'connection';
  readonly name: string;
  readonly type: string;
  readonly description: string;
}

/** A backend's policy keys as parsed from a rule's `match:` (each optional). */
export type MatchOf<S extends z.ZodRawShape> = z.output<z.ZodObject<S, z.core.$strip>>;

/** How `policy explain` shows a backend's request. */
export interface ExplainView<D = unknown> {
  /** Labelled lines after operation and access: what its policy keys match (tables, namespaces, hosts, …). */
  lines(request: ParsedRequest<D>): ReadonlyArray<readonly [label: string, text: string]>;
  /**
   * The facts its policy keys match beyond the generic fields (functions, namespaces,
   * hosts, …): `policy explain --json` shows them with the request, and the journal
   * records them with it. Names and words of the request, never its private detail.
   */
  facts(request: ParsedRequest<D>): Readonly<Record<string, unknown>>;
  /**
   * What a decision made without the catalog (offline, or unreachable) did not check, e.g. "table
   * schemas and function volatility were not checked against the server".
   */
  readonly withoutCatalog: string;
}

/**
 * Replaces each value an error text quotes (in the backend's own format, parts
 * separated by TEXT_PART) unless `keep(value)` says the agent sent it, calling
 * `redacted()` once per value replaced. The mask stage runs it only when the
 * request read masked data (or data of unknown origin).
 */
export type RedactQuoted = (text: string, keep: (value: string) => boolean, redacted: () => void) => string;

/** An example call, for help texts (`drawbridge policy explain --help`): a connection name and the tool input without `connection`. */
export interface BackendExample {
  readonly connection: string;
  readonly input: Readonly<Record<string, string>>;
}

/** What a backend declares; defineBackend turns it into the registry's Backend. */
export interface BackendDefinition<C extends ConnectionDeclaration, D, S extends z.ZodRawShape> {
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
  readonly example: BackendExample;
  /** Extra text about one connection for the tool description (limits). */
  describeConnection(connection: C): string;
  /** Pure: tool arguments → request. Throws DrawbridgeError for input it rejects. */
  parse(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<D>;
  /** Secret references the connection needs; `check` reports missing ones without printing values. */
  secretsOf(connection: C): readonly SecretRef[];
  /** Other files on the gateway host the connection reads (a known_hosts file): hidden from agents like secret files. */
  filesOf?(connection: C): readonly string[];
  /** Opens the brokered connection (lazily connecting); resolves secrets here and only here. */
  connect(connection: C, environment: SecretEnvironment): BackendConnection<D>;
  /**
   * Its policy match keys (each optional, e.g. `tables:`), composed with the generic
   * ones into the rule schema: an unknown key stays an error. Keys are unique across
   * backends. Parsing a key's own output must give it back (lists of patterns do).
   */
  readonly matchShape: S;
  /**
   * Pure: whether the keys a rule sets (at least one of them) accept this request,
   * in the direction that fails safe for the rule's effect (see policy/match.ts).
   * Only ever asked about this backend's requests: on another backend's, its keys never match.
   */
  matches(match: MatchOf<S>, request: ParsedRequest<D>, effect: Effect): boolean;
  readonly explain: ExplainView<D>;
  /** Loads what parse needs before the first call (a parser's WebAssembly). */
  init?(): Promise<void>;
  /** Whether an approval may dry-run this write (when the connection has preview); dry-run when omitted. */
  previewDecision?(request: ParsedRequest<D>): PreviewDecision;
  /** Its own error codes, declared with defineErrorCodes (its errors.ts). */
  readonly errors: ErrorCatalog;
  /** How its error text quotes data, for the mask stage; text passes unchanged when omitted. */
  readonly redactQuoted?: RedactQuoted;
}

/**
 * A rule's keys of one backend, bound to that backend's matcher when the policy is
 * loaded. On another backend's request they never match, whatever the effect: they
 * name things that request does not have (a kubectl command touches no tables), as
 * a key with no values to match never matched before; a rule meant for every tool
 * names no backend key.
 */
export interface BackendMatch {
  /** The backend's tool type. */
  readonly toolType: string;
  /** The keys as parsed from the rule, for tool descriptions. */
  readonly keys: Readonly<Record<string, unknown>>;
  matches(request: ParsedRequest, effect: Effect): boolean;
}

/**
 * A backend as the registry and the generic stages see it: the same members with
 * its connection and request types hidden. Each member checks that what it is
 * given is this backend's (by connection type and tool type: the loader pairs
 * tools with connections of their own backend, so a mismatch is a programmer mistake).
 */
export interface Backend {
  readonly type: string;
  readonly toolType: string;
  readonly connectionSchema: z.ZodType<ConnectionDeclaration>;
  readonly operations: readonly string[];
  readonly inputShape: z.ZodRawShape;
  readonly toolDescription: string;
  readonly example: BackendExample;
  describeConnection(connection: ConnectionDeclaration): string;
  parse(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest;
  secretsOf(connection: ConnectionDeclaration): readonly SecretRef[];
  filesOf(connection: ConnectionDeclaration): readonly string[];
  connect(connection: ConnectionDeclaration, environment: SecretEnvironment): BackendConnection;
  readonly matchShape: z.ZodRawShape;
  /** This backend's keys of a parsed rule match, bound to its matcher; null when the rule sets none of them. */
  bindMatch(match: Readonly<Record<string, unknown>>): BackendMatch | null;
  readonly explain: ExplainView;
  init(): Promise<void>;
  previewDecision(request: ParsedRequest): PreviewDecision;
  readonly errors: ErrorCatalog;
  readonly redactQuoted: RedactQuoted;
}

/** The registry's view of a backend definition: no casts, each member checks what it is given. */
export function defineBackend<C extends ConnectionDeclaration, D, S extends z.ZodRawShape>(definition: BackendDefinition<C, D, S>): Backend {
  const def = definition;
  const isOwnRequest = (request: ParsedRequest): request is ParsedRequest<D> => request.toolType === def.toolType;
  const isOwnDeclaration = (connection: ConnectionDeclaration): connection is C => connection.type === def.type;
  const ownRequest = (request: ParsedRequest): ParsedRequest<D> => {
    if (!isOwnRequest(request)) throw new TypeError(`a ${request.toolType} request reached the ${def.type} backend`);
    return request;
  };
  const ownDeclaration = (connection: ConnectionDeclaration): C => {
    if (!isOwnDeclaration(connection)) throw new TypeError(`connection ${connection.name} of type ${connection.type} reached the ${def.type} backend`);
    return connection;
  };
  const matchKeys = Object.keys(def.matchShape);
  // Not strict: the other keys of the rule are the generic ones and other backends'.
  const ownKeys = z.object(def.matchShape);
  return {
    type: def.type,
    toolType: def.toolType,
    connectionSchema: def.connectionSchema,
    operations: def.operations,
    inputShape: def.inputShape,
    toolDescription: def.toolDescription,
    example: def.example,
    describeConnection: (connection) => def.describeConnection(ownDeclaration(connection)),
    parse: (input, context) => def.parse(input, context),
    secretsOf: (connection) => def.secretsOf(ownDeclaration(connection)),
    filesOf: (connection) => def.filesOf?.(ownDeclaration(connection)) ?? [],
    connect: (connection, environment) => guarded(def.connect(ownDeclaration(connection), environment), ownRequest),
    matchShape: def.matchShape,
    bindMatch(match) {
      const keys = Object.fromEntries(matchKeys.filter((key) => match[key] !== undefined).map((key) => [key, match[key]]));
      if (Object.keys(keys).length === 0) return null;
      // The rule schema validated these keys with this very shape; parsing them again types them.
      const parsed = ownKeys.safeParse(keys);
      if (!parsed.success) throw new TypeError(`the ${def.type} match shape does not accept its own output: ${parsed.error.message}`);
      const own = parsed.data;
      return { toolType: def.toolType, keys, matches: (request, effect) => isOwnRequest(request) && def.matches(own, request, effect) };
    },
    explain: {
      lines: (request) => def.explain.lines(ownRequest(request)),
      facts: (request) => def.explain.facts(ownRequest(request)),
      withoutCatalog: def.explain.withoutCatalog,
    },
    init: async () => {
      await def.init?.();
    },
    previewDecision: (request) => def.previewDecision?.(ownRequest(request)) ?? { kind: 'dry-run' },
    errors: def.errors,
    redactQuoted: def.redactQuoted ?? ((text) => text),
  };
}

/** The connection as the generic stages see it: every request is checked to be its backend's. */
function guarded<D>(connection: BackendConnection<D>, own: (request: ParsedRequest) => ParsedRequest<D>): BackendConnection {
  const preview = connection.preview?.bind(connection);
  const stats = connection.stats?.bind(connection);
  return {
    name: connection.name,
    resolve: (request) => connection.resolve(own(request)),
    execute: (request, context) => connection.execute(own(request), context),
    ...(preview ? { preview: (request: ParsedRequest, context: PreviewContext) => preview(own(request), context) } : {}),
    ...(stats ? { stats } : {}),
    probe: (context) => connection.probe(context),
    close: () => connection.close(),
  };
}
