/**
 * Recording through the in-process CMAF muxer with real media: an enhanced-RTMP publisher sends H.265 + Opus
 * (real libx265 / libopus output); the recorded fragmented MP4 files hold hevc + opus, each starts at time 0,
 * their durations add up to what was published, and ffmpeg decodes them without an error. The file being
 * written is readable while the recording runs (fragments go to disk as they come), and a second publisher on
 * the path starts new files.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { hevcTags, interleave, opusTags, type Tag } from "./helpers/ertmp-source.ts";
import { ffprobe, kinds, until } from "./helpers/media-tools.ts";
import { publishTags } from "./helpers/rtmp-publisher.ts";

const hasX265 = spawnSync("ffmpeg", ["-hide_banner", "-encoders"], { encoding: "utf8" }).stdout?.includes("libx265");
const opts = { skip: hasX265 ? false : "ffmpeg with libx265 is not installed" };
const dir = mkdtempSync(join(tmpdir(), "ami-media-record-"));
let m: MediaServer;

before(async () => {
  if (!hasX265) return;
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    endGraceSeconds: 0,
    recordSegmentSeconds: 2,
    recordPath: dir,
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger);
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Run a child to its end (asynchronously: the server answers from this process's event loop). */
async function run(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout.on("data", (d) => {
    out += d;
  });
  p.stderr.on("data", (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((r) => p.once("close", r));
  return { code, out, err };
}

/** Each stream's start time in a file (s). */
async function startTimes(file: string): Promise<number[]> {
  const r = await run("ffprobe", ["-v", "error", "-show_entries", "stream=start_time", "-of", "json", file]);
  assert.equal(r.code, 0, r.err);
  return (JSON.parse(r.out).streams as { start_time: string }[]).map((s) => Number(s.start_time));
}

/** Publish the tags at twice real time; `during` runs while the publisher is still connected. */
async function publish(path: string, tags: Tag[], during?: () => Promise<void>): Promise<void> {
  const p = await publishTags(`${m.rtmpUrl}/${path}`, tags);
  await during?.();
  await p.close();
}

test("H.265 + Opus over enhanced RTMP is recorded: hevc + opus files from time 0, decodable", opts, async () => {
  const seconds = 7;
  const rec = m.recordings.start("live/rec265");
  let inProgress: { file: string; probed: string[] } | undefined;
  await publish("live/rec265", interleave(hevcTags(seconds), opusTags(seconds)), async () => {
    // The publisher is still on: the newest file is open, its fragments already on disk.
    const files = readdirSync(rec.dir).sort();
    const file = join(rec.dir, files.at(-1) as string);
    inProgress = { file, probed: kinds(await ffprobe(file)) };
  });
  assert.deepEqual(inProgress?.probed, ["audio:opus", "video:hevc"], "the file being written is readable");
  await until(
    "the recording to wait for the next publisher",
    async () => m.recordings.get("live/rec265")?.state === "waiting",
  );
  const first = readdirSync(rec.dir).sort();
  assert.ok(first.length >= 3, `${first.length} files of ~2 s for ${seconds} s`);
  let total = 0;
  for (const f of first) {
    const file = join(rec.dir, f);
    const p = await ffprobe(file);
    assert.deepEqual(kinds(p), ["audio:opus", "video:hevc"], f);
    total += Number(p.format.duration);
    for (const t of await startTimes(file)) assert.ok(t >= 0 && t < 0.1, `${f} starts at ${t} s`);
    const dec = await run("ffmpeg", ["-v", "error", "-i", file, "-f", "null", "-"]);
    assert.equal(dec.code, 0, dec.err);
    assert.equal(dec.err.trim(), "", `${f}: no decode errors`);
  }
  assert.ok(Math.abs(total - seconds) <= 1.2, `recorded ${total} s of ${seconds} s`);

  // A new publisher on the path: new files (a new start time in their names), H.265 only this time.
  await publish("live/rec265", hevcTags(2));
  await until("the second publish to be recorded", async () => m.recordings.get("live/rec265")?.state === "waiting");
  const done = await m.recordings.stop("live/rec265");
  assert.equal(done.lastError, null);
  const added = readdirSync(rec.dir)
    .sort()
    .filter((f) => !first.includes(f));
  assert.ok(added.length >= 1, "the second publisher's file");
  const starts = new Set([...first, ...added].map((f) => f.split("-")[0]));
  assert.equal(starts.size, 2, "one start time per publisher");
  assert.deepEqual(kinds(await ffprobe(join(rec.dir, added[0] as string))), ["video:hevc"]);
  assert.equal(done.files, first.length + added.length);
});
