// The PostgreSQL backend's own error codes (SQL it refuses before running
// anything), with their hints, added to the one catalog in src/errors.ts.

import { defineErrorCodes } from '../../errors.js';

declare module '../../errors.js' {
  interface BackendErrorCodes {
    'sql.empty': true;
    'sql.parse_error': true;
    'sql.multiple_statements': true;
    'sql.unknown_function': true;
  }
}

export const POSTGRES_ERRORS = defineErrorCodes({
  'sql.empty': { kind: 'refusal', hint: 'Send one SQL statement.' },
  'sql.parse_error': { kind: 'refusal', hint: 'Fix the SQL syntax (PostgreSQL grammar) and call again.' },
  'sql.multiple_statements': { kind: 'refusal', hint: 'Send exactly one SQL statement per call, without transaction control.' },
  'sql.unknown_function': { kind: 'refusal', hint: 'Check the function name and schema; list functions with a query on pg_proc if needed.' },
});
