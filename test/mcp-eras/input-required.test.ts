// The seam server.ts offers the 2026-07-28 approval adapter (issue 14): a call held
// for the human's answer (plain data) becomes the SDK's InputRequiredResult, and a
// re-issued request's requestState and answer are read back as plain data.

import type { ServerContext } from '@modelcontextprotocol/server';
import { describe, expect, it } from 'vitest';
import { approvalForm } from '../../src/approval/prompt.js';
import { inputRoundOf, toInputRequiredResult } from '../../src/server.js';

const FORM = approvalForm({ message: 'Approve UPDATE customers …?', grantChoices: [0, 3_600_000] });

/** The part of a handler context inputRoundOf reads. */
function context(requestState: unknown, inputResponses: Record<string, unknown> | undefined): ServerContext {
  const mcpReq = { requestState: () => requestState, ...(inputResponses ? { inputResponses } : {}) };
  return { mcpReq } as ServerContext;
}

describe('toInputRequiredResult', () => {
  it('is an input_required result with the same form under its key and the sealed state', () => {
    const result = toInputRequiredResult({ inputRequests: { approval: { method: 'elicitation/create', params: FORM } }, requestState: 'sealed.state' });
    expect(result).toMatchObject({
      resultType: 'input_required',
      requestState: 'sealed.state',
      inputRequests: { approval: { method: 'elicitation/create', params: FORM } },
    });
    expect(FORM.requestedSchema.properties.grant?.enum).toEqual(['this call only', '1h']);
  });
});

describe('inputRoundOf', () => {
  it('reads the echoed requestState and the answer under the key, as sent', () => {
    const answer = { action: 'accept', content: { decision: 'approve' } };
    expect(inputRoundOf(context('sealed.state', { approval: answer, other: {} }), 'approval')).toEqual({ requestState: 'sealed.state', response: answer });
  });

  it('a first round carries neither', () => {
    expect(inputRoundOf(context(undefined, undefined), 'approval')).toEqual({});
  });
});
