/**
 * Glass-to-glass measuring kit shared by the latency benches: a generator draws the epoch milliseconds into
 * every frame as black/white blocks (raw gray frames from this process, piped into an encoding ffmpeg: x264
 * ultrafast zerolatency, 1 s GOP, output as the caller says), and a reader decodes a stream with ffmpeg to raw
 * frames and reads the blocks back. A frame's latency is its display time minus the time drawn into it; display
 * follows a minimal player: frames play at 30 fps from the first one and a late frame stalls playback
 * (display = max(decoded, previous display + 1/30 s)), so delivery bursts and gaps count as a player would feel
 * them, with no extra buffer (a real player adds its hold-back). The reader also keeps each frame's latency at
 * the moment it is decoded ("decoded" figures): that is the model for a WebRTC player, which renders frames as
 * they are decoded behind an adaptive jitter buffer (near zero on loopback) instead of keeping a playout clock,
 * so a stall at startup (the decoder process starting) is caught up rather than carried forever. The baseline
 * is the same generator -> ffmpeg -> reader path with no server (ffmpeg `-listen 1` RTMP in).
 */
import type { Writable } from "node:stream";
import { type BenchResult, percentile, round } from "../matrix/lib.ts";
import { ffmpeg } from "./lib.ts";

const W = 384;
const H = 216;
export const FPS = 30;
const BLOCK = 24;
const COLS = 8;
const X0 = 96;
const Y0 = 36;
/** Where the bits are drawn (a browser-side reader, bench/media/whep-bframes.ts, reads them the same way). */
export const LAYOUT = { W, H, BLOCK, COLS, X0, Y0 } as const;
export const WARMUP_MS = 5000;
export const MEASURE_MS = 15000;

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

/**
 * Raw gray frames at 30 fps, stamped with Date.now() as they are written, into an encoding ffmpeg; `out` is its
 * output (format and URL), RTMP by default.
 */
export function generator(url: string, out: string[] = ["-f", "flv", "-flush_packets", "1", url]) {
  const enc = ffmpeg(
    [
      ...["-f", "rawvideo", "-pix_fmt", "gray", "-s", `${W}x${H}`, "-framerate", String(FPS), "-i", "pipe:0"],
      ...["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", String(FPS)],
      ...["-pix_fmt", "yuv420p", ...out],
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
    /** The encoder (its stdout is the stream when `out` writes to pipe:1). */
    proc: enc.proc,
    async stop() {
      clearTimeout(timer);
      enc.proc.stdin!.end();
      await enc.stop();
    },
  };
}

/** Decodes what is written to (or read by) an ffmpeg to raw frames; collects per-frame latencies. */
export function reader(input: string[]) {
  const dec = ffmpeg(
    [
      ...["-fflags", "nobuffer", "-flags", "low_delay", "-probesize", "32", "-analyzeduration", "0"],
      ...input,
      ...["-an", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-s", `${W}x${H}`, "pipe:1"],
    ],
    "pipe",
  );
  const latencies: number[] = [];
  const decoded: number[] = [];
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
      else if (now >= from) {
        latencies.push(display - ms);
        decoded.push(now - ms);
      }
    }
  });
  dec.proc.stdin?.on("error", () => {});
  return { dec, latencies, decoded, misread: () => misread, stdin: dec.proc.stdin as Writable | null };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Figures {
  p50: number;
  p95: number;
  n: number;
  misread: number;
}

/** Player-model figures, or with `model` "decoded" the latency at decode time (the WebRTC player model). */
export const figures = (r: ReturnType<typeof reader>, model: "player" | "decoded" = "player"): Figures => {
  const l = model === "player" ? r.latencies : r.decoded;
  return { p50: percentile(l, 50), p95: percentile(l, 95), n: l.length, misread: r.misread() };
};

/** The no-server baseline: generator -> ffmpeg RTMP listen -> decode. */
export async function baseline(): Promise<{ player: Figures; decoded: Figures }> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const url = `rtmp://127.0.0.1:${port}/live/base`;
  const r = reader(["-listen", "1", "-f", "flv", "-i", url]);
  await sleep(500);
  const g = generator(url);
  await sleep(WARMUP_MS + MEASURE_MS);
  await g.stop();
  await r.dec.stop();
  return { player: figures(r), decoded: figures(r, "decoded") };
}

export const baselineText = (base: Figures): string =>
  `generator -> ffmpeg RTMP listen -> decode, no server: p50 ${round(base.p50, 0)} ms, p95 ${round(base.p95, 0)} ms (${base.n} frames)`;

/** The p50 and p95 rows of one path against a target. */
export function latencyRows(name: string, f: Figures, targetMs: number, baselineText: string): BenchResult[] {
  const target = `≤ ${targetMs} ms`;
  return [
    {
      bench: name,
      metric: "p50",
      value: round(f.p50, 0),
      unit: `ms (${f.n} frames, ${f.misread} unreadable)`,
      baseline: baselineText,
      target,
      met: f.p50 <= targetMs,
    },
    {
      bench: name,
      metric: "p95",
      value: round(f.p95, 0),
      unit: "ms",
      baseline: "(same)",
      target,
      met: f.p95 <= targetMs,
    },
  ];
}
