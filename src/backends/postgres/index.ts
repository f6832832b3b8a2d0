// The PostgreSQL backend behind the `run_sql` tool: declaration schema, pure
// parse (libpg-query + classify), resolve against the server's catalog
// (qualified tables, function volatility, column lineage) and brokered
// execution on a pool whose credentials never leave this module. Every client
// is used through a lease (lease.ts) with its own 'error' listener: a session
// that dies under a call (a restart, a failover, pg_terminate_backend) ends
// that call — never the gateway process — with backend.connection_lost, or
// backend.interrupted once COMMIT was sent, saying what the database kept.

import pg from 'pg';
import { z } from 'zod';
import {
  defineBackend,
  TEXT_PART,
  type BackendConnection,
  type PoolStats,
  type ExecuteContext,
  type ImpactPreview,
  type ParsedRequest,
  type PreviewContext,
  type ProbeContext,
  type ProbeResult,
  type TabularResult,
} from '../backend.js';
import { resolveSecret, secretRefSchema, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatDuration, formatSize, sizeSchema } from '../../config/units.js';
import { DrawbridgeError } from '../../errors.js';
import { list, loadParser, parseSql, stringList, unwrap, walk, type AstObject } from './ast.js';
import { Catalog, carriesTableData, type FunctionInfo } from './catalog.js';
import { classifyStatement, SQL_OPERATIONS, type Classification, type TableRef } from './classify.js';
import { connectError, requirePostgresUrl, type ConnectTarget } from './connect.js';
import { POSTGRES_ERRORS } from './errors.js';
import {
  lossReason,
  runStatement,
  ServerError,
  sessionEnded,
  sessionLost,
  sqlstateOf,
  StatementInterrupted,
  typeName,
  type Limits,
  type RunMode,
} from './execute.js';
import { harmlessVolatile } from './functions.js';
import { checkout, type Lease } from './lease.js';
import { analyzeLineage, OPAQUE, type Lineage, type RelationColumns } from './lineage.js';
import { ANY_TABLE, matchesSql, redactQuotedSql, SQL_EXPLAIN, SQL_MATCH_SHAPE, sqlPreviewDecision } from './policy.js';
import { planPreview, previewStatement, sampleSizeOf } from './preview.js';

const DEFAULT_LIMITS = { timeout: 10_000, lock_timeout: 2_000, max_rows: 500, max_bytes: 1024 * 1024, max_affected_rows: 100 };

const postgresConnectionSchema = z.strictObject({
  kind: z.literal('connection'),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore'),
  type: z.literal('postgres'),
  description: z.string().min(1),
  url: secretRefSchema,
  limits: z
    .strictObject({
      timeout: durationSchema.optional(),
      lock_timeout: durationSchema.optional(),
      max_rows: z.number().int().positive().max(100_000).optional(),
      // An answer carries the data twice (text table + structuredContent) and MCP
      // clients drop messages over 10 MiB (the TypeScript SDK closes the connection).
      max_bytes: sizeSchema
        .refine((n) => n <= 4 * 1024 * 1024, 'at most 4MiB: an answer carries the data twice and MCP clients drop messages over 10 MiB')
        .optional(),
      max_affected_rows: z.number().int().nonnegative().optional(),
    })
    .default({}),
  pool: z.strictObject({ max: z.number().int().positive().max(100).default(4) }).default({ max: 4 }),
});

type PostgresConnectionDeclaration = z.output<typeof postgresConnectionSchema>;

/** The backend's own facts about a request (ParsedRequest.detail). */
export type SqlDetail = {
  readonly sql: string;
  readonly stmt: AstObject;
  readonly classification: Classification;
  readonly lineage: Lineage | null;
  /** Calls code the gateway cannot see into (a VOLATILE function): the session is not reused after it. */
  readonly runsOpaqueCode?: boolean;
  /** Functions called, qualified where known: what `functions:` rules match. */
  readonly functions: readonly string[];
};

/** Schemas whose functions are the server's own; a function anywhere else is code the gateway cannot see. */
const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog']);
/** Schemas of the server's own views, whose definitions read server state through built-ins. */
const SYSTEM_VIEW_SCHEMAS: ReadonlySet<string> = new Set(['pg_catalog', 'information_schema']);

/**
 * Names that PostgreSQL may resolve as a call of a one-argument function through
 * attribute notation: `o.f` and `(o).f` mean `f(o)` when `f` is not a column of
 * `o`. These calls have no FuncCall node, so the classifier does not see them.
 */
function attributeNotationNames(stmt: AstObject): string[] {
  const names = new Set<string>();
  walk(stmt, ({ type, node }) => {
    if (type === 'ColumnRef') {
      const fields = list(node['fields']);
      const last = unwrap(fields[fields.length - 1], 'String');
      if (fields.length >= 2 && last && typeof last['sval'] === 'string') names.add(last['sval']);
    } else if (type === 'A_Indirection') {
      for (const name of stringList(node['indirection'])) names.add(name);
    }
  });
  return [...names];
}

function limitsOf(c: PostgresConnectionDeclaration): Limits {
  return {
    timeoutMs: c.limits.timeout ?? DEFAULT_LIMITS.timeout,
    lockTimeoutMs: c.limits.lock_timeout ?? DEFAULT_LIMITS.lock_timeout,
    maxRows: c.limits.max_rows ?? DEFAULT_LIMITS.max_rows,
    maxBytes: c.limits.max_bytes ?? DEFAULT_LIMITS.max_bytes,
    maxAffectedRows: c.limits.max_affected_rows ?? DEFAULT_LIMITS.max_affected_rows,
  };
}

function tableName(t: TableRef): string {
  return t.schema === null ? t.name : `${t.schema}.${t.name}`;
}

function summarise(c: Classification, tables: readonly string[]): string {
  const on = tables.length > 0 ? ` on ${tables.join(', ')}` : '';
  return `${c.operation} (${c.access})${on}`;
}

/**
 * What a call was doing on its session when that session ended, which decides
 * what the agent is told about the database's state.
 */
type Activity = 'read' | 'write' | 'autocommit' | 'dry-run' | 'probe';

/** A function as a statement names it: schema-qualified or found on the search_path. */
type FunctionName = { readonly schema: string | null; readonly name: string };

/** What one catalog read found: the relations a statement names (and, through views, uses), and the functions those views call. */
interface CatalogRead {
  readonly relations: ReadonlyMap<string, RelationColumns | undefined>;
  /** Functions called inside the definitions of views the statement reads (run as part of it). */
  readonly viewFunctions: ReadonlyArray<FunctionName & { readonly system: boolean }>;
  readonly viewAttributeCalls: readonly FunctionName[];
}

/** What the functions a statement may call make of it. */
interface FunctionEffects {
  readonly escalations: Array<{ operation: string; access: 'write'; reason: string }>;
  /** VOLATILE functions the statement may call: what they write is invisible to the gateway. */
  readonly volatileCalls: string[];
  /** Functions outside pg_catalog the statement may call: what they read is invisible too. */
  readonly userCalls: string[];
}

/** What happened, in words, from the SQLSTATE the server ended the session with (if any). */
function whatHappened(sqlstate: string | null): string {
  switch (sqlstate) {
    case '57P01':
      return 'PostgreSQL ended the session: the server is shutting down or restarting, or an administrator terminated the session';
    case '57P02':
      return 'PostgreSQL ended the session because another server process crashed';
    case '57P03':
      return 'PostgreSQL is not accepting connections (it is starting up or shutting down)';
    default:
      return 'the connection closed without an answer: the server went away (a restart or a failover) or the network dropped it';
  }
}

/** Pure: SQL text → request. Exactly one statement, or a coded refusal. */
export function parseRunSql(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<SqlDetail> {
  const sql = input['sql'];
  if (typeof sql !== 'string') throw new TypeError('sql must be a string (validated by the input schema)');
  if (sql.trim() === '') throw new DrawbridgeError('sql.empty', 'The SQL is empty.');
  // libpg-query reads a C string and stops at the first NUL, so the classifier would see
  // only the text before it; PostgreSQL never accepts NUL in SQL text anyway.
  if (sql.includes('\u0000')) throw new DrawbridgeError('sql.parse_error', 'The SQL contains a NUL character, which PostgreSQL does not accept.');
  let stmts;
  try {
    stmts = parseSql(sql).stmts;
  } catch (error) {
    const e = error as Error & { sqlDetails?: { cursorPosition?: number } };
    const at = e.sqlDetails?.cursorPosition;
    throw new DrawbridgeError(
      'sql.parse_error',
      `The SQL does not parse as PostgreSQL: ${e.message}${typeof at === 'number' && at >= 0 ? ` (at character ${at + 1})` : ''}.`,
    );
  }
  if (stmts.length === 0) throw new DrawbridgeError('sql.empty', 'The SQL contains no statement (only comments or semicolons).');
  if (stmts.length > 1) {
    throw new DrawbridgeError('sql.multiple_statements', `The SQL contains ${stmts.length} statements; the gateway runs exactly one per call.`, {
      details: { statements: stmts.length },
    });
  }
  const stmt = (stmts[0] as { stmt: AstObject }).stmt;
  let classification: Classification;
  try {
    classification = classifyStatement(stmt);
  } catch (error) {
    // Any stack exhaustion while walking a pathological tree refuses the statement (fail closed).
    if (error instanceof RangeError)
      throw new DrawbridgeError('sql.parse_error', 'The statement is nested too deeply for the gateway to classify; it is refused.');
    throw error;
  }
  const tables = classification.tables.map(tableName);
  const functions = classification.functions.map((f) => (f.schema ? `${f.schema}.${f.name}` : f.name));
  const detail: SqlDetail = { sql, stmt, classification, lineage: null, functions };
  return {
    tool: context.tool,
    toolType: 'run_sql',
    connection: context.connection,
    operation: classification.operation,
    access: classification.access,
    resources: tables,
    reads: [],
    summary: summarise(classification, tables),
    reasons: classification.reasons,
    input: { connection: context.connection, sql },
    detail,
  };
}

class PostgresConnection implements BackendConnection<SqlDetail> {
  private readonly pool: pg.Pool;
  private readonly catalog = new Catalog();
  private readonly limits: Limits;

  constructor(
    readonly declaration: PostgresConnectionDeclaration,
    url: string,
    private readonly target: ConnectTarget,
  ) {
    this.name = declaration.name;
    this.limits = limitsOf(declaration);
    this.pool = new pg.Pool({
      connectionString: url,
      max: declaration.pool.max,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 5_000,
      application_name: 'drawbridge',
    });
    // An idle client dying (the server restarting, an idle session terminated) must
    // not crash the gateway: pg-pool has already removed it and connects afresh for
    // the next call. Checked-out clients have their lease's own listener (lease.ts).
    this.pool.on('error', () => undefined);
  }

  readonly name: string;

  /** A client for one piece of work, with its own 'error' listener until released. */
  private lease(): Promise<Lease> {
    // The driver's message can contain the host; it never contains the password.
    return checkout(this.pool, (error) => connectError(error, this.name, this.target));
  }

  /**
   * The agent-facing error when the session ended under `activity` (or the
   * server stopped answering), or null when `error` is something else. Says
   * what happened and what the database may have kept.
   */
  private interruption(error: unknown, lease: Lease, activity: Activity): DrawbridgeError | null {
    const fault = lease.fault();
    let how: StatementInterrupted['how'];
    let applied: StatementInterrupted['applied'];
    let reason: string;
    let sqlstate: string | null;
    if (error instanceof StatementInterrupted) {
      ({ how, applied, reason, sqlstate } = error);
    } else if (sessionLost(error, fault)) {
      // Outside runStatement nothing that commits is in flight: a catalog query, a preview's lookups.
      how = 'connection-lost';
      applied = 'nothing';
      const cause = sessionEnded(error) ? error : fault;
      reason = lossReason(cause);
      sqlstate = sqlstateOf(cause);
    } else {
      return null;
    }
    lease.discard();
    const details = { connection: this.name, applied, ...(sqlstate ? { sqlstate } : {}) };
    if (applied === 'unknown') {
      // SAFETY: COMMIT (or a statement that commits by itself) was sent and its answer never came.
      const sent = activity === 'autocommit' ? 'the statement (which commits by itself) was sent' : 'COMMIT was sent';
      const lostHow =
        how === 'no-answer'
          ? `${this.name} gave no answer after ${sent} (${reason}); the gateway dropped the session`
          : `the connection to ${this.name} was lost after ${sent} and before PostgreSQL answered (${reason}); ${whatHappened(sqlstate)}`;
      return new DrawbridgeError(
        'backend.interrupted',
        `${capitalise(lostHow)}. Whether the write was applied is UNKNOWN: the server may have ` +
          `committed it. Check with a read whether the change is there before doing anything else.`,
        { details },
      );
    }
    const kept: Record<Activity, string> = {
      read: 'It was a read in a read-only transaction: nothing was changed.',
      probe: 'The check ran a read in a read-only transaction: nothing was changed.',
      'dry-run': 'It was the dry run of a write for its approval preview, which is always rolled back: nothing was changed, and the write itself was not run.',
      write:
        'It was a write and it was NOT committed: the session ended before COMMIT was sent, so PostgreSQL rolled the transaction back and nothing changed.',
      autocommit: 'The statement had not been sent yet: nothing was changed.',
    };
    if (how === 'no-answer') {
      const notCommitted: Record<Activity, string> = {
        ...kept,
        write: 'It was a write and it was NOT committed: COMMIT was never sent, and PostgreSQL rolls the transaction back when it notices the session is gone.',
      };
      return new DrawbridgeError('backend.timeout', `${this.name} gave no answer (${reason}); the gateway dropped the session. ${notCommitted[activity]}`, {
        details,
      });
    }
    return new DrawbridgeError(
      'backend.connection_lost',
      `The connection to ${this.name} was lost during the call (${reason}): ${whatHappened(sqlstate)}. ${kept[activity]}`,
      { details },
    );
  }

  async resolve(request: ParsedRequest<SqlDetail>): Promise<ParsedRequest<SqlDetail>> {
    const detail = request.detail;
    const c = detail.classification;
    const attributeCalls = attributeNotationNames(detail.stmt).map((name) => ({ schema: null, name }));
    const needsCatalog = c.tables.length > 0 || c.functions.length > 0 || attributeCalls.length > 0;
    const read = needsCatalog ? await this.readCatalog(c, attributeCalls) : null;
    const effects: FunctionEffects = read ? this.functionEffects(c, attributeCalls, read) : { escalations: [], volatileCalls: [], userCalls: [] };
    const lookup = (schema: string | null, name: string) => read?.relations.get(Catalog.relationKey(schema, name)) ?? this.catalog.cachedRelation(schema, name);
    const qualified = c.tables.map((t) => {
      const rel = lookup(t.schema, t.name);
      return rel ? `${rel.schema}.${rel.name}` : tableName(t);
    });
    const functions = c.functions.map((f) => {
      const overloads = this.catalog.cachedFunctions(f.schema, f.name) ?? [];
      const schemas = [...new Set(overloads.map((o) => o.schema))];
      return schemas.length === 1 ? `${schemas[0]}.${f.name}` : f.schema ? `${f.schema}.${f.name}` : f.name;
    });
    const lineage = analyzeLineage(detail.stmt, {
      relation: (schema, name) => lookup(schema, name),
      functionSchemas: (schema, name) => this.catalog.cachedFunctions(schema, name)?.map((o) => o.schema),
    });
    const { escalations, volatileCalls, userCalls } = effects;
    const escalated = escalations[0];
    const access = escalated ? escalated.access : request.access;
    const operation = escalated ? escalated.operation : request.operation;
    const opaqueReasons = [...new Set(volatileCalls)].map((f) => `calls ${f}(), a VOLATILE function: the tables it writes are unknown`);
    const resources = [...new Set([...qualified, ...(volatileCalls.length > 0 ? [ANY_TABLE] : [])])];
    // What an error or notice may quote: every column read, and anything at all when
    // the statement runs functions defined outside pg_catalog (they read what they like)
    // or reads catalog columns that hold other tables' values (pg_stats).
    const reads = new Set(lineage.referenced);
    if (userCalls.length > 0 || [...reads].some(carriesTableData)) reads.add(OPAQUE);
    return {
      ...request,
      access,
      operation,
      resources,
      reads: [...reads],
      reasons: [...new Set([...request.reasons, ...escalations.map((e) => e.reason), ...opaqueReasons])],
      summary: summarise({ ...c, access, operation }, resources),
      detail: { ...detail, lineage, runsOpaqueCode: volatileCalls.length > 0, functions: [...new Set(functions)] } satisfies SqlDetail,
    };
  }

  /** Reads the catalog a statement needs on a leased session, retrying once on a fresh one when a pooled session had already ended. */
  private async readCatalog(c: Classification, attributeCalls: readonly FunctionName[]): Promise<CatalogRead> {
    const ended = (error: unknown, lease: Lease): boolean => sessionLost(error, lease.fault());
    let lease = await this.lease();
    try {
      try {
        return await this.readCatalogOn(lease.client, c, attributeCalls);
      } catch (error) {
        if (!ended(error, lease)) throw error;
        // A pooled session the server had already ended (a restart, a failover, an idle
        // session terminated) can be handed out before its end was seen. These are the
        // gateway's own read-only metadata queries, so they alone are retried, once, on a
        // fresh session; the agent's statement is never retried.
        lease.discard();
        lease.release();
        lease = await this.lease();
        return await this.readCatalogOn(lease.client, c, attributeCalls);
      }
    } catch (error) {
      lease.discard();
      if (error instanceof DrawbridgeError) throw error;
      if (ended(error, lease)) {
        // Only the gateway's own metadata reads were on this session; the agent's statement was never sent.
        const cause = sessionEnded(error) ? error : lease.fault();
        throw new DrawbridgeError(
          'backend.unavailable',
          `The connection to ${this.name} was lost while the gateway read the catalog (${lossReason(cause)}): ` +
            `${whatHappened(sqlstateOf(cause))}. The statement was not sent: nothing was changed.`,
          {
            details: { connection: this.name, applied: 'nothing' },
            cause: error,
          },
        );
      }
      throw new DrawbridgeError('backend.unavailable', `Cannot read the catalog of ${this.name}: ${(error as Error).message}`, { cause: error });
    } finally {
      lease.release();
    }
  }

  /** One attempt: each starts over, so nothing half-read from a session that died is kept. */
  private async readCatalogOn(client: pg.PoolClient, c: Classification, attributeCalls: readonly FunctionName[]): Promise<CatalogRead> {
    const relations = new Map<string, RelationColumns | undefined>();
    const viewFunctions: Array<FunctionName & { system: boolean }> = [];
    const viewAttributeCalls: FunctionName[] = [];
    // Relations, then the relations their view definitions use, to a fixed depth.
    let pending: Array<{ schema: string | null; name: string }> = [...c.tables];
    for (let depth = 0; depth < 16 && pending.length > 0; depth++) {
      await this.catalog.loadRelations(client, pending);
      const next: Array<{ schema: string | null; name: string }> = [];
      for (const t of pending) {
        const rel = this.catalog.cachedRelation(t.schema, t.name);
        relations.set(Catalog.relationKey(t.schema, t.name), rel);
        if (rel?.view) {
          const inner = classifyStatement(rel.view);
          for (const ref of inner.tables) if (!relations.has(Catalog.relationKey(ref.schema, ref.name))) next.push(ref);
          // The server's own views (pg_locks, pg_settings) call volatile built-ins to read its state.
          const system = SYSTEM_VIEW_SCHEMAS.has(rel.schema);
          viewFunctions.push(...inner.functions.map((f) => ({ ...f, system })));
          if (!system) viewAttributeCalls.push(...attributeNotationNames(rel.view).map((name) => ({ schema: null, name })));
        }
      }
      pending = next;
    }
    await this.catalog.loadFunctions(client, [...c.functions, ...attributeCalls, ...viewFunctions, ...viewAttributeCalls]);
    return { relations, viewFunctions, viewAttributeCalls };
  }

  /**
   * What the functions a statement may call (directly, inside the views it reads,
   * or through attribute notation) make of it. Overloads are not resolved by
   * argument types here, so any volatile one counts.
   */
  private functionEffects(c: Classification, attributeCalls: readonly FunctionName[], read: CatalogRead): FunctionEffects {
    const effects: FunctionEffects = { escalations: [], volatileCalls: [], userCalls: [] };
    const consider = (overloads: readonly FunctionInfo[], how: (f: FunctionInfo) => string) => {
      const user = overloads.find((o) => !SYSTEM_SCHEMAS.has(o.schema));
      if (user) effects.userCalls.push(`${user.schema}.${user.name}`);
      const volatile = overloads.find((o) => o.volatility === 'v' && !harmlessVolatile(o.schema, o.name));
      if (!volatile) return;
      effects.volatileCalls.push(`${volatile.schema}.${volatile.name}`);
      if (c.access === 'read')
        effects.escalations.push({ operation: c.operation, access: 'write', reason: `${how(volatile)}, which the server marks VOLATILE (it may change data)` });
    };
    for (const f of c.functions) {
      const overloads = this.catalog.cachedFunctions(f.schema, f.name) ?? [];
      const shown = f.schema ? `${f.schema}.${f.name}` : f.name;
      if (overloads.length === 0) {
        throw new DrawbridgeError('sql.unknown_function', `Function ${shown}() does not exist on ${this.name} (or is not on its search_path).`);
      }
      consider(overloads, (o) => `calls ${o.schema}.${o.name}()`);
    }
    // A view runs the functions in its definition.
    for (const f of read.viewFunctions)
      if (!f.system) consider(this.catalog.cachedFunctions(f.schema, f.name) ?? [], (o) => `reads a view that calls ${o.schema}.${o.name}()`);
    // `o.f` / `(o).f` may call f(o): a column name that is also a one-argument function counts as a call.
    for (const f of [...attributeCalls, ...read.viewAttributeCalls]) {
      const oneArgument = (this.catalog.cachedFunctions(f.schema, f.name) ?? []).filter((o) => o.nargs === 1);
      consider(oneArgument, (o) => `may call ${o.schema}.${o.name}() through attribute notation (.${f.name})`);
    }
    return effects;
  }

  async execute(request: ParsedRequest<SqlDetail>, context: ExecuteContext): Promise<TabularResult> {
    const detail = request.detail;
    const c = detail.classification;
    if (request.access === 'unknown') throw new TypeError('unknown access must be denied before execute');
    const mode: RunMode = request.access === 'read' ? 'read' : c.needsAutocommit ? 'autocommit' : 'write';
    const limits: Limits = {
      ...this.limits,
      maxAffectedRows: context.maxAffectedRows ?? this.limits.maxAffectedRows,
      // Never run past a grant's expiry: statement_timeout is the remaining time.
      timeoutMs: Math.max(1, Math.min(this.limits.timeoutMs, context.timeLimitMs ?? Infinity)),
    };
    const lease = await this.lease();
    const client = lease.client;
    // Volatile functions may leave session state behind (SET, PREPARE, temp tables) that a COMMIT keeps.
    if (c.touchesSession || request.access === 'admin' || detail.runsOpaqueCode === true) lease.discard();
    try {
      const { result, discard: mustDiscard } = await runStatement(
        client,
        detail.sql,
        mode,
        limits,
        () => lease.discard(),
        () => lease.fault(),
      );
      if (mustDiscard) lease.discard();
      const origins = await this.catalog
        .columnOrigins(
          client,
          result.fields.map((f) => f.tableID),
        )
        .catch((error: unknown) => {
          lease.discard();
          if (mode === 'read') throw error;
          // SAFETY: the write is committed; the answer must not suggest otherwise. Without the
          // column origins the returned rows cannot be masked with confidence, so they are withheld.
          const lost = sessionLost(error, lease.fault());
          const why = lost
            ? `the connection was lost right after (${lossReason(sessionEnded(error) ? error : (lease.fault() ?? error))})`
            : `reading the catalog failed (${lossReason(error)})`;
          throw new DrawbridgeError(
            lost ? 'backend.connection_lost' : 'backend.error',
            `The write on ${this.name} was COMMITTED ` +
              `(${result.command}${result.rowCount === null ? '' : `, ${result.rowCount} row(s)`}), but ${why} before its ` +
              `answer could be prepared, so the returned rows are withheld. Do not repeat it.`,
            {
              details: { connection: this.name, applied: 'committed' },
              cause: error,
            },
          );
        });
      const outputs = detail.lineage?.outputs;
      const aligned = outputs && outputs.length === result.fields.length ? outputs : null;
      const fallback = detail.lineage ? detail.lineage.referenced : new Set([OPAQUE]);
      const columns = result.fields.map((f, i) => {
        const sources = new Set(aligned?.[i] ?? fallback);
        const origin = origins.get(f.tableID)?.get(f.columnID);
        if (origin) sources.add(`${origin.schema}.${origin.table}.${origin.column}`);
        // Statistics hold sample values of every analysed column: their origin is unknown.
        if ([...sources].some(carriesTableData)) sources.add(OPAQUE);
        return { name: f.name, type: typeName(f.dataTypeID), sources: [...sources] };
      });
      if (c.operation === 'ddl' || c.operation === 'admin') this.catalog.invalidate();
      return {
        columns,
        rows: result.rows,
        command: result.command,
        affectedRows: request.access === 'read' ? null : result.rowCount,
        truncated: result.truncated ? { ...result.truncated, hint: 'add a WHERE clause or LIMIT to see the rest' } : null,
        notices: result.notices,
        bytes: result.bytes,
      };
    } catch (error) {
      const translated = this.interruption(error, lease, mode) ?? this.translate(error, () => lease.discard());
      if (
        translated.code === 'backend.timeout' &&
        translated.details['sqlstate'] === '57014' &&
        limits.timeoutMs < this.limits.timeoutMs &&
        context.timeLimitMs !== undefined
      ) {
        throw new DrawbridgeError(
          'backend.timeout',
          `The statement was cancelled when the grant it ran under expired (after ${formatDuration(limits.timeoutMs)}); a grant never outlives its expiry.`,
          { hint: 'Call again to ask for a new approval.', details: translated.details },
        );
      }
      throw translated;
    } finally {
      lease.release();
    }
  }

  async preview(request: ParsedRequest<SqlDetail>, context: PreviewContext): Promise<ImpactPreview> {
    if (request.access !== 'write') throw new TypeError(`only writes are previewed; this request's access is ${request.access}`);
    const detail = request.detail;
    const c = detail.classification;
    if (c.needsAutocommit) throw new TypeError('a statement that cannot run in a transaction cannot be dry-run');
    sampleSizeOf(context);
    const plan = planPreview(detail.stmt);
    // The server would not say how many rows it changes: nothing to learn from running it unapproved.
    if (plan.kind === 'uncountable') return { affectedRows: null, sample: [], sampleColumns: [], note: plan.note };
    const limits: Limits = { ...this.limits, maxAffectedRows: context.maxAffectedRows ?? this.limits.maxAffectedRows };
    const lease = await this.lease();
    // As in execute: session state a volatile function may leave behind must not reach the next caller.
    if (c.touchesSession || detail.runsOpaqueCode === true) lease.discard();
    try {
      return await previewStatement(
        { client: lease.client, catalog: this.catalog, limits, markDirty: () => lease.discard(), fault: () => lease.fault() },
        detail,
        plan,
        context,
      );
    } catch (error) {
      throw this.interruption(error, lease, 'dry-run') ?? this.translate(error, () => lease.discard());
    } finally {
      lease.release();
    }
  }

  private translate(error: unknown, markBroken: () => void): DrawbridgeError {
    if (error instanceof DrawbridgeError) {
      if (error.code === 'backend.timeout') markBroken();
      return error;
    }
    if (error instanceof ServerError) {
      // PostgreSQL quotes the values it puts in a message; the masker relies on that.
      // Text that is data without quotes is quoted here: the detail (an XML parser's
      // echo of the input, a failing row), and the message and hint of an error a
      // function raised itself (RAISE EXCEPTION 'bad %', value). The parts are joined
      // with TEXT_PART, which data cannot contain, so the masker treats each alone.
      const raised = error.sqlstate.startsWith('P0') || /\bat RAISE\b/.test(error.where ?? '');
      const text = [
        raised ? `raised by a function: "${error.message}"` : error.message,
        error.detail && `Detail: "${error.detail}"`,
        error.hint && (raised ? `Hint: "${error.hint}"` : `Hint: ${error.hint}`),
      ]
        .filter(Boolean)
        .join(TEXT_PART);
      if (error.sqlstate === '57014') {
        return new DrawbridgeError('backend.timeout', `The statement was cancelled after ${formatDuration(this.limits.timeoutMs)} (statement_timeout).`, {
          details: { sqlstate: error.sqlstate },
        });
      }
      if (error.sqlstate === '55P03') {
        return new DrawbridgeError(
          'backend.timeout',
          `The statement waited longer than ${formatDuration(this.limits.lockTimeoutMs)} for a lock (lock_timeout).`,
          { details: { sqlstate: error.sqlstate } },
        );
      }
      if (error.sqlstate === '25006') {
        return new DrawbridgeError('backend.error', `The database refused a change inside the read-only transaction: ${text}`, {
          details: { sqlstate: error.sqlstate },
        });
      }
      if (error.sqlstate.startsWith('08') || error.sqlstate.startsWith('57P')) markBroken();
      return new DrawbridgeError('backend.error', `PostgreSQL error ${error.sqlstate}: ${text}`, { details: { sqlstate: error.sqlstate } });
    }
    markBroken();
    return new DrawbridgeError('backend.unavailable', `The connection to ${this.name} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }

  /**
   * Connects through the pool as a call would, then runs the gateway's own
   * read path (BEGIN READ ONLY, the SET LOCAL limits, ROLLBACK) with a query of
   * the server's version and the login role's attributes.
   */
  async probe(context: ProbeContext): Promise<ProbeResult> {
    const lease = await this.lease();
    try {
      const limits: Limits = { ...this.limits, timeoutMs: Math.max(1, Math.min(this.limits.timeoutMs, context.timeoutMs)), maxRows: 1 };
      const { result } = await runStatement(
        lease.client,
        PROBE_SQL,
        'read',
        limits,
        () => lease.discard(),
        () => lease.fault(),
      );
      const row = result.rows[0];
      if (!row) throw new DrawbridgeError('backend.error', `The login role of ${this.name} is not in pg_roles; cannot tell what it may do.`);
      const [version, database, role, superuser, bypassRls, standby, readOnly] = row;
      const warnings: string[] = [];
      if (superuser === true) {
        warnings.push(
          `role ${String(role)} is a SUPERUSER: the database cannot be the second wall behind the gateway's ` +
            `policy (a superuser ignores grants and row-level security and can reach the server's files ` +
            `and programs); connect the gateway as a least-privilege role granted only what agents may use`,
        );
      } else if (bypassRls === true) {
        warnings.push(`role ${String(role)} has BYPASSRLS: row-level security policies do not apply to the gateway's queries`);
      }
      const summary = [
        // server_version may carry the packager's suffix ("15.4 (Debian 15.4-1)"): the facts keep it.
        `PostgreSQL ${String(version).split(' ')[0]} at ${this.target.host}:${this.target.port}, database ${String(database)}`,
        `role ${String(role)} (${superuser === true ? 'SUPERUSER' : 'not a superuser'})`,
        readOnly === 'on' ? 'reads run in a read-only transaction' : 'the read-only transaction did not take effect',
        ...(standby === true ? ['a standby: writes will fail'] : []),
      ].join(', ');
      if (readOnly !== 'on') throw new DrawbridgeError('backend.error', `${summary}: BEGIN READ ONLY did not make the transaction read-only on ${this.name}.`);
      return {
        summary,
        warnings,
        facts: {
          serverVersion: String(version),
          database: String(database),
          role: String(role),
          superuser: superuser === true,
          bypassRls: bypassRls === true,
          standby: standby === true,
          readOnlyTransaction: true,
        },
      };
    } catch (error) {
      throw this.interruption(error, lease, 'probe') ?? this.translate(error, () => lease.discard());
    } finally {
      lease.release();
    }
  }

  /** pg-pool's own counts: clients open, idle in the pool, and calls queued for one (pool.max reached). */
  stats(): PoolStats {
    return { total: this.pool.totalCount, idle: this.pool.idleCount, waiting: this.pool.waitingCount };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The probe's one query, run on the gateway's read path: who the gateway is on this server. */
const PROBE_SQL = `SELECT pg_catalog.current_setting('server_version') AS server_version, pg_catalog.current_database()::text AS database,
  r.rolname::text AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypass_rls, pg_catalog.pg_is_in_recovery() AS standby,
  pg_catalog.current_setting('transaction_read_only') AS read_only
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`;

export const postgres = defineBackend({
  type: 'postgres',
  toolType: 'run_sql',
  operations: SQL_OPERATIONS,
  connectionSchema: postgresConnectionSchema,
  inputShape: {
    sql: z.string().describe('Exactly one PostgreSQL statement. Reads run in a read-only transaction; no transaction control or session settings.'),
  },
  example: { connection: 'shop', input: { sql: 'delete from orders' } },
  toolDescription:
    'Run one SQL statement on a PostgreSQL database through the Drawbridge gateway. Policy decides ' +
    'what is allowed by who you are; sensitive values in results are masked; every call is journaled.',
  describeConnection(c) {
    const l = limitsOf(c);
    return `${c.description} (PostgreSQL; at most ${l.maxRows} rows / ${formatSize(l.maxBytes)} per answer, ${formatDuration(l.timeoutMs)} per statement)`;
  },
  parse: parseRunSql,
  secretsOf(c): readonly SecretRef[] {
    return [c.url];
  },
  connect(c, environment) {
    const url = resolveSecret(c.url, environment);
    // Refused here, before the driver would read a stray value as a host name.
    return new PostgresConnection(c, url, requirePostgresUrl(url, c.url, c.name));
  },
  matchShape: SQL_MATCH_SHAPE,
  matches: matchesSql,
  explain: SQL_EXPLAIN,
  // libpg-query's WebAssembly must be loaded before the first parse.
  init: loadParser,
  previewDecision: sqlPreviewDecision,
  errors: POSTGRES_ERRORS,
  redactQuoted: redactQuotedSql,
});
