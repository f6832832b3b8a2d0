// DNS-rebinding protection for loopback binds: a page on evil.example that
// rebinds its name to 127.0.0.1 reaches the gateway with `Host: evil.example`
// (and its own Origin), so on loopback only the loopback names and the public
// URL's host are served. Non-loopback binds sit behind a proxy that owns Host.

import type { IncomingMessage } from 'node:http';

interface HostPolicy {
  /** Host header values served; null: any (not a loopback bind). */
  readonly allowedHosts: readonly string[] | null;
  /** Origin header values served when a request carries one; null: any. */
  readonly allowedOrigins: readonly string[] | null;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

export function hostPolicy(bindHost: string, port: number, publicUrl: string): HostPolicy {
  if (!isLoopbackHost(bindHost)) return { allowedHosts: null, allowedOrigins: null };
  const bare = bindHost.replace(/^\[|\]$/g, '');
  const hosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, bare.includes(':') ? `[${bare}]:${port}` : `${bare}:${port}`]);
  const pub = new URL(publicUrl);
  hosts.add(pub.host);
  const origins = new Set([...hosts].map((h) => `http://${h}`));
  origins.add(pub.origin);
  return { allowedHosts: [...hosts], allowedOrigins: [...origins] };
}

/**
 * Why this request is refused under the policy, or null when it may go on.
 * `anyOrigin`: the request is for a public document any web page may read (served with
 * CORS `*`), so its Origin is not checked; its Host still is, which is what stops rebinding.
 */
export function hostRefusal(policy: HostPolicy, req: IncomingMessage, options: { readonly anyOrigin?: boolean } = {}): string | null {
  if (policy.allowedHosts) {
    const host = req.headers.host;
    if (!host || !policy.allowedHosts.includes(host.toLowerCase())) return `Invalid Host header: ${host ?? '(none)'}`;
  }
  if (policy.allowedOrigins && options.anyOrigin !== true) {
    const origin = req.headers.origin;
    if (origin !== undefined && !policy.allowedOrigins.includes(origin.toLowerCase())) return `Invalid Origin header: ${origin}`;
  }
  return null;
}
