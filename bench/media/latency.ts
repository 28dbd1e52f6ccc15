/**
 * Glass-to-glass latency. A generator draws the epoch milliseconds into every frame as black/white blocks
 * (raw gray frames from this process, piped into ffmpeg: x264 ultrafast zerolatency, 1 s GOP, RTMP out); a reader
 * decodes the output with ffmpeg to raw frames and reads the blocks back. A frame's latency is its display time
 * minus the time drawn into it; display follows a minimal player: frames play at 30 fps from the first one and a
 * late frame stalls playback (display = max(decoded, previous display + 1/30 s)), so delivery bursts and gaps
 * count as a player would feel them, with no extra buffer (a real player adds its hold-back).
 *  - RTMP -> LL-HLS: the reader follows the preload hints, fetching each part as the server releases it.
 *  - RTMP -> HLS (1 s segments): the reader polls the playlist every 0.5 s and fetches new complete segments.
 * Baseline, same run: the same generator -> ffmpeg -> reader path with no server (ffmpeg `-listen 1` RTMP in).
 */
import type { Writable } from "node:stream";
import { type BenchResult, percentile, round, runIfMain } from "../matrix/lib.ts";
import { ffmpeg, MediaChild, waitFor } from "./lib.ts";

const W = 384;
const H = 216;
const FPS = 30;
const BLOCK = 24;
const COLS = 8;
const X0 = 96;
const Y0 = 36;
const WARMUP_MS = 5000;
const MEASURE_MS = 15000;

/** 42 bits of milliseconds + 6 bits of their popcount (a check against misread frames). */
function bits(ms: number): number[] {
  const out: number[] = [];
  let hi = Math.floor(ms / 2 ** 21);
  let lo = ms % 2 ** 21;
  for (let i = 0; i < 21; i++, lo = Math.floor(lo / 2)) out.push(lo & 1);
  for (let i = 0; i < 21; i++, hi = Math.floor(hi / 2)) out.push(hi & 1);
  let pop = out.reduce((a, b) => a + b, 0);
  for (let i = 0; i < 6; i++, pop >>= 1) out.push(pop & 1);
  return out;
}

export function drawFrame(ms: number): Buffer {
  const f = Buffer.alloc(W * H, 128);
  bits(ms).forEach((b, i) => {
    const x = X0 + (i % COLS) * BLOCK;
    const y = Y0 + Math.floor(i / COLS) * BLOCK;
    for (let r = 0; r < BLOCK; r++) f.fill(b ? 255 : 0, (y + r) * W + x, (y + r) * W + x + BLOCK);
  });
  return f;
}

/** The milliseconds drawn into a decoded frame, or undefined when the check fails. */
export function readFrame(f: Buffer): number | undefined {
  const b: number[] = [];
  for (let i = 0; i < 48; i++) {
    const x = X0 + (i % COLS) * BLOCK + BLOCK / 2 - 4;
    const y = Y0 + Math.floor(i / COLS) * BLOCK + BLOCK / 2 - 4;
    let sum = 0;
    for (let r = 0; r < 8; r++) for (let c = 0; c < 8; c++) sum += f[(y + r) * W + x + c] as number;
    b.push(sum / 64 > 128 ? 1 : 0);
  }
  let lo = 0;
  let hi = 0;
  for (let i = 20; i >= 0; i--) lo = lo * 2 + (b[i] as number);
  for (let i = 41; i >= 21; i--) hi = hi * 2 + (b[i] as number);
  let pop = 0;
  for (let i = 47; i >= 42; i--) pop = pop * 2 + (b[i] as number);
  if (b.slice(0, 42).reduce((a, x) => a + x, 0) !== pop) return undefined;
  return hi * 2 ** 21 + lo;
}

/** Raw gray frames at 30 fps, stamped with Date.now() as they are written, into an encoding ffmpeg. */
function generator(url: string) {
  const enc = ffmpeg(
    [
      ...["-f", "rawvideo", "-pix_fmt", "gray", "-s", `${W}x${H}`, "-framerate", String(FPS), "-i", "pipe:0"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", String(FPS)],
      ...["-pix_fmt", "yuv420p", "-f", "flv", "-flush_packets", "1", url],
    ],
    "pipe",
  );
  enc.proc.stdin!.on("error", () => {});
  const start = performance.now();
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    enc.proc.stdin!.write(drawFrame(Date.now()));
    i++;
    timer = setTimeout(tick, Math.max(0, start + (i * 1000) / FPS - performance.now()));
  };
  tick();
  return {
    async stop() {
      clearTimeout(timer);
      enc.proc.stdin!.end();
      await enc.stop();
    },
  };
}

/** Decodes what is written to (or read by) an ffmpeg to raw frames; collects per-frame latencies. */
function reader(input: string[]) {
  const dec = ffmpeg(
    [
      ...["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"],
      ...input,
      ...["-an", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-s", `${W}x${H}`, "pipe:1"],
    ],
    "pipe",
  );
  const latencies: number[] = [];
  let misread = 0;
  let display = 0;
  let pending: Buffer = Buffer.alloc(0);
  const from = Date.now() + WARMUP_MS;
  dec.proc.stdout!.on("data", (d: Buffer) => {
    const now = Date.now();
    pending = pending.length ? Buffer.concat([pending, d]) : d;
    while (pending.length >= W * H) {
      const ms = readFrame(pending.subarray(0, W * H));
      pending = pending.subarray(W * H);
      display = Math.max(now, display + 1000 / FPS);
      if (ms === undefined || Math.abs(now - ms) > 60_000) misread++;
      else if (now >= from) latencies.push(display - ms);
    }
  });
  dec.proc.stdin?.on("error", () => {});
  return { dec, latencies, misread: () => misread, stdin: dec.proc.stdin as Writable | null };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fetchBuf(url: string, signal: AbortSignal): Promise<Buffer | undefined> {
  const r = await fetch(url, { signal });
  if (r.status !== 200) return undefined;
  return Buffer.from(await r.arrayBuffer());
}

/** LL-HLS client at the live edge: start at the newest independent part, then fetch each hinted part. */
async function followParts(base: string, sink: Writable, signal: AbortSignal): Promise<void> {
  const pl = await (await fetch(`${base}/stream.m3u8`, { signal })).text();
  const ind = [...pl.matchAll(/^#EXT-X-PART:.*URI="part(\d+)\.m4s",INDEPENDENT=YES$/gm)].at(-1);
  let n = Number(ind?.[1] ?? /PRELOAD-HINT:TYPE=PART,URI="part(\d+)/.exec(pl)?.[1]);
  const init = await fetchBuf(`${base}/init.mp4`, signal);
  if (init) sink.write(init);
  while (!signal.aborted) {
    const p = await fetchBuf(`${base}/part${n}.m4s`, signal).catch(() => undefined);
    if (p) {
      sink.write(p);
      n++;
    } else await sleep(50);
  }
}

/** Classic HLS client at the live edge: poll every 0.5 s, fetch new complete segments in order. */
async function followSegments(base: string, sink: Writable, signal: AbortSignal): Promise<void> {
  const init = await fetchBuf(`${base}/init.mp4`, signal);
  if (init) sink.write(init);
  let next = -1;
  while (!signal.aborted) {
    const pl = await (await fetch(`${base}/stream.m3u8`, { signal }).catch(() => undefined))?.text();
    const segs = [...(pl ?? "").matchAll(/^seg(\d+)\.m4s$/gm)].map((x) => Number(x[1]));
    if (next < 0 && segs.length) next = segs.at(-1) as number;
    while (next >= 0 && segs.includes(next) && !signal.aborted) {
      const s = await fetchBuf(`${base}/seg${next}.m4s`, signal).catch(() => undefined);
      if (!s) break;
      sink.write(s);
      next++;
    }
    await sleep(500);
  }
}

interface Figures {
  p50: number;
  p95: number;
  n: number;
  misread: number;
}

const figures = (r: ReturnType<typeof reader>): Figures => ({
  p50: percentile(r.latencies, 50),
  p95: percentile(r.latencies, 95),
  n: r.latencies.length,
  misread: r.misread(),
});

async function baseline(): Promise<Figures> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const url = `rtmp://127.0.0.1:${port}/live/base`;
  const r = reader(["-listen", "1", "-f", "flv", "-i", url]);
  await sleep(500);
  const g = generator(url);
  await sleep(WARMUP_MS + MEASURE_MS);
  await g.stop();
  await r.dec.stop();
  return figures(r);
}

async function ours(): Promise<{ ll: Figures; hls: Figures }> {
  const m = await MediaChild.start();
  const g = generator(`${m.rtmp}/live/latency`);
  const base = `${m.http}/live/latency`;
  const ac = new AbortController();
  try {
    await waitFor("first segment", async () => (await fetch(`${base}/stream.m3u8`)).status === 200);
    const ll = reader(["-f", "mp4", "-i", "pipe:0"]);
    const hls = reader(["-f", "mp4", "-i", "pipe:0"]);
    const done = Promise.all([
      followParts(base, ll.stdin!, ac.signal).catch(() => {}),
      followSegments(base, hls.stdin!, ac.signal).catch(() => {}),
    ]);
    await sleep(WARMUP_MS + MEASURE_MS);
    ac.abort();
    await done;
    ll.stdin?.end();
    hls.stdin?.end();
    await Promise.all([ll.dec.stop(), hls.dec.stop()]);
    return { ll: figures(ll), hls: figures(hls) };
  } finally {
    ac.abort();
    await g.stop();
    await m.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const base = await baseline();
  const o = await ours();
  const b = `generator -> ffmpeg RTMP listen -> decode, no server: p50 ${round(base.p50, 0)} ms, p95 ${round(base.p95, 0)} ms (${base.n} frames)`;
  const rows = (name: string, f: Figures, targetMs: number): BenchResult[] => [
    {
      bench: name,
      metric: "p50",
      value: round(f.p50, 0),
      unit: `ms (${f.n} frames, ${f.misread} unreadable)`,
      baseline: b,
      target: `≤ ${targetMs} ms`,
      met: f.p50 <= targetMs,
    },
    {
      bench: name,
      metric: "p95",
      value: round(f.p95, 0),
      unit: "ms",
      baseline: "(same)",
      target: `≤ ${targetMs} ms`,
      met: f.p95 <= targetMs,
    },
  ];
  return [
    ...rows("glass-to-glass RTMP -> LL-HLS (0.2 s parts, reader at the live edge)", o.ll, 1500),
    ...rows("glass-to-glass RTMP -> HLS (1 s segments, reader at the live edge)", o.hls, 3500),
  ];
}

await runIfMain(import.meta, run);
