// The command line as a function: `drawbridge ARGS` runs as
// runCommandLine(args, io) and returns the exit code (0 done, 1 refused or
// failed, 2 usage, 70 an internal error), printing what went wrong without a
// stack trace. It never exits the process: the binary (src/cli.ts) does, and
// tests run commands in process with their own CliIo. This module finds the
// command and parses its arguments; each command lives in its own module.

import { safeLine } from '../approval/format.js';
import { isDrawbridgeError } from '../errors.js';
import { approvalsList, approvalsShow, approvalsVote, grantsList, grantsRevoke } from './approvals.js';
import {
  CliError,
  COMMANDS,
  commandHelp,
  generalHelp,
  packageVersion,
  parseCommand,
  subcommandsOf,
  type CommandName,
  type CommandSpec,
  type OptionSpec,
  type Parsed,
} from './commands.js';
import { check, policyExplain } from './inspect.js';
import { fail, printHelp, type CliIo } from './io.js';
import { journalCheckpoint, journalExport, journalStream, journalVerify } from './journal.js';
import { reload } from './reload.js';
import { connect, serve, token } from './serve.js';
import { stateCopy, stateMigrate } from './state.js';

type Runner = (args: readonly string[], io: CliIo) => Promise<number>;

/** A command's arguments parsed against its spec, `--help` answered, then the command run. */
function runner<const O extends Readonly<Record<string, OptionSpec>>>(
  spec: CommandSpec<O>,
  command: (parsed: Extract<Parsed<O>, { readonly help: false }>, io: CliIo) => number | Promise<number>,
): Runner {
  return async (args, io) => {
    const parsed = parseCommand(spec, args);
    return parsed.help ? printHelp(spec, io) : command(parsed, io);
  };
}

const RUNNERS: { readonly [N in CommandName]: Runner } = {
  serve: runner(COMMANDS.serve, serve),
  connect: runner(COMMANDS.connect, connect),
  token: runner(COMMANDS.token, token),
  check: runner(COMMANDS.check, check),
  reload: runner(COMMANDS.reload, reload),
  'policy explain': runner(COMMANDS['policy explain'], policyExplain),
  'journal export': runner(COMMANDS['journal export'], journalExport),
  'journal verify': runner(COMMANDS['journal verify'], journalVerify),
  'journal checkpoint': runner(COMMANDS['journal checkpoint'], journalCheckpoint),
  'journal stream': runner(COMMANDS['journal stream'], journalStream),
  'state migrate': runner(COMMANDS['state migrate'], stateMigrate),
  'state copy': runner(COMMANDS['state copy'], stateCopy),
  'approvals list': runner(COMMANDS['approvals list'], approvalsList),
  'approvals show': runner(COMMANDS['approvals show'], approvalsShow),
  'approvals approve': runner(COMMANDS['approvals approve'], (parsed, io) => approvalsVote('approve', parsed, io)),
  'approvals deny': runner(COMMANDS['approvals deny'], (parsed, io) => approvalsVote('deny', parsed, io)),
  'grants list': runner(COMMANDS['grants list'], grantsList),
  'grants revoke': runner(COMMANDS['grants revoke'], grantsRevoke),
  // The demo (dev/) is loaded only when asked for: serving never loads it.
  demo: runner(COMMANDS.demo, async ({ values }, io) => (await import('../../dev/demo.js')).runDemo(values, io)),
};

const isCommandName = (name: string): name is CommandName => Object.hasOwn(COMMANDS, name);

function unknownSubcommand(group: string, given: string | undefined): never {
  const names = subcommandsOf(group);
  const problem =
    given === undefined || given === '--help' || given === '-h' ? `drawbridge ${group} needs a command` : `Unknown ${group} command "${safeLine(given)}"`;
  return fail(`${problem}. Use: ${names.map((n) => `drawbridge ${group} ${n}`).join(' | ')} (each has --help).`);
}

/** The command `argv` names (`serve`, `journal export`) and its arguments; null when it names none. */
function commandOf(argv: readonly string[]): { readonly name: CommandName; readonly args: readonly string[] } | null {
  const [first, ...rest] = argv;
  if (first === undefined || first.includes(' ')) return null;
  if (isCommandName(first)) return { name: first, args: rest };
  if (subcommandsOf(first).length === 0) return null;
  const name = `${first} ${rest[0] ?? ''}`;
  return rest[0] !== undefined && isCommandName(name) ? { name, args: rest.slice(1) } : unknownSubcommand(first, rest[0]);
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  switch (first) {
    case '--version':
    case '-V':
    case 'version':
      io.stdout.write(`drawbridge ${packageVersion()}\n`);
      return 0;
    case undefined:
      io.stderr.write(generalHelp());
      return 2;
    case 'help':
    case '--help':
    case '-h': {
      const name = rest.join(' ');
      const spec = rest.length > 0 && isCommandName(name) ? COMMANDS[name] : undefined;
      if (rest.length > 0 && !spec) return fail(`No command "drawbridge ${safeLine(name)}". Run drawbridge --help for the list.`);
      io.stdout.write(spec ? commandHelp(spec) : generalHelp());
      return 0;
    }
  }
  const command = commandOf(argv);
  if (command === null) return fail(`Unknown command "${safeLine(first)}". Run drawbridge --help for the list of commands.`);
  return RUNNERS[command.name](command.args, io);
}

/** Runs `drawbridge ARGV` with `io` and returns its exit code; never throws, never exits. */
export async function runCommandLine(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    return reportFailure(error, io);
  }
}

/**
 * Prints what went wrong for a person and returns the exit code: 2 for usage,
 * 1 for anything they (or the operator) can fix, 70 only for a real internal
 * fault. A stack trace is printed only with DRAWBRIDGE_DEBUG=1.
 */
function reportFailure(error: unknown, io: CliIo): number {
  if (error instanceof CliError) {
    io.stderr.write(`${error.message.startsWith('drawbridge') ? '' : 'drawbridge: '}${error.message}\n`);
    return error.exitCode;
  }
  if (isDrawbridgeError(error)) {
    io.stderr.write(`drawbridge: ${error.code}: ${error.message}\n${error.hint}\n`);
    return error.code === 'input.invalid' ? 2 : 1;
  }
  const debug = io.env['DRAWBRIDGE_DEBUG'] === '1';
  const message = error instanceof Error ? error.message : String(error);
  io.stderr.write(
    `drawbridge: internal error: ${message}\n` +
      'This is a bug in Drawbridge, not something you did. Run again with DRAWBRIDGE_DEBUG=1 for the details and report them.\n' +
      (debug && error instanceof Error && error.stack ? `${error.stack}\n` : ''),
  );
  return 70;
}
