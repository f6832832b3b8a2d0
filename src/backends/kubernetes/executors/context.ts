// The seam between the connection (index.ts: the client, the credentials, the
// limits and what a command has applied so far) and the executors of each verb
// family: what an executor may ask of the cluster, the facts of the command it
// runs, and the result shapes they share. No I/O of its own.

import type { TabularResult } from '../../backend.js';
import { DrawbridgeError } from '../../../errors.js';
import type { ExecResult } from '../client.js';
import type { MaskTally } from '../mask.js';
import type { ApiResource, KubeCommand, KubeObject } from '../types.js';

export interface CallOptions {
  readonly query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly accept?: string;
}

/** What an executor may do to the cluster; every call goes through the connection's client, limits and identity. */
export interface KubeApi {
  /** One API request; a 4xx/5xx is a DrawbridgeError, a write the server accepts is recorded as applied. */
  call(method: string, path: string, o?: CallOptions): Promise<unknown>;
  /** Runs a command in a container, without TTY or stdin, within execTimeoutMs. */
  exec(target: { namespace: string; pod: string; container: string | null; command: readonly string[] }): Promise<ExecResult>;
  /** The exec time limit in force for this command (the connection's, or less if the call has less time left). */
  readonly execTimeoutMs: number;
  /** Every resource the server serves (discovery). */
  resources(): Promise<readonly ApiResource[]>;
  readonly maxBytes: number;
  readonly maxLogLines: number;
}

/** One command being run. */
export interface Execution {
  readonly api: KubeApi;
  /** The command's resources, resolved through discovery (one per manifest object for apply and create). */
  readonly resolved: readonly ApiResource[];
  readonly manifest: readonly KubeObject[];
  /** -n, or the connection's default namespace. */
  readonly namespace: string;
  /** A server-side dry run: the approval preview, or --dry-run=server. */
  readonly dryRun: boolean;
  readonly now: Date;
  /** Counts every field mask applied to the objects of this answer. */
  readonly tally: MaskTally;
}

/** Whether the command itself asks for a server-side dry run (--dry-run=server). */
export function requestsDryRun(c: KubeCommand): boolean {
  return 'dryRun' in c.options && c.options.dryRun;
}

/** The query parameter of a dry run: the API server validates and admits, nothing is persisted. */
export function dryRunQuery(x: Execution): { dryRun?: 'All' } {
  return x.dryRun ? { dryRun: 'All' } : {};
}

export function dryRunSuffix(x: Execution): string {
  return x.dryRun ? ' (server dry run)' : '';
}

/** How kubectl names a resource in its messages: "deployment.apps", "pod". */
export function display(r: ApiResource): string {
  return r.group === '' ? r.singular : `${r.singular}.${r.group}`;
}

/** The first resolved resource, which every verb that names a type has. */
export function firstResource(x: Execution, message: string, hint?: string): ApiResource {
  const first = x.resolved[0];
  if (!first) throw new DrawbridgeError('input.invalid', message, hint === undefined ? {} : { hint });
  return first;
}

/** One line per change, as kubectl prints them ("pod/web labeled"). */
export function lines(items: readonly string[]): TabularResult {
  return {
    columns: [{ name: 'result', type: 'text', sources: [] }],
    rows: items.map((l) => [l]),
    command: 'KUBECTL',
    affectedRows: items.length,
    truncated: null,
    notices: [],
    bytes: items.join('\n').length,
  };
}

/** One text document (YAML, JSON, describe, logs). */
export function doc(name: string, text: string): TabularResult {
  return {
    columns: [{ name, type: 'document', sources: [] }],
    rows: [[text]],
    command: 'KUBECTL',
    affectedRows: null,
    truncated: null,
    notices: [],
    bytes: Buffer.byteLength(text),
  };
}

/** Rows with text columns, as a GET answer. */
export function table(columns: TabularResult['columns'], rows: TabularResult['rows']): TabularResult {
  return { columns, rows, command: 'GET', affectedRows: null, truncated: null, notices: [], bytes: JSON.stringify(rows).length };
}
