/** The monitor's edge-function table: the edge service's `fn_<name>_*` keys become rows, the rest stay figures. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { splitFunctionStats } from "./functions.ts";
import { renderFrame } from "./render.ts";

test("per-function keys become rows (busiest first); other figures stay; the frame shows the table", () => {
  const { stats, functions } = splitFunctionStats({
    functions: 2,
    invocations: 12,
    "fn_a-1_invocations": 2,
    "fn_a-1_errors": 1,
    "fn_a-1_cpu_ms": 30,
    "fn_a-1_p99_ms": 4.5,
    "fn_a-1_rss_bytes": 0,
    fn_busy_invocations: 10,
    fn_busy_errors: 0,
    fn_busy_cpu_ms: 120,
    fn_busy_p99_ms: 1.25,
    fn_busy_rss_bytes: 60 * 1024 * 1024,
  });
  assert.deepEqual(stats, { functions: 2, invocations: 12 });
  assert.deepEqual(
    functions.map((f) => [f.function, f.invocations, f.errors, f.cpuMs, f.rssBytes]),
    [
      ["busy", 10, 0, 120, 60 * 1024 * 1024],
      ["a-1", 2, 1, 30, 0],
    ],
  );
  const frame = renderFrame(
    {
      at: "t",
      supervisor: { running: true, pid: 1, cpuPercent: 0, rssBytes: 0 },
      alerts: null,
      services: [
        {
          name: "edge",
          kind: "service",
          state: "running",
          pid: 2,
          uptimeS: 1,
          restarts: 0,
          url: "u",
          cpuPercent: 0,
          rssBytes: 0,
          stats,
          federation: [],
          functions,
        },
      ],
    },
    false,
  );
  assert.match(frame, /edge functions \(busiest first\)/);
  assert.match(frame, /edge\s+busy\s+10\s+0\s+120 ms\s+1\.25 ms/);
  assert.match(frame, /a-1\s+2\s+1\s+30 ms\s+4\.50 ms\s+idle/);
  assert.doesNotMatch(frame, /fn_busy/);
});
