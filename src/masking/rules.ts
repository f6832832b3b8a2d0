// The shape of masking rules in policies/*.yaml: which columns are masked (by
// qualified-name globs resolved from the data's lineage), which content
// detectors run on every text value, and how values are replaced.

import { z } from 'zod';
import { oneOrMany } from '../policy/match.js';
import { DETECTOR_GROUP_NAMES, DETECTOR_GROUPS, DETECTOR_NAMES, isDetectorGroup, type DetectorGroup, type DetectorName } from './detectors.js';
import { MASK_STYLES } from './styles.js';

const style = z.enum(MASK_STYLES);
const detectorName = z.enum(DETECTOR_NAMES as readonly [DetectorName, ...DetectorName[]]);
const detectorGroup = z.enum(DETECTOR_GROUP_NAMES);

/** `all`, a group (`pii`, `secrets`), or a list of detector and group names → the detector names, each once, in catalog order. */
function expandDetectors(value: 'all' | DetectorGroup | ReadonlyArray<DetectorName | DetectorGroup>): DetectorName[] {
  if (value === 'all') return [...DETECTOR_NAMES];
  const chosen = new Set<DetectorName>();
  for (const item of typeof value === 'string' ? [value] : value) {
    if (isDetectorGroup(item)) for (const name of DETECTOR_GROUPS[item]) chosen.add(name);
    else chosen.add(item);
  }
  return DETECTOR_NAMES.filter((name) => chosen.has(name));
}

const columnPattern = z.string().regex(/^[^.\s]+(\.[^.\s]+){0,2}$/, 'use column, table.column or schema.table.column (globs allowed)');

export const maskingRuleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore'),
  description: z.string().optional(),
  match: z
    .strictObject({
      tool: oneOrMany.optional(),
      connection: oneOrMany.optional(),
      subject: oneOrMany.optional(),
      groups: oneOrMany.optional(),
    })
    .default({}),
  columns: z.array(z.union([columnPattern, z.strictObject({ column: columnPattern, style })])).default([]),
  /**
   * Content detectors run on every text value: `all`, a group (`pii`: email,
   * credit_card, ssn, phone, iban; `secrets`: every credential detector), or a
   * list of detector and group names (README, Masking).
   */
  detectors: z
    .union([z.literal('all'), detectorGroup, z.array(z.union([detectorName, detectorGroup]))])
    .transform(expandDetectors)
    .default([]),
  /**
   * Operator patterns (regular expressions) run on every text value after the
   * detectors: the last capture group is masked (the whole match when there is
   * none), so `(?i)(password|secret|token)\s*[=:]\s*(\S+)` keeps the key and
   * masks the value. A leading `(?i)` makes the pattern case-insensitive.
   */
  patterns: z
    .array(
      z
        .string()
        .min(1)
        .superRefine((p, ctx) => {
          try {
            compilePattern(p);
          } catch (error) {
            ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(error as Error).message}` });
          }
        }),
    )
    .default([]),
  style: style.default('redact'),
});

export type MaskingRule = z.output<typeof maskingRuleSchema>;

/** Compiles an operator pattern: `(?i)` prefix → case-insensitive; global with match indices. */
export function compilePattern(pattern: string): RegExp {
  const insensitive = pattern.startsWith('(?i)');
  return new RegExp(insensitive ? pattern.slice(4) : pattern, insensitive ? 'gid' : 'gd');
}
