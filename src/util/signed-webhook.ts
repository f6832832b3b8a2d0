// Outbound HTTP deliveries the gateway makes on its own (approval notifications, audit streaming):
// the URL rule (https, or http only to a loopback address), the HMAC-SHA256 signature scheme of
// Drawbridge's signed webhooks, and one POST attempt with a timeout that reads only the status.
// Shared so both deliverers sign and check URLs the same way; retries and backoff stay with each
// caller (they differ: notifications give up, the audit stream never skips a record).

import { createHmac } from 'node:crypto';

/** The signature header's value: `sha256=` + hex HMAC-SHA256 over `<timestamp>.<raw body>`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`;
}

/** The signed headers of a webhook body: x-drawbridge-timestamp (unix seconds) and x-drawbridge-signature. */
export function signedHeaders(secret: string, now: Date, body: string): Record<string, string> {
  const timestamp = String(Math.floor(now.getTime() / 1000));
  return { 'x-drawbridge-timestamp': timestamp, 'x-drawbridge-signature': webhookSignature(secret, timestamp, body) };
}

/** localhost, 127.0.0.0/8 or ::1 (brackets allowed): where plain http never leaves the machine. */
export function isLoopbackHostname(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** Why a delivery may not go to `url` (null: it may): https only, http only to a loopback address. */
export function deliveryUrlProblem(url: URL): string | null {
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHostname(url.hostname))) return null;
  return `the URL must use https:// (http:// only to a loopback address); it is ${url.protocol}//${url.host}`;
}

export type PostAttempt =
  { readonly ok: true; readonly status: number; readonly body: Uint8Array | null } | { readonly ok: false; readonly retry: boolean; readonly error: string };

export interface PostOptions {
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
  /** Resolves when the attempt has waited too long (default: a real timer of timeoutMs); injectable for virtual time. */
  readonly deadline?: (ms: number) => Promise<void>;
  /** Aborts the attempt (the gateway closing). */
  readonly signal?: AbortSignal;
  /** Read at most this many bytes of a 2xx answer (an OTLP response); 0 (default): the body is not read. */
  readonly readAnswer?: number;
}

/**
 * One POST: ok on 2xx; a failure says whether retrying can help (5xx, 408, 429, network errors and
 * timeouts can; another 4xx says the request itself is wrong). Redirects are not followed. Error
 * texts never carry the URL's path or query (for a Slack hook, that is the credential).
 */
export async function postOnce(options: PostOptions): Promise<PostAttempt> {
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const { url, timeoutMs } = options;
  try {
    const answered = fetch(url, { method: 'POST', headers: options.headers, body: options.body, redirect: 'manual', signal: abort.signal }).then(
      async (response) => {
        const limit = options.readAnswer ?? 0;
        const ok = response.status >= 200 && response.status < 300;
        // Only the status matters unless asked: a receiver cannot make the gateway buffer a large answer.
        if (!ok || limit === 0) {
          await response.body?.cancel().catch(() => undefined);
          return { status: response.status, body: null };
        }
        const body = new Uint8Array(await response.arrayBuffer());
        return { status: response.status, body: body.byteLength > limit ? null : body };
      },
    );
    const timedOut = deadline(options, abort.signal).then(() => 'timeout' as const);
    const answer = await Promise.race([answered, timedOut]);
    if (answer === 'timeout') {
      answered.catch(() => undefined);
      return { ok: false, retry: true, error: `no answer within ${timeoutMs} ms` };
    }
    if (answer.status >= 200 && answer.status < 300) return { ok: true, status: answer.status, body: answer.body };
    return { ok: false, retry: answer.status >= 500 || answer.status === 408 || answer.status === 429, error: `HTTP ${answer.status}` };
  } catch (error) {
    return { ok: false, retry: true, error: scrubUrl(errorText(error), url) };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    abort.abort();
  }
}

function deadline(options: PostOptions, signal: AbortSignal): Promise<void> {
  if (options.deadline) return options.deadline(options.timeoutMs);
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.timeoutMs);
    timer.unref();
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
  });
}

/** An error's message, with the network code of its cause (ECONNREFUSED) when there is one. */
export function errorText(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const base = (error as Error | null)?.message ?? String(error);
  return typeof cause?.code === 'string' ? `${base} (${cause.code})` : base;
}

/** An error message must not carry the URL's path or query: for a Slack hook, that is the credential. */
export function scrubUrl(text: string, url: URL): string {
  let out = text.split(url.href).join(`${url.origin}/…`);
  if (url.pathname.length > 1) out = out.split(url.pathname).join('/…');
  if (url.search) out = out.split(url.search).join('');
  return out;
}
