/**
 * Which H.264 encoder ABR ladders use. `ffmpeg -encoders` only says what ffmpeg was built with; a hardware
 * encoder is taken only after a one-frame test encode on its device succeeds (NVENC needs the CUDA driver,
 * VAAPI and QSV a /dev/dri render node). `auto` tries nvenc, vaapi, qsv, then software (libx264). The result,
 * with the reason each other kind was not chosen, is cached per ffmpeg binary and requested kind.
 */
import { readdirSync } from "node:fs";
import { lastLine, QUIET, runFfmpeg } from "../ffmpeg.ts";

export type EncoderKind = "software" | "nvenc" | "vaapi" | "qsv";
export type EncoderSetting = EncoderKind | "auto";

/** The ffmpeg encoder name of each kind. */
export const CODECS: Record<EncoderKind, string> = {
  nvenc: "h264_nvenc",
  vaapi: "h264_vaapi",
  qsv: "h264_qsv",
  software: "libx264",
};

/** `auto` order: hardware first (it spares the CPU), software last. */
export const AUTO_ORDER: EncoderKind[] = ["nvenc", "vaapi", "qsv", "software"];

export interface EncoderTry {
  kind: EncoderKind;
  codec: string;
  ok: boolean;
  /** Why it is not usable (empty when ok). */
  reason: string;
  /** The render node a VAAPI/QSV encoder was opened on. */
  device?: string;
}

export interface EncoderChoice {
  kind: EncoderKind;
  codec: string;
  /** False: the requested kind cannot be used here (`error` says why); ladders fail, sources still play. */
  ok: boolean;
  error: string | null;
  device: string | null;
  /** Every kind tried, in order, with why it was or was not usable. */
  tried: EncoderTry[];
}

export interface Encoders {
  /** Encoder names -> description (`libx264` -> `libx264 H.264 / AVC / ...`). */
  video: Map<string, string>;
  audio: Map<string, string>;
}

/** Parses `ffmpeg -hide_banner -encoders`: ` V....D libx264   description` lines after the ` ------` rule. */
export function parseEncoders(text: string): Encoders {
  const out: Encoders = { video: new Map(), audio: new Map() };
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim().startsWith("------"));
  for (const line of lines.slice(start + 1)) {
    const m = /^\s*([VAS])[.A-Z]{5}\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const map = m[1] === "V" ? out.video : m[1] === "A" ? out.audio : undefined;
    map?.set(m[2] as string, (m[3] as string).trim());
  }
  return out;
}

/** /dev/dri/renderD* nodes (VAAPI and QSV open these). */
export function renderNodes(dir = "/dev/dri"): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => /^renderD\d+$/.test(f))
      .sort()
      .map((f) => `${dir}/${f}`);
  } catch {
    return [];
  }
}

/**
 * Global options (before `-i`) and the tail of a video filter chain that hand frames to the encoder: hardware
 * encoders take NV12 frames uploaded to their device, libx264 takes yuv420p from system memory.
 */
export function deviceArgs(kind: EncoderKind, device: string | null): { global: string[]; upload: string } {
  if (kind === "vaapi") return { global: ["-vaapi_device", device ?? ""], upload: "format=nv12,hwupload" };
  if (kind === "qsv")
    return {
      global: ["-init_hw_device", `qsv=hw:hw_any,child_device=${device ?? ""}`, "-filter_hw_device", "hw"],
      upload: "format=nv12,hwupload=extra_hw_frames=64",
    };
  return { global: [], upload: "format=yuv420p" };
}

const PROBE_TIMEOUT_MS = 15_000;

async function run(ffmpegPath: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const ff = runFfmpeg(ffmpegPath, args);
  // A driver that hangs on its device must not hold the ladder forever: that kind then counts as failed.
  const limit = setTimeout(() => ff.stop(), PROBE_TIMEOUT_MS);
  let stdout = "";
  ff.proc.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  const code = await ff.exited;
  clearTimeout(limit);
  const err = code === null ? `timed out after ${PROBE_TIMEOUT_MS / 1000} s` : ff.stderr();
  return { code, out: stdout, err };
}

/** Encode one small frame with `kind` on `device`; resolves to "" when it worked, else ffmpeg's reason. */
async function testEncode(ffmpegPath: string, kind: EncoderKind, device: string | null): Promise<string> {
  const d = deviceArgs(kind, device);
  const r = await run(ffmpegPath, [
    ...QUIET,
    ...d.global,
    ...["-f", "lavfi", "-i", "color=black:size=256x144:rate=25"],
    ...["-vf", d.upload, "-frames:v", "1", "-c:v", CODECS[kind], "-f", "null", "-"],
  ]);
  return r.code === 0 ? "" : firstError(r.err) || `ffmpeg exited with ${r.code}`;
}

/**
 * ffmpeg's first error line is the specific one (`[h264_nvenc @ 0x..] Cannot load libcuda.so.1`); the generic
 * "Error initializing output stream" follows it. The `[name @ address]` prefix is dropped.
 */
export const firstError = (stderr: string): string =>
  (stderr.split("\n").find((l) => l.trim()) ?? "").replace(/^\[[^\]]+ @ 0x[0-9a-f]+\]\s*/, "").trim();

export interface ProbeOptions {
  ffmpegPath: string;
  /** Render nodes to try for VAAPI/QSV (default: /dev/dri/renderD*). */
  nodes?: string[];
}

/** Whether one kind is usable here, and why not. */
export async function probeKind(kind: EncoderKind, list: Encoders, o: ProbeOptions): Promise<EncoderTry> {
  const codec = CODECS[kind];
  const no = (reason: string, device?: string): EncoderTry => ({ kind, codec, ok: false, reason, device });
  if (!list.video.has(codec)) return no(`this ffmpeg has no ${codec} encoder (ffmpeg -encoders)`);
  if (kind === "software" || kind === "nvenc") {
    const why = await testEncode(o.ffmpegPath, kind, null);
    return why ? no(`test encode failed: ${why}`) : { kind, codec, ok: true, reason: "" };
  }
  const nodes = o.nodes ?? renderNodes();
  if (nodes.length === 0) return no("no render device (/dev/dri/renderD* does not exist)");
  const failures: string[] = [];
  for (const device of nodes) {
    const why = await testEncode(o.ffmpegPath, kind, device);
    if (!why) return { kind, codec, ok: true, reason: "", device };
    failures.push(`${device}: ${why}`);
  }
  return no(`test encode failed on ${failures.join("; ")}`);
}

/** The decision, from the kinds tried (in order): the first usable one, or the requested kind failing. */
export function choose(want: EncoderSetting, tried: EncoderTry[]): EncoderChoice {
  const pick = tried.find((t) => t.ok && (want === "auto" || t.kind === want));
  if (pick) return { kind: pick.kind, codec: pick.codec, ok: true, error: null, device: pick.device ?? null, tried };
  const kind = want === "auto" ? "software" : want;
  const why = tried.find((t) => t.kind === kind)?.reason ?? "not tried";
  const error =
    want === "auto"
      ? `no usable H.264 encoder: ${tried.map((t) => `${t.kind}: ${t.reason}`).join("; ")}`
      : `media.encoder is ${want} but ${CODECS[want]} is not usable here: ${why}`;
  return { kind, codec: CODECS[kind], ok: false, error, device: null, tried };
}

/** Lists the encoders and probes the candidates for `want` (all of AUTO_ORDER for auto, until one works). */
export async function detectEncoder(want: EncoderSetting, o: ProbeOptions): Promise<EncoderChoice> {
  const r = await run(o.ffmpegPath, ["-hide_banner", "-nostdin", "-encoders"]);
  const list = parseEncoders(r.out);
  const kinds = want === "auto" ? AUTO_ORDER : [want];
  const tried: EncoderTry[] = [];
  for (const kind of kinds) {
    const t = await probeKind(kind, list, o);
    tried.push(t);
    if (t.ok) break;
  }
  if (r.code !== 0)
    for (const t of tried) t.reason = `cannot list encoders (${lastLine(r.err) || `exit ${r.code}`}); ${t.reason}`;
  return choose(want, tried);
}

const cache = new Map<string, Promise<EncoderChoice>>();

/** detectEncoder once per ffmpeg binary and setting (devices do not come and go while the server runs). */
export function cachedEncoder(want: EncoderSetting, ffmpegPath: string): Promise<EncoderChoice> {
  const key = `${ffmpegPath}\n${want}`;
  let p = cache.get(key);
  if (!p) {
    p = detectEncoder(want, { ffmpegPath });
    cache.set(key, p);
  }
  return p;
}
