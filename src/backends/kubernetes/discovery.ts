// API discovery: which resources the server serves (CRDs included), and how a
// name the agent wrote (plural, singular, kind, short name, `resource.group`)
// resolves to one. Cached per connection for a few minutes.

import { DrawbridgeError } from '../../errors.js';
import { credentialsRefused, statusMessage, type KubeClient } from './client.js';
import type { ApiResource } from './types.js';

const TTL_MS = 5 * 60_000;

interface ResourceList {
  groupVersion?: string;
  resources?: Array<{ name: string; singularName?: string; namespaced: boolean; kind: string; verbs?: string[]; shortNames?: string[] }>;
}

export class Discovery {
  private cached: { at: number; resources: ApiResource[] } | null = null;

  constructor(
    private readonly client: KubeClient,
    private readonly timeoutMs: number,
  ) {}

  invalidate(): void {
    this.cached = null;
  }

  async resources(): Promise<ApiResource[]> {
    if (this.cached && Date.now() - this.cached.at < TTL_MS) return this.cached.resources;
    const get = async <T>(path: string): Promise<T> => {
      const res = await this.client.request('GET', path, { timeoutMs: this.timeoutMs, maxBytes: 16 * 1024 * 1024 });
      if (res.status === 401) throw credentialsRefused(this.client, `discovery GET ${path}: 401 ${statusMessage(res.text)}`);
      if (res.status !== 200) throw new DrawbridgeError('backend.error', `Discovery request ${path} failed (${res.status}).`);
      try {
        return JSON.parse(res.text) as T;
      } catch {
        throw new DrawbridgeError(
          'backend.unavailable',
          `Discovery request ${path} answered with a body that is not JSON${res.truncated ? ' (cut at 16 MiB)' : ''}; nothing was run.`,
        );
      }
    };
    const core = await get<{ versions?: string[] }>('/api');
    const groups = await get<{ groups?: Array<{ name: string; preferredVersion?: { version: string }; versions?: Array<{ version: string }> }> }>('/apis');
    const lists: Array<Promise<{ group: string; version: string; list: ResourceList }>> = [];
    for (const version of core.versions ?? ['v1']) lists.push(get<ResourceList>(`/api/${version}`).then((list) => ({ group: '', version, list })));
    for (const g of groups.groups ?? []) {
      const version = g.preferredVersion?.version ?? g.versions?.[0]?.version;
      if (version) lists.push(get<ResourceList>(`/apis/${g.name}/${version}`).then((list) => ({ group: g.name, version, list })));
    }
    const resources: ApiResource[] = [];
    for (const { group, version, list } of await Promise.all(lists)) {
      for (const r of list.resources ?? []) {
        if (r.name.includes('/')) continue; // subresources
        resources.push({
          group,
          version,
          resource: r.name,
          kind: r.kind,
          namespaced: r.namespaced,
          verbs: r.verbs ?? [],
          shortNames: r.shortNames ?? [],
          singular: r.singularName || r.kind.toLowerCase(),
        });
      }
    }
    this.cached = { at: Date.now(), resources };
    return resources;
  }

  /** Resolves a type as kubectl does: plural, singular, kind, short name, optionally `.group`. Core group first. */
  async resolve(type: string): Promise<ApiResource> {
    const all = await this.resources();
    const lower = type.toLowerCase();
    const candidates = (name: string, group: string | null) =>
      all.filter(
        (r) =>
          (group === null || r.group === group) && (r.resource === name || r.singular === name || r.kind.toLowerCase() === name || r.shortNames.includes(name)),
      );
    let found = candidates(lower, null);
    const dot = lower.indexOf('.');
    if (found.length === 0 && dot > 0) {
      const name = lower.slice(0, dot);
      const rest = lower.slice(dot + 1);
      found = candidates(name, rest);
      // resource.version.group
      if (found.length === 0 && rest.includes('.'))
        found = candidates(name, rest.slice(rest.indexOf('.') + 1)).filter((r) => r.version === rest.slice(0, rest.indexOf('.')));
    }
    const best = found.find((r) => r.group === '') ?? found.find((r) => r.group === 'apps') ?? found[0];
    if (!best)
      throw new DrawbridgeError('input.invalid', `The server does not serve a resource type "${type}".`, {
        hint: 'Run `api-resources` to list the resource types this cluster serves.',
      });
    return best;
  }

  /** By apiVersion + kind, for manifests. */
  async byKind(apiVersion: string, kind: string): Promise<ApiResource> {
    const all = await this.resources();
    const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
    const found = all.find((r) => r.group === group && r.kind === kind) ?? all.find((r) => r.group === group && r.version === version && r.kind === kind);
    if (!found)
      throw new DrawbridgeError('input.invalid', `The server does not serve kind ${kind} in ${apiVersion}.`, {
        hint: 'Check apiVersion and kind in the manifest; `api-resources` lists what the cluster serves.',
      });
    return found;
  }
}

/** REST path of a resource collection or object. */
export function resourcePath(r: ApiResource, namespace: string | null, name?: string, subresource?: string): string {
  const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns = r.namespaced && namespace !== null ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  const obj = name !== undefined ? `/${encodeURIComponent(name)}` : '';
  const sub = subresource !== undefined ? `/${subresource}` : '';
  return `${base}${ns}/${r.resource}${obj}${sub}`;
}
