import assert from "node:assert/strict";
import { test } from "node:test";
import { renderFrame } from "./render.ts";

const base = {
  at: "2026-12-07T00:00:00.000Z",
  supervisor: { running: true, pid: 1, cpuPercent: 0.5, rssBytes: 1e6 },
  services: [],
};

test("the frame shows the supervisor's alert counts", () => {
  assert.match(
    renderFrame({ ...base, alerts: { firing: 2, acked: 1, total: 5 } }, false),
    /alerts: 2 firing \(1 acked\)/,
  );
  assert.match(renderFrame({ ...base, alerts: { firing: 0, acked: 0, total: 0 } }, false), /alerts: 0 firing\n/);
  assert.doesNotMatch(renderFrame({ ...base, alerts: null }, false), /alerts:/);
});
