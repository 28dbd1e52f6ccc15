/** FLV tags -> hub: a source remuxed to FLV by ffmpeg (pulls, SRT) becomes frames of its MediaStream. */
import type { MediaStream } from "../../hub.ts";
import { type AmfObject, decodeAll } from "../rtmp/amf0.ts";
import type { FlvTag } from "./demux.ts";
import { audioFrame, CODEC_AVC, SOUND_AAC, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO, videoFrame } from "./tag.ts";

const VIDEO_CODECS: Record<number, string> = { 2: "H.263", 3: "screen video", 4: "VP6", 5: "VP6 alpha", 7: "H.264" };
const AUDIO_CODECS: Record<number, string> = { 0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM", 6: "Nellymoser", 10: "AAC" };

/** Why a tag cannot be relayed as-is (we remux, we do not transcode), or undefined when it can. */
export function unsupportedCodec(tag: FlvTag): string | undefined {
  const b0 = tag.data[0] ?? 0;
  if (tag.type === TAG_VIDEO && (b0 & 0x0f) !== CODEC_AVC)
    return `video codec ${VIDEO_CODECS[b0 & 0x0f] ?? `id ${b0 & 0x0f}`} is not H.264`;
  if (tag.type === TAG_AUDIO && b0 >> 4 !== SOUND_AAC)
    return `audio codec ${AUDIO_CODECS[b0 >> 4] ?? b0 >> 4} is not AAC`;
  return undefined;
}

export function flvToStream(tag: FlvTag, stream: MediaStream): void {
  if (tag.type === TAG_VIDEO) {
    if (tag.data.length >= 2) stream.write(videoFrame(tag.timestamp, tag.data));
  } else if (tag.type === TAG_AUDIO) {
    if (tag.data.length >= 2) stream.write(audioFrame(tag.timestamp, tag.data));
  } else if (tag.type === TAG_SCRIPT) {
    try {
      const v = decodeAll(tag.data);
      if (v[0] === "onMetaData" && v[1] && typeof v[1] === "object") stream.metadata = v[1] as AmfObject;
    } catch {
      // Metadata is informational; a tag we cannot decode is skipped.
    }
  }
}
