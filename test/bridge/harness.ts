// The bridge under test: runBridge on a pair of in-memory pipes standing for its
// stdin/stdout, and the SDK's Client on the other ends (newline-delimited
// JSON-RPC, exactly what crosses a real stdio pipe). Log lines are collected, and
// the device flow's prompt can be awaited and answered by the test IdP.

import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { runBridge, type BridgeOptions } from '../../src/bridge/connect.js';

export interface BridgeRun {
  readonly lines: string[];
  /** The runBridge promise (resolves when the bridge stops). */
  readonly done: Promise<void>;
  /** True once runBridge resolved. */
  stopped(): boolean;
  /** The next sign-in prompt's user code. */
  prompt(): Promise<string>;
  /** An SDK Client connected through the bridge (call once). */
  connect(client: Client): Promise<void>;
  /** Closes the bridge's stdin (as an agent exiting does) and waits for the bridge to stop. */
  close(): Promise<void>;
}

export function startBridge(options: Omit<BridgeOptions, 'log'>): BridgeRun {
  const lines: string[] = [];
  const toBridge = new PassThrough();
  const fromBridge = new PassThrough();
  let stopped = false;
  const done = runBridge({ ...options, log: (line) => void lines.push(line) }, { stdin: toBridge, stdout: fromBridge }).finally(() => {
    stopped = true;
  });
  // The client's side of the pipes: what it writes is the bridge's stdin, and the reverse.
  const clientSide = new StdioServerTransport(fromBridge, toBridge);
  let seenPrompts = 0;
  return {
    lines,
    done,
    stopped: () => stopped,
    async prompt() {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const prompts = lines.filter((l) => l.startsWith('To sign in to '));
        if (prompts.length > seenPrompts) {
          const line = prompts[seenPrompts++]!;
          const code = / and enter (\S+)$/.exec(line)?.[1];
          if (!code) throw new Error(`unexpected prompt: ${line}`);
          return code;
        }
        if (Date.now() > deadline) throw new Error(`no sign-in prompt; log: ${lines.join(' | ')}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    connect: (client) => client.connect(clientSide),
    async close() {
      toBridge.end();
      await done;
    },
  };
}

export async function until<T>(probe: () => T | undefined | false, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = probe();
    if (found !== undefined && found !== false) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
