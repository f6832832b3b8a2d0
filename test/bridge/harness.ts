// The bridge under test: runBridge on a pair of in-memory pipes standing for its
// stdin/stdout, and the SDK's Client on the other ends (newline-delimited
// JSON-RPC, exactly what crosses a real stdio pipe). Log lines are collected;
// sign-in prompts arrive as events (onSignInPrompt), awaited in order, and the
// test IdP answers them; the client's tools/list_changed notifications too.

import { PassThrough } from 'node:stream';
import type { Client as V2Client } from '@modelcontextprotocol/client';
import { StdioServerTransport as V2StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { runBridge, type BridgeOptions, type SignInPrompt } from '../../src/bridge/connect.js';

export interface BridgeRun {
  readonly lines: string[];
  /** The runBridge promise (resolves when the bridge stops). */
  readonly done: Promise<void>;
  /** True once runBridge resolved. */
  stopped(): boolean;
  /** The next sign-in prompt's user code. */
  prompt(): Promise<string>;
  /** The next sign-in prompt, as the bridge showed it. */
  nextPrompt(): Promise<SignInPrompt>;
  /** An SDK Client connected through the bridge (call once). */
  connect(client: Client): Promise<void>;
  /** An SDK v2 Client connected through the bridge (call once, instead of connect). */
  connectV2(client: V2Client): Promise<void>;
  /** The next notifications/tools/list_changed the connected client receives. */
  toolsChanged(): Promise<void>;
  /** Closes the bridge's stdin (as an agent exiting does) and waits for the bridge to stop. */
  close(): Promise<void>;
}

/** Values pushed by events, taken in order by whoever awaits them. */
function queue<T>(): { push(value: T): void; next(what: string): Promise<T> } {
  const values: T[] = [];
  const waiters: Array<(value: T) => void> = [];
  return {
    push(value) {
      const waiter = waiters.shift();
      if (waiter) waiter(value);
      else values.push(value);
    },
    next(what) {
      const value = values.shift();
      if (value !== undefined) return Promise.resolve(value);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} arrived`)), 30_000);
        waiters.push((v) => {
          clearTimeout(timer);
          resolve(v);
        });
      });
    },
  };
}

export function startBridge(options: Omit<BridgeOptions, 'log'>): BridgeRun {
  const lines: string[] = [];
  const toBridge = new PassThrough();
  const fromBridge = new PassThrough();
  const prompts = queue<SignInPrompt>();
  const changes = queue<true>();
  let stopped = false;
  const done = runBridge(
    { ...options, log: (line) => void lines.push(line), onSignInPrompt: (p) => prompts.push(p) },
    { stdin: toBridge, stdout: fromBridge },
  ).finally(() => {
    stopped = true;
  });
  // The client's side of the pipes: what it writes is the bridge's stdin, and the reverse.
  const clientSide = new StdioServerTransport(fromBridge, toBridge);
  return {
    lines,
    done,
    stopped: () => stopped,
    nextPrompt: () => prompts.next('sign-in prompt'),
    async prompt() {
      const prompt = await prompts.next(`sign-in prompt (log: ${lines.join(' | ')})`);
      // The same prompt went to the log (stderr), as a person sees it.
      if (!lines.includes(prompt.text)) throw new Error(`the prompt was not logged: ${prompt.text}`);
      return prompt.userCode;
    },
    connect(client) {
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => changes.push(true));
      return client.connect(clientSide);
    },
    connectV2(client) {
      return client.connect(new V2StdioServerTransport(fromBridge, toBridge));
    },
    toolsChanged: () => changes.next('notifications/tools/list_changed').then(() => undefined),
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
