/**
 * Recordings over HTTP, MediaMTX's playback API under `/_ami/playback/` on the media listener (a MediaMTX client
 * takes `http://<host>:<httpPort>/_ami/playback` as its playback base URL):
 *   GET /_ami/playback/list?path=P[&start=T&end=T]          -> [{start, duration, url}] contiguous spans (JSON)
 *   GET /_ami/playback/get?path=P&start=T&duration=S[&format=fmp4] -> one fragmented MP4 of that range (streamed)
 *       format=mp4: one progressive MP4 instead (moov before mdat, playback-mp4.ts), streamed the same way; it
 *       takes `Range: bytes=` (206/416, Accept-Ranges) so players seek in it
 *   GET /_ami/playback/index.m3u8?path=P&start=T&duration=S  -> HLS VOD of the range (EXT-X-PLAYLIST-TYPE:VOD, ENDLIST)
 *       whose init.mp4 and segment.m4s?…&n=N are slices of the same fMP4 (one timeline, one init)
 * T is RFC 3339, S seconds. Bad parameters are a 400, an unknown path or a range with nothing recorded a 404.
 * Reads are allowed as the path's live reads are (media.paths read rule, signed URLs, the auth hook: a signed
 * path's recordings need its `exp`/`sig`, carried into the playlist's and list's URLs), or with the media
 * service's control token as a bearer (what the `stream recordings` ops send). Bytes are streamed from the
 * recorded files (or the store), never loaded whole.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AmiError } from "../../../core/errors.ts";
import type { Target } from "../../../core/http/target.ts";
import type { Logger } from "../../../core/logger.ts";
import {
  checkPath,
  hlsPlaylist,
  hlsSegments,
  iso,
  type Piece,
  type Plan,
  type Playback,
  parseDuration,
  parseTime,
  pieces,
  writePieces,
} from "../../playback.ts";
import { progressive } from "../../playback-mp4.ts";
import { json, reply } from "./reply.ts";

export const PLAYBACK_PREFIX = "/_ami/playback/";

/** Query parameters a reader's authorization travels in (signed URLs, the auth hook's key). */
const AUTH_PARAMS = ["exp", "sig", "key"] as const;

export interface PlaybackRoute {
  playback: Playback;
  /** True when the request may read `path`; otherwise the refusal has been sent. */
  allowed(path: string): Promise<boolean>;
  log: Logger;
}

export async function servePlayback(
  req: IncomingMessage,
  res: ServerResponse,
  t: Target,
  r: PlaybackRoute,
): Promise<void> {
  const what = t.pathname.slice(PLAYBACK_PREFIX.length);
  const q = t.searchParams;
  if (!["list", "get", "index.m3u8", "init.mp4", "segment.m4s"].includes(what))
    throw new AmiError("M_NOT_FOUND", `no playback endpoint '${what}' (list, get, index.m3u8)`);
  const path = checkPath(q.get("path"));
  const carry = new URLSearchParams();
  for (const k of AUTH_PARAMS) {
    const v = q.get(k);
    if (v !== null) carry.set(k, v);
  }

  if (what === "list") {
    const start = q.has("start") ? parseTime("start", q.get("start")) : undefined;
    const end = q.has("end") ? parseTime("end", q.get("end")) : undefined;
    if (start !== undefined && end !== undefined && end <= start) throw bad("'end' must be after 'start'");
    if (!(await r.allowed(path))) return;
    if (!(await r.playback.has(path))) throw new AmiError("M_NOT_FOUND", `nothing recorded for '${path}'`);
    const spans = await r.playback.list(path, start, end);
    if (spans.length === 0) throw new AmiError("M_NOT_FOUND", `nothing recorded for '${path}' in that range`);
    const base = `http://${req.headers.host ?? "localhost"}${PLAYBACK_PREFIX}get`;
    return reply(
      res,
      json(
        200,
        spans.map((s) => {
          const u = new URLSearchParams({ path, start: s.start, duration: String(s.duration) });
          for (const [k, v] of carry) u.set(k, v);
          return { ...s, url: `${base}?${u}` };
        }),
      ),
    );
  }

  const start = parseTime("start", q.get("start"));
  const duration = parseDuration(q.get("duration"));
  const format = q.get("format") ?? "fmp4";
  if (!FORMATS.includes(format)) throw bad(`unknown format '${format}' (${FORMATS.join(", ")})`);
  let n = 0;
  if (what === "segment.m4s") {
    const v = q.get("n") ?? "";
    if (!/^\d{1,6}$/.test(v)) throw bad("'n' (the segment number) is required");
    n = Number(v);
  }
  if (!(await r.allowed(path))) return;
  const { recorded, plan } = await r.playback.find(path, start, duration);
  if (!recorded) throw new AmiError("M_NOT_FOUND", `nothing recorded for '${path}'`);
  if (!plan || plan.frags.length === 0)
    throw new AmiError("M_NOT_FOUND", `nothing recorded for '${path}' from ${iso(start)} for ${duration} s`);

  if (what === "index.m3u8") {
    const base = new URLSearchParams({ path, start: q.get("start") as string, duration: q.get("duration") as string });
    for (const [k, v] of carry) base.set(k, v);
    const text = hlsPlaylist(plan, (kind, i) => (kind === "init" ? `init.mp4?${base}` : `segment.m4s?${base}&n=${i}`));
    return reply(res, { status: 200, type: "application/vnd.apple.mpegurl", body: Buffer.from(text) });
  }
  if (what === "init.mp4") return reply(res, { status: 200, type: "video/mp4", body: plan.init });
  if (what === "segment.m4s") {
    const seg = hlsSegments(plan)[n];
    if (!seg) throw new AmiError("M_NOT_FOUND", `no segment ${n} in that range`);
    const frags = plan.frags.slice(seg.from, seg.to);
    return send(
      req,
      res,
      r.log,
      "video/iso.segment",
      frags.reduce((a, f) => a + f.size, 0),
      pieces(frags),
    );
  }
  // get
  res.setHeader("content-disposition", `inline; filename="${fileName(path, plan)}"`);
  if (format === "mp4") {
    const mp4 = await progressive(plan);
    return send(req, res, r.log, "video/mp4", mp4.bytes, [mp4.head, ...mp4.body], true);
  }
  return send(req, res, r.log, "video/mp4", plan.bytes, pieces(plan.frags, plan.init));
}

/** What `get` answers: fragmented MP4 (the default) or progressive MP4 (moov first, one mdat). */
const FORMATS = ["fmp4", "mp4"];

const bad = (msg: string) => new AmiError("AMI_INVALID_INPUT", msg);

const fileName = (path: string, plan: Plan) =>
  `${path.replace(/\//g, "_")}_${iso(plan.start).replace(/[:.]/g, "-")}.mp4`;

/**
 * The byte range a `Range` header asks of a `length`-byte answer (RFC 9110 §14): `{ from, to }` (to inclusive),
 * "unsatisfiable" (416), or undefined: answer the whole (no header, another unit, several ranges, bad syntax:
 * a server may ignore those).
 */
export function byteRange(
  header: string | undefined,
  length: number,
): { from: number; to: number } | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] === "") {
    // The last n bytes.
    const n = Number(m[2]);
    if (n === 0 || length === 0) return "unsatisfiable";
    return { from: Math.max(0, length - n), to: length - 1 };
  }
  const from = Number(m[1]);
  const to = m[2] === "" ? length - 1 : Math.min(Number(m[2]), length - 1);
  if (!Number.isSafeInteger(from) || from >= length) return "unsatisfiable";
  if (to < from) return undefined; // last-pos before first-pos: invalid, ignored
  return { from, to };
}

/** The pieces covering bytes `from`..`to` (inclusive) of `list`: in-memory ones cut, file ranges narrowed. */
export function slicePieces(list: Piece[], from: number, to: number): Piece[] {
  const out: Piece[] = [];
  let at = 0;
  for (const p of list) {
    if (at > to) break;
    const b = typeof p === "function" ? p() : p;
    const len = Buffer.isBuffer(b) ? b.length : b.to - b.from;
    const a = Math.max(from, at) - at;
    const z = Math.min(to + 1, at + len) - at;
    if (z > a) {
      if (Buffer.isBuffer(b)) out.push(b.subarray(a, z));
      else out.push({ src: b.src, from: b.from + a, to: b.from + z });
    }
    at += len;
  }
  return out;
}

/**
 * Write `body` (exactly `length` bytes) with backpressure: each batch of pieces is corked into one writev and the
 * next is read while it goes out; a reader that goes away stops the file reads. `ranges`: the answer's bytes are
 * known up front (a progressive MP4), so a `Range: bytes=` request gets 206 with those bytes only (416 past the
 * end) and players can seek; If-Range is answered with the whole (there is no validator to compare).
 */
async function send(
  req: IncomingMessage,
  res: ServerResponse,
  log: Logger,
  type: string,
  length: number,
  whole: Piece[],
  ranges = false,
): Promise<void> {
  const headers: Record<string, string | number> = { "content-type": type, "cache-control": "no-store" };
  let body = whole;
  let status = 200;
  if (ranges) {
    headers["accept-ranges"] = "bytes";
    const r = req.headers["if-range"] ? undefined : byteRange(req.headers.range, length);
    if (r === "unsatisfiable") {
      res.writeHead(416, { ...headers, "content-range": `bytes */${length}`, "content-length": 0 });
      res.end();
      return;
    }
    if (r) {
      status = 206;
      headers["content-range"] = `bytes ${r.from}-${r.to}/${length}`;
      body = slicePieces(whole, r.from, r.to);
      length = r.to - r.from + 1;
    }
  }
  headers["content-length"] = length;
  res.writeHead(status, headers);
  if (req.method === "HEAD") {
    res.end();
    return;
  }
  let gone: Error | undefined;
  const left = new Promise<never>((_, reject) =>
    res.once("close", () => {
      gone ??= new Error("the reader left");
      reject(gone);
    }),
  );
  left.catch(() => {});
  try {
    await writePieces(body, {
      write: (parts) => {
        if (gone || res.destroyed) return Promise.reject(gone ?? new Error("the reader left"));
        const written = new Promise<void>((resolve, reject) => {
          res.cork();
          for (let i = 0; i < parts.length - 1; i++) res.write(parts[i] as Buffer);
          res.write(parts.at(-1) as Buffer, (e) => (e ? reject(e) : resolve()));
          res.uncork();
        });
        return Promise.race([written, left]);
      },
    });
    res.end();
  } catch (e) {
    // The reader left, or a file went away under the read (retention): the response is cut short.
    log.debug("playback: response ended early", { error: (e as Error).message });
    res.destroy();
  }
}
