/**
 * Writing a non-error HTTP answer (playlists, segments, pages, JSON). CORS headers are not written here: the
 * server sets them per route before dispatch (`public` for what players read, none for /api), so no route can
 * forget or widen them. Errors go through the kit's one renderer (`sendError`).
 */
import type { ServerResponse } from "node:http";

export interface Reply {
  status: number;
  type: string;
  body: Buffer;
  cache?: string;
}

export function reply(res: ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(r.status, {
    "content-type": r.type,
    "content-length": r.body.length,
    "cache-control": r.cache ?? "no-store",
  });
  res.end(res.req.method === "HEAD" ? undefined : r.body);
}

export const json = (status: number, value: unknown): Reply => ({
  status,
  type: "application/json",
  body: Buffer.from(JSON.stringify(value)),
});
