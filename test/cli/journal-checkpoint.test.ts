// `drawbridge journal checkpoint`, `journal verify` with checkpoints (the config's, or an
// auditor's own copies with --checkpoints/--public-key) and `check` on the signing key, run
// in process. The journal is a real SQLite file in a throwaway config directory.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openJournal } from '../../src/state/sqlite/journal.js';
import { spawn } from 'node:child_process';
import { requireBuiltCli, runInProcess, waitForOutput } from '../support/cli.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function pems(): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** A config dir whose journal has `records` records, checkpoints signed with the key in $CHECKPOINT_KEY. */
function setup(records: number, checkpoints = true): { dir: string; journal: string; file: string; env: Record<string, string> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-cp-cli-'));
  dirs.push(dir);
  fs.mkdirSync(path.join(dir, 'policies'));
  const block = checkpoints ? ', checkpoints: { every: 1m, signing_key: "${CHECKPOINT_KEY}", publish: { file: checkpoints.jsonl } }' : '';
  fs.writeFileSync(path.join(dir, 'policies', 'gateway.yaml'), `kind: gateway\njournal: { path: journal.db${block} }\n`);
  const journal = path.join(dir, 'journal.db');
  append(journal, records);
  return { dir, journal, file: path.join(dir, 'checkpoints.jsonl'), env: { CHECKPOINT_KEY: pems().privatePem } };
}

function append(journal: string, n: number): void {
  const j = openJournal(journal);
  for (let i = 0; i < n; i++) j.append('call', `c${i}`, { i });
  j.close();
}

function deleteNewest(journal: string, keep: number): void {
  const db = new Database(journal);
  try {
    db.exec('DROP TRIGGER records_no_update; DROP TRIGGER records_no_delete;');
    db.prepare('DELETE FROM records WHERE seq > ?').run(keep);
  } finally {
    db.close();
  }
}

describe('drawbridge journal checkpoint and verify', () => {
  it('publishes a checkpoint, verifies against it, and catches the newest records deleted', async () => {
    const { dir, journal, file, env } = setup(5);
    const cp = await runInProcess(['journal', 'checkpoint', '--config', dir], { env });
    expect(cp.stderr).toBe('');
    expect(cp.status).toBe(0);
    expect(cp.stdout).toMatch(/^checkpoint: 5 records, head [0-9a-f]{64}, at \S+, key [0-9a-f]{16}; appended to .*checkpoints\.jsonl\n$/);
    expect(cp.stdout).not.toContain('PRIVATE KEY');

    const ok = await runInProcess(['journal', 'verify', '--config', dir], { env });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/^OK .*: 5 records, chain intact; head [0-9a-f]{64}; 1 checkpoint\(s\) verified, proving records 1\.\.5\n$/);

    append(journal, 2);
    const later = await runInProcess(['journal', 'verify', '--config', dir], { env });
    expect(later.status).toBe(0);
    expect(later.stdout).toContain(
      '1 checkpoint(s) verified, proving records 1..5; records 6..7 come after the last checkpoint and are unproven (deleting them would not be detected)',
    );

    deleteNewest(journal, 3);
    const cut = await runInProcess(['journal', 'verify', '--config', dir], { env });
    expect(cut.status).toBe(1);
    expect(cut.stdout).toMatch(
      /^FAILED .*: first bad record is #4: the checkpoint on line 1 \(\S+\) attests 5 records but the journal has 3: records 4\.\.5 were deleted/,
    );
    expect(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('lets an auditor verify with their own copies of the journal, the checkpoints and the public key', async () => {
    const { dir, journal, file, env } = setup(4);
    expect((await runInProcess(['journal', 'checkpoint', '--config', dir], { env })).status).toBe(0);
    const auditor = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-auditor-'));
    dirs.push(auditor);
    fs.copyFileSync(journal, path.join(auditor, 'journal.db'));
    fs.copyFileSync(file, path.join(auditor, 'checkpoints.jsonl'));
    const { createPublicKey } = await import('node:crypto');
    fs.writeFileSync(
      path.join(auditor, 'pub.pem'),
      createPublicKey(env.CHECKPOINT_KEY as string)
        .export({ type: 'spki', format: 'pem' })
        .toString(),
    );
    const args = ['journal', 'verify', '--journal', 'journal.db', '--checkpoints', 'checkpoints.jsonl'];

    const ok = await runInProcess([...args, '--public-key', 'pub.pem'], { cwd: auditor });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/1 checkpoint\(s\) verified, proving records 1\.\.4\n$/);

    fs.writeFileSync(path.join(auditor, 'other.pem'), pems().publicPem);
    const wrongKey = await runInProcess([...args, '--public-key', 'other.pem'], { cwd: auditor });
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.stdout).toMatch(/^FAILED .*: bad checkpoint: checkpoint on line 1: signed by key [0-9a-f]{16}, not by the given public key/);

    const noKey = await runInProcess(args, { cwd: auditor });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/--checkpoints needs --public-key FILE/);
  });

  it('without checkpoints verifies as before and says none were checked', async () => {
    const { dir } = setup(2, false);
    const r = await runInProcess(['journal', 'verify', '--config', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/2 records, chain intact; head [0-9a-f]{64}; no checkpoints checked, so records deleted from the end would not be detected\n$/);
    const cp = await runInProcess(['journal', 'checkpoint', '--config', dir]);
    expect(cp.status).toBe(1);
    expect(cp.stderr).toMatch(/No checkpoints are configured/);
  });

  it('fails closed when the configured checkpoint file is missing, and says how to write one', async () => {
    const { dir, env } = setup(2);
    const r = await runInProcess(['journal', 'verify', '--config', dir], { env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/journal\.unavailable: Cannot read the checkpoint file .*checkpoints\.jsonl/);
    expect(r.stderr).toMatch(/drawbridge journal checkpoint writes one now/);
  });

  it('journal checkpoint --help shows the command and an example', async () => {
    const r = await runInProcess(['journal', 'checkpoint', '--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('drawbridge journal checkpoint --config /etc/drawbridge');
  });
});

describe('drawbridge check and the checkpoint signing key', () => {
  const cases: Array<[string, Record<string, string | undefined>, RegExp]> = [
    ['missing', { CHECKPOINT_KEY: undefined }, /config\.secret_missing: The checkpoint signing key cannot be read \(\$CHECKPOINT_KEY\)/],
    ['not a key', { CHECKPOINT_KEY: 'hunter2-not-a-key' }, /config\.secret_invalid: The checkpoint signing key is not an Ed25519 key/],
    ['an RSA key', { CHECKPOINT_KEY: 'RSA' }, /config\.secret_invalid/],
  ];
  it.each(cases)('reports a signing key that is %s, exit 1, without printing it', async (_name, override, message) => {
    const { dir } = setup(0);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const env = { ...override, ...(override.CHECKPOINT_KEY === 'RSA' ? { CHECKPOINT_KEY: rsa } : {}) };
    const r = await runInProcess(['check', '--config', dir], { env });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout + r.stderr).not.toMatch(/hunter2|PRIVATE KEY/);
  });

  it('accepts a good key and shows its key id, never the key', async () => {
    const { dir, env } = setup(0);
    const r = await runInProcess(['check', '--config', dir], { env });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^checkpoints: every 1m to .*checkpoints\.jsonl, signing key \$CHECKPOINT_KEY \(key id [0-9a-f]{16}\)$/m);
    expect(r.stdout).not.toContain('PRIVATE KEY');
  });

  it('refuses a signing key written inline in the config', async () => {
    const { dir } = setup(0);
    fs.writeFileSync(
      path.join(dir, 'policies', 'gateway.yaml'),
      'kind: gateway\njournal: { checkpoints: { signing_key: "inline", publish: { file: c.jsonl } } }\n',
    );
    const r = await runInProcess(['check', '--config', dir]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/journal\.checkpoints\.signing_key is written inline/);
  });
});

describe('drawbridge serve with checkpoints', () => {
  it('refuses to start without its signing key', async () => {
    const { dir } = setup(0);
    const r = await runInProcess(['serve', '--config', dir], { env: { CHECKPOINT_KEY: undefined } });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/config\.secret_missing: The checkpoint signing key cannot be read/);
  });

  it('writes a checkpoint on shutdown (the binary, stopped by SIGTERM)', async () => {
    const cli = requireBuiltCli();
    const { dir, file, env } = setup(3);
    const child = spawn(process.execPath, [cli, 'serve', '--config', dir], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitForOutput(() => stderr, /serving 0 tool\(s\) over stdio/, 'serve to start', 30_000);
      expect(fs.existsSync(file)).toBe(false); // the first interval checkpoint is a minute away
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    // The 3 records of setup and the `config` record of serve's start (its config hash).
    expect(JSON.parse(lines[0] as string)).toMatchObject({ v: 1, count: 4 });
    const verified = await runInProcess(['journal', 'verify', '--config', dir], { env });
    expect(verified.stdout).toMatch(/1 checkpoint\(s\) verified, proving records 1\.\.4\n$/);
  });
});
