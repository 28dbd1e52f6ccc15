/** Shared by the media e2e tests: ffmpeg publishers, ffprobe, polling. All child processes are asynchronous. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { FlvDemuxer, type FlvTag } from "../../../src/media/protocols/flv/demux.ts";

export interface Probe {
  streams: { codec_name: string; codec_type: string; height?: number }[];
  format: { duration?: string };
}

/** A tool as a child process, asynchronously: exit code, stdout and stderr. */
export async function runTool(cmd: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout.on("data", (d) => {
    out += d;
  });
  proc.stderr.on("data", (d) => {
    err += d;
  });
  const code = await new Promise<number | null>((r) => proc.once("close", r));
  return { code, out, err };
}

/** ffprobe as a child process, asynchronously (the server under test may run in this process's event loop). */
export async function ffprobe(url: string, entries = "format=duration:stream=codec_name,codec_type"): Promise<Probe> {
  const { code, out, err } = await runTool("ffprobe", ["-v", "error", "-show_entries", entries, "-of", "json", url]);
  assert.equal(code, 0, `ffprobe ${url}: ${err}`);
  return JSON.parse(out);
}

export const kinds = (p: Probe): string[] => p.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort();

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * `<base>/<path>/stream.m3u8` exists and then lists a segment it did not list at first (media sequence plus
 * segment count grows within 10 s): the stream is live now, not just announced.
 */
export async function liveNow(base: string, path: string): Promise<boolean> {
  const url = `${base}/${path}/stream.m3u8`;
  const seq = (t: string) =>
    Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(t)?.[1] ?? -1) + (t.match(/#EXTINF/g)?.length ?? 0);
  const first = await fetch(url).then((r) => (r.ok ? r.text() : ""));
  if (!first) return false;
  return until(`${path} to grow`, async () => seq(await fetch(url).then((r) => r.text())) > seq(first), 10_000);
}

const FAST_X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"];

/**
 * ffmpeg publishing testsrc2 + sine (H.264 + AAC) for `seconds` in real time to `url` in format `format`; `video`
 * replaces the video encoder options (default: x264 ultrafast, a keyframe a second).
 */
export function publish(
  url: string,
  seconds: number,
  format = "flv",
  video = FAST_X264,
): { proc: ChildProcess; exit: Promise<number | null> } {
  const proc = spawn(
    "ffmpeg",
    [
      ...["-hide_banner", "-nostdin", "-loglevel", "error", "-re"],
      ...["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine"],
      ...["-t", String(seconds), ...video, "-c:a", "aac"],
      ...["-f", format, url],
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  return { proc, exit: new Promise((r) => proc.once("close", r)) };
}

/** An HTTP-FLV response (`/<path>.flv`) read into tags as they come, until `stop()` (or the server ends it). */
export function readFlv(url: string): { tags: FlvTag[]; stop: () => void; done: Promise<void> } {
  const tags: FlvTag[] = [];
  const ac = new AbortController();
  const done = (async () => {
    const r = await fetch(url, { signal: ac.signal });
    assert.equal(r.status, 200);
    const demux = new FlvDemuxer();
    try {
      for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>)
        tags.push(...demux.push(Buffer.from(chunk)));
    } catch (e) {
      if (!ac.signal.aborted) throw e;
    }
  })();
  return { tags, stop: () => ac.abort(), done };
}

/**
 * GStreamer's `element` (playbin, playbin3) playing `uri` for `seconds` into clock-synced fakesinks: seconds of
 * video rendered (first to last PTS at the video sink) and the lines gst-launch printed about errors.
 */
export async function gstPlayed(
  element: string,
  uri: string,
  seconds: number,
  /** Stop as soon as this many seconds of media were rendered (what the caller asserts, with a margin). */
  enough = Number.POSITIVE_INFINITY,
): Promise<{ played: number; errors: string[] }> {
  // Named: playbin may create the audio sink first, and only the video sink prints its buffers.
  const args = ["-v", element, `uri=${uri}`, "video-sink=fakesink name=vsink sync=true silent=false"];
  args.push("audio-sink=fakesink sync=true");
  // -k: gst-launch may sit on the SIGTERM; KILL it 5 s later.
  const proc = spawn("timeout", ["-k", "5", String(seconds), "gst-launch-1.0", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pts: number[] = [];
  const errors: string[] = [];
  let rest = "";
  const scan = (d: Buffer) => {
    const lines = (rest + d.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) {
      const x = /vsink: last-message = chain.*pts: (\d+):(\d+):([\d.]+)/.exec(l);
      if (x) pts.push(Number(x[1]) * 3600 + Number(x[2]) * 60 + Number(x[3]));
      else if (/^ERROR|ERROR: from element/.test(l)) errors.push(l);
    }
    // timeout(1) passes the TERM on to gst-launch.
    if (pts.length > 1 && Math.max(...pts) - Math.min(...pts) >= enough) proc.kill("SIGTERM");
  };
  proc.stdout.on("data", scan);
  proc.stderr.on("data", scan);
  await new Promise((r) => proc.once("close", r));
  return { played: pts.length > 1 ? Math.max(...pts) - Math.min(...pts) : 0, errors };
}

/**
 * VLC (as `nobody`: it refuses root) playing `url` with null audio and video outputs for `seconds`, then its own
 * input statistics from the rc interface (`stats`): frames decoded and displayed, audio buffers played.
 */
export async function vlcStats(
  url: string,
  seconds: number,
): Promise<{ displayed: number; lost: number; audioPlayed: number; log: string }> {
  const vlc = ["vlc", "-I", "oldrc", "--rc-fake-tty", "--vout", "dummy", "--aout", "dummy", "--no-video-title-show"];
  const cmd = process.getuid?.() === 0 ? ["runuser", "-u", "nobody", "--", ...vlc] : vlc;
  const proc = spawn("timeout", [String(seconds + 15), ...cmd, url], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let log = "";
  proc.stdout.on("data", (d) => {
    out += d;
  });
  proc.stderr.on("data", (d) => {
    log += d;
  });
  const closed = new Promise((r) => proc.once("close", r));
  await sleep(seconds * 1000);
  proc.stdin.write("stats\n");
  await sleep(1000);
  proc.stdin.end("quit\n");
  await closed;
  const n = (label: string) => Number(new RegExp(`${label}\\s*:\\s*(\\d+)`).exec(out)?.[1] ?? 0);
  return { displayed: n("frames displayed"), lost: n("frames lost"), audioPlayed: n("buffers played"), log };
}
