/**
 * A full disk under real processes: the runtime directory on a 20 MB tmpfs, the homeserver and the media service
 * under the supervisor, Matrix messages being sent and a recording running (ffmpeg publishing RTMP), then a filler
 * file takes every free byte. No process dies or restarts (a homeserver killed then is restarted by a supervisor
 * that cannot write its pid file and survives that); sends during the full disk answer 507
 * M_RESOURCE_LIMIT_EXCEEDED (never a 500); once the filler is deleted everything works again without `up`; every
 * acknowledged event is there; no recording file is empty or torn (finished files are read back from the
 * content-addressed store they were moved into). The same run checks file modes (0700/0600) and that no token,
 * password or stream key reached a log file.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import YAML from "yaml";
import { readAll } from "../../src/cas/conformance.ts";
import { openStoreAt } from "../../src/cas/open.ts";
import type { RecordingStatus } from "../../src/media/recordings.ts";
import { cli, freePort, json, until } from "../../src/test/cli.ts";

const hasFfmpeg = spawnSync("ffmpeg", ["-version"]).status === 0;
const isRoot = process.getuid?.() === 0;
const skip = !hasFfmpeg ? "ffmpeg is not installed" : !isRoot ? "needs root to mount a tmpfs" : false;

const home = mkdtempSync(join(tmpdir(), "ami-diskfull-"));
const env: NodeJS.ProcessEnv = { ...process.env, AMI_STREAMS_HOME: home };
delete env.AMI_STREAMS_CONFIG;
delete env.AMI_STREAMS_TEST_SERVICE_PORT;
delete env.AMI_STREAMS_FEATURES;
const filler = join(home, "filler");
let mounted = false;
let hs = "";
let rtmpPort = 0;
let publisher: ReturnType<typeof spawn> | undefined;

before(async () => {
  if (skip) return;
  // mode=0755: a runtime directory an older version left readable; the supervisor must tighten it.
  const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=20m,mode=0755", "tmpfs", home]);
  assert.equal(m.status, 0, String(m.stderr));
  mounted = true;
  const port = await freePort();
  rtmpPort = await freePort();
  hs = `http://127.0.0.1:${port}`;
  const config = {
    matrix: { port, registration: { enabled: true } },
    web: { enabled: false },
    control: { port: 0, backoff: { initialMs: 100 } },
    media: {
      rtmpPort,
      httpPort: await freePort(),
      srtPort: await freePort(),
      rtsp: { port: await freePort() },
      webrtc: { enabled: false },
      recordSegmentSeconds: 1,
    },
  };
  writeFileSync(join(home, "config.yaml"), YAML.stringify(config), { mode: 0o644 });
});

after(async () => {
  publisher?.kill("SIGKILL");
  if (!skip) await cli(["down"], { env });
  if (mounted) spawnSync("umount", ["-l", home]);
  rmSync(home, { recursive: true, force: true });
});

const run = async (args: string[]) => {
  const r = await cli(args, { env, timeoutMs: 90_000 });
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
  return r;
};
const services = async () =>
  Object.fromEntries(
    json(await run(["status", "--json"])).services.map(
      (s: { name: string; pid: number; restarts: number; state: string }) => [s.name, s],
    ),
  );

async function matrix(method: string, path: string, token: string | undefined, body?: unknown) {
  // The token in the query string on purpose: it must not reach any log.
  const sep = path.includes("?") ? "&" : "?";
  const res = await fetch(`${hs}${path}${token ? `${sep}access_token=${token}` : ""}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}

/** Fill the disk: big writes, then small ones, until ENOSPC. */
function fill(): void {
  const fd = openSync(filler, "w");
  try {
    for (const size of [1 << 20, 4096, 512]) {
      const b = Buffer.alloc(size, 1);
      for (;;) writeSync(fd, b);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
    // one more pass at smaller sizes happens through the loop above only for the first size; finish the job:
    for (const size of [4096, 512, 16]) {
      try {
        for (;;) writeSync(fd, Buffer.alloc(size, 1));
      } catch {}
    }
  } finally {
    closeSync(fd);
  }
}

/** The recording's status (start is idempotent: it answers the running recording's). */
const recording = async (): Promise<RecordingStatus> =>
  json(await run(["stream", "record", "start", "--path", "live/cam", "--json"]));

/** Top-level boxes of an MP4 file: whole, and at least one fragment. */
function checkMp4(file: string, bytes = readFileSync(file)): void {
  const b = bytes;
  assert.ok(b.length > 0, `${file} is empty`);
  const types: string[] = [];
  let p = 0;
  while (p + 8 <= b.length) {
    const size = b.readUInt32BE(p);
    assert.ok(size >= 8 && p + size <= b.length, `${file}: torn box at ${p}`);
    types.push(b.toString("latin1", p + 4, p + 8));
    p += size;
  }
  assert.equal(p, b.length, `${file}: trailing bytes`);
  assert.ok(types.includes("moov") && types.includes("moof"), `${file}: ${types.join(",")}`);
}

test("disk full: nothing dies, writes get a clear error, all recovers by itself", { skip }, async () => {
  await run(["up"]);
  const reg = await matrix("POST", "/_matrix/client/v3/register", undefined, {
    username: "filler",
    password: "correct horse battery",
    auth: { type: "m.login.dummy" },
  });
  assert.equal(reg.status, 200, JSON.stringify(reg.json));
  const token: string = reg.json.access_token;
  const room = await matrix("POST", "/_matrix/client/v3/createRoom", token, {});
  assert.equal(room.status, 200);
  const roomId: string = room.json.room_id;

  publisher = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"],
      ...["-f", "lavfi", "-i", "sine", "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-b:v", "800k"],
      ...["-c:a", "aac", "-f", "flv", `rtmp://127.0.0.1:${rtmpPort}/live/cam`],
    ],
    { stdio: "ignore" },
  );
  await run(["stream", "record", "start", "--path", "live/cam"]);
  // A pull with credentials in its URL from a closed port: it retries and logs its source (which must be scrubbed).
  const dead = await freePort();
  await run([
    "stream",
    "start",
    "--source",
    `rtmp://puller:pullSecret99@127.0.0.1:${dead}/live/pullKey77`,
    "--path",
    "live/pulled",
  ]);
  const recDir = join(home, "data", "media", "recordings", "live", "cam");
  await until("recording files", async () => (await recording()).files >= 2, 30_000);

  const acked: string[] = [];
  let txn = 0;
  const send = async () => {
    const r = await matrix(
      "PUT",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t${txn++}`,
      token,
      {
        msgtype: "m.text",
        body: `message ${txn} ${"x".repeat(4000)}`,
      },
    );
    if (r.status === 200) acked.push(r.json.event_id);
    return r;
  };
  for (let i = 0; i < 10; i++) assert.equal((await send()).status, 200);
  const before = await services();
  assert.equal(before.matrix.state, "running");
  assert.equal(before.media.state, "running");

  fill();
  // Keep writing until the disk refuses; every refusal must be the clear one.
  const refusals: Array<{ status: number; errcode: string }> = [];
  await until(
    "a send refused for lack of space",
    async () => {
      const r = await send();
      if (r.status !== 200) {
        refusals.push({ status: r.status, errcode: r.json?.errcode });
        fill(); // SQLite may have freed a page meanwhile: keep the disk full
      }
      return refusals.length >= 3;
    },
    60_000,
  );
  for (const r of refusals) assert.deepEqual(r, { status: 507, errcode: "M_RESOURCE_LIMIT_EXCEEDED" });
  const up = await fetch(`${hs}/_matrix/media/v3/upload?filename=a.bin&access_token=${token}`, {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: Buffer.alloc(256 * 1024, 7),
  });
  const upText = await up.text();
  assert.equal(up.status, 507, upText);
  assert.equal(JSON.parse(upText).errcode, "M_RESOURCE_LIMIT_EXCEEDED");
  // The recording keeps hitting the full disk for a while; both services keep answering.
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal((await fetch(`${hs}/health`)).status, 200);
  const during = await services();
  for (const name of ["matrix", "media"]) {
    assert.equal(during[name].pid, before[name].pid, `${name} died`);
    assert.equal(during[name].restarts, before[name].restarts, `${name} restarted`);
  }

  // A crash while the disk is full: the supervisor cannot write the new pid file, and must not die of it.
  process.kill(before.matrix.pid, "SIGKILL");
  const sup = json(await run(["status", "--json"])).supervisor.pid;
  await until("the supervisor to restart matrix", async () => {
    const m = (await services()).matrix;
    return m.pid !== before.matrix.pid && m.restarts === before.matrix.restarts + 1;
  });
  assert.equal(json(await run(["status", "--json"])).supervisor.pid, sup, "the supervisor survived");

  rmSync(filler);
  // No `up`: the same processes take writes again.
  // The restarted homeserver may still be opening its listener: a refused connection is "not yet".
  await until("sends succeed again", async () => (await send().catch(() => undefined))?.status === 200, 30_000);
  for (let i = 0; i < 5; i++) assert.equal((await send()).status, 200);
  const namesAtResume = new Set((await recording()).segments.map((f) => f.name));
  await until(
    "a recording file started after the disk had space again",
    async () => (await recording()).segments.some((f) => !namesAtResume.has(f.name)),
    30_000,
  );
  publisher.kill("SIGINT");
  const rec: RecordingStatus = json(await run(["stream", "record", "stop", "--path", "live/cam", "--json"]));
  await run(["stream", "stop", "--path", "live/pulled"]);

  const afterAll = await services();
  assert.equal(afterAll.media.pid, before.media.pid, "media died");
  assert.equal(afterAll.media.restarts, before.media.restarts, "media restarted");
  assert.equal(afterAll.matrix.state, "running");
  assert.equal(afterAll.matrix.restarts, before.matrix.restarts + 1, "only the crash we caused");
  // The pid file the full disk refused is written once there is space.
  await until("matrix.pid", async () => {
    try {
      return Number(readFileSync(join(home, "run", "matrix.pid"), "utf8")) === afterAll.matrix.pid;
    } catch {
      return false;
    }
  });
  for (const id of acked) {
    const r = await matrix(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/event/${encodeURIComponent(id)}`,
      token,
    );
    assert.equal(r.status, 200, `acknowledged ${id} is missing`);
  }
  assert.ok(rec.segments.length >= 3, JSON.stringify(rec.segments));
  assert.ok(rec.stored >= 1, "finished files went into the content-addressed store");
  const cas = openStoreAt(join(home, "data", "cas"));
  for (const f of rec.segments) {
    if (f.id) checkMp4(`${f.name} (${f.id})`, await readAll(cas, f.id));
    else checkMp4(join(recDir, f.name));
  }
  assert.deepEqual(
    readdirSync(recDir).filter((f) => !f.endsWith(".mp4")),
    [],
    "no temp files left",
  );

  // Modes: the runtime directory and everything in it private.
  const walk = (p: string): void => {
    const st = statSync(p);
    if (st.isDirectory()) {
      assert.equal(st.mode & 0o777, 0o700, `${p} is ${(st.mode & 0o777).toString(8)}`);
      for (const e of readdirSync(p)) walk(join(p, e));
    } else assert.equal(st.mode & 0o077, 0, `${p} is ${(st.mode & 0o777).toString(8)}`);
  };
  walk(home);

  // Logs: the scrubber's marks, and none of the secrets.
  const logs = readdirSync(join(home, "logs"))
    .map((f) => readFileSync(join(home, "logs", f), "utf8"))
    .join("\n");
  for (const secret of [token, "pullSecret99", "pullKey77", "puller"]) {
    assert.ok(!logs.includes(secret), `a log holds ${secret}`);
  }
  assert.match(logs, /recording write failed.*ENOSPC/, "the recording did meet the full disk");
  assert.match(logs, /rtmp:\/\/\*\*\*@127\.0\.0\.1:\d+\/live\/\*\*\*/);
});
