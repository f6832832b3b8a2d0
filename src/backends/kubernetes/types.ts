// Shared shapes of the Kubernetes backend: the parsed kubectl command (pure
// output of parse.ts, a union discriminated by verb with typed options per
// verb), resolved API resources (discovery) and Kubernetes objects as plain
// JSON. No I/O here.

/** The verbs by family: one module per family parses them (commands/) and one runs them (executors/). */
export const READ_VERBS = ['get', 'describe', 'logs', 'events', 'api-resources', 'explain', 'top'] as const;
export const WRITE_VERBS = ['delete', 'apply', 'create', 'patch', 'scale', 'label', 'annotate', 'cordon', 'uncordon'] as const;
export const ROLLOUT_VERBS = ['rollout status', 'rollout restart', 'rollout undo', 'rollout history'] as const;

export type ReadVerb = (typeof READ_VERBS)[number];
export type WriteVerb = (typeof WRITE_VERBS)[number];
export type RolloutVerb = (typeof ROLLOUT_VERBS)[number];
export type KubeVerb = ReadVerb | WriteVerb | RolloutVerb | 'exec';

export function isReadVerb(verb: KubeVerb): verb is ReadVerb {
  return (READ_VERBS as readonly KubeVerb[]).includes(verb);
}

export function isWriteVerb(verb: KubeVerb): verb is WriteVerb {
  return (WRITE_VERBS as readonly KubeVerb[]).includes(verb);
}

export function isRolloutVerb(verb: KubeVerb): verb is RolloutVerb {
  return (ROLLOUT_VERBS as readonly KubeVerb[]).includes(verb);
}

export type OutputFormat =
  { readonly kind: 'table'; readonly wide: boolean } | { readonly kind: 'yaml' | 'json' | 'name' } | { readonly kind: 'jsonpath'; readonly template: string };

export interface Target {
  readonly type: string;
  readonly name: string;
}

/** What every kubectl command has, whatever its verb. */
export interface CommandScope {
  /** Namespace from -n/--namespace, or null (the connection's default applies). */
  readonly namespace: string | null;
  readonly allNamespaces: boolean;
  readonly labelSelector: string | null;
  readonly fieldSelector: string | null;
  readonly output: OutputFormat;
}

interface CommandOf<V extends KubeVerb, O> extends CommandScope {
  readonly verb: V;
  /** Resource types as the agent wrote them (e.g. "pods", "deploy", "deployments.apps"), in order. */
  readonly types: readonly string[];
  /** Object names (from `TYPE NAME…` or `TYPE/NAME`), each bound to its type. */
  readonly targets: readonly Target[];
  /** The verb's own options, already validated. */
  readonly options: Readonly<O>;
}

/** The options of a verb that takes none. */
type NoOptions = Record<string, never>;
interface DryRunOption {
  /** --dry-run=server: the API server validates and admits the change without persisting it. */
  readonly dryRun: boolean;
}

export type GetCommand = CommandOf<'get', { showLabels: boolean; noHeaders: boolean; sortBy: string | null; ignoreNotFound: boolean }>;
export type DescribeCommand = CommandOf<'describe', NoOptions>;
export type LogsCommand = CommandOf<
  'logs',
  { container: string | null; previous: boolean; tail: number | null; sinceSeconds: number | null; timestamps: boolean }
>;
export type EventType = 'Normal' | 'Warning';
export type EventsCommand = CommandOf<'events', { forType: string | null; forName: string | null; eventTypes: readonly EventType[]; noHeaders: boolean }>;
export type ApiResourcesCommand = CommandOf<
  'api-resources',
  { namespaced: boolean | null; apiGroup: string | null; noHeaders: boolean; sortBy: 'name' | 'kind' | null }
>;
export type ExplainCommand = CommandOf<'explain', { fieldPath: string | null; recursive: boolean }>;
export type TopCommand = CommandOf<'top', { sortBy: 'cpu' | 'memory' | null; noHeaders: boolean }>;
export type ReadCommand = GetCommand | DescribeCommand | LogsCommand | EventsCommand | ApiResourcesCommand | ExplainCommand | TopCommand;

export type Cascade = 'background' | 'foreground' | 'orphan';
export type PatchType = 'strategic' | 'merge' | 'json';
export type DeleteCommand = CommandOf<
  'delete',
  { all: boolean; gracePeriod: number | null; force: boolean; cascade: Cascade; ignoreNotFound: boolean } & DryRunOption
>;
export type ApplyCommand = CommandOf<'apply', { serverSide: boolean; forceConflicts: boolean } & DryRunOption>;
export type CreateCommand = CommandOf<'create', DryRunOption>;
export type PatchCommand = CommandOf<'patch', { patch: string; patchType: PatchType } & DryRunOption>;
export type ScaleCommand = CommandOf<'scale', { replicas: number; currentReplicas: number | null } & DryRunOption>;
/** label and annotate: `key=value` sets, `key-` removes. */
type MetadataOptions = { changes: readonly string[]; overwrite: boolean; all: boolean } & DryRunOption;
export type MetadataCommand = CommandOf<'label', MetadataOptions> | CommandOf<'annotate', MetadataOptions>;
export type CordonCommand = CommandOf<'cordon', DryRunOption> | CommandOf<'uncordon', DryRunOption>;
export type WriteCommand = DeleteCommand | ApplyCommand | CreateCommand | PatchCommand | ScaleCommand | MetadataCommand | CordonCommand;

export type RolloutStatusCommand = CommandOf<'rollout status', { timeoutSeconds: number | null }>;
export type RolloutRestartCommand = CommandOf<'rollout restart', DryRunOption>;
export type RolloutUndoCommand = CommandOf<'rollout undo', { toRevision: number | null } & DryRunOption>;
export type RolloutHistoryCommand = CommandOf<'rollout history', { revision: number | null }>;
export type RolloutCommand = RolloutStatusCommand | RolloutRestartCommand | RolloutUndoCommand | RolloutHistoryCommand;

export type ExecCommand = CommandOf<'exec', { command: readonly string[]; container: string | null; invokesShell: boolean }>;

/** A kubectl command line, parsed with an explicit grammar (never a shell). */
export type KubeCommand = ReadCommand | WriteCommand | RolloutCommand | ExecCommand;

export function isReadCommand(c: KubeCommand): c is ReadCommand {
  return isReadVerb(c.verb);
}

export function isWriteCommand(c: KubeCommand): c is WriteCommand {
  return isWriteVerb(c.verb);
}

export function isRolloutCommand(c: KubeCommand): c is RolloutCommand {
  return isRolloutVerb(c.verb);
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
