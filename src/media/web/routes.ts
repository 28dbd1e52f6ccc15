/** Routing for the player pages: `/`, `/<path>/` and `/_ami/player/<file>`; the rest is not ours. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../../core/errors.ts";
import { sendError } from "../../core/http/reply.ts";
import { safeDecode, type Target } from "../../core/http/target.ts";
import type { MediaAuth } from "../auth/auth.ts";
import { readAllowed } from "../auth/http.ts";
import { validPath } from "../hub.ts";
import { reply } from "../servers/http/reply.ts";
import { type ListedStream, listPage, PLAYER_PREFIX, playerAsset, playerPage } from "./pages.ts";

export interface WebSource {
  streams(): ListedStream[];
  /** Whether `/<path>/whep` is served (WebRTC playback). */
  whep(path: string): boolean;
  auth: MediaAuth | undefined;
  /** Whether the player joins the path's viewer mesh (media.mesh on, the path open to everyone). */
  mesh?(path: string): boolean;
  /** The HLS playlist the player loads: master.m3u8 on a path with an ABR ladder; default index.m3u8. */
  hlsEntry?(path: string): string;
  /** The MPD dash.js loads for `path` (master.mpd when it has an ABR ladder). */
  dashEntry?(path: string): string;
}

/**
 * True when the request was a page or player asset (answered). The pages read nothing from /api: the list
 * page is rendered here from path, liveness and size only, and the player talks to playlists and WHEP.
 */
export function webRoute(
  req: IncomingMessage,
  res: ServerResponse,
  url: Target,
  src: WebSource,
): boolean | Promise<boolean> {
  const p = url.pathname;
  if (p === "/") {
    // Only streams anyone may watch are listed: signed or closed paths are not advertised.
    const open = (s: ListedStream) => !src.auth || src.auth.rule(s.path).read === "any";
    reply(res, listPage(src.streams().filter(open)));
    return true;
  }
  if (p.startsWith(PLAYER_PREFIX)) {
    const asset = playerAsset(p.slice(PLAYER_PREFIX.length));
    if (asset) reply(res, asset);
    else sendError(res, new AmiError("M_NOT_FOUND", "no such file"));
    return true;
  }
  if (!p.endsWith("/")) return false;
  const parts = p.slice(1, -1).split("/").map(safeDecode);
  if (parts.some((x) => x === null)) return false;
  const path = parts.join("/");
  if (!validPath(path)) return false;
  const page = (): true => {
    reply(
      res,
      playerPage(path, {
        whep: src.whep(path),
        mesh: src.mesh?.(path) ?? false,
        query: url.search,
        hls: src.hlsEntry?.(path),
        dash: src.dashEntry?.(path),
      }),
    );
    return true;
  };
  if (!src.auth) return page();
  return readAllowed(req, res, url, path, src.auth, "page").then((ok) => (ok ? page() : true));
}
