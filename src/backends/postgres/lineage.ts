// Pure column lineage from the syntax tree: for every output column, the base
// columns (schema.table.column) its value is derived from — through aliases,
// functions, casts, concatenation, whole-row references, aggregates, CTEs,
// subqueries, set operations and views (whose definitions come parsed in the
// catalog snapshot). When something cannot be resolved it errs towards MORE
// sources, never fewer: over-masking is a nuisance, under-masking a leak.
//
// Names are resolved the way PostgreSQL's parser resolves them (parse_relation.c),
// because resolving a name to the wrong column is exactly how a leak happens:
// a column found at any query level beats a whole-row reference; a sub-select in
// FROM sees earlier FROM items only when LATERAL; the target of INSERT / UPDATE /
// DELETE / MERGE is never a CTE; output names follow FigureColname.

import { UNKNOWN_SOURCE } from '../backend.js';
import { body, isObject, list, nodeType, stringList, unwrap, type AstObject } from './ast.js';

/** A source is `schema.table.column`; OPAQUE marks values whose origin is unknown (the mask stage fails closed on it). */
export const OPAQUE = UNKNOWN_SOURCE;

export interface RelationColumns {
  readonly schema: string;
  readonly name: string;
  readonly kind: string;
  /** Column names in attribute order (dropped ones excluded). */
  readonly columns: readonly string[];
  /** Parsed view / materialised view definition (a SelectStmt node), when the relation is one. */
  readonly view: AstObject | null;
}

/** Catalog facts the analysis needs, looked up before (async) so the analysis stays pure. */
export interface LineageCatalog {
  /** Resolves a relation as written (schema may be null: search_path). */
  relation(schema: string | null, name: string): RelationColumns | undefined;
  /**
   * Optional: the schemas of the overloads a call by this name may reach (undefined or
   * empty when unknown). A function outside pg_catalog may read any table, so its value
   * is marked OPAQUE. Without this hook a call's value derives from its arguments only.
   */
  functionSchemas?(schema: string | null, name: string): readonly string[] | undefined;
}

export interface Lineage {
  /** Sources per output column, or null when the output shape could not be aligned. */
  readonly outputs: ReadonlyArray<ReadonlySet<string>> | null;
  /** Every column of every relation the statement reads: what an error message may carry. */
  readonly referenced: ReadonlySet<string>;
}

interface Column {
  readonly name: string | null;
  readonly sources: ReadonlySet<string>;
}

/**
 * One FROM item visible to column references. `open` = width unknown (any name
 * resolves to it). `star` = part of an unqualified `*` (false for the tables inside
 * a join that has its own merged column list).
 */
interface Entry {
  readonly names: readonly string[];
  readonly columns: readonly Column[];
  readonly open: ReadonlySet<string> | null;
  readonly star: boolean;
}

/** What a CTE name stands for: its columns, or (width unknown) everything it read. */
interface Shape {
  readonly columns: readonly Column[] | null;
  readonly reads: ReadonlySet<string>;
}

/** One query level. */
interface Scope {
  readonly entries: readonly Entry[];
  readonly ctes: ReadonlyMap<string, Shape>;
  readonly parent: Scope | null;
}

const EMPTY: ReadonlySet<string> = new Set();
const MAX_VIEW_DEPTH = 16;
/** Rounds of the WITH RECURSIVE fixed point before everything is merged into everything. */
const MAX_ROUNDS = 24;
/** Statement analyses per call; beyond it the analysis gives up (all outputs opaque). */
const MAX_WORK = 20_000;

/** Statements that never carry table data, in results or in error messages. */
const NO_DATA = new Set([
  'TransactionStmt',
  'VariableSetStmt',
  'VariableShowStmt',
  'DiscardStmt',
  'ListenStmt',
  'UnlistenStmt',
  'CheckPointStmt',
  'DeallocateStmt',
  'ClosePortalStmt',
  'LoadStmt',
]);

export function analyzeLineage(stmt: AstObject, catalog: LineageCatalog): Lineage {
  const analyzer = new Analyzer(catalog);
  let outputs: Column[] | null;
  try {
    outputs = analyzer.top(stmt);
  } catch {
    // Gave up half way: what was read so far is incomplete, so the origin is unknown.
    outputs = null;
    analyzer.referenced.add(OPAQUE);
  }
  return { outputs: outputs?.map((c) => c.sources) ?? null, referenced: analyzer.referenced };
}

class Analyzer {
  readonly referenced = new Set<string>();
  private readonly views = new Map<string, { derived: readonly Column[] | null; reads: ReadonlySet<string> }>();
  private work = 0;

  constructor(private readonly catalog: LineageCatalog) {}

  /** The statement the gateway runs: queries are analysed; others say what they may read. */
  top(stmt: AstObject): Column[] | null {
    const type = nodeType(stmt);
    const node = body(stmt);
    if (type === null || node === null) return null;
    switch (type) {
      case 'SelectStmt':
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.statement(stmt, null, 0);
      case 'ExplainStmt':
        // The plan is text about the query, not its data, but EXPLAIN ANALYZE runs the
        // query and its errors can quote values: `referenced` covers what it reads.
        if (isObject(node['query'])) this.top(node['query']);
        return [{ name: 'QUERY PLAN', sources: EMPTY }];
      case 'CreateTableAsStmt':
      case 'DeclareCursorStmt':
      case 'PrepareStmt':
      case 'ViewStmt':
        if (isObject(node['query'])) this.top(node['query']);
        else this.referenced.add(OPAQUE);
        return null;
      case 'CopyStmt':
        if (isObject(node['query'])) this.top(node['query']);
        if (isObject(node['relation'])) this.rangeVar(node['relation'], { entries: [], ctes: new Map(), parent: null }, 0, false);
        return null;
      default:
        // FETCH, EXECUTE, CALL return rows from somewhere the tree does not show, and
        // DDL errors can quote a table's values (a failed ALTER … TYPE, a duplicate key).
        if (!NO_DATA.has(type)) this.referenced.add(OPAQUE);
        return null;
    }
  }

  /** Output columns of a query node (wrapped). */
  statement(stmt: unknown, parent: Scope | null, depth: number): Column[] | null {
    if (++this.work > MAX_WORK) throw new Error('lineage analysis too large');
    const type = nodeType(stmt);
    const node = body(stmt);
    if (type === null || node === null) return null;
    switch (type) {
      case 'SelectStmt':
        return this.select(node, parent, depth);
      case 'InsertStmt':
      case 'UpdateStmt':
      case 'DeleteStmt':
      case 'MergeStmt':
        return this.modify(type, node, parent, depth);
      default:
        this.referenced.add(OPAQUE);
        return null;
    }
  }

  private withScope(node: AstObject, parent: Scope | null, depth: number): Scope {
    const ctes = new Map<string, Shape>(parent?.ctes ?? []);
    const scope: Scope = { entries: [], ctes, parent };
    const withClause = isObject(node['withClause']) ? node['withClause'] : null;
    if (!withClause) return scope;
    const items = list(withClause['ctes']).flatMap((item) => {
      const cte = unwrap(item, 'CommonTableExpr');
      return cte ? [cte] : [];
    });
    if (withClause['recursive'] !== true) {
      // Each item sees only the items before it (and enclosing queries' CTEs).
      for (const cte of items) ctes.set(String(cte['ctename']), this.cteShape(cte, scope, depth));
      return scope;
    }
    // WITH RECURSIVE: every item sees every item, itself included, in any order. Start
    // from "width unknown, reads nothing" and only ever grow the source sets, so the
    // fixed point over-approximates; if it does not settle, everything flows everywhere.
    const names = items.map((cte) => String(cte['ctename']));
    for (const name of names) ctes.set(name, { columns: null, reads: EMPTY });
    for (let round = 0; ; round++) {
      let changed = false;
      items.forEach((cte, i) => {
        const name = names[i] as string;
        const before = ctes.get(name) as Shape;
        const after = grow(before, this.cteShape(cte, scope, depth));
        if (!sameShape(before, after)) changed = true;
        ctes.set(name, after);
      });
      if (!changed) break;
      if (round >= MAX_ROUNDS) {
        const all = union(...names.map((n) => shapeSources(ctes.get(n) as Shape)));
        for (const n of names) {
          const shape = ctes.get(n) as Shape;
          ctes.set(n, { columns: shape.columns?.map((c) => ({ name: c.name, sources: all })) ?? null, reads: all });
        }
        break;
      }
    }
    return scope;
  }

  private cteShape(cte: AstObject, scope: Scope, depth: number): Shape {
    const analysed = this.withReads(() => this.statement(cte['ctequery'], scope, depth));
    const aliases = stringList(cte['aliascolnames']);
    const columns = analysed.outputs?.map((c, i) => ({ name: aliases[i] ?? c.name, sources: c.sources })) ?? null;
    if (columns) {
      // SEARCH and CYCLE append columns built from the row's own values.
      const all = union(...columns.map((c) => c.sources));
      const search = isObject(cte['search_clause']) ? cte['search_clause'] : null;
      if (search) columns.push({ name: strOrNull(search['search_seq_column']), sources: all });
      const cycle = isObject(cte['cycle_clause']) ? cte['cycle_clause'] : null;
      if (cycle) {
        columns.push({ name: strOrNull(cycle['cycle_mark_column']), sources: EMPTY });
        columns.push({ name: strOrNull(cycle['cycle_path_column']), sources: all });
      }
    }
    return { columns, reads: analysed.reads };
  }

  private select(node: AstObject, parent: Scope | null, depth: number): Column[] | null {
    const base = this.withScope(node, parent, depth);
    const op = node['op'];
    if (op !== undefined && op !== 'SETOP_NONE') {
      const left = this.withReads(() => this.statement({ SelectStmt: node['larg'] }, base, depth));
      const right = this.withReads(() => this.statement({ SelectStmt: node['rarg'] }, base, depth));
      // The width is the same on both sides (PostgreSQL checks); when one side cannot be
      // aligned, everything it read flows into every column.
      const other = (arm: { outputs: Column[] | null; reads: ReadonlySet<string> }, i: number): ReadonlySet<string> =>
        arm.outputs && left.outputs && right.outputs && left.outputs.length === right.outputs.length
          ? (arm.outputs[i]?.sources ?? EMPTY)
          : union(arm.reads, ...(arm.outputs ?? []).map((c) => c.sources));
      if (left.outputs) return left.outputs.map((c, i) => ({ name: c.name, sources: union(c.sources, other(right, i)) }));
      if (right.outputs) return right.outputs.map((c, i) => ({ name: null, sources: union(c.sources, other(left, i)) }));
      return null;
    }
    if (node['valuesLists'] !== undefined) {
      const rows = list(node['valuesLists']).map((row) => list(unwrap(row, 'List')?.['items']));
      const width = Math.max(0, ...rows.map((r) => r.length));
      return Array.from({ length: width }, (_, i) => ({
        name: `column${i + 1}`,
        sources: union(...rows.map((r) => this.expr(r[i], base, depth))),
      }));
    }
    const entries: Entry[] = [];
    const scope: Scope = { entries, ctes: base.ctes, parent: base.parent };
    for (const item of list(node['fromClause'])) entries.push(...this.fromItem(item, scope, depth));
    // Every clause is walked so sub-queries add what they read to `referenced`.
    for (const key of ['whereClause', 'havingClause', 'groupClause', 'sortClause', 'distinctClause', 'windowClause', 'limitCount', 'limitOffset']) {
      this.expr(node[key], scope, depth);
    }
    return this.targets(list(node['targetList']), scope, depth);
  }

  private modify(type: string, node: AstObject, parent: Scope | null, depth: number): Column[] | null {
    const base = this.withScope(node, parent, depth);
    const entries: Entry[] = [];
    const scope: Scope = { entries, ctes: base.ctes, parent: base.parent };
    // The target is always a real table: a CTE of the same name does not hide it.
    const relation = isObject(node['relation']) ? node['relation'] : null;
    const target = relation ? this.rangeVar(relation, scope, depth, false) : null;
    if (target) entries.push(target);
    for (const key of ['fromClause', 'usingClause']) for (const item of list(node[key])) entries.push(...this.fromItem(item, scope, depth));
    if (node['sourceRelation'] !== undefined) entries.push(...this.fromItem(node['sourceRelation'], scope, depth));

    // What each target column holds afterwards: RETURNING shows the NEW row, so
    // `UPDATE t SET city = ssn RETURNING city` returns ssn.
    const written = new Map<string, Set<string>>();
    const unattributed = new Set<string>();
    const write = (name: string | null, sources: ReadonlySet<string>) => {
      if (name === null) {
        for (const s of sources) unattributed.add(s);
        return;
      }
      const set = written.get(name) ?? new Set<string>();
      for (const s of sources) set.add(s);
      written.set(name, set);
    };
    const targetNames = target && target.open === null ? target.columns.map((c) => c.name) : null;
    // Positional assignment (INSERT's column list, or all columns in order).
    const assign = (names: ReadonlyArray<string | null> | null, values: Column[] | null, reads: ReadonlySet<string>) => {
      if (values === null || names === null) {
        write(null, union(reads, ...(values ?? []).map((c) => c.sources)));
        return;
      }
      values.forEach((v, i) => write(names[i] ?? null, v.sources));
    };
    const setList = (items: unknown, within: Scope) => {
      for (const item of list(items)) {
        const t = unwrap(item, 'ResTarget');
        if (!t) {
          write(null, this.expr(item, within, depth));
          continue;
        }
        write(typeof t['name'] === 'string' ? t['name'] : null, this.expr(t['val'], within, depth));
        this.expr(t['indirection'], within, depth);
      }
    };
    const columnNames = (cols: unknown): Array<string | null> | null => {
      const names = list(cols).map((c) => {
        const t = unwrap(c, 'ResTarget');
        return t && typeof t['name'] === 'string' ? t['name'] : null;
      });
      return names.length > 0 ? names : targetNames;
    };

    if (type === 'InsertStmt') {
      // INSERT's query cannot see the target table.
      const detached: Scope = { entries: [], ctes: scope.ctes, parent: scope.parent };
      const analysed = this.withReads(() => (node['selectStmt'] === undefined ? [] : this.statement(node['selectStmt'], detached, depth)));
      assign(columnNames(node['cols']), analysed.outputs, analysed.reads);
      const conflict = isObject(node['onConflictClause']) ? node['onConflictClause'] : null;
      if (conflict && target) {
        // `excluded` is the row proposed for insertion.
        const excluded: Entry = {
          names: ['excluded'],
          columns: target.columns.map((c) => ({ name: c.name, sources: union(c.name === null ? EMPTY : (written.get(c.name) ?? EMPTY), unattributed) })),
          open: target.open === null ? null : union(target.open, unattributed, ...written.values()),
          star: false,
        };
        const within: Scope = { entries: [...entries, excluded], ctes: scope.ctes, parent: scope.parent };
        setList(conflict['targetList'], within);
        this.expr(conflict['whereClause'], within, depth);
        this.expr(conflict['infer'], within, depth);
      }
    }
    if (type === 'UpdateStmt') setList(node['targetList'], scope);
    if (type === 'MergeStmt') {
      this.expr(node['joinCondition'], scope, depth);
      for (const item of list(node['mergeWhenClauses'])) {
        const when = unwrap(item, 'MergeWhenClause');
        if (!when) continue;
        this.expr(when['condition'], scope, depth);
        if (when['commandType'] === 'CMD_INSERT') {
          const values = list(when['values']).map((v) => ({ name: null, sources: this.expr(v, scope, depth) }));
          assign(columnNames(when['targetList']), values, EMPTY);
        } else {
          setList(when['targetList'], scope);
        }
      }
    }
    this.expr(node['whereClause'], scope, depth);

    const returning = list(node['returningList']);
    if (returning.length === 0) return [];
    const after: Entry | null = target && {
      names: target.names,
      columns: target.columns.map((c) => ({ name: c.name, sources: union(c.sources, c.name === null ? EMPTY : (written.get(c.name) ?? EMPTY), unattributed) })),
      open: target.open === null ? null : union(target.open, unattributed, ...written.values()),
      star: true,
    };
    const returningScope: Scope = { entries: entries.map((e) => (e === target && after ? after : e)), ctes: scope.ctes, parent: scope.parent };
    return this.targets(returning, returningScope, depth);
  }

  private targets(items: readonly unknown[], scope: Scope, depth: number): Column[] | null {
    const out: Column[] = [];
    let aligned = true;
    for (const item of items) {
      const target = unwrap(item, 'ResTarget');
      if (!target) {
        this.expr(item, scope, depth);
        aligned = false;
        continue;
      }
      const val = target['val'];
      const ref = unwrap(val, 'ColumnRef');
      const fields = ref ? list(ref['fields']) : [];
      const last = fields[fields.length - 1];
      if (ref && nodeType(last) === 'A_Star') {
        // `*` or `t.*`: expands to columns; an entry of unknown width breaks alignment.
        const qualifier = stringList(fields.slice(0, -1));
        const entries = qualifier.length === 0 ? scope.entries.filter((e) => e.star) : this.findEntries(scope, qualifier[qualifier.length - 1] ?? '');
        for (const s of this.expr(val, scope, depth)) this.referenced.add(s);
        if (entries.length === 0 || entries.some((e) => e.open)) aligned = false;
        for (const entry of entries) out.push(...entry.columns);
        continue;
      }
      // Every target is analysed even after alignment is lost, so `referenced` is complete.
      out.push({ name: typeof target['name'] === 'string' ? target['name'] : figureName(val), sources: this.expr(val, scope, depth) });
    }
    return aligned ? out : null;
  }

  private fromItem(item: unknown, scope: Scope, depth: number): Entry[] {
    const type = nodeType(item);
    const node = body(item);
    if (!node) return [];
    switch (type) {
      case 'RangeVar':
        return [this.rangeVar(node, scope, depth, true)];
      case 'RangeSubselect': {
        // Only a LATERAL sub-select sees the FROM items before it: otherwise PostgreSQL
        // skips them and resolves names in the enclosing query instead.
        const sees: Scope = node['lateral'] === true ? scope : { entries: [], ctes: scope.ctes, parent: scope.parent };
        const { outputs, reads } = this.withReads(() => this.statement(node['subquery'], sees, depth));
        return [this.aliased(node, outputs, reads)];
      }
      case 'JoinExpr':
        return this.join(node, scope, depth);
      case 'RangeTableSample':
        this.expr(node['args'], scope, depth);
        this.expr(node['repeatable'], scope, depth);
        return this.fromItem(node['relation'], scope, depth);
      case 'RangeFunction':
      case 'RangeTableFunc':
      case 'JsonTable': {
        // Function results derive from their arguments; their width is not known here.
        const sources = this.expr(node, scope, depth);
        const alias = isObject(node['alias']) ? node['alias'] : null;
        const names = alias && typeof alias['aliasname'] === 'string' ? [alias['aliasname']] : functionNames(node);
        const columnNames = [
          ...stringList(alias?.['colnames']),
          ...list(node['coldeflist']).flatMap((d) => {
            const def = unwrap(d, 'ColumnDef');
            return def && typeof def['colname'] === 'string' ? [def['colname']] : [];
          }),
        ];
        return [{ names, columns: columnNames.map((name) => ({ name, sources })), open: sources, star: true }];
      }
      default: {
        const sources = union(this.expr(node, scope, depth), this.opaque());
        this.referenced.add(OPAQUE);
        return [{ names: [], columns: [], open: sources, star: true }];
      }
    }
  }

  /**
   * A join's tables stay visible by name; its own column list (what `*` and the join
   * alias show) puts USING / NATURAL columns first, merged, then the rest of each side.
   */
  private join(node: AstObject, scope: Scope, depth: number): Entry[] {
    const left = this.fromItem(node['larg'], scope, depth);
    // A LATERAL item on the right may refer to the left side.
    const right = this.fromItem(node['rarg'], { entries: [...scope.entries, ...left], ctes: scope.ctes, parent: scope.parent }, depth);
    const both = [...left, ...right];
    this.expr(node['quals'], { entries: [...scope.entries, ...both], ctes: scope.ctes, parent: scope.parent }, depth);
    const alias = aliasName(node['alias']);
    const usingAlias = aliasName(node['join_using_alias']);
    const natural = node['isNatural'] === true;
    const usingNames = stringList(node['usingClause']);
    if (!natural && usingNames.length === 0 && alias === null) return both;

    const leftColumns = starColumns(left);
    const rightColumns = starColumns(right);
    let columns: Column[] | null = null;
    let merged: Column[] = [];
    if (leftColumns && rightColumns) {
      const common = natural
        ? [...new Set(leftColumns.flatMap((c) => (c.name !== null && rightColumns.some((r) => r.name === c.name) ? [c.name] : [])))]
        : usingNames;
      merged = common.map((name) => ({
        name,
        sources: union(...[...leftColumns, ...rightColumns].filter((c) => c.name === name).map((c) => c.sources)),
      }));
      const rest = (cs: readonly Column[]) => cs.filter((c) => c.name === null || !common.includes(c.name));
      columns = [...merged, ...rest(leftColumns), ...rest(rightColumns)];
    }
    const open = columns ? null : union(...both.map((e) => e.open ?? EMPTY), ...both.flatMap((e) => e.columns.map((c) => c.sources)));
    if (alias !== null) {
      // `(a JOIN b …) AS j(x, y)` hides a and b completely (names and columns) and
      // renames the join's first columns: resolving through a or b would find the
      // wrong column, or find one at this level where PostgreSQL looks further out.
      const renames = stringList(isObject(node['alias']) ? node['alias']['colnames'] : undefined);
      return [{ names: [alias], columns: (columns ?? []).map((c, i) => ({ name: renames[i] ?? c.name, sources: c.sources })), open, star: true }];
    }
    const out: Entry[] = both.map((e) => ({ ...e, star: false }));
    out.push({ names: [], columns: columns ?? [], open, star: true });
    if (usingAlias) out.push({ names: [usingAlias], columns: columns ? merged : [], open, star: false });
    return out;
  }

  /** A relation named in FROM (or a DML target, where CTE names do not apply). */
  private rangeVar(node: AstObject, scope: Scope, depth: number, cteVisible: boolean): Entry {
    const schema = typeof node['schemaname'] === 'string' ? node['schemaname'] : null;
    const name = String(node['relname']);
    if (schema === null && cteVisible) {
      for (let s: Scope | null = scope; s; s = s.parent) {
        const shape = s.ctes.get(name);
        if (!shape) continue;
        // What flows out of the CTE counts as read here, so fallbacks keep it.
        for (const src of shapeSources(shape)) this.referenced.add(src);
        return this.aliased(node, shape.columns ? [...shape.columns] : null, shape.reads, name);
      }
    }
    const columns = this.relationColumns(schema, name, depth);
    if (!columns) this.referenced.add(OPAQUE);
    return this.aliased(node, columns, this.opaque(), name);
  }

  private relationColumns(schema: string | null, name: string, depth: number): Column[] | null {
    const relation = this.catalog.relation(schema, name);
    if (!relation) return null;
    const key = `${relation.schema}.${relation.name}`;
    const own = relation.columns.map((c) => `${key}.${c}`);
    for (const source of own) this.referenced.add(source);
    if (!relation.view) return relation.columns.map((c, i) => ({ name: c, sources: new Set([own[i] as string]) }));
    // A view's columns carry its own name AND what its definition derives them from,
    // so a rule on either masks them (a view that renames email stays masked).
    let view = this.views.get(key);
    if (!view) {
      const analysed = depth >= MAX_VIEW_DEPTH ? { outputs: null, reads: this.opaque() } : this.withReads(() => this.statement(relation.view, null, depth + 1));
      view = { derived: analysed.outputs, reads: analysed.reads };
      this.views.set(key, view);
    }
    for (const s of view.reads) this.referenced.add(s);
    const derived = view.derived;
    // Misaligned (or unanalysable) definition: every column may carry anything it reads.
    const fallback = derived && derived.length === relation.columns.length ? null : view.reads;
    return relation.columns.map((c, i) => ({ name: c, sources: union(new Set([own[i] as string]), fallback ?? derived?.[i]?.sources ?? EMPTY) }));
  }

  /** Applies `AS alias(col, …)` to an entry; unknown shape becomes an open entry. */
  private aliased(node: AstObject, columns: Column[] | null, opaque: ReadonlySet<string>, defaultName?: string): Entry {
    const alias = isObject(node['alias']) ? node['alias'] : null;
    const aliasName = alias && typeof alias['aliasname'] === 'string' ? alias['aliasname'] : null;
    const names = aliasName ? [aliasName] : defaultName ? [defaultName] : [];
    if (!columns) return { names, columns: [], open: opaque, star: true };
    const renames = alias ? stringList(alias['colnames']) : [];
    return { names, columns: columns.map((c, i) => ({ name: renames[i] ?? c.name, sources: c.sources })), open: null, star: true };
  }

  /** Entries with this name at the innermost query level that has any. */
  private findEntries(scope: Scope, name: string): Entry[] {
    for (let s: Scope | null = scope; s; s = s.parent) {
      const found = s.entries.filter((e) => e.names.includes(name));
      if (found.length > 0) return found;
    }
    return [];
  }

  private allVisible(scope: Scope): ReadonlySet<string> {
    const sets: ReadonlySet<string>[] = [];
    for (let s: Scope | null = scope; s; s = s.parent) {
      for (const e of s.entries) sets.push(...e.columns.map((c) => c.sources), e.open ?? EMPTY);
    }
    return union(...sets);
  }

  /**
   * Runs an analysis and also returns every column it read (relations, and what column
   * references resolved to, outer ones included): the fallback when shapes cannot be
   * aligned. What it read stays in `referenced` too.
   */
  private withReads<T>(run: () => T): { outputs: T; reads: ReadonlySet<string> } {
    const saved = [...this.referenced];
    this.referenced.clear();
    try {
      const outputs = run();
      return { outputs, reads: new Set(this.referenced) };
    } finally {
      for (const s of saved) this.referenced.add(s);
    }
  }

  private opaque(): ReadonlySet<string> {
    return new Set([OPAQUE]);
  }

  /** Sources of a column reference; also recorded as read (see withReads). */
  private columnRef(ref: AstObject, scope: Scope): ReadonlySet<string> {
    const sources = this.resolve(ref, scope);
    for (const s of sources) this.referenced.add(s);
    return sources;
  }

  private resolve(ref: AstObject, scope: Scope): ReadonlySet<string> {
    const fields = list(ref['fields']);
    const names = stringList(fields);
    const star = nodeType(fields[fields.length - 1]) === 'A_Star';
    if (star) {
      const qualifier = names[names.length - 1];
      const entries = qualifier === undefined ? scope.entries : this.findEntries(scope, qualifier);
      return entries.length ? wholeRows(entries) : this.allVisible(scope);
    }
    if (names.length === 1) return this.unqualified(names[0] as string, scope) ?? this.allVisible(scope);
    // `q.col`: q is a relation at the innermost level that has one, else a composite
    // column (`(c).field` written as `c.field`); three or more names may be
    // schema.table.col or table.col.field: every reading that resolves counts.
    const readings: ReadonlySet<string>[] = [];
    const column = names[names.length - 1] as string;
    const relational = this.qualified(names[names.length - 2] as string, column, scope);
    if (relational) readings.push(relational);
    if (names.length >= 3) {
      const tableColumnField = this.qualified(names[0] as string, names[1] as string, scope);
      if (tableColumnField) readings.push(tableColumnField);
    }
    if (!relational) {
      const composite = this.unqualified(names[0] as string, scope);
      if (composite) readings.push(composite);
    }
    return readings.length > 0 ? union(...readings) : this.allVisible(scope);
  }

  /** `rel.col`: null when no relation of that name is visible. */
  private qualified(qualifier: string, column: string, scope: Scope): ReadonlySet<string> | null {
    const entries = this.findEntries(scope, qualifier);
    if (entries.length === 0) return null;
    const hits = entries.flatMap((e) => e.columns.filter((c) => c.name === column).map((c) => c.sources));
    const open = entries.flatMap(unsure);
    if (hits.length > 0) return union(...hits, ...open);
    // Unknown column: a system column, or attribute notation `c.fn` meaning fn(c): the
    // whole row, and opaque when fn may be a function outside pg_catalog.
    return union(wholeRows(entries), ...open, this.userFunction([column], true) ? this.opaque() : EMPTY);
  }

  /**
   * A bare name, as PostgreSQL resolves it: a column of that name at the innermost
   * level that has one (any level beats a whole-row reference); only when no level
   * has such a column, a whole-row reference to a relation of that name. Entries of
   * unknown width, and columns whose name is unknown, passed on the way might be the
   * one, so they are included. Null when nothing resolves.
   */
  private unqualified(column: string, scope: Scope): ReadonlySet<string> | null {
    const maybe: ReadonlySet<string>[] = [];
    for (let s: Scope | null = scope; s; s = s.parent) {
      const hits = s.entries.flatMap((e) => e.columns.filter((c) => c.name === column).map((c) => c.sources));
      maybe.push(...s.entries.flatMap(unsure));
      if (hits.length > 0) return union(...hits, ...maybe);
    }
    for (let s: Scope | null = scope; s; s = s.parent) {
      const rows = s.entries.filter((e) => e.names.includes(column));
      if (rows.length > 0) return union(wholeRows(rows), ...maybe);
    }
    return maybe.length > 0 ? union(...maybe, this.allVisible(scope)) : null;
  }

  /**
   * True when a call may reach a function outside pg_catalog (which may read any table).
   * For attribute notation (`c.name`, `(c).name`), no function of that name means it is
   * a field, not a call; for a written call, an unknown function is opaque.
   */
  private userFunction(parts: readonly string[], attribute = false): boolean {
    const lookup = this.catalog.functionSchemas;
    const name = parts[parts.length - 1];
    if (!lookup || name === undefined) return false;
    const schemas = lookup.call(this.catalog, parts.length > 1 ? (parts[parts.length - 2] ?? null) : null, name);
    const opaque = schemas === undefined ? true : schemas.length === 0 ? !attribute : schemas.some((s) => s !== 'pg_catalog');
    // What it reads is unknown, and so is what its errors may quote.
    if (opaque) this.referenced.add(OPAQUE);
    return opaque;
  }

  /** Sources of any expression: every column reference inside it, sub-queries included. */
  expr(value: unknown, scope: Scope, depth: number): ReadonlySet<string> {
    const out = new Set<string>();
    const go = (v: unknown): void => {
      if (Array.isArray(v)) {
        for (const item of v) go(item);
        return;
      }
      if (!isObject(v)) return;
      const type = nodeType(v);
      if (type === null) {
        for (const child of Object.values(v)) go(child);
        return;
      }
      const node = v[type] as AstObject;
      switch (type) {
        case 'ColumnRef':
          for (const s of this.columnRef(node, scope)) out.add(s);
          return;
        case 'A_Indirection':
          // `(row).name` may be attribute notation for name(row).
          if (stringList(node['indirection']).some((name) => this.userFunction([name], true))) out.add(OPAQUE);
          for (const child of Object.values(node)) go(child);
          return;
        case 'SubLink': {
          const analysed = this.withReads(() => this.statement(node['subselect'], scope, depth));
          go(node['testexpr']);
          // EXISTS/ANY/ALL yield booleans; only expression and ARRAY sub-links carry values out.
          if (node['subLinkType'] === 'EXPR_SUBLINK' || node['subLinkType'] === 'ARRAY_SUBLINK' || node['subLinkType'] === 'MULTIEXPR_SUBLINK') {
            const sources = analysed.outputs ? union(...analysed.outputs.map((c) => c.sources)) : analysed.reads;
            for (const s of sources) out.add(s);
          }
          return;
        }
        case 'FuncCall': {
          const parts = stringList(node['funcname']);
          const opaque = this.userFunction(parts);
          if (opaque) out.add(OPAQUE);
          const name = parts.join('.');
          // count() reports how many, never a value; every other function may pass values through.
          if ((name === 'count' || name === 'pg_catalog.count') && node['over'] === undefined && !opaque) {
            for (const child of Object.values(node)) this.expr(child, scope, depth);
            return;
          }
          for (const child of Object.values(node)) go(child);
          return;
        }
        case 'SelectStmt':
        case 'InsertStmt':
        case 'UpdateStmt':
        case 'DeleteStmt':
        case 'MergeStmt': {
          const outputs = this.statement(v, scope, depth);
          if (outputs) for (const c of outputs) for (const s of c.sources) out.add(s);
          return;
        }
        default:
          for (const child of Object.values(node)) go(child);
      }
    };
    go(value);
    return out;
  }
}

/** What a name might resolve to in this entry besides its named columns: unknown width, unknown names. */
function unsure(entry: Entry): ReadonlySet<string>[] {
  const unnamed = entry.columns.filter((c) => c.name === null).map((c) => c.sources);
  return entry.open ? [entry.open, ...unnamed] : unnamed;
}

function wholeRows(entries: readonly Entry[]): ReadonlySet<string> {
  return union(...entries.flatMap((e) => [...e.columns.map((c) => c.sources), e.open ?? EMPTY]));
}

/** Columns an unqualified `*` over these entries shows; null when a width is unknown. */
function starColumns(entries: readonly Entry[]): Column[] | null {
  const shown = entries.filter((e) => e.star);
  if (shown.some((e) => e.open)) return null;
  return shown.flatMap((e) => e.columns);
}

function union(...sets: ReadonlyArray<ReadonlySet<string>>): Set<string> {
  const out = new Set<string>();
  for (const s of sets) for (const v of s) out.add(v);
  return out;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((v) => b.has(v));
}

function shapeSources(shape: Shape): ReadonlySet<string> {
  return shape.columns ? union(...shape.columns.map((c) => c.sources)) : shape.reads;
}

/** The next round of a recursive CTE: never loses a source the last round had. */
function grow(before: Shape, after: Shape): Shape {
  const reads = union(before.reads, after.reads);
  if (!after.columns) return { columns: null, reads: union(reads, shapeSources(before)) };
  if (!before.columns || before.columns.length !== after.columns.length) {
    const carried = before.columns ? shapeSources(before) : EMPTY;
    return { columns: after.columns.map((c) => ({ name: c.name, sources: union(c.sources, carried) })), reads };
  }
  const previous = before.columns;
  return { columns: after.columns.map((c, i) => ({ name: c.name, sources: union(c.sources, previous[i]?.sources ?? EMPTY) })), reads };
}

function sameShape(a: Shape, b: Shape): boolean {
  if (!sameSet(a.reads, b.reads)) return false;
  if (a.columns === null || b.columns === null) return a.columns === b.columns;
  const bc = b.columns;
  return a.columns.length === bc.length && a.columns.every((c, i) => c.name === bc[i]?.name && sameSet(c.sources, bc[i]?.sources ?? EMPTY));
}

function strOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function aliasName(value: unknown): string | null {
  return isObject(value) && typeof value['aliasname'] === 'string' ? value['aliasname'] : null;
}

function functionNames(node: AstObject): string[] {
  const names: string[] = [];
  for (const f of list(node['functions'])) {
    for (const item of list(unwrap(f, 'List')?.['items'])) {
      const call = unwrap(item, 'FuncCall');
      const parts = call ? stringList(call['funcname']) : [];
      const last = parts[parts.length - 1];
      if (last) names.push(last);
    }
  }
  return names;
}

/** PostgreSQL gives the column a name this analysis cannot tell (a scalar `SELECT *` sub-select). */
const UNKNOWN = -1;

/** PostgreSQL's FigureColname: the name an unnamed output column gets; null when unknown here. */
function figureName(val: unknown): string | null {
  const [name, strength] = figure(val);
  if (strength === UNKNOWN) return null;
  return strength > 0 && name !== null ? name : '?column?';
}

const SQL_VALUE_FUNCTIONS: Readonly<Record<string, string>> = {
  SVFOP_CURRENT_DATE: 'current_date',
  SVFOP_CURRENT_TIME: 'current_time',
  SVFOP_CURRENT_TIME_N: 'current_time',
  SVFOP_CURRENT_TIMESTAMP: 'current_timestamp',
  SVFOP_CURRENT_TIMESTAMP_N: 'current_timestamp',
  SVFOP_LOCALTIME: 'localtime',
  SVFOP_LOCALTIME_N: 'localtime',
  SVFOP_LOCALTIMESTAMP: 'localtimestamp',
  SVFOP_LOCALTIMESTAMP_N: 'localtimestamp',
  SVFOP_CURRENT_ROLE: 'current_role',
  SVFOP_CURRENT_USER: 'current_user',
  SVFOP_USER: 'user',
  SVFOP_SESSION_USER: 'session_user',
  SVFOP_CURRENT_CATALOG: 'current_catalog',
  SVFOP_CURRENT_SCHEMA: 'current_schema',
};

const XML_FUNCTIONS: Readonly<Record<string, string>> = {
  IS_XMLCONCAT: 'xmlconcat',
  IS_XMLELEMENT: 'xmlelement',
  IS_XMLFOREST: 'xmlforest',
  IS_XMLPARSE: 'xmlparse',
  IS_XMLPI: 'xmlpi',
  IS_XMLROOT: 'xmlroot',
  IS_XMLSERIALIZE: 'xmlserialize',
};

const NAMED_NODES: Readonly<Record<string, string>> = {
  GroupingFunc: 'grouping',
  MergeSupportFunc: 'merge_action',
  A_ArrayExpr: 'array',
  RowExpr: 'row',
  CoalesceExpr: 'coalesce',
  XmlSerialize: 'xmlserialize',
  JsonParseExpr: 'json',
  JsonScalarExpr: 'json_scalar',
  JsonSerializeExpr: 'json_serialize',
  JsonObjectConstructor: 'json_object',
  JsonArrayConstructor: 'json_array',
  JsonArrayQueryConstructor: 'json_array',
  JsonObjectAgg: 'json_objectagg',
  JsonArrayAgg: 'json_arrayagg',
};

/** FigureColnameInternal: [name, strength] (0 none, 1 weak: case / type name, 2 strong, or UNKNOWN). */
function figure(val: unknown): [string | null, number] {
  const type = nodeType(val);
  const node = body(val);
  if (type === null || node === null) return [null, 0];
  const named = NAMED_NODES[type];
  if (named !== undefined) return [named, 2];
  switch (type) {
    case 'ColumnRef':
    case 'A_Indirection': {
      const names = stringList(node[type === 'ColumnRef' ? 'fields' : 'indirection']);
      const last = names[names.length - 1];
      if (last !== undefined) return [last, 2];
      return type === 'A_Indirection' ? figure(node['arg']) : [null, 0];
    }
    case 'FuncCall': {
      const names = stringList(node['funcname']);
      return [names[names.length - 1] ?? null, 2];
    }
    case 'A_Expr':
      return node['kind'] === 'AEXPR_NULLIF' ? ['nullif', 2] : [null, 0];
    case 'TypeCast': {
      const inner = figure(node['arg']);
      if (inner[1] > 1 || inner[1] === UNKNOWN) return inner;
      const typeName = isObject(node['typeName']) ? node['typeName'] : null;
      const names = stringList(typeName?.['names']);
      const last = names[names.length - 1];
      return last !== undefined ? [last, 1] : inner;
    }
    case 'CollateClause':
      return figure(node['arg']);
    case 'SubLink':
      switch (node['subLinkType']) {
        case 'EXISTS_SUBLINK':
          return ['exists', 2];
        case 'ARRAY_SUBLINK':
          return ['array', 2];
        case 'EXPR_SUBLINK': {
          const first = firstTargetName(node['subselect']);
          return first === null ? [null, UNKNOWN] : [first, 2];
        }
        default:
          return [null, 0];
      }
    case 'CaseExpr': {
      const inner = figure(node['defresult']);
      return inner[1] > 1 || inner[1] === UNKNOWN ? inner : ['case', 1];
    }
    case 'MinMaxExpr':
      return node['op'] === 'IS_GREATEST' ? ['greatest', 2] : node['op'] === 'IS_LEAST' ? ['least', 2] : [null, 0];
    case 'SQLValueFunction': {
      const name = SQL_VALUE_FUNCTIONS[String(node['op'])];
      return name === undefined ? [null, 0] : [name, 2];
    }
    case 'XmlExpr': {
      const name = XML_FUNCTIONS[String(node['op'])];
      return name === undefined ? [null, 0] : [name, 2];
    }
    case 'JsonFuncExpr': {
      const name = ({ JSON_EXISTS_OP: 'json_exists', JSON_QUERY_OP: 'json_query', JSON_VALUE_OP: 'json_value' } as Record<string, string>)[String(node['op'])];
      return name === undefined ? [null, 0] : [name, 2];
    }
    default:
      return [null, 0];
  }
}

/** The name of a scalar sub-select's column (the leftmost arm's first target); null if unknown. */
function firstTargetName(subselect: unknown): string | null {
  let select = unwrap(subselect, 'SelectStmt');
  while (select && select['op'] !== undefined && select['op'] !== 'SETOP_NONE') select = isObject(select['larg']) ? select['larg'] : null;
  const first = unwrap(list(select?.['targetList'])[0], 'ResTarget');
  if (!first) return null;
  if (typeof first['name'] === 'string') return first['name'];
  const ref = unwrap(first['val'], 'ColumnRef');
  if (ref && nodeType(list(ref['fields']).at(-1)) === 'A_Star') return null;
  return figureName(first['val']);
}
