// The SSH backend behind the `ssh_exec` tool: a connection is one host or a
// host group; the command is parsed with a strict shell grammar into argv,
// classified (read-only programs, programs that run programs, pipelines), and
// run re-quoted on each host in parallel with bounded concurrency.

import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import { defineBackend, type BackendConnection, type Cell, type ExecuteContext, type ParsedRequest, type ProbeResult, type TabularResult } from '../backend.js';
import { resolveSecret, secretRefSchema, type SecretEnvironment, type SecretRef } from '../../config/secrets.js';
import { durationSchema, formatDuration, formatSize, sizeSchema } from '../../config/units.js';
import { DrawbridgeError, toDrawbridgeError } from '../../errors.js';
import { knownHostKeys, SshPool, type HostTarget } from './client.js';
import { classifyCommands } from './classify.js';
import { SSH_ERRORS } from './errors.js';
import { parseShellCommand, QUOTING_PROBE_ARGV, QUOTING_PROBE_EXPECTED, quoteArgv, type ShellCommand } from './parse.js';
import { matchesSsh, SSH_EXPLAIN, SSH_MATCH_SHAPE } from './policy.js';

const hostSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore'),
  host: z.string().min(1),
  port: z.number().int().positive().max(65535).default(22),
  /** The pinned host key fingerprint, as `ssh-keygen -lf` prints it (SHA256:…). */
  host_key: z
    .string()
    .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'write the SHA256 fingerprint as ssh-keygen -lf prints it, e.g. SHA256:abc…')
    .optional(),
});

const sshConnectionSchema = z
  .strictObject({
    kind: z.literal('connection'),
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, dot, dash or underscore'),
    type: z.literal('ssh'),
    description: z.string().min(1),
    /** One host, or a group: the same command runs on each. */
    hosts: z.array(hostSchema).min(1),
    /** known_hosts file pinning the host keys (plain host names; used for hosts without host_key). */
    known_hosts: z.string().min(1).optional(),
    user: z.string().min(1),
    private_key: secretRefSchema,
    passphrase: secretRefSchema.optional(),
    limits: z
      .strictObject({
        timeout: durationSchema.optional(),
        max_output: sizeSchema.refine((n) => n <= 4 * 1024 * 1024, 'at most 4MiB').optional(),
        concurrency: z.number().int().positive().max(64).optional(),
      })
      .default({}),
  })
  .superRefine((c, ctx) => {
    c.hosts.forEach((h, i) => {
      if (!h.host_key && !c.known_hosts)
        ctx.addIssue({ code: 'custom', path: ['hosts', i, 'host_key'], message: `host ${h.name} has no pinned key: set host_key (SHA256:…) or known_hosts` });
    });
    const names = c.hosts.map((h) => h.name);
    if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'host names must be unique' });
  });

type SshConnectionDeclaration = z.output<typeof sshConnectionSchema>;

const SSH_OPERATIONS = ['exec', 'pipeline', 'runs_programs'] as const;

/** The backend's own facts about a request (ParsedRequest.detail). */
export type SshDetail = {
  readonly parsed: ShellCommand;
  /** The hosts asked for (all of the connection's after resolve): what `hosts:` rules match. */
  readonly hosts: readonly string[];
  /** Programs run: argv[0] of each command as written (a name or a path), what `programs:` rules match. */
  readonly programs: readonly string[];
  /** The argv of each command of a pipeline: what `command:` patterns match, word by word. */
  readonly commands: ReadonlyArray<readonly string[]>;
};

function parseSshRequest(input: Readonly<Record<string, unknown>>, context: { tool: string; connection: string }): ParsedRequest<SshDetail> {
  const command = input['command'];
  if (typeof command !== 'string') throw new TypeError('command must be a string (validated by the input schema)');
  const requestedHosts = Array.isArray(input['hosts']) ? (input['hosts'] as string[]) : [];
  // Pipelines are parsed so policy can see each program; they run only if a rule allows operation: pipeline.
  const parsed = parseShellCommand(command, { allowPipeline: true });
  const { access, runsPrograms, reasons } = classifyCommands(parsed.commands);
  const operation = runsPrograms.length > 0 ? 'runs_programs' : parsed.commands.length > 1 ? 'pipeline' : 'exec';
  const line = parsed.commands.map((c) => c.argv.join(' ')).join(' | ');
  const detail: SshDetail = {
    parsed,
    hosts: requestedHosts,
    programs: [...new Set(parsed.commands.map((c) => c.argv[0] as string))],
    commands: parsed.commands.map((c) => c.argv),
  };
  return {
    tool: context.tool,
    toolType: 'ssh_exec',
    connection: context.connection,
    operation,
    access,
    resources: [],
    reads: [],
    explicitOnly: operation !== 'exec',
    summary: `${line}${requestedHosts.length ? ` on ${requestedHosts.join(',')}` : ''} (${access})`,
    reasons,
    input: { connection: context.connection, command, ...(requestedHosts.length ? { hosts: requestedHosts } : {}) },
    detail,
  };
}

class SshConnection implements BackendConnection<SshDetail> {
  readonly name: string;
  private readonly pool: SshPool;
  private readonly targets: HostTarget[];
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly concurrency: number;

  constructor(
    private readonly declaration: SshConnectionDeclaration,
    environment: SecretEnvironment,
  ) {
    this.name = declaration.name;
    this.timeoutMs = declaration.limits.timeout ?? 30_000;
    this.maxBytes = declaration.limits.max_output ?? 256 * 1024;
    this.concurrency = declaration.limits.concurrency ?? 4;
    const knownHosts = declaration.known_hosts ? readKnownHosts(declaration.known_hosts, environment.baseDir) : '';
    this.targets = declaration.hosts.map((h) => ({
      name: h.name,
      host: h.host,
      port: h.port,
      fingerprints: [...(h.host_key ? [h.host_key] : []), ...(knownHosts ? knownHostKeys(knownHosts, h.host, h.port) : [])],
    }));
    // The key is read only when a host is first contacted, and never leaves the pool.
    this.pool = new SshPool(
      () => ({
        username: declaration.user,
        privateKey: resolveSecret(declaration.private_key, environment),
        ...(declaration.passphrase ? { passphrase: resolveSecret(declaration.passphrase, environment) } : {}),
      }),
      10_000,
      { command: quoteArgv(QUOTING_PROBE_ARGV), expected: QUOTING_PROBE_EXPECTED },
    );
  }

  async resolve(request: ParsedRequest<SshDetail>): Promise<ParsedRequest<SshDetail>> {
    const detail = request.detail;
    const unknown = detail.hosts.filter((h) => !this.targets.some((t) => t.name === h));
    if (unknown.length > 0) {
      throw new DrawbridgeError('input.invalid', `Unknown host${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} in ${this.name}.`, {
        hint: `Hosts of ${this.name}: ${this.targets.map((t) => t.name).join(', ')}.`,
      });
    }
    const hosts = detail.hosts.length > 0 ? [...detail.hosts] : this.targets.map((t) => t.name);
    return { ...request, detail: { ...detail, hosts } satisfies SshDetail };
  }

  async execute(request: ParsedRequest<SshDetail>, context: ExecuteContext): Promise<TabularResult> {
    const detail = request.detail;
    const targets = this.targets.filter((t) => detail.hosts.includes(t.name));
    const command = detail.parsed.commands.map((c) => quoteArgv(c.argv)).join(' | ');
    const timeoutMs = Math.min(this.timeoutMs, context.timeLimitMs ?? Infinity);
    const rows: Cell[][] = new Array(targets.length);
    let truncated = false;
    let next = 0;
    const worker = async () => {
      while (next < targets.length) {
        const index = next++;
        const target = targets[index] as HostTarget;
        try {
          const r = await this.pool.exec(target, command, { timeoutMs, maxBytes: this.maxBytes });
          truncated ||= r.truncated;
          const note = r.timedOut ? `stopped after ${formatDuration(timeoutMs)}` : r.truncated ? `output cut at ${formatSize(this.maxBytes)}` : null;
          rows[index] = [target.name, r.exitCode, r.signal, r.stdout, r.stderr, note];
        } catch (error) {
          // One host failing does not hide the others' results (a host group is a fan-out).
          if (targets.length === 1) throw error;
          rows[index] = [target.name, null, null, '', '', (error as Error).message];
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, targets.length) }, worker));
    return {
      columns: [
        { name: 'host', type: 'text', sources: [] },
        { name: 'exit_code', type: 'int4', sources: [] },
        { name: 'signal', type: 'text', sources: [] },
        { name: 'stdout', type: 'document', sources: [] },
        { name: 'stderr', type: 'document', sources: [] },
        { name: 'note', type: 'text', sources: [] },
      ],
      rows,
      command: 'EXEC',
      affectedRows: null,
      truncated: truncated ? { reason: 'bytes', limit: this.maxBytes, hint: 'narrow the output to see the rest (grep, head, tail, a narrower path)' } : null,
      notices: [],
      bytes: rows.reduce((n, r) => n + String(r[3] ?? '').length + String(r[4] ?? '').length, 0),
    };
  }

  /**
   * Connects to every host as a call would (the pool's own connect: pinned host
   * key, login, quoting probe). One host failing fails the connection, and the
   * summary still says how each host fared.
   */
  async probe(): Promise<ProbeResult> {
    const user = this.declaration.user;
    const outcomes = await Promise.all(
      this.targets.map(async (target) => {
        try {
          return { target, hostKey: (await this.pool.check(target)).hostKey, error: null };
        } catch (error) {
          return { target, hostKey: null, error: toDrawbridgeError(error) };
        }
      }),
    );
    const only = outcomes.length === 1 ? outcomes[0] : undefined;
    if (only?.error) throw only.error;
    const at = (t: HostTarget) => `${t.name} (${t.host}:${t.port})`;
    const checks = 'host key matches the pin, login works, the login shell quotes like POSIX sh (quoting probe passed)';
    const each = outcomes.map((o) => `${at(o.target)} ${o.error ? `FAILED (${o.error.code})` : 'ok'}`).join(', ');
    const whereOk = outcomes.some((o) => !o.error) ? ` — where ok: ${checks.replace('host key matches the pin', 'host keys match their pins')}` : '';
    const summary = only
      ? `SSH as ${user} to ${at(only.target)}: ${checks.replace('host key', `host key ${only.hostKey ?? '(unknown)'}`)}`
      : `SSH as ${user} to ${outcomes.length} hosts: ${each}${whereOk}`;
    const failed = outcomes.find((o) => o.error !== null);
    return {
      summary,
      warnings: [],
      ...(failed?.error ? { failure: failed.error } : {}),
      facts: {
        user,
        hosts: outcomes.length,
        ok: outcomes.filter((o) => !o.error).length,
        ...Object.fromEntries(outcomes.map((o) => [`hostKey.${o.target.name}`, o.hostKey])),
      },
    };
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function readKnownHosts(path: string, baseDir: string): string {
  const full = isAbsolute(path) ? path : resolvePath(baseDir, path);
  try {
    return readFileSync(full, 'utf8');
  } catch {
    throw new DrawbridgeError('config.invalid', `The known_hosts file ${full} cannot be read.`);
  }
}

export const ssh = defineBackend({
  type: 'ssh',
  toolType: 'ssh_exec',
  operations: SSH_OPERATIONS,
  connectionSchema: sshConnectionSchema,
  inputShape: {
    command: z
      .string()
      .describe(
        'One program and its arguments, e.g. "systemctl status nginx". No shell: lists, ' +
          'substitutions, redirections and variables are refused; pipes only where policy allows them.',
      ),
    hosts: z.array(z.string()).optional().describe('For a host group: run on these hosts only (default: every host).'),
  },
  example: { connection: 'web', input: { command: 'systemctl restart nginx' } },
  toolDescription:
    'Run one command on an SSH host (or every host of a group) through the Drawbridge ' +
    'gateway. The command is parsed, never given to a shell as you wrote it; policy decides ' +
    'by program and arguments; secrets in the output are masked; every call is journaled.',
  describeConnection(c) {
    return `${c.description} (SSH: ${c.hosts.map((h) => h.name).join(', ')}; ${formatDuration(c.limits.timeout ?? 30_000)} per command)`;
  },
  parse: parseSshRequest,
  secretsOf(c): readonly SecretRef[] {
    return [c.private_key, ...(c.passphrase ? [c.passphrase] : [])];
  },
  filesOf: (c) => (c.known_hosts ? [c.known_hosts] : []),
  connect(c, environment) {
    return new SshConnection(c, environment);
  },
  matchShape: SSH_MATCH_SHAPE,
  matches: matchesSsh,
  explain: SSH_EXPLAIN,
  errors: SSH_ERRORS,
});
