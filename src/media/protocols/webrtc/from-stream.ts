/**
 * Hub -> WHEP viewer.
 *  - Video: H.264 passthrough. Frames arrive in decode order (as the publisher sent them) and are sent in that
 *    order; each unit's RTP timestamp is its presentation time (dts + composition offset) on the 90 kHz clock,
 *    which is how receivers reorder B-frames. Every IDR carries SPS/PPS in-band so a viewer can start at any
 *    keyframe; sending starts at a keyframe.
 *  - Audio, when the path's audio is Opus (a WHIP publisher): passthrough, one packet per RTP packet (RFC 7587).
 *    AAC paths get their audio from the shared transcoder instead (opus-transcode.ts), on the same clock.
 * Both tracks' timestamps come from one ViewerClock, so a hub instant has the same media time on both.
 */
import type { Reader } from "../../hub.ts";
import { opusPacket } from "../flv/ex-audio.ts";
import { CODEC_AVC, videoCodecId } from "../flv/tag.ts";
import { NAL, nalType, packetizeH264 } from "../rtp/h264.ts";
import type { ViewerClock } from "./av-sync.ts";
import { type AvcParams, avcCts, avccNals, splitAvcConfig } from "./avc-tags.ts";

export interface RtpOut {
  payload: Buffer;
  timestamp: number;
  marker: boolean;
}

export interface RtpSinks {
  video: (p: RtpOut) => Promise<void>;
  /** Set when the path's Opus is passed through to this viewer. */
  audio?: (p: RtpOut) => Promise<void>;
}

export async function streamToRtp(reader: Reader, clock: ViewerClock, sinks: RtpSinks): Promise<void> {
  let params: AvcParams | undefined;
  for (;;) {
    const f = await reader.next();
    if (!f) return;
    if (f.kind === "audio") {
      const packet = sinks.audio && clock.base !== undefined ? opusPacket(f) : undefined;
      if (packet) await sinks.audio?.({ payload: packet, timestamp: clock.audio(f.dts), marker: false });
      continue;
    }
    if (f.kind !== "video" || videoCodecId(f) !== CODEC_AVC) continue;
    if (f.config) {
      try {
        params = splitAvcConfig(f.data.subarray(5));
      } catch {
        params = undefined;
      }
      continue;
    }
    if (!params) continue;
    if (clock.base === undefined) {
      if (!f.keyframe) continue;
      clock.start(f.dts);
    }
    let nals = avccNals(f.data.subarray(5), params.lengthSize).filter((n) => nalType(n) !== NAL.AUD);
    if (f.keyframe && !nals.some((n) => nalType(n) === NAL.SPS)) nals = [...params.sps, ...params.pps, ...nals];
    const timestamp = clock.video(f.dts + avcCts(f.data));
    const payloads = packetizeH264(nals);
    for (let i = 0; i < payloads.length; i++)
      await sinks.video({ payload: payloads[i] as Buffer, timestamp, marker: i === payloads.length - 1 });
  }
}
