// The last-resort guard of `drawbridge serve` (stdio and --http): an
// uncaught exception or unhandled rejection is logged as one line on stderr
// and the gateway keeps serving, instead of one agent's fault ending every
// other agent's session (and leaving calls journaled without outcomes).
//
// Never relied on: every fault the gateway knows of has its own handler (a
// pg client's 'error' listener, an SSH stream's, …), and the fault tests
// assert that this guard never fired. It only stops a fault nobody foresaw
// from taking the process down. The line names the error's type and its first
// message line with credentials blanked; the stack only with DRAWBRIDGE_DEBUG=1.

type GuardEvent = 'uncaughtException' | 'unhandledRejection';

/** What the guard listens on: `process`, or a stand-in in tests. */
export interface GuardTarget {
  on(event: GuardEvent, listener: (value: unknown) => void): unknown;
  removeListener(event: GuardEvent, listener: (value: unknown) => void): unknown;
}

export interface ProcessGuard {
  /** How many faults reached the guard; 0 means every fault had its own handler. */
  readonly fired: number;
  uninstall(): void;
}

export interface GuardOptions {
  /** Where the line goes; default stderr. */
  readonly write?: (line: string) => void;
  readonly target?: GuardTarget;
  /** Add the stack (DRAWBRIDGE_DEBUG=1); default from the environment. */
  readonly debug?: boolean;
}

/** The start of every line the guard writes: tests look for it on a gateway's stderr. */
export const GUARD_LINE_PREFIX = 'drawbridge: last-resort guard:';

const MAX_MESSAGE = 200;

/** Blanks what could be a credential in a message: URL passwords, key=value secrets, bearer tokens, JWTs. */
export function redactSecrets(text: string): string {
  return text
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]*@/gi, '$1***@')
    .replace(/\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|\S+)/gi, '$1$2***')
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g, '$1 ***')
    .replace(/\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?/g, '***');
}

/** One line for a thrown value: its type, an errno/SQLSTATE code if any, its first message line (redacted, shortened). */
export function describeFault(value: unknown): string {
  if (!(value instanceof Error)) return `a thrown ${value === null ? 'null' : typeof value} (not an Error)`;
  const code = (value as { code?: unknown }).code;
  const first = (value.message.split('\n')[0] ?? '').trim();
  const message = redactSecrets(first);
  const shown = message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message;
  return `${value.name}${typeof code === 'string' && /^[A-Za-z0-9_]{1,32}$/.test(code) ? ` [${code}]` : ''}${shown ? `: ${shown}` : ''}`;
}

/** A write to a stream whose other end is gone. */
function isBrokenPipe(value: unknown): boolean {
  const code = value instanceof Error ? (value as { code?: unknown }).code : undefined;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

export function installProcessGuard(options: GuardOptions = {}): ProcessGuard {
  const target: GuardTarget = options.target ?? process;
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const debug = options.debug ?? process.env['DRAWBRIDGE_DEBUG'] === '1';
  let fired = 0;
  const handle =
    (event: GuardEvent) =>
    (value: unknown): void => {
      fired++;
      // A stream whose reader is gone (EPIPE, a destroyed stream): stderr may be that stream, and a
      // line about it would fail the same way on the next tick, forever. Counted, not written.
      if (isBrokenPipe(value)) return;
      const what = event === 'uncaughtException' ? 'an uncaught exception' : 'an unhandled promise rejection';
      const stack = debug && value instanceof Error && value.stack ? `\n${value.stack}` : '';
      try {
        write(
          `${GUARD_LINE_PREFIX} ${what} (${describeFault(value)}) was caught; still serving. ` +
            `This is a bug in Drawbridge: report it (DRAWBRIDGE_DEBUG=1 adds the details).${stack}\n`,
        );
      } catch {
        // stderr itself failed: nothing more can be said, and throwing here would end the process.
      }
    };
  const onException = handle('uncaughtException');
  const onRejection = handle('unhandledRejection');
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return {
    get fired() {
      return fired;
    },
    uninstall() {
      target.removeListener('uncaughtException', onException);
      target.removeListener('unhandledRejection', onRejection);
    },
  };
}
