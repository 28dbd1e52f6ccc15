/**
 * The RTSP server with real clients: ffmpeg publishes H.264 + AAC over RTSP (UDP and TCP-interleaved) and
 * ffprobe, ffmpeg, ffplay and GStreamer read it back over RTSP (UDP and TCP); the same stream plays as HLS and
 * `stream status` lists the RTSP publisher and readers; H.265 + Opus go round trip; a wrong key is refused (401),
 * no key gets a Digest challenge and the key as Digest password or ?key= is accepted; hostile peers (garbage,
 * oversized heads, header floods, request floods before RECORD/PLAY, silent sockets, too many connections) close
 * only their own connection and the server goes on serving. VLC reads it when the installed VLC has an RTSP
 * client (Debian's is built without live555: skipped there, and said so).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { ffprobe, kinds, publish, runTool, until } from "./helpers/media-tools.ts";

const has = (cmd: string, arg = "-version") => spawnSync(cmd, [arg]).status === 0;
const hasFfmpeg = has("ffmpeg");
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const vlcRtsp =
  has("cvlc", "--version") && /live555/.test(spawnSync("vlc", ["--list"], { encoding: "utf8" }).stdout ?? "");
process.env.SDL_AUDIODRIVER = "dummy";
const dir = mkdtempSync(join(tmpdir(), "ami-media-rtsp-"));
const udpBase = 30000 + Math.floor(Math.random() * 200) * 10;
const media = {
  rtmpPort: 0,
  httpPort: 0,
  srtPort: 0,
  endGraceSeconds: 0,
  trustLoopbackPublishers: false,
  paths: { "open/**": { publish: "any" as const } },
  rtsp: {
    enabled: true,
    port: 0,
    udpPortMin: udpBase,
    udpPortMax: udpBase + 99,
    handshakeTimeoutSeconds: 2,
    maxConnectionsPerAddress: 16,
    maxRequestsBeforeStart: 20,
    rtsps: { enabled: true, port: 0 },
  },
};
let m: MediaServer;

before(async () => {
  if (!hasFfmpeg) return;
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

const X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25"];
const rtspOut = (transport: "udp" | "tcp") => ["-rtsp_transport", transport, ...X264];

/** ffmpeg as an RTSP reader for `seconds`: the frames it decoded, per its final progress line. */
async function readFrames(url: string, transport: "udp" | "tcp", seconds = 2): Promise<number> {
  const r = await runTool("ffmpeg", [
    ...["-hide_banner", "-nostdin", "-rtsp_transport", transport, "-i", url],
    ...["-t", String(seconds), "-map", "0:v", "-f", "null", "-"],
  ]);
  assert.equal(r.code, 0, `ffmpeg read ${url} over ${transport}: ${r.err.slice(-500)}`);
  return Number([...r.err.matchAll(/frame=\s*(\d+)/g)].at(-1)?.[1] ?? 0);
}

/** Starts an ffmpeg RTSP publisher (testsrc2 + sine, `video` and `audio` encoder options) and waits for its video. */
async function rtspPublish(path: string, seconds: number, video: string[], audio = ["-c:a", "aac"]) {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), ...video, ...audio, "-f", "rtsp", `${m.rtspUrl}/${path}`],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  const pub = { proc, exit: new Promise<number | null>((r) => proc.once("close", r)) };
  await until(`${path} to be published over RTSP`, async () => m.hub.get(path)?.stats.videoCodec);
  return pub;
}

test(
  "ffmpeg publishes H.264 + AAC over RTSP/TCP; ffprobe, ffmpeg (UDP and TCP), ffplay and HLS read it",
  opts,
  async () => {
    const pub = await rtspPublish("open/tcp", 12, rtspOut("tcp"));
    try {
      assert.equal(m.hub.get("open/tcp")?.publisher.protocol, "rtsp");
      const url = `${m.rtspUrl}/open/tcp`;
      assert.deepEqual(kinds(await ffprobe(url)), ["audio:aac", "video:h264"]);
      assert.ok((await readFrames(url, "tcp")) >= 25, "frames over TCP");
      assert.ok((await readFrames(url, "udp")) >= 25, "frames over UDP");
      if (has("ffplay")) {
        // ffplay without a display plays the audio to SDL's dummy driver (its clock drives -t and -autoexit).
        const args = ["-nodisp", "-autoexit", "-t", "2", "-rtsp_transport", "udp", url];
        const r = await runTool("timeout", ["30", "ffplay", ...args]);
        assert.equal(r.code, 0, `ffplay: ${r.err.slice(-300)}`);
        assert.match(r.err, /Video: h264/);
      }
      await until("an HLS segment", async () => (await fetch(`${m.httpUrl}/open/tcp/stream.m3u8`)).status === 200);
      assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/open/tcp/index.m3u8`)), ["audio:aac", "video:h264"]);
    } finally {
      pub.proc.kill("SIGINT");
      await pub.exit;
    }
  },
);

test(
  "AAC frames larger than the MTU (5.1 at 1.7 Mbit/s) go out as RFC 3640 fragments that ffmpeg joins over UDP and TCP",
  opts,
  async () => {
    const noise = Array.from({ length: 6 }, (_, i) => `random(${i})-0.5`).join("|");
    const proc = spawn(
      "ffmpeg",
      [
        ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
        ...["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25"],
        ...["-f", "lavfi", "-i", `aevalsrc=${noise}:s=48000:c=5.1`],
        ...["-t", "10", ...X264, "-c:a", "aac", "-b:a", "1700k", "-rtsp_transport", "tcp"],
        ...["-f", "rtsp", `${m.rtspUrl}/open/aac-big`],
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const exit = new Promise<number | null>((r) => proc.once("close", r));
    try {
      await until("the 5.1 stream", async () => m.hub.get("open/aac-big")?.stats.videoCodec);
      let largest = 0;
      m.hub.get("open/aac-big")?.on("frame", (f) => {
        if (f.kind === "audio" && !f.config) largest = Math.max(largest, f.data.length);
      });
      for (const transport of ["udp", "tcp"]) {
        const out = join(dir, `aac-big-${transport}.wav`);
        const r = await runTool("ffmpeg", [
          ...["-v", "error", "-nostdin", "-rtsp_transport", transport, "-i", `${m.rtspUrl}/open/aac-big`],
          ...["-t", "2", "-map", "0:a", "-y", out],
        ]);
        assert.equal(r.code, 0, r.err);
        assert.equal(r.err.trim(), "", `ffmpeg decodes every joined unit over ${transport}: ${r.err.slice(0, 500)}`);
        // Most of 2 s of 6 channels of 16-bit 48 kHz (the reader starts at a keyframe).
        const bytes = statSync(out).size;
        assert.ok(bytes > 1.5 * 48000 * 12, `${bytes} bytes of audio over ${transport}`);
      }
      assert.ok(largest > 2000, `the AAC frames (up to ${largest} bytes) need fragments`);
    } finally {
      proc.kill("SIGINT");
      await exit;
    }
  },
);

test(
  "ffmpeg publishes over RTSP/UDP with B-frames; HLS decode times are monotonic; GStreamer reads over TCP and UDP; stream status lists RTSP publisher and readers",
  opts,
  async () => {
    // With B-frames (RTP carries no decode times: the server derives them) and over UDP.
    const pub = await rtspPublish("open/udp", 14, [...rtspOut("udp"), "-bf", "2"]);
    try {
      const url = `${m.rtspUrl}/open/udp`;
      assert.deepEqual(kinds(await ffprobe(url)), ["audio:aac", "video:h264"]);
      // A reader that stays while the status is taken.
      const reading = readFrames(url, "udp", 4);
      const rtspReaders = () => [...(m.hub.get("open/udp")?.readers ?? [])].filter((r) => r.info.protocol === "rtsp");
      await until("an RTSP reader", async () => rtspReaders().length > 0);
      const st = m.statuses().find((s) => s.path === "open/udp");
      assert.equal(st?.publisher?.protocol, "rtsp");
      assert.ok((st?.readers.byProtocol.rtsp ?? 0) >= 1, JSON.stringify(st?.readers));
      assert.equal(st?.urls.rtsp, url);
      assert.ok((await reading) >= 50, "frames over UDP from a UDP publisher");
      await until("an HLS segment", async () => (await fetch(`${m.httpUrl}/open/udp/stream.m3u8`)).status === 200);
      const hls = await runTool("ffmpeg", [
        "-v",
        "warning",
        "-i",
        `${m.httpUrl}/open/udp/index.m3u8`,
        "-t",
        "2",
        "-f",
        "null",
        "-",
      ]);
      assert.equal(hls.code, 0, hls.err);
      assert.doesNotMatch(hls.err, /non monotonically increasing dts|Invalid DTS/i, "decode times reach HLS in order");
      // Equal decode times for B-frames (dts = pts clamped) showed as a DTS discontinuity every few packets.
      const jumps = hls.err.match(/DTS discontinuity/g)?.length ?? 0;
      assert.ok(jumps <= 2, `${jumps} DTS discontinuities in 2 s of HLS:\n${hls.err.slice(0, 500)}`);
      if (has("gst-launch-1.0")) {
        for (const protocols of ["tcp", "udp"]) {
          const r = await runTool("gst-launch-1.0", [
            ...["rtspsrc", `location=${url}`, `protocols=${protocols}`, "latency=100", "name=s"],
            ...["s.", "!", "application/x-rtp,media=video", "!", "rtph264depay", "!", "h264parse", "!", "avdec_h264"],
            ...["!", "fakesink", "num-buffers=50"],
          ]);
          assert.match(r.out, /Got EOS/, `GStreamer over ${protocols}: ${r.out.slice(-400)} ${r.err.slice(-400)}`);
        }
      }
    } finally {
      pub.proc.kill("SIGINT");
      await pub.exit;
    }
  },
);

test("VLC reads the RTSP stream", {
  skip: !hasFfmpeg
    ? "ffmpeg is not installed"
    : vlcRtsp
      ? false
      : "this VLC has no RTSP client (built without live555)",
}, async () => {
  const pub = await rtspPublish("open/vlc", 12, rtspOut("tcp"));
  const out = join(tmpdir(), `ami-rtsp-vlc-${process.pid}.ts`);
  try {
    const r = await runTool("runuser", [
      ...["-u", "nobody", "--", "cvlc", "--intf", "dummy", "--run-time", "4", `${m.rtspUrl}/open/vlc`],
      ...["--sout", `#std{access=file,mux=ts,dst=${out}}`, "vlc://quit"],
    ]);
    assert.equal(r.code, 0, r.err.slice(-400));
    assert.ok(kinds(await ffprobe(out)).includes("video:h264"));
  } finally {
    pub.proc.kill("SIGINT");
    await pub.exit;
    rmSync(out, { force: true });
  }
});

test("H.265 + Opus go round trip over RTSP (publish TCP, read UDP) and play as HLS", opts, async () => {
  const hevc = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=0", "-g", "25"];
  const pub = await rtspPublish(
    "open/hevc",
    12,
    ["-rtsp_transport", "tcp", ...hevc],
    ["-c:a", "libopus", "-b:a", "64k"],
  );
  try {
    const url = `${m.rtspUrl}/open/hevc`;
    assert.deepEqual(kinds(await ffprobe(url)), ["audio:opus", "video:hevc"]);
    assert.ok((await readFrames(url, "udp")) >= 25, "HEVC frames over UDP");
    await until("an HLS segment", async () => (await fetch(`${m.httpUrl}/open/hevc/stream.m3u8`)).status === 200);
    assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/open/hevc/index.m3u8`)), ["audio:opus", "video:hevc"]);
  } finally {
    pub.proc.kill("SIGINT");
    await pub.exit;
  }
});

test(
  "RTSPS: ffmpeg publishes and ffprobe reads over TLS (TCP-interleaved); plain RTSP on the TLS port is dropped",
  opts,
  async () => {
    const url = `${m.rtspsUrl}/open/tls`;
    const proc = spawn(
      "ffmpeg",
      [
        ...[
          "-hide_banner",
          "-nostdin",
          "-loglevel",
          "error",
          "-re",
          "-f",
          "lavfi",
          "-i",
          "testsrc2=size=320x240:rate=25",
        ],
        ...["-t", "8", ...X264, "-f", "rtsp", "-rtsp_transport", "tcp", url],
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const exit = new Promise((r) => proc.once("close", r));
    try {
      await until("the RTSPS stream", async () => m.hub.get("open/tls")?.stats.videoCodec);
      assert.equal(m.hub.get("open/tls")?.publisher.protocol, "rtsps");
      assert.deepEqual(kinds(await ffprobe(`${url}`)), ["video:h264"]);
      const plain = connect(m.rtsps?.port as number, "127.0.0.1").on("error", () => {});
      plain.write("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
      await new Promise((r) => plain.once("close", r));
    } finally {
      proc.kill("SIGINT");
      await exit;
    }
  },
);

/** One request on a raw connection: the response head. */
async function request(lines: string[]): Promise<string> {
  const sock = connect(m.rtsp?.port as number, "127.0.0.1");
  sock.write(`${lines.join("\r\n")}\r\n\r\n`);
  let got = "";
  for await (const d of sock) {
    got += d;
    if (got.includes("\r\n\r\n")) break;
  }
  sock.destroy();
  return got;
}

/** An ANNOUNCE of live/keyed answered by a Digest for `key` whose uri is `uri`, on one connection: the answer. */
async function digestAnnounce(key: string, uri: string): Promise<string> {
  const sock = connect(m.rtsp?.port as number, "127.0.0.1");
  const url = `rtsp://127.0.0.1:${m.rtsp?.port}/live/keyed`;
  const sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
  const announce = (cseq: number, auth = "") =>
    `ANNOUNCE ${url} RTSP/1.0\r\nCSeq: ${cseq}\r\n${auth}Content-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
  let got = "";
  sock.on("data", (d) => {
    got += d.toString("latin1");
  });
  sock.write(announce(1));
  await until("the challenge", async () => got.includes("\r\n\r\n"));
  const nonce = /nonce="([0-9a-f]+)"/.exec(got)?.[1] as string;
  const md5 = (s: string) => createHash("md5").update(s).digest("hex");
  const response = md5(`${md5(`cam:ami-streams:${key}`)}:${nonce}:${md5(`ANNOUNCE:${uri}`)}`);
  got = "";
  sock.write(
    announce(
      2,
      `Authorization: Digest username="cam", realm="ami-streams", nonce="${nonce}", uri="${uri}", response="${response}"\r\n`,
    ),
  );
  await until("the answer", async () => got.includes("\r\n\r\n"));
  sock.destroy();
  return got;
}

test(
  "keys: none gets 401 with a Digest challenge, a wrong one 401 and no publish, the right one (Digest or ?key=) publishes",
  opts,
  async () => {
    const key = m.auth.keys.create("live/keyed").key;
    const head = await request(["ANNOUNCE rtsp://127.0.0.1/live/keyed RTSP/1.0", "CSeq: 1"]);
    assert.match(head, /^RTSP\/1.0 401/);
    assert.match(head, /WWW-Authenticate: Digest realm="ami-streams", nonce="[0-9a-f]+"/);
    // The right key signed for another resource (a replayed or redirected answer): 400, nothing published.
    assert.match(await digestAnnounce(key, "/live/other"), /^RTSP\/1.0 400/);
    assert.match(await digestAnnounce("sk_wrong", "/live/keyed"), /^RTSP\/1.0 401/);
    assert.match(await digestAnnounce(key, `rtsp://cam.example/live/keyed`), /^RTSP\/1.0 200/);
    assert.equal(m.hub.get("live/keyed"), undefined);

    for (const url of [
      `rtsp://any:sk_wrong@127.0.0.1:${m.rtsp?.port}/live/keyed`,
      `${m.rtspUrl}/live/keyed?key=sk_wrong`,
    ]) {
      const bad = publish(url, 3, "rtsp", X264);
      assert.notEqual(await bad.exit, 0, "a wrong key fails the publisher");
      assert.equal(m.hub.get("live/keyed"), undefined);
    }
    for (const url of [
      `rtsp://cam:${key}@127.0.0.1:${m.rtsp?.port}/live/keyed`,
      `${m.rtspUrl}/live/keyed?key=${key}`,
    ]) {
      const pub = publish(url, 6, "rtsp", ["-rtsp_transport", "tcp", ...X264]);
      await until(
        `live/keyed over ${url.includes("?key") ? "?key=" : "Digest"}`,
        async () => m.hub.get("live/keyed")?.stats.videoCodec,
      );
      pub.proc.kill("SIGINT");
      await pub.exit;
      await until("the publisher to leave", async () => !m.hub.get("live/keyed"));
    }
  },
);

/** Resolves once the server closes a connection that wrote `bytes` (rejects if it stays open). */
const closedAfter = (bytes: (Buffer | string)[], ms = 10000) =>
  new Promise<string>((resolve, reject) => {
    const sock: Socket = connect(m.rtsp?.port as number, "127.0.0.1");
    let got = "";
    sock.on("error", () => {});
    sock.on("data", (d) => {
      got += d.toString("latin1");
    });
    sock.on("close", () => resolve(got));
    for (const b of bytes) sock.write(b);
    setTimeout(() => {
      sock.destroy();
      reject(new Error("server kept the connection open"));
    }, ms).unref();
  });

test("hostile peers close only their own connection; the server goes on serving", opts, async () => {
  const pub = await rtspPublish("open/hostile", 14, rtspOut("tcp"));
  try {
    const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) & 0xff));
    garbage[0] = 0x47; // not '$' and not a method
    assert.match(await closedAfter([garbage]), /^RTSP\/1.0 400/);
    assert.match(await closedAfter([`OPTIONS rtsp://x/ RTSP/1.0\r\nX: ${"a".repeat(20000)}`]), /^RTSP\/1.0 431/);
    const many = Array.from({ length: 100 }, (_, i) => `X-${i}: y`).join("\r\n");
    assert.match(await closedAfter([`OPTIONS rtsp://x/ RTSP/1.0\r\nCSeq: 1\r\n${many}\r\n\r\n`]), /431/);
    assert.match(await closedAfter(["OPTIONS rtsp://x/ RTSP/2.0\r\nCSeq: 1\r\n\r\n"]), /505/);
    // A method the server does not have: 501 with the methods it does (RFC 2326 7.1), connection kept.
    const unknown = await new Promise<string>((resolve, reject) => {
      const sock: Socket = connect(m.rtsp?.port as number, "127.0.0.1");
      sock.on("error", reject);
      sock.once("data", (d) => {
        resolve(d.toString("latin1"));
        sock.destroy();
      });
      sock.write("REDIRECT rtsp://x/open/hostile RTSP/1.0\r\nCSeq: 7\r\n\r\n");
    });
    assert.match(unknown, /^RTSP\/1.0 501 Not Implemented\r\n/);
    assert.match(unknown, /\r\nPublic: OPTIONS, DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD/);
    assert.match(
      await closedAfter(["ANNOUNCE rtsp://x/open/big RTSP/1.0\r\nContent-Length: 999999999\r\n\r\n"]),
      /413/,
    );
    // A flood of requests before RECORD/PLAY: cut off after maxRequestsBeforeStart.
    const flood = Array.from({ length: 200 }, (_, i) => `OPTIONS * RTSP/1.0\r\nCSeq: ${i}\r\n\r\n`).join("");
    const answered = (await closedAfter([flood])).match(/RTSP\/1.0 200/g)?.length ?? 0;
    assert.ok(answered <= 20, `answered ${answered} before the cut`);
    // Interleaved bytes before RECORD, and a silent socket: closed (budget, handshake timeout).
    const frame = Buffer.concat([Buffer.from([0x24, 0, 0xff, 0xff]), Buffer.alloc(0xffff)]);
    await closedAfter([frame, frame]);
    await closedAfter([], 8000);
    await closedAfter(["OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"], 8000);
    // More connections than one address may hold: the extra ones are closed at once.
    const socks = Array.from({ length: 24 }, () => connect(m.rtsp?.port as number, "127.0.0.1").on("error", () => {}));
    const closed = await Promise.all(
      socks.map(
        (s) =>
          new Promise<boolean>((r) => {
            s.once("close", () => r(true));
            setTimeout(() => r(false), 1000).unref();
          }),
      ),
    );
    assert.ok(closed.filter(Boolean).length >= 8, "connections over maxConnectionsPerAddress are closed");
    for (const s of socks) s.destroy();
    // Still serving.
    const url = `${m.rtspUrl}/open/hostile`;
    assert.deepEqual(kinds(await ffprobe(url)), ["audio:aac", "video:h264"]);
    assert.ok((await readFrames(url, "tcp")) >= 25);
  } finally {
    pub.proc.kill("SIGINT");
    await pub.exit;
  }
});
