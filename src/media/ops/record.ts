/**
 * `ami-streams stream record start|stop --path P`: segmented MP4 files with retention, written by the media service;
 * finished files go into the content-addressed store (read one back with `ami-streams cas get <id> --out f.mp4`).
 */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { recordingStatusSchema } from "../recordings.ts";
import { encodePath, mediaRequest } from "./client.ts";

const input = z.object({ path: z.string().min(1).describe("stream path, e.g. live/cam1") }).strict();

export const recordStart = defineOp({
  name: "stream.record.start",
  summary: "Record a stream path to segmented MP4 files (follows the path across publishers until stopped)",
  input,
  output: recordingStatusSchema,
  annotations: { readOnly: false, destructive: false, idempotent: true },
  positional: ["path"],
  human: (r) => `recording ${r.path} (${r.state}) into ${r.dir}`,
  run: (i, ctx) => mediaRequest(ctx, "POST", "/api/recordings", i, true),
});

export const recordStop = defineOp({
  name: "stream.record.stop",
  summary: "Stop recording a stream path (the last file is finished and kept); lists the files and their store ids",
  input,
  output: recordingStatusSchema,
  annotations: { readOnly: false, destructive: false, idempotent: false },
  positional: ["path"],
  human: (r) =>
    [
      `stopped recording ${r.path}: ${r.files} file(s), ${r.bytes} bytes (${r.stored} in the content-addressed store, the rest in ${r.dir})`,
      ...r.segments.map((s) => `  ${s.name}  ${String(s.bytes).padStart(10)}  ${s.id ?? "(plain file)"}`),
    ].join("\n"),
  run: (i, ctx) => mediaRequest(ctx, "DELETE", `/api/recordings/${encodePath(i.path)}`),
});
