// The approver's commands run against a gateway's approvals API (--gateway URL)
// instead of its state (--config DIR): `approvals list|show|approve|deny`,
// `grants list|revoke`, `journal export`. The approver signs in the way
// `drawbridge token` does (the bridge's token source: cache, refresh, device
// flow, --client-id, $DRAWBRIDGE_CLIENT_SECRET) and the output is the one the
// --config path prints, rendered by the same formatters. The gateway decides who
// may see and do what (src/http/api.ts); this file only carries the request.

import { homedir } from 'node:os';
import { resolve } from 'node:path';
import { formatApproval, formatApprovalList, formatGrantList } from '../approval/format.js';
import { obtainAccessToken, type TokenSource } from '../bridge/connect.js';
import { defaultTokenCachePath, gatewayEndpoint, type BridgeOptions } from '../bridge/tokens.js';
import type { StoredApproval, StoredGrant } from '../state/contract.js';
import { fail, type CliIo } from './io.js';

/** The options every remote command shares (from commands.ts REMOTE). */
export interface RemoteValues {
  readonly gateway?: string | undefined;
  readonly config?: string | undefined;
  readonly 'client-id'?: string | undefined;
  readonly scope?: string | undefined;
  readonly 'token-cache'?: string | undefined;
  readonly 'no-token-cache'?: boolean | undefined;
}

/** True when the command runs against a gateway; refuses --gateway with --config (or with `also`, e.g. --journal). */
export function isRemote(values: RemoteValues, also: ReadonlyArray<readonly [string, unknown]> = []): boolean {
  if (values.gateway === undefined) {
    for (const [flag] of BRIDGE_FLAGS) if (values[flag] !== undefined && values[flag] !== false) fail(`--${flag} applies to --gateway only.`);
    return false;
  }
  if (values.config !== undefined) fail('--gateway and --config exclude each other: --config acts on the state on this host, --gateway through the API.');
  for (const [flag, value] of also) if (value !== undefined) fail(`--gateway and --${flag} exclude each other.`);
  return true;
}

const BRIDGE_FLAGS = [['client-id'], ['scope'], ['token-cache'], ['no-token-cache']] as const;

/** The sign-in flags `connect`, `token` and every `--gateway` command share. */
interface SignInValues {
  readonly 'client-id'?: string | undefined;
  readonly scope?: string | undefined;
  readonly 'token-cache'?: string | undefined;
  readonly 'no-token-cache'?: boolean | undefined;
}

/**
 * Which gateway, which OAuth client and where tokens are cached. `who` starts the message when the
 * client id is missing (`connect`, `--gateway`), `usage` ends it.
 */
export function signInOptions(url: string, values: SignInValues, io: CliIo, who: string, usage = ''): BridgeOptions {
  const clientId = values['client-id'] ?? io.env['DRAWBRIDGE_CLIENT_ID'];
  if (!clientId) fail(`${who} needs the OAuth client registered for Drawbridge at your provider: --client-id ID (or $DRAWBRIDGE_CLIENT_ID).${usage}`);
  if (values['token-cache'] !== undefined && values['no-token-cache']) fail('--token-cache and --no-token-cache exclude each other.');
  // A secret on the command line would show in `ps`: the environment only.
  const clientSecret = io.env['DRAWBRIDGE_CLIENT_SECRET'];
  return {
    url,
    clientId,
    ...(clientSecret ? { clientSecret } : {}),
    ...(values.scope !== undefined ? { scope: values.scope } : {}),
    tokenCache: values['no-token-cache']
      ? null
      : values['token-cache'] !== undefined
        ? resolve(io.cwd, values['token-cache'])
        : defaultTokenCachePath(io.env, io.env['HOME'] || homedir()),
    log: (line: string) => void io.stderr.write(`drawbridge: ${line}\n`),
  };
}

interface Reply {
  readonly status: number;
  readonly text: string;
  readonly json: unknown;
}

/** A signed-in client of one gateway's API: a refused token is refreshed once, as the bridge does. */
class ApiClient {
  private constructor(
    private readonly base: URL,
    private readonly tokens: TokenSource,
  ) {}

  static async open(values: RemoteValues, io: CliIo): Promise<ApiClient> {
    const options = signInOptions(values.gateway as string, values, io, '--gateway');
    const endpoint = gatewayEndpoint(options.url);
    const tokens = await obtainAccessToken(options);
    return new ApiClient(new URL('/api/v1/', endpoint), tokens);
  }

  async call(method: 'GET' | 'POST', path: string, body?: Record<string, unknown>): Promise<Reply> {
    let token = await this.tokens.current();
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(new URL(path, this.base), {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.status === 401 && attempt === 0) {
        token = await this.tokens.refresh(token);
        continue;
      }
      let json: unknown = null;
      if ((res.headers.get('content-type') ?? '').startsWith('application/json')) {
        try {
          json = JSON.parse(text) as unknown;
        } catch {
          json = null;
        }
      }
      return { status: res.status, text, json };
    }
  }
}

interface ApiError {
  readonly code: string;
  readonly message: string;
  readonly hint: string;
}

function errorOf(reply: Reply): ApiError | null {
  const e = (reply.json as { error?: Partial<ApiError> } | null)?.error;
  if (reply.status < 400) return null;
  if (e && typeof e.code === 'string') return { code: e.code, message: String(e.message ?? ''), hint: String(e.hint ?? '') };
  return { code: 'internal', message: `The gateway answered HTTP ${reply.status}.`, hint: 'Check the --gateway URL, or tell the operator.' };
}

/** Prints a refusal as the --config path does and returns its exit code (2 for a bad argument). */
function refused(e: ApiError, io: CliIo): number {
  io.stderr.write(`drawbridge: ${e.code}: ${e.message}\n${e.hint}\n`);
  return e.code === 'input.invalid' ? 2 : 1;
}

/** Runs `body` with a signed-in client; a sign-in or network failure is a refusal, exit 1. */
async function withClient(values: RemoteValues, io: CliIo, body: (client: ApiClient) => Promise<number>): Promise<number> {
  let client: ApiClient;
  try {
    client = await ApiClient.open(values, io);
  } catch (error) {
    return fail(`drawbridge: cannot sign in to ${values.gateway ?? ''}: ${(error as Error).message}`, 1);
  }
  try {
    return await body(client);
  } catch (error) {
    return fail(`drawbridge: the gateway's API cannot be reached: ${(error as Error).message}`, 1);
  }
}

/** The approval as the --config path prints it (the API adds canDecide for consoles). */
function stored(a: unknown): StoredApproval {
  const { canDecide: _ignored, ...rest } = a as StoredApproval & { canDecide?: boolean };
  return rest;
}

export function remoteApprovalsList(values: RemoteValues & { all: boolean; json: boolean }, io: CliIo): Promise<number> {
  return withClient(values, io, async (client) => {
    const reply = await client.call('GET', `approvals?status=${values.all ? 'all' : 'pending'}`);
    const error = errorOf(reply);
    if (error) return refused(error, io);
    const approvals = ((reply.json as { approvals: unknown[] }).approvals ?? []).map(stored);
    io.stdout.write(values.json ? `${JSON.stringify(approvals, null, 2)}\n` : formatApprovalList(approvals, new Date(), { all: values.all }));
    return 0;
  });
}

export function remoteApprovalsShow(values: RemoteValues & { json: boolean }, id: string, io: CliIo): Promise<number> {
  return withClient(values, io, async (client) => {
    const reply = await client.call('GET', `approvals/${encodeURIComponent(id)}`);
    const error = errorOf(reply);
    if (error) return refused(error, io);
    const approval = stored((reply.json as { approval: unknown }).approval);
    io.stdout.write(values.json ? `${JSON.stringify(approval, null, 2)}\n` : formatApproval(approval, new Date()));
    return 0;
  });
}

export function remoteVote(
  values: RemoteValues,
  id: string,
  decision: 'approve' | 'deny',
  body: { reason?: string; grant?: string },
  io: CliIo,
): Promise<number> {
  return withClient(values, io, async (client) => {
    const reply = await client.call('POST', `approvals/${encodeURIComponent(id)}/${decision}`, body);
    const error = errorOf(reply);
    if (error) return refused(error, io);
    io.stdout.write(String((reply.json as { message: unknown }).message));
    return 0;
  });
}

export function remoteGrantsList(values: RemoteValues & { all: boolean; json: boolean }, io: CliIo): Promise<number> {
  return withClient(values, io, async (client) => {
    const reply = await client.call('GET', values.all ? 'grants?all' : 'grants');
    const error = errorOf(reply);
    if (error) return refused(error, io);
    const grants = (reply.json as { grants: StoredGrant[] }).grants ?? [];
    io.stdout.write(values.json ? `${JSON.stringify(grants, null, 2)}\n` : formatGrantList(grants, new Date(), { all: values.all }));
    return 0;
  });
}

export function remoteGrantsRevoke(values: RemoteValues, id: string, io: CliIo): Promise<number> {
  return withClient(values, io, async (client) => {
    const reply = await client.call('POST', `grants/${encodeURIComponent(id)}/revoke`);
    const message = (reply.json as { message?: unknown } | null)?.message;
    // Revoked but not journaled: the gateway says both, as the --config path does.
    if (typeof message === 'string') io.stdout.write(message);
    const error = errorOf(reply);
    if (error) return refused(error, io);
    return 0;
  });
}

export function remoteJournalExport(values: RemoteValues & { format: string; [k: string]: unknown }, io: CliIo): Promise<number> {
  const params = new URLSearchParams({ format: values.format });
  for (const name of ['since', 'until', 'subject', 'tool', 'connection', 'decision']) {
    const v = values[name];
    if (typeof v === 'string') params.set(name, v);
  }
  return withClient(values, io, async (client) => {
    const reply = await client.call('GET', `journal/export?${params.toString()}`);
    const error = errorOf(reply);
    if (error) return refused(error, io);
    io.stdout.write(reply.text);
    return 0;
  });
}
