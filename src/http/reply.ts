// Small HTTP answers of the gateway's own (not the SDK's): a JSON body, and the
// JSON-RPC error object that MCP clients understand on any status.

import type { ServerResponse } from 'node:http';

/** JSON-RPC error code used for transport-level refusals (the SDK uses it for "Session not found" too). */
const TRANSPORT_ERROR = -32001;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(text)),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function jsonRpcError(
  message: string,
  code = TRANSPORT_ERROR,
  data?: Record<string, unknown>,
): { jsonrpc: '2.0'; error: { code: number; message: string; data?: Record<string, unknown> }; id: null } {
  return { jsonrpc: '2.0', error: { code, message, ...(data ? { data } : {}) }, id: null };
}

export function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  message: string,
  options: { code?: number; data?: Record<string, unknown>; headers?: Record<string, string> } = {},
): void {
  sendJson(res, status, jsonRpcError(message, options.code ?? TRANSPORT_ERROR, options.data), options.headers ?? {});
}
