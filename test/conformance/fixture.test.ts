// The conformance fixture (fixture.ts) is what `npm run conformance` points the official
// suite at: its tools/list names exactly the tools the suite calls, and through its proxy
// (token added, fixed statement filled in) those tools play their parts — a read, a denial,
// an in-client approval as an InputRequiredResult. The suite's own verdicts can be lenient
// (a warning passes), so this checks the fixture itself. Needs the built binary (dist/).

import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FIXED_SQL, startConformanceFixture, withFixedArguments, type ConformanceFixture } from './fixture.js';

const MODERN = '2026-07-28';
let fixture: ConformanceFixture;

beforeAll(async () => {
  fixture = await startConformanceFixture({ adminUrl: inject('pgAdminUrl') });
});

afterAll(async () => {
  await fixture?.close();
});

/** One 2026-07-28 request through the proxy, as the suite sends it (no bearer token: the proxy adds it). */
async function modern(method: string, params: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const name = typeof params['name'] === 'string' ? { 'Mcp-Name': params['name'] } : {};
  const res = await fetch(fixture.url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json, text/event-stream',
      'MCP-Protocol-Version': MODERN,
      'Mcp-Method': method,
      ...name,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          'io.modelcontextprotocol/protocolVersion': MODERN,
          'io.modelcontextprotocol/clientInfo': { name: 'fixture-test', version: '1.0.0' },
          'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
        },
      },
    }),
  });
  const text = await res.text();
  const data = text.startsWith('{') ? text : (text.split('\n').find((l) => l.startsWith('data: {')) ?? '').slice('data: '.length);
  return { status: res.status, body: JSON.parse(data) as Record<string, unknown> };
}

describe('the conformance fixture', () => {
  it('lists exactly the tools the suite calls (those with a fixed statement)', async () => {
    const { status, body } = await modern('tools/list', {});
    expect(status).toBe(200);
    const tools = (body['result'] as { tools: Array<{ name: string }> }).tools.map((t) => t.name).sort();
    expect(tools).toEqual(Object.keys(FIXED_SQL).sort());
    expect(tools).toEqual(
      expect.arrayContaining([
        'test_simple_text',
        'test_error_handling',
        'test_input_required_result_elicitation',
        'test_input_required_result_tampered_state',
      ]),
    );
  });

  it('test_simple_text runs its read and answers text; test_error_handling is denied with the policy message', async () => {
    const read = await modern('tools/call', { name: 'test_simple_text' });
    const readResult = read.body['result'] as { isError?: boolean; content: Array<{ type: string; text: string }> };
    expect(readResult.isError).not.toBe(true);
    expect(readResult.content[0]?.text).toContain('This is a simple text response for testing.');

    const denied = await modern('tools/call', { name: 'test_error_handling', arguments: {} });
    const deniedResult = denied.body['result'] as { isError?: boolean; content: Array<{ type: string; text: string }> };
    expect(deniedResult.isError).toBe(true);
    expect(deniedResult.content[0]?.text).toContain('This tool intentionally returns an error for testing');
  });

  it('a requester-approved tool asks for the approval as an InputRequiredResult with a sealed requestState; a tampered one is -32602', async () => {
    const first = await modern('tools/call', { name: 'test_input_required_result_tampered_state', arguments: {} });
    const result = first.body['result'] as { resultType: string; requestState: string; inputRequests: Record<string, { method: string }> };
    expect(result.resultType).toBe('input_required');
    expect(result.inputRequests['approval']?.method).toBe('elicitation/create');
    expect(result.requestState.length).toBeGreaterThan(20);

    const tampered = await modern('tools/call', {
      name: 'test_input_required_result_tampered_state',
      arguments: {},
      inputResponses: { approval: { action: 'accept', content: { decision: 'approve' } } },
      requestState: `${result.requestState}-TAMPERED`,
    });
    expect((tampered.body['error'] as { code: number }).code).toBe(-32602);
  });
});

describe('withFixedArguments', () => {
  const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
  const parsed = (b: Buffer): unknown => JSON.parse(b.toString('utf8'));

  it("fills a suite tool's call without sql with its statement on db, keeping what was sent", () => {
    const out = withFixedArguments(body({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_simple_text', _meta: { k: 1 } } }));
    expect(parsed(out)).toEqual({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'test_simple_text', _meta: { k: 1 }, arguments: { connection: 'db', sql: FIXED_SQL['test_simple_text'] } },
    });
  });

  it('passes any other body unchanged: other methods and tools, calls that carry sql, non-JSON', () => {
    for (const b of [
      body({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
      body({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'run_sql', arguments: {} } }),
      body({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'test_simple_text', arguments: { sql: 'SELECT 2' } } }),
      Buffer.from('not json'),
    ])
      expect(withFixedArguments(b)).toBe(b);
  });
});
