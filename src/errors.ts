// The one catalog of errors meant for the agent or the operator, each with a
// stable string code, a recovery hint and a kind (refusal or fault), and the
// one text an agent is shown of an error (errorText). The gateway's own codes
// are listed here; each backend adds its own (sql.*, kubectl.refused, …) from
// its folder with defineErrorCodes. Programmer mistakes are plain TypeErrors,
// never here.

/**
 * Codes a backend adds for its own refusals. Each backend declares them in its
 * folder: it adds them to this interface (a module augmentation, so the compiler
 * checks every code written anywhere) and gives each its hint and kind with
 * defineErrorCodes, in the module that throws them.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface BackendErrorCodes {}

export type ErrorCode = CoreErrorCode | Extract<keyof BackendErrorCodes, string>;

/** The gateway's own codes: identity, input, policy, approvals, journal, and backend faults every backend shares. */
type CoreErrorCode =
  | 'config.invalid'
  | 'config.secret_missing'
  | 'config.secret_invalid'
  | 'config.restart_required'
  | 'admin.forbidden'
  | 'identity.missing'
  | 'identity.invalid_token'
  | 'identity.insufficient_scope'
  | 'identity.expired'
  | 'identity.unavailable'
  | 'identity.session_mismatch'
  | 'identity.sign_in_required'
  | 'input.invalid'
  | 'tool.unknown'
  | 'connection.unknown'
  | 'policy.denied'
  | 'policy.no_match'
  | 'policy.unclassified'
  | 'backend.unavailable'
  | 'backend.auth_failed'
  | 'backend.timeout'
  | 'backend.connection_lost'
  | 'backend.error'
  | 'backend.interrupted'
  | 'limits.affected_rows'
  | 'journal.unavailable'
  | 'gateway.shutting_down'
  | 'journal.forbidden'
  | 'state.schema_version'
  | 'approval.declined'
  | 'approval.pending'
  | 'approval.unavailable'
  | 'approval.timeout'
  | 'approval.not_found'
  | 'approval.not_pending'
  | 'approval.forbidden'
  | 'approval.duplicate_vote'
  | 'approval.not_approved'
  | 'approval.store_unavailable'
  | 'approval.state_invalid'
  | 'grant.not_found'
  | 'grant.expired'
  | 'identity.unknown_approver'
  | 'internal';

const HINTS: Record<CoreErrorCode, string> = {
  'config.invalid': 'Fix the listed problems in tools/ or policies/ and run `drawbridge check`.',
  'config.restart_required':
    'The running gateway keeps its config: these settings are read once, when the gateway starts. Restart the gateway to apply them ' +
    '(or revert them and reload again).',
  'admin.forbidden':
    'POST /reload on the admin listener takes no browser requests (no Origin, no form content type); with OIDC identities it needs ' +
    'the bearer token of a member of an admin.operators group.',
  'config.secret_missing': 'Set the referenced environment variable or file on the gateway host, then retry.',
  'config.secret_invalid':
    'A secret of this connection has the wrong form. Retrying will not help: tell the operator, ' +
    'who must correct the referenced variable or file on the gateway host and restart the gateway.',
  'identity.missing': 'The gateway has no caller identity; the operator must configure one (kind: gateway, identity).',
  'identity.invalid_token':
    'Sign in again to get a fresh access token for this gateway (drawbridge connect does it for you); the token must be a JWT issued for this gateway.',
  'identity.insufficient_scope': 'Ask for an access token with the listed scopes (the provider must grant them to your client).',
  'identity.expired': 'The access token has expired. Get a new one and restart the server (drawbridge connect refreshes tokens automatically).',
  'identity.unavailable': 'The OpenID provider could not be reached to verify the token. Retry later or tell the operator.',
  'identity.session_mismatch': 'This MCP session belongs to another identity. Start a new session with your own token.',
  'identity.sign_in_required':
    'A person must sign in first: open the address shown, enter the code and approve. The ' +
    'bridge then connects by itself and the tool list refreshes; call again after that.',
  'input.invalid': 'Check the tool arguments against the tool input schema and call again.',
  'tool.unknown': 'Call one of the tools listed by tools/list.',
  'connection.unknown': 'Use one of the connection names listed in the tool description.',
  'policy.denied': 'This is refused by policy. Do not retry variants of it; ask a human if you need it.',
  'policy.no_match': 'No policy rule allows this. Try a narrower request (for example a read), or ask the operator for a rule.',
  'policy.unclassified': 'The gateway could not tell what this request does, so it is refused. Rewrite it as a plain statement.',
  'backend.unavailable': 'The backend could not be reached. Retry later or tell the operator.',
  'backend.auth_failed':
    "The backend refused the gateway's own credential for this connection (wrong, expired " +
    'or not allowed to log in). Retrying will not help: tell the operator, who must fix ' +
    "the credential in the connection's secret on the gateway host and restart the gateway.",
  'backend.timeout': 'The statement hit the time limit. Narrow it (add filters or LIMIT) and call again.',
  'backend.connection_lost':
    'The database session ended during the call (a restart, a failover, an administrator ending it, ' +
    'or the network); the message says whether anything was applied. Unless it says the change was ' +
    'committed, call again once the database is back: the gateway opens a new connection by itself.',
  'backend.error': 'The backend rejected the request. Read the message, fix the request and call again.',
  'backend.interrupted':
    'The connection to the backend broke while the request was in flight, so whether it took effect is ' +
    'unknown. Check the current state with a read (list the objects, or run a command that shows the ' +
    'state on the host) before retrying anything that changes state; the next call opens a new connection.',
  'limits.affected_rows': 'The write touched more rows than allowed and was rolled back. Narrow the WHERE clause, or split the change.',
  'journal.unavailable': 'The audit journal cannot be written, so nothing is executed. Tell the operator.',
  'gateway.shutting_down': 'The gateway is restarting; nothing was run. Call again in a moment with exactly the same input.',
  'journal.forbidden':
    'Reading the journal over the approvals API or in the console is for members of the groups in journal.readers (policies, kind: gateway); ' +
    'ask the operator to add one of your groups there.',
  'state.schema_version':
    'The state schema does not match this Drawbridge: if older, run `drawbridge state migrate`; if newer, upgrade Drawbridge to the version that wrote it.',
  'approval.declined': 'A human declined this request. Do not retry it or variants of it; ask them what they would accept.',
  'approval.pending': 'A human must approve this out of band (drawbridge approvals). Call again later with exactly the same input to pick up the decision.',
  'approval.unavailable': 'No approver can be reached for this request, so nothing was run. Ask a human to run it, or the operator to change the policy.',
  'approval.timeout': 'Nobody decided in time, so nothing was run. Call again when a human can answer, to ask for a new approval.',
  'approval.not_found': 'Check the id with `drawbridge approvals list --all`.',
  'approval.not_pending': 'This request was already decided or has expired; see `drawbridge approvals show ID`. A new request needs a new call from the agent.',
  'approval.forbidden':
    "Only members of the rule's approver groups may vote, and requesters never approve " +
    'their own requests unless the rule says requester: true. Ask another approver.',
  'approval.duplicate_vote': 'Each approver votes once per request. If more approvals are needed, another approver must vote.',
  'approval.not_approved': 'This request is not approved, or its approval was already used. Call again to ask for a new approval.',
  'approval.store_unavailable': 'The approvals store cannot be read or written, so nothing that needs approval runs. Tell the operator.',
  'approval.state_invalid':
    'The requestState sent with this call was refused, so nothing was run. Call the tool again without a requestState (the same ' +
    'arguments) to ask the human anew; never edit or reuse a requestState.',
  'grant.not_found': 'Check the id with `drawbridge grants list --all`; a revoked grant cannot be revoked again.',
  'grant.expired': 'The grant has expired. Call again to ask for a new approval.',
  'identity.unknown_approver':
    'Set DRAWBRIDGE_APPROVER_TOKEN (or pass --token-file PATH) to the approver token the operator issued you (policies, kind: gateway, approval.approvers).',
  internal: 'An unexpected gateway error occurred. Tell the operator; the journal has the details.',
};

/**
 * Why a call ended without running, as the journal records it:
 * - 'refusal': the request itself was refused — by a policy rule, by default deny (no
 *   identity, an unknown tool, input that is invalid or does not parse, nothing
 *   matched), or by a human. Journaled as a `deny` (or the `approve` it was) decision.
 * - 'fault': the gateway could not do its job — a backend unreachable or refusing the
 *   gateway's own credential, a secret missing, the journal or approvals store
 *   unavailable, a bug. Not a decision about the request: journaled with no decision
 *   and an `error` outcome, so `journal export --decision deny` lists refusals only.
 * Every code must be classified (the compiler checks it here and in defineErrorCodes),
 * so a new outage can never pass for a policy denial by default.
 */
export type ErrorKind = 'refusal' | 'fault';

const KINDS: Record<CoreErrorCode, ErrorKind> = {
  'config.invalid': 'fault',
  'config.restart_required': 'refusal',
  'admin.forbidden': 'refusal',
  'config.secret_missing': 'fault',
  'config.secret_invalid': 'fault',
  'identity.missing': 'refusal',
  'identity.invalid_token': 'refusal',
  'identity.insufficient_scope': 'refusal',
  'identity.expired': 'refusal',
  'identity.unavailable': 'fault',
  'identity.session_mismatch': 'refusal',
  'identity.sign_in_required': 'refusal',
  'input.invalid': 'refusal',
  'tool.unknown': 'refusal',
  'connection.unknown': 'refusal',
  'policy.denied': 'refusal',
  'policy.no_match': 'refusal',
  'policy.unclassified': 'refusal',
  'backend.unavailable': 'fault',
  'backend.auth_failed': 'fault',
  'backend.timeout': 'fault',
  'backend.connection_lost': 'fault',
  'backend.error': 'fault',
  'backend.interrupted': 'fault',
  'limits.affected_rows': 'refusal',
  'journal.unavailable': 'fault',
  'gateway.shutting_down': 'refusal',
  'journal.forbidden': 'refusal',
  'state.schema_version': 'fault',
  'approval.declined': 'refusal',
  'approval.pending': 'refusal',
  'approval.unavailable': 'refusal',
  'approval.timeout': 'refusal',
  'approval.not_found': 'refusal',
  'approval.not_pending': 'refusal',
  'approval.forbidden': 'refusal',
  'approval.duplicate_vote': 'refusal',
  'approval.not_approved': 'refusal',
  'approval.store_unavailable': 'fault',
  'approval.state_invalid': 'refusal',
  'grant.not_found': 'refusal',
  'grant.expired': 'refusal',
  'identity.unknown_approver': 'refusal',
  internal: 'fault',
};

/** A code's hint and kind. */
interface ErrorEntry {
  readonly hint: string;
  readonly kind: ErrorKind;
}

/** Codes with their entries: what a backend declares with defineErrorCodes. */
export type ErrorCatalog<C extends string = string> = { readonly [K in C]: ErrorEntry };

/** The backends' codes, added by defineErrorCodes. */
const BACKEND_CODES = new Map<string, ErrorEntry>();

function isCoreCode(code: string): code is CoreErrorCode {
  return Object.hasOwn(HINTS, code);
}

/**
 * Adds a backend's codes to the catalog and returns them. Called at the top of the
 * module that declares them (the backend's errors.ts), so a code has its hint as
 * soon as anything that throws it is loaded. Declaring a code of the core, or one
 * another backend declared differently, is a programmer mistake (TypeError).
 */
export function defineErrorCodes<const C extends Extract<keyof BackendErrorCodes, string>>(codes: ErrorCatalog<C>): ErrorCatalog<C> {
  for (const [code, entry] of Object.entries<ErrorEntry>(codes)) {
    const known = BACKEND_CODES.get(code);
    if (isCoreCode(code) || (known && (known.hint !== entry.hint || known.kind !== entry.kind))) {
      throw new TypeError(`error code ${code} is declared twice`);
    }
    BACKEND_CODES.set(code, entry);
  }
  return codes;
}

/**
 * What a code means. A backend code nobody declared (only possible when the module
 * declaring it was never loaded) is classified a fault: never a decision about the request.
 */
function entryOf(code: ErrorCode): ErrorEntry {
  if (isCoreCode(code)) return { hint: HINTS[code], kind: KINDS[code] };
  return BACKEND_CODES.get(code) ?? { hint: 'Read the message; tell the operator if it does not say what to do.', kind: 'fault' };
}

export function errorKind(code: ErrorCode): ErrorKind {
  return entryOf(code).kind;
}

export class DrawbridgeError extends Error {
  override readonly name = 'DrawbridgeError';
  readonly code: ErrorCode;
  readonly hint: string;
  /** Extra structured facts for the journal and structured output; never secrets. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { hint?: string; details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint ?? entryOf(code).hint;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

export function isDrawbridgeError(value: unknown): value is DrawbridgeError {
  return value instanceof DrawbridgeError;
}

/** Normalises anything thrown inside a call into a catalog error, hiding internals. */
export function toDrawbridgeError(value: unknown): DrawbridgeError {
  if (value instanceof DrawbridgeError) return value;
  return new DrawbridgeError('internal', 'Internal gateway error.', { cause: value });
}

/**
 * The one text an agent is shown of an error: code, message and what to do. Also
 * for errors that are not the gateway's own (the bridge's, of a JSON-RPC request
 * it could not forward), which may come without a hint.
 */
export function errorText(error: { readonly code: string; readonly message: string; readonly hint?: string | undefined }): string {
  return `${error.code}: ${error.message}${error.hint ? `\nWhat to do: ${error.hint}` : ''}`;
}
