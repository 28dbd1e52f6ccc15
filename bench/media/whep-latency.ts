/**
 * Glass-to-glass latency to a WebRTC viewer (the measuring kit, its player model and the no-server baseline are
 * in glass.ts). The viewer is a werift WHEP client in this process: H.264 RTP is depacketized and each access
 * unit goes, as Annex B, into `ffmpeg -f h264 -i pipe:0` (low-delay flags) whose raw frames are read back.
 *  - RTMP -> WHEP: the generator publishes over RTMP.
 *  - WHIP -> WHEP: the generator's x264 output leaves ffmpeg as RTP (`-f rtp`) and a werift WHIP client in this
 *    process sends it to the server.
 * Figures are latencies at decode time (glass.ts: the WebRTC player model); the playout-clock model's p50 is in the
 * unit column for comparison with the HLS rows. The viewer joins at the live edge, after the path's first HLS
 * segment exists. Baseline, same run: the generator -> ffmpeg -> reader path with no server (ffmpeg `-listen 1`
 * RTMP in), decode-time figures.
 */
import { createSocket } from "node:dgram";
import { annexB, negotiate, whepReceiver, whipPublisher } from "../../test/e2e/helpers/webrtc-client.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
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

/** A WHEP viewer of `path` feeding a decoding reader for the measuring window. */
async function viewWhep(m: MediaChild, path: string): Promise<{ decoded: Figures; player: Figures }> {
  await waitFor(`${path} in the hub`, async () => {
    const r = await fetch(`${m.http}/${path}/stream.m3u8`).catch(() => undefined);
    return r?.status === 200;
  });
  const r = reader(["-f", "h264", "-i", "pipe:0"]);
  const rx = whepReceiver((u) => r.stdin?.write(annexB(u, "after")));
  await negotiate(rx.pc, `${m.http}/${path}/whep`);
  await sleep(WARMUP_MS + MEASURE_MS);
  await rx.pc.close();
  // Stopped, not drained: its input ends with a delimiter that would start an empty unit (an error on flush).
  await r.dec.stop();
  return { decoded: figures(r, "decoded"), player: figures(r) };
}

async function rtmpToWhep(m: MediaChild) {
  const g = generator(`${m.rtmp}/live/whep-rtmp`);
  try {
    return await viewWhep(m, "live/whep-rtmp");
  } finally {
    await g.stop();
  }
}

async function whipToWhep(m: MediaChild) {
  const { pc, send } = whipPublisher({ audio: false });
  await negotiate(pc, `${m.http}/live/whep-whip/whip`);
  const udp = createSocket("udp4");
  udp.on("message", (msg) => send("video", msg));
  await new Promise<void>((r) => udp.bind(0, "127.0.0.1", r));
  const url = `rtp://127.0.0.1:${udp.address().port}?pkt_size=1200`;
  const g = generator(url, ["-profile:v", "baseline", "-f", "rtp", "-payload_type", "96", url]);
  try {
    return await viewWhep(m, "live/whep-whip");
  } finally {
    await g.stop();
    udp.close();
    await pc.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  const base = await baseline();
  const m = await MediaChild.start();
  try {
    const rtmp = await rtmpToWhep(m);
    const whip = await whipToWhep(m);
    const b = baselineText(base.decoded);
    const rows = (name: string, f: { decoded: Figures; player: Figures }) => {
      const [p50, p95] = latencyRows(name, f.decoded, 300, b) as [BenchResult, BenchResult];
      p50.unit += `; playout-clock model p50 ${round(f.player.p50, 0)} ms`;
      return [p50, p95];
    };
    return [
      ...rows("glass-to-glass RTMP -> WHEP (werift viewer, latency at decode)", rtmp),
      ...rows("glass-to-glass WHIP -> WHEP (werift publisher and viewer, latency at decode)", whip),
    ];
  } finally {
    await m.stop();
  }
}

await runIfMain(import.meta, run);
