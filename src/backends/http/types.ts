// The http_request backend's shared vocabulary: methods, operations, the
// credential and dry-run forms a connection declares, and the request's own
// facts (ParsedRequest.detail) that policy, OpenAPI matching and the transport
// read. Types and constants only.

import type { SecretRef } from '../../config/secrets.js';

export const HTTP_METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Methods that only read (RFC 9110 safe methods, TRACE excluded: it is refused). */
export const READ_METHODS: readonly HttpMethod[] = ['GET', 'HEAD', 'OPTIONS'];

/** The lower-case methods, and `undocumented`: a request its connection's OpenAPI document does not name. */
export const HTTP_OPERATIONS = ['get', 'head', 'options', 'post', 'put', 'patch', 'delete', 'undocumented'] as const;
export type HttpOperation = (typeof HTTP_OPERATIONS)[number];

/** How the gateway authenticates to the API: injected by the transport, never shown. */
export type HttpCredential =
  | { readonly kind: 'none' }
  | { readonly kind: 'bearer'; readonly token: SecretRef }
  | { readonly kind: 'basic'; readonly username: string; readonly password: SecretRef }
  | { readonly kind: 'header'; readonly name: string; readonly value: SecretRef }
  | { readonly kind: 'query'; readonly name: string; readonly value: SecretRef }
  | { readonly kind: 'client_certificate'; readonly cert: SecretRef; readonly key: SecretRef; readonly ca?: SecretRef };

/** How the API is asked for a dry run of a write (for approval previews). Header names are lower-case. */
export type HttpDryRun =
  { readonly kind: 'header'; readonly name: string; readonly value: string } | { readonly kind: 'query'; readonly name: string; readonly value: string };

/** What the body is: sent as given (text) or serialised (JSON, Content-Type application/json unless the agent set one). */
export type HttpBody =
  { readonly kind: 'text'; readonly text: string; readonly bytes: number } | { readonly kind: 'json'; readonly text: string; readonly bytes: number };

/**
 * Whether the request was matched against the connection's OpenAPI document:
 * `unchecked` until the connection's resolve ran (an offline explain), `no-document`
 * when the connection has none.
 */
export type HttpDocumentation =
  | { readonly kind: 'unchecked' }
  | { readonly kind: 'no-document' }
  | { readonly kind: 'documented'; readonly operationId: string | null; readonly template: string; readonly parameters: Readonly<Record<string, string>> }
  | { readonly kind: 'undocumented' };

/** The backend's own facts about a request (ParsedRequest.detail). */
export interface HttpDetail {
  readonly method: HttpMethod;
  /** The normalised path as the server will see it decoded: starts with `/`, dot segments resolved. What `paths:` rules match. */
  readonly path: string;
  /** The decoded segments of `path` (a trailing slash is a last empty segment). */
  readonly segments: readonly string[];
  /** `path` percent-encoded again by the gateway, to append to the base URL's path. */
  readonly encodedPath: string;
  /** Query parameters in the order given (names unique), decoded. */
  readonly query: ReadonlyArray<readonly [name: string, value: string]>;
  /** `query` encoded by the gateway (`a=1&b=x%20y`), or '' when there is none. */
  readonly queryString: string;
  /** Agent headers, names lower-case, unique. */
  readonly headers: ReadonlyArray<readonly [name: string, value: string]>;
  readonly body: HttpBody | null;
  readonly documentation: HttpDocumentation;
}
