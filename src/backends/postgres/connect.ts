// How a PostgreSQL connection is wired, and what to say when the wiring is
// wrong: the url secret must be a postgres:// URL (checked before the driver
// sees it, without ever printing the value), and a failed connect becomes a
// coded error an operator can act on — "authentication failed for user X"
// (backend.auth_failed: fix the credential, retrying will not help), or
// "could not connect to HOST:PORT: connection refused" (backend.unavailable).
// Pure apart from reading the error objects the driver produced.

import type { SecretRef } from '../../config/secrets.js';
import { DrawbridgeError } from '../../errors.js';

/** The shape the url secret must have, shown in hints (never the value itself). */
const POSTGRES_URL_SHAPE = 'postgres://USER:PASSWORD@HOST:5432/DATABASE';

/** Where a connection's host, port and user come from: the URL, with the driver's defaults. */
export interface ConnectTarget {
  readonly host: string;
  readonly port: string;
  /** The login role as written in the URL; null when the URL names none (the driver then uses its default). */
  readonly user: string | null;
}

const TEMPLATE_VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** "environment variable DB_URL", "secret file /run/secrets/x", …: where the value came from, never the value. */
export function secretSource(ref: SecretRef): string {
  switch (ref.kind) {
    case 'env':
      return `environment variable ${ref.name}`;
    case 'file':
      return `secret file ${ref.path}`;
    case 'template': {
      const names = [...ref.template.matchAll(TEMPLATE_VAR)].map((m) => m[1] as string);
      if (names.length === 0) return 'the url written in the connection declaration';
      const whole = names.length === 1 && ref.template.trim() === `\${${names[0]}}`;
      const variables = `environment variable${names.length > 1 ? 's' : ''} ${names.join(', ')}`;
      return whole ? variables : `the url built from ${variables}`;
    }
  }
}

/**
 * Refuses a url secret that is not a PostgreSQL URL (config.secret_invalid),
 * before the driver would read "base" as a host name and answer ENOTFOUND. The
 * message names where the value came from, the hint the expected shape (in the
 * message the masker's password_in_url detector would blank it); never the value.
 */
export function requirePostgresUrl(value: string, ref: SecretRef, connection: string): ConnectTarget {
  const source = secretSource(ref);
  const refuse = (problem: string, advice: string) =>
    new DrawbridgeError(
      'config.secret_invalid',
      `The value of ${source} (the url of connection ${connection}) ${problem}. The value is not shown because it is a secret.`,
      {
        hint:
          `The operator must set ${source} on the gateway host to a URL of the form ` +
          `${POSTGRES_URL_SHAPE}${advice} and restart the gateway. Retrying will not help.`,
        details: { connection, source: ref.describe },
      },
    );
  if (!/^\s*postgres(?:ql)?:\/\//i.test(value)) {
    throw refuse('is not a PostgreSQL URL (postgres://… or postgresql://…)', ' (a libpq "host=… dbname=…" string is not accepted)');
  }
  let url: URL;
  try {
    url = new URL(value.trim());
    // The driver percent-decodes the user, the password and the database name.
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
    decodeURIComponent(url.pathname);
  } catch {
    throw refuse(
      'is not a valid PostgreSQL URL (it does not parse)',
      ', with special characters in the user name or password percent-encoded (@ as %40, # as %23, % as %25, / as %2F)',
    );
  }
  const host = url.searchParams.get('host') ?? (url.hostname === '' ? 'localhost' : url.hostname.replace(/^\[(.*)\]$/, '$1'));
  const port = url.searchParams.get('port') ?? (url.port === '' ? '5432' : url.port);
  return { host, port, user: url.username === '' ? null : decodeURIComponent(url.username) };
}

/** SQLSTATEs of a refused login: invalid_password and invalid_authorization_specification (no pg_hba entry, no such role, NOLOGIN). */
const AUTH_FAILED: ReadonlySet<string> = new Set(['28P01', '28000']);

interface DriverError {
  readonly message?: unknown;
  readonly code?: unknown;
  readonly errors?: unknown;
}

function fields(error: unknown): DriverError {
  return typeof error === 'object' && error !== null ? (error as DriverError) : {};
}

/** Why a TCP connect failed, in words, from Node's error codes (also inside an AggregateError). */
function networkCause(error: unknown, target: ConnectTarget): string | null {
  const e = fields(error);
  const code =
    typeof e.code === 'string'
      ? e.code
      : Array.isArray(e.errors)
        ? (e.errors.map((x) => fields(x).code).find((c): c is string => typeof c === 'string') ?? null)
        : null;
  const message = typeof e.message === 'string' ? e.message : '';
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is PostgreSQL running and listening there?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return `the host name ${target.host} does not resolve`;
    case 'ETIMEDOUT':
      return 'the connection attempt timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'the host is unreachable';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'the server closed the connection';
    case 'ENOENT':
      return 'no server socket there (is PostgreSQL running?)';
    default:
      break;
  }
  if (/connection timeout|timeout exceeded when trying to connect/i.test(message))
    return 'no answer in time (is the host reachable from the gateway, and the port open?)';
  if (/Connection terminated unexpectedly/i.test(message)) return 'the server closed the connection during start-up';
  return null;
}

/**
 * A failed connect (pool.connect) as a catalog error: authentication refused →
 * backend.auth_failed naming the user; anything else → backend.unavailable
 * saying where it tried and why. Driver messages never contain the password.
 */
export function connectError(error: unknown, connection: string, target: ConnectTarget): DrawbridgeError {
  if (error instanceof DrawbridgeError) return error;
  const e = fields(error);
  const message = typeof e.message === 'string' && e.message !== '' ? e.message : String(error);
  const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  if (typeof e.code === 'string' && AUTH_FAILED.has(e.code)) {
    const user = target.user ?? /for user "([^"]+)"/.exec(message)?.[1] ?? null;
    const who = user === null ? 'the default user' : `user "${user}"`;
    return new DrawbridgeError(
      'backend.auth_failed',
      `PostgreSQL at ${where} refused to authenticate ${who} for connection ${connection} (${e.code}: ${message}). ` +
        `The credential in the connection's url is wrong or not allowed to log in; the operator must fix it.`,
      {
        details: { connection, sqlstate: e.code, ...(user === null ? {} : { user }) },
        cause: error,
      },
    );
  }
  const cause = networkCause(error, target);
  if (cause !== null) {
    return new DrawbridgeError('backend.unavailable', `Connection ${connection}: could not connect to ${where}: ${cause}.`, {
      details: { connection, host: target.host, port: target.port },
      cause: error,
    });
  }
  const sqlstate = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : null;
  return new DrawbridgeError('backend.unavailable', `Connection ${connection}: could not connect to ${where}: ${sqlstate ? `${sqlstate}: ` : ''}${message}`, {
    details: { connection, host: target.host, port: target.port, ...(sqlstate ? { sqlstate } : {}) },
    cause: error,
  });
}
