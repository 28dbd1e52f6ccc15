/**
 * Glass-to-glass latency through the RTSP server (the measuring kit, its player model and the no-server baseline
 * are in glass.ts): the generator's ffmpeg publishes over RTSP (ANNOUNCE/RECORD, TCP-interleaved) and an ffmpeg
 * reader plays the path back over RTSP, TCP-interleaved and UDP, decoding at once (nobuffer, low_delay).
 * Baselines, same run: RTMP -> RTMP through the same server (the path every other protocol is compared with),
 * and the generator -> ffmpeg -> reader path with no server at all (ffmpeg `-listen 1` RTMP in).
 */
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

const TARGET_MS = 150;

/** One publisher -> server -> reader run: `out` is the generator's output, `input` the reader's. */
async function through(m: MediaChild, path: string, out: string[], input: string[]) {
  const g = generator("", out);
  try {
    await waitFor(`${path} published`, async () => (await fetch(`${m.http}/${path}/stream.m3u8`)).status === 200);
    const r = reader(input);
    await sleep(WARMUP_MS + MEASURE_MS);
    await r.dec.stop();
    return figures(r);
  } finally {
    await g.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const base = await baseline();
  const udp = 40000 + Math.floor(Math.random() * 100) * 100;
  const m = await MediaChild.start({
    paths: { "**": { publish: "any" } },
    rtsp: { enabled: true, port: 0, udpPortMin: udp, udpPortMax: udp + 99 },
  });
  try {
    const rtspUrl = (p: string) => `${m.rtsp}/${p}`;
    const pubRtsp = (p: string) => ["-f", "rtsp", "-rtsp_transport", "tcp", rtspUrl(p)];
    const tcp = await through(m, "live/rt", pubRtsp("live/rt"), ["-rtsp_transport", "tcp", "-i", rtspUrl("live/rt")]);
    const udpF = await through(m, "live/ru", pubRtsp("live/ru"), ["-rtsp_transport", "udp", "-i", rtspUrl("live/ru")]);
    const rtmp = await through(
      m,
      "live/rm",
      ["-f", "flv", "-flush_packets", "1", `${m.rtmp}/live/rm`],
      ["-f", "flv", "-i", `${m.rtmp}/live/rm`],
    );
    const b = `${baselineText(base.player)}; RTMP -> RTMP through our server: p50 ${Math.round(rtmp.p50)} ms, p95 ${Math.round(rtmp.p95)} ms (${rtmp.n} frames)`;
    return [
      ...latencyRows("glass-to-glass RTSP -> RTSP (TCP-interleaved publish and read)", tcp, TARGET_MS, b),
      ...latencyRows("glass-to-glass RTSP -> RTSP (TCP publish, UDP read)", udpF, TARGET_MS, b),
      ...latencyRows("glass-to-glass RTMP -> RTMP (same server, baseline)", rtmp, TARGET_MS, b),
    ];
  } finally {
    await m.stop();
  }
}

await runIfMain(import.meta, run);
