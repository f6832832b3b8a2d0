// Assertions on a pipeline answer (callTool's CallResult) shared by backend tests:
// a success, or a refusal with an exact code and never a stack trace.

import { expect } from 'vitest';
import type { CallResult } from '../../src/pipeline/callTool.js';

export type OkResult = Extract<CallResult, { ok: true }>;

export function expectOk(r: CallResult): OkResult {
  if (!r.ok) throw new Error(`expected success, got ${r.error.code}: ${r.text}`);
  return r;
}

/** The refusal's text, after checking its code and that no stack trace reached the agent. */
export function expectRefused(r: CallResult, code: string): string {
  if (r.ok) throw new Error(`expected ${code}, got success`);
  expect(r.error.code, r.text).toBe(code);
  expect(r.text).not.toMatch(/\n\s+at /);
  return r.text;
}
