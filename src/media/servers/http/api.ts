/**
 * Service endpoints: `GET /health`, `/metrics` (Prometheus text), `/_ami/stats` (key figures), and
 * `/api/streams[/<path>]` (the server asks for the token before this runs: statuses name pull sources).
 */
import { AmiError } from "../../../core/errors.ts";
import type { Target } from "../../../core/http/target.ts";
import { processMetrics } from "../../../core/metrics.ts";
import type { StreamStatus } from "../../status.ts";
import { json, type Reply } from "./reply.ts";
import { decodePath } from "./target-path.ts";

export interface ApiSource {
  statuses(): StreamStatus[];
  rtmpConnections(): number;
  startedAt: number;
}

const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, '\\"');

export function metricsText(src: ApiSource): string {
  const all = src.statuses();
  const lines: string[] = [];
  /** One series per stream of `streams` (every stream by default); nothing at all when there is none. */
  const gauge = <S extends StreamStatus>(
    name: string,
    help: string,
    type: "gauge" | "counter",
    pick: (s: S) => number,
    streams: readonly S[] = all as S[],
  ) => {
    if (streams.length === 0 && (streams as readonly StreamStatus[]) !== all) return;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const s of streams) lines.push(`${name}{path="${esc(s.path)}"} ${pick(s)}`);
  };
  lines.push("# HELP ami_media_streams Live streams (paths with a publisher).", "# TYPE ami_media_streams gauge");
  lines.push(`ami_media_streams ${all.filter((s) => s.live).length}`);
  lines.push("# HELP ami_media_rtmp_connections Open RTMP connections.", "# TYPE ami_media_rtmp_connections gauge");
  lines.push(`ami_media_rtmp_connections ${src.rtmpConnections()}`);
  gauge(
    "ami_media_stream_bitrate_bits_per_second",
    "Ingest bitrate over the last 5 s.",
    "gauge",
    (s) => s.bitrateKbps * 1000,
  );
  gauge(
    "ami_media_stream_video_frames_per_second",
    "Video frames per second over the last 5 s.",
    "gauge",
    (s) => s.fps,
  );
  gauge("ami_media_stream_readers", "Readers (RTMP players, HLS/DASH sessions).", "gauge", (s) => s.readers.total);
  gauge("ami_media_stream_bytes_in_total", "Bytes received from the publisher.", "counter", (s) => s.bytesIn);
  gauge("ami_media_stream_bytes_out_total", "Bytes sent to readers and viewers.", "counter", (s) => s.bytesOut);
  gauge(
    "ami_media_stream_frames_discarded_total",
    "Frames dropped for slow readers.",
    "counter",
    (s) => s.framesDiscarded,
  );
  type Meshed = StreamStatus & { mesh: NonNullable<StreamStatus["mesh"]> };
  const meshed = all.filter((s): s is Meshed => s.mesh !== undefined && s.mesh !== null);
  const meshGauge = (name: string, help: string, type: "gauge" | "counter", pick: (m: Meshed["mesh"]) => number) =>
    gauge<Meshed>(name, help, type, (s) => pick(s.mesh), meshed);
  meshGauge("ami_media_mesh_viewers", "Viewers in the stream's viewer mesh.", "gauge", (m) => m.viewers);
  meshGauge("ami_media_mesh_peer_bytes_total", "Segment bytes viewers got from peers.", "counter", (m) => m.peerBytes);
  meshGauge(
    "ami_media_mesh_http_bytes_total",
    "Segment bytes mesh viewers got over HTTP.",
    "counter",
    (m) => m.httpBytes,
  );
  meshGauge("ami_media_mesh_rejected_total", "Peer segments refused by hash.", "counter", (m) => m.rejected);
  meshGauge("ami_media_mesh_offload_ratio", "Peer bytes / (peer + HTTP bytes).", "gauge", (m) => m.offloadRatio);
  lines.push(...processMetrics());
  return `${lines.join("\n")}\n`;
}

export function statsJson(src: ApiSource): Record<string, unknown> {
  const all = src.statuses();
  const sum = (pick: (s: StreamStatus) => number) => all.reduce((a, s) => a + pick(s), 0);
  return {
    streams: all.filter((s) => s.live).length,
    rtmp_connections: src.rtmpConnections(),
    readers: sum((s) => s.readers.total),
    bitrate_kbps_in: sum((s) => (s.live ? s.bitrateKbps : 0)),
    bytes_in_total: sum((s) => s.bytesIn),
    bytes_out_total: sum((s) => s.bytesOut),
    frames_discarded_total: sum((s) => s.framesDiscarded),
    ...meshTotals(all),
    uptime_s: Math.round((Date.now() - src.startedAt) / 1000),
    per_stream: all.map((s) => ({
      path: s.path,
      live: s.live,
      bitrate_kbps: s.bitrateKbps,
      fps: s.fps,
      gop_frames: s.gopFrames,
      resolution: s.width && s.height ? `${s.width}x${s.height}` : null,
      video_codec: s.videoCodec,
      audio_codec: s.audioCodec,
      readers: s.readers.total,
      bytes_in: s.bytesIn,
      bytes_out: s.bytesOut,
      frames_discarded: s.framesDiscarded,
      mesh: s.mesh ?? null,
    })),
  };
}

/** The viewer mesh over every stream, as flat numbers the monitor shows (none while no swarm exists). */
function meshTotals(all: StreamStatus[]): Record<string, number> {
  const m = all.flatMap((s) => (s.mesh ? [s.mesh] : []));
  if (m.length === 0) return {};
  const peer = m.reduce((a, x) => a + x.peerBytes, 0);
  const http = m.reduce((a, x) => a + x.httpBytes, 0);
  return {
    mesh_viewers: m.reduce((a, x) => a + x.viewers, 0),
    mesh_peer_bytes_total: peer,
    mesh_http_bytes_total: http,
    mesh_rejected_total: m.reduce((a, x) => a + x.rejected, 0),
    mesh_offload_ratio: peer + http > 0 ? Math.round((peer / (peer + http)) * 1000) / 1000 : 0,
  };
}

export function apiRoute(t: Target, src: ApiSource): Reply | undefined {
  const pathname = t.pathname;
  if (pathname === "/health") return json(200, { ok: true });
  if (pathname === "/metrics") {
    return { status: 200, type: "text/plain; version=0.0.4", body: Buffer.from(metricsText(src)) };
  }
  if (pathname === "/_ami/stats") return json(200, statsJson(src));
  if (pathname === "/api/streams") return json(200, { streams: src.statuses() });
  if (pathname.startsWith("/api/streams/")) {
    const path = decodePath(pathname.slice("/api/streams/".length));
    const s = src.statuses().find((x) => x.path === path);
    if (!s) throw new AmiError("M_NOT_FOUND", `no stream at '${path}'`);
    return json(200, s);
  }
  if (pathname.startsWith("/api/") || pathname.startsWith("/_ami/"))
    throw new AmiError("M_UNRECOGNIZED", "unknown endpoint");
  return undefined;
}
