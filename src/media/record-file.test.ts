/**
 * Recording files from muxer output (fragments built by mux.ts, read back from disk with boxes.ts): cuts before
 * the first keyframe fragment past the segment length, each file's decode times start at 0 with one offset for
 * both tracks, mvhd gets the duration on close, a configuration change starts a new file, a write failure is
 * reported without throwing. (Real encoder output through a live server: test/e2e/media-record*.test.ts.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseInit, parseMoof } from "./protocols/fmp4/boxes.ts";
import { fragment, ftyp, moov } from "./protocols/fmp4/mux.ts";
import { fakeTrack } from "./protocols/fmp4/testing.ts";
import { RecordFiles } from "./record-file.ts";

const root = mkdtempSync(join(tmpdir(), "ami-recfile-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TRACKS = [fakeTrack("video", 90_000), fakeTrack("audio", 48_000)];

let seq = 1;
/** One second of both tracks from stream time `t` s (audio 20 ms early, as interleaving leaves it). */
function second(t: number, keyframe: boolean) {
  const v = Array.from({ length: 25 }, (_, i) => ({
    data: Buffer.alloc(10),
    duration: 3600,
    cts: 0,
    sync: i === 0 && keyframe,
  }));
  const a = Array.from({ length: 50 }, () => ({ data: Buffer.alloc(4), duration: 960, cts: 0, sync: true }));
  return fragment(seq++, [
    { baseTime: t * 90_000, samples: v, withCts: true },
    { baseTime: (t - 0.02) * 48_000, samples: a, withCts: false },
  ]);
}

/** A recorded file read back: mvhd duration (ms) and each fragment's per-track tfdt. */
function readBack(file: string) {
  const b = readFileSync(file);
  let p = 0;
  let moovBox: Buffer | undefined;
  const tfdts: number[][] = [];
  while (p + 8 <= b.length) {
    const size = b.readUInt32BE(p);
    const type = b.toString("latin1", p + 4, p + 8);
    if (type === "moov") moovBox = b.subarray(p, p + size);
    if (type === "moof")
      tfdts.push(parseMoof(b.subarray(p, p + size), parseInit(moovBox as Buffer)).map((t) => t.baseTime));
    p += size;
  }
  assert.equal(p, b.length, "whole boxes only");
  return { durationMs: (moovBox as Buffer).readUInt32BE(8 + 8 + 16), tfdts };
}

test("files cut at keyframes past the segment length, start at 0, get their duration; a restart opens a new file", async () => {
  const dir = mkdtempSync(join(root, "cut-"));
  const errors: Error[] = [];
  const files = new RecordFiles({ dir, segmentSeconds: 2, startMs: 1234, onError: (e) => errors.push(e) });
  files.init(ftyp(), moov(TRACKS));
  // Stream time starts at 100 s; the fragments at 104 s is not a keyframe: no cut there.
  for (let i = 0; i < 7; i++) {
    const { moof, mdat } = second(100 + i, i !== 4);
    files.fragment(moof, mdat);
  }
  files.restart();
  files.init(ftyp(), moov(TRACKS));
  const { moof, mdat } = second(200, true);
  files.fragment(moof, mdat);
  await files.close();
  assert.deepEqual(errors, []);
  const names = readdirSync(dir).sort();
  assert.deepEqual(names, ["1234-00000.mp4", "1234-00001.mp4", "1234-00002.mp4", "1234-00003.mp4"]);
  const got = names.map((n) => readBack(join(dir, n)));
  assert.deepEqual(
    got.map((g) => g.durationMs),
    [2000, 3000, 2000, 1000],
  );
  // Audio starts 20 ms before video: the audio is at 0, the video 20 ms (1800 ticks) later, in every file.
  assert.deepEqual(got[0]?.tfdts, [
    [1800, 0],
    [91_800, 48_000],
  ]);
  assert.deepEqual(got[1]?.tfdts, [
    [1800, 0],
    [91_800, 48_000],
    [181_800, 96_000],
  ]);
  assert.deepEqual(got[3]?.tfdts, [[1800, 0]]);
});

test("a file that starts on a non-keyframe waits for one", async () => {
  const dir = mkdtempSync(join(root, "wait-"));
  const files = new RecordFiles({ dir, segmentSeconds: 2, startMs: 1, onError: assert.fail });
  files.init(ftyp(), moov(TRACKS));
  for (const key of [false, true]) {
    const { moof, mdat } = second(key ? 11 : 10, key);
    files.fragment(moof, mdat);
  }
  await files.close();
  assert.deepEqual(readdirSync(dir), ["1-00000.mp4"]);
  assert.deepEqual(readBack(join(dir, "1-00000.mp4")).tfdts, [[1800, 0]]);
});

test("a write failure is reported, not thrown", async () => {
  const errors: Error[] = [];
  const files = new RecordFiles({
    dir: join(root, "missing", "dir"),
    segmentSeconds: 2,
    startMs: 1,
    onError: (e) => errors.push(e),
  });
  files.init(ftyp(), moov(TRACKS));
  for (let i = 0; i < 3; i++) {
    const { moof, mdat } = second(i, true);
    files.fragment(moof, mdat);
  }
  await files.close();
  assert.ok(errors.length >= 1);
  assert.match(errors[0]?.message ?? "", /ENOENT/);
});

/** One second of video only, `kb` KiB of it: big enough to fill a small disk quickly. */
function bigSecond(t: number, kb: number) {
  const v = Array.from({ length: 25 }, (_, i) => ({
    data: Buffer.alloc(Math.round((kb * 1024) / 25)),
    duration: 3600,
    cts: 0,
    sync: i === 0,
  }));
  return fragment(seq++, [{ baseTime: t * 90_000, samples: v, withCts: true }]);
}

const VIDEO = [fakeTrack("video", 90_000)];
const mountDir = join(root, "tmpfs");
const canMount =
  process.getuid?.() === 0 &&
  spawnSync("mkdir", ["-p", mountDir]).status === 0 &&
  spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mountDir]).status === 0;

test("a full disk: files are cut back to whole fragments or deleted, never left empty or torn; recording resumes with space", {
  skip: canMount ? false : "needs root to mount a small tmpfs",
}, async () => {
  try {
    // Leave ~300 KiB: room for one 200 KiB fragment, not two.
    const free = () =>
      Number(spawnSync("df", ["-B1", "--output=avail", mountDir], { encoding: "utf8" }).stdout.split("\n")[1]);
    writeFileSync(join(mountDir, "filler"), Buffer.alloc(Math.max(0, free() - 300 * 1024)));
    const dir = join(mountDir, "rec");
    mkdirSync(dir);
    const errors: Error[] = [];
    const files = new RecordFiles({ dir, segmentSeconds: 10, startMs: 7, onError: (e) => errors.push(e) });
    files.init(ftyp(), moov(VIDEO));
    for (let t = 0; t < 4; t++) {
      const { moof, mdat } = bigSecond(t, 200);
      files.fragment(moof, mdat);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(
      errors.some((e) => /ENOSPC/.test(e.message)),
      String(errors),
    );
    rmSync(join(mountDir, "filler"));
    await new Promise((r) => setTimeout(r, 2100)); // the pause after a failure
    for (let t = 4; t < 6; t++) {
      const { moof, mdat } = bigSecond(t, 20);
      files.fragment(moof, mdat);
    }
    await files.close();
    const names = readdirSync(dir).sort();
    assert.ok(names.length >= 2, String(names));
    for (const n of names) {
      const { tfdts } = readBack(join(dir, n)); // whole boxes only
      assert.ok(tfdts.length >= 1, `${n} holds no fragment`);
    }
  } finally {
    spawnSync("umount", [mountDir]);
  }
});
