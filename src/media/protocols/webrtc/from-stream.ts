/**
 * Hub -> WHEP viewer.
 *  - Video: H.264 passthrough (or H.265, RFC 7798, to a viewer that negotiated it: `videoCodec`). Frames arrive in decode order (as the publisher sent them) and are sent in that
 *    order; each unit's RTP timestamp is its presentation time (dts + composition offset) on the 90 kHz clock,
 *    which is how receivers reorder B-frames. Every IDR carries SPS/PPS in-band so a viewer can start at any
 *    keyframe (VPS/SPS/PPS for H.265); sending starts at a keyframe, the cached one when the path has it (`head`).
 *    Frames of the other codec are skipped.
 *  - Audio, when the path's audio is Opus (a WHIP publisher): passthrough, one packet per RTP packet (RFC 7587).
 *    AAC paths get their audio from the shared transcoder instead (opus-transcode.ts), on the same clock.
 * Both tracks' timestamps come from one ViewerClock, so a hub instant has the same media time on both.
 */

import { HEVC_NAL, hvccNalUnits } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import type { Reader } from "../../hub.ts";
import { opusPacket } from "../flv/ex-audio.ts";
import { FOURCC_HEVC, parseVideoTag } from "../flv/ex-video.ts";
import { NAL, nalType, packetizeH264 } from "../rtp/h264.ts";
import { packetizeH265 } from "../rtp/h265.ts";
import type { ViewerClock } from "./av-sync.ts";
import { avccNals, splitAvcConfig } from "./avc-tags.ts";

export interface RtpOut {
  payload: Buffer;
  timestamp: number;
  marker: boolean;
}

export interface RtpSinks {
  video: (p: RtpOut) => Promise<void>;
  /** Set when the path's Opus is passed through to this viewer. */
  audio?: (p: RtpOut) => Promise<void>;
  /** What the viewer negotiated (default H.264). */
  videoCodec?: "h264" | "h265";
}

/** A video codec's parameter sets (sent before keyframes that lack them) and NAL length size. */
interface Params {
  sets: Buffer[];
  lengthSize: number;
}

/**
 * A passed-through viewer's keyframe request (PLI/FIR): `pending` set, the next frame sent is preceded by the
 * path's cached GOP up to it (`gop`: the hub's cache, bytes handed out); `sent` counts the times it was.
 */
export interface Resync {
  pending: boolean;
  gop: () => readonly Frame[];
  sent: number;
}

/** The most a new viewer's catch-up (the cached GOP from its keyframe) may hold; past it the viewer waits. */
export const MAX_CATCH_UP_BYTES = 2 * 1024 * 1024;

const hevcType = (n: Buffer) => ((n[0] ?? 0) >> 1) & 0x3f;

/**
 * `head`: frames already queued when sending starts (the path's cached GOP and what came while the peer
 * connected). A viewer starts at the last keyframe among them instead of waiting for the next one: those frames
 * go out at once with their RTP timestamps packed one tick apart just before the live edge's (the newest's), so
 * the browser decodes them, shows the live picture and plays on in real time rather than a GOP behind. Their
 * audio is left out.
 */
export async function streamToRtp(
  reader: Reader,
  clock: ViewerClock,
  sinks: RtpSinks,
  head: Frame[] = [],
  resync?: Resync,
): Promise<void> {
  const h265 = sinks.videoCodec === "h265";
  const fourcc = h265 ? FOURCC_HEVC : "avc1";
  let params: Params | undefined;
  const isOurs = (f: Frame) => f.kind === "video" && !f.config && parseVideoTag(f.data)?.fourcc === fourcc;
  let lastKey = head.findLastIndex((f) => f.keyframe && isOurs(f));
  // A long GOP would be a burst the path cannot take at once: then the viewer waits for the next keyframe.
  let bytes = 0;
  for (let i = Math.max(0, lastKey); i < head.length; i++) bytes += (head[i] as Frame).data.length;
  if (bytes > MAX_CATCH_UP_BYTES) lastKey = -1;
  // Configs before the keyframe still count; media frames before it are not needed.
  const catchUp = head.filter((f, i) => (lastKey >= 0 && i >= lastKey) || f.config);
  const catchUpVideo = lastKey < 0 ? 0 : catchUp.filter(isOurs).length;
  const edge = lastKey < 0 ? undefined : catchUp.findLast(isOurs);
  let sentCatchUp = 0;
  for (let i = 0; ; i++) {
    const fromHead = i < catchUp.length;
    const f = fromHead ? catchUp[i] : await reader.next();
    if (!f) return;
    if (f.kind === "audio") {
      if (fromHead && edge) continue;
      const packet = sinks.audio && clock.base !== undefined ? opusPacket(f) : undefined;
      if (packet) await sinks.audio?.({ payload: packet, timestamp: clock.audio(f.dts), marker: false });
      continue;
    }
    const tag = f.kind === "video" ? parseVideoTag(f.data) : undefined;
    if (tag?.fourcc !== fourcc) continue;
    if (tag.packet === "config") {
      try {
        params = h265 ? hevcParams(f.data.subarray(tag.offset)) : avcParams(f.data.subarray(tag.offset));
      } catch {
        params = undefined;
      }
      continue;
    }
    if (tag.packet !== "frame" || !params) continue;
    if (clock.base === undefined) {
      if (!f.keyframe) continue;
      clock.start(fromHead && edge ? edge.dts : f.dts);
    }
    const p = params;
    const send = async (g: Frame, offset: number, timestamp: number) => {
      let nals = avccNals(g.data.subarray(offset), p.lengthSize).filter((n) =>
        h265 ? hevcType(n) !== HEVC_NAL.AUD : nalType(n) !== NAL.AUD,
      );
      const hasSets = nals.some((n) => (h265 ? hevcType(n) === HEVC_NAL.VPS : nalType(n) === NAL.SPS));
      if (g.keyframe && !hasSets) nals = [...p.sets, ...nals];
      const payloads = h265 ? packetizeH265(nals) : packetizeH264(nals);
      for (let i = 0; i < payloads.length; i++)
        await sinks.video({ payload: payloads[i] as Buffer, timestamp, marker: i === payloads.length - 1 });
    };
    /** A catch-up frame: sent at once, but the event loop gets a turn after each (a burst is not one long block). */
    const sendBurst = async (g: Frame, offset: number, timestamp: number) => {
      await send(g, offset, timestamp);
      await new Promise((r) => setImmediate(r));
    };
    let timestamp = clock.video(f.dts + tag.cts);
    if (resync?.pending && !fromHead) {
      // The viewer lost a picture (PLI/FIR): the cached GOP up to this frame goes again, packed one tick apart just
      // before it, so it decodes from the keyframe and goes on with this frame at once.
      resync.pending = false;
      const gop = f.keyframe ? [] : resync.gop();
      const at = gop.indexOf(f);
      const again = at > 0 ? gop.slice(0, at).filter(isOurs) : [];
      if (again[0]?.keyframe && again.reduce((n, g) => n + g.data.length, 0) <= MAX_CATCH_UP_BYTES) {
        resync.sent++;
        for (const [j, g] of again.entries())
          await sendBurst(g, parseVideoTag(g.data)?.offset ?? 0, (timestamp - (again.length - j)) >>> 0);
      }
    }
    if (fromHead && edge) {
      // Caught up at once: one tick apart, the newest at the live edge's own time.
      sentCatchUp++;
      const edgeTag = parseVideoTag(edge.data);
      timestamp = (clock.video(edge.dts + (edgeTag?.cts ?? 0)) - (catchUpVideo - sentCatchUp)) >>> 0;
    }
    await (fromHead && edge ? sendBurst : send)(f, tag.offset, timestamp);
  }
}

function avcParams(rec: Buffer): Params {
  const p = splitAvcConfig(rec);
  return { sets: [...p.sps, ...p.pps], lengthSize: p.lengthSize };
}

function hevcParams(rec: Buffer): Params {
  const u = hvccNalUnits(rec);
  if (rec.length < 23) throw new Error("HEVC config truncated");
  const sets = [HEVC_NAL.VPS, HEVC_NAL.SPS, HEVC_NAL.PPS].flatMap((k) => u.get(k) ?? []);
  return { sets, lengthSize: ((rec[21] as number) & 3) + 1 };
}
