// One HTTP gateway for tests of what `serve --http` serves (the MCP endpoint, the
// approvals API, the web console): the test OpenID provider with the test's accounts,
// a fresh PostgreSQL shop database, a config written for both, the gateway opened on
// it and serveHttp on a free loopback port. Tokens, identities, in-process calls, a
// call left waiting for a decision and MCP SDK sessions over Streamable HTTP are
// helpers on top. The ssh-based harness (test/http/harness.ts) is another thing.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { NotifyTuning } from '../../src/approval/notify.js';
import type { OidcIdentityDeclaration } from '../../src/config/schema.js';
import { serveHttp, type HttpGateway } from '../../src/http/server.js';
import { createMetrics, declaredNames, type Metrics } from '../../src/observability/metrics.js';
import { makeIdentity, type Identity } from '../../src/identity/identity.js';
import { createOidcVerifier } from '../../src/identity/oidc.js';
import { callTool, type CallResult } from '../../src/pipeline/callTool.js';
import { openGateway, type Gateway } from '../../src/pipeline/gateway.js';
import { freshDatabase, writeConfig, type FreshDatabase } from './fixtures.js';
import { freePort } from './net.js';
import { stateRoleUrl } from './state-role.js';
import { startTestIdp, TEST_CLIENTS, type TestIdp } from './oidc.js';

export interface HttpHarnessOptions<A extends string> {
  /** Names the throwaway database. */
  readonly prefix: string;
  /** Provider accounts: id -> the groups put into their tokens. */
  readonly accounts: Readonly<Record<A, { readonly groups: readonly string[] }>>;
  /** Full YAML of policies/rules.yaml. */
  readonly policy: string;
  /** YAML flow mapping for `approval:`. */
  readonly approval: string;
  /** More keys of the OIDC identity's flow mapping, after `required_scopes: [mcp]` (e.g. `scopes: [...]`). */
  readonly identity?: string;
  /** journal.readers (who may read the journal over the API and the console); none by default. */
  readonly journalReaders?: readonly string[];
  /** YAML flow mapping for `admin:` (e.g. `{ operators: [sre] }`); none by default. */
  readonly admin?: string;
  /** The state engine: the SQLite files (default), or PostgreSQL (state.url: the test database, as the state role). */
  readonly state?: 'sqlite' | 'postgres';
  /** More environment for the config's ${VAR} references (DB_URL is set). */
  readonly env?: Readonly<Record<string, string>>;
  /** The gateway's clock (dates decisions, expiries and the journal). */
  readonly clock?: () => Date;
  readonly notify?: NotifyTuning;
  /** Metrics as serve makes them (subscribed to the gateway's call-end), /metrics on the HTTP listener only with admin.metrics_on_main. */
  readonly metrics?: boolean;
  /** Serve the web console (client drawbridge-console) with these session settings. */
  readonly console?: { readonly idleMs?: number; readonly now?: () => number };
}

export interface HttpHarness<A extends string> {
  readonly idp: TestIdp;
  readonly db: FreshDatabase;
  readonly dir: string;
  readonly gateway: Gateway;
  readonly http: HttpGateway;
  /** The gateway's metrics when options.metrics asked for them. */
  readonly metrics: Metrics | null;
  /** http://127.0.0.1:PORT */
  readonly origin: string;
  /** The MCP endpoint's URL, also the tokens' audience. */
  readonly resource: string;
  /** An access token for `account` (device flow at the provider, scope mcp), fetched once. */
  token(account: A): Promise<string>;
  identity(account: A): Identity;
  /** One run_sql call through the whole pipeline as `account` (what the MCP endpoint runs). */
  call(account: A, sql: string): Promise<CallResult>;
  /** Starts a call that waits for a decision (approval.wait > 0); answers it once its request is pending. */
  waitingCall(account: A, sql: string): Promise<{ readonly call: Promise<CallResult>; readonly id: string }>;
  /** An MCP SDK client of `account`'s over Streamable HTTP with their bearer token. */
  mcpSession(account: A, name: string): Promise<{ readonly client: Client; readonly transport: StreamableHTTPClientTransport }>;
  close(): Promise<void>;
}

/** The id of the pending request whose input is `sql`, once the store holds it (a call in flight writes it). */
export async function waitForPending(gateway: Gateway, sql: string, given: () => boolean = () => false): Promise<string | null> {
  for (let i = 0; i < 400 && !given(); i++) {
    const found = (await gateway.state.approvals.list(new Date(), { status: 'pending' })).find((a) => a.subject.input['sql'] === sql);
    if (found) return found.id;
    // A condition poll, not a wait for time: the request appears when the call reaches the approve stage.
    await new Promise((r) => setTimeout(r, 25));
  }
  if (given()) return null;
  throw new Error(`no pending request for ${sql}`);
}

export async function startHttpGateway<A extends string>(options: HttpHarnessOptions<A>): Promise<HttpHarness<A>> {
  const opened: Array<() => Promise<void> | void> = [];
  const close = async (): Promise<void> => {
    for (const step of opened.splice(0).reverse()) await step();
  };
  try {
    const idp = await startTestIdp({ accounts: options.accounts });
    opened.push(() => idp.stop());
    const db = await freshDatabase(options.prefix);
    opened.push(() => db.drop());
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const resource = `${origin}/mcp`;
    const dir = writeConfig({ policy: options.policy, oidc: { issuer: idp.issuer, audience: resource }, approval: options.approval });
    opened.push(() => rmSync(dir, { recursive: true, force: true }));
    if (options.identity) {
      const gatewayYaml = join(dir, 'policies', 'gateway.yaml');
      writeFileSync(gatewayYaml, readFileSync(gatewayYaml, 'utf8').replace('required_scopes: [mcp]', `required_scopes: [mcp], ${options.identity}`));
    }
    if (options.journalReaders) {
      const gatewayYaml = join(dir, 'policies', 'gateway.yaml');
      const readers = `readers: ${JSON.stringify(options.journalReaders)}`;
      writeFileSync(gatewayYaml, readFileSync(gatewayYaml, 'utf8').replace('journal: { path: journal.db }', `journal: { path: journal.db, ${readers} }`));
    }
    if (options.admin)
      writeFileSync(join(dir, 'policies', 'gateway.yaml'), `${readFileSync(join(dir, 'policies', 'gateway.yaml'), 'utf8')}admin: ${options.admin}\n`);
    const stateUrl = options.state === 'postgres' ? await stateRoleUrl(db) : null;
    if (stateUrl !== null)
      writeFileSync(
        join(dir, 'policies', 'gateway.yaml'),
        `${readFileSync(join(dir, 'policies', 'gateway.yaml'), 'utf8')}state: { url: { env: STATE_URL } }\n`,
      );
    const gateway = await openGateway({
      configDir: dir,
      env: { DB_URL: db.gatewayUrl, ...(stateUrl === null ? {} : { STATE_URL: stateUrl }), ...options.env },
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.notify ? { notify: options.notify } : {}),
    });
    opened.push(() => gateway.close());
    const verifier = createOidcVerifier(gateway.config.identity as OidcIdentityDeclaration);
    const consoleOptions = options.console;
    // Every scrape reads the state afresh (no cache), so a test sees each change at once.
    const metrics = options.metrics ? createMetrics(declaredNames(gateway.config), { stateCacheMs: 0 }) : null;
    if (metrics !== null) metrics.attach(gateway);
    const http = await serveHttp(gateway, verifier, {
      host: '127.0.0.1',
      port,
      ...(metrics !== null && gateway.config.admin.metricsOnMain ? { metrics } : {}),
      ...(consoleOptions
        ? {
            console: {
              clientId: TEST_CLIENTS.console.clientId,
              ...(consoleOptions.idleMs === undefined ? {} : { idleMs: consoleOptions.idleMs }),
              ...(consoleOptions.now ? { now: consoleOptions.now } : {}),
            },
          }
        : {}),
    });
    opened.push(() => http.close());
    // What serve --http does once it listens: notifications link to the console under the public origin.
    gateway.notifier?.linkTo(http.resource);
    metrics?.watchSessions(() => http.openSessions());

    const tokens = new Map<A, Promise<string>>();
    const token = (account: A): Promise<string> => {
      let t = tokens.get(account);
      if (t === undefined) {
        t = idp.deviceLogin(resource, account, 'mcp').then((r) => r.access_token);
        tokens.set(account, t);
      }
      return t;
    };
    const identity = (account: A): Identity => makeIdentity({ kind: 'oidc', subject: account, groups: options.accounts[account].groups, issuer: idp.issuer });
    const call = (account: A, sql: string): Promise<CallResult> =>
      callTool(gateway, { tool: 'run_sql', args: { connection: 'db', sql }, identity: identity(account), client: { name: 'vitest' } });
    return {
      idp,
      db,
      dir,
      gateway,
      http,
      metrics,
      origin,
      resource,
      token,
      identity,
      call,
      async waitingCall(account, sql) {
        let answer: { readonly result: CallResult } | { readonly error: unknown } | undefined;
        const pending = call(account, sql);
        pending.then(
          (result) => (answer = { result }),
          (error: unknown) => (answer = { error }),
        );
        // A call that answers before it waits (e.g. the policy allowed it) ends the poll and is reported.
        const id = await waitForPending(gateway, sql, () => answer !== undefined);
        if (id === null) throw new Error(`the call did not wait for a decision: ${JSON.stringify(answer)}`);
        return { call: pending, id };
      },
      async mcpSession(account, name) {
        const transport = new StreamableHTTPClientTransport(new URL(resource), {
          requestInit: { headers: { authorization: `Bearer ${await token(account)}` } },
        });
        const client = new Client({ name, version: '2.0.0' });
        await client.connect(transport);
        return { client, transport };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
