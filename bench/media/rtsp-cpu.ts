/**
 * RTSP ingest CPU: a 1080p30 6 Mb/s H.264 + AAC clip is published in a loop (`-re -c copy`) over RTSP
 * (TCP-interleaved) to the media service, whose process tree is measured from /proc over 20 s (measure() of
 * cpu.ts). It depacketizes RTP into hub frames and remuxes them to CMAF (HLS / LL-HLS / DASH), as for any publisher.
 * Baselines, same run, same clip and publisher: the same service receiving it over RTMP, and nginx with Debian's
 * RTMP module receiving it over RTMP (`live on`, no readers: it only parses and holds the stream, no remux).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { measure } from "./cpu.ts";
import { clip1080p, ffmpeg, MediaChild, nginx, publishLoop, waitFor } from "./lib.ts";

const RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

async function ours(clip: string, rtsp: boolean): Promise<number> {
  const udp = 40000 + Math.floor(Math.random() * 100) * 100;
  const m = await MediaChild.start({
    paths: { "**": { publish: "any" } },
    rtsp: { enabled: true, port: 0, udpPortMin: udp, udpPortMax: udp + 99 },
  });
  const pub = rtsp
    ? ffmpeg([
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        clip,
        "-c",
        "copy",
        "-f",
        "rtsp",
        "-rtsp_transport",
        "tcp",
        `${m.rtsp}/live/cpu`,
      ])
    : publishLoop(clip, `${m.rtmp}/live/cpu`);
  try {
    await waitFor("first segment", async () => (await fetch(`${m.http}/live/cpu/stream.m3u8`)).status === 200);
    return (await measure(m.pid)).all;
  } finally {
    await pub.stop();
    await m.stop();
  }
}

async function nginxRtmp(clip: string): Promise<number> {
  const root = mkdtempSync(join(tmpdir(), "ami-bench-nginx-rtsp-"));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const conf = `rtmp {\n  server {\n    listen 127.0.0.1:${port};\n    chunk_size 4096;\n    application live { live on; }\n  }\n}`;
  const ng = nginx(root, conf, [RTMP_MODULE]);
  await new Promise((r) => setTimeout(r, 500));
  const pub = publishLoop(clip, `rtmp://127.0.0.1:${port}/live/cpu`);
  try {
    return (await measure(ng.pid)).all;
  } finally {
    await pub.stop();
    await ng.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

export async function run(): Promise<BenchResult[]> {
  const clip = await clip1080p();
  const hasNginx = spawnSync("nginx", ["-v"]).status === 0 && existsSync(RTMP_MODULE);
  const ng = hasNginx ? await nginxRtmp(clip) : Number.NaN;
  const rtmp = await ours(clip, false);
  const rtsp = await ours(clip, true);
  return [
    {
      bench: "CPU per ingested 1080p30 6 Mb/s stream, RTSP in (TCP-interleaved; CMAF HLS/LL-HLS/DASH out)",
      metric: "cores",
      value: round(rtsp, 3),
      unit: `(${round(rtsp / rtmp, 2)}× our RTMP ingest)`,
      baseline: `our RTMP ingest of the same clip: ${round(rtmp, 3)} cores; nginx-rtmp receiving it over RTMP (no remux): ${hasNginx ? `${round(ng, 3)} cores` : "nginx-rtmp not installed"}`,
      target: "≤ 1.3× our RTMP ingest",
      met: rtsp / rtmp <= 1.3,
    },
  ];
}

await runIfMain(import.meta, run);
