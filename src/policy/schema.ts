// The shape of policy rules in policies/*.yaml (zod, strict: an unknown key is
// an error, so a typo can never silently switch a control off).

import { z } from 'zod';
import { durationSchema } from '../config/units.js';

export type Effect = 'allow' | 'deny' | 'approve';

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore');
/** A string or a non-empty list of strings, as a list: used by policy and masking rules. */
export const oneOrMany = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((value) => (Array.isArray(value) ? value : [value]));
const access = z.enum(['read', 'write', 'admin']);

export const matchSchema = z.strictObject({
  tool: oneOrMany.optional(),
  connection: oneOrMany.optional(),
  subject: oneOrMany.optional(),
  groups: oneOrMany.optional(),
  operation: oneOrMany.optional(),
  access: z
    .union([access, z.array(access).min(1)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional(),
  tables: oneOrMany.optional(),
  functions: oneOrMany.optional(),
  /** Kubernetes: `group/resource` globs, e.g. core/secrets, apps/*, example.com/widgets. */
  resources: oneOrMany.optional(),
  /** Kubernetes namespaces (globs). */
  namespaces: oneOrMany.optional(),
  /** Object names (globs). */
  names: oneOrMany.optional(),
  /** SSH: program names or absolute paths (globs). */
  programs: oneOrMany.optional(),
  /** SSH: whole command patterns over the words, e.g. "systemctl status *". */
  command: oneOrMany.optional(),
  /** SSH: host names of the connection (globs). */
  hosts: oneOrMany.optional(),
});

export const ruleSchema = z
  .strictObject({
    name,
    description: z.string().optional(),
    match: matchSchema,
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

export type RuleMatch = z.output<typeof matchSchema>;
export type Rule = z.output<typeof ruleSchema>;
