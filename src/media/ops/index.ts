/** `ami-streams stream list|status` (MCP: stream_list, stream_status): read from the running media service. */
import { z } from "zod";
import { AmiError } from "../../core/errors.ts";
import { defineOp, type OpContext, type OpDef } from "../../core/ops.ts";
import { mediaService } from "../service.ts";
import { type StreamStatus, streamStatusSchema } from "../status.ts";

const NOT_RUNNING = "media is not running: enable it (media.enabled: true) and start it with `ami-streams media start`";

async function get<T>(ctx: OpContext, path: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(mediaService.baseUrl(ctx.config) + path, { signal: ctx.signal });
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    throw new AmiError("AMI_NOT_RUNNING", NOT_RUNNING);
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status === 404) throw new AmiError("M_NOT_FOUND", String(body.error ?? "not found"));
  if (!res.ok) throw new AmiError("AMI_UNAVAILABLE", `media answered ${res.status} for ${path}`);
  return body as T;
}

const line = (s: StreamStatus) =>
  `${s.path}  ${s.live ? "live" : "ended"}  ${s.width && s.height ? `${s.width}x${s.height}` : "-"}  ${s.fps} fps  ${s.bitrateKbps} kb/s  ${[s.videoCodec, s.audioCodec].filter(Boolean).join("+") || "-"}  ${s.readers.total} reader(s)`;

export const streamList = defineOp({
  name: "stream.list",
  summary: "List live media streams (paths with a publisher) and recently ended ones",
  input: z.object({}).strict(),
  output: z.object({ streams: z.array(streamStatusSchema) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => [...o.streams.map(line), `${o.streams.length} stream(s)`].join("\n"),
  run: (_i, ctx) => get(ctx, "/api/streams"),
});

export const streamStatus = defineOp({
  name: "stream.status",
  summary: "Figures for one stream: bitrate, fps, GOP, resolution, codecs, readers, bytes, frames discarded",
  input: z.object({ path: z.string().min(1).describe("stream path, e.g. live/cam1") }).strict(),
  output: streamStatusSchema,
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["path"],
  human: (s) =>
    [
      line(s),
      `  publisher: ${s.publisher ? `${s.publisher.protocol} ${s.publisher.remote}` : "-"}, up ${s.uptimeS} s, GOP ${s.gopFrames ?? "-"} frames`,
      `  bytes in ${s.bytesIn}, out ${s.bytesOut}, frames discarded ${s.framesDiscarded}, segments ${s.segments}`,
      `  HLS ${s.urls.hls}`,
      `  DASH ${s.urls.dash}`,
    ].join("\n"),
  run: (i, ctx) => get(ctx, `/api/streams/${i.path.split("/").map(encodeURIComponent).join("/")}`),
});

export const mediaOps: OpDef<any, any>[] = [streamList, streamStatus];
