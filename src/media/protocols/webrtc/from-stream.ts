/**
 * Hub -> WHEP viewer: H.264 passthrough. Frames arrive in decode order (as the publisher sent them) and are
 * sent in that order; each unit's RTP timestamp is its presentation time (dts + composition offset) on the
 * 90 kHz clock, which is how receivers reorder B-frames. Every IDR carries SPS/PPS in-band so a viewer can
 * start at any keyframe; sending starts at a keyframe.
 */
import type { Reader } from "../../hub.ts";
import { CODEC_AVC, videoCodecId } from "../flv/tag.ts";
import { type AvcParams, avcCts, avccNals, splitAvcConfig } from "./avc-tags.ts";
import { NAL, nalType, packetizeH264 } from "./h264-rtp.ts";

export interface RtpOut {
  payload: Buffer;
  timestamp: number;
  marker: boolean;
}

export async function streamToRtpH264(reader: Reader, send: (p: RtpOut) => Promise<void>): Promise<void> {
  let params: AvcParams | undefined;
  let base: number | undefined;
  const tsOffset = Math.floor(Math.random() * 0x7fffffff);
  for (;;) {
    const f = await reader.next();
    if (!f) return;
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
    if (base === undefined) {
      if (!f.keyframe) continue;
      base = f.dts;
    }
    let nals = avccNals(f.data.subarray(5), params.lengthSize).filter((n) => nalType(n) !== NAL.AUD);
    if (f.keyframe && !nals.some((n) => nalType(n) === NAL.SPS)) nals = [...params.sps, ...params.pps, ...nals];
    const pts = f.dts - base + avcCts(f.data);
    const timestamp = (tsOffset + Math.round(pts * 90)) >>> 0;
    const payloads = packetizeH264(nals);
    for (let i = 0; i < payloads.length; i++)
      await send({ payload: payloads[i] as Buffer, timestamp, marker: i === payloads.length - 1 });
  }
}
