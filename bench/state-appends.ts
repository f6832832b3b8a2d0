// Journal appends per second on the PostgreSQL state engine (src/state/postgres/): 50
// concurrent appenders spread over 1 or 3 handles (as 1 or 3 replicas), with group commit
// (the default) and with one transaction per append, against a throwaway local cluster with
// fsync on (a durable commit costs a WAL flush, as on a real server).
// Run: npm run build --silent && node dist/bench/state-appends.js [seconds per case, default 5]

import pg from 'pg';
import { startCluster } from '../dev/cluster.js';
import type { StateStore } from '../src/state/contract.js';
import { openPostgresState } from '../src/state/postgres/index.js';
import type { CommitMode } from '../src/state/postgres/journal.js';
import { percentile } from './support.js';

const APPENDERS = 50;

function intent(i: number): Record<string, unknown> {
  return {
    principal: { subject: 'analyst@example.com', groups: ['analysts'], kind: 'local', issuer: 'local' },
    tool: 'run_sql',
    connection: 'orders-prod',
    input: { sql: `SELECT id, status FROM orders WHERE customer_id = ${1000 + (i % 977)} LIMIT 50` },
    decision: { effect: 'allow', rule: 'analysts-read' },
  };
}

async function measure(url: string, handles: number, commit: CommitMode, seconds: number) {
  const states: StateStore[] = [];
  for (let h = 0; h < handles; h++) states.push(await openPostgresState({ url, purpose: 'serve', commit }));
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  let appends = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: APPENDERS }, async (_, a) => {
      const state = states[a % handles] as StateStore;
      while (performance.now() < end) {
        const t = performance.now();
        await state.journal.append('call', `c${a}-${appends}`, intent(appends));
        latencies.push(performance.now() - t);
        appends += 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(states.map((s) => s.close()));
  return { handles, commit, appends, perSecond: Math.round(appends / elapsed), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 5);
  const cluster = await startCluster({ fsync: true });
  try {
    const admin = new pg.Client({ connectionString: cluster.superuserUrl });
    await admin.connect();
    const rows = [];
    for (const handles of [1, 3]) {
      for (const commit of ['batch', 'each'] as const) {
        const db = `bench_${handles}_${commit}`;
        await admin.query(`CREATE DATABASE ${db}`);
        rows.push(await measure(cluster.urlFor(db), handles, commit, seconds));
      }
    }
    await admin.end();
    console.log('| handles | commit | appends/s | p50 ms | p99 ms |');
    console.log('|---|---|---|---|---|');
    for (const r of rows)
      console.log(
        `| ${r.handles} | ${r.commit === 'batch' ? 'group commit' : 'one per append'} | ${r.perSecond} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} |`,
      );
  } finally {
    await cluster.stop();
  }
}

await main();
