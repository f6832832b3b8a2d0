// The credential the gateway injects into an outgoing HTTP request (bearer
// token, basic auth, an API-key header or query parameter, or a TLS client
// certificate), already resolved from its secret reference by the caller, and
// the scrubber that keeps it out of every text the agent or the journal sees:
// the value itself and the encodings it travels in (URL-encoded, form-encoded,
// base64, base64url). The query-parameter key is added to the wire URL only, a
// copy the transport never returns.

export type ResolvedCredential =
  | { readonly kind: 'bearer'; readonly token: string }
  | { readonly kind: 'basic'; readonly username: string; readonly password: string }
  | { readonly kind: 'header'; readonly name: string; readonly value: string }
  | { readonly kind: 'query'; readonly name: string; readonly value: string }
  | { readonly kind: 'client_certificate'; readonly cert: string; readonly key: string; readonly passphrase?: string };

/** What TLS is given for a client certificate. */
export interface TlsClientAuth {
  readonly cert: string;
  readonly key: string;
  readonly passphrase?: string;
}

/** A request as it leaves the gateway: the URL with the query key, the headers with the credential. */
export interface WireRequest {
  readonly url: URL;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly tls: TlsClientAuth | null;
}

/** The header names a credential sets; the agent's own headers of those names are dropped so there is one. */
function credentialHeaderName(credential: ResolvedCredential): string | null {
  switch (credential.kind) {
    case 'bearer':
    case 'basic':
      return 'authorization';
    case 'header':
      return credential.name.toLowerCase();
    case 'query':
    case 'client_certificate':
      return null;
  }
}

/** The request with the credential applied; `url` is left unchanged (the wire URL is a copy). */
export function applyCredential(url: URL, headers: ReadonlyArray<readonly [string, string]>, credential: ResolvedCredential | null): WireRequest {
  const wireUrl = new URL(url.href);
  if (credential === null) return { url: wireUrl, headers: [...headers], tls: null };
  const replaced = credentialHeaderName(credential);
  const out = headers.filter(([name]) => name.toLowerCase() !== replaced);
  switch (credential.kind) {
    case 'bearer':
      out.push(['Authorization', `Bearer ${credential.token}`]);
      break;
    case 'basic':
      out.push(['Authorization', `Basic ${Buffer.from(`${credential.username}:${credential.password}`, 'utf8').toString('base64')}`]);
      break;
    case 'header':
      out.push([credential.name, credential.value]);
      break;
    case 'query':
      wireUrl.searchParams.set(credential.name, credential.value);
      break;
    case 'client_certificate':
      return {
        url: wireUrl,
        headers: out,
        tls: { cert: credential.cert, key: credential.key, ...(credential.passphrase === undefined ? {} : { passphrase: credential.passphrase }) },
      };
  }
  return { url: wireUrl, headers: out, tls: null };
}

/** A URL without the credential's query parameter: what may be shown (a server may echo the key into a Location). */
export function withoutCredential(url: URL, credential: ResolvedCredential | null): URL {
  const copy = new URL(url.href);
  if (credential?.kind === 'query') copy.searchParams.delete(credential.name);
  return copy;
}

/** The secret strings of a credential (a basic user name is not secret, its pair with the password is). */
function secretValues(credential: ResolvedCredential): string[] {
  switch (credential.kind) {
    case 'bearer':
      return [credential.token];
    case 'basic':
      return [credential.password, `${credential.username}:${credential.password}`];
    case 'header':
    case 'query':
      return [credential.value];
    case 'client_certificate':
      return [credential.key, ...(credential.passphrase === undefined ? [] : [credential.passphrase])];
  }
}

/** Every form a secret may appear in, longest first so a longer form is replaced whole. */
function forms(secret: string): string[] {
  const b64 = Buffer.from(secret, 'utf8').toString('base64');
  const all = new Set([
    secret,
    encodeURIComponent(secret),
    new URLSearchParams({ k: secret }).toString().slice(2),
    b64,
    b64.replace(/=+$/, ''),
    Buffer.from(secret, 'utf8').toString('base64url'),
    JSON.stringify(secret).slice(1, -1),
  ]);
  return [...all].filter((form) => form.length > 0).sort((a, b) => b.length - a.length);
}

export const CREDENTIAL_PLACEHOLDER = '[credential]';

/** A function replacing every form of the credential's secrets in a text with [credential]; identity without a credential. */
export function credentialScrubber(credential: ResolvedCredential | null): (text: string) => string {
  if (credential === null) return (text) => text;
  const needles = [...new Set(secretValues(credential).flatMap(forms))].sort((a, b) => b.length - a.length);
  if (needles.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const needle of needles) out = out.split(needle).join(CREDENTIAL_PLACEHOLDER);
    return out;
  };
}
