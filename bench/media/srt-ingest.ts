/**
 * CPU of in-process SRT ingest: the 1080p30 6 Mb/s H.264 + AAC clip is published in a loop (`-re -c copy -f
 * mpegts srt://…?streamid=publish:…`) to the media service, which speaks SRT itself (ACKs every 10 ms, NAKs,
 * TSBPD), demuxes the TS into the hub and packages CMAF (HLS/LL-HLS/DASH) as for every path. The whole service
 * process tree is measured from /proc (a helper process would be counted).
 *
 * To isolate the ingest from the packaging, the same service is measured with the same clip published over
 * RTMP (same hub, same CMAF): the SRT figure minus the RTMP one is what SRT + TS demux cost over RTMP + FLV.
 *
 * Baseline, same run: the old way's extra process — ffmpeg as the SRT listener remuxing the same publisher's
 * stream to FLV on stdout (`ffmpeg -i srt://…?mode=listener -c copy -f flv -`), which the service then parsed as
 * it parses RTMP's FLV tags. Target: the in-process SRT ingest costs less than that ffmpeg did.
 */
import { freePort } from "../../src/test/cli.ts";
import { type BenchResult, round, runIfMain } from "../matrix/lib.ts";
import { measure } from "./cpu.ts";
import { clip1080p, ffmpeg, MediaChild, publishLoop, waitFor } from "./lib.ts";

const srtPublish = (clip: string, url: string) =>
  ffmpeg(["-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "mpegts", url]);

async function service(clip: string, via: "srt" | "rtmp"): Promise<{ all: number; top: number }> {
  const m = await MediaChild.start();
  const pub =
    via === "srt" ? srtPublish(clip, `${m.srt}?streamid=publish:live/cpu`) : publishLoop(clip, `${m.rtmp}/live/cpu`);
  try {
    await waitFor("first segment", async () => (await fetch(`${m.http}/live/cpu/stream.m3u8`)).status === 200);
    return await measure(m.pid);
  } finally {
    await pub.stop();
    await m.stop();
  }
}

/** The old way's ffmpeg: SRT listener, `-c copy -f flv` to a pipe we drain. */
async function ffmpegListener(clip: string): Promise<number> {
  const port = await freePort();
  const url = `srt://127.0.0.1:${port}`;
  const f = ffmpeg(
    ["-loglevel", "fatal", "-f", "mpegts", "-i", `${url}?mode=listener`, "-c", "copy", "-f", "flv", "pipe:1"],
    "pipe",
  );
  let bytes = 0;
  f.proc.stdout?.on("data", (d: Buffer) => {
    bytes += d.length;
  });
  await new Promise((r) => setTimeout(r, 500));
  const pub = srtPublish(clip, url);
  try {
    await waitFor("ffmpeg's FLV output", async () => bytes > 100_000);
    return (await measure(f.proc.pid as number)).all;
  } finally {
    await pub.stop();
    await f.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const clip = await clip1080p();
  const base = await ffmpegListener(clip);
  const srt = await service(clip, "srt");
  const rtmp = await service(clip, "rtmp");
  const ingest = Math.max(0, srt.all - rtmp.all);
  return [
    {
      bench: "CPU of in-process SRT ingest, 1080p30 6 Mb/s (SRT + TS demux, over RTMP + FLV)",
      metric: "cores",
      value: round(ingest, 3),
      unit: `(service with an SRT publisher ${round(srt.all, 3)} cores, children ${round(srt.all - srt.top, 3)}; with the same clip over RTMP ${round(rtmp.all, 3)})`,
      baseline: `old way's ffmpeg -i srt://…?mode=listener -c copy -f flv -, same publisher: ${round(base, 3)} cores (on top of the service's FLV parsing)`,
      target: "< the ffmpeg it replaces",
      met: ingest < base,
    },
  ];
}

await runIfMain(import.meta, run);
