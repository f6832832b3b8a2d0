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

const code = await runCommandLine(process.argv.slice(2), processIo());
// The answer is complete once it is written: exit now instead of waiting for what a command
// left open (a `check --connect` probe of a server that never answered keeps its socket a while).
await new Promise<void>((done) => process.stdout.write('', () => done()));
process.exit(code);
