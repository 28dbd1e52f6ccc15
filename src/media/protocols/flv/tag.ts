/**
 * FLV tags (the payload format RTMP carries): classify a tag body into a hub Frame, and write an FLV byte
 * stream (header + tags) for ffmpeg's `-f flv -i pipe:0`.
 */
import type { Frame } from "../../frame.ts";
import { exAudioFrame, SOUND_EX_HEADER } from "./ex-audio.ts";
import { isAvcTag, parseVideoTag } from "./ex-video.ts";

export const TAG_AUDIO = 8;
export const TAG_VIDEO = 9;
export const TAG_SCRIPT = 18;

export { CODEC_AVC } from "./ex-video.ts";
export const SOUND_AAC = 10;

/**
 * Video tag: legacy (frame type in the high nibble, 1 = keyframe; codec in the low nibble; AVC adds a packet
 * type) or enhanced RTMP (ex-video.ts). A config is the sequence header; an end-of-sequence tag is neither.
 */
export function videoFrame(dts: number, data: Buffer): Frame {
  if (isAvcTag(data)) {
    // The common case, read in place (parseVideoTag's answer, without its object per frame).
    const packet = data[1];
    return { kind: "video", dts, data, keyframe: packet === 1 && (data[0] as number) >> 4 === 1, config: packet === 0 };
  }
  const t = parseVideoTag(data);
  const config = t?.packet === "config";
  return { kind: "video", dts, data, keyframe: t?.packet === "frame" && t.frameType === 1, config };
}

/** Audio tag: AAC's sequence header, or an enhanced (ExHeader) SequenceStart, is configuration. */
export function audioFrame(dts: number, data: Buffer): Frame {
  const format = (data[0] ?? 0) >> 4;
  if (format === SOUND_EX_HEADER) return exAudioFrame(dts, data);
  return { kind: "audio", dts, data, keyframe: false, config: format === SOUND_AAC && data[1] === 0 };
}

export const videoCodecId = (f: Frame): number => (f.data[0] ?? 0) & 0x0f;
export const soundFormat = (f: Frame): number => (f.data[0] ?? 0) >> 4;

/** `FLV` header with the has-audio/has-video flags, then PreviousTagSize0. */
export function flvHeader(hasAudio: boolean, hasVideo: boolean): Buffer {
  const b = Buffer.alloc(13);
  b.write("FLV", 0, "latin1");
  b[3] = 1;
  b[4] = (hasAudio ? 4 : 0) | (hasVideo ? 1 : 0);
  b.writeUInt32BE(9, 5);
  return b;
}

/** One FLV tag: every byte is written (no zero-fill first: a frame's worth of memset per tag per viewer). */
export function flvTag(type: number, timestamp: number, data: Buffer): Buffer {
  const b = Buffer.allocUnsafe(11 + data.length + 4);
  b[0] = type;
  b.writeUIntBE(data.length, 1, 3);
  const ts = Math.max(0, Math.floor(timestamp)) >>> 0;
  b.writeUIntBE(ts & 0xffffff, 4, 3);
  b[7] = (ts >>> 24) & 0xff;
  b.writeUIntBE(0, 8, 3); // StreamID
  data.copy(b, 11);
  b.writeUInt32BE(11 + data.length, 11 + data.length);
  return b;
}

export const tagType = (f: Frame): number =>
  f.kind === "video" ? TAG_VIDEO : f.kind === "audio" ? TAG_AUDIO : TAG_SCRIPT;
