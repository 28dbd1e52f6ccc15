/**
 * Player pages on the media HTTP server: `GET /` lists live streams, `GET /<path>/` plays one (HLS / LL-HLS with
 * hls.js, DASH with dash.js, WebRTC over WHEP when the server has it), `/_ami/player/<file>` serves the players
 * from node_modules (no CDN: nothing here reaches the internet).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Reply } from "../servers/http/reply.ts";

export const PLAYER_PREFIX = "/_ami/player/";

const require = createRequire(import.meta.url);
const FILES: Record<string, () => string> = {
  "hls.min.js": () => require.resolve("hls.js/dist/hls.min.js"),
  // dashjs exports only its bundles' entry point; the smaller media-player-only bundle sits beside it.
  "dash.mediaplayer.min.js": () => join(dirname(require.resolve("dashjs")), "dash.mediaplayer.min.js"),
  "player.js": () => join(import.meta.dirname, "player.js"),
  "mesh.js": () => join(import.meta.dirname, "mesh.js"),
};
const cache = new Map<string, Buffer>();

export function playerAsset(file: string): Reply | undefined {
  const where = FILES[file];
  if (!where) return undefined;
  let body = cache.get(file);
  if (!body) {
    body = readFileSync(where());
    cache.set(file, body);
  }
  return { status: 200, type: "text/javascript; charset=utf-8", body, cache: "max-age=3600" };
}

const esc = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
const href = (path: string) => `/${path.split("/").map(encodeURIComponent).join("/")}/`;

const STYLE = `
  :root { color-scheme: light dark; font-family: system-ui, sans-serif; }
  body { margin: 0 auto; max-width: 60rem; padding: 1rem; line-height: 1.5; }
  video { width: 100%; aspect-ratio: 16 / 9; background: #000; border-radius: .5rem; }
  nav[aria-label="Playback"] { display: flex; flex-wrap: wrap; gap: .5rem; margin: .75rem 0; }
  button { font: inherit; min-height: 2.75rem; padding: .5rem 1rem; border-radius: .5rem; border: 1px solid; }
  button[aria-pressed="true"] { font-weight: bold; outline: 2px solid; }
  a { padding: .25rem 0; display: inline-block; }
  ul { padding-left: 1.25rem; }
`;

function page(title: string, body: string): Reply {
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
  return { status: 200, type: "text/html; charset=utf-8", body: Buffer.from(html), cache: "no-cache" };
}

export interface ListedStream {
  path: string;
  live: boolean;
  width?: number | null;
  height?: number | null;
}

export function listPage(streams: ListedStream[]): Reply {
  const live = streams.filter((s) => s.live);
  const items = live
    .map(
      (s) =>
        `<li><a href="${href(s.path)}">${esc(s.path)}</a>${s.width && s.height ? ` (${s.width}×${s.height})` : ""}</li>`,
    )
    .join("\n");
  return page(
    "Live streams",
    `<main>
<h1>Live streams</h1>
${live.length ? `<ul>\n${items}\n</ul>` : "<p>No stream is live right now.</p>"}
</main>`,
  );
}

/**
 * `hls`, `dash`: what hls.js and dash.js load (master.m3u8 and master.mpd when the path has an ABR ladder;
 * default index.m3u8 and index.mpd).
 */
export function playerPage(
  path: string,
  o: { whep: boolean; query: string; hls?: string; dash?: string; mesh?: boolean },
): Reply {
  const buttons = [
    `<button type="button" data-kind="hls" aria-pressed="false">HLS</button>`,
    `<button type="button" data-kind="dash" aria-pressed="false">DASH</button>`,
    ...(o.whep ? [`<button type="button" data-kind="webrtc" aria-pressed="false">WebRTC</button>`] : []),
  ].join("\n");
  // Only the signature travels to the player (not ?play= or other page parameters).
  const q = new URLSearchParams(o.query);
  const sig = q.has("sig") ? new URLSearchParams({ exp: q.get("exp") ?? "", sig: q.get("sig") ?? "" }).toString() : "";
  return page(
    `${path} · live`,
    `<main data-base="${esc(href(path))}" data-query="${esc(sig)}" data-hls="${esc(o.hls ?? "index.m3u8")}" data-dash="${esc(o.dash ?? "index.mpd")}"${o.mesh ? ` data-mesh="${esc(path)}"` : ""}>
<h1>${esc(path)}</h1>
<video controls muted autoplay playsinline aria-label="Live stream ${esc(path)}"></video>
<nav aria-label="Playback">
${buttons}
</nav>
<p id="status" role="status" aria-live="polite">Loading…</p>
<p><a href="/">All live streams</a></p>
</main>
<script src="${PLAYER_PREFIX}hls.min.js"></script>
<script src="${PLAYER_PREFIX}dash.mediaplayer.min.js"></script>${o.mesh ? `\n<script src="${PLAYER_PREFIX}mesh.js"></script>` : ""}
<script src="${PLAYER_PREFIX}player.js"></script>`,
  );
}
