// Server-side printing: `meta.k8s.io/v1 Table` with the columns a real API server's printers
// produce (built-in types) or a CRD's additionalPrinterColumns (custom resources).

import { asArray, asNumber, asRecord, asString, getPath, isRecord, rfc3339, type KubeObject } from './model.js';
import type { ResourceDef } from './resources.js';
import { formatLabelSelector } from './selectors.js';

export interface ColumnDefinition {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  readonly format: string;
  readonly description: string;
  readonly priority: number;
}

interface Printer {
  readonly columns: readonly ColumnDefinition[];
  cells(obj: KubeObject, now: Date): unknown[];
}

const NAME_DESC =
  'Name must be unique within a namespace. Is required when creating resources, ' +
  'although some resources may allow a client to request the generation of an appropriate name automatically. ' +
  'Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: ' +
  'https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';
const AGE_DESC =
  'CreationTimestamp is a timestamp representing the server time when this object was created. ' +
  'It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. ' +
  'It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: ' +
  'https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';

function col(name: string, type: ColumnDefinition['type'], description: string, priority = 0, format = ''): ColumnDefinition {
  return { name, type, format, description, priority };
}
const NAME = col('Name', 'string', NAME_DESC, 0, 'name');
const AGE = col('Age', 'string', AGE_DESC);

/** Go's duration.HumanDuration, as `kubectl get` shows ages. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.floor(hours / 24) % 365;
    const y = Math.floor(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function since(ts: unknown, now: Date): string {
  if (typeof ts !== 'string' || ts === '') return '<unknown>';
  const t = Date.parse(ts);
  return Number.isNaN(t) ? '<unknown>' : humanDuration(now.getTime() - t);
}

function age(obj: KubeObject, now: Date): string {
  return since(obj.metadata?.creationTimestamp, now);
}

function name(obj: KubeObject): string {
  return obj.metadata?.name ?? '';
}

function podSpecOf(obj: KubeObject, templatePath: string[]): Record<string, unknown> {
  return asRecord(getPath(obj, templatePath));
}

function containerNames(spec: Record<string, unknown>): string {
  return asArray(spec['containers'])
    .map((c) => asString(asRecord(c)['name']) ?? '')
    .join(',');
}

function containerImages(spec: Record<string, unknown>): string {
  return asArray(spec['containers'])
    .map((c) => asString(asRecord(c)['image']) ?? '')
    .join(',');
}

function int(v: unknown): number {
  return asNumber(v) ?? 0;
}

// ---- pods ----

function podCells(pod: KubeObject, now: Date): unknown[] {
  const spec = asRecord(pod['spec']);
  const status = asRecord(pod['status']);
  const containers = asArray(spec['containers']);
  const statuses = asArray(status['containerStatuses']).map(asRecord);
  let reason = asString(status['reason']) ?? asString(status['phase']) ?? 'Unknown';
  let restarts = 0;
  let ready = 0;
  let lastRestart: number | undefined;
  for (const cs of statuses) {
    restarts += int(cs['restartCount']);
    const finished = asString(getPath(cs, ['lastState', 'terminated', 'finishedAt']));
    if (finished) {
      const t = Date.parse(finished);
      if (!Number.isNaN(t) && (lastRestart === undefined || t > lastRestart)) lastRestart = t;
    }
    const waiting = asString(getPath(cs, ['state', 'waiting', 'reason']));
    const terminated = asRecord(getPath(cs, ['state', 'terminated']));
    if (waiting) reason = waiting;
    else if (Object.keys(terminated).length) {
      reason =
        asString(terminated['reason']) ??
        (terminated['signal'] !== undefined ? `Signal:${String(terminated['signal'])}` : `ExitCode:${int(terminated['exitCode'])}`);
    } else if (cs['ready'] === true && isRecord(getPath(cs, ['state', 'running']))) {
      ready++;
    }
  }
  if (pod.metadata?.deletionTimestamp) reason = 'Terminating';
  const restartsCell = restarts !== 0 && lastRestart !== undefined ? `${restarts} (${humanDuration(now.getTime() - lastRestart)} ago)` : String(restarts);
  return [
    name(pod),
    `${ready}/${containers.length}`,
    reason,
    restartsCell,
    age(pod, now),
    asString(status['podIP']) || '<none>',
    asString(spec['nodeName']) || '<none>',
    asString(status['nominatedNodeName']) || '<none>',
    asArray(spec['readinessGates']).length ? `0/${asArray(spec['readinessGates']).length}` : '<none>',
  ];
}

const POD: Printer = {
  columns: [
    NAME,
    col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
    col('Status', 'string', 'The aggregate status of the containers in this pod.'),
    col('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
    AGE,
    col('IP', 'string', 'IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', 1),
    col('Node', 'string', 'NodeName is a request to schedule this pod onto a specific node.', 1),
    col(
      'Nominated Node',
      'string',
      'nominatedNodeName is set only when this pod preempts other pods on the node, ' +
        'but it cannot be scheduled right away as preemption victims receive their graceful termination periods.',
      1,
    ),
    col('Readiness Gates', 'string', 'If specified, all readiness gates will be evaluated for pod readiness.', 1),
  ],
  cells: podCells,
};

// ---- workloads ----

const CONTAINERS = col('Containers', 'string', 'Names of each container in the template.', 1);
const IMAGES = col('Images', 'string', 'Images referenced by each container in the template.', 1);
const SELECTOR = col(
  'Selector',
  'string',
  'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.',
  1,
);

const DEPLOYMENT: Printer = {
  columns: [
    NAME,
    col('Ready', 'string', 'Number of the pod with ready state'),
    col('Up-to-date', 'string', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.'),
    col('Available', 'string', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.'),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(d, now) {
    const spec = asRecord(d['spec']);
    const status = asRecord(d['status']);
    const tpl = podSpecOf(d, ['spec', 'template', 'spec']);
    return [
      name(d),
      `${int(status['readyReplicas'])}/${asNumber(spec['replicas']) ?? 1}`,
      int(status['updatedReplicas']),
      int(status['availableReplicas']),
      age(d, now),
      containerNames(tpl),
      containerImages(tpl),
      formatLabelSelector(spec['selector']),
    ];
  },
};

const REPLICASET: Printer = {
  columns: [
    NAME,
    col(
      'Desired',
      'integer',
      'Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1.',
    ),
    col('Current', 'integer', 'Replicas is the most recently observed number of replicas.'),
    col('Ready', 'integer', 'readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.'),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(rs, now) {
    const spec = asRecord(rs['spec']);
    const status = asRecord(rs['status']);
    const tpl = podSpecOf(rs, ['spec', 'template', 'spec']);
    return [
      name(rs),
      asNumber(spec['replicas']) ?? 1,
      int(status['replicas']),
      int(status['readyReplicas']),
      age(rs, now),
      containerNames(tpl),
      containerImages(tpl),
      formatLabelSelector(spec['selector']),
    ];
  },
};

const STATEFULSET: Printer = {
  columns: [NAME, col('Ready', 'string', 'Number of the pod with ready state'), AGE, CONTAINERS, IMAGES],
  cells(s, now) {
    const tpl = podSpecOf(s, ['spec', 'template', 'spec']);
    return [
      name(s),
      `${int(getPath(s, ['status', 'readyReplicas']))}/${asNumber(getPath(s, ['spec', 'replicas'])) ?? 1}`,
      age(s, now),
      containerNames(tpl),
      containerImages(tpl),
    ];
  },
};

const DAEMONSET: Printer = {
  columns: [
    NAME,
    col('Desired', 'integer', 'The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).'),
    col('Current', 'integer', 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.'),
    col(
      'Ready',
      'integer',
      'numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.',
    ),
    col('Up-to-date', 'integer', 'The total number of nodes that are running updated daemon pod'),
    col(
      'Available',
      'integer',
      'The number of nodes that should be running the daemon pod ' +
        'and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)',
    ),
    col(
      'Node Selector',
      'string',
      'NodeSelector is a selector which must be true for the pod to fit on a node. ' +
        "Selector which must match a node's labels for the pod to be scheduled on that node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(ds, now) {
    const st = asRecord(ds['status']);
    const tpl = podSpecOf(ds, ['spec', 'template', 'spec']);
    const ns = asRecord(tpl['nodeSelector']);
    return [
      name(ds),
      int(st['desiredNumberScheduled']),
      int(st['currentNumberScheduled']),
      int(st['numberReady']),
      int(st['updatedNumberScheduled']),
      int(st['numberAvailable']),
      Object.keys(ns).length
        ? Object.entries(ns)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(',')
        : '<none>',
      age(ds, now),
      containerNames(tpl),
      containerImages(tpl),
      formatLabelSelector(getPath(ds, ['spec', 'selector'])),
    ];
  },
};

const JOB: Printer = {
  columns: [
    NAME,
    col('Status', 'string', 'Status of the job.'),
    col('Completions', 'string', 'The desired number of successfully finished pods the job should be run with.'),
    col('Duration', 'string', 'Time required to complete the job.'),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(j, now) {
    const st = asRecord(j['status']);
    const conds = asArray(st['conditions']).map(asRecord);
    const has = (t: string): boolean => conds.some((c) => c['type'] === t && c['status'] === 'True');
    const status = has('Complete') ? 'Complete' : has('Failed') ? 'Failed' : has('Suspended') ? 'Suspended' : 'Running';
    const start = asString(st['startTime']);
    const end = asString(st['completionTime']);
    const duration = start ? humanDuration((end ? Date.parse(end) : now.getTime()) - Date.parse(start)) : '';
    const tpl = podSpecOf(j, ['spec', 'template', 'spec']);
    return [
      name(j),
      status,
      `${int(st['succeeded'])}/${asNumber(getPath(j, ['spec', 'completions'])) ?? 1}`,
      duration,
      age(j, now),
      containerNames(tpl),
      containerImages(tpl),
      formatLabelSelector(getPath(j, ['spec', 'selector'])),
    ];
  },
};

const CRONJOB: Printer = {
  columns: [
    NAME,
    col('Schedule', 'string', 'The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.'),
    col('Timezone', 'string', 'The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones.'),
    col(
      'Suspend',
      'boolean',
      'This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.',
    ),
    col('Active', 'integer', 'A list of pointers to currently running jobs.'),
    col('Last Schedule', 'string', 'Information when was the last time the job was successfully scheduled.'),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
  ],
  cells(cj, now) {
    const spec = asRecord(cj['spec']);
    const st = asRecord(cj['status']);
    const tpl = podSpecOf(cj, ['spec', 'jobTemplate', 'spec', 'template', 'spec']);
    return [
      name(cj),
      asString(spec['schedule']) ?? '',
      asString(spec['timeZone']) ?? '<none>',
      spec['suspend'] === true ? 'True' : 'False',
      asArray(st['active']).length,
      st['lastScheduleTime'] ? since(st['lastScheduleTime'], now) : '<none>',
      age(cj, now),
      containerNames(tpl),
      containerImages(tpl),
      formatLabelSelector(getPath(cj, ['spec', 'jobTemplate', 'spec', 'selector'])),
    ];
  },
};

// ---- core ----

function servicePorts(spec: Record<string, unknown>): string {
  const ports = asArray(spec['ports']).map(asRecord);
  if (!ports.length) return '<none>';
  return ports.map((p) => `${int(p['port'])}${p['nodePort'] !== undefined ? `:${int(p['nodePort'])}` : ''}/${asString(p['protocol']) ?? 'TCP'}`).join(',');
}

const SERVICE: Printer = {
  columns: [
    NAME,
    col(
      'Type',
      'string',
      'type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.',
    ),
    col('Cluster-IP', 'string', 'clusterIP is the IP address of the service and is usually assigned randomly.'),
    col('External-IP', 'string', 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.'),
    col('Port(s)', 'string', 'The list of ports that are exposed by this service.'),
    AGE,
    col('Selector', 'string', 'Route service traffic to pods with label keys and values matching this selector.', 1),
  ],
  cells(s, now) {
    const spec = asRecord(s['spec']);
    const type = asString(spec['type']) ?? 'ClusterIP';
    let external = '<none>';
    const externalIPs = asArray(spec['externalIPs']).map(String);
    if (type === 'LoadBalancer') {
      const ingress = asArray(getPath(s, ['status', 'loadBalancer', 'ingress'])).map(asRecord);
      const ips = [...ingress.map((i) => asString(i['ip']) ?? asString(i['hostname']) ?? ''), ...externalIPs].filter(Boolean);
      external = ips.length ? ips.join(',') : '<pending>';
    } else if (type === 'ExternalName') {
      external = asString(spec['externalName']) ?? '<none>';
    } else if (externalIPs.length) {
      external = externalIPs.join(',');
    }
    const sel = asRecord(spec['selector']);
    return [
      name(s),
      type,
      asString(spec['clusterIP']) || '<none>',
      external,
      servicePorts(spec),
      age(s, now),
      Object.keys(sel).length
        ? Object.entries(sel)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(',')
        : '<none>',
    ];
  },
};

const SECRET: Printer = {
  columns: [
    NAME,
    col(
      'Type',
      'string',
      'Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types',
    ),
    col(
      'Data',
      'string',
      "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. " +
        'The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. ' +
        'Described in https://tools.ietf.org/html/rfc4648#section-4',
    ),
    AGE,
  ],
  cells: (s, now) => [name(s), asString(s['type']) ?? 'Opaque', Object.keys(asRecord(s['data'])).length, age(s, now)],
};

const CONFIGMAP: Printer = {
  columns: [
    NAME,
    col(
      'Data',
      'string',
      "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. " +
        'Values with non-UTF-8 byte sequences must use the BinaryData field. ' +
        'The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.',
    ),
    AGE,
  ],
  cells: (c, now) => [name(c), Object.keys(asRecord(c['data'])).length + Object.keys(asRecord(c['binaryData'])).length, age(c, now)],
};

const NODE: Printer = {
  columns: [
    NAME,
    col('Status', 'string', 'The status of the node'),
    col('Roles', 'string', 'The roles of the node'),
    AGE,
    col('Version', 'string', 'Kubelet Version reported by the node.'),
    col('Internal-IP', 'string', 'List of addresses reachable to the node. Queried from cloud provider, if available.', 1),
    col('External-IP', 'string', 'List of addresses reachable to the node. Queried from cloud provider, if available.', 1),
    col('OS-Image', 'string', 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).', 1),
    col('Kernel-Version', 'string', "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
    col('Container-Runtime', 'string', 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).', 1),
  ],
  cells(n, now) {
    const conds = asArray(getPath(n, ['status', 'conditions'])).map(asRecord);
    const ready = conds.find((c) => c['type'] === 'Ready');
    const statuses = [ready === undefined ? 'Unknown' : ready['status'] === 'True' ? 'Ready' : 'NotReady'];
    if (getPath(n, ['spec', 'unschedulable']) === true) statuses.push('SchedulingDisabled');
    const roles = Object.keys(n.metadata?.labels ?? {})
      .filter((k) => k.startsWith('node-role.kubernetes.io/'))
      .map((k) => k.slice('node-role.kubernetes.io/'.length))
      .sort();
    const addrs = asArray(getPath(n, ['status', 'addresses'])).map(asRecord);
    const addr = (t: string): string => asString(addrs.find((a) => a['type'] === t)?.['address']) ?? '<none>';
    const info = asRecord(getPath(n, ['status', 'nodeInfo']));
    return [
      name(n),
      statuses.join(','),
      roles.length ? roles.join(',') : '<none>',
      age(n, now),
      asString(info['kubeletVersion']) ?? '',
      addr('InternalIP'),
      addr('ExternalIP'),
      asString(info['osImage']) ?? '<unknown>',
      asString(info['kernelVersion']) ?? '<unknown>',
      asString(info['containerRuntimeVersion']) ?? '<unknown>',
    ];
  },
};

const NAMESPACE: Printer = {
  columns: [NAME, col('Status', 'string', 'The status of the namespace'), AGE],
  cells: (n, now) => [name(n), asString(getPath(n, ['status', 'phase'])) ?? 'Active', age(n, now)],
};

const EVENT: Printer = {
  columns: [
    col('Last Seen', 'string', 'Time when this Event was last seen'),
    col('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future.'),
    col('Reason', 'string', "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col('Object', 'string', 'The object that this event is about. Mapped from event.involvedObject'),
    col('Subobject', 'string', 'The subobject that this event is about. Mapped from event.involvedObject.fieldPath', 1),
    col('Source', 'string', 'The component reporting this event. Should be a short machine understandable string.', 1),
    col('Message', 'string', 'A human-readable description of the status of this operation.'),
    col('First Seen', 'string', 'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)', 1),
    col('Count', 'string', 'The number of times this event has occurred.', 1),
    col('Name', 'string', NAME_DESC, 1, 'name'),
  ],
  cells(e, now) {
    const io = asRecord(e['involvedObject']);
    const src = asRecord(e['source']);
    const last = e['lastTimestamp'] ?? e['eventTime'] ?? e.metadata?.creationTimestamp;
    const first = e['firstTimestamp'] ?? e['eventTime'] ?? e.metadata?.creationTimestamp;
    const source = [asString(src['component']), asString(src['host'])].filter(Boolean).join(', ');
    return [
      since(last, now),
      asString(e['type']) ?? '',
      asString(e['reason']) ?? '',
      `${(asString(io['kind']) ?? '').toLowerCase()}/${asString(io['name']) ?? ''}`,
      asString(io['fieldPath']) ?? '',
      source,
      asString(e['message']) ?? '',
      since(first, now),
      int(e['count']) || 1,
      name(e),
    ];
  },
};

const SERVICEACCOUNT: Printer = {
  columns: [
    NAME,
    col('Secrets', 'string', 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.'),
    AGE,
  ],
  cells: (sa, now) => [name(sa), asArray(sa['secrets']).length, age(sa, now)],
};

const PVC: Printer = {
  columns: [
    NAME,
    col('Status', 'string', 'phase represents the current phase of PersistentVolumeClaim.'),
    col('Volume', 'string', 'volumeName is the binding reference to the PersistentVolume backing this claim.'),
    col('Capacity', 'string', 'capacity represents the actual resources of the underlying volume.'),
    col('Access Modes', 'string', 'accessModes contains the desired access modes the volume should have.'),
    col('StorageClass', 'string', 'storageClassName is the name of the StorageClass required by the claim.'),
    col('VolumeAttributesClass', 'string', 'volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.'),
    AGE,
    col('VolumeMode', 'string', 'volumeMode defines what type of volume is required by the claim.', 1),
  ],
  cells(p, now) {
    const spec = asRecord(p['spec']);
    const st = asRecord(p['status']);
    const short: Record<string, string> = { ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX', ReadWriteOncePod: 'RWOP' };
    const modes = asArray(st['accessModes'])
      .map((m) => short[String(m)] ?? String(m))
      .join(',');
    return [
      name(p),
      asString(st['phase']) ?? 'Pending',
      asString(spec['volumeName']) ?? '',
      asString(getPath(st, ['capacity', 'storage'])) ?? '',
      modes,
      asString(spec['storageClassName']) ?? '<unset>',
      asString(spec['volumeAttributesClassName']) ?? '<unset>',
      age(p, now),
      asString(spec['volumeMode']) ?? 'Filesystem',
    ];
  },
};

const CREATED_AT = col('Created At', 'date', AGE_DESC);
const ROLE: Printer = {
  columns: [NAME, CREATED_AT],
  cells: (r) => [name(r), r.metadata?.creationTimestamp ? rfc3339(new Date(r.metadata.creationTimestamp)) : ''],
};

function subjectsOf(b: KubeObject, kind: string): string {
  return asArray(b['subjects'])
    .map(asRecord)
    .filter((s) => s['kind'] === kind)
    .map((s) => (kind === 'ServiceAccount' ? `${asString(s['namespace']) ?? ''}/${asString(s['name']) ?? ''}` : (asString(s['name']) ?? '')))
    .join(', ');
}

const BINDING: Printer = {
  columns: [
    NAME,
    col('Role', 'string', 'RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace.'),
    AGE,
    col('Users', 'string', 'Users in the roleBinding', 1),
    col('Groups', 'string', 'Groups in the roleBinding', 1),
    col('ServiceAccounts', 'string', 'ServiceAccounts in the roleBinding', 1),
  ],
  cells(b, now) {
    const ref = asRecord(b['roleRef']);
    return [
      name(b),
      `${asString(ref['kind']) ?? ''}/${asString(ref['name']) ?? ''}`,
      age(b, now),
      subjectsOf(b, 'User'),
      subjectsOf(b, 'Group'),
      subjectsOf(b, 'ServiceAccount'),
    ];
  },
};

const GENERIC: Printer = { columns: [NAME, AGE], cells: (o, now) => [name(o), age(o, now)] };

/** additionalPrinterColumns of the CRDs the fake serves (kept in step with the seeded CRD objects). */
export const CRD_PRINTER_COLUMNS: Record<
  string,
  ReadonlyArray<{ name: string; type: ColumnDefinition['type']; jsonPath: string; description?: string; priority?: number }>
> = {
  'example.com/widgets': [
    { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

function crdPrinter(columns: NonNullable<(typeof CRD_PRINTER_COLUMNS)[string]>): Printer {
  return {
    columns: [
      NAME,
      ...columns.map((c) => col(c.name, c.type, c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`, c.priority ?? 0)),
    ],
    cells: (o) => [name(o), ...columns.map((c) => getPath(o, c.jsonPath.replace(/^\./, '').split('.')) ?? null)],
  };
}

const PRINTERS: Record<string, Printer> = {
  'core/pods': POD,
  'core/services': SERVICE,
  'core/secrets': SECRET,
  'core/configmaps': CONFIGMAP,
  'core/nodes': NODE,
  'core/namespaces': NAMESPACE,
  'core/events': EVENT,
  'core/serviceaccounts': SERVICEACCOUNT,
  'core/persistentvolumeclaims': PVC,
  'apps/deployments': DEPLOYMENT,
  'apps/replicasets': REPLICASET,
  'apps/statefulsets': STATEFULSET,
  'apps/daemonsets': DAEMONSET,
  'batch/jobs': JOB,
  'batch/cronjobs': CRONJOB,
  'rbac.authorization.k8s.io/roles': ROLE,
  'rbac.authorization.k8s.io/clusterroles': ROLE,
  'rbac.authorization.k8s.io/rolebindings': BINDING,
  'rbac.authorization.k8s.io/clusterrolebindings': BINDING,
  'apiextensions.k8s.io/customresourcedefinitions': ROLE,
};

export function printerFor(def: ResourceDef): Printer {
  const key = `${def.group || 'core'}/${def.resource}`;
  const crd = CRD_PRINTER_COLUMNS[key];
  if (crd) return crdPrinter(crd);
  return PRINTERS[key] ?? GENERIC;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export function buildTable(
  def: ResourceDef,
  objects: readonly KubeObject[],
  opts: {
    apiVersion: string;
    includeObject: IncludeObject;
    resourceVersion: string;
    continueToken?: string | undefined;
    remaining?: number | undefined;
    now: Date;
  },
): unknown {
  const printer = printerFor(def);
  return {
    kind: 'Table',
    apiVersion: opts.apiVersion,
    metadata: {
      resourceVersion: opts.resourceVersion,
      ...(opts.continueToken ? { continue: opts.continueToken } : {}),
      ...(opts.remaining !== undefined ? { remainingItemCount: opts.remaining } : {}),
    },
    columnDefinitions: printer.columns.map((c) => ({ ...c })),
    rows: objects.map((o) => {
      const row: Record<string, unknown> = { cells: printer.cells(o, opts.now) };
      if (opts.includeObject === 'Metadata') {
        row['object'] = { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: structuredClone(o.metadata ?? {}) };
      } else if (opts.includeObject === 'Object') {
        row['object'] = structuredClone(o);
      }
      return row;
    }),
  };
}
