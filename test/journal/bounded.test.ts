// Untrusted shapes never break the journal's JSON handling: canonicalJson and the
// input measure are iterative (100,000 and 1,000,000 levels), the measure's sha256
// is the sha256 of the journal's canonical JSON, over-limit input is stored as a
// scrubbed 64 KiB prefix with a cut marker, and the stdio transport reads lines of
// any size and depth (an oversize tools/call still arrives, as an UnparsedInput).

import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it } from 'vitest';
import { boundText, INPUT_LIMITS, measureInput, STORED_PREFIX_BYTES, storedInput, unparsedInput, utf8Prefix } from '../../src/journal/bounded.js';
import { canonicalJson } from '../../src/util/canonical-json.js';
import { StdioTransport } from '../../src/stdio.js';

function nestedArrays(depth: number, leaf: unknown = 1): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

function nestedObjects(depth: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

/** The params of a received request. */
function paramsOf(message: JSONRPCMessage | undefined): Record<string, unknown> {
  if (!message || !('method' in message) || !message.params) throw new Error('not a request with params');
  return message.params;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const redactEmails = (text: string): string => text.replace(/[a-z0-9.]{1,64}@[a-z0-9.]{1,64}\.[a-z]{2,8}/gi, '[masked:email]');

describe('canonicalJson without recursion', () => {
  it('encodes 1,000,000 nested arrays and 100,000 nested objects, and round-trips', () => {
    const text = canonicalJson(nestedArrays(1_000_000));
    expect(text).toBe(`${'['.repeat(1_000_000)}1${']'.repeat(1_000_000)}`);
    const objects = canonicalJson(nestedObjects(100_000));
    expect(objects.length).toBe('{"a":'.length * 100_000 + '"leaf"'.length + 100_000);
    expect(canonicalJson(JSON.parse(objects))).toBe(objects);
  });

  it('keeps its contract: sorted keys, omitted undefined properties, toJSON, and TypeErrors that name the path', () => {
    expect(canonicalJson({ b: [1, { d: 2, c: undefined }], a: new Date('2024-01-02T03:04:05.006Z') })).toBe('{"a":"2024-01-02T03:04:05.006Z","b":[1,{"d":2}]}');
    expect(() => canonicalJson({ a: [0, { b: [1, undefined] }] })).toThrow('canonicalJson: undefined in array at $.a[1].b[1]');
    expect(() => canonicalJson({ x: { y: 10n } })).toThrow('canonicalJson: bigint at $.x.y');
    const cyclic: Record<string, unknown> = { k: [] };
    (cyclic['k'] as unknown[]).push(cyclic);
    expect(() => canonicalJson(cyclic)).toThrow('canonicalJson: cycle at $.k[0]');
    // The same object twice (not a cycle) is fine.
    const shared = { s: 1 };
    expect(canonicalJson([shared, shared])).toBe('[{"s":1},{"s":1}]');
    expect(canonicalJson(JSON.parse('{"__proto__":{"x":1},"constructor":2}'))).toBe('{"__proto__":{"x":1},"constructor":2}');
  });
});

describe('measureInput', () => {
  it('within the limits: size, depth, values, and the sha256 of the journal canonical JSON', () => {
    const input = { sql: 'SELECT 1', connection: 'db', hosts: ['a', 'b'] };
    const m = measureInput(input);
    expect(m.exceeded).toEqual([]);
    expect(m.canonical).toBe(canonicalJson(input));
    expect(m.sha256).toBe(sha256(canonicalJson(input)));
    expect(m.bytes).toBe(Buffer.byteLength(canonicalJson(input)));
    expect(m.depth).toBe(2);
    expect(m.values).toBe(6);
    expect(measureInput('x').depth).toBe(0);
  });

  it('100,000 levels deep: over the depth and value limits, measured whole (no stack overflow)', () => {
    const deep = { connection: 'db', sql: nestedArrays(100_000) };
    const m = measureInput(deep);
    expect(m.exceeded).toEqual(['depth', 'values']);
    expect(m.depth).toBe(100_001);
    expect(m.sha256).toBe(sha256(canonicalJson(deep)));
    expect(m.canonical).toBeNull();
    expect(m.head.length).toBeGreaterThan(STORED_PREFIX_BYTES);
  });

  it('10 MB: over the byte limit; the hash covers all of it', () => {
    const big = { connection: 'db', sql: 'é'.repeat(5_000_000) };
    const m = measureInput(big);
    expect(m.exceeded).toEqual(['bytes']);
    expect(m.bytes).toBe(Buffer.byteLength(canonicalJson(big)));
    expect(m.sha256).toBe(sha256(canonicalJson(big)));
  });

  it('values that are not JSON are flagged, never thrown', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    const throwing = Object.defineProperty({}, 'boom', {
      enumerable: true,
      get() {
        throw new Error('getter');
      },
    });
    for (const value of [cyclic, { n: 1n }, { f: () => 1 }, [undefined], { m: new Map() }, { n: Number.NaN }, throwing]) {
      const m = measureInput(value);
      expect(m.exceeded).toContain('json');
    }
    // An undefined property is JSON's "absent", not an error.
    expect(measureInput({ connection: 'db', sql: undefined }).exceeded).toEqual([]);
    expect(measureInput(undefined).canonical).toBe('null');
  });

  it('an UnparsedInput stand-in measures as its raw text, over the byte limit; a look-alike does not', () => {
    const token = unparsedInput({ bytes: 12_000_000, sha256: 'ab'.repeat(32), head: '{"sql":"', depth: 40 });
    const m = measureInput(token);
    expect(m).toMatchObject({ form: 'raw', bytes: 12_000_000, sha256: 'ab'.repeat(32), exceeded: ['depth', 'bytes'], values: null });
    expect(measureInput({}).form).toBe('canonical');
  });
});

describe('storedInput', () => {
  it('within the limits: the value with strings and keys scrubbed, no marker; own __proto__ keys stay data', () => {
    const value = JSON.parse('{"sql":"mail bob@example.com","__proto__":{"polluted":"carol@example.com"},"alice@example.com":1}');
    const stored = storedInput(measureInput(value), redactEmails);
    expect(stored.cut).toBeNull();
    expect(canonicalJson(stored.input)).toBe('{"[masked:email]":1,"__proto__":{"polluted":"[masked:email]"},"sql":"mail [masked:email]"}');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('over a limit: at most 64 KiB of canonical text, scrubbed (also a value the cut crosses), and the marker', () => {
    // An email placed so that the 64 KiB cut falls inside it.
    const pad = 'x'.repeat(STORED_PREFIX_BYTES - '{"sql":"'.length - 5);
    const value = { sql: `${pad} alice.longname@example.com ${'y'.repeat(2 * 1024 * 1024)}` };
    const m = measureInput(value);
    const stored = storedInput(m, redactEmails);
    expect(typeof stored.input).toBe('string');
    const text = stored.input as string;
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(STORED_PREFIX_BYTES);
    expect(text).not.toContain('alice');
    expect(text).not.toContain('longname');
    expect(text.startsWith('{"sql":"xxx')).toBe(true);
    expect(stored.cut).toEqual({
      exceeded: ['bytes'],
      form: 'canonical',
      bytes: m.bytes,
      kept: Buffer.byteLength(text),
      sha256: sha256(canonicalJson(value)),
      depth: 1,
      values: 2,
      limits: { depth: INPUT_LIMITS.maxDepth, bytes: INPUT_LIMITS.maxBytes, values: INPUT_LIMITS.maxValues },
    });
    // The record serialises canonically whatever was cut.
    expect(() => canonicalJson({ input: stored.input, inputCut: stored.cut })).not.toThrow();
  });

  it('utf8Prefix never splits a character; boundText says how long the text was', () => {
    const text = `${'a'.repeat(9)}€€`;
    expect(utf8Prefix(text, 10)).toBe('a'.repeat(9));
    expect(utf8Prefix(text, 12)).toBe(`${'a'.repeat(9)}€`);
    expect(boundText('x'.repeat(300), 200)).toBe(`${'x'.repeat(200)}…[cut: 300 characters]`);
    expect(boundText(`${'x'.repeat(199)}😀`, 200)).toBe(`${'x'.repeat(199)}…[cut: 201 characters]`);
  });
});

describe('the stdio transport', () => {
  function wire(maxMessageBytes?: number): {
    stdin: PassThrough;
    transport: StdioTransport;
    received: JSONRPCMessage[];
    sent: () => Array<Record<string, unknown>>;
    errors: Error[];
  } {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const transport = new StdioTransport({ stdin, stdout, ...(maxMessageBytes ? { maxMessageBytes } : {}) });
    const received: JSONRPCMessage[] = [];
    const errors: Error[] = [];
    transport.onmessage = (m) => received.push(m);
    transport.onerror = (e) => errors.push(e);
    return {
      stdin,
      transport,
      received,
      errors,
      sent: () =>
        out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
    };
  }
  const tick = () => new Promise((r) => setImmediate(r));

  it('parses a 100,000-deep message, and messages split across chunks or sharing one', async () => {
    const w = wire();
    await w.transport.start();
    const deep = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_sql","arguments":{"sql":${'['.repeat(100_000)}1${']'.repeat(100_000)}}}}`;
    const ping = '{"jsonrpc":"2.0","id":2,"method":"ping"}';
    w.stdin.write(deep.slice(0, 1000));
    w.stdin.write(`${deep.slice(1000)}\n${ping}\r\n`);
    await tick();
    expect(w.received.map((m) => ('id' in m ? m.id : null))).toEqual([1, 2]);
    expect(measureInput(paramsOf(w.received[0])['arguments']).depth).toBe(100_001);
  });

  it('scans an oversize tools/call without holding it: id (even at the end), name, and the raw arguments measured', async () => {
    const w = wire(64 * 1024);
    await w.transport.start();
    const args = `{"connection":"db","sql":"${'\\"'.repeat(10)}${'z'.repeat(300_000)}","nested":${'['.repeat(50)}${']'.repeat(50)}}`;
    const line = `{"method":"tools/call","params":{"_meta":{"x":[1,{"name":"decoy"}]},"name":"run_sql","arguments":${args}},"jsonrpc":"2.0","id":"req-7"}`;
    for (let i = 0; i < line.length; i += 7_000) w.stdin.write(line.slice(i, i + 7_000));
    w.stdin.write('\n');
    await tick();
    expect(w.received).toHaveLength(1);
    expect(w.received[0]).toMatchObject({ id: 'req-7', method: 'tools/call', params: { name: 'run_sql' } });
    const m = measureInput(paramsOf(w.received[0])['arguments']);
    expect(m).toMatchObject({ form: 'raw', bytes: Buffer.byteLength(args), sha256: sha256(args), depth: 51, exceeded: ['depth', 'bytes'] });
    expect(m.head.startsWith('{"connection":"db"')).toBe(true);
  });

  it('answers an oversize request that is not a call, and requests that are not JSON or not JSON-RPC, with errors; keeps serving', async () => {
    const w = wire(1024);
    await w.transport.start();
    w.stdin.write(`{"jsonrpc":"2.0","id":3,"method":"tools/list","params":{"pad":"${'p'.repeat(5000)}"}}\n`);
    w.stdin.write('{"jsonrpc":"2.0","id":4,"method":"ping",\n');
    w.stdin.write('{"jsonrpc":"1.0","id":5,"method":"ping"}\n');
    w.stdin.write('not json at all\n');
    w.stdin.write('{"jsonrpc":"2.0","id":6,"method":"ping"}\n');
    await tick();
    await tick();
    const sent = w.sent();
    expect(sent.map((m) => [m['id'], (m['error'] as { code: number }).code])).toEqual([
      [3, -32600],
      [4, -32700],
      [5, -32600],
    ]);
    expect(w.received.map((m) => ('id' in m ? m.id : null))).toEqual([6]);
    expect(w.errors.length).toBe(4);
  });
});
