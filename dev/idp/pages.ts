// The development OpenID provider's HTML pages: home, enter the device code,
// confirm it, sign in (pick an account, no password), consent, success and
// errors. Ours replace oidc-provider's defaults, which print NOTICEs.
// Contract with the scripted browser in test/support/oidc.ts: one
// <main data-page="KIND" [data-error=…] [data-detail=…]> per page, and the
// step's form is the FIRST <form> on the page (its <input>s are what it submits).
// Every value from a request or an account is escaped.

import type { Client, Interaction } from 'oidc-provider';
import { DEV_CLIENTS, type DevIdpAccounts } from './accounts.js';

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = [
  'body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330;margin:0;padding:24px}',
  'main{max-width:560px;margin:0 auto;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.15);padding:24px 32px}',
  '.banner{max-width:560px;margin:0 auto 16px;background:#fff4ce;border:1px solid #e0c060;border-radius:8px;padding:10px 16px;font-size:14px}',
  'h1{font-size:1.5em;margin-top:0}',
  'input[type=text]{font-size:18px;padding:8px;width:100%;box-sizing:border-box;margin:8px 0 12px}',
  'input[name=user_code]{text-transform:uppercase;letter-spacing:2px;text-align:center}',
  'input[name=user_code]::placeholder{text-transform:none;letter-spacing:normal}',
  'button{font-size:15px;padding:8px 18px;border-radius:6px;border:1px solid #2557c7;background:#2f6fed;color:#fff;cursor:pointer;margin:4px 8px 4px 0}',
  'button.secondary{background:#fff;color:#2557c7}',
  'button.account{background:#fff;color:#1d2330;border-color:#aab}',
  'table{border-collapse:collapse;width:100%;margin:8px 0}td,th{text-align:left;padding:6px 8px;border-bottom:1px solid #e4e6eb;vertical-align:middle}',
  '.error{color:#b00020;font-weight:600}.muted{color:#5c6370;font-size:14px}code.user-code{font-size:1.8em;letter-spacing:3px}',
].join('');

interface PageState {
  error?: string | undefined;
  detail?: string | undefined;
}

function page(kind: string, title: string, body: string, state: PageState = {}): string {
  const attrs =
    (state.error !== undefined ? ` data-error="${escapeHtml(state.error)}"` : '') +
    (state.detail !== undefined ? ` data-detail="${escapeHtml(state.detail)}"` : '');
  return (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escapeHtml(title)} · Drawbridge development sign-in</title><style>${STYLE}</style></head><body>` +
    '<div class="banner" role="note"><strong>Drawbridge development identity provider.</strong> ' +
    'Local testing only: any account listed here signs in without a password. Never use it for production.</div>' +
    `<main data-page="${escapeHtml(kind)}"${attrs}>${body}</main></body></html>`
  );
}

/** "groups: sre, developers", "realm roles: dba", "no groups" … for one account's claims. */
function describeClaims(claims: Readonly<Record<string, unknown>>): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(claims)) {
    if (name === 'groups') {
      parts.push(`groups: ${Array.isArray(value) ? value.join(', ') : String(value)}`);
    } else if (name === 'realm_access' && value && typeof value === 'object' && Array.isArray((value as { roles?: unknown }).roles)) {
      parts.push(`realm roles: ${(value as { roles: unknown[] }).roles.join(', ')}`);
    } else {
      parts.push(`${name}: ${JSON.stringify(value)}`);
    }
  }
  return parts.length > 0 ? parts.join('; ') : 'no groups';
}

/** The account table; with `loginAction`, a "Sign in as …" button per account (its own form). */
function accountTable(accounts: DevIdpAccounts, loginAction?: string): string {
  const rows = Object.entries(accounts)
    .map(([name, claims]) => {
      const button =
        loginAction === undefined
          ? ''
          : `<td><button type="submit" class="account" name="login" value="${escapeHtml(name)}">Sign in as ${escapeHtml(name)}</button></td>`;
      return `<tr><td><strong>${escapeHtml(name)}</strong></td><td>${escapeHtml(describeClaims(claims))}</td>${button}</tr>`;
    })
    .join('');
  const head = `<tr><th>Account</th><th>Claims in its tokens</th>${loginAction === undefined ? '' : '<th></th>'}</tr>`;
  const table = `<table class="accounts"><thead>${head}</thead><tbody>${rows}</tbody></table>`;
  return loginAction === undefined ? table : `<form method="post" action="${escapeHtml(loginAction)}">${table}</form>`;
}

/** oidc-provider's internal explanation (error_detail) of an error or of its cause. */
function errorDetail(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 3; e = (e as { cause?: unknown }).cause, depth += 1) {
    const detail = (e as { error_detail?: unknown }).error_detail;
    if (typeof detail === 'string') return detail;
  }
  return undefined;
}

function errorName(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { name?: unknown; error?: unknown };
    if (typeof e.error === 'string') return e.error;
    if (typeof e.name === 'string') return e.name;
  }
  return 'error';
}

/** What to tell a person about an error on the enter-the-code page. */
function userCodeMessage(err: unknown): string {
  if (!err) return '';
  const name = errorName(err);
  const detail = errorDetail(err);
  const extra = detail ? ` <span class="muted">(${escapeHtml(detail)})</span>` : '';
  if (name === 'AbortedError') return `<p class="error">The sign-in was cancelled. The device gets "access denied".</p>${extra}`;
  if (name === 'ExpiredError') return `<p class="error">That code has expired. Start the sign-in on your device again.</p>${extra}`;
  if (name === 'AlreadyUsedError') return `<p class="error">That code was already used.</p>${extra}`;
  if (name === 'NotFoundError' || name === 'NoCodeError' || (err as { userCode?: unknown }).userCode !== undefined) {
    return `<p class="error">That code is unknown or has expired. Check the code on your device and try again.</p>${extra}`;
  }
  return `<p class="error">The sign-in failed: ${escapeHtml(name)}.</p>${extra}`;
}

/**
 * Who asks for what: the client (its registered name when it has one: dynamically registered
 * clients have random ids), the resource and scopes, and for an authorization code flow the
 * redirect URI the browser returns to with the code, so a person sees where the grant goes.
 */
function describeRequest(params: Record<string, unknown>, client: Client | undefined): string {
  const clientId = typeof params['client_id'] === 'string' ? params['client_id'] : '?';
  const name =
    client?.clientName !== undefined && client.clientName !== '' && client.clientName !== clientId
      ? `<strong>${escapeHtml(client.clientName)}</strong> <span class="muted">(client id <code>${escapeHtml(clientId)}</code>)</span>`
      : `<strong>${escapeHtml(clientId)}</strong>`;
  const resource = typeof params['resource'] === 'string' ? params['resource'] : undefined;
  const scope = typeof params['scope'] === 'string' && params['scope'] !== '' ? params['scope'] : undefined;
  const redirect = typeof params['redirect_uri'] === 'string' ? params['redirect_uri'] : undefined;
  return (
    `<p>Client ${name} asks for access` +
    (resource ? ` to <code>${escapeHtml(resource)}</code>` : '') +
    (scope ? ` with scopes <code>${escapeHtml(scope)}</code>` : '') +
    '.' +
    (redirect ? ` Afterwards your browser returns to <code>${escapeHtml(redirect)}</code>.` : '') +
    '</p>'
  );
}

/** Where a person enters the code their device shows (oidc-provider's userCodeInputSource); `err` from a failed try. */
export function deviceInputPage(form: string, accounts: DevIdpAccounts, err: unknown): string {
  return page(
    'device-input',
    'Enter the code',
    '<h1>Enter the code shown on your device</h1>' +
      userCodeMessage(err) +
      form +
      '<button type="submit" form="op.deviceInputForm">Continue</button>' +
      '<p class="muted">Next you sign in as one of these accounts (no password):</p>' +
      accountTable(accounts),
    err ? { error: errorName(err), detail: errorDetail(err) } : {},
  );
}

/** "Is this the code on your device?" (userCodeConfirmSource). */
export function deviceConfirmPage(form: string, userCode: string): string {
  return page(
    'device-confirm',
    'Confirm the device',
    '<h1>Is this the code on your device?</h1>' +
      `<p><code class="user-code">${escapeHtml(userCode)}</code></p>` +
      '<p class="muted">Continue only if your device shows exactly this code and you started this sign-in.</p>' +
      form +
      '<button type="submit" form="op.deviceConfirmForm">Yes, continue</button>' +
      '<button type="submit" class="secondary" form="op.deviceConfirmForm" name="abort" value="yes">No, cancel</button>',
  );
}

export function deviceSuccessPage(): string {
  return page('device-success', 'Signed in', '<h1>Signed in</h1><p>Your device is signed in. You can close this page.</p>');
}

/** An OAuth error oidc-provider renders (renderError). */
export function oauthErrorPage(out: Readonly<Record<string, string>>): string {
  const description = out['error_description'];
  return page(
    'error',
    'Sign-in error',
    `<h1>Something went wrong</h1><p class="error">${escapeHtml(out['error'] ?? 'error')}</p>` +
      (description ? `<p>${escapeHtml(description)}</p>` : '') +
      `<pre class="muted">${escapeHtml(JSON.stringify(out))}</pre>` +
      '<p><a href="/device">Enter a device code</a></p>',
    { error: out['error'] ?? 'error' },
  );
}

/** A fault of the interaction pages themselves. */
export function interactionFaultPage(err: unknown): string {
  return page('error', 'Sign-in error', `<h1>Something went wrong</h1><p class="error">${escapeHtml(String(err))}</p><p><a href="/device">Start over</a></p>`, {
    error: errorName(err),
  });
}

/** A step the interaction pages cannot take (wrong method, wrong prompt). */
export function interactionErrorPage(message: string, error: string): string {
  return page('error', 'Sign-in error', `<p class="error">${escapeHtml(message)}</p>`, { error });
}

export function loginPage(
  uid: string,
  details: Interaction,
  client: Client | undefined,
  accounts: DevIdpAccounts,
  state: { error?: string; tried?: string } = {},
): string {
  const action = `/interaction/${uid}/login`;
  const message =
    state.error === undefined ? '' : `<p class="error">There is no account named “${escapeHtml(state.tried ?? '')}”. Pick one of the accounts below.</p>`;
  return page(
    'login',
    'Sign in',
    '<h1>Sign in</h1>' +
      describeRequest(details.params, client) +
      message +
      `<form method="post" action="${escapeHtml(action)}">` +
      '<label for="login">Account name (no password needed)</label>' +
      `<input type="text" id="login" name="login" value="" autocomplete="off" autofocus/>` +
      '<button type="submit">Sign in</button></form>' +
      '<p class="muted">Or pick an account. Its claims are copied into the access token:</p>' +
      accountTable(accounts, action),
    state.error === undefined ? {} : { error: state.error },
  );
}

export function consentPage(uid: string, details: Interaction, client: Client | undefined, accounts: DevIdpAccounts): string {
  const account = details.session?.accountId ?? '?';
  const claims = accounts[account];
  return page(
    'consent',
    'Allow access',
    `<h1>Allow access?</h1><p>Signed in as <strong>${escapeHtml(account)}</strong>` +
      (claims ? ` <span class="muted">(${escapeHtml(describeClaims(claims))})</span>` : '') +
      '.</p>' +
      describeRequest(details.params, client) +
      `<form method="post" action="/interaction/${escapeHtml(uid)}/confirm"><button type="submit">Allow</button></form>` +
      `<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit" class="secondary">Deny</button></form>`,
  );
}

export function homePage(issuer: string, accounts: DevIdpAccounts): string {
  return page(
    'home',
    'Home',
    '<h1>Drawbridge development sign-in</h1>' +
      `<p>Issuer <code>${escapeHtml(issuer)}</code>. Start a sign-in on your device (for example <code>drawbridge</code> with this issuer), ` +
      'then <a href="/device">enter the code it shows</a>.</p>' +
      "<p>An MCP client that supports OAuth finds this provider by itself from the gateway's 401: it registers " +
      `(dynamic client registration at <code>${escapeHtml(issuer)}/reg</code>, public clients with loopback redirect URIs only) ` +
      `or uses the client id <code>${escapeHtml(DEV_CLIENTS.mcp.clientId)}</code>, then sends your browser here to sign in.</p>` +
      '<p class="muted">Accounts (no password):</p>' +
      accountTable(accounts),
  );
}
