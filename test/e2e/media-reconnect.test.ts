/**
 * Reconnect semantics with real ffmpeg publishers: a publisher that leaves and comes back within
 * media.endGraceSeconds continues the same HLS playlist after EXT-X-DISCONTINUITY (players never see ENDLIST)
 * and starts a new DASH Period with its own init; the dynamic MPD stays valid (mpd-parser, ffprobe). A publisher
 * that stays away past the grace ends the playlist (ENDLIST, static MPD).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parse } from "mpd-parser";
import { configSchema } from "../../src/config.ts";
import { silentLogger } from "../../src/core/logger.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { ffprobe, kinds, publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
let m: MediaServer;
let short: MediaServer;

before(async () => {
  if (!hasFfmpeg) return;
  const base = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 } };
  // A grace far longer than the test's own pause, so the reconnect always lands inside it.
  m = await MediaServer.start(configSchema.parse({ media: { ...base, endGraceSeconds: 60 } }).media, silentLogger);
  short = await MediaServer.start(configSchema.parse({ media: { ...base, endGraceSeconds: 1 } }).media, silentLogger);
});

after(async () => {
  await m?.close();
  await short?.close();
});

const text = async (url: string) => {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
};

test("a publisher back within the grace continues HLS (no ENDLIST) and DASH (a new Period)", opts, async () => {
  const url = `${m.httpUrl}/live/rc`;
  const seen: string[] = [];
  let polling = true;
  const first = publish(`${m.rtmpUrl}/live/rc`, 4);
  await until("the first segment", async () => (await text(`${url}/stream.m3u8`)).status === 200);
  // A player's view: the playlist polled all along, through the gap and the return.
  const poller = (async () => {
    while (polling) {
      const p = await text(`${url}/stream.m3u8`);
      assert.equal(p.status, 200, "the playlist stays available across the reconnect");
      seen.push(p.body);
      await sleep(150);
    }
  })();
  try {
    assert.equal(await first.exit, 0);
    await until("the first publisher's end", async () => !m.hub.get("live/rc"));
    const gap = await text(`${url}/stream.m3u8`);
    assert.doesNotMatch(gap.body, /EXT-X-ENDLIST|EXT-X-PRELOAD-HINT/, "while away: live, nothing hinted");
    assert.match((await text(`${url}/index.mpd`)).body, /type="dynamic"/);
    const lastBefore = Math.max(...[...gap.body.matchAll(/^seg(\d+)\.m4s$/gm)].map((x) => Number(x[1])));

    const second = publish(`${m.rtmpUrl}/live/rc`, 5);
    const cont = await until("segments of the second publisher", async () => {
      const b = (await text(`${url}/stream.m3u8`)).body;
      return /#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-1.mp4"/.test(b) && b.includes(`seg${lastBefore + 2}.m4s`) && b;
    });
    const lines = cont.split("\n");
    const d = lines.indexOf("#EXT-X-DISCONTINUITY");
    assert.equal(
      lines.slice(d).find((l) => /^seg\d+\.m4s$/.test(l)),
      `seg${lastBefore + 1}.m4s`,
      "numbering goes on",
    );

    // DASH: two Periods, each with its own init, both readable by mpd-parser; ffprobe reads the live MPD.
    const mpd = (await text(`${url}/index.mpd`)).body;
    assert.match(mpd, /type="dynamic"/);
    const periods = [...mpd.matchAll(/<Period id="(p\d+)" start="PT([\d.]+)S">/g)];
    assert.deepEqual(
      periods.map((p) => p[1]),
      ["p0", "p1"],
    );
    assert.ok(Number(periods[1]?.[2]) > Number(periods[0]?.[2]), "the second Period starts later");
    assert.match(mpd, /initialization="t1-init-1.mp4" media="t1-\$Time\$.m4s"/);
    assert.match(mpd, /initialization="t2-init-1.mp4" media="t2-\$Time\$.m4s"/);
    const parsed = parse(mpd, { manifestUri: `${url}/index.mpd`, NOW: Date.now() });
    const segs = parsed.playlists[0]?.segments ?? [];
    const firstNew = segs.findIndex((s) => s.map?.uri === "t1-init-1.mp4");
    assert.ok(firstNew > 0, "segments from both publishers");
    assert.equal(segs[firstNew]?.discontinuity, true);
    assert.equal((await fetch(`${url}/${segs[firstNew]?.uri}`)).status, 200, "the new Period's first segment");
    for (let i = 1; i < segs.length; i++)
      assert.ok(segs[i]!.presentationTime > segs[i - 1]!.presentationTime, "time only moves forward");
    for (const init of ["t1-init.mp4", "t1-init-1.mp4", "t2-init.mp4", "t2-init-1.mp4"])
      assert.equal((await fetch(`${url}/${init}`)).status, 200, init);
    assert.deepEqual(kinds(await ffprobe(`${url}/index.mpd`)), ["audio:aac", "video:h264"]);

    assert.equal(await second.exit, 0);
  } finally {
    polling = false;
    await poller;
  }
  assert.ok(seen.length > 5);
  assert.ok(!seen.some((b) => b.includes("EXT-X-ENDLIST")), "no poll ever saw EXT-X-ENDLIST");
});

test("a publisher that stays away past the grace: ENDLIST and a static MPD", opts, async () => {
  const url = `${short.httpUrl}/live/gone`;
  const pub = publish(`${short.rtmpUrl}/live/gone`, 3);
  await until("the first segment", async () => (await text(`${url}/stream.m3u8`)).status === 200);
  assert.equal(await pub.exit, 0);
  const ended = await until("ENDLIST after the grace", async () => {
    const b = (await text(`${url}/stream.m3u8`)).body;
    return b.includes("#EXT-X-ENDLIST") && b;
  });
  assert.doesNotMatch(ended, /EXT-X-PRELOAD-HINT/);
  const mpd = (await text(`${url}/index.mpd`)).body;
  assert.match(mpd, /type="static"/);
  assert.equal(parse(mpd, { manifestUri: `${url}/index.mpd` }).playlists[0]?.segments.length > 0, true);
  assert.deepEqual(kinds(await ffprobe(`${url}/index.mpd`)), ["audio:aac", "video:h264"]);
});
