/**
 * Run-time changes survive a restart: a pull (looping file source), a recording and a restream (to this server's
 * own RTMP port) are saved in <data dir>/state.json as they are made; a new MediaServer on the same data dir has
 * them back and running. A corrupt state file is logged and kept aside, and the service starts empty; an entry
 * that can no longer start is dropped with a log line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { createLogger, silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { freePort } from "../../src/test/cli.ts";
import { until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const root = mkdtempSync(join(tmpdir(), "ami-media-state-"));
const clip = join(root, "clip.mp4");
let media: Record<string, unknown>;

before(async () => {
  if (!hasFfmpeg) return;
  const gen = spawnSync("ffmpeg", [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
    ...["-f", "lavfi", "-i", "sine", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"],
    ...["-c:a", "aac", "-y", clip],
  ]);
  assert.equal(gen.status, 0, String(gen.stderr));
  // A fixed RTMP port: the restream destination points at it, before and after the restart.
  media = {
    rtmpPort: await freePort(),
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    retryInitialMs: 200,
    retryMaxMs: 1000,
  };
});

after(() => rmSync(root, { recursive: true, force: true }));

const start = (dataDir: string, log = silentLogger) =>
  MediaServer.start(configSchema.parse({ media }).media, log, { dataDir });

test("pulls, recordings and restreams are saved as they change and running again after a restart", opts, async () => {
  const dir = join(root, "svc");
  const file = join(dir, "state.json");
  const to = `rtmp://127.0.0.1:${media.rtmpPort}/live/copy`;
  let m = await start(dir);
  try {
    assert.equal(existsSync(file), false, "nothing saved before anything changed");
    m.pulls.start(clip, "live/pulled");
    m.recordings.start("live/pulled");
    m.restreams.add("live/pulled", to);
    m.restreams.add("live/pulled", "rtmp://127.0.0.1:9/live/dropme");
    await m.restreams.remove("live/pulled", "rtmp://127.0.0.1:9/live/dropme");
    assert.deepEqual(JSON.parse(readFileSync(file, "utf8")), {
      version: 1,
      pulls: [{ path: "live/pulled", source: clip }],
      recordings: [{ path: "live/pulled" }],
      restreams: [{ path: "live/pulled", to }],
    });
    await until("the copy to arrive before the restart", async () => m.hub.get("live/copy"));
  } finally {
    await m.close();
  }
  assert.equal(JSON.parse(readFileSync(file, "utf8")).pulls.length, 1, "a shutdown does not clear the state");

  m = await start(dir);
  try {
    await until("the pull to be live again", async () => m.pulls.get("live/pulled")?.state === "live");
    await until("the recording to record again", async () => m.recordings.get("live/pulled")?.state === "recording");
    await until("the restream to be live again", async () => m.restreams.list("live/pulled")[0]?.state === "live");
    await until("the restreamed copy to be published again", async () => m.hub.get("live/copy")?.stats.videoCodec);
    const recDir = m.recordings.get("live/pulled")?.dir as string;
    await until("recorded files from both runs", async () => readdirSync(recDir).length >= 2);
    // Stopping is saved too: nothing comes back after the next restart.
    await m.pulls.stop("live/pulled");
    await m.recordings.stop("live/pulled");
    await m.restreams.remove("live/pulled", to);
  } finally {
    await m.close();
  }
  m = await start(dir);
  try {
    assert.deepEqual([m.pulls.list(), m.recordings.list(), m.restreams.list()], [[], [], []]);
  } finally {
    await m.close();
  }
});

test("a corrupt state file is logged and kept aside; the service starts empty", opts, async () => {
  for (const [name, body] of [
    ["garbage", "{not json"],
    ["wrong shape", JSON.stringify({ version: 1, pulls: [{ path: 3 }], recordings: [], restreams: [] })],
  ]) {
    const dir = mkdtempSync(join(root, "corrupt-"));
    writeFileSync(join(dir, "state.json"), body);
    const lines: string[] = [];
    const m = await start(dir, createLogger({ write: (l) => lines.push(l) }));
    try {
      assert.deepEqual(m.pulls.list(), [], name);
      const err = lines
        .map((l) => JSON.parse(l))
        .find((l) => l.level === "error" && /state file is unreadable/.test(l.msg));
      assert.ok(err, `${name}: a clear error is logged`);
      const aside = readdirSync(dir).filter((f) => f.startsWith("state.json.corrupt-"));
      assert.equal(aside.length, 1, `${name}: the bad file is kept`);
      assert.equal(readFileSync(join(dir, aside[0] as string), "utf8"), body);
      assert.equal(err.keptAs, join(dir, aside[0] as string));
      // The service works and saves a fresh state.
      m.recordings.start("live/r");
      assert.deepEqual(JSON.parse(readFileSync(join(dir, "state.json"), "utf8")).recordings, [{ path: "live/r" }]);
    } finally {
      await m.close();
    }
  }
});

test("an entry that cannot start again is dropped with a log line; the others are restored", opts, async () => {
  const dir = mkdtempSync(join(root, "gone-"));
  const state = {
    version: 1,
    pulls: [{ path: "live/gone", source: join(root, "deleted.mp4") }],
    recordings: [{ path: "live/kept" }],
    restreams: [],
  };
  writeFileSync(join(dir, "state.json"), JSON.stringify(state));
  const lines: string[] = [];
  const m = await start(dir, createLogger({ write: (l) => lines.push(l) }));
  try {
    assert.deepEqual(m.pulls.list(), []);
    assert.equal(m.recordings.get("live/kept")?.state, "waiting");
    assert.ok(lines.some((l) => /cannot restore a pull; dropped/.test(l) && l.includes("deleted.mp4")));
    const saved = JSON.parse(readFileSync(join(dir, "state.json"), "utf8"));
    assert.deepEqual([saved.pulls, saved.recordings], [[], [{ path: "live/kept" }]]);
  } finally {
    await m.close();
  }
});
