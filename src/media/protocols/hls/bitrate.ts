/**
 * Segment bit rates of a media playlist as RFC 8216bis defines them for BANDWIDTH and AVERAGE-BANDWIDTH: the peak
 * is the largest bit rate of any contiguous run of segments lasting 0.5 to 1.5 target durations; the average is
 * all segments' bits over the playlist's duration.
 */
export interface SizedSegment {
  duration: number;
  bytes: number;
}

export interface SegmentBitrates {
  peak: number;
  average: number;
}

/** Undefined when no run of segments is long enough to measure (a peak must span half a target duration). */
export function segmentBitrates(segs: SizedSegment[], target: number): SegmentBitrates | undefined {
  let peak = 0;
  let bytes = 0;
  let seconds = 0;
  for (let i = 0; i < segs.length; i++) {
    let b = 0;
    let d = 0;
    for (let j = i; j < segs.length; j++) {
      b += (segs[j] as SizedSegment).bytes;
      d += (segs[j] as SizedSegment).duration;
      if (d > 1.5 * target) break;
      if (d >= 0.5 * target) peak = Math.max(peak, (8 * b) / d);
    }
    bytes += (segs[i] as SizedSegment).bytes;
    seconds += (segs[i] as SizedSegment).duration;
  }
  if (peak === 0 || seconds === 0) return undefined;
  return { peak, average: (8 * bytes) / seconds };
}
