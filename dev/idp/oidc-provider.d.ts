// Types for the parts of oidc-provider (9.x) the development OpenID provider
// uses: the package ships no declarations. Only what dev/idp/ calls is
// described, as loosely as oidc-provider's documentation promises it.

declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  /** The Koa context where a page helper renders (ctx.type, ctx.body). */
  export interface KoaishContext {
    body: unknown;
    type: string;
  }

  /** The Koa context a middleware added with Provider#use sees. */
  export interface MiddlewareContext {
    status: number;
    body: unknown;
    /** Set once the request was routed: `route` is the route's name, e.g. `device_authorization`. */
    readonly oidc?: { readonly route?: string };
  }

  export interface Interaction {
    uid: string;
    prompt: { name: string; reasons: string[]; details: Record<string, unknown> };
    params: Record<string, unknown>;
    session?: { accountId?: string; uid?: string };
    grantId?: string;
  }

  export interface Grant {
    addOIDCScope(scope: string): void;
    addOIDCClaims(claims: string[]): void;
    addResourceScope(resource: string, scope: string): void;
    save(): Promise<string>;
  }

  export interface GrantClass {
    new (init: { accountId: string; clientId: string }): Grant;
    find(id: string): Promise<Grant | undefined>;
  }

  /** The part of oidc-provider's request context the registration policy reads. */
  export interface RegistrationContext {
    readonly oidc?: { readonly body?: Readonly<Record<string, unknown>> };
  }

  export interface Client {
    readonly clientId: string;
    readonly clientName?: string;
  }

  export default class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    readonly Grant: GrantClass;
    readonly Client: { find(id: string): Promise<Client | undefined> };
    callback(): (req: IncomingMessage, res: ServerResponse) => Promise<void>;
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<Interaction>;
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>;
    on(event: 'server_error', listener: (ctx: unknown, err: unknown) => void): this;
    /** A Koa middleware around every request oidc-provider handles. */
    use(middleware: (ctx: MiddlewareContext, next: () => Promise<void>) => Promise<void>): this;
  }

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
    /** error `invalid_redirect_uri` when the description starts with "redirect_uris", else `invalid_client_metadata`. */
    InvalidClientMetadata: new (description: string) => Error;
  };
}
