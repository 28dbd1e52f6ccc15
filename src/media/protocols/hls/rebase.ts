/**
 * Per-session decode times for GStreamer's legacy hlsdemux (the default `playbin` of GStreamer 1.22). It places
 * a fragment at the sum of the EXTINFs before it in the first playlist it loaded, while qtdemux stamps buffers
 * with the fragment's tfdt (our media time since the stream began): the sink then waits the difference, the age
 * of the window's first segment, before showing anything. Such a client gets `stream.m3u8?base=<ms>` from the
 * multivariant playlist (the window's start when it was served) and segment/part URIs carrying it; their tfdts
 * are rewritten to count from that base (on the timeline's continuous clock, so a reconnect stays monotonic).
 * Only the small moof boxes are copied; other clients get the shared bytes.
 */
import { children, type TrackInfo } from "../fmp4/boxes.ts";
import type { Segment } from "../fmp4/timeline.ts";

/** The legacy hlsdemux and souphttpsrc announce themselves as GStreamer. */
export const wantsRebase = (userAgent: string | undefined): boolean => /\bGStreamer\b/i.test(userAgent ?? "");

/** `base` of a request: milliseconds, or undefined when absent or malformed. */
export function parseBase(q: string | null): number | undefined {
  if (q === null || !/^\d{1,15}$/.test(q)) return undefined;
  return Number(q);
}

/**
 * `data` (moof + mdat pairs of `seg`, or of one of its parts) with every track's tfdt moved to the continuous
 * timeline less `baseMs`. Unknown tracks and a result below 0 keep/clamp the value.
 */
export function rebase(data: Buffer, seg: Segment, tracks: TrackInfo[], baseMs: number): Buffer {
  const main = tracks.find((t) => t.kind === "video") ?? tracks[0];
  if (!main) return data;
  // Seconds the timeline added to this publisher's media time (0 before any reconnect).
  const offset = (seg.t - seg.tfdt) / main.timescale;
  const out: Buffer[] = [];
  for (const top of children(data, 0, data.length)) {
    const whole = data.subarray(top.start - 8, top.end);
    if (top.type !== "moof") {
      out.push(whole);
      continue;
    }
    const moof = Buffer.from(whole);
    for (const traf of children(moof, 8, moof.length).filter((c) => c.type === "traf")) {
      const kids = children(moof, traf.start, traf.end);
      const tfhd = kids.find((c) => c.type === "tfhd");
      const tfdt = kids.find((c) => c.type === "tfdt");
      const track = tfhd && tracks.find((t) => t.id === moof.readUInt32BE(tfhd.start + 4));
      if (!tfdt || !track) continue;
      const shift = Math.round((offset - baseMs / 1000) * track.timescale);
      if (moof[tfdt.start] === 1) {
        const v = Number(moof.readBigUInt64BE(tfdt.start + 4)) + shift;
        moof.writeBigUInt64BE(BigInt(Math.max(0, v)), tfdt.start + 4);
      } else {
        const v = moof.readUInt32BE(tfdt.start + 4) + shift;
        moof.writeUInt32BE(Math.min(0xffffffff, Math.max(0, v)), tfdt.start + 4);
      }
    }
    out.push(moof);
  }
  return Buffer.concat(out);
}
