// Where the development OpenID provider keeps its state (grants, device codes,
// sessions, refresh tokens, registered clients): a minimal oidc-provider
// adapter over one Map, in memory, shared by every provider instance behind
// the same listener (a key change keeps the grants) and lost on stop.

type Payload = Record<string, unknown>;

interface StoreEntry {
  payload: Payload;
  expiresAt: number | undefined; // epoch ms
}

export class ProviderStore {
  readonly entries = new Map<string, StoreEntry>();
  readonly byUserCode = new Map<string, string>(); // userCode -> id (DeviceCode)
  readonly byUid = new Map<string, string>(); // uid -> id (Session)
  readonly byGrant = new Map<string, Set<string>>(); // grantId -> entry keys

  get(key: string): Payload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  adapterFor(model: string): object {
    const key = (id: string): string => `${model}:${id}`;
    const find = async (id: string | undefined): Promise<Payload | undefined> => (id === undefined ? undefined : this.get(key(id)));
    return {
      upsert: async (id: string, payload: Payload, expiresIn: number | undefined): Promise<void> => {
        const k = key(id);
        this.entries.set(k, {
          payload,
          expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : undefined,
        });
        if (typeof payload['grantId'] === 'string') {
          const members = this.byGrant.get(payload['grantId']) ?? new Set<string>();
          members.add(k);
          this.byGrant.set(payload['grantId'], members);
        }
        if (typeof payload['userCode'] === 'string') this.byUserCode.set(payload['userCode'], id);
        if (model === 'Session' && typeof payload['uid'] === 'string') this.byUid.set(payload['uid'], id);
      },
      find,
      findByUserCode: async (userCode: string) => find(this.byUserCode.get(userCode)),
      findByUid: async (uid: string) => find(this.byUid.get(uid)),
      consume: async (id: string): Promise<void> => {
        const payload = this.get(key(id));
        if (payload) payload['consumed'] = Math.floor(Date.now() / 1000);
      },
      destroy: async (id: string): Promise<void> => {
        this.entries.delete(key(id));
      },
      revokeByGrantId: async (grantId: string): Promise<void> => {
        for (const k of this.byGrant.get(grantId) ?? []) this.entries.delete(k);
        this.byGrant.delete(grantId);
      },
    };
  }
}
