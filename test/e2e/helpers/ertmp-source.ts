/**
 * Enhanced-RTMP media for tests, from real encoders: ffmpeg encodes H.265 (libx265, raw Annex B) and Opus
 * (libopus in Ogg); the bitstreams become E-RTMP video tags ('hvc1' SequenceStart / CodedFrames / CodedFramesX)
 * and ExHeader audio tags ('Opus'), with their timestamps in ms.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lengthPrefixed, splitAnnexB } from "../../../src/media/codecs/annexb.ts";
import { HEVC_NAL, hevcConfigRecord, hevcNalType, isHevcKeyframe } from "../../../src/media/codecs/hevc.ts";
import { AUDIO_PACKET, exAudioTag, FOURCC_OPUS } from "../../../src/media/protocols/flv/ex-audio.ts";
import { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } from "../../../src/media/protocols/flv/ex-video.ts";

export interface Tag {
  kind: "video" | "audio";
  ts: number;
  payload: Buffer;
}

function ffmpeg(args: string[]): Buffer {
  const r = spawnSync("ffmpeg", ["-hide_banner", "-loglevel", "error", ...args], { maxBuffer: 256 * 1024 * 1024 });
  assert.equal(r.status, 0, String(r.stderr));
  return r.stdout;
}

/** Access units of an Annex B HEVC stream (a picture's first slice starts one; parameter sets go with it). */
function accessUnits(nals: Buffer[]): Buffer[][] {
  const aus: Buffer[][] = [];
  let cur: Buffer[] = [];
  let pending: Buffer[] = [];
  for (const n of nals) {
    const t = hevcNalType(n);
    if (t < 32) {
      const firstSlice = ((n[2] ?? 0) & 0x80) !== 0;
      if (firstSlice && cur.some((x) => hevcNalType(x) < 32)) {
        aus.push(cur);
        cur = [];
      }
      if (firstSlice) {
        cur.push(...pending);
        pending = [];
      }
      cur.push(n);
    } else if (t === HEVC_NAL.SUFFIX_SEI) cur.push(n);
    else pending.push(n);
  }
  if (cur.length) aus.push(cur);
  return aus;
}

/** `seconds` of H.265 at `fps` (no B-frames: pts = dts) as E-RTMP video tags, SequenceStart first. */
export function hevcTags(seconds: number, fps = 25, size = "320x240"): Tag[] {
  const raw = ffmpeg([
    ...["-f", "lavfi", "-i", `testsrc2=size=${size}:rate=${fps}`, "-t", String(seconds)],
    ...["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", `bframes=0:keyint=${fps}:log-level=error`],
    ...["-f", "hevc", "pipe:1"],
  ]);
  const nals = splitAnnexB(raw);
  const first = (type: number) => nals.find((n) => hevcNalType(n) === type) as Buffer;
  const record = hevcConfigRecord(first(HEVC_NAL.VPS), first(HEVC_NAL.SPS), first(HEVC_NAL.PPS));
  const tags: Tag[] = [
    { kind: "video", ts: 0, payload: exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, record) },
  ];
  accessUnits(nals).forEach((au, i) => {
    // hvc1: parameter sets live in the sample entry, not in the samples.
    const vcl = au.filter((n) => hevcNalType(n) < HEVC_NAL.VPS || hevcNalType(n) >= HEVC_NAL.PREFIX_SEI);
    const key = au.some(isHevcKeyframe);
    // Both coded-frame forms: CodedFrames (with a composition time, 0 here) and CodedFramesX (implied 0).
    const type = i % 2 ? VIDEO_PACKET.CodedFramesX : VIDEO_PACKET.CodedFrames;
    tags.push({
      kind: "video",
      ts: Math.round((i * 1000) / fps),
      payload: exVideoTag(type, FOURCC_HEVC, key, lengthPrefixed(vcl)),
    });
  });
  return tags;
}

/** Packets of an Ogg stream (RFC 3533: pages of lacing values; a value under 255 ends a packet). */
function oggPackets(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let partial: Buffer[] = [];
  let p = 0;
  while (p + 27 <= b.length && b.toString("latin1", p, p + 4) === "OggS") {
    const n = b[p + 26] as number;
    const lacing = b.subarray(p + 27, p + 27 + n);
    let q = p + 27 + n;
    for (const len of lacing) {
      partial.push(b.subarray(q, q + len));
      q += len;
      if (len < 255) {
        out.push(Buffer.concat(partial));
        partial = [];
      }
    }
    p = q;
  }
  return out;
}

/** `seconds` of Opus (20 ms packets, 48 kHz stereo) as ExHeader audio tags, SequenceStart (OpusHead) first. */
export function opusTags(seconds: number): Tag[] {
  const ogg = ffmpeg([
    ...["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2", "-t", String(seconds)],
    ...["-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-f", "ogg", "pipe:1"],
  ]);
  const [head, , ...packets] = oggPackets(ogg);
  assert.ok(head && head.toString("latin1", 0, 8) === "OpusHead", "Ogg stream starts with OpusHead");
  return [
    { kind: "audio", ts: 0, payload: exAudioTag(AUDIO_PACKET.SequenceStart, FOURCC_OPUS, head) },
    ...packets.map((pk, i) => ({
      kind: "audio" as const,
      ts: i * 20,
      payload: exAudioTag(AUDIO_PACKET.CodedFrames, FOURCC_OPUS, pk),
    })),
  ];
}

/** Tags of both tracks in timestamp order, each track's SequenceStart first (as publishers send them). */
export const interleave = (...lists: Tag[][]): Tag[] => [
  ...lists.map((l) => l[0] as Tag),
  ...lists.flatMap((l) => l.slice(1)).sort((a, b) => a.ts - b.ts),
];
