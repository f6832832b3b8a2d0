// Impact previews for SQL writes: the statement is dry-run inside BEGIN READ
// WRITE under the same limits as execution and always rolled back. The command
// tag says how many rows it would change; for a top-level UPDATE or DELETE the
// primary keys of the affected rows are sampled by running the same statement
// with ` RETURNING <primary key>` appended — only after re-parsing shows the
// amended text is the very same statement plus that list. Sample values are
// masked by the caller's hook before they leave, or withheld without one.
//
// A dry run executes the write before anyone approved it. Everything a ROLLBACK
// undoes is undone (rows, triggers' writes, advisory locks); what it does not undo
// — sequence values drawn by nextval(), effects outside the database — remains.

import type { PoolClient } from 'pg';
import type { Cell, ColumnInfo, ImpactPreview, PreviewContext, TabularResult } from '../backend.js';
import { DrawbridgeError } from '../../errors.js';
import { isObject, list, nodeType, parseSql, quoteIdent, stringList, unwrap, walk, type AstObject } from './ast.js';
import { Catalog } from './catalog.js';
import { runStatement, ServerError, typeName, type Limits, type RawResult } from './execute.js';

const DEFAULT_SAMPLE_SIZE = 5;

/** What the preview needs of the backend's request detail. */
interface PreviewStatement {
  readonly sql: string;
  readonly stmt: AstObject;
  /** The statement calls VOLATILE functions the gateway cannot see into. */
  readonly runsOpaqueCode?: boolean;
}

/** The table an UPDATE/DELETE writes, as written, and how RETURNING must name it. */
interface PreviewTarget {
  readonly schema: string | null;
  readonly name: string;
  /** The column qualifier for RETURNING: the alias, else the name as written. */
  readonly qualifier: readonly string[];
}

type PreviewPlan =
  /** The server reports no count for it: nothing is run. */
  | { readonly kind: 'uncountable'; readonly note: string }
  /** Dry-run for the count only. */
  | { readonly kind: 'count'; readonly note?: string }
  /** Dry-run for the count and a sample of the target's primary keys. */
  | { readonly kind: 'sample'; readonly target: PreviewTarget };

const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

const NOT_RUN = 'it was not dry-run';

/** Pure: how a write statement can be previewed. */
export function planPreview(stmt: AstObject): PreviewPlan {
  const type = nodeType(stmt);
  if (type === 'ExplainStmt') {
    return { kind: 'uncountable', note: `EXPLAIN ANALYZE reports a plan, not how many rows the write it runs changes; ${NOT_RUN}` };
  }
  let nested: string | null = null;
  walk(stmt, ({ type: t, ancestors }) => {
    if (nested === null && ancestors.length > 0 && DML.has(t)) nested = t.replace(/Stmt$/, '').toUpperCase();
  });
  if (nested !== null) {
    return {
      kind: 'uncountable',
      note: `the statement writes inside a WITH clause (a data-modifying ${nested}), whose changed rows the server does not count; ${NOT_RUN}`,
    };
  }
  if (type === null || !DML.has(type)) {
    return {
      kind: 'uncountable',
      note:
        `a ${type === 'SelectStmt' ? 'SELECT' : (type ?? 'statement')} that may write ` +
        `(through VOLATILE functions or row locks) reports no count of changed rows; ${NOT_RUN}`,
    };
  }
  if (type === 'InsertStmt' || type === 'MergeStmt') return { kind: 'count' };
  const top = stmt[type] as AstObject;
  if (list(top['returningList']).length > 0) return { kind: 'count', note: 'sample unavailable: statement has RETURNING' };
  const relation = isObject(top['relation']) ? top['relation'] : null;
  const name = relation?.['relname'];
  if (!relation || typeof name !== 'string') return { kind: 'count', note: 'sample unavailable: the target table is not named plainly' };
  const schema = typeof relation['schemaname'] === 'string' ? relation['schemaname'] : null;
  const catalog = typeof relation['catalogname'] === 'string' ? relation['catalogname'] : null;
  const alias = isObject(relation['alias']) && typeof relation['alias']['aliasname'] === 'string' ? relation['alias']['aliasname'] : null;
  const qualifier = alias !== null ? [alias] : [...(catalog !== null ? [catalog] : []), ...(schema !== null ? [schema] : []), name];
  return { kind: 'sample', target: { schema, name, qualifier } };
}

/** The tree without source positions (and, for the amended text, without its RETURNING list). */
function shape(stmt: AstObject, dropReturning: boolean): string {
  const type = nodeType(stmt);
  const copy: AstObject = type !== null && dropReturning ? { [type]: { ...(stmt[type] as AstObject), returningList: undefined } } : stmt;
  return JSON.stringify(copy, (key, value: unknown) => (key === 'location' ? undefined : value));
}

/**
 * Pure: `sql` (one UPDATE or DELETE without RETURNING) with `RETURNING <columns>`
 * appended, or null when the amended text is not exactly that statement plus the list.
 */
export function returningVariant(sql: string, original: AstObject, qualifier: readonly string[], columns: readonly string[]): string | null {
  const type = nodeType(original);
  if ((type !== 'UpdateStmt' && type !== 'DeleteStmt') || columns.length === 0) return null;
  let stmts;
  try {
    stmts = parseSql(sql).stmts;
  } catch {
    return null;
  }
  const only = stmts[0];
  if (stmts.length !== 1 || !only) return null;
  // libpg-query's positions are byte offsets into the UTF-8 text; a length of 0 means "to the end".
  const bytes = Buffer.from(sql, 'utf8');
  const start = only.stmt_location ?? 0;
  const end = only.stmt_len ? start + only.stmt_len : bytes.length;
  if (start < 0 || end > bytes.length || start >= end) return null;
  let text = bytes.subarray(start, end).toString('utf8').trimEnd();
  if (text.endsWith(';')) text = text.slice(0, -1);
  const returning = columns.map((c) => [...qualifier, c].map(quoteIdent).join('.'));
  // On a new line: a trailing `-- comment` in the statement cannot swallow the list.
  const variant = `${text}\nRETURNING ${returning.join(', ')}`;
  let amended;
  try {
    amended = parseSql(variant).stmts;
  } catch {
    return null;
  }
  const again = amended[0];
  if (amended.length !== 1 || !again || nodeType(again.stmt) !== type) return null;
  const items = list((again.stmt[type] as AstObject)['returningList']);
  const expected = columns.map((c) => [...qualifier, c]);
  const listed =
    items.length === expected.length &&
    items.every((item, i) => {
      const target = unwrap(item, 'ResTarget');
      const ref = target && target['name'] === undefined ? unwrap(target['val'], 'ColumnRef') : null;
      return ref !== null && JSON.stringify(stringList(ref['fields'])) === JSON.stringify(expected[i]) && list(ref['fields']).length === expected[i]?.length;
    });
  if (!listed || shape(again.stmt, true) !== shape(original, false)) return null;
  return variant;
}

interface TargetKey {
  readonly schema: string;
  readonly name: string;
  readonly rowSecurity: boolean;
  readonly columns: readonly string[];
}

/** The target relation as the server resolves it, with its primary key columns (in key order). */
async function targetKey(client: PoolClient, target: PreviewTarget): Promise<TargetKey | null> {
  const { rows } = await client.query<{ nspname: string; relname: string; relrowsecurity: boolean; pk: string[] }>(
    `SELECT n.nspname::text, c.relname::text, c.relrowsecurity,
            ARRAY(SELECT a.attname::text
                    FROM pg_catalog.pg_index i
                   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                   WHERE i.indrelid = c.oid AND i.indisprimary
                   ORDER BY k.ord) AS pk
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = pg_catalog.to_regclass($1)`,
    [Catalog.relationKey(target.schema, target.name)],
  );
  const row = rows[0];
  return row ? { schema: row.nspname, name: row.relname, rowSecurity: row.relrowsecurity, columns: row.pk } : null;
}

/** Errors after which running the statement again could not help, or would wait as long again. */
function final(error: unknown): boolean {
  if (!(error instanceof ServerError)) return true;
  return error.sqlstate === '57014' || error.sqlstate === '55P03' || error.sqlstate.startsWith('08') || error.sqlstate.startsWith('57P');
}

/** The context's sample size, checked: a bad one is a programmer mistake. */
export function sampleSizeOf(context: PreviewContext): number {
  const size = context.sampleSize ?? DEFAULT_SAMPLE_SIZE;
  if (!Number.isInteger(size) || size < 0) throw new TypeError(`sampleSize must be a non-negative integer, got ${size}`);
  return size;
}

interface PreviewRun {
  readonly client: PoolClient;
  readonly catalog: Catalog;
  readonly limits: Limits;
  /** Called when the session could not be cleaned up: the caller discards the connection. */
  readonly markDirty: () => void;
  /** A socket-level error seen on the client while it is checked out (the session is gone), or null. */
  readonly fault?: () => Error | null;
}

/**
 * Dry-runs the statement per `plan` (never `uncountable`) and builds the preview.
 * Throws the statement's own error (raw: ServerError or DrawbridgeError) and
 * `limits.affected_rows`; in every case the write was rolled back.
 */
export async function previewStatement(run: PreviewRun, statement: PreviewStatement, plan: PreviewPlan, context: PreviewContext): Promise<ImpactPreview> {
  if (plan.kind === 'uncountable') throw new TypeError('an uncountable statement is not dry-run');
  const sampleSize = sampleSizeOf(context);
  const notes: string[] = [];
  if (plan.kind === 'count' && plan.note) notes.push(plan.note);

  let variant: string | null = null;
  let key: TargetKey | null = null;
  if (plan.kind === 'sample') {
    key = await targetKey(run.client, plan.target);
    if (key === null) notes.push(`sample unavailable: ${plan.target.name} is not a table the catalog knows`);
    else if (key.columns.length === 0) notes.push(`sample unavailable: ${key.schema}.${key.name} has no primary key`);
    // With row-level security, RETURNING adds the SELECT policies to the write: the count could differ.
    else if (key.rowSecurity) notes.push(`sample unavailable: ${key.schema}.${key.name} has row-level security`);
    else {
      variant = returningVariant(statement.sql, statement.stmt, plan.target.qualifier, key.columns);
      if (variant === null) notes.push('sample unavailable: RETURNING could not be added to the statement safely');
    }
  }

  const dryRun = async (sql: string, keep: number): Promise<RawResult> =>
    (await runStatement(run.client, sql, 'dry-run', { ...run.limits, maxRows: keep }, run.markDirty, run.fault)).result;

  let result: RawResult;
  let sampled = false;
  if (variant !== null) {
    try {
      result = await dryRun(variant, sampleSize);
      sampled = true;
    } catch (error) {
      // The amended statement must never change the outcome: run the statement as sent,
      // whose error (if it fails too) is the one reported.
      if (final(error)) throw error;
      result = await dryRun(statement.sql, 0);
      notes.push(`sample unavailable: the statement with RETURNING failed (${(error as ServerError).sqlstate})`);
    }
  } else {
    result = await dryRun(statement.sql, 0);
  }

  const affectedRows = result.rowCount;
  if (affectedRows !== null && affectedRows > run.limits.maxAffectedRows) {
    throw new DrawbridgeError(
      'limits.affected_rows',
      `The write would change ${affectedRows} rows, more than the limit of ${run.limits.maxAffectedRows}, ` +
        `so it will not be offered for approval; the dry run was rolled back and nothing changed.`,
      {
        details: { affectedRows, limit: run.limits.maxAffectedRows },
        hint: 'Narrow the WHERE clause so the write changes fewer rows, or split the change.',
      },
    );
  }
  if (statement.runsOpaqueCode) notes.push('the statement calls VOLATILE functions: rows they change elsewhere are not counted');

  let sample: Array<Record<string, Cell>> = [];
  let sampleColumns: string[] = [];
  if (sampled && key !== null) {
    const { columns: pkColumns, schema, name } = key;
    const origins = await run.catalog.columnOrigins(
      run.client,
      result.fields.map((f) => f.tableID),
    );
    const columns: ColumnInfo[] = result.fields.map((f, i) => {
      const sources = new Set<string>();
      const pk = pkColumns[i];
      if (pk !== undefined) sources.add(`${schema}.${name}.${pk}`);
      const origin = origins.get(f.tableID)?.get(f.columnID);
      if (origin) sources.add(`${origin.schema}.${origin.table}.${origin.column}`);
      return { name: f.name, type: typeName(f.dataTypeID), sources: [...sources] };
    });
    sampleColumns = columns.map((c) => c.name);
    const rows = result.rows.slice(0, sampleSize);
    if (rows.length > 0) {
      if (context.mask) {
        const masked = context.mask({
          columns,
          rows,
          command: result.command,
          affectedRows,
          truncated: null,
          notices: [],
          bytes: result.bytes,
        } satisfies TabularResult);
        sample = masked.rows.map((row) => Object.fromEntries(sampleColumns.map((c, i) => [c, row[i] ?? null])));
      } else {
        notes.push('sample withheld: no masking was provided');
      }
    }
  }
  return { affectedRows, sample, sampleColumns, ...(notes.length > 0 ? { note: notes.join('; ') } : {}) };
}
