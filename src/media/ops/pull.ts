/** `ami-streams stream start --source <url> [--path P]` and `stream stop <path>` (shell: ami-stream-start, astm). */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { pullStatusSchema } from "../pulls.ts";
import { encodePath, mediaRequest } from "./client.ts";

export const streamStart = defineOp({
  name: "stream.start",
  summary: "Pull a source (rtsp://, rtmp://, srt://, https://...m3u8 or a file) into a stream path",
  description:
    "The media service runs ffmpeg to pull and remux the source (H.264 + AAC, no transcoding) and publishes it on " +
    "the path (HLS, LL-HLS, DASH, RTMP play). It reconnects with backoff when the source drops, until `stream stop`. " +
    "Starts the media service when it is not running.",
  input: z
    .object({
      source: z.string().min(1).describe("source URL (rtsp://, rtmp://, srt://, https://...m3u8) or a file path"),
      path: z
        .string()
        .min(1)
        .optional()
        .describe("stream path to publish on (default: live/<last part of the source>)"),
    })
    .strict(),
  output: pullStatusSchema,
  annotations: { readOnly: false, destructive: false, idempotent: false, openWorld: true },
  human: (p) => `pulling ${p.source} into ${p.path} (${p.state}); see: ami-streams stream status ${p.path}`,
  run: (i, ctx) => mediaRequest(ctx, "POST", "/api/pulls", i, true),
});

export const streamStop = defineOp({
  name: "stream.stop",
  summary: "Stop the pull feeding a stream path (started by `stream start`)",
  input: z.object({ path: z.string().min(1).describe("stream path, e.g. live/cam1") }).strict(),
  output: pullStatusSchema,
  annotations: { readOnly: false, destructive: true, idempotent: false },
  positional: ["path"],
  human: (p) => `stopped pulling ${p.source} into ${p.path} (${p.retries} retries)`,
  run: (i, ctx) => mediaRequest(ctx, "DELETE", `/api/pulls/${encodePath(i.path)}`),
});
