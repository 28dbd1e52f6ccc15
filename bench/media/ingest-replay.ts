/**
 * The ingest path's own JavaScript per second of media, without sockets or other processes: the bench clip's
 * FLV tags (1080p30 6 Mb/s H.264 + AAC, `ffmpeg -c copy -f flv`) are cut into RTMP chunks (4096 bytes, as ffmpeg
 * publishes) and fed, in reads of ~1/60 s of media, to what a publish goes through in the media service: the
 * chunk reader with a recycling slab, `rtmpToStream`, the hub stream (stats, GOP cache), the WebRTC video check
 * and the CMAF packager with its timeline (as Outputs and the WebRTC server attach them). Looping the clip
 * (timestamps going on) for BENCH_REPLAY_S seconds of media (default 600) at full speed, it prints the main
 * thread's CPU time per second of media, best of BENCH_REPLAY_ROUNDS rounds (default 5).
 *
 * `bench/media/cpu.ts` measures the whole process against nginx-rtmp, but on this shared 2-core machine its
 * 20 s windows swing 3-5× with the neighbours' load (nginx-rtmp's own figure went 0.004 → 0.02 cores in one
 * day); this is for A/B comparisons of per-frame changes, where the best of several rounds is stable to a few %.
 * Not covered: socket reads, epoll, timers, V8's helper threads, and the pacing of a real-time publisher.
 */
import { spawnSync } from "node:child_process";
import { silentLogger } from "../../src/core/logger.ts";
import { Hub } from "../../src/media/hub.ts";
import { Outputs } from "../../src/media/outputs.ts";
import { FlvDemuxer } from "../../src/media/protocols/flv/demux.ts";
import { TAG_AUDIO, TAG_VIDEO } from "../../src/media/protocols/flv/tag.ts";
import { ChunkReader, ChunkWriter } from "../../src/media/protocols/rtmp/chunk.ts";
import { CSID, MSG } from "../../src/media/protocols/rtmp/messages.ts";
import { rtmpToStream } from "../../src/media/protocols/rtmp/to-stream.ts";
import { release, Slab } from "../../src/media/protocols/slab.ts";
import { VideoCheck } from "../../src/media/protocols/webrtc/video-check.ts";
import { type BenchResult, round, runIfMain, untargetedRows } from "../matrix/lib.ts";
import { clip1080p } from "./lib.ts";

const MEDIA_S = Number(process.env.BENCH_REPLAY_S ?? 600);
const ROUNDS = Number(process.env.BENCH_REPLAY_ROUNDS ?? 5);

interface Tag {
  type: number;
  dts: number;
  data: Buffer;
}

function clipTags(clip: string): { tags: Tag[]; durationMs: number } {
  const r = spawnSync(
    "ffmpeg",
    ["-hide_banner", "-loglevel", "error", "-i", clip, "-c", "copy", "-f", "flv", "pipe:1"],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  if (r.status !== 0) throw new Error(String(r.stderr));
  const tags = new FlvDemuxer()
    .push(r.stdout)
    .filter((t) => t.type === TAG_VIDEO || t.type === TAG_AUDIO)
    .map((t) => ({ type: t.type, dts: t.timestamp, data: Buffer.from(t.data) }));
  const last = tags.at(-1) as Tag;
  // The next loop starts one video frame after the last tag.
  return { tags, durationMs: last.dts + 33 };
}

/** The RTMP wire bytes of `seconds` of the looped clip, cut into reads of ~1/60 s of media each. */
function wire(tags: Tag[], durationMs: number, seconds: number): Buffer[] {
  const w = new ChunkWriter();
  w.chunkSize = 4096;
  const reads: Buffer[] = [];
  let pending: Buffer[] = [];
  let readEnd = 1000 / 60;
  for (let loop = 0; loop * durationMs < seconds * 1000; loop++) {
    // Sequence headers once (dts 0), then media only.
    for (const t of tags) {
      const config = t.data[1] === 0;
      if (loop > 0 && config) continue;
      const dts = t.dts + loop * durationMs;
      if (dts >= readEnd) {
        reads.push(Buffer.concat(pending));
        pending = [];
        readEnd += 1000 / 60;
      }
      const video = t.type === TAG_VIDEO;
      pending.push(
        w.write({
          csid: video ? CSID.VIDEO : CSID.AUDIO,
          type: video ? MSG.VIDEO : MSG.AUDIO,
          streamId: 1,
          timestamp: dts,
          payload: t.data,
        }),
      );
    }
  }
  if (pending.length) reads.push(Buffer.concat(pending));
  return reads;
}

/** One publish of the reads through the service's ingest path; the main thread's CPU ms. */
export async function once(reads: Buffer[]): Promise<{ ms: number; fragments: number }> {
  const hub = new Hub({ readerQueue: 1024, gopCache: 600 });
  const outputs = new Outputs(
    hub,
    { segmentSeconds: 1, partSeconds: 0.2, segmentCount: 7, ffmpegPath: "ffmpeg", lingerMs: 0, endGraceMs: 0 },
    silentLogger,
  );
  hub.on("publish", (s) => VideoCheck.attach(s));
  const stream = hub.publish("live/replay", { protocol: "rtmp", remote: "replay", since: Date.now() });
  const reader = new ChunkReader();
  reader.setChunkSize(4096);
  reader.useSlab(new Slab(1024 * 1024, { recycle: true }));
  const t0 = process.cpuUsage();
  for (const r of reads) {
    for (const m of reader.push(r)) {
      rtmpToStream(m, stream);
      release(m.payload);
    }
    // Between reads, as between socket reads: the packager starts on a promise (its first keyframe).
    await null;
  }
  const t = process.cpuUsage(t0);
  const fragments = outputs.get("live/replay")?.packager.bytesOut ?? 0;
  stream.end();
  reader.release();
  outputs.close();
  return { ms: (t.user + t.system) / 1000, fragments };
}

/** The reads of MEDIA_S seconds of the looped bench clip. */
export async function prepare(): Promise<Buffer[]> {
  const { tags, durationMs } = clipTags(await clip1080p());
  return wire(tags, durationMs, MEDIA_S);
}

export async function run(): Promise<BenchResult[]> {
  const reads = await prepare();
  const runs: number[] = [];
  let bytesOut = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const r = await once(reads);
    runs.push(r.ms / MEDIA_S);
    bytesOut = r.fragments;
  }
  // The packager must have muxed (about) everything: 6 Mb/s + audio.
  if (bytesOut < MEDIA_S * 600_000) throw new Error(`the packager wrote only ${bytesOut} bytes`);
  const best = Math.min(...runs);
  const row = untargetedRows(
    "Ingest path JavaScript per second of 1080p30 6 Mb/s media (RTMP chunks → hub → CMAF timeline), replayed",
  );
  return [
    row(
      "CPU ms per media s",
      round(best, 3),
      `(best of ${ROUNDS}: ${runs.map((r) => round(r, 3)).join(", ")}; ${MEDIA_S} s of media, ${reads.length} reads)`,
    ),
  ];
}

await runIfMain(import.meta, run);
