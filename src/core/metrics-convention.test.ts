/**
 * Every service's Prometheus exposition (built from the same code its /metrics serves, with figures in every
 * family) parses strictly and follows the convention. The e2e alerts test checks the live endpoints too.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { supervisorMetrics } from "../control/metrics.ts";
import { Metrics } from "../matrix/metrics.ts";
import { metricsText } from "../media/servers/http/api.ts";
import type { StreamStatus } from "../media/status.ts";
import { conventionProblems } from "../test/metrics-convention.ts";
import { WebMetrics } from "../web/server.ts";
import { family } from "./metrics.ts";

test("matrix /metrics follows the convention", () => {
  const m = new Metrics();
  m.observeRequest(200, 3);
  m.observeRequest(502, 30);
  m.federation = () => [
    {
      destination: 'odd"name\\x',
      queuedPdus: 2,
      queuedEdus: 1,
      lastSuccessTs: Date.now(),
      backoffUntil: null,
      dropped: 0,
    } as never,
  ];
  assert.deepEqual(conventionProblems(m.prometheus(), "matrix"), []);
});

test("media /metrics follows the convention", () => {
  const s = {
    path: 'live/"cam"',
    live: true,
    bitrateKbps: 2500,
    fps: 30,
    readers: { total: 2 },
    bytesIn: 10,
    bytesOut: 20,
    framesDiscarded: 0,
  } as unknown as StreamStatus;
  const text = metricsText({ statuses: () => [s], rtmpConnections: () => 1, startedAt: Date.now() });
  assert.deepEqual(conventionProblems(text, "media"), []);
  assert.match(text, /ami_media_stream_bitrate_bits_per_second\{path="live\/\\"cam\\""\} 2500000/);
});

test("web and supervisor /metrics follow the convention", () => {
  const w = new WebMetrics();
  w.observe(200);
  w.observe(404);
  assert.deepEqual(conventionProblems(w.prometheus(), "web"), []);
  const sup = supervisorMetrics(
    {
      supervisor: { running: true, pid: 1, url: null, uptimeS: 3 },
      services: [{ name: "matrix", kind: "service", state: "running", pid: 2, uptimeS: 1, restarts: 2 } as never],
    },
    family("ami_supervisor_alerts_firing", "gauge", "Firing.", 1),
  );
  assert.deepEqual(conventionProblems(sup, "supervisor"), []);
});

test("the checker catches each kind of deviation", () => {
  const bad = [
    "# HELP ami_matrix_latency_ms x\n# TYPE ami_matrix_latency_ms gauge\nami_matrix_latency_ms 1\n",
    "# HELP ami_matrix_requests x\n# TYPE ami_matrix_requests counter\nami_matrix_requests 1\n",
    "# HELP ami_matrix_open_total x\n# TYPE ami_matrix_open_total gauge\nami_matrix_open_total 1\n",
    "# TYPE ami_matrix_x gauge\nami_matrix_x 1\n",
    "# HELP ami_matrix_x x\nami_matrix_x 1\n",
    "# HELP ami_web_x x\n# TYPE ami_web_x gauge\nami_web_x 1\n",
    '# HELP ami_matrix_x x\n# TYPE ami_matrix_x gauge\nami_matrix_x{code="200"} 1\n',
    '# HELP ami_matrix_x x\n# TYPE ami_matrix_x gauge\nami_matrix_x{status="ok"} 1\n',
    "ami_matrix_x{ 1\n",
  ];
  for (const t of bad) assert.notDeepEqual(conventionProblems(t, "matrix"), [], t);
});
