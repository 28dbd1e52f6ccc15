/**
 * Enhanced RTMP v1 video tag bodies (the "ExVideoTagHeader"), as the hub carries them:
 *   byte 0      IsExHeader (0x80) | FrameType << 4 (1 keyframe, 2 inter...) | VideoPacketType (low nibble)
 *   bytes 1..4  FourCC ('hvc1', 'av01', 'vp09')
 *   body        SequenceStart: the decoder configuration record (hvcC); CodedFrames: SI24 composition time, then
 *               length-prefixed NAL units; CodedFramesX: NAL units, composition time 0; SequenceEnd: empty.
 * Plus the one view of a video tag (legacy or enhanced) the muxer and hub classification share.
 */

export const EX_HEADER = 0x80;
export const VIDEO_PACKET = {
  SequenceStart: 0,
  CodedFrames: 1,
  SequenceEnd: 2,
  CodedFramesX: 3,
  Metadata: 4,
  MPEG2TSSequenceStart: 5,
} as const;
export const FOURCC_HEVC = "hvc1";
/** The legacy FLV CodecID of H.264. */
export const CODEC_AVC = 7;

/** What a video tag body holds, whatever its header form. */
export interface VideoTag {
  /** 'avc1' for a legacy AVC tag, the FourCC of an enhanced one, '' for other legacy codecs. */
  fourcc: string;
  frameType: number;
  /** 'config' (sequence header / SequenceStart), 'frame' (coded media), 'end' or 'other'. */
  packet: "config" | "frame" | "end" | "other";
  /** Composition time offset in ms (signed). */
  cts: number;
  /** Offset of the payload: the config record, or the length-prefixed NAL units. */
  offset: number;
}

/** Signed 24-bit big-endian, in plain integer arithmetic (readUIntBE's generic path allocated per call). */
const si24 = (b: Buffer, p: number): number =>
  ((((b[p] as number) << 16) | ((b[p + 1] as number) << 8) | (b[p + 2] as number)) << 8) >> 8;

/**
 * A legacy AVC tag body (no ExHeader, CodecID 7, its 5-byte header present): what nearly every publisher sends.
 * The per-frame paths (hub classification, WebRTC check, muxer) read such a tag directly instead of building a
 * VideoTag for it: byte 1 is the AVCPacketType (0 config, 1 frame), `avcCts` its composition time.
 */
export const isAvcTag = (data: Buffer): boolean =>
  data.length >= 5 && ((data[0] as number) & (EX_HEADER | 0x0f)) === CODEC_AVC;

/** The composition time (ms) of a legacy AVC tag (`isAvcTag`). */
export const avcCts = (data: Buffer): number => si24(data, 2);

/** Read a video tag header; undefined when the body is too short for the header it announces. */
export function parseVideoTag(data: Buffer): VideoTag | undefined {
  const b0 = data[0];
  if (b0 === undefined) return undefined;
  if (b0 & EX_HEADER) {
    if (data.length < 5) return undefined;
    const frameType = (b0 >> 4) & 7;
    const type = b0 & 0x0f;
    const fourcc = data.toString("latin1", 1, 5);
    if (type === VIDEO_PACKET.SequenceStart) return { fourcc, frameType, packet: "config", cts: 0, offset: 5 };
    if (type === VIDEO_PACKET.CodedFramesX) return { fourcc, frameType, packet: "frame", cts: 0, offset: 5 };
    if (type === VIDEO_PACKET.CodedFrames) {
      // AV1 and VP9 CodedFrames carry no composition time; HEVC's does.
      if (fourcc !== FOURCC_HEVC) return { fourcc, frameType, packet: "frame", cts: 0, offset: 5 };
      return data.length < 8 ? undefined : { fourcc, frameType, packet: "frame", cts: si24(data, 5), offset: 8 };
    }
    return { fourcc, frameType, packet: type === VIDEO_PACKET.SequenceEnd ? "end" : "other", cts: 0, offset: 5 };
  }
  const frameType = b0 >> 4;
  if ((b0 & 0x0f) !== CODEC_AVC) return { fourcc: "", frameType, packet: "frame", cts: 0, offset: 1 };
  if (data.length < 5) return undefined;
  const packet = data[1] === 0 ? "config" : data[1] === 1 ? "frame" : data[1] === 2 ? "end" : "other";
  return { fourcc: "avc1", frameType, packet, cts: si24(data, 2), offset: 5 };
}

/** An enhanced video tag body (what an E-RTMP publisher sends; the tests' publisher builds them with this). */
export function exVideoTag(packetType: number, fourcc: string, keyframe: boolean, body: Buffer, cts = 0): Buffer {
  if (fourcc.length !== 4) throw new Error(`FourCC must be 4 characters, not '${fourcc}'`);
  const withCts = packetType === VIDEO_PACKET.CodedFrames && fourcc === FOURCC_HEVC;
  const head = Buffer.alloc(withCts ? 8 : 5);
  head[0] = EX_HEADER | ((keyframe ? 1 : 2) << 4) | packetType;
  head.write(fourcc, 1, "latin1");
  if (withCts) head.writeIntBE(cts, 5, 3);
  return Buffer.concat([head, body]);
}
