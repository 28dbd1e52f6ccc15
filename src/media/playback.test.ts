/**
 * Playback over recorder files (written by RecordFiles from mux.ts fragments, read back with boxes.ts): files are
 * placed on the wall clock by their prft and listed as one span; a range across files starts at the keyframe
 * fragment at or before its start, ends exactly at its end (the last fragment cut), has one rising timeline and
 * exactly the bytes announced; HLS segments start on keyframes; parameters are checked. (Real encoder output,
 * HTTP, auth and ffmpeg decoding: test/e2e/media-record-playback.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { AmiError } from "../core/errors.ts";
import { hlsSegments, Playback, parseDuration, parseTime, planBytes } from "./playback.ts";
import { children, parseInit, parseMoof } from "./protocols/fmp4/boxes.ts";
import { fragment, ftyp, moov } from "./protocols/fmp4/mux.ts";
import { fakeTrack } from "./protocols/fmp4/testing.ts";
import { RecordFiles } from "./record-file.ts";

const root = mkdtempSync(join(tmpdir(), "ami-playback-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TRACKS = [fakeTrack("video", 90_000), fakeTrack("audio", 48_000)];

let seq = 1;
/** One second of both tracks from stream time `t` s: 25 video samples (a keyframe first when `key`), 50 audio. */
function second(t: number, key: boolean) {
  const v = Array.from({ length: 25 }, (_, i) => ({
    data: Buffer.alloc(10, (t * 25 + i) & 0xff), // each sample's bytes its own
    duration: 3600,
    cts: 0,
    sync: i === 0 && key,
  }));
  const a = Array.from({ length: 50 }, () => ({ data: Buffer.alloc(4), duration: 960, cts: 0, sync: true }));
  return fragment(seq++, [
    { baseTime: t * 90_000, samples: v, withCts: true },
    { baseTime: t * 48_000, samples: a, withCts: false },
  ]);
}

/** 8 s recorded into 2 s files (4 of them); a keyframe every 2 s, at odd seconds... and 0. */
async function recordEight(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const files = new RecordFiles({ dir, segmentSeconds: 2, startMs: 1000, onError: assert.fail });
  files.init(ftyp(), moov(TRACKS));
  for (let i = 0; i < 8; i++) {
    const { moof, mdat } = second(50 + i, i % 2 === 0);
    files.fragment(moof, mdat);
  }
  await files.close();
}

test("a range across files: keyframe start, exact end, one timeline, the announced bytes", async () => {
  const before = Date.now() / 1000;
  await recordEight(join(root, "rec", "live", "a"));
  const pb = new Playback({ dir: join(root, "rec") });
  const spans = await pb.list("live/a");
  assert.equal(spans.length, 1);
  assert.equal(spans[0]!.duration, 8);
  const t0 = Date.parse(spans[0]!.start) / 1000;
  assert.ok(Math.abs(t0 - before) < 5, "placed on the wall clock by prft");
  assert.deepEqual(await pb.list("live/a", t0 + 3, t0 + 5), [
    { start: new Date(Math.round((t0 + 3) * 1000)).toISOString(), duration: 2 },
  ]);
  assert.deepEqual(await pb.list("live/none"), []);

  // 3.5 s .. 6.5 s: the keyframe at 2 s (file 2), through file 3, into file 4 cut at 6.5 s.
  const plan = (await pb.plan("live/a", t0 + 3.5, 3))!;
  assert.ok(Math.abs(plan.start - (t0 + 2)) < 1e-6, "starts at the keyframe before");
  assert.ok(Math.abs(plan.duration - 4.52) < 1e-6, `${plan.duration} s`);
  const out = await planBytes(plan);
  assert.equal(out.length, plan.bytes);
  const top = children(out, 0, out.length);
  assert.deepEqual(
    top.slice(0, 2).map((c) => c.type),
    ["ftyp", "moov"],
  );
  const tracks = parseInit(out.subarray(top[1]!.start - 8, top[1]!.end));
  const moofs = top.filter((c) => c.type === "moof");
  assert.equal(moofs.length, 5);
  const info = moofs.map((c) => parseMoof(out.subarray(c.start - 8, c.end), tracks));
  assert.deepEqual(
    info.map((f) => f[0]!.baseTime / 90_000),
    [0, 1, 2, 3, 4],
  );
  assert.deepEqual(
    info.map((f) => f[1]!.baseTime / 48_000),
    [0, 1, 2, 3, 4],
  );
  assert.equal(info[0]![0]!.firstSampleSync, true);
  assert.deepEqual(
    info.map((f) => f[0]!.duration / 90_000),
    [1, 1, 1, 1, 0.52],
    "the last fragment holds the samples that start before the end",
  );
  // Each moof is followed by its mdat, which holds the recorded samples of that second (of the cut one, the kept ones).
  moofs.forEach((c, k) => {
    const next = top[top.indexOf(c) + 1]!;
    assert.equal(next.type, "mdat");
    const video = info[k]![0]!.duration / 3600;
    const audio = info[k]![1]!.duration / 960;
    assert.equal(next.end - next.start, video * 10 + audio * 4);
    const expect = Buffer.concat(Array.from({ length: video }, (_, i) => Buffer.alloc(10, ((52 + k) * 25 + i) & 0xff)));
    assert.deepEqual(out.subarray(next.start, next.start + video * 10), expect, `fragment ${k}'s samples`);
  });
  // mfhd sequence numbers restart at 1 and rise.
  assert.deepEqual(
    moofs.map((c) => out.readUInt32BE(children(out, c.start, c.end)[0]!.start + 4)),
    [1, 2, 3, 4, 5],
  );
  // HLS: segments start on keyframe fragments once 4 s are in one.
  assert.deepEqual(
    hlsSegments(plan).map((s) => [s.from, s.to]),
    [
      [0, 4],
      [4, 5],
    ],
  );
  assert.equal(await pb.plan("live/a", t0 + 100, 10), undefined, "nothing recorded there");
});

test("parameters: RFC 3339 times and positive bounded durations, with clear errors", () => {
  assert.equal(parseTime("start", "2026-12-06T23:20:00Z"), Date.parse("2026-12-06T23:20:00Z") / 1000);
  assert.equal(parseTime("start", "2026-12-07T00:20:00.5+01:00"), Date.parse("2026-12-06T23:20:00.5Z") / 1000);
  for (const v of ["", "yesterday", "2026-12-06", "1765063200", "2026-13-45T99:00:00Z"])
    assert.throws(
      () => parseTime("start", v),
      (e: AmiError) => e.code === "AMI_INVALID_INPUT",
      v,
    );
  assert.equal(parseDuration("12.5"), 12.5);
  for (const v of ["", "0", "-1", "1e3", "abc", "86401"])
    assert.throws(
      () => parseDuration(v),
      (e: AmiError) => e.code === "AMI_INVALID_INPUT",
      v,
    );
});
