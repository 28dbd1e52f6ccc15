/**
 * Stream outputs over HTTP: `/<path>/index.m3u8` (multivariant), `/<path>/stream.m3u8` (media playlist, LL-HLS
 * blocking reload with `_HLS_msn`/`_HLS_part`), `/<path>/index.mpd` (DASH), `init.mp4`, `seg<N>.m4s`,
 * `part<N>.m4s` (a preload-hinted part is held until it exists); DASH reads single-track files of the same
 * segments, `t<track>-init.mp4` and `t<track>-<time>.m4s`; on a path with an ABR ladder `master.mpd` puts the
 * renditions' video beside the source's.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError, type ErrorCode } from "../../../core/errors.ts";
import { type FastAnswer, type FastRequest, PrebuiltResponse } from "../../../core/http/fast.ts";
import { sendError } from "../../../core/http/reply.ts";
import { holdOpen, type ListenerLimits } from "../../../core/http/server.ts";
import type { Target } from "../../../core/http/target.ts";
import type { MasterSource, RenditionsSource } from "../../abr/master.ts";
import type { Outputs, PathOutput } from "../../outputs.ts";
import { ladderManifest } from "../../protocols/dash/ladder.ts";
import { anchored, type DashInfo, dashManifest } from "../../protocols/dash/mpd.ts";
import { comingAt, initFile, segmentAt, segmentFile } from "../../protocols/dash/tracks.ts";
import { beyondAdvanceLimit, holdMs } from "../../protocols/hls/advance.ts";
import { segmentBitrates } from "../../protocols/hls/bitrate.ts";
import { mediaPlaylist, multivariantPlaylist, type VariantInfo } from "../../protocols/hls/playlist.ts";
import { parseBase, rebase, wantsRebase } from "../../protocols/hls/rebase.ts";
import { fastAnswer, notModified, type Rendered, rendered, sendRendered } from "./playlist-cache.ts";
import { type Reply, reply } from "./reply.ts";

const TYPES = {
  m3u8: "application/vnd.apple.mpegurl",
  mpd: "application/dash+xml",
  mp4: "video/mp4",
  m4s: "video/iso.segment",
} as const;

/** The server's clock for DASH players (UTCTiming http-iso), answered by the media HTTP server. */
export const TIME_PATH = "/_ami/time";

/** How long a first playlist request waits for the first segment of a just-published stream. */
const FIRST_SEGMENT_WAIT_MS = 8000;

/**
 * BANDWIDTH is the peak segment bit rate of the listed segments (AVERAGE-BANDWIDTH their average), as RFC
 * 8216bis defines them; the publisher's measured bit rate stands in until the segments span half a target.
 */
function variant(out: PathOutput): VariantInfo {
  const f = out.stream.stats.figures();
  const t = out.packager.timeline;
  const sized = t.listed().map((s) => ({ duration: s.duration, bytes: t.byteLength(s) }));
  const rates = segmentBitrates(sized, t.targetDuration);
  return {
    bandwidth: rates?.peak ?? Math.max(f.bitrateKbps * 1000, 1),
    averageBandwidth: rates?.average,
    codecs: [f.videoCodec, f.audioCodec].filter((c): c is string => !!c),
    width: f.width,
    height: f.height,
  };
}

/** Where the server's clock is read (UTCTiming must be an absolute URL), from the request's Host. */
function timeUrl(req: IncomingMessage): string | undefined {
  return clockUrl(req.headers.host, "encrypted" in req.socket && !!req.socket.encrypted);
}

function clockUrl(host: string | undefined, tls: boolean): string | undefined {
  return host && /^[\w.:[\]-]+$/.test(host) ? `${tls ? "https" : "http"}://${host}${TIME_PATH}` : undefined;
}

/** The MPD's codec facts, and where the server's clock is read. */
function dashInfo(req: IncomingMessage, out: PathOutput, clock = timeUrl(req)): DashInfo {
  return dashFacts(out, clock, req.headers["user-agent"]);
}

function dashFacts(out: PathOutput, clock: string | undefined, userAgent: string | undefined): DashInfo {
  const f = out.stream.stats.figures();
  return {
    bandwidth: Math.max(f.bitrateKbps * 1000, 1),
    video: f.videoCodec ? { codec: f.videoCodec, width: f.width, height: f.height } : undefined,
    audio: f.audioCodec ? { codec: f.audioCodec, sampleRate: f.audioSampleRate, channels: f.audioChannels } : undefined,
    timeUrl: clock,
    anchor: anchored(userAgent),
  };
}

/**
 * How stale a cached MPD may be: it shows its render time (publishTime, the direct UTCTiming clock a player
 * without the http-iso one sets its clock by), so it is rendered again after this even with no new part.
 */
const MPD_MAX_AGE_MS = 100;

export async function serveStreamFile(
  req: IncomingMessage,
  res: ServerResponse,
  url: Target,
  out: PathOutput,
  outputs: Outputs,
  file: string,
  limits: ListenerLimits,
  master?: MasterSource,
  renditions?: RenditionsSource,
): Promise<void> {
  const t = out.packager.timeline;
  // Made only when a response waits (most are answered at once): the wait ends when the client goes away.
  let aborts: AbortSignal | undefined;
  const signal = () => (aborts ??= abortOnClose(req, res));
  // Blocking playlist reloads and held parts/segments wait with no traffic: lift the idle timeout meanwhile.
  let held = false;
  const hold = () => {
    if (held) return;
    held = true;
    holdOpen(req, res, limits);
  };
  const fail = (status: number, code: ErrorCode, message: string): void => {
    sendError(res, new AmiError(code, message, {}, status));
  };
  const send = (r: Reply) => {
    out.httpBytesOut += r.body.length;
    reply(res, r);
  };
  outputs.touch(out, `${req.socket.remoteAddress}|${req.headers["user-agent"] ?? ""}`);
  const ready = () => t.ended || t.hasListed();
  const playlist = (type: keyof typeof TYPES, body: string) =>
    send({ status: 200, type: TYPES[type], body: Buffer.from(body), cache: "no-cache" });
  // Rendered once per timeline change (playlist-cache.ts) unless it carries a per-session query.
  const cached = (key: string, type: keyof typeof TYPES, render: () => string, maxAgeMs?: number) => {
    out.httpBytesOut += sendRendered(req, res, rendered(t, key, TYPES[type], render, maxAgeMs));
  };
  const notReady = () => fail(404, "M_NOT_FOUND", `stream '${out.path}' is not ready yet`);

  // Per-session decode times for GStreamer's legacy hlsdemux (rebase.ts).
  const base = parseBase(url.searchParams.get("base"));
  const query = base === undefined ? undefined : `?base=${base}`;
  if (file === "index.m3u8" || file === "index.mpd" || file === "stream.m3u8") {
    const msnQ = url.searchParams.get("_HLS_msn");
    // Delta updates (LL-HLS 6.2.5.1): `_HLS_skip=YES` asks for older segments to be replaced by EXT-X-SKIP.
    const skip = url.searchParams.get("_HLS_skip") === "YES";
    const media = () =>
      query === undefined
        ? cached(skip ? "media-skip" : "media", "m3u8", () => mediaPlaylist(t, { skip }))
        : playlist("m3u8", mediaPlaylist(t, { skip, query }));
    if (file === "stream.m3u8" && msnQ !== null) {
      const msn = Number(msnQ);
      const partQ = url.searchParams.get("_HLS_part");
      const part = partQ === null ? undefined : Number(partQ);
      if (!Number.isInteger(msn) || msn < 0 || (part !== undefined && (!Number.isInteger(part) || part < 0))) {
        return fail(400, "AMI_INVALID_INPUT", "bad _HLS_msn/_HLS_part");
      }
      // LL-HLS 6.2.5.2: beyond the advance limits the request is answered at once with 400, not held.
      if (beyondAdvanceLimit(t, msn, part)) return fail(400, "AMI_INVALID_INPUT", "_HLS_msn/_HLS_part too far ahead");
      // Held up to three target durations, then 503 (LL-HLS 6.2.5.2).
      // Not before the first segment is complete: that fixes TARGETDURATION for the playlist's life.
      if (!(ready() && t.has(msn, part))) {
        hold();
        const ok = await t.waitUntil(() => ready() && t.has(msn, part), holdMs(t), signal());
        if (aborts?.aborted) return;
        // The publisher is away (end grace): the unchanged playlist, not an error, so players keep waiting for it.
        if (!ok && !t.paused) return fail(503, "AMI_UNAVAILABLE", "playlist did not advance in time");
      }
      return media();
    }
    if (!ready()) {
      hold();
      if (!(await t.waitUntil(ready, FIRST_SEGMENT_WAIT_MS, signal()))) return aborts?.aborted ? undefined : notReady();
    }
    if (file === "index.m3u8") {
      const start = t.listed()[0]?.start;
      const uri =
        wantsRebase(req.headers["user-agent"]) && start !== undefined
          ? `stream.m3u8?base=${Math.round(start * 1000)}`
          : undefined;
      return cached(`index ${uri ?? ""}`, "m3u8", () => multivariantPlaylist(variant(out), uri));
    }
    if (file === "stream.m3u8") return media();
    const clock = timeUrl(req);
    // GStreamer gets its timelines anchored at 0 (dash/mpd.ts): a variant of its own.
    const anchor = anchored(req.headers["user-agent"]) ? " anchored" : "";
    return cached(
      `mpd ${clock ?? ""}${anchor}`,
      "mpd",
      () => dashManifest(t, dashInfo(req, out, clock)),
      MPD_MAX_AGE_MS,
    );
  }
  if (file === "master.m3u8" && master) {
    hold();
    if (!(await t.waitUntil(ready, FIRST_SEGMENT_WAIT_MS, signal()))) return aborts?.aborted ? undefined : notReady();
    const body = await master(out, outputs, variant(out), signal());
    return aborts?.aborted ? undefined : playlist("m3u8", body);
  }
  // DASH track files (one track each, cut from the muxed init and segments): `t<track>-init[-<disc>].mp4` and
  // `t<track>-<time>.m4s`, the segment whose samples of that track start at <time> (SegmentTemplate $Time$).
  const timed = /^t(\d+)-(\d{1,15})\.m4s$/.exec(file);
  if (timed) {
    const [id, time] = [Number(timed[1]), Number(timed[2])];
    // The next segment at the live edge is held until it is complete, like `seg<N>.m4s`.
    if (!segmentAt(t, id, time) && comingAt(t, id, time)) {
      hold();
      await t.waitUntil(
        () => !!segmentAt(t, id, time) || !comingAt(t, id, time),
        3000 * t.options.segmentSeconds,
        signal(),
      );
    }
    const s = segmentAt(t, id, time);
    const body = s && segmentFile(s, id);
    if (!body) return fail(404, "M_NOT_FOUND", "no such segment");
    return send({ status: 200, type: TYPES.m4s, body, cache: "max-age=60" });
  }
  const track = /^t(\d+)-(init(?:-\d+)?\.mp4)$/.exec(file);
  const trackId = track ? Number(track[1]) : undefined;
  if (track) file = track[2] as string;
  if (file === "master.mpd" && renditions) {
    hold();
    if (!(await t.waitUntil(ready, FIRST_SEGMENT_WAIT_MS, signal()))) return aborts?.aborted ? undefined : notReady();
    const rungs = (await renditions(out, outputs, signal())).flatMap((r) => {
      const o = outputs.get(r.path);
      return o ? [{ name: r.rung.name, t: o.packager.timeline, info: dashInfo(req, o) }] : [];
    });
    return aborts?.aborted ? undefined : playlist("mpd", ladderManifest(t, dashInfo(req, out), rungs));
  }
  const init = /^init(?:-(\d+))?\.mp4$/.exec(file);
  if (init) {
    // One init per discontinuity sequence (each publisher of the path); the current one may not exist yet.
    const d = Number(init[1] ?? 0);
    if (d === t.discontinuity && !t.init) hold();
    if (d === t.discontinuity && !(await t.waitUntil(() => !!t.init || t.ended, FIRST_SEGMENT_WAIT_MS, signal())))
      return notReady();
    const muxed = t.inits.get(d);
    if (!muxed) return notReady();
    let body = muxed;
    if (trackId !== undefined) {
      try {
        body = initFile(muxed, trackId);
      } catch {
        return fail(404, "M_NOT_FOUND", `no track ${trackId} in this stream`);
      }
    }
    return send({ status: 200, type: TYPES.mp4, body, cache: "max-age=30" });
  }
  const seg = /^seg(\d+)\.m4s$/.exec(file);
  if (seg) {
    const msn = Number(seg[1]);
    // The open segment is held until complete; players normally ask only for listed ones.
    if (t.open?.msn === msn) {
      hold();
      await t.waitUntil(() => !!t.segment(msn)?.complete, holdMs(t), signal());
    }
    const s = t.segment(msn);
    // Pinned, not read from `s.data`: the bytes stay ours (the muxer's slab is reused once they are let go).
    const data = s?.complete ? t.pin(s) : undefined;
    if (!s || !data) return fail(404, "M_NOT_FOUND", "no such segment");
    res.once("close", () => t.unpin(data));
    const body = base === undefined ? data : rebase(data, s, t.tracks, base);
    return send({ status: 200, type: TYPES.m4s, body, cache: "max-age=60" });
  }
  const part = /^part(\d+)\.m4s$/.exec(file);
  if (part) {
    const n = Number(part[1]);
    // The preload-hinted part (the next one) is held until ffmpeg delivers it (LL-HLS 6.2.6).
    if (n === t.nextPart && !t.ended) {
      hold();
      await t.waitUntil(() => t.nextPart > n, holdMs(t), signal());
    }
    const p = t.part(n);
    const s = t.segmentOfPart(n);
    const data = p && s ? t.pin(p) : undefined;
    if (!s || !data) return fail(404, "M_NOT_FOUND", "no such part");
    res.once("close", () => t.unpin(data));
    const body = base === undefined ? data : rebase(data, s, t.tracks, base);
    return send({ status: 200, type: TYPES.m4s, body, cache: "max-age=60" });
  }
  fail(404, "M_NOT_FOUND", "not found");
}

/** The LL-HLS query of a media playlist request the fast path may answer: only `_HLS_msn`, `_HLS_part`, `_HLS_skip=YES`. */
function llhlsQuery(search: string): { msn?: number; part?: number; skip: boolean } | null {
  const q: { msn?: number; part?: number; skip: boolean } = { skip: false };
  if (search === "") return q;
  const seen = new Set<string>();
  for (const kv of search.slice(1).split("&")) {
    const eq = kv.indexOf("=");
    const k = eq < 0 ? kv : kv.slice(0, eq);
    const v = eq < 0 ? "" : kv.slice(eq + 1);
    if (seen.has(k)) return null;
    seen.add(k);
    if (k === "_HLS_skip" && v === "YES") q.skip = true;
    else if ((k === "_HLS_msn" || k === "_HLS_part") && /^\d{1,15}$/.test(v))
      q[k === "_HLS_msn" ? "msn" : "part"] = Number(v);
    else return null;
  }
  return q.part !== undefined && q.msn === undefined ? null : q;
}

type Cors = readonly (readonly [string, string])[];

/**
 * The kit's fast path (core/http/fast.ts) for the playlists and the MPD rendered once per change: the answer
 * `serveStreamFile` would give from the cache, as complete bytes, or later for a blocking reload (LL-HLS
 * `_HLS_msn`/`_HLS_part`) held until its part exists; undefined for anything it would answer otherwise (not ready
 * yet, beyond the advance limits, a per-session query, `?base=`).
 */
export function fastStreamFile(
  r: FastRequest,
  out: PathOutput,
  outputs: Outputs,
  file: string,
  cors: Cors,
): FastAnswer {
  const t = out.packager.timeline;
  if (!(t.ended || t.hasListed())) return undefined;
  const ua = r.headers["user-agent"];
  let cache: Rendered;
  if (file === "stream.m3u8") {
    const q = llhlsQuery(r.search);
    if (!q) return undefined;
    if (q.msn !== undefined) {
      if (beyondAdvanceLimit(t, q.msn, q.part)) return undefined;
      if (!t.has(q.msn, q.part)) return heldReload(r, out, outputs, cors, q.msn, q.part, q.skip);
    }
    cache = mediaRendered(t, q.skip);
  } else if (r.search !== "") return undefined;
  else if (file === "index.m3u8") {
    const start = t.listed()[0]?.start;
    const uri = wantsRebase(ua) && start !== undefined ? `stream.m3u8?base=${Math.round(start * 1000)}` : undefined;
    cache = rendered(t, `index ${uri ?? ""}`, TYPES.m3u8, () => multivariantPlaylist(variant(out), uri));
  } else if (file === "index.mpd") {
    // Plain TCP only (the fast path never runs on TLS).
    const clock = clockUrl(r.headers.host, false);
    const anchor = anchored(ua) ? " anchored" : "";
    cache = rendered(
      t,
      `mpd ${clock ?? ""}${anchor}`,
      TYPES.mpd,
      () => dashManifest(t, dashFacts(out, clock, ua)),
      MPD_MAX_AGE_MS,
    );
  } else return undefined;
  return answerFast(r, out, outputs, cache, cors);
}

function mediaRendered(t: PathOutput["packager"]["timeline"], skip: boolean): Rendered {
  return rendered(t, skip ? "media-skip" : "media", TYPES.m3u8, () => mediaPlaylist(t, { skip }));
}

function answerFast(r: FastRequest, out: PathOutput, outputs: Outputs, cache: Rendered, cors: Cors): Buffer {
  outputs.touch(out, `${r.remoteAddress}|${r.headers["user-agent"] ?? ""}`);
  const inm = r.headers["if-none-match"];
  if (r.method === "GET" && !notModified(inm, cache.etag)) out.httpBytesOut += cache.body.length;
  return fastAnswer(r.method, inm, cache, cors);
}

/** A blocking reload on the fast path, as `serveStreamFile` holds it: up to 3×TARGETDURATION, then 503. */
async function heldReload(
  r: FastRequest,
  out: PathOutput,
  outputs: Outputs,
  cors: Cors,
  msn: number,
  part: number | undefined,
  skip: boolean,
): Promise<Buffer | undefined> {
  const t = out.packager.timeline;
  outputs.touch(out, `${r.remoteAddress}|${r.headers["user-agent"] ?? ""}`);
  const signal = r.signal();
  const ok = await t.waitUntil(() => (t.ended || t.hasListed()) && t.has(msn, part), holdMs(t), signal);
  if (signal.aborted) return undefined;
  // The publisher is away (end grace): the unchanged playlist, not an error, so players keep waiting for it.
  if (!ok && !t.paused) {
    const e = new AmiError("AMI_UNAVAILABLE", "playlist did not advance in time", {}, 503);
    const body = Buffer.from(JSON.stringify(e.toJSON()));
    return new PrebuiltResponse(503, [...cors, ["Content-Type", "application/json"]], body).bytes(r.method);
  }
  return answerFast(r, out, outputs, mediaRendered(t, skip), cors);
}

function abortOnClose(req: IncomingMessage, res: ServerResponse): AbortSignal {
  const ac = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) ac.abort();
  });
  req.once("aborted", () => ac.abort());
  return ac.signal;
}
