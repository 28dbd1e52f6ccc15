/**
 * The DAG migration's fixture and check, for each backend's test file: two linear rooms as the schema before the
 * DAG stored them (events with their PDUs' prev_events/auth_events, state in state_history, no DAG rows).
 */
import assert from "node:assert/strict";
import { stateKey } from "../../events/auth.ts";
import type { Store } from "../types.ts";

const pdu = (prev: string[], auth: string[], content: object = {}) =>
  JSON.stringify({ prev_events: prev, auth_events: auth, content });

/** [stream, room, event ID, type, state key, PDU JSON] in stream order. */
export const LINEAR_ROOMS: [number, string, string, string, string | null, string][] = [
  [1, "!a:hs", "$c", "m.room.create", "", pdu([], [])],
  [2, "!a:hs", "$m", "m.room.member", "@a:hs", pdu(["$c"], ["$c"])],
  [3, "!a:hs", "$p", "m.room.power_levels", "", pdu(["$m"], ["$c", "$m"])],
  [4, "!a:hs", "$t1", "m.room.message", null, pdu(["$p"], ["$c", "$m", "$p"], { body: "nul \u0000 ok" })],
  [5, "!a:hs", "$t2", "m.room.topic", "", pdu(["$t1"], ["$c", "$m", "$p"])],
  [6, "!a:hs", "$t3", "m.room.message", null, pdu(["$t2"], ["$c", "$m", "$p"])],
  [10, "!b:hs", "$bc", "m.room.create", "", pdu([], [])],
  [11, "!b:hs", "$bm", "m.room.member", "@a:hs", JSON.stringify({ prev_events: "junk", auth_events: [7, "$bc"] })],
];

export async function checkDagBackfill(s: Store): Promise<void> {
  assert.deepEqual(await s.dag.getForwardExtremities("!a:hs"), [{ eventId: "$t3", depth: 6 }]);
  assert.deepEqual(await s.dag.getForwardExtremities("!b:hs"), [{ eventId: "$bm", depth: 11 }]);
  assert.deepEqual(await s.dag.getPrevEvents(["$t1", "$c", "$bm"]), new Map([["$t1", ["$p"]]]), "junk is skipped");
  assert.deepEqual(
    await s.dag.getAuthEvents(["$p", "$bm"]),
    new Map([
      ["$p", ["$c", "$m"]],
      ["$bm", ["$bc"]],
    ]),
  );
  assert.deepEqual(await s.dag.getAuthChain(["$t3"]), ["$c", "$m", "$p"]);
  // State: read from state_history until a head load backfills the extremity's groups.
  const upToP = new Map([
    [stateKey("m.room.create", ""), "$c"],
    [stateKey("m.room.member", "@a:hs"), "$m"],
    [stateKey("m.room.power_levels", ""), "$p"],
  ]);
  assert.deepEqual(await s.dag.getStateIdsAtEvent("$t1", "after"), upToP);
  const full = new Map(upToP).set(stateKey("m.room.topic", ""), "$t2");
  assert.deepEqual(await s.dag.getStateIdsAtEvent("$t2", "after"), full);
  assert.deepEqual(await s.dag.ensureEventStateGroups("$t3"), { before: -6, after: -6, afterChain: 0 });
  assert.deepEqual(await s.dag.getStateIdsAtEvent("$t3", "before"), full);
  // What clients read is as before.
  assert.deepEqual(
    (await s.events.getCurrentState("!a:hs")).map((e) => e.eventId),
    ["$c", "$m", "$p", "$t2"],
  );
}
