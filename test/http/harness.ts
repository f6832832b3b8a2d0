// Shared setup for the HTTP transport tests: a real OpenID provider (the test
// IdP), a real OpenSSH server, a gateway config whose identity is OIDC for the
// resource `http://127.0.0.1:PORT/mcp`, and the gateway served over HTTP.

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { LATEST_PROTOCOL_VERSION } from '@modelcontextprotocol/sdk/types.js';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { createOidcVerifier, type TokenVerifier } from '../../src/identity/oidc.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { serveHttp, type HttpGateway, type HttpServeOptions } from '../../src/http/server.js';
import { startTestIdp, type TestIdp, type TestIdpOptions } from '../support/oidc.js';
import { freePort } from '../support/net.js';
import { sshConnectionYaml, sshToolYaml, startSshd, type Sshd } from '../support/sshd.js';

export interface Harness {
  readonly idp: TestIdp;
  readonly sshd: Sshd;
  readonly dir: string;
  readonly gateway: Gateway;
  readonly verifier: TokenVerifier;
  readonly http: HttpGateway;
  /** The resource indicator = the token audience = the MCP URL. */
  readonly resource: string;
  /** Another HTTP server on the same gateway (and the same resource), with other options. */
  serveAnother(options: Partial<HttpServeOptions>, verifier?: TokenVerifier): Promise<HttpGateway>;
  /** A real access token from the device flow, as `account` (scope mcp unless told). */
  login(account: string, scope?: string): Promise<string>;
  journal(): Array<{ type: string; callId: string; data: Record<string, any> }>;
  journalBytes(): string;
  close(): Promise<void>;
}

export const RULES = `kind: policy
rules:
  - name: developers-echo
    match: { tool: ssh_exec, groups: [developers], programs: [echo] }
    effect: allow
  - name: sre-id
    match: { tool: ssh_exec, groups: [sre], programs: [id] }
    effect: allow
`;

export async function startHarness(
  options: { idp?: TestIdpOptions; serve?: Partial<HttpServeOptions>; jwks?: string; clockTolerance?: string } = {},
): Promise<Harness> {
  const idp = await startTestIdp(options.idp);
  const sshd = await startSshd();
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-http-'));
  mkdirSync(join(dir, 'tools'));
  mkdirSync(join(dir, 'policies'));
  const jwks = options.jwks ?? '{ cooldown: 1s }';
  const clockTolerance = options.clockTolerance ? `, clock_tolerance: ${options.clockTolerance}` : '';
  const web = sshConnectionYaml({
    name: 'web',
    description: 'loopback sshd',
    hosts: [{ name: 'web-1', server: sshd }],
    login: sshd,
    limits: '{ timeout: 5s, max_output: 64KiB }',
  });
  writeFileSync(join(dir, 'tools', 'hosts.yaml'), `${web}---\n${sshToolYaml(['web'])}`);
  writeFileSync(
    join(dir, 'policies', 'gateway.yaml'),
    `kind: gateway
identity: { mode: oidc, issuer: "${idp.issuer}", audience: "${resource}", groups_claim: groups, required_scopes: [mcp], jwks: ${jwks}${clockTolerance} }
journal: { path: journal.db }
approval: { wait: 0ms, store: approvals.db }
`,
  );
  writeFileSync(join(dir, 'policies', 'rules.yaml'), RULES);
  const gateway = await openGateway({ configDir: dir, env: {} });
  const settings = gateway.config.identity;
  if (settings?.mode !== 'oidc') throw new Error('expected an oidc identity');
  const verifier = createOidcVerifier(settings as OidcIdentityDeclaration);
  const http = await serveHttp(gateway, verifier, { host: '127.0.0.1', port, ...options.serve });
  const others: HttpGateway[] = [];
  return {
    idp,
    sshd,
    dir,
    gateway,
    verifier,
    http,
    resource,
    async serveAnother(serve, v) {
      const other = await serveHttp(gateway, v ?? verifier, { host: '127.0.0.1', port: 0, publicUrl: resource, ...serve });
      others.push(other);
      return other;
    },
    async login(account, scope = 'mcp') {
      return (await idp.deviceLogin(resource, account, scope)).access_token;
    },
    journal() {
      const j = new Database(join(dir, 'journal.db'), { readonly: true });
      try {
        const rows = j.prepare('SELECT type, call_id, data FROM records ORDER BY seq').all() as Array<{ type: string; call_id: string; data: string }>;
        return rows.map((r) => ({ type: r.type, callId: r.call_id, data: JSON.parse(r.data) as Record<string, any> }));
      } finally {
        j.close();
      }
    },
    journalBytes() {
      const parts = ['journal.db', 'journal.db-wal'].map((f) => {
        try {
          return readFileSync(join(dir, f)).toString('latin1');
        } catch {
          return '';
        }
      });
      return parts.join('');
    },
    async close() {
      await Promise.allSettled(others.map((o) => o.close()));
      await http.close();
      await gateway.close();
      await idp.stop();
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'raw-http', version: '1.0.0' } },
} as const;

export interface RawReply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The JSON body, or the JSON-RPC messages of an SSE body. */
  readonly messages: any[];
}

/** One MCP request by hand (fetch), answering the status, headers and the JSON-RPC message(s). */
export async function raw(
  url: string,
  options: { method?: string; token?: string; body?: unknown; sessionId?: string; headers?: Record<string, string> } = {},
): Promise<RawReply> {
  const headers: Record<string, string> = {
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': LATEST_PROTOCOL_VERSION,
    ...options.headers,
  };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  if (options.sessionId !== undefined) headers['mcp-session-id'] = options.sessionId;
  const res = await fetch(url, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body === undefined ? {} : { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) }),
  });
  const text = await res.text();
  let messages: any[] = [];
  if ((res.headers.get('content-type') ?? '').includes('text/event-stream')) {
    messages = text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.length > 6)
      .map((l) => JSON.parse(l.slice(6)));
  } else if (text !== '') {
    try {
      messages = [JSON.parse(text)];
    } catch {
      messages = [];
    }
  }
  return { status: res.status, headers: res.headers, text, messages };
}

/** initialize + notifications/initialized by hand; the session id. */
export async function openSession(url: string, token: string): Promise<string> {
  const init = await raw(url, { token, body: INITIALIZE });
  if (init.status !== 200) throw new Error(`initialize: ${init.status} ${init.text}`);
  const sessionId = init.headers.get('mcp-session-id');
  if (!sessionId) throw new Error('no session id');
  const note = await raw(url, { token, sessionId, body: { jsonrpc: '2.0', method: 'notifications/initialized' } });
  if (note.status !== 202) throw new Error(`initialized: ${note.status} ${note.text}`);
  return sessionId;
}

/** A request with a Host header of our choosing (fetch cannot set Host). */
export function requestWithHost(url: string, host: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(INITIALIZE);
    const req = httpRequest(url, {
      method: 'POST',
      headers: {
        host,
        authorization: `Bearer ${token}`,
        accept: 'application/json, text/event-stream',
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    });
    req.on('response', (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
