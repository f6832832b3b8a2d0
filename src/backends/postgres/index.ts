// The PostgreSQL backend behind the `run_sql` tool: declaration schema, pure
// parse (libpg-query + classify), resolve against the server's catalog
// (qualified tables, function volatility, column lineage) and brokered
// execution on a pool whose credentials never leave this module.

import pg from 'pg';
import { z } from 'zod';
import type { Backend, BackendConnection, ExecuteContext, ParsedRequest, TabularResult } from '../backend.js';
import { resolveSecret, secretRefSchema, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatDuration, formatSize, sizeSchema } from '../../config/units.js';
import { DrawbridgeError } from '../../errors.js';
import { parseSql, type AstObject } from './ast.js';
import { Catalog } from './catalog.js';
import { classifyStatement, SQL_OPERATIONS, type Classification, type TableRef } from './classify.js';
import { runStatement, ServerError, typeName, type Limits, type RunMode } from './execute.js';
import { harmlessVolatile } from './functions.js';
import { analyzeLineage, OPAQUE, type Lineage, type RelationColumns } from './lineage.js';

const DEFAULT_LIMITS = { timeout: 10_000, lock_timeout: 2_000, max_rows: 500, max_bytes: 1024 * 1024, max_affected_rows: 100 };

export const postgresConnectionSchema = z.strictObject({
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
      max_bytes: sizeSchema.optional(),
      max_affected_rows: z.number().int().nonnegative().optional(),
    })
    .default({}),
  pool: z.strictObject({ max: z.number().int().positive().max(100).default(4) }).default({ max: 4 }),
});

export type PostgresConnectionDeclaration = z.output<typeof postgresConnectionSchema>;

/** Backend-private facts carried in ParsedRequest.detail. */
interface SqlDetail {
  readonly sql: string;
  readonly stmt: AstObject;
  readonly classification: Classification;
  readonly lineage: Lineage | null;
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

/** Pure: SQL text → request. Exactly one statement, or a coded refusal. */
export function parseRunSql(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest {
  const sql = input['sql'];
  if (typeof sql !== 'string') throw new TypeError('sql must be a string (validated by the input schema)');
  if (sql.trim() === '') throw new DrawbridgeError('sql.empty', 'The SQL is empty.');
  let stmts;
  try {
    stmts = parseSql(sql).stmts;
  } catch (error) {
    const e = error as Error & { sqlDetails?: { cursorPosition?: number } };
    const at = e.sqlDetails?.cursorPosition;
    throw new DrawbridgeError('sql.parse_error', `The SQL does not parse as PostgreSQL: ${e.message}${typeof at === 'number' && at >= 0 ? ` (at character ${at + 1})` : ''}.`);
  }
  if (stmts.length === 0) throw new DrawbridgeError('sql.empty', 'The SQL contains no statement (only comments or semicolons).');
  if (stmts.length > 1) {
    throw new DrawbridgeError('sql.multiple_statements', `The SQL contains ${stmts.length} statements; the gateway runs exactly one per call.`, { details: { statements: stmts.length } });
  }
  const stmt = (stmts[0] as { stmt: AstObject }).stmt;
  const classification = classifyStatement(stmt);
  const tables = classification.tables.map(tableName);
  const detail: SqlDetail = { sql, stmt, classification, lineage: null };
  return {
    tool: context.tool,
    toolType: 'run_sql',
    connection: context.connection,
    operation: classification.operation,
    access: classification.access,
    resources: tables,
    functions: classification.functions.map((f) => (f.schema ? `${f.schema}.${f.name}` : f.name)),
    reads: [],
    summary: summarise(classification, tables),
    reasons: classification.reasons,
    input: { connection: context.connection, sql },
    detail,
  };
}

class PostgresConnection implements BackendConnection {
  private readonly pool: pg.Pool;
  private readonly catalog = new Catalog();
  private readonly limits: Limits;

  constructor(
    readonly declaration: PostgresConnectionDeclaration,
    url: string,
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
    // An idle client dying must not crash the gateway; the pool replaces it.
    this.pool.on('error', () => undefined);
  }

  readonly name: string;

  private async client(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch (error) {
      // The driver's message can contain the host; it never contains the password.
      throw new DrawbridgeError('backend.unavailable', `Cannot connect to ${this.name}: ${(error as Error).message}`, { cause: error });
    }
  }

  async resolve(request: ParsedRequest): Promise<ParsedRequest> {
    const detail = request.detail as SqlDetail;
    const c = detail.classification;
    const relations = new Map<string, RelationColumns | undefined>();
    const lookup = (schema: string | null, name: string) => relations.get(Catalog.relationKey(schema, name)) ?? this.catalog.cachedRelation(schema, name);
    const needsCatalog = c.tables.length > 0 || c.functions.length > 0;
    const escalations: Array<{ operation: string; access: 'write'; reason: string }> = [];
    if (needsCatalog) {
      const client = await this.client();
      let broken = false;
      try {
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
            }
          }
          pending = next;
        }
        await this.catalog.loadFunctions(client, c.functions);
      } catch (error) {
        broken = true;
        throw new DrawbridgeError('backend.unavailable', `Cannot read the catalog of ${this.name}: ${(error as Error).message}`, { cause: error });
      } finally {
        client.release(broken);
      }
      for (const f of c.functions) {
        const overloads = this.catalog.cachedFunctions(f.schema, f.name) ?? [];
        const shown = f.schema ? `${f.schema}.${f.name}` : f.name;
        if (overloads.length === 0) {
          throw new DrawbridgeError('sql.unknown_function', `Function ${shown}() does not exist on ${this.name} (or is not on its search_path).`);
        }
        // Overloads are not resolved by argument types here, so any volatile one counts.
        const volatile = overloads.find((o) => o.volatility === 'v' && !harmlessVolatile(o.schema, o.name));
        if (volatile && c.access === 'read') {
          escalations.push({ operation: c.operation, access: 'write', reason: `calls ${volatile.schema}.${volatile.name}(), which the server marks VOLATILE (it may change data)` });
        }
      }
    }
    const qualified = c.tables.map((t) => {
      const rel = lookup(t.schema, t.name);
      return rel ? `${rel.schema}.${rel.name}` : tableName(t);
    });
    const functions = c.functions.map((f) => {
      const overloads = this.catalog.cachedFunctions(f.schema, f.name) ?? [];
      const schemas = [...new Set(overloads.map((o) => o.schema))];
      return schemas.length === 1 ? `${schemas[0]}.${f.name}` : f.schema ? `${f.schema}.${f.name}` : f.name;
    });
    const lineage = analyzeLineage(detail.stmt, { relation: (schema, name) => lookup(schema, name) });
    const escalated = escalations[0];
    const access = escalated ? escalated.access : request.access;
    const operation = escalated ? escalated.operation : request.operation;
    return {
      ...request,
      access,
      operation,
      resources: [...new Set(qualified)],
      functions: [...new Set(functions)],
      reads: [...lineage.referenced],
      reasons: [...request.reasons, ...escalations.map((e) => e.reason)],
      summary: summarise({ ...c, access, operation }, [...new Set(qualified)]),
      detail: { ...detail, lineage } satisfies SqlDetail,
    };
  }

  async execute(request: ParsedRequest, context: ExecuteContext): Promise<TabularResult> {
    const detail = request.detail as SqlDetail;
    const c = detail.classification;
    if (request.access === 'unknown') throw new TypeError('unknown access must be denied before execute');
    const mode: RunMode = request.access === 'read' ? 'read' : c.needsAutocommit ? 'autocommit' : 'write';
    const limits: Limits = { ...this.limits, maxAffectedRows: context.maxAffectedRows ?? this.limits.maxAffectedRows };
    const client = await this.client();
    let discard = c.touchesSession || request.access === 'admin';
    try {
      const { result, discard: mustDiscard } = await runStatement(client, detail.sql, mode, limits);
      discard ||= mustDiscard;
      const origins = await this.catalog.columnOrigins(client, result.fields.map((f) => f.tableID));
      const outputs = detail.lineage?.outputs;
      const aligned = outputs && outputs.length === result.fields.length ? outputs : null;
      const fallback = detail.lineage ? detail.lineage.referenced : new Set([OPAQUE]);
      const columns = result.fields.map((f, i) => {
        const sources = new Set(aligned?.[i] ?? fallback);
        const origin = origins.get(f.tableID)?.get(f.columnID);
        if (origin) sources.add(`${origin.schema}.${origin.table}.${origin.column}`);
        return { name: f.name, type: typeName(f.dataTypeID), sources: [...sources] };
      });
      if (c.operation === 'ddl' || c.operation === 'admin') this.catalog.invalidate();
      return {
        columns,
        rows: result.rows,
        command: result.command,
        affectedRows: request.access === 'read' ? null : result.rowCount,
        truncated: result.truncated,
        notices: result.notices,
        bytes: result.bytes,
      };
    } catch (error) {
      throw this.translate(error, () => (discard = true));
    } finally {
      client.release(discard);
    }
  }

  private translate(error: unknown, markBroken: () => void): DrawbridgeError {
    if (error instanceof DrawbridgeError) {
      if (error.code === 'backend.timeout') markBroken();
      return error;
    }
    if (error instanceof ServerError) {
      const text = [error.message, error.detail && `Detail: ${error.detail}`, error.hint && `Hint: ${error.hint}`].filter(Boolean).join(' ');
      if (error.sqlstate === '57014') {
        return new DrawbridgeError('backend.timeout', `The statement was cancelled after ${formatDuration(this.limits.timeoutMs)} (statement_timeout).`, { details: { sqlstate: error.sqlstate } });
      }
      if (error.sqlstate === '55P03') {
        return new DrawbridgeError('backend.timeout', `The statement waited longer than ${formatDuration(this.limits.lockTimeoutMs)} for a lock (lock_timeout).`, { details: { sqlstate: error.sqlstate } });
      }
      if (error.sqlstate === '25006') {
        return new DrawbridgeError('backend.error', `The database refused a change inside the read-only transaction: ${text}`, { details: { sqlstate: error.sqlstate } });
      }
      if (error.sqlstate.startsWith('08') || error.sqlstate.startsWith('57P')) markBroken();
      return new DrawbridgeError('backend.error', `PostgreSQL error ${error.sqlstate}: ${text}`, { details: { sqlstate: error.sqlstate } });
    }
    markBroken();
    return new DrawbridgeError('backend.unavailable', `The connection to ${this.name} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export const postgres: Backend<PostgresConnectionDeclaration> = {
  type: 'postgres',
  toolType: 'run_sql',
  operations: SQL_OPERATIONS,
  connectionSchema: postgresConnectionSchema as unknown as z.ZodType<PostgresConnectionDeclaration>,
  inputShape: {
    sql: z.string().describe('Exactly one PostgreSQL statement. Reads run in a read-only transaction; no transaction control or session settings.'),
  },
  toolDescription:
    'Run one SQL statement on a PostgreSQL database through the Drawbridge gateway. Policy decides what is allowed by who you are; sensitive values in results are masked; every call is journaled.',
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
    return new PostgresConnection(c, url);
  },
};

