/**
 * WebRTC with a real WebRTC stack in Node (werift) against the media server: ffmpeg publishes over RTMP and a
 * WHEP viewer receives H.264 that ffmpeg decodes (a B-frame source is re-encoded without them for WebRTC:
 * RTP timestamps in presentation order); a WHIP publisher fed by ffmpeg's RTP output appears as HLS; bad offers answer 400.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { H264Depacketizer } from "../../src/media/protocols/rtp/h264.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";
import { decodeH264, negotiate, whepViewer, whipPublisher } from "./helpers/webrtc-client.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
let m: MediaServer;
let dir: string;

before(async () => {
  if (!hasFfmpeg) return;
  dir = mkdtempSync(join(tmpdir(), "ami-webrtc-"));
  const c = configSchema.parse({ media: { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } } }).media;
  m = await MediaServer.start(c, silentLogger, { dataDir: dir });
});

after(async () => {
  await m?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test(
  "WHEP: an RTMP publisher (H.264 with B-frames) plays in a werift viewer: ffmpeg decodes the H.264, Opus audio arrives",
  opts,
  async () => {
    // x264 with B-frames (the shared helper's ultrafast preset has none).
    const proc = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
        ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine", "-t", "12"],
        ...["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25", "-c:a", "aac"],
        ...["-f", "flv", `${m.rtmpUrl}/live/whep`],
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const pub = { proc, exit: new Promise((r) => proc.once("close", r)) };
    try {
      await until("the RTMP stream", async () => m.hub.get("live/whep")?.videoConfig !== undefined);
      const { pc } = whepViewer();
      const depack = new H264Depacketizer();
      const units: { timestamp: number; nals: Buffer[] }[] = [];
      let opusPackets = 0;
      pc.onTrack.subscribe((track) => {
        if (track.kind === "audio") {
          track.onReceiveRtp.subscribe(() => {
            opusPackets++;
          });
          return;
        }
        track.onReceiveRtp.subscribe((rtp) => {
          const h = rtp.header;
          units.push(
            ...depack.push({
              sequenceNumber: h.sequenceNumber,
              timestamp: h.timestamp,
              marker: h.marker,
              payload: rtp.payload,
            }),
          );
        });
      });
      const location = await negotiate(pc, `${m.httpUrl}/live/whep/whep`);
      assert.match(location, /^\/live\/whep\/whep\/[0-9a-f-]+$/);
      await until("75 access units over WebRTC", async () => units.length >= 75);
      await until("Opus audio over WebRTC", async () => opusPackets >= 50);
      const stream = m.hub.get("live/whep");
      assert.ok(stream);
      assert.equal(m.webrtc?.transcoders.get(stream)?.running, true, "AAC -> Opus runs while a viewer exists");
      assert.equal(
        stream.readers.size,
        3,
        "the packager, the video re-encoder (the viewer reads its output) and the Opus transcoder",
      );
      const status = m.statuses().find((x) => x.path === "live/whep");
      assert.equal(status?.readers.byProtocol.webrtc, 1, "one WebRTC viewer in the stats (the transcoder is not one)");
      const del = await fetch(m.httpUrl + location, { method: "DELETE" });
      assert.equal(del.status, 200);
      await pc.close();
      await until("the viewer and the transcoder to be gone", async () => stream.readers.size === 1);
      assert.equal(m.webrtc?.transcoders.get(stream)?.running, false, "the transcoder stops with the last viewer");
      assert.equal(m.webrtc?.reencoders.get(stream)?.running, false, "and so does the video re-encoder");

      const first = units[0]?.nals.map((n) => (n[0] as number) & 0x1f) ?? [];
      assert.deepEqual(first.slice(0, 2), [7, 8], "the first unit starts with SPS, PPS");
      assert.ok(first.includes(5), "the first unit is an IDR");
      // B-frames are re-encoded away for WebRTC (browsers render in arrival order): units arrive in presentation
      // order, their timestamps the source's presentation times, 25 fps.
      const ts = units.map((u) => u.timestamp);
      assert.ok(
        ts.every((t, i) => i === 0 || t > (ts[i - 1] as number)),
        "every unit has a later pts than the one before",
      );
      assert.equal(m.statuses().find((x) => x.path === "live/whep")?.webrtc?.video, "reencode");
      const inner = [...new Set(ts)].sort((a, b) => a - b);
      const steps = inner.slice(1).map((t, i) => t - (inner[i] as number));
      assert.ok(
        steps.every((d) => d === 3600),
        `RTP timestamps step by 40 ms: ${steps.filter((d) => d !== 3600).slice(0, 5)} dropped ${depack.dropped} late ${depack.late} units ${units.length} gaps at ${steps.map((d, i) => (d !== 3600 ? i : -1)).filter((i) => i >= 0)}`,
      );

      const file = join(dir, "whep.h264");
      const start = Buffer.from([0, 0, 0, 1]);
      writeFileSync(file, Buffer.concat(units.flatMap((u) => u.nals.flatMap((n) => [start, n]))));
      const { codec, frames, errors } = await decodeH264(file);
      assert.equal(codec, "h264");
      assert.equal(errors, "", "ffmpeg decodes without errors");
      assert.ok(
        frames >= units.length - 1,
        `decoded ${frames} of ${units.length} units, dropped ${depack.dropped} late ${depack.late}`,
      );
    } finally {
      pub.proc.kill("SIGKILL");
      await pub.exit;
    }
  },
);

test(
  "WHEP passthrough: a viewer joining mid-GOP starts on the cached keyframe, and its PLI is answered from the cache",
  opts,
  async () => {
    // No B-frames (passed through), a keyframe every 10 s.
    const video = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0", "-g", "250"];
    const pub = publish(`${m.rtmpUrl}/live/gop`, 14, "flv", video);
    const { pc } = whepViewer();
    try {
      await until("the RTMP stream", async () => m.hub.get("live/gop")?.videoConfig !== undefined);
      const stream = m.hub.get("live/gop");
      assert.ok(stream);
      let sourceKeyframes = 0;
      stream.on("frame", (f) => {
        if (f.kind === "video" && f.keyframe) sourceKeyframes++;
      });
      await until("a source keyframe", async () => sourceKeyframes > 0);
      await sleep(1500); // mid-GOP: the next source keyframe is 8.5 s away
      const seen = sourceKeyframes;
      const depack = new H264Depacketizer();
      const units: { timestamp: number; idr: boolean }[] = [];
      let ssrc: number | undefined;
      const idrAt = new Set<number>();
      pc.onTrack.subscribe((track) => {
        if (track.kind !== "video") return;
        track.onReceiveRtp.subscribe((rtp) => {
          const h = rtp.header;
          ssrc = h.ssrc;
          const got = depack.push({
            sequenceNumber: h.sequenceNumber,
            timestamp: h.timestamp,
            marker: h.marker,
            payload: rtp.payload,
          });
          // IDR starts by RTP time, straight from the packets (the depacketizer drops units it thinks late).
          const b0 = rtp.payload[0] ?? 0;
          const t0 = b0 & 0x1f;
          if (t0 === 5 || (t0 === 28 && ((rtp.payload[1] ?? 0) & 0x9f) === 0x85) || t0 === 24) idrAt.add(h.timestamp);
          for (const u of got)
            units.push({ timestamp: u.timestamp, idr: u.nals.some((n) => ((n[0] as number) & 0x1f) === 5) });
        });
      });
      await negotiate(pc, `${m.httpUrl}/live/gop/whep`);
      await until("the first units", async () => units.length >= 30);
      assert.equal(units[0]?.idr, true, "it starts on a keyframe");
      assert.equal(sourceKeyframes, seen, "the cached one: the source has sent none since");
      // A PLI: the cached GOP again, from its keyframe (an IDR at a new RTP time: a NACKed packet resent by werift
      // keeps its old one), before the next source keyframe. The order of what is sent is from-stream.test.ts's.
      const idrTimes = () => idrAt.size;
      const idrs = idrTimes();
      const receiver = pc.getTransceivers().find((t) => t.kind === "video")?.receiver;
      await receiver?.sendRtcpPLI(ssrc as number);
      await until("a keyframe for the PLI", async () => idrTimes() > idrs, 5000);
      assert.equal(sourceKeyframes, seen, "answered from the cache, not by a new source keyframe");
    } finally {
      await pc.close().catch(() => {});
      pub.proc.kill("SIGKILL");
      await pub.exit;
    }
  },
);

test("WHIP: a werift publisher (ffmpeg's H.264 RTP) becomes a stream that ffprobe reads as HLS", opts, async () => {
  const { pc, track } = whipPublisher({ audio: false });
  const location = await negotiate(pc, `${m.httpUrl}/live/whip/whip`);
  assert.match(location, /^\/live\/whip\/whip\/[0-9a-f-]+$/);
  const udp = createSocket("udp4");
  udp.on("message", (msg) => track.writeRtp(msg));
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
  const port = udp.address().port;
  const ff = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "6"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-bf", "0", "-g", "25"],
      ...["-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${port}?pkt_size=1200`],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const ffExit = new Promise((r) => ff.once("close", r));
  try {
    const s = await until(
      "the WHIP stream in the hub",
      async () => m.hub.get("live/whip")?.videoConfig && m.hub.get("live/whip"),
    );
    assert.equal(s.publisher.protocol, "webrtc");
    const second = await fetch(`${m.httpUrl}/live/whip/whip`, {
      method: "POST",
      headers: { "content-type": "application/sdp" },
      body: pc.localDescription?.sdp,
    });
    assert.equal(second.status, 403, "a second publisher on a busy path is refused");
    assert.match((await second.json()).error, /already has a publisher/);
    const probe = await until(
      "HLS with video",
      async () => {
        const r = await fetch(`${m.httpUrl}/live/whip/stream.m3u8`);
        if (r.status !== 200 || !(await r.text()).includes("#EXTINF")) return undefined;
        return ffprobe(`${m.httpUrl}/live/whip/index.m3u8`);
      },
      30000,
    );
    assert.deepEqual(kinds(probe), ["video:h264"]);
    const del = await fetch(m.httpUrl + location, { method: "DELETE" });
    assert.equal(del.status, 200);
    assert.equal(m.hub.get("live/whip"), undefined, "DELETE ends the publication");
  } finally {
    ff.kill("SIGKILL");
    await ffExit;
    udp.close();
    await pc.close();
  }
});

test("WHIP/WHEP: bad offers and wrong content types answer 400; the server keeps serving", opts, async () => {
  const post = (path: string, body: string, type = "application/sdp") =>
    fetch(`${m.httpUrl}${path}`, { method: "POST", headers: { "content-type": type }, body });
  for (const [path, body, type] of [
    ["/live/bad/whip", "garbage\x00\xff", "application/sdp"],
    ["/live/bad/whip", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "application/sdp"],
    ["/live/bad/whip", "v=0\r\n", "application/json"],
    ["/live/bad/whep", "garbage", "application/sdp"],
  ] as const) {
    const r = await post(path, body, type);
    assert.equal(r.status, 400, `${path} ${JSON.stringify(body)} ${type}`);
    const j = await r.json();
    assert.equal(j.errcode, "AMI_INVALID_INPUT");
    assert.match(j.error, /SDP|content-type/);
  }
  // A syntactically plausible offer with no H.264 is refused too, and the path stays free.
  const vp8 = [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=video 9 UDP/TLS/RTP/SAVPF 96",
    "c=IN IP4 0.0.0.0",
    "a=ice-ufrag:abcd",
    "a=ice-pwd:abcdefghijklmnopqrstuvwx",
    "a=fingerprint:sha-256 00:11",
    "a=rtpmap:96 VP8/90000",
    "",
  ].join("\r\n");
  const r = await post("/live/bad/whip", vp8);
  assert.equal(r.status, 400);
  assert.match((await r.json()).error, /H\.264/);
  assert.equal(m.hub.get("live/bad"), undefined);
  assert.equal((await post("/live/none/whep", "x", "text/plain")).status, 400);
  assert.equal((await fetch(`${m.httpUrl}/live/bad/whip`)).status, 405);
  assert.equal((await fetch(`${m.httpUrl}/health`)).status, 200, "the server is still up");
  await sleep(10);
});
