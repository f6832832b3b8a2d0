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
  /** After a reload: the connections now declared; new ones and `replaced` ones (a new declaration) start unchecked, vanished ones go. */
  follow(names: Iterable<string>, replaced: Iterable<string>): void;
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
    follow(names, replaced) {
      const fresh = new Set(replaced);
      const declared = new Set(names);
      for (const name of [...last.keys()]) if (!declared.has(name) || fresh.has(name)) last.delete(name);
      for (const name of declared) if (!last.has(name)) last.set(name, { state: 'unchecked' });
    },
  };
}
