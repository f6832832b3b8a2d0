// A faithful, in-process fake Kubernetes API server for tests.
//
// It speaks the REST API that kubectl-style clients (and @kubernetes/client-node) use:
// discovery, CRUD with resourceVersion conflicts, the four patch types, dry run, label and
// field selectors, pagination, watch, server-side Table printing, the scale/status
// subresources, container logs, exec over WebSocket (v5/v4/v1 channel protocols),
// impersonation headers and an optional authorizer. It records every request.
//
// Deliberate simplifications (documented so nobody mistakes them for the real thing):
// - One global resourceVersion counter; no-op writes do not bump it (like the real server).
// - A minimal deployment controller runs synchronously after each deployment write: it picks
//   or creates the ReplicaSet for the pod template (revision annotations, owner references),
//   scales old ReplicaSets to zero and marks the rollout complete. It never creates or deletes
//   pods. ReplicaSet/StatefulSet status follows spec.replicas instantly. `controllers: false`
//   turns this off.
// - Deleting a namespace removes its objects at once; the response still shows the namespace
//   Terminating, as the real server does. Pods are deleted at once too (the response carries
//   deletionTimestamp, like a graceful delete's first answer).
// - Server-side apply merges (strategic for built-in types, JSON merge for custom resources)
//   and records a managedFields entry, without field-ownership conflicts.
// - Every endpoint, including discovery and /version, requires the bearer token.
// - SelfSubjectReview (authentication.k8s.io/v1) answers with the caller's user info: the token's
//   user (a service account by default, with its groups) or the impersonated user and groups
//   plus system:authenticated. `selfSubjectReview: false` models a server before 1.28 (404).

import { randomBytes, randomUUID, createHash } from 'node:crypto';
import http, { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import {
  ApiError,
  asArray,
  asNumber,
  asRecord,
  asString,
  canonicalJson,
  clone,
  deepEqual,
  isRecord,
  metadataOf,
  randomSuffix,
  rfc3339,
  safeEncode,
  stableUid,
  type KubeObject,
  type KubeObjectSnapshot,
  type OwnerReference,
} from './model.js';
import { applyJsonPatch, jsonMergePatch, strategicMergePatch } from './patch.js';
import {
  RESOURCES,
  VERSION_INFO,
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersionOf,
  apiVersions,
  findResource,
  findResourceByKind,
  groupVersionServed,
  qualifiedKind,
  qualifiedResource,
  type ResourceDef,
} from './resources.js';
import { matchesFields, matchesLabels, parseFieldSelector, parseLabelSelector, type FieldRequirement, type LabelRequirement } from './selectors.js';
import { DEFAULT_LOGS, DEFAULT_SEED, type SeedLog } from './seed.js';
import { buildTable, type IncludeObject } from './tables.js';
import { WebSocketServer, WS_OPEN, type WsServer, type WsSocket } from './ws.js';

export type { KubeMetadata, KubeObject, KubeObjectSnapshot, OwnerReference } from './model.js';
export type { SeedLog } from './seed.js';
export { DEFAULT_LOGS, DEFAULT_SEED, SEED_PLAINTEXT_CREDENTIALS, SEED_SECRETS, SEED_SECRET_VALUES } from './seed.js';
export { RESOURCES, type ResourceDef } from './resources.js';

// ---------------------------------------------------------------------------------------------
// Public API

/** What the optional authorizer is asked (like a SubjectAccessReview's resourceAttributes). */
export interface RbacRequest {
  /** The Impersonate-User header, or null when the gateway acts as itself. */
  readonly user: string | null;
  /** The Impersonate-Group headers. */
  readonly groups: readonly string[];
  /** get, list, watch, create, update, patch, delete, deletecollection (exec and eviction are `create`). */
  readonly verb: string;
  /** API group, "" for core. */
  readonly group: string;
  /** Plural resource, e.g. "pods", "deployments". */
  readonly resource: string;
  /** "", "log", "exec", "scale", "status", "eviction"… */
  readonly subresource: string;
  /** Namespace of the request (for a Namespace object, its own name); null at cluster scope. */
  readonly namespace: string | null;
  readonly name: string | null;
}
export type RbacCheck = (req: RbacRequest) => boolean;

export interface ExecRequest {
  readonly namespace: string;
  readonly pod: string;
  readonly container: string;
  readonly command: string[];
  readonly tty: boolean;
  /** Data sent on the stdin channel (only collected with stdin=true on v5.channel.k8s.io). */
  readonly stdin: string;
  readonly user: string | null;
  readonly groups: readonly string[];
}
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** Wait this long before answering (to exercise client timeouts). */
  readonly delayMs?: number;
}
export type ExecHandler = (req: ExecRequest) => ExecResult | Promise<ExecResult>;
export interface RecordedExec extends ExecRequest {
  /** Negotiated subprotocol, e.g. "v5.channel.k8s.io". */
  readonly protocol: string;
}

export interface RecordedRequest {
  readonly method: string;
  /** URL path, still percent-encoded as sent. */
  readonly path: string;
  /** Query parameters; a repeated parameter (e.g. exec `command`) becomes an array. */
  readonly query: Readonly<Record<string, string | string[]>>;
  /** Header names in lower case (Node's convention); repeated headers become arrays. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  readonly body: string;
  readonly impersonateUser: string | null;
  readonly impersonateGroups: readonly string[];
  /** Kubernetes verb when the path named a resource: list, watch, get, create, update, patch, delete, deletecollection. */
  readonly verb: string | null;
  readonly group: string | null;
  readonly resource: string | null;
  readonly subresource: string | null;
  readonly namespace: string | null;
  readonly name: string | null;
  /** Response status (0 until the response has been written; 101 for an accepted exec upgrade). */
  readonly status: number;
}

export interface FakeKubeOptions {
  /** Objects to start with (default DEFAULT_SEED). */
  seed?: readonly KubeObject[];
  /** Container logs to start with (default DEFAULT_LOGS with the default seed, none otherwise). */
  logs?: readonly SeedLog[];
  /** Bearer token the server accepts (default: random). */
  token?: string;
  /** Authorizer; false → 403 Forbidden. Called for every resource request, never for discovery. */
  rbac?: RbacCheck;
  /** Run the minimal deployment/replicaset controller after writes (default true). */
  controllers?: boolean;
  /** The bearer token's user: Forbidden messages and SelfSubjectReview (default system:serviceaccount:drawbridge:gateway). */
  tokenUser?: string;
  /** The token user's groups in a SelfSubjectReview (default: a service account's groups, or system:authenticated). */
  tokenGroups?: readonly string[];
  /** Serve authentication.k8s.io/v1 selfsubjectreviews (default true); false answers 404 like a server before 1.28. */
  selfSubjectReview?: boolean;
}

/**
 * A connection fault the fake injects into matching requests (setFault), to
 * test what a client does when the API server goes away mid-request.
 */
export interface KubeFault {
  /** The HTTP method to hit (any when absent; an exec upgrade is a GET). */
  readonly method?: string;
  /** The URL path to hit: exact (still percent-encoded, as sent), or a RegExp. */
  readonly path: string | RegExp;
  /**
   * - 'drop-request': the request is read in full, then its socket is destroyed
   *   before it is handled: nothing is applied and nothing is answered.
   * - 'cut-response': the request is handled (a write is applied and stored, as
   *   by a server that committed it), then the socket is destroyed after the
   *   status line, the headers and half of the body.
   * - 'cut-exec': a pods/exec session opens and the exec handler runs; the
   *   socket is destroyed (no close frame) after the first half of the
   *   stdout, before stderr and the status.
   */
  readonly kind: 'drop-request' | 'cut-response' | 'cut-exec';
  /** How many matching requests it hits (default 1); then it is gone. */
  readonly times?: number;
}

export interface KubeconfigOptions {
  /** Adds `as:` to the user, so client-node sends Impersonate-User on every request. */
  impersonate?: string;
  /** Use another token than the accepted one (to test 401). */
  token?: string;
}

export interface FakeKube {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly token: string;
  /** Kubeconfig YAML (cluster `fake`, user `fake-user`, context `fake`; plain http with insecure-skip-tls-verify). */
  kubeconfig(namespace?: string, options?: KubeconfigOptions): string;
  /** Every request received so far (a copy). */
  readonly requests: ReadonlyArray<RecordedRequest>;
  clearRequests(): void;
  /** Every exec session accepted so far (a copy). */
  readonly execs: ReadonlyArray<RecordedExec>;
  /** Current global resourceVersion. */
  readonly resourceVersion: string;
  /** Restore the seed objects and default logs, exec handler and authorizer; clear recorded requests and execs; disarm faults; end watches. */
  reset(): void;
  /** Deep copy of the whole store (see KubeObjectSnapshot for the keys). */
  objects(): KubeObjectSnapshot;
  /** Deep copy of one object. `resource` is a plural ("deployments") or "group/plural" ("apps/deployments", "core/pods"). */
  object(resource: string, namespace: string | null, name: string): KubeObject | undefined;
  /** Store an object directly (no validation, no controllers), as a test fixture. Returns the stored copy. */
  upsert(obj: KubeObject): KubeObject;
  /** Replace one container's log (previous = the last terminated instance). Lines get timestamps one second apart ending now. */
  setLogs(namespace: string, pod: string, container: string, text: string, previous?: boolean): void;
  /** Replace the exec handler; null restores the default (echo the argv joined by spaces, exit 0). */
  setExecHandler(fn: ExecHandler | null): void;
  /** Replace the authorizer; null allows everything. */
  setRbac(fn: RbacCheck | null): void;
  /** Arm a connection fault for the next matching request(s); null disarms. reset() disarms too. */
  setFault(fault: KubeFault | null): void;
  /** How many requests the armed fault(s) have hit since start or the last reset() (across setFault calls). */
  readonly faultsHit: number;
  close(): Promise<void>;
}

export const DEFAULT_EXEC_HANDLER: ExecHandler = (req) => ({ stdout: `${req.command.join(' ')}\n`, stderr: '', exitCode: 0 });

export async function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKube> {
  const fake = new FakeKubeServer(options);
  await fake.listen();
  return fake;
}

// ---------------------------------------------------------------------------------------------
// Implementation

interface Entry {
  readonly def: ResourceDef;
  obj: KubeObject;
}

interface MutableRecord {
  method: string;
  path: string;
  query: Record<string, string | string[]>;
  headers: Record<string, string | string[]>;
  body: string;
  impersonateUser: string | null;
  impersonateGroups: string[];
  verb: string | null;
  group: string | null;
  resource: string | null;
  subresource: string | null;
  namespace: string | null;
  name: string | null;
  status: number;
}

type Rendering =
  { readonly kind: 'json' | 'yaml' } | { readonly kind: 'table'; readonly apiVersion: string } | { readonly kind: 'partial'; readonly apiVersion: string };

interface Ctx {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly body: string;
  readonly rec: MutableRecord;
  readonly user: string | null;
  readonly groups: readonly string[];
  readonly now: Date;
}

interface Target {
  readonly def: ResourceDef;
  readonly namespace: string | null;
  readonly name: string | undefined;
  readonly sub: string | undefined;
}

interface Watcher {
  readonly def: ResourceDef;
  readonly namespace: string | null;
  readonly labels: readonly LabelRequirement[];
  readonly fields: readonly FieldRequirement[];
  readonly res: ServerResponse;
  readonly rendering: Rendering;
  readonly includeObject: IncludeObject;
  timer?: NodeJS.Timeout;
}

interface LogLine {
  readonly t: number;
  readonly text: string;
}

type WatchType = 'ADDED' | 'MODIFIED' | 'DELETED';

const NS_DEF = findResource('', 'v1', 'namespaces')!;
const POD_DEF = findResource('', 'v1', 'pods')!;
const RS_DEF = findResource('apps', 'v1', 'replicasets')!;
const AUTHN_GROUP = 'authentication.k8s.io';
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'v3.channel.k8s.io', 'v2.channel.k8s.io', 'channel.k8s.io'];
const PATCH_TYPES = 'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json';
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

/** The groups a real API server gives a user: a service account's three, or just system:authenticated. */
function defaultGroups(user: string): string[] {
  const sa = /^system:serviceaccount:([^:]+):[^:]+$/.exec(user);
  return sa ? ['system:serviceaccounts', `system:serviceaccounts:${sa[1]!}`, 'system:authenticated'] : ['system:authenticated'];
}

function resourceDetails(def: ResourceDef, name: string | undefined): Record<string, unknown> {
  return { ...(name !== undefined ? { name } : {}), ...(def.group ? { group: def.group } : {}), kind: def.resource };
}

function notFound(def: ResourceDef, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualifiedResource(def)} "${name}" not found`, resourceDetails(def, name));
}

function conflict(
  def: ResourceDef,
  name: string,
  why = 'the object has been modified; please apply your changes to the latest version and try again',
): ApiError {
  return new ApiError(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(def)} "${name}": ${why}`, resourceDetails(def, name));
}

function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

interface Cause {
  readonly field: string;
  readonly reason: 'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden';
  readonly message: string;
}

function invalid(kindLabel: string, group: string, kind: string, name: string, causes: readonly Cause[]): ApiError {
  return new ApiError(422, 'Invalid', `${kindLabel} "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(', ')}`, {
    name,
    ...(group ? { group } : {}),
    kind,
    causes: causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field })),
  });
}

function invalidObject(def: ResourceDef, name: string, causes: readonly Cause[]): ApiError {
  return invalid(qualifiedKind(def), def.group, def.kind, name, causes);
}

const methodNotAllowed = (): ApiError => new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
const resourceNotFound = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});

function storeKey(def: ResourceDef, namespace: string | null | undefined, name: string): string {
  return `${def.group || 'core'}/${def.resource}/${def.namespaced ? `${namespace ?? ''}/` : ''}${name}`;
}

function bool(v: string | null): boolean {
  return v === 'true' || v === '1';
}

function stripEmptyMetadataMaps(obj: KubeObject): void {
  const md = metadataOf(obj);
  for (const k of ['labels', 'annotations'] as const) {
    if (md[k] !== undefined && (!isRecord(md[k]) || Object.keys(md[k]).length === 0)) delete md[k];
  }
  for (const k of ['finalizers', 'ownerReferences'] as const) {
    if (md[k] !== undefined && (!Array.isArray(md[k]) || md[k].length === 0)) delete md[k];
  }
}

/** The parts of an object whose change bumps metadata.generation. */
function specPart(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

/** managedFields-style field set (three levels deep). */
function fieldsOf(value: unknown, depth = 3): Record<string, unknown> {
  if (!isRecord(value) || depth === 0) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (['uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields', 'selfLink', 'deletionTimestamp'].includes(k)) continue;
    out[`f:${k}`] = isRecord(v) && depth > 1 ? { '.': {}, ...fieldsOf(v, depth - 1) } : {};
  }
  return out;
}

function managedFieldsEntry(obj: KubeObject, manager: string, operation: 'Update' | 'Apply', now: Date, subresource?: string): Record<string, unknown> {
  const { apiVersion: _a, kind: _k, ...content } = obj;
  const md = asRecord(content['metadata']);
  const slim: Record<string, unknown> = {
    ...content,
    metadata: { ...(md['labels'] ? { labels: md['labels'] } : {}), ...(md['annotations'] ? { annotations: md['annotations'] } : {}) },
  };
  if (subresource === 'status') for (const k of Object.keys(slim)) if (k !== 'status') delete slim[k];
  if (subresource !== 'status') delete slim['status'];
  return {
    manager,
    operation,
    apiVersion: obj.apiVersion,
    time: rfc3339(now),
    fieldsType: 'FieldsV1',
    fieldsV1: fieldsOf(slim),
    ...(subresource ? { subresource } : {}),
  };
}

function withoutVolatile(obj: KubeObject | undefined): unknown {
  if (!obj) return obj;
  const c = clone(obj);
  const md = metadataOf(c);
  delete md.managedFields;
  delete md.resourceVersion;
  return c;
}

function hasStatusSubresource(def: ResourceDef): boolean {
  return def.subresources.some((s) => s.name === 'status');
}

function negotiate(accept: string | undefined): Rendering | null {
  if (!accept || accept.trim() === '') return { kind: 'json' };
  for (const part of accept.split(',')) {
    const [typeRaw, ...paramsRaw] = part.split(';');
    const type = (typeRaw ?? '').trim().toLowerCase();
    const params: Record<string, string> = {};
    for (const p of paramsRaw) {
      const [k, v] = p.split('=');
      if (k !== undefined && v !== undefined) params[k.trim()] = v.trim();
    }
    if (type === 'application/yaml' && params['as'] === undefined) return { kind: 'yaml' };
    if (type !== 'application/json' && type !== '*/*' && type !== 'application/*') continue;
    const as = params['as'];
    if (as === undefined) return { kind: 'json' };
    const gv = params['g'] === 'meta.k8s.io' && (params['v'] === 'v1' || params['v'] === 'v1beta1');
    if (!gv) continue;
    const apiVersion = `meta.k8s.io/${params['v']!}`;
    if (as === 'Table') return { kind: 'table', apiVersion };
    if (as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') return { kind: 'partial', apiVersion };
  }
  return null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function podContainerNames(pod: KubeObject): { containers: string[]; init: string[]; ephemeral: string[] } {
  const names = (field: string): string[] => asArray(asRecord(pod['spec'])[field]).map((c) => asString(asRecord(c)['name']) ?? '');
  return { containers: names('containers'), init: names('initContainers'), ephemeral: names('ephemeralContainers') };
}

class FakeKubeServer implements FakeKube {
  readonly token: string;
  private readonly server: http.Server;
  private readonly wss: WsServer;
  private port = 0;
  private map = new Map<string, Entry>();
  private initial = new Map<string, Entry>();
  private rv = 4000;
  private readonly recorded: MutableRecord[] = [];
  private readonly execLog: RecordedExec[] = [];
  private readonly watchers = new Set<Watcher>();
  private logs = new Map<string, LogLine[]>();
  private execHandler: ExecHandler = DEFAULT_EXEC_HANDLER;
  private rbac: RbacCheck | undefined;
  private fault: { readonly spec: KubeFault; left: number } | null = null;
  private hits = 0;
  /** Responses to cut off half-way (a 'cut-response' fault hit their request). */
  private readonly cutting = new WeakSet<ServerResponse>();
  private readonly controllers: boolean;
  private readonly tokenUser: string;
  private readonly tokenGroups: readonly string[];
  private readonly selfSubjectReview: boolean;
  private ipCounter = 200;

  constructor(private readonly options: FakeKubeOptions) {
    this.token = options.token ?? `fake-${randomBytes(16).toString('hex')}`;
    this.rbac = options.rbac;
    this.controllers = options.controllers ?? true;
    this.tokenUser = options.tokenUser ?? 'system:serviceaccount:drawbridge:gateway';
    this.tokenGroups = options.tokenGroups ?? defaultGroups(this.tokenUser);
    this.selfSubjectReview = options.selfSubjectReview ?? true;
    this.loadSeed(options.seed ?? DEFAULT_SEED);
    this.initial = this.cloneMap(this.map);
    this.loadLogs();
    this.server = http.createServer((req, res) => {
      void this.handleHttp(req, res);
    });
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => EXEC_PROTOCOLS.find((p) => protocols.has(p)) ?? false,
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.handleUpgrade(req, socket, head));
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  // ---- public surface ----

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get requests(): ReadonlyArray<RecordedRequest> {
    return this.recorded.map((r) => ({ ...r }));
  }

  get execs(): ReadonlyArray<RecordedExec> {
    return this.execLog.map((e) => ({ ...e, command: [...e.command], groups: [...e.groups] }));
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  clearRequests(): void {
    this.recorded.length = 0;
  }

  kubeconfig(namespace?: string, options: KubeconfigOptions = {}): string {
    return stringifyYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake-user', user: { token: options.token ?? this.token, ...(options.impersonate ? { as: options.impersonate } : {}) } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake-user', ...(namespace ? { namespace } : {}) } }],
      'current-context': 'fake',
      preferences: {},
    });
  }

  reset(): void {
    this.endWatches();
    this.map = this.cloneMap(this.initial);
    this.loadLogs();
    this.execHandler = DEFAULT_EXEC_HANDLER;
    this.rbac = this.options.rbac;
    this.fault = null;
    this.hits = 0;
    this.recorded.length = 0;
    this.execLog.length = 0;
  }

  objects(): KubeObjectSnapshot {
    const out: KubeObjectSnapshot = {};
    for (const key of [...this.map.keys()].sort()) out[key] = clone(this.map.get(key)!.obj);
    return out;
  }

  object(resource: string, namespace: string | null, name: string): KubeObject | undefined {
    const [g, r] = resource.includes('/') ? resource.split('/', 2) : [undefined, resource];
    const group = g === 'core' ? '' : g;
    const def = RESOURCES.find((d) => d.resource === r && (group === undefined || d.group === group));
    if (!def) throw new Error(`fake-kube: unknown resource ${resource}`);
    const e = this.map.get(storeKey(def, namespace, name));
    return e ? clone(e.obj) : undefined;
  }

  upsert(input: KubeObject): KubeObject {
    const def = findResourceByKind(input.apiVersion ?? '', input.kind ?? '');
    if (!def) throw new Error(`fake-kube: no resource serves ${input.apiVersion ?? '?'} ${input.kind ?? '?'}`);
    const obj = clone(input);
    const md = metadataOf(obj);
    if (!md.name) throw new Error('fake-kube: upsert needs metadata.name');
    const old = this.map.get(storeKey(def, md.namespace, md.name));
    md.uid ??= old?.obj.metadata?.uid ?? randomUUID();
    md.creationTimestamp ??= old?.obj.metadata?.creationTimestamp ?? rfc3339(new Date());
    md.generation ??= old?.obj.metadata?.generation ?? 1;
    return clone(this.put(def, obj));
  }

  setLogs(namespace: string, pod: string, container: string, text: string, previous = false): void {
    this.logs.set(this.logKey(namespace, pod, container, previous), this.toLines(text, Date.now()));
  }

  setExecHandler(fn: ExecHandler | null): void {
    this.execHandler = fn ?? DEFAULT_EXEC_HANDLER;
  }

  setRbac(fn: RbacCheck | null): void {
    this.rbac = fn ?? undefined;
  }

  setFault(fault: KubeFault | null): void {
    this.fault = fault === null ? null : { spec: fault, left: fault.times ?? 1 };
  }

  get faultsHit(): number {
    return this.hits;
  }

  /** The armed fault's kind if this request matches it (and uses up one of its hits). */
  private takeFault(method: string, path: string, kinds: ReadonlyArray<KubeFault['kind']>): KubeFault['kind'] | null {
    const f = this.fault;
    if (!f || !kinds.includes(f.spec.kind)) return null;
    if (f.spec.method !== undefined && f.spec.method.toUpperCase() !== method.toUpperCase()) return null;
    if (typeof f.spec.path === 'string' ? f.spec.path !== path : !f.spec.path.test(path)) return null;
    if (--f.left <= 0) this.fault = null;
    this.hits++;
    return f.spec.kind;
  }

  async close(): Promise<void> {
    this.endWatches();
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- seed, store ----

  private cloneMap(m: Map<string, Entry>): Map<string, Entry> {
    const out = new Map<string, Entry>();
    for (const [k, e] of m) out.set(k, { def: e.def, obj: clone(e.obj) });
    return out;
  }

  private loadSeed(seed: readonly KubeObject[]): void {
    const now = new Date();
    const staged: Array<{ def: ResourceDef; obj: KubeObject }> = [];
    for (const raw of seed) {
      const def = findResourceByKind(raw.apiVersion ?? '', raw.kind ?? '');
      if (!def) throw new Error(`fake-kube: seed object ${raw.apiVersion ?? '?'}/${raw.kind ?? '?'} is not a served kind`);
      const obj = clone(raw);
      const md = metadataOf(obj);
      if (!md.name) throw new Error('fake-kube: seed object without metadata.name');
      if (!def.namespaced) delete md.namespace;
      else md.namespace ??= 'default';
      md.uid ??= stableUid(storeKey(def, md.namespace, md.name));
      md.creationTimestamp ??= rfc3339(now);
      md.generation ??= 1;
      staged.push({ def, obj });
    }
    const uidOf = (apiVersion: string, kind: string, namespace: string | undefined, name: string): string | undefined => {
      const d = findResourceByKind(apiVersion, kind);
      if (!d) return undefined;
      return staged.find((s) => s.def === d && s.obj.metadata?.name === name && (!d.namespaced || s.obj.metadata?.namespace === namespace))?.obj.metadata?.uid;
    };
    for (const { def, obj } of staged) {
      const md = metadataOf(obj);
      for (const ref of md.ownerReferences ?? []) {
        ref.uid ??= uidOf(ref.apiVersion, ref.kind, md.namespace, ref.name) ?? stableUid(`${ref.kind}/${ref.name}`);
      }
      if (def.resource === 'events' && isRecord(obj['involvedObject'])) {
        const io = obj['involvedObject'];
        if (io['uid'] === undefined) {
          const uid = uidOf(String(io['apiVersion'] ?? ''), String(io['kind'] ?? ''), asString(io['namespace']), String(io['name'] ?? ''));
          if (uid) io['uid'] = uid;
        }
      }
      if (md.managedFields === undefined) {
        const manager =
          md.annotations?.['kubectl.kubernetes.io/last-applied-configuration'] !== undefined
            ? 'kubectl-client-side-apply'
            : (md.ownerReferences ?? []).some((r) => r.controller)
              ? 'kube-controller-manager'
              : 'kubectl-create';
        md.managedFields = [managedFieldsEntry(obj, manager, 'Update', new Date(md.creationTimestamp ?? now))];
      }
      this.put(def, obj, false);
    }
  }

  private loadLogs(): void {
    this.logs = new Map();
    const logs = this.options.logs ?? (this.options.seed === undefined ? DEFAULT_LOGS : []);
    const now = Date.now();
    for (const l of logs)
      this.logs.set(this.logKey(l.namespace, l.pod, l.container, l.previous ?? false), this.toLines(l.text, l.previous ? now - 5 * 3600_000 : now));
  }

  private logKey(ns: string, pod: string, container: string, previous: boolean): string {
    return `${ns}/${pod}/${container}/${previous ? 'previous' : 'current'}`;
  }

  private toLines(text: string, end: number): LogLine[] {
    const parts = text.split('\n');
    if (parts.length && parts[parts.length - 1] === '') parts.pop();
    return parts.map((t, i) => ({ t: end - (parts.length - 1 - i) * 1000, text: t }));
  }

  private getEntry(def: ResourceDef, namespace: string | null, name: string): Entry | undefined {
    return this.map.get(storeKey(def, namespace, name));
  }

  private mustGet(def: ResourceDef, namespace: string | null, name: string): KubeObject {
    const e = this.getEntry(def, namespace, name);
    if (!e) throw notFound(def, name);
    return e.obj;
  }

  /** Stores an object (assigning a new resourceVersion) and notifies watchers. */
  private put(def: ResourceDef, obj: KubeObject, notify = true): KubeObject {
    const md = metadataOf(obj);
    const key = storeKey(def, md.namespace, md.name ?? '');
    const old = this.map.get(key);
    md.resourceVersion = String(++this.rv);
    const stored = clone(obj);
    this.map.set(key, { def, obj: stored });
    if (notify) this.notify(def, old ? 'MODIFIED' : 'ADDED', old?.obj, stored);
    return stored;
  }

  private remove(def: ResourceDef, namespace: string | null, name: string): KubeObject | undefined {
    const key = storeKey(def, namespace, name);
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    const last = clone(e.obj);
    metadataOf(last).resourceVersion = String(++this.rv);
    this.notify(def, 'DELETED', e.obj, last);
    return last;
  }

  private list(
    def: ResourceDef,
    namespace: string | null,
    labels: readonly LabelRequirement[] = [],
    fields: readonly FieldRequirement[] = [],
  ): Array<{ key: string; obj: KubeObject }> {
    const out: Array<{ key: string; obj: KubeObject }> = [];
    for (const [key, e] of this.map) {
      if (e.def !== def) continue;
      if (def.namespaced && namespace !== null && e.obj.metadata?.namespace !== namespace) continue;
      if (!matchesLabels(labels, e.obj.metadata?.labels) || !matchesFields(fields, e.obj)) continue;
      out.push({ key, obj: e.obj });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private namespaceExists(ns: string): boolean {
    return this.map.has(storeKey(NS_DEF, null, ns));
  }

  // ---- watch ----

  private notify(def: ResourceDef, type: WatchType, old: KubeObject | undefined, obj: KubeObject): void {
    for (const w of this.watchers) {
      if (w.def !== def) continue;
      const inNs = (o: KubeObject | undefined): boolean => !!o && (!def.namespaced || w.namespace === null || o.metadata?.namespace === w.namespace);
      const matches = (o: KubeObject | undefined): boolean => inNs(o) && matchesLabels(w.labels, o!.metadata?.labels) && matchesFields(w.fields, o!);
      let event: WatchType | undefined;
      if (type === 'DELETED') event = matches(old) ? 'DELETED' : undefined;
      else if (matches(obj)) event = matches(old) ? 'MODIFIED' : 'ADDED';
      else if (matches(old)) event = 'DELETED';
      if (event) this.writeWatchEvent(w, event, obj);
    }
  }

  private writeWatchEvent(w: Watcher, type: WatchType, obj: KubeObject): void {
    let payload: unknown = clone(obj);
    if (w.rendering.kind === 'table') {
      payload = buildTable(w.def, [obj], {
        apiVersion: w.rendering.apiVersion,
        includeObject: w.includeObject,
        resourceVersion: obj.metadata?.resourceVersion ?? '',
        now: new Date(),
      });
    } else if (w.rendering.kind === 'partial') {
      payload = { kind: 'PartialObjectMetadata', apiVersion: w.rendering.apiVersion, metadata: clone(obj.metadata ?? {}) };
    }
    w.res.write(`${JSON.stringify({ type, object: payload })}\n`);
  }

  private endWatches(): void {
    for (const w of this.watchers) {
      if (w.timer) clearTimeout(w.timer);
      w.res.end();
    }
    this.watchers.clear();
  }

  // ---- HTTP ----

  private record(req: IncomingMessage, url: URL, body: string): MutableRecord {
    const query: Record<string, string | string[]> = {};
    for (const key of new Set(url.searchParams.keys())) {
      const all = url.searchParams.getAll(key);
      query[key] = all.length === 1 ? all[0]! : all;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headersDistinct)) {
      if (v) headers[k] = v.length === 1 ? v[0]! : [...v];
    }
    const rec: MutableRecord = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query,
      headers,
      body,
      impersonateUser: req.headersDistinct['impersonate-user']?.[0] ?? null,
      impersonateGroups: [...(req.headersDistinct['impersonate-group'] ?? [])],
      verb: null,
      group: null,
      resource: null,
      subresource: null,
      namespace: null,
      name: null,
      status: 0,
    };
    this.recorded.push(rec);
    return rec;
  }

  /** Authentication and impersonation; returns the effective (impersonated) user and groups. */
  private authenticate(req: IncomingMessage): { user: string | null; groups: string[] } {
    if (req.headers.authorization !== `Bearer ${this.token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    const user = req.headersDistinct['impersonate-user']?.[0] ?? null;
    const groups = [...(req.headersDistinct['impersonate-group'] ?? [])];
    const uid = req.headersDistinct['impersonate-uid']?.[0];
    if (user === null && (groups.length > 0 || uid !== undefined)) {
      const requested = [...groups.map((g) => `{Group  ${g}  }`), ...(uid !== undefined ? [`{UID  ${uid}  }`] : [])];
      throw new ApiError(500, 'InternalError', `Internal error occurred: requested [${requested.join(' ')}] without impersonating a user`, {
        causes: [{ message: `requested [${requested.join(' ')}] without impersonating a user` }],
      });
    }
    return { user, groups };
  }

  private async handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    try {
      for await (const c of req) chunks.push(c as Buffer);
    } catch {
      res.destroy();
      return;
    }
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec = this.record(req, url, body);
    const fault = this.takeFault(req.method ?? 'GET', url.pathname, ['drop-request', 'cut-response']);
    if (fault === 'drop-request') {
      req.socket.destroy();
      return;
    }
    if (fault === 'cut-response') this.cutting.add(res);
    res.on('finish', () => {
      rec.status = res.statusCode;
    });
    res.setHeader('Audit-Id', randomUUID());
    res.setHeader('Cache-Control', 'no-cache, private');
    try {
      const { user, groups } = this.authenticate(req);
      await this.route({ req, res, url, body, rec, user, groups, now: new Date() });
    } catch (err) {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (err instanceof ApiError) {
        this.sendJson(res, err.code, statusBody(err.code, err.reason, err.message, err.details));
      } else {
        const message = err instanceof Error ? err.message : String(err);
        this.sendJson(res, 500, statusBody(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] }));
      }
    }
  }

  /** Every complete (non-streaming) answer goes through here, so a 'cut-response' fault can cut any of them. */
  private send(res: ServerResponse, code: number, type: string, text: string): void {
    const body = Buffer.from(text, 'utf8');
    res.writeHead(code, { 'Content-Type': type, 'Content-Length': body.length });
    if (!this.cutting.has(res)) {
      res.end(body);
      return;
    }
    // Status line, headers and half of the body reach the client; then the connection dies.
    res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    this.send(res, code, 'application/json', JSON.stringify(body));
  }

  private sendRendered(ctx: Ctx, code: number, body: unknown, rendering: Rendering = { kind: 'json' }): void {
    if (rendering.kind === 'yaml') {
      this.send(ctx.res, code, 'application/yaml', stringifyYaml(body));
      return;
    }
    this.sendJson(ctx.res, code, body);
  }

  private sendText(res: ServerResponse, code: number, text: string, type = 'text/plain; charset=utf-8'): void {
    this.send(res, code, type, text);
  }

  private async route(ctx: Ctx): Promise<void> {
    const method = ctx.req.method ?? 'GET';
    const path = ctx.url.pathname.replace(/\/+$/, '') || '/';
    const discovery = this.discovery(path);
    if (discovery !== undefined) {
      if (method !== 'GET') throw methodNotAllowed();
      if (typeof discovery === 'string') this.sendText(ctx.res, 200, discovery);
      else this.sendJson(ctx.res, 200, discovery);
      return;
    }
    const target = this.parseTarget(path);
    if (!target) {
      this.sendText(ctx.res, 404, '404 page not found\n');
      return;
    }
    await this.handleResource(ctx, target, method);
  }

  /** A group this server does not serve (authentication.k8s.io when selfSubjectReview is off). */
  private hidden(group: string): boolean {
    return group === AUTHN_GROUP && !this.selfSubjectReview;
  }

  private discovery(path: string): unknown {
    if (path === '/api') return apiVersions(`127.0.0.1:${this.port}`);
    if (path === '/api/v1') return apiResourceList('', 'v1');
    if (path === '/apis') {
      const list = apiGroupList() as { groups: Array<{ name: string }> };
      return { ...list, groups: list.groups.filter((g) => !this.hidden(g.name)) };
    }
    if (path === '/version') return VERSION_INFO;
    if (path === '/healthz' || path === '/livez' || path === '/readyz') return 'ok';
    let m = /^\/apis\/([^/]+)$/.exec(path);
    if (m) return this.hidden(m[1]!) ? undefined : (apiGroup(m[1]!) ?? undefined);
    m = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (m && groupVersionServed(m[1]!, m[2]!) && !this.hidden(m[1]!)) return apiResourceList(m[1]!, m[2]!);
    return undefined;
  }

  /** null: not an API path at all (plain 404 page); throws a NotFound Status for unknown resources. */
  private parseTarget(path: string): Target | null {
    let group: string;
    let version: string;
    let rest: string;
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/(v1)\/(.+)$/.exec(path))) {
      group = '';
      version = m[1]!;
      rest = m[2]!;
    } else if ((m = /^\/apis\/([^/]+)\/([^/]+)\/(.+)$/.exec(path))) {
      group = m[1]!;
      version = m[2]!;
      rest = m[3]!;
      if (!groupVersionServed(group, version) || this.hidden(group)) return null;
    } else {
      return null;
    }
    let segs = rest.split('/').map((s) => decodeURIComponent(s));
    let namespace: string | null = null;
    if (
      segs[0] === 'namespaces' &&
      segs.length >= 3 &&
      RESOURCES.some((r) => r.group === group && r.version === version && r.namespaced && r.resource === segs[2])
    ) {
      namespace = segs[1]!;
      segs = segs.slice(2);
    }
    const [resource, name, sub, ...extra] = segs;
    const def = findResource(group, version, resource ?? '');
    if (!def || extra.length > 0) throw resourceNotFound();
    if (def.namespaced && namespace === null && name !== undefined) throw resourceNotFound();
    if (sub !== undefined && !def.subresources.some((s) => s.name === sub)) throw resourceNotFound();
    if (name === '') throw resourceNotFound();
    return { def, namespace, name, sub };
  }

  private verbOf(method: string, t: Target, watch: boolean): string {
    const { def, name, sub } = t;
    let verb: string | undefined;
    if (name === undefined) {
      if (method === 'GET') verb = watch ? 'watch' : 'list';
      else if (method === 'POST' && (!def.namespaced || t.namespace !== null)) verb = 'create';
      else if (method === 'DELETE' && (!def.namespaced || t.namespace !== null)) verb = 'deletecollection';
    } else if (sub === undefined) {
      verb = ({ GET: watch ? 'watch' : 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' } as Record<string, string>)[method];
    } else if (sub === 'log') {
      if (method === 'GET') verb = 'get';
    } else if (['exec', 'attach', 'portforward'].includes(sub)) {
      if (method === 'GET' || method === 'POST') verb = 'create';
    } else if (sub === 'eviction') {
      if (method === 'POST') verb = 'create';
    } else if (sub === 'scale' || sub === 'status') {
      verb = ({ GET: 'get', PUT: 'update', PATCH: 'patch' } as Record<string, string>)[method];
    } else if (sub === 'finalize') {
      if (method === 'PUT') verb = 'update';
    }
    if (verb === undefined) throw methodNotAllowed();
    if (sub === undefined && verb !== 'watch' && !def.verbs.includes(verb)) throw methodNotAllowed();
    return verb;
  }

  private authorize(user: string | null, groups: readonly string[], t: Target, verb: string): void {
    if (!this.rbac) return;
    const namespace = t.def.resource === 'namespaces' && t.name !== undefined ? t.name : t.namespace;
    const allowed = this.rbac({
      user,
      groups: [...groups],
      verb,
      group: t.def.group,
      resource: t.def.resource,
      subresource: t.sub ?? '',
      namespace,
      name: t.name ?? null,
    });
    if (allowed) return;
    const subject = t.name !== undefined ? `${qualifiedResource(t.def)} "${t.name}"` : qualifiedResource(t.def);
    const resource = t.sub ? `${t.def.resource}/${t.sub}` : t.def.resource;
    const scope = namespace !== null ? `in the namespace "${namespace}"` : 'at the cluster scope';
    throw new ApiError(
      403,
      'Forbidden',
      `${subject} is forbidden: User "${user ?? this.tokenUser}" cannot ${verb} resource "${resource}" in API group "${t.def.group}" ${scope}`,
      resourceDetails(t.def, t.name),
    );
  }

  private async handleResource(ctx: Ctx, t: Target, method: string): Promise<void> {
    const q = ctx.url.searchParams;
    const watch = bool(q.get('watch'));
    const verb = this.verbOf(method, t, watch);
    Object.assign(ctx.rec, {
      verb,
      group: t.def.group,
      resource: t.def.resource,
      subresource: t.sub ?? null,
      namespace: t.namespace,
      name: t.name ?? null,
    });
    this.authorize(ctx.user, ctx.groups, t, verb);
    if (t.def.group === AUTHN_GROUP && t.def.resource === 'selfsubjectreviews') return this.reviewSelf(ctx);
    const dryRun = this.dryRun(q);
    const { def, namespace, name, sub } = t;

    if (sub === 'log') return this.podLogs(ctx, namespace!, name!);
    if (sub === 'exec' || sub === 'attach' || sub === 'portforward') throw badRequest('Upgrade request required');
    if (sub === 'eviction') return this.evict(ctx, namespace!, name!, dryRun);
    if (sub === 'scale') return this.scale(ctx, def, namespace, name!, method, dryRun);
    if (sub === 'status' || sub === 'finalize') {
      if (method === 'GET') return this.sendRendered(ctx, 200, this.present(def, this.mustGet(def, namespace, name!)));
      if (method === 'PUT') return this.update(ctx, def, namespace, name!, dryRun, sub);
      return this.patch(ctx, def, namespace, name!, dryRun, sub);
    }

    switch (verb) {
      case 'list':
        return this.listOrWatch(ctx, def, namespace, false);
      case 'watch':
        return this.listOrWatch(ctx, def, namespace, true, name);
      case 'get':
        return this.get(ctx, def, namespace, name!);
      case 'create':
        return this.create(ctx, def, namespace, dryRun);
      case 'update':
        return this.update(ctx, def, namespace, name!, dryRun);
      case 'patch':
        return this.patch(ctx, def, namespace, name!, dryRun);
      case 'delete':
        return this.delete(ctx, def, namespace, name!, dryRun);
      case 'deletecollection':
        return this.deleteCollection(ctx, def, namespace, dryRun);
    }
    throw methodNotAllowed();
  }

  private dryRun(q: URLSearchParams): boolean {
    const values = q.getAll('dryRun');
    for (const v of values) {
      if (v !== 'All') throw badRequest(`dryRun: Unsupported value: "${v}": supported values: "All"`);
    }
    return values.length > 0;
  }

  private rendering(ctx: Ctx): Rendering {
    const r = negotiate(ctx.req.headers.accept);
    if (!r)
      throw new ApiError(
        406,
        'NotAcceptable',
        'only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf',
      );
    return r;
  }

  private includeObject(q: URLSearchParams): IncludeObject {
    const v = q.get('includeObject');
    if (v === null || v === '') return 'Metadata';
    if (v === 'None' || v === 'Metadata' || v === 'Object') return v;
    throw badRequest(`includeObject: Unsupported value: "${v}": supported values: "None", "Metadata", "Object"`);
  }

  /** The object as the API returns it (with apiVersion and kind). */
  private present(def: ResourceDef, obj: KubeObject): KubeObject {
    const { apiVersion: _a, kind: _k, ...rest } = clone(obj);
    return { apiVersion: apiVersionOf(def), kind: def.kind, ...rest };
  }

  // ---- read ----

  private get(ctx: Ctx, def: ResourceDef, namespace: string | null, name: string): void {
    const rendering = this.rendering(ctx);
    const obj = this.present(def, this.mustGet(def, namespace, name));
    if (rendering.kind === 'table') {
      const table = buildTable(def, [obj], {
        apiVersion: rendering.apiVersion,
        includeObject: this.includeObject(ctx.url.searchParams),
        resourceVersion: obj.metadata?.resourceVersion ?? '',
        now: ctx.now,
      });
      return this.sendJson(ctx.res, 200, table);
    }
    if (rendering.kind === 'partial') {
      return this.sendJson(ctx.res, 200, { kind: 'PartialObjectMetadata', apiVersion: rendering.apiVersion, metadata: obj.metadata ?? {} });
    }
    this.sendRendered(ctx, 200, obj, rendering);
  }

  private listOrWatch(ctx: Ctx, def: ResourceDef, namespace: string | null, watch: boolean, singleName?: string): void {
    const q = ctx.url.searchParams;
    const rendering = this.rendering(ctx);
    const includeObject = this.includeObject(q);
    const labels = parseLabelSelector(q.get('labelSelector'));
    let fields = parseFieldSelector(q.get('fieldSelector'), def);
    if (singleName !== undefined) fields = [...fields, { field: 'metadata.name', op: '=', value: singleName }];
    if (watch) return this.startWatch(ctx, def, namespace, labels, fields, rendering, includeObject);

    let items = this.list(def, namespace, labels, fields);
    let continueToken: string | undefined;
    let remaining: number | undefined;
    const cont = q.get('continue');
    if (cont) {
      let after: unknown;
      try {
        after = asRecord(JSON.parse(Buffer.from(cont, 'base64url').toString('utf8')))['after'];
      } catch {
        after = undefined;
      }
      if (typeof after !== 'string') throw badRequest('continue key is not valid: illegal base64 data');
      items = items.filter((i) => i.key > after);
    }
    const limit = Number(q.get('limit') ?? '0');
    if (Number.isInteger(limit) && limit > 0 && items.length > limit) {
      remaining = items.length - limit;
      items = items.slice(0, limit);
      continueToken = Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv: this.rv, after: items[items.length - 1]!.key }), 'utf8').toString('base64url');
    }
    const objects = items.map((i) => this.present(def, i.obj));
    const resourceVersion = String(this.rv);
    if (rendering.kind === 'table') {
      return this.sendJson(
        ctx.res,
        200,
        buildTable(def, objects, { apiVersion: rendering.apiVersion, includeObject, resourceVersion, continueToken, remaining, now: ctx.now }),
      );
    }
    const metadata = { resourceVersion, ...(continueToken ? { continue: continueToken, remainingItemCount: remaining } : {}) };
    if (rendering.kind === 'partial') {
      return this.sendJson(ctx.res, 200, {
        kind: 'PartialObjectMetadataList',
        apiVersion: rendering.apiVersion,
        metadata,
        items: objects.map((o) => ({ kind: 'PartialObjectMetadata', apiVersion: rendering.apiVersion, metadata: o.metadata ?? {} })),
      });
    }
    // Like the real server, items of built-in lists carry no apiVersion/kind; custom resources keep them.
    const listItems = def.builtin ? objects.map(({ apiVersion: _a, kind: _k, ...rest }) => rest) : objects;
    this.sendRendered(ctx, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata, items: listItems }, rendering);
  }

  private startWatch(
    ctx: Ctx,
    def: ResourceDef,
    namespace: string | null,
    labels: LabelRequirement[],
    fields: FieldRequirement[],
    rendering: Rendering,
    includeObject: IncludeObject,
  ): void {
    const q = ctx.url.searchParams;
    const { res } = ctx;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    ctx.rec.status = 200;
    const w: Watcher = { def, namespace, labels, fields, res, rendering, includeObject };
    const rv = q.get('resourceVersion');
    const from = rv === null || rv === '' || rv === '0' ? -1 : Number(rv);
    for (const { obj } of this.list(def, namespace, labels, fields)) {
      // Without a resourceVersion, a watch starts with synthetic ADDED events for what exists.
      // With one, objects changed after it are sent (the fake keeps no deletion history).
      if (from < 0 || Number(obj.metadata?.resourceVersion ?? 0) > from) this.writeWatchEvent(w, 'ADDED', this.present(def, obj));
    }
    this.watchers.add(w);
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timer = setTimeout(() => res.end(), timeout * 1000);
    const stop = (): void => {
      if (w.timer) clearTimeout(w.timer);
      this.watchers.delete(w);
    };
    res.on('close', stop);
    res.on('finish', stop);
  }

  // ---- SelfSubjectReview ----

  /**
   * POST authentication.k8s.io/v1 selfsubjectreviews: 201 with status.userInfo of the
   * caller — the impersonated user (with system:authenticated added to its groups,
   * as the impersonation filter does) or the bearer token's own user. Nothing is stored.
   */
  private reviewSelf(ctx: Ctx): void {
    const def = findResource(AUTHN_GROUP, 'v1', 'selfsubjectreviews')!;
    const body = this.parseBody(ctx);
    this.checkTypeMeta(def, body, true);
    const userInfo =
      ctx.user === null
        ? { username: this.tokenUser, uid: stableUid(`user:${this.tokenUser}`), groups: [...this.tokenGroups] }
        : {
            username: ctx.user,
            groups: ctx.groups.includes('system:authenticated') || ctx.user === 'system:anonymous' ? [...ctx.groups] : [...ctx.groups, 'system:authenticated'],
          };
    this.sendJson(ctx.res, 201, { kind: 'SelfSubjectReview', apiVersion: `${AUTHN_GROUP}/v1`, metadata: { creationTimestamp: null }, status: { userInfo } });
  }

  // ---- write ----

  private parseBody(ctx: Ctx): Record<string, unknown> {
    const type = (ctx.req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    let value: unknown;
    try {
      if (type === 'application/json' || type === '') value = JSON.parse(ctx.body);
      else if (type === 'application/yaml') value = parseYaml(ctx.body);
      else
        throw new ApiError(
          415,
          'UnsupportedMediaType',
          'the body of the request was in an unknown format - accepted media types include: ' +
            'application/json, application/yaml, application/vnd.kubernetes.protobuf',
        );
    } catch (err) {
      if (err instanceof ApiError) throw err;
      throw badRequest(`couldn't get version/kind; json parse error: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (!isRecord(value))
      throw badRequest(
        `couldn't get version/kind; json parse error: json: cannot unmarshal ${Array.isArray(value) ? 'array' : typeof value} ` +
          `into Go value of type struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }`,
      );
    return value;
  }

  private checkTypeMeta(def: ResourceDef, body: Record<string, unknown>, required = false): void {
    const apiVersion = body['apiVersion'];
    const kind = body['kind'];
    if (required && (typeof apiVersion !== 'string' || typeof kind !== 'string' || !apiVersion || !kind)) {
      throw badRequest(`invalid object type: ${typeof apiVersion === 'string' ? apiVersion : ''}, Kind=${typeof kind === 'string' ? kind : ''}`);
    }
    if (apiVersion !== undefined && apiVersion !== '' && apiVersion !== apiVersionOf(def)) {
      throw badRequest(`the API version in the data (${String(apiVersion)}) does not match the expected API version (${apiVersionOf(def)})`);
    }
    if (kind !== undefined && kind !== '' && kind !== def.kind) {
      throw badRequest(
        `${String(kind)} in version "${def.version}" cannot be handled as a ${def.kind}: ` +
          `no kind "${String(kind)}" is registered for version "${apiVersionOf(def)}"`,
      );
    }
  }

  private checkNamespace(def: ResourceDef, body: Record<string, unknown>, namespace: string | null): void {
    const ns = asRecord(body['metadata'])['namespace'];
    if (def.namespaced && typeof ns === 'string' && ns !== '' && ns !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
  }

  private manager(ctx: Ctx): string {
    const fm = ctx.url.searchParams.get('fieldManager');
    if (fm) return fm;
    const ua = ctx.req.headers['user-agent'];
    return ua ? (ua.split('/')[0] ?? 'unknown') : 'unknown';
  }

  /** Server-owned metadata, defaults and status handling for a create (old undefined) or an update. */
  private prepare(
    def: ResourceDef,
    input: Record<string, unknown>,
    old: KubeObject | undefined,
    namespace: string | null,
    name: string,
    ctx: Ctx,
    operation: 'Update' | 'Apply',
    sub?: string,
  ): KubeObject {
    const manager = this.manager(ctx);
    const subresource = sub === 'status' || sub === 'scale' ? sub : undefined;
    const withManagedFields = (obj: KubeObject): KubeObject => {
      const entries = asArray(old ? old.metadata?.managedFields : undefined).filter(
        (e) => !(isRecord(e) && e['manager'] === manager && e['operation'] === operation && e['subresource'] === subresource),
      );
      entries.push(managedFieldsEntry(obj, manager, operation, ctx.now, subresource));
      metadataOf(obj).managedFields = entries;
      return obj;
    };
    if (sub === 'status' && old && hasStatusSubresource(def)) {
      // Only status may change through the status subresource.
      const obj = clone(old);
      if (input['status'] === undefined) delete obj['status'];
      else obj['status'] = clone(input['status']);
      return withManagedFields(obj);
    }
    const obj: KubeObject = { ...clone(input), apiVersion: apiVersionOf(def), kind: def.kind };
    const md = metadataOf(obj);
    const oldMd = old?.metadata;
    md.name = name;
    if (def.namespaced) md.namespace = namespace ?? undefined;
    else delete md.namespace;
    delete md.resourceVersion;
    delete md.selfLink;
    if (old && oldMd) {
      md.uid = oldMd.uid;
      md.creationTimestamp = oldMd.creationTimestamp;
      if (oldMd.deletionTimestamp) md.deletionTimestamp = oldMd.deletionTimestamp;
      else delete md.deletionTimestamp;
      md.generation = oldMd.generation ?? 1;
      delete md.generateName;
      if (oldMd.generateName) md.generateName = oldMd.generateName;
    } else {
      md.uid = randomUUID();
      md.creationTimestamp = rfc3339(ctx.now);
      md.generation = 1;
      delete md.deletionTimestamp;
      delete md.deletionGracePeriodSeconds;
    }
    this.applyDefaults(def, obj, old);
    if (hasStatusSubresource(def)) {
      if (old) {
        if (old['status'] === undefined) delete obj['status'];
        else obj['status'] = clone(old['status']);
      } else {
        const status = this.initialStatus(def);
        if (status === undefined) delete obj['status'];
        else obj['status'] = status;
      }
    }
    if (old && !deepEqual(specPart(old), specPart(obj))) md.generation = (oldMd?.generation ?? 1) + 1;
    stripEmptyMetadataMaps(obj);
    return withManagedFields(obj);
  }

  private initialStatus(def: ResourceDef): unknown {
    switch (`${def.group}/${def.resource}`) {
      case '/pods':
        return { phase: 'Pending', qosClass: 'BestEffort' };
      case '/namespaces':
        return { phase: 'Active' };
      case '/services':
        return { loadBalancer: {} };
      case '/persistentvolumeclaims':
        return { phase: 'Pending' };
      default:
        return def.builtin ? {} : undefined;
    }
  }

  private applyDefaults(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const md = metadataOf(obj);
    const spec = (): Record<string, unknown> => {
      if (!isRecord(obj['spec'])) obj['spec'] = {};
      return obj['spec'] as Record<string, unknown>;
    };
    switch (`${def.group}/${def.resource}`) {
      case '/secrets': {
        const data: Record<string, unknown> = isRecord(obj['data']) ? obj['data'] : {};
        if (isRecord(obj['stringData'])) {
          for (const [k, v] of Object.entries(obj['stringData'])) data[k] = Buffer.from(String(v), 'utf8').toString('base64');
          delete obj['stringData'];
        }
        if (Object.keys(data).length) obj['data'] = data;
        obj['type'] ??= 'Opaque';
        break;
      }
      case '/namespaces':
        md.labels = { ...(md.labels ?? {}), 'kubernetes.io/metadata.name': md.name ?? '' };
        if (!isRecord(obj['spec']) || !Array.isArray(obj['spec']['finalizers'])) spec()['finalizers'] = ['kubernetes'];
        break;
      case '/services': {
        const s = spec();
        s['type'] ??= 'ClusterIP';
        if (s['type'] !== 'ExternalName' && !s['clusterIP']) {
          const oldIp = asString(asRecord(old?.['spec'])['clusterIP']);
          const ip = oldIp ?? `10.96.${Math.floor(this.ipCounter / 250)}.${(this.ipCounter++ % 250) + 2}`;
          s['clusterIP'] = ip;
          s['clusterIPs'] = [ip];
        }
        s['sessionAffinity'] ??= 'None';
        s['ports'] = asArray(s['ports']).map((p) => {
          const port = asRecord(p);
          return { ...port, protocol: port['protocol'] ?? 'TCP', targetPort: port['targetPort'] ?? port['port'] };
        });
        break;
      }
      case '/pods': {
        if (old) break; // defaulting happened at create time
        const s = spec();
        s['restartPolicy'] ??= 'Always';
        s['serviceAccountName'] ??= 'default';
        s['dnsPolicy'] ??= 'ClusterFirst';
        s['schedulerName'] ??= 'default-scheduler';
        s['terminationGracePeriodSeconds'] ??= 30;
        break;
      }
      case 'apps/deployments': {
        if (old) break;
        const s = spec();
        s['replicas'] ??= 1;
        s['strategy'] ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
        s['revisionHistoryLimit'] ??= 10;
        s['progressDeadlineSeconds'] ??= 600;
        break;
      }
      case 'apps/replicasets':
      case 'apps/statefulsets':
        if (!old) spec()['replicas'] ??= 1;
        break;
    }
  }

  private validate(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const name = obj.metadata?.name ?? '';
    const causes: Cause[] = [];
    const label = def.resource === 'namespaces' || def.resource === 'services';
    if (label ? !(name.length <= 63 && DNS1123_LABEL.test(name)) : !(name.length <= 253 && DNS1123_SUBDOMAIN.test(name))) {
      causes.push({
        field: 'metadata.name',
        reason: 'FieldValueInvalid',
        message: label
          ? `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', ` +
            `and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', ` +
            `regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`
          : `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', ` +
            `and must start and end with an alphanumeric character (e.g. 'example.com', ` +
            `regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      });
    }
    const spec = asRecord(obj['spec']);
    const workload = ['deployments', 'replicasets', 'statefulsets'].includes(def.resource) && def.group === 'apps';
    if (workload) {
      const replicas = spec['replicas'];
      if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
        causes.push({
          field: 'spec.replicas',
          reason: 'FieldValueInvalid',
          message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
        });
      }
    }
    if (workload || (def.group === 'apps' && def.resource === 'daemonsets')) {
      const selector = asRecord(spec['selector']);
      const matchLabels = asRecord(selector['matchLabels']);
      const tplLabels = asRecord(asRecord(asRecord(spec['template'])['metadata'])['labels']);
      if (Object.keys(selector).length === 0) causes.push({ field: 'spec.selector', reason: 'FieldValueRequired', message: 'Required value' });
      else if (!Object.entries(matchLabels).every(([k, v]) => tplLabels[k] === v)) {
        causes.push({
          field: 'spec.template.metadata.labels',
          reason: 'FieldValueInvalid',
          message: `Invalid value: ${JSON.stringify(tplLabels)}: \`selector\` does not match template \`labels\``,
        });
      }
      if (old && !deepEqual(asRecord(old['spec'])['selector'], spec['selector'])) {
        causes.push({ field: 'spec.selector', reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(spec['selector'])}: field is immutable` });
      }
    }
    if (def.group === '' && def.resource === 'pods') {
      const containers = asArray(spec['containers']);
      if (containers.length === 0) causes.push({ field: 'spec.containers', reason: 'FieldValueRequired', message: 'Required value' });
      containers.forEach((c, i) => {
        if (!asString(asRecord(c)['name'])) causes.push({ field: `spec.containers[${i}].name`, reason: 'FieldValueRequired', message: 'Required value' });
        if (!asString(asRecord(c)['image'])) causes.push({ field: `spec.containers[${i}].image`, reason: 'FieldValueRequired', message: 'Required value' });
      });
      if (old && !this.podSpecUpdateAllowed(asRecord(old['spec']), spec)) {
        causes.push({
          field: 'spec',
          reason: 'FieldValueForbidden',
          message:
            'Forbidden: pod updates may not change fields other than ' +
            '`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,' +
            '`spec.tolerations` (only additions to existing tolerations),' +
            '`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
        });
      }
    }
    if (causes.length) throw invalidObject(def, name, causes);
  }

  private podSpecUpdateAllowed(oldSpec: Record<string, unknown>, newSpec: Record<string, unknown>): boolean {
    const norm = (s: Record<string, unknown>): unknown => {
      const c = clone(s);
      for (const f of ['containers', 'initContainers']) {
        c[f] = asArray(c[f]).map((x) => ({ ...asRecord(x), image: undefined }));
      }
      delete c['activeDeadlineSeconds'];
      delete c['tolerations'];
      delete c['terminationGracePeriodSeconds'];
      return c;
    };
    return deepEqual(norm(oldSpec), norm(newSpec));
  }

  private create(ctx: Ctx, def: ResourceDef, namespace: string | null, dryRun: boolean): void {
    const input = this.parseBody(ctx);
    this.checkTypeMeta(def, input);
    this.checkNamespace(def, input, namespace);
    const md = asRecord(input['metadata']);
    let name = asString(md['name']) ?? '';
    if (!name && asString(md['generateName'])) name = `${asString(md['generateName'])!}${randomSuffix()}`;
    if (!name)
      throw invalidObject(def, '', [{ field: 'metadata.name', reason: 'FieldValueRequired', message: 'Required value: name or generateName is required' }]);
    if (def.namespaced && !this.namespaceExists(namespace ?? '')) throw notFound(NS_DEF, namespace ?? '');
    if (this.getEntry(def, namespace, name)) {
      throw new ApiError(409, 'AlreadyExists', `${qualifiedResource(def)} "${name}" already exists`, resourceDetails(def, name));
    }
    const obj = this.prepare(def, input, undefined, namespace, name, ctx, 'Update');
    this.validate(def, obj, undefined);
    if (dryRun) return this.sendJson(ctx.res, 201, this.present(def, obj));
    const stored = this.put(def, obj);
    this.afterWrite(def, stored, ctx.now);
    this.sendJson(ctx.res, 201, this.present(def, stored));
  }

  /** Validates and stores an updated object; no-op updates keep the resourceVersion. */
  private commitUpdate(ctx: Ctx, def: ResourceDef, old: KubeObject, next: KubeObject, dryRun: boolean): KubeObject {
    this.validate(def, next, old);
    if (deepEqual(withoutVolatile(next), withoutVolatile(old))) return old;
    if (dryRun) {
      metadataOf(next).resourceVersion = old.metadata?.resourceVersion;
      return next;
    }
    const stored = this.put(def, next);
    this.afterWrite(def, stored, ctx.now);
    return stored;
  }

  private update(ctx: Ctx, def: ResourceDef, namespace: string | null, name: string, dryRun: boolean, sub?: string): void {
    const input = this.parseBody(ctx);
    const old = this.mustGet(def, namespace, name);
    this.checkTypeMeta(def, input);
    this.checkNamespace(def, input, namespace);
    const md = asRecord(input['metadata']);
    const bodyName = asString(md['name']);
    if (bodyName !== undefined && bodyName !== '' && bodyName !== name) {
      throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
    }
    const rv = asString(md['resourceVersion']);
    if (rv !== undefined && rv !== '' && rv !== old.metadata?.resourceVersion) throw conflict(def, name);
    const next = this.prepare(def, input, old, namespace, name, ctx, 'Update', sub);
    const result = this.commitUpdate(ctx, def, old, next, dryRun);
    this.sendJson(ctx.res, 200, this.present(def, result));
  }

  private patchContentType(ctx: Ctx): string {
    return (ctx.req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  }

  private parsePatchDoc(ctx: Ctx): unknown {
    try {
      return JSON.parse(ctx.body);
    } catch (err) {
      throw badRequest(`error decoding patch: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Applies a non-apply patch document of the request's content type to `base`. */
  private applyPatch(ctx: Ctx, def: ResourceDef, base: unknown, type: string): Record<string, unknown> {
    const doc = this.parsePatchDoc(ctx);
    let result: unknown;
    switch (type) {
      case 'application/merge-patch+json':
        if (!isRecord(doc)) throw badRequest('error decoding patch: json: cannot unmarshal non-object into Go value of type map[string]interface {}');
        result = jsonMergePatch(base, doc);
        break;
      case 'application/strategic-merge-patch+json':
        if (!def.builtin) {
          throw new ApiError(
            415,
            'UnsupportedMediaType',
            'the body of the request was in an unknown format - accepted media types include: ' +
              'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
          );
        }
        if (!isRecord(doc)) throw badRequest('error decoding patch: json: cannot unmarshal non-object into Go value of type map[string]interface {}');
        result = strategicMergePatch(base, doc);
        break;
      case 'application/json-patch+json':
        result = applyJsonPatch(base, doc);
        break;
      default:
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES}`);
    }
    if (!isRecord(result)) throw new ApiError(422, 'Invalid', 'the patch produced a non-object document');
    return result;
  }

  private patch(ctx: Ctx, def: ResourceDef, namespace: string | null, name: string, dryRun: boolean, sub?: string): void {
    const type = this.patchContentType(ctx);
    const current = this.getEntry(def, namespace, name)?.obj;
    if (type === 'application/apply-patch+yaml' || type === 'application/apply-patch+cbor') {
      if (type.endsWith('cbor'))
        throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES}`);
      if (!ctx.url.searchParams.get('fieldManager')) {
        throw invalid('PatchOptions.meta.k8s.io', 'meta.k8s.io', 'PatchOptions', '', [
          { field: 'fieldManager', reason: 'FieldValueRequired', message: 'Required value: is required for apply patch' },
        ]);
      }
      let doc: unknown;
      try {
        doc = parseYaml(ctx.body);
      } catch (err) {
        throw badRequest(`error decoding YAML: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (!isRecord(doc)) throw badRequest('error decoding YAML: the apply patch is not an object');
      this.checkTypeMeta(def, doc, true);
      this.checkNamespace(def, doc, namespace);
      const bodyName = asString(asRecord(doc['metadata'])['name']);
      if (bodyName !== undefined && bodyName !== name) {
        throw badRequest(`the name of the object (${bodyName}) does not match the name on the URL (${name})`);
      }
      if (!current) {
        if (sub) throw notFound(def, name);
        if (def.namespaced && !this.namespaceExists(namespace ?? '')) throw notFound(NS_DEF, namespace ?? '');
        const obj = this.prepare(def, doc, undefined, namespace, name, ctx, 'Apply');
        this.validate(def, obj, undefined);
        if (dryRun) return this.sendJson(ctx.res, 201, this.present(def, obj));
        const stored = this.put(def, obj);
        this.afterWrite(def, stored, ctx.now);
        return this.sendJson(ctx.res, 201, this.present(def, stored));
      }
      const merged = asRecord(def.builtin ? strategicMergePatch(current, doc) : jsonMergePatch(current, doc));
      const next = this.prepare(def, merged, current, namespace, name, ctx, 'Apply', sub);
      return this.sendJson(ctx.res, 200, this.present(def, this.commitUpdate(ctx, def, current, next, dryRun)));
    }
    if (!current) throw notFound(def, name);
    const result = this.applyPatch(ctx, def, current, type);
    const rv = asString(asRecord(result['metadata'])['resourceVersion']);
    if (rv !== undefined && rv !== current.metadata?.resourceVersion) throw conflict(def, name);
    const next = this.prepare(def, result, current, namespace, name, ctx, 'Update', sub);
    this.sendJson(ctx.res, 200, this.present(def, this.commitUpdate(ctx, def, current, next, dryRun)));
  }

  // ---- scale ----

  private toScale(_def: ResourceDef, obj: KubeObject): Record<string, unknown> {
    const md = obj.metadata ?? {};
    const sel = asRecord(asRecord(obj['spec'])['selector']);
    const matchLabels = asRecord(sel['matchLabels']);
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: md.name, namespace: md.namespace, uid: md.uid, resourceVersion: md.resourceVersion, creationTimestamp: md.creationTimestamp },
      spec: { replicas: asNumber(asRecord(obj['spec'])['replicas']) ?? 1 },
      status: {
        replicas: asNumber(asRecord(obj['status'])['replicas']) ?? 0,
        selector: Object.entries(matchLabels)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(','),
      },
    };
  }

  private scale(ctx: Ctx, def: ResourceDef, namespace: string | null, name: string, method: string, dryRun: boolean): void {
    const current = this.mustGet(def, namespace, name);
    const scale = this.toScale(def, current);
    if (method === 'GET') return this.sendJson(ctx.res, 200, scale);
    let input: Record<string, unknown>;
    if (method === 'PUT') {
      input = this.parseBody(ctx);
      if (input['kind'] !== undefined && input['kind'] !== 'Scale') {
        throw badRequest(
          `${String(input['kind'])} in version "v1" cannot be handled as a Scale: ` +
            `no kind "${String(input['kind'])}" is registered for version "autoscaling/v1"`,
        );
      }
    } else {
      const type = this.patchContentType(ctx);
      if (type === 'application/apply-patch+yaml') {
        let doc: unknown;
        try {
          doc = parseYaml(ctx.body);
        } catch {
          doc = undefined;
        }
        if (!isRecord(doc)) throw badRequest('error decoding YAML');
        input = asRecord(jsonMergePatch(scale, doc));
      } else {
        input = this.applyPatch(ctx, def, scale, type);
      }
    }
    const rv = asString(asRecord(input['metadata'])['resourceVersion']);
    if (rv !== undefined && rv !== '' && rv !== current.metadata?.resourceVersion) throw conflict(def, name);
    const replicas = asRecord(input['spec'])['replicas'];
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid('Scale.autoscaling', 'autoscaling', 'Scale', name, [
        {
          field: 'spec.replicas',
          reason: 'FieldValueInvalid',
          message: `Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0`,
        },
      ]);
    }
    const base = clone(current);
    asRecord(base['spec'])['replicas'] = replicas;
    if (!isRecord(base['spec'])) base['spec'] = { replicas };
    const next = this.prepare(def, base, current, namespace, name, ctx, 'Update', 'scale');
    const stored = this.commitUpdate(ctx, def, current, next, dryRun);
    this.sendJson(ctx.res, 200, this.toScale(def, stored));
  }

  // ---- delete ----

  private deleteOptions(ctx: Ctx): Record<string, unknown> {
    if (ctx.body.trim() === '') return {};
    try {
      const v: unknown = JSON.parse(ctx.body);
      return asRecord(v);
    } catch {
      throw badRequest("couldn't get version/kind; json parse error: invalid DeleteOptions");
    }
  }

  private propagation(ctx: Ctx, opts: Record<string, unknown>): string {
    const q = ctx.url.searchParams;
    const p = asString(opts['propagationPolicy']) ?? q.get('propagationPolicy');
    if (p) {
      if (!['Orphan', 'Background', 'Foreground'].includes(p))
        throw badRequest(`propagationPolicy: Unsupported value: "${p}": supported values: "Foreground", "Background", "Orphan"`);
      return p;
    }
    if (opts['orphanDependents'] === true || q.get('orphanDependents') === 'true') return 'Orphan';
    return 'Background';
  }

  /** Removes an object; dependents are garbage collected (or orphaned). */
  private removeWithDependents(def: ResourceDef, obj: KubeObject, propagation: string): KubeObject | undefined {
    const removed = this.remove(def, obj.metadata?.namespace ?? null, obj.metadata?.name ?? '');
    const uid = obj.metadata?.uid;
    if (!uid) return removed;
    for (const e of [...this.map.values()]) {
      const refs = e.obj.metadata?.ownerReferences ?? [];
      if (!refs.some((r: OwnerReference) => r.uid === uid)) continue;
      if (propagation === 'Orphan') {
        const next = clone(e.obj);
        metadataOf(next).ownerReferences = refs.filter((r: OwnerReference) => r.uid !== uid);
        stripEmptyMetadataMaps(next);
        this.put(e.def, next);
      } else {
        this.removeWithDependents(e.def, e.obj, 'Background');
      }
    }
    return removed;
  }

  private delete(ctx: Ctx, def: ResourceDef, namespace: string | null, name: string, dryRun: boolean): void {
    const current = this.mustGet(def, namespace, name);
    const opts = this.deleteOptions(ctx);
    const pre = asRecord(opts['preconditions']);
    const preUid = asString(pre['uid']);
    const preRv = asString(pre['resourceVersion']);
    if (preUid !== undefined && preUid !== current.metadata?.uid) {
      throw conflict(def, name, `Precondition failed: UID in precondition: ${preUid}, UID in object meta: ${current.metadata?.uid ?? ''}`);
    }
    if (preRv !== undefined && preRv !== current.metadata?.resourceVersion) {
      throw conflict(
        def,
        name,
        `Precondition failed: ResourceVersion in precondition: ${preRv}, ResourceVersion in meta: ${current.metadata?.resourceVersion ?? ''}`,
      );
    }
    const propagation = this.propagation(ctx, opts);
    const stamp = rfc3339(ctx.now);

    if (def === NS_DEF) {
      if (PROTECTED_NAMESPACES.has(name)) {
        throw new ApiError(403, 'Forbidden', `namespaces "${name}" is forbidden: this namespace may not be deleted`, resourceDetails(def, name));
      }
      const result = clone(current);
      metadataOf(result).deletionTimestamp = stamp;
      result['status'] = { ...asRecord(result['status']), phase: 'Terminating' };
      if (!dryRun) {
        for (const [, e] of [...this.map]) {
          if (e.def.namespaced && e.obj.metadata?.namespace === name) this.remove(e.def, name, e.obj.metadata?.name ?? '');
        }
        const removed = this.remove(def, null, name);
        metadataOf(result).resourceVersion = removed?.metadata?.resourceVersion;
      }
      return this.sendJson(ctx.res, 200, this.present(def, result));
    }

    let removed: KubeObject | undefined = current;
    if (!dryRun) removed = this.removeWithDependents(def, current, propagation) ?? current;
    if (def === POD_DEF) {
      const q = ctx.url.searchParams;
      const grace =
        asNumber(opts['gracePeriodSeconds']) ??
        (q.get('gracePeriodSeconds') !== null ? Number(q.get('gracePeriodSeconds')) : undefined) ??
        asNumber(asRecord(current['spec'])['terminationGracePeriodSeconds']) ??
        30;
      const result = clone(removed);
      metadataOf(result).deletionTimestamp = rfc3339(new Date(ctx.now.getTime() + grace * 1000));
      metadataOf(result).deletionGracePeriodSeconds = grace;
      return this.sendJson(ctx.res, 200, this.present(def, result));
    }
    if (propagation === 'Foreground') {
      const result = clone(removed);
      metadataOf(result).deletionTimestamp = stamp;
      metadataOf(result).finalizers = [...(result.metadata?.finalizers ?? []), 'foregroundDeletion'];
      return this.sendJson(ctx.res, 200, this.present(def, result));
    }
    this.sendJson(ctx.res, 200, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: { ...resourceDetails(def, name), uid: current.metadata?.uid },
    });
  }

  private deleteCollection(ctx: Ctx, def: ResourceDef, namespace: string | null, dryRun: boolean): void {
    const q = ctx.url.searchParams;
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), def);
    const opts = this.deleteOptions(ctx);
    const propagation = this.propagation(ctx, opts);
    const items = this.list(def, namespace, labels, fields).map((i) => i.obj);
    const deleted: KubeObject[] = [];
    for (const obj of items) {
      const removed = dryRun ? obj : (this.removeWithDependents(def, obj, propagation) ?? obj);
      const { apiVersion: _a, kind: _k, ...rest } = clone(removed);
      deleted.push(rest);
    }
    this.sendJson(ctx.res, 200, { kind: `${def.kind}List`, apiVersion: apiVersionOf(def), metadata: { resourceVersion: String(this.rv) }, items: deleted });
  }

  private evict(ctx: Ctx, namespace: string, name: string, dryRun: boolean): void {
    const pod = this.mustGet(POD_DEF, namespace, name);
    if (!dryRun) this.removeWithDependents(POD_DEF, pod, 'Background');
    this.sendJson(ctx.res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
  }

  // ---- controllers ----

  private afterWrite(def: ResourceDef, obj: KubeObject, now: Date): void {
    if (!this.controllers) return;
    if (def.group !== 'apps') return;
    if (def.resource === 'deployments') this.reconcileDeployment(obj, now);
    else if (def.resource === 'replicasets' || def.resource === 'statefulsets') this.syncReplicas(def, obj);
  }

  private replicaStatus(def: ResourceDef, obj: KubeObject): Record<string, unknown> {
    const replicas = asNumber(asRecord(obj['spec'])['replicas']) ?? 1;
    const status: Record<string, unknown> = { ...asRecord(obj['status']) };
    const counts =
      def.resource === 'statefulsets'
        ? ['replicas', 'readyReplicas', 'currentReplicas', 'updatedReplicas', 'availableReplicas']
        : ['replicas', 'fullyLabeledReplicas', 'readyReplicas', 'availableReplicas'];
    for (const k of counts) {
      if (replicas > 0 || k === 'replicas') status[k] = replicas;
      else delete status[k];
    }
    status['observedGeneration'] = obj.metadata?.generation ?? 1;
    return status;
  }

  private syncReplicas(def: ResourceDef, obj: KubeObject): void {
    const status = this.replicaStatus(def, obj);
    if (deepEqual(status, obj['status'])) return;
    const next = clone(obj);
    next['status'] = status;
    this.put(def, next);
  }

  private reconcileDeployment(dep: KubeObject, now: Date): void {
    const md = dep.metadata ?? {};
    const ns = md.namespace ?? 'default';
    const uid = md.uid ?? '';
    const spec = asRecord(dep['spec']);
    const replicas = asNumber(spec['replicas']) ?? 1;
    const template = asRecord(spec['template']);
    const stripHash = (t: unknown): unknown => {
      const c = clone(asRecord(t));
      const labels = asRecord(asRecord(c['metadata'])['labels']);
      delete labels['pod-template-hash'];
      return c;
    };
    const owned = this.list(RS_DEF, ns)
      .map((i) => i.obj)
      .filter((rs) => (rs.metadata?.ownerReferences ?? []).some((r: OwnerReference) => r.uid === uid && r.controller));
    const revisionOf = (rs: KubeObject): number => Number(rs.metadata?.annotations?.['deployment.kubernetes.io/revision'] ?? 0) || 0;
    const maxRev = owned.reduce((m, rs) => Math.max(m, revisionOf(rs)), 0);
    const stamp = rfc3339(now);

    if (spec['paused'] === true) return;

    let newRs = owned.find((rs) => deepEqual(stripHash(asRecord(rs['spec'])['template']), stripHash(template)));
    let revision: number;
    if (!newRs) {
      let hash: string;
      for (let collision = 0; ; collision++) {
        hash = safeEncode(
          createHash('sha256')
            .update(canonicalJson(template) + String(collision))
            .digest(),
          10,
        );
        if (!this.getEntry(RS_DEF, ns, `${md.name ?? ''}-${hash}`)) break;
      }
      revision = maxRev + 1;
      const tplMeta = asRecord(template['metadata']);
      const tplLabels = { ...asRecord(tplMeta['labels']), 'pod-template-hash': hash } as Record<string, string>;
      const selector = clone(asRecord(spec['selector']));
      selector['matchLabels'] = { ...asRecord(selector['matchLabels']), 'pod-template-hash': hash };
      const rs: KubeObject = {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${md.name ?? ''}-${hash}`,
          namespace: ns,
          uid: randomUUID(),
          generation: 1,
          creationTimestamp: stamp,
          labels: tplLabels,
          annotations: {
            'deployment.kubernetes.io/desired-replicas': String(replicas),
            'deployment.kubernetes.io/max-replicas': String(replicas + Math.max(1, Math.ceil(replicas / 4))),
            'deployment.kubernetes.io/revision': String(revision),
          },
          ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: md.name ?? '', uid, controller: true, blockOwnerDeletion: true }],
        },
        spec: { replicas, selector, template: { ...clone(template), metadata: { ...clone(tplMeta), labels: tplLabels } } },
      };
      rs['status'] = this.replicaStatus(RS_DEF, rs);
      metadataOf(rs).managedFields = [managedFieldsEntry(rs, 'kube-controller-manager', 'Update', now)];
      newRs = this.put(RS_DEF, rs);
    } else {
      revision = revisionOf(newRs) < maxRev ? maxRev + 1 : revisionOf(newRs);
      const next = clone(newRs);
      const nmd = metadataOf(next);
      nmd.annotations = {
        ...(nmd.annotations ?? {}),
        'deployment.kubernetes.io/revision': String(revision),
        'deployment.kubernetes.io/desired-replicas': String(replicas),
      };
      const rsSpec = asRecord(next['spec']);
      if (rsSpec['replicas'] !== replicas) {
        rsSpec['replicas'] = replicas;
        nmd.generation = (nmd.generation ?? 1) + 1;
      }
      next['status'] = this.replicaStatus(RS_DEF, next);
      if (!deepEqual(next, newRs)) newRs = this.put(RS_DEF, next);
    }
    const newName = newRs.metadata?.name;
    const old = owned.filter((rs) => rs.metadata?.name !== newName);
    for (const rs of old) {
      const rsSpec = asRecord(rs['spec']);
      if (rsSpec['replicas'] === 0) continue;
      const next = clone(rs);
      asRecord(next['spec'])['replicas'] = 0;
      metadataOf(next).generation = (rs.metadata?.generation ?? 1) + 1;
      next['status'] = this.replicaStatus(RS_DEF, next);
      this.put(RS_DEF, next);
    }
    const limit = asNumber(spec['revisionHistoryLimit']) ?? 10;
    const prunable = old.sort((a, b) => revisionOf(a) - revisionOf(b));
    while (prunable.length > limit) {
      const victim = prunable.shift()!;
      this.remove(RS_DEF, ns, victim.metadata?.name ?? '');
    }

    const current = this.getEntry(findResource('apps', 'v1', 'deployments')!, ns, md.name ?? '');
    if (!current) return;
    const next = clone(current.obj);
    const nmd = metadataOf(next);
    nmd.annotations = { ...(nmd.annotations ?? {}), 'deployment.kubernetes.io/revision': String(revision) };
    const oldStatus = asRecord(current.obj['status']);
    const oldConds = asArray(oldStatus['conditions']).map(asRecord);
    const cond = (type: string, reason: string, message: string): Record<string, unknown> => {
      const prev = oldConds.find((c) => c['type'] === type);
      const same = prev && prev['status'] === 'True' && prev['reason'] === reason;
      return {
        type,
        status: 'True',
        lastUpdateTime: stamp,
        lastTransitionTime: same ? prev['lastTransitionTime'] : stamp,
        reason,
        message,
      };
    };
    const status: Record<string, unknown> = { observedGeneration: nmd.generation ?? 1 };
    if (replicas > 0) Object.assign(status, { replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas });
    status['conditions'] = [
      cond('Available', 'MinimumReplicasAvailable', 'Deployment has minimum availability.'),
      cond('Progressing', 'NewReplicaSetAvailable', `ReplicaSet "${newName ?? ''}" has successfully progressed.`),
    ];
    next['status'] = status;
    const comparable = (o: KubeObject): unknown => {
      const c = clone(o);
      for (const cnd of asArray(asRecord(c['status'])['conditions'])) delete asRecord(cnd)['lastUpdateTime'];
      return c;
    };
    if (!deepEqual(comparable(next), comparable(current.obj))) this.put(current.def, next);
  }

  // ---- logs ----

  private podLogs(ctx: Ctx, namespace: string, name: string): void {
    const q = ctx.url.searchParams;
    const pod = this.mustGet(POD_DEF, namespace, name);
    const { containers, init, ephemeral } = podContainerNames(pod);
    let container = q.get('container') ?? '';
    if (!container) {
      if (containers.length === 1) container = containers[0]!;
      else {
        throw badRequest(
          `a container name must be specified for pod ${name}, choose one of: [${containers.join(' ')}]` +
            (init.length ? ` or one of the init containers: [${init.join(' ')}]` : ''),
        );
      }
    }
    if (![...containers, ...init, ...ephemeral].includes(container)) throw badRequest(`container ${container} is not valid for pod ${name}`);
    const previous = bool(q.get('previous'));
    const lines = this.logs.get(this.logKey(namespace, name, container, previous));
    if (previous && !lines) throw badRequest(`previous terminated container "${container}" in pod "${name}" not found`);
    if (!lines) {
      const cs = asArray(asRecord(pod['status'])['containerStatuses'])
        .map(asRecord)
        .find((c) => c['name'] === container);
      const waiting = asString(asRecord(asRecord(cs?.['state'])['waiting'])['reason']);
      if (!cs || (waiting && ['ContainerCreating', 'PodInitializing', 'ErrImagePull', 'ImagePullBackOff'].includes(waiting))) {
        throw badRequest(`container "${container}" in pod "${name}" is waiting to start: ${waiting ?? 'ContainerCreating'}`);
      }
    }
    let selected = lines ?? [];
    const sinceSeconds = q.get('sinceSeconds');
    const sinceTime = q.get('sinceTime');
    if (sinceSeconds !== null && sinceTime !== null) throw badRequest('at most one of `sinceTime` or `sinceSeconds` may be specified');
    if (sinceSeconds !== null) {
      const s = Number(sinceSeconds);
      if (!Number.isFinite(s) || s < 1)
        throw invalid('PodLogOptions', '', 'PodLogOptions', name, [
          { field: 'sinceSeconds', reason: 'FieldValueInvalid', message: `Invalid value: ${sinceSeconds}: must be greater than 0` },
        ]);
      const cutoff = ctx.now.getTime() - s * 1000;
      selected = selected.filter((l) => l.t >= cutoff);
    } else if (sinceTime !== null) {
      const cutoff = Date.parse(sinceTime);
      if (Number.isNaN(cutoff)) throw badRequest(`parsing time "${sinceTime}" as "2006-01-02T15:04:05Z07:00": cannot parse`);
      selected = selected.filter((l) => l.t >= cutoff);
    }
    const tail = q.get('tailLines');
    if (tail !== null) {
      const n = Number(tail);
      if (!Number.isInteger(n) || n < 0)
        throw invalid('PodLogOptions', '', 'PodLogOptions', name, [
          { field: 'tailLines', reason: 'FieldValueInvalid', message: `Invalid value: ${tail}: must be greater than or equal to 0` },
        ]);
      selected = n === 0 ? [] : selected.slice(-n);
    }
    const timestamps = bool(q.get('timestamps'));
    let text = selected.map((l) => `${timestamps ? `${new Date(l.t).toISOString().replace('Z', '000000Z')} ` : ''}${l.text}\n`).join('');
    const limitBytes = q.get('limitBytes');
    if (limitBytes !== null && Number(limitBytes) > 0) text = Buffer.from(text, 'utf8').subarray(0, Number(limitBytes)).toString('utf8');
    this.sendText(ctx.res, 200, text);
  }

  // ---- exec over WebSocket ----

  private handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec = this.record(req, url, '');
    const fail = (err: unknown): void => {
      const e =
        err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`);
      const text = JSON.stringify(statusBody(e.code, e.reason, e.message, e.details));
      rec.status = e.code;
      socket.end(
        `HTTP/1.1 ${e.code} ${STATUS_CODES[e.code] ?? ''}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    };
    let session: Omit<ExecRequest, 'stdin'> & { stdinWanted: boolean; stdout: boolean; stderr: boolean };
    try {
      const { user, groups } = this.authenticate(req);
      const path = url.pathname.replace(/\/+$/, '');
      const t = this.parseTarget(path);
      if (!t) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource', {});
      if (t.def !== POD_DEF || t.sub === undefined || !['exec', 'attach', 'portforward'].includes(t.sub) || t.name === undefined || t.namespace === null) {
        throw badRequest('only pods/exec accepts a WebSocket upgrade on this fake API server');
      }
      Object.assign(rec, { verb: 'create', group: '', resource: 'pods', subresource: t.sub, namespace: t.namespace, name: t.name });
      this.authorize(user, groups, t, 'create');
      if (t.sub !== 'exec') throw badRequest(`${t.sub} is not supported by the fake API server`);
      const offered = (req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (offered.length > 0 && !offered.some((p) => EXEC_PROTOCOLS.includes(p))) {
        throw badRequest(`unable to upgrade connection: none of the requested subprotocols are supported: ${offered.join(', ')}`);
      }
      const q = url.searchParams;
      const pod = this.mustGet(POD_DEF, t.namespace, t.name);
      const command = q.getAll('command');
      if (command.length === 0) throw badRequest('you must specify at least 1 command');
      const stdinWanted = bool(q.get('stdin'));
      const stdout = bool(q.get('stdout'));
      const stderr = bool(q.get('stderr'));
      const tty = bool(q.get('tty'));
      if (!stdinWanted && !stdout && !stderr) throw badRequest('you must specify at least 1 of stdin, stdout, stderr');
      const { containers, init, ephemeral } = podContainerNames(pod);
      let container = q.get('container') ?? '';
      if (!container) {
        if (containers.length === 1) container = containers[0]!;
        else throw badRequest(`a container name must be specified for pod ${t.name}, choose one of: [${containers.join(' ')}]`);
      }
      if (![...containers, ...init, ...ephemeral].includes(container)) throw badRequest(`container ${container} is not valid for pod ${t.name}`);
      const phase = asString(asRecord(pod['status'])['phase']);
      if (phase === 'Succeeded' || phase === 'Failed') throw badRequest(`cannot exec into a container in a completed pod; current phase is ${phase}`);
      session = { namespace: t.namespace, pod: t.name, container, command, tty, user, groups, stdinWanted, stdout, stderr };
    } catch (err) {
      fail(err);
      return;
    }
    const cut = this.takeFault(req.method ?? 'GET', url.pathname, ['cut-exec']) === 'cut-exec';
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      rec.status = 101;
      void this.runExec(ws, session, cut ? socket : null);
    });
  }

  /** `cut`: the upgraded socket, to destroy after the first half of stdout (a 'cut-exec' fault). */
  private async runExec(
    ws: WsSocket,
    s: Omit<ExecRequest, 'stdin'> & { stdinWanted: boolean; stdout: boolean; stderr: boolean },
    cut: Duplex | null = null,
  ): Promise<void> {
    const protocol = ws.protocol || 'channel.k8s.io';
    const structuredStatus = protocol === 'v4.channel.k8s.io' || protocol === 'v5.channel.k8s.io';
    let closed = false;
    const stdinChunks: Buffer[] = [];
    let stdinClosed!: () => void;
    const stdinDone = new Promise<void>((resolve) => (stdinClosed = resolve));
    ws.on('close', () => {
      closed = true;
      stdinClosed();
    });
    ws.on('error', () => {
      closed = true;
      stdinClosed();
    });
    ws.on('message', (data) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (buf.length === 0) return;
      if (buf[0] === 0) stdinChunks.push(buf.subarray(1));
      else if (buf[0] === 255 && buf[1] === 0) stdinClosed();
    });
    const send = (channel: number, data: Buffer): void => {
      if (!closed && ws.readyState === WS_OPEN) ws.send(Buffer.concat([Buffer.from([channel]), data]));
    };
    // Like the kubelet: an empty frame on the lowest writable channel says "connected".
    send(s.stdout ? 1 : s.stderr ? 2 : 3, Buffer.alloc(0));
    if (s.stdinWanted && protocol === 'v5.channel.k8s.io') await stdinDone;
    const request: ExecRequest = {
      namespace: s.namespace,
      pod: s.pod,
      container: s.container,
      command: [...s.command],
      tty: s.tty,
      stdin: Buffer.concat(stdinChunks).toString('utf8'),
      user: s.user,
      groups: [...s.groups],
    };
    this.execLog.push({ ...request, protocol });
    let result: ExecResult;
    try {
      result = await this.execHandler(request);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      send(3, Buffer.from(structuredStatus ? JSON.stringify({ metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 }) : message));
      if (!closed) ws.close(1000);
      return;
    }
    if (result.delayMs) {
      const deadline = Date.now() + result.delayMs;
      while (!closed && Date.now() < deadline) await sleep(Math.min(20, deadline - Date.now()));
    }
    if (closed) return;
    const out = s.tty ? result.stdout + result.stderr : result.stdout;
    const errText = s.tty ? '' : result.stderr;
    if (cut) {
      // The command ran; its first output is on the wire when the connection dies, without a close frame or status.
      const first = Buffer.from(out, 'utf8');
      if (s.stdout && first.length > 1 && ws.readyState === WS_OPEN) {
        ws.send(Buffer.concat([Buffer.from([1]), first.subarray(0, Math.floor(first.length / 2))]), () => cut.destroy());
      } else cut.destroy();
      return;
    }
    const CHUNK = 32 * 1024;
    const emit = (channel: number, text: string): void => {
      const buf = Buffer.from(text, 'utf8');
      for (let i = 0; i < buf.length; i += CHUNK) send(channel, buf.subarray(i, i + CHUNK));
    };
    if (s.stdout && out) emit(1, out);
    if (s.stderr && errText) emit(2, errText);
    if (result.exitCode === 0) {
      if (structuredStatus) send(3, Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' })));
    } else {
      const message = `command terminated with non-zero exit code: error executing command [${s.command.join(' ')}], exit code ${result.exitCode}`;
      send(
        3,
        Buffer.from(
          structuredStatus
            ? JSON.stringify({
                metadata: {},
                status: 'Failure',
                message,
                reason: 'NonZeroExitCode',
                details: { causes: [{ reason: 'ExitCode', message: String(result.exitCode) }] },
              })
            : message,
        ),
      );
    }
    if (!closed) ws.close(1000);
  }
}
