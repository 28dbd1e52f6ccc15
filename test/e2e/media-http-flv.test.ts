/**
 * HTTP-FLV out (`/<path>.flv`) and players kept across a publisher's reconnect, with real ffmpeg publishers
 * (libx264 defaults, B-frames included, + AAC): ffmpeg decodes video and audio from HTTP-FLV and ffprobe sees
 * both; a path that needs a signed URL refuses a missing or bad one; a client that never reads is served only
 * what its socket takes (its hub reader skips frames) and is closed after the stall timeout; an RTMP player, an
 * HTTP-FLV reader and ffmpeg reading HTTP-FLV all stay through a publisher's stop and return within the grace,
 * get the new sequence headers, and see timestamps that keep increasing.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { TAG_VIDEO } from "../../src/media/protocols/flv/tag.ts";
import { MSG } from "../../src/media/protocols/rtmp/messages.ts";
import { ffprobe, kinds, publish as publishTo, readFlv, runTool, until } from "./helpers/media-tools.ts";
import { RtmpPublisher } from "./helpers/rtmp-publisher.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const home = mkdtempSync(join(tmpdir(), "ami-media-flv-"));
let m: MediaServer;
const procs: ChildProcess[] = [];

before(async () => {
  if (!hasFfmpeg) return;
  const ports = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  const media = {
    ...ports,
    // Far longer than the test's reconnect pause; a short stall limit and queue so the slow reader is cut soon.
    endGraceSeconds: 30,
    httpFlvStallSeconds: 5,
    readerQueueFrames: 128,
    paths: { "private/*": { publish: "any", read: "signed" } },
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: join(home, "media") });
});

after(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await m?.close();
  rmSync(home, { recursive: true, force: true });
});

/** ffmpeg publishing to `path` (libx264 defaults, a keyframe every 2 s, + AAC), killed after the tests. */
function publish(path: string, seconds: number, video = ["-c:v", "libx264", "-g", "50"]) {
  const p = publishTo(`${m.rtmpUrl}/${path}`, seconds, "flv", video);
  procs.push(p.proc);
  return p;
}

/** ffmpeg decoding `url` to framecrc (one line per decoded frame): decoded frames per stream index, exit code. */
async function decode(url: string, args: string[]): Promise<{ code: number | null; frames: number[]; err: string }> {
  const r = await runTool("ffmpeg", [
    "-hide_banner",
    "-nostdin",
    "-v",
    "error",
    "-i",
    url,
    ...args,
    "-f",
    "framecrc",
    "-",
  ]);
  const frames: number[] = [];
  for (const l of r.out.split("\n")) {
    const i = /^(\d+),/.exec(l);
    if (i) frames[Number(i[1])] = (frames[Number(i[1])] ?? 0) + 1;
  }
  return { code: r.code, frames, err: r.err };
}

const live = (path: string) => until(`${path} live`, async () => !!m.hub.get(path)?.videoConfig);

test("HTTP-FLV: ffmpeg decodes video and audio, ffprobe sees both, headers for players", opts, async () => {
  const pub = publish("live/flv", 40);
  await live("live/flv");
  const url = `${m.httpUrl}/live/flv.flv`;
  const status = m.statuses().find((s) => s.path === "live/flv");
  assert.equal(status?.urls.flv, url, "stream status shows the FLV URL");

  const r = await fetch(url, { headers: { origin: "http://player.example" } });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "video/x-flv");
  assert.equal(r.headers.get("transfer-encoding"), "chunked");
  assert.equal(r.headers.get("access-control-allow-origin"), "*");
  const reader = (r.body as ReadableStream<Uint8Array>).getReader();
  const first = Buffer.from((await reader.read()).value ?? []);
  await reader.cancel();
  assert.equal(first.toString("latin1", 0, 3), "FLV");
  assert.equal(first[4], 5, "audio and video flags");

  assert.deepEqual(kinds(await ffprobe(url)), ["audio:aac", "video:h264"]);
  const d = await decode(url, ["-t", "10"]);
  assert.equal(d.code, 0, d.err);
  assert.ok((d.frames[0] ?? 0) >= 200, `decoded video frames: ${d.frames[0]}`);
  assert.ok((d.frames[1] ?? 0) >= 200, `decoded audio frames: ${d.frames[1]}`);
  assert.equal((await fetch(`${m.httpUrl}/live/nothing.flv`)).status, 404);
  pub.proc.kill("SIGINT");
  await pub.exit;
});

test("HTTP-FLV on a path that needs a signed URL: missing 401, bad 403, signed 200", opts, async () => {
  const pub = publish("private/show", 30);
  await live("private/show");
  const url = `${m.httpUrl}/private/show.flv`;
  assert.equal((await fetch(url)).status, 401);
  const exp = Math.floor(Date.now() / 1000) + 60;
  const q = m.auth.signer.query("private/show", exp);
  assert.equal((await fetch(`${url}?${q.replace(/sig=[^&]+/, "sig=AAAA")}`)).status, 403);
  assert.equal((await fetch(`${url}?${m.auth.signer.query("private/other", exp)}`)).status, 403);
  const ok = await fetch(`${url}?${q}`);
  assert.equal(ok.status, 200);
  const reader = (ok.body as ReadableStream<Uint8Array>).getReader();
  assert.equal(Buffer.from((await reader.read()).value ?? []).toString("latin1", 0, 3), "FLV");
  await reader.cancel();
  assert.deepEqual(kinds(await ffprobe(`${url}?${q}`)), ["audio:aac", "video:h264"]);
  pub.proc.kill("SIGINT");
  await pub.exit;
});

test("a client that never reads: served only what its socket takes, skipped, then closed", opts, async () => {
  // Lossless x264 of noise: about 20 Mbit/s, far more than the socket buffers of a client that never reads hold.
  const noisy = ["-vf", "noise=alls=100:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "50"];
  const pub = publish("live/slow", 40, noisy);
  await live("live/slow");
  const stream = m.hub.get("live/slow");
  assert.ok(stream);
  const sock = connect(Number(new URL(m.httpUrl).port), "127.0.0.1");
  sock.on("error", () => {});
  sock.write("GET /live/slow.flv HTTP/1.1\r\nHost: localhost\r\n\r\n");
  sock.pause();
  const flvReader = () => [...stream.readers].find((r) => r.info.protocol === "flv");
  const r = await until("the FLV reader", async () => flvReader());
  const inAtStart = stream.stats.figures().bytesIn;
  await until("frames skipped for the slow reader", async () => r.framesDiscarded > 50);
  assert.ok(r.queued <= 128, "the reader's queue stays at its bound");
  await until("the stalled reader closed", async () => !flvReader(), 20_000);
  const fed = stream.stats.figures().bytesIn - inAtStart;
  assert.ok(r.closed);
  // Handed to the socket: what the kernel's socket buffers took, a fraction of what was published meanwhile.
  assert.ok(r.bytesOut < fed / 2, `${r.bytesOut} B handed to the socket, ${fed} B published`);
  console.log(
    `slow reader: ${r.bytesOut} B handed out, ${fed} B published meanwhile, ${r.framesDiscarded} frames skipped`,
  );
  sock.destroy();
  pub.proc.kill("SIGINT");
  await pub.exit;
});

test("RTMP and HTTP-FLV players stay through a publisher's reconnect within the grace", opts, async () => {
  const path = "live/rc";
  const a = publish(path, 6);
  await live(path);
  const rtmp: { video: boolean; ts: number; config: boolean }[] = [];
  const player = await RtmpPublisher.play(`${m.rtmpUrl}/${path}`, (msg) => {
    const video = msg.type === MSG.VIDEO;
    // AVC: byte 1 is the packet type (0: sequence header); AAC: 0 is the AudioSpecificConfig.
    rtmp.push({ video, ts: msg.timestamp, config: msg.payload[1] === 0 });
  });
  const flv = readFlv(`${m.httpUrl}/${path}.flv`);
  // Decodes 11 s of media: more than the first publisher gives (6 s plus the cached GOP), so it needs the second.
  const ffmpeg = decode(`${m.httpUrl}/${path}.flv`, ["-t", "11"]);
  assert.equal(await a.exit, 0);
  await until("the first publisher's end", async () => !m.hub.get(path));
  const before = rtmp.length;
  const b = publish(path, 8);
  assert.equal(await b.exit, 0);
  const d = await ffmpeg;
  flv.stop();
  await flv.done;
  await player.close();

  assert.equal(d.code, 0, d.err);
  assert.ok((d.frames[0] ?? 0) > 25 * 9, `ffmpeg decoded ${d.frames[0]} video frames across the reconnect`);
  const after = rtmp.slice(before);
  assert.ok(after.filter((x) => x.video && x.config).length >= 1, "new AVC sequence header after the reconnect");
  assert.ok(after.filter((x) => !x.config).length > 100, "media after the reconnect");
  const increasing = (ts: number[], what: string) => {
    for (let i = 1; i < ts.length; i++)
      assert.ok((ts[i] as number) >= (ts[i - 1] as number), `${what}: ${ts[i - 1]} then ${ts[i]}`);
  };
  increasing(
    rtmp.filter((x) => x.video && !x.config).map((x) => x.ts),
    "RTMP video",
  );
  increasing(
    rtmp.filter((x) => !x.video && !x.config).map((x) => x.ts),
    "RTMP audio",
  );
  const lastBefore = Math.max(...rtmp.slice(0, before).map((x) => x.ts));
  assert.ok(Math.max(...after.map((x) => x.ts)) > lastBefore + 5000, "the timeline goes on past the first publisher");
  const video = flv.tags.filter((t) => t.type === TAG_VIDEO);
  const headers = video.filter((t) => t.data[1] === 0).length;
  assert.ok(headers >= 2, `HTTP-FLV got ${headers} AVC sequence headers`);
  increasing(
    video.filter((t) => t.data[1] !== 0).map((t) => t.timestamp),
    "HTTP-FLV video",
  );
  assert.ok((video.at(-1)?.timestamp ?? 0) > 10_000, "HTTP-FLV timeline spans both publishers");
});
