/**
 * The ABR MPD of a path with a ladder (`/<path>/master.mpd`, DASH's master.m3u8): one Period for the current
 * publisher with one video AdaptationSet holding the source's video and each live rendition's video as
 * Representations (files under `<rendition>/`), and the source's audio. Each rendition is its own timeline
 * (its own transcoder output, media time from 0 at its first frame), so the tracks are placed on the source's
 * presentation timeline by the wall clock: a timeline's media time t is at availabilityStart + start of its
 * Period + (t - t0) / timescale. The Period starts where every Representation has media, and each one's
 * presentationTimeOffset is its media time at that instant. The renditions' keyframes follow the source's,
 * but their wall-clock anchors are measured, not exact, so the set does not claim segmentAlignment.
 */
import type { TrackInfo } from "../fmp4/boxes.ts";
import type { CmafTimeline, PeriodInfo, Segment } from "../fmp4/timeline.ts";
import {
  adaptationSet,
  byPublisher,
  type DashInfo,
  dashManifest,
  dur,
  mpdDocument,
  type RepInput,
  trackRep,
  tracksFor,
} from "./mpd.ts";

export interface LadderRung {
  /** The rendition's path relative to the source's (its name). */
  name: string;
  t: CmafTimeline;
  info: DashInfo;
}

interface Placed {
  t: CmafTimeline;
  info: DashInfo;
  prefix: string;
  disc: number;
  run: Segment[];
  p: PeriodInfo;
  /** Wall-clock seconds (since the source's availabilityStart) of the Period's start, t0. */
  anchor: number;
}

/** A timeline's current publisher run placed on the source's clock; undefined while it lists nothing. */
function place(t: CmafTimeline, info: DashInfo, prefix: string, ast: number): Placed | undefined {
  const run = byPublisher(t.listed()).at(-1);
  const first = run?.[0];
  const p = first && t.periods.get(first.disc);
  if (!run || !first || !p || t.availabilityStart === undefined) return undefined;
  return { t, info, prefix, disc: first.disc, run, p, anchor: (t.availabilityStart - ast) / 1000 + p.start };
}

export function ladderManifest(source: CmafTimeline, info: DashInfo, rungs: LadderRung[], now = Date.now()): string {
  const ast = source.availabilityStart;
  const main = ast === undefined || source.ended ? undefined : place(source, info, "", ast);
  // Ended or not started: the source's own MPD says so as well as any.
  if (!main || ast === undefined) return dashManifest(source, info, now);
  const placed = [main, ...rungs.flatMap((r) => place(r.t, r.info, `${r.name}/`, ast) ?? [])];
  const start = Math.max(...placed.map((x) => x.anchor));
  const reps = (kind: "video" | "audio", from: Placed[]): RepInput[] =>
    from.flatMap((x) =>
      tracksFor(x.t, x.disc)
        .filter((tr: TrackInfo) => tr.kind === kind)
        .map((tr) => {
          const pto = Math.round((x.p.t0 / x.p.timescale + (start - x.anchor)) * tr.timescale);
          return trackRep(x.t, x.info, tr, x.disc, x.run, pto, x.prefix);
        }),
    );
  const video = reps("video", placed);
  const audio = reps("audio", [main]);
  const period = [
    `  <Period id="p${main.disc}" start="${dur(start)}">`,
    ...(video.length > 0 ? adaptationSet(1, "video", video, false) : []),
    ...(audio.length > 0 ? adaptationSet(2, "audio", audio) : []),
    "  </Period>",
  ];
  const longest = Math.max(...placed.map((x) => x.t.targetDuration));
  return mpdDocument(source, info, period, now, longest);
}
