// What a `drawbridge` command may touch of the process it runs in: the
// standard streams, the environment, the working directory and the stop
// signals, handed in as one CliIo. The binary (src/cli.ts) passes the real
// process; tests pass their own and run commands in process. Also the few
// helpers every command shares: usage failures, help, the config directory.

import { resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CliError, commandHelp, type CommandSpec } from './commands.js';

export interface CliIo {
  readonly stdin: Readable;
  /** Answers, reports and help. */
  readonly stdout: Writable;
  /** Messages for the person: warnings, progress, errors. */
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** Relative paths on the command line resolve against this directory. */
  readonly cwd: string;
  /** Calls `stop` once, on the first request to stop (SIGINT or SIGTERM for the binary). */
  onStop(stop: () => void): void;
  /** Calls `reload` on every request to reload (SIGHUP for the binary; serve only). Absent: nothing asks (tests in process). */
  onReload?(reload: () => void): void;
}

/** The real process: its streams, environment, working directory and signals. */
export function processIo(): CliIo {
  return {
    stdin: process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
    onStop(stop) {
      let called = false;
      const once = (): void => {
        process.off('SIGINT', once);
        process.off('SIGTERM', once);
        if (called) return;
        called = true;
        stop();
      };
      process.once('SIGINT', once);
      process.once('SIGTERM', once);
    },
    onReload(reload) {
      // Listening also replaces SIGHUP's default, which would end the process.
      process.on('SIGHUP', () => reload());
    },
  };
}

/** A usage mistake (2) or a fixable refusal (1): printed by the command line without a stack trace. */
export function fail(message: string, code: 1 | 2 = 2): never {
  throw new CliError(message, code);
}

/** Prints a command's help page; exit 0. */
export function printHelp(spec: CommandSpec, io: CliIo): number {
  io.stdout.write(commandHelp(spec));
  return 0;
}

/** --config, else $DRAWBRIDGE_CONFIG, else the working directory. */
export function configDir(value: string | undefined, io: CliIo): string {
  return resolve(io.cwd, value ?? io.env['DRAWBRIDGE_CONFIG'] ?? '.');
}

/** Why a secret reference did not resolve, from resolveSecret's message, without its "this connection" wording or final period. */
export function unresolvedReason(message: string): string {
  return message.replace(/^A secret needed by this connection is missing: /, '').replace(/\.$/, '');
}
