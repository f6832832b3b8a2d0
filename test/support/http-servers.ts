// Local node:http servers for the http_request backend's tests, on loopback
// addresses only: an echo server that records every request it got (method,
// the path exactly as received, raw headers, body) so tests assert what reached
// it — and, as importantly, that nothing refused did; redirects by path on the
// same server; a redirector to any Location; a slow one (headers, then a
// trickle); an endless one; a small API documented by an OpenAPI 3 document;
// and an HTTPS echo server (fixed test certificate for api.test, optional client certificate).

import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface RecordedRequest {
  readonly method: string;
  /** The request target exactly as it arrived (no decoding, no normalising). */
  readonly rawPath: string;
  /** Header name/value pairs as received. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

export interface TestServer {
  /** http://HOST:PORT (no path). */
  readonly url: URL;
  readonly host: string;
  readonly port: number;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** How many client connections are open now (to assert that a cut answer closed its socket). */
  openConnections(): Promise<number>;
  close(): Promise<void>;
}

export interface ListenOn {
  /** A loopback address (default 127.0.0.1). */
  readonly host?: string;
  /** 0 (default) for any free port. */
  readonly port?: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse, recorded: RecordedRequest) => void;

function loopbackOnly(host: string): string {
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== '::1') throw new TypeError(`test servers listen on loopback only, not ${host}`);
  return host;
}

/** A server that records each request (after its body arrived) and then runs the handler. */
export function startRecordingServer(handler: Handler, on: ListenOn = {}): Promise<TestServer> {
  return listenRecording((listener) => createServer(listener), handler, on, 'http');
}

async function listenRecording(make: (listener: RequestListener) => Server, handler: Handler, on: ListenOn, scheme: 'http' | 'https'): Promise<TestServer> {
  const host = loopbackOnly(on.host ?? '127.0.0.1');
  const requests: RecordedRequest[] = [];
  const server: Server = make((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const headers: Array<[string, string]> = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i] ?? '', req.rawHeaders[i + 1] ?? '']);
      const recorded = { method: req.method ?? '', rawPath: req.url ?? '', headers, body: Buffer.concat(chunks) };
      requests.push(recorded);
      handler(req, res, recorded);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(on.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  const urlHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: new URL(`${scheme}://${urlHost}:${address.port}`),
    host,
    port: address.port,
    requests,
    openConnections: () => new Promise<number>((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface EchoOptions extends ListenOn {
  /** Answer with the recorded request as JSON (headers and body included) instead of a short fixed answer. */
  readonly reflect?: boolean;
  /** Paths (the path as received, its query ignored) answered with a redirect instead. */
  readonly redirects?: Readonly<Record<string, { readonly location: string; readonly status?: number }>>;
  /** Extra response headers on every answer. */
  readonly headers?: ReadonlyArray<readonly [string, string]>;
}

/** Echo: records every request; answers 200 JSON `{ ok, method, path, n }` (or the whole request with `reflect`). */
export function startEchoServer(options: EchoOptions = {}): Promise<TestServer> {
  let count = 0;
  return startRecordingServer((_req, res, recorded) => {
    count += 1;
    for (const [name, value] of options.headers ?? []) res.setHeader(name, value);
    const redirect = options.redirects?.[new URL(recorded.rawPath, 'http://x').pathname];
    if (redirect) {
      res.writeHead(redirect.status ?? 302, { location: redirect.location, 'content-type': 'text/plain' });
      res.end('moved');
      return;
    }
    const answer = options.reflect
      ? { method: recorded.method, path: recorded.rawPath, headers: recorded.headers, body: recorded.body.toString('utf8') }
      : { ok: true, method: recorded.method, path: recorded.rawPath, n: count };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(answer));
  }, options);
}

/** Redirector: every request answered with `status` to `location` (any URL: another port, 169.254.169.254, …). */
export function startRedirector(location: string, status = 302, on: ListenOn = {}): Promise<TestServer> {
  return startRecordingServer((_req, res) => {
    res.writeHead(status, { location, 'content-type': 'text/plain' });
    res.end('moved');
  }, on);
}

export interface SlowOptions extends ListenOn {
  /** Milliseconds between one-byte chunks of the body (default 50). */
  readonly intervalMs?: number;
}

/** Slow: sends status and headers at once, then one byte every intervalMs, never finishing on its own (a slow-loris body). */
export function startSlowServer(options: SlowOptions = {}): Promise<TestServer> {
  return startRecordingServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.flushHeaders();
    const timer = setInterval(() => res.write('.'), options.intervalMs ?? 50);
    res.on('close', () => clearInterval(timer));
  }, options);
}

/** Endless: a 200 whose body never ends, written as fast as the client reads it. */
export function startEndlessServer(on: ListenOn = {}): Promise<TestServer> {
  const chunk = Buffer.alloc(16 * 1024, 'x');
  return startRecordingServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const pump = (): void => {
      while (!res.destroyed && res.write(chunk));
      if (!res.destroyed) res.once('drain', pump);
    };
    pump();
  }, on);
}

/** The OpenAPI 3 document of the widgets API (served at /openapi.json). */
export const WIDGETS_OPENAPI = {
  openapi: '3.0.3',
  info: { title: 'Widgets', version: '1.0.0' },
  paths: {
    '/widgets': {
      get: { operationId: 'listWidgets', responses: { '200': { description: 'The widgets' } } },
      post: {
        operationId: 'createWidget',
        requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } } } },
        responses: { '201': { description: 'Created' } },
      },
    },
    '/widgets/{id}': {
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'integer', minimum: 1 } }],
      get: { operationId: 'getWidget', responses: { '200': { description: 'One widget' }, '404': { description: 'Not found' } } },
      delete: { operationId: 'deleteWidget', responses: { '204': { description: 'Deleted' } } },
    },
  },
} as const;

/**
 * A small widgets API as its OpenAPI document describes it (GET/POST /widgets,
 * GET/DELETE /widgets/{id}); it records requests like the echo server. Widget 1
 * has an owner e-mail and a card number, for masking tests.
 */
export function startOpenApiServer(on: ListenOn = {}): Promise<TestServer> {
  const widgets = new Map<number, { id: number; name: string; owner: { email: string }; card_number: string }>([
    [1, { id: 1, name: 'sprocket', owner: { email: 'ada@example.com' }, card_number: '4111111111111111' }],
  ]);
  let nextId = 2;
  return startRecordingServer((req, res, recorded) => {
    const json = (status: number, value: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    const path = new URL(recorded.rawPath, 'http://x').pathname;
    if (path === '/openapi.json' && req.method === 'GET') return json(200, WIDGETS_OPENAPI);
    if (path === '/widgets' && req.method === 'GET') return json(200, [...widgets.values()]);
    if (path === '/widgets' && req.method === 'POST') {
      let name: unknown;
      try {
        name = (JSON.parse(recorded.body.toString('utf8')) as { name?: unknown }).name;
      } catch {
        return json(400, { error: 'invalid JSON' });
      }
      if (typeof name !== 'string') return json(400, { error: 'name is required' });
      const widget = { id: nextId++, name, owner: { email: 'new@example.com' }, card_number: '5500000000000004' };
      widgets.set(widget.id, widget);
      return json(201, widget);
    }
    const one = /^\/widgets\/([1-9][0-9]*)$/.exec(path);
    if (one) {
      const id = Number(one[1]);
      const widget = widgets.get(id);
      if (!widget) return json(404, { error: 'no such widget' });
      if (req.method === 'GET') return json(200, widget);
      if (req.method === 'DELETE') {
        widgets.delete(id);
        res.writeHead(204).end();
        return;
      }
    }
    json(404, { error: 'not found' });
  }, on);
}

/**
 * Test-only certificates (self-signed P-256, valid until 2126, made once with
 * `openssl req -x509 -newkey ec -nodes -days 36500 -subj /CN=… [-addext subjectAltName=DNS:api.test]`),
 * kept here so the tests need no openssl binary. The server certificate names api.test only.
 */
const API_TEST_CERT = [
  '-----BEGIN CERTIFICATE-----',
  'MIIBkzCCATigAwIBAgIUL2VzwTo8w70NAs9PL7Vvn3mLNsUwCgYIKoZIzj0EAwIw',
  'EzERMA8GA1UEAwwIYXBpLnRlc3QwIBcNMjYxMjA1MTA1NzE4WhgPMjEyNjExMTEx',
  'MDU3MThaMBMxETAPBgNVBAMMCGFwaS50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0D',
  'AQcDQgAEpz35tN2lv+QY6yQ7Nmsp8nDyjUl524jI0a/6eUKVyNXw0i59FmueauIf',
  'i9QH4mOIZEip5pHwvLW9n1RLE32F7qNoMGYwHQYDVR0OBBYEFDVGMslgh+c7CdOS',
  'wJ5hz/xA6dMjMB8GA1UdIwQYMBaAFDVGMslgh+c7CdOSwJ5hz/xA6dMjMA8GA1Ud',
  'EwEB/wQFMAMBAf8wEwYDVR0RBAwwCoIIYXBpLnRlc3QwCgYIKoZIzj0EAwIDSQAw',
  'RgIhANCpU26m3mK5ubb9DxTzionc4NxfDBnC4ced5yMX8v13AiEA0TdcnbrQvS/h',
  '0MEP6iDxK0EizaIKmTHtxS5ETm6/KHU=',
  '-----END CERTIFICATE-----',
].join('\n');
const API_TEST_KEY = [
  '-----BEGIN PRIVATE KEY-----',
  'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgqQXu2o+hyKrUWn/r',
  'QjgRaLmXLA+08NdbKOVSKsyNQb+hRANCAASnPfm03aW/5BjrJDs2aynycPKNSXnb',
  'iMjRr/p5QpXI1fDSLn0Wa55q4h+L1AfiY4hkSKnmkfC8tb2fVEsTfYXu',
  '-----END PRIVATE KEY-----',
].join('\n');
const CLIENT_CERT = [
  '-----BEGIN CERTIFICATE-----',
  'MIIBkDCCATWgAwIBAgIUES5n/hBNZrVpLttsDXUk6cvi8y8wCgYIKoZIzj0EAwIw',
  'HDEaMBgGA1UEAwwRZHJhd2JyaWRnZS1jbGllbnQwIBcNMjYxMjA1MTA1NzE4WhgP',
  'MjEyNjExMTExMDU3MThaMBwxGjAYBgNVBAMMEWRyYXdicmlkZ2UtY2xpZW50MFkw',
  'EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWL4HTtA0QOMFU2OzcULaVXySIoMis5mu',
  'kN28hLFGUGC0rejdB2eLX5ndEp2ll07NaTsndM+bkX7I/Zw0AveAy6NTMFEwHQYD',
  'VR0OBBYEFAFX5ff6JvChBzj5ayP8MAdUP76dMB8GA1UdIwQYMBaAFAFX5ff6JvCh',
  'Bzj5ayP8MAdUP76dMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh',
  'APRG1rzI+Q0C1sDU2kqAJTmpu+MXPDv7VM8VlhtCbQ6NAiEAwNqYhLpiFCffS3kM',
  'WYDy2MmBrzZuTWT2tR1xmPzfxRs=',
  '-----END CERTIFICATE-----',
].join('\n');
const CLIENT_KEY = [
  '-----BEGIN PRIVATE KEY-----',
  'MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQd5sMwjNuOHoY+PH',
  'GgJAzwEM1Tu0teTzJ/hkQ0Ld3guhRANCAARYvgdO0DRA4wVTY7NxQtpVfJIigyKz',
  'ma6Q3byEsUZQYLSt6N0HZ4tfmd0SnaWXTs1pOyd0z5uRfsj9nDQC94DL',
  '-----END PRIVATE KEY-----',
].join('\n');

export interface TlsTestServer extends TestServer {
  /** The server's self-signed certificate: the trust root a client needs. */
  readonly ca: string;
  /** A client certificate and key the server accepts (when it requires one). */
  readonly client: { readonly cert: string; readonly key: string };
  /** The CN of each verified client certificate, per request. */
  readonly clientSubjects: string[];
}

/**
 * An HTTPS echo server on 127.0.0.1 whose certificate names api.test only
 * (reached through an injected resolver), optionally requiring the client
 * certificate it hands out (CN drawbridge-client).
 */
export async function startTlsEchoServer(options: { readonly requireClientCert?: boolean } = {}): Promise<TlsTestServer> {
  const server = { cert: API_TEST_CERT, key: API_TEST_KEY };
  const client = { cert: CLIENT_CERT, key: CLIENT_KEY };
  const clientSubjects: string[] = [];
  const base = await listenRecording(
    (listener) =>
      createHttpsServer(
        {
          cert: server.cert,
          key: server.key,
          ...(options.requireClientCert ? { requestCert: true, rejectUnauthorized: true, ca: client.cert } : {}),
        },
        listener,
      ),
    (req, res) => {
      const subject = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      if (typeof subject === 'string') clientSubjects.push(subject);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    },
    {},
    'https',
  );
  return { ...base, ca: server.cert, client, clientSubjects };
}
