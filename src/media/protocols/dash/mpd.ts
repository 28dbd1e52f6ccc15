/**
 * MPEG-DASH manifest (ISO 23009-1, live profile) over the same CMAF segments as HLS: one muxed representation
 * with a SegmentTemplate + SegmentTimeline per Period. Each publisher of the path (discontinuity sequence) is its
 * own Period with its own init segment, so a reconnect is a Period change, not a jump inside one timeline (its
 * timestamps restart and its codec parameters may differ). Live streams are `dynamic`; once ended, `static`.
 */
import { type CmafTimeline, initUri, type PeriodInfo, type Segment } from "../fmp4/timeline.ts";
import type { VariantInfo } from "../hls/playlist.ts";

const dur = (s: number) => `PT${Math.max(0, s).toFixed(3)}S`;
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

/** Listed segments split into runs of one discontinuity sequence each, oldest first. */
function byPublisher(listed: Segment[]): Segment[][] {
  const runs: Segment[][] = [];
  for (const s of listed) {
    const run = runs.at(-1);
    if (run && run[0]?.disc === s.disc) run.push(s);
    else runs.push([s]);
  }
  return runs;
}

function segmentTimeline(run: Segment[], timescale: number): string {
  return run
    .map((s, i) => {
      const d = Math.round(s.duration * timescale);
      // Consecutive segments need no `t`: it follows from the previous one.
      const prev = run[i - 1];
      const contiguous = prev && Math.abs(prev.tfdt + Math.round(prev.duration * timescale) - s.tfdt) <= 1;
      return contiguous ? `<S d="${d}"/>` : `<S t="${s.tfdt}" d="${d}"/>`;
    })
    .join("");
}

export function dashManifest(t: CmafTimeline, v: VariantInfo, now = Date.now()): string {
  const listed = t.listed();
  const window = listed.reduce((a, s) => a + s.duration, 0);
  const target = t.targetDuration;
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
  const rep = [`id="0"`, `bandwidth="${Math.max(1, Math.round(v.bandwidth))}"`, `codecs="${esc(v.codecs.join(","))}"`];
  if (v.width && v.height) rep.push(`width="${v.width}"`, `height="${v.height}"`);
  const mime = t.tracks.some((x) => x.kind === "video") ? "video" : "audio";
  const period = (disc: number, run: Segment[], p: PeriodInfo) => [
    `  <Period id="p${disc}" start="${dur(p.start)}">`,
    `    <AdaptationSet id="0" mimeType="${mime}/mp4" segmentAlignment="true" startWithSAP="1">`,
    `      <Representation ${rep.join(" ")}>`,
    `        <SegmentTemplate timescale="${p.timescale}" initialization="${initUri(disc)}" media="seg$Number$.m4s" startNumber="${run[0]?.msn ?? 0}" presentationTimeOffset="${p.t0}">`,
    `          <SegmentTimeline>${segmentTimeline(run, p.timescale)}</SegmentTimeline>`,
    "        </SegmentTemplate>",
    "      </Representation>",
    "    </AdaptationSet>",
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
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" ${mpdAttrs.join(" ")} minBufferTime="${dur(Math.min(2, target))}">`,
    ...periods,
    // The server's clock, in the manifest: players otherwise ask a public time server (dash.js: time.akamai.com),
    // which an offline or firewalled player cannot reach, to place the live edge.
    ...(isStatic
      ? []
      : [`  <UTCTiming schemeIdUri="urn:mpeg:dash:utc:direct:2014" value="${new Date(now).toISOString()}"/>`]),
    "</MPD>",
    "",
  ].join("\n");
}
