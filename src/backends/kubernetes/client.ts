// The brokered Kubernetes connection: REST requests and exec over WebSocket
// with the gateway's own credentials (a kubeconfig or the in-cluster service
// account, loaded by @kubernetes/client-node), optionally impersonating the
// caller so the cluster's RBAC is a second wall. Credentials never leave here.
// Faults: every request, response and WebSocket has its 'error' listeners, and
// each ends in one coded DrawbridgeError saying whether the request reached the
// server — so a write cut off mid-answer says the change may have been applied.

import { decodeCut } from '../shared/utf8.js';
import http from 'node:http';
import https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import WebSocket from 'ws';
import { DrawbridgeError } from '../../errors.js';

export interface Impersonation {
  readonly user: string;
  readonly groups: readonly string[];
}

interface RequestOptions {
  readonly query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly accept?: string;
  readonly impersonate?: Impersonation | null;
  readonly timeoutMs: number;
  readonly maxBytes: number;
  /** Whether the request can change the cluster, for what a fault says (default: any method but GET and HEAD, unless dryRun=All). */
  readonly changes?: boolean;
}

export interface Response {
  readonly status: number;
  readonly text: string;
  readonly truncated: boolean;
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number | null;
  readonly message: string | null;
  readonly truncated: boolean;
  readonly timedOut: boolean;
}

export class KubeClient {
  readonly server: URL;

  /** The API server as shown to people: origin and path, never user info or a query. */
  get address(): string {
    return `${this.server.origin}${this.server.pathname.replace(/\/$/, '')}`;
  }

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new DrawbridgeError('config.invalid', 'The kubeconfig has no current cluster; set `context:` on the connection.');
    this.server = new URL(cluster.server);
  }

  private url(path: string, query: RequestOptions['query']): URL {
    const url = new URL(this.server.toString());
    url.pathname = `${url.pathname.replace(/\/$/, '')}${path}`;
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, String(v));
      else url.searchParams.set(key, String(value));
    }
    return url;
  }

  /** The connection options with the gateway's credentials; a credential that cannot be used is a coded refusal, before anything is sent. */
  private async options(impersonate: Impersonation | null | undefined): Promise<https.RequestOptions> {
    const options: https.RequestOptions = { headers: {} };
    try {
      await this.kc.applyToHTTPSOptions(options);
    } catch (error) {
      // client-node builds an agent and may run a credential plugin here; only its first line is shown.
      const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0]?.slice(0, 200) ?? '';
      throw new DrawbridgeError(
        'backend.unavailable',
        `The gateway's credentials for the Kubernetes API at ${this.address} could not be prepared (${reason}); nothing was sent.`,
        {
          hint:
            "Tell the operator: the kubeconfig's cluster or user (token, client certificate or credential " +
            'plugin) cannot be used on the gateway host. Retrying will not help until it is fixed.',
          cause: error,
        },
      );
    }
    const headers = options.headers as Record<string, string | string[]>;
    // Client-supplied identity headers are never taken from the agent: only the gateway sets them.
    if (impersonate) {
      headers['Impersonate-User'] = impersonate.user;
      if (impersonate.groups.length > 0) headers['Impersonate-Group'] = [...impersonate.groups];
    }
    return options;
  }

  /**
   * One REST request. Every way it can fail ends in a coded DrawbridgeError
   * that says how far it got: not sent (backend.unavailable, details.delivery
   * 'not-sent'), or sent and not fully answered (details.delivery 'maybe'),
   * which for a change is backend.interrupted — the server may have applied it
   * — and for a read (or a server-side dry run) changed nothing. Each request
   * has its own agent (client-node creates one per call, without keep-alive),
   * so a connection the server broke is never reused.
   */
  async request(method: string, path: string, o: RequestOptions): Promise<Response> {
    const url = this.url(path, o.query);
    const what = `${method} ${url.pathname}`;
    const changes = o.changes ?? (method !== 'GET' && method !== 'HEAD' && o.query?.['dryRun'] !== 'All');
    const options = await this.options(o.impersonate);
    const headers = options.headers as Record<string, string | string[]>;
    headers['Accept'] = o.accept ?? 'application/json';
    headers['User-Agent'] = 'drawbridge';
    let payload: string | undefined;
    if (o.body !== undefined) {
      payload = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      headers['Content-Type'] = o.contentType ?? 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(payload));
    }
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      let connected = false;
      let timedOut = false;
      let answer: { status: number; bytes: number } | null = null;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        outcome();
      };
      const fault = (reason: string, cause?: unknown) =>
        settle(() => {
          const options = cause === undefined ? {} : { cause };
          if (!connected) {
            // Never connected: nothing was sent (the words `check --connect` has always printed).
            reject(
              new DrawbridgeError('backend.unavailable', `Cannot reach the Kubernetes API: ${timedOut ? `no connection within ${o.timeoutMs} ms` : reason}`, {
                ...options,
                details: { delivery: 'not-sent' },
              }),
            );
            return;
          }
          const how = timedOut
            ? `did not answer ${what} within ${o.timeoutMs} ms`
            : answer
              ? `closed the connection while answering ${what} (status ${answer.status}, ${answer.bytes} bytes read): ${reason}`
              : `closed the connection before answering ${what} (${reason})`;
          // The request reached the server: a change may have been applied, whatever the answer was going to say.
          if (changes) {
            reject(
              new DrawbridgeError('backend.interrupted', `The Kubernetes API server ${how}: the change may or may not have been applied — check with get.`, {
                ...options,
                details: { delivery: 'maybe' },
              }),
            );
          } else if (timedOut) {
            reject(
              new DrawbridgeError('backend.timeout', `The Kubernetes API did not answer ${what} within ${o.timeoutMs} ms; this read changed nothing.`, {
                ...options,
                details: { delivery: 'maybe' },
              }),
            );
          } else {
            reject(
              new DrawbridgeError('backend.unavailable', `The Kubernetes API server ${how}; this read changed nothing, retry it.`, {
                ...options,
                details: { delivery: 'maybe' },
              }),
            );
          }
        });
      let req: http.ClientRequest;
      try {
        req = transport.request(url, { ...options, method, timeout: o.timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          let truncated = false;
          answer = { status: res.statusCode ?? 0, bytes: 0 };
          const done = () => resolve({ status: res.statusCode ?? 0, text: decodeCut(chunks, truncated), truncated });
          res.on('data', (chunk: Buffer) => {
            if (settled) return;
            if (size + chunk.length > o.maxBytes) {
              chunks.push(chunk.subarray(0, Math.max(0, o.maxBytes - size)));
              truncated = true;
              settle(done);
              res.destroy();
              return;
            }
            size += chunk.length;
            if (answer) answer.bytes = size;
            chunks.push(chunk);
          });
          res.on('end', () => settle(done));
          // An answer cut off mid-body: Node reports it as 'aborted' (an 'error' here) and a close without end.
          res.on('error', (e) => fault(e.message, e));
          res.on('close', () => {
            if (!res.complete) fault('the answer was cut off');
          });
        });
      } catch (error) {
        // Node refuses some header values (e.g. a control character in a name) before anything is sent.
        settle(() =>
          reject(
            new DrawbridgeError(
              'backend.error',
              `The request to the Kubernetes API could not be built (${error instanceof Error ? error.message : String(error)}); ${what} was not sent.`,
              { cause: error, details: { delivery: 'not-sent' } },
            ),
          ),
        );
        return;
      }
      req.on('socket', (socket) => {
        // Whether the request can have reached the server: the difference between "not sent" and "may have been applied".
        if (!socket.connecting) connected = true;
        else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => (connected = true));
      });
      req.on('timeout', () => {
        timedOut = true;
        req.destroy();
      });
      req.on('error', (e) => fault(e.message, e));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /**
   * exec over WebSocket (v5/v4 channel protocols), no TTY, no stdin, with a
   * time limit and output caps. A connection that breaks after the session
   * opened and before the command's status arrived is backend.interrupted:
   * whether the command finished is unknown.
   */
  async exec(
    target: { namespace: string; pod: string; container: string | null; command: readonly string[] },
    o: { impersonate: Impersonation | null; timeoutMs: number; maxBytes: number },
  ): Promise<ExecResult> {
    const url = this.url(`/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/exec`, {
      command: target.command,
      ...(target.container ? { container: target.container } : {}),
      stdout: true,
      stderr: true,
      stdin: false,
      tty: false,
    });
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const where = `pod ${target.namespace}/${target.pod}`;
    const options = await this.options(o.impersonate);
    return new Promise<ExecResult>((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, ['v5.channel.k8s.io', 'v4.channel.k8s.io', 'channel.k8s.io'], {
          headers: options.headers as Record<string, string>,
          ...(options.ca ? { ca: options.ca } : {}),
          ...(options.cert ? { cert: options.cert } : {}),
          ...(options.key ? { key: options.key } : {}),
          ...(options.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
        });
      } catch (error) {
        reject(
          new DrawbridgeError(
            'backend.error',
            `exec in ${where} could not be started (${error instanceof Error ? error.message : String(error)}); nothing ran.`,
            { cause: error },
          ),
        );
        return;
      }
      new ExecSession(ws, where, o, resolve, reject).watch();
    });
  }
}

/** The Status object the API server sends on the error channel (3) when the command ends. */
type ExecStatus = { status?: string; message?: string; details?: { causes?: Array<{ reason?: string; message?: string }> } };

/** One exec's WebSocket: collects its output up to the cap, and settles once, with the result or the fault. */
class ExecSession {
  private readonly out: Buffer[] = [];
  private readonly err: Buffer[] = [];
  private size = 0;
  private truncated = false;
  private opened = false;
  private settled = false;
  private status: ExecStatus | null = null;
  private timedOut = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly where: string,
    private readonly limits: { readonly timeoutMs: number; readonly maxBytes: number },
    private readonly resolve: (result: ExecResult) => void,
    private readonly reject: (error: DrawbridgeError) => void,
  ) {}

  watch(): void {
    const ws = this.ws;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      terminate(ws);
    }, this.limits.timeoutMs);
    ws.on('open', () => {
      this.opened = true;
    });
    ws.on('message', (data: Buffer) => this.message(data));
    ws.on('unexpected-response', (_req, res) => this.refused(res));
    ws.on('error', (e) => {
      // A time limit's terminate() is reported by the close that follows.
      if (this.timedOut) return;
      this.fail(
        this.opened
          ? this.lost(`failed (${e.message})`)
          : new DrawbridgeError('backend.unavailable', `exec in ${this.where} could not start: ${e.message}; nothing ran.`, { cause: e }),
      );
    });
    ws.on('close', (code: number) => {
      if (this.timedOut || this.truncated || this.status !== null) return this.finish();
      if (!this.opened)
        return this.fail(new DrawbridgeError('backend.unavailable', `exec in ${this.where} could not start: the connection closed (${code}); nothing ran.`));
      // v4/v5 always end with a status; an older protocol ends a successful command with a clean close (1000).
      if (code !== 1000 || ws.protocol === 'v5.channel.k8s.io' || ws.protocol === 'v4.channel.k8s.io') return this.fail(this.lost(`closed (code ${code})`));
      this.finish();
    });
  }

  private message(data: Buffer): void {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
    const channel = buf[0];
    const body = buf.subarray(1);
    if (channel === 3) {
      try {
        this.status = JSON.parse(body.toString('utf8')) as ExecStatus;
      } catch {
        this.status = { status: 'Failure', message: body.toString('utf8') };
      }
      return;
    }
    if (channel !== 1 && channel !== 2) return;
    const max = this.limits.maxBytes;
    if (this.size + body.length > max) {
      this.truncated = true;
      const room = Math.max(0, max - this.size);
      (channel === 1 ? this.out : this.err).push(body.subarray(0, room));
      this.size = max;
      this.ws.terminate();
      return;
    }
    this.size += body.length;
    (channel === 1 ? this.out : this.err).push(body);
  }

  /** The API server refused the upgrade: nothing ran. Its reason is read (capped) and reported. */
  private refused(res: http.IncomingMessage): void {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      if (size < 64 * 1024) chunks.push(c);
      size += c.length;
    });
    res.on('end', () =>
      this.fail(
        new DrawbridgeError(
          'backend.error',
          `exec was refused by the Kubernetes API (${res.statusCode}): ${statusMessage(Buffer.concat(chunks).toString('utf8'))}`,
        ),
      ),
    );
    res.on('error', () => undefined);
    res.on('close', () => {
      if (!res.complete)
        this.fail(
          new DrawbridgeError(
            'backend.unavailable',
            `exec in ${this.where} was refused by the Kubernetes API (${res.statusCode}) and the connection closed before its reason arrived; nothing ran.`,
          ),
        );
    });
  }

  private lost(how: string): DrawbridgeError {
    return new DrawbridgeError(
      'backend.interrupted',
      `The connection to the Kubernetes API ${how} during exec in ${this.where}, before the command's exit status ` +
        `arrived: whether the command finished is unknown — check the pod before retrying a command that changes state.`,
    );
  }

  private fail(error: DrawbridgeError): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.reject(error);
    terminate(this.ws);
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    const s = this.status;
    let exitCode: number | null = null;
    if (s?.status === 'Success') exitCode = 0;
    else {
      const cause = s?.details?.causes?.find((c) => c.reason === 'ExitCode');
      if (cause?.message !== undefined && /^\d+$/.test(cause.message)) exitCode = Number(cause.message);
    }
    this.resolve({
      stdout: decodeCut(this.out, this.truncated),
      stderr: decodeCut(this.err, this.truncated),
      exitCode,
      message: s && s.status !== 'Success' ? (s.message ?? null) : null,
      truncated: this.truncated,
      timedOut: this.timedOut,
    });
  }
}

function terminate(ws: WebSocket): void {
  try {
    ws.terminate();
  } catch {
    // already closed
  }
}

/** The message of a Kubernetes Status body, or the raw text. */
export function statusMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return text.slice(0, 500);
}

/** Loads the connection's credentials: kubeconfig text or the in-cluster service account. */
export function loadKubeConfig(source: { kubeconfig: string | null; inCluster: boolean; context: string | null }): KubeConfig {
  const kc = new KubeConfig();
  if (source.inCluster) {
    // client-node would build https://undefined:undefined and fail later with an obscure error.
    if (!process.env['KUBERNETES_SERVICE_HOST'] || !process.env['KUBERNETES_SERVICE_PORT']) {
      throw new DrawbridgeError(
        'config.invalid',
        'The connection says in_cluster: true, but the gateway is not running in a ' +
          'Kubernetes pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set).',
        {
          hint: 'Run the gateway in the cluster with a service account, or give the connection a kubeconfig instead of in_cluster.',
        },
      );
    }
    kc.loadFromCluster();
  } else if (source.kubeconfig !== null) {
    try {
      kc.loadFromString(source.kubeconfig);
    } catch {
      // The parser's message may quote the kubeconfig (tokens, keys): it is not passed on.
      throw new DrawbridgeError(
        'config.secret_invalid',
        'The kubeconfig of this connection cannot be read (it is not a kubeconfig: YAML ' +
          'with clusters, users and contexts); its content is not shown because it is a secret.',
        {
          hint:
            'The operator must point kubeconfig at a valid kubeconfig on the gateway host (kubectl ' +
            'config view --raw --minify writes one) and restart the gateway. Retrying will not help.',
        },
      );
    }
  } else throw new TypeError('a kubernetes connection needs kubeconfig or in_cluster');
  if (source.context !== null) {
    if (!kc.getContextObject(source.context)) throw new DrawbridgeError('config.invalid', `The kubeconfig has no context named "${source.context}".`);
    kc.setCurrentContext(source.context);
  }
  return kc;
}

/** What `check --connect` learns from an API server: its version and who the credentials are. */
interface ClusterProbe {
  /** gitVersion from /version, e.g. v1.30.2; null when the server would not say. */
  readonly version: string | null;
  /** status.userInfo of a SelfSubjectReview; null when the server cannot tell (see identityNote). */
  readonly identity: { readonly username: string; readonly groups: readonly string[] } | null;
  /** Why the identity is unknown; empty when it is known. */
  readonly identityNote: string;
}

function jsonOf(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The API server refused the gateway's own credentials (401): the operator must
 * fix the kubeconfig, so it is backend.auth_failed wherever it happens (probe,
 * discovery, a call) — never an error the agent is told to fix by changing its
 * request. A 403 is different: the server's RBAC refused this one request.
 */
export function credentialsRefused(client: KubeClient, what: string): DrawbridgeError {
  return new DrawbridgeError(
    'backend.auth_failed',
    `The Kubernetes API at ${client.address} refused the gateway's credentials (${what}). ` +
      `The token or client certificate in the connection's kubeconfig is wrong or expired; the operator must fix it.`,
  );
}

/**
 * GET /version, then POST a SelfSubjectReview (authentication.k8s.io/v1), as
 * the gateway itself. A 401 is backend.auth_failed; a server without the review
 * API (404, Kubernetes before 1.28) or one that forbids it leaves the identity unknown.
 */
export async function probeCluster(client: KubeClient, timeoutMs: number): Promise<ClusterProbe> {
  const options = { timeoutMs, maxBytes: 256 * 1024 };
  const where = client.address;
  const refused = (res: Response, what: string) => credentialsRefused(client, `${what}: 401 ${statusMessage(res.text)}`);
  const version = await client.request('GET', '/version', options);
  if (version.status === 401) throw refused(version, 'GET /version');
  if (version.status >= 400 && version.status !== 403 && version.status !== 404) {
    throw new DrawbridgeError('backend.error', `The Kubernetes API at ${where} answered GET /version with ${version.status}: ${statusMessage(version.text)}`);
  }
  const gitVersion = version.status < 300 ? jsonOf(version.text)['gitVersion'] : undefined;
  const review = await client.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
    ...options,
    changes: false, // a review is answered, never stored
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
  });
  if (review.status === 401) throw refused(review, 'SelfSubjectReview');
  const base = { version: typeof gitVersion === 'string' ? gitVersion : null };
  if (review.status === 404)
    return { ...base, identity: null, identityNote: 'the server has no SelfSubjectReview API (authentication.k8s.io/v1, Kubernetes 1.28 and later)' };
  if (review.status === 403)
    return { ...base, identity: null, identityNote: `the credentials may not create a SelfSubjectReview: ${statusMessage(review.text)}` };
  if (review.status >= 300) return { ...base, identity: null, identityNote: `SelfSubjectReview answered ${review.status}: ${statusMessage(review.text)}` };
  const status = jsonOf(review.text)['status'];
  const userInfo = typeof status === 'object' && status !== null ? (status as Record<string, unknown>)['userInfo'] : undefined;
  const info = typeof userInfo === 'object' && userInfo !== null ? (userInfo as Record<string, unknown>) : {};
  const username = info['username'];
  if (typeof username !== 'string' || username === '') return { ...base, identity: null, identityNote: 'the SelfSubjectReview named no user' };
  const groups = Array.isArray(info['groups']) ? info['groups'].filter((g): g is string => typeof g === 'string') : [];
  return { ...base, identity: { username, groups }, identityNote: '' };
}
