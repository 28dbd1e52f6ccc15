/**
 * MPEG-DASH manifest (ISO 23009-1, live profile) over the same CMAF segments as HLS: one muxed representation
 * with a SegmentTemplate + SegmentTimeline. Live streams are `dynamic`; once the publisher leaves, `static`.
 */
import { type CmafTimeline, initUri } from "../fmp4/timeline.ts";
import type { VariantInfo } from "../hls/playlist.ts";

const dur = (s: number) => `PT${s.toFixed(3)}S`;
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");

export function dashManifest(t: CmafTimeline, v: VariantInfo, now = Date.now()): string {
  const listed = t.listed();
  const main = t.main;
  const timescale = main?.timescale ?? 1000;
  const first = listed[0];
  const window = listed.reduce((a, s) => a + s.duration, 0);
  const target = Math.max(t.options.segmentSeconds, t.maxSegment);
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
  const timeline = listed.map((s, i) => {
    const d = Math.round(s.duration * timescale);
    // Consecutive segments need no `t`: it follows from the previous one.
    const prev = listed[i - 1];
    const contiguous = prev && Math.abs(prev.t + Math.round(prev.duration * timescale) - s.t) <= 1;
    return contiguous ? `<S d="${d}"/>` : `<S t="${s.t}" d="${d}"/>`;
  });
  const rep = [`id="0"`, `bandwidth="${Math.max(1, Math.round(v.bandwidth))}"`, `codecs="${esc(v.codecs.join(","))}"`];
  if (v.width && v.height) rep.push(`width="${v.width}"`, `height="${v.height}"`);
  const hasVideo = t.tracks.some((x) => x.kind === "video");
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" ${mpdAttrs.join(" ")} minBufferTime="${dur(Math.min(2, target))}">`,
    `  <Period id="0" start="PT0S">`,
    `    <AdaptationSet id="0" mimeType="${hasVideo ? "video" : "audio"}/mp4" segmentAlignment="true" startWithSAP="1">`,
    `      <Representation ${rep.join(" ")}>`,
    `        <SegmentTemplate timescale="${timescale}" initialization="${initUri(t.discontinuity)}" media="seg$Number$.m4s" startNumber="${first?.msn ?? 0}"${isStatic && first ? ` presentationTimeOffset="${first.t}"` : ""}>`,
    `          <SegmentTimeline>${timeline.join("")}</SegmentTimeline>`,
    "        </SegmentTemplate>",
    "      </Representation>",
    "    </AdaptationSet>",
    "  </Period>",
    "</MPD>",
    "",
  ].join("\n");
}
