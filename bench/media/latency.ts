/**
 * Glass-to-glass latency, RTMP in, HLS out (the measuring kit, its player model and the no-server baseline are in
 * glass.ts):
 *  - RTMP -> LL-HLS: the reader follows the preload hints, fetching each part as the server releases it.
 *  - RTMP -> HLS (1 s segments): the reader polls the playlist every 0.5 s and fetches new complete segments.
 * Baseline, same run: the same generator -> ffmpeg -> reader path with no server (ffmpeg `-listen 1` RTMP in).
 */
import type { Writable } from "node:stream";
import { type BenchResult, runIfMain } from "../matrix/lib.ts";
import {
  baseline,
  baselineText,
  figures,
  generator,
  latencyRows,
  MEASURE_MS,
  reader,
  sleep,
  WARMUP_MS,
} from "./glass.ts";
import { MediaChild, waitFor } from "./lib.ts";

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

async function ours() {
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
  const b = baselineText(base.player);
  return [
    ...latencyRows("glass-to-glass RTMP -> LL-HLS (0.2 s parts, reader at the live edge)", o.ll, 1500, b),
    ...latencyRows("glass-to-glass RTMP -> HLS (1 s segments, reader at the live edge)", o.hls, 3500, b),
  ];
}

await runIfMain(import.meta, run);
