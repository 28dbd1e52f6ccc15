/**
 * WebRTC audio + video, with werift clients in Node against the media server. The source is black and silent
 * for its first 3 s, then testsrc2 and a sine start at the same instant: the first large H.264 unit and the
 * first large Opus packet mark that instant on each track, and a WHEP viewer maps both RTP times to the
 * sender's wallclock through the RTCP sender reports; lip-sync means they land close together.
 *  - RTMP publisher (H.264 with B-frames + AAC): WHEP gets the H.264 and the AAC transcoded to Opus.
 *  - WHIP publisher (werift sending ffmpeg's H.264 and Opus RTP): the hub carries E-RTMP v2 Opus, WHEP passes
 *    the Opus packets through untouched (no transcoder); HLS of the same path plays, and a recording (the
 *    in-process muxer) keeps both the H.264 and the Opus.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { isOpus, opusPacketSamples, parseExAudio, parseOpusHead } from "../../src/media/protocols/flv/ex-audio.ts";
import { ffprobe, kinds, until } from "./helpers/media-tools.ts";
import { annexB, decodeH264, negotiate, whepReceiver, whipPublisher } from "./helpers/webrtc-client.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
let m: MediaServer;
let dir: string;

before(async () => {
  if (!hasFfmpeg) return;
  dir = mkdtempSync(join(tmpdir(), "ami-webrtc-av-"));
  const c = configSchema.parse({ media: { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } } }).media;
  m = await MediaServer.start(c, silentLogger, { dataDir: dir });
});

after(async () => {
  await m?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SWITCH_S = 3;
/** Black then testsrc2, silence then a sine, switching at SWITCH_S; `seconds` long, in real time. */
const source = (seconds: number) => [
  ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
  ...["-t", String(seconds), "-f", "lavfi", "-i"],
  `color=c=black:s=320x240:r=25:d=${SWITCH_S},format=yuv420p[a];testsrc2=s=320x240:r=25,format=yuv420p[b];[a][b]concat=n=2:v=1:a=0`,
  ...["-t", String(seconds), "-f", "lavfi", "-i", `aevalsrc='if(gte(t,${SWITCH_S}),0.5*sin(2*PI*440*t),0)':s=48000`],
];

function spawnFfmpeg(args: string[]) {
  const proc = spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "inherit"] });
  return { proc, exit: new Promise((r) => proc.once("close", r)) };
}

type Receiver = ReturnType<typeof whepReceiver>;

/**
 * Black 320x240 frames code to under 1 kB (IDR) and ~20 bytes (others); the first testsrc2 frame is a ~5 kB
 * IDR (a GOP starts there, and x264 would cut the scene anyway). Silent Opus packets are 3 bytes, the sine's ~280.
 */
const BIG_UNIT = 3000;
const BIG_OPUS = 40;

/** Both tracks arrived and decode; the switch instant maps to the same wallclock on both (within 100 ms). */
async function checkAv(rx: Receiver, name: string): Promise<void> {
  await until(`${name}: video past the switch`, async () => rx.units.some((u) => unitBytes(u.nals) > BIG_UNIT), 30000);
  await until(`${name}: audio past the switch`, async () => rx.audio.some((a) => a.payload.length > BIG_OPUS), 30000);
  await until(`${name}: sender reports for both tracks`, async () => rx.sr.audio && rx.sr.video);
  // Presentation order: with B-frames the first large unit received is not the earliest one shown.
  const vTs = Math.min(...rx.units.filter((u) => unitBytes(u.nals) > BIG_UNIT).map((u) => unwrapNear(u.timestamp, rx)));
  const aTs = rx.audio.find((a) => a.payload.length > BIG_OPUS)?.timestamp as number;
  const v = rx.wallclock("video", vTs) as number;
  const a = rx.wallclock("audio", aTs) as number;
  assert.ok(Math.abs(a - v) <= 100, `${name}: audio starts ${Math.round(a - v)} ms after video (want |d| <= 100)`);

  // A viewer may join after the switch (a new path's video check holds WHEP viewers up to 3 s): wait for a second of audio.
  await until(`${name}: 50 Opus packets`, async () => rx.audio.length >= 50, 10000).catch(() => {});
  assert.ok(rx.audio.length >= 50, `${name}: ${rx.audio.length} Opus packets`);
  const bad = rx.audio.filter((p) => opusPacketSamples(p.payload) !== 960);
  assert.equal(bad.length, 0, `${name}: every Opus packet is a valid 20 ms packet`);
  const file = join(dir, `${name}.h264`);
  const units = [...rx.units];
  writeFileSync(file, Buffer.concat(units.map((u) => annexB(u))));
  const d = await decodeH264(file);
  assert.equal(d.codec, "h264");
  assert.equal(d.errors, "", `${name}: ffmpeg decodes the H.264 without errors`);
  // The capture may end inside a GOP: a last P-frame without the B-frames shown before it.
  assert.ok(d.frames >= units.length - 2, `${name}: decoded ${d.frames} of ${units.length} units`);
}

const unitBytes = (nals: Buffer[]) => nals.reduce((n, x) => n + x.length, 0);
/** RTP timestamps compared as signed distances from the first unit's (they may wrap). */
const unwrapNear = (ts: number, rx: Receiver) =>
  (rx.units[0]?.timestamp ?? ts) + ((ts - (rx.units[0]?.timestamp ?? ts)) | 0);

test("WHEP from an RTMP publisher: H.264 and AAC transcoded to Opus, lip-synced by sender reports", opts, async () => {
  const pub = spawnFfmpeg([
    ...source(12),
    ...["-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "25", "-c:a", "aac"],
    ...["-f", "flv", `${m.rtmpUrl}/live/av`],
  ]);
  const rx = whepReceiver();
  try {
    await until("the RTMP stream", async () => m.hub.get("live/av")?.videoConfig !== undefined);
    await negotiate(rx.pc, `${m.httpUrl}/live/av/whep`);
    await checkAv(rx, "rtmp");
    const stream = m.hub.get("live/av");
    assert.ok(stream);
    assert.equal(m.webrtc?.transcoders.get(stream)?.running, true, "AAC is transcoded while the viewer exists");
  } finally {
    await rx.pc.close();
    pub.proc.kill("SIGKILL");
    await pub.exit;
  }
});

test(
  "WHIP with Opus: E-RTMP Opus in the hub, passed through to WHEP untouched and lip-synced; HLS has both tracks",
  opts,
  async () => {
    const { pc, send } = whipPublisher();
    const location = await negotiate(pc, `${m.httpUrl}/live/whipav/whip`);
    const sent = new Set<string>();
    const forward = async (to: (b: Buffer) => void, keep = false): Promise<Socket> => {
      const udp = createSocket("udp4");
      udp.on("message", (msg) => {
        if (keep) sent.add(msg.subarray(12).toString("hex"));
        to(msg);
      });
      await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
      return udp;
    };
    const vUdp = await forward((b) => send("video", b));
    const aUdp = await forward((b) => send("audio", b), true);
    const ff = spawnFfmpeg([
      ...source(14),
      ...["-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline"],
      ...["-g", "25", "-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${vUdp.address().port}?pkt_size=1200`],
      ...["-map", "1:a", "-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-application", "lowdelay"],
      ...["-f", "rtp", "-payload_type", "111", `rtp://127.0.0.1:${aUdp.address().port}?pkt_size=1200`],
    ]);
    const rx = whepReceiver();
    m.recordings.start("live/whipav");
    try {
      const s = await until("the WHIP stream with Opus", async () => {
        const st = m.hub.get("live/whipav");
        return st?.videoConfig && isOpus(st.audioConfig) && st;
      });
      const head = parseOpusHead(parseExAudio(s.audioConfig?.data as Buffer)?.body as Buffer);
      assert.equal(head.channels, 2);
      await negotiate(rx.pc, `${m.httpUrl}/live/whipav/whep`);
      await checkAv(rx, "whip");
      assert.notEqual(m.webrtc?.transcoders.get(s)?.running, true, "no transcoder for Opus");
      const foreign = rx.audio.filter((a) => !sent.has(a.payload.toString("hex")));
      assert.equal(foreign.length, 0, "every Opus packet the viewer got is one the publisher sent, byte for byte");

      const probe = await until(
        "HLS of the WHIP stream",
        async () => {
          const r = await fetch(`${m.httpUrl}/live/whipav/stream.m3u8`);
          if (r.status !== 200 || !(await r.text()).includes("#EXTINF")) return undefined;
          return ffprobe(`${m.httpUrl}/live/whipav/index.m3u8`);
        },
        30000,
      );
      // The in-process CMAF muxer carries E-RTMP Opus as an 'Opus' (dOps) track.
      assert.deepEqual(kinds(probe), ["audio:opus", "video:h264"], "HLS has both tracks");
      // The recording goes through the same in-process muxer: it keeps the Opus too.
      await until("the recording", async () => m.recordings.get("live/whipav")?.state === "recording");
      await sleep(2500);
      assert.equal((await fetch(m.httpUrl + location, { method: "DELETE" })).status, 200);
      const rec = await m.recordings.stop("live/whipav");
      assert.equal(rec.lastError, null, "the recording did not fail");
      const files = readdirSync(rec.dir).sort();
      assert.ok(files.length >= 1, "a recorded file");
      assert.deepEqual(kinds(await ffprobe(join(rec.dir, files[0] as string))), ["audio:opus", "video:h264"]);
    } finally {
      await m.recordings.stop("live/whipav").catch(() => {});
      ff.proc.kill("SIGKILL");
      await ff.exit;
      vUdp.close();
      aUdp.close();
      await rx.pc.close();
      await pc.close();
    }
  },
);
