/** Writing an HTTP answer: every response carries CORS headers (players run on other origins). */
import type { ServerResponse } from "node:http";

export interface Reply {
  status: number;
  type: string;
  body: Buffer;
  cache?: string;
}

export const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, OPTIONS",
  "access-control-allow-headers": "*",
  "access-control-expose-headers": "*",
} as const;

export function reply(res: ServerResponse, r: Reply): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(r.status, {
    ...CORS,
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
