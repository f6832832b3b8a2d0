// The commands that look at a config without serving it: `drawbridge check`
// (is the config valid; with --connect, can every connection be reached) and
// `drawbridge policy explain` (how one request would be parsed and decided;
// nothing runs, nothing is journaled). Printing only; the config loader, the
// probe and the explainer do the work.

import { ConfigError, loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { resolveSecret, type SecretRef } from '../config/secrets.js';
import { formatDuration } from '../config/units.js';
import { checkpointKeys } from '../journal/checkpoint-file.js';
import { isDrawbridgeError } from '../errors.js';
import { makeIdentity } from '../identity/identity.js';
import { explain, formatExplanation } from '../pipeline/explain.js';
import { openGateway } from '../pipeline/gateway.js';
import { checkConnections, connectionCheckFailed, formatConnectionReports } from '../pipeline/probe.js';
import { openState } from '../state/open.js';
import type { CommandArgs } from './commands.js';
import { configDir, fail, unresolvedReason, type CliIo } from './io.js';

export async function check({ values }: CommandArgs<'check'>, io: CliIo): Promise<number> {
  const dir = configDir(values.config, io);
  let config: GatewayConfig;
  try {
    config = loadConfig(dir);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr.write(`${error.message}\n`);
      return 1;
    }
    throw error;
  }
  describeConfig(dir, config, !values.connect, io);
  if (!checkpointKeyUsable(config, io)) return 1;
  if (!(await stateUsable(config, values.connect, io))) return 1;
  if (!values.connect) return 0;
  io.stdout.write(`Reaching ${config.connections.size} connection(s) as the gateway would …\n`);
  const reports = await checkConnections(config, { env: io.env });
  io.stdout.write(formatConnectionReports(reports));
  // A server that accepted a connection and never answered can leave a driver's socket
  // open after its report: the binary exits when the command returns (src/cli.ts).
  return connectionCheckFailed(reports) ? 1 : 0;
}

/**
 * What `check` prints about a valid config: counts, identity, secrets (never
 * their values) and warnings. With `probeSecrets` each reference is resolved
 * here to warn about the missing ones; `--connect` reports those per connection.
 */
function describeConfig(dir: string, config: GatewayConfig, probeSecrets: boolean, io: CliIo): void {
  const environment = { env: io.env, baseDir: config.dir };
  const unresolved: string[] = [];
  // Resolve each reference to see whether it is available here; the value is dropped at once, never printed.
  const probe = (owner: string, ref: SecretRef) => {
    try {
      if (probeSecrets) resolveSecret(ref, environment);
    } catch (error) {
      unresolved.push(`${owner}: ${isDrawbridgeError(error) ? error.message : 'cannot be resolved'}`);
    }
  };
  const secrets = [...config.connections.values()].flatMap((c) =>
    c.backend.secretsOf(c.declaration).map((ref) => {
      probe(`connection ${c.declaration.name}`, ref);
      return `${c.declaration.name}: ${ref.describe}`;
    }),
  );
  if (config.hashKey) probe('masking.hash_key', config.hashKey);
  const identity = config.identity;
  const scopes = identity?.mode === 'oidc' && identity.required_scopes.length ? `, scopes ${identity.required_scopes.join(' ')}` : '';
  const mapped = identity?.mode === 'oidc' && identity.scopes.length ? [...new Set(identity.scopes.map((entry) => entry.scope))] : [];
  const services =
    identity?.mode === 'oidc'
      ? identity.service_principal === 'rfc9068'
        ? 'services: tokens whose sub is their client (RFC 9068)'
        : `services: tokens whose ${identity.service_principal.claim} matches ${identity.service_principal.matches.join(', ')}`
      : '';
  io.stdout.write(
    `OK ${dir}: ${config.connections.size} connection(s), ${config.tools.size} tool(s), ` +
      `${config.rules.length} rule(s), ${config.masking.length} masking rule(s)\n` +
      // The hash serve journals at start, on every reload and in every call's intent (README: Reload).
      `config hash: ${config.hash}\n` +
      (identity?.mode === 'local' ? `identity: ${identity.subject} [local] groups: ${identity.groups.join(', ') || '(none)'}\n` : '') +
      (identity?.mode === 'oidc'
        ? `identity: OIDC, issuer ${identity.issuer}, audience ${identity.audience}, groups from ${identity.groups_claim}${scopes}\n` +
          `${mapped.length ? `per-operation scopes: ${mapped.join(' ')} (${identity.scopes.length} mapping(s))\n` : ''}${services}\n`
        : '') +
      (secrets.length ? `secrets referenced (resolved only at connect time): ${secrets.join('; ')}\n` : '') +
      [...config.warnings, ...unresolved.map((u) => `${u} (calls that need it will be refused until it is set)`)].map((w) => `warning: ${w}\n`).join(''),
  );
}

/**
 * The checkpoint signing key must resolve to an Ed25519 private key, or `serve` refuses to
 * start: reported as an error with its code, never with the key's text.
 */
function checkpointKeyUsable(config: GatewayConfig, io: CliIo): boolean {
  const settings = config.journal.checkpoints;
  if (settings === null) return true;
  try {
    const { keyId } = checkpointKeys(settings, { env: io.env, baseDir: config.dir });
    io.stdout.write(
      `checkpoints: every ${formatDuration(settings.everyMs)} to ${settings.publishFile}, signing key ${settings.signingKey.describe} (key id ${keyId})\n`,
    );
    return true;
  } catch (error) {
    if (!isDrawbridgeError(error)) throw error;
    io.stderr.write(`error: journal.checkpoints.signing_key (${settings.signingKey.describe}): ${error.code}: ${error.message}\n${error.hint}\n`);
    return false;
  }
}

/**
 * Which engine holds the state. For PostgreSQL, state.url must resolve or `serve` refuses to
 * start (reported by reference, never the URL); with --connect the state is also opened as a
 * command opens it (reachable, schema not newer than this build) and its journal head read.
 */
async function stateUsable(config: GatewayConfig, connect: boolean, io: CliIo): Promise<boolean> {
  if (config.state.engine === 'sqlite') {
    io.stdout.write(`state: SQLite (embedded): journal ${config.journal.path}, approvals ${config.approval.store}\n`);
    return true;
  }
  const ref = config.state.url;
  try {
    resolveSecret(ref, { env: io.env, baseDir: config.dir });
  } catch (error) {
    if (!isDrawbridgeError(error)) throw error;
    const reason = unresolvedReason(error.message);
    io.stderr.write(`error: state.url (${ref.describe}) cannot be resolved: ${reason}; serve will refuse to start.\n`);
    return false;
  }
  io.stdout.write(`state: PostgreSQL, shared by replicas: state.url ${ref.describe} (resolves)\n`);
  if (!connect) return true;
  try {
    const state = await openState(config, { purpose: 'command', environment: { env: io.env, baseDir: config.dir } });
    try {
      const head = await state.journal.head();
      io.stdout.write(`state: reachable; journal has ${head.seq} record(s), head ${head.hash}\n`);
    } finally {
      await state.close();
    }
    return true;
  } catch (error) {
    if (!isDrawbridgeError(error)) throw error;
    io.stderr.write(`error: the state (${ref.describe}) cannot be opened: ${error.code}: ${error.message.split('\n')[0] ?? ''}\n`);
    return false;
  }
}

/** The request to explain: --input as JSON, or --sql as shorthand for {"sql": …}. */
function explainInput(values: CommandArgs<'policy explain'>['values']): Record<string, unknown> {
  if (values.input !== undefined) {
    try {
      return JSON.parse(values.input) as Record<string, unknown>;
    } catch {
      return fail('--input must be a JSON object, e.g. --input \'{"sql":"select 1"}\'');
    }
  }
  if (values.sql !== undefined) return { sql: values.sql };
  return fail('policy explain needs --sql or --input.');
}

export async function policyExplain({ values }: CommandArgs<'policy explain'>, io: CliIo): Promise<number> {
  if (!values.tool || !values.connection) fail('policy explain needs --tool and --connection (and --sql or --input).');
  const input = explainInput(values);
  const gateway = await openGateway({ configDir: configDir(values.config, io), env: io.env, journalPath: ':memory:' });
  try {
    const declared = gateway.config.identity?.mode === 'local' ? gateway.config.identity : null;
    const subject = values.subject ?? declared?.subject;
    if (!subject) fail('No identity: pass --subject (and --groups), or configure a local one in policies (kind: gateway).');
    const groups =
      values.groups !== undefined
        ? values.groups
            .split(',')
            .map((g) => g.trim())
            .filter(Boolean)
        : values.subject
          ? []
          : [...(declared?.groups ?? [])];
    const principal = values.principal ?? 'person';
    if (principal !== 'person' && principal !== 'service') fail('--principal must be person or service.');
    const identity = makeIdentity({ kind: 'local', subject, groups, issuer: 'local', principal });
    const result = await explain(gateway, { tool: values.tool, connection: values.connection, input, identity, offline: values.offline });
    io.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatExplanation(result));
    return 0;
  } finally {
    await gateway.close();
  }
}
