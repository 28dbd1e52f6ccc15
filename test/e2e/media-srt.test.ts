/**
 * SRT in-process, against libsrt as ffmpeg speaks it (the media service in its own process, a passphrase set):
 * ffmpeg publishes H.264 + AAC and H.265 encrypted (`streamid=publish:<path>&passphrase=...`), reads each back
 * over SRT (`streamid=read:<path>`) and decodes it without an error; the publisher plays over HLS; the service
 * runs no process for any of it; a wrong or missing passphrase is refused; and through a UDP relay that drops
 * 2 % of the data packets each way the stream still decodes cleanly (NAK + retransmission both ways).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { after, before, test } from "node:test";
import { MediaChild, tree } from "../../bench/media/lib.ts";
import { ffprobe, kinds, liveNow, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const PASS = "ami-srt-e2e-passphrase";
let m: MediaChild;
let port: number;

before(async () => {
  if (!hasFfmpeg) return;
  m = await MediaChild.start({ srt: { passphrase: PASS } });
  port = Number(new URL(m.srt).port);
});

after(async () => {
  await m?.stop();
});

const srtUrl = (streamid: string, p = port, pass: string | null = PASS) =>
  `srt://127.0.0.1:${p}?streamid=${streamid}${pass ? `&passphrase=${pass}&pbkeylen=16` : ""}`;

function run(args: string[]): { exit: Promise<number | null>; err: () => string; kill: () => void } {
  const proc = spawn("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  proc.stderr.on("data", (d) => {
    err += d;
  });
  return { exit: new Promise((r) => proc.once("close", r)), err: () => err, kill: () => proc.kill("SIGKILL") };
}

/** ffmpeg publishing testsrc2 + sine for `seconds` in real time as MPEG-TS to `url`. */
const publish = (url: string, seconds: number, video: string[], audio = ["-c:a", "aac"]) =>
  run([
    ...["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine"],
    ...["-t", String(seconds), ...video, "-g", "25", ...audio, "-f", "mpegts", url],
  ]);

const X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency"];
const X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"];

/** Reads `path` back over SRT and decodes `seconds` of it; resolves with ffmpeg's exit and error output. */
async function readBack(path: string, seconds: number): Promise<{ code: number | null; err: string }> {
  const r = run(["-err_detect", "explode", "-i", srtUrl(`read:${path}`), "-t", String(seconds), "-f", "null", "-"]);
  const code = await r.exit;
  return { code, err: r.err() };
}

test(
  "H.264 + AAC published and read back over encrypted SRT, and played over HLS; no process runs for it",
  opts,
  async () => {
    const pub = publish(srtUrl("publish:live/x"), 14, X264);
    try {
      await until("the SRT publisher to go live", () => liveNow(m.http, "live/x"));
      assert.deepEqual(tree(m.pid), [m.pid], "the media service has no child process while it ingests SRT");
      const probe = await ffprobe(srtUrl("read:live/x"));
      assert.deepEqual(kinds(probe), ["audio:aac", "video:h264"]);
      const back = await readBack("live/x", 4);
      assert.equal(back.code, 0, back.err);
      assert.equal(back.err.trim(), "", "decoded without an error");
      assert.deepEqual(kinds(await ffprobe(`${m.http}/live/x/index.m3u8`)), ["audio:aac", "video:h264"]);
      assert.deepEqual(tree(m.pid), [m.pid], "still no child process with a reader");
    } finally {
      pub.kill();
      await pub.exit;
    }
  },
);

test("H.265 + Opus published and read back over SRT", opts, async () => {
  const pub = publish(srtUrl("publish:live/h"), 12, X265, ["-c:a", "libopus", "-ar", "48000"]);
  try {
    await until("the H.265 publisher to go live", () => liveNow(m.http, "live/h"));
    assert.deepEqual(kinds(await ffprobe(srtUrl("read:live/h"))), ["audio:opus", "video:hevc"]);
    const back = await readBack("live/h", 3);
    assert.equal(back.code, 0, back.err);
    assert.equal(back.err.trim(), "", "decoded without an error");
  } finally {
    pub.kill();
    await pub.exit;
  }
});

test("a wrong or missing passphrase is refused in the handshake; reading a path with no stream too", opts, async () => {
  const wrong = publish(srtUrl("publish:live/w", port, "not-the-passphrase"), 4, X264);
  assert.notEqual(await wrong.exit, 0);
  assert.match(wrong.err(), /REJECT|passphrase|secret/i, wrong.err());
  const none = publish(srtUrl("publish:live/w", port, null), 4, X264);
  assert.notEqual(await none.exit, 0);
  assert.match(none.err(), /REJECT|unsecure|encrypt/i, none.err());
  const nothing = await readBack("live/nothing", 1);
  assert.notEqual(nothing.code, 0);
  assert.equal(await liveNow(m.http, "live/w"), false);
});

/** A UDP relay to the server (one upstream socket per client) dropping `percent` of the data packets each way. */
async function lossyRelay(percent: number) {
  const front = createSocket("udp4");
  const upstream = new Map<string, Socket>();
  const counts = { dropped: 0, passed: 0 };
  const lose = (msg: Buffer) => ((msg[0] as number) & 0x80) === 0 && Math.random() * 100 < percent;
  front.on("message", (msg, r: RemoteInfo) => {
    const key = `${r.address}:${r.port}`;
    let up = upstream.get(key);
    if (!up) {
      const s = createSocket("udp4");
      s.on("message", (back) => {
        if (lose(back)) counts.dropped++;
        else front.send(back, r.port, r.address);
      });
      s.bind(0, "127.0.0.1");
      upstream.set(key, s);
      up = s;
    }
    if (lose(msg)) counts.dropped++;
    else {
      counts.passed++;
      up.send(msg, port, "127.0.0.1");
    }
  });
  await new Promise<void>((r) => front.bind(0, "127.0.0.1", () => r()));
  return {
    port: front.address().port,
    counts,
    close() {
      front.close();
      for (const s of upstream.values()) s.close();
    },
  };
}

test(
  "2 % of the data packets lost each way: publish and read back through the relay still decode cleanly",
  opts,
  async () => {
    const relay = await lossyRelay(2);
    // 400 ms latency (libsrt's option is in µs): retransmissions, not the shared CI machine's stalls, are tested.
    const lat = "&latency=400000";
    const pub = publish(`${srtUrl("publish:live/loss", relay.port)}${lat}`, 14, [...X264, "-b:v", "1M"]);
    try {
      await until("the publisher behind the lossy relay to go live", () => liveNow(m.http, "live/loss"));
      const r = run([
        ...["-err_detect", "explode", "-i", `${srtUrl("read:live/loss", relay.port)}${lat}`],
        ...["-t", "5", "-f", "null", "-"],
      ]);
      const code = await r.exit;
      assert.equal(code, 0, r.err());
      assert.equal(r.err().trim(), "", "decoded without an error");
      assert.ok(relay.counts.dropped > 10, `the relay dropped ${relay.counts.dropped} packets`);
    } finally {
      pub.kill();
      await pub.exit;
      relay.close();
    }
  },
);
