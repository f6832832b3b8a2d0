// Pattern matching for policy and masking rules: plain globs (tools,
// connections, subjects), qualified-name globs (tables, columns, functions),
// and the SSH program and command patterns (the SSH backend's, backends/ssh/policy.ts).

import { describe, expect, it } from 'vitest';
import { commandMatch, programMatch } from '../../src/backends/ssh/policy.js';
import { anyGlob, anyQualified, globMatch, qualifiedMatch, qualifiedMayMatch } from '../../src/policy/match.js';

describe('globMatch', () => {
  it.each([
    ['run_sql', 'run_sql', true],
    ['run_sql', 'run_sqlx', false],
    ['run_sql', 'xrun_sql', false],
    ['run_*', 'run_sql', true],
    ['run_*', 'run_', true],
    ['*', '', true],
    ['*', 'anything.with.dots', true],
    ['*@example.com', 'dev@example.com', true],
    ['*@example.com', 'dev@example.com.evil.org', false],
    ['*@example.com', 'dev@exampleXcom', false], // the dot is literal
    ['orders-?', 'orders-1', true],
    ['orders-?', 'orders-12', false],
    ['orders-?', 'orders-', false],
    ['prod-*-eu', 'prod-orders-eu', true],
    ['prod-*-eu', 'prod-orders-us', false],
    ['a+b', 'a+b', true], // regex metacharacters are literal
    ['a+b', 'aab', false],
    ['(x)|y', '(x)|y', true],
    ['(x)|y', 'y', false],
    ['[abc]', 'a', false],
    ['^$', '^$', true],
    ['a\\b', 'a\\b', true],
    ['Run_SQL', 'run_sql', false], // case-sensitive
    ['multi*', 'multi\nline', true],
  ] as const)('%j vs %j → %s', (pattern, value, expected) => {
    expect(globMatch(pattern, value)).toBe(expected);
  });

  it('anyGlob is any-of', () => {
    expect(anyGlob(['a', 'b*'], 'bee')).toBe(true);
    expect(anyGlob(['a', 'b*'], 'cee')).toBe(false);
    expect(anyGlob([], 'a')).toBe(false);
  });
});

describe('qualifiedMatch', () => {
  it.each([
    // A pattern of k segments matches the last k segments of the name.
    ['customers', 'public.customers', true],
    ['customers', 'customers', true],
    ['public.customers', 'public.customers', true],
    ['public.customers', 'sales.customers', false],
    ['public.customers', 'customers', false], // a qualified pattern never matches a shorter name
    ['customers.email', 'public.customers.email', true],
    ['customers.email', 'public.orders.email', false],
    ['*.email', 'public.customers.email', true],
    ['*.email', 'email', false],
    ['email', 'public.customers.email', true],
    // `*` stays inside one segment.
    ['public.*', 'public.customers', true],
    ['public.*', 'sales.customers', false],
    ['public.*', 'public.customers.email', false], // 3 segments: compares customers.email
    ['public.*', 'x.public.customers', true],
    ['*', 'public.customers', true], // one segment: the last one
    ['*', 'customers', true],
    ['pub*', 'public.customers', false],
    ['pub*.customers', 'public.customers', true],
    ['public.cust*', 'public.customers', true],
    ['public.c?stomers', 'public.customers', true],
    ['public.c?stomers', 'public.c.stomers', false], // `?` never matches a dot
    ['*.*', 'public.customers', true],
    ['*.*', 'customers', false],
    ['*.*.*', 'public.customers.email', true],
    ['pg_catalog.pg_authid', 'pg_catalog.pg_authid', true],
    ['pg_catalog.pg_authid', 'public.pg_authid', false],
    ['Customers', 'public.customers', false], // case-sensitive (quoted identifiers differ)
  ] as const)('%j vs %j → %s', (pattern, name, expected) => {
    expect(qualifiedMatch(pattern, name)).toBe(expected);
  });

  it('anyQualified is any-of', () => {
    expect(anyQualified(['orders', 'public.customers'], 'public.customers')).toBe(true);
    expect(anyQualified(['orders', 'public.customers'], 'public.products')).toBe(false);
  });
});

describe('qualifiedMayMatch (the deny side: over-matches on purpose)', () => {
  it.each([
    ['public.customers', 'public.customers', true],
    ['public.customers', 'customers', true], // unresolved, unqualified: may be public.customers
    ['pg_catalog.pg_authid', 'pg_authid', true],
    ['public.customers', 'sales.customers', false],
    ['public.customers', 'orders', false],
    ['public.*', 'anything', true],
    ['PUBLIC.Customers', 'public.customers', true], // case is ignored
    ['customers', 'PUBLIC.CUSTOMERS', true],
    ['public.*', 'public.customers.email', false],
  ] as const)('%j vs %j → %s', (pattern, name, expected) => {
    expect(qualifiedMayMatch(pattern, name)).toBe(expected);
  });

  it('matches everything qualifiedMatch matches', () => {
    const patterns = ['customers', 'public.*', '*.email', 'public.c?stomers', '*'];
    const names = ['customers', 'public.customers', 'public.customers.email', 'sales.orders', 'x.public.customers'];
    for (const p of patterns) for (const n of names) if (qualifiedMatch(p, n)) expect(qualifiedMayMatch(p, n), `${p} ${n}`).toBe(true);
  });
});

describe('programMatch', () => {
  it.each([
    // [generous (deny), pattern, argv0, expected]
    [false, 'cat', 'cat', true],
    [false, 'cat', '/bin/cat', true],
    [false, 'cat', '/usr/local/bin/cat', true],
    [false, 'cat', '/tmp/x/cat', false],
    [false, 'cat', '/home/u/bin/cat', false],
    [true, 'rm', '/tmp/x/rm', true],
    [true, 'rm', 'rm', true],
    [false, '/opt/tool/*', '/opt/tool/run', true],
    [false, '/opt/tool/*', 'run', false],
    [false, 'mkfs*', 'mkfs.ext4', true],
    [false, 'cat', 'concat', false],
  ] as const)('generous=%s %j vs %j → %s', (generous, pattern, argv0, expected) => {
    expect(programMatch(generous, pattern, argv0)).toBe(expected);
  });
});

describe('commandMatch', () => {
  it.each([
    [false, 'systemctl restart *', ['systemctl', 'restart', 'nginx'], true],
    [false, 'systemctl restart *', ['systemctl', 'restart', 'nginx', 'php-fpm'], false],
    [false, 'systemctl restart *', ['systemctl', 'restart'], false],
    [false, 'systemctl restart *', ['systemctl', 'restart', 'a b'], true],
    [false, 'cat /var/log/*', ['cat', '/var/log/syslog'], true],
    [false, 'cat /var/log/*', ['cat', '/var/log/../../etc/shadow'], false],
    [false, 'cat /var/log/*', ['cat', '/var/log/..'], false],
    [false, 'cat /var/log/*', ['cat', '/var/log/a..b'], true],
    [false, 'cat /var/log/*', ['cat', '/var/log/a', '/etc/shadow'], false],
    [false, 'tail -n * /var/log/*', ['tail', '-n', '5', '/var/log/x'], true],
    [true, 'rm *', ['rm', '-rf', '/'], true],
    [true, 'systemctl restart *', ['systemctl', 'restart', 'a', 'b'], true],
    [true, 'cat /var/log/*', ['cat', '/var/log/../../etc/shadow'], true],
    [true, 'systemctl stop *', ['systemctl', 'restart', 'a'], false],
  ] as const)('generous=%s %j vs %j → %s', (generous, pattern, argv, expected) => {
    expect(commandMatch(generous, pattern, argv)).toBe(expected);
  });
});
