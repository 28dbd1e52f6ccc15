/**
 * SRT publishers that may not publish are refused in the handshake with an SRT_REJX_* reason (not left to time
 * out): a raw SRT caller reads the reason from the rejection; ffmpeg's caller exits at once with libsrt's REJECT
 * message; a publisher with a valid key is unaffected, and a second one on its busy path is refused.
 * (The raw caller's conclusion carries the HSREQ extension libsrt sends, so it gets as far as the access check.)
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { HS_CONCLUSION, HS_INDUCTION, REJ, rejectReason } from "../../src/media/servers/srt/handshake.ts";
import { srtHandshake } from "./helpers/attack.ts";
import { until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const dir = mkdtempSync(join(tmpdir(), "ami-media-srtrej-"));
let m: MediaServer;
let key: string;

before(async () => {
  if (!hasFfmpeg) return;
  // Loopback publishers are not trusted here, so a missing key is refused as it would be from another host.
  // closed/**: nobody may read (an SRT reader is checked like any other).
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    trustLoopbackPublishers: false,
    paths: { "closed/**": { read: "none" } },
  };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  key = m.auth.keys.create("live/ok").key;
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Induction, then a conclusion with `streamId`: the rejection reason the server answers with (or undefined). */
async function rawCaller(streamId: string): Promise<number | undefined> {
  const sock = createSocket("udp4");
  const socketId = randomInt(1, 0x3fffffff);
  const replies: Buffer[] = [];
  sock.on("message", (msg) => replies.push(msg));
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  try {
    const send = (b: Buffer) => sock.send(b, m.srt.port, "127.0.0.1");
    // The caller retransmits until answered, as libsrt does (the server opens a session on the first induction).
    const induction = await until("the induction response", async () => {
      send(srtHandshake({ version: 4, type: HS_INDUCTION, socketId }));
      return replies.find((r) => r.length >= 64 && r.readUInt32BE(36) === HS_INDUCTION);
    });
    const cookie = induction.readUInt32BE(44);
    return await until("an answer to the conclusion", async () => {
      send(srtHandshake({ version: 5, type: HS_CONCLUSION, socketId, cookie, streamId }));
      const rej = replies.map(rejectReason).find((x) => x !== undefined);
      if (rej !== undefined) {
        // The rejection goes to our socket id, as libsrt expects.
        const r = replies.find((x) => rejectReason(x) !== undefined) as Buffer;
        assert.equal(r.readUInt32BE(12), socketId);
      }
      return rej;
    });
  } finally {
    sock.close();
  }
}

function ffmpegSrt(
  streamId: string,
  seconds: number,
): { proc: ChildProcess; exit: Promise<number | null>; err: () => string } {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"],
      ...["-f", "mpegts", `srt://127.0.0.1:${m.srt.port}?streamid=${streamId}`],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let err = "";
  proc.stderr?.on("data", (d) => {
    err += d;
  });
  return { proc, exit: new Promise((r) => proc.once("close", r)), err: () => err };
}

test(
  "the rejection carries the reason: no key 1401, wrong key or read refused 1403, nothing to read 1404, no path 1400",
  opts,
  async () => {
    assert.equal(await rawCaller("publish:live/ok"), REJ.UNAUTHORIZED);
    assert.equal(await rawCaller("publish:live/ok:sk_wrong"), REJ.FORBIDDEN);
    // Reading is allowed (read: any) but nothing is published there.
    assert.equal(await rawCaller("read:live/ok"), REJ.NOT_FOUND);
    assert.equal(await rawCaller("#!::r=live/ok,m=request"), REJ.NOT_FOUND);
    assert.equal(await rawCaller("#!::r=live/ok,m=bidirectional"), REJ.BAD_REQUEST);
    assert.equal(await rawCaller("read:closed/x"), REJ.FORBIDDEN, "the read check refuses");
    assert.equal(await rawCaller("publish:../etc"), REJ.BAD_REQUEST);
    await until("the refused sessions to close", async () => m.srt.sessions.size === 0);
  },
);

test("ffmpeg is refused at once (wrong key, busy path) while a keyed publisher keeps streaming", opts, async () => {
  const good = ffmpegSrt(`publish:live/ok:${key}`, 8);
  try {
    await until("the keyed SRT stream to go live", async () => m.hub.get("live/ok")?.stats.videoCodec);
    const wrong = ffmpegSrt("publish:live/ok2:sk_nope", 8);
    assert.notEqual(await wrong.exit, 0, "a wrong key fails");
    // libsrt's own words for a handshake rejection (a timeout would say "Connection setup failure").
    assert.match(wrong.err(), /REJECT/, wrong.err());
    const busy = ffmpegSrt(`publish:live/ok:${key}`, 8);
    assert.notEqual(await busy.exit, 0, "a second publisher on a busy path fails");
    assert.match(busy.err(), /REJECT/, busy.err());
    assert.equal(m.hub.get("live/ok2"), undefined);
    const live = m.hub.get("live/ok");
    assert.ok(live && !live.ended, "the first publisher is unaffected");
    assert.equal(live.publisher.protocol, "srt");
    assert.equal(await good.exit, 0, "the keyed publisher finished normally");
  } finally {
    good.proc.kill("SIGKILL");
  }
});
