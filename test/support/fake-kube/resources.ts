// The fake API server's resource catalogue and the discovery documents built from it
// (/api, /api/v1, /apis, /apis/{group}, /apis/{group}/{version}), shaped like a real 1.30 server.

import { createHash } from 'node:crypto';

export interface SubresourceDef {
  readonly name: string;
  readonly kind: string;
  readonly verbs: readonly string[];
  /** Set when the subresource is served in another group/version (e.g. scale → autoscaling/v1). */
  readonly group?: string;
  readonly version?: string;
}

export interface ResourceDef {
  /** "" for the core group. */
  readonly group: string;
  readonly version: string;
  /** Plural resource name. */
  readonly resource: string;
  readonly kind: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly verbs: readonly string[];
  readonly categories: readonly string[];
  readonly subresources: readonly SubresourceDef[];
  /** False for custom resources (served from a CRD). */
  readonly builtin: boolean;
  /** Field-selector labels accepted besides metadata.name and metadata.namespace. */
  readonly fieldLabels: readonly string[];
}

const ALL = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] as const;
const STATUS: SubresourceDef = { name: 'status', kind: '', verbs: ['get', 'patch', 'update'] };
const SCALE: SubresourceDef = { name: 'scale', kind: 'Scale', verbs: ['get', 'patch', 'update'], group: 'autoscaling', version: 'v1' };

function def(
  group: string,
  resource: string,
  kind: string,
  opts: {
    namespaced?: boolean;
    shortNames?: string[];
    verbs?: readonly string[];
    categories?: string[];
    subresources?: SubresourceDef[];
    builtin?: boolean;
    fieldLabels?: string[];
    version?: string;
  } = {},
): ResourceDef {
  return {
    group,
    version: opts.version ?? 'v1',
    resource,
    kind,
    singular: kind.toLowerCase(),
    namespaced: opts.namespaced ?? true,
    shortNames: opts.shortNames ?? [],
    verbs: opts.verbs ?? ALL,
    categories: opts.categories ?? [],
    subresources: (opts.subresources ?? []).map((s) => (s.kind === '' ? { ...s, kind } : s)),
    builtin: opts.builtin ?? true,
    fieldLabels: opts.fieldLabels ?? [],
  };
}

export const RESOURCES: readonly ResourceDef[] = [
  // core/v1
  def('', 'pods', 'Pod', {
    shortNames: ['po'],
    categories: ['all'],
    subresources: [
      { name: 'attach', kind: 'PodAttachOptions', verbs: ['create', 'get'] },
      { name: 'binding', kind: 'Binding', verbs: ['create'] },
      { name: 'eviction', kind: 'Eviction', verbs: ['create'], group: 'policy', version: 'v1' },
      { name: 'exec', kind: 'PodExecOptions', verbs: ['create', 'get'] },
      { name: 'log', kind: 'Pod', verbs: ['get'] },
      { name: 'portforward', kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
      STATUS,
    ],
    fieldLabels: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  }),
  def('', 'services', 'Service', { shortNames: ['svc'], categories: ['all'], subresources: [STATUS], fieldLabels: ['spec.clusterIP', 'spec.type'] }),
  def('', 'configmaps', 'ConfigMap', { shortNames: ['cm'] }),
  def('', 'secrets', 'Secret', { fieldLabels: ['type'] }),
  def('', 'namespaces', 'Namespace', {
    namespaced: false,
    shortNames: ['ns'],
    verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
    subresources: [{ name: 'finalize', kind: 'Namespace', verbs: ['update'] }, STATUS],
    fieldLabels: ['status.phase'],
  }),
  def('', 'nodes', 'Node', { namespaced: false, shortNames: ['no'], subresources: [STATUS], fieldLabels: ['spec.unschedulable'] }),
  def('', 'events', 'Event', {
    shortNames: ['ev'],
    fieldLabels: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  }),
  def('', 'serviceaccounts', 'ServiceAccount', {
    shortNames: ['sa'],
    subresources: [{ name: 'token', kind: 'TokenRequest', verbs: ['create'], group: 'authentication.k8s.io', version: 'v1' }],
  }),
  def('', 'persistentvolumeclaims', 'PersistentVolumeClaim', { shortNames: ['pvc'], subresources: [STATUS] }),
  // apps/v1
  def('apps', 'deployments', 'Deployment', { shortNames: ['deploy'], categories: ['all'], subresources: [SCALE, STATUS] }),
  def('apps', 'replicasets', 'ReplicaSet', { shortNames: ['rs'], categories: ['all'], subresources: [SCALE, STATUS], fieldLabels: ['status.replicas'] }),
  def('apps', 'statefulsets', 'StatefulSet', { shortNames: ['sts'], categories: ['all'], subresources: [SCALE, STATUS] }),
  def('apps', 'daemonsets', 'DaemonSet', { shortNames: ['ds'], categories: ['all'], subresources: [STATUS] }),
  // authentication.k8s.io/v1: who am I (create only; answered from the caller's credentials, never stored)
  def('authentication.k8s.io', 'selfsubjectreviews', 'SelfSubjectReview', { namespaced: false, verbs: ['create'] }),
  // batch/v1
  def('batch', 'jobs', 'Job', { categories: ['all'], subresources: [STATUS], fieldLabels: ['status.successful'] }),
  def('batch', 'cronjobs', 'CronJob', { shortNames: ['cj'], categories: ['all'], subresources: [STATUS] }),
  // rbac.authorization.k8s.io/v1
  def('rbac.authorization.k8s.io', 'roles', 'Role'),
  def('rbac.authorization.k8s.io', 'rolebindings', 'RoleBinding'),
  def('rbac.authorization.k8s.io', 'clusterroles', 'ClusterRole', { namespaced: false }),
  def('rbac.authorization.k8s.io', 'clusterrolebindings', 'ClusterRoleBinding', { namespaced: false }),
  // apiextensions.k8s.io/v1
  def('apiextensions.k8s.io', 'customresourcedefinitions', 'CustomResourceDefinition', {
    namespaced: false,
    shortNames: ['crd', 'crds'],
    categories: ['api-extensions'],
    subresources: [STATUS],
  }),
  // example.com/v1 (a CRD)
  def('example.com', 'widgets', 'Widget', { shortNames: ['wd'], subresources: [STATUS], builtin: false }),
];

export const CORE_VERSION = 'v1';

export interface GroupDef {
  readonly name: string;
  readonly version: string;
}

/** Non-core groups in the order /apis lists them. */
export const GROUPS: readonly GroupDef[] = [
  { name: 'apps', version: 'v1' },
  { name: 'authentication.k8s.io', version: 'v1' },
  { name: 'batch', version: 'v1' },
  { name: 'rbac.authorization.k8s.io', version: 'v1' },
  { name: 'apiextensions.k8s.io', version: 'v1' },
  { name: 'example.com', version: 'v1' },
];

export function apiVersionOf(d: Pick<ResourceDef, 'group' | 'version'>): string {
  return d.group === '' ? d.version : `${d.group}/${d.version}`;
}

/** `pods`, `deployments.apps`: how the API server names a resource in messages. */
export function qualifiedResource(d: Pick<ResourceDef, 'group' | 'resource'>): string {
  return d.group === '' ? d.resource : `${d.resource}.${d.group}`;
}

/** `Pod`, `Deployment.apps`: how validation messages name a kind. */
export function qualifiedKind(d: Pick<ResourceDef, 'group' | 'kind'>): string {
  return d.group === '' ? d.kind : `${d.kind}.${d.group}`;
}

export function findResource(group: string, version: string, resource: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export function findResourceByKind(apiVersion: string, kind: string): ResourceDef | undefined {
  return RESOURCES.find((r) => apiVersionOf(r) === apiVersion && r.kind === kind);
}

export function groupVersionServed(group: string, version: string): boolean {
  if (group === '') return version === CORE_VERSION;
  return GROUPS.some((g) => g.name === group && g.version === version);
}

function storageVersionHash(d: ResourceDef): string {
  return createHash('sha256').update(`${d.group}/${d.version}/${d.resource}`).digest('base64').slice(0, 11) + '=';
}

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: 'APIVersions',
    versions: [CORE_VERSION],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(g: GroupDef): unknown {
  const gv = { groupVersion: `${g.name}/${g.version}`, version: g.version };
  return { name: g.name, versions: [gv], preferredVersion: gv };
}

export function apiGroupList(): unknown {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: GROUPS.map(groupEntry) };
}

export function apiGroup(name: string): unknown {
  const g = GROUPS.find((x) => x.name === name);
  if (!g) return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...(groupEntry(g) as object) };
}

export function apiResourceList(group: string, version: string): unknown {
  const resources: unknown[] = [];
  for (const r of RESOURCES.filter((x) => x.group === group && x.version === version)) {
    resources.push({
      name: r.resource,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: [...r.verbs],
      ...(r.shortNames.length ? { shortNames: [...r.shortNames] } : {}),
      ...(r.categories.length ? { categories: [...r.categories] } : {}),
      storageVersionHash: storageVersionHash(r),
    });
    for (const s of r.subresources) {
      resources.push({
        name: `${r.resource}/${s.name}`,
        singularName: '',
        namespaced: r.namespaced,
        ...(s.group !== undefined ? { group: s.group, version: s.version } : {}),
        kind: s.kind,
        verbs: [...s.verbs],
      });
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources,
  };
}

export const VERSION_INFO = {
  major: '1',
  minor: '30',
  gitVersion: 'v1.30.2',
  gitCommit: '39683505b630ff2121012f3c5b16215a1449d5ed',
  gitTreeState: 'clean',
  buildDate: '2024-06-11T20:21:00Z',
  goVersion: 'go1.22.4',
  compiler: 'gc',
  platform: 'linux/amd64',
};
