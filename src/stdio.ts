// The stdio transport of `drawbridge serve`: newline-delimited JSON-RPC on stdin
// and stdout, like the MCP SDK's StdioServerTransport, except for what an agent can
// break. The SDK's reader closes the whole session on a line over 10 MiB (the call
// is lost, never journaled) and silently drops a line it cannot parse (the client
// waits until it times out). Here:
//   - a line of at most MAX_STDIO_MESSAGE_BYTES is parsed as usual (JSON.parse is
//     iterative in V8 and the SDK's message schema is shallow, so any nesting depth
//     parses; the pipeline bounds it);
//   - a longer line is never held: it is scanned as it streams (OversizeScanner),
//     keeping only its id, method, tool name, and the size, sha256 and first bytes of
//     its arguments. A tools/call reaches the pipeline with an UnparsedInput stand-in
//     for its arguments, so it is journaled and refused like any input over the
//     limits; anything else with an id is answered with a JSON-RPC error;
//   - a request that is not JSON, or not JSON-RPC, is answered with an error when
//     its id can be read, instead of being left waiting.

import { createHash, type Hash } from 'node:crypto';
import { parseJSONRPCMessage, type JSONRPCMessage, type RequestId, type Transport } from '@modelcontextprotocol/server';
import { STORED_PREFIX_BYTES, unparsedInput } from './journal/bounded.js';

/** Lines up to this size are parsed; longer ones are scanned as they stream (the HTTP body cap is the same). */
export const MAX_STDIO_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Of an oversize message, the first bytes kept (the journal stores 64 KiB; detectors see a little more). */
const HEAD_BYTES = STORED_PREFIX_BYTES + 8 * 1024;
/** Captured ids, methods, tool names and keys longer than this are not read. */
const MAX_CAPTURE_BYTES = 1024;

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const INTERNAL_ERROR = -32603;

export interface StdioTransportOptions {
  readonly stdin?: NodeJS.ReadableStream;
  readonly stdout?: NodeJS.WritableStream;
  readonly maxMessageBytes?: number;
}

export class StdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  private readonly stdin: NodeJS.ReadableStream;
  private readonly stdout: NodeJS.WritableStream;
  private readonly maxMessageBytes: number;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private scanner: OversizeScanner | null = null;
  private started = false;

  constructor(options: StdioTransportOptions = {}) {
    this.stdin = options.stdin ?? process.stdin;
    this.stdout = options.stdout ?? process.stdout;
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_STDIO_MESSAGE_BYTES;
  }

  private readonly ondata = (chunk: Buffer | string): void => {
    try {
      this.receive(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
    } catch (error) {
      this.onerror?.(error instanceof Error ? error : new Error(String(error)));
    }
  };

  private readonly onstdinerror = (error: Error): void => {
    this.onerror?.(error);
  };

  async start(): Promise<void> {
    if (this.started) throw new Error('StdioTransport already started');
    this.started = true;
    this.stdin.on('data', this.ondata);
    this.stdin.on('error', this.onstdinerror);
  }

  async close(): Promise<void> {
    this.stdin.off('data', this.ondata);
    this.stdin.off('error', this.onstdinerror);
    if (this.stdin.listenerCount('data') === 0) this.stdin.pause();
    this.chunks.length = 0;
    this.size = 0;
    this.scanner = null;
    this.onclose?.();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    let json: string;
    try {
      json = JSON.stringify(message);
    } catch (error) {
      // Never one of the gateway's own answers; still, a request must not be left waiting.
      const id = 'id' in message ? message.id : undefined;
      if (id === undefined) throw error;
      json = JSON.stringify({ jsonrpc: '2.0', id, error: { code: INTERNAL_ERROR, message: 'Internal error: the answer could not be serialised.' } });
    }
    await new Promise<void>((resolve) => {
      if (this.stdout.write(`${json}\n`)) resolve();
      else this.stdout.once('drain', resolve);
    });
  }

  private receive(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      this.append(chunk.subarray(start, newline === -1 ? chunk.length : newline));
      if (newline === -1) return;
      this.endLine();
      start = newline + 1;
    }
  }

  private append(part: Buffer): void {
    if (part.length === 0) return;
    if (this.scanner) {
      this.scanner.write(part);
      return;
    }
    if (this.size + part.length > this.maxMessageBytes) {
      // Too large to hold: from here on the line is only scanned.
      const scanner = new OversizeScanner();
      for (const held of this.chunks) scanner.write(held);
      scanner.write(part);
      this.chunks.length = 0;
      this.size = 0;
      this.scanner = scanner;
      return;
    }
    this.chunks.push(part);
    this.size += part.length;
  }

  private endLine(): void {
    const scanner = this.scanner;
    if (scanner) {
      this.scanner = null;
      this.oversize(scanner.finish());
      return;
    }
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    this.size = 0;
    const line = bytes.toString('utf8').replace(/\r$/, '');
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      const scan = new OversizeScanner();
      scan.write(bytes);
      this.refuse(scan.finish().id, PARSE_ERROR, 'Parse error: the message is not valid JSON.');
      return;
    }
    let message: JSONRPCMessage | undefined;
    try {
      message = parseJSONRPCMessage(value);
    } catch {
      message = undefined;
    }
    if (message) {
      this.onmessage?.(message);
      return;
    }
    const id = value !== null && typeof value === 'object' && !Array.isArray(value) ? requestId((value as Record<string, unknown>)['id']) : undefined;
    this.refuse(id, INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 message of the MCP protocol.');
  }

  /** A message over the size limit: a tools/call goes to the pipeline (journaled, refused); anything else is answered with an error. */
  private oversize(scan: ScanResult): void {
    if (scan.method === 'tools/call' && scan.jsonrpc === '2.0' && scan.id !== undefined) {
      const input = scan.arguments ?? scan.message;
      const args = unparsedInput({ bytes: input.bytes, sha256: input.sha256, head: input.head, depth: input.depth });
      const name = scan.name ?? '';
      this.onmessage?.({ jsonrpc: '2.0', id: scan.id, method: 'tools/call', params: { name, arguments: args } });
      return;
    }
    this.refuse(
      scan.id,
      INVALID_REQUEST,
      `Request too large: ${scan.message.bytes} bytes; the gateway reads messages of at most ${this.maxMessageBytes} bytes over stdio.`,
    );
  }

  private refuse(id: RequestId | undefined, code: number, message: string): void {
    this.onerror?.(new Error(`stdio: ${message}`));
    if (id === undefined) return;
    this.send({ jsonrpc: '2.0', id, error: { code, message } }).catch((error: unknown) =>
      this.onerror?.(error instanceof Error ? error : new Error(String(error))),
    );
  }
}

function requestId(value: unknown): RequestId | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value;
  return undefined;
}

// ---------------------------------------------------------------------------
// Scanning a message too large to hold

interface TextMeasure {
  readonly bytes: number;
  readonly sha256: string;
  readonly head: string;
  readonly depth: number;
}

interface ScanResult {
  readonly id: RequestId | undefined;
  readonly method: string | undefined;
  readonly jsonrpc: string | undefined;
  /** The tool name as sent (any JSON value; a string normally). */
  readonly name: unknown;
  /** The raw `params.arguments` value, when there was one. */
  readonly arguments: TextMeasure | null;
  /** The whole message. */
  readonly message: TextMeasure;
}

/** Raw bytes streaming past: hashed and counted in full, the first HEAD_BYTES kept. */
class RawText {
  private readonly hash: Hash = createHash('sha256');
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  bytes = 0;
  depth = 0;

  write(part: Buffer): void {
    if (part.length === 0) return;
    this.hash.update(part);
    this.bytes += part.length;
    if (this.headBytes < HEAD_BYTES) {
      const kept = part.subarray(0, HEAD_BYTES - this.headBytes);
      this.head.push(Buffer.from(kept));
      this.headBytes += kept.length;
    }
  }

  finish(): TextMeasure {
    // A character cut at the end of the head decodes as U+FFFD; the stored prefix is shorter anyway.
    return { bytes: this.bytes, sha256: this.hash.digest('hex'), head: Buffer.concat(this.head).toString('utf8'), depth: this.depth };
  }
}

type Captured = 'id' | 'method' | 'jsonrpc' | 'name';
type Phase = 'key' | 'colon' | 'value' | 'after';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * A byte-level JSON scanner for one JSON-RPC message that is never held whole. It
 * tracks nesting (strings and escapes included), reads the keys of the top-level
 * object and of `params`, captures the small values that matter (id, method,
 * jsonrpc, params.name; at most 1 KiB each), and measures the raw text of
 * `params.arguments`. Constant memory whatever the message's size or depth; a
 * malformed message yields whatever could be read (the caller decides).
 */
class OversizeScanner {
  private readonly whole = new RawText();
  private depth = 0;
  private inString = false;
  private escaped = false;
  private inScalar = false;
  /** Per depth 1 and 2: the container's opening byte, where it is between key and value, its current key. */
  private readonly kind: number[] = [];
  private readonly phase: Phase[] = [];
  private readonly key: Array<string | null> = [];
  /** True while the container at depth 2 is the top-level `params` object. */
  private inParams = false;
  private paramsOpening = false;
  /** Inside a key string at depth 1 or 2; its bytes (null once over MAX_CAPTURE_BYTES: a key we never look for). */
  private inKey = false;
  private keyBytes: number[] | null = null;
  private capture: { readonly target: Captured; readonly depth: number; readonly container: boolean; bytes: number[] | null } | null = null;
  private readonly captured: Partial<Record<Captured, string | null>> = {};
  private args: { readonly depth: number; readonly text: RawText; readonly scalar: boolean; start: number } | null = null;
  private argsResult: TextMeasure | null = null;

  write(chunk: Buffer): void {
    this.whole.write(chunk);
    if (this.args) this.args.start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.inString) {
        this.feed(b);
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) {
          this.inString = false;
          this.stringEnded(chunk, i + 1);
        }
        continue;
      }
      if (this.inScalar && (isSpace(b) || b === COMMA || b === CLOSE_OBJECT || b === CLOSE_ARRAY)) {
        this.inScalar = false;
        this.valueEnded(chunk, i, 'scalar');
      }
      switch (b) {
        case QUOTE:
          if (this.depth <= 2 && this.depth >= 1 && this.kind[this.depth] === OPEN_OBJECT && this.phase[this.depth] === 'key') {
            this.inKey = true;
            this.keyBytes = [];
          } else this.valueStarted(i, 'string');
          this.feed(b);
          this.inString = true;
          break;
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          this.valueStarted(i, 'container');
          this.feed(b);
          this.depth += 1;
          if (this.depth <= 2) {
            this.kind[this.depth] = b;
            this.phase[this.depth] = b === OPEN_OBJECT ? 'key' : 'value';
            this.key[this.depth] = null;
          }
          if (this.depth === 2 && this.paramsOpening) this.inParams = b === OPEN_OBJECT;
          this.paramsOpening = false;
          if (this.depth > this.whole.depth) this.whole.depth = this.depth;
          if (this.args && this.depth - this.args.depth > this.args.text.depth) this.args.text.depth = this.depth - this.args.depth;
          break;
        case CLOSE_OBJECT:
        case CLOSE_ARRAY:
          this.feed(b);
          if (this.depth === 2) this.inParams = false;
          this.depth = Math.max(0, this.depth - 1);
          this.valueEnded(chunk, i + 1, 'container');
          break;
        case COLON:
          this.feed(b);
          if (this.depth >= 1 && this.depth <= 2 && this.phase[this.depth] === 'colon') this.phase[this.depth] = 'value';
          break;
        case COMMA:
          this.feed(b);
          if (this.depth >= 1 && this.depth <= 2) this.phase[this.depth] = this.kind[this.depth] === OPEN_OBJECT ? 'key' : 'value';
          break;
        default:
          if (!isSpace(b) && !this.inScalar) {
            this.inScalar = true;
            this.valueStarted(i, 'scalar');
          }
          this.feed(b);
      }
    }
    if (this.args) this.args.text.write(chunk.subarray(this.args.start));
  }

  finish(): ScanResult {
    if (this.inScalar) {
      this.inScalar = false;
      this.valueEnded(Buffer.alloc(0), 0, 'scalar');
    }
    if (this.args) {
      this.argsResult = this.args.text.finish();
      this.args = null;
    }
    const parsed = (target: Captured): unknown => {
      const raw = this.captured[target];
      if (raw === undefined || raw === null) return undefined;
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return undefined;
      }
    };
    const method = parsed('method');
    const jsonrpc = parsed('jsonrpc');
    const name = this.captured.name === null ? '(a tool name over 1 KiB)' : parsed('name');
    return {
      id: requestId(parsed('id')),
      method: typeof method === 'string' ? method : undefined,
      jsonrpc: typeof jsonrpc === 'string' ? jsonrpc : undefined,
      name,
      arguments: this.argsResult,
      message: this.whole.finish(),
    };
  }

  /** Appends a byte to the key or value being captured (bounded). */
  private feed(b: number): void {
    if (this.inKey && this.keyBytes) {
      if (this.keyBytes.length < MAX_CAPTURE_BYTES) this.keyBytes.push(b);
      else this.keyBytes = null;
    }
    const capture = this.capture;
    if (capture?.bytes) {
      if (capture.bytes.length < MAX_CAPTURE_BYTES) capture.bytes.push(b);
      else capture.bytes = null;
    }
  }

  /** A value starts at the current depth: is it one we capture or measure? */
  private valueStarted(at: number, what: 'string' | 'scalar' | 'container'): void {
    const depth = this.depth;
    if (depth < 1 || depth > 2 || this.kind[depth] !== OPEN_OBJECT || this.phase[depth] !== 'value') return;
    this.phase[depth] = 'after';
    const key = this.key[depth];
    if (depth === 1) {
      if (key === 'id' || key === 'method' || key === 'jsonrpc') this.capture = { target: key, depth, container: what === 'container', bytes: [] };
      if (key === 'params' && what === 'container') this.paramsOpening = true;
      return;
    }
    if (!this.inParams) return;
    if (key === 'name') this.capture = { target: 'name', depth, container: what === 'container', bytes: [] };
    // A repeated key counts as JSON.parse would read it: the last one.
    if (key === 'arguments' && this.args === null) {
      this.args = { depth, text: new RawText(), scalar: what === 'scalar', start: at };
    }
  }

  private stringEnded(chunk: Buffer, end: number): void {
    if (this.inKey) {
      let key: string | null;
      try {
        const parsed = this.keyBytes === null ? null : (JSON.parse(Buffer.from(this.keyBytes).toString('utf8')) as unknown);
        key = typeof parsed === 'string' ? parsed : null;
      } catch {
        key = null;
      }
      this.key[this.depth] = key;
      this.phase[this.depth] = 'colon';
      this.inKey = false;
      this.keyBytes = null;
      return;
    }
    this.valueEnded(chunk, end, 'string');
  }

  /** A value ended at the current depth (`end`: the index just past its last byte in `chunk`). */
  private valueEnded(chunk: Buffer, end: number, what: 'string' | 'scalar' | 'container'): void {
    const capture = this.capture;
    if (capture && capture.depth === this.depth && (what === 'container') === capture.container) {
      // A container where a scalar belongs is not captured (null: present but unreadable).
      this.captured[capture.target] = capture.container || capture.bytes === null ? null : Buffer.from(capture.bytes).toString('utf8');
      this.capture = null;
    }
    const args = this.args;
    if (args && args.depth === this.depth && (what === 'scalar') === args.scalar) {
      args.text.write(chunk.subarray(args.start, end));
      this.argsResult = args.text.finish();
      this.args = null;
    }
  }
}
