/**
 * Run-time control of the media service (used by the `stream.*` ops, so pulls and the rest outlive the CLI):
 *   GET|POST /api/pulls · DELETE /api/pulls/<path>
 *   GET|POST /api/recordings · DELETE /api/recordings/<path>
 *   GET|POST /api/restreams · DELETE /api/restreams?path=<path>&to=<url>
 * Reads and writes alike need the token (`apiAllowed`, checked by the server before any /api route): the
 * lists name pull sources and restream destinations. Their credentials are redacted in every answer here.
 */
import type { IncomingMessage } from "node:http";
import { AmiError } from "../../../core/errors.ts";
import { bearerMatches } from "../../../core/http/bearer.ts";
import { readJson } from "../../../core/http/body.ts";
import { allowedHosts, rebindingRefusal } from "../../../core/http/host-check.ts";
import type { Target } from "../../../core/http/target.ts";
import type { Pulls } from "../../pulls.ts";
import type { Recordings } from "../../recordings.ts";
import type { Restreams } from "../../restreams.ts";
import { json, type Reply } from "./reply.ts";
import { decodePath } from "./target-path.ts";

export interface ControlSource {
  pulls: Pulls;
  recordings: Recordings;
  restreams: Restreams;
  /** The control token (the supervisor's); the `stream.*` ops send it. */
  token: string | undefined;
  /** The listener is on a loopback address: with no token configured, local callers are trusted. */
  loopback: boolean;
  /** The listener's bound host (for the Host check of the tokenless loopback case). */
  host?: string;
}

export const CONTROL_PREFIXES = ["/api/pulls", "/api/recordings", "/api/restreams"] as const;

const MAX_BODY = 64 * 1024;

/**
 * Whether this request may use /api. With a token: exactly that bearer token. Without one (a media server
 * started on its own, as in tests): only on a loopback listener, and only with a loopback Host/Origin so a
 * page that re-points its own name at 127.0.0.1 (DNS rebinding) cannot read it either.
 */
export function apiAllowed(req: IncomingMessage, c: ControlSource): AmiError | null {
  if (c.token) {
    if (bearerMatches(req.headers.authorization, c.token)) return null;
    return req.headers.authorization
      ? new AmiError("M_UNKNOWN_TOKEN", "the bearer token is not the media service's control token")
      : new AmiError("M_MISSING_TOKEN", "a bearer token is required for the media API");
  }
  if (!c.loopback) return new AmiError("M_MISSING_TOKEN", "a bearer token is required for the media API");
  const why = rebindingRefusal(req, allowedHosts(c.host ?? "127.0.0.1"));
  return why ? new AmiError("M_FORBIDDEN", why) : null;
}

async function body(req: IncomingMessage): Promise<Record<string, unknown>> {
  const v = await readJson(req, MAX_BODY);
  if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  throw new AmiError("AMI_INVALID_INPUT", "the body must be a JSON object");
}

const str = (b: Record<string, unknown>, k: string, required = true): string | undefined => {
  const v = b[k];
  if (v === undefined && !required) return undefined;
  if (typeof v !== "string" || v === "") throw new AmiError("AMI_INVALID_INPUT", `'${k}' is required (a string)`);
  return v;
};

/** The answer to a control request; bad input and unknown paths throw AmiErrors (rendered by the server). */
export async function controlRoute(req: IncomingMessage, t: Target, c: ControlSource): Promise<Reply> {
  const m = req.method ?? "GET";
  const [, , kind, ...rest] = t.pathname.split("/");
  const path = decodePath(rest.join("/"));
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
    const q = t.searchParams;
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
  throw new AmiError("M_UNRECOGNIZED", `${m} ${t.pathname} is not supported`, {}, 405);
}
