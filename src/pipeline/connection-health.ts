// Each connection's last known check, for /readyz: the outcome of the last call that reached its
// backend (passive: no traffic of its own, so a probe never loads a database). A fault (unreachable,
// timed out, refused credentials) marks it failing until a later call succeeds; a refusal of the
// request itself (a policy limit, a bad statement) says nothing about the connection and is not recorded.

export type ConnectionCheck =
  { readonly state: 'unchecked' } | { readonly state: 'ok'; readonly at: string } | { readonly state: 'failing'; readonly at: string; readonly code: string };

export interface ConnectionHealth {
  ok(connection: string, at: Date): void;
  failing(connection: string, code: string, at: Date): void;
  /** Every declared connection's last check, by name. */
  snapshot(): Readonly<Record<string, ConnectionCheck>>;
}

export function createConnectionHealth(names: Iterable<string>): ConnectionHealth {
  const last = new Map<string, ConnectionCheck>();
  for (const name of names) last.set(name, { state: 'unchecked' });
  return {
    ok(connection, at) {
      if (last.has(connection)) last.set(connection, { state: 'ok', at: at.toISOString() });
    },
    failing(connection, code, at) {
      if (last.has(connection)) last.set(connection, { state: 'failing', at: at.toISOString(), code });
    },
    snapshot: () => Object.fromEntries(last),
  };
}
