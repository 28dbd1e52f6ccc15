/**
 * Credentials in pull sources and restream destinations never leave the media service unredacted: not in
 * /api answers, not in the `stream.*` ops' output (JSON or human text), not in errors, not in the log; the
 * saved state keeps them so a restart restores the real URLs. Real ffmpeg pulls and restreams produce the
 * errors (connection refused to URLs carrying passwords and keys) and a live pull's publisher remote.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../../src/config.ts";
import { makeContext } from "../../src/control/context.ts";
import { createLogger, silentLogger } from "../../src/core/logger.ts";
import type { OpContext } from "../../src/core/ops.ts";
import { MediaServer } from "../../src/media/media-server.ts";
import { streamList, streamStatus } from "../../src/media/ops/index.ts";
import { streamStart, streamStop } from "../../src/media/ops/pull.ts";
import { restreamAdd, restreamList, restreamRemove } from "../../src/media/ops/restream.ts";
import { freePort } from "../../src/test/cli.ts";
import { publish, until } from "./helpers/media-tools.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
const TOKEN = randomBytes(16).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "ami-media-redact-"));
const lines: string[] = [];
// (The pulled stream's own name on this server is public: its key is what the pull URL must hide.)
const SECRETS = ["hunter2", "SECRETKEY123", "verysecretpass", "pullkey999", "tok3n"];
let m: MediaServer;
let ctx: OpContext;

before(async () => {
  if (!hasFfmpeg) return;
  const media = { rtmpPort: 0, httpPort: 0, srtPort: 0, rtsp: { port: 0 }, retryInitialMs: 300, retryMaxMs: 1000 };
  const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
  m = await MediaServer.start(configSchema.parse({ media }).media, log, { dataDir: dir, apiToken: TOKEN });
  const config = configSchema.parse({ media: { httpPort: m.http.port }, control: { token: TOKEN } });
  ctx = makeContext({ config, configPath: undefined, log: silentLogger });
});

after(async () => {
  await m?.close();
  rmSync(dir, { recursive: true, force: true });
});

function assertClean(what: string, text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what} leaks '${s}': ${text.slice(0, 2000)}`);
}

const api = async (p: string) =>
  (await fetch(`${m.httpUrl}${p}`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();

test(
  "pull and restream credentials are redacted in /api, ops output, errors and logs; state.json keeps them",
  opts,
  async () => {
    const dead = await freePort();
    const rtmp = m.rtmpUrl;
    // A pull that goes live from this server (its key and stream name are secrets to hide) ...
    const src = publish(`${rtmp}/live/srcname`, 25);
    await until("the source to be live", async () => m.hub.get("live/srcname")?.stats.videoCodec);
    const livePull = await streamStart.run({ source: `${rtmp}/live/srcname?key=pullkey999`, path: "live/pulled" }, ctx);
    // ... and one that fails: a camera with a password.
    const camPull = await streamStart.run(
      { source: `rtsp://admin:hunter2@127.0.0.1:${dead}/cam`, path: "live/cam" },
      ctx,
    );
    assertClean("stream.start output", JSON.stringify([livePull, camPull]) + streamStart.human?.(camPull));
    const dests = [
      `rtmp://127.0.0.1:${dead}/live2/SECRETKEY123`,
      `srt://127.0.0.1:${dead}?streamid=#!::r=live/x,m=publish&passphrase=verysecretpass`,
      `rtmps://127.0.0.1:${dead}/app?token=tok3n`,
    ];
    for (const to of dests)
      assertClean("restream.add output", JSON.stringify(await restreamAdd.run({ path: "live/pulled", to }, ctx)));
    await assert.rejects(
      streamStart.run({ source: `rtsp://admin:hunter2@127.0.0.1:${dead}/cam`, path: "live/cam" }, ctx),
      (e: Error) => {
        assertClean("a pull error", e.message);
        return true;
      },
    );

    await until("the pull to go live", async () => m.hub.get("live/pulled")?.stats.videoCodec);
    await until(
      "the camera pull to report its error",
      async () => (await streamStatus.run({ path: "live/cam" }, ctx)).pull?.lastError,
    );
    await until(
      "every restream to fail at least once",
      async () => {
        const r = (await restreamList.run({}, ctx)).restreams;
        return r.length === 3 && r.every((x) => x.retries >= 1 && x.lastError);
      },
      40_000,
    );

    const list = await streamList.run({}, ctx);
    const pulled = await streamStatus.run({ path: "live/pulled" }, ctx);
    const cam = await streamStatus.run({ path: "live/cam" }, ctx);
    const restreams = await restreamList.run({}, ctx);
    assert.match(pulled.publisher?.remote ?? "", /^rtmp:\/\/127\.0\.0\.1:\d+\/live\/\*\*\*\?key=\*\*\*$/);
    assert.match(cam.pull?.source ?? "", /^rtsp:\/\/\*\*\*@127\.0\.0\.1:\d+\/cam$/);
    assert.ok(restreams.restreams.some((r) => r.to.endsWith("/live2/***")));
    assert.ok(restreams.restreams.some((r) => r.to.includes("streamid=***&passphrase=***")));
    assertClean("stream.list", JSON.stringify(list) + streamList.human?.(list));
    assertClean(
      "stream.status",
      JSON.stringify([pulled, cam]) + streamStatus.human?.(pulled) + streamStatus.human?.(cam),
    );
    assertClean("stream.restream.list", JSON.stringify(restreams) + restreamList.human?.(restreams));
    for (const p of [
      "/api/streams",
      "/api/streams/live/pulled",
      "/api/streams/live/cam",
      "/api/pulls",
      "/api/restreams",
      "/_ami/stats",
      "/metrics",
    ])
      assertClean(p, await api(p));

    // The saved state has the real URLs: a restart must be able to reconnect.
    const saved = readFileSync(join(dir, "state.json"), "utf8");
    for (const s of ["hunter2", "SECRETKEY123", "verysecretpass", "pullkey999", "tok3n"])
      assert.ok(saved.includes(s), s);

    // A destination can be removed by the redacted form `list` shows.
    const shown = restreams.restreams.find((r) => r.to.includes("passphrase=***"))?.to as string;
    const removed = await restreamRemove.run({ path: "live/pulled", to: shown }, ctx);
    assert.equal(removed.state, "stopped");
    assertClean("restream.remove output", JSON.stringify(removed) + restreamRemove.human?.(removed));
    for (const to of dests.filter((d) => !d.startsWith("srt:")))
      await restreamRemove.run({ path: "live/pulled", to }, ctx);
    const stopped = await streamStop.run({ path: "live/cam" }, ctx);
    assertClean("stream.stop output", JSON.stringify(stopped) + streamStop.human?.(stopped));
    await streamStop.run({ path: "live/pulled" }, ctx);
    src.proc.kill("SIGKILL");
    await src.exit;

    assert.ok(lines.length > 10, "the service logged");
    assert.ok(
      lines.some((l) => /pull retrying|restream failed/.test(l)),
      "failures were logged",
    );
    assertClean("the media log", lines.join("\n"));
  },
);
