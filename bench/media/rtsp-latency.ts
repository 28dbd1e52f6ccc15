/**
 * Glass-to-glass latency through the RTSP server (the measuring kit, its player model and the no-server baseline
 * are in glass.ts): the generator's ffmpeg publishes over RTSP (ANNOUNCE/RECORD, TCP-interleaved) and an ffmpeg
 * reader plays the path back over RTSP, TCP-interleaved and UDP, decoding at once (nobuffer, low_delay).
 * Latency is taken when a frame is decoded (as whep-latency.ts does): a reader joins with the path's cached GOP
 * (instant start), which a playout clock would carry as a permanent delay of up to a GOP; that figure is printed
 * too ("playout-clock model" in the unit column).
 * Baselines, same run: RTMP -> RTMP through the same server (the path every other protocol is compared with),
 * and the generator -> ffmpeg -> reader path with no server at all (ffmpeg `-listen 1` RTMP in).
 */
import { type BenchResult, runIfMain } from "../matrix/lib.ts";
import {
  baseline,
  baselineText,
  type Figures,
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
    return { decoded: figures(r, "decoded"), player: figures(r) };
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
    const b = `${baselineText(base.decoded)} (latency at decode); RTMP -> RTMP through our server: p50 ${Math.round(rtmp.decoded.p50)} ms, p95 ${Math.round(rtmp.decoded.p95)} ms (${rtmp.decoded.n} frames)`;
    const rows = (name: string, f: { decoded: Figures; player: Figures }) => {
      const r = latencyRows(name, f.decoded, TARGET_MS, b);
      (r[0] as BenchResult).unit +=
        `; playout-clock model p50 ${Math.round(f.player.p50)} ms, p95 ${Math.round(f.player.p95)} ms`;
      return r;
    };
    return [
      ...rows("glass-to-glass RTSP -> RTSP (TCP-interleaved publish and read, latency at decode)", tcp),
      ...rows("glass-to-glass RTSP -> RTSP (TCP publish, UDP read, latency at decode)", udpF),
      ...rows("glass-to-glass RTMP -> RTMP (same server, baseline, latency at decode)", rtmp),
    ];
  } finally {
    await m.stop();
  }
}

await runIfMain(import.meta, run);
