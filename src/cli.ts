#!/usr/bin/env node
// The `drawbridge` binary: runs the command line (src/cli/main.ts) on this
// process's streams, environment and signals, then exits with its code. The
// only place that ends the process; everything else returns an exit code.

import { processIo } from './cli/io.js';
import { runCommandLine } from './cli/main.js';

// `drawbridge journal export | head`: the reader leaving is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

// stderr's reader gone (a client killed with every pipe closed, a log collector that died): nothing
// more can be said there, and that is no reason to stop. Unhandled, each failed line became an
// uncaught exception whose guard line failed again on the next tick, a loop that starved the
// event loop: the gateway never saw stdin end and spun a core (test/cli/serve-orphaned.test.ts).
process.stderr.on('error', () => undefined);

const code = await runCommandLine(process.argv.slice(2), processIo());
// The answer is complete once it is written: exit now instead of waiting for what a command
// left open (a `check --connect` probe of a server that never answered keeps its socket a while).
await new Promise<void>((done) => process.stdout.write('', () => done()));
process.exit(code);
