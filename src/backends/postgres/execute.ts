// Runs one classified statement on a pooled connection, enforcing in the
// database what the classifier decided: the extended query protocol (the
// server itself refuses a second statement), reads inside BEGIN READ ONLY,
// SET LOCAL statement_timeout and lock_timeout, row and byte caps, ROLLBACK
// for reads, max_affected_rows for writes, session advisory locks released
// after every statement, and the connection discarded whenever session state
// may have changed or could not be cleaned up. When the session itself ends
// under a statement (a restart, a failover, pg_terminate_backend, a dead
// socket) or the server stops answering, the failure says what the database
// may have kept: nothing, unless the answer to a COMMIT (or to a statement
// that commits by itself) was lost, when nobody can know (StatementInterrupted).

import type { PoolClient } from 'pg';
import type { Cell } from '../backend.js';
import { DrawbridgeError } from '../../errors.js';

export interface Limits {
  readonly timeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly maxRows: number;
  readonly maxBytes: number;
  readonly maxAffectedRows: number;
}

export interface Field {
  readonly name: string;
  readonly tableID: number;
  readonly columnID: number;
  readonly dataTypeID: number;
}

export interface RawResult {
  readonly fields: readonly Field[];
  readonly rows: Cell[][];
  readonly command: string;
  readonly rowCount: number | null;
  readonly truncated: null | { reason: 'rows' | 'bytes'; limit: number };
  readonly bytes: number;
  readonly notices: string[];
}

/** A PostgreSQL error as the server sent it; its text is masked before it leaves. */
export class ServerError extends Error {
  constructor(
    message: string,
    readonly sqlstate: string,
    readonly detail: string | undefined,
    readonly hint: string | undefined,
    /** The server's context line ("PL/pgSQL function f(text) line 3 at RAISE"). */
    readonly where?: string,
    /** ERROR, or FATAL / PANIC when the server ends the session with it. */
    readonly severity?: string,
  ) {
    super(message);
  }
}

/** What the database may have kept of an interrupted statement. */
type Applied = 'nothing' | 'unknown';

/**
 * The statement's session ended under it (`connection-lost`: the server sent
 * FATAL, or the socket closed) or the server stopped answering (`no-answer`).
 * `applied` is `unknown` only when COMMIT (or a statement that commits by
 * itself) had been sent and its answer never came: the server may have
 * committed. Before that, PostgreSQL rolls back a transaction whose session
 * ends, so nothing was kept.
 */
export class StatementInterrupted extends Error {
  override readonly name = 'StatementInterrupted';
  constructor(
    readonly how: 'connection-lost' | 'no-answer',
    readonly applied: Applied,
    /** Why, in the server's or the driver's words ("57P01: terminating connection due to administrator command"). */
    readonly reason: string,
    readonly sqlstate: string | null,
    options: { cause?: unknown } = {},
  ) {
    super(reason, options.cause === undefined ? undefined : { cause: options.cause });
  }
}

/** SQLSTATEs of a session the server is ending: admin_shutdown (restart, pg_terminate_backend), crash_shutdown, cannot_connect_now. */
const SESSION_ENDING: ReadonlySet<string> = new Set(['57P01', '57P02', '57P03']);
/** What the driver and Node say when the socket is gone (no SQLSTATE). */
const SOCKET_GONE = /Connection terminated|not queryable|Client was closed|Connection timed out|socket hang up/i;
const SOCKET_ERRNO: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTCONN',
]);

/**
 * True when `error` means the session is gone rather than that the statement
 * failed: a FATAL/PANIC from the server, a connection-exception SQLSTATE, or a
 * socket error from the driver. A plain ERROR (a constraint, a timeout) is not.
 */
export function sessionEnded(error: unknown): boolean {
  if (typeof error !== 'object' || error === null || error instanceof DrawbridgeError || error instanceof StatementInterrupted) return false;
  const e = error as { code?: unknown; severity?: unknown; message?: unknown };
  const sqlstate = sqlstateOf(error);
  if (sqlstate !== null) return e.severity === 'FATAL' || e.severity === 'PANIC' || sqlstate.startsWith('08') || SESSION_ENDING.has(sqlstate);
  if (typeof e.code === 'string' && SOCKET_ERRNO.has(e.code)) return true;
  return typeof e.message === 'string' && SOCKET_GONE.test(e.message);
}

/**
 * True when the step that failed with `error` lost its session: the error says
 * so, or the client's 'error' listener saw the socket die (`fault`) and the
 * error is not the server's own answer (an ERROR with a SQLSTATE is the
 * statement's real outcome even if the socket died right after).
 */
export function sessionLost(error: unknown, fault: Error | null): boolean {
  if (sessionEnded(error)) return true;
  return fault !== null && sqlstateOf(error) === null && !(error instanceof DrawbridgeError) && !(error instanceof StatementInterrupted);
}

/** The SQLSTATE an error carries (a ServerError, or the driver's DatabaseError), or null. */
export function sqlstateOf(error: unknown): string | null {
  if (error instanceof ServerError) return error.sqlstate;
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/** The server's or the driver's words for why the session ended ("57P01: terminating connection …"); FATAL messages carry no data. */
export function lossReason(error: unknown): string {
  const message = error instanceof Error && error.message !== '' ? error.message : String(error);
  const sqlstate = sqlstateOf(error);
  return sqlstate && !message.startsWith(sqlstate) ? `${sqlstate}: ${message}` : message;
}

function interrupted(error: unknown, applied: Applied): StatementInterrupted {
  return new StatementInterrupted('connection-lost', applied, lossReason(error), sqlstateOf(error), { cause: error });
}

const TYPE_NAMES: Record<number, string> = {
  16: 'bool',
  17: 'bytea',
  18: 'char',
  19: 'name',
  20: 'int8',
  21: 'int2',
  23: 'int4',
  25: 'text',
  26: 'oid',
  114: 'json',
  142: 'xml',
  650: 'cidr',
  700: 'float4',
  701: 'float8',
  790: 'money',
  829: 'macaddr',
  869: 'inet',
  1042: 'bpchar',
  1043: 'varchar',
  1082: 'date',
  1083: 'time',
  1114: 'timestamp',
  1184: 'timestamptz',
  1186: 'interval',
  1266: 'timetz',
  1700: 'numeric',
  2249: 'record',
  2950: 'uuid',
  3802: 'jsonb',
  1009: 'text[]',
  1007: 'int4[]',
  1016: 'int8[]',
  2205: 'regclass',
  24: 'regproc',
  3614: 'tsvector',
};

export function typeName(oid: number): string {
  return TYPE_NAMES[oid] ?? `oid:${oid}`;
}

/** Numbers only where JSON keeps them exact; int8 and numeric stay text. */
function toCell(value: string | null, dataTypeID: number): Cell {
  if (value === null) return null;
  switch (dataTypeID) {
    case 21:
    case 23:
    case 26:
      return Number(value);
    case 700:
    case 701: {
      const n = Number(value);
      return Number.isFinite(n) ? n : value;
    }
    case 16:
      return value === 't';
    default:
      return value;
  }
}

interface Connection {
  parse(q: { text: string; name?: string; types?: unknown[] }): void;
  bind(c: { portal?: string; statement?: string; values?: unknown[]; binary?: boolean; valueMapper?: unknown }): void;
  describe(m: { type: 'P' | 'S'; name?: string }): void;
  execute(c: { portal?: string; rows?: number }): void;
  sync(): void;
  stream: { cork?: () => void; uncork?: () => void };
}

/**
 * A pg Submittable speaking the extended protocol directly: Parse/Bind/Describe
 * /Execute(max rows + 1)/Sync. Parse of a multi-statement string fails on the
 * server ("cannot insert multiple commands into a prepared statement"), a second
 * wall behind the parser.
 */
class StatementRun {
  private fields: Field[] = [];
  private readonly rows: Cell[][] = [];
  private bytes = 0;
  private truncated: RawResult['truncated'] = null;
  private command = '';
  private rowCount: number | null = null;
  private error: Error | null = null;
  private settle: ((r: { ok: true } | { ok: false; error: Error }) => void) | null = null;
  readonly done: Promise<{ ok: true } | { ok: false; error: Error }>;

  /** Index of the statement whose messages are arriving: prologue, the agent's, epilogue. */
  private stage = 0;

  constructor(
    private readonly text: string,
    private readonly limits: Pick<Limits, 'maxRows' | 'maxBytes'>,
    /** Reads stop fetching after the cap; writes must run to completion so rowCount is known. */
    private readonly fetchAll: boolean,
    /** Gateway-owned statements sent before and after in the same pipeline (one Sync, one round trip). */
    private readonly prologue: readonly string[] = [],
    private readonly epilogue: readonly string[] = [],
  ) {
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  submit(connection: Connection): void {
    // Each statement gets its own Parse/Bind/Execute, so the agent's text is still
    // parsed alone (the server refuses two statements in it); one Sync at the end.
    // An error makes the server skip to Sync, so the epilogue only runs on success.
    const own = (text: string) => {
      connection.parse({ text, name: '', types: [] });
      connection.bind({ portal: '', statement: '', values: [], binary: false });
      connection.execute({ portal: '', rows: 0 });
    };
    connection.stream.cork?.();
    try {
      for (const text of this.prologue) own(text);
      connection.parse({ text: this.text, name: '', types: [] });
      connection.bind({ portal: '', statement: '', values: [], binary: false });
      connection.describe({ type: 'P', name: '' });
      connection.execute({ portal: '', rows: this.fetchAll ? 0 : this.limits.maxRows + 1 });
      for (const text of this.epilogue) own(text);
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
  }

  private get atTarget(): boolean {
    return this.stage === this.prologue.length;
  }

  handleRowDescription(msg: { fields: Field[] }): void {
    this.fields = msg.fields.map((f) => ({ name: f.name, tableID: f.tableID, columnID: f.columnID, dataTypeID: f.dataTypeID }));
  }

  handleDataRow(msg: { fields: Array<string | null> }): void {
    if (!this.atTarget) return;
    if (this.truncated) return;
    if (this.rows.length >= this.limits.maxRows) {
      this.truncated = { reason: 'rows', limit: this.limits.maxRows };
      return;
    }
    let size = 0;
    for (const f of msg.fields) size += f === null ? 0 : Buffer.byteLength(f);
    if (this.bytes + size > this.limits.maxBytes) {
      this.truncated = { reason: 'bytes', limit: this.limits.maxBytes };
      return;
    }
    this.bytes += size;
    this.rows.push(msg.fields.map((value, i) => toCell(value, this.fields[i]?.dataTypeID ?? 25)));
  }

  handleCommandComplete(msg: { text?: string }): void {
    const target = this.atTarget;
    this.stage++;
    if (!target) return;
    // The command tag: "SELECT 3", "UPDATE 2", "INSERT 0 5" (oid, then count), "CREATE TABLE".
    const match = /^([A-Za-z]+(?: [A-Za-z]+)*?)(?: (\d+))?(?: (\d+))?$/.exec(String(msg.text ?? ''));
    this.command = match?.[1] ?? String(msg.text ?? '');
    const count = match?.[3] ?? match?.[2];
    this.rowCount = count === undefined ? null : Number(count);
  }

  handlePortalSuspended(): void {
    // More rows than max_rows + 1 remain: the cap already recorded truncation.
    if (this.atTarget) this.truncated ??= { reason: 'rows', limit: this.limits.maxRows };
    this.stage++;
  }

  handleEmptyQuery(): void {
    if (this.atTarget) this.command = 'EMPTY';
    this.stage++;
  }

  handleError(error: Error): void {
    this.error ??= error;
    // pg queues the next query until ReadyForQuery, so settling now is safe;
    // when the connection died, no ReadyForQuery will come at all.
    this.settle?.({ ok: false, error });
  }

  handleReadyForQuery(): void {
    this.settle?.(this.error ? { ok: false, error: this.error } : { ok: true });
  }

  handleCopyInResponse(connection: { sendCopyFail(msg: string): void }): void {
    connection.sendCopyFail('COPY is not supported through the gateway');
  }

  handleCopyData(): void {}

  result(notices: string[]): RawResult {
    return { fields: this.fields, rows: this.rows, command: this.command, rowCount: this.rowCount, truncated: this.truncated, bytes: this.bytes, notices };
  }
}

/** `dry-run`: a write run to completion in BEGIN READ WRITE and always rolled back (impact previews). */
export type RunMode = 'read' | 'write' | 'autocommit' | 'dry-run';

interface RunOutcome {
  readonly result: RawResult;
  /** The connection must not go back to the pool. */
  readonly discard: boolean;
}

/**
 * Releases session-level advisory locks: state a ROLLBACK does not undo, which
 * even a function the server calls STABLE can take. Sent with the ROLLBACK.
 */
const UNLOCK = 'SELECT pg_catalog.pg_advisory_unlock_all()';

/**
 * Runs `sql` (already classified) in the mode the access level requires.
 * `markDirty` is called when the session could not be cleaned up after a
 * failure: the caller must then discard the connection. `fault` reports a
 * socket-level error the caller's 'error' listener saw on this client.
 * Throws StatementInterrupted when the session ends under the statement or the
 * server stops answering (and marks the session dirty).
 */
export async function runStatement(
  client: PoolClient,
  sql: string,
  mode: RunMode,
  limits: Limits,
  markDirty: () => void = () => undefined,
  fault: () => Error | null = () => null,
): Promise<RunOutcome> {
  const notices: string[] = [];
  const onNotice = (n: { message?: string | undefined; detail?: string | undefined }) => {
    if (notices.length < 50) notices.push([n.message, n.detail].filter(Boolean).join(' — '));
  };
  client.on('notice', onNotice);
  /**
   * What the server may keep if the session ends now: `unknown` from the moment
   * COMMIT (or an autocommit statement) is on the wire until its answer came.
   */
  let atStake: Applied = 'nothing';
  /** A failure of the step in flight: the session ended (no cleanup is possible), or null for the statement's own error. */
  const failed = (error: unknown): StatementInterrupted | null => {
    if (!sessionLost(error, fault())) return null;
    markDirty();
    return interrupted(sessionEnded(error) ? error : (fault() ?? error), atStake);
  };
  // A client-side guard in case the server stops answering: the session is then dropped.
  let guard: NodeJS.Timeout | undefined;
  const waitMs = limits.timeoutMs + 5000;
  const timedOut = new Promise<never>((_, reject) => {
    guard = setTimeout(() => {
      markDirty();
      reject(new StatementInterrupted('no-answer', atStake, `waited ${waitMs} ms`, null));
    }, waitMs);
  });
  try {
    const settings = [
      `SET LOCAL statement_timeout = ${Math.max(1, Math.floor(limits.timeoutMs))}`,
      `SET LOCAL lock_timeout = ${Math.max(1, Math.floor(limits.lockTimeoutMs))}`,
      `SET LOCAL idle_in_transaction_session_timeout = ${Math.floor(limits.timeoutMs) + 10000}`,
    ];
    /** Sends a read, dry run or the first round trip of a write; on failure rolls back unless the session is gone. */
    const inTransaction = async (run: StatementRun): Promise<void> => {
      try {
        await submit(client, run);
      } catch (error) {
        // Never committed: PostgreSQL rolls back the transaction of a session that ends.
        const gone = failed(error);
        if (gone) throw gone;
        await client.query(`ROLLBACK; ${UNLOCK}`).catch(() => markDirty());
        throw error;
      }
    };
    const body = async (): Promise<RunOutcome> => {
      if (mode === 'autocommit') {
        // Statements PostgreSQL refuses in a transaction block: session-level limits, then discard.
        try {
          await client.query(settings.map((q) => q.replace('SET LOCAL', 'SET')).join('; '));
          // From here the statement commits by itself: a lost answer leaves its effect unknown.
          atStake = 'unknown';
          const run = await submit(client, new StatementRun(sql, limits, true));
          atStake = 'nothing';
          return { result: run.result(notices), discard: true };
        } catch (error) {
          throw failed(error) ?? error;
        }
      }
      if (mode === 'read') {
        // One round trip: BEGIN READ ONLY, the limits, the statement, ROLLBACK and
        // the advisory-lock release, pipelined under one Sync. The limits take effect
        // for the statement because the server re-arms statement_timeout per message.
        const run = new StatementRun(sql, limits, false, ['BEGIN READ ONLY', ...settings], ['ROLLBACK', UNLOCK]);
        await inTransaction(run);
        return { result: run.result(notices), discard: false };
      }
      if (mode === 'dry-run') {
        // An impact preview: the write runs to completion (so the command tag counts every
        // row) and is rolled back in the same round trip, advisory locks released. Deferred
        // constraints are checked at the statement's end, as the COMMIT it never reaches would.
        const run = new StatementRun(sql, limits, true, ['BEGIN READ WRITE', ...settings, 'SET CONSTRAINTS ALL IMMEDIATE'], ['ROLLBACK', UNLOCK]);
        await inTransaction(run);
        return { result: run.result(notices), discard: false };
      }
      // Writes: the statement runs to completion in its own transaction; the affected
      // row count decides COMMIT or ROLLBACK in a second round trip.
      const run = new StatementRun(sql, limits, true, ['BEGIN READ WRITE', ...settings]);
      await inTransaction(run);
      const result = run.result(notices);
      if (result.rowCount !== null && result.rowCount > limits.maxAffectedRows) {
        await end(client, 'ROLLBACK', markDirty);
        throw new DrawbridgeError(
          'limits.affected_rows',
          `The write would change ${result.rowCount} rows, more than the limit of ${limits.maxAffectedRows}; it was rolled back and nothing changed.`,
          {
            details: { affectedRows: result.rowCount, limit: limits.maxAffectedRows },
          },
        );
      }
      // SAFETY: from the moment COMMIT is sent until its answer arrives, a lost session
      // means the server may or may not have committed: the failure must say "unknown".
      atStake = 'unknown';
      try {
        await end(client, 'COMMIT', markDirty);
      } catch (error) {
        throw failed(error) ?? error;
      }
      // COMMIT answered: a session lost while releasing advisory locks changes nothing.
      atStake = 'nothing';
      return { result, discard: false };
    };
    return await Promise.race([body(), timedOut]);
  } finally {
    clearTimeout(guard);
    client.removeListener('notice', onNotice);
  }
}

/**
 * Ends the transaction and releases advisory locks. A failed COMMIT is the
 * statement's failure (a deferred constraint, say) and is reported; a failed
 * ROLLBACK or unlock only means the session cannot be trusted: discard it.
 */
async function end(client: PoolClient, how: 'COMMIT' | 'ROLLBACK', markDirty: () => void): Promise<void> {
  if (how === 'ROLLBACK') {
    await client.query(`ROLLBACK; ${UNLOCK}`).catch(() => markDirty());
    return;
  }
  try {
    await client.query('COMMIT');
  } catch (error) {
    markDirty();
    throw toServerError(error as Error);
  }
  await client.query(UNLOCK).catch(() => markDirty());
}

async function submit(client: PoolClient, run: StatementRun): Promise<StatementRun> {
  void client.query(run as never);
  const settled = await run.done;
  if (!settled.ok) throw toServerError(settled.error);
  return run;
}

function toServerError(error: Error): Error {
  const e = error as Error & { code?: string; detail?: string; hint?: string; where?: string; severity?: string };
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return new ServerError(e.message, e.code, e.detail, e.hint, e.where, e.severity);
  return error;
}
