// The Kubernetes backend behind the `kubectl` tool: declaration schema, pure
// parse (kubectl grammar, manifests), resolve through API discovery, and
// execution through the Kubernetes API with the gateway's own credentials
// (the connection; each verb family's executor is in executors/).
// Every object is structurally masked (Secret values, sensitive env, the
// last-applied annotation) before it is rendered; detectors run afterwards in
// the generic mask stage. A command that fails part-way says which of its
// writes the server had already applied (see afterChanges).

import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import {
  defineBackend,
  type BackendConnection,
  type ExecuteContext,
  type ImpactPreview,
  type ParsedRequest,
  type PreviewContext,
  type ProbeContext,
  type ProbeResult,
  type TabularResult,
} from '../backend.js';
import { resolveSecret, secretRefSchema, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatSize, sizeSchema } from '../../config/units.js';
import { DrawbridgeError } from '../../errors.js';
import { credentialsRefused, KubeClient, loadKubeConfig, probeCluster, statusMessage, type Impersonation } from './client.js';
import { Discovery } from './discovery.js';
import { KUBERNETES_ERRORS } from './errors.js';
import { requestsDryRun, runCommand, type Execution, type KubeApi } from './executors/index.js';
import { createMaskTally, type MaskTally } from './mask.js';
import { parseKubectl, SUPPORTED_VERBS } from './parse.js';
import { KUBE_EXPLAIN, KUBE_MATCH_SHAPE, matchesKube } from './policy.js';
import { resourceKey, type ApiResource, type KubeCommand, type KubeObject } from './types.js';

const kubernetesConnectionSchema = z
  .strictObject({
    kind: z.literal('connection'),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore'),
    type: z.literal('kubernetes'),
    description: z.string().min(1),
    /** The kubeconfig's content: `{ file: /etc/drawbridge/kubeconfig }` or `${KUBECONFIG_CONTENT}`. */
    kubeconfig: secretRefSchema.optional(),
    in_cluster: z.boolean().optional(),
    /** The context used; the agent can never switch it. */
    context: z.string().min(1).optional(),
    /** Namespace when the command names none. */
    namespace: z.string().min(1).default('default'),
    /** Send Impersonate-User/Group with the caller's identity, so the cluster's RBAC applies too. */
    impersonate: z.boolean().default(false),
    limits: z
      .strictObject({
        timeout: durationSchema.optional(),
        exec_timeout: durationSchema.optional(),
        max_bytes: sizeSchema.refine((n) => n <= 4 * 1024 * 1024, 'at most 4MiB').optional(),
        max_log_lines: z.number().int().positive().max(100_000).optional(),
      })
      .default({}),
  })
  .superRefine((c, ctx) => {
    if ((c.kubeconfig === undefined) === (c.in_cluster !== true)) {
      const message = 'set exactly one of kubeconfig (a { file: … } or ${VAR} reference) or in_cluster: true';
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message });
    }
  });

type KubernetesConnectionDeclaration = z.output<typeof kubernetesConnectionSchema>;

const READ_VERBS = new Set(['get', 'describe', 'logs', 'events', 'api-resources', 'explain', 'top', 'rollout status', 'rollout history']);

/** The backend's own facts about a request (ParsedRequest.detail). */
export type KubeDetail = {
  readonly command: KubeCommand;
  readonly manifest: KubeObject[];
  /** Filled by resolve. */
  readonly resolved: ApiResource[] | null;
  /** Namespaces touched, `*` for all namespaces; none for cluster-scoped resources (after resolve): what `namespaces:` rules match. */
  readonly namespaces: readonly string[];
  /** Object names touched: what `names:` rules match. */
  readonly names: readonly string[];
};

function parseManifest(text: string): KubeObject[] {
  let docs: unknown[];
  try {
    docs = parseAllDocuments(text).map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors[0]?.message ?? 'invalid YAML');
      return d.toJS() as unknown;
    });
  } catch (error) {
    throw new DrawbridgeError('input.invalid', `The manifest is not valid YAML or JSON: ${(error as Error).message.split('\n')[0]}`);
  }
  const objects: KubeObject[] = [];
  for (const doc of docs) {
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new DrawbridgeError('input.invalid', 'Each manifest document must be a Kubernetes object.');
    const obj = doc as KubeObject;
    if (obj.kind === 'List' && Array.isArray(obj['items'])) objects.push(...(obj['items'] as KubeObject[]));
    else objects.push(obj);
  }
  for (const o of objects) {
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new DrawbridgeError('input.invalid', 'Every object in the manifest needs apiVersion, kind and metadata.name.');
    }
  }
  if (objects.length === 0) throw new DrawbridgeError('input.invalid', 'The manifest contains no objects.');
  if (objects.length > 50) throw new DrawbridgeError('input.invalid', 'The manifest has more than 50 objects; split it.');
  return objects;
}

/** Pure: kubectl command (+ manifest) → request. */
function parseKubectlRequest(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<KubeDetail> {
  const commandText = input['command'];
  if (typeof commandText !== 'string') throw new TypeError('command must be a string (validated by the input schema)');
  const manifestText = typeof input['manifest'] === 'string' ? input['manifest'] : undefined;
  const command = parseKubectl(commandText, manifestText);
  const manifest = manifestText !== undefined ? parseManifest(manifestText) : [];
  const verb = command.verb;
  const access = verb === 'exec' ? 'admin' : READ_VERBS.has(verb) ? 'read' : 'write';
  const types = manifest.length > 0 ? [...new Set(manifest.map((o) => `${o.kind}.${o.apiVersion}`))] : command.types;
  const names = manifest.length > 0 ? manifest.map((o) => String(o.metadata?.name)) : command.targets.map((t) => t.name);
  const namespaces = command.allNamespaces
    ? ['*']
    : [
        ...new Set([
          ...(command.namespace ? [command.namespace] : []),
          ...manifest.map((o) => o.metadata?.namespace).filter((n): n is string => typeof n === 'string'),
        ]),
      ];
  const where = command.allNamespaces ? ' in all namespaces' : command.namespace ? ` in ${command.namespace}` : '';
  const detail: KubeDetail = { command, manifest, resolved: null, namespaces, names };
  return {
    tool: context.tool,
    toolType: 'kubectl',
    connection: context.connection,
    operation: verb,
    access,
    resources: types,
    reads: [],
    summary: `${verb} ${types.join(',')}${names.length ? ` ${names.join(' ')}` : ''}${where} (${access})`,
    reasons: [`kubectl ${verb}`],
    input: { connection: context.connection, command: commandText, ...(manifestText !== undefined ? { manifest: manifestText } : {}) },
    detail,
  };
}

/** What a command has changed so far (METHOD path of each write the server answered 2xx), so a fault can say what was applied before it. */
interface Progress {
  readonly applied: string[];
}

/** The execute context of one command, with its progress. */
type RunContext = ExecuteContext & { readonly progress: Progress };

/**
 * A command that fails after some of its writes were applied (`delete pod a b`,
 * `label` on a selector, a multi-object manifest) says which, so nobody takes
 * "failed" for "nothing changed". A transport fault after earlier writes is
 * backend.interrupted: the cluster is in between.
 */
function afterChanges(error: unknown, progress: Progress): unknown {
  if (progress.applied.length === 0 || !(error instanceof DrawbridgeError)) return error;
  const code = error.code === 'backend.unavailable' || error.code === 'backend.timeout' ? 'backend.interrupted' : error.code;
  const shown = progress.applied.slice(0, 10).join(', ') + (progress.applied.length > 10 ? `, and ${progress.applied.length - 10} more` : '');
  return new DrawbridgeError(
    code,
    `${error.message} Before that, this command had already applied ${progress.applied.length} ` +
      `change${progress.applied.length > 1 ? 's' : ''}: ${shown}; the rest was not done.`,
    {
      hint: 'Part of the command was applied. Check the current state with get before calling again.',
      details: { ...error.details, applied: [...progress.applied] },
      cause: error,
    },
  );
}

class KubernetesConnection implements BackendConnection<KubeDetail> {
  readonly name: string;
  private client: KubeClient | null = null;
  private discovery: Discovery | null = null;
  private readonly timeoutMs: number;
  private readonly execTimeoutMs: number;
  private readonly maxBytes: number;
  private readonly maxLogLines: number;

  constructor(
    private readonly declaration: KubernetesConnectionDeclaration,
    private readonly loadCredentials: () => { kubeconfig: string | null; inCluster: boolean; context: string | null },
  ) {
    this.name = declaration.name;
    this.timeoutMs = declaration.limits.timeout ?? 30_000;
    this.execTimeoutMs = declaration.limits.exec_timeout ?? 30_000;
    this.maxBytes = declaration.limits.max_bytes ?? 1024 * 1024;
    this.maxLogLines = declaration.limits.max_log_lines ?? 1000;
  }

  private api(): { client: KubeClient; discovery: Discovery } {
    if (!this.client) {
      // Credentials are loaded only here, on first use, and stay inside the client.
      this.client = new KubeClient(loadKubeConfig(this.loadCredentials()));
      this.discovery = new Discovery(this.client, this.timeoutMs);
    }
    return { client: this.client, discovery: this.discovery as Discovery };
  }

  async resolve(request: ParsedRequest<KubeDetail>): Promise<ParsedRequest<KubeDetail>> {
    const detail = request.detail;
    const { discovery } = this.api();
    const c = detail.command;
    let resolved: ApiResource[];
    if (detail.manifest.length > 0) resolved = await Promise.all(detail.manifest.map((o) => discovery.byKind(String(o.apiVersion), String(o.kind))));
    else if (['cordon', 'uncordon'].includes(c.verb)) resolved = [await discovery.resolve('nodes')];
    else if (c.verb === 'exec' || c.verb === 'logs') resolved = [await discovery.resolve('pods')];
    else if (c.verb === 'events') resolved = [await discovery.resolve('events')];
    else resolved = await Promise.all(c.types.map((t) => discovery.resolve(t)));
    const defaultNs = this.declaration.namespace;
    const namespaces = c.allNamespaces
      ? ['*']
      : resolved.some((r) => r.namespaced)
        ? [...new Set([...(detail.namespaces.length ? detail.namespaces : [defaultNs])])]
        : [];
    const keys = [...new Set(resolved.map(resourceKey))];
    const names = detail.names.length ? ` ${detail.names.join(' ')}` : '';
    return {
      ...request,
      resources: keys,
      summary: `${c.verb} ${keys.join(',') || '(discovery)'}${names}${namespaces.length ? ` in ${namespaces.join(',')}` : ''} (${request.access})`,
      detail: { ...detail, resolved, namespaces } satisfies KubeDetail,
    };
  }

  private impersonation(context: ExecuteContext): Impersonation | null {
    if (!this.declaration.impersonate) return null;
    if (!context.identity) throw new TypeError('impersonation needs the caller identity in the execute context');
    return { user: context.identity.subject, groups: context.identity.groups };
  }

  private async call(
    method: string,
    path: string,
    context: RunContext,
    o: { query?: Record<string, string | number | boolean | readonly string[] | undefined>; body?: unknown; contentType?: string; accept?: string } = {},
  ): Promise<unknown> {
    const { client } = this.api();
    const timeoutMs = Math.min(this.timeoutMs, context.timeLimitMs ?? Infinity);
    const res = await client.request(method, path, { ...o, impersonate: this.impersonation(context), timeoutMs, maxBytes: this.maxBytes });
    const changed = method !== 'GET' && method !== 'HEAD' && o.query?.['dryRun'] !== 'All' && res.status >= 200 && res.status < 300;
    if (changed) context.progress.applied.push(`${method} ${path}`);
    if (res.truncated)
      throw new DrawbridgeError(
        'backend.error',
        `The answer is larger than ${formatSize(this.maxBytes)}; narrow the request (a name, -l selector or -n namespace).`,
      );
    if (res.status === 404) throw new DrawbridgeError('backend.error', `Not found: ${statusMessage(res.text)}`);
    if (res.status === 401) throw credentialsRefused(client, `${method} ${path}: 401 ${statusMessage(res.text)}`);
    if (res.status === 403) throw new DrawbridgeError('backend.error', `The Kubernetes API refused this (403): ${statusMessage(res.text)}`);
    if (res.status >= 400) throw new DrawbridgeError('backend.error', `Kubernetes API error ${res.status}: ${statusMessage(res.text)}`);
    if (o.accept?.startsWith('text/')) return res.text;
    if (res.text === '') return {};
    try {
      return JSON.parse(res.text) as unknown;
    } catch {
      throw new DrawbridgeError(
        'backend.error',
        `The Kubernetes API answered ${method} ${path} with ${res.status} and a body that is not JSON${changed ? ' (the change was accepted)' : ''}.`,
      );
    }
  }

  async execute(request: ParsedRequest<KubeDetail>, context: ExecuteContext): Promise<TabularResult> {
    const detail = request.detail;
    if (!detail.resolved) throw new TypeError('resolve() must run before execute()');
    const progress: Progress = { applied: [] };
    // Every field mask applied to the objects of this answer is counted in its `masked` summary.
    const tally = createMaskTally();
    try {
      const result = await this.run(detail.command, detail.resolved, detail.manifest, { ...context, progress }, false, tally);
      const fieldMasks = tally.report();
      return fieldMasks.length > 0 ? { ...result, fieldMasks } : result;
    } catch (error) {
      throw afterChanges(error, progress);
    }
  }

  async preview(request: ParsedRequest<KubeDetail>, context: PreviewContext): Promise<ImpactPreview> {
    const detail = request.detail;
    if (!detail.resolved) throw new TypeError('resolve() must run before preview()');
    if (request.access !== 'write') throw new TypeError('only writes are previewed');
    // Server-side dry run: the API server validates and admits the change without persisting it.
    const result = await this.run(
      detail.command,
      detail.resolved,
      detail.manifest,
      { ...(context.identity ? { identity: context.identity } : {}), progress: { applied: [] } },
      true,
    );
    const lines = result.rows.map((r) => String(r[0] ?? ''));
    const sample = lines.slice(0, context.sampleSize ?? 5).map((line) => ({ result: line }));
    return {
      affectedRows: lines.length,
      sample,
      sampleColumns: ['result'],
      note: 'server-side dry run (dryRun=All): validated and admitted by the API server, nothing persisted',
    };
  }

  /** The executors' view of this connection for one command: calls go through the client, its limits and the caller's identity. */
  private apiFor(context: RunContext): KubeApi {
    const execTimeoutMs = Math.min(this.execTimeoutMs, context.timeLimitMs ?? Infinity);
    return {
      call: (method, path, o) => this.call(method, path, context, o),
      exec: (target) => this.api().client.exec(target, { impersonate: this.impersonation(context), timeoutMs: execTimeoutMs, maxBytes: this.maxBytes }),
      execTimeoutMs,
      resources: () => this.api().discovery.resources(),
      maxBytes: this.maxBytes,
      maxLogLines: this.maxLogLines,
    };
  }

  /** Runs the command through its verb family's executor; `preview` forces a server-side dry run. */
  private run(
    c: KubeCommand,
    resolved: readonly ApiResource[],
    manifest: readonly KubeObject[],
    context: RunContext,
    preview: boolean,
    tally: MaskTally = createMaskTally(),
  ): Promise<TabularResult> {
    const execution: Execution = {
      api: this.apiFor(context),
      resolved,
      manifest,
      namespace: c.namespace ?? this.declaration.namespace,
      dryRun: preview || requestsDryRun(c),
      now: new Date(),
      tally,
    };
    return runCommand(c, execution);
  }

  /** The API server's version and who the credentials are (SelfSubjectReview), as the gateway itself (never impersonating). */
  async probe(context: ProbeContext): Promise<ProbeResult> {
    const { client } = this.api();
    const cluster = await probeCluster(client, Math.min(this.timeoutMs, context.timeoutMs));
    const who =
      cluster.identity === null
        ? `credentials are unknown (${cluster.identityNote})`
        : `credentials are ${cluster.identity.username}${cluster.identity.groups.length ? ` (groups ${cluster.identity.groups.join(', ')})` : ''}`;
    return {
      summary:
        `Kubernetes ${cluster.version ?? '(version unknown)'} at ` +
        `${client.address}${this.declaration.context ? ` (context ${this.declaration.context})` : ''}, ` +
        `${who}${this.declaration.impersonate ? '; calls impersonate the caller' : ''}`,
      warnings: [],
      facts: {
        server: client.address,
        version: cluster.version,
        user: cluster.identity?.username ?? null,
        groups: cluster.identity ? cluster.identity.groups.join(',') : null,
        impersonate: this.declaration.impersonate,
      },
    };
  }

  async close(): Promise<void> {
    this.client = null;
  }
}

export const kubernetes = defineBackend({
  type: 'kubernetes',
  toolType: 'kubectl',
  operations: SUPPORTED_VERBS,
  connectionSchema: kubernetesConnectionSchema,
  inputShape: {
    command: z
      .string()
      .describe(
        'A kubectl command line without the word kubectl, e.g. "get pods -n shop -l app=web". No shell: pipes, redirections and substitutions are refused.',
      ),
    manifest: z.string().optional().describe('For apply/create only: the manifest (YAML or JSON). Never a file path.'),
  },
  example: { connection: 'staging', input: { command: 'delete ns shop' } },
  toolDescription:
    'Run a kubectl command against a Kubernetes cluster through the Drawbridge gateway (get, describe, logs, ' +
    'events, api-resources, explain; delete, apply, create, patch, scale, rollout, label, annotate, cordon, ' +
    'uncordon; exec). Policy decides by who you are; Secret values are always masked; every call is journaled.',
  describeConnection(c) {
    return (
      `${c.description} (Kubernetes; default namespace ` +
      `${c.namespace}${c.impersonate ? '; your identity is impersonated, so cluster RBAC applies too' : ''})`
    );
  },
  parse: parseKubectlRequest,
  secretsOf(c): readonly SecretRef[] {
    return c.kubeconfig ? [c.kubeconfig] : [];
  },
  connect(c, environment) {
    return new KubernetesConnection(c, () => ({
      kubeconfig: c.kubeconfig ? resolveSecret(c.kubeconfig, environment) : null,
      inCluster: c.in_cluster === true,
      context: c.context ?? null,
    }));
  },
  matchShape: KUBE_MATCH_SHAPE,
  matches: matchesKube,
  explain: KUBE_EXPLAIN,
  errors: KUBERNETES_ERRORS,
});
