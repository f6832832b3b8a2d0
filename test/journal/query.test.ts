// Journal queries as URL parameters (src/journal/query.ts), shared by the approvals API and
// the console: every parameter parsed or refused with a message naming it, and the reader check.

import { describe, expect, it } from 'vitest';
import { isDrawbridgeError } from '../../src/errors.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { assertJournalReader, isJournalReader, searchFilterOf } from '../../src/journal/query.js';

const q = (s: string): URLSearchParams => new URLSearchParams(s);

describe('searchFilterOf', () => {
  it.each([
    ['', {}],
    [
      'subject=alice&tool=run_sql&connection=db&session=s1&client=claude',
      { subject: 'alice', tool: 'run_sql', connection: 'db', session: 's1', client: 'claude' },
    ],
    ['since=2026-12-01&until=2026-12-02T10:00:00Z', { since: new Date('2026-12-01'), until: new Date('2026-12-02T10:00:00Z') }],
    ['decision=approve&status=refused&limit=20&before=99', { decision: 'approve', status: 'refused', limit: 20, before: 99 }],
    ['subject=&tool=&decision=&status=&limit=', {}],
  ])('%s', (query, expected) => {
    expect(searchFilterOf(q(query))).toEqual(expected);
  });

  it.each([
    ['since=yesterday', /since must be an ISO date/],
    ['until=2026-13-45', /until must be an ISO date/],
    ['decision=maybe', /decision must be allow, deny or approve/],
    ['status=done', /status must be ok, refused, error/],
    ['limit=0', /limit must be an integer from 1 to 500/],
    ['limit=501', /limit must be an integer from 1 to 500/],
    ['limit=1e3', /limit must be an integer/],
    ['before=-1', /before must be an integer/],
  ])('refuses %s with input.invalid naming the parameter', (query, message) => {
    let caught: unknown;
    try {
      searchFilterOf(q(query));
    } catch (error) {
      caught = error;
    }
    expect(isDrawbridgeError(caught) && caught.code).toBe('input.invalid');
    expect((caught as Error).message).toMatch(message);
  });
});

describe('journal readers', () => {
  const dana = makeIdentity({ kind: 'oidc', subject: 'dana', groups: ['dba', 'auditors'], issuer: 'http://127.0.0.1/idp' });
  const bob = makeIdentity({ kind: 'oidc', subject: 'bob', groups: ['support'], issuer: 'http://127.0.0.1/idp' });

  it('admits a member of a reader group and refuses anyone else with journal.forbidden and how to fix it', () => {
    expect(isJournalReader(['auditors'], dana)).toBe(true);
    expect(() => assertJournalReader(['auditors'], dana)).not.toThrow();
    expect(isJournalReader(['auditors'], bob)).toBe(false);
    expect(() => assertJournalReader(['auditors'], bob)).toThrow(/for members of auditors; bob is in none of them/);
    expect(() => assertJournalReader([], dana)).toThrow(/journal.readers is empty/);
    try {
      assertJournalReader([], dana);
    } catch (error) {
      expect(isDrawbridgeError(error) && error.code).toBe('journal.forbidden');
      expect(isDrawbridgeError(error) && error.hint).toMatch(/journal: \{ readers:/);
    }
  });
});
