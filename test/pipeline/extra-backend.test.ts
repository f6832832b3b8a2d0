// A backend is one folder and one registry line: a test-only `echo` backend,
// defined here and nowhere else, brings its own policy key (`words:`), its
// explain lines, its error code and its connection type. Given to the loader
// and the gateway as an extra entry of the backend list, it works end to end —
// config validation, policy explain, and calls through the real pipeline
// (allowed, denied, refused, journaled) — without touching any other file.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineBackend, type ParsedRequest } from '../../src/backends/backend.js';
import { BACKENDS } from '../../src/backends/index.js';
import { loadConfig } from '../../src/config/load.js';
import { defineErrorCodes, DrawbridgeError, errorKind } from '../../src/errors.js';
import { makeIdentity } from '../../src/identity/identity.js';
import { readCalls } from '../../src/journal/export.js';
import { callTool } from '../../src/pipeline/callTool.js';
import { explain, formatExplanation } from '../../src/pipeline/explain.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { globMatch, globsMatch, oneOrMany } from '../../src/policy/match.js';
import { policySchemas } from '../../src/policy/schema.js';
import { describeTools } from '../../src/server.js';

declare module '../../src/errors.js' {
  interface BackendErrorCodes {
    'echo.refused': true;
  }
}

const ECHO_ERRORS = defineErrorCodes({ 'echo.refused': { kind: 'refusal', hint: 'Say it without shouting.' } });

type EchoDetail = { readonly words: readonly string[] };

const echoConnectionSchema = z.strictObject({
  kind: z.literal('connection'),
  name: z.string().min(1),
  type: z.literal('echo'),
  description: z.string().min(1),
  prefix: z.string().default(''),
  /** A file on the gateway host the parrot writes: its path never reaches an agent. */
  log: z.string().optional(),
});

function parseEcho(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<EchoDetail> {
  const text = String(input['text']);
  if (text !== text.toLowerCase()) throw new DrawbridgeError('echo.refused', 'Refused: the text shouts.');
  const words = text.split(/\s+/).filter(Boolean);
  return {
    tool: context.tool,
    toolType: 'echo_words',
    connection: context.connection,
    operation: 'say',
    access: 'read',
    resources: [],
    reads: [],
    summary: `say ${words.join(' ')}`,
    reasons: ['echo says what it is told'],
    input: { connection: context.connection, text },
    detail: { words },
  };
}

const echo = defineBackend({
  type: 'echo',
  toolType: 'echo_words',
  connectionSchema: echoConnectionSchema,
  operations: ['say'],
  inputShape: { text: z.string().describe('Words to repeat') },
  toolDescription: 'Repeats words.',
  example: { connection: 'echoes', input: { words: 'hello world' } },
  describeConnection: (c) => `${c.description} (echo)`,
  parse: parseEcho,
  secretsOf: () => [],
  filesOf: (c) => (c.log ? [c.log] : []),
  connect: (c, environment) => ({
    name: c.name,
    resolve: async (request) => request,
    execute: async (request) => {
      if (c.log && request.detail.words.includes('crash'))
        throw new DrawbridgeError('backend.error', `The parrot could not write ${join(environment.baseDir, c.log)}: disk full.`);
      return {
        columns: [{ name: 'word', type: 'text', sources: [] }],
        rows: request.detail.words.map((w) => [`${c.prefix}${w}`]),
        command: 'ECHO',
        affectedRows: null,
        truncated: null,
        notices: [],
        bytes: 0,
      };
    },
    probe: async () => ({ summary: 'echo', warnings: [], facts: {} }),
    close: async () => undefined,
  }),
  matchShape: { words: oneOrMany.optional() },
  matches: (match, request, effect) => !match.words || globsMatch(effect, match.words, request.detail.words, globMatch),
  explain: {
    lines: (request) => [['words', request.detail.words.join(' ') || '(none)']],
    facts: (request) => ({ words: [...request.detail.words] }),
    withoutCatalog: 'nothing was checked against the echo server',
  },
  errors: ECHO_ERRORS,
});

const WITH_ECHO = [...BACKENDS, echo];

const TOOLS = `kind: connection
name: parrot
type: echo
description: A parrot that repeats words
prefix: "squawk: "
log: parrot.log
---
kind: tool
name: say
type: echo_words
connections: [parrot]
`;

const RULES = `kind: policy
rules:
  - name: no-secrets
    match: { tool: say, words: ["secret*", password] }
    effect: deny
    message: The parrot keeps secrets.
  - name: greetings
    match: { tool: say, words: [hello, hi, world, "good*", crash] }
    effect: allow
  - name: no-tables
    # Another backend's key: it never matches an echo request.
    match: { tables: "*" }
    effect: deny
`;

const identity = makeIdentity({ kind: 'local', subject: 'tester@example.com', groups: [], issuer: 'local' });
let dir: string;
let gateway: Gateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'drawbridge-echo-'));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'tools', 'echo.yaml'), TOOLS);
  writeFileSync(join(dir, 'policies', 'rules.yaml'), RULES);
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    'kind: gateway\nidentity: { mode: local, subject: tester@example.com }\njournal: { path: journal.db }\n',
  );
  gateway = await openGateway({ configDir: dir, env: {}, backends: WITH_ECHO });
});
afterAll(async () => {
  await gateway?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const say = (text: string) => callTool(gateway, { tool: 'say', args: { connection: 'parrot', text }, identity, client: { name: 'vitest' } });

describe('an extra backend, given to the loader', () => {
  it('is unknown to the registry alone: its connection type, tool type and policy key are config errors', () => {
    expect(() => loadConfig(dir)).toThrow(/connection type must be one of: postgres, kubernetes, ssh/);
    expect(() => loadConfig(dir)).toThrow(/tool type must be one of: run_sql, kubectl, ssh_exec/);
    expect(() => loadConfig(dir)).toThrow(/unknown key "words" in rules\.0\.match/);
  });

  it('loads with it: its key is bound to its matcher, and a misspelt key is still an error', () => {
    const config = loadConfig(dir, { backends: WITH_ECHO });
    expect(config.rules.map((r) => [r.name, r.match.backends.map((b) => [b.toolType, b.keys])])).toEqual([
      ['no-secrets', [['echo_words', { words: ['secret*', 'password'] }]]],
      ['greetings', [['echo_words', { words: ['hello', 'hi', 'world', 'good*', 'crash'] }]]],
      ['no-tables', [['run_sql', { tables: ['*'] }]]],
    ]);
    const typo = policySchemas(WITH_ECHO).ruleSchema.safeParse({ name: 'r', effect: 'allow', match: { tool: 'say', wrods: 'hello' } });
    expect(typo.success).toBe(false);
    expect(typo.error?.issues).toMatchObject([{ code: 'unrecognized_keys', keys: ['wrods'], path: ['match'] }]);
  });

  it('describes its tool with its rules and their keys', () => {
    const [tool] = describeTools(gateway.config);
    expect(tool?.name).toBe('say');
    expect(tool?.description).toContain('Repeats words.');
    expect(tool?.description).toContain('- parrot: A parrot that repeats words (echo)');
    expect(tool?.description).toContain('- greetings: allow words hello, hi, world, good*, crash');
  });
});

describe('policy explain', () => {
  it('shows its lines, its facts and the deciding rule', async () => {
    const e = await explain(gateway, { tool: 'say', connection: 'parrot', input: { text: 'hello world' }, identity, offline: false });
    expect(e.request).toMatchObject({ tool: 'say', toolType: 'echo_words', operation: 'say', access: 'read', words: ['hello', 'world'] });
    expect(e.request?.['detail']).toBeUndefined();
    expect(e.decision).toMatchObject({ effect: 'allow', rule: 'greetings', code: null });
    const text = formatExplanation(e);
    expect(text).toMatch(/^ {2}operation say {3}access read$/m);
    expect(text).toMatch(/^ {2}words {5}hello world$/m);
    expect(text).toMatch(/^Matched: {4}greetings \(allow\)$/m);
    expect(text).toMatch(/^Decision: {3}ALLOW by rule greetings — Allowed by rule greetings\.$/m);
  });

  it('offline: says what its backend did not check; a denied word and a refusal', async () => {
    const offline = await explain(gateway, { tool: 'say', connection: 'parrot', input: { text: 'hello secrets' }, identity, offline: true });
    const text = formatExplanation(offline);
    expect(text).toMatch(/^ {2}catalog {3}offline: nothing was checked against the echo server — the live decision may differ$/m);
    expect(text).toMatch(/^Decision: {3}DENY by rule no-secrets — The parrot keeps secrets\.$/m);
    const shouted = await explain(gateway, { tool: 'say', connection: 'parrot', input: { text: 'HELLO' }, identity, offline: true });
    expect(formatExplanation(shouted)).toMatch(/^Refused before policy: echo\.refused: Refused: the text shouts\.$/m);
  });
});

describe('calls through the pipeline', () => {
  it('an allowed call runs on its connection and answers its rows', async () => {
    const r = await say('hello world');
    expect(r.ok, r.text).toBe(true);
    if (!r.ok) return;
    expect(r.structured).toMatchObject({ connection: 'parrot', command: 'ECHO', rows: [['squawk: hello'], ['squawk: world']], rule: 'greetings' });
  });

  it('a word a deny rule names is refused by it; a word no rule names is refused by default', async () => {
    const denied = await say('hello password');
    expect(denied.ok).toBe(false);
    if (!denied.ok) expect(denied.text).toMatch(/^policy\.denied: Denied \(rule no-secrets\): The parrot keeps secrets\.\nWhat to do: /);
    const unmatched = await say('hello bye');
    expect(unmatched.ok).toBe(false);
    if (!unmatched.ok) expect(unmatched.error.code).toBe('policy.no_match');
  });

  it('its own error code carries its hint and kind', async () => {
    const r = await say('HELLO');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('echo.refused');
    expect(r.text).toBe('echo.refused: Refused: the text shouts.\nWhat to do: Say it without shouting.');
    expect(errorKind('echo.refused')).toBe('refusal');
  });

  it('every call is journaled with its decision and the facts its backend matched', () => {
    const calls = [...readCalls(join(dir, 'journal.db'))].filter((c) => c.call['tool'] === 'say');
    const shown = calls.map((c) => [c.call['decision'], (c.call['request'] as Record<string, unknown> | null)?.['words'] ?? null, c.outcome?.['status']]);
    expect(shown).toEqual([
      [{ effect: 'allow', rule: 'greetings', message: 'Allowed by rule greetings.' }, ['hello', 'world'], 'ok'],
      [{ effect: 'deny', rule: 'no-secrets', message: 'The parrot keeps secrets.' }, ['hello', 'password'], 'refused'],
      [{ effect: 'deny', rule: null, message: expect.stringMatching(/^No rule allows read access \(say\) on say\/parrot/) }, ['hello', 'bye'], 'refused'],
      [{ effect: 'deny', rule: null, message: 'echo.refused: Refused: the text shouts.' }, null, 'refused'],
    ]);
  });

  it('a file its connection names (filesOf) never reaches the agent', async () => {
    const r = await say('crash');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('backend.error');
    expect(r.text).toContain('The parrot could not write <path on the gateway host>: disk full.');
    expect(r.text).not.toContain(dir);
  });
});

describe('the registry composition refuses clashes', () => {
  it('a policy key another backend (or the generic rule) already has', () => {
    const clash = defineBackend({ ...echoDefinitionWith({ tables: oneOrMany.optional() }), type: 'clash', toolType: 'clash_tool' });
    expect(() => policySchemas([...BACKENDS, clash])).toThrow(/policy match key "tables" of the clash backend is already declared/);
    const generic = defineBackend({ ...echoDefinitionWith({ tool: oneOrMany.optional() }), type: 'clash2', toolType: 'clash2_tool' });
    expect(() => policySchemas([...BACKENDS, generic])).toThrow(/policy match key "tool"/);
  });

  it('a connection type or tool type another backend has', () => {
    const twin = defineBackend({ ...echoDefinitionWith({ other: oneOrMany.optional() }), type: 'echo2', toolType: 'run_sql' });
    expect(() => policySchemas([...BACKENDS, twin])).toThrow(/two backends declare the tool type run_sql/);
  });
});

/** A minimal definition with the given match shape (for the clash tests: never loaded). */
function echoDefinitionWith<S extends z.ZodRawShape>(matchShape: S) {
  return {
    type: 'x',
    toolType: 'x',
    connectionSchema: echoConnectionSchema,
    operations: ['say'],
    inputShape: {},
    toolDescription: 'x',
    example: { connection: 'x', input: {} },
    describeConnection: () => 'x',
    parse: parseEcho,
    secretsOf: () => [],
    connect: () => {
      throw new TypeError('not used');
    },
    matchShape,
    matches: () => true,
    explain: { lines: () => [], facts: () => ({}), withoutCatalog: 'x' },
    errors: {},
  };
}
