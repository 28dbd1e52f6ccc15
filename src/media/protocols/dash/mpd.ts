/**
 * MPEG-DASH manifest (ISO 23009-1 live profile, DASH-IF IOP) over the CMAF timeline HLS also serves. One track
 * per Representation: a video AdaptationSet and an audio AdaptationSet, each Representation with its own
 * single-track init and segments (`t<track>-init.mp4`, `t<track>-<time>.m4s`, cut from the muxed ones by
 * tracks.ts), a SegmentTemplate + SegmentTimeline (GOPs vary, so segment durations do too) and @bandwidth the
 * peak bitrate of its listed segments. Segments are addressed by `$Time$`, not `$Number$`: a track may lack a
 * segment (audio that stalled), and ffmpeg's DASH reader counts SegmentTimeline entries from 0 and finds its place
 * again by time after each refresh, which only addresses the right segment when the URL carries the time. Each publisher of the path (discontinuity sequence) is its own Period,
 * so a reconnect is a Period change, not a jump inside one timeline. Live streams are `dynamic` with the
 * server's clock as UTCTiming; once ended, `static`.
 */
import type { TrackInfo } from "../fmp4/boxes.ts";
import type { CmafTimeline, PeriodInfo, Segment } from "../fmp4/timeline.ts";
import { sliceOf, tracksOf } from "./tracks.ts";

/** What the MPD says about the stream's codecs (from the stream's sequence headers). */
export interface DashInfo {
  /** Used for a Representation with no listed segment to measure. */
  bandwidth: number;
  video?: { codec: string; width: number | null; height: number | null };
  audio?: { codec: string; sampleRate: number | null; channels: number | null };
  /** Absolute URL answering the server's time (urn:mpeg:dash:utc:http-iso:2014). */
  timeUrl?: string;
  /** Start each SegmentTimeline with an `<S t="0" d="1"/>` anchor (GStreamer's dashdemux, see `anchored`). */
  anchor?: boolean;
}

/**
 * GStreamer's dashdemux and dashdemux2 (1.22 and later) seek in a SegmentTimeline to segment
 * `(ts - run.start + firstS.start) / d` of the run holding `ts`: right only when the timeline's first `<S>`
 * starts at 0. A live window that slid (its first segment at the stream's age) puts them that far ahead of the
 * live edge at start, and each MPD refresh re-seeks the same way, so they wait for segments that do not exist yet
 * and play nothing. For them (souphttpsrc announces itself as GStreamer) each timeline starts with a one-tick
 * `<S t="0" d="1"/>` before the first listed segment's explicit `t`: a segment outside the time shift buffer,
 * never requested, that makes their first start 0 (they read `t="0"` as "no t", so even a later Period's timeline
 * starts at 0 for them). Other players get the timeline as it is.
 */
export const anchored = (userAgent: string | undefined): boolean => /\bGStreamer\b/i.test(userAgent ?? "");

/** Seconds as an xs:duration, rounded up to the millisecond (a maximum must not come out smaller). */
export const dur = (s: number) => `PT${(Math.ceil(Math.max(0, s) * 1000 - 1e-6) / 1000).toFixed(3)}S`;
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

/** The track files' names: the track id keeps video and audio apart, the disc the publishers. */
export const trackInitUri = (trackId: number, disc: number): string =>
  disc === 0 ? `t${trackId}-init.mp4` : `t${trackId}-init-${disc}.mp4`;

/** Listed segments split into runs of one discontinuity sequence each, oldest first. */
export function byPublisher(listed: Segment[]): Segment[][] {
  const runs: Segment[][] = [];
  for (const s of listed) {
    const run = runs.at(-1);
    if (run && run[0]?.disc === s.disc) run.push(s);
    else runs.push([s]);
  }
  return runs;
}

/**
 * `<S>` entries: `t` only where a segment does not start where the previous one ended (exactly: a player builds
 * the `$Time$` URL from it), and runs of equal durations as one entry with `r`.
 */
function segmentTimeline(run: Segment[], id: number, anchor = false): string {
  const out: { t?: number; d: number; r: number }[] = [];
  let end: number | undefined;
  for (const s of run) {
    const { t, d } = sliceOf(s, id) as { t: number; d: number };
    const last = out.at(-1);
    if (last && end === t && last.d === d) last.r++;
    else out.push(end === t ? { d, r: 0 } : { t, d, r: 0 });
    end = t + d;
  }
  if (anchor && out[0]?.t) out.unshift({ t: 0, d: 1, r: 0 });
  return out
    .map((e) => `<S${e.t === undefined ? "" : ` t="${e.t}"`} d="${e.d}"${e.r > 0 ? ` r="${e.r}"` : ""}/>`)
    .join("");
}

/** Peak bitrate (bit/s) of a track over the listed segments; undefined when none is listed. */
function peak(listed: Segment[], tr: TrackInfo): number | undefined {
  let max: number | undefined;
  for (const s of listed) {
    const x = sliceOf(s, tr.id);
    if (x && x.d > 0) max = Math.max(max ?? 0, (x.bytes * 8 * tr.timescale) / x.d);
  }
  return max === undefined ? undefined : Math.ceil(max);
}

/** Longest listed segment of any track, in seconds (maxSegmentDuration). */
function longest(listed: Segment[], tracks: TrackInfo[]): number {
  let max = 0;
  for (const s of listed) {
    max = Math.max(max, s.duration);
    for (const tr of tracks) {
      const x = sliceOf(s, tr.id);
      if (x) max = Math.max(max, x.d / tr.timescale);
    }
  }
  return max;
}

/** The video frame rate from sample counts: "30", "30000/1001", or undefined when it is not a steady rate. */
function frameRate(listed: Segment[], tr: TrackInfo): string | undefined {
  let n = 0;
  let d = 0;
  for (const s of listed) {
    const x = sliceOf(s, tr.id);
    if (x) [n, d] = [n + x.samples, d + x.d];
  }
  if (n < 2 || d <= 0) return undefined;
  const fps = (n * tr.timescale) / d;
  const whole = Math.round(fps);
  if (Math.abs(fps - whole) < 0.02 * whole) return String(whole);
  const ntsc = Math.round((fps * 1001) / 1000);
  if (Math.abs(fps - (ntsc * 1000) / 1001) < 0.02 * ntsc) return `${ntsc * 1000}/1001`;
  return undefined;
}

/** One Representation: a track of a timeline, its segments in the Period, and its file names. */
export interface RepInput {
  id: string;
  info: DashInfo;
  tr: TrackInfo;
  /** The timeline's listed segments (peak bitrate and frame rate are measured over them). */
  listed: Segment[];
  /** The segments of this Period that hold the track. */
  segs: Segment[];
  /** The track's media time at the Period start. */
  pto: number;
  init: string;
  media: string;
}

function representation(r: RepInput): string[] {
  const { tr, info } = r;
  const video = tr.kind === "video";
  const codec = video ? info.video?.codec : info.audio?.codec;
  const rep = [`id="${esc(r.id)}"`, `bandwidth="${peak(r.listed, tr) ?? Math.max(1, Math.round(info.bandwidth))}"`];
  if (codec) rep.push(`codecs="${esc(codec)}"`);
  const inner: string[] = [];
  if (video) {
    const { width, height } = info.video ?? {};
    if (width && height) rep.push(`width="${width}"`, `height="${height}"`, `sar="1:1"`);
    const fr = frameRate(r.listed, tr);
    if (fr) rep.push(`frameRate="${fr}"`);
  } else {
    const { sampleRate, channels } = info.audio ?? {};
    rep.push(`audioSamplingRate="${sampleRate || tr.timescale}"`);
    if (channels)
      inner.push(
        `        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="${channels}"/>`,
      );
  }
  return [
    `      <Representation ${rep.join(" ")}>`,
    ...inner,
    `        <SegmentTemplate timescale="${tr.timescale}" initialization="${esc(r.init)}" media="${esc(r.media)}" presentationTimeOffset="${r.pto}">`,
    `          <SegmentTimeline>${segmentTimeline(r.segs, tr.id, info.anchor)}</SegmentTimeline>`,
    "        </SegmentTemplate>",
    "      </Representation>",
  ];
}

/** An AdaptationSet of one kind. `aligned`: its Representations' segments start at the same instants. */
export function adaptationSet(id: number, kind: "video" | "audio", reps: RepInput[], aligned = true): string[] {
  const set = [`id="${id}"`, `contentType="${kind}"`, `mimeType="${kind}/mp4"`];
  set.push(`segmentAlignment="${aligned}"`, `startWithSAP="1"`);
  return [`    <AdaptationSet ${set.join(" ")}>`, ...reps.flatMap(representation), "    </AdaptationSet>"];
}

/** A track's Representation over one run of a timeline (`prefix`: the path of its files from the MPD's). */
export function trackRep(
  t: CmafTimeline,
  info: DashInfo,
  tr: TrackInfo,
  disc: number,
  run: Segment[],
  pto: number,
  prefix = "",
): RepInput {
  return {
    id: `${prefix}${tr.kind === "video" ? "v" : "a"}${tr.id}`,
    info,
    tr,
    listed: t.listed(),
    segs: run.filter((s) => sliceOf(s, tr.id)),
    pto,
    init: `${prefix}${trackInitUri(tr.id, disc)}`,
    media: `${prefix}t${tr.id}-$Time$.m4s`,
  };
}

/** The video and audio tracks of a discontinuity sequence, video first. */
export function tracksFor(t: CmafTimeline, disc: number): TrackInfo[] {
  const init = t.inits.get(disc);
  const tracks = (init ? tracksOf(init) : t.tracks).filter((x) => x.kind !== "other");
  // Video first: players pick the first set of a type, and readers of the old single set expect it.
  return tracks.sort((a, b) => (a.kind === b.kind ? a.id - b.id : a.kind === "video" ? -1 : 1));
}

/** The Period's start rescaled to a track: the same instant in every track of one publisher. */
export const ptoFor = (p: PeriodInfo, tr: TrackInfo): number => Math.round((p.t0 * tr.timescale) / p.timescale);

/** The MPD around its Periods: live (dynamic, with the server's clock) or ended (static). */
export function mpdDocument(t: CmafTimeline, info: DashInfo, periods: string[], now: number, extra = 0): string {
  const listed = t.listed();
  const window = listed.reduce((a, s) => a + s.duration, 0);
  const maxSeg = Math.max(longest(listed, t.tracks), extra);
  // The HLS target duration is fixed for the timeline's life; a longer segment (the first GOP) still bounds it.
  const target = Math.max(t.targetDuration, maxSeg);
  const isStatic = t.ended;
  const mpdAttrs = isStatic
    ? [`type="static"`, `mediaPresentationDuration="${dur(window)}"`]
    : [
        `type="dynamic"`,
        `availabilityStartTime="${new Date(Math.floor(t.availabilityStart ?? now)).toISOString()}"`,
        `publishTime="${new Date(now).toISOString()}"`,
        `minimumUpdatePeriod="${dur(target)}"`,
        `timeShiftBufferDepth="${dur(Math.max(window, target))}"`,
        `suggestedPresentationDelay="${dur(Math.min(3 * target, Math.max(window, target)))}"`,
      ];
  mpdAttrs.push(`maxSegmentDuration="${dur(target)}"`, `minBufferTime="${dur(Math.min(2, target))}"`);
  // The server's clock: players otherwise ask a public time server (dash.js: time.akamai.com), which an offline
  // or firewalled player cannot reach, to place the live edge. http-iso first (fresh on each sync), the clock
  // at render time as the fallback.
  const timing = isStatic
    ? []
    : [
        ...(info.timeUrl
          ? [`  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="${esc(info.timeUrl)}"/>`]
          : []),
        `  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="${new Date(now).toISOString()}"/>`,
      ];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" ${mpdAttrs.join(" ")}>`,
    ...periods,
    ...timing,
    "</MPD>",
    "",
  ].join("\n");
}

export function dashManifest(t: CmafTimeline, info: DashInfo, now = Date.now()): string {
  const listed = t.listed();
  const isStatic = t.ended;
  const period = (disc: number, run: Segment[], p: PeriodInfo) => [
    `  <Period id="p${disc}" start="${dur(p.start)}">`,
    ...tracksFor(t, disc).flatMap((tr) =>
      adaptationSet(tr.id, tr.kind as "video" | "audio", [trackRep(t, info, tr, disc, run, ptoFor(p, tr))]),
    ),
    "  </Period>",
  ];
  const periods: string[] = [];
  let at = 0;
  for (const run of byPublisher(listed)) {
    const first = run[0] as Segment;
    const known = t.periods.get(first.disc);
    const timescale = known?.timescale ?? t.main?.timescale ?? 1000;
    // Live: where the Period sits on the wall clock. Ended: the Periods play back to back from 0, like a file.
    const p: PeriodInfo = isStatic
      ? { start: at, t0: first.tfdt, timescale }
      : (known ?? { start: first.start, t0: first.tfdt, timescale });
    periods.push(...period(first.disc, run, p));
    at += run.reduce((a, s) => a + s.duration, 0);
  }
  // Nothing listed yet: an empty Period for the current publisher keeps the manifest well formed.
  if (periods.length === 0)
    periods.push(...period(t.discontinuity, [], { start: 0, t0: 0, timescale: t.main?.timescale ?? 1000 }));
  return mpdDocument(t, info, periods, now);
}
