/**
 * WebRTC for H.265 sources, in real Chromium: a camera-like publisher (ffmpeg libx265 over RTSP) has its video
 * re-encoded to H.264 for WHEP viewers only (browsers' WebRTC negotiates H.264; Chromium offers H.265 only with a
 * hardware decoder), `stream status` says "re-encoded (H.265 source...)", and Chromium decodes it at full rate
 * (framesDecoded from getStats); with B-frames as well. Keyframes come on demand (not one a second): from a 10 s-GOP
 * source Chromium decodes a few, a keyframe request gets an IDR within a few frames, a joining viewer gets one
 * forced. The path's other readers still get H.265 (HLS). A viewer
 * that offers H.265 (a werift client here: headless Chromium has no H.265 WebRTC decoder) gets a path without
 * B-frames as it is, H.265 over RTP that ffprobe decodes, and no re-encoder runs; with B-frames it gets H.264.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamStatus } from "../../src/media/ops/index.ts";
import type { AccessUnit } from "../../src/media/protocols/rtp/h264.ts";
import { CHROMIUM, launchChromium } from "./helpers/browser.ts";
import { ffprobe, kinds, until } from "./helpers/media-tools.ts";
import { annexB, decodeH264, negotiate, whepReceiver } from "./helpers/webrtc-client.ts";
import * as whep from "./helpers/whep-page.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = {
  skip: !hasFfmpeg ? "ffmpeg is not installed" : !existsSync(CHROMIUM) ? `${CHROMIUM} is missing` : false,
};
const dir = mkdtempSync(join(tmpdir(), "ami-webrtc-hevc-"));
let m: MediaServer;
let context: BrowserContext;
let page: Page;
let profile: string;

before(async () => {
  if (opts.skip) return;
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  ({ profile, context, page } = await launchChromium({
    viewport: { width: 640, height: 360 },
    args: ["--autoplay-policy=no-user-gesture-required"],
  }));
  await page.goto(`${m.httpUrl}/`);
});

after(async () => {
  await context?.close().catch(() => {});
  await m?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

/**
 * 640x360 30 fps testsrc2 as H.265 (libx265 ultrafast, `bframes` B-frames, a keyframe every `keyint` frames) + AAC,
 * published over RTSP (TCP), as a camera would.
 */
function publish(path: string, bframes: number, keyint = 60): { proc: ChildProcess; exit: Promise<unknown> } {
  const x265 = `log-level=error:bframes=${bframes}:keyint=${keyint}:min-keyint=${keyint}:scenecut=0`;
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine", "-t", "40"],
      ...["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-pix_fmt", "yuv420p"],
      ...["-c:a", "aac", "-f", "rtsp", "-rtsp_transport", "tcp", `${m.rtspUrl}/${path}`],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return { proc, exit: new Promise((r) => proc.once("close", r)) };
}

const playWhep = (path: string) => whep.playWhep(page, `${m.httpUrl}/${path}/whep`);
const decodeRate = (ms?: number) => whep.decodeRate(page, ms);
async function leave(): Promise<void> {
  assert.equal(await whep.leaveWhep(page, m.httpUrl), 200);
}
const alive = whep.processAlive;

const status = (path: string) => m.statuses().find((s) => s.path === path);

for (const [bframes, what] of [
  [0, "H.265"],
  [3, "H.265 with B-frames"],
] as const) {
  test(
    `${what} over RTSP plays at full rate over WHEP in Chromium (re-encoded to H.264 for WebRTC only)`,
    opts,
    async () => {
      const path = `live/hevc${bframes}`;
      // A keyframe every 10 s at the source: the re-encoder's keyframes come from viewers' needs, not a clock.
      const pub = publish(path, bframes, 300);
      try {
        await until(`${path} to go live`, async () => m.hub.get(path)?.videoConfig !== undefined);
        await playWhep(path);
        const { fps, detail } = await decodeRate();
        const s = status(path);
        console.log(
          `${what} source over WHEP: ${fps.toFixed(1)} fps decoded (source ${s?.fps} fps at the server; ${detail}); ${JSON.stringify(s?.webrtc)}`,
        );
        assert.match(s?.videoCodec ?? "", /^hvc1\./, "the path itself is H.265");
        assert.equal(s?.webrtc?.video, "reencode", "status says the path is re-encoded for WebRTC");
        assert.match(
          s?.webrtc?.reason ?? "",
          bframes ? /^H\.265 source with B-frames/ : /^H\.265 source: re-encoded to H\.264/,
        );
        const human = streamStatus.human?.(s as NonNullable<typeof s>) ?? "";
        assert.match(
          human,
          /webrtc: video re-encoded \(H\.265 source.*\); re-encoder running \(pid \d+, \d+ kb\/s, 1 viewer/,
        );
        const pid = s?.webrtc?.reencoder?.pid as number;
        assert.ok(alive(pid), "the re-encoder's ffmpeg runs");
        assert.ok(fps >= 25, `Chromium decodes ${fps.toFixed(1)} fps (source 30 fps)`);

        // Keyframes on demand (the source's PTS marked, HEVC_MARK_EXPR): over the ~8 s watched Chromium decoded
        // the one it started on, at most one of the source's, and one per PLI/FIR it sent (before: one a second).
        const re = m.webrtc?.reencoders.get(m.hub.get(path) as NonNullable<ReturnType<typeof m.hub.get>>);
        assert.ok(re);
        const k = await whep.keyframeStats(page);
        console.log(
          `keyframes decoded ${k.keyframes} of ${k.frames} frames, PLIs ${k.plis}, FIRs ${k.firs}; re-encoder ${JSON.stringify(re.keyframes)}`,
        );
        assert.ok(k.keyframes >= 1);
        assert.ok(k.keyframes <= 3 + k.plis + k.firs, `${k.keyframes} keyframes for ${k.plis} PLIs + ${k.firs} FIRs`);
        // A PLI mid source GOP (as a viewer's PLI/FIR calls it): one of the next few frames out of the encoder is
        // an IDR, not the one a clock or the source would give. In flight: the pipeline's few frames, and with
        // B-frames the source's reordering (the marked picture is the next in decode order, shown up to 4 later).
        await new Promise((r) => setTimeout(r, 600)); // past the rate limit of the viewer's own request
        const { out, frames } = re.keyframes;
        const asked = performance.now();
        assert.equal(re.requestKeyframe(), true, "a keyframe was asked of the encoder");
        await until("an IDR after the request", async () => re.keyframes.out > out, 5000);
        const after = re.keyframes.frames - frames;
        console.log(`IDR out within ${(performance.now() - asked).toFixed(0)} ms, ${after} frames after the request`);
        assert.ok(after <= (bframes ? 16 : 8), `the IDR came ${after} frames after the request`);
        if (!bframes) {
          // A viewer joining mid source GOP asks for a keyframe (as its PLIs would) and starts on it.
          await new Promise((r) => setTimeout(r, 600));
          const forced = re.keyframes.forced;
          const second = await context.newPage();
          try {
            await second.goto(`${m.httpUrl}/`);
            await whep.playWhep(second, `${m.httpUrl}/${path}/whep`);
            await until("the second viewer's first frames", async () => (await whep.decodedVideo(second)).frames > 0);
            assert.ok(re.keyframes.forced > forced, "the joining viewer asked for a keyframe and got one forced");
            assert.equal(await whep.leaveWhep(second, m.httpUrl), 200);
          } finally {
            await second.close().catch(() => {});
          }
        }
        // Other readers get the path as published.
        await until("an HLS playlist", async () => (await fetch(`${m.httpUrl}/${path}/index.m3u8`)).status === 200);
        assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/${path}/index.m3u8`)), ["audio:aac", "video:hevc"]);

        await leave();
        await until("the re-encoder to stop after the viewer left", async () => {
          const r = status(path)?.webrtc?.reencoder;
          return r?.running === false && r.viewers === 0 && !alive(pid);
        });
      } finally {
        await leave().catch(() => {});
        pub.proc.kill("SIGKILL");
        await pub.exit;
      }
    },
  );
}

/** Annex B of access units (start codes, no delimiter: H.264's would be a bogus H.265 NAL unit). */
const annexBAll = (units: AccessUnit[]) =>
  Buffer.concat(units.flatMap((u) => u.nals.flatMap((n) => [Buffer.from([0, 0, 0, 1]), n])));
const hevcType = (n: Buffer) => ((n[0] ?? 0) >> 1) & 0x3f;

test(
  "a viewer that offers H.265 gets an H.265 path without B-frames as it is (RFC 7798, no re-encoder)",
  opts,
  async () => {
    const path = "live/hevcpass";
    const pub = publish(path, 0);
    const rx = whepReceiver(undefined, { h265: true });
    try {
      await until(`${path} to go live`, async () => m.hub.get(path)?.videoConfig !== undefined);
      const session = await negotiate(rx.pc, `${m.httpUrl}/${path}/whep`);
      await until("60 access units", async () => rx.units.length >= 60);
      assert.equal(rx.video.codec, "video/h265", "the answer chose H.265");
      const s = status(path);
      assert.equal(s?.webrtc?.reencoder, null, "no re-encoder was made for the path");
      assert.equal(s?.readers.byProtocol.webrtc, 1, "the viewer reads the path itself");
      const first = rx.units[0]!.nals.map(hevcType);
      assert.deepEqual(first.slice(0, 3), [32, 33, 34], "VPS, SPS, PPS before the first keyframe");
      assert.ok(
        first.some((t) => t >= 16 && t <= 21),
        `a random access picture (IDR or CRA) first: ${first}`,
      );
      const file = join(dir, "pass.hevc");
      writeFileSync(file, annexBAll(rx.units));
      const d = await decodeH264(file);
      assert.equal(d.codec, "hevc");
      assert.ok(d.frames >= 55, `${d.frames} frames decoded of ${rx.units.length} units`);
      assert.equal(d.errors, "", "decoded without an error");
      assert.equal((await fetch(m.httpUrl + session, { method: "DELETE" })).status, 200);
    } finally {
      await rx.pc.close().catch(() => {});
      pub.proc.kill("SIGKILL");
      await pub.exit;
    }
  },
);

test("a viewer that offers H.265 still gets H.264 when the H.265 has B-frames", opts, async () => {
  const path = "live/hevcbf";
  const pub = publish(path, 3);
  const rx = whepReceiver(undefined, { h265: true });
  try {
    await until(`${path} to go live`, async () => m.hub.get(path)?.videoConfig !== undefined);
    const session = await negotiate(rx.pc, `${m.httpUrl}/${path}/whep`);
    await until("30 access units", async () => rx.units.length >= 30);
    assert.equal(rx.video.codec, "video/h264", "the answer chose H.264");
    assert.equal(status(path)?.webrtc?.reencoder?.running, true, "from the re-encoder");
    const file = join(dir, "bf.h264");
    writeFileSync(file, Buffer.concat(rx.units.map((u) => annexB(u))));
    const d = await decodeH264(file);
    assert.equal(d.codec, "h264");
    assert.ok(d.frames >= 25, `${d.frames} frames decoded of ${rx.units.length} units`);
    assert.equal((await fetch(m.httpUrl + session, { method: "DELETE" })).status, 200);
  } finally {
    await rx.pc.close().catch(() => {});
    pub.proc.kill("SIGKILL");
    await pub.exit;
  }
});
