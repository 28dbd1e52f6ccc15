/** The monitor's federation table: a homeserver's per-destination stats keys become rows, the rest stay figures. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type MonitorSnapshot, splitFederationStats } from "./collect.ts";
import { renderFrame } from "./render.ts";

test("per-destination keys become rows (deepest queue first); other figures stay", () => {
  const { stats, federation } = splitFederationStats({
    requests_total: 7,
    federation_destinations: 2,
    federation_queued_pdus: 3,
    "federation_dest_hs2.test_queued": 0,
    "federation_dest_hs2.test_last_success_s_ago": 4,
    "federation_dest_hs2.test_backoff_s": 0,
    "federation_dest_dead.test:8448_queued": 3,
    "federation_dest_dead.test:8448_last_success_s_ago": -1,
    "federation_dest_dead.test:8448_backoff_s": 120,
  });
  assert.deepEqual(stats, { requests_total: 7, federation_destinations: 2, federation_queued_pdus: 3 });
  assert.deepEqual(federation, [
    { destination: "dead.test:8448", queued: 3, lastSuccessSAgo: null, backoffS: 120 },
    { destination: "hs2.test", queued: 0, lastSuccessSAgo: 4, backoffS: 0 },
  ]);
  assert.deepEqual(splitFederationStats({ a: 1 }), { stats: { a: 1 }, federation: [] });
});

test("the frame shows a federation destinations table only when there are destinations", () => {
  const row = {
    name: "matrix",
    kind: "service" as const,
    state: "running" as const,
    pid: 42,
    uptimeS: 10,
    restarts: 0,
    url: "http://127.0.0.1:1",
    cpuPercent: 1,
    rssBytes: 1024,
    ...splitFederationStats({
      requests_total: 7,
      "federation_dest_dead.test_queued": 3,
      "federation_dest_dead.test_last_success_s_ago": -1,
      "federation_dest_dead.test_backoff_s": 125,
      "federation_dest_hs2.test_queued": 0,
      "federation_dest_hs2.test_last_success_s_ago": 4,
      "federation_dest_hs2.test_backoff_s": 0,
    }),
  };
  const snap: MonitorSnapshot = {
    at: "now",
    supervisor: { running: true, pid: 1, cpuPercent: 0, rssBytes: 1 },
    services: [row],
    alerts: null,
  };
  for (const ansi of [false, true]) {
    const out = renderFrame(snap, ansi);
    assert.match(out, /DESTINATION\s+QUEUED\s+LAST SUCCESS\s+BACKOFF/);
    assert.match(out, /matrix\s+dead\.test\s+3\s+never\s+2m05s/);
    assert.match(out, /matrix\s+hs2\.test\s+0\s+4s ago\s+-/);
    assert.doesNotMatch(out, /federation_dest_/);
    assert.match(out, /requests_total=7/);
  }
  const none = renderFrame({ ...snap, services: [{ ...row, federation: [] }] }, false);
  assert.doesNotMatch(none, /DESTINATION/);
});
