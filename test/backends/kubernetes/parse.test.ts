// Table-driven tests for the pure kubectl parser (src/backends/kubernetes/parse.ts):
// the tokenizer's explicit grammar, valid commands with the KubeCommand they
// must produce, and the permanent evasion suite — every shell construct, every
// refused flag in every spelling and position, every refused verb — which stays
// here forever. Refusals are `kubectl.refused`; mistakes are `input.invalid`.

import { describe, expect, it } from 'vitest';
import { parseKubectl, SUPPORTED_VERBS, tokenize } from '../../../src/backends/kubernetes/parse.js';
import type { KubeCommand } from '../../../src/backends/kubernetes/types.js';
import { DrawbridgeError, type ErrorCode } from '../../../src/errors.js';

const MANIFEST = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  a: "1"\n';

function errorOf(fn: () => unknown): DrawbridgeError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DrawbridgeError) return err;
    throw err;
  }
  throw new Error('expected a DrawbridgeError, but the call succeeded');
}

const TABLE = { kind: 'table', wide: false } as const;

// ---------------------------------------------------------------------------
// Tokenizer

type TokenRow = readonly [command: string, tokens: readonly string[]];

const TOKENS: readonly TokenRow[] = [
  ['get pods', ['get', 'pods']],
  ['  get \t pods   ', ['get', 'pods']],
  ["get 'a b'", ['get', 'a b']],
  ['get \'a "b" \\ c\'', ['get', 'a "b" \\ c']],
  ['get "a \\"b\\" c"', ['get', 'a "b" c']],
  ['get "a\\\\b"', ['get', 'a\\b']],
  ['get "a\\nb"', ['get', 'a\\nb']],
  ['get a\\ b', ['get', 'a b']],
  ['get \\|', ['get', '|']],
  ['get \\;\\&\\>', ['get', ';&>']],
  ["get ''", ['get', '']],
  ['get ""', ['get', '']],
  ["-o jsonpath='{.items[*].metadata.name}'", ['-o', 'jsonpath={.items[*].metadata.name}']],
  ['a"b"\'c\'d', ['abcd']],
  ['get "\'"', ['get', "'"]],
  ["label pod web 'note=a | b; c'", ['label', 'pod', 'web', 'note=a | b; c']],
  ['get pods#x', ['get', 'pods#x']],
  // A literal $ is single-quoted: unquoted or double-quoted, a shell would expand it (refused below).
  ["get '$HOME'", ['get', '$HOME']],
  ['', []],
  ['   ', []],
];

describe('tokenize', () => {
  it.each(TOKENS)('%j', (command, tokens) => {
    expect(tokenize(command)).toEqual(tokens);
  });
});

// ---------------------------------------------------------------------------
// Valid commands

type ValidRow = readonly [command: string, expected: Partial<KubeCommand>, manifest?: string];

const VALID: readonly ValidRow[] = [
  // get
  [
    'get pods',
    {
      verb: 'get',
      types: ['pods'],
      targets: [],
      namespace: null,
      allNamespaces: false,
      labelSelector: null,
      fieldSelector: null,
      output: TABLE,
      options: { showLabels: false, noHeaders: false, sortBy: null, ignoreNotFound: false },
    },
  ],
  ['get pods -n shop -l app=web -o wide', { verb: 'get', types: ['pods'], namespace: 'shop', labelSelector: 'app=web', output: { kind: 'table', wide: true } }],
  ['get pods,svc -n shop', { types: ['pods', 'svc'], targets: [] }],
  [
    'get pods web api -n shop',
    {
      types: ['pods'],
      targets: [
        { type: 'pods', name: 'web' },
        { type: 'pods', name: 'api' },
      ],
    },
  ],
  [
    'get pods,svc web',
    {
      types: ['pods', 'svc'],
      targets: [
        { type: 'pods', name: 'web' },
        { type: 'svc', name: 'web' },
      ],
    },
  ],
  [
    'get pods/web svc/api',
    {
      types: ['pods', 'svc'],
      targets: [
        { type: 'pods', name: 'web' },
        { type: 'svc', name: 'api' },
      ],
    },
  ],
  [
    'get pods/web pods/api',
    {
      types: ['pods'],
      targets: [
        { type: 'pods', name: 'web' },
        { type: 'pods', name: 'api' },
      ],
    },
  ],
  ['get deploy web -o yaml', { types: ['deploy'], targets: [{ type: 'deploy', name: 'web' }], output: { kind: 'yaml' } }],
  ['get deployments.apps -n shop', { types: ['deployments.apps'], namespace: 'shop' }],
  ['get clusterroles system:aggregate-to-view', { targets: [{ type: 'clusterroles', name: 'system:aggregate-to-view' }] }],
  ['get pods -A', { allNamespaces: true, namespace: null }],
  ['get pods --all-namespaces', { allNamespaces: true }],
  ['get pods --all-namespaces=true', { allNamespaces: true }],
  ['get pods --all-namespaces=false', { allNamespaces: false }],
  ['get pods --all_namespaces', { allNamespaces: true }],
  ['get pods --namespace=shop', { namespace: 'shop' }],
  ['get pods --namespace shop', { namespace: 'shop' }],
  ['get pods -nshop', { namespace: 'shop' }],
  ['get pods -n=shop', { namespace: 'shop' }],
  ['-n shop get pods', { verb: 'get', namespace: 'shop', types: ['pods'] }],
  ['--namespace=shop get pods', { namespace: 'shop' }],
  ['get -n shop pods web', { namespace: 'shop', targets: [{ type: 'pods', name: 'web' }] }],
  ['get pods -o json', { output: { kind: 'json' } }],
  ['get pods -o=yaml', { output: { kind: 'yaml' } }],
  ['get pods -oname', { output: { kind: 'name' } }],
  ['get pods --output=wide', { output: { kind: 'table', wide: true } }],
  ["get pods -o jsonpath='{.items[*].metadata.name}'", { output: { kind: 'jsonpath', template: '{.items[*].metadata.name}' } }],
  ['get pods -o=jsonpath={.items[0].metadata.name}', { output: { kind: 'jsonpath', template: '{.items[0].metadata.name}' } }],
  [
    'get pods -o "jsonpath={.items[?(@.status.phase==\\"Running\\")].metadata.name}"',
    { output: { kind: 'jsonpath', template: '{.items[?(@.status.phase=="Running")].metadata.name}' } },
  ],
  ['get pods -o "jsonpath=\'{.items[*].spec.nodeName}\'"', { output: { kind: 'jsonpath', template: '{.items[*].spec.nodeName}' } }],
  ['get pods --field-selector status.phase=Running', { fieldSelector: 'status.phase=Running' }],
  ['get pods --field-selector=status.phase!=Running,spec.nodeName=node-1', { fieldSelector: 'status.phase!=Running,spec.nodeName=node-1' }],
  ["get pods -l 'env in (prod,staging)'", { labelSelector: 'env in (prod,staging)' }],
  ['get pods --selector=app=web,tier!=cache', { labelSelector: 'app=web,tier!=cache' }],
  ['get pods -l app=web -A', { labelSelector: 'app=web', allNamespaces: true }],
  [
    'get pods --show-labels --no-headers --sort-by=.metadata.creationTimestamp',
    { options: { showLabels: true, noHeaders: true, sortBy: '.metadata.creationTimestamp', ignoreNotFound: false } },
  ],
  [
    'get pods --request-timeout=30s --chunk-size 500',
    { types: ['pods'], options: { showLabels: false, noHeaders: false, sortBy: null, ignoreNotFound: false } },
  ],
  ['get pod web --ignore-not-found', { options: { showLabels: false, noHeaders: false, sortBy: null, ignoreNotFound: true } }],
  ['get all -n shop', { types: ['all'] }],
  // describe
  ['describe pod web -n shop', { verb: 'describe', types: ['pod'], targets: [{ type: 'pod', name: 'web' }], namespace: 'shop', options: {} }],
  ['describe deployment/web', { types: ['deployment'], targets: [{ type: 'deployment', name: 'web' }] }],
  ['describe nodes', { types: ['nodes'], targets: [] }],
  ['describe pods -l app=web', { labelSelector: 'app=web', targets: [] }],
  // logs
  [
    'logs web -n shop',
    {
      verb: 'logs',
      types: ['pods'],
      targets: [{ type: 'pods', name: 'web' }],
      namespace: 'shop',
      options: { container: null, previous: false, tail: null, sinceSeconds: null, timestamps: false },
    },
  ],
  ['logs web app --tail=100', { options: { container: 'app', previous: false, tail: 100, sinceSeconds: null, timestamps: false } }],
  ['logs web -c app --since 5m', { options: { container: 'app', previous: false, tail: null, sinceSeconds: 300, timestamps: false } }],
  [
    'logs deploy/web --since=1h30m --timestamps',
    {
      types: ['deploy'],
      targets: [{ type: 'deploy', name: 'web' }],
      options: { container: null, previous: false, tail: null, sinceSeconds: 5400, timestamps: true },
    },
  ],
  ['logs web -p --tail 0', { options: { container: null, previous: true, tail: 0, sinceSeconds: null, timestamps: false } }],
  ['logs web --previous=true --since=30s', { options: { container: null, previous: true, tail: null, sinceSeconds: 30, timestamps: false } }],
  [
    'logs -l app=web --tail 20',
    { types: ['pods'], targets: [], labelSelector: 'app=web', options: { container: null, previous: false, tail: 20, sinceSeconds: null, timestamps: false } },
  ],
  ['logs web -capp', { options: { container: 'app', previous: false, tail: null, sinceSeconds: null, timestamps: false } }],
  ['logs web --container=app', { options: { container: 'app', previous: false, tail: null, sinceSeconds: null, timestamps: false } }],
  ['logs web -pc app', { options: { container: 'app', previous: true, tail: null, sinceSeconds: null, timestamps: false } }],
  ['get pods -Al app=web', { allNamespaces: true, labelSelector: 'app=web' }],
  ['logs web -pcsidecar', { options: { container: 'sidecar', previous: true, tail: null, sinceSeconds: null, timestamps: false } }],
  // events
  [
    'events -n shop',
    { verb: 'events', types: ['events'], targets: [], namespace: 'shop', options: { forType: null, forName: null, eventTypes: [], noHeaders: false } },
  ],
  ['events --for pod/web', { options: { forType: 'pod', forName: 'web', eventTypes: [], noHeaders: false } }],
  ['events -A --types=Warning,normal', { allNamespaces: true, options: { forType: null, forName: null, eventTypes: ['Warning', 'Normal'], noHeaders: false } }],
  ['events -o yaml', { output: { kind: 'yaml' } }],
  // api-resources
  ['api-resources', { verb: 'api-resources', types: [], targets: [], options: { namespaced: null, apiGroup: null, noHeaders: false, sortBy: null } }],
  ['api-resources --namespaced=false', { options: { namespaced: false, apiGroup: null, noHeaders: false, sortBy: null } }],
  ['api-resources --namespaced', { options: { namespaced: true, apiGroup: null, noHeaders: false, sortBy: null } }],
  [
    'api-resources --api-group=apps -o wide --sort-by=name',
    { output: { kind: 'table', wide: true }, options: { namespaced: null, apiGroup: 'apps', noHeaders: false, sortBy: 'name' } },
  ],
  ['api-resources --api-group= -o name', { output: { kind: 'name' }, options: { namespaced: null, apiGroup: '', noHeaders: false, sortBy: null } }],
  // explain
  ['explain pods', { verb: 'explain', types: ['pods'], options: { fieldPath: null, recursive: false } }],
  ['explain deployment.spec.strategy --recursive', { types: ['deployment'], options: { fieldPath: 'spec.strategy', recursive: true } }],
  // top
  ['top pods -n shop', { verb: 'top', types: ['pods'], namespace: 'shop', options: { sortBy: null, noHeaders: false } }],
  ['top nodes', { types: ['nodes'], targets: [] }],
  ['top pod web --sort-by=cpu', { types: ['pod'], targets: [{ type: 'pod', name: 'web' }], options: { sortBy: 'cpu', noHeaders: false } }],
  ['top pods -A --sort-by memory --no-headers', { allNamespaces: true, options: { sortBy: 'memory', noHeaders: true } }],
  // delete
  [
    'delete pod web -n shop',
    {
      verb: 'delete',
      types: ['pod'],
      targets: [{ type: 'pod', name: 'web' }],
      options: { all: false, gracePeriod: null, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false },
    },
  ],
  [
    'delete pods web api',
    {
      targets: [
        { type: 'pods', name: 'web' },
        { type: 'pods', name: 'api' },
      ],
    },
  ],
  ['delete pod/web', { types: ['pod'], targets: [{ type: 'pod', name: 'web' }] }],
  ['delete pods -l app=old', { labelSelector: 'app=old', targets: [] }],
  [
    'delete pods --all -n shop',
    { targets: [], options: { all: true, gracePeriod: null, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } },
  ],
  ['delete pods --field-selector=status.phase=Failed', { fieldSelector: 'status.phase=Failed' }],
  [
    'delete pod web --grace-period=0 --force',
    { options: { all: false, gracePeriod: 0, force: true, cascade: 'background', dryRun: false, ignoreNotFound: false } },
  ],
  ['delete pod web --grace-period 0', { options: { all: false, gracePeriod: 1, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  ['delete pod web --force', { options: { all: false, gracePeriod: 0, force: true, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  ['delete pod web --grace-period=30', { options: { all: false, gracePeriod: 30, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  ['delete pod web --now', { options: { all: false, gracePeriod: 1, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  ['delete deploy web --cascade=orphan', { options: { all: false, gracePeriod: null, force: false, cascade: 'orphan', dryRun: false, ignoreNotFound: false } }],
  ['delete deploy web --cascade', { options: { all: false, gracePeriod: null, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  [
    'delete pod web --dry-run=server --ignore-not-found -o name',
    { output: { kind: 'name' }, options: { all: false, gracePeriod: null, force: false, cascade: 'background', dryRun: true, ignoreNotFound: true } },
  ],
  ['delete pod web --dry-run=none', { options: { all: false, gracePeriod: null, force: false, cascade: 'background', dryRun: false, ignoreNotFound: false } }],
  // apply / create
  ['apply', { verb: 'apply', types: [], targets: [], options: { serverSide: false, forceConflicts: false, dryRun: false } }, MANIFEST],
  ['apply --server-side --force-conflicts -n shop', { namespace: 'shop', options: { serverSide: true, forceConflicts: true, dryRun: false } }, MANIFEST],
  [
    'apply --dry-run=server --validate=false -o yaml',
    { output: { kind: 'yaml' }, options: { serverSide: false, forceConflicts: false, dryRun: true } },
    MANIFEST,
  ],
  ['apply --validate', { verb: 'apply' }, MANIFEST],
  ['create', { verb: 'create', types: [], options: { dryRun: false } }, MANIFEST],
  ['create --dry-run=server -n shop', { namespace: 'shop', options: { dryRun: true } }, MANIFEST],
  // patch
  [
    'patch deployment web -p \'{"spec":{"replicas":2}}\'',
    {
      verb: 'patch',
      types: ['deployment'],
      targets: [{ type: 'deployment', name: 'web' }],
      options: { patch: '{"spec":{"replicas":2}}', patchType: 'strategic', dryRun: false },
    },
  ],
  [
    'patch deploy/web --type merge -p \'{"metadata":{"labels":{"a":"b"}}}\'',
    { targets: [{ type: 'deploy', name: 'web' }], options: { patch: '{"metadata":{"labels":{"a":"b"}}}', patchType: 'merge', dryRun: false } },
  ],
  [
    'patch deploy web --type=json -p \'[{"op":"replace","path":"/spec/replicas","value":3}]\'',
    { options: { patch: '[{"op":"replace","path":"/spec/replicas","value":3}]', patchType: 'json', dryRun: false } },
  ],
  [
    'patch deploy web --patch="{\\"spec\\":{\\"replicas\\":1}}" --dry-run=server',
    { options: { patch: '{"spec":{"replicas":1}}', patchType: 'strategic', dryRun: true } },
  ],
  // scale
  [
    'scale deployment web --replicas=3',
    { verb: 'scale', types: ['deployment'], targets: [{ type: 'deployment', name: 'web' }], options: { replicas: 3, currentReplicas: null, dryRun: false } },
  ],
  ['scale deploy/web --replicas 0 --current-replicas=2', { options: { replicas: 0, currentReplicas: 2, dryRun: false } }],
  [
    'scale deploy web api --replicas=1 -n shop',
    {
      targets: [
        { type: 'deploy', name: 'web' },
        { type: 'deploy', name: 'api' },
      ],
      namespace: 'shop',
    },
  ],
  // rollout
  [
    'rollout status deployment/web',
    { verb: 'rollout status', types: ['deployment'], targets: [{ type: 'deployment', name: 'web' }], options: { timeoutSeconds: null } },
  ],
  ['rollout status deploy web --timeout=2m', { targets: [{ type: 'deploy', name: 'web' }], options: { timeoutSeconds: 120 } }],
  ['rollout restart deployment web -n shop', { verb: 'rollout restart', namespace: 'shop', options: { dryRun: false } }],
  ['rollout undo deploy/web --to-revision=3', { verb: 'rollout undo', options: { toRevision: 3, dryRun: false } }],
  ['rollout history deploy/web --revision 2', { verb: 'rollout history', options: { revision: 2 } }],
  ['-n shop rollout status deploy/web', { verb: 'rollout status', namespace: 'shop' }],
  ['rollout -n shop restart deploy/web', { verb: 'rollout restart', namespace: 'shop' }],
  // label / annotate
  [
    'label pod web tier=frontend',
    {
      verb: 'label',
      types: ['pod'],
      targets: [{ type: 'pod', name: 'web' }],
      options: { changes: ['tier=frontend'], overwrite: false, all: false, dryRun: false },
    },
  ],
  ['label pods web env- --overwrite', { options: { changes: ['env-'], overwrite: true, all: false, dryRun: false } }],
  ['label pods --all env=prod -n shop', { targets: [], options: { changes: ['env=prod'], overwrite: false, all: true, dryRun: false } }],
  ['label pods -l app=web team=core', { labelSelector: 'app=web', options: { changes: ['team=core'], overwrite: false, all: false, dryRun: false } }],
  [
    'label pod/web example.com/owner=me empty=',
    { targets: [{ type: 'pod', name: 'web' }], options: { changes: ['example.com/owner=me', 'empty='], overwrite: false, all: false, dryRun: false } },
  ],
  ["annotate deploy web note='hello world'", { verb: 'annotate', options: { changes: ['note=hello world'], overwrite: false, all: false, dryRun: false } }],
  [
    'annotate deploy web kubernetes.io/change-cause="fix: bump; image" --overwrite',
    { options: { changes: ['kubernetes.io/change-cause=fix: bump; image'], overwrite: true, all: false, dryRun: false } },
  ],
  ['annotate pod web note-', { options: { changes: ['note-'], overwrite: false, all: false, dryRun: false } }],
  // cordon / uncordon
  ['cordon node-1', { verb: 'cordon', types: ['nodes'], targets: [{ type: 'nodes', name: 'node-1' }], options: { dryRun: false } }],
  ['uncordon node-1', { verb: 'uncordon', types: ['nodes'], targets: [{ type: 'nodes', name: 'node-1' }] }],
  ['cordon -l pool=spot --dry-run=server', { targets: [], labelSelector: 'pool=spot', options: { dryRun: true } }],
  // exec: argv after "--" is the container's, never kubectl's
  [
    'exec web -- ls -la /',
    { verb: 'exec', types: ['pods'], targets: [{ type: 'pods', name: 'web' }], options: { command: ['ls', '-la', '/'], container: null, invokesShell: false } },
  ],
  ['exec web -c app -n shop -- env', { namespace: 'shop', options: { command: ['env'], container: 'app', invokesShell: false } }],
  [
    'exec deploy/web -- date',
    { types: ['deploy'], targets: [{ type: 'deploy', name: 'web' }], options: { command: ['date'], container: null, invokesShell: false } },
  ],
  ["exec web -- sh -c 'x'", { options: { command: ['sh', '-c', 'x'], container: null, invokesShell: true } }],
  ["exec web -- sh -c 'echo hi | wc -c'", { options: { command: ['sh', '-c', 'echo hi | wc -c'], container: null, invokesShell: true } }],
  ["exec web -- /bin/bash -lc 'ls'", { options: { command: ['/bin/bash', '-lc', 'ls'], container: null, invokesShell: true } }],
  [
    'exec web -- kubectl --kubeconfig=/x get pods -w',
    { options: { command: ['kubectl', '--kubeconfig=/x', 'get', 'pods', '-w'], container: null, invokesShell: false } },
  ],
  ['exec web -- -- x', { options: { command: ['--', 'x'], container: null, invokesShell: false } }],
];

describe('parseKubectl: valid commands', () => {
  it.for(VALID)('%s', ([command, expected, manifest]) => {
    const parsed = parseKubectl(command, manifest);
    expect(parsed).toMatchObject(expected);
  });

  it('fills every field with defaults', () => {
    expect(parseKubectl('describe nodes')).toEqual({
      verb: 'describe',
      types: ['nodes'],
      targets: [],
      namespace: null,
      allNamespaces: false,
      labelSelector: null,
      fieldSelector: null,
      output: { kind: 'table', wide: false },
      options: {},
    });
  });

  it('accepts every supported verb', () => {
    const samples: Record<string, [string, string?]> = {
      get: ['get pods'],
      describe: ['describe pods'],
      logs: ['logs web'],
      events: ['events'],
      'api-resources': ['api-resources'],
      explain: ['explain pods'],
      top: ['top pods'],
      delete: ['delete pod web'],
      apply: ['apply', MANIFEST],
      create: ['create', MANIFEST],
      patch: ['patch pod web -p {}'],
      scale: ['scale deploy web --replicas=1'],
      label: ['label pod web a=b'],
      annotate: ['annotate pod web a=b'],
      cordon: ['cordon n1'],
      uncordon: ['uncordon n1'],
      'rollout status': ['rollout status deploy/web'],
      'rollout restart': ['rollout restart deploy/web'],
      'rollout undo': ['rollout undo deploy/web'],
      'rollout history': ['rollout history deploy/web'],
      exec: ['exec web -- ls'],
    };
    expect([...SUPPORTED_VERBS].sort()).toEqual(Object.keys(samples).sort());
    for (const verb of SUPPORTED_VERBS) {
      const [command, manifest] = samples[verb] ?? ['', undefined];
      expect(parseKubectl(command, manifest).verb).toBe(verb);
    }
  });
});

// ---------------------------------------------------------------------------
// Refusals and mistakes

type ErrorRow = readonly [command: string, code: ErrorCode, message: string, manifest?: string];

const SHELL: readonly ErrorRow[] = [
  ['get pods | sh', 'kubectl.refused', 'pipe'],
  ['get pods || true', 'kubectl.refused', 'pipe'],
  ['get pods |& cat', 'kubectl.refused', 'pipe'],
  ['get pods; rm -rf /', 'kubectl.refused', 'command separator'],
  ['get pods && x', 'kubectl.refused', '&'],
  ['get pods & x', 'kubectl.refused', '&'],
  ['get pods > /tmp/x', 'kubectl.refused', 'output redirection'],
  ['get pods >> /tmp/x', 'kubectl.refused', 'output redirection'],
  ['get pods 2>/dev/null', 'kubectl.refused', 'output redirection'],
  ['get pods < /etc/passwd', 'kubectl.refused', 'input redirection'],
  ['get pods <(id)', 'kubectl.refused', 'input redirection'],
  ['get pods (id)', 'kubectl.refused', 'parenthesis'],
  ['get pods $(id)', 'kubectl.refused', '$('],
  ['get pods `id`', 'kubectl.refused', 'backtick'],
  ['get pods "$(id)"', 'kubectl.refused', '$('],
  ["get pods '$(id)'", 'kubectl.refused', '$('],
  ['get pods "`id`"', 'kubectl.refused', 'backtick'],
  ['get pods \\$(id)', 'kubectl.refused', '$('],
  ['get pods ${HOME}', 'kubectl.refused', '${'],
  ['get pods "${IFS}"', 'kubectl.refused', '${'],
  ["get pods $'\\x7c'", 'kubectl.refused', 'ANSI-C'],
  ['get $HOME', 'kubectl.refused', '"$" outside quotes'],
  ['get pods -l "app=$APP"', 'kubectl.refused', '"$" inside double quotes'],
  ['get pods "a\\$b"', 'kubectl.refused', '\\$ inside double quotes'],
  ['get pods -o jsonpath={.items[0,1].metadata.name}', 'kubectl.refused', 'brace expansion'],
  ['get pods web-{1..3}', 'kubectl.refused', 'brace expansion'],
  ['get pods #comment', 'kubectl.refused', 'comment'],
  ['get pods\nrm -rf /', 'kubectl.refused', 'newline'],
  ['get pods\r\nid', 'kubectl.refused', 'newline'],
  ['get pods "a\nb"', 'kubectl.refused', 'newline'],
  ['get pods\u0000', 'kubectl.refused', 'U+0000'],
  ['get pods \u001b[31m', 'kubectl.refused', 'U+001B'],
  ['get pods\u007f', 'kubectl.refused', 'U+007F'],
  ['get pods\u200b--kubeconfig=/tmp/x', 'kubectl.refused', 'U+200B'],
  ['get pods \u202e', 'kubectl.refused', 'U+202E'],
  ['get\u00a0pods', 'kubectl.refused', 'U+00A0'],
  ['get pods\u2028', 'kubectl.refused', 'U+2028'],
  [`get pods ${'a'.repeat(10_001)}`, 'kubectl.refused', 'characters'],
  [`get pods ${'x '.repeat(199)}`, 'kubectl.refused', '200 words'],
  ["get 'pods", 'input.invalid', 'single quote'],
  ['get "pods', 'input.invalid', 'double quote'],
  ['get "pods\\"', 'input.invalid', 'double quote'],
  ['get pods \\', 'input.invalid', 'backslash'],
  ['', 'input.invalid', 'empty'],
  ['   ', 'input.invalid', 'empty'],
  ['kubectl get pods', 'input.invalid', 'Drop the leading "kubectl"'],
  ['/usr/local/bin/kubectl get pods', 'input.invalid', 'kubectl'],
  ['KUBECTL get pods', 'input.invalid', 'kubectl'],
  ['-n shop kubectl get pods', 'input.invalid', 'kubectl'],
];

/** Every refused long flag with a sample value (null: a switch). */
const REFUSED_LONG_FLAGS: ReadonlyArray<readonly [flag: string, value: string | null]> = [
  ['kubeconfig', '/tmp/x'],
  ['server', 'https://evil'],
  ['token', 'abc'],
  ['as', 'system:admin'],
  ['as-group', 'system:masters'],
  ['as-uid', '0'],
  ['context', 'prod'],
  ['cluster', 'prod'],
  ['user', 'admin'],
  ['username', 'admin'],
  ['password', 'secret'],
  ['certificate-authority', '/tmp/ca'],
  ['client-certificate', '/tmp/c'],
  ['client-key', '/tmp/k'],
  ['insecure-skip-tls-verify', null],
  ['tls-server-name', 'evil'],
  ['cache-dir', '/tmp/c'],
  ['profile', 'cpu'],
  ['profile-output', '/tmp/p'],
  ['v', '9'],
  ['vmodule', 'x=9'],
  ['log-file', '/tmp/l'],
  ['log-dir', '/tmp'],
  ['watch', null],
  ['watch-only', null],
  ['raw', '/api/v1/secrets'],
  ['prune', null],
  ['record', null],
];

function refusedLongRows(): ErrorRow[] {
  const rows: ErrorRow[] = [];
  for (const [flag, value] of REFUSED_LONG_FLAGS) {
    const spellings = value === null ? [`--${flag}`, `--${flag}=true`, `--${flag}=false`] : [`--${flag}=${value}`, `--${flag} ${value}`];
    for (const s of spellings) {
      rows.push([`get pods ${s}`, 'kubectl.refused', `--${flag}`]);
      rows.push([`${s} get pods`, 'kubectl.refused', `--${flag}`]);
      rows.push([`delete pod ${s} web`, 'kubectl.refused', `--${flag}`]);
    }
    rows.push([`exec web --${flag.replace(/-/g, '_')}${value === null ? '' : `=${value}`} -- ls`, 'kubectl.refused', `--${flag}`]);
    rows.push([`frobnicate --${flag.toUpperCase()}${value === null ? '' : `=${value}`}`, 'kubectl.refused', `--${flag}`]);
  }
  return rows;
}

const REFUSED_FLAGS: readonly ErrorRow[] = [
  ['get pods --kubeconfig=/tmp/x', 'kubectl.refused', '--kubeconfig'],
  ['get pods -s https://evil', 'kubectl.refused', '-s'],
  ['get pods -shttps://evil', 'kubectl.refused', '-s'],
  ['get pods -s=https://evil', 'kubectl.refused', '-s'],
  ['-s https://evil get pods', 'kubectl.refused', '-s'],
  ['get pods -As https://evil', 'kubectl.refused', '-s'],
  ['get pods --as=system:admin', 'kubectl.refused', '--as'],
  ['get pods --as system:admin', 'kubectl.refused', '--as'],
  ['get pods --as_group=system:masters', 'kubectl.refused', '--as-group'],
  ['get pods -as=system:admin', 'kubectl.refused', '--as'],
  ['-n shop --context=prod get pods', 'kubectl.refused', '--context'],
  ['get pods -n shop --context=prod', 'kubectl.refused', '--context'],
  ['get pods -context prod', 'kubectl.refused', '--context'],
  ['get pods -kubeconfig=/tmp/x', 'kubectl.refused', '--kubeconfig'],
  ['get pods --Kubeconfig=/tmp/x', 'kubectl.refused', '--kubeconfig'],
  ['get pods --insecure_skip_tls_verify', 'kubectl.refused', '--insecure-skip-tls-verify'],
  ['get pods -l --kubeconfig=/tmp/x', 'kubectl.refused', '--kubeconfig'],
  ['get pods -n --as=admin', 'kubectl.refused', '--as'],
  ['get pods -v=9', 'kubectl.refused', '-v'],
  ['get pods -v9', 'kubectl.refused', '-v'],
  ['get pods -v 9', 'kubectl.refused', '-v'],
  ['get pods --v=9', 'kubectl.refused', '--v'],
  ['get pods -w', 'kubectl.refused', '-w'],
  ['get pods -Aw', 'kubectl.refused', '-w'],
  ['get pods --watch=false', 'kubectl.refused', '--watch'],
  ['rollout status deploy/web --watch', 'kubectl.refused', '--watch'],
  ['rollout status deploy/web -w', 'kubectl.refused', '-w'],
  ['get --raw /api/v1/namespaces/shop/secrets', 'kubectl.refused', '--raw'],
  ['apply --prune -l app=web', 'kubectl.refused', '--prune', MANIFEST],
  ['apply --record', 'kubectl.refused', '--record', MANIFEST],
  ['get pods --token abc --kubeconfig=/x', 'kubectl.refused', '--token'],
  ['exec -it web -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec -ti web -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec web -i -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec web -t -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec web --stdin -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec web --tty=true -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['exec web -c app -it -- sh', 'kubectl.refused', 'without a TTY or stdin'],
  ['get pods -o go-template={{.metadata.name}}', 'kubectl.refused', 'cannot be masked reliably'],
  ["get pods -o=go-template='{{range .items}}{{.metadata.name}}{{end}}'", 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o go-template-file=/tmp/t', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o GO-TEMPLATE=x', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o template=x', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods --template={{.x}}', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o jsonpath-file=/tmp/x', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o custom-columns=NAME:.metadata.name', 'kubectl.refused', 'cannot be masked reliably'],
  ['get pods -o custom-columns-file=/tmp/c', 'kubectl.refused', 'cannot be masked reliably'],
  ['apply -f manifest.yaml', 'kubectl.refused', 'pass the manifest in the manifest argument'],
  ['apply -f manifest.yaml', 'kubectl.refused', 'pass the manifest in the manifest argument', MANIFEST],
  ['apply --filename=manifest.yaml', 'kubectl.refused', 'pass the manifest in the manifest argument'],
  ['apply -k ./overlay', 'kubectl.refused', 'pass the manifest in the manifest argument'],
  ['apply --kustomize ./overlay', 'kubectl.refused', 'pass the manifest in the manifest argument'],
  ['create -f pod.yaml', 'kubectl.refused', 'pass the manifest in the manifest argument'],
  ['delete -f pod.yaml', 'kubectl.refused', '-f'],
  ['get -f pod.yaml', 'kubectl.refused', '-f'],
  ['patch deploy web --patch-file=/tmp/p', 'kubectl.refused', '--patch-file'],
  ['logs web -f', 'kubectl.refused', '--follow'],
  ['logs web --follow', 'kubectl.refused', '--follow'],
  ['logs -pf web', 'kubectl.refused', '--follow'],
  ['create deployment web --image=nginx', 'kubectl.refused', 'use a manifest', MANIFEST],
  ['create secret generic x --from-literal=a=b', 'kubectl.refused', 'use a manifest'],
  ['create token default', 'kubectl.refused', 'use a manifest'],
  ['create -n shop namespace evil', 'kubectl.refused', 'use a manifest', MANIFEST],
  ['apply --edit', 'kubectl.refused', '--edit', MANIFEST],
];

const REFUSED_VERB_LIST = [
  'proxy',
  'port-forward',
  'cp',
  'attach',
  'debug',
  'config',
  'auth',
  'run',
  'edit',
  'plugin',
  'completion',
  'certificate',
  'drain',
  'taint',
  'set',
  'autoscale',
  'expose',
  'replace',
  'wait',
  'kustomize',
  'alpha',
  'options',
  'version',
  'cluster-info',
] as const;

const REFUSED_VERBS: readonly ErrorRow[] = [
  ...REFUSED_VERB_LIST.map((verb): ErrorRow => [`${verb} x`, 'kubectl.refused', `"${verb}"`]),
  ['cp shop/web:/etc/passwd /tmp/x', 'kubectl.refused', 'copies files'],
  ['port-forward svc/db 5432:5432', 'kubectl.refused', 'tunnel'],
  ['proxy --port=8001', 'kubectl.refused', 'tunnel'],
  ['-n shop port-forward web 8080', 'kubectl.refused', 'tunnel'],
  ['config view', 'kubectl.refused', 'kubeconfig'],
  ['config view --raw', 'kubectl.refused', 'Refused'],
  ['auth can-i --list', 'kubectl.refused', 'identity'],
  ['attach web', 'kubectl.refused', 'interactive'],
  ['attach web -it', 'kubectl.refused', 'Refused'],
  ['version', 'kubectl.refused', 'not needed'],
  ['Proxy', 'kubectl.refused', 'tunnel'],
];

const INVALID: readonly ErrorRow[] = [
  ['frobnicate pods', 'input.invalid', 'Unknown verb'],
  ['GET pods', 'input.invalid', 'Unknown verb'],
  ['help', 'input.invalid', 'Unknown verb'],
  ['"rollout status" deploy/web', 'input.invalid', 'Unknown verb'],
  ['rollout pause deploy/web', 'input.invalid', 'rollout subcommand'],
  ['rollout', 'input.invalid', 'subcommand'],
  ['-n shop', 'input.invalid', 'no verb'],
  ['-A get pods', 'input.invalid', 'before the verb'],
  ['get pods --foo', 'input.invalid', 'Unknown flag --foo'],
  ['get pods -x', 'input.invalid', 'Unknown flag -x'],
  ['get pods -h', 'input.invalid', 'Unknown flag -h'],
  ['get pods --help', 'input.invalid', 'Unknown flag --help'],
  ['get pods --replicas=3', 'input.invalid', 'Unknown flag --replicas'],
  ['get pods -L app', 'input.invalid', 'Unknown flag -L'],
  ['logs web -tail 10', 'input.invalid', 'two dashes'],
  ['get pods -all-namespaces', 'input.invalid', 'two dashes'],
  ['get', 'input.invalid', 'resource type'],
  ['get pods/web svc', 'input.invalid', 'TYPE/NAME'],
  ['get pods svc/x', 'input.invalid', 'TYPE/NAME'],
  ['get pods, -n shop', 'input.invalid', 'empty resource type'],
  ['get po*ds', 'input.invalid', 'resource type'],
  ['get pods ..', 'input.invalid', 'object name'],
  ['get pods ../etc', 'input.invalid', 'TYPE/NAME'],
  ['get pods/../etc', 'input.invalid', 'object name'],
  ['get pods web -l app=web', 'input.invalid', 'not both'],
  ['get pods web -A', 'input.invalid', 'across all namespaces'],
  ['get pods -n Shop', 'input.invalid', 'namespace'],
  ['get pods -n shop -A', 'input.invalid', 'not both'],
  ['get pods -n shop -n kube-system', 'input.invalid', 'twice'],
  ['get pods -n', 'input.invalid', 'needs a value'],
  ['get pods -n -A', 'input.invalid', 'needs a value'],
  ['get pods --namespace=', 'input.invalid', 'non-empty'],
  ["get pods -l ''", 'input.invalid', 'non-empty'],
  ["get pods -l ' '", 'input.invalid', 'label selector'],
  ["get pods -l 'app=web;x'", 'input.invalid', 'label selector'],
  ['get pods -o xml', 'input.invalid', 'Unknown output format'],
  ['get pods -o jsonpath', 'input.invalid', 'needs a template'],
  ['get pods -o jsonpath=', 'input.invalid', 'needs a template'],
  // A template the gateway cannot evaluate is refused by parse, before policy and any API call.
  ["get pods -o jsonpath='{range .items[*]}{.kind}'", 'input.invalid', 'without a matching {end}'],
  ["get pods -o jsonpath='{end}'", 'input.invalid', 'without a matching {range}'],
  ['get pods -o', 'input.invalid', 'needs a value'],
  ['get pods --show-labels true', 'input.invalid', '--show-labels=true'],
  ['get pods -A=maybe', 'input.invalid', 'true or false'],
  ['get pods -- x', 'input.invalid', 'only used by exec'],
  ['describe', 'input.invalid', 'resource type'],
  ['describe pods -o yaml', 'input.invalid', 'Unknown flag -o'],
  ['logs', 'input.invalid', 'needs a pod'],
  ['logs web --tail=-1', 'input.invalid', '--tail'],
  ['logs web --tail -1', 'input.invalid', '--tail'],
  ['logs web --tail abc', 'input.invalid', '--tail'],
  ['logs web --since=5x', 'input.invalid', 'duration'],
  ['logs web --since 1.5h', 'input.invalid', 'duration'],
  ['logs web --since=0s', 'input.invalid', 'longer than 0s'],
  ['logs web a b', 'input.invalid', 'at most a pod and a container'],
  ['logs web app -c other', 'input.invalid', 'not both'],
  ['logs web -l app=web', 'input.invalid', 'not both'],
  ['logs web -c App', 'input.invalid', 'container name'],
  ['events pod/web', 'input.invalid', 'takes no arguments'],
  ['events --for web', 'input.invalid', 'TYPE/NAME'],
  ['events --types=Error', 'input.invalid', '--types'],
  ['api-resources pods', 'input.invalid', 'takes no arguments'],
  ['api-resources --api-group=Apps!', 'input.invalid', 'API group'],
  ['api-resources -o yaml', 'input.invalid', 'does not support'],
  ['explain', 'input.invalid', 'explain needs'],
  ['explain pods nodes', 'input.invalid', 'one argument'],
  ['explain pods..spec', 'input.invalid', 'TYPE.field.path'],
  ['top', 'input.invalid', 'top needs'],
  ['top deployments', 'input.invalid', 'top needs'],
  ['top nodes -A', 'input.invalid', 'not namespaced'],
  ['top pods --sort-by=name', 'input.invalid', 'cpu or memory'],
  ['delete pods', 'input.invalid', 'No object named'],
  ['delete', 'input.invalid', 'delete needs'],
  ['delete --all', 'input.invalid', 'delete needs'],
  ['delete pods web --all', 'input.invalid', 'not both'],
  ['delete pods web -l app=web', 'input.invalid', 'not both'],
  ['delete pods --all -l app=web', 'input.invalid', 'not both'],
  ['delete pod web --grace-period=-1', 'input.invalid', '--grace-period'],
  ['delete pod web --grace-period soon', 'input.invalid', '--grace-period'],
  ['delete pod web --now --grace-period=5', 'input.invalid', '--now'],
  ['delete pod web --cascade=true', 'input.invalid', '--cascade'],
  ['delete pod web --cascade orphan', 'input.invalid', '--cascade=orphan'],
  ['delete pod web --dry-run', 'input.invalid', '--dry-run=server'],
  ['delete pod web --dry-run server', 'input.invalid', '--dry-run=server'],
  ['delete pod web --dry-run=client', 'input.invalid', 'client'],
  ['delete pod web --force true', 'input.invalid', '--force=true'],
  ['delete pod web -o yaml', 'input.invalid', 'does not support'],
  ['apply', 'input.invalid', 'manifest argument'],
  ['apply', 'input.invalid', 'manifest argument', '  \n '],
  ['apply --dry-run=server', 'input.invalid', 'manifest argument'],
  ['apply deploy.yaml', 'input.invalid', 'takes no arguments', MANIFEST],
  ['apply --force-conflicts', 'input.invalid', '--server-side', MANIFEST],
  ['apply --validate=sometimes', 'input.invalid', '--validate', MANIFEST],
  ['create', 'input.invalid', 'manifest argument'],
  ['get pods', 'input.invalid', 'only used by apply and create', MANIFEST],
  ['delete pod web', 'input.invalid', 'only used by apply and create', ''],
  ['patch deploy web', 'input.invalid', '-p/--patch'],
  ['patch deploy web -p {spec:1}', 'input.invalid', 'not valid JSON'],
  ["patch deploy web -p 'spec: {replicas: 1}'", 'input.invalid', 'not valid JSON'],
  ['patch deploy web --type=json -p {}', 'input.invalid', 'JSON array'],
  ['patch deploy web -p []', 'input.invalid', 'JSON object'],
  ['patch deploy web --type=yaml -p {}', 'input.invalid', '--type'],
  ['patch deploy web api -p {}', 'input.invalid', 'exactly one object'],
  ['patch deploy -p {}', 'input.invalid', 'exactly one object'],
  ['scale deploy web', 'input.invalid', '--replicas'],
  ['scale deploy web --replicas=-1', 'input.invalid', '--replicas'],
  ['scale deploy web --replicas=two', 'input.invalid', '--replicas'],
  ['scale deploy --replicas=1', 'input.invalid', 'scale needs'],
  ['rollout status deployment', 'input.invalid', 'needs one object'],
  ['rollout status deploy a b', 'input.invalid', 'needs one object'],
  ['rollout undo deploy/web --to-revision=x', 'input.invalid', '--to-revision'],
  ['rollout status deploy/web --timeout=forever', 'input.invalid', 'duration'],
  ['rollout restart deploy/web --replicas=1', 'input.invalid', 'Unknown flag --replicas'],
  ['label pod web', 'input.invalid', 'at least one change'],
  ['label pod web app=bad!value', 'input.invalid', 'label value'],
  ['label pod web app=x-', 'input.invalid', 'label value'],
  ['label pod web app=a app-', 'input.invalid', 'twice'],
  ['label pod web =x', 'input.invalid', 'label key'],
  ['label pod web Bad_Prefix.COM/a=b', 'input.invalid', 'label key'],
  ["annotate pod web 'my key=v'", 'input.invalid', 'annotation key'],
  ['label pod web --all x=y', 'input.invalid', 'exactly one of'],
  ['label pods x=y', 'input.invalid', 'No object named'],
  ['label pod a=b web', 'input.invalid', 'name the objects first'],
  ['label app=web', 'input.invalid', 'resource type'],
  ['cordon', 'input.invalid', 'node name'],
  ['cordon n1 n2', 'input.invalid', 'one node'],
  ['cordon n1 -l pool=spot', 'input.invalid', 'not both'],
  ['exec web ls', 'input.invalid', '"--"'],
  ['exec web', 'input.invalid', '"--"'],
  ['exec web --', 'input.invalid', 'command after'],
  ["exec web -- ''", 'input.invalid', 'command after'],
  ['exec -- ls', 'input.invalid', 'exec needs a pod'],
  ['exec web -c App -- ls', 'input.invalid', 'container name'],
  ['exec web -c -- ls', 'input.invalid', 'needs a value'],
];

function expectError(command: string, code: ErrorCode, message: string, manifest?: string): void {
  const err = errorOf(() => parseKubectl(command, manifest));
  expect(err.code, `${command} → ${err.code}: ${err.message}`).toBe(code);
  expect(err.message).toContain(message);
  expect(err.hint.length).toBeGreaterThan(0);
}

describe('parseKubectl: shell syntax and tokenizer limits (permanent evasion suite)', () => {
  it.for(SHELL)('%j → %s', (row) => expectError(...row));
});

describe('parseKubectl: refused flags in every spelling and position (permanent evasion suite)', () => {
  it.for(REFUSED_FLAGS)('%s → %s', (row) => expectError(...row));
  it.for(refusedLongRows())('%s → %s', (row) => expectError(...row));
});

describe('parseKubectl: refused verbs (permanent evasion suite)', () => {
  it.for(REFUSED_VERBS)('%s → %s', (row) => expectError(...row));
});

describe('parseKubectl: invalid input is never guessed at', () => {
  it.for(INVALID)('%j → %s', (row) => expectError(...row));
});

describe('errors', () => {
  it('kubectl.refused carries the catalog hint', () => {
    const err = errorOf(() => parseKubectl('port-forward svc/db 5432'));
    expect(err.hint).toContain('This kubectl feature is not available through the gateway');
  });

  it("input.invalid for an unknown flag lists the verb's flags", () => {
    const err = errorOf(() => parseKubectl('logs web --bogus'));
    expect(err.hint).toContain('--tail');
    expect(err.hint).toContain('-c/--container');
  });

  it('input.invalid for an unknown verb lists the supported verbs', () => {
    const err = errorOf(() => parseKubectl('frobnicate'));
    for (const verb of SUPPORTED_VERBS) expect(err.hint).toContain(verb);
  });

  it('tokenize refuses on its own, without parsing', () => {
    expect(errorOf(() => tokenize('get pods | sh')).code).toBe('kubectl.refused');
    expect(errorOf(() => tokenize("get 'pods")).code).toBe('input.invalid');
  });

  it('accepts exactly 200 words and 10,000 characters', () => {
    expect(tokenize(Array.from({ length: 200 }, () => 'x').join(' '))).toHaveLength(200);
    expect(tokenize(`get ${'a'.repeat(9_996)}`)).toHaveLength(2);
  });
});
