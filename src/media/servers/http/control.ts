/**
 * Run-time control of the media service (used by the `stream.*` ops, so pulls and the rest outlive the CLI):
 *   GET|POST /api/pulls · DELETE /api/pulls/<path>
 *   GET|POST /api/recordings · DELETE /api/recordings/<path>
 *   GET|POST /api/restreams · DELETE /api/restreams?path=<path>&to=<url>
 * Writes need `Authorization: Bearer <control token>` (the supervisor's); without a token they are allowed only
 * on a loopback listener (a media server started on its own, as in tests).
 */
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { AmiError, toAmiError } from "../../../core/errors.ts";
import type { Pulls } from "../../pulls.ts";
import type { Recordings } from "../../recordings.ts";
import type { Restreams } from "../../restreams.ts";
import { json, type Reply } from "./reply.ts";

export interface ControlSource {
  pulls: Pulls;
  recordings: Recordings;
  restreams: Restreams;
  token: string | undefined;
  loopback: boolean;
}

export const CONTROL_PREFIXES = ["/api/pulls", "/api/recordings", "/api/restreams"] as const;

const MAX_BODY = 64 * 1024;

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new AmiError("AMI_INVALID_INPUT", "request body too large");
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {}
  throw new AmiError("AMI_INVALID_INPUT", "the body must be a JSON object");
}

const str = (b: Record<string, unknown>, k: string, required = true): string | undefined => {
  const v = b[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v === "") throw new AmiError("AMI_INVALID_INPUT", `'${k}' is required (a string)`);
  return v;
};

function authorized(req: IncomingMessage, c: ControlSource): boolean {
  if (!c.token) return c.loopback;
  const got = Buffer.from(req.headers.authorization ?? "");
  const want = Buffer.from(`Bearer ${c.token}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

export async function controlRoute(req: IncomingMessage, url: URL, c: ControlSource): Promise<Reply> {
  try {
    return await route(req, url, c);
  } catch (e) {
    const err = toAmiError(e);
    return json(err.status, err.toJSON());
  }
}

async function route(req: IncomingMessage, url: URL, c: ControlSource): Promise<Reply> {
  const m = req.method ?? "GET";
  const [, , kind, ...rest] = url.pathname.split("/");
  const path = rest.map(decodeURIComponent).join("/");
  if (m !== "GET" && m !== "HEAD" && !authorized(req, c))
    return json(401, { errcode: "M_MISSING_TOKEN", error: "a bearer token is required to change the media service" });
  if (kind === "pulls") {
    if (m === "GET" && !path) return json(200, { pulls: c.pulls.list() });
    if (m === "POST" && !path) {
      const b = await body(req);
      return json(201, c.pulls.start(str(b, "source") as string, str(b, "path", false)));
    }
    if (m === "DELETE" && path) return json(200, await c.pulls.stop(path));
  }
  if (kind === "recordings") {
    if (m === "GET" && !path) return json(200, { recordings: c.recordings.list() });
    if (m === "POST" && !path) return json(201, c.recordings.start(str(await body(req), "path") as string));
    if (m === "DELETE" && path) return json(200, await c.recordings.stop(path));
  }
  if (kind === "restreams" && !path) {
    const q = url.searchParams;
    if (m === "GET") return json(200, { restreams: c.restreams.list(q.get("path") ?? undefined) });
    if (m === "POST") {
      const b = await body(req);
      return json(201, c.restreams.add(str(b, "path") as string, str(b, "to") as string));
    }
    if (m === "DELETE") {
      const p = q.get("path");
      const to = q.get("to");
      if (!p || !to) throw new AmiError("AMI_INVALID_INPUT", "'path' and 'to' query parameters are required");
      return json(200, await c.restreams.remove(p, to));
    }
  }
  return json(405, { errcode: "M_UNRECOGNIZED", error: `${m} ${url.pathname} is not supported` });
}
