/** `ami-streams stream list|status` (MCP: stream_list, stream_status): read from the running media service. */
import { z } from "zod";
import { defineOp, type OpDef } from "../../core/ops.ts";
import { type StreamStatus, streamStatusSchema } from "../status.ts";
import { encodePath, mediaRequest } from "./client.ts";
import { keyOps } from "./keys.ts";
import { streamStart, streamStop } from "./pull.ts";
import { recordStart, recordStop } from "./record.ts";
import { recordingsGet, recordingsList } from "./recordings.ts";
import { restreamAdd, restreamList, restreamRemove } from "./restream.ts";

const line = (s: StreamStatus) =>
  `${s.path}  ${s.live ? "live" : s.pull ? `pull ${s.pull.state}` : "ended"}  ${s.width && s.height ? `${s.width}x${s.height}` : "-"}  ${s.fps} fps  ${s.bitrateKbps} kb/s  ${[s.videoCodec, s.audioCodec].filter(Boolean).join("+") || "-"}  ${s.readers.total} reader(s)`;

const abrLine = (a: NonNullable<StreamStatus["abr"]>) => {
  const enc = a.encoder ? `${a.encoder.kind} (${a.encoder.codec})${a.encoder.ok ? "" : " unusable"}` : "detecting";
  const rungs = a.renditions.map((r) => `${r.name} ${r.state}${r.lastError ? ` (${r.lastError})` : ""}`);
  return `  abr: encoder ${enc}; ${rungs.join(", ")}`;
};

const webrtcLine = (w: NonNullable<StreamStatus["webrtc"]>) => {
  const r = w.reencoder;
  const enc = r
    ? `; re-encoder ${r.running ? `running (pid ${r.pid}, ${r.bitrateKbps} kb/s, ${r.viewers} viewer(s))` : "stopped"}${r.lastError ? `, last error: ${r.lastError}` : ""}`
    : "";
  const mode = w.video === "reencode" ? "re-encoded" : w.video;
  return `  webrtc: video ${mode} (${w.reason})${enc}`;
};

export const streamList = defineOp({
  name: "stream.list",
  summary: "List live media streams, recently ended ones, and pulls (with state, retries, last error)",
  input: z.object({}).strict(),
  output: z.object({ streams: z.array(streamStatusSchema) }),
  annotations: { readOnly: true, destructive: false, idempotent: true },
  human: (o) =>
    [...o.streams.flatMap((s) => [line(s), `  ${s.urls.player}`]), `${o.streams.length} stream(s)`].join("\n"),
  run: (_i, ctx) => mediaRequest(ctx, "GET", "/api/streams"),
});

export const streamStatus = defineOp({
  name: "stream.status",
  summary: "Figures for one stream: bitrate, fps, GOP, resolution, codecs, readers, bytes, frames discarded, pull",
  input: z.object({ path: z.string().min(1).describe("stream path, e.g. live/cam1") }).strict(),
  output: streamStatusSchema,
  annotations: { readOnly: true, destructive: false, idempotent: true },
  positional: ["path"],
  human: (s) =>
    [
      line(s),
      `  publisher: ${s.publisher ? `${s.publisher.protocol} ${s.publisher.remote}` : "-"}, up ${s.uptimeS} s, GOP ${s.gopFrames ?? "-"} frames`,
      `  bytes in ${s.bytesIn}, out ${s.bytesOut}, frames discarded ${s.framesDiscarded}, segments ${s.segments}`,
      ...(s.pull
        ? [
            `  pull: ${s.pull.source} ${s.pull.state}, ${s.pull.retries} retries${s.pull.lastError ? `, last error: ${s.pull.lastError}` : ""}`,
          ]
        : []),
      ...(s.recording ? [`  recording: ${s.recording.state}, ${s.recording.files} file(s) in ${s.recording.dir}`] : []),
      ...(s.restreams ?? []).map((r) => `  restream: ${r.to} ${r.state}, ${r.retries} retries`),
      ...(s.abr ? [abrLine(s.abr)] : []),
      ...(s.webrtc ? [webrtcLine(s.webrtc)] : []),
      ...(s.mesh
        ? [
            `  viewer mesh: ${s.mesh.viewers} viewer(s), ${s.mesh.peerBytes} bytes from peers, ${s.mesh.httpBytes} over HTTP (offload ${Math.round(s.mesh.offloadRatio * 100)} %), ${s.mesh.rejected} refused by hash`,
          ]
        : []),
      `  player ${s.urls.player}`,
      ...(s.urls.master ? [`  master ${s.urls.master}`] : []),
      ...(s.urls.masterDash ? [`  master DASH ${s.urls.masterDash}`] : []),
      `  HLS ${s.urls.hls}`,
      ...(s.urls.hlsTs ? [`  HLS (MPEG-TS) ${s.urls.hlsTs}`] : []),
      `  DASH ${s.urls.dash}`,
      `  FLV ${s.urls.flv}`,
      ...(s.urls.whep ? [`  WHEP ${s.urls.whep}`] : []),
      `  RTMP ${s.urls.rtmp}`,
      ...(s.urls.rtsp ? [`  RTSP ${s.urls.rtsp}`] : []),
      ...(s.urls.srt ? [`  SRT ${s.urls.srt}`] : []),
    ].join("\n"),
  run: (i, ctx) => mediaRequest(ctx, "GET", `/api/streams/${encodePath(i.path)}`),
});

// biome-ignore lint/suspicious/noExplicitAny: ops of different input types; run() takes its input contravariantly, so only any unites them
export const mediaOps: OpDef<any, any>[] = [
  streamList,
  streamStatus,
  streamStart,
  streamStop,
  recordStart,
  recordStop,
  recordingsList,
  recordingsGet,
  restreamAdd,
  restreamRemove,
  restreamList,
  ...keyOps,
];
