/**
 * Media auth with real ffmpeg publishers: stream keys (wrong key refused with NetStream.Publish error, right key
 * accepted in the ffmpeg and OBS forms and over SRT, revoked key refused), signed expiring playback URLs (the
 * playlist's own URIs carry the signature; bad and expired signatures fail), and the HTTP auth hook (allows,
 * denies, and fails closed when it does not answer in time).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamKeyCreate, streamKeyList, streamKeyRevoke, streamSign } from "../../src/media/ops/keys.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const home = mkdtempSync(join(tmpdir(), "ami-media-auth-"));
// $AMI_STREAMS_HOME wins over config.home: the in-process ops must use this test's home, not an exported one.
process.env.AMI_STREAMS_HOME = home;
let m: MediaServer;
let hooked: MediaServer;
let hook: Server;
let ctx: OpContext;
const hookCalls: Record<string, unknown>[] = [];
const procs: ChildProcess[] = [];

before(async () => {
  if (!hasFfmpeg) return;
  // No loopback trust here: the test's publishers are all local, and key checks are what is under test.
  const media = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    trustLoopbackPublishers: false,
    paths: { "private/*": { publish: "any", read: "signed" }, "closed/**": { publish: "none" } },
  };
  const dataDir = join(home, "data", "media");
  m = await MediaServer.start(configSchema.parse({ media }).media, silentLogger, { dataDir });
  const config = configSchema.parse({ home, media: { httpPort: Number(new URL(m.httpUrl).port) } });
  ctx = makeContext({ config, configPath: undefined, log: silentLogger });

  hook = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => {
      body += d;
    });
    req.on("end", () => {
      const b = JSON.parse(body) as { path: string };
      hookCalls.push(b);
      if (b.path.endsWith("/slow")) return; // never answers: the server must give up and deny
      res.writeHead(b.path.startsWith("hooked/yes") ? 204 : 403).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
  const port = (hook.address() as { port: number }).port;
  const hm = {
    rtmpPort: 0,
    httpPort: 0,
    srtPort: 0,
    rtsp: { port: 0 },
    authHook: `http://127.0.0.1:${port}/auth`,
    authHookTimeoutMs: 500,
  };
  hooked = await MediaServer.start(configSchema.parse({ media: hm }).media, silentLogger, {
    dataDir: join(home, "hooked"),
  });
});

after(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await m?.close();
  await hooked?.close();
  hook?.closeAllConnections();
  await new Promise((r) => (hook ? hook.close(r) : r(undefined)));
  rmSync(home, { recursive: true, force: true });
});

/** An ffmpeg RTMP publisher whose stderr we keep (to see the server's refusal). */
function rtmpPublish(url: string, seconds: number) {
  const p = publish(url, seconds);
  procs.push(p.proc);
  return p;
}

/** ffmpeg publishing to `url` fails, with the server's reason in its stderr. */
async function refused(url: string, why: RegExp): Promise<void> {
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
        "testsrc2=size=160x120:rate=10",
      ],
      ...["-t", "10", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", url],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  procs.push(proc);
  let err = "";
  proc.stderr.on("data", (d) => {
    err += d;
  });
  const code = await new Promise((r) => proc.once("close", r));
  assert.notEqual(code, 0, `ffmpeg should have been refused: ${url}`);
  assert.match(err, why);
}

const live = (server: MediaServer, path: string) =>
  until(`${path} to go live`, async () => server.hub.get(path) && !server.hub.get(path)?.ended);

test(
  "stream keys: none or a wrong one is refused, the right one publishes, a revoked one is refused",
  opts,
  async () => {
    await refused(`${m.rtmpUrl}/live/cam1`, /needs a stream key/);
    await refused(`${m.rtmpUrl}/live/cam1?key=sk_wrong`, /wrong stream key/);
    assert.equal(m.hub.get("live/cam1"), undefined);

    const k = await streamKeyCreate.run({ path: "live/cam1" }, ctx);
    assert.match(k.key, /^sk_/);
    assert.equal(statSync(join(home, "data", "media", "keys.json")).mode & 0o777, 0o600);
    const listed = await streamKeyList.run({}, ctx);
    assert.deepEqual(
      listed.keys.map((x) => x.id),
      [k.id],
    );
    assert.ok(!JSON.stringify(listed).includes(k.key), "the list never shows the key");

    // ffmpeg form: rtmp://host/live/cam1?key=K.
    const p1 = rtmpPublish(k.rtmpUrl.replace(/^rtmp:\/\/[^/]+/, m.rtmpUrl), 30);
    await live(m, "live/cam1");
    p1.proc.kill("SIGINT");
    await p1.exit;
    await until("live/cam1 to end", async () => !m.hub.get("live/cam1"));

    // OBS form with only the key in the "stream key" field: server rtmp://host/live, key K (the key names its path).
    const p2 = rtmpPublish(`${m.rtmpUrl}/live/${k.key}`, 30);
    await live(m, "live/cam1");
    p2.proc.kill("SIGINT");
    await p2.exit;
    await until("live/cam1 to end", async () => !m.hub.get("live/cam1"));

    // SRT: streamid publish:<path>:<key>.
    const p3 = publish(`${m.srtUrl}?streamid=publish:live/cam1:${k.key}`, 30, "mpegts");
    procs.push(p3.proc);
    await live(m, "live/cam1");
    p3.proc.kill("SIGINT");
    await p3.exit;
    await until("live/cam1 to end", async () => !m.hub.get("live/cam1"));

    const revoked = await streamKeyRevoke.run({ id: k.id }, ctx);
    assert.equal(revoked.path, "live/cam1");
    await refused(`${m.rtmpUrl}/live/cam1?key=${k.key}`, /wrong stream key/);
    await refused(`${m.rtmpUrl}/live/${k.key}`, /wrong stream key/);
    await refused(`${m.rtmpUrl}/closed/x`, /disabled/);
  },
);

test(
  "signed playback URLs: required, carried into the playlist's URIs, refused when bad or expired",
  opts,
  async () => {
    const p = rtmpPublish(`${m.rtmpUrl}/private/show`, 40);
    await live(m, "private/show");
    const base = `${m.httpUrl}/private/show/`;
    assert.equal((await fetch(`${base}index.m3u8`)).status, 401);

    const s = await streamSign.run({ path: "private/show", ttl: "1h" }, ctx);
    assert.ok(s.hls.startsWith(base));
    const multi = await fetch(s.hls);
    assert.equal(multi.status, 200);
    const mediaUri = (await multi.text()).split("\n").find((l) => l && !l.startsWith("#")) as string;
    assert.match(mediaUri, /[?&]sig=/, "the media playlist URI carries the signature");
    const media = await fetch(new URL(mediaUri, s.hls));
    assert.equal(media.status, 200);
    const text = await media.text();
    const seg = text.split("\n").find((l) => l && !l.startsWith("#")) as string;
    const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1] as string;
    for (const u of [seg, map]) {
      assert.match(u, /[?&]sig=/);
      assert.equal((await fetch(new URL(u, s.hls))).status, 200, u);
      // The same file without the signature is refused.
      assert.equal((await fetch(new URL(u.split("?")[0] as string, s.hls))).status, 401);
    }
    const mpd = await (await fetch(s.dash)).text();
    assert.match(mpd, /media="t1-\$Time\$\.m4s\?exp=\d+&amp;sig=/);
    // The per-track files are read with the same signature, and refused without it.
    const init = /initialization="(t1-init\.mp4\?[^"]+)"/.exec(mpd)?.[1]?.replace(/&amp;/g, "&") ?? "";
    assert.equal((await fetch(new URL(init, s.dash))).status, 200, init);
    assert.equal((await fetch(new URL("t1-init.mp4", s.dash))).status, 401);

    const bad = s.hls.replace(/sig=[^&]+/, "sig=AAAA");
    assert.equal((await fetch(bad)).status, 403);
    const other = s.hls.replace("/private/show/", "/private/other/");
    assert.ok([403, 404].includes((await fetch(other)).status), "a signature is for one path");
    const past = m.auth.signer.query("private/show", Math.floor(Date.now() / 1000) - 5);
    assert.equal((await fetch(`${base}index.m3u8?${past}`)).status, 403);

    // Valid until it expires: a 1 s URL works now and is refused once its second has passed.
    const short = await streamSign.run({ path: "private/show", ttl: "2s" }, ctx);
    assert.equal((await fetch(short.hls)).status, 200);
    await sleep(Date.parse(short.expires) - Date.now() + 1100);
    const expired = await fetch(short.hls);
    assert.equal(expired.status, 403);
    assert.match(((await expired.json()) as { error: string }).error, /expired/);
    p.proc.kill("SIGINT");
    await p.exit;
  },
);

test("auth hook: 2xx allows, anything else denies, no answer in time denies", opts, async () => {
  await refused(`${hooked.rtmpUrl}/hooked/no`, /auth hook denied/);
  const p = rtmpPublish(`${hooked.rtmpUrl}/hooked/yes?key=abc`, 30);
  await live(hooked, "hooked/yes");
  const call = hookCalls.find((c) => c.path === "hooked/yes" && c.action === "publish");
  assert.ok(call, "the hook was asked");
  assert.equal(call.protocol, "rtmp");
  assert.equal(call.key, "abc");
  assert.match(String(call.ip), /127\.0\.0\.1/);

  assert.equal((await fetch(`${hooked.httpUrl}/hooked/yes/index.m3u8`)).status, 200);
  assert.equal((await fetch(`${hooked.httpUrl}/hooked/no/`)).status, 403);
  const slow = await fetch(`${hooked.httpUrl}/hooked/slow/`);
  assert.equal(slow.status, 403, "fail closed when the hook does not answer");
  assert.ok(hookCalls.some((c) => c.path === "hooked/slow" && c.action === "read"));
  p.proc.kill("SIGINT");
  await p.exit;
});
