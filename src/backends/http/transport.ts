// Sends one HTTP request for the http_request backend with node:http(s):
// the transport resolves the host name itself, checks EVERY answer against the
// address rules (address.ts), and connects to the checked address only (the
// socket's lookup returns it and nothing else), so a resolver that changes its
// answer between the check and the connection (DNS rebinding) cannot steer the
// request to a private address; HTTPS still verifies the certificate for the
// host name (SNI). Redirects are never followed: a 3xx is returned like any
// answer (status, headers with Location, body), and nothing is sent to its
// target — a backend has no policy to decide a new path with, so the agent's
// next call for it is decided like any call. One time limit covers the whole
// exchange (DNS, connect, a trickling body); the body stops at
// maxResponseBytes (reported as truncated, the socket destroyed). Errors are
// the backend's codes (net-errors.ts) with texts scrubbed of the credential;
// response header values and the returned URLs are scrubbed too. The body is
// returned as received: the response stage must run the scrubber over any text
// it shows (a server may echo the key back).

import { lookup as dnsLookup } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';
import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';
import { DrawbridgeError } from '../../errors.js';
import { checkAddress, literalAddress, type NetworkAllowList } from './address.js';
import { applyCredential, credentialScrubber, withoutCredential, type ResolvedCredential } from './credentials.js';
import './net-errors.js';

export interface HttpRequest {
  readonly method: string;
  /** Absolute http: or https: URL, without the credential (the transport adds a query key itself). */
  readonly url: URL;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Uint8Array | null;
}

export interface ResolvedAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** Resolves a host name to all its addresses (injectable for tests; the default is the system resolver). */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

export interface SendOptions {
  /** The whole exchange, the body included. */
  readonly timeoutMs: number;
  readonly maxResponseBytes: number;
  /** Non-public ranges this connection may reach. */
  readonly networks: NetworkAllowList;
  readonly credential: ResolvedCredential | null;
  /** An extra trust root (PEM) for the service's certificate, besides the system's. */
  readonly ca?: string;
  readonly resolve?: Resolver;
}

export interface HttpResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Uint8Array;
  readonly truncated: boolean;
  /** The URL that answered (the one requested: redirects are not followed), without the credential. */
  readonly finalUrl: URL;
  /** The address the answer came from (the pinned one). */
  readonly address: string;
}

export const systemResolver: Resolver = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

/** The one deadline of a send: a promise that rejects when it passes, and the hooks that cancel sockets with it. */
class Deadline {
  readonly expired: Promise<never>;
  private timer: NodeJS.Timeout | undefined;
  private readonly cancels = new Set<(error: Error) => void>();
  private fired: DrawbridgeError | null = null;

  constructor(
    readonly ms: number,
    describe: string,
  ) {
    this.expired = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => {
        this.fired = new DrawbridgeError('http.timeout', `${describe}: no complete answer within ${ms} ms.`, { details: { timeoutMs: ms } });
        for (const cancel of this.cancels) cancel(this.fired);
        reject(this.fired);
      }, ms);
    });
    this.expired.catch(() => undefined);
  }

  get error(): DrawbridgeError | null {
    return this.fired;
  }

  onExpire(cancel: (error: Error) => void): () => void {
    const fired = this.fired;
    if (fired !== null) {
      // Expired between two steps: cancel what was just started, on the next tick (its caller is still setting up).
      queueMicrotask(() => cancel(fired));
      return () => undefined;
    }
    this.cancels.add(cancel);
    return () => this.cancels.delete(cancel);
  }

  race<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.expired]);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

/** The host as a socket wants it (no brackets). */
const bareHost = (url: URL): string => (url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname);

/** Resolves the URL's host, checks every answer, and returns the one address to connect to. */
async function pinAddress(url: URL, options: SendOptions, deadline: Deadline, scrub: (t: string) => string): Promise<ResolvedAddress> {
  const literal = literalAddress(url.hostname);
  let answers: readonly ResolvedAddress[];
  if (literal !== null) {
    answers = [{ address: literal, family: literal.includes(':') ? 6 : 4 }];
  } else {
    try {
      answers = await deadline.race((options.resolve ?? systemResolver)(url.hostname));
    } catch (error) {
      if (deadline.error) throw deadline.error;
      throw new DrawbridgeError('http.unreachable', scrub(`The name ${url.hostname} could not be resolved.`), { cause: error });
    }
    if (answers.length === 0) throw new DrawbridgeError('http.unreachable', scrub(`The name ${url.hostname} has no address.`));
  }
  for (const answer of answers) {
    const verdict = checkAddress(answer.address, options.networks);
    if (!verdict.allowed) {
      throw new DrawbridgeError('http.address_refused', scrub(`Refused to connect to ${url.host}: ${verdict.reason}. Nothing was sent.`), {
        details: { host: url.hostname, address: verdict.address, addressClass: verdict.class },
      });
    }
  }
  const first = answers[0];
  if (first === undefined) throw new TypeError('no address');
  return first;
}

function failure(error: unknown, what: string, scrub: (t: string) => string): DrawbridgeError {
  if (error instanceof DrawbridgeError) return error;
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : '';
  // No cause here: the parser's error carries the raw bytes the service sent.
  if (/^HPE_/.test(code)) return new DrawbridgeError('http.bad_response', scrub(`${what}: the service sent an invalid HTTP response (${code}).`));
  if (/CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/.test(code)) {
    return new DrawbridgeError('http.tls_failed', scrub(`${what}: TLS failed (${code}).`), { cause: error });
  }
  const reason = code === '' ? 'the connection failed' : code;
  return new DrawbridgeError('http.unreachable', scrub(`${what}: ${reason}.`), { cause: error });
}

interface Exchanged {
  readonly status: number;
  readonly statusText: string;
  readonly rawHeaders: readonly string[];
  readonly body: Uint8Array;
  readonly truncated: boolean;
}

/** One request/response on a fresh connection to the pinned address; a 3xx is an answer like any other. */
function exchange(request: HttpRequest, pinned: ResolvedAddress, options: SendOptions, deadline: Deadline, scrub: (t: string) => string): Promise<Exchanged> {
  const wire = applyCredential(request.url, request.headers, options.credential);
  // Headers go as a raw list (order and case as given), so Node adds none of its own: Host and Connection are set here.
  const headers: Array<[string, string]> = [
    ['Host', wire.url.host],
    ...wire.headers.filter(([n]) => !['host', 'connection', 'accept-encoding'].includes(n.toLowerCase())).map(([n, v]) => [n, v] as [string, string]),
    // Uncompressed answers only, so the size cap counts what the response stage reads (no decompression bomb behind it).
    ['Accept-Encoding', 'identity'],
    ['Connection', 'close'],
  ];
  if (request.body !== null && !headers.some(([n]) => n.toLowerCase() === 'content-length')) headers.push(['Content-Length', String(request.body.byteLength)]);
  const host = bareHost(wire.url);
  const isHttps = wire.url.protocol === 'https:';
  const pinnedLookup: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  const base: RequestOptions = {
    method: request.method,
    host,
    port: wire.url.port === '' ? (isHttps ? 443 : 80) : Number(wire.url.port),
    path: `${wire.url.pathname}${wire.url.search}`,
    headers: headers.flat(),
    agent: false,
    lookup: pinnedLookup,
  };
  const what = `${request.method} ${request.url.origin}`;
  return new Promise<Exchanged>((resolve, reject) => {
    let settled = false;
    const done = (error: unknown, value?: Exchanged): void => {
      if (settled) return;
      settled = true;
      release();
      if (value !== undefined && error === null) resolve(value);
      else reject(failure(error, what, scrub));
    };
    const req = isHttps
      ? httpsRequest({
          ...base,
          rejectUnauthorized: true,
          ...(literalAddress(wire.url.hostname) === null ? { servername: host } : {}),
          // Node's `ca` replaces the system roots: keep them and add the operator's.
          ...(options.ca === undefined ? {} : { ca: [...rootCertificates, options.ca] }),
          ...(wire.tls === null ? {} : wire.tls),
        })
      : httpRequest(base);
    const release = deadline.onExpire((error) => {
      req.destroy(error);
      done(error);
    });
    req.on('error', (error) => {
      req.destroy();
      done(error);
    });
    req.on('response', (res: IncomingMessage) => {
      res.on('error', (error) => done(error));
      const status = res.statusCode ?? 0;
      const head = { status, statusText: res.statusMessage ?? '', rawHeaders: res.rawHeaders };
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (settled) return;
        const room = options.maxResponseBytes - size;
        if (chunk.byteLength > room) {
          chunks.push(chunk.subarray(0, room));
          size += room;
          done(null, { ...head, body: Buffer.concat(chunks, size), truncated: true });
          res.destroy();
          req.destroy();
          return;
        }
        chunks.push(chunk);
        size += chunk.byteLength;
      });
      res.on('end', () => done(null, { ...head, body: Buffer.concat(chunks, size), truncated: false }));
      res.on('close', () => {
        if (!res.complete) done(Object.assign(new Error('the connection closed before the answer was complete'), { code: 'ECONNRESET' }));
      });
    });
    req.end(request.body === null ? undefined : Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength));
  });
}

/** Sends the request under the options' address, time and size rules; a redirect is answered, never followed. */
export async function send(request: HttpRequest, options: SendOptions): Promise<HttpResponse> {
  if (request.url.protocol !== 'http:' && request.url.protocol !== 'https:') throw new TypeError(`not an http(s) URL: ${request.url.protocol}`);
  const scrub = credentialScrubber(options.credential);
  const shown = (url: URL): URL => new URL(scrub(withoutCredential(url, options.credential).href));
  const deadline = new Deadline(options.timeoutMs, `${request.method} ${request.url.origin}`);
  const current: HttpRequest = { ...request, url: withoutCredential(request.url, options.credential) };
  try {
    const pinned = await pinAddress(current.url, options, deadline, scrub);
    const answer = await deadline.race(exchange(current, pinned, options, deadline, scrub));
    // Header values are scrubbed: a Location (or any header) echoing the key shows it as [credential].
    const headers: Array<[string, string]> = [];
    for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) headers.push([answer.rawHeaders[i] ?? '', scrub(answer.rawHeaders[i + 1] ?? '')]);
    return {
      status: answer.status,
      statusText: scrub(answer.statusText),
      headers,
      body: answer.body,
      truncated: answer.truncated,
      finalUrl: shown(current.url),
      address: pinned.address,
    };
  } finally {
    deadline.clear();
  }
}
