/**
 * HLS playlist invariants (RFC 8216 / 8216bis) with real ffmpeg publishers over RTMP: TARGETDURATION, PART-TARGET
 * and CAN-SKIP-UNTIL never change across a GOP longer than the target and a publisher reconnect; no segment's
 * rounded EXTINF exceeds the target, no part exceeds PART-TARGET; blocking reloads beyond the advance limits get
 * 400 at once, and a stalled one 503 only after three target durations; BANDWIDTH is the peak segment bit rate.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
let m: MediaServer;
const procs: ChildProcess[] = [];

before(async () => {
  if (!hasFfmpeg) return;
  // A stalled publisher must stay connected for the blocking-reload test.
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    endGraceSeconds: 10,
    rtmp: { idleTimeoutSeconds: 120 },
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger);
});

after(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await m?.close();
});

/** ffmpeg publishing 25 fps H.264 (x264 defaults but the keyframes given) + AAC in real time. */
function publish(path: string, seconds: number, keyframes: string[]): { proc: ChildProcess; exit: Promise<unknown> } {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", ...keyframes, "-c:a", "aac"],
      ...["-f", "flv", `${m.rtmpUrl}/${path}`],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  procs.push(proc);
  return { proc, exit: new Promise((r) => proc.once("close", r)) };
}

const get = async (path: string) => {
  const r = await fetch(`${m.httpUrl}/${path}`);
  return { status: r.status, body: await r.text() };
};
const tag = (body: string, name: string) => new RegExp(`^#${name}:(.*)$`, "m").exec(body)?.[1];
const attr = (value: string | undefined, name: string) => new RegExp(`(?:^|,)${name}=([^,]*)`).exec(value ?? "")?.[1];
const lastMsn = (body: string) =>
  Number(tag(body, "EXT-X-MEDIA-SEQUENCE")) + (body.match(/^#EXTINF/gm)?.length ?? 0) - 1;

// Three streams on their own paths, side by side: each waits on real time (a 24 s publish, a 9 s hold).
describe("playlist invariants", { concurrency: true }, () => {
  test("TARGETDURATION, PART-TARGET, CAN-SKIP-UNTIL fixed through a long GOP and a reconnect", opts, async () => {
    const path = "live/inv";
    // 1 s GOPs, then a 5 s GOP (5 × the 1 s target), then 1 s GOPs; then the publisher reconnects.
    const keys = ["-g", "1000", "-sc_threshold", "0", "-force_key_frames", "0,1,2,3,4,5,10,11,12,13,14,15"];
    const first = publish(path, 16, keys);
    const seen = { target: new Set<string>(), partTarget: new Set<string>(), skipUntil: new Set<string>() };
    let maxExtinf = 0;
    let maxPart = 0;
    let dependent = false;
    let discontinuity = false;
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const p = await get(`${path}/stream.m3u8`).catch(() => undefined);
        if (p?.status === 200) {
          seen.target.add(tag(p.body, "EXT-X-TARGETDURATION") ?? "");
          seen.partTarget.add(attr(tag(p.body, "EXT-X-PART-INF"), "PART-TARGET") ?? "");
          const skip = attr(tag(p.body, "EXT-X-SERVER-CONTROL"), "CAN-SKIP-UNTIL");
          if (skip) seen.skipUntil.add(skip);
          for (const x of p.body.matchAll(/^#EXTINF:([\d.]+),$/gm)) maxExtinf = Math.max(maxExtinf, Number(x[1]));
          for (const x of p.body.matchAll(/^#EXT-X-PART:DURATION=([\d.]+),/gm))
            maxPart = Math.max(maxPart, Number(x[1]));
          dependent ||= !/^#EXT-X-INDEPENDENT-SEGMENTS$/m.test(p.body);
          discontinuity ||= /^#EXT-X-DISCONTINUITY$/m.test(p.body);
        }
        await sleep(250);
      }
    })();
    await first.exit;
    const second = publish(path, 8, ["-g", "25"]);
    await second.exit;
    polling = false;
    await poll;
    assert.ok(discontinuity, "the reconnect was seen");
    assert.deepEqual([...seen.target], ["1"]);
    assert.deepEqual([...seen.partTarget], ["0.2"]);
    assert.deepEqual([...seen.skipUntil], ["6"]);
    assert.ok(Math.round(maxExtinf) <= 1, `longest segment ${maxExtinf} s`);
    assert.ok(maxPart <= 0.2, `longest part ${maxPart} s`);
    assert.ok(dependent, "segments cut inside the long GOP: no EXT-X-INDEPENDENT-SEGMENTS while listed");
  });

  test("blocking reloads: 400 beyond the advance limits; BANDWIDTH is the peak segment bit rate", opts, async () => {
    const path = "live/adv";
    const pub = publish(path, 30, ["-g", "25"]);
    const p = await until("segments", async () => {
      const r = await get(`${path}/stream.m3u8`);
      return r.status === 200 && (r.body.match(/^#EXTINF/gm)?.length ?? 0) >= 4 ? r.body : undefined;
    });
    const last = lastMsn(p);
    assert.equal((await get(`${path}/stream.m3u8?_HLS_msn=${last + 4}`)).status, 400, "more than two segments ahead");
    const farPart = await get(`${path}/stream.m3u8?_HLS_msn=${last + 2}&_HLS_part=40`);
    assert.equal(farPart.status, 400, "more than 3 s of parts ahead");
    const next = await get(`${path}/stream.m3u8?_HLS_msn=${last + 1}&_HLS_part=0`);
    assert.equal(next.status, 200, "the next segment's first part is waited for");

    const mv = await get(`${path}/index.m3u8`);
    const inf = tag(mv.body, "EXT-X-STREAM-INF");
    const peak = Number(attr(inf, "BANDWIDTH"));
    const average = Number(attr(inf, "AVERAGE-BANDWIDTH"));
    assert.ok(average > 0 && peak >= average, inf);
    // The peak covers every listed segment of about one target duration.
    const media = (await get(`${path}/stream.m3u8`)).body;
    const listed = [...media.matchAll(/^#EXTINF:([\d.]+),\n(seg\d+\.m4s)$/gm)].slice(-3);
    for (const [, d, uri] of listed) {
      const bytes = (await fetch(`${m.httpUrl}/${path}/${uri}`).then((r) => r.arrayBuffer())).byteLength;
      if (Number(d) >= 0.5) assert.ok((8 * bytes) / Number(d) <= peak * 1.01, `${uri}: above BANDWIDTH ${peak}`);
    }
    pub.proc.kill("SIGKILL");
    await pub.exit;
  });

  test("a stalled stream: the blocking reload is held three target durations, then 503", opts, async () => {
    const path = "live/stall";
    // 3 s GOPs make the target 3 s although segments are configured at 1 s.
    const pub = publish(path, 60, ["-g", "75"]);
    const p = await until("segments", async () => {
      const r = await get(`${path}/stream.m3u8`);
      return r.status === 200 && (r.body.match(/^#EXTINF/gm)?.length ?? 0) >= 2 ? r.body : undefined;
    });
    const target = Number(tag(p, "EXT-X-TARGETDURATION"));
    assert.equal(target, 3);
    // The publisher stays connected but sends nothing.
    pub.proc.kill("SIGSTOP");
    await sleep(500);
    const now = (await get(`${path}/stream.m3u8`)).body;
    const t0 = Date.now();
    const r = await get(`${path}/stream.m3u8?_HLS_msn=${lastMsn(now) + 2}`);
    const waited = (Date.now() - t0) / 1000;
    assert.equal(r.status, 503, r.body);
    // Held at least three target durations (9 s), not three configured segment durations (3 s).
    assert.ok(waited >= 3 * target - 0.5, `503 after ${waited} s`);
    pub.proc.kill("SIGKILL");
    await pub.exit;
  });
});
