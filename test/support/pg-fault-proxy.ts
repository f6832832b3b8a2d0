// A TCP proxy between the gateway and a real PostgreSQL that can drop a
// connection at an exact protocol moment: the next time a message from the
// gateway contains a marker (a catalog query's text, "COMMIT"), it either
// forwards that message and then cuts (the server still runs it, its answer
// is lost: a network drop after sending) or cuts before forwarding (the server
// never sees it). The gateway's side is closed at once; the server's side gets
// an orderly end, so PostgreSQL runs what it was sent and then ends the session
// as it does for any client that went away. For the fault paths no server-side
// action can reach deterministically (catalog reads, dry runs, the probe).

import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Cut {
  /** Resolves once as many connections as asked were cut on the marker. */
  readonly done: Promise<void>;
}

export interface FaultProxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  url(url: string): string;
  /** Arms a cut: the next `times` (default 1) gateway→server chunks containing `marker` each end their connection. */
  cutOn(marker: string, options: { readonly forward: boolean; readonly times?: number }): Cut;
  close(): Promise<void>;
}

interface Armed {
  readonly marker: Buffer;
  readonly forward: boolean;
  left: number;
  readonly fire: () => void;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let armed: Armed | null = null;
  const sockets = new Set<Socket>();
  const server: Server = createServer((downstream) => {
    const upstream = connect(target.port, target.host);
    sockets.add(downstream);
    sockets.add(upstream);
    let tail = Buffer.alloc(0);
    const drop = (): void => {
      downstream.destroy();
      upstream.destroy();
    };
    downstream.on('close', () => sockets.delete(downstream));
    upstream.on('close', () => sockets.delete(upstream));
    downstream.on('error', drop);
    upstream.on('error', drop);
    upstream.on('end', () => downstream.end());
    upstream.on('data', (chunk: Buffer) => {
      if (!downstream.destroyed) downstream.write(chunk);
    });
    downstream.on('end', () => upstream.end());
    downstream.on('data', (chunk: Buffer) => {
      const rule = armed;
      // The marker may straddle two chunks: search the end of the previous one too.
      const window = Buffer.concat([tail, chunk]);
      tail = window.subarray(Math.max(0, window.length - 256));
      if (rule && window.includes(rule.marker)) {
        rule.left--;
        if (rule.left === 0) armed = null;
        if (rule.forward) upstream.write(chunk);
        // The server reads what it was sent, then sees the end of its client.
        upstream.end();
        // The gateway sees its connection closed without an answer.
        downstream.destroy();
        if (rule.left === 0) rule.fire();
        return;
      }
      upstream.write(chunk);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the fault proxy has no TCP address');
  const port = address.port;
  return {
    port,
    url(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cutOn(marker, options) {
      let fire: () => void = () => undefined;
      const done = new Promise<void>((resolve) => (fire = resolve));
      armed = { marker: Buffer.from(marker, 'utf8'), forward: options.forward, left: options.times ?? 1, fire };
      return { done };
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
