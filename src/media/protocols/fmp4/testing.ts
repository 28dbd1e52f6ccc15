/** For tests: a track codec with an empty sample entry, enough for `moov` and the boxes read back from it. */
import type { TrackCodec } from "./sample-entries.ts";
import { box } from "./write.ts";

export const fakeTrack = (kind: "video" | "audio", timescale: number): TrackCodec => ({
  kind,
  codec: kind,
  timescale,
  entry: box(kind === "video" ? "avc1" : "mp4a"),
  sample: () => undefined,
});
