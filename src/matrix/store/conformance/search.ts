/** Conformance: the SearchStore — full-text event search (index kept on write, redactions out, spans, order, pages) and the user directory. */
import assert from "node:assert/strict";
import type { EventSearchQuery, Store } from "../types.ts";
import { event, type MakeStore, member, room, seedRoom, storeTest, streams, user } from "./helpers.ts";

const R = "!room:hs";
const O = "!other:hs";
const ALL = { roomId: "", lo: 0, hi: Number.MAX_SAFE_INTEGER };
const msg = (stream: number, roomId: string, body: unknown, sender = "@alice:hs") =>
  event(stream, roomId, "m.room.message", { sender, content: { msgtype: "m.text", body } });

async function seed(s: Store): Promise<void> {
  await seedRoom(s, R, [
    event(1, R, "m.room.create", { stateKey: "" }),
    msg(2, R, "Hello world"),
    msg(3, R, "the world is round", "@bob:hs"),
    msg(4, R, "nothing here"),
    event(5, R, "m.room.name", { stateKey: "", content: { name: "World cafe" } }),
    event(6, R, "m.room.topic", { stateKey: "", content: { topic: "a worldly topic" } }),
    msg(7, R, 42), // not a string: not indexed
    msg(8, R, "worldwide world world world", "@bob:hs"),
  ]);
  await seedRoom(s, O, [msg(9, O, "world in another room")]);
  // Persisted in one batch: the batch write path indexes too.
  await s.events.persistEvents([msg(10, R, "Ünïcode wörld straße"), msg(11, R, "batched world")]);
}

const search = (s: Store, over: Partial<EventSearchQuery>) =>
  s.search.searchEvents({
    words: ["world"],
    spans: [{ ...ALL, roomId: R }],
    keys: ["content.body", "content.name", "content.topic"],
    orderBy: "recent",
    limit: 100,
    ...over,
  });

export function searchTests(make: MakeStore): void {
  storeTest(make, "searchEvents: word prefixes in body, name and topic; keys; recent order and count", async (s) => {
    await seed(s);
    const all = await search(s, {});
    assert.deepEqual(
      streams(all.hits.map((h) => h.event)),
      [11, 8, 6, 5, 3, 2],
      "prefix match (worldwide, worldly), case-insensitive, only in the spans' room",
    );
    assert.equal(all.count, 6);
    assert.deepEqual(streams((await search(s, { keys: ["content.name"] })).hits.map((h) => h.event)), [5]);
    assert.deepEqual(streams((await search(s, { keys: ["content.topic"] })).hits.map((h) => h.event)), [6]);
    assert.deepEqual(streams((await search(s, { words: ["hello", "wor"] })).hits.map((h) => h.event)), [2], "AND");
    assert.deepEqual(streams((await search(s, { words: ["wörld"] })).hits.map((h) => h.event)), [10], "unicode");
    assert.deepEqual((await search(s, { words: ["absent"] })).hits, []);
    assert.deepEqual(await search(s, { words: [] }), { hits: [], count: 0 });
    assert.deepEqual(await search(s, { spans: [] }), { hits: [], count: 0 });
  });

  storeTest(make, "searchEvents: spans bound rooms and streams; filters; pages", async (s) => {
    await seed(s);
    const both = await search(s, {
      spans: [
        { ...ALL, roomId: R },
        { ...ALL, roomId: O },
      ],
    });
    assert.equal(both.count, 7);
    const ranged = await search(s, {
      spans: [
        { roomId: R, lo: 2, hi: 3 },
        { roomId: R, lo: 8, hi: 8 },
      ],
    });
    assert.deepEqual(streams(ranged.hits.map((h) => h.event)), [8, 3, 2]);
    assert.equal(ranged.count, 3);
    const many = Array.from({ length: 100 }, (_, i) => ({ roomId: `!r${i}:hs`, lo: 0, hi: 100 }));
    const wide = await search(s, { spans: [...many, { roomId: R, lo: 2, hi: 3 }, { roomId: R, lo: 8, hi: 8 }] });
    assert.deepEqual(streams(wide.hits.map((h) => h.event)), [8, 3, 2], "many spans (rooms) at once");
    const bob = await search(s, { filter: { senders: ["@bob:hs"] } });
    assert.deepEqual(streams(bob.hits.map((h) => h.event)), [8, 3]);
    const notBob = await search(s, { filter: { notSenders: ["@bob:hs"], types: ["m.room.message"] } });
    assert.deepEqual(streams(notBob.hits.map((h) => h.event)), [11, 2]);
    const p1 = await search(s, { limit: 2 });
    const p2 = await search(s, { limit: 2, before: p1.hits[1].event.stream });
    assert.deepEqual(streams([...p1.hits, ...p2.hits].map((h) => h.event)), [11, 8, 6, 5]);
    assert.equal(p2.count, 6, "count is of every match");
  });

  storeTest(make, "searchEvents: rank order puts better matches first; offset pages cover all once", async (s) => {
    await seed(s);
    const ranked = await search(s, { orderBy: "rank" });
    assert.equal(ranked.hits[0].event.stream, 8, "four occurrences rank first");
    for (let i = 1; i < ranked.hits.length; i++) assert.ok(ranked.hits[i - 1].rank >= ranked.hits[i].rank);
    const seen: number[] = [];
    for (let offset = 0; offset < 6; offset += 4)
      seen.push(...streams((await search(s, { orderBy: "rank", limit: 4, offset })).hits.map((h) => h.event)));
    assert.deepEqual(seen, streams(ranked.hits.map((h) => h.event)));
  });

  storeTest(make, "searchEvents: a redaction removes the event from the index; reopen keeps it", async (s, h) => {
    await seed(s);
    await s.events.persistEvent(
      event(12, R, "m.room.redaction", {
        sender: "@alice:hs",
        content: { redacts: "$ev8" },
        extra: { redacts: "$ev8" },
      }),
    );
    assert.deepEqual(streams((await search(s, {})).hits.map((x) => x.event)), [11, 6, 5, 3, 2]);
    const again = await h.reopen();
    assert.equal((await search(again, {})).count, 5);
  });

  storeTest(make, "searchUsers: shared joined rooms, public rooms, prefix words; all; deactivated out", async (s) => {
    await s.accounts.createUser(user("@me:hs"));
    await s.accounts.createUser(user("@alice:hs", { displayname: "Alice Liddell" }));
    await s.accounts.createUser(user("@alan:hs", { displayname: "Turing" }));
    await s.accounts.createUser(user("@albert:hs", { displayname: "Al Public" }));
    await s.accounts.createUser(user("@alfred:hs"));
    await s.accounts.createUser(user("@algernon:hs", { deactivated: true }));
    await s.accounts.createUser(user("@bob:hs", { displayname: "Lidd Bob" }));
    await seedRoom(s, R, [
      event(1, R, "m.room.create", { stateKey: "" }),
      member(2, R, "@me:hs", "join"),
      member(3, R, "@alice:hs", "join"),
      member(4, R, "@alan:hs", "invite", "@me:hs"),
      member(5, R, "@algernon:hs", "join"),
      member(6, R, "@bob:hs", "join"),
    ]);
    await s.rooms.createRoom(room("!pub:hs"));
    for (const e of [
      event(7, "!pub:hs", "m.room.create", { stateKey: "" }),
      event(8, "!pub:hs", "m.room.join_rules", { stateKey: "", content: { join_rule: "public" } }),
      member(9, "!pub:hs", "@albert:hs", "join"),
    ])
      await s.events.persistEvent(e);
    const find = async (words: string[], all = false, limit = 10) =>
      (await s.search.searchUsers({ words, requester: "@me:hs", all, limit })).map((u) => u.userId);
    assert.deepEqual(await find(["al"]), ["@albert:hs", "@alice:hs"], "invitee and deactivated out");
    assert.deepEqual(await find(["al"], true), ["@alan:hs", "@albert:hs", "@alfred:hs", "@alice:hs"]);
    assert.deepEqual(await find(["lidd"]), ["@alice:hs", "@bob:hs"], "display name words");
    assert.deepEqual(await find(["lic"]), [], "a prefix, not a substring");
    assert.deepEqual(await find(["tur"], true), ["@alan:hs"]);
    assert.deepEqual(await find(["al", "public"]), ["@albert:hs"], "every word");
    assert.deepEqual(await find(["al"], true, 1), ["@alan:hs"]);
    assert.deepEqual(await find(["%"], true), [], "LIKE characters are literal");
    await s.events.persistEvent(
      event(10, "!pub:hs", "m.room.join_rules", { stateKey: "", content: { join_rule: "invite" } }),
    );
    assert.deepEqual(await find(["al"]), ["@alice:hs"], "the room is no longer public");
  });
}
