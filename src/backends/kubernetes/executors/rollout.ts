// Runs the rollout verbs through the Kubernetes API: status reads the
// workload's replica counts, restart patches the pod template's restartedAt
// annotation, history lists the ReplicaSets the workload owns (their revision
// annotations), undo patches the template back to an earlier ReplicaSet's.

import type { Cell, TabularResult } from '../../backend.js';
import { DrawbridgeError } from '../../../errors.js';
import { resourcePath } from '../discovery.js';
import type {
  ApiResource,
  KubeObject,
  RolloutCommand,
  RolloutHistoryCommand,
  RolloutRestartCommand,
  RolloutStatusCommand,
  RolloutUndoCommand,
} from '../types.js';
import { display, dryRunQuery, dryRunSuffix, firstResource, lines, table, type Execution } from './context.js';

export async function runRollout(c: RolloutCommand, x: Execution): Promise<TabularResult> {
  switch (c.verb) {
    case 'rollout restart':
      return restart(c, x);
    case 'rollout status':
      return status(c, x);
    case 'rollout history':
    case 'rollout undo':
      return revisions(c, x);
  }
}

async function restart(c: RolloutRestartCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'rollout restart needs a resource.');
  const out: string[] = [];
  for (const t of c.targets) {
    await x.api.call('PATCH', resourcePath(first, x.namespace, t.name), {
      body: { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': x.now.toISOString() } } } } },
      contentType: 'application/strategic-merge-patch+json',
      query: { ...dryRunQuery(x), fieldManager: 'drawbridge' },
    });
    out.push(`${display(first)}/${t.name} restarted${dryRunSuffix(x)}`);
  }
  return lines(out);
}

async function status(c: RolloutStatusCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, 'rollout status needs a resource.');
  const out: string[] = [];
  for (const t of c.targets) {
    const o = (await x.api.call('GET', resourcePath(first, x.namespace, t.name))) as {
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

const REPLICA_SETS: ApiResource = {
  group: 'apps',
  version: 'v1',
  resource: 'replicasets',
  kind: 'ReplicaSet',
  namespaced: true,
  verbs: [],
  shortNames: [],
  singular: 'replicaset',
};

type Owned = { readonly rs: KubeObject & { spec?: { template?: KubeObject } }; readonly revision: number };

/** The ReplicaSets a workload owns, oldest revision first. */
async function ownedRevisions(workload: KubeObject, x: Execution): Promise<Owned[]> {
  const uid = (workload.metadata as { uid?: string } | undefined)?.uid;
  const list = (await x.api.call('GET', resourcePath(REPLICA_SETS, x.namespace))) as { items?: Array<KubeObject & { spec?: { template?: KubeObject } }> };
  return (list.items ?? [])
    .filter((rs) => ((rs.metadata as { ownerReferences?: Array<{ uid?: string }> } | undefined)?.ownerReferences ?? []).some((ref) => ref.uid === uid))
    .map((rs) => ({ rs, revision: Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0) }))
    .sort((a, b) => a.revision - b.revision);
}

async function revisions(c: RolloutHistoryCommand | RolloutUndoCommand, x: Execution): Promise<TabularResult> {
  const first = firstResource(x, `${c.verb} needs a resource.`);
  const target = c.targets[0];
  if (!target) throw new DrawbridgeError('input.invalid', `${c.verb} needs a name.`);
  const workload = (await x.api.call('GET', resourcePath(first, x.namespace, target.name))) as KubeObject;
  const owned = await ownedRevisions(workload, x);
  if (c.verb === 'rollout history') {
    const rows = owned.map((o): Cell[] => [o.revision, o.rs.metadata?.annotations?.['kubernetes.io/change-cause'] ?? '<none>']);
    return table(
      [
        { name: 'REVISION', type: 'int4', sources: [] },
        { name: 'CHANGE-CAUSE', type: 'text', sources: [] },
      ],
      rows,
    );
  }
  return undo(c, first, target.name, owned, x);
}

async function undo(c: RolloutUndoCommand, first: ApiResource, name: string, owned: readonly Owned[], x: Execution): Promise<TabularResult> {
  const current = owned[owned.length - 1]?.revision ?? 0;
  const toRevision = c.options.toRevision;
  const wanted = toRevision !== null && toRevision > 0 ? toRevision : owned.filter((o) => o.revision < current).pop()?.revision;
  const to = owned.find((o) => o.revision === wanted);
  if (!to?.rs.spec?.template) throw new DrawbridgeError('backend.error', `No revision ${wanted ?? '(previous)'} to roll back to for ${name}; nothing changed.`);
  const template = JSON.parse(JSON.stringify(to.rs.spec.template)) as KubeObject;
  if (template.metadata?.labels) delete template.metadata.labels['pod-template-hash'];
  await x.api.call('PATCH', resourcePath(first, x.namespace, name), {
    body: { spec: { template } },
    contentType: 'application/merge-patch+json',
    query: { ...dryRunQuery(x) },
  });
  return lines([`${display(first)}/${name} rolled back to revision ${to.revision}${dryRunSuffix(x)}`]);
}
