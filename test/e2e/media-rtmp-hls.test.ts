/**
 * Real ffmpeg publishes a generated pattern over RTMP to the media server; ffprobe reads the HLS and DASH
 * outputs; the LL-HLS playlist is parsed and a blocking reload is exercised; bad publishers and garbage bytes
 * hurt only their own connection; the publisher leaving ends the stream.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamList, streamStatus } from "../../src/media/ops/index.ts";
import { ffprobe } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const PUBLISH_SECONDS = 6;
let m: MediaServer;
let http: string;
let rtmp: string;
let publisher: ChildProcess;
let publisherExit: Promise<number | null>;

function publish(
  path: string,
  seconds: number,
): { proc: ChildProcess; exit: Promise<number | null>; stderr: () => string } {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-c:a", "aac"],
      ...["-f", "flv", `${rtmp}/${path}`],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  proc.stderr?.on("data", (d) => {
    err += d;
  });
  return { proc, exit: new Promise((r) => proc.once("close", r)), stderr: () => err };
}

/** A small HLS playlist parser: tags with their attribute lists, and segment URIs. */
function parseM3u8(text: string) {
  const lines = text.split("\n").filter(Boolean);
  assert.equal(lines[0], "#EXTM3U");
  const tags: { name: string; value: string; attrs: Record<string, string> }[] = [];
  const uris: string[] = [];
  for (const l of lines.slice(1)) {
    if (!l.startsWith("#")) {
      uris.push(l);
      continue;
    }
    const i = l.indexOf(":");
    const name = i < 0 ? l.slice(1) : l.slice(1, i);
    const value = i < 0 ? "" : l.slice(i + 1);
    const attrs: Record<string, string> = {};
    for (const m of value.matchAll(/([A-Z0-9-]+)=("[^"]*"|[^,]*)/g))
      attrs[m[1] as string] = (m[2] as string).replace(/^"|"$/g, "");
    tags.push({ name, value, attrs });
  }
  const all = (n: string) => tags.filter((t) => t.name === n);
  return { tags, uris, all, one: (n: string) => all(n)[0] };
}

async function get(path: string): Promise<{ status: number; type: string; text: string; headers: Headers }> {
  const r = await fetch(http + path);
  return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text(), headers: r.headers };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

before(async () => {
  if (!hasFfmpeg) return;
  // No end grace: the last test checks that the publisher leaving ends the playlist at once.
  const c = configSchema.parse({
    media: { enabled: true, rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, endGraceSeconds: 0 },
  }).media;
  m = await MediaServer.start(c, silentLogger);
  http = m.httpUrl;
  rtmp = m.rtmpUrl;
  const p = publish("live/e2e", PUBLISH_SECONDS);
  publisher = p.proc;
  publisherExit = p.exit;
});

after(async () => {
  if (publisher && publisher.exitCode === null) publisher.kill("SIGKILL");
  await m?.close();
});

const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };

test(
  "LL-HLS: playlist carries PART, PRELOAD-HINT, SERVER-CONTROL; a blocking reload waits for the hinted part",
  opts,
  async () => {
    const pl = await until("a playlist with two parts in the open segment", async () => {
      const r = await get("/live/e2e/stream.m3u8");
      if (r.status !== 200) return undefined;
      const p = parseM3u8(r.text);
      return p.all("EXT-X-PART").length >= 2 && p.one("EXT-X-PRELOAD-HINT") ? { r, p } : undefined;
    });
    assert.equal(pl.r.type, "application/vnd.apple.mpegurl");
    assert.equal(pl.r.headers.get("access-control-allow-origin"), "*");
    const { p } = pl;
    assert.equal(p.one("EXT-X-SERVER-CONTROL")?.attrs["CAN-BLOCK-RELOAD"], "YES");
    const partTarget = Number(p.one("EXT-X-PART-INF")?.attrs["PART-TARGET"]);
    assert.ok(partTarget > 0 && partTarget <= 0.5, `PART-TARGET ${partTarget}`);
    assert.ok(Number(p.one("EXT-X-SERVER-CONTROL")?.attrs["PART-HOLD-BACK"]) >= 3 * partTarget);
    assert.equal(p.one("EXT-X-MAP")?.attrs.URI, "init.mp4");
    const hint = p.one("EXT-X-PRELOAD-HINT");
    assert.equal(hint?.attrs.TYPE, "PART");
    const hinted = hint?.attrs.URI as string;
    assert.ok(!p.all("EXT-X-PART").some((t) => t.attrs.URI === hinted), "the hinted part is not listed yet");

    // The next part: segment msn = media sequence + complete segments; part index = parts after the last EXTINF.
    const msn = Number(p.one("EXT-X-MEDIA-SEQUENCE")?.value) + p.uris.length;
    const lastInf = p.tags.map((t) => t.name).lastIndexOf("EXTINF");
    const partIdx = p.tags.slice(lastInf + 1).filter((t) => t.name === "EXT-X-PART").length;
    const blocked = await get(`/live/e2e/stream.m3u8?_HLS_msn=${msn}&_HLS_part=${partIdx}`);
    assert.equal(blocked.status, 200);
    const after = parseM3u8(blocked.text);
    assert.ok(
      after.all("EXT-X-PART").some((t) => t.attrs.URI === hinted),
      `reload answers with ${hinted}:\n${blocked.text}`,
    );

    // A hinted part request is held, then answered with a CMAF fragment (moof first).
    const nextHint = after.one("EXT-X-PRELOAD-HINT")?.attrs.URI as string;
    const part = await fetch(`${http}/live/e2e/${nextHint}`);
    assert.equal(part.status, 200);
    assert.equal(part.headers.get("content-type"), "video/iso.segment");
    const bytes = Buffer.from(await part.arrayBuffer());
    assert.equal(bytes.toString("latin1", 4, 8), "moof");

    // Too far ahead: answered at once with 400 (LL-HLS 6.2.5.2).
    assert.equal((await get(`/live/e2e/stream.m3u8?_HLS_msn=${msn + 50}`)).status, 400);
    const init = await fetch(`${http}/live/e2e/init.mp4`);
    assert.equal(init.headers.get("content-type"), "video/mp4");
    assert.equal(Buffer.from(await init.arrayBuffer()).toString("latin1", 4, 8), "ftyp");
  },
);

test("multivariant playlist and DASH manifest name the codecs; unknown paths are 404", opts, async () => {
  const mv = await get("/live/e2e/index.m3u8");
  assert.equal(mv.status, 200);
  const inf = parseM3u8(mv.text).one("EXT-X-STREAM-INF");
  assert.match(inf?.attrs.CODECS ?? "", /^avc1\.[0-9a-f]{6},mp4a\.40\.2$/);
  assert.equal(inf?.attrs.RESOLUTION, "640x360");
  const mpd = await get("/live/e2e/index.mpd");
  assert.equal(mpd.status, 200);
  assert.equal(mpd.type, "application/dash+xml");
  assert.match(mpd.text, /type="dynamic"/);
  assert.match(mpd.text, /<SegmentTimeline><S t="\d+" d="\d+"( r="\d+")?\/>/);
  assert.equal((await get("/live/nope/index.m3u8")).status, 404);
  assert.equal((await get("/live/e2e/bogus.txt")).status, 404);
  assert.equal((await get("/live/e2e/seg999999.m4s")).status, 404);
  const pre = await fetch(`${http}/live/e2e/index.m3u8`, { method: "OPTIONS" });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
});

test("a second publisher on the busy path is refused; the first keeps streaming", opts, async () => {
  const second = publish("live/e2e", 3);
  const code = await second.exit;
  assert.notEqual(code, 0, "the second publisher must fail");
  const s = await get("/api/streams/live/e2e");
  assert.equal(JSON.parse(s.text).live, true);
});

test("garbage bytes on the RTMP port close that connection only", opts, async () => {
  const port = m.rtmp.port;
  const closedAfter = (bytes: Buffer[]) =>
    new Promise<void>((resolve, reject) => {
      const sock = connect(port, "127.0.0.1", () => {
        for (const b of bytes) sock.write(b);
      });
      sock.on("data", () => {});
      sock.on("error", () => {});
      sock.on("close", () => resolve());
      setTimeout(() => reject(new Error("server kept a garbage connection open")), 15000).unref();
    });
  // Wrong version byte; then a valid-looking handshake followed by a chunk with no type 0 header.
  await closedAfter([Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), randomBytes(4000)]);
  await closedAfter([Buffer.from([3]), randomBytes(1536), randomBytes(1536), Buffer.from([0xc5, 1, 2, 3])]);
  const before = parseM3u8((await get("/live/e2e/stream.m3u8")).text).one("EXT-X-PRELOAD-HINT")?.attrs.URI;
  const r = await until("the playlist to advance", async () => {
    const hint = parseM3u8((await get("/live/e2e/stream.m3u8")).text).one("EXT-X-PRELOAD-HINT")?.attrs.URI;
    return hint !== before ? hint : undefined;
  });
  assert.ok(r);
});

test("stats: server-computed figures in /api/streams, /_ami/stats, /metrics and the stream ops", opts, async () => {
  const s = JSON.parse((await get("/api/streams/live/e2e")).text);
  assert.equal(s.videoCodec.startsWith("avc1."), true);
  assert.equal(s.audioCodec, "mp4a.40.2");
  assert.deepEqual([s.width, s.height], [640, 360]);
  assert.equal(s.gopFrames, 30);
  assert.ok(s.fps > 10 && s.fps < 40, `fps ${s.fps}`);
  assert.ok(s.bitrateKbps > 0 && s.bytesIn > 0 && s.bytesOut > 0);
  assert.equal(s.framesDiscarded, 0);
  assert.ok(s.readers.byProtocol.hls >= 1, "HLS viewers are counted as sessions");
  const stats = JSON.parse((await get("/_ami/stats")).text);
  assert.equal(stats.streams, 1);
  assert.equal(stats.per_stream[0].resolution, "640x360");
  const metrics = (await get("/metrics")).text;
  assert.match(metrics, /^ami_media_streams 1$/m);
  assert.match(metrics, /^ami_media_stream_video_frames_per_second\{path="live\/e2e"\} \d/m);
  assert.match(metrics, /^ami_media_stream_frames_discarded_total\{path="live\/e2e"\} 0$/m);
  assert.deepEqual(JSON.parse((await get("/health")).text), { ok: true });

  const config = configSchema.parse({ media: { enabled: true, httpPort: Number(new URL(http).port) } });
  const ctx = makeContext({ config, configPath: undefined, log: silentLogger });
  const list = await streamList.run({}, ctx);
  assert.deepEqual(
    list.streams.map((x) => x.path),
    ["live/e2e"],
  );
  const one = await streamStatus.run({ path: "live/e2e" }, ctx);
  assert.equal(one.height, 360);
  // Every URL the status names answers: the player page, HLS, DASH, WHEP (an OPTIONS preflight), RTMP's port.
  assert.equal(one.urls.player, `${http}/live/e2e/`);
  assert.match(streamStatus.human?.(one) ?? "", /player http:\S+\/live\/e2e\/\n[\s\S]*WHEP http:\S+\/live\/e2e\/whep/);
  const page = await fetch(one.urls.player);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /text\/html/);
  await page.text();
  for (const u of [one.urls.hls, one.urls.dash]) {
    const r = await fetch(u);
    await r.arrayBuffer();
    assert.equal(r.status, 200, u);
  }
  assert.ok(one.urls.whep, "WHEP URL listed while WebRTC is on");
  const whep = await fetch(one.urls.whep, {
    method: "POST",
    headers: { "content-type": "application/sdp" },
    body: "v=0",
  });
  assert.equal(whep.status, 400, "the WHEP endpoint is there (and refuses a broken offer)");
  await whep.text();
  assert.match(one.urls.rtmp, /^rtmp:\/\/127\.0\.0\.1:\d+\/live\/e2e$/);
  await assert.rejects(streamStatus.run({ path: "live/none" }, ctx), { code: "M_NOT_FOUND" });
});

test(
  "the publisher leaving ends the stream; ffprobe reads HLS and DASH with H.264 + AAC and the full duration",
  opts,
  async () => {
    assert.equal(await publisherExit, 0);
    await until("the stream to end", async () => {
      const s = JSON.parse((await get("/api/streams")).text).streams.find(
        (x: { path: string }) => x.path === "live/e2e",
      );
      return s && !s.live ? true : undefined;
    });
    assert.equal(m.hub.get("live/e2e"), undefined, "the path is free for a new publisher");
    const pl = parseM3u8((await get("/live/e2e/stream.m3u8")).text);
    assert.ok(pl.one("EXT-X-ENDLIST"), "an ended stream's playlist carries EXT-X-ENDLIST");
    const sum = pl.all("EXTINF").reduce((a, t) => a + Number.parseFloat(t.value), 0);
    assert.ok(Math.abs(sum - PUBLISH_SECONDS) <= 1.5, `EXTINF sum ${sum}`);
    assert.match((await get("/live/e2e/index.mpd")).text, /type="static"/);
    for (const url of [`${http}/live/e2e/index.m3u8`, `${http}/live/e2e/index.mpd`]) {
      const probe = await ffprobe(url);
      const kinds = probe.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();
      assert.deepEqual(kinds, ["audio:aac", "video:h264"], url);
      const d = Number(probe.format.duration);
      assert.ok(Math.abs(d - PUBLISH_SECONDS) <= 1.5, `${url}: duration ${d}`);
    }
  },
);
