/** childEvents: which m.space.child events name a child, and the spec's order of children. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { StoredEvent } from "../store/types.ts";
import { childEvents } from "./space-hierarchy.ts";

let stream = 0;
function child(roomId: string, content: Record<string, unknown>, ts: number): StoredEvent {
  stream++;
  return {
    stream,
    eventId: `$c${stream}`,
    roomId: "!space:hs",
    type: "m.space.child",
    stateKey: roomId,
    sender: "@a:hs",
    originServerTs: ts,
    depth: stream,
    pdu: { content },
    redactedBy: null,
    txnDeviceId: null,
    txnId: null,
  };
}

const via = ["hs"];

test("children: a valid order first (by it), then origin_server_ts, then room ID", () => {
  const state = [
    child("!late:hs", { via }, 30),
    child("!b:hs", { via }, 10),
    child("!a:hs", { via }, 10),
    child("!ordered-z:hs", { via, order: "z" }, 99),
    child("!ordered-a:hs", { via, order: "a" }, 50),
    child("!too-long:hs", { via, order: "x".repeat(51) }, 1),
    child("!not-ascii:hs", { via, order: "é" }, 2),
    child("!not-string:hs", { via, order: 5 }, 3),
  ];
  assert.deepEqual(
    childEvents(state, false).map((e) => e.stateKey),
    ["!ordered-a:hs", "!ordered-z:hs", "!too-long:hs", "!not-ascii:hs", "!not-string:hs", "!a:hs", "!b:hs", "!late:hs"],
    "an invalid order counts as none",
  );
});

test("children: a non-empty via and a room ID are needed; suggested_only keeps suggested ones", () => {
  const state = [
    child("!ok:hs", { via, suggested: true }, 1),
    child("!plain:hs", { via }, 2),
    child("!empty-via:hs", { via: [] }, 3),
    child("!no-via:hs", {}, 4),
    child("!string-via:hs", { via: "hs" }, 5),
    child("not-a-room", { via }, 6),
    { ...child("!other-type:hs", { via }, 7), type: "m.space.parent" },
  ];
  assert.deepEqual(
    childEvents(state, false).map((e) => e.stateKey),
    ["!ok:hs", "!plain:hs"],
  );
  assert.deepEqual(
    childEvents(state, true).map((e) => e.stateKey),
    ["!ok:hs"],
  );
});
