// Document kinds of tools/*.yaml and policies/*.yaml, and the validated config
// they add up to. Backend-specific connection fields and policy match keys come
// from the backend registry (the loader composes them; policy/schema.ts holds
// the rule schema), so adding a backend never touches this file.

import { z } from 'zod';
import type { Backend, ConnectionDeclaration } from '../backends/backend.js';
import type { MaskingRule } from '../masking/rules.js';
import { oneOrMany } from '../policy/match.js';
import type { Rule, RuleMatch } from '../policy/schema.js';
import { secretRefSchema, type SecretRef } from './secrets.js';
import { durationSchema } from './units.js';

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * approval.wait when unset: below the 60 s after which most MCP clients give up
 * on a call (the MCP Inspector, Copilot CLI, Claude Code without progress), so the
 * agent is told "pending ap_…" and how to pick up the decision, not a timeout.
 */
export const DEFAULT_APPROVAL_WAIT_MS = 45_000;

export const toolSchema = z.strictObject({
  kind: z.literal('tool'),
  name: z.string().regex(TOOL_NAME, 'MCP tool names use letters, digits, _ or - (at most 64)'),
  type: z.string().min(1),
  description: z.string().min(1).optional(),
  connections: z.array(z.string().min(1)).min(1),
});

/** Asymmetric JWS algorithms only: `none` and HMAC (whose "key" would be the public JWK) can never be configured. */
const TOKEN_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** RFC 6749 §3.3 scope-token: printable ASCII without space, `"` or `\`. */
const scopeToken = z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes');

/**
 * How a token of a service (an OAuth `client_credentials` grant: no human signed in) is told from
 * a person's. `rfc9068`: its subject is the OAuth client it was issued to (RFC 9068 §2.2: `sub`
 * equals `client_id`, or `azp` when the provider says that instead). Providers that name service
 * subjects otherwise are matched by a claim instead (globs), e.g. Auth0 `{ claim: gty, matches:
 * client-credentials }`, Entra ID `{ claim: idtyp, matches: app }`, Keycloak `{ claim:
 * preferred_username, matches: "service-account-*" }`.
 */
const servicePrincipalSchema = z.union([z.literal('rfc9068'), z.strictObject({ claim: z.string().min(1), matches: oneOrMany })]);

export type ServicePrincipalDetection = z.output<typeof servicePrincipalSchema>;

export const oidcIdentitySchema = z.strictObject({
  mode: z.literal('oidc'),
  /** The OpenID provider's issuer identifier; discovery reads {issuer}/.well-known/openid-configuration. */
  issuer: z
    .string()
    .url()
    .refine(
      (u) => u.startsWith('https://') || (u.startsWith('http://') && LOOPBACK.has(new URL(u).host.replace(/:\d+$/, ''))),
      'the issuer must use https:// (http:// only on loopback, for tests)',
    ),
  /** The resource indicator tokens must be issued for (their `aud`): the gateway's public MCP URL. */
  audience: z.string().min(1),
  algorithms: z
    .array(z.string())
    .min(1)
    .superRefine((list, ctx) => {
      for (const alg of list) {
        if (!(TOKEN_ALGORITHMS as readonly string[]).includes(alg))
          ctx.addIssue({
            code: 'custom',
            message: `${alg} is not allowed: use asymmetric algorithms only (${TOKEN_ALGORITHMS.join(', ')}); none and HMAC are refused`,
          });
      }
    })
    .default(['RS256', 'PS256', 'ES256', 'EdDSA']),
  /** Where the groups are in the token: a claim name or a dotted path (realm_access.roles); a string or an array of strings. */
  groups_claim: z.string().min(1).default('groups'),
  /** Scopes every token must carry (403 insufficient_scope otherwise). */
  required_scopes: z.array(scopeToken).default([]),
  /**
   * Scopes by operation: a call matching an entry's `match` (the keys of a rule's match,
   * backend keys included) needs that scope too. `match` is validated by the loader with the
   * rule schema of the registered backends (it is composed from them, as rules are).
   */
  scopes: z.array(z.strictObject({ scope: scopeToken, match: z.unknown() })).default([]),
  service_principal: servicePrincipalSchema.default('rfc9068'),
  clock_tolerance: durationSchema.refine((ms) => ms <= 300_000, 'at most 5m').default(30_000),
  jwks: z
    .strictObject({
      /** Keys are refetched at least this often. */
      cache_max_age: durationSchema.default(600_000),
      /** An unknown key id refetches the key set at most this often (rotation without a fetch storm). */
      cooldown: durationSchema.default(30_000),
    })
    .default({ cache_max_age: 600_000, cooldown: 30_000 }),
  /** stdio mode: the environment variable holding the caller's access token. */
  token_env: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
    .default('DRAWBRIDGE_TOKEN'),
});

export type OidcIdentityDeclaration = z.output<typeof oidcIdentitySchema>;

/** One entry of identity.scopes: calls matching `match` need `scope`. */
export interface ScopeMapping {
  readonly scope: string;
  readonly match: RuleMatch;
}

/** The OIDC identity as loaded: `scopes` with their matches validated and bound to the backends. */
export type OidcIdentityConfig = Omit<OidcIdentityDeclaration, 'scopes'> & { readonly scopes: readonly ScopeMapping[] };

/**
 * A notification target (approval.notify): a Slack-compatible incoming webhook, or a generic
 * JSON webhook signed with HMAC-SHA256. The URLs and the secret are references: a Slack
 * webhook URL is itself a credential.
 */
const notifyTargetSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('slack'), url: secretRefSchema }),
  z.strictObject({ kind: z.literal('webhook'), url: secretRefSchema, secret: secretRefSchema }),
]);

export type NotifyTarget = z.output<typeof notifyTargetSchema>;

/** A sink's name: it labels metrics and names the durable cursor, so it is short and plain. */
const SINK_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const sinkCommon = {
  name: z.string().regex(SINK_NAME, 'a sink name uses letters, digits, _ . or - (at most 64)'),
  /** Records per request. */
  batch: z.number().int().min(1).max(1000).default(100),
  /** One request is abandoned (and retried) after this. */
  timeout: durationSchema.default(10_000),
};

/**
 * An audit stream sink (journal.stream): a signed JSON webhook, or an OTLP/HTTP logs endpoint.
 * The webhook URL and secret and the OTLP header values are secret references.
 */
const streamSinkSchema = z.discriminatedUnion('type', [
  z.strictObject({ ...sinkCommon, type: z.literal('webhook'), url: secretRefSchema, secret: secretRefSchema }),
  z.strictObject({
    ...sinkCommon,
    type: z.literal('otlp'),
    /** The full logs URL, e.g. https://collector:4318/v1/logs. */
    endpoint: z.string().url(),
    headers: z.record(z.string().regex(HEADER_NAME, 'an HTTP header name'), secretRefSchema).default({}),
  }),
]);

export type StreamSinkDeclaration = z.output<typeof streamSinkSchema>;

export const gatewaySchema = z.strictObject({
  kind: z.literal('gateway'),
  identity: z
    .discriminatedUnion('mode', [
      z.strictObject({
        mode: z.literal('local'),
        subject: z.string().min(1),
        groups: z.array(z.string().min(1)).default([]),
      }),
      oidcIdentitySchema,
    ])
    .optional(),
  journal: z
    .strictObject({
      path: z.string().min(1).default('.drawbridge/journal.db'),
      sync: z.enum(['full', 'normal']).default('full'),
      /** Signed checkpoints of the journal head, published outside the journal: they make a truncated tail detectable. */
      checkpoints: z
        .strictObject({
          every: durationSchema.default(60_000),
          signing_key: secretRefSchema,
          publish: z.strictObject({ file: z.string().min(1) }),
        })
        .optional(),
      /** Groups whose members may export the journal over the approvals API (GET /api/v1/journal/export); none by default. */
      readers: z.array(z.string().min(1)).default([]),
      /** Audit streaming: every record, in order and at least once, to each sink (src/journal/stream/). */
      stream: z.array(streamSinkSchema).default([]),
    })
    .default({ path: '.drawbridge/journal.db', sync: 'full', readers: [], stream: [] }),
  masking: z.strictObject({ hash_key: secretRefSchema.optional() }).default({}),
  /** Shared state (journal, approvals, grants) in PostgreSQL instead of the local SQLite files: what replicas share. */
  state: z.strictObject({ url: secretRefSchema }).optional(),
  approval: z
    .strictObject({
      /** Out-of-band approvals and grants live here (mutable state, so not in the append-only journal). */
      store: z.string().min(1).default('.drawbridge/approvals.db'),
      /** How long a call waits for an out-of-band decision before answering "pending" (below the 60 s most clients allow a call). */
      wait: durationSchema.default(DEFAULT_APPROVAL_WAIT_MS),
      /** How long the human at the client has to answer an elicitation prompt. */
      elicitation_timeout: durationSchema.default(600_000),
      /** A pending request nobody decided expires after this. */
      pending_ttl: durationSchema.default(86_400_000),
      /** Local mode: who may act with `drawbridge approvals`, each proven by a token the operator issued (OIDC mode: the provider's tokens instead). */
      approvers: z
        .array(
          z.strictObject({
            subject: z.string().min(1),
            groups: z.array(z.string().min(1)).default([]),
            token: secretRefSchema,
          }),
        )
        .default([]),
      /** Who is told when an out-of-band request becomes pending and when it is decided (src/approval/notify.ts). */
      notify: z.array(notifyTargetSchema).default([]),
      /**
       * The key sealing the requestState of in-client approvals on MCP 2026-07-28 (≥ 32 bytes); without it
       * one is generated once and kept in the state store, shared by the replicas (src/approval/request-state.ts).
       */
      request_state_key: secretRefSchema.optional(),
    })
    .default({
      store: '.drawbridge/approvals.db',
      wait: DEFAULT_APPROVAL_WAIT_MS,
      elicitation_timeout: 600_000,
      pending_ttl: 86_400_000,
      approvers: [],
      notify: [],
    }),
  /** The web console under /console/ on `serve --http` (src/console/): the OAuth client it signs approvers in as. */
  console: z
    .strictObject({
      enabled: z.boolean().default(true),
      client_id: z.string().min(1).default('drawbridge-console'),
      /** For a confidential client; a public client (PKCE only) has none. */
      client_secret: secretRefSchema.optional(),
    })
    .default({ enabled: true, client_id: 'drawbridge-console' }),
  /** Operating the gateway: the admin listener (/healthz, /readyz, /metrics), who sees readiness details, the shutdown drain, /metrics on the main listener. */
  admin: z
    .strictObject({
      /** HOST:PORT of a separate listener for /healthz and /readyz (also for `serve` over stdio); none by default. */
      listen: z
        .string()
        .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'admin.listen takes HOST:PORT, e.g. 127.0.0.1:9090')
        .optional(),
      /** Groups whose bearer tokens see /readyz's details (JSON per check); everyone else sees only ok / not ready. */
      operators: z.array(z.string().min(1)).default([]),
      /** Connections whose last call failing (a fault, e.g. unreachable) makes /readyz not ready; none by default (a backend down fails only its tools). */
      ready_requires: z.array(z.string().regex(/^[^*?]+$/, 'a connection name, not a pattern')).default([]),
      /** On SIGTERM/SIGINT, how long calls in flight may run before the gateway closes anyway. */
      drain_timeout: durationSchema.default(30_000),
      /** Also serve /metrics on the `serve --http` listener; off by default: that listener faces agents, who have no business reading the gateway's metrics. */
      metrics_on_main: z.boolean().default(false),
    })
    .default({ operators: [], ready_requires: [], drain_timeout: 30_000, metrics_on_main: false }),
  /** The operator's log on stderr: one line per call and the serve messages (src/observability/log.ts). */
  log: z
    .strictObject({
      level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
      /** auto: human-readable text when stderr is a terminal, JSON lines otherwise. */
      format: z.enum(['json', 'text', 'auto']).default('auto'),
      /** The caller's subject on each call's line: off by default (identifiers are personal data; the journal has them). */
      subjects: z.boolean().default(false),
    })
    .default({ level: 'info', format: 'auto', subjects: false }),
  /**
   * OpenTelemetry traces (src/observability/tracing.ts): one span per call, exported over OTLP/HTTP
   * to `endpoint` (the collector's traces URL). Absent: off, nothing is exported.
   */
  tracing: z
    .strictObject({
      endpoint: z.url({ protocol: /^https?$/, error: 'tracing.endpoint takes the OTLP/HTTP traces URL, e.g. https://otel-collector:4318/v1/traces' }),
      /** Sent with every export (a collector's API key): references, never inline values. */
      headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'an HTTP header name'), secretRefSchema).default({}),
      /** The share of calls without a caller's trace context that are recorded (a caller's sampled flag decides for its own). */
      sample_ratio: z.number().min(0).max(1).default(1),
      service_name: z.string().min(1).max(200).default('drawbridge'),
    })
    .optional(),
});

type ToolDeclaration = z.output<typeof toolSchema>;
export type GatewayDeclaration = z.output<typeof gatewaySchema>;
export type LogConfig = Readonly<GatewayDeclaration['log']>;

export interface TracingConfig {
  readonly endpoint: string;
  /** Header name → a reference to its value, resolved when serve starts. */
  readonly headers: Readonly<Record<string, SecretRef>>;
  readonly sampleRatio: number;
  readonly serviceName: string;
}

export interface SourceLocation {
  readonly file: string;
  readonly line: number;
}

export interface LoadedConnection {
  readonly declaration: ConnectionDeclaration;
  readonly backend: Backend;
  readonly source: SourceLocation;
}

export interface LoadedTool {
  readonly declaration: ToolDeclaration;
  readonly backend: Backend;
  readonly source: SourceLocation;
}

export interface CheckpointsConfig {
  readonly everyMs: number;
  readonly signingKey: SecretRef;
  /** Absolute path of the file checkpoints are appended to. */
  readonly publishFile: string;
}

/** A journal.stream sink as loaded. */
export type StreamSinkConfig =
  | {
      readonly type: 'webhook';
      readonly name: string;
      readonly batch: number;
      readonly timeoutMs: number;
      readonly url: SecretRef;
      readonly secret: SecretRef;
    }
  | {
      readonly type: 'otlp';
      readonly name: string;
      readonly batch: number;
      readonly timeoutMs: number;
      readonly endpoint: string;
      readonly headers: Readonly<Record<string, SecretRef>>;
    };

export type StateConfig = { readonly engine: 'sqlite' } | { readonly engine: 'postgres'; readonly url: SecretRef };

export interface GatewayConfig {
  /** Directory holding tools/ and policies/; relative paths resolve against it. */
  readonly dir: string;
  /** sha256 of the loaded files of tools/ and policies/ (load.ts, configHash): journaled at start, on every reload, in every call's intent. */
  readonly hash: string;
  readonly connections: ReadonlyMap<string, LoadedConnection>;
  readonly tools: ReadonlyMap<string, LoadedTool>;
  /** All rules, in file order (files sorted by name). */
  readonly rules: readonly Rule[];
  readonly masking: readonly MaskingRule[];
  readonly identity: { readonly mode: 'local'; readonly subject: string; readonly groups: readonly string[] } | OidcIdentityConfig | null;
  readonly journal: {
    readonly path: string;
    readonly sync: 'full' | 'normal';
    readonly checkpoints: CheckpointsConfig | null;
    /** Groups allowed to export the journal over the approvals API. */
    readonly readers: readonly string[];
    /** journal.stream: the audit stream's sinks, in config order (names unique). */
    readonly stream: readonly StreamSinkConfig[];
  };
  readonly hashKey: SecretRef | null;
  /**
   * Where the journal, approvals and grants live: the local SQLite files (journal.path,
   * approval.store; the embedded default) or one PostgreSQL database that replicas share.
   */
  readonly state: StateConfig;
  readonly approval: {
    /** Absolute path of the approvals store. */
    readonly store: string;
    readonly waitMs: number;
    readonly elicitationTimeoutMs: number;
    readonly pendingTtlMs: number;
    readonly approvers: ReadonlyArray<{ readonly subject: string; readonly groups: readonly string[]; readonly token: SecretRef }>;
    readonly notify: readonly NotifyTarget[];
    /** approval.request_state_key; null: the state store's generated shared key. */
    readonly requestStateKey: SecretRef | null;
  };
  /** The web console of `serve --http` (OIDC identities only). */
  readonly console: { readonly enabled: boolean; readonly clientId: string; readonly clientSecret: SecretRef | null };
  /** admin: the admin listener (null: none), the operator groups of /readyz's details, the shutdown drain. */
  readonly admin: {
    readonly listen: string | null;
    readonly operators: readonly string[];
    /** Connections /readyz requires: not ready while one's last call failed with a fault. */
    readonly readyRequires: readonly string[];
    readonly drainTimeoutMs: number;
    /** /metrics on the `serve --http` listener too (it is always on the admin listener). */
    readonly metricsOnMain: boolean;
  };
  /** The operator's log (kind: gateway, log). */
  readonly log: LogConfig;
  /** OpenTelemetry traces (kind: gateway, tracing); null: off. */
  readonly tracing: TracingConfig | null;
  /** Non-fatal findings `check` prints (e.g. no hash key configured). */
  readonly warnings: readonly string[];
}
