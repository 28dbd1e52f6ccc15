/**
 * HLS playlists (RFC 8216 + the Low-Latency HLS additions of draft-pantos-hls-rfc8216bis): a multivariant
 * playlist naming the codecs, and one media playlist that lists segments (classic HLS) and, near the live edge,
 * the parts with EXT-X-PART, EXT-X-PRELOAD-HINT and EXT-X-SERVER-CONTROL (LL-HLS).
 */
import { type CmafTimeline, initUri, type Segment } from "../fmp4/timeline.ts";

export interface VariantInfo {
  /** BANDWIDTH: the peak segment bit rate (bits/s). */
  bandwidth: number;
  /** AVERAGE-BANDWIDTH: the average segment bit rate, when measured. */
  averageBandwidth?: number;
  codecs: string[];
  width: number | null;
  height: number | null;
}

/** The EXT-X-STREAM-INF attributes of a variant (BANDWIDTH, AVERAGE-BANDWIDTH, CODECS, RESOLUTION). */
export function streamInfAttrs(v: VariantInfo): string[] {
  const attrs = [`BANDWIDTH=${Math.max(1, Math.round(v.bandwidth))}`];
  if (v.averageBandwidth) attrs.push(`AVERAGE-BANDWIDTH=${Math.max(1, Math.round(v.averageBandwidth))}`);
  if (v.codecs.length) attrs.push(`CODECS="${v.codecs.join(",")}"`);
  if (v.width && v.height) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
  return attrs;
}

/**
 * No EXT-X-INDEPENDENT-SEGMENTS here: in a multivariant playlist it would promise it for every segment to come,
 * and a GOP longer than the target duration makes a segment that does not start with a keyframe (the media
 * playlist says so while such a segment is listed).
 */
export function multivariantPlaylist(v: VariantInfo, uri = "stream.m3u8"): string {
  return ["#EXTM3U", "#EXT-X-VERSION:9", `#EXT-X-STREAM-INF:${streamInfAttrs(v).join(",")}`, uri, ""].join("\n");
}

const fix = (n: number) => n.toFixed(5).replace(/0+$/, "").replace(/\.$/, "");

/**
 * The media playlist. With `skip` (a client's `_HLS_skip=YES`), a delta update (LL-HLS 6.2.5.1): segments older
 * than CAN-SKIP-UNTIL seconds before the end are replaced by EXT-X-SKIP.
 */
export function mediaPlaylist(t: CmafTimeline, o: { skip?: boolean; query?: string } = {}): string {
  // A query carried by segment and part URIs (rebase.ts: per-session decode times).
  const q = o.query ?? "";
  const listed = t.listed();
  const open = t.ended ? undefined : t.open;
  // Both fixed for the timeline's life (RFC 8216 6.2.1; LL-HLS PART-TARGET likewise), reconnects included.
  const target = t.targetDuration;
  const partTarget = t.partTarget;
  const first = listed[0] ?? open;
  // CAN-SKIP-UNTIL must be at least six target durations (LL-HLS 4.4.3.8).
  const skipUntil = 6 * target;
  const last = open ?? listed.at(-1);
  const end = last ? last.start + last.duration : 0;
  let skipped = 0;
  // Never skip past a discontinuity: its EXT-X-DISCONTINUITY tag would go with the skipped segments, and clients
  // (hls.js) count discontinuities from the tags they see, so the segments after it would get the wrong sequence.
  const skippable = (s: Segment, i: number) => s.start + s.duration <= end - skipUntil && !(i > 0 && s.discontinuity);
  if (o.skip && !t.ended) while (skipped < listed.length && skippable(listed[skipped]!, skipped)) skipped++;
  const lines = [
    "#EXTM3U",
    `#EXT-X-VERSION:${skipped > 0 ? 10 : 9}`,
    `#EXT-X-TARGETDURATION:${target}`,
    // PART-HOLD-BACK must be at least 3 part targets (LL-HLS 4.4.3.8).
    `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,${t.ended ? "" : `CAN-SKIP-UNTIL=${skipUntil},`}PART-HOLD-BACK=${fix(partTarget * 3.5)}`,
    `#EXT-X-PART-INF:PART-TARGET=${fix(partTarget)}`,
    `#EXT-X-MEDIA-SEQUENCE:${first?.msn ?? 0}`,
  ];
  if (first?.disc) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${first.disc}`);
  // Only while every listed segment starts with a keyframe (a GOP longer than the target is cut without one).
  if ([...listed, ...(open ? [open] : [])].every((s) => s.parts[0]?.independent ?? true))
    lines.push("#EXT-X-INDEPENDENT-SEGMENTS");
  if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
  const shown = listed.slice(skipped);
  const head = shown[0] ?? open;
  // Each discontinuity starts with its own init (a new publisher's encoder); the first shown segment names its own.
  const header = (s: Segment) => {
    if (s !== head && !s.discontinuity) return [];
    const out = s.discontinuity && s !== first ? ["#EXT-X-DISCONTINUITY"] : [];
    out.push(`#EXT-X-MAP:URI="${initUri(s.disc)}"`, `#EXT-X-PROGRAM-DATE-TIME:${new Date(s.wallclock).toISOString()}`);
    return out;
  };
  if (!head) lines.push(`#EXT-X-MAP:URI="${initUri(t.discontinuity)}"`);
  // Parts are listed for segments within three target durations of the live edge.
  const edge = (open ?? listed.at(-1))?.start ?? 0;
  // Between publishers no parts and no hint are listed: a client seeing them assumes the next segment continues
  // the current discontinuity (hls.js makes it its "fragment hint"), and fails with a discontinuity-sequence
  // mismatch when the returning publisher's first segment comes with EXT-X-DISCONTINUITY. No ENDLIST either:
  // players keep reloading until the publisher is back or the end grace is over.
  const between = t.between;
  const partLines = (parts: { n: number; duration: number; independent: boolean }[]) =>
    (between ? [] : parts).map(
      (p) =>
        `#EXT-X-PART:DURATION=${fix(p.duration)},URI="part${p.n}.m4s${q}"${p.independent ? ",INDEPENDENT=YES" : ""}`,
    );
  for (const s of shown) {
    lines.push(...header(s));
    if (!t.ended && s.start >= edge - 3 * target) lines.push(...partLines(s.parts));
    lines.push(`#EXTINF:${fix(s.duration)},`, `seg${s.msn}.m4s${q}`);
  }
  if (open) {
    lines.push(...header(open));
    lines.push(...partLines(open.parts));
  }
  if (t.ended) lines.push("#EXT-X-ENDLIST");
  else if (!between) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part${t.nextPart}.m4s${q}"`);
  return `${lines.join("\n")}\n`;
}
