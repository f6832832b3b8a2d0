// Who is acting on an approval from the command line. With OIDC identities
// the approver presents an access token from the same provider, verified like
// any caller's (issuer, audience, signature, expiry); groups come from it. In
// local mode each configured approver proves themselves with a token referenced
// from the config (never written inline): the comparison is constant-time, and
// no message ever says which approver, or which part, did not match. When
// nothing matched and some configured tokens could not be resolved in this
// shell, the refusal names those variables (names only) and what to do: the
// usual cause is running the CLI without the gateway's environment.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, unsetVariables } from '../config/secrets.js';
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
 * nothing, never match. Throws identity.unknown_approver otherwise, naming the
 * unset variables (and unreadable token files) when some tokens could not be resolved.
 */
export function identifyApprover(
  config: Pick<GatewayConfig, 'dir' | 'approval'>,
  token: string,
  env: Readonly<Record<string, string | undefined>>,
): ApproverIdentity {
  const presented = digest(token);
  const matches: Array<{ subject: string; groups: readonly string[] }> = [];
  // What kept configured tokens from resolving here: variable names and file paths, never a value.
  const unset = new Set<string>();
  const unreadable = new Set<string>();
  for (const approver of config.approval.approvers) {
    let expected: string;
    try {
      expected = resolveSecret(approver.token, { env, baseDir: config.dir });
    } catch {
      for (const name of unsetVariables(approver.token, env)) unset.add(name);
      if (approver.token.kind === 'file') unreadable.add(approver.token.path);
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
    if (unset.size > 0 || unreadable.size > 0) throw unresolvedApprovers([...unset].sort(), [...unreadable].sort());
    throw new DrawbridgeError('identity.unknown_approver', 'The approver token does not match any configured approver.');
  }
  // The same subject listed twice with the same token: the groups add up.
  const groups = [...new Set(matches.flatMap((m) => m.groups))];
  return Object.freeze({ subject: found.subject, groups: Object.freeze(groups), kind: 'local' as const });
}

/**
 * No configured approver matched, and some could not be checked at all: their
 * token variables are unset in this shell (or their token files unreadable).
 * Says which, by name, for every such approver alike, so it tells nothing
 * about whom the presented token belongs to.
 */
function unresolvedApprovers(unset: readonly string[], unreadable: readonly string[]): DrawbridgeError {
  const parts = [
    ...(unset.length > 0 ? [`${list(unset)} ${unset.length === 1 ? 'is' : 'are'} not set in this environment`] : []),
    ...(unreadable.length > 0 ? [`the token file${unreadable.length === 1 ? '' : 's'} ${list(unreadable)} cannot be read here`] : []),
  ];
  const sources = unset.length + unreadable.length === 1 ? 'it' : 'them';
  const hint =
    unset.length > 0
      ? `Export the variable${unset.length === 1 ? '' : 's'} the gateway uses in this ` +
        `shell (export ${unset[0] ?? ''}=… with the gateway's value), or run drawbridge ` +
        `approvals where the gateway's environment is (its host and user); then retry.`
      : 'Run drawbridge approvals where the gateway runs (its host and user, which can read the token files); then retry.';
  return new DrawbridgeError(
    'identity.unknown_approver',
    `The approver token matches none of the approvers that can be checked here: ${parts.join('; ')}, ` +
      `so approvers whose tokens come from ${sources} (approval.approvers) cannot be recognised.`,
    { hint, details: { unset: [...unset], unreadable: [...unreadable] } },
  );
}

function list(items: readonly string[]): string {
  return items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items.at(-1) ?? ''}`;
}
