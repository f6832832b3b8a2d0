// The approval adapters, in the order the approve stage asks them: a grant
// clears without asking anyone (and without a preview); the human at the
// client answers when the rule lets the requester approve alone and the client
// can show a form (elicitation/create on MCP 2025-11-25, an InputRequiredResult
// and the re-issued call on 2026-07-28); otherwise the rule's approver groups decide out of band.
// A new channel is one more adapter file and one entry here (or in the
// gateway's `approvers` option, as a test does).

import type { Approver } from '../approver.js';
import { elicitationApprover } from './elicitation.js';
import { grantApprover } from './grant.js';
import { inputRequiredApprover } from './input-required.js';
import { outOfBandApprover } from './out-of-band.js';

export const APPROVERS: readonly Approver[] = Object.freeze([grantApprover, elicitationApprover, inputRequiredApprover, outOfBandApprover]);
