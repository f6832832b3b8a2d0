// Pure column lineage from the syntax tree: for every output column, the base
// columns (schema.table.column) its value is derived from — through aliases,
// functions, casts, concatenation, whole-row references, aggregates, CTEs,
// subqueries, set operations and views (whose definitions come parsed in the
// catalog snapshot). When something cannot be resolved it errs towards MORE
// sources, never fewer: over-masking is a nuisance, under-masking a leak.

import { body, isObject, list, nodeType, stringList, unwrap, type AstObject } from './ast.js';

/** A source is `schema.table.column`; OPAQUE marks values whose origin is unknown. */
export const OPAQUE = '?';

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

/** One FROM item visible to column references. `open` = width unknown (any name resolves). */
interface Entry {
  readonly names: readonly string[];
  readonly columns: readonly Column[];
  readonly open: ReadonlySet<string> | null;
}

interface Scope {
  readonly entries: readonly Entry[];
  readonly ctes: ReadonlyMap<string, readonly Column[]>;
  readonly parent: Scope | null;
}

const EMPTY: ReadonlySet<string> = new Set();
const MAX_VIEW_DEPTH = 16;

export function analyzeLineage(stmt: AstObject, catalog: LineageCatalog): Lineage {
  const analyzer = new Analyzer(catalog);
  let outputs: Column[] | null;
  try {
    outputs = analyzer.statement(stmt, null, 0);
  } catch {
    outputs = null;
  }
  return { outputs: outputs?.map((c) => c.sources) ?? null, referenced: analyzer.referenced };
}

class Analyzer {
  readonly referenced = new Set<string>();
  private readonly views = new Map<string, { derived: Column[]; reads: ReadonlySet<string> }>();

  constructor(private readonly catalog: LineageCatalog) {}

  /** Output columns of any statement node (wrapped). */
  statement(stmt: unknown, parent: Scope | null, depth: number): Column[] | null {
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
      case 'ExplainStmt':
      case 'VariableShowStmt':
        return null; // plan text / a setting: no table data; detectors still run on it
      default:
        return null;
    }
  }

  private withScope(node: AstObject, parent: Scope | null, depth: number): Scope {
    const ctes = new Map<string, readonly Column[]>(parent?.ctes ?? []);
    const withClause = isObject(node['withClause']) ? node['withClause'] : null;
    if (withClause) {
      const recursive = withClause['recursive'] === true;
      for (const item of list(withClause['ctes'])) {
        const cte = unwrap(item, 'CommonTableExpr');
        if (!cte) continue;
        const name = String(cte['ctename']);
        const aliases = stringList(cte['aliascolnames']);
        let columns: Column[] = [];
        // A recursive CTE refers to itself: iterate to a fixed point on the source sets.
        for (let round = 0; round < (recursive ? 6 : 1); round++) {
          if (recursive) ctes.set(name, columns);
          const scope: Scope = { entries: [], ctes, parent: parent };
          const analysed = this.withReads(() => this.statement(cte['ctequery'], scope, depth));
          const next = analysed.outputs ?? [{ name: null, sources: analysed.reads }];
          const renamed = next.map((c, i) => ({ name: aliases[i] ?? c.name, sources: c.sources }));
          const stable = renamed.length === columns.length && renamed.every((c, i) => sameSet(c.sources, columns[i]?.sources ?? EMPTY));
          columns = renamed;
          if (stable) break;
        }
        ctes.set(name, columns);
      }
    }
    return { entries: [], ctes, parent };
  }

  private select(node: AstObject, parent: Scope | null, depth: number): Column[] | null {
    const base = this.withScope(node, parent, depth);
    const op = node['op'];
    if (op !== undefined && op !== 'SETOP_NONE') {
      const left = this.statement({ SelectStmt: node['larg'] }, base, depth);
      const right = this.statement({ SelectStmt: node['rarg'] }, base, depth);
      if (!left || !right || left.length !== right.length) return null;
      return left.map((c, i) => ({ name: c.name, sources: union(c.sources, right[i]?.sources ?? EMPTY) }));
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
    const relation = isObject(node['relation']) ? node['relation'] : null;
    if (relation) entries.push(...this.rangeVar(relation, scope, depth));
    for (const key of ['fromClause', 'usingClause']) for (const item of list(node[key])) entries.push(...this.fromItem(item, scope, depth));
    if (node['sourceRelation'] !== undefined) entries.push(...this.fromItem(node['sourceRelation'], scope, depth));
    if (type === 'InsertStmt' && node['selectStmt'] !== undefined) this.statement(node['selectStmt'], scope, depth);
    for (const key of ['whereClause', 'targetList', 'joinCondition', 'mergeWhenClauses', 'onConflictClause']) this.expr(node[key], scope, depth);
    return this.targets(list(node['returningList']), scope, depth);
  }

  private targets(items: readonly unknown[], scope: Scope, depth: number): Column[] | null {
    const out: Column[] = [];
    for (const item of items) {
      const target = unwrap(item, 'ResTarget');
      if (!target) return null;
      const val = target['val'];
      const ref = unwrap(val, 'ColumnRef');
      const fields = ref ? list(ref['fields']) : [];
      const last = fields[fields.length - 1];
      if (ref && nodeType(last) === 'A_Star') {
        // `*` or `t.*`: expands to columns; an entry of unknown width breaks alignment.
        const qualifier = stringList(fields.slice(0, -1));
        const entries = qualifier.length === 0 ? scope.entries : this.findEntries(scope, qualifier[qualifier.length - 1] ?? '');
        if (entries.length === 0) return null;
        for (const entry of entries) {
          if (entry.open) return null;
          out.push(...entry.columns);
        }
        continue;
      }
      out.push({ name: typeof target['name'] === 'string' ? target['name'] : figureName(val), sources: this.expr(val, scope, depth) });
    }
    return out;
  }

  private fromItem(item: unknown, scope: Scope, depth: number): Entry[] {
    const type = nodeType(item);
    const node = body(item);
    if (!node) return [];
    switch (type) {
      case 'RangeVar':
        return this.rangeVar(node, scope, depth);
      case 'RangeSubselect': {
        // LATERAL sub-selects see the FROM items before them; others do not (but seeing more is safe).
        const { outputs, reads } = this.withReads(() => this.statement(node['subquery'], scope, depth));
        return [this.aliased(node, outputs, reads)];
      }
      case 'JoinExpr': {
        const left = this.fromItem(node['larg'], scope, depth);
        const right = this.fromItem(node['rarg'], scope, depth);
        const both = [...left, ...right];
        this.expr(node['quals'], { ...scope, entries: [...scope.entries, ...both] }, depth);
        const alias = unwrap({ Alias: node['alias'] }, 'Alias');
        if (alias && typeof alias['aliasname'] === 'string') {
          const columns = both.flatMap((e) => e.columns);
          const open = both.some((e) => e.open) ? union(...both.map((e) => e.open ?? EMPTY), ...columns.map((c) => c.sources)) : null;
          return [...both, { names: [alias['aliasname']], columns, open }];
        }
        return both;
      }
      case 'RangeFunction':
      case 'RangeTableFunc':
      case 'JsonTable':
      case 'RangeTableSample': {
        if (type === 'RangeTableSample') return this.fromItem(node['relation'], scope, depth);
        // Function results derive from their arguments; their width is not known here.
        const sources = this.expr(node, scope, depth);
        const alias = isObject(node['alias']) ? node['alias'] : null;
        const names = alias && typeof alias['aliasname'] === 'string' ? [alias['aliasname']] : functionNames(node);
        return [{ names, columns: [], open: sources }];
      }
      default:
        return [{ names: [], columns: [], open: union(this.expr(node, scope, depth), this.opaque()) }];
    }
  }

  private rangeVar(node: AstObject, scope: Scope, depth: number): Entry[] {
    const schema = typeof node['schemaname'] === 'string' ? node['schemaname'] : null;
    const name = String(node['relname']);
    let columns: Column[] | null = null;
    if (schema === null) {
      for (let s: Scope | null = scope; s && !columns; s = s.parent) {
        const cte = s.ctes.get(name);
        if (cte) columns = [...cte];
      }
    }
    if (!columns) columns = this.relationColumns(schema, name, depth);
    return [this.aliased(node, columns, this.opaque(), name)];
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
      const analysed = depth >= MAX_VIEW_DEPTH
        ? { outputs: null, reads: this.opaque() }
        : this.withReads(() => this.statement(relation.view, null, depth + 1));
      view = { derived: analysed.outputs ?? [], reads: analysed.reads };
      this.views.set(key, view);
    }
    for (const s of view.reads) this.referenced.add(s);
    const derived = view.derived;
    const fallback = derived.length === relation.columns.length ? null : view.reads;
    return relation.columns.map((c, i) => ({ name: c, sources: union(new Set([own[i] as string]), fallback ?? derived?.[i]?.sources ?? EMPTY) }));
  }

  /** Applies `AS alias(col, …)` to an entry; unknown shape becomes an open entry. */
  private aliased(node: AstObject, columns: Column[] | null, opaque: ReadonlySet<string>, defaultName?: string): Entry {
    const alias = isObject(node['alias']) ? node['alias'] : null;
    const aliasName = alias && typeof alias['aliasname'] === 'string' ? alias['aliasname'] : null;
    const names = aliasName ? [aliasName] : defaultName ? [defaultName] : [];
    if (!columns) return { names, columns: [], open: opaque };
    const renames = alias ? stringList(alias['colnames']) : [];
    return { names, columns: columns.map((c, i) => ({ name: renames[i] ?? c.name, sources: c.sources })), open: null };
  }

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

  /** Runs an analysis and also returns every column it read: the fallback when shapes cannot be aligned. */
  private withReads<T>(run: () => T): { outputs: T; reads: ReadonlySet<string> } {
    const saved = [...this.referenced];
    this.referenced.clear();
    const outputs = run();
    const reads = new Set(this.referenced);
    for (const s of saved) this.referenced.add(s);
    return { outputs, reads };
  }

  private opaque(): ReadonlySet<string> {
    return new Set([OPAQUE]);
  }

  /** Sources of a column reference, resolved like PostgreSQL: innermost scope first. */
  private columnRef(ref: AstObject, scope: Scope): ReadonlySet<string> {
    const fields = list(ref['fields']);
    const names = stringList(fields);
    const star = nodeType(fields[fields.length - 1]) === 'A_Star';
    if (star) {
      const qualifier = names[names.length - 1];
      const entries = qualifier === undefined ? scope.entries : this.findEntries(scope, qualifier);
      return entries.length ? wholeRows(entries) : this.allVisible(scope);
    }
    if (names.length === 1) {
      const column = names[0] as string;
      for (let s: Scope | null = scope; s; s = s.parent) {
        const hits = s.entries.flatMap((e) => e.columns.filter((c) => c.name === column).map((c) => c.sources));
        const open = s.entries.flatMap((e) => (e.open ? [e.open] : []));
        if (hits.length > 0) return union(...hits, ...open);
        // A bare relation alias is a whole-row reference: `SELECT c FROM customers c`.
        const rows = s.entries.filter((e) => e.names.includes(column));
        if (rows.length > 0) return wholeRows(rows);
        if (open.length > 0) return union(...open);
      }
      return this.allVisible(scope);
    }
    const column = names[names.length - 1] as string;
    const qualifier = names[names.length - 2] as string;
    const entries = this.findEntries(scope, qualifier);
    if (entries.length === 0) return this.allVisible(scope);
    const hits = entries.flatMap((e) => e.columns.filter((c) => c.name === column).map((c) => c.sources));
    const open = entries.flatMap((e) => (e.open ? [e.open] : []));
    // `(c).email` style or unknown column: fall back to the whole row of the entry.
    return hits.length > 0 || open.length > 0 ? union(...hits, ...open) : wholeRows(entries);
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
        case 'SubLink': {
          const outputs = this.statement(node['subselect'], scope, depth);
          go(node['testexpr']);
          // EXISTS/ANY/ALL yield booleans; only expression and ARRAY sub-links carry values out.
          if (node['subLinkType'] === 'EXPR_SUBLINK' || node['subLinkType'] === 'ARRAY_SUBLINK' || node['subLinkType'] === 'MULTIEXPR_SUBLINK') {
            if (outputs) for (const c of outputs) for (const s of c.sources) out.add(s);
            else for (const s of this.withReads(() => this.statement(node['subselect'], scope, depth)).reads) out.add(s);
          }
          return;
        }
        case 'FuncCall': {
          const name = stringList(node['funcname']).join('.');
          // count() reports how many, never a value; every other function may pass values through.
          if ((name === 'count' || name === 'pg_catalog.count') && node['over'] === undefined) {
            go(node['agg_filter']);
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

function wholeRows(entries: readonly Entry[]): ReadonlySet<string> {
  return union(...entries.flatMap((e) => [...e.columns.map((c) => c.sources), e.open ?? EMPTY]));
}

function union(...sets: ReadonlyArray<ReadonlySet<string>>): Set<string> {
  const out = new Set<string>();
  for (const s of sets) for (const v of s) out.add(v);
  return out;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((v) => b.has(v));
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

/** PostgreSQL's FigureColname, enough to resolve `sub.col` against a sub-select. */
function figureName(val: unknown): string | null {
  const type = nodeType(val);
  const node = body(val);
  if (!node) return null;
  switch (type) {
    case 'ColumnRef': {
      const names = stringList(node['fields']);
      return names[names.length - 1] ?? null;
    }
    case 'FuncCall': {
      const names = stringList(node['funcname']);
      return names[names.length - 1] ?? null;
    }
    case 'TypeCast':
      return figureName(node['arg']) ?? (stringList(unwrap({ TypeName: node['typeName'] }, 'TypeName')?.['names']).pop() ?? null);
    case 'A_Indirection': {
      const names = stringList(node['indirection']);
      return names[names.length - 1] ?? figureName(node['arg']);
    }
    case 'CaseExpr':
      return 'case';
    default:
      return '?column?';
  }
}
