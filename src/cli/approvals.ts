// The approver's commands: `drawbridge approvals list | show | approve | deny`
// and `drawbridge grants list | revoke`. Who may vote is decided by the
// approvers module; here a vote is authenticated, applied to the approvals
// store and journaled (see approvalsVote for how the two stay consistent).

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { authenticateApprover } from '../approval/approvers.js';
import { decideApproval, journalRevocation, revokeGrant } from '../approval/decide.js';
import { INTERACTIVE_RETRY, notifierFor } from '../approval/notify.js';
import { formatApproval, formatApprovalList, formatGrantList, revokeMessage, safeLine, voteMessage } from '../approval/format.js';
import { loadConfig } from '../config/load.js';
import type { GatewayConfig } from '../config/schema.js';
import { durationSchema } from '../config/units.js';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import type { ApprovalStore, StateStore } from '../state/contract.js';
import { openState } from '../state/open.js';
import { COMMANDS, type CommandArgs, type CommandSpec } from './commands.js';
import { configDir, fail, type CliIo } from './io.js';
import { isRemote, remoteApprovalsList, remoteApprovalsShow, remoteGrantsList, remoteGrantsRevoke, remoteVote } from './remote.js';

/** Prints a catalog error and returns the exit code: 2 for a bad argument, 1 for any refusal or unavailability. */
function refused(error: unknown, io: CliIo): number {
  if (!isDrawbridgeError(error) || error.code === 'config.invalid') throw error;
  io.stderr.write(`drawbridge: ${error.code}: ${error.message}\n${error.hint}\n`);
  return error.code === 'input.invalid' ? 2 : 1;
}

/** The state for one command, closed after `body`; the journal is opened only if the command appends to it. */
async function withState<T>(config: GatewayConfig, io: CliIo, body: (state: StateStore) => Promise<T>): Promise<T> {
  const state = await openState(config, { purpose: 'command', environment: { env: io.env, baseDir: config.dir } });
  try {
    return await body(state);
  } finally {
    await state.close();
  }
}

function withStore<T>(config: GatewayConfig, io: CliIo, body: (store: ApprovalStore) => Promise<T>): Promise<T> {
  return withState(config, io, (state) => body(state.approvals));
}

/** The presented approver token: --token-file wins over $DRAWBRIDGE_APPROVER_TOKEN. Never printed. */
function approverToken(tokenFile: string | undefined, io: CliIo): string {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(resolve(io.cwd, tokenFile), 'utf8').trim();
    } catch {
      return fail(`Cannot read the token file ${tokenFile}.`);
    }
    if (text === '') fail(`The token file ${tokenFile} is empty.`);
    return text;
  }
  const token = io.env['DRAWBRIDGE_APPROVER_TOKEN'];
  if (token === undefined || token.trim() === '') fail('This needs your approver token: set DRAWBRIDGE_APPROVER_TOKEN, or pass --token-file PATH.');
  return token.trim();
}

function parseGrant(value: string | undefined): number {
  if (value === undefined || value === 'none' || value === '0') return 0;
  const parsed = durationSchema.safeParse(value);
  if (!parsed.success || parsed.data <= 0) fail(`--grant must be a duration such as 15m or 1h, or none (got ${JSON.stringify(safeLine(value))}).`);
  return parsed.data;
}

/** The one ID argument (parseCommand has checked there is exactly one); an empty string is a usage mistake too. */
function oneId(positionals: string[], spec: CommandSpec): string {
  const id = positionals[0];
  if (!id) fail(`drawbridge ${spec.path} needs an ID.\nUsage: drawbridge ${spec.usage[0] ?? ''}`);
  return id;
}

export async function approvalsList({ values }: CommandArgs<'approvals list'>, io: CliIo): Promise<number> {
  if (isRemote(values)) return remoteApprovalsList(values, io);
  const config = loadConfig(configDir(values.config, io));
  try {
    const now = new Date();
    const approvals = await withStore(config, io, (store) => store.list(now, values.all ? {} : { status: 'pending' }));
    io.stdout.write(values.json ? `${JSON.stringify(approvals, null, 2)}\n` : formatApprovalList(approvals, now, { all: values.all }));
    return 0;
  } catch (error) {
    return refused(error, io);
  }
}

export async function approvalsShow({ values, positionals }: CommandArgs<'approvals show'>, io: CliIo): Promise<number> {
  const id = oneId(positionals, COMMANDS['approvals show']);
  if (isRemote(values)) return remoteApprovalsShow(values, id, io);
  const config = loadConfig(configDir(values.config, io));
  try {
    const now = new Date();
    const approval = await withStore(config, io, (store) => store.get(id, now));
    if (!approval) throw new DrawbridgeError('approval.not_found', `No approval request ${JSON.stringify(safeLine(id))}.`);
    io.stdout.write(values.json ? `${JSON.stringify(approval, null, 2)}\n` : formatApproval(approval, now));
    return 0;
  } catch (error) {
    return refused(error, io);
  }
}

/**
 * A vote and its journal record commit together or not at all (decideApproval
 * says how). The journal is opened first (fail early when it is unavailable);
 * if the store's COMMIT fails after the journal append, the journal holds a
 * vote the store did not keep: the command says so loudly and exits non-zero.
 */
export async function approvalsVote(
  decision: 'approve' | 'deny',
  parsed: CommandArgs<'approvals approve'> | CommandArgs<'approvals deny'>,
  io: CliIo,
): Promise<number> {
  const spec = decision === 'approve' ? COMMANDS['approvals approve'] : COMMANDS['approvals deny'];
  const values: { config?: string | undefined; reason?: string | undefined; grant?: string | undefined; 'token-file'?: string | undefined } = parsed.values;
  const usage = `drawbridge ${spec.usage[0] ?? ''}`;
  const id = oneId(parsed.positionals, spec);
  const reason = values.reason?.trim() || undefined;
  if (decision === 'deny' && reason === undefined) fail(`A denial needs a reason the requester will see: --reason TEXT.\nUsage: ${usage}`);
  if (decision === 'deny' && values.grant !== undefined) fail('--grant applies to approve only.');
  const grantMs = decision === 'approve' ? parseGrant(values.grant) : 0;
  if (isRemote(parsed.values, [['token-file', values['token-file']]])) {
    return remoteVote(
      parsed.values,
      id,
      decision,
      { ...(reason !== undefined ? { reason } : {}), ...(grantMs > 0 ? { grant: values.grant as string } : {}) },
      io,
    );
  }
  const token = approverToken(values['token-file'], io);
  const config = loadConfig(configDir(values.config, io));
  try {
    const approver = await authenticateApprover(config, token, io.env);
    const state = await openState(config, { purpose: 'command', environment: { env: io.env, baseDir: config.dir } });
    try {
      const now = new Date();
      // approval.notify: the decided message goes out from here; the command waits for it (a few seconds at most).
      const environment = { env: io.env, baseDir: config.dir };
      const notifier = notifierFor(config.approval.notify, {
        environment,
        journal: state.journal,
        clock: () => new Date(),
        consoleOrigin: null,
        retry: INTERACTIVE_RETRY,
      });
      const result = await decideApproval(
        state,
        approver,
        { approvalId: id, decision, via: 'cli', ...(reason !== undefined ? { reason } : {}), ...(grantMs > 0 ? { grantMs } : {}) },
        now,
        notifier?.notify,
      );
      await notifier?.idle();
      if (!result.ok) {
        if (result.orphan !== null) io.stderr.write(orphanMessage(result.orphan, decision, id));
        throw result.error;
      }
      io.stdout.write(voteMessage(result.approval, decision, approver, result.record));
      return 0;
    } finally {
      await state.close();
    }
  } catch (error) {
    return refused(error, io);
  }
}

function orphanMessage(record: { readonly seq: number }, decision: 'approve' | 'deny', id: string): string {
  return (
    `drawbridge: ERROR: journal record #${record.seq} says ${decision} on ${id}, but the approvals store did not keep the vote; ` +
    'the request is unchanged. Tell the operator, then vote again.\n'
  );
}

export async function grantsList({ values }: CommandArgs<'grants list'>, io: CliIo): Promise<number> {
  if (isRemote(values)) return remoteGrantsList(values, io);
  const config = loadConfig(configDir(values.config, io));
  try {
    const now = new Date();
    const grants = await withStore(config, io, (store) => store.listGrants(now, values.all ? {} : { active: true }));
    io.stdout.write(values.json ? `${JSON.stringify(grants, null, 2)}\n` : formatGrantList(grants, now, { all: values.all }));
    return 0;
  } catch (error) {
    return refused(error, io);
  }
}

/**
 * Revoking reduces access, so it must not wait on the journal: the grant is
 * revoked first, then the revocation is journaled. If the journal cannot be
 * written the grant stays revoked, and the command says so and exits 1.
 */
export async function grantsRevoke({ values, positionals }: CommandArgs<'grants revoke'>, io: CliIo): Promise<number> {
  const id = oneId(positionals, COMMANDS['grants revoke']);
  if (isRemote(values, [['token-file', values['token-file']]])) return remoteGrantsRevoke(values, id, io);
  const token = approverToken(values['token-file'], io);
  const config = loadConfig(configDir(values.config, io));
  try {
    const approver = await authenticateApprover(config, token, io.env);
    const now = new Date();
    const revocation = await withStore(config, io, (store) => revokeGrant(store, approver, id, now));
    io.stdout.write(revokeMessage(revocation.grant, approver));
    try {
      await withState(config, io, (state) => journalRevocation(state, approver, revocation, now));
    } catch (error) {
      io.stderr.write(`drawbridge: ERROR: grant ${revocation.grant.id} IS revoked, but the revocation could not be journaled. Tell the operator.\n`);
      return refused(error, io);
    }
    return 0;
  } catch (error) {
    return refused(error, io);
  }
}
