/**
 * RTMP connection caps and timeouts with short settings (media.rtmp): connections beyond the per-address cap are
 * closed at once and a freed slot is usable again; a peer trickling bytes is still closed at the setup deadline;
 * an admitted publisher that goes quiet is closed after the idle timeout.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { rtmpHandshake } from "./helpers/attack.ts";
import { RtmpPublisher } from "./helpers/rtmp-publisher.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-media-rtmplimits-"));
let m: MediaServer;

before(async () => {
  const rtmp = { maxConnectionsPerAddress: 3, handshakeTimeoutSeconds: 1, idleTimeoutSeconds: 1 };
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, rtmp };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir: dir });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A plain TCP connection to the RTMP port; resolves how long it stayed open, or -1 if still open after `ms`. */
function tcp(ms: number): { closedAfter: Promise<number>; end(): void } {
  const s = connect(m.rtmp.port, "127.0.0.1");
  s.on("error", () => {});
  const t0 = Date.now();
  const closedAfter = new Promise<number>((r) => {
    s.once("close", () => r(Date.now() - t0));
    setTimeout(() => r(-1), ms).unref();
  });
  return { closedAfter, end: () => s.destroy() };
}

test("connections beyond maxConnectionsPerAddress are closed at once; a freed slot is taken again", async () => {
  const held = [tcp(5000), tcp(5000), tcp(5000)];
  await new Promise((r) => setTimeout(r, 200));
  const fourth = await tcp(500).closedAfter;
  assert.ok(fourth >= 0 && fourth < 300, `the 4th connection closed after ${fourth} ms`);
  held[0]?.end();
  await held[0]?.closedAfter;
  await new Promise((r) => setTimeout(r, 100));
  const again = tcp(300);
  assert.equal(await again.closedAfter, -1, "accepted once a slot is free");
  again.end();
  for (const h of held) h.end();
});

test("a peer trickling bytes after the handshake is closed at the setup deadline", async () => {
  // The previous test's connections are gone on our side first: wait until the server has let them go too.
  while (m.rtmp.conns.size > 0) await new Promise((r) => setTimeout(r, 20));
  const a = await rtmpHandshake(m.rtmp.port);
  // A valid chunk header, then its body one byte at a time: never a whole message, always some activity.
  a.socket.write(Buffer.from([0x03, 0, 0, 0, 0, 0x10, 0, 0x14, 0, 0, 0, 0]));
  const t = setInterval(() => a.socket.write(Buffer.from([0x05])), 100);
  const ms = await a.closed;
  clearInterval(t);
  assert.ok(ms >= 900 && ms < 3000, `closed after ${ms} ms (deadline 1 s)`);
});

test("an admitted publisher that sends nothing is closed after the idle timeout", async () => {
  const p = await RtmpPublisher.publish(`rtmp://127.0.0.1:${m.rtmp.port}/live/quiet`);
  const t0 = Date.now();
  await new Promise<void>((r) => p.socket.once("close", () => r()));
  const ms = Date.now() - t0;
  assert.ok(ms >= 800 && ms < 3000, `closed after ${ms} ms (idle timeout 1 s)`);
});
