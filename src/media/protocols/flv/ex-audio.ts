/**
 * Enhanced RTMP v2 audio tag bodies ("ExHeader" audio, SoundFormat 9) as the hub carries them, for Opus:
 *   byte 0      SoundFormat 9 << 4 | AudioPacketType (0 SequenceStart, 1 CodedFrames, 2 SequenceEnd)
 *   bytes 1..4  FourCC ('Opus')
 *   body        SequenceStart: the Opus ID header (RFC 7845 5.1, "OpusHead"); CodedFrames: one Opus packet
 * plus the OpusHead <-> dOps (the ISO BMFF Opus sample entry box, Opus-in-ISOBMFF 4.3.2) conversion a muxer needs.
 * Used by WHIP ingest (writes these frames) and WHEP playback (passes the packets through).
 */
import type { Frame } from "../../frame.ts";

export const SOUND_EX_HEADER = 9;
export const AUDIO_PACKET = { SequenceStart: 0, CodedFrames: 1, SequenceEnd: 2 } as const;
export const FOURCC_OPUS = "Opus";

export interface ExAudio {
  packetType: number;
  fourcc: string;
  body: Buffer;
}

/** An ExHeader audio tag body. */
export function exAudioTag(packetType: number, fourcc: string, body: Buffer): Buffer {
  if (fourcc.length !== 4) throw new Error(`FourCC must be 4 characters, not '${fourcc}'`);
  const head = Buffer.alloc(5);
  head[0] = (SOUND_EX_HEADER << 4) | (packetType & 0x0f);
  head.write(fourcc, 1, "latin1");
  return Buffer.concat([head, body]);
}

/** The ExHeader fields of an audio tag body, or undefined when it is not one (legacy SoundFormat, too short). */
export function parseExAudio(data: Buffer): ExAudio | undefined {
  if (data.length < 5 || (data[0] ?? 0) >> 4 !== SOUND_EX_HEADER) return undefined;
  return { packetType: (data[0] as number) & 0x0f, fourcc: data.toString("latin1", 1, 5), body: data.subarray(5) };
}

/** A hub frame for an ExHeader audio tag body: a SequenceStart is codec configuration. */
export function exAudioFrame(dts: number, data: Buffer): Frame {
  const ex = parseExAudio(data);
  return { kind: "audio", dts, data, keyframe: false, config: ex?.packetType === AUDIO_PACKET.SequenceStart };
}

export const opusConfigFrame = (dts: number, head: Buffer): Frame =>
  exAudioFrame(dts, exAudioTag(AUDIO_PACKET.SequenceStart, FOURCC_OPUS, head));

export const opusPacketFrame = (dts: number, packet: Buffer): Frame =>
  exAudioFrame(dts, exAudioTag(AUDIO_PACKET.CodedFrames, FOURCC_OPUS, packet));

/** The Opus packet of a hub frame, or undefined when the frame is not Opus CodedFrames. */
export function opusPacket(f: Frame): Buffer | undefined {
  if (f.kind !== "audio") return undefined;
  const ex = parseExAudio(f.data);
  return ex && ex.fourcc === FOURCC_OPUS && ex.packetType === AUDIO_PACKET.CodedFrames ? ex.body : undefined;
}

/** True when a frame (typically the stream's audio config) is Opus in ExHeader form. */
export const isOpus = (f: Frame | undefined): boolean =>
  f !== undefined && f.kind === "audio" && parseExAudio(f.data)?.fourcc === FOURCC_OPUS;

export interface OpusHeadInfo {
  channels: number;
  /** Samples (at 48 kHz) to discard from the decoder's output at the start. */
  preSkip: number;
  inputSampleRate: number;
  /** Q7.8 dB. */
  outputGain: number;
  /** 0: mono/stereo, no mapping table. */
  mappingFamily: number;
  /** Family != 0: stream count, coupled count, channel mapping. */
  mappingTable?: Buffer;
}

/** RFC 7845 5.1 ID header (little-endian fields). */
export function opusHead(o: Partial<OpusHeadInfo> & { channels: number }): Buffer {
  const family = o.mappingFamily ?? 0;
  const table = family !== 0 ? (o.mappingTable ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const b = Buffer.alloc(19);
  b.write("OpusHead", 0, "latin1");
  b[8] = 1;
  b[9] = o.channels;
  b.writeUInt16LE(o.preSkip ?? 312, 10);
  b.writeUInt32LE(o.inputSampleRate ?? 48000, 12);
  b.writeInt16LE(o.outputGain ?? 0, 16);
  b[18] = family;
  return Buffer.concat([b, table]);
}

export function parseOpusHead(b: Buffer): OpusHeadInfo {
  if (b.length < 19 || b.toString("latin1", 0, 8) !== "OpusHead") throw new Error("not an OpusHead (RFC 7845 5.1)");
  if ((b[8] as number) >> 4 !== 0) throw new Error(`unsupported OpusHead version ${b[8]}`);
  const channels = b[9] as number;
  if (channels === 0) throw new Error("OpusHead with 0 channels");
  const mappingFamily = b[18] as number;
  const info: OpusHeadInfo = {
    channels,
    preSkip: b.readUInt16LE(10),
    inputSampleRate: b.readUInt32LE(12),
    outputGain: b.readInt16LE(16),
    mappingFamily,
  };
  if (mappingFamily !== 0) {
    if (b.length < 21 + channels) throw new Error("OpusHead channel mapping table truncated");
    info.mappingTable = b.subarray(19, 21 + channels);
  }
  return info;
}

/** The dOps box payload (version 0, big-endian fields) for an OpusHead: what an fMP4 'Opus' sample entry holds. */
export function opusHeadToDops(head: Buffer): Buffer {
  const h = parseOpusHead(head);
  const b = Buffer.alloc(11);
  b[0] = 0;
  b[1] = h.channels;
  b.writeUInt16BE(h.preSkip, 2);
  b.writeUInt32BE(h.inputSampleRate, 4);
  b.writeInt16BE(h.outputGain, 8);
  b[10] = h.mappingFamily;
  return Buffer.concat([b, h.mappingTable ?? Buffer.alloc(0)]);
}

/** Samples (at 48 kHz) in one Opus packet, from its TOC byte and frame count code (RFC 6716 3.1); 0 if malformed. */
export function opusPacketSamples(p: Buffer): number {
  if (p.length < 1) return 0;
  const toc = p[0] as number;
  const config = toc >> 3;
  // Frame sizes per configuration: SILK 10/20/40/60 ms, hybrid 10/20 ms, CELT 2.5/5/10/20 ms.
  const frame =
    config < 12
      ? [480, 960, 1920, 2880][config & 3]
      : config < 16
        ? [480, 960][config & 1]
        : [120, 240, 480, 960][config & 3];
  const code = toc & 3;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code === 1 || code === 2) frames = 2;
  else {
    if (p.length < 2) return 0;
    frames = (p[1] as number) & 0x3f;
  }
  const samples = (frame as number) * frames;
  // RFC 6716 3.2.5: a packet never holds more than 120 ms.
  return frames === 0 || samples > 5760 ? 0 : samples;
}
