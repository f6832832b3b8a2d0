// Document kinds of tools/*.yaml and policies/*.yaml, and the validated config
// they add up to. Backend-specific connection fields come from the backend
// registry, so adding a backend never touches this file.

import { z } from 'zod';
import type { Backend, ConnectionDeclaration } from '../backends/backend.js';
import type { MaskingRule } from '../masking/rules.js';
import { maskingRuleSchema } from '../masking/rules.js';
import type { Rule } from '../policy/schema.js';
import { ruleSchema } from '../policy/schema.js';
import { secretRefSchema, type SecretRef } from './secrets.js';
import { durationSchema } from './units.js';

export const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export const toolSchema = z.strictObject({
  kind: z.literal('tool'),
  name: z.string().regex(TOOL_NAME, 'MCP tool names use letters, digits, _ or - (at most 64)'),
  type: z.string().min(1),
  description: z.string().min(1).optional(),
  connections: z.array(z.string().min(1)).min(1),
});

export const policySchema = z.strictObject({
  kind: z.literal('policy'),
  description: z.string().optional(),
  rules: z.array(ruleSchema).default([]),
  masking: z.array(maskingRuleSchema).default([]),
});

export const gatewaySchema = z.strictObject({
  kind: z.literal('gateway'),
  identity: z
    .discriminatedUnion('mode', [
      z.strictObject({
        mode: z.literal('local'),
        subject: z.string().min(1),
        groups: z.array(z.string().min(1)).default([]),
      }),
    ])
    .optional(),
  journal: z
    .strictObject({
      path: z.string().min(1).default('.drawbridge/journal.db'),
      sync: z.enum(['full', 'normal']).default('full'),
    })
    .default({ path: '.drawbridge/journal.db', sync: 'full' }),
  masking: z.strictObject({ hash_key: secretRefSchema.optional() }).default({}),
  approval: z
    .strictObject({
      /** Out-of-band approvals and grants live here (mutable state, so not in the append-only journal). */
      store: z.string().min(1).default('.drawbridge/approvals.db'),
      /** How long a call waits for an out-of-band decision before answering "pending". */
      wait: durationSchema.default(120_000),
      /** How long the human at the client has to answer an elicitation prompt. */
      elicitation_timeout: durationSchema.default(600_000),
      /** A pending request nobody decided expires after this. */
      pending_ttl: durationSchema.default(86_400_000),
      /** Local mode: who may act with `drawbridge approvals`, each proven by a token (OIDC later). */
      approvers: z
        .array(
          z.strictObject({
            subject: z.string().min(1),
            groups: z.array(z.string().min(1)).default([]),
            token: secretRefSchema,
          }),
        )
        .default([]),
    })
    .default({ store: '.drawbridge/approvals.db', wait: 120_000, elicitation_timeout: 600_000, pending_ttl: 86_400_000, approvers: [] }),
});

export type ToolDeclaration = z.output<typeof toolSchema>;
export type GatewayDeclaration = z.output<typeof gatewaySchema>;

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

export interface GatewayConfig {
  /** Directory holding tools/ and policies/; relative paths resolve against it. */
  readonly dir: string;
  readonly connections: ReadonlyMap<string, LoadedConnection>;
  readonly tools: ReadonlyMap<string, LoadedTool>;
  /** All rules, in file order (files sorted by name). */
  readonly rules: readonly Rule[];
  readonly masking: readonly MaskingRule[];
  readonly identity: { readonly mode: 'local'; readonly subject: string; readonly groups: readonly string[] } | null;
  readonly journal: { readonly path: string; readonly sync: 'full' | 'normal' };
  readonly hashKey: SecretRef | null;
  readonly approval: {
    /** Absolute path of the approvals store. */
    readonly store: string;
    readonly waitMs: number;
    readonly elicitationTimeoutMs: number;
    readonly pendingTtlMs: number;
    readonly approvers: ReadonlyArray<{ readonly subject: string; readonly groups: readonly string[]; readonly token: SecretRef }>;
  };
  /** Non-fatal findings `check` prints (e.g. no hash key configured). */
  readonly warnings: readonly string[];
}
