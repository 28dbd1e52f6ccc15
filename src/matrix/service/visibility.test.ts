import assert from "node:assert/strict";
import { test } from "node:test";
import type { StoredEvent } from "../store/types.ts";
import { isVisible, MAX_STREAM, type StreamRange, visibleRanges } from "./visibility.ts";

const U = "@u:hs";
const ev = (stream: number, type: string, content: Record<string, any>, stateKey = ""): StoredEvent => ({
  stream,
  eventId: `$${stream}`,
  roomId: "!r:hs",
  type,
  stateKey,
  sender: "@a:hs",
  originServerTs: stream,
  depth: stream,
  pdu: { content },
  redactedBy: null,
  txnDeviceId: null,
  txnId: null,
});
const hv = (stream: number, v: string) => ev(stream, "m.room.history_visibility", { history_visibility: v });
const mem = (stream: number, m: string) => ev(stream, "m.room.member", { membership: m }, U);
const seen = (r: StreamRange[], upto: number) =>
  Array.from({ length: upto + 1 }, (_, s) => s).filter((s) => isVisible(r, s));

test("visibleRanges: the spec's rules, judged with the state before each event", () => {
  // joined: only while joined; the visibility event itself (shared before it) is seen by a later joiner.
  assert.deepEqual(
    seen(visibleRanges([hv(3, "joined")], [mem(6, "join"), mem(9, "leave"), mem(12, "join")]), 14),
    [0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14],
  );
  // A kick by someone else ends it just the same; the kick itself is visible (joined before it).
  assert.deepEqual(visibleRanges([hv(1, "joined")], [mem(2, "join"), mem(5, "ban")]), [{ lo: 0, hi: 5 }]);
  // invited: from the invite on.
  assert.deepEqual(
    seen(visibleRanges([hv(1, "invited")], [mem(4, "invite"), mem(7, "join")]), 9),
    [0, 1, 4, 5, 6, 7, 8, 9],
  );
  // shared: everything up to the last join, and after it while joined; nothing after leaving for good.
  assert.deepEqual(visibleRanges([hv(1, "shared")], [mem(5, "join"), mem(8, "leave")]), [{ lo: 0, hi: 8 }]);
  // Each event keeps the setting it was sent under: a later change to shared opens nothing earlier.
  assert.deepEqual(
    seen(visibleRanges([hv(1, "joined"), hv(6, "shared")], [mem(9, "join")]), 10),
    [0, 1, 6, 7, 8, 9, 10],
  );
  // world_readable: anyone, members or not, only while it is in force (its boundary events both ways); before
  // the first setting the default is shared, which needs a join.
  assert.deepEqual(
    seen(visibleRanges([hv(2, "world_readable"), hv(5, "joined"), hv(8, "world_readable")], []), 10),
    [2, 3, 4, 5, 8, 9, 10],
  );
  // No membership ever, not world-readable: nothing (default shared needs a join after the event).
  assert.deepEqual(visibleRanges([], []), []);
  // A rejected invite: the user's own leave is visible, nothing else of a joined room.
  assert.deepEqual(visibleRanges([hv(1, "joined")], [mem(4, "invite"), mem(6, "leave")]), [{ lo: 6, hi: 6 }]);
  assert.deepEqual(visibleRanges([hv(1, "shared")], [mem(3, "join")]), [{ lo: 0, hi: MAX_STREAM }]);
});
