/**
 * Just enough ISO BMFF reading for CmafTimeline to cut fragments into parts and segments: track timescales from
 * the init segment, and each fragment's start, duration and whether it starts with a sync sample. (The muxer
 * that writes them is mux.ts; this reads any conforming fMP4, not only ours.)
 */

export interface Child {
  type: string;
  /** Payload start (after the header) and end, as offsets in the buffer. */
  start: number;
  end: number;
}

export function children(b: Buffer, start: number, end: number): Child[] {
  const out: Child[] = [];
  let p = start;
  while (p + 8 <= end) {
    const size = b.readUInt32BE(p);
    if (size < 8 || p + size > end) break;
    out.push({ type: b.toString("latin1", p + 4, p + 8), start: p + 8, end: p + size });
    p += size;
  }
  return out;
}

const find = (b: Buffer, start: number, end: number, type: string) =>
  children(b, start, end).find((c) => c.type === type);

export interface TrackInfo {
  id: number;
  timescale: number;
  kind: "video" | "audio" | "other";
  defaultDuration: number;
  defaultFlags: number;
}

/** Tracks from an init segment (`ftyp` + `moov`). */
export function parseInit(moov: Buffer): TrackInfo[] {
  const tracks: TrackInfo[] = [];
  const top = children(moov, 8, moov.length);
  const trex = new Map<number, [number, number]>();
  const mvex = top.find((c) => c.type === "mvex");
  if (mvex) {
    for (const c of children(moov, mvex.start, mvex.end)) {
      if (c.type === "trex")
        trex.set(moov.readUInt32BE(c.start + 4), [moov.readUInt32BE(c.start + 12), moov.readUInt32BE(c.start + 20)]);
    }
  }
  for (const trak of top.filter((c) => c.type === "trak")) {
    const tkhd = find(moov, trak.start, trak.end, "tkhd");
    const mdia = find(moov, trak.start, trak.end, "mdia");
    if (!tkhd || !mdia) continue;
    const id = moov.readUInt32BE(tkhd.start + (moov[tkhd.start] === 1 ? 20 : 12));
    const mdhd = find(moov, mdia.start, mdia.end, "mdhd");
    const hdlr = find(moov, mdia.start, mdia.end, "hdlr");
    if (!mdhd || !hdlr) continue;
    const timescale = moov.readUInt32BE(mdhd.start + (moov[mdhd.start] === 1 ? 20 : 12));
    const handler = moov.toString("latin1", hdlr.start + 8, hdlr.start + 12);
    const [defaultDuration, defaultFlags] = trex.get(id) ?? [0, 0];
    tracks.push({
      id,
      timescale,
      kind: handler === "vide" ? "video" : handler === "soun" ? "audio" : "other",
      defaultDuration,
      defaultFlags,
    });
  }
  return tracks;
}

export interface FragmentTrack {
  trackId: number;
  baseTime: number;
  duration: number;
  firstSampleSync: boolean;
}

const isSync = (flags: number) => ((flags >> 16) & 1) === 0;

/** Per-track start time, duration and first-sample sync flag of a `moof`. */
export function parseMoof(moof: Buffer, tracks: TrackInfo[]): FragmentTrack[] {
  const out: FragmentTrack[] = [];
  for (const traf of children(moof, 8, moof.length).filter((c) => c.type === "traf")) {
    const kids = children(moof, traf.start, traf.end);
    const tfhd = kids.find((c) => c.type === "tfhd");
    if (!tfhd) continue;
    const tfFlags = moof.readUInt32BE(tfhd.start) & 0xffffff;
    const trackId = moof.readUInt32BE(tfhd.start + 4);
    const track = tracks.find((t) => t.id === trackId);
    let p = tfhd.start + 8;
    if (tfFlags & 0x1) p += 8;
    if (tfFlags & 0x2) p += 4;
    let defDuration = track?.defaultDuration ?? 0;
    let defFlags = track?.defaultFlags ?? 0;
    if (tfFlags & 0x8) {
      defDuration = moof.readUInt32BE(p);
      p += 4;
    }
    if (tfFlags & 0x10) p += 4;
    if (tfFlags & 0x20) defFlags = moof.readUInt32BE(p);
    const tfdt = kids.find((c) => c.type === "tfdt");
    let baseTime = 0;
    if (tfdt) {
      baseTime =
        moof[tfdt.start] === 1 ? Number(moof.readBigUInt64BE(tfdt.start + 4)) : moof.readUInt32BE(tfdt.start + 4);
    }
    let duration = 0;
    let firstSampleSync: boolean | undefined;
    for (const trun of kids.filter((c) => c.type === "trun")) {
      const fl = moof.readUInt32BE(trun.start) & 0xffffff;
      const count = moof.readUInt32BE(trun.start + 4);
      let q = trun.start + 8;
      if (fl & 0x1) q += 4;
      let firstFlags: number | undefined;
      if (fl & 0x4) {
        firstFlags = moof.readUInt32BE(q);
        q += 4;
      }
      for (let i = 0; i < count && q <= trun.end; i++) {
        let d = defDuration;
        let f = i === 0 && firstFlags !== undefined ? firstFlags : defFlags;
        if (fl & 0x100) {
          d = moof.readUInt32BE(q);
          q += 4;
        }
        if (fl & 0x200) q += 4;
        if (fl & 0x400) {
          if (!(i === 0 && firstFlags !== undefined)) f = moof.readUInt32BE(q);
          q += 4;
        }
        if (fl & 0x800) q += 4;
        if (firstSampleSync === undefined) firstSampleSync = isSync(f);
        duration += d;
      }
    }
    out.push({ trackId, baseTime, duration, firstSampleSync: firstSampleSync ?? true });
  }
  return out;
}
