// Access tokens for `drawbridge connect`: everything the bridge needs to prove
// who its user is to a remote Drawbridge, and nothing else. The gateway itself
// says which provider to ask and for which resource (RFC 9728 protected
// resource metadata); openid-client talks to that provider: the device
// authorization grant for a person, the client credentials grant for a
// service agent, the refresh token grant to keep going. Every token request
// names the gateway as its resource indicator (RFC 8707), so the token's
// audience is that gateway and no other. When the gateway answers a request
// with a 403 insufficient_scope step-up challenge, widen() asks for the union of
// the scopes without a person (a service agent's client credentials); a person's
// token cannot be widened without a new sign-in (askFor: the next device flow
// asks for the union), which no request waits for.
//
// Tokens are cached per (issuer, client, resource) in a file only the user can
// read (0600 in a 0700 directory), written atomically and re-read before each
// refresh (another bridge process may have refreshed already). A token is
// never logged, and never sent anywhere but the provider's token endpoint and
// the gateway's origin (see connect.ts).

import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, fchmodSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/client';
import * as oidc from 'openid-client';
import { DrawbridgeError } from '../errors.js';

export interface BridgeOptions {
  /** The remote MCP endpoint, e.g. https://gw.example.com/mcp (http:// only on loopback). */
  readonly url: string;
  /** The OAuth client at the provider: a public client for the device flow, or the service agent's client. */
  readonly clientId: string;
  /** Set: client credentials grant (a service agent, no human). */
  readonly clientSecret?: string;
  /** How the client secret is sent; default client_secret_basic unless the provider lists only client_secret_post. */
  readonly clientAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Space-separated scopes; default: the gateway's `scopes_supported` (RFC 9728 metadata). */
  readonly scope?: string;
  /** Token cache file (0600, directory 0700); default defaultTokenCachePath(); null: memory only. */
  readonly tokenCache?: string | null;
  /** Human messages (stderr): the sign-in prompt, refreshes, errors. Never a token. */
  readonly log: (line: string) => void;
  /** Called when a person must sign in (the device flow's code), besides the prompt going to `log`. */
  readonly onSignInPrompt?: (prompt: SignInPrompt) => void;
  /** Aborting stops a sign-in in progress (and, for runBridge, the bridge). */
  readonly signal?: AbortSignal;
}

/** Where and how a person signs in (the device authorization grant's answer), as the prompt shows it. */
export interface SignInPrompt {
  /** The gateway being signed in to (its MCP endpoint). */
  readonly gateway: string;
  readonly verificationUri: string;
  /** The verification URI with the code filled in, when the provider offers one. */
  readonly verificationUriComplete?: string;
  readonly userCode: string;
  /** Epoch ms after which the code is no longer accepted. */
  readonly expiresAt: number;
  /** The prompt line, as logged: "To sign in to GATEWAY, open URI and enter CODE". */
  readonly text: string;
}

/** What the gateway's RFC 9728 metadata says, checked. */
interface ProtectedResource {
  /** The MCP endpoint the bridge talks to. */
  readonly endpoint: string;
  /** The resource identifier: the RFC 8707 resource indicator every token request carries. */
  readonly resource: string;
  /** The authorization server (`authorization_servers[0]`). */
  readonly issuer: string;
  /** `scopes_supported`, possibly empty. */
  readonly scopes: readonly string[];
  /** Where the metadata came from. */
  readonly metadataUrl: string;
}

export interface TokenSource {
  /** A usable access token: the cached one while it is fresh, else refresh(). */
  current(): Promise<string>;
  /**
   * A new access token: silent(), else a new sign-in (the device flow). `rejected` is
   * the token the gateway refused: when another caller already replaced it, the
   * replacement is returned without asking again.
   */
  refresh(rejected?: string): Promise<string>;
  /**
   * A usable access token without asking a person: the fresh one at hand (unless it is
   * `rejected`), a newer one another process cached, the refresh token grant, or for a
   * service agent the client credentials grant. Null when only a person's sign-in would
   * do. Concurrent callers share one attempt.
   */
  silent(rejected?: string): Promise<string | null>;
  /**
   * A person's sign-in (the device flow: the prompt goes to log and onSignInPrompt), or
   * for a service agent the client credentials grant. Concurrent callers share one.
   */
  signIn(): Promise<string>;
  /** The token if it is fresh now, without any network request or sign-in; else null. */
  peek(): string | null;
  /**
   * A token that also carries `scopes` (a 403 insufficient_scope step-up), without asking a person:
   * for a service agent, the client credentials grant for the union of the scopes asked so far and
   * these, which later requests then use too. `rejected` is the token the gateway refused: when
   * another request already widened the ask, the newer token is returned. Null when only a person's
   * new sign-in would do, or when the token refused was already asked with these scopes.
   */
  widen(scopes: readonly string[], rejected: string): Promise<string | null>;
  /**
   * A person's step-up: adds `scopes` to what the next sign-in asks for. True when that widened the
   * ask (a new sign-in can get them); false when they were asked for already.
   */
  askFor(scopes: readonly string[]): boolean;
  /** True when a person signs in (the device flow); false for a service agent (client credentials). */
  readonly person: boolean;
  readonly gateway: ProtectedResource;
}

const METADATA_PREFIX = '/.well-known/oauth-protected-resource';
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);
const HTTP_TIMEOUT_MS = 15_000;
// The newest protocol revision this bridge knows of, sent on metadata requests as MCP clients do.
const MCP_PROTOCOL_VERSION = '2025-06-18';

export const isLoopbackHttp = (url: URL): boolean => url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
/** Text from the network, made safe for one terminal line. */
export function printable(text: string, max = 300): string {
  const clean = text.replace(CONTROL, ' ');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

function misconfigured(message: string, hint: string): DrawbridgeError {
  return new DrawbridgeError('config.invalid', message, { hint });
}

/** The gateway URL, checked: https, or http on loopback only (a token must never cross a network in the clear). */
export function gatewayEndpoint(url: string): URL {
  let endpoint: URL;
  try {
    endpoint = new URL(url);
  } catch {
    throw misconfigured(`${JSON.stringify(url)} is not a URL.`, 'Pass the gateway MCP endpoint, e.g. https://gw.example.com/mcp.');
  }
  if (endpoint.username !== '' || endpoint.password !== '')
    throw misconfigured('The gateway URL must not carry credentials.', 'Remove user:password@ from the URL; drawbridge connect signs you in.');
  if (endpoint.protocol !== 'https:' && !isLoopbackHttp(endpoint)) {
    throw misconfigured(
      `Refusing ${endpoint.protocol}//${endpoint.host}: the gateway must be reached over https:// (plain http:// only on 127.0.0.1 or localhost).`,
      'Use the https:// URL of the gateway.',
    );
  }
  endpoint.hash = '';
  return endpoint;
}

function unreachable(what: string, error: unknown): DrawbridgeError {
  return new DrawbridgeError('backend.unavailable', `${what} could not be reached: ${describeError(error)}`, {
    hint: 'Check the URL, the network and that the gateway is running, then retry.',
    cause: error,
  });
}

/** A short human description of a network or OAuth failure (never the request or response body verbatim). */
export function describeError(error: unknown): string {
  if (error instanceof oidc.ResponseBodyError)
    return printable(`${error.error}${error.error_description ? `: ${error.error_description}` : ''} (HTTP ${error.status})`);
  if (error instanceof oidc.AuthorizationResponseError) return printable(`${error.error}${error.error_description ? `: ${error.error_description}` : ''}`);
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const challenge = error.cause.find((c) => c.parameters.error) ?? error.cause[0];
    const code = challenge?.parameters.error ?? challenge?.scheme ?? 'refused';
    const description = challenge?.parameters.error_description;
    return printable(`${code}${description ? `: ${description}` : ''} (HTTP ${error.status})`);
  }
  if (error instanceof DrawbridgeError) return error.message;
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'timed out';
    if (error.name === 'AbortError') return 'aborted';
    // fetch's "fetch failed" says why in its cause (for several addresses, an AggregateError of them).
    let cause = (error as { cause?: unknown }).cause;
    if (cause instanceof AggregateError && (cause as { code?: unknown }).code === undefined && cause.errors[0] instanceof Error) cause = cause.errors[0];
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return printable(typeof code === 'string' ? `${error.message} (${code})` : cause.message ? `${error.message} (${cause.message})` : error.message);
    }
    return printable(error.message);
  }
  return printable(String(error));
}

// ---------------------------------------------------------------------------
// RFC 9728 discovery from the gateway itself

async function getJson(url: URL, signal: AbortSignal | undefined): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    headers: { accept: 'application/json', 'mcp-protocol-version': MCP_PROTOCOL_VERSION },
    redirect: 'manual',
    signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(HTTP_TIMEOUT_MS)]) : AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined);
    return { status: response.status, body: undefined };
  }
  try {
    return { status: 200, body: await response.json() };
  } catch {
    return { status: 200, body: undefined };
  }
}

/** Does `resource` (an RFC 9728 resource identifier) cover `endpoint`: same origin, and the endpoint's path is the resource's path or below it? */
export function resourceCovers(resource: URL, endpoint: URL): boolean {
  if (resource.origin !== endpoint.origin || resource.search !== '' || resource.hash !== '') return false;
  const base = resource.pathname.replace(/\/+$/, '');
  return base === '' || endpoint.pathname === base || endpoint.pathname.startsWith(`${base}/`);
}

function checkMetadata(body: unknown, endpoint: URL, metadataUrl: URL): ProtectedResource {
  const where = `The gateway's protected resource metadata (${metadataUrl.href})`;
  const fix = 'The gateway operator must serve RFC 9728 metadata for this URL; check the URL you passed.';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw misconfigured(`${where} is not a JSON object.`, fix);
  const record = body as Record<string, unknown>;
  const resourceValue = record['resource'];
  if (typeof resourceValue !== 'string') throw misconfigured(`${where} has no resource.`, fix);
  let resource: URL;
  try {
    resource = new URL(resourceValue);
  } catch {
    throw misconfigured(`${where} names a resource that is not a URL.`, fix);
  }
  // The token will be for `resource`: it must be this gateway, or a token for another service could be obtained and sent here.
  if (!resourceCovers(resource, endpoint)) {
    throw misconfigured(
      `${where} is for the resource ${printable(resourceValue)}, which is not ${endpoint.href}; refusing to get a token for it.`,
      'Connect to the URL the gateway publishes as its resource (its public MCP URL).',
    );
  }
  const servers = record['authorization_servers'];
  const first = Array.isArray(servers) ? servers[0] : undefined;
  if (typeof first !== 'string' || first === '')
    throw misconfigured(
      `${where} names no authorization server.`,
      'The gateway must be configured with an OIDC identity (kind: gateway, identity: { mode: oidc, issuer: … }).',
    );
  const scopesValue = record['scopes_supported'];
  const scopes = Array.isArray(scopesValue) ? scopesValue.filter((s): s is string => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s)) : [];
  return { endpoint: endpoint.href, resource: resourceValue, issuer: first, scopes, metadataUrl: metadataUrl.href };
}

/**
 * The gateway's RFC 9728 metadata: the path-inserted well-known URL, then the root
 * one, then the `resource_metadata` of the 401 an unauthenticated request gets.
 */
export async function discoverProtectedResource(url: string, signal?: AbortSignal): Promise<ProtectedResource> {
  const endpoint = gatewayEndpoint(url);
  const path = endpoint.pathname.replace(/\/+$/, '');
  const candidates = [new URL(`${METADATA_PREFIX}${path}`, endpoint.origin)];
  if (path !== '') candidates.push(new URL(METADATA_PREFIX, endpoint.origin));
  const tried: string[] = [];
  for (const candidate of candidates) {
    let answer;
    try {
      answer = await getJson(candidate, signal);
    } catch (error) {
      throw unreachable(`The gateway ${endpoint.origin}`, error);
    }
    if (answer.status === 200 && answer.body !== undefined) return checkMetadata(answer.body, endpoint, candidate);
    tried.push(`${candidate.pathname} (HTTP ${answer.status}${answer.status === 200 ? ', not JSON' : ''})`);
  }
  // Ask the endpoint itself: without a token it answers 401 with a pointer to its metadata.
  let challenge: URL | undefined;
  try {
    const response = await fetch(endpoint, {
      method: 'GET',
      headers: { accept: 'text/event-stream, application/json', 'mcp-protocol-version': MCP_PROTOCOL_VERSION },
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(HTTP_TIMEOUT_MS)]) : AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    await response.body?.cancel().catch(() => undefined);
    if (response.status === 401) challenge = extractWWWAuthenticateParams(response).resourceMetadataUrl;
    tried.push(`${endpoint.pathname} (HTTP ${response.status}${response.status === 401 ? (challenge ? '' : ', no resource_metadata') : ''})`);
  } catch (error) {
    throw unreachable(`The gateway ${endpoint.origin}`, error);
  }
  if (challenge && (challenge.protocol === 'https:' || isLoopbackHttp(challenge))) {
    let answer;
    try {
      answer = await getJson(challenge, signal);
    } catch (error) {
      throw unreachable(`The gateway's metadata at ${challenge.origin}`, error);
    }
    if (answer.status === 200 && answer.body !== undefined) return checkMetadata(answer.body, endpoint, challenge);
    tried.push(`${challenge.href} (HTTP ${answer.status})`);
  }
  throw misconfigured(
    `${endpoint.href} publishes no OAuth protected resource metadata (tried ${tried.join(', ')}).`,
    'Check the URL (it is the MCP endpoint, e.g. https://gw.example.com/mcp) and that the gateway serves over HTTP with an OIDC identity.',
  );
}

// ---------------------------------------------------------------------------
// The token cache

interface StoredToken {
  readonly issuer: string;
  readonly clientId: string;
  readonly resource: string;
  /** The scope that was asked for ('' for none): a different ask does not reuse this entry. */
  readonly requestedScope: string;
  readonly accessToken: string;
  readonly refreshToken?: string;
  /** Epoch ms; null when neither the provider nor the token said. */
  readonly expiresAt: number | null;
  readonly obtainedAt: number;
}

interface TokenCache {
  read(key: CacheKey): StoredToken | null;
  write(token: StoredToken): void;
  delete(key: CacheKey): void;
  /** Where tokens are kept, for messages ('memory' or the file path). */
  readonly where: string;
}

interface CacheKey {
  readonly issuer: string;
  readonly clientId: string;
  readonly resource: string;
}

const keyOf = (k: CacheKey): string => JSON.stringify([k.issuer, k.clientId, k.resource]);

/** $XDG_CACHE_HOME/drawbridge/tokens.json (when absolute), else ~/.cache/drawbridge/tokens.json. */
export function defaultTokenCachePath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const xdg = env['XDG_CACHE_HOME'];
  const base = xdg && isAbsolute(xdg) ? xdg : join(home, '.cache');
  return join(base, 'drawbridge', 'tokens.json');
}

function memoryTokenCache(): TokenCache {
  const entries = new Map<string, StoredToken>();
  return {
    where: 'memory',
    read: (key) => entries.get(keyOf(key)) ?? null,
    write: (token) => void entries.set(keyOf(token), token),
    delete: (key) => void entries.delete(keyOf(key)),
  };
}

function isStoredToken(value: unknown): value is StoredToken {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['issuer'] === 'string' &&
    typeof v['clientId'] === 'string' &&
    typeof v['resource'] === 'string' &&
    typeof v['requestedScope'] === 'string' &&
    typeof v['accessToken'] === 'string' &&
    v['accessToken'] !== '' &&
    (v['refreshToken'] === undefined || typeof v['refreshToken'] === 'string') &&
    (v['expiresAt'] === null || typeof v['expiresAt'] === 'number') &&
    typeof v['obtainedAt'] === 'number'
  );
}

/**
 * A JSON file `{ version: 1, tokens: { key: StoredToken } }`, mode 0600 in a directory
 * created 0700. Read fresh on every read (other processes share it); written by
 * replacing the whole file atomically (temp file + rename, so a reader never sees half
 * a file and a symlink at the path is replaced, not followed).
 */
function fileTokenCache(path: string, log: (line: string) => void): TokenCache {
  const warned = new Set<string>();
  const warnOnce = (line: string) => {
    if (warned.has(line)) return;
    warned.add(line);
    log(line);
  };

  const load = (): Record<string, StoredToken> => {
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') warnOnce(`Token cache ${path} cannot be read (${code ?? 'error'}); signing in without it.`);
      return {};
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) {
        warnOnce(`Token cache ${path} is not a regular file; ignoring it.`);
        return {};
      }
      const uid = process.getuid?.();
      if (uid !== undefined && stat.uid !== uid) {
        warnOnce(`Token cache ${path} belongs to another user; ignoring it.`);
        return {};
      }
      if ((stat.mode & 0o077) !== 0) {
        warnOnce(`Token cache ${path} was readable by others (mode ${(stat.mode & 0o777).toString(8)}); it is now 0600.`);
        try {
          fchmodSync(fd, 0o600);
        } catch {
          // The tokens are still ours to use; the warning said what is wrong.
        }
      }
      const parsed = JSON.parse(readFileSync(fd, 'utf8')) as unknown;
      const tokens = (parsed as { version?: unknown; tokens?: unknown })?.tokens;
      if ((parsed as { version?: unknown })?.version !== 1 || tokens === null || typeof tokens !== 'object') {
        warnOnce(`Token cache ${path} is not in a format this version understands; it will be replaced.`);
        return {};
      }
      return Object.fromEntries(Object.entries(tokens as Record<string, unknown>).filter((e): e is [string, StoredToken] => isStoredToken(e[1])));
    } catch {
      warnOnce(`Token cache ${path} is damaged; it will be replaced.`);
      return {};
    } finally {
      closeSync(fd);
    }
  };

  const save = (tokens: Record<string, StoredToken>) => {
    const dir = dirname(path);
    const temp = join(dir, `.tokens-${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      writeFileSync(temp, `${JSON.stringify({ version: 1, tokens }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      renameSync(temp, path);
    } catch (error) {
      rmSync(temp, { force: true });
      warnOnce(`Token cache ${path} cannot be written (${(error as NodeJS.ErrnoException).code ?? 'error'}); tokens are kept in memory only.`);
    }
  };

  const now = Date.now;
  // Entries nobody can use any more (expired, nothing to refresh with) are dropped on write.
  const live = (t: StoredToken) => t.refreshToken !== undefined || t.expiresAt === null || t.expiresAt > now();

  return {
    where: path,
    read: (key) => load()[keyOf(key)] ?? null,
    write(token) {
      const tokens = Object.fromEntries(Object.entries(load()).filter(([, t]) => live(t)));
      tokens[keyOf(token)] = token;
      save(tokens);
    },
    delete(key) {
      const tokens = load();
      if (!(keyOf(key) in tokens)) return;
      delete tokens[keyOf(key)];
      save(tokens);
    },
  };
}

// ---------------------------------------------------------------------------
// Acquisition and refresh

/** Claims of a JWT, unverified: only to learn `exp` and `sub` for our own bookkeeping and messages. */
function peekClaims(token: string): Record<string, unknown> | null {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as unknown;
    return claims !== null && typeof claims === 'object' && !Array.isArray(claims) ? (claims as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** How long before expiry a token counts as stale: a fifth of its life, at most a minute. */
function staleMargin(token: StoredToken): number {
  if (token.expiresAt === null) return 0;
  return Math.min(60_000, Math.max(0, (token.expiresAt - token.obtainedAt) / 5));
}

function isFresh(token: StoredToken, now: number): boolean {
  return token.expiresAt === null || now < token.expiresAt - staleMargin(token);
}

async function configureClient(gateway: ProtectedResource, options: BridgeOptions): Promise<oidc.Configuration> {
  let issuer: URL;
  try {
    issuer = new URL(gateway.issuer);
  } catch {
    throw misconfigured(`The gateway names an authorization server that is not a URL: ${printable(gateway.issuer)}.`, 'Tell the gateway operator.');
  }
  const insecure = isLoopbackHttp(issuer);
  if (issuer.protocol !== 'https:' && !insecure) {
    throw misconfigured(
      `Refusing the authorization server ${printable(issuer.href)}: it must use https:// (plain http:// only on 127.0.0.1 or localhost).`,
      'The gateway operator must configure an https issuer.',
    );
  }
  const discoveryOptions: oidc.DiscoveryRequestOptions = { timeout: HTTP_TIMEOUT_MS / 1000, ...(insecure ? { execute: [oidc.allowInsecureRequests] } : {}) };
  try {
    if (options.clientSecret === undefined) return await oidc.discovery(issuer, options.clientId, undefined, oidc.None(), discoveryOptions);
    // The method is chosen once we know what the provider supports, so discover first with a placeholder.
    const probe = await oidc.discovery(issuer, options.clientId, undefined, oidc.None(), discoveryOptions);
    const supported = probe.serverMetadata().token_endpoint_auth_methods_supported;
    const method =
      options.clientAuthMethod ??
      (supported && !supported.includes('client_secret_basic') && supported.includes('client_secret_post') ? 'client_secret_post' : 'client_secret_basic');
    const auth = method === 'client_secret_post' ? oidc.ClientSecretPost(options.clientSecret) : oidc.ClientSecretBasic(options.clientSecret);
    const config = new oidc.Configuration(probe.serverMetadata(), options.clientId, undefined, auth);
    if (insecure) oidc.allowInsecureRequests(config);
    config.timeout = HTTP_TIMEOUT_MS / 1000;
    return config;
  } catch (error) {
    throw new DrawbridgeError('identity.unavailable', `The authorization server ${printable(issuer.href)} could not be discovered: ${describeError(error)}`, {
      cause: error,
    });
  }
}

type TokenResponse = Awaited<ReturnType<typeof oidc.clientCredentialsGrant>>;

class Tokens implements TokenSource {
  private entry: StoredToken | null;
  private silentRun: Promise<string | null> | null = null;
  private signInRun: Promise<string> | null = null;
  private readonly key: CacheKey;
  /** Grows by a step-up (widen): later grants and the cache entry ask for the union. */
  private requestedScope: string;

  constructor(
    readonly gateway: ProtectedResource,
    private readonly config: oidc.Configuration,
    private readonly cache: TokenCache,
    private readonly options: BridgeOptions,
    scope: string,
  ) {
    this.key = { issuer: config.serverMetadata().issuer, clientId: options.clientId, resource: gateway.resource };
    this.requestedScope = scope;
    this.entry = this.usable(cache.read(this.key));
  }

  private get log() {
    return this.options.log;
  }

  /** A stored entry is ours only if it was asked for the same scope. */
  private usable(token: StoredToken | null): StoredToken | null {
    return token && token.requestedScope === this.requestedScope ? token : null;
  }

  peek(): string | null {
    return this.entry && isFresh(this.entry, Date.now()) ? this.entry.accessToken : null;
  }

  async current(): Promise<string> {
    return this.peek() ?? this.refresh();
  }

  async refresh(rejected?: string): Promise<string> {
    return (await this.silent(rejected)) ?? this.signIn();
  }

  silent(rejected?: string): Promise<string | null> {
    if (rejected === undefined) {
      const fresh = this.peek();
      if (fresh !== null) return Promise.resolve(fresh);
    }
    if (this.silentRun) return this.silentRun;
    if (rejected !== undefined && this.entry && this.entry.accessToken !== rejected && isFresh(this.entry, Date.now()))
      return Promise.resolve(this.entry.accessToken);
    const run = this.renewSilently(rejected).finally(() => {
      if (this.silentRun === run) this.silentRun = null;
    });
    this.silentRun = run;
    return run;
  }

  private widening: Promise<string> | null = null;

  get person(): boolean {
    return this.options.clientSecret === undefined;
  }

  askFor(scopes: readonly string[]): boolean {
    const asked = this.requestedScope.split(' ').filter((s) => s !== '');
    const union = [...new Set([...asked, ...scopes])];
    if (union.length === asked.length) return false;
    this.requestedScope = union.join(' ');
    return true;
  }

  async widen(scopes: readonly string[], rejected: string): Promise<string | null> {
    const asked = this.requestedScope.split(' ').filter((s) => s !== '');
    const union = [...new Set([...asked, ...scopes])];
    if (union.length === asked.length) {
      // Asked for already: by another request's step-up (its token, or the one in flight), else nothing more to get.
      if (this.widening) return this.widening;
      const fresh = this.peek();
      return fresh !== null && fresh !== rejected ? fresh : null;
    }
    if (this.options.clientSecret === undefined) return null;
    const before = this.requestedScope;
    this.requestedScope = union.join(' ');
    const run = this.clientCredentials().then(
      (token) => token.accessToken,
      (error: unknown) => {
        this.requestedScope = before;
        throw error;
      },
    );
    this.widening = run;
    try {
      return await run;
    } finally {
      if (this.widening === run) this.widening = null;
    }
  }

  signIn(): Promise<string> {
    if (this.signInRun) return this.signInRun;
    const run = (this.options.clientSecret === undefined ? this.deviceFlow() : this.clientCredentials())
      .then((token) => token.accessToken)
      .finally(() => {
        if (this.signInRun === run) this.signInRun = null;
      });
    this.signInRun = run;
    return run;
  }

  /** Everything short of asking a person; null when only a sign-in would do. */
  private async renewSilently(rejected: string | undefined): Promise<string | null> {
    // Another bridge process may have renewed it already (and, with rotation, spent the refresh token we hold).
    const stored = this.usable(this.cache.read(this.key));
    const known = this.entry?.accessToken;
    if (stored && stored.accessToken !== rejected && stored.accessToken !== known && isFresh(stored, Date.now())) {
      this.entry = stored;
      return stored.accessToken;
    }
    if (rejected !== undefined && this.entry?.accessToken === rejected) {
      // The gateway refused it: it must not be handed out again, here or by the cache.
      this.entry = { ...this.entry, expiresAt: 0 };
    }
    // The file holds the newest refresh token (with rotation, ours may have been spent by another process).
    const refreshToken = stored?.refreshToken ?? this.entry?.refreshToken;
    if (refreshToken) {
      try {
        const response = await oidc.refreshTokenGrant(this.config, refreshToken, this.tokenParameters());
        const token = this.keep(response, refreshToken);
        this.log(`Refreshed the access token for ${this.gateway.resource}${this.until(token)}.`);
        return token.accessToken;
      } catch (error) {
        if (this.options.signal?.aborted) throw error;
        if (error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant') {
          // Revoked or expired: nobody can use it any more.
          this.entry = null;
          this.cache.delete(this.key);
        }
        this.log(
          `Could not refresh the access token (${describeError(error)}); ` +
            `${this.options.clientSecret === undefined ? 'signing in again' : 'asking for a new one'}.`,
        );
      }
    }
    // A service agent needs nobody to get a new token; a person does.
    return this.options.clientSecret === undefined ? null : (await this.clientCredentials()).accessToken;
  }

  private tokenParameters(): Record<string, string> {
    return { resource: this.gateway.resource };
  }

  private grantParameters(): Record<string, string> {
    return { resource: this.gateway.resource, ...(this.requestedScope ? { scope: this.requestedScope } : {}) };
  }

  private until(token: StoredToken): string {
    return token.expiresAt === null ? '' : ` (valid until ${new Date(token.expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z')})`;
  }

  private keep(response: TokenResponse, previousRefreshToken?: string): StoredToken {
    if (typeof response.access_token !== 'string' || response.access_token === '') {
      throw new DrawbridgeError('identity.unavailable', 'The authorization server answered without an access token.');
    }
    if (response.token_type.toLowerCase() !== 'bearer') {
      throw new DrawbridgeError(
        'identity.unavailable',
        `The authorization server issued a ${printable(response.token_type)} token; only bearer tokens are supported.`,
      );
    }
    const obtainedAt = Date.now();
    const expiresIn = response.expiresIn();
    const exp = peekClaims(response.access_token)?.['exp'];
    const expiresAt = expiresIn !== undefined ? obtainedAt + expiresIn * 1000 : typeof exp === 'number' ? exp * 1000 : null;
    const refreshToken = response.refresh_token ?? previousRefreshToken;
    const token: StoredToken = {
      ...this.key,
      requestedScope: this.requestedScope,
      accessToken: response.access_token,
      ...(refreshToken ? { refreshToken } : {}),
      expiresAt,
      obtainedAt,
    };
    this.entry = token;
    this.cache.write(token);
    return token;
  }

  private async clientCredentials(): Promise<StoredToken> {
    let response: TokenResponse;
    try {
      response = await oidc.clientCredentialsGrant(this.config, this.grantParameters());
    } catch (error) {
      throw this.signInFailed(
        'The client credentials grant failed',
        error,
        `Check the client id and secret of ${this.options.clientId}, and that the ` +
          `provider allows it the client_credentials grant for ${this.gateway.resource}.`,
      );
    }
    const token = this.keep(response);
    this.log(`Obtained an access token for ${this.gateway.resource} as client ${printable(this.options.clientId)}${this.until(token)}.`);
    return token;
  }

  private async deviceFlow(): Promise<StoredToken> {
    const metadata = this.config.serverMetadata();
    if (!metadata.device_authorization_endpoint) {
      throw new DrawbridgeError(
        'identity.missing',
        `The authorization server ${printable(metadata.issuer)} offers no device authorization grant, so nobody can sign in here.`,
        {
          hint: 'Use a provider (or client) with the device authorization grant, or run as a service agent with a client secret.',
        },
      );
    }
    let started: oidc.DeviceAuthorizationResponse;
    try {
      started = await oidc.initiateDeviceAuthorization(this.config, this.grantParameters());
    } catch (error) {
      throw this.signInFailed(
        'The sign-in could not be started',
        error,
        `Check that the client ${this.options.clientId} exists at the provider and may use the device authorization grant.`,
      );
    }
    const minutes = Math.max(1, Math.round(started.expires_in / 60));
    const prompt: SignInPrompt = {
      gateway: this.gateway.endpoint,
      verificationUri: printable(started.verification_uri),
      ...(started.verification_uri_complete ? { verificationUriComplete: printable(started.verification_uri_complete) } : {}),
      userCode: printable(started.user_code, 64),
      expiresAt: Date.now() + started.expires_in * 1000,
      text: `To sign in to ${this.gateway.endpoint}, open ${printable(started.verification_uri)} and enter ${printable(started.user_code, 64)}`,
    };
    this.log(prompt.text);
    if (prompt.verificationUriComplete) this.log(`  or open ${prompt.verificationUriComplete} (the code is filled in)`);
    this.log(`Waiting for you to approve the sign-in (the code expires in ${minutes} min)…`);
    this.options.onSignInPrompt?.(prompt);
    let response: TokenResponse;
    try {
      response = await oidc.pollDeviceAuthorizationGrant(
        this.config,
        started,
        this.tokenParameters(),
        this.options.signal ? { signal: this.options.signal } : {},
      );
    } catch (error) {
      throw this.signInFailed('The sign-in did not complete', error, 'Start again and approve the sign-in in the browser before the code expires.');
    }
    const token = this.keep(response);
    const sub = peekClaims(token.accessToken)?.['sub'];
    this.log(`Signed in to ${this.gateway.endpoint}${typeof sub === 'string' ? ` as ${printable(sub, 120)}` : ''}${this.until(token)}.`);
    return token;
  }

  private signInFailed(what: string, error: unknown, hint: string): DrawbridgeError {
    if (error instanceof DrawbridgeError) return error;
    // The provider said no (as opposed to could not be reached).
    const oauth =
      error instanceof oidc.ResponseBodyError || error instanceof oidc.AuthorizationResponseError || error instanceof oidc.WWWAuthenticateChallengeError;
    return new DrawbridgeError(oauth ? 'identity.missing' : 'identity.unavailable', `${what}: ${describeError(error)}.`, {
      hint: oauth ? hint : 'The authorization server could not be reached; retry later.',
      cause: error,
    });
  }
}

/** The scope to ask for: as given, else what the gateway lists. */
function scopeFor(gateway: ProtectedResource, options: BridgeOptions): string {
  if (options.scope !== undefined)
    return options.scope
      .split(/\s+/)
      .filter((s) => s !== '')
      .join(' ');
  return gateway.scopes.join(' ');
}

/**
 * Discovers the gateway's provider and returns a source of access tokens for it,
 * holding whatever the cache has; nothing is fetched or asked yet (see silent(), signIn()).
 */
export async function openTokenSource(options: BridgeOptions): Promise<TokenSource> {
  const gateway = await discoverProtectedResource(options.url, options.signal);
  const config = await configureClient(gateway, options);
  const cache = options.tokenCache === null ? memoryTokenCache() : fileTokenCache(options.tokenCache ?? defaultTokenCachePath(), options.log);
  return new Tokens(gateway, config, cache, options, scopeFor(gateway, options));
}

/**
 * Discovers the gateway's provider and returns a source of access tokens for it,
 * holding a usable token: from the cache, by refreshing, or by a new sign-in (the
 * device flow prompts through options.log; a service agent uses client credentials).
 */
export async function obtainAccessToken(options: BridgeOptions): Promise<TokenSource> {
  const tokens = await openTokenSource(options);
  await tokens.current();
  return tokens;
}
