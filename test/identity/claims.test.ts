// The pure parts of OIDC token reading: claims by name or dotted path, groups
// as a string or a list, scopes from `scope` or `scp`. Table-driven.

import { describe, expect, it } from 'vitest';
import { DrawbridgeError } from '../../src/errors.js';
import { claimAt, groupsFrom, scopesFrom } from '../../src/identity/oidc.js';

describe('claimAt', () => {
  it.each([
    [{ groups: ['a'] }, 'groups', ['a']],
    [{ realm_access: { roles: ['dba'] } }, 'realm_access.roles', ['dba']],
    [{ 'https://example.com/groups': ['x'] }, 'https://example.com/groups', ['x']],
    [{ 'a.b': 1, a: { b: 2 } }, 'a.b', 1],
    [{ a: { b: 2 } }, 'a.c', undefined],
    [{ a: [{ b: 1 }] }, 'a.0.b', undefined],
    [{ a: null }, 'a.b', undefined],
    [{}, 'constructor', undefined],
    [{}, '__proto__.polluted', undefined],
  ] as const)('%j at %s', (payload, path, expected) => {
    expect(claimAt(payload as Record<string, unknown>, path)).toEqual(expected);
  });
});

describe('groupsFrom', () => {
  it.each([
    [{ groups: ['sre', 'developers'] }, ['sre', 'developers']],
    [{ groups: 'sre' }, ['sre']],
    [{ groups: '' }, []],
    [{ groups: [] }, []],
    [{}, []],
    [{ groups: null }, []],
    [{ groups: ['a', ''] }, ['a']],
  ] as const)('%j → %j', (payload, expected) => {
    expect(groupsFrom(payload as Record<string, unknown>, 'groups')).toEqual(expected);
  });

  it.each([[{ groups: 42 }], [{ groups: ['a', 1] }], [{ groups: { admin: true } }]])('refuses a malformed claim %j', (payload) => {
    expect(() => groupsFrom(payload, 'groups')).toThrow(DrawbridgeError);
    expect(() => groupsFrom(payload, 'groups')).toThrow(/neither a string nor a list of strings/);
  });
});

describe('scopesFrom', () => {
  it.each([
    [{ scope: 'mcp approvals' }, ['mcp', 'approvals']],
    [{ scope: '  mcp  ' }, ['mcp']],
    [{ scp: ['mcp', 'x'] }, ['mcp', 'x']],
    [{ scp: 'mcp x' }, ['mcp', 'x']],
    [{}, []],
    [{ scope: 5 }, []],
  ] as const)('%j → %j', (payload, expected) => {
    expect(scopesFrom(payload as Record<string, unknown>)).toEqual(expected);
  });
});
