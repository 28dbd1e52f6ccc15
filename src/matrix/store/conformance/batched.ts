/**
 * Conformance: the EventStore's batched many-room reads (getLatestEventsPerRoom, getStatesAt, getMembersOfRooms,
 * countEventsPerRoom, getStateHistories) give exactly what their one-room counterparts give, in input order.
 */
import assert from "node:assert/strict";
import type { EventFilterQuery, Store } from "../types.ts";
import { event, type MakeStore, member, seedRoom, storeTest, streams } from "./helpers.ts";

const A = "!a:hs";
const B = "!b:hs";
const C = "!c:hs"; // exists, no events
const NONE = "!none:hs"; // not in the store
const MAX = Number.MAX_SAFE_INTEGER;

/** Two rooms with interleaved streams, state changes in both, varied types/senders/urls. */
async function seed(s: Store): Promise<void> {
  await seedRoom(s, A, [event(1, A, "m.room.create", { stateKey: "" }), member(2, A, "@alice:hs", "join")]);
  await seedRoom(s, B, [event(3, B, "m.room.create", { stateKey: "", sender: "@bob:hs" })]);
  await seedRoom(s, C, []);
  for (const e of [
    member(4, B, "@bob:hs", "join"),
    member(5, A, "@bob:hs", "invite", "@alice:hs"),
    event(6, A, "m.room.message", { sender: "@alice:hs", content: { body: "x", url: "mxc://hs/1" } }),
    event(7, B, "m.room.message", { sender: "@bob:hs" }),
    event(8, A, "m.room.name", { stateKey: "", content: { name: "one" } }),
    member(9, A, "@bob:hs", "join"),
    event(10, A, "m.reaction", { sender: "@bob:hs" }),
    event(11, B, "m.room.name", { stateKey: "", sender: "@bob:hs", content: { name: "b" } }),
    event(12, A, "m.room.name", { stateKey: "", content: { name: "two" } }),
    event(13, A, "m.room.message", { sender: "@bob:hs" }),
    member(14, B, "@carol:hs", "join"),
    event(15, B, "m.room.encrypted", { sender: "@carol:hs" }),
    member(16, A, "@bob:hs", "leave"),
  ])
    await s.events.persistEvent(e);
}

export function batchedReadTests(make: MakeStore): void {
  storeTest(make, "getLatestEventsPerRoom: newest first per window, in input order, bounds and limit", async (s) => {
    await seed(s);
    const got = await s.events.getLatestEventsPerRoom(
      [
        { roomId: B, before: MAX },
        { roomId: A, before: MAX },
        { roomId: A, before: 13, after: 6 },
        { roomId: C, before: MAX },
        { roomId: NONE, before: MAX },
        { roomId: B, before: 4 },
        { roomId: A, before: 3, after: 2 },
      ],
      3,
    );
    assert.deepEqual(got.map(streams), [[15, 14, 11], [16, 13, 12], [12, 10, 9], [], [], [3], []]);
    assert.ok(got[0].every((e) => e.roomId === B) && got[1].every((e) => e.roomId === A));
    // Whole events, as getRoomEvents returns them.
    assert.deepEqual(got[1][0], (await s.events.getRoomEvents({ roomId: A, dir: "b", from: MAX, limit: 1 }))[0]);
    assert.deepEqual(await s.events.getLatestEventsPerRoom([], 5), []);
    assert.deepEqual(await s.events.getLatestEventsPerRoom([{ roomId: A, before: MAX }], 0), [[]]);
  });

  storeTest(make, "getLatestEventsPerRoom: filters match getRoomEvents", async (s) => {
    await seed(s);
    const filters: EventFilterQuery[] = [
      {},
      { types: ["m.room.message"] },
      { types: ["m.room.*"], notTypes: ["m.room.member"] },
      { types: [] },
      { notTypes: ["m.room.*"] },
      { senders: ["@bob:hs"] },
      { senders: [] },
      { notSenders: ["@alice:hs"] },
      { containsUrl: true },
      { containsUrl: false, notSenders: ["@bob:hs"] },
      { types: ["m.room.message", "m.room.encrypted"], notSenders: ["@carol:hs"] },
    ];
    const windows = [
      { roomId: A, before: MAX },
      { roomId: B, before: 15, after: 3 },
      { roomId: A, before: 12 },
    ];
    for (const f of filters) {
      for (const limit of [1, 2, 50]) {
        const got = await s.events.getLatestEventsPerRoom(windows, limit, f);
        const want = await Promise.all(
          windows.map((w) =>
            s.events.getRoomEvents({ roomId: w.roomId, dir: "b", from: w.before, to: w.after, limit, ...f }),
          ),
        );
        assert.deepEqual(got.map(streams), want.map(streams), `filter ${JSON.stringify(f)}, limit ${limit}`);
      }
    }
    assert.deepEqual((await s.events.getLatestEventsPerRoom(windows, 10, { types: ["m.room.message"] })).map(streams), [
      [13, 6],
      [7],
      [6],
    ]);
  });

  storeTest(make, "getStatesAt: getStateAt for several (room, stream) points, with and without types", async (s) => {
    await seed(s);
    const points = [
      { roomId: A, stream: 16 },
      { roomId: B, stream: 10 },
      { roomId: A, stream: 8 },
      { roomId: A, stream: 0 },
      { roomId: C, stream: 16 },
      { roomId: NONE, stream: 16 },
      { roomId: B, stream: MAX },
      { roomId: A, stream: 11 },
    ];
    for (const types of [undefined, ["m.room.member"], ["m.room.name", "m.room.create"], ["x.none"]]) {
      const got = await s.events.getStatesAt(points, types);
      const want = await Promise.all(points.map((p) => s.events.getStateAt(p.roomId, p.stream, types)));
      assert.deepEqual(got, want, `types ${JSON.stringify(types)}`);
    }
    const all = await s.events.getStatesAt(points);
    assert.deepEqual(all.map(streams), [
      [1, 2, 12, 16],
      [3, 4],
      [1, 2, 5, 8],
      [],
      [],
      [],
      [3, 4, 11, 14],
      [1, 2, 8, 9],
    ]);
    assert.deepEqual(
      await s.events.getStatesAt(points, []),
      points.map(() => []),
    );
    assert.deepEqual(await s.events.getStatesAt([]), []);
  });

  storeTest(make, "getStateHistories: every event that set each (room, type, state key), oldest first", async (s) => {
    await seed(s);
    const keys = [
      { roomId: A, type: "m.room.member", stateKey: "@bob:hs" },
      { roomId: B, type: "m.room.name", stateKey: "" },
      { roomId: A, type: "m.room.name", stateKey: "" },
      { roomId: A, type: "m.room.member", stateKey: "@carol:hs" },
      { roomId: NONE, type: "m.room.name", stateKey: "" },
      { roomId: A, type: "m.room.member", stateKey: "@bob:hs" },
      { roomId: A, type: "m.room.message", stateKey: "" },
    ];
    const got = await s.events.getStateHistories(keys);
    assert.deepEqual(got.map(streams), [[5, 9, 16], [11], [8, 12], [], [], [5, 9, 16], []]);
    // Whole events, as getEvent returns them.
    assert.deepEqual(got[0][1], await s.events.getEvent("$ev9"));
    assert.deepEqual(await s.events.getStateHistories([]), []);
  });

  storeTest(make, "getMembersOfRooms: current members of every room asked for", async (s) => {
    await seed(s);
    const got = await s.events.getMembersOfRooms([B, A, C, NONE]);
    assert.deepEqual([...got.keys()].sort(), [A, B, C, NONE].sort());
    assert.deepEqual(got.get(A), await s.events.getMembers(A));
    assert.deepEqual(got.get(B), await s.events.getMembers(B));
    assert.deepEqual(
      got.get(A)?.map((m) => [m.userId, m.membership, m.stream]),
      [
        ["@alice:hs", "join", 2],
        ["@bob:hs", "leave", 16],
      ],
    );
    assert.deepEqual(got.get(C), []);
    assert.deepEqual(got.get(NONE), []);
    assert.equal((await s.events.getMembersOfRooms([])).size, 0);
  });

  storeTest(make, "countEventsPerRoom: countEvents for several ranges", async (s) => {
    await seed(s);
    const ranges = [
      { roomId: A, after: 0, upto: 16 },
      { roomId: B, after: 3, upto: 15 },
      { roomId: A, after: 6, upto: 13 },
      { roomId: A, after: 13, upto: 6 },
      { roomId: C, after: 0, upto: 16 },
      { roomId: NONE, after: 0, upto: 16 },
    ];
    for (const [sender, types] of [
      ["@alice:hs", ["m.room.message", "m.reaction"]],
      ["@bob:hs", ["m.room.*"]],
      ["@nobody:hs", ["m.room.message", "m.room.encrypted"]],
    ] as [string, string[]][]) {
      const got = await s.events.countEventsPerRoom(ranges, sender, types);
      const want = await Promise.all(ranges.map((r) => s.events.countEvents(r.roomId, r.after, r.upto, sender, types)));
      assert.deepEqual(got, want, `${sender} ${types}`);
    }
    assert.deepEqual(
      await s.events.countEventsPerRoom(ranges, "@alice:hs", ["m.room.message", "m.reaction"]),
      [2, 1, 2, 0, 0, 0],
    );
    assert.deepEqual(await s.events.countEventsPerRoom(ranges, "@alice:hs", []), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(await s.events.countEventsPerRoom([], "@alice:hs", ["m.room.message"]), []);
  });
}
