/** The per-stream status record shared by /api/streams, /_ami/stats, /metrics and the `stream.*` ops. */
import { z } from "zod";
import { abrStatusSchema } from "./abr/abr.ts";
import type { MediaStream } from "./hub.ts";
import type { Outputs } from "./outputs.ts";
import { pullStatusSchema } from "./pulls.ts";
import { recordingStatusSchema } from "./recordings.ts";
import { restreamStatusSchema } from "./restreams.ts";

export const streamStatusSchema = z.object({
  path: z.string(),
  live: z.boolean(),
  publisher: z.object({ protocol: z.string(), remote: z.string() }).nullable(),
  uptimeS: z.number(),
  bitrateKbps: z.number(),
  fps: z.number(),
  gopFrames: z.number().nullable(),
  width: z.number().nullable(),
  height: z.number().nullable(),
  videoCodec: z.string().nullable(),
  audioCodec: z.string().nullable(),
  readers: z.object({ total: z.number(), byProtocol: z.record(z.string(), z.number()) }),
  bytesIn: z.number(),
  bytesOut: z.number(),
  framesDiscarded: z.number(),
  segments: z.number(),
  /**
   * Where to watch it: the player page (HLS, DASH, WebRTC in a browser), HLS (LL-HLS from the same playlist),
   * DASH, HTTP-FLV (flv.js, mpegts.js, ffmpeg), RTMP play; whep: the WHEP endpoint (when WebRTC is on); rtsp:
   * RTSP play (when RTSP is on); srt: SRT read (streamid read:<path>); hlsTs: the MPEG-TS HLS variant for old
   * players (when media.hlsMpegtsIdleSeconds > 0); master, masterDash: the ABR master playlist and MPD (source + renditions), on
   * paths with a ladder.
   */
  urls: z.object({
    player: z.string(),
    hls: z.string(),
    dash: z.string(),
    flv: z.string(),
    rtmp: z.string(),
    whep: z.string().optional(),
    rtsp: z.string().optional(),
    srt: z.string().optional(),
    hlsTs: z.string().optional(),
    master: z.string().optional(),
    masterDash: z.string().optional(),
  }),
  /** The pull feeding this path (`stream start --source`), if any. */
  pull: pullStatusSchema.nullable().optional(),
  recording: recordingStatusSchema.nullable().optional(),
  restreams: z.array(restreamStatusSchema).optional(),
  /** The ABR ladder of this path: encoder, and per rendition (<path>/<name>) its state and last error. */
  abr: abrStatusSchema.nullable().optional(),
  /**
   * What WebRTC (WHEP) viewers get (when WebRTC is on): the video as it is ("passthrough"), or re-encoded for them
   * ("reencode": B-frames, or a profile browsers cannot decode), or "pending" (too few frames seen yet); the
   * reason; and the path's re-encoder (running only while it has viewers).
   */
  webrtc: z
    .object({
      video: z.enum(["passthrough", "reencode", "pending"]),
      reason: z.string(),
      reencoder: z
        .object({
          running: z.boolean(),
          viewers: z.number(),
          pid: z.number().nullable(),
          bitrateKbps: z.number().nullable(),
          lastError: z.string().nullable(),
        })
        .nullable(),
    })
    .nullable()
    .optional(),
  /**
   * The HLS viewer mesh (media.mesh): viewers in the path's swarm, segment bytes they got from peers and over HTTP
   * (as the players report them), peer segments refused by hash, and the offload ratio peer / (peer + HTTP).
   */
  mesh: z
    .object({
      viewers: z.number(),
      peerBytes: z.number(),
      httpBytes: z.number(),
      rejected: z.number(),
      offloadRatio: z.number(),
    })
    .nullable()
    .optional(),
});
export type StreamStatus = z.infer<typeof streamStatusSchema>;

/** The URLs that need only the HTTP base; media-server.ts adds the others, which depend on its config. */
const urlsOf = (path: string, httpBase: string): StreamStatus["urls"] => ({
  player: `${httpBase}/${path}/`,
  hls: `${httpBase}/${path}/index.m3u8`,
  dash: `${httpBase}/${path}/index.mpd`,
  flv: `${httpBase}/${path}.flv`,
  rtmp: "",
});

export function streamStatus(s: MediaStream, outputs: Outputs, httpBase: string): StreamStatus {
  const f = s.stats.figures();
  const out = outputs.get(s.path);
  const byProtocol: Record<string, number> = {};
  // The packager is our own reader, not a viewer: viewers of its output are counted as HLS/DASH sessions.
  for (const r of s.readers)
    if (r.info.remote !== "packager") byProtocol[r.info.protocol] = (byProtocol[r.info.protocol] ?? 0) + 1;
  if (out?.stream === s) byProtocol.hls = outputs.sessions(out);
  const live = !s.ended;
  return {
    path: s.path,
    live,
    publisher: live ? { protocol: s.publisher.protocol, remote: s.publisher.remote } : null,
    uptimeS: Math.round(((s.endedAt ?? Date.now()) - s.publisher.since) / 1000),
    bitrateKbps: f.bitrateKbps,
    fps: f.fps,
    gopFrames: f.gopFrames,
    width: f.width,
    height: f.height,
    videoCodec: f.videoCodec,
    audioCodec: f.audioCodec,
    readers: { total: Object.values(byProtocol).reduce((a, b) => a + b, 0), byProtocol },
    bytesIn: f.bytesIn,
    bytesOut: s.bytesOut + (out?.stream === s ? out.httpBytesOut : 0),
    framesDiscarded: s.framesDiscarded,
    segments: out?.stream === s ? out.packager.timeline.listed().length : 0,
    urls: urlsOf(s.path, httpBase),
  };
}

/** A path with a pull, recording or restream but no publisher right now (e.g. a pull that is reconnecting). */
export function offlineStatus(path: string, httpBase: string): StreamStatus {
  return {
    path,
    live: false,
    publisher: null,
    uptimeS: 0,
    bitrateKbps: 0,
    fps: 0,
    gopFrames: null,
    width: null,
    height: null,
    videoCodec: null,
    audioCodec: null,
    readers: { total: 0, byProtocol: {} },
    bytesIn: 0,
    bytesOut: 0,
    framesDiscarded: 0,
    segments: 0,
    urls: urlsOf(path, httpBase),
  };
}
