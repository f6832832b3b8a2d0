// Section 3 of `npm run bench` alone: masking throughput (cells/s through
// createMasker) and detector scan throughput (MB/s), with the same workloads
// and repeats as the full run, in seconds instead of minutes and without
// PostgreSQL, sshd or the fake cluster. Prints the table and replaces only the
// "Masking throughput" section of bench/results.md (the other sections keep
// the full run's numbers). Run: `npm run build && node dist/bench/masking-only.js`
// (BENCH_QUICK=1: fewer repeats; BENCH_NO_WRITE=1: print only).

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { maskingTable, maskingThroughput, scanWorkloads } from './masking.js';
import { REPO_ROOT } from './latency.js';

const QUICK = process.env['BENCH_QUICK'] === '1';

const masking = maskingThroughput(QUICK ? 2 : 7);
const scans = scanWorkloads(QUICK);
const section = maskingTable(masking, scans);
process.stdout.write(`${section}\n`);

if (process.env['BENCH_NO_WRITE'] !== '1' && !QUICK) {
  const path = join(REPO_ROOT, 'bench', 'results.md');
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf('## Masking throughput');
  const end = start < 0 ? -1 : text.indexOf('\n## ', start + 1);
  if (start < 0 || end < 0) throw new Error('bench/results.md has no "## Masking throughput" section to replace; run `npm run bench`');
  const note =
    `Re-measured alone by \`node dist/bench/masking-only.js\` on ` +
    `${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} (the other sections are from the full run above).`;
  writeFileSync(path, `${text.slice(0, start)}## Masking throughput\n\n${note}\n\n${section}\n${text.slice(end)}`);
}
