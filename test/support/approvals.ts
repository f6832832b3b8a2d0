// A pending write's approval subject for store and state tests: alice asks a DBA
// to approve a DELETE on public.orders. Overrides replace whole fields.

import { requestHash, type ApprovalSubject } from '../../src/approval/approver.js';

export function approvalSubject(overrides: Partial<ApprovalSubject> = {}): ApprovalSubject {
  const input = overrides.input ?? { sql: 'DELETE FROM orders WHERE id <= 10' };
  return {
    hash: requestHash('run_sql', 'db', input),
    callId: 'call-1',
    tool: 'run_sql',
    connection: 'db',
    input,
    summary: 'delete on public.orders',
    reasons: ['writes public.orders'],
    rule: 'writes-need-approval',
    message: 'Writes need a DBA.',
    requester: { subject: 'alice', groups: ['analysts', 'dba'], kind: 'local', issuer: 'local' },
    client: 'vitest',
    approverGroups: ['dba'],
    allowRequester: false,
    min: 1,
    maxGrantMs: 15 * 60_000,
    preview: { affectedRows: 10, sample: [{ id: 1 }], sampleColumns: ['id'] },
    ...overrides,
  };
}
