/**
 * `ami-streams stream recordings list|get`: what a path has recorded, and a time range of it as one MP4 file,
 * from the running media service's playback endpoints (servers/http/playback.ts; the control token authorizes).
 */
import { createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { AmiError, type ErrorCode } from "../../core/errors.ts";
import { defineOp, type OpContext } from "../../core/ops.ts";
import { NOT_RUNNING, send } from "./client.ts";

const path = z.string().min(1).describe("stream path, e.g. live/cam1");
const time = (what: string) => z.string().min(1).describe(`${what} (RFC 3339, e.g. 2026-12-06T23:20:00Z)`);

const spanSchema = z.object({
  start: z.string().describe("RFC 3339"),
  duration: z.number().describe("seconds"),
  url: z.string().describe("GET it for the span as one fragmented MP4"),
});

async function playback(ctx: OpContext, what: string, q: Record<string, string | undefined>): Promise<Response> {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined) u.set(k, v);
  let res: Response;
  try {
    res = await send(ctx, "GET", `/_ami/playback/${what}?${u}`);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
  }
  if (res.ok) return res;
  const j = (await res.json().catch(() => ({}))) as { errcode?: string; error?: string };
  const code = (typeof j.errcode === "string" ? j.errcode : "AMI_UNAVAILABLE") as ErrorCode;
  throw new AmiError(code, j.error ?? `media answered ${res.status}`, {}, res.status);
}

export const recordingsList = defineOp({
  name: "stream.recordings.list",
  summary: "List what a path has recorded: contiguous spans (start, duration) and a URL that plays each",
  input: z.object({ path, start: time("from").optional(), end: time("until").optional() }).strict(),
  output: z.object({ path: z.string(), spans: z.array(spanSchema) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["path"],
  human: (o) =>
    [
      ...o.spans.map((s) => `${s.start}  ${s.duration.toFixed(3).padStart(10)} s`),
      `${o.spans.length} span(s) recorded for ${o.path}`,
    ].join("\n"),
  async run(i, ctx) {
    const res = await playback(ctx, "list", i);
    return { path: i.path, spans: (await res.json()) as z.infer<typeof spanSchema>[] };
  },
});

export const recordingsGet = defineOp({
  name: "stream.recordings.get",
  summary:
    "Write a time range of a path's recordings to --out as one MP4 (fragmented, or progressive with --format mp4; from the keyframe at or before --start)",
  input: z
    .object({
      path,
      start: time("range start"),
      duration: z.coerce.number().positive().max(86_400).describe("seconds"),
      out: z.string().min(1).describe("write the MP4 to this file (replaced atomically)"),
      format: z
        .enum(["fmp4", "mp4"])
        .default("fmp4")
        .describe("fmp4: fragmented MP4; mp4: progressive MP4 (moov first, one mdat), for tools that want one"),
    })
    .strict(),
  output: z.object({ path: z.string(), start: z.string(), duration: z.number(), bytes: z.number(), out: z.string() }),
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["path"],
  human: (r) => `${r.bytes} byte(s) of ${r.path} from ${r.start} (${r.duration} s) written to ${r.out}`,
  async run(i, ctx) {
    const res = await playback(ctx, "get", {
      path: i.path,
      start: i.start,
      duration: String(i.duration),
      format: i.format,
    });
    const total = Number(res.headers.get("content-length") ?? 0) || undefined;
    const dest = resolve(i.out);
    const tmp = join(dirname(dest), `.${process.pid}-${Date.now()}.recording.tmp`);
    let bytes = 0;
    const body = res.body as unknown as AsyncIterable<Uint8Array>;
    const counted = async function* () {
      for await (const b of body) {
        bytes += b.length;
        ctx.progress(bytes, total, "bytes");
        yield b;
      }
    };
    try {
      await pipeline(Readable.from(counted()), createWriteStream(tmp, { flags: "wx" }), { signal: ctx.signal });
      if (total !== undefined && bytes !== total) throw new AmiError("AMI_UNAVAILABLE", "the recording was cut short");
      await rename(tmp, dest);
    } catch (e) {
      await unlink(tmp).catch(() => {});
      throw e;
    }
    return { path: i.path, start: i.start, duration: i.duration, bytes, out: dest };
  },
});
