/**
 * Recording and restream with real ffmpeg: an RTMP publisher's stream is recorded to segmented MP4 files that
 * ffprobe plays with the recorded duration, and pushed at run time to a second RTMP listener (an ffmpeg
 * `-listen 1` server writing a file) that receives H.264 + AAC; a dead destination is retried with backoff.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { redactUrl } from "../../src/core/redact.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamStatus } from "../../src/media/ops/index.ts";
import { recordStart, recordStop } from "../../src/media/ops/record.ts";
import { restreamAdd, restreamList, restreamRemove } from "../../src/media/ops/restream.ts";
import { freePort } from "../../src/test/cli.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const TOKEN = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "ami-media-rec-"));
let m: MediaServer;
let ctx: OpContext;

before(async () => {
  if (!hasFfmpeg) return;
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    retryInitialMs: 200,
    retryMaxMs: 1000,
    recordSegmentSeconds: 2,
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir, apiToken: TOKEN });
  const config = configSchema.parse({
    media: { httpPort: Number(new URL(m.httpUrl).port) },
    control: { token: TOKEN },
  });
  ctx = makeContext({ config, configPath: undefined, log: silentLogger });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("record start|stop writes playable segmented MP4 files with the recorded duration", opts, async () => {
  const seconds = 7;
  const waiting = await recordStart.run({ path: "live/rec" }, ctx);
  assert.equal(waiting.state, "waiting", "a recording can start before the publisher");
  assert.equal(waiting.dir, join(dir, "recordings", "live", "rec"));
  const pub = publish(`${m.rtmpUrl}/live/rec`, seconds);
  await until(
    "recording",
    async () => (await streamStatus.run({ path: "live/rec" }, ctx)).recording?.state === "recording",
  );
  assert.equal(await pub.exit, 0);
  await until("the stream to end", async () => !m.hub.get("live/rec"));
  await until(
    "the recording to wait for the next publisher",
    async () => m.recordings.get("live/rec")?.state === "waiting",
  );
  const done = await recordStop.run({ path: "live/rec" }, ctx);
  assert.ok(done.files >= 3, `${done.files} files of ~2 s for ${seconds} s`);
  let total = 0;
  for (const f of readdirSync(waiting.dir).sort()) {
    const p = await ffprobe(join(waiting.dir, f));
    assert.deepEqual(kinds(p), ["audio:aac", "video:h264"], f);
    total += Number(p.format.duration);
  }
  assert.ok(Math.abs(total - seconds) <= 1.5, `recorded ${total} s of ${seconds} s`);
  await assert.rejects(recordStop.run({ path: "live/rec" }, ctx), { code: "M_NOT_FOUND" });
});

test(
  "restream add|remove|list: a second RTMP listener receives the stream; a dead destination retries",
  opts,
  async () => {
    const seconds = 6;
    const port = await freePort();
    const outFile = join(dir, "restreamed.flv");
    const listener = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-nostdin", "-loglevel", "error", "-listen", "1", "-timeout", "30"],
        ...["-i", `rtmp://127.0.0.1:${port}/live/out`, "-c", "copy", "-y", outFile],
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const listenerExit = new Promise((r) => listener.once("close", r));
    const deadPort = await freePort();
    const dead = `rtmp://127.0.0.1:${deadPort}/live/nobody`;
    try {
      const to = `rtmp://127.0.0.1:${port}/live/out`;
      assert.equal((await restreamAdd.run({ path: "live/rs", to }, ctx)).state, "waiting");
      await restreamAdd.run({ path: "live/rs", to: dead }, ctx);
      await assert.rejects(restreamAdd.run({ path: "live/rs", to: "http://x/y" }, ctx), { code: "AMI_INVALID_INPUT" });
      const pub = publish(`${m.rtmpUrl}/live/rs`, seconds);
      const up = await until("the restream to go live", async () => {
        const r = (await restreamList.run({ path: "live/rs" }, ctx)).restreams.find((x) => x.to === redactUrl(to));
        return r?.state === "live" ? r : undefined;
      });
      assert.equal(up.retries, 0);
      const failing = await until("the dead destination to retry", async () => {
        const r = (await restreamList.run({}, ctx)).restreams.find((x) => x.to === redactUrl(dead));
        return r && r.retries >= 2 ? r : undefined;
      });
      assert.ok(failing.lastError, "the last error is reported");
      const removed = await restreamRemove.run({ path: "live/rs", to: dead }, ctx);
      assert.equal(removed.state, "stopped");
      assert.equal((await streamStatus.run({ path: "live/rs" }, ctx)).restreams?.length, 1);
      assert.equal(await pub.exit, 0);
      await listenerExit;
      const final = (await restreamList.run({ path: "live/rs" }, ctx)).restreams[0];
      assert.ok((final?.bytesOut ?? 0) > 0);
      const p = await ffprobe(outFile);
      assert.deepEqual(kinds(p), ["audio:aac", "video:h264"]);
      const d = Number(p.format.duration);
      assert.ok(Math.abs(d - seconds) <= 1.5, `restreamed ${d} s of ${seconds} s`);
      await restreamRemove.run({ path: "live/rs", to }, ctx);
      assert.deepEqual((await restreamList.run({}, ctx)).restreams, []);
    } finally {
      if (listener.exitCode === null) listener.kill("SIGKILL");
    }
  },
);
