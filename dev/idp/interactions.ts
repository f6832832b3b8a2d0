// The sign-in steps of the development OpenID provider at
// /interaction/:uid[/login|/confirm|/abort]: show the login or consent page,
// take the account a person picked (no password: any listed account), record
// their consent as a grant, or their refusal as access_denied. oidc-provider
// decides which step is due; this module only answers it.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type Provider from 'oidc-provider';
import type { Client, Interaction } from 'oidc-provider';
import type { DevIdpAccounts } from './accounts.js';
import { consentPage, interactionErrorPage, loginPage } from './pages.js';

/** The interaction a request addresses: its uid and the step posted, if any. */
export function interactionOf(pathname: string): { readonly uid: string; readonly action: string | undefined } | null {
  const m = /^\/interaction\/([^/]+)(?:\/(login|confirm|abort))?$/.exec(pathname);
  return m?.[1] ? { uid: m[1], action: m[2] } : null;
}

function send(res: ServerResponse, status: number, html: string): void {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.end(html);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** The step's page (GET), or the step taken (POST login, confirm or abort). */
export async function handleInteraction(
  provider: Provider,
  accounts: DevIdpAccounts,
  req: IncomingMessage,
  res: ServerResponse,
  uid: string,
  action: string | undefined,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error(`interaction ${uid} does not match the interaction cookie (${details.uid})`);
  const prompt = details.prompt.name;
  const requestedBy = details.params['client_id'];
  const client = typeof requestedBy === 'string' ? await provider.Client.find(requestedBy) : undefined;

  if (action === undefined && req.method === 'GET') {
    if (prompt === 'login') send(res, 200, loginPage(uid, details, client, accounts));
    else if (prompt === 'consent') send(res, 200, consentPage(uid, details, client, accounts));
    else send(res, 400, interactionErrorPage(`unsupported prompt ${prompt}`, 'unsupported_prompt'));
    return;
  }
  if (req.method !== 'POST') {
    send(res, 405, interactionErrorPage('method not allowed', 'method_not_allowed'));
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  if (action === 'login' && prompt === 'login') return login(provider, accounts, { req, res, uid, details, client }, form);
  if (action === 'confirm' && prompt === 'consent') return consent(provider, req, res, details);
  if (action === 'abort') {
    await provider.interactionFinished(
      req,
      res,
      { error: 'access_denied', error_description: 'End-User denied the request' },
      { mergeWithLastSubmission: false },
    );
    return;
  }
  send(res, 400, interactionErrorPage(`cannot ${action ?? 'GET'} during ${prompt}`, 'bad_interaction_step'));
}

interface Step {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly uid: string;
  readonly details: Interaction;
  readonly client: Client | undefined;
}

/** Signs in as the account named (typed, or the button pressed); an unknown name gets the form back. */
async function login(provider: Provider, accounts: DevIdpAccounts, step: Step, form: URLSearchParams): Promise<void> {
  const name = (form.getAll('login').find((value) => value.trim() !== '') ?? '').trim();
  if (!Object.hasOwn(accounts, name)) {
    send(step.res, 200, loginPage(step.uid, step.details, step.client, accounts, { error: 'unknown_account', tried: name }));
    return;
  }
  await provider.interactionFinished(step.req, step.res, { login: { accountId: name } }, { mergeWithLastSubmission: false });
}

/** Grants what the client asked for and the person allowed: scopes, claims and resource scopes. */
async function consent(provider: Provider, req: IncomingMessage, res: ServerResponse, details: Interaction): Promise<void> {
  const accountId = details.session?.accountId;
  const clientId = details.params['client_id'];
  if (accountId === undefined || typeof clientId !== 'string') throw new Error('consent without a logged-in account or client');
  const grant = (details.grantId ? await provider.Grant.find(details.grantId) : undefined) ?? new provider.Grant({ accountId, clientId });
  const missing = details.prompt.details;
  if (Array.isArray(missing['missingOIDCScope'])) grant.addOIDCScope(missing['missingOIDCScope'].join(' '));
  if (Array.isArray(missing['missingOIDCClaims'])) grant.addOIDCClaims(missing['missingOIDCClaims'] as string[]);
  const resourceScopes = missing['missingResourceScopes'];
  if (resourceScopes && typeof resourceScopes === 'object') {
    for (const [indicator, scopes] of Object.entries(resourceScopes as Record<string, string[]>)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } }, { mergeWithLastSubmission: true });
}
