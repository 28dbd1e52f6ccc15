/**
 * Content-addressed store: put and get throughput of a 512 MiB file against `cp` (source in page cache, destination
 * on the same filesystem) and `sha256sum` of the same bytes in the same run, dedupe ratios on realistic sets, and
 * GC time per million chunks (measured on 100k, extrapolated).
 * `node bench/cas.ts` (or `npm run bench cas`).
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { FsCasStore } from "../src/cas/fs-backend.ts";
import { PIN } from "../src/cas/types.ts";
import { prngStream } from "../src/core/prng.ts";
import { type BenchResult, round, runIfMain } from "./matrix/lib.ts";

const params = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };
const MiB = 1024 * 1024;

const time = async (f: () => unknown): Promise<number> => {
  const t = performance.now();
  await f();
  return (performance.now() - t) / 1000;
};

/** Best of `n` (the machine is shared; the best run is the least disturbed one). */
async function best(n: number, f: () => unknown, between?: () => unknown): Promise<number> {
  let b = Number.POSITIVE_INFINITY;
  for (let i = 0; i < n; i++) {
    await between?.();
    b = Math.min(b, await time(f));
  }
  return b;
}

async function throughput(dir: string): Promise<BenchResult[]> {
  const size = 512 * MiB;
  const src = join(dir, "src.bin");
  await pipeline(Readable.from(prngStream("bench", size)), createWriteStream(src));
  const dst = join(dir, "dst.bin");
  // cp of the same bytes, page cache warm as for every figure here; cp does not fsync, so neither does the
  // like-for-like put below (the default, fsync on, is reported next to it).
  const cp = await best(
    3,
    () => execFileSync("cp", [src, dst]),
    () => rmSync(dst, { force: true }),
  );
  const cpSync = await best(
    2,
    () => execFileSync("sh", ["-c", `cp '${src}' '${dst}' && sync '${dst}'`]),
    () => rmSync(dst, { force: true }),
  );
  // put must hash every byte (chunk hashes + the whole-file SHA-256), so two hashing baselines on the same bytes:
  // coreutils sha256sum, and node's own SHA-256 (OpenSSL, SHA-NI) on one core: the bound on put's hashing.
  const sha256sum = await best(2, () => execFileSync("sha256sum", [src]));
  const buf = Buffer.allocUnsafe(64 * MiB);
  const nodeSha = (await best(2, () => createHash("sha256").update(buf).digest())) * (size / buf.length);
  const rate = (s: number) => round(size / MiB / s, 0);
  const rows: BenchResult[] = [];
  const fresh = (fsync: boolean) => {
    const root = join(dir, `store-${fsync}`);
    rmSync(root, { recursive: true, force: true });
    return new FsCasStore({ root, params, fsync });
  };
  let id = "";
  let store = fresh(false);
  const put = await best(
    3,
    async () => {
      id = (await store.put(createReadStream(src, { highWaterMark: MiB }))).id;
    },
    () => {
      store = fresh(false);
    },
  );
  let storeSync = fresh(true);
  const putSync = await best(
    1,
    () => storeSync.put(createReadStream(src, { highWaterMark: MiB })),
    () => {
      storeSync = fresh(true);
    },
  );
  const get = await best(
    3,
    () => pipeline(Readable.from(store.get(id)), createWriteStream(dst)),
    () => rmSync(dst, { force: true }),
  );
  const cpBase = `cp ${rate(cp)} MiB/s (cp + sync ${rate(cpSync)} MiB/s)`;
  const hashBase = `sha256sum ${rate(sha256sum)} MiB/s, node SHA-256 one core ${rate(nodeSha)} MiB/s`;
  rows.push(
    {
      bench: "cas",
      metric: "put 512 MiB (chunk + SHA-256 x2, no fsync)",
      value: rate(put),
      unit: "MiB/s",
      baseline: `${cpBase}; ${hashBase}; ${round(cp / put, 2)}x cp, ${round(sha256sum / put, 2)}x sha256sum`,
      target: ">= 0.5x cp",
      met: put <= 2 * cp,
    },
    {
      bench: "cas",
      metric: "put 512 MiB, fsync on (default)",
      value: rate(putSync),
      unit: "MiB/s",
      baseline: cpBase,
      target: ">= 0.5x cp + sync",
      met: putSync <= 2 * cpSync,
    },
    {
      bench: "cas",
      metric: "get 512 MiB to a file (verified)",
      value: rate(get),
      unit: "MiB/s",
      baseline: `${cpBase}; ${round(cp / get, 2)}x cp`,
      target: ">= 0.8x cp",
      met: get <= cp / 0.8,
    },
  );
  for (const s of [store, storeSync]) rmSync(s.layout.root, { recursive: true, force: true });
  return rows;
}

async function dedupe(dir: string): Promise<BenchResult[]> {
  const store = new FsCasStore({ root: join(dir, "dedupe"), params, fsync: false });
  const rows: BenchResult[] = [];
  // The same source "recorded" twice with start offsets 5 s apart, as fragmented MP4 (our recordings' format).
  const clip = join(dir, "clip.mp4");
  execFileSync("ffmpeg", [
    "-hide_banner",
    "-loglevel",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=960x540:rate=30",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000",
    "-t",
    "45",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-g",
    "30",
    "-b:v",
    "3M",
    "-c:a",
    "aac",
    "-pix_fmt",
    "yuv420p",
    clip,
  ]);
  const recs = [0, 5].map((ss, i) => {
    const out = join(dir, `rec${i}.mp4`);
    execFileSync("ffmpeg", [
      "-hide_banner",
      "-loglevel",
      "error",
      "-y",
      "-ss",
      String(ss),
      "-i",
      clip,
      "-t",
      "35",
      "-c",
      "copy",
      "-movflags",
      "+frag_keyframe+empty_moov+default_base_moof",
      out,
    ]);
    return out;
  });
  let logical = 0;
  let stored = 0;
  for (const f of recs) {
    const r = await store.put(createReadStream(f, { highWaterMark: MiB }), { hold: PIN });
    logical += r.size;
    stored += r.newBytes;
  }
  rows.push({
    bench: "cas",
    metric: "dedupe: one clip recorded twice, starts 5 s apart (fMP4, 2x35 s)",
    value: round(logical / stored, 2),
    unit: "x (logical/stored)",
    baseline: `${round(logical / MiB, 1)} MiB logical, ${round(stored / MiB, 1)} MiB stored; 2.0 would be perfect`,
    target: "",
    met: null,
  });
  // The same upload three times, and with a prefix (a re-muxed header): what repeated uploads cost.
  const up = join(dir, "upload.bin");
  writeFileSync(up, Buffer.concat([...prngStream("upload", 50 * MiB)]));
  logical = 0;
  stored = 0;
  for (let i = 0; i < 3; i++) {
    const r = await store.put(createReadStream(up), { hold: PIN });
    logical += r.size;
    stored += r.newBytes;
  }
  rows.push({
    bench: "cas",
    metric: "dedupe: the same 50 MiB upload 3 times",
    value: round(logical / stored, 2),
    unit: "x (logical/stored)",
    baseline: `${round(stored / MiB, 1)} MiB stored for ${round(logical / MiB, 1)} MiB`,
    target: "",
    met: null,
  });
  return rows;
}

async function gc(dir: string): Promise<BenchResult[]> {
  // Tiny chunks so 100k of them come from 12 MiB; GC cost is per chunk (index and manifest entries), not per byte.
  const store = new FsCasStore({ root: join(dir, "gc"), params: { min: 64, avg: 128, max: 256 }, fsync: false });
  const keep = await store.put(prngStream("gc-keep", 6 * MiB), { hold: PIN });
  const drop = await store.put(prngStream("gc-drop", 6 * MiB));
  const chunks = keep.chunks + drop.chunks;
  const fresh = new FsCasStore({ root: store.layout.root, params: store.params, fsync: false });
  const list = await time(() => fresh.packs.refresh(true)); // reading every pack's index: the floor of a GC
  const sweep = await time(() => store.gc());
  const markOnly = await time(() => store.gc()); // nothing left to delete: the mark and the listing
  const perM = (s: number, n: number) => round((s * 1e6) / n, 1);
  rmSync(store.layout.root, { recursive: true, force: true });
  return [
    {
      bench: "cas",
      metric: `gc per 1M chunks, half deleted (measured ${chunks} chunks, x${round(1e6 / chunks, 1)})`,
      value: perM(sweep, chunks),
      unit: "s",
      baseline: `reading every pack index: ${perM(list, chunks)} s per 1M`,
      target: "",
      met: null,
    },
    {
      bench: "cas",
      metric: `gc per 1M live chunks, nothing to delete (measured ${keep.chunks}, extrapolated)`,
      value: perM(markOnly, keep.chunks),
      unit: "s",
      baseline: "",
      target: "",
      met: null,
    },
  ];
}

export async function run(): Promise<BenchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), "ami-bench-cas-"));
  try {
    return [...(await throughput(dir)), ...(await dedupe(dir)), ...(await gc(dir))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runIfMain(import.meta, run);
