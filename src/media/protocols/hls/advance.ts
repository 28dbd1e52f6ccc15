/**
 * LL-HLS blocking playlist reload limits (draft-pantos-hls-rfc8216bis 6.2.5.2): a request for a segment or part
 * too far beyond the playlist's end is a client error answered at once with 400, not held; one within the
 * limits is held for up to three target durations, then answered 503.
 */
import type { CmafTimeline } from "../fmp4/timeline.ts";

/**
 * The Advance Part Limit: three divided by the part target when it is below one second, else three (parts).
 * The spec's quotient is rounded up so a whole number of parts covers three seconds.
 */
export const advancePartLimit = (partTarget: number): number => (partTarget < 1 ? Math.ceil(3 / partTarget - 1e-9) : 3);

/**
 * Is `_HLS_msn`/`_HLS_part` beyond the advance limits? More than two segments after the last one (the open
 * segment counts), or a part more than the Advance Part Limit after the last part. A part of a later segment is
 * at least its index + 1 parts ahead, plus one for each segment in between (the lower bound: a segment has at
 * least one part), so valid requests are never refused.
 */
export function beyondAdvanceLimit(t: CmafTimeline, msn: number, part?: number): boolean {
  const last = t.segments.at(-1);
  const lastMsn = last?.msn ?? -1;
  if (msn > lastMsn + 2) return true;
  if (part === undefined || msn < lastMsn) return false;
  const ahead = msn === lastMsn ? part - ((last?.parts.length ?? 0) - 1) : part + (msn - lastMsn);
  return ahead > advancePartLimit(t.partTarget);
}

/** How long a blocking reload (and a held part or segment) waits before giving up: three target durations. */
export const holdMs = (t: CmafTimeline): number => 3000 * t.targetDuration;
