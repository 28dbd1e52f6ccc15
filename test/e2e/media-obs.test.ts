/**
 * Real OBS Studio (headless under xvfb-run, driven over obs-websocket 5) publishes to the media server over RTMP the
 * way an OBS user sets it up: custom server rtmp://host:port/live plus the stream key `stream key create` printed.
 * The server shows an RTMP publisher on the key's path, HLS carries OBS's H.264 + AAC, StopStream ends the path.
 * (Wrong keys are refused in media-rtmp-hls with ffmpeg: a second OBS StartStream in one OBS session did not connect
 * reliably here, so OBS publishes once.)
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamStatus } from "../../src/media/ops/index.ts";
import { streamKeyCreate } from "../../src/media/ops/keys.ts";
import { ffprobe, kinds, until } from "./helpers/media-tools.ts";
import { hasObs, launchObs, type ObsProcess } from "./helpers/obs.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = {
  skip: !hasObs
    ? "OBS Studio or xvfb-run is not installed (apt-get install obs-studio xvfb)"
    : !hasFfmpeg && "no ffmpeg",
  timeout: 180_000,
};
const home = mkdtempSync(join(tmpdir(), "ami-media-obs-"));
// $AMI_STREAMS_HOME wins over config.home: the in-process ops must use this test's home, not an exported one.
process.env.AMI_STREAMS_HOME = home;
const clip = join(home, "clip.mp4");
let m: MediaServer;
let ctx: OpContext;
let obs: ObsProcess | undefined;
let key: Awaited<ReturnType<typeof streamKeyCreate.run>>;

before(async () => {
  if (opts.skip) return;
  // No loopback trust: OBS runs on this machine, and the stream key is what is under test.
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, trustLoopbackPublishers: false };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, {
    dataDir: join(home, "data", "media"),
  });
  const config = configSchema.parse({ home, media: { httpPort: Number(new URL(m.httpUrl).port) } });
  ctx = makeContext({ config, configPath: undefined, log: silentLogger });
  key = await streamKeyCreate.run({ path: "live/obs" }, ctx);
  // A second path for the publish after the refusal, so nothing left of the first one's HLS can satisfy it.

  // OBS's media source loops this clip, so what OBS encodes has moving video and a tone.
  const gen = spawnSync("ffmpeg", [
    ...["-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"],
    ...["-f", "lavfi", "-i", "sine=frequency=440", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast"],
    ...["-c:a", "aac", "-pix_fmt", "yuv420p", clip],
  ]);
  assert.equal(gen.status, 0, String(gen.stderr));

  obs = await launchObs(join(home, "obs"), "test-password-1");
  const c = obs.client;
  // A small canvas keeps OBS's x264 cheap on a shared 2-core machine.
  const size = { baseWidth: 640, baseHeight: 360, outputWidth: 640, outputHeight: 360 };
  await c.request("SetVideoSettings", { fpsNumerator: 25, fpsDenominator: 1, ...size });
  const { currentProgramSceneName } = await c.request<{ currentProgramSceneName: string }>("GetCurrentProgramScene");
  await c.request("CreateInput", {
    sceneName: currentProgramSceneName,
    inputName: "clip",
    inputKind: "ffmpeg_source",
    inputSettings: { is_local_file: true, local_file: clip, looping: true },
    sceneItemEnabled: true,
  });
});

after(async () => {
  obs?.client.close();
  await obs?.stop();
  await m?.close();
  rmSync(home, { recursive: true, force: true });
});

/** Points OBS at our RTMP server (custom service) with `streamKey`, as typed into Settings > Stream. */
async function setService(streamKey: string): Promise<void> {
  const server = key.obs.server.replace(/^rtmp:\/\/[^/]+/, m.rtmpUrl);
  await obs?.client.request("SetStreamServiceSettings", {
    streamServiceType: "rtmp_custom",
    streamServiceSettings: { server, key: streamKey, use_auth: false },
  });
}

/** StartStream, then OBS's StreamStateChanged events up to the first of `states`. */
async function startStream(...states: string[]): Promise<string> {
  const c = obs?.client;
  assert.ok(c);
  const settled = c.nextEvent("StreamStateChanged", (d) => states.includes(String(d.outputState)), 60_000);
  await c.request("StartStream");
  try {
    return String((await settled).outputState);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nOBS log:\n${obs?.log().slice(-3000)}`);
  }
}

async function stopStream(): Promise<void> {
  const c = obs?.client;
  assert.ok(c);
  const stopped = c.nextEvent("StreamStateChanged", (d) => d.outputState === "OBS_WEBSOCKET_OUTPUT_STOPPED", 60_000);
  await c.request("StopStream");
  await stopped;
}

const STARTED = "OBS_WEBSOCKET_OUTPUT_STARTED";
const STOPPED = "OBS_WEBSOCKET_OUTPUT_STOPPED";

/** OBS publishes with the right key; `path` goes live with H.264 + AAC HLS; StopStream ends it. */
async function publishAndCheck(path: string): Promise<void> {
  const c = obs?.client;
  assert.ok(c);
  assert.equal(
    await startStream(STARTED, STOPPED),
    STARTED,
    `OBS did not start streaming:\n${obs?.log().slice(-3000)}`,
  );
  const s = await until(`${path} to go live`, async () => {
    const st = m.hub.get(path);
    return st && !st.ended && st;
  });
  assert.equal(s.publisher.protocol, "rtmp");
  assert.match(s.publisher.remote, /127\.0\.0\.1/);
  const status = await streamStatus.run({ path }, ctx);
  assert.equal(status.publisher?.protocol, "rtmp");

  const hls = `${m.httpUrl}/${path}/index.m3u8`;
  await until("an HLS segment from OBS", async () => {
    const r = await fetch(hls);
    if (r.status !== 200) return false;
    const master = await r.text();
    const media = master.split("\n").find((l) => l && !l.startsWith("#"));
    if (!media) return false;
    const text = await (await fetch(new URL(media, hls))).text();
    return /\n[^#\n][^\n]*\.(m4s|ts)/.test(text);
  });
  const probe = await ffprobe(hls);
  assert.deepEqual(kinds(probe), ["audio:aac", "video:h264"]);
  const st = await c.request<{ outputActive: boolean; outputBytes: number }>("GetStreamStatus");
  assert.equal(st.outputActive, true);
  assert.ok(st.outputBytes > 0, "OBS counted the bytes it sent");

  await stopStream();
  await until(`${path} to end`, async () => !m.hub.get(path));
}

test(
  "OBS publishes with a stream key: RTMP publisher on the key's path, H.264 + AAC HLS, StopStream ends it",
  opts,
  async () => {
    const v = await obs?.client.request<{ obsWebSocketVersion: string; rpcVersion: number }>("GetVersion");
    assert.equal(v?.rpcVersion, 1);
    // The form `stream key create` tells OBS users: server rtmp://host:port/live, stream key obs?key=sk_...
    assert.match(key.obs.streamKey, /^obs\?key=sk_/);
    await setService(key.obs.streamKey);
    await publishAndCheck("live/obs");
  },
);
