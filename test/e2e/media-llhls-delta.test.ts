/**
 * LL-HLS playlist delta updates (draft-pantos-hls-rfc8216bis 6.2.5.1) with a real ffmpeg publisher: the server
 * advertises CAN-SKIP-UNTIL, and `_HLS_skip=YES` (alone or with a blocking reload) replaces the segments older
 * than that boundary with EXT-X-SKIP while the rest matches the full playlist.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const PATH = "live/delta";
let m: MediaServer;
let pub: ReturnType<typeof publish> | undefined;

before(async () => {
  if (!hasFfmpeg) return;
  // A 24-segment window of 1 s segments: longer than the skip boundary (6 target durations), so a delta has
  // something to skip.
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, hlsSegmentCount: 24 };
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger);
  pub = publish(`${m.rtmpUrl}/${PATH}`, 60);
});

after(async () => {
  pub?.proc.kill("SIGKILL");
  await pub?.exit;
  await m?.close();
});

const get = async (q = "") => {
  const r = await fetch(`${m.httpUrl}/${PATH}/stream.m3u8${q}`);
  return { status: r.status, body: await r.text() };
};
const tag = (body: string, name: string) => new RegExp(`^#${name}:(.*)$`, "m").exec(body)?.[1];
const segs = (body: string) => [...body.matchAll(/^seg(\d+)\.m4s$/gm)].map((x) => Number(x[1]));
/** Seconds of complete segments listed. */
const durations = (body: string) => [...body.matchAll(/^#EXTINF:([\d.]+),$/gm)].reduce((a, x) => a + Number(x[1]), 0);

test("_HLS_skip=YES answers a delta playlist with EXT-X-SKIP", opts, async () => {
  const full = await until(
    "a playlist longer than the skip boundary",
    async () => {
      const p = await get();
      const target = Number(tag(p.body, "EXT-X-TARGETDURATION"));
      return p.status === 200 && durations(p.body) >= 6 * target + 3 ? p.body : undefined;
    },
    50000,
  );
  const target = Number(tag(full, "EXT-X-TARGETDURATION"));
  const control = tag(full, "EXT-X-SERVER-CONTROL") ?? "";
  assert.match(control, new RegExp(`CAN-SKIP-UNTIL=${6 * target}(,|$)`), "6 × the target duration");
  assert.match(control, /CAN-BLOCK-RELOAD=YES/);
  assert.equal(tag(full, "EXT-X-SKIP"), undefined, "no skip without _HLS_skip");

  const delta = (await get("?_HLS_skip=YES")).body;
  const skipped = Number(/^#EXT-X-SKIP:SKIPPED-SEGMENTS=(\d+)$/m.exec(delta)?.[1]);
  assert.ok(skipped > 0, delta);
  assert.equal(tag(delta, "EXT-X-VERSION"), "10", "EXT-X-SKIP needs version 10");
  const seq = Number(tag(delta, "EXT-X-MEDIA-SEQUENCE"));
  const shown = segs(delta);
  assert.equal(shown[0], seq + skipped, "the first listed segment follows the skipped ones");
  // What remains reaches back to the 6 s boundary (less the first shown and the open segment); every shown
  // segment is in a full playlist.
  assert.ok(durations(delta) >= 6 * target - 2.5 * target, `shown ${durations(delta)} s`);
  const fullAfter = segs((await get()).body);
  for (const n of shown.slice(0, -1)) assert.ok(fullAfter.includes(n), `seg${n} in the full playlist`);
  assert.ok(shown.length < segs(full).length, "the delta is shorter");
  // The first shown segment names its init and wall-clock time, as the first segment of a full playlist does.
  assert.match(delta, /#EXT-X-MAP:URI="init\.mp4"\n#EXT-X-PROGRAM-DATE-TIME:/);

  // A blocking reload can ask for a delta too.
  const next = Math.max(...shown) + 1;
  const blocked = await get(`?_HLS_msn=${next}&_HLS_skip=YES`);
  assert.equal(blocked.status, 200);
  assert.match(blocked.body, /^#EXT-X-SKIP:SKIPPED-SEGMENTS=\d+$/m);
  assert.ok(segs(blocked.body).includes(next), blocked.body);
});
