// Shared shapes of the Kubernetes backend: the parsed kubectl command (pure
// output of parse.ts), resolved API resources (discovery) and Kubernetes
// objects as plain JSON. No I/O here.

export type KubeVerb =
  | 'get'
  | 'describe'
  | 'logs'
  | 'events'
  | 'api-resources'
  | 'explain'
  | 'top'
  | 'delete'
  | 'apply'
  | 'create'
  | 'patch'
  | 'scale'
  | 'label'
  | 'annotate'
  | 'cordon'
  | 'uncordon'
  | 'rollout status'
  | 'rollout restart'
  | 'rollout undo'
  | 'rollout history'
  | 'exec';

export type OutputFormat =
  { readonly kind: 'table'; readonly wide: boolean } | { readonly kind: 'yaml' | 'json' | 'name' } | { readonly kind: 'jsonpath'; readonly template: string };

/** A kubectl command line, parsed with an explicit grammar (never a shell). */
export interface KubeCommand {
  readonly verb: KubeVerb;
  /** Resource types as the agent wrote them (e.g. "pods", "deploy", "deployments.apps"), in order. */
  readonly types: readonly string[];
  /** Object names (from `TYPE NAME…` or `TYPE/NAME`), each bound to its type. */
  readonly targets: ReadonlyArray<{ readonly type: string; readonly name: string }>;
  /** Namespace from -n/--namespace, or null (the connection's default applies). */
  readonly namespace: string | null;
  readonly allNamespaces: boolean;
  readonly labelSelector: string | null;
  readonly fieldSelector: string | null;
  readonly output: OutputFormat;
  /** Verb-specific options, already validated (e.g. tail, since, container, previous, replicas, patch, patchType, toRevision, overwrite, labels, all, command). */
  readonly options: Readonly<Record<string, string | number | boolean | readonly string[] | null>>;
}

/** One API resource from discovery. */
export interface ApiResource {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  /** Plural resource name, e.g. "deployments". */
  readonly resource: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly verbs: readonly string[];
  readonly shortNames: readonly string[];
  readonly singular: string;
}

/** "apps/deployments", "core/pods": how policies name a resource. */
export function resourceKey(r: Pick<ApiResource, 'group' | 'resource'>): string {
  return `${r.group === '' ? 'core' : r.group}/${r.resource}`;
}

export type KubeObject = Record<string, unknown> & {
  apiVersion?: string;
  kind?: string;
  metadata?: Record<string, unknown> & { name?: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
};
