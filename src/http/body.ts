// Reads a request body into memory under a hard cap: a declared Content-Length
// over the cap is refused before anything is read, and a body that grows past
// it while streaming stops being read at once. A body over the cap is refused
// with 413 before it is a message, so it is no call and has no journal entry.
// Within the cap any nesting depth is fine: V8's JSON.parse is iterative, the
// SDK's message schema looks one level deep, and the pipeline bounds the rest
// (src/journal/bounded.ts; a 100,000-deep tools/call is journaled and refused, see
// test/journal/every-call.test.ts). Any parse failure is a 400 parse error.

import type { IncomingMessage } from 'node:http';

export const DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024;

export type BodyResult =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly status: 400 | 413; readonly message: string; readonly code: number };

function tooLarge(limit: number): BodyResult {
  return { ok: false, status: 413, code: -32000, message: `Payload Too Large: the request body exceeds ${limit} bytes.` };
}

/** The body parsed as JSON; 413 over `limit` bytes, 400 (JSON-RPC parse error) when it is not JSON. */
export async function readJsonBody(req: IncomingMessage, limit: number = DEFAULT_MAX_BODY_BYTES): Promise<BodyResult> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  const over = await new Promise<boolean>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        resolve(true);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(false);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  });
  if (over) return tooLarge(limit);
  try {
    return { ok: true, value: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
  } catch {
    return { ok: false, status: 400, code: -32700, message: 'Parse error: Invalid JSON' };
  }
}
