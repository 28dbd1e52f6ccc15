/**
 * The ladder's ffmpeg command: which rungs run for a source height, the argument list per encoder kind, and a
 * real ffmpeg run of it (FLV in on stdin, one FLV per rung on fd 3 and 4) checked with ffprobe: each rung has
 * its height, and its keyframes fall where the source's do.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { test } from "node:test";
import { runFfmpeg } from "../ffmpeg.ts";
import type { EncoderChoice } from "./encoders.ts";
import { bitsPerSecond, ladderArgs, planRungs, type Rung } from "./ladder.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };

const r360: Rung = { name: "360p", height: 360, videoBitrate: "800k" };
const r240: Rung = { name: "240p", height: 240, videoBitrate: "300k", fps: 15, audioBitrate: "64k" };
const r720: Rung = { name: "720p", height: 720, videoBitrate: "2.5M" };
const choice = (kind: EncoderChoice["kind"], codec: string, device: string | null = null): EncoderChoice => ({
  kind,
  codec,
  ok: true,
  error: null,
  device,
  tried: [],
});
const after = (args: string[], flag: string) => args.filter((_, i) => args[i - 1] === flag);

test("planRungs skips rungs above the source; no video height skips all", () => {
  assert.deepEqual(planRungs([r720, r360, r240], 480), { run: [r360, r240], skipped: [r720] });
  assert.deepEqual(planRungs([r360], 360), { run: [r360], skipped: [] });
  assert.deepEqual(planRungs([r360, r240], null), { run: [], skipped: [r360, r240] });
});

test("bitsPerSecond", () => {
  assert.equal(bitsPerSecond("2500k"), 2_500_000);
  assert.equal(bitsPerSecond("2.5M"), 2_500_000);
  assert.equal(bitsPerSecond("800000"), 800_000);
});

test("ladderArgs: one decode split per rung, fd 3 + i per rung, source keyframes, audio copy or AAC", () => {
  const a = ladderArgs(choice("software", "libx264"), [r360, r240]);
  assert.deepEqual(after(a, "-filter_complex"), [
    "[0:v:0]split=2[s0][s1];[s0]scale=-2:360,format=yuv420p[v0];[s1]fps=15,scale=-2:240,format=yuv420p[v1]",
  ]);
  assert.deepEqual(after(a, "-map"), ["[v0]", "0:a:0?", "[v1]", "0:a:0?"]);
  assert.deepEqual(after(a, "-force_key_frames"), ["source", "source"]);
  assert.deepEqual(after(a, "-c:a"), ["copy", "aac"]);
  assert.deepEqual(after(a, "-b:a"), ["64000"]);
  assert.deepEqual(after(a, "-b:v"), ["800000", "300000"]);
  assert.deepEqual(after(a, "-preset"), ["veryfast", "veryfast"]);
  assert.deepEqual(after(a, "-tune"), ["zerolatency", "zerolatency"]);
  assert.deepEqual(after(a, "-flush_packets").length, 2);
  assert.deepEqual(
    a.filter((x) => x.startsWith("pipe:")),
    ["pipe:0", "pipe:3", "pipe:4"],
  );

  const one = ladderArgs(choice("software", "libx264"), [{ ...r360, preset: "ultrafast" }]);
  assert.deepEqual(after(one, "-filter_complex"), ["[0:v:0]scale=-2:360,format=yuv420p[v0]"]);
  assert.deepEqual(after(one, "-preset"), ["ultrafast"]);

  const va = ladderArgs(choice("vaapi", "h264_vaapi", "/dev/dri/renderD128"), [r360]);
  assert.deepEqual(after(va, "-vaapi_device"), ["/dev/dri/renderD128"]);
  assert.ok(va.indexOf("-vaapi_device") < va.indexOf("-i"), "the device is a global option");
  assert.match(after(va, "-filter_complex")[0] ?? "", /format=nv12,hwupload\[v0\]$/);
  assert.deepEqual(after(va, "-c:v"), ["h264_vaapi"]);

  const qsv = ladderArgs(choice("qsv", "h264_qsv", "/dev/dri/renderD128"), [r360]);
  assert.deepEqual(after(qsv, "-init_hw_device"), ["qsv=hw:hw_any,child_device=/dev/dri/renderD128"]);
  const nv = ladderArgs(choice("nvenc", "h264_nvenc"), [r360]);
  assert.deepEqual(after(nv, "-c:v"), ["h264_nvenc"]);
  assert.deepEqual(after(nv, "-forced-idr"), ["1"]);
});

const collect = (r: Readable) =>
  new Promise<Buffer>((resolve) => {
    const parts: Buffer[] = [];
    r.on("data", (d: Buffer) => parts.push(d));
    r.once("close", () => resolve(Buffer.concat(parts)));
  });

function probe(file: string) {
  const args = ["-v", "error", "-select_streams", "v", "-show_entries", "stream=height:frame=pts_time,key_frame"];
  const r = spawnSync("ffprobe", [...args, "-of", "json", file], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    streams: { height: number }[];
    frames: { pts_time: string; key_frame: number }[];
  };
  const keys = j.frames.filter((f) => f.key_frame === 1).map((f) => Math.round(Number(f.pts_time)));
  return { height: j.streams[0]?.height, keys };
}

test(
  "the ladder command runs in real ffmpeg: each fd carries its rung, keyframes follow the source",
  opts,
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "ami-abr-ladder-"));
    try {
      // 3 s of 480p with a keyframe every second (-g 25 at 25 fps).
      const src = spawnSync(
        "ffmpeg",
        [
          ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25"],
          ...["-f", "lavfi", "-i", "sine", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"],
          ...["-c:a", "aac", "-f", "flv", "pipe:1"],
        ],
        { maxBuffer: 64 * 1024 * 1024 },
      );
      assert.equal(src.status, 0, String(src.stderr));
      const ff = runFfmpeg("ffmpeg", ladderArgs(choice("software", "libx264"), [r360, r240]), 2);
      const outs = [3, 4].map((fd) => collect(ff.proc.stdio[fd] as Readable));
      ff.proc.stdin.end(src.stdout);
      assert.equal(await ff.exited, 0, ff.stderr());
      const [o360, o240] = await Promise.all(outs);
      writeFileSync(join(dir, "360.flv"), o360 as Buffer);
      writeFileSync(join(dir, "240.flv"), o240 as Buffer);
      const p360 = probe(join(dir, "360.flv"));
      const p240 = probe(join(dir, "240.flv"));
      assert.equal(p360.height, 360);
      assert.equal(p240.height, 240);
      assert.deepEqual(p360.keys, [0, 1, 2]);
      assert.deepEqual(p240.keys, [0, 1, 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
