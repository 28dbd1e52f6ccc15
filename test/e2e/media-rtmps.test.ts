/**
 * RTMPS: with media.rtmps enabled and no certificate configured, a self-signed pair is generated once under the
 * data dir (and reused); real ffmpeg publishes over rtmps:// and the stream plays as HLS and over rtmps://;
 * garbage and plain RTMP on the TLS port close only their own connection; a restream to an rtmps:// destination
 * (our own RTMPS listener) arrives; configured cert/key files are used, unreadable ones fail clearly.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { configSchema } from "../../src/config.ts";
import { createLogger, silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const hasTools = spawnSync("ffmpeg", ["-version"]).status === 0 && spawnSync("openssl", ["version"]).status === 0;
const opts = { skip: hasTools ? false : "ffmpeg or openssl is not installed" };
const dir = mkdtempSync(join(tmpdir(), "ami-media-rtmps-"));
const logs: string[] = [];
const media = {
  rtmpPort: 0,
  httpPort: 0,
  srtPort: 0,
  rtsp: { port: 0 },
  retryInitialMs: 300,
  retryMaxMs: 1000,
  rtmps: { enabled: true, port: 0 },
};
let m: MediaServer;

before(async () => {
  if (!hasTools) return;
  const log = createLogger({ write: (l) => logs.push(l) });
  m = await MediaServer.start(configSchema.parse({ media }).media, log, { dataDir: dir });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Resolves once the server closes a connection that wrote `bytes` (rejects if it stays open). */
const closedAfter = (open: () => Socket, bytes: Buffer[]) =>
  new Promise<void>((resolve, reject) => {
    const sock = open();
    sock.on("error", () => {});
    sock.on("data", () => {});
    sock.on("close", () => resolve());
    for (const b of bytes) sock.write(b);
    setTimeout(() => reject(new Error("server kept the connection open")), 15000).unref();
  });

test("a self-signed certificate is generated once and logged", opts, () => {
  const pem = readFileSync(join(dir, "tls", "rtmps-cert.pem"));
  const cert = new X509Certificate(pem);
  assert.match(cert.subject, /CN=ami-streams/);
  assert.ok(cert.checkIP("127.0.0.1"), "valid for the loopback address");
  const line = logs.map((l) => JSON.parse(l)).find((l) => /self-signed/.test(l.msg));
  assert.equal(line?.sha256, cert.fingerprint256, "the log names the certificate's fingerprint");
});

test(
  "ffmpeg publishes over rtmps://: HLS and rtmps:// playback carry H.264 + AAC; bad bytes hurt no one",
  opts,
  async () => {
    const pub = publish(`${m.rtmpsUrl}/live/tls`, 8);
    try {
      await until("the RTMPS stream to go live", async () => m.hub.get("live/tls")?.stats.videoCodec);
      assert.equal(m.hub.get("live/tls")?.publisher.protocol, "rtmps");
      await until("an HLS segment", async () => (await fetch(`${m.httpUrl}/live/tls/stream.m3u8`)).status === 200);
      assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/live/tls/index.m3u8`)), ["audio:aac", "video:h264"]);
      assert.deepEqual(kinds(await ffprobe(`${m.rtmpsUrl}/live/tls`)), ["audio:aac", "video:h264"]);

      const port = m.rtmps?.port as number;
      const tcp = () => connect(port, "127.0.0.1");
      // Plain RTMP (C0 + C1) and garbage are not TLS: the handshake fails and the server drops that socket.
      await closedAfter(tcp, [Buffer.from([3]), randomBytes(1536)]);
      await closedAfter(tcp, [Buffer.from("GET / HTTP/1.1\r\n\r\n"), randomBytes(3000)]);
      // TLS done right, then garbage inside it: the RTMP layer closes that connection.
      await closedAfter(() => tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false }), [randomBytes(4000)]);
      const live = m.hub.get("live/tls");
      assert.ok(live && !live.ended, "the RTMPS publisher is unaffected");
      assert.equal(await pub.exit, 0);
    } finally {
      pub.proc.kill("SIGKILL");
    }
  },
);

test("a restream to an rtmps:// destination (our own RTMPS listener) arrives", opts, async () => {
  m.restreams.add("live/src", `${m.rtmpsUrl}/live/copy`);
  const pub = publish(`${m.rtmpUrl}/live/src`, 8);
  try {
    const copy = await until("the restreamed path", async () => {
      const s = m.hub.get("live/copy");
      return s?.stats.videoCodec ? s : undefined;
    });
    assert.equal(copy.publisher.protocol, "rtmps", "the copy arrived over TLS");
    await until("HLS of the copy", async () => (await fetch(`${m.httpUrl}/live/copy/stream.m3u8`)).status === 200);
    assert.deepEqual(kinds(await ffprobe(`${m.httpUrl}/live/copy/index.m3u8`)), ["audio:aac", "video:h264"]);
    assert.equal(m.restreams.list("live/src")[0]?.state, "live");
    assert.equal(await pub.exit, 0);
  } finally {
    pub.proc.kill("SIGKILL");
    await m.restreams.remove("live/src", `${m.rtmpsUrl}/live/copy`);
  }
});

test("configured cert/key are used; the generated pair is reused; unreadable files fail clearly", opts, async () => {
  const cert = join(dir, "tls", "rtmps-cert.pem");
  const key = join(dir, "tls", "rtmps-key.pem");
  const before = readFileSync(cert);
  const again = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
  await again.close();
  assert.deepEqual(readFileSync(cert), before, "a restart reuses the generated certificate");

  const other = mkdtempSync(join(tmpdir(), "ami-media-rtmps-own-"));
  try {
    const own = { ...media, rtmps: { enabled: true, port: 0, cert, key } };
    const s = await MediaServer.start(configSchema.parse({ media: own }).media, silentLogger, { dataDir: other });
    try {
      const peer = await new Promise<Buffer>((resolve, reject) => {
        const t = tlsConnect({ port: s.rtmps?.port as number, host: "127.0.0.1", rejectUnauthorized: false }, () => {
          resolve(t.getPeerX509Certificate()?.raw as Buffer);
          t.destroy();
        });
        t.on("error", reject);
      });
      assert.deepEqual(peer, new X509Certificate(before).raw, "the configured certificate is served");
    } finally {
      await s.close();
    }
    const missing = { ...media, rtmps: { enabled: true, port: 0, cert: join(other, "no.pem"), key } };
    await assert.rejects(
      MediaServer.start(configSchema.parse({ media: missing }).media, silentLogger, { dataDir: other }),
      {
        code: "AMI_INVALID_INPUT",
        message: /media\.rtmps\.cert: cannot read/,
      },
    );
    assert.throws(() => configSchema.parse({ media: { rtmps: { enabled: true, cert } } }), /cert and key go together/);
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});
