// Runs the write verbs (delete, apply, create, patch, scale, label, annotate,
// cordon, uncordon) through the Kubernetes API, one request per object so a
// failure part-way says what was already applied (the connection records each
// accepted write). A dry run (preview or --dry-run=server) sends dryRun=All.

import type { TabularResult } from '../../backend.js';
import { DrawbridgeError } from '../../../errors.js';
import { resourcePath } from '../discovery.js';
import type { ApiResource, Cascade, CordonCommand, DeleteCommand, KubeObject, MetadataCommand, PatchCommand, ScaleCommand, WriteCommand } from '../types.js';
import { display, dryRunQuery, dryRunSuffix, firstResource, lines, type Execution } from './context.js';

export async function runWrite(c: WriteCommand, x: Execution): Promise<TabularResult> {
  switch (c.verb) {
    case 'delete':
      return del(c, x);
    case 'apply':
    case 'create':
      return applyManifest(c.verb, x);
    case 'patch':
      return patch(c, x);
    case 'scale':
      return scale(c, x);
    case 'label':
    case 'annotate':
      return metadata(c, x);
    case 'cordon':
    case 'uncordon':
      return cordon(c, x);
  }
}

const PROPAGATION: Readonly<Record<Cascade, string>> = { background: 'Background', foreground: 'Foreground', orphan: 'Orphan' };

/** The names a command addresses: the ones it wrote, or what its selector (or --all) finds now. */
async function namesOf(c: DeleteCommand | MetadataCommand, r: ApiResource, x: Execution): Promise<string[]> {
  const names = c.targets.map((t) => t.name);
  if (names.length > 0) return names;
  // Both selectors, always: a selector dropped here would act on more objects than the caller named.
  const query = { labelSelector: c.labelSelector ?? undefined, fieldSelector: c.fieldSelector ?? undefined };
  const list = (await x.api.call('GET', resourcePath(r, x.namespace), { query })) as { items?: KubeObject[] };
  return (list.items ?? []).map((o) => String(o.metadata?.name));
}

async function del(c: DeleteCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'delete needs a resource type.');
  const query = { ...dryRunQuery(x), gracePeriodSeconds: c.options.gracePeriod ?? undefined, propagationPolicy: PROPAGATION[c.options.cascade] };
  if (c.targets.length === 0 && !c.labelSelector && !c.fieldSelector && !c.options.all) {
    throw new DrawbridgeError('input.invalid', 'delete needs names, -l SELECTOR, --field-selector or --all.');
  }
  const out: string[] = [];
  for (const name of await namesOf(c, first, x)) {
    await x.api.call('DELETE', resourcePath(first, x.namespace, name), { query });
    out.push(`${display(first)} "${name}" deleted${dryRunSuffix(x)}`);
  }
  return lines(out);
}

/** apply (server-side apply, forced, as field manager drawbridge) or create, one manifest object at a time. */
async function applyManifest(verb: 'apply' | 'create', x: Execution): Promise<TabularResult> {
  const out: string[] = [];
  for (const [i, obj] of x.manifest.entries()) {
    const r = x.resolved[i];
    if (!r) throw new TypeError('manifest objects and resolved resources must align');
    const objNs = r.namespaced ? (obj.metadata?.namespace ?? x.namespace) : null;
    const body = { ...obj, metadata: { ...obj.metadata, ...(objNs ? { namespace: objNs } : {}) } };
    const name = String(obj.metadata?.name);
    if (verb === 'create') {
      await x.api.call('POST', resourcePath(r, objNs), { body, query: { ...dryRunQuery(x), fieldManager: 'drawbridge' } });
      out.push(`${display(r)}/${name} created${dryRunSuffix(x)}`);
    } else {
      await x.api.call('PATCH', resourcePath(r, objNs, name), {
        body,
        contentType: 'application/apply-patch+yaml',
        query: { ...dryRunQuery(x), fieldManager: 'drawbridge', force: true },
      });
      out.push(`${display(r)}/${name} serverside-applied${dryRunSuffix(x)}`);
    }
  }
  return lines(out);
}

const PATCH_CONTENT_TYPES = {
  strategic: 'application/strategic-merge-patch+json',
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
} as const;

async function patch(c: PatchCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'patch needs a resource type.');
  const out: string[] = [];
  for (const t of c.targets) {
    await x.api.call('PATCH', resourcePath(first, x.namespace, t.name), {
      body: c.options.patch,
      contentType: PATCH_CONTENT_TYPES[c.options.patchType],
      query: { ...dryRunQuery(x), fieldManager: 'drawbridge' },
    });
    out.push(`${display(first)}/${t.name} patched${dryRunSuffix(x)}`);
  }
  return lines(out);
}

async function scale(c: ScaleCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'scale needs a resource type.');
  const { replicas, currentReplicas } = c.options;
  const out: string[] = [];
  for (const t of c.targets) {
    if (currentReplicas !== null) {
      const current = (await x.api.call('GET', resourcePath(first, x.namespace, t.name, 'scale'))) as { spec?: { replicas?: number } };
      if (current.spec?.replicas !== currentReplicas)
        throw new DrawbridgeError(
          'backend.error',
          `Expected ${t.name} to have ${currentReplicas} replicas, it has ${current.spec?.replicas ?? 0}; nothing changed.`,
        );
    }
    await x.api.call('PATCH', resourcePath(first, x.namespace, t.name, 'scale'), {
      body: { spec: { replicas } },
      contentType: 'application/merge-patch+json',
      query: { ...dryRunQuery(x) },
    });
    out.push(`${display(first)}/${t.name} scaled to ${replicas}${dryRunSuffix(x)}`);
  }
  return lines(out);
}

/** The merge patch of label/annotate changes on one object: key=value sets (refused over an existing key without --overwrite), key- removes. */
function metadataPatch(c: MetadataCommand, name: string, existing: Readonly<Record<string, string>>, field: string): Record<string, string | null> {
  const patch: Record<string, string | null> = {};
  for (const change of c.options.changes) {
    if (change.endsWith('-') && !change.includes('=')) patch[change.slice(0, -1)] = null;
    else {
      const [key, ...rest] = change.split('=');
      if (key === undefined) continue;
      if (existing[key] !== undefined && !c.options.overwrite)
        throw new DrawbridgeError('backend.error', `${name} already has ${field.slice(0, -1)} "${key}"; pass --overwrite to change it. Nothing changed.`);
      patch[key] = rest.join('=');
    }
  }
  return patch;
}

async function metadata(c: MetadataCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, `${c.verb} needs a resource type.`);
  const field = c.verb === 'label' ? 'labels' : 'annotations';
  const out: string[] = [];
  for (const name of await namesOf(c, first, x)) {
    const current = (await x.api.call('GET', resourcePath(first, x.namespace, name))) as KubeObject;
    const existing = (current.metadata?.[field] ?? {}) as Record<string, string>;
    await x.api.call('PATCH', resourcePath(first, x.namespace, name), {
      body: { metadata: { [field]: metadataPatch(c, name, existing, field) } },
      contentType: 'application/merge-patch+json',
      query: { ...dryRunQuery(x) },
    });
    out.push(`${display(first)}/${name} ${c.verb === 'label' ? 'labeled' : 'annotated'}${dryRunSuffix(x)}`);
  }
  return lines(out);
}

async function cordon(c: CordonCommand, x: Execution): Promise<TabularResult> {
  const nodes = x.resolved[0];
  if (!nodes) throw new TypeError('nodes must be resolved');
  const out: string[] = [];
  for (const t of c.targets) {
    await x.api.call('PATCH', resourcePath(nodes, null, t.name), {
      body: { spec: { unschedulable: c.verb === 'cordon' } },
      contentType: 'application/merge-patch+json',
      query: { ...dryRunQuery(x) },
    });
    out.push(`node/${t.name} ${c.verb}ed${dryRunSuffix(x)}`);
  }
  return lines(out);
}
