// The Kubernetes backend behind the `kubectl` tool: declaration schema, pure
// parse (kubectl grammar, manifests), resolve through API discovery, and
// execution through the Kubernetes API with the gateway's own credentials.
// Every object is structurally masked (Secret values, sensitive env, the
// last-applied annotation) before it is rendered; detectors run afterwards in
// the generic mask stage. A command that fails part-way says which of its
// writes the server had already applied (see afterChanges).

import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import {
  defineBackend,
  type BackendConnection,
  type Cell,
  type ColumnInfo,
  type ExecuteContext,
  type ImpactPreview,
  type ParsedRequest,
  type PreviewContext,
  type ProbeContext,
  type ProbeResult,
  type TabularResult,
} from '../backend.js';
import { resolveSecret, secretRefSchema, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatDuration, formatSize, sizeSchema } from '../../config/units.js';
import { DrawbridgeError } from '../../errors.js';
import { KubeClient, loadKubeConfig, probeCluster, statusMessage, type Impersonation } from './client.js';
import { Discovery, resourcePath } from './discovery.js';
import { KUBERNETES_ERRORS } from './errors.js';
import { evaluateJsonPath } from './jsonpath.js';
import { createMaskTally, type MaskTally } from './mask.js';
import { parseKubectl, SUPPORTED_VERBS } from './parse.js';
import { KUBE_EXPLAIN, KUBE_MATCH_SHAPE, matchesKube } from './policy.js';
import { describeObject, renderObjects, renderTable } from './render.js';
import { resourceKey, type ApiResource, type KubeCommand, type KubeObject } from './types.js';

export const kubernetesConnectionSchema = z
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
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message: 'set exactly one of kubeconfig (a { file: … } or ${VAR} reference) or in_cluster: true' });
    }
  });

export type KubernetesConnectionDeclaration = z.output<typeof kubernetesConnectionSchema>;

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
export function parseKubectlRequest(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<KubeDetail> {
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

const doc = (name: string, text: string): TabularResult => ({
  columns: [{ name, type: 'document', sources: [] }],
  rows: [[text]],
  command: 'KUBECTL',
  affectedRows: null,
  truncated: null,
  notices: [],
  bytes: Buffer.byteLength(text),
});

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
    `${error.message} Before that, this command had already applied ${progress.applied.length} change${progress.applied.length > 1 ? 's' : ''}: ${shown}; the rest was not done.`,
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
    return {
      ...request,
      resources: keys,
      summary: `${c.verb} ${keys.join(',') || '(discovery)'}${detail.names.length ? ` ${detail.names.join(' ')}` : ''}${namespaces.length ? ` in ${namespaces.join(',')}` : ''} (${request.access})`,
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
    if (res.status === 401 || res.status === 403)
      throw new DrawbridgeError('backend.error', `The Kubernetes API refused this (${res.status}): ${statusMessage(res.text)}`);
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

  private namespaceOf(c: KubeCommand): string {
    return c.namespace ?? this.declaration.namespace;
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

  private async run(
    c: KubeCommand,
    resolved: readonly ApiResource[],
    manifest: readonly KubeObject[],
    context: RunContext,
    dryRun: boolean,
    tally: MaskTally = createMaskTally(),
  ): Promise<TabularResult> {
    const ns = this.namespaceOf(c);
    const dry = dryRun || c.options['dryRun'] === true ? { dryRun: 'All' } : {};
    const now = new Date();
    const first = resolved[0];
    const lines = (items: string[]): TabularResult => ({
      columns: [{ name: 'result', type: 'text', sources: [] }],
      rows: items.map((l) => [l]),
      command: 'KUBECTL',
      affectedRows: items.length,
      truncated: null,
      notices: [],
      bytes: items.join('\n').length,
    });
    const suffix = dryRun || dry.dryRun ? ' (server dry run)' : '';
    const display = (r: ApiResource) => (r.group === '' ? r.singular : `${r.singular}.${r.group}`);

    switch (c.verb) {
      case 'get': {
        if (!first) throw new DrawbridgeError('input.invalid', 'get needs a resource type.', { hint: 'e.g. `get pods -n shop`' });
        if (c.output.kind === 'table') {
          const columns: ColumnInfo[] = [];
          const rows: Cell[][] = [];
          for (const r of resolved) {
            const targets = c.targets.filter((t) => resolved.length === 1 || t.type === c.types[resolved.indexOf(r)]);
            const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
            const query = { includeObject: 'Metadata', labelSelector: c.labelSelector ?? undefined, fieldSelector: c.fieldSelector ?? undefined };
            const tables: unknown[] = [];
            if (targets.length > 0)
              for (const t of targets) tables.push(await this.call('GET', resourcePath(r, c.allNamespaces ? null : ns, t.name), context, { accept, query }));
            else tables.push(await this.call('GET', resourcePath(r, c.allNamespaces ? null : ns), context, { accept, query }));
            for (const t of tables) {
              const table = tally.mask(t) as Parameters<typeof renderTable>[0];
              const rendered = renderTable(table, {
                wide: c.output.wide,
                noHeaders: c.options['noHeaders'] === true,
                showKind: resolved.length > 1 ? display(r) : null,
                namespaceColumn: c.allNamespaces && r.namespaced,
                now,
              });
              if (columns.length === 0) columns.push(...rendered.columns.map((col) => ({ ...col, sources: [] })));
              rows.push(...rendered.rows);
            }
          }
          return { columns, rows, command: 'GET', affectedRows: null, truncated: null, notices: [], bytes: JSON.stringify(rows).length };
        }
        const objects: unknown[] = [];
        for (const r of resolved) {
          const targets = c.targets.filter((t) => resolved.length === 1 || t.type === c.types[resolved.indexOf(r)]);
          if (targets.length > 0) for (const t of targets) objects.push(await this.call('GET', resourcePath(r, ns, t.name), context));
          else {
            const list = (await this.call('GET', resourcePath(r, c.allNamespaces ? null : ns), context, {
              query: { labelSelector: c.labelSelector ?? undefined, fieldSelector: c.fieldSelector ?? undefined },
            })) as { items?: KubeObject[] };
            for (const item of list.items ?? []) objects.push({ apiVersion: r.group === '' ? r.version : `${r.group}/${r.version}`, kind: r.kind, ...item });
          }
        }
        const masked = tally.mask(
          objects.length === 1 && c.targets.length === 1 ? objects[0] : { apiVersion: 'v1', kind: 'List', items: objects, metadata: { resourceVersion: '' } },
        );
        const format =
          c.output.kind === 'jsonpath'
            ? c.output
            : c.output.kind === 'yaml' || c.output.kind === 'json' || c.output.kind === 'name'
              ? { kind: c.output.kind }
              : { kind: 'yaml' as const };
        const text = format.kind === 'jsonpath' ? evaluateJsonPath(format.template, masked) : renderObjects(masked, format, { resourceKey: display(first) });
        return doc('output', text);
      }
      case 'describe': {
        if (!first) throw new DrawbridgeError('input.invalid', 'describe needs a resource type.');
        const objects: KubeObject[] = [];
        if (c.targets.length > 0) for (const t of c.targets) objects.push((await this.call('GET', resourcePath(first, ns, t.name), context)) as KubeObject);
        else
          objects.push(
            ...(
              (
                (await this.call('GET', resourcePath(first, c.allNamespaces ? null : ns), context, {
                  query: { labelSelector: c.labelSelector ?? undefined },
                })) as { items?: KubeObject[] }
              ).items ?? []
            ).map((o) => ({ kind: first.kind, ...o })),
          );
        const texts: string[] = [];
        for (const o of objects) {
          const events =
            (
              (await this.call(
                'GET',
                '/api/v1' + (o.metadata?.namespace ? `/namespaces/${encodeURIComponent(o.metadata.namespace)}` : '') + '/events',
                context,
                { query: { fieldSelector: `involvedObject.name=${o.metadata?.name ?? ''}` } },
              ).catch(() => ({ items: [] }))) as { items?: KubeObject[] }
            ).items ?? [];
          texts.push(describeObject(tally.mask({ kind: first.kind, ...o }) as KubeObject, tally.mask(events) as KubeObject[], now));
        }
        return doc('output', texts.join('\n\n'));
      }
      case 'logs': {
        const target = c.targets[0];
        if (!target) throw new DrawbridgeError('input.invalid', 'logs needs a pod name.');
        const tail = typeof c.options['tail'] === 'number' ? Math.min(c.options['tail'], this.maxLogLines) : this.maxLogLines;
        const text = (await this.call('GET', `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(target.name)}/log`, context, {
          accept: 'text/plain',
          query: {
            tailLines: tail,
            container: typeof c.options['container'] === 'string' ? c.options['container'] : undefined,
            sinceSeconds: typeof c.options['sinceSeconds'] === 'number' ? c.options['sinceSeconds'] : undefined,
            previous: c.options['previous'] === true ? true : undefined,
            timestamps: c.options['timestamps'] === true ? true : undefined,
          },
        })) as string;
        return doc('log', text);
      }
      case 'events': {
        const table = await this.call('GET', `/api/v1${c.allNamespaces ? '' : `/namespaces/${encodeURIComponent(ns)}`}/events`, context, {
          accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json',
          query: {
            includeObject: 'Metadata',
            fieldSelector: typeof c.options['forName'] === 'string' ? `involvedObject.name=${c.options['forName']}` : (c.fieldSelector ?? undefined),
          },
        });
        const rendered = renderTable(tally.mask(table) as Parameters<typeof renderTable>[0], { wide: false, namespaceColumn: c.allNamespaces, now });
        return {
          columns: rendered.columns.map((col) => ({ ...col, sources: [] })),
          rows: rendered.rows,
          command: 'GET',
          affectedRows: null,
          truncated: null,
          notices: [],
          bytes: JSON.stringify(rendered.rows).length,
        };
      }
      case 'api-resources': {
        const { discovery } = this.api();
        const all = await discovery.resources();
        const group = typeof c.options['apiGroup'] === 'string' ? c.options['apiGroup'] : null;
        const namespaced = typeof c.options['namespaced'] === 'boolean' ? c.options['namespaced'] : null;
        const rows = all
          .filter((r) => (group === null || r.group === group) && (namespaced === null || r.namespaced === namespaced))
          .map((r): Cell[] => [r.resource, r.shortNames.join(','), r.group === '' ? r.version : `${r.group}/${r.version}`, r.namespaced, r.kind]);
        return {
          columns: ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND'].map((n) => ({
            name: n,
            type: n === 'NAMESPACED' ? 'bool' : 'text',
            sources: [],
          })),
          rows,
          command: 'GET',
          affectedRows: null,
          truncated: null,
          notices: [],
          bytes: JSON.stringify(rows).length,
        };
      }
      case 'explain': {
        if (!first) throw new DrawbridgeError('input.invalid', 'explain needs a resource type.');
        return doc(
          'output',
          `KIND:       ${first.kind}\nVERSION:    ${first.group === '' ? first.version : `${first.group}/${first.version}`}\nRESOURCE:   ${first.resource}\nNAMESPACED: ${first.namespaced}\nSHORTNAMES: ${first.shortNames.join(', ') || '(none)'}\nVERBS:      ${first.verbs.join(', ')}\n\n(Field documentation comes from the server's OpenAPI schema, which this gateway does not relay.)`,
        );
      }
      case 'top':
        throw new DrawbridgeError('backend.error', 'top needs the metrics API (metrics.k8s.io), which this gateway does not relay.', {
          hint: 'Use `get pods -o wide` or `describe` instead.',
        });
      case 'delete': {
        if (!first) throw new DrawbridgeError('input.invalid', 'delete needs a resource type.');
        const query = {
          ...dry,
          gracePeriodSeconds: typeof c.options['gracePeriod'] === 'number' ? c.options['gracePeriod'] : undefined,
          propagationPolicy:
            typeof c.options['cascade'] === 'string'
              ? ({ background: 'Background', foreground: 'Foreground', orphan: 'Orphan' } as Record<string, string>)[c.options['cascade']]
              : undefined,
        };
        const names: string[] = c.targets.map((t) => t.name);
        if (names.length === 0) {
          if (!c.labelSelector && c.options['all'] !== true) throw new DrawbridgeError('input.invalid', 'delete needs names, -l SELECTOR or --all.');
          const list = (await this.call('GET', resourcePath(first, ns), context, { query: { labelSelector: c.labelSelector ?? undefined } })) as {
            items?: KubeObject[];
          };
          names.push(...(list.items ?? []).map((o) => String(o.metadata?.name)));
        }
        const out: string[] = [];
        for (const name of names) {
          await this.call('DELETE', resourcePath(first, ns, name), context, { query });
          out.push(`${display(first)} "${name}" deleted${suffix}`);
        }
        return lines(out);
      }
      case 'apply':
      case 'create': {
        const out: string[] = [];
        for (const [i, obj] of manifest.entries()) {
          const r = resolved[i];
          if (!r) throw new TypeError('manifest objects and resolved resources must align');
          const objNs = r.namespaced ? (obj.metadata?.namespace ?? ns) : null;
          const body = { ...obj, metadata: { ...obj.metadata, ...(objNs ? { namespace: objNs } : {}) } };
          if (c.verb === 'create') {
            await this.call('POST', resourcePath(r, objNs), context, { body, query: { ...dry, fieldManager: 'drawbridge' } });
            out.push(`${display(r)}/${String(obj.metadata?.name)} created${suffix}`);
          } else {
            await this.call('PATCH', resourcePath(r, objNs, String(obj.metadata?.name)), context, {
              body,
              contentType: 'application/apply-patch+yaml',
              query: { ...dry, fieldManager: 'drawbridge', force: true },
            });
            out.push(`${display(r)}/${String(obj.metadata?.name)} serverside-applied${suffix}`);
          }
        }
        return lines(out);
      }
      case 'patch': {
        if (!first) throw new DrawbridgeError('input.invalid', 'patch needs a resource type.');
        const type =
          c.options['patchType'] === 'merge'
            ? 'application/merge-patch+json'
            : c.options['patchType'] === 'json'
              ? 'application/json-patch+json'
              : 'application/strategic-merge-patch+json';
        const out: string[] = [];
        for (const t of c.targets) {
          await this.call('PATCH', resourcePath(first, ns, t.name), context, {
            body: String(c.options['patch'] ?? '{}'),
            contentType: type,
            query: { ...dry, fieldManager: 'drawbridge' },
          });
          out.push(`${display(first)}/${t.name} patched${suffix}`);
        }
        return lines(out);
      }
      case 'scale': {
        if (!first) throw new DrawbridgeError('input.invalid', 'scale needs a resource type.');
        const replicas = Number(c.options['replicas']);
        const out: string[] = [];
        for (const t of c.targets) {
          if (typeof c.options['currentReplicas'] === 'number') {
            const scale = (await this.call('GET', resourcePath(first, ns, t.name, 'scale'), context)) as { spec?: { replicas?: number } };
            if (scale.spec?.replicas !== c.options['currentReplicas'])
              throw new DrawbridgeError(
                'backend.error',
                `Expected ${t.name} to have ${c.options['currentReplicas']} replicas, it has ${scale.spec?.replicas ?? 0}; nothing changed.`,
              );
          }
          await this.call('PATCH', resourcePath(first, ns, t.name, 'scale'), context, {
            body: { spec: { replicas } },
            contentType: 'application/merge-patch+json',
            query: { ...dry },
          });
          out.push(`${display(first)}/${t.name} scaled to ${replicas}${suffix}`);
        }
        return lines(out);
      }
      case 'label':
      case 'annotate': {
        if (!first) throw new DrawbridgeError('input.invalid', `${c.verb} needs a resource type.`);
        const field = c.verb === 'label' ? 'labels' : 'annotations';
        const changes = (c.options['changes'] as readonly string[] | undefined) ?? [];
        const names = c.targets.map((t) => t.name);
        if (names.length === 0) {
          const list = (await this.call('GET', resourcePath(first, ns), context, { query: { labelSelector: c.labelSelector ?? undefined } })) as {
            items?: KubeObject[];
          };
          names.push(...(list.items ?? []).map((o) => String(o.metadata?.name)));
        }
        const out: string[] = [];
        for (const name of names) {
          const current = (await this.call('GET', resourcePath(first, ns, name), context)) as KubeObject;
          const existing = (current.metadata?.[field] ?? {}) as Record<string, string>;
          const patch: Record<string, string | null> = {};
          for (const change of changes) {
            if (change.endsWith('-') && !change.includes('=')) patch[change.slice(0, -1)] = null;
            else {
              const [key, ...rest] = change.split('=');
              if (key === undefined) continue;
              if (existing[key] !== undefined && c.options['overwrite'] !== true)
                throw new DrawbridgeError(
                  'backend.error',
                  `${name} already has ${field.slice(0, -1)} "${key}"; pass --overwrite to change it. Nothing changed.`,
                );
              patch[key] = rest.join('=');
            }
          }
          await this.call('PATCH', resourcePath(first, ns, name), context, {
            body: { metadata: { [field]: patch } },
            contentType: 'application/merge-patch+json',
            query: { ...dry },
          });
          out.push(`${display(first)}/${name} ${c.verb === 'label' ? 'labeled' : 'annotated'}${suffix}`);
        }
        return lines(out);
      }
      case 'cordon':
      case 'uncordon': {
        const nodes = resolved[0];
        if (!nodes) throw new TypeError('nodes must be resolved');
        const out: string[] = [];
        for (const t of c.targets) {
          await this.call('PATCH', resourcePath(nodes, null, t.name), context, {
            body: { spec: { unschedulable: c.verb === 'cordon' } },
            contentType: 'application/merge-patch+json',
            query: { ...dry },
          });
          out.push(`node/${t.name} ${c.verb}ed${suffix}`);
        }
        return lines(out);
      }
      case 'rollout restart': {
        if (!first) throw new DrawbridgeError('input.invalid', 'rollout restart needs a resource.');
        const out: string[] = [];
        for (const t of c.targets) {
          await this.call('PATCH', resourcePath(first, ns, t.name), context, {
            body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': now.toISOString() } } } } },
            contentType: 'application/strategic-merge-patch+json',
            query: { ...dry, fieldManager: 'drawbridge' },
          });
          out.push(`${display(first)}/${t.name} restarted${suffix}`);
        }
        return lines(out);
      }
      case 'rollout status': {
        if (!first) throw new DrawbridgeError('input.invalid', 'rollout status needs a resource.');
        const out: string[] = [];
        for (const t of c.targets) {
          const o = (await this.call('GET', resourcePath(first, ns, t.name), context)) as {
            spec?: { replicas?: number };
            status?: { updatedReplicas?: number; availableReplicas?: number; replicas?: number };
          };
          const want = o.spec?.replicas ?? 1;
          const updated = o.status?.updatedReplicas ?? 0;
          const available = o.status?.availableReplicas ?? 0;
          out.push(
            updated >= want && available >= want
              ? `${display(first)} "${t.name}" successfully rolled out`
              : `Waiting for ${display(first)} "${t.name}" rollout to finish: ${updated} of ${want} updated replicas are available (${available} available)...`,
          );
        }
        return lines(out);
      }
      case 'rollout history':
      case 'rollout undo': {
        if (!first) throw new DrawbridgeError('input.invalid', `${c.verb} needs a resource.`);
        const target = c.targets[0];
        if (!target) throw new DrawbridgeError('input.invalid', `${c.verb} needs a name.`);
        const deployment = (await this.call('GET', resourcePath(first, ns, target.name), context)) as KubeObject & { spec?: { template?: KubeObject } };
        const uid = (deployment.metadata as { uid?: string } | undefined)?.uid;
        const rsResource = {
          group: 'apps',
          version: 'v1',
          resource: 'replicasets',
          kind: 'ReplicaSet',
          namespaced: true,
          verbs: [],
          shortNames: [],
          singular: 'replicaset',
        };
        const list = (await this.call('GET', resourcePath(rsResource, ns), context)) as { items?: Array<KubeObject & { spec?: { template?: KubeObject } }> };
        const owned = (list.items ?? [])
          .filter((rs) => ((rs.metadata as { ownerReferences?: Array<{ uid?: string }> } | undefined)?.ownerReferences ?? []).some((ref) => ref.uid === uid))
          .map((rs) => ({ rs, revision: Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0) }))
          .sort((a, b) => a.revision - b.revision);
        if (c.verb === 'rollout history') {
          const rows = owned.map((o): Cell[] => [o.revision, o.rs.metadata?.annotations?.['kubernetes.io/change-cause'] ?? '<none>']);
          return {
            columns: [
              { name: 'REVISION', type: 'int4', sources: [] },
              { name: 'CHANGE-CAUSE', type: 'text', sources: [] },
            ],
            rows,
            command: 'GET',
            affectedRows: null,
            truncated: null,
            notices: [],
            bytes: JSON.stringify(rows).length,
          };
        }
        const current = owned[owned.length - 1]?.revision ?? 0;
        const wanted =
          typeof c.options['toRevision'] === 'number' && c.options['toRevision'] > 0
            ? c.options['toRevision']
            : owned.filter((o) => o.revision < current).pop()?.revision;
        const to = owned.find((o) => o.revision === wanted);
        if (!to?.rs.spec?.template)
          throw new DrawbridgeError('backend.error', `No revision ${wanted ?? '(previous)'} to roll back to for ${target.name}; nothing changed.`);
        const template = JSON.parse(JSON.stringify(to.rs.spec.template)) as KubeObject;
        if (template.metadata?.labels) delete template.metadata.labels['pod-template-hash'];
        await this.call('PATCH', resourcePath(first, ns, target.name), context, {
          body: { spec: { template } },
          contentType: 'application/merge-patch+json',
          query: { ...dry },
        });
        return lines([`${display(first)}/${target.name} rolled back to revision ${to.revision}${suffix}`]);
      }
      case 'exec': {
        if (dryRun) return lines([`exec has no dry run: it would run ${JSON.stringify(c.options['command'])} in pod ${c.targets[0]?.name ?? ''}`]);
        const target = c.targets[0];
        if (!target) throw new DrawbridgeError('input.invalid', 'exec needs a pod name.');
        const { client } = this.api();
        const result = await client.exec(
          {
            namespace: ns,
            pod: target.name,
            container: typeof c.options['container'] === 'string' ? c.options['container'] : null,
            command: (c.options['command'] as readonly string[]) ?? [],
          },
          { impersonate: this.impersonation(context), timeoutMs: Math.min(this.execTimeoutMs, context.timeLimitMs ?? Infinity), maxBytes: this.maxBytes },
        );
        if (result.timedOut)
          throw new DrawbridgeError(
            'backend.timeout',
            `exec was stopped after ${formatDuration(Math.min(this.execTimeoutMs, context.timeLimitMs ?? Infinity))}.`,
          );
        const row: Cell[] = [result.exitCode, result.stdout, result.stderr];
        return {
          columns: [
            { name: 'exit_code', type: 'int4', sources: [] },
            { name: 'stdout', type: 'document', sources: [] },
            { name: 'stderr', type: 'document', sources: [] },
          ],
          rows: [row],
          command: 'EXEC',
          affectedRows: null,
          truncated: result.truncated ? { reason: 'bytes', limit: this.maxBytes } : null,
          notices: result.message ? [result.message] : [],
          bytes: result.stdout.length + result.stderr.length,
        };
      }
    }
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
      summary: `Kubernetes ${cluster.version ?? '(version unknown)'} at ${client.address}${this.declaration.context ? ` (context ${this.declaration.context})` : ''}, ${who}${this.declaration.impersonate ? '; calls impersonate the caller' : ''}`,
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
  toolDescription:
    'Run a kubectl command against a Kubernetes cluster through the Drawbridge gateway (get, describe, logs, events, api-resources, explain; delete, apply, create, patch, scale, rollout, label, annotate, cordon, uncordon; exec). Policy decides by who you are; Secret values are always masked; every call is journaled.',
  describeConnection(c) {
    return `${c.description} (Kubernetes; default namespace ${c.namespace}${c.impersonate ? '; your identity is impersonated, so cluster RBAC applies too' : ''})`;
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
