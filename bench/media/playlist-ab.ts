/**
 * Interleaved A/B of the playlist req/s, for a change measured on a noisy machine (PERFORMANCE.md "Origin
 * efficiency"): the media service of another tree (before: e.g. `git archive <commit> | tar -x -C /tmp/base`, with
 * a `node_modules` link) and of this one (after) run side by side, each with its own publisher of the 1080p30 clip;
 * the load generator (`rps-load.ts`, 50 keep-alive connections) rotates before / after / nginx (one worker, static
 * snapshot of the same file) in 3 s slices, so load swings land on all three alike. Not in `npm run bench`.
 *
 * node bench/media/playlist-ab.ts <before tree> [rounds=5] [files=stream.m3u8,index.mpd,...]
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as A from "./lib.ts";

const SECONDS = 3;
const [beforeTree, roundsArg = "5", filesArg = "stream.m3u8"] = process.argv.slice(2);
if (!beforeTree) throw new Error("usage: playlist-ab.ts <before tree> [rounds] [files]");
const B = (await import(pathToFileURL(resolve(beforeTree, "bench/media/lib.ts")).href)) as typeof A;
const generator = fileURLToPath(new URL("./rps-load.ts", import.meta.url));

async function load(base: string, path: string): Promise<number> {
  const u = new URL(base);
  const proc = spawn(process.execPath, [generator, u.hostname, u.port, path, "50", String(SECONDS)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  proc.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  await new Promise((r) => proc.once("close", r));
  return (JSON.parse(out) as { ok: number }).ok / SECONDS;
}

const clip = await A.clip1080p();
const after = await A.MediaChild.start();
const before = await B.MediaChild.start();
const pubs = [A.publishLoop(clip, `${after.rtmp}/live/rps`), B.publishLoop(clip, `${before.rtmp}/live/rps`)];
const root = mkdtempSync(join(tmpdir(), "ami-bench-ab-"));
let ng: { stop: () => Promise<void> } | undefined;
try {
  for (const m of [after, before])
    await A.waitFor(
      "segments",
      async () => {
        const r = await fetch(`${m.http}/live/rps/stream.m3u8`);
        return r.status === 200 && ((await r.text()).match(/^seg\d+\.m4s$/gm)?.length ?? 0) >= 4;
      },
      60000,
    );
  await new Promise((r) => setTimeout(r, 3000));
  const files = filesArg.split(",");
  mkdirSync(join(root, "files"));
  for (const f of new Set(files.map((f) => f.split("?")[0] as string)))
    writeFileSync(
      join(root, "files", f),
      Buffer.from(await (await fetch(`${after.http}/live/rps/${f}`)).arrayBuffer()),
    );
  const port = 20000 + Math.floor(Math.random() * 20000);
  ng = A.nginx(
    root,
    `http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000000; keepalive_timeout 65;
  types { application/vnd.apple.mpegurl m3u8; application/dash+xml mpd; }
  server { listen 127.0.0.1:${port}; root ${root}/files; location / { add_header Cache-Control no-cache; } } }`,
  );
  const nginxUrl = `http://127.0.0.1:${port}`;
  await A.waitFor("nginx", async () => (await fetch(`${nginxUrl}/${files[0]?.split("?")[0]}`)).status === 200, 10000);
  for (const file of files) {
    const rows: [number, number, number][] = [];
    for (let i = 0; i < Number(roundsArg); i++) {
      const b = await load(before.http, `/live/rps/${file}`);
      const a = await load(after.http, `/live/rps/${file}`);
      const n = await load(nginxUrl, `/${file.split("?")[0]}`);
      rows.push([b, a, n]);
      console.log(
        `${file} round ${i + 1}: before ${Math.round(b)} after ${Math.round(a)} nginx ${Math.round(n)} req/s ` +
          `(after/before ${(a / b).toFixed(2)}, after/nginx ${(a / n).toFixed(2)}, before/nginx ${(b / n).toFixed(2)})`,
      );
    }
    const mean = (k: 0 | 1 | 2) => rows.reduce((s, r) => s + r[k], 0) / rows.length;
    console.log(
      `${file} mean: before ${Math.round(mean(0))} (${(mean(0) / mean(2)).toFixed(2)}× nginx), ` +
        `after ${Math.round(mean(1))} (${(mean(1) / mean(2)).toFixed(2)}× nginx), nginx ${Math.round(mean(2))}`,
    );
  }
} finally {
  await ng?.stop();
  for (const p of pubs) await p.stop();
  await after.stop();
  await before.stop();
  rmSync(root, { recursive: true, force: true });
}
