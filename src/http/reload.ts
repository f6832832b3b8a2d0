// POST /reload on the admin listener (admin.listen): asks the gateway to reload tools/ and
// policies/ (gateway.reload; the same as SIGHUP) and answers the outcome as JSON. Mutating, so:
// - no browser may send it: a request with an Origin header or a Sec-Fetch-Site other than none, or a body a form can
//   send without a preflight (form-urlencoded, multipart, text/plain), is refused. Browsers put
//   these on every cross-origin POST, and the admin listener serves no page that would post here;
//   `drawbridge reload` and curl send none of them.
// - with OIDC identities, only the bearer token of a member of an admin.operators group (verified
//   by the gateway's own verifier) may reload; with none configured, nobody can over HTTP (SIGHUP still works).
// - with local identities there is no token to check: whoever reaches the admin listener may ask for
//   a reload. That is why it belongs on loopback or a private network; a reload only re-reads files the
//   operator controls, is validated before anything changes, and every attempt is journaled.
// Answers: 200 applied, 409 refused (the problems listed), 401/403 refused callers, 405 other methods.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { DrawbridgeError, isDrawbridgeError } from '../errors.js';
import type { TokenVerifier } from '../identity/oidc.js';
import type { Gateway } from '../pipeline/gateway.js';
import type { ReloadOutcome } from '../pipeline/reload.js';

export const RELOAD_PATH = '/reload';

export interface ReloadEndpoint {
  /** Answers POST /reload; false (nothing written) for any other path. */
  serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean>;
}

/** The answer of POST /reload as JSON: the outcome without who asked (the caller knows). */
export function reloadAnswer(outcome: ReloadOutcome): Record<string, unknown> {
  const { by: _by, ...rest } = outcome;
  return rest;
}

/** Content types a browser form (or a no-preflight fetch) can post: refused, so no web page can trigger a reload. */
const SIMPLE_TYPES = /^(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\b/i;

/** `verifier`: the gateway's OIDC verifier (operators' tokens are required), null with local identities (no token is checked). */
export function createReloadEndpoint(gateway: Gateway, verifier: TokenVerifier | null): ReloadEndpoint {
  const refuse = (res: ServerResponse, status: number, error: DrawbridgeError, headers: Record<string, string> = {}): void => {
    send(res, status, { error: { code: error.code, message: error.message, hint: error.hint } }, headers);
  };

  /** The operator's subject (null with local identities), or the refusal already answered. */
  const operator = async (req: IncomingMessage, res: ServerResponse): Promise<{ subject: string | null } | null> => {
    if (verifier === null) return { subject: null };
    const header = req.headers.authorization;
    const token = header !== undefined && /^Bearer\s+/i.test(header) ? header.replace(/^Bearer\s+/i, '').trim() : '';
    if (token === '') {
      refuse(res, 401, new DrawbridgeError('admin.forbidden', 'POST /reload needs an operator bearer token (admin.operators).'), {
        'WWW-Authenticate': 'Bearer',
      });
      return null;
    }
    try {
      const verified = await verifier.verify(token);
      // Read per request: admin.operators reloads like the rest.
      const groups = new Set(gateway.config.admin.operators);
      if (verified.identity.groups.some((g) => groups.has(g))) return { subject: verified.identity.subject };
      refuse(res, 403, new DrawbridgeError('admin.forbidden', `${verified.identity.subject} is in no admin.operators group, so may not reload.`));
      return null;
    } catch (error) {
      if (!isDrawbridgeError(error)) throw error;
      refuse(res, 401, new DrawbridgeError('admin.forbidden', `The bearer token was refused: ${error.code}.`), {
        'WWW-Authenticate': 'Bearer error="invalid_token"',
      });
      return null;
    }
  };

  return {
    async serve(req, res, url) {
      if (url.pathname !== RELOAD_PATH) return false;
      if (req.method !== 'POST') {
        res.writeHead(405, { Allow: 'POST', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return true;
      }
      const type = req.headers['content-type'] ?? '';
      // Sec-Fetch-Site, not every Sec-Fetch-* header: Node's own fetch sends Sec-Fetch-Mode.
      const site = req.headers['sec-fetch-site'];
      const browser = req.headers.origin !== undefined || (site !== undefined && site !== 'none') || SIMPLE_TYPES.test(type);
      // The body is never read: nothing in it is used.
      req.resume();
      if (browser) {
        refuse(res, 403, new DrawbridgeError('admin.forbidden', 'POST /reload refuses requests a browser sent (Origin, Sec-Fetch-Site, or a form body).'));
        return true;
      }
      const who = await operator(req, res);
      if (who === null) return true;
      const outcome = await gateway.reload({ via: 'admin', operator: who.subject });
      send(res, outcome.result === 'applied' ? 200 : 409, reloadAnswer(outcome));
      return true;
    },
  };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}
