// A client-side stdio transport for the MCP SDK's Client that can SEND what the
// SDK's own StdioClientTransport cannot: it serialises with the journal's iterative
// canonicalJson instead of JSON.stringify (which overflows the stack on arguments
// nested 100,000 deep). Everything else is the SDK's: the Client, and its ReadBuffer
// parsing the gateway's answers. It spawns `drawbridge serve` like the SDK does.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ReadBuffer } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { canonicalJson } from '../../src/util/canonical-json.js';

export class IterativeStdioClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  private child: ChildProcessWithoutNullStreams | null = null;
  private readonly buffer = new ReadBuffer();
  private stderrText = '';

  constructor(
    private readonly params: { readonly command: string; readonly args: readonly string[]; readonly env: Record<string, string>; readonly cwd: string },
  ) {}

  /** Sends SIGTERM to the gateway (a graceful shutdown) and resolves with its exit code once it exited. */
  terminate(): Promise<number | null> {
    const child = this.child;
    if (!child) return Promise.reject(new Error('the gateway is not running'));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    return exited;
  }

  /** Sends the gateway a signal that does not end it (SIGHUP: reload). */
  signal(name: NodeJS.Signals): void {
    if (!this.child) throw new Error('the gateway is not running');
    this.child.kill(name);
  }

  /** Everything the gateway wrote on stderr (its operator log). */
  stderr(): string {
    return this.stderrText;
  }

  async start(): Promise<void> {
    const child = spawn(this.params.command, [...this.params.args], { env: this.params.env, cwd: this.params.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout.on('data', (chunk: Buffer) => {
      this.buffer.append(chunk);
      for (;;) {
        let message: JSONRPCMessage | null;
        try {
          message = this.buffer.readMessage();
        } catch (error) {
          this.onerror?.(error as Error);
          continue;
        }
        if (message === null) break;
        this.onmessage?.(message);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (this.stderrText += chunk.toString('utf8')));
    child.on('error', (error) => this.onerror?.(error));
    child.on('close', () => {
      this.child = null;
      this.onclose?.();
    });
    child.stdin.on('error', (error) => this.onerror?.(error));
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', reject);
    });
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin) throw new Error('not connected');
    const line = `${canonicalJson(message)}\n`;
    await new Promise<void>((resolve) => {
      if (stdin.write(line)) resolve();
      else stdin.once('drain', resolve);
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGTERM'), 2_000);
    await closed;
    clearTimeout(timer);
  }
}
