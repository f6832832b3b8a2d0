// How the PostgreSQL engine reports a failure: as the catalog's journal.unavailable or
// approval.store_unavailable (fail closed), with a reason that never names where the
// state lives (host, port, user or password of state.url): an agent may be shown it.

import type pg from 'pg';
import { DrawbridgeError, isDrawbridgeError, type ErrorCode } from '../../errors.js';

/** Strings that must never appear in a message: the URL, its password, host and user. */
export type Secrets = readonly string[];

export function secretsOf(url: string): Secrets {
  const found = [url];
  try {
    const u = new URL(url);
    for (const part of [u.password, decodeURIComponent(u.password), u.host, u.hostname, u.username]) if (part.length >= 3) found.push(part);
  } catch {
    // Not a URL: pg reads key=value strings too; the whole string is already listed.
  }
  return found.sort((a, b) => b.length - a.length);
}

/**
 * The reason of a driver or server failure, safe to show: SQLSTATE errors keep their
 * server message (it names no host); network errors keep only their code.
 */
export function safeReason(cause: unknown, secrets: Secrets): string {
  const error = cause instanceof Error ? cause : new Error(String(cause));
  const code = (error as { code?: unknown }).code;
  let reason: string;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) reason = `${error.message} (SQLSTATE ${code})`;
  else if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) reason = `the state database cannot be reached (${code})`;
  else if (/timeout|terminated|ended|closed|not queryable/i.test(error.message)) reason = `the connection to the state database failed (${error.message})`;
  else reason = error.message;
  for (const secret of secrets) reason = reason.split(secret).join('…');
  return reason;
}

/** Catalog errors and TypeErrors pass through; anything else becomes `code` with a safe reason. */
export function fault(code: Extract<ErrorCode, 'journal.unavailable' | 'approval.store_unavailable'>, what: string, cause: unknown, secrets: Secrets): Error {
  if (isDrawbridgeError(cause) || cause instanceof TypeError) return cause;
  return new DrawbridgeError(code, `${what}: ${safeReason(cause, secrets)}`, { cause });
}

/** The connection itself failed (it went away, was terminated, or timed out), not the statement. */
export function lostConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return /^(08|57P0)/.test(code);
  return true;
}

/**
 * Checks out a connection and runs `sql`, the transaction's first statement. A pooled
 * connection that died while idle (the server restarted, or ended it) fails right here,
 * before anything ran: it is discarded and one fresh connection is tried, so the first call
 * after an outage works instead of failing on a stale connection.
 */
export async function begin(pool: pg.Pool, sql: string): Promise<{ readonly client: pg.PoolClient; readonly result: unknown }> {
  for (let attempt = 0; ; attempt++) {
    const client = await pool.connect();
    try {
      const result: unknown = await client.query(sql);
      return { client, result };
    } catch (error) {
      client.release(error instanceof Error ? error : new Error(String(error)));
      if (attempt > 0 || !lostConnection(error)) throw error;
    }
  }
}
