/**
 * Pull sources and SRT ingest with real ffmpeg peers: `stream start --source rtsp://...` (the op, over the media
 * service's HTTP API) pulls from an RTSP source, the stream appears as HLS, and the source dying and coming back
 * is reconnected; a non-H.264 source fails clearly; SRT publish with streamid=publish:<path> plays back, and
 * garbage datagrams on the SRT port do not hurt it.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamList, streamStatus } from "../../src/media/ops/index.ts";
import { streamStart, streamStop } from "../../src/media/ops/pull.ts";
import { freePort } from "../../src/test/cli.ts";
import { startRtspSource } from "./helpers/media-rtsp-source.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const TOKEN = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "ami-media-pull-"));
let m: MediaServer;
let ctx: OpContext;

before(async () => {
  if (!hasFfmpeg) return;
  // No end grace: the SRT test probes the finished playlist (ENDLIST, full duration) right after the end.
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    retryInitialMs: 300,
    retryMaxMs: 2000,
    endGraceSeconds: 0,
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

const pullOf = async (path: string) => (await streamStatus.run({ path }, ctx)).pull;

test(
  "stream start --source rtsp://: HLS carries H.264 + AAC; the source dying and coming back is reconnected",
  opts,
  async () => {
    const port = await freePort();
    let src = await startRtspSource(port);
    try {
      const started = await streamStart.run({ source: src.url, path: "live/cam" }, ctx);
      assert.equal(started.path, "live/cam");
      assert.equal(started.source, src.url);
      await until("the pull to go live", async () => (await pullOf("live/cam"))?.state === "live");
      await until("an HLS segment", async () => (await fetch(`${m.httpUrl}/live/cam/stream.m3u8`)).status === 200);
      assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/live/cam/index.m3u8`)), ["audio:aac", "video:h264"]);
      const live = await streamStatus.run({ path: "live/cam" }, ctx);
      assert.equal(live.publisher?.protocol, "pull");
      assert.deepEqual([live.width, live.height], [320, 240]);

      await src.stop();
      const down = await until("the pull to notice the source is gone", async () => {
        const p = await pullOf("live/cam");
        return p && p.state !== "live" && p.retries >= 1 ? p : undefined;
      });
      assert.ok(down.lastError, "the last error is reported");
      const listed = await streamList.run({}, ctx);
      assert.ok(
        listed.streams.some((s) => s.path === "live/cam" && s.pull?.source === src.url),
        "a reconnecting pull is listed",
      );

      src = await startRtspSource(port);
      const back = await until("the pull to reconnect", async () => {
        const s = await streamStatus.run({ path: "live/cam" }, ctx);
        return s.live && s.pull?.state === "live" ? s : undefined;
      });
      assert.ok((back.pull?.retries ?? 0) >= 1);
      await until("HLS from the new session", async () => {
        const r = await fetch(`${m.httpUrl}/live/cam/stream.m3u8`);
        return r.status === 200 && !(await r.text()).includes("EXT-X-ENDLIST");
      });
      assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/live/cam/index.m3u8`)), ["audio:aac", "video:h264"]);

      const stopped = await streamStop.run({ path: "live/cam" }, ctx);
      assert.equal(stopped.state, "stopped");
      await until("the stream to end", async () => !m.hub.get("live/cam"));
      await assert.rejects(streamStop.run({ path: "live/cam" }, ctx), { code: "M_NOT_FOUND" });
    } finally {
      await src.stop();
    }
  },
);

test(
  "a source that would need transcoding fails for good with a clear error; bad requests are refused",
  opts,
  async () => {
    const file = join(dir, "h263.flv");
    const gen = spawnSync("ffmpeg", [
      ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=352x288:rate=25", "-t", "2"],
      ...["-c:v", "flv1", "-y", file],
    ]);
    assert.equal(gen.status, 0, String(gen.stderr));
    await streamStart.run({ source: file, path: "live/h263" }, ctx);
    const failed = await until("the pull to fail", async () => {
      const p = await pullOf("live/h263");
      return p?.state === "failed" ? p : undefined;
    });
    assert.match(failed.lastError ?? "", /H\.263 is not H\.264.*no transcoding/);
    assert.equal(failed.retries, 0, "no retry for a codec problem");
    assert.equal(m.hub.get("live/h263"), undefined);
    await streamStop.run({ path: "live/h263" }, ctx);

    await assert.rejects(streamStart.run({ source: "gopher://x/y", path: "live/g" }, ctx), {
      code: "AMI_INVALID_INPUT",
    });
    await assert.rejects(streamStart.run({ source: join(dir, "missing.mp4") }, ctx), { code: "AMI_INVALID_INPUT" });
    await assert.rejects(streamStart.run({ source: file, path: "../etc" }, ctx), { code: "AMI_INVALID_INPUT" });
    const anon = await fetch(`${m.httpUrl}/api/pulls`, { method: "POST", body: JSON.stringify({ source: file }) });
    assert.equal(anon.status, 401, "changes need the control token");
  },
);

test(
  "SRT publish with streamid=publish:<path> plays back as HLS; garbage on the SRT port does not hurt it",
  opts,
  async () => {
    const seconds = 8;
    const pub = publish(`srt://127.0.0.1:${m.srt.port}?streamid=publish:live/srt1`, seconds, "mpegts");
    // Both codecs: the TS demuxer announces each track with its first frame, video may come first.
    await until("the SRT stream to go live", async () => {
      const st = m.hub.get("live/srt1")?.stats;
      return st?.videoCodec && st.audioCodec;
    });
    const junk = createSocket("udp4");
    for (let i = 0; i < 200; i++) junk.send(randomBytes(1 + (i % 1400)), m.srt.port, "127.0.0.1");
    // A datagram that looks like an SRT header but is not a handshake, then a truncated handshake.
    junk.send(Buffer.from([0x80, 0x02, 0, 0, ...randomBytes(60)]), m.srt.port, "127.0.0.1");
    junk.send(Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0]), m.srt.port, "127.0.0.1");
    const s = await streamStatus.run({ path: "live/srt1" }, ctx);
    assert.equal(s.publisher?.protocol, "srt");
    assert.equal(s.videoCodec?.startsWith("avc1."), true);
    assert.equal(s.audioCodec, "mp4a.40.2");
    assert.equal(await pub.exit, 0, "the SRT publisher finished normally despite the garbage");
    junk.close();
    await until("the SRT stream to end", async () => !m.hub.get("live/srt1"));
    assert.equal(m.srt.sessions.size, 0);
    const probe = await ffprobe(`${m.httpUrl}/live/srt1/index.m3u8`);
    assert.deepEqual(kinds(probe), ["audio:aac", "video:h264"]);
    const d = Number(probe.format.duration);
    assert.ok(d > seconds - 2.5 && d < seconds + 1.5, `duration ${d}`);

    // A caller reading a path with nothing published is refused (and publishes nothing).
    const bad = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-loglevel", "quiet", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10"],
        ...["-t", "3", "-c:v", "libx264", "-f", "mpegts", `srt://127.0.0.1:${m.srt.port}?streamid=read:live/srt1`],
      ],
      { stdio: "ignore" },
    );
    await new Promise((r) => bad.once("close", r));
    assert.equal(m.hub.get("live/srt1"), undefined);
  },
);
