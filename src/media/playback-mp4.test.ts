/**
 * Progressive MP4 of a playback plan (playback-mp4.ts) over recorder files: ftyp, moov, mdat in that order; sample
 * tables that give back every kept sample's bytes, duration, composition offset and sync flag from the mdat; an edit
 * list for B-frame offsets; exactly the bytes announced. (Real encoder output and ffprobe/ffmpeg/Chromium:
 * test/e2e/media-record-playback.test.ts.)
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type Piece, Playback, writePieces } from "./playback.ts";
import { progressive } from "./playback-mp4.ts";
import { type Child, children } from "./protocols/fmp4/boxes.ts";
import { fragment, ftyp, moov } from "./protocols/fmp4/mux.ts";
import { fakeTrack } from "./protocols/fmp4/testing.ts";
import { RecordFiles } from "./record-file.ts";

const root = mkdtempSync(join(tmpdir(), "ami-playback-mp4-"));
after(() => rmSync(root, { recursive: true, force: true }));

const TRACKS = [fakeTrack("video", 90_000), fakeTrack("audio", 48_000)];
/** Composition offsets of a B-frame GOP pattern (I P B B ...), in 3600-tick frames. */
const CTS = [2, 4, 1, 1, 4, 1, 1];

async function record(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const files = new RecordFiles({ dir, segmentSeconds: 2, startMs: 1000, onError: assert.fail });
  files.init(ftyp(), moov(TRACKS));
  for (let t = 0; t < 6; t++) {
    const v = Array.from({ length: 25 }, (_, i) => ({
      data: Buffer.alloc(10 + (i % 3), (t * 25 + i) & 0xff),
      duration: 3600,
      cts: (CTS[i % CTS.length] as number) * 3600,
      sync: i === 0 && t % 2 === 0,
    }));
    const a = Array.from({ length: 50 }, (_, i) => ({ data: Buffer.alloc(4, i), duration: 960, cts: 0, sync: true }));
    const { moof, mdat } = fragment(t + 1, [
      { baseTime: t * 90_000, samples: v, withCts: true },
      { baseTime: t * 48_000, samples: a, withCts: false },
    ]);
    files.fragment(moof, mdat);
  }
  await files.close();
}

async function bytesOf(list: Piece[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await writePieces(list, { write: async (parts) => void out.push(...parts.map((b) => Buffer.from(b))) });
  return Buffer.concat(out);
}

const kid = (b: Buffer, c: Child, type: string) => children(b, c.start, c.end).find((k) => k.type === type) as Child;
const path = (b: Buffer, c: Child, ...types: string[]) => types.reduce((at, t) => kid(b, at, t), c);
const u32s = (b: Buffer, c: Child, from: number) => {
  const out: number[] = [];
  for (let p = c.start + from; p + 4 <= c.end; p += 4) out.push(b.readUInt32BE(p));
  return out;
};

test("a range as progressive MP4: moov first, tables that find every kept sample, an edit list for B-frames", async () => {
  await record(join(root, "rec", "live", "m"));
  const pb = new Playback({ dir: join(root, "rec") });
  const t0 = Date.parse((await pb.list("live/m"))[0]!.start) / 1000;
  // 2.5 s .. 5.51 s: from the keyframe at 2 s, the last second cut at 5.51 s (13 video frames of its 25, 26 audio
  // frames of 50; the end is off every sample boundary: the range is placed on the wall clock to the millisecond).
  const plan = (await pb.plan("live/m", t0 + 2.5, 3.01))!;
  const mp4 = await progressive(plan);
  const out = Buffer.concat([mp4.head, await bytesOf(mp4.body)]);
  assert.equal(out.length, mp4.bytes, "the announced length");
  const top = children(out, 0, out.length);
  assert.deepEqual(
    top.map((c) => c.type),
    ["ftyp", "moov", "mdat"],
  );
  const mv = top[1]!;
  assert.equal(children(out, mv.start, mv.end).filter((c) => c.type === "mvex").length, 0, "not fragmented");
  const traks = children(out, mv.start, mv.end).filter((c) => c.type === "trak");
  assert.equal(traks.length, 2);
  const mvhd = kid(out, mv, "mvhd");
  assert.equal(out.readUInt32BE(mvhd.start + 16), 3520, "mvhd: 3.52 s at 1000/s (video: 3 s + 13 frames)");

  const [video, audio] = traks as [Child, Child];
  const stbl = path(out, video, "mdia", "minf", "stbl");
  assert.deepEqual(
    children(out, stbl.start, stbl.end).map((c) => c.type),
    ["stsd", "stts", "ctts", "stss", "stsz", "stsc", "stco"],
  );
  const n = 3 * 25 + 13;
  assert.deepEqual(u32s(out, kid(out, stbl, "stts"), 4), [1, n, 3600]);
  assert.deepEqual(u32s(out, kid(out, stbl, "stss"), 4), [2, 1, 51], "keyframes at 2 s and 4 s");
  const sizes = u32s(out, kid(out, stbl, "stsz"), 12);
  assert.equal(sizes.length, n);
  const stco = u32s(out, kid(out, stbl, "stco"), 8);
  assert.deepEqual(u32s(out, kid(out, stbl, "stsc"), 8), [1, 25, 1, 4, 13, 1]);
  // Each sample's bytes, found through stsc + stco + stsz, are the recorded ones.
  let s = 0;
  stco.forEach((off, chunk) => {
    let at = off;
    for (let i = 0; i < (chunk < 3 ? 25 : 13); i++, s++) {
      const frame = 50 + s;
      assert.deepEqual(
        out.subarray(at, at + sizes[s]!),
        Buffer.alloc(10 + ((s % 25) % 3), frame & 0xff),
        `sample ${s}`,
      );
      at += sizes[s]!;
    }
  });
  const ctts = u32s(out, kid(out, stbl, "ctts"), 8);
  assert.deepEqual(ctts.slice(0, 6), [1, 7200, 1, 14400, 2, 3600]);
  // B-frames: presentation starts at the first frame's composition time (2 frames in), as the edit list says.
  const elst = path(out, video, "edts", "elst");
  assert.deepEqual(u32s(out, elst, 4), [1, 3520, 7200, 0x10000]);
  const mdhd = path(out, video, "mdia", "mdhd");
  assert.equal(out.readUInt32BE(mdhd.start + 16), n * 3600);

  const astbl = path(out, audio, "mdia", "minf", "stbl");
  assert.deepEqual(
    children(out, astbl.start, astbl.end).map((c) => c.type),
    ["stsd", "stts", "stsz", "stsc", "stco"],
    "audio: every sample a sync sample, no offsets, one size",
  );
  assert.deepEqual(u32s(out, kid(out, astbl, "stsz"), 4), [4, 3 * 50 + 26]);
  const achunks = u32s(out, kid(out, astbl, "stco"), 8);
  assert.deepEqual(out.subarray(achunks[1]!, achunks[1]! + 8), Buffer.from([0, 0, 0, 0, 1, 1, 1, 1]));
});

test("the progressive MP4 of a plan is streamed in file ranges, the head alone in memory", async () => {
  const pb = new Playback({ dir: join(root, "rec") });
  const t0 = Date.parse((await pb.list("live/m"))[0]!.start) / 1000;
  const plan = (await pb.plan("live/m", t0, 6))!;
  const mp4 = await progressive(plan);
  assert.ok(mp4.body.every((p) => !Buffer.isBuffer(p) && typeof p !== "function"));
  assert.ok(mp4.head.length < 4096, `${mp4.head.length} byte head`);
  assert.equal(mp4.bytes - mp4.head.length, 6 * (274 + 50 * 4), "the mdat holds the samples, no moofs");
});

test("past 4 GiB of samples: co64 chunk offsets and a 64-bit mdat size (worked out from the moofs alone)", async () => {
  const init = Buffer.concat([ftyp(), moov([fakeTrack("video", 90_000)])]);
  const samples = Array.from({ length: 50 }, (_, i) => ({
    data: Buffer.alloc(1),
    duration: 3600,
    cts: 0,
    sync: i === 0,
  }));
  const frags = [0, 1].map((k) => {
    const { moof } = fragment(k + 1, [{ baseTime: k * 50 * 3600, samples, withCts: false }]);
    // Each sample claims 50 MB: two fragments of 50 are 5 GB (nothing is read: sizes come from the trun).
    const traf = children(moof, 8, moof.length).find((c) => c.type === "traf")!;
    const trun = children(moof, traf.start, traf.end).find((c) => c.type === "trun")!;
    for (let i = 0; i < 50; i++) moof.writeUInt32BE(50_000_000, trun.start + 12 + 12 * i + 4);
    return { offset: k * 3e9, size: 0, moof: () => moof, moofLen: moof.length, time: k * 2, duration: 2, sync: true };
  });
  const plan = { init, start: 0, duration: 4, frags, bytes: 0 } as unknown as Parameters<typeof progressive>[0];
  const mp4 = await progressive(plan);
  const top = children(mp4.head, 0, mp4.head.length - 16);
  assert.deepEqual(
    top.map((c) => c.type),
    ["ftyp", "moov"],
  );
  assert.equal(mp4.head.readUInt32BE(mp4.head.length - 16), 1, "a 64-bit mdat size");
  assert.equal(mp4.head.toString("latin1", mp4.head.length - 12, mp4.head.length - 8), "mdat");
  assert.equal(Number(mp4.head.readBigUInt64BE(mp4.head.length - 8)), 16 + 5e9);
  assert.equal(mp4.bytes, mp4.head.length + 5e9);
  const stbl = path(mp4.head, top[1]!, "trak", "mdia", "minf", "stbl");
  const co64 = kid(mp4.head, stbl, "co64");
  assert.ok(co64, "co64, not stco");
  assert.deepEqual(
    [0, 1].map((i) => Number(mp4.head.readBigUInt64BE(co64.start + 8 + 8 * i))),
    [mp4.head.length, mp4.head.length + 2.5e9],
  );
  assert.deepEqual(
    mp4.body.map((p) => {
      const r = p as { from: number; to: number };
      return [r.from, r.to - r.from];
    }),
    [
      [frags[0]!.moofLen + 8, 2.5e9],
      [3e9 + frags[1]!.moofLen + 8, 2.5e9],
    ],
    "each trun's bytes, from where its data offset points",
  );
});
