// Pure classification of one SQL statement from the real PostgreSQL syntax
// tree: operation, access (read / write / admin / unknown), tables, functions
// and the reasons. It walks the whole tree, so a write hidden in a CTE, a
// SELECT INTO, a row lock or a dangerous function anywhere is found. Anything
// it does not recognise is `unknown`, which the pipeline denies.

import type { Access } from '../backend.js';
import { nodeType, rangeVarName, stringList, unwrap, walk, list, isObject, type AstObject } from './ast.js';
import { dangerousFunction } from './functions.js';

export interface Finding {
  readonly operation: string;
  readonly access: Access;
  readonly reason: string;
}

export interface TableRef {
  readonly schema: string | null;
  readonly name: string;
}

interface FunctionRef {
  readonly schema: string | null;
  readonly name: string;
}

export interface Classification {
  readonly statementType: string;
  readonly operation: string;
  readonly access: Access;
  readonly reasons: readonly string[];
  /** Real relations referenced (CTE names excluded with PostgreSQL's scoping). */
  readonly tables: readonly TableRef[];
  readonly functions: readonly FunctionRef[];
  /** True when running it may leave session state behind: the connection is discarded after. */
  readonly touchesSession: boolean;
  /** True when the statement cannot run inside a transaction block (VACUUM, CREATE DATABASE …). */
  readonly needsAutocommit: boolean;
}

/** Operations this backend can produce; config validation rejects others in rules. */
export const SQL_OPERATIONS = [
  'select',
  'select_for_update',
  'show',
  'explain',
  'insert',
  'update',
  'delete',
  'merge',
  'ddl',
  'admin',
  'transaction',
  'session',
  'prepared',
  'copy',
  'do',
  'call',
  'lock',
  'listen',
  'notify',
  'maintenance',
  'unknown',
] as const;

const ACCESS_RANK: Record<Access, number> = { read: 0, write: 1, admin: 2, unknown: 3 };

const BASE: Record<string, Finding> = {
  SelectStmt: { operation: 'select', access: 'read', reason: 'SELECT' },
  VariableShowStmt: { operation: 'show', access: 'read', reason: 'SHOW reads a setting' },
  InsertStmt: { operation: 'insert', access: 'write', reason: 'INSERT' },
  UpdateStmt: { operation: 'update', access: 'write', reason: 'UPDATE' },
  DeleteStmt: { operation: 'delete', access: 'write', reason: 'DELETE' },
  MergeStmt: { operation: 'merge', access: 'write', reason: 'MERGE' },
  TransactionStmt: { operation: 'transaction', access: 'admin', reason: 'transaction control (the gateway owns transactions)' },
  VariableSetStmt: { operation: 'session', access: 'admin', reason: 'SET/RESET changes session settings' },
  DiscardStmt: { operation: 'session', access: 'admin', reason: 'DISCARD changes session state' },
  PrepareStmt: { operation: 'prepared', access: 'admin', reason: 'PREPARE creates session state' },
  ExecuteStmt: { operation: 'prepared', access: 'admin', reason: 'EXECUTE runs a prepared statement the gateway cannot see' },
  DeallocateStmt: { operation: 'prepared', access: 'admin', reason: 'DEALLOCATE changes session state' },
  DeclareCursorStmt: { operation: 'session', access: 'admin', reason: 'DECLARE creates a cursor' },
  FetchStmt: { operation: 'session', access: 'admin', reason: 'FETCH/MOVE use a cursor' },
  ClosePortalStmt: { operation: 'session', access: 'admin', reason: 'CLOSE uses a cursor' },
  CopyStmt: { operation: 'copy', access: 'admin', reason: 'COPY moves data in or out of the server' },
  DoStmt: { operation: 'do', access: 'admin', reason: 'DO runs arbitrary procedural code' },
  CallStmt: { operation: 'call', access: 'admin', reason: 'CALL runs a procedure' },
  LockStmt: { operation: 'lock', access: 'admin', reason: 'LOCK takes table locks' },
  ListenStmt: { operation: 'listen', access: 'admin', reason: 'LISTEN changes session state' },
  UnlistenStmt: { operation: 'listen', access: 'admin', reason: 'UNLISTEN changes session state' },
  NotifyStmt: { operation: 'notify', access: 'admin', reason: 'NOTIFY signals other sessions' },
  VacuumStmt: { operation: 'maintenance', access: 'admin', reason: 'VACUUM/ANALYZE is maintenance' },
  ClusterStmt: { operation: 'maintenance', access: 'admin', reason: 'CLUSTER rewrites a table' },
  ReindexStmt: { operation: 'maintenance', access: 'admin', reason: 'REINDEX is maintenance' },
  CheckPointStmt: { operation: 'maintenance', access: 'admin', reason: 'CHECKPOINT is maintenance' },
  LoadStmt: { operation: 'admin', access: 'admin', reason: 'LOAD loads a shared library into the server' },
  TruncateStmt: { operation: 'ddl', access: 'admin', reason: 'TRUNCATE removes all rows' },
  CreateTableAsStmt: { operation: 'ddl', access: 'admin', reason: 'CREATE TABLE AS creates a table' },
  AlterSystemStmt: { operation: 'admin', access: 'admin', reason: 'ALTER SYSTEM changes server configuration' },
  CreateRoleStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  AlterRoleStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  AlterRoleSetStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  DropRoleStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  GrantRoleStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  ReassignOwnedStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  DropOwnedStmt: { operation: 'admin', access: 'admin', reason: 'role management' },
  CreatedbStmt: { operation: 'admin', access: 'admin', reason: 'database management' },
  DropdbStmt: { operation: 'admin', access: 'admin', reason: 'database management' },
  AlterDatabaseStmt: { operation: 'admin', access: 'admin', reason: 'database management' },
  AlterDatabaseSetStmt: { operation: 'admin', access: 'admin', reason: 'database management' },
  AlterDatabaseRefreshCollStmt: { operation: 'admin', access: 'admin', reason: 'database management' },
  CreateTableSpaceStmt: { operation: 'admin', access: 'admin', reason: 'tablespace management' },
  DropTableSpaceStmt: { operation: 'admin', access: 'admin', reason: 'tablespace management' },
  AlterTableSpaceOptionsStmt: { operation: 'admin', access: 'admin', reason: 'tablespace management' },
  CreateSubscriptionStmt: { operation: 'admin', access: 'admin', reason: 'replication management' },
  AlterSubscriptionStmt: { operation: 'admin', access: 'admin', reason: 'replication management' },
  DropSubscriptionStmt: { operation: 'admin', access: 'admin', reason: 'replication management' },
  ConstraintsSetStmt: { operation: 'session', access: 'admin', reason: 'SET CONSTRAINTS changes transaction state' },
};

/** DDL statement node names: schema changes of every kind. */
const DDL = /^(Create|Alter|Drop|Rename|Comment|Grant|Sec|Define|Import|Refresh|Index|View|Rule|CompositeType|Reassign)[A-Za-z]*Stmt$/;

/** Statements PostgreSQL refuses inside a transaction block. */
const AUTOCOMMIT_ONLY = new Set([
  'VacuumStmt',
  'CreatedbStmt',
  'DropdbStmt',
  'CreateTableSpaceStmt',
  'DropTableSpaceStmt',
  'AlterSystemStmt',
  'ReindexStmt',
  'CreateSubscriptionStmt',
  'DropSubscriptionStmt',
]);

/** Session-affecting statements: after these the pooled connection is discarded. */
const SESSION_OPERATIONS = new Set(['session', 'prepared', 'listen', 'admin', 'do', 'call', 'ddl', 'maintenance', 'unknown', 'lock', 'transaction']);

function baseFinding(type: string): Finding {
  const known = BASE[type];
  if (known) return known;
  if (DDL.test(type)) return { operation: 'ddl', access: 'admin', reason: `${type.replace(/Stmt$/, '')} changes the schema` };
  return { operation: 'unknown', access: 'unknown', reason: `statement type ${type} is not recognised` };
}

function explainAnalyzes(explain: AstObject): boolean {
  return list(explain['options']).some((option) => {
    const def = unwrap(option, 'DefElem');
    if (!def || def['defname'] !== 'analyze') return false;
    // Only what PostgreSQL's defGetBoolean reads as false turns it off (false/off in any
    // case, the integer 0); anything else is taken to execute. The JSON tree omits
    // zero and false values, so `Integer: {}` is 0 and `Boolean: {}` is false.
    const arg = def['arg'];
    const integer = unwrap(arg, 'Integer');
    if (integer) return (integer['ival'] ?? 0) !== 0;
    const boolean = unwrap(arg, 'Boolean');
    if (boolean) return boolean['boolval'] === true;
    const text = unwrap(arg, 'String')?.['sval'];
    return !(typeof text === 'string' && ['false', 'off'].includes(text.toLowerCase()));
  });
}

/**
 * SELECT-level findings, set-operation arms included: libpg-query gives `larg` and
 * `rarg` bare (no { SelectStmt } wrapper), so the walker alone would not see that
 * `SELECT 1 INTO t UNION SELECT 2` creates a table (PostgreSQL takes the leftmost INTO).
 */
function selectFindings(node: AstObject, found: (f: Finding) => void): void {
  if (node['intoClause'] !== undefined) found({ operation: 'ddl', access: 'admin', reason: 'SELECT INTO creates a table' });
  if (list(node['lockingClause']).length > 0) found({ operation: 'select_for_update', access: 'write', reason: 'FOR UPDATE/SHARE takes row locks' });
  for (const arm of [node['larg'], node['rarg']]) if (isObject(arm)) selectFindings(arm, found);
}

function unclassified(statementType: string, reason: string): Classification {
  return { statementType, operation: 'unknown', access: 'unknown', reasons: [reason], tables: [], functions: [], touchesSession: true, needsAutocommit: false };
}

/** Classifies one statement node (the `stmt` of libpg-query's output). */
export function classifyStatement(stmt: AstObject): Classification {
  const type = nodeType(stmt);
  if (type === null) return unclassified('unknown', 'empty or unrecognised statement');
  try {
    return classifyTree(type, stmt);
  } catch (error) {
    // A tree too deep to walk (stack overflow) cannot be classified: unknown, so denied.
    if (error instanceof RangeError) return unclassified(type, 'the statement is nested too deeply to classify');
    throw error;
  }
}

function classifyTree(type: string, stmt: AstObject): Classification {
  const top = stmt[type] as AstObject;
  const findings: Finding[] = [];
  let primary = baseFinding(type);

  if (type === 'ExplainStmt') {
    const inner = top['query'];
    const innerType = nodeType(inner);
    if (explainAnalyzes(top) && innerType !== null) {
      // EXPLAIN ANALYZE executes the statement: it is what it explains.
      const innerBase = baseFinding(innerType);
      primary = {
        operation: innerBase.access === 'read' ? 'explain' : innerBase.operation,
        access: innerBase.access,
        reason: `EXPLAIN ANALYZE executes the ${innerBase.reason}`,
      };
    } else {
      primary = { operation: 'explain', access: 'read', reason: 'EXPLAIN without ANALYZE only plans' };
    }
  }
  findings.push(primary);

  const functions: FunctionRef[] = [];
  const deep = (f: Finding) => findings.push(f);

  walk(stmt, ({ type: t, node, ancestors }) => {
    const nested = ancestors.length > 0;
    if (nested && (t === 'InsertStmt' || t === 'UpdateStmt' || t === 'DeleteStmt' || t === 'MergeStmt')) {
      const inCte = ancestors.includes('CommonTableExpr');
      const inExplain = ancestors[0] === 'ExplainStmt';
      if (!inExplain || explainAnalyzes(top)) {
        deep({
          operation: baseFinding(t).operation,
          access: 'write',
          reason: inCte ? `data-modifying CTE (${t.replace(/Stmt$/, '').toUpperCase()})` : `nested ${t.replace(/Stmt$/, '').toUpperCase()}`,
        });
      }
    }
    if (t === 'SelectStmt') selectFindings(node, deep);
    if (t === 'FuncCall') {
      const parts = stringList(node['funcname']);
      const name = parts[parts.length - 1];
      if (name !== undefined) {
        const schema = parts.length > 1 ? (parts[parts.length - 2] ?? null) : null;
        functions.push({ schema, name });
        const verdict = dangerousFunction(name);
        if (verdict) deep({ operation: verdict.operation, access: 'admin', reason: verdict.reason });
      }
    }
    if (t === 'CallStmt' && isObject(node['funccall'])) {
      // The procedure call is a bare FuncCall: record it like any other call.
      const parts = stringList(node['funccall']['funcname']);
      const name = parts[parts.length - 1];
      if (name !== undefined) functions.push({ schema: parts.length > 1 ? (parts[parts.length - 2] ?? null) : null, name });
    }
    // RETURN is the body of a SQL-standard function (CREATE FUNCTION … RETURN expr): an
    // expression wrapper, whose contents the walk still visits.
    const query = t === 'InsertStmt' || t === 'UpdateStmt' || t === 'DeleteStmt' || t === 'MergeStmt' || t === 'SelectStmt' || t === 'ReturnStmt';
    if (nested && !query && /Stmt$/.test(t) && !(type === 'ExplainStmt' && ancestors.length === 1)) {
      // A statement node where only queries may appear is something we do not model.
      const inner = baseFinding(t);
      deep({ operation: inner.operation, access: inner.access === 'read' ? 'unknown' : inner.access, reason: `nested ${t}` });
    }
  });

  const worst = findings.reduce((a, b) => (ACCESS_RANK[b.access] > ACCESS_RANK[a.access] ? b : a));
  const reasons = [...new Set(findings.map((f) => f.reason))];
  const tables = collectTables(stmt);
  return {
    statementType: type,
    operation: worst.operation,
    access: worst.access,
    reasons,
    tables,
    functions: dedupe(functions),
    touchesSession: findings.some((f) => SESSION_OPERATIONS.has(f.operation)) || (worst.access !== 'read' && worst.access !== 'write'),
    needsAutocommit: AUTOCOMMIT_ONLY.has(type),
  };
}

function dedupe<T extends { schema: string | null; name: string }>(items: readonly T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => {
    const key = `${i.schema ?? ''}.${i.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

const DML = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']);

/** Object kinds that are relations, and kinds that live on a relation (named `table.object`). */
const RELATION_OBJECTS = new Set(['OBJECT_TABLE', 'OBJECT_VIEW', 'OBJECT_MATVIEW', 'OBJECT_INDEX', 'OBJECT_SEQUENCE', 'OBJECT_FOREIGN_TABLE']);
const OBJECTS_ON_RELATION = new Set(['OBJECT_COLUMN', 'OBJECT_TRIGGER', 'OBJECT_POLICY', 'OBJECT_RULE', 'OBJECT_TABCONSTRAINT']);

/**
 * Relations that DROP / COMMENT ON / SECURITY LABEL name as a list of strings rather
 * than a RangeVar. Without them `DROP TABLE customers` would touch no table, and a rule
 * limited to some tables would match it vacuously.
 */
function namedObjects(type: string, node: AstObject): TableRef[] {
  const kind = type === 'DropStmt' ? node['removeType'] : type === 'CommentStmt' || type === 'SecLabelStmt' ? node['objtype'] : undefined;
  if (typeof kind !== 'string') return [];
  const onRelation = OBJECTS_ON_RELATION.has(kind);
  if (!onRelation && !RELATION_OBJECTS.has(kind)) return [];
  const objects = type === 'DropStmt' ? list(node['objects']) : [node['object']];
  return objects.flatMap((object) => {
    const parts = stringList(unwrap(object, 'List')?.['items']);
    const path = onRelation ? parts.slice(0, -1) : parts;
    const name = path[path.length - 1];
    if (name === undefined) return [];
    return [{ schema: path.length > 1 ? (path[path.length - 2] ?? null) : null, name }];
  });
}

/**
 * Relations referenced anywhere, with CTE names resolved by PostgreSQL's
 * scoping: a non-recursive WITH item sees only the items before it, a
 * recursive one sees all; a CTE name shadows a table only where visible.
 * Getting this wrong in the permissive direction would hide a real table.
 */
export function collectTables(stmt: unknown): TableRef[] {
  const found: TableRef[] = [];
  const visit = (value: unknown, ctes: ReadonlySet<string>): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item, ctes);
      return;
    }
    if (!isObject(value)) return;
    const type = nodeType(value);
    const node = type === null ? value : (value[type] as AstObject);
    if (type === 'RangeVar' || (type === null && typeof node['relname'] === 'string' && 'relpersistence' in node)) {
      const name = rangeVarName(node);
      if (name && !(name.schema === null && ctes.has(name.name))) found.push(name);
      return;
    }
    if (type !== null) found.push(...namedObjects(type, node));
    const withClause = isObject(node['withClause']) ? (node['withClause'] as AstObject) : null;
    let scope = ctes;
    if (withClause) {
      const items = list(withClause['ctes'])
        .map((c) => unwrap(c, 'CommonTableExpr'))
        .filter((c): c is AstObject => c !== null);
      const names = items.map((c) => String(c['ctename']));
      const recursive = withClause['recursive'] === true;
      items.forEach((cte, index) => {
        const visible = new Set([...ctes, ...(recursive ? names : names.slice(0, index))]);
        visit(cte['ctequery'], visible);
      });
      scope = new Set([...ctes, ...names]);
    }
    for (const [key, child] of Object.entries(node)) {
      if (key === 'withClause') continue;
      // The target of INSERT/UPDATE/DELETE/MERGE is always a real table: PostgreSQL
      // does not let a CTE of the same name hide it (`WITH t AS (…) DELETE FROM t`).
      visit(child, key === 'relation' && type !== null && DML.has(type) ? new Set() : scope);
    }
  };
  visit(stmt, new Set());
  const seen = new Set<string>();
  return found.filter((t) => {
    const key = `${t.schema ?? ''}.${t.name}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
