// Who is acting on an approval from the command line, in local mode (until
// OIDC): each configured approver proves themselves with a token, referenced
// from the config (never written inline). The comparison is constant-time,
// and no message ever says which approver, or which part, did not match.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { DrawbridgeError } from '../errors.js';
import type { ApproverIdentity } from './approver.js';

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * The approver whose configured token equals `token`. Every approver is
 * compared (no early exit); tokens that cannot be resolved here, or resolve to
 * nothing, never match. Throws identity.unknown_approver otherwise.
 */
export function identifyApprover(
  config: Pick<GatewayConfig, 'dir' | 'approval'>,
  token: string,
  env: Readonly<Record<string, string | undefined>>,
): ApproverIdentity {
  const presented = digest(token);
  const matches: Array<{ subject: string; groups: readonly string[] }> = [];
  for (const approver of config.approval.approvers) {
    let expected: string;
    try {
      expected = resolveSecret(approver.token, { env, baseDir: config.dir });
    } catch {
      continue;
    }
    const equal = timingSafeEqual(presented, digest(expected));
    if (equal && expected !== '' && token !== '') matches.push(approver);
  }
  const subjects = new Set(matches.map((m) => m.subject));
  if (subjects.size > 1) {
    // A configuration mistake; refusing is the only answer that does not pick someone at random.
    throw new DrawbridgeError('config.invalid', 'Two configured approvers have the same token; each approver needs their own.', {
      hint: 'Give every entry in approval.approvers its own token, then retry.',
    });
  }
  const found = matches[0];
  if (found === undefined) {
    throw new DrawbridgeError('identity.unknown_approver', 'The approver token does not match any configured approver.');
  }
  // The same subject listed twice with the same token: the groups add up.
  const groups = [...new Set(matches.flatMap((m) => m.groups))];
  return Object.freeze({ subject: found.subject, groups: Object.freeze(groups), kind: 'local' as const });
}
