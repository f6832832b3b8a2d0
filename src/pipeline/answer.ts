// The answer stage: a compact text table for the model plus the same data as
// structuredContent (matching the tool's outputSchema), and the one mapping of
// a call's result to an MCP tool result (toToolResult). Input is already masked.
// A call held for a human's approval answers with an empty table and `approval`
// (which request, its status, and how to pick up the decision), so the one
// outputSchema covers it and clients that validate structured output accept it.

import { z } from 'zod';
import { approvalAnswerSchema, type ApprovalAnswer } from '../approval/approver.js';
import type { Cell, ParsedRequest, TabularResult } from '../backends/backend.js';
import type { MaskCount } from '../masking/masker.js';
import type { Decision } from '../policy/evaluate.js';
import type { CallResult } from './callTool.js';

const cell = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** outputSchema of tabular tools (zod shape for the MCP SDK). */
export const tabularOutputShape = {
  connection: z.string(),
  command: z.string().describe('Command tag, e.g. SELECT or UPDATE'),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
  rows: z.array(z.array(cell)).describe('Rows as arrays in column order; masked values are replaced'),
  rowCount: z.number().int(),
  affectedRows: z.number().int().nullable(),
  truncated: z.object({ reason: z.enum(['rows', 'bytes']), limit: z.number() }).nullable(),
  masked: z
    .array(z.object({ target: z.string(), by: z.enum(['column', 'detector', 'field']), rule: z.string(), count: z.number().int() }))
    .describe(
      'Every mask applied to this answer: by column rule, content detector, or field ' +
        '(values the backend masks by itself, e.g. Kubernetes Secret data), with counts',
    ),
  notices: z.array(z.string()),
  rule: z.string().nullable().describe('The policy rule that allowed the call (or asks for its approval)'),
  durationMs: z.number(),
  callId: z.string().describe('Journal id of this call'),
  approval: approvalAnswerSchema
    .optional()
    .describe('Only when the call waits for (or was refused by) a human approval: nothing ran, and this says how to pick up the decision'),
};

export type StructuredAnswer = z.infer<z.ZodObject<typeof tabularOutputShape>>;

const MAX_CELL = 200;

function show(value: Cell): string {
  if (value === null) return 'NULL';
  const text = String(value).replace(/\r?\n/g, '\\n').replace(/\|/g, '\\|');
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL)}…(${text.length} chars)` : text;
}

export function renderAnswer(input: {
  callId: string;
  request: ParsedRequest;
  decision: Decision;
  result: TabularResult;
  masked: MaskCount[];
  durationMs: number;
}): {
  text: string;
  structured: StructuredAnswer;
} {
  const { request, result, masked } = input;
  const lines: string[] = [];
  const count = result.columns.length > 0 ? `${result.rows.length} row${result.rows.length === 1 ? '' : 's'}` : result.command;
  const affected = result.affectedRows !== null ? `, ${result.affectedRows} affected` : '';
  lines.push(`${request.connection} · ${request.summary} · ${count}${affected} · ${input.durationMs} ms`);
  const documents = result.columns.some((c) => c.type === 'document');
  if (documents) {
    // Documents (YAML, logs, command output) are shown verbatim; other cells as a header line.
    for (const row of result.rows) {
      const header = result.columns
        .map((c, i) => (c.type === 'document' || row[i] === null || row[i] === '' ? null : `${c.name}: ${String(row[i])}`))
        .filter(Boolean);
      if (header.length > 0) lines.push(`── ${header.join(' · ')}`);
      row.forEach((cell, i) => {
        const column = result.columns[i];
        if (column?.type !== 'document' || cell === null || cell === '') return;
        if (result.columns.filter((c) => c.type === 'document').length > 1) lines.push(`[${column.name}]`);
        lines.push(String(cell).replace(/\n$/, ''));
      });
    }
  } else if (result.columns.length > 0) {
    const header = result.columns.map((c) => c.name);
    const body = result.rows.map((r) => r.map(show));
    const widths = header.map((h, i) => Math.min(60, Math.max(h.length, ...body.map((r) => (r[i] ?? '').length))));
    const fmt = (cells: readonly string[]) =>
      cells
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join(' | ')
        .trimEnd();
    lines.push(fmt(header), widths.map((w) => '-'.repeat(Math.max(1, w))).join('-+-'));
    for (const r of body) lines.push(fmt(r));
  }
  if (result.truncated) {
    lines.push(`(truncated: more than ${result.truncated.limit} ${result.truncated.reason}; ${result.truncated.hint})`);
  }
  if (masked.length > 0) lines.push(`Masked: ${masked.map((m) => `${m.target} (${m.by}, ${m.count})`).join(', ')}`);
  for (const n of result.notices) lines.push(`Notice: ${n}`);
  return {
    text: lines.join('\n'),
    structured: {
      connection: request.connection,
      command: result.command,
      columns: result.columns.map((c) => ({ name: c.name, type: c.type })),
      rows: result.rows.map((r) => [...r]),
      rowCount: result.rows.length,
      affectedRows: result.affectedRows,
      truncated: result.truncated ? { reason: result.truncated.reason, limit: result.truncated.limit } : null,
      masked: masked.map((m) => ({ ...m })),
      notices: [...result.notices],
      rule: input.decision.rule?.name ?? null,
      durationMs: input.durationMs,
      callId: input.callId,
    },
  };
}

/** The structured answer of a call held for (or refused by) an approval: nothing ran. */
export function renderApprovalAnswer(input: { callId: string; approval: ApprovalAnswer; durationMs: number }): StructuredAnswer {
  return {
    connection: input.approval.connection,
    command: '',
    columns: [],
    rows: [],
    rowCount: 0,
    affectedRows: null,
    truncated: null,
    masked: [],
    notices: [],
    rule: input.approval.rule,
    durationMs: input.durationMs,
    callId: input.callId,
    approval: input.approval,
  };
}

/** An MCP tool result (the SDK's CallToolResult, which the transport returns as is). */
export interface ToolResult {
  [key: string]: unknown;
  content: Array<{ type: 'text'; text: string }>;
  structuredContent?: StructuredAnswer;
  isError?: true;
  _meta?: Record<string, unknown>;
}

/**
 * `_meta` key of a tool error refused for scope (identity.insufficient_scope): every scope the
 * call needs and those the token lacks, so a client can ask for them all at once. On a
 * 2026-07-28 HTTP request the transport turns it into a 403 step-up challenge (http/server.ts).
 */
export const SCOPES_META_KEY = 'drawbridge/scopes';

/** The scope lists of a refusal for scope, as its details carry them; null for anything else. */
export function scopeRefusal(result: CallResult): { readonly needed: readonly string[]; readonly missing: readonly string[] } | null {
  if (result.ok || result.error.code !== 'identity.insufficient_scope') return null;
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);
  return { needed: strings(result.error.details['neededScopes']), missing: strings(result.error.details['missingScopes']) };
}

/**
 * The one mapping of a call's result to what the agent receives: its text (the
 * table, or errorText of the refusal) and, when there is one, the structured answer.
 */
export function toToolResult(result: CallResult): ToolResult {
  const content = [{ type: 'text' as const, text: result.text }];
  // A call held for input (2026-07-28, result.inputRequired) that reaches here is answered as its approval.pending error.
  if (result.ok) return { content, structuredContent: result.structured };
  const scopes = scopeRefusal(result);
  return {
    isError: true,
    content,
    ...(result.structured ? { structuredContent: result.structured } : {}),
    ...(scopes ? { _meta: { [SCOPES_META_KEY]: { needed: [...scopes.needed], missing: [...scopes.missing] } } } : {}),
  };
}
