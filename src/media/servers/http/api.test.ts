/** The viewer mesh's figures in /metrics and /_ami/stats (the monitor reads the flat `mesh_*` numbers). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StreamStatus } from "../../status.ts";
import { metricsText, statsJson } from "./api.ts";

const stream = (path: string, mesh: StreamStatus["mesh"]) =>
  ({ path, live: true, readers: { total: 0, byProtocol: {} }, mesh }) as unknown as StreamStatus;

test("mesh figures per stream in /metrics and as totals in /_ami/stats", () => {
  const src = {
    statuses: () => [
      stream("live/a", { viewers: 3, peerBytes: 300, httpBytes: 100, rejected: 1, offloadRatio: 0.75 }),
      stream("live/b", { viewers: 1, peerBytes: 0, httpBytes: 400, rejected: 0, offloadRatio: 0 }),
      stream("live/c", null),
    ],
    rtmpConnections: () => 0,
    startedAt: Date.now(),
  };
  const text = metricsText(src);
  assert.match(text, /^ami_media_mesh_offload_ratio\{path="live\/a"\} 0\.75$/m);
  assert.match(text, /^ami_media_mesh_peer_bytes_total\{path="live\/b"\} 0$/m);
  assert.doesNotMatch(text, /ami_media_mesh_\w+\{path="live\/c"\}/);
  const s = statsJson(src);
  assert.equal(s.mesh_viewers, 4);
  assert.equal(s.mesh_peer_bytes_total, 300);
  assert.equal(s.mesh_http_bytes_total, 500);
  assert.equal(s.mesh_offload_ratio, 0.375);
  assert.equal(s.mesh_rejected_total, 1);
});

test("no mesh figures while no stream has a swarm", () => {
  const src = { statuses: () => [stream("live/c", null)], rtmpConnections: () => 0, startedAt: Date.now() };
  assert.doesNotMatch(metricsText(src), /ami_media_mesh_/);
  assert.equal(statsJson(src).mesh_viewers, undefined);
});
