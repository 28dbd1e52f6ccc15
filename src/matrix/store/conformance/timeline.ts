/** Conformance: getRoomEvents in both directions, bounds, limits and every filter. */
import assert from "node:assert/strict";
import type { RoomEventQuery, Store } from "../types.ts";
import { batchedReadTests } from "./batched.ts";
import { event, type MakeStore, seedRoom, storeTest, streams } from "./helpers.ts";

const R = "!room:hs";
const MAX = Number.MAX_SAFE_INTEGER;

/** Streams 1..12 in R (and a second room interleaved) with varied types, senders and urls. */
async function seed(s: Store): Promise<void> {
  await seedRoom(s, R, [
    event(1, R, "m.room.create", { stateKey: "" }),
    event(2, R, "m.room.message", { sender: "@alice:hs", content: { body: "a" } }),
    event(3, R, "m.room.message", { sender: "@bob:hs", content: { body: "img", url: "mxc://hs/1" } }),
  ]);
  await seedRoom(s, "!other:hs", [event(4, "!other:hs", "m.room.message")]);
  for (const e of [
    event(5, R, "m.reaction", { sender: "@bob:hs" }),
    event(6, R, "m.room.encrypted", { sender: "@carol:hs" }),
    event(7, R, "m.room.message", { sender: "@carol:hs", content: { url: 42 } }), // not a string: no url
    event(8, R, "m.room.name", { stateKey: "", sender: "@alice:hs" }),
    event(9, R, "m.a_b", { sender: "@alice:hs" }),
    event(10, R, "m.aXb", { sender: "@alice:hs" }),
    event(11, R, "m.room.message", { sender: "@bob:hs", content: { url: "mxc://hs/2" } }),
    event(12, R, "x.50%", { sender: "@bob:hs" }),
    event(13, "!other:hs", "m.room.message"),
  ])
    await s.events.persistEvent(e);
}

export function timelineTests(make: MakeStore): void {
  // The many-room reads /sync uses are held to the one-room reads above and in events.ts.
  batchedReadTests(make);

  const q = (s: Store, over: Partial<RoomEventQuery>) =>
    s.events.getRoomEvents({ roomId: R, dir: "b", from: MAX, limit: 100, ...over }).then(streams);

  storeTest(
    make,
    "getEventNearTimestamp: closest by origin_server_ts either way, ties by stream, in range",
    async (s) => {
      const at = (stream: number, ts: number, roomId = R) =>
        event(stream, roomId, "m.room.message", { extra: { origin_server_ts: ts } });
      // Timestamps out of stream order (clocks are not monotonic), a tie at 200, another room in between.
      await seedRoom(s, R, [at(1, 100), at(2, 300), at(3, 200), at(4, 200)]);
      await seedRoom(s, "!other:hs", [at(5, 250, "!other:hs")]);
      await s.events.persistEvent(at(6, 400));
      const near = (ts: number, dir: "f" | "b", lo = 0, hi = MAX) =>
        s.events.getEventNearTimestamp({ roomId: R, ts, dir, lo, hi }).then((e) => e?.stream ?? null);
      assert.equal(await near(150, "f"), 3, "first at or after 150: ts 200, lower stream");
      assert.equal(await near(250, "b"), 4, "last at or before 250: ts 200, higher stream");
      assert.equal(await near(200, "f"), 3);
      assert.equal(await near(300, "f"), 2, "an exact match counts");
      assert.equal(await near(99, "b"), null);
      assert.equal(await near(401, "f"), null);
      assert.equal(await near(0, "f"), 1);
      assert.equal(await near(250, "b", 0, 3), 3, "the range's upper end is inclusive");
      assert.equal(await near(150, "f", 4, MAX), 4, "the range's lower end is inclusive");
      assert.equal(await near(350, "f", 0, 5), null, "nothing after ts 350 within streams 0..5");
      const other = await s.events.getEventNearTimestamp({ roomId: "!other:hs", ts: 0, dir: "f", lo: 0, hi: MAX });
      assert.equal(other?.eventId, "$ev5");
    },
  );

  storeTest(make, "stateOnly events: in state, memberships and state history, never in a timeline read", async (s) => {
    // A room joined over federation: its earlier state (streams 1-5) arrives as state-only events, then the join.
    const only = (e: ReturnType<typeof event>) => ({ ...e, stateOnly: true });
    await s.rooms.createRoom({ roomId: R, version: "10", creator: "@alice:hs", createdTs: 1, isPublic: false });
    await s.events.persistEvents([
      only(event(1, R, "m.room.create", { stateKey: "" })),
      only(event(2, R, "m.room.member", { stateKey: "@alice:hs", content: { membership: "join" } })),
      only(event(3, R, "m.room.name", { stateKey: "", content: { name: "world" } })),
    ]);
    await s.events.persistEvent(
      only(
        event(4, R, "m.room.topic", {
          stateKey: "",
          content: { topic: "world", "m.relates_to": { rel_type: "m.thread", event_id: "$ev1" } },
        }),
      ),
    );
    await s.events.persistEvent(
      only(event(5, R, "m.room.member", { stateKey: "@bob:hs", content: { membership: "join" } })),
    );
    await s.events.persistEvent(
      event(6, R, "m.room.member", { stateKey: "@me:hs", sender: "@me:hs", content: { membership: "join" } }),
    );
    await s.events.persistEvent(event(7, R, "m.room.message", { content: { body: "world" } }));
    assert.deepEqual(await q(s, {}), [7, 6], "backwards: the timeline starts at the join");
    assert.deepEqual(await q(s, { dir: "f", from: 0 }), [6, 7]);
    const [latest] = await s.events.getLatestEventsPerRoom([{ roomId: R, before: MAX }], 10);
    assert.deepEqual(streams(latest), [7, 6]);
    assert.equal((await s.events.getLatestEvent(R))?.stream, 7);
    assert.equal(await s.events.countEvents(R, 0, 7, "@me:hs", ["m.room.member", "m.room.name"]), 0);
    assert.deepEqual(await s.events.countEventsPerRoom([{ roomId: R, after: 0, upto: 7 }], "@x:hs", ["*"]), [2]);
    const near = await s.events.getEventNearTimestamp({ roomId: R, ts: 0, dir: "f", lo: 0, hi: MAX });
    assert.equal(near?.stream, 6);
    const search = await s.search.searchEvents({
      words: ["world"],
      spans: [{ roomId: R, lo: 0, hi: MAX }],
      keys: ["content.body", "content.name", "content.topic"],
      orderBy: "recent",
      limit: 10,
    });
    assert.deepEqual(
      search.hits.map((h) => h.event.stream),
      [7],
    );
    assert.deepEqual(
      (
        await s.relations.getRelatedEvents({ roomId: R, eventId: "$ev1", dir: "b", from: MAX, limit: 10, depth: 1 })
      ).map((e) => e.eventId),
      [],
      "no relations",
    );
    // State reads see them.
    assert.deepEqual(streams(await s.events.getCurrentState(R)), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(streams(await s.events.getStateAt(R, 5)), [1, 2, 3, 4, 5]);
    const [at] = await s.events.getStatesAt([{ roomId: R, stream: 5 }]);
    assert.deepEqual(streams(at), [1, 2, 3, 4, 5]);
    assert.equal((await s.events.getMembership(R, "@bob:hs"))?.membership, "join");
    assert.equal((await s.events.getEvent("$ev3"))?.stream, 3, "read by ID");
  });

  storeTest(make, "getRoomEvents: directions, exclusive from/to, limit", async (s) => {
    await seed(s);
    assert.deepEqual(await q(s, {}), [12, 11, 10, 9, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(await q(s, { dir: "f", from: 0 }), [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert.deepEqual(await q(s, { from: 8, limit: 3 }), [7, 6, 5]);
    assert.deepEqual(await q(s, { dir: "f", from: 3, limit: 3 }), [5, 6, 7]);
    assert.deepEqual(await q(s, { from: 8, to: 3 }), [7, 6, 5]);
    assert.deepEqual(await q(s, { dir: "f", from: 3, to: 8 }), [5, 6, 7]);
    assert.deepEqual(await q(s, { dir: "f", from: 3, to: 4 }), []);
    assert.deepEqual(await q(s, { from: 1 }), []);
    assert.deepEqual(await q(s, { dir: "f", from: 12 }), []);
    assert.deepEqual(await q(s, { limit: 0 }), []);
    assert.deepEqual(await q(s, { roomId: "!none:hs" }), []);
  });

  storeTest(make, "getRoomEvents: paging in either direction yields the whole timeline once", async (s) => {
    await seed(s);
    const back: number[] = [];
    for (let from = MAX; ; ) {
      const page = await q(s, { from, limit: 4 });
      if (page.length === 0) break;
      back.push(...page);
      from = page[page.length - 1];
    }
    const fwd: number[] = [];
    for (let from = 0; ; ) {
      const page = await q(s, { dir: "f", from, limit: 4 });
      if (page.length === 0) break;
      fwd.push(...page);
      from = page[page.length - 1];
    }
    assert.deepEqual(back, [12, 11, 10, 9, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(fwd, [...back].reverse());
  });

  storeTest(make, "getRoomEvents: types and notTypes, exact and with * wildcards", async (s) => {
    await seed(s);
    assert.deepEqual(await q(s, { types: ["m.room.message"] }), [11, 7, 3, 2]);
    assert.deepEqual(await q(s, { types: ["m.room.message", "m.reaction"] }), [11, 7, 5, 3, 2]);
    assert.deepEqual(await q(s, { types: ["m.room.*"] }), [11, 8, 7, 6, 3, 2, 1]);
    assert.deepEqual(await q(s, { types: ["*"] }), [12, 11, 10, 9, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(await q(s, { types: ["m.a_b"] }), [9], "_ is literal");
    assert.deepEqual(await q(s, { types: ["m.a_*"] }), [9], "_ is literal in a pattern too");
    assert.deepEqual(await q(s, { types: ["x.50%*"] }), [12]);
    assert.deepEqual(await q(s, { types: ["*%"] }), [12], "% is literal");
    assert.deepEqual(await q(s, { types: ["M.ROOM.*"] }), [], "types are case-sensitive");
    assert.deepEqual(await q(s, { types: ["m.reaction", "m.room.e*"] }), [6, 5]);
    assert.deepEqual(await q(s, { types: [] }), [], "an empty types list matches nothing");
    assert.deepEqual(await q(s, { notTypes: ["m.room.*"] }), [12, 10, 9, 5]);
    assert.deepEqual(await q(s, { notTypes: ["m.room.message", "x.*"] }), [10, 9, 8, 6, 5, 1]);
    assert.deepEqual(await q(s, { notTypes: [] }), [12, 11, 10, 9, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(await q(s, { types: ["m.room.*"], notTypes: ["m.room.message"] }), [8, 6, 1]);
  });

  storeTest(make, "getRoomEvents: senders, notSenders, containsUrl, combined with bounds and limit", async (s) => {
    await seed(s);
    assert.deepEqual(await q(s, { senders: ["@bob:hs"] }), [12, 11, 5, 3]);
    assert.deepEqual(await q(s, { senders: ["@bob:hs", "@carol:hs"] }), [12, 11, 7, 6, 5, 3]);
    assert.deepEqual(await q(s, { senders: [] }), []);
    assert.deepEqual(await q(s, { notSenders: ["@alice:hs", "@bob:hs"] }), [7, 6]);
    assert.deepEqual(await q(s, { notSenders: [] }), [12, 11, 10, 9, 8, 7, 6, 5, 3, 2, 1]);
    assert.deepEqual(await q(s, { containsUrl: true }), [11, 3]);
    assert.deepEqual(await q(s, { containsUrl: false }), [12, 10, 9, 8, 7, 6, 5, 2, 1]);
    assert.deepEqual(
      await q(s, { types: ["m.room.message"], containsUrl: false, senders: ["@carol:hs", "@alice:hs"] }),
      [7, 2],
    );
    assert.deepEqual(await q(s, { types: ["m.room.message"], notSenders: ["@carol:hs"], from: 11, limit: 1 }), [3]);
    assert.deepEqual(await q(s, { dir: "f", from: 0, to: 11, senders: ["@bob:hs"], limit: 2 }), [3, 5]);
    assert.deepEqual(await q(s, { dir: "f", from: 5, notTypes: ["m.room.*", "m.a*"], limit: 2 }), [12]);
  });
}
