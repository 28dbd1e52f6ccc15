/** One error renderer and JSON reply for every listener. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { type AmiError, toAmiError } from "../errors.ts";

/** Bodies up to this size, framed by Content-Length and untouched, are drained instead of closing the connection. */
const DRAIN_MAX_BYTES = 4 * 1024 * 1024;

function drainable(req: IncomingMessage): boolean {
  const declared = Number(req.headers["content-length"] ?? 0);
  return (
    !req.destroyed &&
    req.headers["transfer-encoding"] === undefined &&
    declared <= DRAIN_MAX_BYTES &&
    req.readableFlowing === null
  );
}

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
  // A body we did not read to its end (too large, malformed) must not be parsed as the next request: a short one
  // of declared length that nobody started reading is drained once the reply is sent (Node reads and drops it, as
  // nginx's lingering close does, so a client still sending it reads the reply instead of EPIPE); any other closes.
  if (!res.req.complete && !drainable(res.req)) h.Connection = "close";
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
