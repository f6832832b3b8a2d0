// The decision stage, table-driven over evaluate(request, identity, rules, now)
// with hand-made requests: precedence (deny > approve > allow > no match),
// unclassified requests, and every match field in the direction that fails safe.

import { describe, expect, it } from 'vitest';
import type { Access, ParsedRequest } from '../../src/backends/backend.js';
import { makeIdentity, type Identity } from '../../src/identity/identity.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { ruleSchema, type Rule } from '../../src/policy/schema.js';

const NOW = new Date('2026-01-01T00:00:00Z');

function req(overrides: Partial<Omit<ParsedRequest, 'access'>> & { access?: Access } = {}): ParsedRequest {
  return {
    tool: 'run_sql',
    toolType: 'run_sql',
    connection: 'db',
    operation: 'select',
    access: 'read',
    resources: ['public.orders'],
    reads: [],
    summary: 'test',
    reasons: [],
    input: {},
    // The PostgreSQL backend's detail, as far as its `functions:` key reads it.
    detail: { functions: [] },
    ...overrides,
  };
}

function who(subject = 'ann@example.com', groups: string[] = ['analysts']): Identity {
  return makeIdentity({ kind: 'local', subject, groups, issuer: 'local' });
}

/** A rule as the config loader would produce it (schema transforms applied). */
function rule(name: string, effect: 'allow' | 'deny' | 'approve', match: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Rule {
  // Approve rules must name approvers (config validation); the decision does not depend on who.
  const approvers = effect === 'approve' && !('approvers' in extra) ? { approvers: { groups: ['dba'] } } : {};
  return ruleSchema.parse({ name, effect, match, ...approvers, ...extra });
}

const allowAll = rule('allow-all', 'allow');
const denyAll = rule('deny-all', 'deny');
const approveAll = rule('approve-all', 'approve');

describe('precedence', () => {
  const permutations = <T>(xs: T[]): T[][] =>
    xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));

  it.each(permutations([allowAll, denyAll, approveAll]).map((p) => [p.map((r) => r.name).join(' → '), p]))(
    'deny wins regardless of order: %s',
    (_order, rules) => {
      const d = evaluate(req(), who(), rules, NOW);
      expect(d.effect).toBe('deny');
      expect(d.rule?.name).toBe('deny-all');
      expect(d.code).toBe('policy.denied');
      expect(d.matched.map((r) => r.name)).toEqual(rules.map((r) => r.name)); // all matched, in file order
    },
  );

  it.each([
    ['allow, approve', [allowAll, approveAll]],
    ['approve, allow', [approveAll, allowAll]],
  ] as const)('approve beats allow: %s', (_order, rules) => {
    const d = evaluate(req({ access: 'write', operation: 'update' }), who(), rules, NOW);
    expect(d.effect).toBe('approve');
    expect(d.rule?.name).toBe('approve-all');
    expect(d.code).toBeNull();
  });

  it('reports the first matching rule of the winning effect, in file order', () => {
    const rules = [rule('a1', 'allow'), rule('d1', 'deny', { access: 'write' }), rule('a2', 'allow'), rule('d2', 'deny'), rule('d3', 'deny')];
    expect(evaluate(req(), who(), rules, NOW).rule?.name).toBe('d2');
    expect(evaluate(req(), who(), [rule('a1', 'allow'), rule('a2', 'allow')], NOW).rule?.name).toBe('a1');
    expect(evaluate(req(), who(), [rule('p1', 'approve', { access: 'write' }), rule('p2', 'approve'), rule('p3', 'approve')], NOW).rule?.name).toBe('p2');
  });

  it('uses the rule message, or a default naming the rule', () => {
    expect(evaluate(req(), who(), [rule('no', 'deny', {}, { message: 'Go away.' })], NOW).message).toBe('Go away.');
    expect(evaluate(req(), who(), [rule('no', 'deny')], NOW).message).toBe('Denied by rule no.');
    expect(evaluate(req(), who(), [rule('yes', 'allow')], NOW).message).toBe('Allowed by rule yes.');
    expect(evaluate(req(), who(), [rule('ask', 'approve')], NOW).message).toMatch(/Rule ask requires a human approval/);
  });

  it('no matching rule is deny policy.no_match, saying what was asked', () => {
    const d = evaluate(req({ access: 'write', operation: 'delete' }), who('bob@example.com'), [rule('reads', 'allow', { access: 'read' })], NOW);
    expect(d).toMatchObject({ effect: 'deny', rule: null, code: 'policy.no_match', matched: [] });
    expect(d.message).toMatch(/No rule allows write access \(delete\) on run_sql\/db for bob@example.com/);
    expect(evaluate(req(), who(), [], NOW).code).toBe('policy.no_match');
  });

  it('a matching deny is reported even when the request also matched allow rules', () => {
    const d = evaluate(req(), who(), [allowAll, rule('no-orders', 'deny', { tables: 'orders' })], NOW);
    expect(d.rule?.name).toBe('no-orders');
    expect(d.matched.map((r) => r.name)).toEqual(['allow-all', 'no-orders']);
  });
});

describe('unclassified requests', () => {
  it.each([
    ['unknown access', { access: 'unknown' as const }],
    ['unknown operation', { operation: 'unknown' }],
    ['both', { access: 'unknown' as const, operation: 'unknown' }],
  ])('%s → deny policy.unclassified, even when a rule would allow everything', (_what, overrides) => {
    const d = evaluate(req({ ...overrides, reasons: ['CREATE RULE is not understood'] }), who(), [allowAll, approveAll], NOW);
    expect(d).toMatchObject({ effect: 'deny', rule: null, code: 'policy.unclassified', matched: [] });
    expect(d.message).toMatch(/could not classify this request \(CREATE RULE is not understood\)/);
  });
});

interface Case {
  readonly name: string;
  readonly rule: Rule;
  readonly request?: Partial<ParsedRequest>;
  readonly identity?: Identity;
  readonly expected: 'allow' | 'deny' | 'approve';
}

function runCases(cases: readonly Case[]): void {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const d = evaluate(req(c.request), c.identity ?? who(), [c.rule], NOW);
    expect(d.effect).toBe(c.expected);
    if (c.expected !== 'deny' || d.code === 'policy.denied') expect(d.rule?.name).toBe(c.rule.name);
    else expect(d.code).toBe('policy.no_match');
  });
}

describe('tool, connection, subject and groups', () => {
  runCases([
    { name: 'tool exact', rule: rule('r', 'allow', { tool: 'run_sql' }), expected: 'allow' },
    { name: 'tool other', rule: rule('r', 'allow', { tool: 'kubectl' }), expected: 'deny' },
    { name: 'tool glob', rule: rule('r', 'allow', { tool: 'run_*' }), expected: 'allow' },
    { name: 'tool list', rule: rule('r', 'allow', { tool: ['kubectl', 'run_sql'] }), expected: 'allow' },
    { name: 'connection glob', rule: rule('r', 'allow', { connection: 'd?' }), expected: 'allow' },
    { name: 'connection other', rule: rule('r', 'allow', { connection: 'prod-*' }), request: { connection: 'staging-1' }, expected: 'deny' },
    { name: 'subject exact', rule: rule('r', 'allow', { subject: 'ann@example.com' }), expected: 'allow' },
    { name: 'subject glob', rule: rule('r', 'allow', { subject: '*@example.com' }), expected: 'allow' },
    {
      name: 'subject glob does not match another domain',
      rule: rule('r', 'allow', { subject: '*@example.com' }),
      identity: who('eve@example.com.evil.org'),
      expected: 'deny',
    },
    { name: 'subject list', rule: rule('r', 'allow', { subject: ['bob@*', 'ann@*'] }), expected: 'allow' },
    { name: 'groups any-of (one shared)', rule: rule('r', 'allow', { groups: ['sre', 'analysts'] }), identity: who('a', ['analysts', 'x']), expected: 'allow' },
    { name: 'groups none shared', rule: rule('r', 'allow', { groups: ['sre', 'dba'] }), identity: who('a', ['analysts']), expected: 'deny' },
    { name: 'groups: an identity without groups', rule: rule('r', 'allow', { groups: 'analysts' }), identity: who('a', []), expected: 'deny' },
    { name: 'groups are exact, not globs', rule: rule('r', 'allow', { groups: 'analyst*' }), identity: who('a', ['analysts']), expected: 'deny' },
    { name: 'deny by group', rule: rule('r', 'deny', { groups: 'interns' }), identity: who('a', ['interns']), expected: 'deny' },
    {
      name: 'all fields must match (AND)',
      rule: rule('r', 'allow', { tool: 'run_sql', connection: 'db', groups: 'analysts', subject: 'bob@*' }),
      expected: 'deny',
    },
  ]);
});

describe('access and operation', () => {
  runCases([
    { name: 'access single', rule: rule('r', 'allow', { access: 'read' }), expected: 'allow' },
    { name: 'access single mismatch', rule: rule('r', 'allow', { access: 'read' }), request: { access: 'write', operation: 'update' }, expected: 'deny' },
    { name: 'access list', rule: rule('r', 'allow', { access: ['read', 'write'] }), request: { access: 'write', operation: 'update' }, expected: 'allow' },
    {
      name: 'access list excludes admin',
      rule: rule('r', 'allow', { access: ['read', 'write'] }),
      request: { access: 'admin', operation: 'admin' },
      expected: 'deny',
    },
    { name: 'operation single', rule: rule('r', 'deny', { operation: 'ddl' }), request: { operation: 'ddl', access: 'admin' }, expected: 'deny' },
    {
      name: 'operation list',
      rule: rule('r', 'approve', { operation: ['update', 'delete'] }),
      request: { operation: 'delete', access: 'write' },
      expected: 'approve',
    },
    {
      name: 'operation list mismatch',
      rule: rule('r', 'allow', { operation: ['update', 'delete'] }),
      request: { operation: 'insert', access: 'write' },
      expected: 'deny',
    },
    {
      name: 'operation is exact',
      rule: rule('r', 'allow', { operation: 'select' }),
      request: { operation: 'select_for_update', access: 'write' },
      expected: 'deny',
    },
    {
      name: 'operation and access together: a select escalated to write by a volatile function is not a read',
      rule: rule('r', 'allow', { operation: 'select', access: 'read' }),
      request: { operation: 'select', access: 'write' },
      expected: 'deny',
    },
  ]);
});

describe('tables: deny if ANY matches, allow/approve only if ALL match', () => {
  const two = { resources: ['public.orders', 'public.customers'] };
  runCases([
    { name: 'deny fires on one of two tables', rule: rule('r', 'deny', { tables: 'customers' }), request: two, expected: 'deny' },
    { name: 'deny does not fire on other tables', rule: rule('r', 'deny', { tables: 'products' }), request: two, expected: 'deny' /* no match */ },
    { name: 'allow needs all tables listed (one missing)', rule: rule('r', 'allow', { tables: 'orders' }), request: two, expected: 'deny' },
    { name: 'allow with all tables listed', rule: rule('r', 'allow', { tables: ['orders', 'customers'] }), request: two, expected: 'allow' },
    { name: 'approve needs all tables listed', rule: rule('r', 'approve', { tables: ['public.orders'] }), request: two, expected: 'deny' },
    { name: 'approve with all tables', rule: rule('r', 'approve', { tables: ['public.*'] }), request: two, expected: 'approve' },
    {
      name: 'unqualified pattern matches qualified name',
      rule: rule('r', 'allow', { tables: 'customers' }),
      request: { resources: ['public.customers'] },
      expected: 'allow',
    },
    {
      name: 'schema-qualified pattern, other schema',
      rule: rule('r', 'allow', { tables: 'public.customers' }),
      request: { resources: ['sales.customers'] },
      expected: 'deny',
    },
    { name: 'schema glob', rule: rule('r', 'allow', { tables: 'public.*' }), request: two, expected: 'allow' },
    {
      name: 'schema glob, other schema',
      rule: rule('r', 'allow', { tables: 'public.*' }),
      request: { resources: ['public.orders', 'pg_catalog.pg_class'] },
      expected: 'deny',
    },
    { name: '`*` never crosses a dot', rule: rule('r', 'allow', { tables: 'pub*' }), request: { resources: ['public.orders'] }, expected: 'deny' },
    {
      name: 'deny on a catalog table',
      rule: rule('r', 'deny', { tables: 'pg_catalog.pg_authid' }),
      request: { resources: ['public.orders', 'pg_catalog.pg_authid'] },
      expected: 'deny',
    },
    {
      name: 'deny with a qualified pattern fires on an unresolved unqualified name',
      rule: rule('r', 'deny', { tables: 'pg_catalog.pg_authid' }),
      request: { resources: ['pg_authid'] },
      expected: 'deny',
    },
    { name: 'deny ignores case', rule: rule('r', 'deny', { tables: 'Public.Customers' }), request: { resources: ['public.customers'] }, expected: 'deny' },
    {
      name: 'allow does not extend to an unresolved unqualified name',
      rule: rule('r', 'allow', { tables: 'public.orders' }),
      request: { resources: ['orders'] },
      expected: 'deny',
    },
    {
      name: 'a table-scoped allow does not apply to a request touching no table (e.g. SELECT volatile_fn())',
      rule: rule('r', 'allow', { access: 'write', tables: 'public.orders' }),
      request: { access: 'write', resources: [], detail: { functions: ['public.touch_order'] } },
      expected: 'deny',
    },
    {
      name: 'a table-scoped approve does not apply to a request touching no table',
      rule: rule('r', 'approve', { tables: 'orders' }),
      request: { resources: [] },
      expected: 'deny',
    },
    {
      name: 'a table-scoped deny does not fire on a request touching no table',
      rule: rule('r', 'deny', { tables: '*' }),
      request: { resources: [] },
      expected: 'deny' /* no match */,
    },
  ]);

  it('a deny on one table wins over an allow on all', () => {
    const rules = [rule('read', 'allow', { access: 'read' }), rule('no-pii', 'deny', { tables: 'customers' })];
    expect(evaluate(req({ resources: ['public.orders', 'public.customers'] }), who(), rules, NOW).rule?.name).toBe('no-pii');
    expect(evaluate(req({ resources: ['public.orders'] }), who(), rules, NOW).rule?.name).toBe('read');
  });
});

describe('functions: deny if ANY matches, allow/approve only if ALL match', () => {
  const calls = { detail: { functions: ['public.touch_order', 'pg_catalog.now'] } };
  runCases([
    { name: 'deny fires on one function', rule: rule('r', 'deny', { functions: 'touch_order' }), request: calls, expected: 'deny' },
    { name: 'deny fires with a schema glob', rule: rule('r', 'deny', { functions: 'public.*' }), request: calls, expected: 'deny' },
    { name: 'deny does not fire on other functions', rule: rule('r', 'deny', { functions: 'pg_sleep' }), request: calls, expected: 'deny' /* no match */ },
    { name: 'allow needs every function listed', rule: rule('r', 'allow', { functions: 'touch_order' }), request: calls, expected: 'deny' },
    { name: 'allow with every function listed', rule: rule('r', 'allow', { functions: ['touch_order', 'pg_catalog.*'] }), request: calls, expected: 'allow' },
    {
      name: 'a function-scoped allow does not apply to a request calling none (e.g. a plain DELETE)',
      rule: rule('r', 'allow', { access: 'write', functions: 'public.touch_order' }),
      request: { access: 'write', operation: 'delete', resources: ['public.customers'], detail: { functions: [] } },
      expected: 'deny',
    },
  ]);
});

describe('purity', () => {
  it('does not modify its inputs and returns the same decision for the same inputs', () => {
    const rules = [rule('read', 'allow', { access: 'read' }), rule('no-pii', 'deny', { tables: 'customers' })];
    const request = req({ resources: ['public.customers'] });
    const before = JSON.stringify({ rules, request });
    const a = evaluate(request, who(), rules, NOW);
    const b = evaluate(request, who(), rules, new Date(0));
    expect(JSON.stringify({ rules, request })).toBe(before);
    expect(a).toEqual(b);
  });
});
