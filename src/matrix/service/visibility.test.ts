import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Homeserver } from "../hs.ts";
import { event, room } from "../store/conformance/helpers.ts";
import { openStore } from "../store/open.ts";
import type { StoredEvent } from "../store/types.ts";
import {
  isVisible,
  latestVisibleEvents,
  MAX_STREAM,
  type StreamRange,
  visibleRanges,
  visibleRoomEvents,
} from "./visibility.ts";

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

test("visibleRoomEvents and latestVisibleEvents read exactly the visible events, across several ranges", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ami-vis-"));
  const store = await openStore(`sqlite:${join(dir, "v.db")}`, dir);
  try {
    const R = "!r:hs";
    await store.rooms.createRoom(room(R));
    await store.events.persistEvents(Array.from({ length: 30 }, (_, i) => event(i + 1, R, "m.room.message")));
    const hs = { store } as unknown as Homeserver;
    const all = (await store.events.getRoomEvents({ roomId: R, dir: "f", from: 0, limit: 100 })).map((e) => e.stream);
    for (const ranges of [
      [
        { lo: 2, hi: 4 },
        { lo: 10, hi: 12 },
        { lo: 20, hi: MAX_STREAM },
      ],
      [{ lo: 7, hi: 7 }],
      [],
    ]) {
      const visible = all.filter((s) => isVisible(ranges, s));
      for (const limit of [1, 2, 5, 12, 100]) {
        for (const [from, to] of [
          [MAX_STREAM, undefined],
          [25, 3],
          [11, undefined],
        ] as const) {
          const b = await visibleRoomEvents(hs, ranges, { roomId: R, dir: "b", from, to, limit });
          const wantB = visible
            .filter((s) => s < from && s > (to ?? -1))
            .reverse()
            .slice(0, limit);
          assert.deepEqual(
            b.map((e) => e.stream),
            wantB,
            `b ${JSON.stringify(ranges)} ${limit} ${from} ${to}`,
          );
          const f = await visibleRoomEvents(hs, ranges, { roomId: R, dir: "f", from: to ?? 0, to: from, limit });
          const wantF = visible.filter((s) => s > (to ?? 0) && s < from).slice(0, limit);
          assert.deepEqual(
            f.map((e) => e.stream),
            wantF,
            `f ${JSON.stringify(ranges)} ${limit} ${from} ${to}`,
          );
        }
        const windows = [
          { roomId: R, before: 31, visible: ranges },
          { roomId: R, before: 31, after: 11, visible: ranges },
          { roomId: R, before: 12 },
          { roomId: R, before: 31, after: 3, visible: ranges },
        ];
        const got = await latestVisibleEvents(hs, windows, limit);
        const want = windows.map((w) =>
          all
            .filter((s) => s < w.before && s > (w.after ?? -1) && (!w.visible || isVisible(w.visible, s)))
            .reverse()
            .slice(0, limit),
        );
        assert.deepEqual(
          got.map((l) => l.map((e) => e.stream)),
          want,
          `latest ${JSON.stringify(ranges)} ${limit}`,
        );
      }
    }
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
