/** One error renderer and JSON reply for every listener. */
import type { ServerResponse } from "node:http";
import { type AmiError, toAmiError } from "../errors.ts";

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  const h: Record<string, string | number> = {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  };
  // A body we did not read to its end (too large, malformed) must not be parsed as the next request.
  if (!res.req.complete) h.Connection = "close";
  res.writeHead(status, h);
  res.end(res.req.method === "HEAD" ? undefined : text);
}

/** Any error as `{ errcode, error }` with its status; unknown errors are opaque 500s (no stack reaches a client). */
export function sendError(res: ServerResponse, e: unknown, headers: Record<string, string> = {}): AmiError {
  const err = toAmiError(e);
  const h = { ...headers };
  if (typeof err.extra.retry_after_ms === "number")
    h["Retry-After"] = String(Math.ceil(err.extra.retry_after_ms / 1000));
  sendJson(res, err.status, err.toJSON(), h);
  return err;
}
