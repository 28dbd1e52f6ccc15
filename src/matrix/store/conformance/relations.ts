/** Conformance: relations recorded with their events, dropped on redaction; /relations, /threads, aggregation reads. */
import assert from "node:assert/strict";
import { event, ids, type MakeStore, seedRoom, storeTest } from "./helpers.ts";

const R = "!room:hs";
const rel = (relType: string, eventId: string, extra: Record<string, unknown> = {}) => ({
  "m.relates_to": { rel_type: relType, event_id: eventId, ...extra },
});

export function relationTests(make: MakeStore): void {
  storeTest(make, "relations: children by type, paginated both ways, recursion depth", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.message", { content: { body: "root" } }),
      event(2, R, "m.room.message", { content: { body: "t1", ...rel("m.thread", "$ev1") } }),
      event(3, R, "m.reaction", { content: rel("m.annotation", "$ev1", { key: "👍" }) }),
      event(4, R, "m.room.message", { sender: "@bob:hs", content: { body: "t2", ...rel("m.thread", "$ev1") } }),
      event(5, R, "m.reaction", { content: rel("m.annotation", "$ev2", { key: "👍" }) }),
      event(6, R, "m.room.message", { content: { body: "no rel type", "m.relates_to": { event_id: "$ev1" } } }),
      event(7, R, "m.room.message", { content: rel("m.reference", "$ev5") }),
    ]);
    const q = { roomId: R, eventId: "$ev1", dir: "b" as const, from: Number.MAX_SAFE_INTEGER, limit: 10, depth: 1 };
    assert.deepEqual(ids(await s.relations.getRelatedEvents(q)), ["$ev4", "$ev3", "$ev2"]);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, relType: "m.thread" })), ["$ev4", "$ev2"]);
    assert.deepEqual(
      ids(await s.relations.getRelatedEvents({ ...q, relType: "m.annotation", eventType: "m.reaction" })),
      ["$ev3"],
    );
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, relType: "m.thread", eventType: "x" })), []);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, limit: 1, from: 4 })), ["$ev3"]);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, dir: "f", from: 0, limit: 2 })), ["$ev2", "$ev3"]);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, dir: "f", from: 2, to: 4 })), ["$ev3"]);
    // recurse: $ev5 relates to $ev2, $ev7 to $ev5 (three levels below the root)
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, depth: 2 })), ["$ev5", "$ev4", "$ev3", "$ev2"]);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, depth: 3 })), [
      "$ev7",
      "$ev5",
      "$ev4",
      "$ev3",
      "$ev2",
    ]);
    assert.deepEqual(ids(await s.relations.getRelatedEvents({ ...q, roomId: "!other:hs" })), []);
  });

  storeTest(make, "relations: aggregation reads, thread summaries and lists, annotations, redaction", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.message", { content: { body: "root" } }),
      event(2, R, "m.room.message", { content: { body: "t1", ...rel("m.thread", "$ev1") } }),
      event(3, R, "m.reaction", { sender: "@bob:hs", content: rel("m.annotation", "$ev1", { key: "👍" }) }),
      event(4, R, "m.room.message", { sender: "@bob:hs", content: { body: "t2", ...rel("m.thread", "$ev1") } }),
      event(5, R, "m.room.message", { sender: "@bob:hs", content: { body: "root2" } }),
      event(6, R, "m.room.message", { sender: "@bob:hs", content: { body: "u", ...rel("m.thread", "$ev5") } }),
      event(7, R, "m.room.message", { content: { "m.new_content": { body: "e" }, ...rel("m.replace", "$ev1") } }),
    ]);
    const rows = await s.relations.getRelationsOf(["$ev1", "$ev5"], ["m.annotation", "m.replace"]);
    assert.deepEqual(
      rows.map((r) => [r.eventId, r.relType, r.key, r.sender, r.type, r.relatesTo, r.roomId, r.stream]),
      [
        ["$ev3", "m.annotation", "👍", "@bob:hs", "m.reaction", "$ev1", R, 3],
        ["$ev7", "m.replace", null, "@alice:hs", "m.room.message", "$ev1", R, 7],
      ],
    );
    assert.deepEqual(await s.relations.getRelationsOf([], ["m.replace"]), []);
    const sums = await s.relations.getThreadSummaries(["$ev1", "$ev5", "$ev2"], "@alice:hs");
    sums.sort((a, b) => a.rootId.localeCompare(b.rootId));
    assert.deepEqual(sums, [
      { rootId: "$ev1", count: 2, latestEventId: "$ev4", latestStream: 4, participated: true },
      { rootId: "$ev5", count: 1, latestEventId: "$ev6", latestStream: 6, participated: false },
    ]);
    const all = { roomId: R, before: Number.MAX_SAFE_INTEGER, limit: 10 };
    assert.deepEqual(await s.relations.getThreads(all), [
      { rootId: "$ev5", latestStream: 6 },
      { rootId: "$ev1", latestStream: 4 },
    ]);
    assert.deepEqual(await s.relations.getThreads({ ...all, before: 6 }), [{ rootId: "$ev1", latestStream: 4 }]);
    assert.deepEqual(await s.relations.getThreads({ ...all, limit: 1 }), [{ rootId: "$ev5", latestStream: 6 }]);
    // alice replied in $ev1's thread; carol in none; bob started $ev5's and replied in $ev1's
    assert.deepEqual(await s.relations.getThreads({ ...all, participant: "@alice:hs" }), [
      { rootId: "$ev1", latestStream: 4 },
    ]);
    assert.deepEqual(await s.relations.getThreads({ ...all, participant: "@carol:hs" }), []);
    assert.equal((await s.relations.getThreads({ ...all, participant: "@bob:hs" })).length, 2);

    const replies = await s.relations.getThreadReplies([R, "!other:hs"], 2, 6, "@alice:hs", 10);
    assert.deepEqual(
      replies.map((r) => [r.eventId, r.relatesTo]),
      [
        ["$ev6", "$ev5"],
        ["$ev4", "$ev1"],
      ],
    );
    assert.deepEqual(
      (await s.relations.getThreadReplies([R], 0, 9, "@carol:hs", 1)).map((r) => r.eventId),
      ["$ev6"],
    );
    assert.deepEqual(await s.relations.getThreadReplies([], 0, 9, "@carol:hs", 1), []);

    assert.equal(await s.relations.hasAnnotation("$ev1", "@bob:hs", "m.reaction", "👍"), true);
    assert.equal(await s.relations.hasAnnotation("$ev1", "@alice:hs", "m.reaction", "👍"), false);
    assert.equal(await s.relations.hasAnnotation("$ev1", "@bob:hs", "m.reaction", "👎"), false);

    // Redacting a relation drops it: from the annotation check, the aggregations and the thread.
    await s.events.persistEvent(event(8, R, "m.room.redaction", { sender: "@bob:hs", extra: { redacts: "$ev3" } }));
    await s.events.persistEvent(event(9, R, "m.room.redaction", { extra: { redacts: "$ev4" } }));
    assert.equal(await s.relations.hasAnnotation("$ev1", "@bob:hs", "m.reaction", "👍"), false);
    assert.deepEqual(
      (await s.relations.getRelationsOf(["$ev1"], ["m.annotation", "m.replace"])).map((r) => r.eventId),
      ["$ev7"],
    );
    const [t1] = await s.relations.getThreadSummaries(["$ev1"], "@bob:hs");
    assert.deepEqual(t1, { rootId: "$ev1", count: 1, latestEventId: "$ev2", latestStream: 2, participated: false });
  });
}
