// The contract every backend in BACKENDS must pass, as one table of checks run
// against each of them with its fixture (test/support/contract-fixtures.ts):
// parse is pure; unknown input is refused with a code; refusals are journaled
// and the chain verifies; credentials never appear in answers, errors, tool
// descriptions, the journal or the operator's log, also when a call fails at
// the backend; output caps hold. Calls go through the real pipeline over the
// MCP SDK Client. A backend registered without a fixture fails here.

import net from 'node:net';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ACCESS_LEVELS, type Backend, type ParsedRequest } from '../../src/backends/backend.js';
import { BACKENDS } from '../../src/backends/index.js';
import { DrawbridgeError, errorKind, type ErrorCode } from '../../src/errors.js';
import { verifyJournal } from '../../src/journal/verify.js';
import {
  ALLOW_RULE,
  DENY_RULE,
  openContractSession,
  type ContractCall,
  type ContractFixture,
  type ContractOutcome,
  type ContractSession,
  type RunningSystem,
} from '../support/backend-contract.js';
import { CONTRACT_FIXTURES } from '../support/contract-fixtures.js';

describe('the contract covers the registry', () => {
  it.each(BACKENDS.map((b) => [b.type]))('the %s backend has a contract fixture', (type) => {
    expect(CONTRACT_FIXTURES[type], `add a fixture for the ${type} backend to test/support/contract-fixtures.ts`).toBeDefined();
  });

  it('every fixture is for a registered backend', () => {
    expect(Object.keys(CONTRACT_FIXTURES).filter((type) => !BACKENDS.some((b) => b.type === type))).toEqual([]);
  });
});

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Every input of the fixture the parser accepts, with the connection it is sent on. */
function acceptedInputs(fixture: ContractFixture): ContractCall[] {
  return [
    { connection: 'main', args: fixture.read },
    { connection: 'main', args: fixture.denied.args },
    { connection: 'main', args: fixture.missing.args },
    ...fixture.failing.map((f) => f.call),
    ...fixture.oversized.map((c) => c.call),
  ];
}

/** A parse of a deep-frozen input with a frozen context: any attempt to change either throws. */
function frozenParse(backend: Backend, call: ContractCall): { readonly input: Readonly<Record<string, unknown>>; parse(): ParsedRequest } {
  const input = deepFreeze({ connection: call.connection, ...structuredClone(call.args) });
  const context = Object.freeze({ tool: backend.toolType, connection: call.connection });
  return { input, parse: () => backend.parse(input, context) };
}

/** What parse threw: a DrawbridgeError, never a TypeError or a request. */
function refusalOf(parse: () => unknown): DrawbridgeError {
  try {
    parse();
  } catch (error) {
    if (error instanceof DrawbridgeError) return error;
    throw new Error(`parse threw ${String(error)} instead of a DrawbridgeError`, { cause: error });
  }
  throw new Error('parse accepted the refusal input');
}

function expectRefused(outcome: ContractOutcome, code: ErrorCode): void {
  expect(outcome.result.isError, outcome.text).toBe(true);
  expect(outcome.code, outcome.text).toBe(code);
  expect(outcome.text).toMatch(/\nWhat to do: \S/);
  expect(errorKind(code)).toBe('refusal');
  // Journaled as a refusal: the intent's decision is a deny, the outcome says refused, with the code.
  expect(outcome.entry.call['decision']).toMatchObject({ effect: 'deny' });
  expect(outcome.entry.outcome).toMatchObject({ status: 'refused', errorCode: code });
}

function expectFault(outcome: ContractOutcome, code: ErrorCode): void {
  expect(outcome.result.isError, outcome.text).toBe(true);
  expect(outcome.code, outcome.text).toBe(code);
  expect(outcome.entry.outcome).toMatchObject({ status: 'error', errorCode: code });
}

/** What the checks of one backend share: its system and session once started (parse runs before). */
interface Started {
  system?: RunningSystem;
  session?: ContractSession;
}

function sessionOf(started: Started): ContractSession {
  if (!started.session) throw new Error('the session did not open');
  return started.session;
}

function parseChecks(backend: Backend, fixture: ContractFixture, started: Started): void {
  describe('parse is pure', () => {
    beforeAll(() => backend.init());

    it('the same input gives a deep-equal request twice, with no socket opened and the input untouched', () => {
      expect(started.system, 'parse runs before the backend system is started').toBeUndefined();
      const connect = vi.spyOn(net.Socket.prototype, 'connect');
      try {
        for (const accepted of acceptedInputs(fixture)) {
          const { input, parse } = frozenParse(backend, accepted);
          const before = structuredClone(input);
          const first = parse();
          expect(first).not.toBeInstanceOf(Promise);
          expect(parse()).toEqual(first);
          // Pure data: it survives a structured clone unchanged (no functions, no handles).
          expect(structuredClone(first)).toEqual(first);
          expect(input).toEqual(before);
          expect(first).toMatchObject({ tool: backend.toolType, toolType: backend.toolType, connection: accepted.connection });
          expect(backend.operations).toContain(first.operation);
          expect(ACCESS_LEVELS).toContain(first.access);
        }
        expect(connect).not.toHaveBeenCalled();
      } finally {
        connect.mockRestore();
      }
    });

    it("the refusal input is refused with a refusal code of its own (or the gateway's), the same each time", () => {
      const { parse } = frozenParse(backend, { connection: 'main', args: fixture.refused.args });
      const [first, second] = [refusalOf(parse), refusalOf(parse)];
      expect(first.code).toBe(fixture.refused.code);
      expect(second.code).toBe(first.code);
      expect(second.message).toBe(first.message);
      expect(errorKind(first.code)).toBe('refusal');
      const others = BACKENDS.filter((b) => b !== backend && Object.hasOwn(b.errors, first.code));
      expect(others.map((b) => b.type)).toEqual([]);
    });
  });
}

function unknownInputChecks(backend: Backend, fixture: ContractFixture, call: Caller): void {
  describe('unknown input is refused with a code, never a crash', () => {
    it('an unknown field', async () => {
      expectRefused(await call({ connection: 'main', ...fixture.read, contract_unknown_field: 1 }), 'input.invalid');
    });

    // An object of lists is of the wrong type for most fields; a field taking any JSON object (an HTTP body) gets a number, or a boolean.
    const wrongValue = (schema: z.core.$ZodType): unknown => [{ contract: ['not', 'this'] }, 12345, true].find((value) => !z.safeParse(schema, value).success);
    it.each(Object.entries(backend.inputShape))('a wrong type in %s', async (field, schema) => {
      const value = wrongValue(schema);
      expect(value, `${field} accepts every candidate wrong value`).toBeDefined();
      expectRefused(await call({ connection: 'main', ...fixture.read, [field]: value }), 'input.invalid');
    });

    it('no value for a required field', async () => {
      const required = Object.entries(backend.inputShape).filter(([, schema]) => !z.safeParse(schema, undefined).success);
      expect(required.length).toBeGreaterThan(0);
      for (const [field] of required) {
        const args = Object.fromEntries(Object.entries(fixture.read).filter(([key]) => key !== field));
        expectRefused(await call({ connection: 'main', ...args }), 'input.invalid');
      }
    });

    it('arguments that are not an object', async () => {
      expectRefused(await call(['main', fixture.read]), 'input.invalid');
    });

    it('an unknown connection', async () => {
      expectRefused(await call({ connection: 'contract-no-such-connection', ...fixture.read }), 'connection.unknown');
    });

    it("the parser's refusal input, with the backend's code", async () => {
      expectRefused(await call({ connection: 'main', ...fixture.refused.args }), fixture.refused.code);
    });
  });
}

function journalChecks(fixture: ContractFixture, call: Caller, started: Started): void {
  describe('refusals are journaled', () => {
    it('refused by parse: an intent (deny, with the code) and an outcome (refused)', async () => {
      const r = await call({ connection: 'main', ...fixture.refused.args });
      expectRefused(r, fixture.refused.code);
      expect(r.entry.call['request']).toBeNull();
      expect(r.entry.call['decision']).toEqual({
        effect: 'deny',
        rule: null,
        message: expect.stringMatching(new RegExp(`^${fixture.refused.code.replace('.', '\\.')}: `)),
      });
    });

    it('denied by policy: the deny rule in the intent, refused with policy.denied in the outcome', async () => {
      const r = await call({ connection: 'main', ...fixture.denied.args });
      expectRefused(r, 'policy.denied');
      expect(r.entry.call['decision']).toMatchObject({ effect: 'deny', rule: DENY_RULE });
      expect(r.entry.call['request']).toMatchObject({ operation: fixture.denied.operation });
    });

    it('the chain verifies', () => {
      const verified = verifyJournal(sessionOf(started).journalPath);
      expect(verified.firstBad).toBeUndefined();
      expect(verified.ok).toBe(true);
    });
  });
}

function capChecks(fixture: ContractFixture, call: Caller): void {
  describe('output caps hold', () => {
    it.each(fixture.oversized.map((c) => [c.name, c]))('%s', async (_name, oversize) => {
      const r = await call({ connection: oversize.call.connection, ...oversize.call.args });
      if (oversize.outcome === 'refused') {
        expectFault(r, oversize.code);
        expect(r.text).toMatch(oversize.says);
        return;
      }
      expect(r.result.isError, r.text).toBeFalsy();
      if (!r.structured) throw new Error('no structured answer');
      expect(r.structured.truncated).toEqual(oversize.truncated);
      expect(r.text).toContain(`(truncated: more than ${oversize.truncated.limit} ${oversize.truncated.reason}`);
      expect(oversize.measure(r.structured)).toBeLessThanOrEqual(oversize.truncated.limit);
      expect(r.entry.outcome).toMatchObject({ status: 'ok', truncated: true });
    });
  });
}

/** Runs last: it scans what every call of the suite let out, including the failing calls it makes first. */
function credentialChecks(backend: Backend, fixture: ContractFixture, call: Caller, started: Started): void {
  describe('credentials never appear', () => {
    it('a read of something that does not exist', async () => {
      const r = await call({ connection: 'main', ...fixture.missing.args });
      if (fixture.missing.code === null) expect(r.result.isError, r.text).toBeFalsy();
      else expectFault(r, fixture.missing.code);
    });

    it('a host that is not listening: backend.unavailable', async () => {
      expectFault(await call({ connection: 'unreachable', ...fixture.read }), 'backend.unavailable');
    });

    // The catalog's code for "the backend refused the gateway's own credential": the operator must fix it, not the agent.
    const defect = fixture.defects?.rejected;
    const known = defect ? ` (known defect, expected to fail until fixed: see defects.rejected of the ${backend.type} fixture)` : '';
    (defect ? it.fails : it)(`a credential the system rejects: backend.auth_failed${known}`, async () => {
      expectFault(await call({ connection: 'rejected', ...fixture.read }), 'backend.auth_failed');
    });

    it.each(fixture.failing.map((f) => [f.name, f]))('%s', async (_name, failing) => {
      expectFault(await call({ connection: failing.call.connection, ...failing.call.args }), failing.code);
    });

    it('in no answer, error, hint, tool description, journal record or operator log line of the calls above', () => {
      const canaries = started.system?.canaries ?? [];
      expect(canaries.length).toBeGreaterThan(0);
      const found = sessionOf(started)
        .exposed()
        .flatMap(({ where, text }) => canaries.filter((secret) => text.includes(secret)).map((secret) => `${where}: ${secret}`));
      expect(found).toEqual([]);
    });
  });
}

/** One tools/call of the backend's tool, with the arguments as sent (connection included). */
type Caller = (args: unknown) => Promise<ContractOutcome>;

describe.each(BACKENDS.map((backend) => ({ type: backend.type, backend })))('the $type backend', ({ backend }) => {
  const fixture = CONTRACT_FIXTURES[backend.type];
  if (!fixture) return; // 'the contract covers the registry' fails for it
  const started: Started = {};
  const call: Caller = (args) => sessionOf(started).call(args);

  parseChecks(backend, fixture, started);

  describe('through the pipeline', () => {
    beforeAll(async () => {
      started.system = await fixture.start();
      started.session = await openContractSession(backend, fixture, started.system);
    });
    afterAll(async () => {
      await started.session?.close();
      await started.system?.stop();
    });

    it('answers a valid read on its main connection, allowed and journaled', async () => {
      const r = await call({ connection: 'main', ...fixture.read });
      expect(r.result.isError, r.text).toBeFalsy();
      expect(r.structured).toMatchObject({ connection: 'main', rule: ALLOW_RULE });
      expect(r.entry.callId).toBe(r.structured?.callId);
      expect(r.entry.call['decision']).toMatchObject({ effect: 'allow', rule: ALLOW_RULE });
      expect(r.entry.outcome).toMatchObject({ status: 'ok' });
    });

    unknownInputChecks(backend, fixture, call);
    journalChecks(fixture, call, started);
    capChecks(fixture, call);
    credentialChecks(backend, fixture, call, started);
  });
});
