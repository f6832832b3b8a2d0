// A realistic small cluster: namespaces shop / kube-system / default, a `web` deployment with its
// ReplicaSets and pods, config and secrets (including the `last-applied-configuration` leak real
// clusters have), a custom resource, two nodes, events, and default container logs.
//
// Timestamps are relative to the moment this module loads, so AGE columns look natural.

import type { KubeObject } from './model.js';
import { rfc3339 } from './model.js';

const LOADED_AT = Date.now();
function ago(spec: { d?: number; h?: number; m?: number; s?: number }): string {
  const ms = (((spec.d ?? 0) * 24 + (spec.h ?? 0)) * 60 * 60 + (spec.m ?? 0) * 60 + (spec.s ?? 0)) * 1000;
  return rfc3339(new Date(LOADED_AT - ms));
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Plaintext values inside the seeded Secret objects. */
export const SEED_SECRETS = Object.freeze([
  { namespace: 'shop', secret: 'web-secrets', key: 'password', plain: 'hunter2-super-secret', base64: b64('hunter2-super-secret') },
  { namespace: 'shop', secret: 'web-secrets', key: 'api-key', plain: 'AKIAIOSFODNN7EXAMPLE', base64: b64('AKIAIOSFODNN7EXAMPLE') },
  {
    namespace: 'kube-system',
    secret: 'cloud-credentials',
    key: 'aws_secret_access_key',
    plain: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    base64: b64('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'),
  },
] as const);

/** Every seeded Secret value, decoded and base64-encoded: none may ever reach an agent. */
export const SEED_SECRET_VALUES: readonly string[] = Object.freeze(SEED_SECRETS.flatMap((s) => [s.plain, s.base64]));

/** Credentials that sit in plain sight outside Secret objects (env values, a ConfigMap URL), as in real clusters. */
export const SEED_PLAINTEXT_CREDENTIALS = Object.freeze({
  DB_PASSWORD: 's3cr3t-db-pass',
  API_TOKEN: 'tok_live_abcdef123456',
  DATABASE_URL_PASSWORD: 'pa55word',
  DATABASE_URL: 'postgres://app:pa55word@db:5432/shop',
  CONTACT: 'ops@example.com',
});

const WEB_IMAGE = 'registry.example.com/shop/web:1.5.0';
const WEB_IMAGE_OLD = 'registry.example.com/shop/web:1.4.1';

function webPodSpec(image: string): Record<string, unknown> {
  return {
    containers: [
      {
        name: 'app',
        image,
        imagePullPolicy: 'IfNotPresent',
        ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
        env: [
          { name: 'DB_PASSWORD', value: SEED_PLAINTEXT_CREDENTIALS.DB_PASSWORD },
          { name: 'API_TOKEN', value: SEED_PLAINTEXT_CREDENTIALS.API_TOKEN },
          { name: 'LOG_LEVEL', value: 'info' },
          { name: 'CONTACT', value: SEED_PLAINTEXT_CREDENTIALS.CONTACT },
          { name: 'SECRET_PASSWORD', valueFrom: { secretKeyRef: { name: 'web-secrets', key: 'password' } } },
        ],
        envFrom: [{ configMapRef: { name: 'web-config' } }],
        resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
        readinessProbe: {
          httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' },
          periodSeconds: 10,
          timeoutSeconds: 1,
          successThreshold: 1,
          failureThreshold: 3,
        },
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      },
    ],
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    serviceAccountName: 'default',
    schedulerName: 'default-scheduler',
    securityContext: {},
  };
}

function webTemplate(image: string, hash?: string): Record<string, unknown> {
  return {
    metadata: { labels: { app: 'web', ...(hash ? { 'pod-template-hash': hash } : {}) } },
    spec: webPodSpec(image),
  };
}

const WEB_DEPLOYMENT_APPLIED = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { annotations: {}, labels: { app: 'web' }, name: 'web', namespace: 'shop' },
  spec: {
    replicas: 3,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', image: WEB_IMAGE, env: (webPodSpec(WEB_IMAGE)['containers'] as Array<Record<string, unknown>>)[0]!['env'] }] },
    },
  },
};

const WEB_CONFIG_DATA = {
  DATABASE_URL: SEED_PLAINTEXT_CREDENTIALS.DATABASE_URL,
  FEATURE_X: 'on',
  LOG_FORMAT: 'json',
};

const WEB_SECRETS_APPLIED = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { annotations: {}, name: 'web-secrets', namespace: 'shop' },
  type: 'Opaque',
  stringData: { password: 'hunter2-super-secret' },
  data: { 'api-key': b64('AKIAIOSFODNN7EXAMPLE') },
};

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

function webPod(name: string, node: string, ip: string, restarts: number): KubeObject {
  const started = ago({ d: 2, h: 3 });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: 'shop',
      labels: { app: 'web', 'pod-template-hash': '7d9c' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', controller: true, blockOwnerDeletion: true }],
      creationTimestamp: ago({ d: 2, h: 3 }),
    },
    spec: { ...webPodSpec(WEB_IMAGE), nodeName: node },
    status: {
      phase: 'Running',
      conditions: [
        { type: 'Initialized', status: 'True', lastTransitionTime: started },
        { type: 'Ready', status: 'True', lastTransitionTime: started },
        { type: 'ContainersReady', status: 'True', lastTransitionTime: started },
        { type: 'PodScheduled', status: 'True', lastTransitionTime: started },
      ],
      hostIP: node === 'node-1' ? '10.0.0.11' : '10.0.0.12',
      podIP: ip,
      podIPs: [{ ip }],
      startTime: started,
      qosClass: 'Burstable',
      containerStatuses: [
        {
          name: 'app',
          ready: true,
          started: true,
          restartCount: restarts,
          image: WEB_IMAGE,
          imageID: `${WEB_IMAGE.split(':')[0]}@sha256:4f1c7e3b2a9d8e6f5c4b3a29180716253443526170819a2b3c4d5e6f708192a3`,
          containerID: `containerd://${name
            .replace(/[^a-z0-9]/g, '')
            .padEnd(64, 'a')
            .slice(0, 64)}`,
          state: { running: { startedAt: restarts ? ago({ h: 5 }) : started } },
          ...(restarts
            ? { lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: ago({ d: 1 }), finishedAt: ago({ h: 5 }) } } }
            : { lastState: {} }),
        },
      ],
    },
  };
}

function namespace(name: string, created: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { 'kubernetes.io/metadata.name': name }, creationTimestamp: created },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

function defaultServiceAccount(ns: string, created: string): KubeObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: ns, creationTimestamp: created } };
}

function node(name: string, ip: string, role?: string): KubeObject {
  const created = ago({ d: 41 });
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        ...(role ? { [`node-role.kubernetes.io/${role}`]: '' } : {}),
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
      creationTimestamp: created,
    },
    spec: { podCIDR: name === 'node-1' ? '10.244.1.0/24' : '10.244.2.0/24', providerID: `kind://docker/fake/${name}` },
    status: {
      capacity: { cpu: '4', memory: '16318480Ki', pods: '110', 'ephemeral-storage': '101430960Ki' },
      allocatable: { cpu: '4', memory: '16318480Ki', pods: '110', 'ephemeral-storage': '101430960Ki' },
      conditions: [
        {
          type: 'MemoryPressure',
          status: 'False',
          reason: 'KubeletHasSufficientMemory',
          message: 'kubelet has sufficient memory available',
          lastHeartbeatTime: ago({ m: 1 }),
          lastTransitionTime: created,
        },
        {
          type: 'DiskPressure',
          status: 'False',
          reason: 'KubeletHasNoDiskPressure',
          message: 'kubelet has no disk pressure',
          lastHeartbeatTime: ago({ m: 1 }),
          lastTransitionTime: created,
        },
        {
          type: 'PIDPressure',
          status: 'False',
          reason: 'KubeletHasSufficientPID',
          message: 'kubelet has sufficient PID available',
          lastHeartbeatTime: ago({ m: 1 }),
          lastTransitionTime: created,
        },
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
          lastHeartbeatTime: ago({ m: 1 }),
          lastTransitionTime: created,
        },
      ],
      addresses: [
        { type: 'InternalIP', address: ip },
        { type: 'Hostname', address: name },
      ],
      nodeInfo: {
        machineID: 'f0e1d2c3b4a5968778695a4b3c2d1e0f',
        systemUUID: 'f0e1d2c3-b4a5-9687-7869-5a4b3c2d1e0f',
        bootID: '0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9',
        kernelVersion: '5.15.0-105-generic',
        osImage: 'Ubuntu 22.04.4 LTS',
        containerRuntimeVersion: 'containerd://1.7.13',
        kubeletVersion: 'v1.30.2',
        kubeProxyVersion: 'v1.30.2',
        operatingSystem: 'linux',
        architecture: 'amd64',
      },
    },
  };
}

function event(
  ns: string,
  name: string,
  o: { kind: string; name: string; apiVersion: string; fieldPath?: string },
  type: string,
  reason: string,
  message: string,
  source: Record<string, string>,
  first: string,
  last: string,
  count: number,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: ns, creationTimestamp: first },
    involvedObject: { kind: o.kind, namespace: ns, name: o.name, apiVersion: o.apiVersion, ...(o.fieldPath ? { fieldPath: o.fieldPath } : {}) },
    reason,
    message,
    source,
    firstTimestamp: first,
    lastTimestamp: last,
    count,
    type,
    eventTime: null,
    reportingComponent: source['component'] ?? '',
    reportingInstance: source['host'] ?? '',
  };
}

function build(): KubeObject[] {
  const clusterCreated = ago({ d: 41 });
  const shopCreated = ago({ d: 30 });
  return [
    // ---- cluster scope ----
    namespace('default', clusterCreated),
    namespace('kube-system', clusterCreated),
    namespace('shop', shopCreated),
    node('node-1', '10.0.0.11', 'control-plane'),
    node('node-2', '10.0.0.12'),
    {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com', creationTimestamp: ago({ d: 20 }) },
      spec: {
        group: 'example.com',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList', shortNames: ['wd'] },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: { type: 'object', properties: { size: { type: 'integer' }, color: { type: 'string' } } },
                  status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                },
              },
            },
            subresources: { status: {} },
            additionalPrinterColumns: [
              { name: 'Size', type: 'integer', jsonPath: '.spec.size' },
              { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
            ],
          },
        ],
      },
      status: { acceptedNames: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList', shortNames: ['wd'] }, storedVersions: ['v1'] },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'view', labels: { 'kubernetes.io/bootstrapping': 'rbac-defaults' }, creationTimestamp: clusterCreated },
      rules: [
        {
          apiGroups: ['', 'apps', 'batch'],
          resources: ['pods', 'services', 'configmaps', 'deployments', 'replicasets', 'jobs', 'cronjobs'],
          verbs: ['get', 'list', 'watch'],
        },
      ],
    },

    // ---- default ----
    defaultServiceAccount('default', clusterCreated),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' }, creationTimestamp: clusterCreated },
      spec: {
        type: 'ClusterIP',
        clusterIP: '10.96.0.1',
        clusterIPs: ['10.96.0.1'],
        ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }],
        sessionAffinity: 'None',
      },
      status: { loadBalancer: {} },
    },

    // ---- kube-system ----
    defaultServiceAccount('kube-system', clusterCreated),
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'coredns-5d78c9869d-q7x2v',
        namespace: 'kube-system',
        labels: { 'k8s-app': 'kube-dns', 'pod-template-hash': '5d78c9869d' },
        creationTimestamp: clusterCreated,
      },
      spec: {
        containers: [
          {
            name: 'coredns',
            image: 'registry.k8s.io/coredns/coredns:v1.11.1',
            args: ['-conf', '/etc/coredns/Corefile'],
            ports: [{ name: 'dns', containerPort: 53, protocol: 'UDP' }],
          },
        ],
        nodeName: 'node-1',
        priorityClassName: 'system-cluster-critical',
        serviceAccountName: 'coredns',
        restartPolicy: 'Always',
      },
      status: {
        phase: 'Running',
        podIP: '10.244.1.2',
        podIPs: [{ ip: '10.244.1.2' }],
        hostIP: '10.0.0.11',
        startTime: clusterCreated,
        qosClass: 'Burstable',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: clusterCreated }],
        containerStatuses: [
          {
            name: 'coredns',
            ready: true,
            started: true,
            restartCount: 0,
            image: 'registry.k8s.io/coredns/coredns:v1.11.1',
            state: { running: { startedAt: clusterCreated } },
            lastState: {},
          },
        ],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'cloud-credentials', namespace: 'kube-system', creationTimestamp: ago({ d: 40 }) },
      type: 'Opaque',
      data: { aws_access_key_id: b64('AKIAI44QH8DHBEXAMPLE'), aws_secret_access_key: b64('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY') },
    },

    // ---- shop ----
    defaultServiceAccount('shop', shopCreated),
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'web',
        namespace: 'shop',
        labels: { app: 'web' },
        annotations: { 'deployment.kubernetes.io/revision': '2', [LAST_APPLIED]: JSON.stringify(WEB_DEPLOYMENT_APPLIED) + '\n' },
        generation: 2,
        creationTimestamp: ago({ d: 30 }),
      },
      spec: {
        replicas: 3,
        selector: { matchLabels: { app: 'web' } },
        template: webTemplate(WEB_IMAGE),
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
        revisionHistoryLimit: 10,
        progressDeadlineSeconds: 600,
      },
      status: {
        observedGeneration: 2,
        replicas: 3,
        updatedReplicas: 3,
        readyReplicas: 3,
        availableReplicas: 3,
        conditions: [
          {
            type: 'Available',
            status: 'True',
            reason: 'MinimumReplicasAvailable',
            message: 'Deployment has minimum availability.',
            lastUpdateTime: ago({ d: 2 }),
            lastTransitionTime: ago({ d: 2 }),
          },
          {
            type: 'Progressing',
            status: 'True',
            reason: 'NewReplicaSetAvailable',
            message: 'ReplicaSet "web-7d9c" has successfully progressed.',
            lastUpdateTime: ago({ d: 2 }),
            lastTransitionTime: ago({ d: 30 }),
          },
        ],
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: 'web-5f6b',
        namespace: 'shop',
        labels: { app: 'web', 'pod-template-hash': '5f6b' },
        annotations: {
          'deployment.kubernetes.io/desired-replicas': '3',
          'deployment.kubernetes.io/max-replicas': '4',
          'deployment.kubernetes.io/revision': '1',
        },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true, blockOwnerDeletion: true }],
        generation: 2,
        creationTimestamp: ago({ d: 30 }),
      },
      spec: { replicas: 0, selector: { matchLabels: { app: 'web', 'pod-template-hash': '5f6b' } }, template: webTemplate(WEB_IMAGE_OLD, '5f6b') },
      status: { replicas: 0, observedGeneration: 2 },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: 'web-7d9c',
        namespace: 'shop',
        labels: { app: 'web', 'pod-template-hash': '7d9c' },
        annotations: {
          'deployment.kubernetes.io/desired-replicas': '3',
          'deployment.kubernetes.io/max-replicas': '4',
          'deployment.kubernetes.io/revision': '2',
        },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', controller: true, blockOwnerDeletion: true }],
        generation: 1,
        creationTimestamp: ago({ d: 2, h: 3 }),
      },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web', 'pod-template-hash': '7d9c' } }, template: webTemplate(WEB_IMAGE, '7d9c') },
      status: { replicas: 3, fullyLabeledReplicas: 3, readyReplicas: 3, availableReplicas: 3, observedGeneration: 1 },
    },
    webPod('web-7d9c-abcde', 'node-1', '10.244.1.15', 0),
    webPod('web-7d9c-fghij', 'node-2', '10.244.2.23', 2),
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'worker-5b7c-klmno', namespace: 'shop', labels: { app: 'worker' }, creationTimestamp: ago({ d: 6 }) },
      spec: {
        containers: [
          { name: 'worker', image: 'registry.example.com/shop/worker:2.3.0', args: ['--queue', 'orders'], env: [{ name: 'QUEUE', value: 'orders' }] },
          { name: 'sidecar', image: 'registry.example.com/platform/log-shipper:0.9.2' },
        ],
        nodeName: 'node-2',
        restartPolicy: 'Always',
        serviceAccountName: 'default',
      },
      status: {
        phase: 'Running',
        podIP: '10.244.2.31',
        podIPs: [{ ip: '10.244.2.31' }],
        hostIP: '10.0.0.12',
        startTime: ago({ d: 6 }),
        qosClass: 'BestEffort',
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: ago({ d: 6 }) }],
        containerStatuses: [
          {
            name: 'sidecar',
            ready: true,
            started: true,
            restartCount: 0,
            image: 'registry.example.com/platform/log-shipper:0.9.2',
            state: { running: { startedAt: ago({ d: 6 }) } },
            lastState: {},
          },
          {
            name: 'worker',
            ready: true,
            started: true,
            restartCount: 0,
            image: 'registry.example.com/shop/worker:2.3.0',
            state: { running: { startedAt: ago({ d: 6 }) } },
            lastState: {},
          },
        ],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: 'shop', labels: { app: 'web' }, creationTimestamp: ago({ d: 30 }) },
      spec: {
        type: 'ClusterIP',
        clusterIP: '10.96.120.15',
        clusterIPs: ['10.96.120.15'],
        ports: [{ name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 }],
        selector: { app: 'web' },
        sessionAffinity: 'None',
        internalTrafficPolicy: 'Cluster',
        ipFamilies: ['IPv4'],
        ipFamilyPolicy: 'SingleStack',
      },
      status: { loadBalancer: {} },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: 'web-config',
        namespace: 'shop',
        labels: { app: 'web' },
        annotations: {
          [LAST_APPLIED]:
            JSON.stringify({
              apiVersion: 'v1',
              data: WEB_CONFIG_DATA,
              kind: 'ConfigMap',
              metadata: { annotations: {}, labels: { app: 'web' }, name: 'web-config', namespace: 'shop' },
            }) + '\n',
        },
        creationTimestamp: ago({ d: 30 }),
      },
      data: { ...WEB_CONFIG_DATA },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: 'web-secrets',
        namespace: 'shop',
        annotations: { [LAST_APPLIED]: JSON.stringify(WEB_SECRETS_APPLIED) + '\n' },
        creationTimestamp: ago({ d: 30 }),
      },
      type: 'Opaque',
      data: { 'api-key': b64('AKIAIOSFODNN7EXAMPLE'), password: b64('hunter2-super-secret') },
    },
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'web-cache', namespace: 'shop', creationTimestamp: ago({ d: 30 }) },
      spec: {
        accessModes: ['ReadWriteOnce'],
        resources: { requests: { storage: '5Gi' } },
        storageClassName: 'standard',
        volumeMode: 'Filesystem',
        volumeName: 'pvc-3f0c1c1e-6a55-4d2b-9a0e-5f1b2c3d4e5f',
      },
      status: { phase: 'Bound', accessModes: ['ReadWriteOnce'], capacity: { storage: '5Gi' } },
    },
    {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'nightly-report', namespace: 'shop', creationTimestamp: ago({ d: 12 }) },
      spec: {
        schedule: '0 2 * * *',
        concurrencyPolicy: 'Forbid',
        suspend: false,
        jobTemplate: {
          spec: { template: { spec: { restartPolicy: 'OnFailure', containers: [{ name: 'report', image: 'registry.example.com/shop/report:1.0.3' }] } } },
        },
      },
      status: { lastScheduleTime: ago({ h: 9 }), lastSuccessfulTime: ago({ h: 9 }) },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'shop-viewers', namespace: 'shop', creationTimestamp: ago({ d: 30 }) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'shop-devs' }],
    },
    {
      apiVersion: 'example.com/v1',
      kind: 'Widget',
      metadata: { name: 'gizmo', namespace: 'shop', labels: { app: 'web' }, creationTimestamp: ago({ d: 7 }) },
      spec: { size: 3, color: 'blue' },
      status: { state: 'Ready' },
    },
    event(
      'shop',
      'web-7d9c-fghij.17d1c2b3a4f5e6d7',
      { kind: 'Pod', name: 'web-7d9c-fghij', apiVersion: 'v1', fieldPath: 'spec.containers{app}' },
      'Warning',
      'Unhealthy',
      'Readiness probe failed: HTTP probe failed with statuscode: 503',
      { component: 'kubelet', host: 'node-2' },
      ago({ h: 5, m: 2 }),
      ago({ h: 5 }),
      3,
    ),
    event(
      'shop',
      'web-7d9c-fghij.17d1c2b3a4f5e6e8',
      { kind: 'Pod', name: 'web-7d9c-fghij', apiVersion: 'v1', fieldPath: 'spec.containers{app}' },
      'Normal',
      'Started',
      'Started container app',
      { component: 'kubelet', host: 'node-2' },
      ago({ h: 5 }),
      ago({ h: 5 }),
      1,
    ),
    event(
      'shop',
      'web.17d1a0b1c2d3e4f5',
      { kind: 'Deployment', name: 'web', apiVersion: 'apps/v1' },
      'Normal',
      'ScalingReplicaSet',
      'Scaled up replica set web-7d9c to 3 from 0',
      { component: 'deployment-controller' },
      ago({ d: 2, h: 3 }),
      ago({ d: 2, h: 3 }),
      1,
    ),
  ];
}

/** The default seed. Each startFakeKube() stores its own copy; mutate freely. */
export const DEFAULT_SEED: readonly KubeObject[] = Object.freeze(build());

export interface SeedLog {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  readonly text: string;
  readonly previous?: boolean;
}

/** Container logs served for the default seed (setLogs() replaces them). */
export const DEFAULT_LOGS: readonly SeedLog[] = Object.freeze([
  {
    namespace: 'shop',
    pod: 'web-7d9c-abcde',
    container: 'app',
    text:
      [
        'level=info msg="starting web" version=1.5.0',
        'level=info msg="connecting to database" url=postgres://app:pa55word@db:5432/shop',
        'level=info msg="listening" addr=:8080',
        'level=info msg="GET /healthz" status=200 duration=1ms',
        'level=warn msg="slow query" table=orders duration=1.2s',
        'level=info msg="GET /api/orders" status=200 duration=35ms user=ops@example.com',
      ].join('\n') + '\n',
  },
  {
    namespace: 'shop',
    pod: 'web-7d9c-fghij',
    container: 'app',
    text:
      ['level=info msg="starting web" version=1.5.0', 'level=info msg="listening" addr=:8080', 'level=error msg="readiness check failed" status=503'].join(
        '\n',
      ) + '\n',
  },
  {
    namespace: 'shop',
    pod: 'web-7d9c-fghij',
    container: 'app',
    previous: true,
    text:
      ['level=info msg="starting web" version=1.5.0', 'level=error msg="out of memory" heap=255Mi', 'fatal error: runtime: out of memory'].join('\n') + '\n',
  },
  { namespace: 'shop', pod: 'worker-5b7c-klmno', container: 'worker', text: 'consuming queue orders\nprocessed order 1001\nprocessed order 1002\n' },
  { namespace: 'shop', pod: 'worker-5b7c-klmno', container: 'sidecar', text: 'shipping logs to collector:24224\n' },
  {
    namespace: 'kube-system',
    pod: 'coredns-5d78c9869d-q7x2v',
    container: 'coredns',
    text: '.:53\n[INFO] plugin/reload: Running configuration SHA512 = 591cf328cccc12bc490481273e738df59329c62c0b729d94e8b61db9961c2fa5\nCoreDNS-1.11.1\n',
  },
]);
