// Who is acting on an approval from the command line. With OIDC identities
// the approver presents an access token from the same provider, verified like
// any caller's (issuer, audience, signature, expiry); groups come from it. In
// local mode each configured approver proves themselves with a token referenced
// from the config (never written inline): the comparison is constant-time, and
// no message ever says which approver, or which part, did not match.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { DrawbridgeError } from '../errors.js';
import { createOidcVerifier } from '../identity/oidc.js';
import type { ApproverIdentity } from './approver.js';

/** The approver behind `token`: verified by the OpenID provider in OIDC mode, matched against approval.approvers in local mode. */
export async function authenticateApprover(
  config: Pick<GatewayConfig, 'dir' | 'approval' | 'identity'>,
  token: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ApproverIdentity> {
  if (config.identity?.mode === 'oidc') {
    const { identity } = await createOidcVerifier(config.identity).verify(token);
    return Object.freeze({ subject: identity.subject, groups: identity.groups, kind: 'oidc' as const });
  }
  return identifyApprover(config, token, env);
}

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
