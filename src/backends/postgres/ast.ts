// Helpers over libpg-query's JSON syntax tree: the real PostgreSQL grammar.
// Nodes appear either wrapped ({ "SelectStmt": {...} }) or bare where the field
// has a fixed type (DeleteStmt.relation). The walker visits both, so nothing
// in the tree is skipped: classification must see every node to fail closed.

import { loadModule, parseSync } from 'libpg-query';

export type AstObject = Record<string, unknown>;

let loaded: Promise<void> | null = null;

/** libpg-query is WASM: load it once before the first parse. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

interface ParseOutput {
  readonly stmts: ReadonlyArray<{ stmt: AstObject; stmt_location?: number; stmt_len?: number }>;
}

/** Throws libpg-query's SqlError (with cursorPosition) on syntax errors. */
export function parseSql(sql: string): ParseOutput {
  return parseSync(sql) as ParseOutput;
}

export function isObject(value: unknown): value is AstObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The node type of a wrapped node ({ "FuncCall": {...} } → "FuncCall"), else null. */
export function nodeType(value: unknown): string | null {
  if (!isObject(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const key = keys[0] as string;
  return /^[A-Z]/.test(key) && isObject(value[key]) ? key : null;
}

/** Unwraps { Type: body } when Type matches; returns null otherwise. */
export function unwrap(value: unknown, type: string): AstObject | null {
  if (!isObject(value)) return null;
  const body = value[type];
  return isObject(body) ? body : null;
}

/** The wrapped node's body whatever its type. */
export function body(value: unknown): AstObject | null {
  const type = nodeType(value);
  return type === null ? null : ((value as AstObject)[type] as AstObject);
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** Names like funcname / relation path: a list of { String: { sval } } nodes. */
export function stringList(value: unknown): string[] {
  return list(value).flatMap((item) => {
    const s = unwrap(item, 'String');
    return s && typeof s['sval'] === 'string' ? [s['sval']] : [];
  });
}

interface Visit {
  readonly type: string;
  readonly node: AstObject;
  /** Wrapped-node ancestry, outermost first. */
  readonly ancestors: readonly string[];
}

/**
 * Depth-first visit of every wrapped node. Bare typed fields (relation,
 * intoClause…) are descended into as well, so their children are visited.
 */
export function walk(root: unknown, visit: (v: Visit) => void): void {
  const stack: string[] = [];
  const go = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) go(item);
      return;
    }
    if (!isObject(value)) return;
    const type = nodeType(value);
    if (type !== null) {
      const node = value[type] as AstObject;
      visit({ type, node, ancestors: stack });
      stack.push(type);
      for (const child of Object.values(node)) go(child);
      stack.pop();
      return;
    }
    for (const child of Object.values(value)) go(child);
  };
  go(root);
}

/** RangeVar (wrapped or bare) → [schema?, name]. */
export function rangeVarName(rv: AstObject): { schema: string | null; name: string } | null {
  if (typeof rv['relname'] !== 'string') return null;
  return { schema: typeof rv['schemaname'] === 'string' ? rv['schemaname'] : null, name: rv['relname'] };
}

/** Double-quoted, so the catalog never re-folds case: the parser already normalised it. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
