/**
 * Recordings into the content-addressed store: a real ffmpeg publish (H.264 + AAC over RTMP) is recorded in
 * 1-second files; each finished file is moved into the store (held, listed by its object id) and removed from the
 * recording directory; read back from the store, ffprobe finds its video and audio. Retention releases stored files
 * (the hold goes, GC frees the bytes), and a restarted media server still lists what is stored.
 */
import assert from "node:assert/strict";
import { createWriteStream, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, test } from "node:test";
import { testParams } from "../../src/cas/conformance.ts";
import { FsCasStore } from "../../src/cas/fs-backend.ts";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { recordingHold } from "../../src/media/recordings.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const dir = mkdtempSync(join(tmpdir(), "ami-media-record-cas-"));
const cas = new FsCasStore({ root: join(dir, "cas"), params: testParams });
const media = {
  rtmpPort: 0,
  httpPort: 0,
  srtPort: 0,
  rtsp: { port: 0 },
  endGraceSeconds: 0,
  recordSegmentSeconds: 1,
  recordPath: join(dir, "rec"),
};
let m: MediaServer;

before(async () => {
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { cas });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a recording from a real ffmpeg publish lands in the store and plays back from it", async () => {
  const rec = m.recordings.start("live/cas");
  const pub = publish(`${m.rtmpUrl}/live/cas`, 5);
  await until("a finished file in the store", async () => (m.recordings.get("live/cas")?.stored ?? 0) >= 1, 30_000);
  await pub.exit;
  await until(
    "the recording to wait for the next publisher",
    async () => m.recordings.get("live/cas")?.state === "waiting",
  );
  const done = await m.recordings.stop("live/cas");
  assert.ok(done.stored >= 3, `${done.stored} file(s) stored`);
  assert.equal(done.stored, done.files, "every finished file is in the store");
  assert.deepEqual(
    readdirSync(rec.dir).filter((f) => f.endsWith(".mp4")),
    [],
    "no plain files left once they are stored",
  );
  let seconds = 0;
  for (const s of done.segments) {
    assert.ok(s.id, `${s.name} has an object id`);
    const info = await cas.stat(s.id);
    assert.equal(info.size, s.bytes);
    assert.deepEqual(info.holds, [recordingHold("live/cas", s.name)]);
    const out = join(dir, `back-${s.name}`);
    await pipeline(Readable.from(cas.get(s.id)), createWriteStream(out));
    const p = await ffprobe(out);
    assert.deepEqual(kinds(p), ["audio:aac", "video:h264"], s.name);
    seconds += Number(p.format.duration);
  }
  assert.ok(seconds >= 3, `${seconds.toFixed(1)} s recorded`);

  // A restarted server lists the stored files (the index survives), and retention releases them.
  await m.close();
  const strict = { ...media, recordMaxBytes: 1 };
  m = await MediaServer.start(configSchema.parse({ media: strict }).media, silentLogger, { cas });
  const again = m.recordings.start("live/cas");
  assert.ok(again.stored >= 1, `${again.stored} stored after a restart`);
  await until(
    "retention to release all but the newest",
    async () => m.recordings.get("live/cas")?.stored === 1,
    10_000,
  );
  const kept = m.recordings.get("live/cas")!.segments;
  const released = done.segments.filter((s) => !kept.some((k) => k.name === s.name));
  assert.ok(released.length >= 2);
  for (const s of released) {
    const o = await cas.stat(s.id!).catch(() => undefined);
    assert.ok(!o || o.holds.length === 0, `${s.name} released`);
  }
  await m.recordings.stop("live/cas");
});
