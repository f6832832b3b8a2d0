// `drawbridge journal stream --from SEQ` on both state engines, run in process: after real calls
// through a gateway, it prints records SEQ..head as JSON lines, or sends them (signed, in order, in
// the sink's batch size) to a loopback webhook receiver, and never moves the sink's durable
// cursor. Its refusals: a bad number, SEQ beyond the head, an unknown sink, --sink with --to-stdout,
// no --sink among several, and a sink that keeps failing (naming where to resume).

import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { openGateway } from '../../src/pipeline/gateway.js';
import { openState } from '../../src/state/open.js';
import { runInProcess } from '../support/cli.js';
import { as, freshDatabase, writeConfig } from '../support/fixtures.js';
import { stateRoleUrl } from '../support/state-role.js';

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SECRET = 'replay-secret-0123456789';

/** A webhook receiver on 127.0.0.1: each request's body, and whether its signature verified. */
async function receiver(status = 200): Promise<{ url: string; bodies: Array<{ sink: string; records: Array<{ seq: number }> }>; badSignatures: number }> {
  const state = { url: '', bodies: [] as Array<{ sink: string; records: Array<{ seq: number }> }>, badSignatures: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const expected = `sha256=${createHmac('sha256', SECRET)
        .update(`${String(req.headers['x-drawbridge-timestamp'])}.${body}`)
        .digest('hex')}`;
      if (req.headers['x-drawbridge-signature'] !== expected) state.badSignatures += 1;
      state.bodies.push(JSON.parse(body) as { sink: string; records: Array<{ seq: number }> });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  state.url = `http://127.0.0.1:${address.port}/hook`;
  return state;
}

type Engine = 'sqlite' | 'postgres';

/** A config with `sinks` as journal.stream on `engine`, and a journal with `calls` read calls in it (2 records each). */
async function journalWith(engine: Engine, sinks: string, calls: number): Promise<{ dir: string; env: Record<string, string> }> {
  const db = await freshDatabase('journal_stream');
  cleanups.push(() => db.drop());
  const dir = writeConfig();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policies', 'gateway.yaml');
  let yaml = readFileSync(file, 'utf8').replace('journal: { path: journal.db }', `journal:\n  path: journal.db\n  stream:\n${sinks}`);
  const env: Record<string, string> = { DB_URL: db.gatewayUrl, SIEM_SECRET: SECRET };
  if (engine === 'postgres') {
    yaml += 'state: { url: "${STATE_URL}" }\n';
    env['STATE_URL'] = await stateRoleUrl(db);
  }
  writeFileSync(file, yaml);
  const gateway = await openGateway({ configDir: dir, env });
  try {
    for (let i = 0; i < calls; i++) {
      const r = await callTool(gateway, {
        tool: 'run_sql',
        args: { connection: 'db', sql: 'SELECT 1 AS one' },
        identity: as('tester@example.com', ['analysts']),
      });
      expect(r.ok).toBe(true);
    }
  } finally {
    await gateway.close();
  }
  return { dir, env };
}

const sink = (name: string, url: string, batch = 2) => `    - { name: ${name}, type: webhook, url: "${url}", secret: "\${SIEM_SECRET}", batch: ${batch} }\n`;

describe.each<Engine>(['sqlite', 'postgres'])('journal stream on the %s state', (engine) => {
  it('prints records SEQ..head as JSON lines, and sends them to the sink in order without moving its cursor', async () => {
    const r = await receiver();
    const { dir, env } = await journalWith(engine, sink('siem', r.url), 3);

    const printed = await runInProcess(['journal', 'stream', '--from', '2', '--to-stdout', '--config', dir], { env });
    expect(printed.stderr).toBe('');
    expect(printed.status).toBe(0);
    const lines = printed.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { seq: number; type: string; hash: string; data: unknown });
    expect(lines.map((l) => l.seq)).toEqual([2, 3, 4, 5, 6]);
    expect(lines[0]).toMatchObject({ type: 'outcome' });
    expect(typeof lines[0]?.data).toBe('object');

    const sent = await runInProcess(['journal', 'stream', '--from', '3', '--config', dir], { env });
    expect(sent.status).toBe(0);
    expect(sent.stderr).toContain('4 record(s), 3..6, sent to siem (webhook); its cursor did not move');
    expect(r.badSignatures).toBe(0);
    expect(r.bodies.map((b) => b.records.map((x) => x.seq))).toEqual([
      [3, 4],
      [5, 6],
    ]);
    expect(r.bodies.every((b) => b.sink === 'siem')).toBe(true);

    const state = await openState(loadConfig(dir), { environment: { env, baseDir: dir }, purpose: 'command' });
    try {
      expect(await state.streams.cursor('siem')).toEqual({ seq: 0, updatedAt: null });
    } finally {
      await state.close();
    }
  });
});

describe('journal stream refuses', () => {
  it('a bad number, SEQ beyond the head, an unknown sink, --sink with --to-stdout, and no --sink among several', async () => {
    const r = await receiver();
    const { dir, env } = await journalWith('sqlite', sink('siem', r.url) + sink('archive', r.url), 1);
    const run = (...args: string[]) => runInProcess(['journal', 'stream', ...args, '--config', dir], { env });

    for (const bad of ['abc', '0', '-3', '1.5']) {
      const out = await run(`--from=${bad}`, '--to-stdout');
      expect(out.status).toBe(2);
      expect(out.stderr).toContain(`--from takes a record number, 1 or more (got "${bad}")`);
    }
    const missing = await run('--to-stdout');
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('journal stream needs --from SEQ');

    const beyond = await run('--from', '3', '--to-stdout');
    expect(beyond.status).toBe(1);
    expect(beyond.stderr).toMatch(/--from 3 is beyond the journal's head: .*journal\.db has 2 record\(s\)/);

    const unknown = await run('--from', '1', '--sink', 'splunk');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('There is no stream sink named "splunk" in journal.stream (configured: siem, archive).');

    const both = await run('--from', '1', '--sink', 'siem', '--to-stdout');
    expect(both.status).toBe(2);
    expect(both.stderr).toContain('--sink and --to-stdout exclude each other');

    const which = await run('--from', '1');
    expect(which.status).toBe(1);
    expect(which.stderr).toContain('Several stream sinks are configured (siem, archive): choose one with --sink NAME.');
    expect(r.bodies).toEqual([]);
  });

  it('a sink that keeps refusing fails the command, naming the record to resume from', async () => {
    const r = await receiver(400);
    const { dir, env } = await journalWith('sqlite', sink('siem', r.url), 1);
    const out = await runInProcess(['journal', 'stream', '--from', '1', '--config', dir], { env });
    expect(out.status).toBe(1);
    expect(out.stderr).toContain('sink siem refused records 1.. (HTTP 400); nothing was sent. Retry with --from 1.');
  });
});
