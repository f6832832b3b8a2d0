// What the server says about names in a statement: which relation a name
// resolves to (with its columns and, for views, its parsed definition), what
// functions a name may call (volatility from pg_proc) and which table/column a
// result field comes from. Cached per connection for a short time; cleared
// after any statement that may change the schema.

import type { ClientBase } from 'pg';
import { parseSql, quoteIdent } from './ast.js';
import type { RelationColumns } from './lineage.js';

export interface FunctionInfo {
  readonly schema: string;
  readonly name: string;
  /** 'i' immutable, 's' stable, 'v' volatile — of any visible overload, the worst. */
  readonly volatility: 'i' | 's' | 'v';
  /** Number of declared arguments (attribute notation `o.f` only reaches one-argument functions). */
  readonly nargs: number;
}

interface ColumnOrigin {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
}

const TTL_MS = 60_000;

/**
 * Catalog columns that hold values copied from other tables (planner statistics:
 * most common values, histogram bounds) or other sessions' SQL text. Lineage
 * cannot tell which table's values they are, so they count as of unknown origin.
 */
const TABLE_DATA_COLUMNS: ReadonlySet<string> = new Set([
  ...['most_common_vals', 'histogram_bounds', 'most_common_elems'].flatMap((c) => [`pg_catalog.pg_stats.${c}`, `pg_catalog.pg_stats_ext_exprs.${c}`]),
  'pg_catalog.pg_stats_ext.most_common_vals',
  ...[1, 2, 3, 4, 5].map((n) => `pg_catalog.pg_statistic.stavalues${n}`),
  'pg_catalog.pg_statistic_ext_data.stxdmcv',
  'pg_catalog.pg_statistic_ext_data.stxdexpr',
  'pg_catalog.pg_stat_activity.query',
]);

/** True when a lineage source is a catalog column holding other tables' values. */
export function carriesTableData(source: string): boolean {
  // pg_stat_statements is an extension: installed in whichever schema the operator chose.
  return TABLE_DATA_COLUMNS.has(source) || source.endsWith('.pg_stat_statements.query');
}

interface Cached<T> {
  readonly value: T;
  readonly at: number;
}

export class Catalog {
  private readonly relations = new Map<string, Cached<RelationColumns | null>>();
  private readonly functions = new Map<string, Cached<FunctionInfo[]>>();
  private readonly origins = new Map<number, Cached<ReadonlyMap<number, ColumnOrigin>>>();

  constructor(private readonly now: () => number = Date.now) {}

  invalidate(): void {
    this.relations.clear();
    this.functions.clear();
    this.origins.clear();
  }

  static relationKey(schema: string | null, name: string): string {
    return schema === null ? quoteIdent(name) : `${quoteIdent(schema)}.${quoteIdent(name)}`;
  }

  cachedRelation(schema: string | null, name: string): RelationColumns | undefined {
    return this.fresh(this.relations.get(Catalog.relationKey(schema, name))) ?? undefined;
  }

  /** Looks up relation names (as written) not yet cached; one round trip. */
  async loadRelations(client: ClientBase, names: ReadonlyArray<{ schema: string | null; name: string }>): Promise<void> {
    const keys = [...new Set(names.map((n) => Catalog.relationKey(n.schema, n.name)))].filter((k) => this.fresh(this.relations.get(k)) === undefined);
    if (keys.length === 0) return;
    const { rows } = await client.query<{ key: string; nspname: string; relname: string; relkind: string; viewdef: string | null; columns: string[] }>(
      `SELECT x.key, n.nspname, c.relname, c.relkind,
              CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS viewdef,
              ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
                     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
         FROM unnest($1::text[]) AS x(key)
         JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(x.key)
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace`,
      [keys],
    );
    const at = this.now();
    for (const key of keys) this.relations.set(key, { value: null, at });
    for (const row of rows) {
      let view = null;
      if (row.viewdef !== null) {
        try {
          view = parseSql(row.viewdef).stmts[0]?.stmt ?? null;
        } catch {
          view = null; // unparseable definition: lineage falls back to "everything it reads"
        }
      }
      this.relations.set(row.key, { value: { schema: row.nspname, name: row.relname, kind: row.relkind, columns: row.columns, view }, at });
    }
  }

  cachedFunctions(schema: string | null, name: string): FunctionInfo[] | undefined {
    return this.fresh(this.functions.get(`${schema ?? ''}.${name}`));
  }

  /** Every overload a call by this name may reach (search_path visible ones when unqualified). */
  async loadFunctions(client: ClientBase, refs: ReadonlyArray<{ schema: string | null; name: string }>): Promise<void> {
    const missing = refs.filter((r) => this.cachedFunctions(r.schema, r.name) === undefined);
    if (missing.length === 0) return;
    const { rows } = await client.query<{ i: number; nspname: string; proname: string; provolatile: 'i' | 's' | 'v'; pronargs: number }>(
      `SELECT x.i, n.nspname, p.proname, p.provolatile, p.pronargs::int AS pronargs
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(schema, name, i)
         JOIN pg_catalog.pg_proc p ON p.proname = x.name
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE (x.schema = '' AND pg_catalog.pg_function_is_visible(p.oid)) OR n.nspname = x.schema`,
      [missing.map((r) => r.schema ?? ''), missing.map((r) => r.name)],
    );
    const at = this.now();
    missing.forEach((ref, index) => {
      const found = rows
        .filter((r) => Number(r.i) === index + 1)
        .map((r) => ({ schema: r.nspname, name: r.proname, volatility: r.provolatile, nargs: Number(r.pronargs) }));
      this.functions.set(`${ref.schema ?? ''}.${ref.name}`, { value: found, at });
    });
  }

  /** Table and column names for result fields (RowDescription's table oid and attnum). */
  async columnOrigins(client: ClientBase, tableIds: readonly number[]): Promise<ReadonlyMap<number, ReadonlyMap<number, ColumnOrigin>>> {
    const wanted = [...new Set(tableIds.filter((id) => id > 0))];
    const missing = wanted.filter((id) => this.fresh(this.origins.get(id)) === undefined);
    if (missing.length > 0) {
      const { rows } = await client.query<{ attrelid: number; attnum: number; attname: string; relname: string; nspname: string }>(
        `SELECT a.attrelid::int8::float8 AS attrelid, a.attnum::int AS attnum, a.attname::text, c.relname::text, n.nspname::text
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0`,
        [missing],
      );
      const at = this.now();
      for (const id of missing) {
        const map = new Map<number, ColumnOrigin>();
        for (const r of rows) if (Number(r.attrelid) === id) map.set(Number(r.attnum), { schema: r.nspname, table: r.relname, column: r.attname });
        this.origins.set(id, { value: map, at });
      }
    }
    const out = new Map<number, ReadonlyMap<number, ColumnOrigin>>();
    for (const id of wanted) {
      const value = this.fresh(this.origins.get(id));
      if (value) out.set(id, value);
    }
    return out;
  }

  private fresh<T>(entry: Cached<T> | undefined): T | undefined {
    if (!entry) return undefined;
    return this.now() - entry.at <= TTL_MS ? entry.value : undefined;
  }
}
