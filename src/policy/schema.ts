// The shape of policy rules in policies/*.yaml (zod, strict: an unknown key is
// an error, so a typo can never silently switch a control off). The generic
// match keys are here; each backend adds its own (tables:, namespaces:,
// programs:, …), composed from the backend list as connection schemas are,
// and a rule's keys of a backend are bound to that backend's matcher.

import { z } from 'zod';
import type { Backend, BackendMatch } from '../backends/backend.js';
import { BACKENDS, checkBackends } from '../backends/index.js';
import { durationSchema } from '../config/units.js';
import { oneOrMany } from './match.js';

export type { Effect } from './match.js';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore');
const access = z.enum(['read', 'write', 'admin']);
/** Who is behind the caller's identity (identity.ts PrincipalKind): a person, or a service's own token (client_credentials). */
const principal = z.enum(['person', 'service']);

/** The match keys every rule may use, whatever the backend. */
const GENERIC_MATCH_SHAPE = {
  tool: oneOrMany.optional(),
  connection: oneOrMany.optional(),
  subject: oneOrMany.optional(),
  groups: oneOrMany.optional(),
  operation: oneOrMany.optional(),
  access: z
    .union([access, z.array(access).min(1)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional(),
  principal: z
    .union([principal, z.array(principal).min(1)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional(),
};

/** Not strict: the rule's other keys are its backends'. */
const genericMatch = z.object(GENERIC_MATCH_SHAPE);

export type RuleMatch = z.output<typeof genericMatch> & {
  /** The rule's keys of each backend it uses (tables:, namespaces:, …), bound to that backend's matcher; on another backend's request they never match. */
  readonly backends: readonly BackendMatch[];
};

/** `match:` of a rule: the generic keys and every backend's, strictly. */
function matchSchemaFor(backends: readonly Backend[]) {
  const shape: Record<string, z.core.$ZodType> = { ...GENERIC_MATCH_SHAPE };
  for (const backend of checkBackends(backends)) {
    for (const [key, schema] of Object.entries(backend.matchShape)) {
      if (key in shape) throw new TypeError(`the policy match key "${key}" of the ${backend.type} backend is already declared`);
      shape[key] = schema;
    }
  }
  return z.strictObject(shape).transform((parsed): RuleMatch => ({
    // Validated above with these very schemas; parsing the generic keys again types them.
    ...genericMatch.parse(parsed),
    backends: backends.flatMap((backend) => backend.bindMatch(parsed) ?? []),
  }));
}

function ruleSchemaFor(match: ReturnType<typeof matchSchemaFor>) {
  return z
    .strictObject({
      name,
      description: z.string().optional(),
      match,
      effect: z.enum(['allow', 'deny', 'approve']),
      message: z.string().min(1).optional(),
      /** For writes this rule allows: more affected rows than this rolls the write back. */
      max_affected_rows: z.number().int().nonnegative().optional(),
      approvers: z
        .strictObject({
          groups: z.array(z.string().min(1)).min(1).optional(),
          requester: z.boolean().optional(),
          min: z.number().int().positive().optional(),
        })
        .optional(),
      grant: durationSchema.optional(),
      preview: z.boolean().optional(),
    })
    .superRefine(
      (rule, ctx) => {
        if (rule.effect !== 'approve') {
          for (const key of ['approvers', 'grant', 'preview'] as const) {
            if (rule[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" only applies to rules with effect: approve` });
          }
        }
        if (rule.effect === 'approve') {
          const a = rule.approvers;
          if (!a || (!a.requester && !a.groups)) {
            ctx.addIssue({
              code: 'custom',
              path: ['approvers'],
              message: 'an approve rule needs approvers: { groups: [...] } (out of band) and/or requester: true (the human at the client)',
            });
          } else if ((a.min ?? 1) > 1 && !a.groups) {
            ctx.addIssue({ code: 'custom', path: ['approvers', 'min'], message: '"min" above 1 needs approver groups: the requester alone is one approver' });
          }
        }
        if (rule.effect === 'deny' && rule.max_affected_rows !== undefined) {
          ctx.addIssue({ code: 'custom', path: ['max_affected_rows'], message: '"max_affected_rows" does not apply to deny rules' });
        }
      },
      // Also when other fields of the rule are invalid, so every problem is reported at once
      // (only when the effect itself is valid, or the check would be noise).
      { when: (payload) => ['allow', 'deny', 'approve'].includes((payload.value as { effect?: unknown } | null)?.effect as string) },
    );
}

export interface PolicySchemas {
  readonly matchSchema: ReturnType<typeof matchSchemaFor>;
  readonly ruleSchema: ReturnType<typeof ruleSchemaFor>;
}

const composed = new WeakMap<readonly Backend[], PolicySchemas>();

/** The rule schemas for a list of backends (the registry's, or a test's), composed once per list. */
export function policySchemas(backends: readonly Backend[] = BACKENDS): PolicySchemas {
  let schemas = composed.get(backends);
  if (!schemas) {
    const matchSchema = matchSchemaFor(backends);
    schemas = { matchSchema, ruleSchema: ruleSchemaFor(matchSchema) };
    composed.set(backends, schemas);
  }
  return schemas;
}

/** The rule schema of the registry's backends. */
export const ruleSchema = policySchemas().ruleSchema;

export type Rule = z.output<PolicySchemas['ruleSchema']>;
