/**
 * Playlists and manifests rendered once per change of their timeline, served from memory. A stream's media
 * playlist (plain and delta), multivariant playlist and MPD only change when the timeline does (a new part or
 * segment, a pause, an end, a new publisher: `CmafTimeline.version`), while every player polls them, most of them
 * at once right after each change (LL-HLS blocking reloads wake together). So each variant is rendered on its
 * first request after a change into one Buffer with its headers (Content-Type, Content-Length, Cache-Control,
 * ETag) precomputed; the requests that follow, until the next change, are answered with that Buffer.
 *
 * A variant is named by a key (`media`, `media-skip`, `index`, `mpd <clock url>`...); at most MAX_KEYS per
 * timeline are kept (keys that carry request data, like the MPD's clock URL from the Host header, cannot grow
 * it). `maxAgeMs` bounds the age of a variant that shows the time it was rendered (the MPD's publishTime and
 * direct UTCTiming clock).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { PrebuiltResponse } from "../../../core/http/fast.ts";
import type { CmafTimeline } from "../../protocols/fmp4/timeline.ts";

export interface Rendered {
  body: Buffer;
  etag: string;
  /** The answer's headers, in `writeHead`'s object form, built once. */
  headers: Record<string, string>;
  /** When it was rendered (ms, performance.now()). */
  at: number;
  /** Its complete answers for the kit's fast path, built on first use (`fastAnswer`). */
  fast?: { ok: PrebuiltResponse; notModified: PrebuiltResponse };
}

const MAX_KEYS = 16;
/** ETags are unique per rendering: this process (start time) and a counter. */
const EPOCH = Date.now().toString(36);
let renders = 0;

interface Entry {
  version: number;
  variants: Map<string, Rendered>;
}

const byTimeline = new WeakMap<CmafTimeline, Entry>();

/** The cached rendering of `key` at the timeline's current version, rendered now if there is none. */
export function rendered(
  t: CmafTimeline,
  key: string,
  type: string,
  render: () => string,
  maxAgeMs = Number.POSITIVE_INFINITY,
): Rendered {
  let e = byTimeline.get(t);
  if (!e || e.version !== t.version) {
    e = { version: t.version, variants: new Map() };
    byTimeline.set(t, e);
  }
  const now = performance.now();
  const hit = e.variants.get(key);
  if (hit && now - hit.at <= maxAgeMs) return hit;
  const body = Buffer.from(render());
  const etag = `"${EPOCH}-${(++renders).toString(36)}"`;
  const r: Rendered = {
    body,
    etag,
    at: now,
    headers: {
      "content-type": type,
      "content-length": String(body.length),
      "cache-control": "no-cache",
      etag,
    },
  };
  e.variants.delete(key);
  if (e.variants.size >= MAX_KEYS) e.variants.delete(e.variants.keys().next().value as string);
  e.variants.set(key, r);
  return r;
}

/** The client already has this rendering (If-None-Match names its ETag). */
export function notModified(inm: string | undefined, etag: string): boolean {
  return inm !== undefined && (inm === etag || inm.split(",").some((v) => v.trim() === etag));
}

/**
 * The complete answer to a request on the kit's fast path: 304 when the client already has the rendering, else
 * the rendering (its head only for HEAD). `extra` (the route's CORS headers) must be the same for every caller.
 */
export function fastAnswer(
  method: "GET" | "HEAD",
  inm: string | undefined,
  r: Rendered,
  extra: readonly (readonly [string, string])[],
): Buffer {
  r.fast ??= {
    ok: new PrebuiltResponse(
      200,
      [
        ...extra,
        ["Content-Type", r.headers["content-type"] as string],
        ["Cache-Control", "no-cache"],
        ["ETag", r.etag],
      ],
      r.body,
    ),
    notModified: new PrebuiltResponse(304, [...extra, ["ETag", r.etag], ["Cache-Control", "no-cache"]]),
  };
  return (notModified(inm, r.etag) ? r.fast.notModified : r.fast.ok).bytes(method);
}

/** Answers with a rendering: 304 when the client already has it (If-None-Match), else the Buffer (none for HEAD). */
export function sendRendered(req: IncomingMessage, res: ServerResponse, r: Rendered): number {
  if (res.headersSent || res.destroyed) return 0;
  if (notModified(req.headers["if-none-match"], r.etag)) {
    res.writeHead(304, { etag: r.etag, "cache-control": "no-cache" });
    res.end();
    return 0;
  }
  res.writeHead(200, r.headers);
  if (req.method === "HEAD") {
    res.end();
    return 0;
  }
  res.end(r.body);
  return r.body.length;
}
