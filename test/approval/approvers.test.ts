// identifyApprover: local approvers proven by a token resolved from the config's
// secret references; no match is one error that never says which part was wrong
// and never contains a token. When references could not be resolved in this
// shell, it names the unset variables (names only), the same for any token.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { identifyApprover } from '../../src/approval/approvers.js';
import { safeBlock, safeLine } from '../../src/approval/format.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import type { SecretRef } from '../../src/config/secrets.js';
import { DrawbridgeError } from '../../src/errors.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const env = (name: string): SecretRef => ({ kind: 'env', name, describe: `$${name}` });

function config(approvers: Array<{ subject: string; groups: string[]; token: SecretRef }>, dir = '/nonexistent'): Pick<GatewayConfig, 'dir' | 'approval'> {
  return { dir, approval: { store: '/x/approvals.db', waitMs: 1, elicitationTimeoutMs: 1, pendingTtlMs: 1, approvers, notify: [], requestStateKey: null } };
}

const BOB_TOKEN = 'bob-token-0123456789abcdef';
const CAROL_TOKEN = 'carol-token-fedcba9876543210';
const ENV = { BOB_TOKEN, CAROL_TOKEN };

function unknown(fn: () => unknown): DrawbridgeError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrawbridgeError);
    const e = error as DrawbridgeError;
    expect(e.code).toBe('identity.unknown_approver');
    expect(e.message).toBe('The approver token does not match any configured approver.');
    for (const secret of [BOB_TOKEN, CAROL_TOKEN]) expect(`${e.message} ${e.hint} ${JSON.stringify(e.details)}`).not.toContain(secret);
    return e;
  }
  throw new Error('expected identity.unknown_approver');
}

/** identity.unknown_approver naming `names` as unset, with no token anywhere in it. */
function unresolved(fn: () => unknown, names: string[]): DrawbridgeError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DrawbridgeError);
    const e = error as DrawbridgeError;
    expect(e.code).toBe('identity.unknown_approver');
    expect(e.message).toMatch(/^The approver token matches none of the approvers that can be checked here: /);
    for (const name of names) expect(e.message).toContain(name);
    for (const secret of [BOB_TOKEN, CAROL_TOKEN]) expect(`${e.message} ${e.hint} ${JSON.stringify(e.details)}`).not.toContain(secret);
    return e;
  }
  throw new Error('expected identity.unknown_approver');
}

describe('identifyApprover', () => {
  const two = config([
    { subject: 'bob', groups: ['dba'], token: env('BOB_TOKEN') },
    { subject: 'carol', groups: ['dba', 'sre'], token: env('CAROL_TOKEN') },
  ]);

  it('returns the approver whose token matches, as a local identity', () => {
    expect(identifyApprover(two, BOB_TOKEN, ENV)).toEqual({ subject: 'bob', groups: ['dba'], kind: 'local' });
    expect(identifyApprover(two, CAROL_TOKEN, ENV)).toEqual({ subject: 'carol', groups: ['dba', 'sre'], kind: 'local' });
  });

  it('refuses any other token with one message: wrong, prefix, longer, empty, case', () => {
    for (const token of ['nope', BOB_TOKEN.slice(0, -1), `${BOB_TOKEN}x`, '', BOB_TOKEN.toUpperCase(), ` ${BOB_TOKEN}`])
      unknown(() => identifyApprover(two, token, ENV));
  });

  it('an approver whose token reference cannot be resolved never matches; the others still do', () => {
    unresolved(() => identifyApprover(two, BOB_TOKEN, { CAROL_TOKEN }), ['BOB_TOKEN']);
    expect(identifyApprover(two, CAROL_TOKEN, { CAROL_TOKEN }).subject).toBe('carol');
    unknown(() => identifyApprover(config([]), BOB_TOKEN, ENV));
  });

  it('no match while tokens cannot be resolved here: names the unset variables (not whose token it was) and what to do', () => {
    // The same answer whether the presented token is bob's, carol's or nobody's.
    for (const token of [BOB_TOKEN, CAROL_TOKEN, 'nope']) {
      const e = unresolved(() => identifyApprover(two, token, { CAROL_TOKEN: '' }), ['BOB_TOKEN', 'CAROL_TOKEN']);
      expect(e.message).toBe(
        'The approver token matches none of the approvers that can be checked here: BOB_TOKEN and CAROL_TOKEN are not ' +
          'set in this environment, so approvers whose tokens come from them (approval.approvers) cannot be recognised.',
      );
      expect(e.hint).toBe(
        "Export the variables the gateway uses in this shell (export BOB_TOKEN=… with the gateway's value), " +
          "or run drawbridge approvals where the gateway's environment is (its host and user); then retry.",
      );
      expect(e.message).not.toMatch(/bob|carol/);
    }
    // A template names only what is missing from it; a token file that cannot be read is named by its path.
    const mixed = config([
      { subject: 'bob', groups: ['dba'], token: { kind: 'template', template: '${PREFIX}-${BOB_TOKEN}', describe: '$PREFIX, $BOB_TOKEN' } },
      { subject: 'carol', groups: ['dba'], token: { kind: 'file', path: '/nonexistent/carol.token', describe: 'file' } },
    ]);
    const e = unresolved(() => identifyApprover(mixed, 'x', { BOB_TOKEN }), ['PREFIX']);
    expect(e.message).toContain(
      'PREFIX is not set in this environment; the token file /nonexistent/carol.token cannot be read here, so approvers whose tokens come from them',
    );
    expect(e.details).toEqual({ unset: ['PREFIX'], unreadable: ['/nonexistent/carol.token'] });
    // Someone who does match is recognised even when others cannot be checked.
    expect(identifyApprover(two, BOB_TOKEN, { BOB_TOKEN }).subject).toBe('bob');
  });

  it('resolves file and template references relative to the config directory', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-approvers-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'bob.token'), `${BOB_TOKEN}\n`);
    const c = config(
      [
        { subject: 'bob', groups: ['dba'], token: { kind: 'file', path: 'bob.token', describe: 'file bob.token' } },
        { subject: 'carol', groups: [], token: { kind: 'template', template: 'c-${CAROL_TOKEN}', describe: '$CAROL_TOKEN' } },
      ],
      dir,
    );
    expect(identifyApprover(c, BOB_TOKEN, {}).subject).toBe('bob');
    expect(identifyApprover(c, `c-${CAROL_TOKEN}`, ENV).subject).toBe('carol');
    unknown(() => identifyApprover(c, CAROL_TOKEN, ENV));
  });

  it('an empty token file matches nothing, not even an empty token', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'drawbridge-approvers-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'empty.token'), '\n');
    const c = config([{ subject: 'bob', groups: ['dba'], token: { kind: 'file', path: 'empty.token', describe: 'file' } }], dir);
    unknown(() => identifyApprover(c, '', {}));
  });

  it('two approvers sharing a token is a configuration error, not a guess', () => {
    const c = config([
      { subject: 'bob', groups: ['dba'], token: env('BOB_TOKEN') },
      { subject: 'mallory', groups: ['dba'], token: env('SAME') },
    ]);
    const e = (() => {
      try {
        identifyApprover(c, BOB_TOKEN, { BOB_TOKEN, SAME: BOB_TOKEN });
      } catch (error) {
        return error as DrawbridgeError;
      }
      throw new Error('expected an error');
    })();
    expect(e.code).toBe('config.invalid');
    expect(e.message).not.toContain(BOB_TOKEN);
  });
});

describe('format: text from a request is made inert', () => {
  it('escapes terminal escapes, carriage returns, bidi overrides and invisible characters', () => {
    expect(safeLine('a\u001b[2Jb\rc\nd\te')).toBe('a\\u{001b}[2Jb\\rc\\nd\\te');
    expect(safeBlock('DELETE FROM t\n\tWHERE x = 1 \u202e-- \u2066')).toBe('DELETE FROM t\n\tWHERE x = 1 \\u{202e}-- \\u{2066}');
    expect(safeLine('zero\u200bwidth\ufeff\u0085')).toBe('zero\\u{200b}width\\u{feff}\\u{0085}');
    expect(safeLine('plain é ü 漢字')).toBe('plain é ü 漢字');
  });
});
