/** Routing for the player pages: `/`, `/<path>/` and `/_ami/player/<file>`; the rest is not ours. */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { MediaAuth } from "../auth/auth.ts";
import { readAllowed } from "../auth/http.ts";
import { validPath } from "../hub.ts";
import { json, reply } from "../servers/http/reply.ts";
import { type ListedStream, listPage, PLAYER_PREFIX, playerAsset, playerPage } from "./pages.ts";

export interface WebSource {
  streams(): ListedStream[];
  /** Whether `/<path>/whep` is served (WebRTC playback). */
  whep(path: string): boolean;
  auth: MediaAuth | undefined;
  /** The HLS playlist the player loads: master.m3u8 on a path with an ABR ladder; default index.m3u8. */
  hlsEntry?(path: string): string;
}

/** True when the request was a page or player asset (answered or being answered). */
export function webRoute(req: IncomingMessage, res: ServerResponse, url: URL, src: WebSource): boolean {
  const p = url.pathname;
  if (p === "/") {
    // Only streams anyone may watch are listed: signed or closed paths are not advertised.
    const open = (s: ListedStream) => !src.auth || src.auth.rule(s.path).read === "any";
    reply(res, listPage(src.streams().filter(open)));
    return true;
  }
  if (p.startsWith(PLAYER_PREFIX)) {
    reply(
      res,
      playerAsset(p.slice(PLAYER_PREFIX.length)) ?? json(404, { errcode: "M_NOT_FOUND", error: "no such file" }),
    );
    return true;
  }
  if (!p.endsWith("/")) return false;
  let path: string;
  try {
    path = p.slice(1, -1).split("/").map(decodeURIComponent).join("/");
  } catch {
    return false;
  }
  if (!validPath(path)) return false;
  const page = () =>
    reply(res, playerPage(path, { whep: src.whep(path), query: url.search, hls: src.hlsEntry?.(path) }));
  if (!src.auth) page();
  else
    readAllowed(req, res, url, path, src.auth, "page").then(
      (ok) => ok && page(),
      () => reply(res, json(500, { errcode: "M_UNKNOWN", error: "internal error" })),
    );
  return true;
}
