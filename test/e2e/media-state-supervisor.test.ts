/**
 * The media service under the supervisor keeps its run-time changes across a crash and `media restart`: a pull,
 * a recording and a restream made with the CLI are running again after kill -9 of the service process.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { cli, freePort, json, type TempHome, tempHome, until } from "../../src/test/cli.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const opts = { skip: hasFfmpeg ? false : "ffmpeg is not installed" };
let h: TempHome;
let clip: string;
let rtmpPort: number;

before(async () => {
  if (!hasFfmpeg) return;
  rtmpPort = await freePort();
  const media = {
    rtmpPort,
    httpPort: await freePort(),
    srtPort: await freePort(),
    rtsp: { port: await freePort() },
    webrtc: { enabled: false },
  };
  h = tempHome({
    matrix: { enabled: false },
    web: { enabled: false },
    control: { port: 0, backoff: { initialMs: 100 } },
    media,
  });
  clip = join(h.home, "clip.mp4");
  const gen = spawnSync("ffmpeg", [
    ...["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
    ...["-f", "lavfi", "-i", "sine", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25"],
    ...["-c:a", "aac", "-y", clip],
  ]);
  assert.equal(gen.status, 0, String(gen.stderr));
});

after(async () => {
  await h?.cleanup();
});

const env = () => h.env;
const run = async (args: string[]) => {
  const r = await cli(args, { env: env() });
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
  return r;
};
const stream = async (path: string) => json(await run(["stream", "status", "--path", path, "--json"]));
const media = async () =>
  json(await run(["status", "--json"])).services.find((s: { name: string }) => s.name === "media");

/** The pull live, the recording recording, the restream live and its copy published. */
async function allRunning(): Promise<void> {
  await until("the pull, recording and restream to run", async () => {
    const s = await stream("live/sv");
    const copy = (await cli(["stream", "status", "--path", "live/svcopy", "--json"], { env: env() })).code === 0;
    return s.pull?.state === "live" && s.recording?.state === "recording" && s.restreams?.[0]?.state === "live" && copy;
  });
}

test("a crash (kill -9) and media restart keep pulls, recordings and restreams", opts, async () => {
  await run(["up"]);
  await run(["stream", "start", "--source", clip, "--path", "live/sv"]);
  await run(["stream", "record", "start", "--path", "live/sv"]);
  await run(["stream", "restream", "add", "--path", "live/sv", "--to", `rtmp://127.0.0.1:${rtmpPort}/live/svcopy`]);
  await allRunning();
  assert.ok(existsSync(join(h.home, "data", "media", "state.json")));

  const before = await media();
  process.kill(before.pid, "SIGKILL");
  await until("the supervisor to restart media", async () => {
    const s = await media();
    return s.state === "running" && s.pid !== before.pid;
  });
  await allRunning();

  await run(["media", "restart"]);
  await allRunning();
});
