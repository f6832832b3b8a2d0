// The PostgreSQL backend's policy vocabulary: its match keys (`tables:`,
// `functions:`) and their matcher, how `policy explain` shows a SQL request,
// when an approval may dry-run a write, and how PostgreSQL's error text quotes
// values (what the mask stage redacts when a statement read masked data). Pure.

import { TEXT_PART, type ExplainView, type MatchOf, type ParsedRequest, type PreviewDecision, type RedactQuoted } from '../backend.js';
import { namesMatch, oneOrMany, type Effect } from '../../policy/match.js';
import type { SqlDetail } from './index.js';

/**
 * The resource a request gets when it calls a VOLATILE function: the tables that
 * code writes are unknown, so an allow rule limited to named tables must not
 * cover it (only `tables: "*"` or a rule without `tables` does).
 */
export const ANY_TABLE = '*';

export const SQL_MATCH_SHAPE = {
  /** Tables (qualified-name globs: `orders`, `public.*`) the statement touches. */
  tables: oneOrMany.optional(),
  /** Functions (qualified-name globs) the statement calls. */
  functions: oneOrMany.optional(),
};

/** Tables are the request's resources; both keys match in the direction that fails safe (namesMatch). */
export function matchesSql(match: MatchOf<typeof SQL_MATCH_SHAPE>, request: ParsedRequest<SqlDetail>, effect: Effect): boolean {
  if (match.tables && !namesMatch(effect, match.tables, request.resources)) return false;
  if (match.functions && !namesMatch(effect, match.functions, request.detail.functions)) return false;
  return true;
}

export const SQL_EXPLAIN: ExplainView<SqlDetail> = {
  lines: (request) => [
    ['tables', request.resources.join(', ') || '(none)'],
    ['functions', request.detail.functions.join(', ') || '(none)'],
  ],
  facts: (request) => ({ functions: [...request.detail.functions] }),
  withoutCatalog: 'table schemas and function volatility were not checked against the server',
};

/**
 * A dry run executes the write before anyone said yes. A rollback undoes rows,
 * not what opaque code (a VOLATILE function, `*` among the resources) does
 * elsewhere: such a statement is not dry-run.
 */
export function sqlPreviewDecision(request: ParsedRequest<SqlDetail>): PreviewDecision {
  if (request.detail.runsOpaqueCode === true || request.resources.includes(ANY_TABLE)) {
    return { kind: 'skip', note: 'not dry-run: the statement calls functions whose effects a rollback may not undo' };
  }
  return { kind: 'dry-run' };
}

/**
 * PostgreSQL quotes the offending value in its messages (invalid input syntax,
 * a key's `(a)=(b)` detail, a failing row, an invalid character's bytes in hex),
 * and a value may itself contain quotes (a row's text form): in each part of the
 * text (TEXT_PART), everything from the first double quote to the last one is
 * redacted unless that whole stretch is text the agent sent itself.
 */
export const redactQuotedSql: RedactQuoted = (text, keep, redacted) => {
  const quoted = (part: string): string => {
    const first = part.indexOf('"');
    const last = part.lastIndexOf('"');
    if (first < 0 || last <= first || keep(part.slice(first + 1, last))) return part;
    redacted();
    return `${part.slice(0, first)}"[masked]"${part.slice(last + 1)}`;
  };
  return (
    text
      .split(TEXT_PART)
      .map(quoted)
      .join(TEXT_PART)
      .replace(/\)=\(([^)]*)\)/g, (all, inner: string) => (keep(inner) ? all : (redacted(), ')=([masked])')))
      .replace(/(row contains|Failing row contains) \(.*\)/g, (_all, lead: string) => (redacted(), `${lead} ([masked])`))
      // Bytes of an invalid character are shown in hex, unquoted ("…: 0xe0 0x41 0x64").
      .replace(/0x[0-9a-f]{2}(?: 0x[0-9a-f]{2})*/gi, () => (redacted(), '0x[masked]'))
  );
};
