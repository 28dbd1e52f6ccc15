/** `ami-streams stream restream add|remove|list`: push a path to RTMP/RTMPS/SRT destinations at run time. */
import { z } from "zod";
import { defineOp } from "../../core/ops.ts";
import { type RestreamStatus, restreamStatusSchema } from "../restreams.ts";
import { mediaRequest } from "./client.ts";

const input = z
  .object({
    path: z.string().min(1).describe("stream path, e.g. live/cam1"),
    to: z.string().min(1).describe("destination: rtmp://..., rtmps://... or srt://..."),
  })
  .strict();
const line = (r: RestreamStatus) =>
  `${r.path} -> ${r.to}  ${r.state}  ${r.retries} retries  ${r.bytesOut} bytes${r.lastError ? `  last error: ${r.lastError}` : ""}`;

export const restreamAdd = defineOp({
  name: "stream.restream.add",
  summary: "Push a stream path to a destination (rtmp://, rtmps://, srt://), retrying with backoff",
  input,
  output: restreamStatusSchema,
  annotations: { readOnly: false, destructive: false, idempotent: true, openWorld: true },
  human: line,
  run: (i, ctx) => mediaRequest(ctx, "POST", "/api/restreams", i, true),
});

export const restreamRemove = defineOp({
  name: "stream.restream.remove",
  summary: "Stop pushing a stream path to a destination",
  input,
  output: restreamStatusSchema,
  annotations: { readOnly: false, destructive: true, idempotent: false },
  human: line,
  run: (i, ctx) =>
    mediaRequest(ctx, "DELETE", `/api/restreams?${new URLSearchParams({ path: i.path, to: i.to }).toString()}`),
});

export const restreamList = defineOp({
  name: "stream.restream.list",
  summary: "Restream destinations with their state, retries, bytes sent and last error",
  input: z.object({ path: z.string().min(1).optional().describe("only this stream path") }).strict(),
  output: z.object({ restreams: z.array(restreamStatusSchema) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) => [...o.restreams.map(line), `${o.restreams.length} destination(s)`].join("\n"),
  run: (i, ctx) =>
    mediaRequest(ctx, "GET", `/api/restreams${i.path ? `?${new URLSearchParams({ path: i.path }).toString()}` : ""}`),
});
