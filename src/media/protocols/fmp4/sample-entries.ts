/**
 * Codec plug-ins of the CMAF muxer: from a hub config frame (an FLV sequence header or an enhanced-RTMP
 * SequenceStart) each builds the track's sample entry (avc1/avcC, hvc1/hvcC, mp4a/esds, Opus/dOps), its RFC 6381
 * codec string, and reads the samples out of the media frames that follow. A new codec is one more entry in
 * CODECS; nothing else in the muxer knows about codecs.
 */

import { parseAudioSpecificConfig } from "../../codecs/aac.ts";
import { parseAvcConfig } from "../../codecs/avc.ts";
import { parseHevcConfig } from "../../codecs/hevc.ts";
import type { Frame } from "../../frame.ts";
import { AUDIO_PACKET, FOURCC_OPUS, opusHeadToDops, opusPacketSamples, parseExAudio } from "../flv/ex-audio.ts";
import { avcCts, FOURCC_HEVC, isAvcTag, parseVideoTag } from "../flv/ex-video.ts";
import { SOUND_AAC } from "../flv/tag.ts";
import { box, fullBox, u8, u16, u32, zeros } from "./write.ts";

export interface Sample {
  data: Buffer;
  /** Composition offset in ms (video; may be negative). */
  cts: number;
  sync: boolean;
  /** Duration in the track's timescale when the codec fixes it (audio); 0: from the next sample's timestamp. */
  duration: number;
}

export interface TrackCodec {
  kind: "video" | "audio";
  /** RFC 6381 codec string for playlists and the MPD. */
  codec: string;
  timescale: number;
  /** The sample entry box for `stsd`. */
  entry: Buffer;
  width?: number;
  height?: number;
  channels?: number;
  sampleRate?: number;
  /** The sample a media frame carries; undefined for frames that carry none (end of sequence, other codecs). */
  sample(f: Frame): Sample | undefined;
}

interface CodecPlugin {
  name: string;
  /** Does this config frame belong to the plug-in? */
  matches(config: Frame): boolean;
  /** Throws on a malformed configuration. */
  setup(config: Frame): TrackCodec;
}

/** 90 kHz for video: FLV milliseconds map to it exactly, and it is what MPEG systems use. */
const VIDEO_TIMESCALE = 90_000;

function visualEntry(fourcc: string, width: number, height: number, config: Buffer): Buffer {
  return box(
    fourcc,
    zeros(6),
    u16(1, 0, 0), // data_reference_index, pre_defined, reserved
    zeros(12),
    u16(width, height),
    u32(0x00480000, 0x00480000, 0), // 72 dpi, reserved
    u16(1), // frame_count
    zeros(32), // compressorname
    u16(0x0018, 0xffff), // depth, pre_defined = -1
    config,
  );
}

function audioEntry(fourcc: string, channels: number, rate: number, config: Buffer): Buffer {
  // The 16.16 sample rate field cannot hold rates above 65535 (the real rate is in the config).
  return box(
    fourcc,
    zeros(6),
    u16(1),
    zeros(8),
    u16(channels, 16, 0, 0),
    u32(rate > 0xffff ? 0 : rate * 65536),
    config,
  );
}

/** An MPEG-4 descriptor (ISO 14496-1 8.3.3): tag, size as 7-bit groups, body. */
function descriptor(tag: number, ...body: Buffer[]): Buffer {
  const len = body.reduce((n, b) => n + b.length, 0);
  return Buffer.concat([
    u8(tag, 0x80 | ((len >> 21) & 0x7f), 0x80 | ((len >> 14) & 0x7f), 0x80 | ((len >> 7) & 0x7f), len & 0x7f),
    ...body,
  ]);
}

function esds(asc: Buffer): Buffer {
  const decoderConfig = descriptor(
    0x04,
    u8(0x40, 0x15), // Audio ISO/IEC 14496-3, AudioStream
    u8(0, 0, 0), // bufferSizeDB
    u32(0, 0), // max / avg bitrate unknown
    descriptor(0x05, asc),
  );
  return fullBox("esds", 0, 0, descriptor(0x03, u16(1), u8(0), decoderConfig, descriptor(0x06, u8(0x02))));
}

/** Video codecs whose tags carry length-prefixed NAL units after the header (AVC, HEVC). */
function nalVideo(config: Frame, fourcc: string, info: { codec: string; width: number; height: number }): TrackCodec {
  const tag = parseVideoTag(config.data);
  const record = config.data.subarray(tag?.offset ?? 5);
  const configBox = box(fourcc === FOURCC_HEVC ? "hvcC" : "avcC", record);
  return {
    kind: "video",
    ...info,
    timescale: VIDEO_TIMESCALE,
    entry: visualEntry(fourcc, info.width, info.height, configBox),
    sample(f) {
      // A legacy AVC tag (the common case) read in place, as parseVideoTag reads it.
      if (isAvcTag(f.data))
        return fourcc === "avc1" && f.data[1] === 1
          ? { data: f.data.subarray(5), cts: avcCts(f.data), sync: f.keyframe, duration: 0 }
          : undefined;
      const t = parseVideoTag(f.data);
      if (t?.packet !== "frame" || t.fourcc !== fourcc) return undefined;
      return { data: f.data.subarray(t.offset), cts: t.cts, sync: f.keyframe, duration: 0 };
    },
  };
}

const CODECS: CodecPlugin[] = [
  {
    name: "H.264",
    matches: (c) => c.kind === "video" && parseVideoTag(c.data)?.fourcc === "avc1",
    setup: (c) => nalVideo(c, "avc1", parseAvcConfig(c.data.subarray(5))),
  },
  {
    name: "H.265",
    matches: (c) => c.kind === "video" && parseVideoTag(c.data)?.fourcc === FOURCC_HEVC,
    setup: (c) => nalVideo(c, FOURCC_HEVC, parseHevcConfig(c.data.subarray(5))),
  },
  {
    name: "AAC",
    matches: (c) => c.kind === "audio" && (c.data[0] ?? 0) >> 4 === SOUND_AAC,
    setup(c) {
      const asc = c.data.subarray(2);
      const a = parseAudioSpecificConfig(asc);
      if (!a.sampleRate || !a.channels) throw new Error("AAC config without sample rate or channels");
      return {
        kind: "audio",
        codec: a.codec,
        timescale: a.sampleRate,
        channels: a.channels,
        sampleRate: a.sampleRate,
        entry: audioEntry("mp4a", a.channels, a.sampleRate, esds(asc)),
        sample: (f) =>
          f.data[1] === 1 && (f.data[0] ?? 0) >> 4 === SOUND_AAC
            ? { data: f.data.subarray(2), cts: 0, sync: true, duration: 1024 }
            : undefined,
      };
    },
  },
  {
    name: "Opus",
    matches: (c) => c.kind === "audio" && parseExAudio(c.data)?.fourcc === FOURCC_OPUS,
    setup(c) {
      const dops = opusHeadToDops(parseExAudio(c.data)?.body ?? Buffer.alloc(0));
      const channels = dops[1] as number;
      return {
        kind: "audio",
        codec: "opus",
        timescale: 48_000,
        channels,
        sampleRate: 48_000,
        entry: audioEntry("Opus", channels, 48_000, box("dOps", dops)),
        sample(f) {
          const ex = parseExAudio(f.data);
          if (!ex || ex.fourcc !== FOURCC_OPUS || ex.packetType !== AUDIO_PACKET.CodedFrames) return undefined;
          const duration = opusPacketSamples(ex.body);
          return duration > 0 ? { data: ex.body, cts: 0, sync: true, duration } : undefined;
        },
      };
    },
  },
];

/** The muxer's view of a track from its config frame; throws a clear error for codecs it cannot package. */
export function trackCodec(config: Frame): TrackCodec {
  const plugin = CODECS.find((p) => p.matches(config));
  if (!plugin) throw new Error(describeUnsupported(config));
  try {
    return plugin.setup(config);
  } catch (e) {
    throw new Error(`bad ${plugin.name} configuration: ${(e as Error).message}`);
  }
}

/** The error for a frame of a codec no plug-in packages. */
export const describeUnsupported = (f: Frame): string => `unsupported ${f.kind} codec for CMAF (${describe(f)})`;

function describe(f: Frame): string {
  const b0 = f.data[0] ?? 0;
  if (f.kind === "audio") {
    const ex = parseExAudio(f.data);
    return ex ? `FourCC '${ex.fourcc}'` : `FLV SoundFormat ${b0 >> 4}`;
  }
  const t = parseVideoTag(f.data);
  return t?.fourcc ? `FourCC '${t.fourcc}'` : `FLV CodecID ${b0 & 0x0f}`;
}

/** Codec string and picture / sound figures of a config frame, or undefined if it is not one we read. */
export function configInfo(config: Frame): Omit<TrackCodec, "entry" | "sample" | "timescale"> | undefined {
  try {
    const { entry: _e, sample: _s, timescale: _t, ...info } = trackCodec(config);
    return info;
  } catch {
    return undefined;
  }
}
