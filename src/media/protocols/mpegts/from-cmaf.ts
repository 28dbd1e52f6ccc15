/**
 * fMP4 (CMAF) -> hub frames: the codec configurations of an init segment (avcC, hvcC, esds, dOps) as the config
 * frames RTMP ingest writes, and the samples of moof + mdat fragments as media frames, all tracks merged in decode
 * order. The MPEG-TS HLS variant (hls/ts-variant.ts) feeds these to a TsMuxer, so its segments are the fMP4
 * segments' samples, cut on the same boundaries, with no second hub reader or muxer per stream.
 */
import type { Frame } from "../../frame.ts";
import { opusConfigFrame, opusHead, opusPacketFrame } from "../flv/ex-audio.ts";
import { exVideoTag, FOURCC_HEVC, VIDEO_PACKET } from "../flv/ex-video.ts";
import { audioFrame, videoFrame } from "../flv/tag.ts";
import { children } from "../fmp4/boxes.ts";
import { avcConfigFrame } from "../webrtc/avc-tags.ts";

export interface CmafTrack {
  id: number;
  kind: "video" | "audio";
  timescale: number;
  codec: "avc1" | "hvc1" | "mp4a" | "Opus";
  /** The hub config frame (dts 0). */
  config: Frame;
  defaultDuration: number;
  defaultSize: number;
  defaultFlags: number;
}

const kid = (b: Buffer, start: number, end: number, type: string) =>
  children(b, start, end).find((c) => c.type === type);

/** DecoderSpecificInfo (tag 5) inside an esds payload (after its version/flags). */
function ascOf(b: Buffer): Buffer | undefined {
  let p = 0;
  const walk = (end: number): Buffer | undefined => {
    while (p + 2 <= end) {
      const tag = b[p++] as number;
      let len = 0;
      for (let i = 0; i < 4; i++) {
        const v = b[p++] as number;
        len = (len << 7) | (v & 0x7f);
        if (!(v & 0x80)) break;
      }
      const bodyEnd = Math.min(end, p + len);
      if (tag === 0x05) return b.subarray(p, bodyEnd);
      if (tag === 0x03) {
        const flags = b[p + 2] as number;
        p += 3 + (flags & 0x80 ? 2 : 0) + (flags & 0x20 ? 1 + (b[p + 3] as number) : 0) + (flags & 0x40 ? 2 : 0);
        return walk(bodyEnd);
      }
      if (tag === 0x04) {
        p += 13;
        return walk(bodyEnd);
      }
      p = bodyEnd;
    }
    return undefined;
  };
  return walk(b.length);
}

/** The tracks of an init segment (`ftyp` + `moov`, or `moov` alone) whose codec MPEG-TS can carry. */
export function cmafTracks(init: Buffer): CmafTrack[] {
  const top = children(init, 0, init.length);
  const moov = top.find((c) => c.type === "moov");
  if (!moov) throw new Error("init segment without moov");
  const trex = new Map<number, [number, number, number]>();
  const mvex = kid(init, moov.start, moov.end, "mvex");
  for (const c of mvex ? children(init, mvex.start, mvex.end) : [])
    if (c.type === "trex")
      trex.set(init.readUInt32BE(c.start + 4), [
        init.readUInt32BE(c.start + 12),
        init.readUInt32BE(c.start + 16),
        init.readUInt32BE(c.start + 20),
      ]);
  const out: CmafTrack[] = [];
  for (const trak of children(init, moov.start, moov.end).filter((c) => c.type === "trak")) {
    const tkhd = kid(init, trak.start, trak.end, "tkhd");
    const mdia = kid(init, trak.start, trak.end, "mdia");
    if (!tkhd || !mdia) continue;
    const id = init.readUInt32BE(tkhd.start + (init[tkhd.start] === 1 ? 20 : 12));
    const mdhd = kid(init, mdia.start, mdia.end, "mdhd");
    const minf = kid(init, mdia.start, mdia.end, "minf");
    const stbl = minf && kid(init, minf.start, minf.end, "stbl");
    const stsd = stbl && kid(init, stbl.start, stbl.end, "stsd");
    if (!mdhd || !stsd) continue;
    const timescale = init.readUInt32BE(mdhd.start + (init[mdhd.start] === 1 ? 20 : 12));
    const entry = children(init, stsd.start + 8, stsd.end)[0];
    if (!entry) continue;
    const [defaultDuration, defaultSize, defaultFlags] = trex.get(id) ?? [0, 0, 0];
    const base = { id, timescale, defaultDuration, defaultSize, defaultFlags };
    if (entry.type === "avc1" || entry.type === "avc3" || entry.type === "hvc1" || entry.type === "hev1") {
      const hevc = entry.type.startsWith("h");
      const cfg = kid(init, entry.start + 78, entry.end, hevc ? "hvcC" : "avcC");
      if (!cfg) continue;
      const rec = init.subarray(cfg.start, cfg.end);
      const config = hevc
        ? videoFrame(0, exVideoTag(VIDEO_PACKET.SequenceStart, FOURCC_HEVC, true, rec))
        : avcConfigFrame(0, rec);
      out.push({ ...base, kind: "video", codec: hevc ? "hvc1" : "avc1", config });
    } else if (entry.type === "mp4a") {
      const e = kid(init, entry.start + 28, entry.end, "esds");
      const asc = e && ascOf(init.subarray(e.start + 4, e.end));
      if (!asc || asc.length < 2) continue;
      out.push({
        ...base,
        kind: "audio",
        codec: "mp4a",
        config: audioFrame(0, Buffer.concat([Buffer.from([0xaf, 0]), asc])),
      });
    } else if (entry.type === "Opus") {
      const d = kid(init, entry.start + 28, entry.end, "dOps");
      if (!d || d.end - d.start < 11) continue;
      const b = init.subarray(d.start, d.end);
      const head = opusHead({
        channels: b[1] as number,
        preSkip: b.readUInt16BE(2),
        inputSampleRate: b.readUInt32BE(4),
        outputGain: b.readInt16BE(8),
        mappingFamily: b[10] as number,
        mappingTable: b.subarray(11),
      });
      out.push({ ...base, kind: "audio", codec: "Opus", config: opusConfigFrame(0, head) });
    }
  }
  return out;
}

const isSync = (flags: number) => ((flags >> 16) & 1) === 0;

/**
 * The media frames of `data` (moof + mdat pairs) for `tracks`, in decode order; `offsetMs` is added to every
 * decode time (a timeline's continuous clock). Decode times are fractional milliseconds (exact 90 kHz in TS).
 */
export function cmafFrames(data: Buffer, tracks: CmafTrack[], offsetMs = 0): Frame[] {
  const frames: Frame[] = [];
  for (const moof of children(data, 0, data.length)) {
    if (moof.type !== "moof") continue;
    const moofStart = moof.start - 8;
    for (const traf of children(data, moof.start, moof.end)) {
      if (traf.type !== "traf") continue;
      const kids = children(data, traf.start, traf.end);
      const tfhd = kids.find((c) => c.type === "tfhd");
      if (!tfhd) continue;
      const tf = data.readUInt32BE(tfhd.start) & 0xffffff;
      const track = tracks.find((t) => t.id === data.readUInt32BE(tfhd.start + 4));
      if (!track) continue;
      let p = tfhd.start + 8;
      if (tf & 0x1) p += 8; // base_data_offset: fragments here are relative to their moof
      if (tf & 0x2) p += 4;
      let defDuration = track.defaultDuration;
      let defSize = track.defaultSize;
      let defFlags = track.defaultFlags;
      if (tf & 0x8) {
        defDuration = data.readUInt32BE(p);
        p += 4;
      }
      if (tf & 0x10) {
        defSize = data.readUInt32BE(p);
        p += 4;
      }
      if (tf & 0x20) defFlags = data.readUInt32BE(p);
      const tfdt = kids.find((c) => c.type === "tfdt");
      let time = !tfdt
        ? 0
        : data[tfdt.start] === 1
          ? Number(data.readBigUInt64BE(tfdt.start + 4))
          : data.readUInt32BE(tfdt.start + 4);
      for (const trun of kids.filter((c) => c.type === "trun")) {
        const version = data[trun.start] as number;
        const fl = data.readUInt32BE(trun.start) & 0xffffff;
        const count = data.readUInt32BE(trun.start + 4);
        let q = trun.start + 8;
        let at = moofStart;
        if (fl & 0x1) {
          at = moofStart + data.readInt32BE(q);
          q += 4;
        }
        let first: number | undefined;
        if (fl & 0x4) {
          first = data.readUInt32BE(q);
          q += 4;
        }
        for (let i = 0; i < count && q <= trun.end; i++) {
          let duration = defDuration;
          let size = defSize;
          let flags = i === 0 && first !== undefined ? first : defFlags;
          let cto = 0;
          if (fl & 0x100) {
            duration = data.readUInt32BE(q);
            q += 4;
          }
          if (fl & 0x200) {
            size = data.readUInt32BE(q);
            q += 4;
          }
          if (fl & 0x400) {
            if (!(i === 0 && first !== undefined)) flags = data.readUInt32BE(q);
            q += 4;
          }
          if (fl & 0x800) {
            cto = version === 0 ? data.readUInt32BE(q) : data.readInt32BE(q);
            q += 4;
          }
          if (at < 0 || at + size > data.length) throw new Error("sample data outside the segment");
          const sample = data.subarray(at, at + size);
          at += size;
          const dts = (time * 1000) / track.timescale + offsetMs;
          time += duration;
          frames.push(sampleFrame(track, dts, sample, isSync(flags), Math.round((cto * 1000) / track.timescale)));
        }
      }
    }
  }
  // Merge the tracks in decode order (stable: a track's own order is kept).
  return frames
    .map((f, i) => ({ f, i }))
    .sort((a, b) => a.f.dts - b.f.dts || a.i - b.i)
    .map((x) => x.f);
}

function sampleFrame(track: CmafTrack, dts: number, sample: Buffer, sync: boolean, ctsMs: number): Frame {
  if (track.codec === "avc1") {
    const head = Buffer.from([sync ? 0x17 : 0x27, 1, 0, 0, 0]);
    head.writeIntBE(ctsMs, 2, 3);
    return videoFrame(dts, Buffer.concat([head, sample]));
  }
  if (track.codec === "hvc1")
    return videoFrame(dts, exVideoTag(VIDEO_PACKET.CodedFrames, FOURCC_HEVC, sync, sample, ctsMs));
  if (track.codec === "mp4a") return audioFrame(dts, Buffer.concat([Buffer.from([0xaf, 1]), sample]));
  return opusPacketFrame(dts, sample);
}
