// The `ws` package (a dependency of @kubernetes/client-node) ships no type declarations and
// @types/ws is not installed, so `import { WebSocketServer } from 'ws'` does not type-check.
// Load it through createRequire and describe the small surface the fake server uses.

import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Duplex } from 'node:stream';

export interface WsSocket {
  readonly protocol: string;
  readonly readyState: number;
  send(data: Buffer | string, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): this;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  on(event: 'open', listener: () => void): this;
  on(event: 'unexpected-response', listener: (req: unknown, res: IncomingMessage) => void): this;
}

export interface WsServer {
  readonly clients: Set<WsSocket>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, cb: (ws: WsSocket, req: IncomingMessage) => void): void;
  close(cb?: (err?: Error) => void): void;
}

export interface WsServerOptions {
  noServer: true;
  perMessageDeflate?: boolean;
  handleProtocols?: (protocols: Set<string>, req: IncomingMessage) => string | false;
}

interface WsModule {
  WebSocketServer: new (options: WsServerOptions) => WsServer;
  /** The client, for tests that speak the channel protocols by hand. */
  WebSocket: new (url: string, protocols?: string[], options?: { headers?: Record<string, string> }) => WsSocket;
}

const require = createRequire(import.meta.url);
export const { WebSocketServer, WebSocket } = require('ws') as WsModule;

export const WS_OPEN = 1;
