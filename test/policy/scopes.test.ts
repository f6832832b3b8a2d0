// Per-operation scopes, table-driven over checkScopes(request, identity,
// mappings, required, held): required_scopes always; every identity.scopes
// entry whose match applies, read in the deny direction (any touched table is
// enough); duplicates once, in order; and what the token lacks. The `principal:`
// match key of rules is covered here too, since scopes reuse the rule match.

import { describe, expect, it } from 'vitest';
import type { Access, ParsedRequest } from '../../src/backends/backend.js';
import type { ScopeMapping } from '../../src/config/schema.js';
import { makeIdentity, type Identity, type PrincipalKind } from '../../src/identity/identity.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { policySchemas, ruleSchema } from '../../src/policy/schema.js';
import { checkScopes } from '../../src/policy/scopes.js';

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
    detail: { functions: [] },
    ...overrides,
  };
}

function who(principal: PrincipalKind = 'person', groups: string[] = ['developers']): Identity {
  return makeIdentity({ kind: 'oidc', subject: principal === 'service' ? 'agent-svc' : 'bob', groups, issuer: 'http://127.0.0.1:1', principal });
}

const { matchSchema } = policySchemas();
const scope = (name: string, match: Record<string, unknown>): ScopeMapping => ({ scope: name, match: matchSchema.parse(match) });

const MAPPINGS: readonly ScopeMapping[] = [
  scope('sql:write', { tool: 'run_sql', access: 'write' }),
  scope('sql:admin', { tool: 'run_sql', access: 'admin' }),
  scope('pii:read', { tables: ['customers', 'billing.*'] }),
  scope('sql:write', { operation: 'delete' }), // the same scope again: listed once
  scope('svc:any', { principal: 'service' }),
];

const insert = req({ operation: 'insert', access: 'write', resources: ['public.orders'] });
const deleteCustomers = req({ operation: 'delete', access: 'write', resources: ['public.customers'] });
const readBoth = req({ resources: ['public.orders', 'public.customers'] });
const readOrders = req();
const drop = req({ operation: 'ddl', access: 'admin', resources: ['public.orders'] });
const otherTool = req({ tool: 'kubectl', toolType: 'kubectl', connection: 'cluster', operation: 'get', resources: ['core/pods'], detail: {} });

describe('checkScopes', () => {
  it.each([
    ['a read of orders needs only the required scopes', readOrders, who(), ['mcp'], ['mcp'], ['mcp'], []],
    ['an insert needs sql:write', insert, who(), ['mcp'], ['mcp'], ['mcp', 'sql:write'], ['sql:write']],
    ['an insert with sql:write held lacks nothing', insert, who(), ['mcp'], ['mcp', 'sql:write'], ['mcp', 'sql:write'], []],
    ['a delete of customers: sql:write (once) and pii:read', deleteCustomers, who(), [], ['mcp'], ['sql:write', 'pii:read'], ['sql:write', 'pii:read']],
    ['one touched customers table is enough for pii:read (deny direction)', readBoth, who(), [], [], ['pii:read'], ['pii:read']],
    ['ddl needs sql:admin, not sql:write', drop, who(), [], ['sql:write'], ['sql:admin'], ['sql:admin']],
    ['a service principal needs svc:any as well', insert, who('service'), ['mcp'], ['mcp', 'sql:write'], ['mcp', 'sql:write', 'svc:any'], ['svc:any']],
    ["another backend's request is not matched by tables:", otherTool, who(), [], [], [], []],
  ] as const)('%s', (_name, request, identity, required, held, needed, missing) => {
    const check = checkScopes(request, identity, MAPPINGS, required, held);
    expect(check.needed).toEqual(needed);
    expect(check.missing).toEqual(missing);
  });

  it('nothing configured: nothing needed, nothing missing', () => {
    expect(checkScopes(insert, who(), [], [], [])).toEqual({ needed: [], missing: [] });
  });

  it('rejects a scope entry whose match has an unknown key, as a rule would', () => {
    expect(matchSchema.safeParse({ tool: 'run_sql', acess: 'write' }).success).toBe(false);
  });
});

describe('the principal: match key', () => {
  const allowServices = ruleSchema.parse({ name: 'services-read', effect: 'allow', match: { principal: 'service', access: 'read' } });
  const denyServicesWrite = ruleSchema.parse({ name: 'no-service-writes', effect: 'deny', match: { principal: ['service'], access: ['write'] } });
  const allowPeople = ruleSchema.parse({ name: 'people', effect: 'allow', match: { principal: 'person' } });
  const rules = [denyServicesWrite, allowServices, allowPeople];

  it.each([
    ['a service reads', readOrders, 'service', 'allow', 'services-read'],
    ['a service writes', insert, 'service', 'deny', 'no-service-writes'],
    ['a person writes', insert, 'person', 'allow', 'people'],
  ] as const)('%s', (_name, request, principal, effect, ruleName) => {
    const decision = evaluate(request, who(principal), rules, new Date());
    expect(decision.effect).toBe(effect);
    expect(decision.rule?.name).toBe(ruleName);
  });

  it('accepts only person and service', () => {
    expect(ruleSchema.safeParse({ name: 'x', effect: 'allow', match: { principal: 'robot' } }).success).toBe(false);
  });

  it('local identities are persons', () => {
    expect(makeIdentity({ kind: 'local', subject: 'ann', groups: [], issuer: 'local' }).principal).toBe('person');
  });
});
