/**
 * Playback of recordings: time to first byte and throughput of `GET /_ami/playback/get` for a 60 s range of a
 * recording (640x360 H.264 at ~3 Mb/s + AAC, recorded by the in-process muxer into 10 s files, plain files on
 * disk), served by the media service in its own process. The range starts mid-file and crosses 6 file boundaries,
 * so every request indexes nothing new (cached after the first), rewrites ~60 moofs, cuts the last fragment and
 * streams the mdat bytes from 7 files.
 * Baseline, same run: nginx (one worker, sendfile) serving the very bytes of that answer as one static file; and,
 * for the time to first byte, the service's own trivial answer (`/_ami/time`, same listener): its HTTP stack's floor.
 * Each figure is the median of 20 requests to each, in turn, each on a fresh connection (page cache warm).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CmafMuxer } from "../../src/media/protocols/fmp4/muxer.ts";
import { encodeFlv } from "../../src/media/protocols/fmp4/test-clips.ts";
import { RecordFiles } from "../../src/media/record-file.ts";
import { type BenchResult, percentile, round, runIfMain } from "../matrix/lib.ts";
import { MediaChild, nginx } from "./lib.ts";

const RUNS = 20;

interface Fetched {
  ttfbMs: number;
  totalMs: number;
  bytes: number;
  body?: Buffer;
}

/** One GET on a fresh connection (node:http, lighter than fetch): time to the first body byte, and to the end. */
function timedGet(url: string, keep = false): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = get(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url}: ${res.statusCode}`));
        return;
      }
      let ttfbMs = 0;
      let bytes = 0;
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => {
        if (bytes === 0) ttfbMs = performance.now() - t0;
        bytes += b.length;
        if (keep) parts.push(b);
      });
      res.on("end", () =>
        resolve({ ttfbMs, totalMs: performance.now() - t0, bytes, body: keep ? Buffer.concat(parts) : undefined }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

const summary = (rs: Fetched[]) => ({
  ttfb: percentile(
    rs.map((r) => r.ttfbMs),
    50,
  ),
  mbps: percentile(
    rs.map((r) => r.bytes / 2 ** 20 / (r.totalMs / 1000)),
    50,
  ),
  bytes: rs[0]!.bytes,
});

/** Requests to each URL in turn (the shared machine's load hits them alike), after one warm-up each. */
async function measure(...urls: string[]) {
  for (const u of urls) await timedGet(u);
  const rs: Fetched[][] = urls.map(() => []);
  for (let i = 0; i < RUNS; i++) for (const [k, u] of urls.entries()) rs[k]!.push(await timedGet(u));
  return rs.map(summary);
}

/** 75 s of 640x360 30 fps (~3 Mb/s, a keyframe every 2 s) + AAC, recorded as the recorder does into 10 s files. */
async function record(dir: string): Promise<void> {
  const frames = encodeFlv([
    ...["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i", "sine=frequency=440"],
    ...["-t", "75", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "3M", "-g", "60", "-c:a", "aac"],
  ]);
  const files = new RecordFiles({
    dir,
    segmentSeconds: 10,
    startMs: Date.now(),
    onError: (e) => {
      throw e;
    },
  });
  const muxer = new CmafMuxer(1, {
    init: (f, moov) => files.init(f, moov),
    fragment: (moof, mdat) => files.fragment(moof, mdat),
    restart: () => files.restart(),
    skipped: () => {},
  });
  for (const f of frames) muxer.push(f);
  muxer.end();
  await files.close();
}

export async function run(): Promise<BenchResult[]> {
  if (spawnSync("nginx", ["-v"]).status !== 0) throw new Error("nginx is not installed");
  const root = mkdtempSync(join(tmpdir(), "ami-bench-playback-"));
  let media: MediaChild | undefined;
  let ng: ReturnType<typeof nginx> | undefined;
  try {
    const recDir = join(root, "rec", "bench", "pb");
    mkdirSync(recDir, { recursive: true });
    await record(recDir);
    media = await MediaChild.start({ recordPath: join(root, "rec") });
    const spans = (await (await fetch(`${media.http}/_ami/playback/list?path=bench/pb`)).json()) as {
      start: string;
    }[];
    const start = new Date(Date.parse(spans[0]!.start) + 5_500).toISOString();
    const url = `${media.http}/_ami/playback/get?path=bench/pb&start=${start}&duration=60`;
    const cold = await timedGet(url, true); // the first request indexes the files

    mkdirSync(join(root, "static"));
    writeFileSync(join(root, "static", "range.mp4"), cold.body as Buffer);
    const port = 20000 + Math.floor(Math.random() * 20000);
    ng = nginx(
      root,
      `http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  types { video/mp4 mp4; }
  server { listen 127.0.0.1:${port}; root ${root}/static; location / { } }
}`,
    );
    await new Promise((r) => setTimeout(r, 500));
    // The floor of the service's HTTP stack, same listener: a trivial answer (the clock text DASH players sync to).
    const [ours, theirs, floor] = await measure(url, `http://127.0.0.1:${port}/range.mp4`, `${media.http}/_ami/time`);
    const size = `${round(ours!.bytes / 2 ** 20, 1)} MiB`;
    return [
      {
        bench: `recording playback: get of a 60 s range (${size}, 7 files) — first request, files not yet indexed`,
        metric: "time to first byte",
        value: round(cold.ttfbMs, 1),
        unit: "ms",
        baseline: `nginx static file of the same bytes: ${round(theirs!.ttfb, 2)} ms (median)`,
        target: "",
        met: null,
      },
      {
        bench: `recording playback: get of a 60 s range (${size}, 7 files)`,
        metric: "time to first byte (median)",
        value: round(ours!.ttfb, 2),
        unit: "ms",
        baseline: `nginx static file of the same bytes: ${round(theirs!.ttfb, 2)} ms; the service's /_ami/time: ${round(floor!.ttfb, 2)} ms`,
        target: "",
        met: null,
      },
      {
        bench: `recording playback: get of a 60 s range (${size}, 7 files)`,
        metric: "throughput (median)",
        value: round(ours!.mbps, 0),
        unit: "MiB/s",
        baseline: `nginx static file of the same bytes: ${round(theirs!.mbps, 0)} MiB/s (${round(ours!.mbps / theirs!.mbps, 2)}×)`,
        target: "",
        met: null,
      },
    ];
  } finally {
    await ng?.stop();
    await media?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
