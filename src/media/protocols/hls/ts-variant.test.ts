import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { Frame } from "../../frame.ts";
import { CmafMuxer } from "../fmp4/muxer.ts";
import { CmafTimeline } from "../fmp4/timeline.ts";
import { type Clip, demuxAll, ffmpegTs, run } from "../mpegts/testing.ts";
import { TsVariant, tsPlaylist, tsSegmentMsn } from "./ts-variant.ts";

/** Frames of an ffmpeg clip through the CMAF muxer into a timeline, as the packager does. */
async function timelineOf(clip: Clip, seconds: number): Promise<{ t: CmafTimeline; frames: Frame[] }> {
  const frames = demuxAll(await ffmpegTs(clip, seconds)).frames;
  const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 20 });
  const m = new CmafMuxer(0.2, {
    init: (ftyp, moov) => t.setInit(ftyp, moov),
    fragment: (moof, mdat) => t.addFragment(moof, mdat),
    restart: () => t.restart(),
    skipped: (kind, reason) => assert.fail(`${kind} skipped: ${reason}`),
  });
  for (const f of frames) m.push(f);
  m.end();
  t.end();
  return { t, frames };
}

const media = (fs: Frame[], kind: Frame["kind"]) => fs.filter((f) => f.kind === kind && !f.config);

describe("TsVariant: the fMP4 timeline's segments as MPEG-TS", () => {
  for (const clip of ["h264-aac", "h265-opus"] as const) {
    it(`${clip}: same segments, every sample, continuous counters, decodable`, async () => {
      const { t, frames } = await timelineOf(clip, 5);
      const listed = t.listed();
      assert.ok(listed.length >= 4, `${listed.length} segments`);
      const text = tsPlaylist(t);
      assert.match(text, /^#EXTM3U\n#EXT-X-VERSION:3\n/);
      assert.doesNotMatch(text, /EXT-X-PART|EXT-X-MAP|PRELOAD/);
      const uris = text.split("\n").filter((l) => l && !l.startsWith("#"));
      assert.deepEqual(
        uris.map(tsSegmentMsn),
        listed.map((s) => s.msn),
      );
      assert.match(text, /#EXT-X-ENDLIST\n$/);

      const v = new TsVariant(t);
      // Asked out of order (a player starts near the live edge, then another reads from the start).
      const last = listed.at(-1)?.msn as number;
      assert.ok(v.segment(last));
      const segs = listed.map((s) => v.segment(s.msn) as Buffer);
      assert.equal(v.segment(last + 1) === undefined, true);
      // Each segment starts with the PAT and then its keyframe: a player can start at any of them.
      for (const [i, ts] of segs.entries()) {
        assert.equal(ts.length % 188, 0);
        assert.equal(ts.readUInt16BE(1) & 0x1fff, 0, `segment ${i} starts with the PAT`);
        const one = media(demuxAll(ts).frames, "video");
        assert.ok(one[0]?.keyframe, `segment ${i} starts on a keyframe`);
      }
      // Concatenated as a player reads them: no continuity error, every video frame, same timing and bytes.
      const all = Buffer.concat(segs);
      const back = demuxAll(all);
      assert.deepEqual(back.errors, []);
      const want = media(frames, "video");
      const got = media(back.frames, "video");
      assert.equal(got.length, want.length);
      for (let i = 0; i < want.length; i++) {
        assert.equal((got[i] as Frame).dts, (want[i] as Frame).dts, `video dts ${i}`);
        assert.ok((got[i] as Frame).data.equals((want[i] as Frame).data), `video frame ${i}`);
      }
      // Audio: everything from the first keyframe on (the fMP4 timeline starts there too), within a millisecond.
      const aWant = media(frames, "audio").filter((f) => f.dts >= (want[0] as Frame).dts);
      const aGot = media(back.frames, "audio");
      assert.ok(Math.abs(aGot.length - aWant.length) <= 1, `audio ${aGot.length} of ${aWant.length}`);
      assert.ok(aGot[1]?.data.equals((aWant.find((f) => Math.abs(f.dts - (aGot[1] as Frame).dts) <= 1) as Frame).data));

      const dir = await mkdtemp(join(tmpdir(), "ami-tsv-"));
      try {
        const file = join(dir, "all.ts");
        await writeFile(file, all);
        const { stderr } = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
        assert.equal(stderr.trim(), "");
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }

  it("a playlist of a live timeline: no ENDLIST, the window's media sequence", async () => {
    const t = new CmafTimeline({ segmentSeconds: 1, partSeconds: 0.2, segmentCount: 3 });
    const frames = demuxAll(await ffmpegTs("h264", 6)).frames;
    const m = new CmafMuxer(0.2, {
      init: (ftyp, moov) => t.setInit(ftyp, moov),
      fragment: (moof, mdat) => t.addFragment(moof, mdat),
      restart: () => t.restart(),
      skipped: () => {},
    });
    for (const f of frames) m.push(f);
    const text = tsPlaylist(t);
    assert.doesNotMatch(text, /ENDLIST/);
    assert.equal(text.match(/#EXTINF/g)?.length, 3);
    assert.match(text, new RegExp(`#EXT-X-MEDIA-SEQUENCE:${t.listed()[0]?.msn}\n`));
    assert.match(text, /#EXT-X-TARGETDURATION:1\n/);
    // The open segment is not made (the server holds its request until it completes), nor one never cut.
    // (Booleans compared, never Buffers: a failed assert would diff their whole text.)
    const v = new TsVariant(t);
    assert.ok(t.open);
    assert.equal(v.segment(t.open?.msn as number) === undefined, true);
    assert.equal(v.segment(999) === undefined, true);
    assert.ok(v.segment(t.listed()[0]?.msn as number));
    assert.equal(v.cached, t.segments.filter((s) => s.complete && s.msn <= (t.listed()[0]?.msn as number)).length);
  });
});
