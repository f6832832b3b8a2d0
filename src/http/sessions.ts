// The MCP sessions (2025-11-25, Mcp-Session-Id) of one HTTP gateway: each bound to the (issuer, subject) of
// the token that opened it, capped in number, and closed after a stretch with
// no request in flight (an open SSE stream or a running call counts as busy).

import type { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import type { Server } from '@modelcontextprotocol/server';
import type { Identity } from '../identity/identity.js';

interface SessionOwner {
  readonly issuer: string;
  readonly subject: string;
}

export interface Session {
  readonly id: string;
  readonly owner: SessionOwner;
  readonly transport: NodeStreamableHTTPServerTransport;
  readonly server: Server;
}

interface Entry extends Session {
  inFlight: number;
  idleTimer: NodeJS.Timeout | null;
}

export function ownerOf(identity: Identity): SessionOwner {
  return { issuer: identity.issuer, subject: identity.subject };
}

export function sameOwner(a: SessionOwner, b: SessionOwner): boolean {
  return a.issuer === b.issuer && a.subject === b.subject;
}

export class SessionTable {
  private readonly entries = new Map<string, Entry>();
  private pending = 0;
  private closed = false;

  constructor(private readonly options: { readonly max: number; readonly idleMs: number }) {}

  get size(): number {
    return this.entries.size;
  }

  /** Holds a slot for a session being initialized; false when the table is full (or closed). */
  reserve(): boolean {
    if (this.closed || this.entries.size + this.pending >= this.options.max) return false;
    this.pending += 1;
    return true;
  }

  release(): void {
    this.pending = Math.max(0, this.pending - 1);
  }

  /** Registers an initialized session (its slot was reserved); it expires when idle. */
  add(session: Session): void {
    if (this.closed) {
      void session.server.close().catch(() => undefined);
      return;
    }
    const entry: Entry = { ...session, inFlight: 0, idleTimer: null };
    this.entries.set(session.id, entry);
    // When the transport closes (DELETE, close()), the session is gone.
    const previous = session.transport.onclose;
    session.transport.onclose = () => {
      previous?.();
      this.forget(session.id, entry);
    };
    this.arm(entry);
  }

  get(id: string): Session | undefined {
    return this.entries.get(id);
  }

  /** Marks a request on the session as in flight until `done` is called (once). */
  begin(id: string): () => void {
    const entry = this.entries.get(id);
    if (!entry) return () => undefined;
    entry.inFlight += 1;
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      entry.inFlight -= 1;
      if (entry.inFlight === 0 && this.entries.get(id) === entry) this.arm(entry);
    };
  }

  async close(id: string): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.forget(id, entry);
    await entry.server.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.entries.keys()].map((id) => this.close(id)));
  }

  private arm(entry: Entry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = setTimeout(() => void this.close(entry.id), this.options.idleMs);
    entry.idleTimer.unref();
  }

  private forget(id: string, entry: Entry): void {
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    entry.idleTimer = null;
    if (this.entries.get(id) === entry) this.entries.delete(id);
  }
}
