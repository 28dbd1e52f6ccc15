/**
 * The read check on HTTP outputs (playlists, manifests, segments, parts, HTTP-FLV, WHEP): 401/403 with a JSON error.
 * A signed playlist's own URIs are relative (`stream.m3u8`, `seg12.m4s`) and URL resolution drops the query,
 * so when a playlist or manifest is served to a signed request its URIs get the same `exp`/`sig` appended.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { AmiError } from "../../core/errors.ts";
import { bearerToken } from "../../core/http/bearer.ts";
import { sendError } from "../../core/http/reply.ts";
import { safeDecode, type Target } from "../../core/http/target.ts";
import type { MediaAuth } from "./auth.ts";

const refuse = (res: ServerResponse, status: number, reason: string) =>
  sendError(res, new AmiError(status === 401 ? "M_MISSING_TOKEN" : "M_FORBIDDEN", reason, {}, status));

/** True when the request may read `path`; otherwise the answer has been sent. */
export async function readAllowed(
  req: IncomingMessage,
  res: ServerResponse,
  url: Target,
  path: string,
  auth: MediaAuth,
  protocol = "hls",
): Promise<boolean> {
  const d = await auth.check({
    action: "read",
    path,
    protocol,
    ip: req.socket.remoteAddress ?? "",
    key: url.searchParams.get("key") ?? undefined,
    query: url.searchParams,
  });
  if (d.ok) {
    // Only HLS/DASH answers are buffered playlists to rewrite; HTTP-FLV and WHEP responses are left alone.
    if (protocol === "hls" && url.searchParams.has("sig")) carrySignature(res, url.searchParams);
    return true;
  }
  refuse(res, d.status, d.reason);
  return false;
}

const withQuery = (uri: string, q: string) =>
  /^[a-z]+:|^\//i.test(uri) ? uri : `${uri}${uri.includes("?") ? "&" : "?"}${q}`;

export function signPlaylist(text: string, q: string): string {
  return text
    .split("\n")
    .map((l) =>
      l && !l.startsWith("#")
        ? withQuery(l, q)
        : l.replace(/URI="([^"]*)"/g, (_m, u: string) => `URI="${withQuery(u, q)}"`),
    )
    .join("\n");
}

export function signManifest(xml: string, q: string): string {
  const amp = q.replace(/&/g, "&amp;");
  return xml.replace(
    /\b(media|initialization)="([^"]*)"/g,
    (_m, a: string, u: string) => `${a}="${withQuery(u, amp)}"`,
  );
}

/** Rewrite the (single, buffered) playlist or manifest body this response is about to send. */
function carrySignature(res: ServerResponse, params: URLSearchParams): void {
  const q = new URLSearchParams({ exp: params.get("exp") ?? "", sig: params.get("sig") ?? "" }).toString();
  const writeHead = res.writeHead.bind(res) as (s: number, h?: OutgoingHttpHeaders) => ServerResponse;
  const end = res.end.bind(res) as (b?: Buffer) => ServerResponse;
  let held: { status: number; headers: OutgoingHttpHeaders } | undefined;
  res.writeHead = ((status: number, headers?: OutgoingHttpHeaders) => {
    held = { status, headers: { ...headers } };
    return res;
  }) as typeof res.writeHead;
  res.end = ((body?: Buffer) => {
    const h = held ?? { status: res.statusCode, headers: {} };
    const type = String(h.headers["content-type"] ?? "");
    let b = body;
    if (b && h.status === 200 && type.includes("mpegurl")) b = Buffer.from(signPlaylist(b.toString("utf8"), q));
    else if (b && h.status === 200 && type.includes("dash+xml")) b = Buffer.from(signManifest(b.toString("utf8"), q));
    if (b && h.headers["content-length"] !== undefined) h.headers["content-length"] = b.length;
    writeHead(h.status, h.headers);
    return end(b);
  }) as typeof res.end;
}

/**
 * WHIP (`POST /<path>/whip`, publish: the key as `Authorization: Bearer <key>` as WHIP clients send it, or
 * `?key=`) and WHEP (`POST /<path>/whep`, read). Other WebRTC requests (session PATCH/DELETE) pass: they name
 * a session that was allowed when it was created.
 */
export async function webrtcAllowed(
  req: IncomingMessage,
  res: ServerResponse,
  url: Target,
  auth: MediaAuth,
): Promise<boolean> {
  const m = /^\/(.+)\/(whip|whep)$/.exec(url.pathname);
  if (req.method !== "POST" || !m) return true;
  const parts = (m[1] as string).split("/").map(safeDecode);
  // Malformed percent-encoding: the WebRTC route itself answers 400 for it.
  if (parts.some((p) => p === null)) return true;
  const path = parts.join("/");
  if (m[2] === "whep") return readAllowed(req, res, url, path, auth, "webrtc");
  const bearer = bearerToken(req);
  const d = await auth.check({
    action: "publish",
    path,
    protocol: "webrtc",
    ip: req.socket.remoteAddress ?? "",
    key: bearer ?? url.searchParams.get("key") ?? undefined,
  });
  if (d.ok) return true;
  refuse(res, d.status, d.reason);
  return false;
}
