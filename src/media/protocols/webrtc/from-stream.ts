/**
 * Hub -> WHEP viewer.
 *  - Video: H.264 passthrough (or H.265, RFC 7798, to a viewer that negotiated it: `videoCodec`). Frames arrive in decode order (as the publisher sent them) and are sent in that
 *    order; each unit's RTP timestamp is its presentation time (dts + composition offset) on the 90 kHz clock,
 *    which is how receivers reorder B-frames. Every IDR carries SPS/PPS in-band so a viewer can start at any
 *    keyframe (VPS/SPS/PPS for H.265); sending starts at a keyframe. Frames of the other codec are skipped.
 *  - Audio, when the path's audio is Opus (a WHIP publisher): passthrough, one packet per RTP packet (RFC 7587).
 *    AAC paths get their audio from the shared transcoder instead (opus-transcode.ts), on the same clock.
 * Both tracks' timestamps come from one ViewerClock, so a hub instant has the same media time on both.
 */

import { HEVC_NAL, hvccNalUnits } from "../../codecs/hevc.ts";
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

const hevcType = (n: Buffer) => ((n[0] ?? 0) >> 1) & 0x3f;

export async function streamToRtp(reader: Reader, clock: ViewerClock, sinks: RtpSinks): Promise<void> {
  const h265 = sinks.videoCodec === "h265";
  const fourcc = h265 ? FOURCC_HEVC : "avc1";
  let params: Params | undefined;
  for (;;) {
    const f = await reader.next();
    if (!f) return;
    if (f.kind === "audio") {
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
      clock.start(f.dts);
    }
    let nals = avccNals(f.data.subarray(tag.offset), params.lengthSize).filter((n) =>
      h265 ? hevcType(n) !== HEVC_NAL.AUD : nalType(n) !== NAL.AUD,
    );
    const hasSets = nals.some((n) => (h265 ? hevcType(n) === HEVC_NAL.VPS : nalType(n) === NAL.SPS));
    if (f.keyframe && !hasSets) nals = [...params.sets, ...nals];
    const timestamp = clock.video(f.dts + tag.cts);
    const payloads = h265 ? packetizeH265(nals) : packetizeH264(nals);
    for (let i = 0; i < payloads.length; i++)
      await sinks.video({ payload: payloads[i] as Buffer, timestamp, marker: i === payloads.length - 1 });
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
