/** Conformance: persisting events, state, state history, memberships, redactions, transaction IDs. */
import assert from "node:assert/strict";
import type { NewEvent, Store } from "../types.ts";
import { event, type MakeStore, member, room, seedRoom, storeTest, streams } from "./helpers.ts";

const R = "!room:hs";

export function eventTests(make: MakeStore): void {
  storeTest(make, "events: persist and read back (PDU exactly, txn fields, unicode, NUL, big numbers)", async (s) => {
    await s.rooms.createRoom(room(R));
    const e = event(1, R, "m.room.message", {
      content: { body: "héllo 👋 \u0000 \\ ' \" %_", n: 9007199254740991, neg: -1.5, nested: { a: [1, null, true] } },
    });
    await s.events.persistEvent({ ...e, txn: { userId: "@alice:hs", deviceId: "DEV", scope: "S", txnId: "t/1?%" } });
    const got = await s.events.getEvent(e.eventId);
    assert.ok(got);
    assert.deepEqual(got, { ...e, redactedBy: null, txnDeviceId: "DEV", txnId: "t/1?%" });
    assert.equal(await s.events.getEvent("$missing"), null);
    await s.events.persistEvent(event(2, R, "m.room.message"));
    const second = await s.events.getEvent("$ev2");
    assert.equal(second?.txnDeviceId, null);
    assert.equal(second?.txnId, null);
  });

  storeTest(make, "events: duplicate eventId is rejected and changes nothing", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.create", { stateKey: "" }),
      event(2, R, "m.room.topic", { stateKey: "", content: { topic: "a" } }),
    ]);
    const dup = event(3, R, "m.room.topic", { stateKey: "", content: { topic: "b" }, eventId: "$ev2" });
    await assert.rejects(
      s.events.persistEvent({ ...dup, txn: { userId: "@alice:hs", deviceId: "D", scope: "S", txnId: "t" } }),
    );
    assert.equal((await s.events.getCurrentStateEvent(R, "m.room.topic", ""))?.pdu.content.topic, "a");
    assert.equal(
      await s.events.getTxnEvent("@alice:hs", "D", "S", "t"),
      null,
      "the failed transaction recorded no txnId",
    );
    assert.equal(await s.getMaxStream(), 2);
    assert.equal((await s.events.getEvent("$ev2"))?.stream, 2);
    await assert.rejects(
      s.events.persistEvent(event(2, R, "m.room.message", { eventId: "$other" })),
      "duplicate stream",
    );
    assert.equal(await s.events.getEvent("$other"), null);
  });

  storeTest(make, "events: getEvents returns the known ones in stream order", async (s) => {
    await seedRoom(
      s,
      R,
      [1, 2, 3, 4].map((n) => event(n, R, "m.room.message")),
    );
    assert.deepEqual(streams(await s.events.getEvents(["$ev4", "$nope", "$ev1", "$ev3"])), [1, 3, 4]);
    assert.deepEqual(await s.events.getEvents([]), []);
    assert.deepEqual(await s.events.getEvents(["$nope"]), []);
  });

  storeTest(make, "events: transaction IDs are looked up by (user, device, scope, txnId)", async (s) => {
    await s.rooms.createRoom(room(R));
    await s.events.persistEvent({
      ...event(1, R, "m.room.message"),
      txn: { userId: "@alice:hs", deviceId: "D1", scope: "S", txnId: "t1" },
    });
    await s.events.persistEvent({
      ...event(2, R, "m.room.message"),
      txn: { userId: "@alice:hs", deviceId: "D2", scope: "S", txnId: "t1" },
    });
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D1", "S", "t1"), "$ev1");
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D2", "S", "t1"), "$ev2");
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D3", "S", "t1"), null);
    assert.equal(await s.events.getTxnEvent("@bob:hs", "D1", "S", "t1"), null);
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D1", "S", "t2"), null);
    // The same device reusing a txnId on another path (another room, say) is another transaction.
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D1", "S2", "t1"), null);
    await s.events.persistEvent({
      ...event(3, R, "m.room.message"),
      txn: { userId: "@alice:hs", deviceId: "D1", scope: "S2", txnId: "t1" },
    });
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D1", "S2", "t1"), "$ev3");
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D1", "S", "t1"), "$ev1");
  });

  storeTest(make, "state: current state follows the latest event per (type, stateKey)", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.create", { stateKey: "" }),
      event(2, R, "m.room.name", { stateKey: "", content: { name: "one" } }),
      event(3, R, "m.room.message"),
      event(4, R, "m.room.name", { stateKey: "", content: { name: "two" } }),
      event(5, R, "x.custom", { stateKey: "k" }),
      event(6, R, "x.custom", { stateKey: "" }),
    ]);
    await seedRoom(s, "!other:hs", [event(7, "!other:hs", "m.room.name", { stateKey: "", content: { name: "o" } })]);
    assert.deepEqual(
      streams(await s.events.getCurrentState(R)).sort((a, b) => a - b),
      [1, 4, 5, 6],
    );
    assert.equal((await s.events.getCurrentStateEvent(R, "m.room.name", ""))?.pdu.content.name, "two");
    assert.equal((await s.events.getCurrentStateEvent(R, "x.custom", "k"))?.stream, 5);
    assert.equal(await s.events.getCurrentStateEvent(R, "x.custom", "other"), null);
    assert.equal(await s.events.getCurrentStateEvent(R, "m.room.message", ""), null);
    assert.deepEqual(await s.events.getCurrentState("!none:hs"), []);
  });

  storeTest(make, "state: getStateAt returns the state as of a stream position, after later changes", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.create", { stateKey: "" }),
      member(2, R, "@alice:hs", "join"),
      event(3, R, "m.room.name", { stateKey: "", content: { name: "one" } }),
      event(4, R, "m.room.message"),
      member(5, R, "@bob:hs", "join"),
      event(6, R, "m.room.name", { stateKey: "", content: { name: "two" } }),
      member(7, R, "@bob:hs", "leave"),
      event(8, R, "m.room.message"),
    ]);
    // Another room interleaved in the stream must not leak in.
    await seedRoom(s, "!b:hs", [event(9, "!b:hs", "m.room.name", { stateKey: "" })]);
    await s.events.persistEvent(event(10, R, "m.room.name", { stateKey: "", content: { name: "three" } }));
    const at = async (n: number, types?: string[]) =>
      streams(await s.events.getStateAt(R, n, types)).sort((a, b) => a - b);
    assert.deepEqual(await at(0), []);
    assert.deepEqual(await at(1), [1]);
    assert.deepEqual(await at(4), [1, 2, 3]);
    assert.deepEqual(await at(5), [1, 2, 3, 5]);
    assert.deepEqual(await at(6), [1, 2, 5, 6]);
    assert.deepEqual(await at(8), [1, 2, 6, 7]);
    assert.deepEqual(await at(9), [1, 2, 6, 7]);
    assert.deepEqual(await at(1_000_000), [1, 2, 7, 10]);
    assert.deepEqual(await at(8, ["m.room.member"]), [2, 7]);
    assert.deepEqual(await at(8, ["m.room.name", "m.room.create"]), [1, 6]);
    assert.deepEqual(await at(8, []), []);
    assert.deepEqual(await at(8, ["m.nothing"]), []);
    const named = await s.events.getStateAt(R, 5, ["m.room.name"]);
    assert.equal(named[0].pdu.content.name, "one", "the PDU is the old one, not the current");
  });

  storeTest(make, "state: getReplacedState names the state event each one replaced", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.create", { stateKey: "" }),
      member(2, R, "@alice:hs", "join"),
      event(3, R, "m.room.name", { stateKey: "", content: { name: "one" } }),
      event(4, R, "m.room.message"),
      member(5, R, "@bob:hs", "join"),
      event(6, R, "m.room.name", { stateKey: "", content: { name: "two" } }),
      member(7, R, "@bob:hs", "leave"),
    ]);
    await seedRoom(s, "!b:hs", [event(8, "!b:hs", "m.room.name", { stateKey: "" })]);
    const got = await s.events.getReplacedState([1, 2, 3, 4, 5, 6, 7, 8, 99]);
    assert.deepEqual(
      [...got].map(([k, v]) => [k, v.stream]).sort((a, b) => a[0] - b[0]),
      [
        [6, 3],
        [7, 5],
      ],
    );
    assert.equal(got.get(6)?.pdu.content.name, "one");
    assert.equal((await s.events.getReplacedState([])).size, 0);
  });

  storeTest(make, "memberships: transitions update the current membership", async (s) => {
    await seedRoom(s, R, [event(1, R, "m.room.create", { stateKey: "" }), member(2, R, "@alice:hs", "join")]);
    await seedRoom(s, "!b:hs", [
      member(3, "!b:hs", "@bob:hs", "join"),
      member(4, "!b:hs", "@alice:hs", "invite", "@bob:hs"),
    ]);
    await s.events.persistEvent(member(5, R, "@bob:hs", "invite", "@alice:hs"));
    assert.deepEqual(await s.events.getMembership(R, "@bob:hs"), {
      roomId: R,
      userId: "@bob:hs",
      membership: "invite",
      eventId: "$ev5",
      stream: 5,
    });
    await s.events.persistEvent(member(6, R, "@bob:hs", "join"));
    assert.equal((await s.events.getMembership(R, "@bob:hs"))?.membership, "join");
    await s.events.persistEvent(member(7, R, "@bob:hs", "leave"));
    await s.events.persistEvent(member(8, R, "@bob:hs", "ban", "@alice:hs"));
    assert.deepEqual(await s.events.getMembership(R, "@bob:hs"), {
      roomId: R,
      userId: "@bob:hs",
      membership: "ban",
      eventId: "$ev8",
      stream: 8,
    });
    assert.equal(await s.events.getMembership(R, "@carol:hs"), null);
    assert.equal(await s.events.getMembership("!none:hs", "@bob:hs"), null);

    const rooms = (await s.events.getRoomsForUser("@alice:hs")).map((m) => [m.roomId, m.membership]).sort();
    assert.deepEqual(rooms, [
      ["!b:hs", "invite"],
      [R, "join"],
    ]);
    const bobs = (await s.events.getRoomsForUser("@bob:hs")).map((m) => [m.roomId, m.membership]).sort();
    assert.deepEqual(
      bobs,
      [
        ["!b:hs", "join"],
        [R, "ban"],
      ],
      "rooms with any membership, including ban",
    );
    assert.deepEqual(await s.events.getRoomsForUser("@carol:hs"), []);
    // Sharing a joined room with a server's users: bob (joined !b) with @rem:other once rem joins !b.
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "hs"), false);
    await s.events.persistEvent(member(20, "!b:hs", "@rem:other", "join", "@rem:other"));
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "hs"), true);
    assert.equal(await s.events.sharesRoomWithServer("@bob:hs", "other"), true);
    assert.equal(await s.events.sharesRoomWithServer("@alice:hs", "other"), false, "alice is only invited to !b");
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "xhs"), false);
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "h_"), false, "no LIKE wildcard");
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "other"), false, "not with itself");
    await s.events.persistEvent(member(21, "!b:hs", "@rem:other", "leave"));
    assert.equal(await s.events.sharesRoomWithServer("@rem:other", "hs"), false);

    const all = (await s.events.getMembers(R)).map((m) => `${m.userId}=${m.membership}`).sort();
    assert.deepEqual(all, ["@alice:hs=join", "@bob:hs=ban"]);
    assert.deepEqual(
      (await s.events.getMembers(R, "join")).map((m) => m.userId),
      ["@alice:hs"],
    );
    assert.deepEqual(
      (await s.events.getMembers(R, "ban")).map((m) => m.userId),
      ["@bob:hs"],
    );
    assert.deepEqual(await s.events.getMembers(R, "knock"), []);
    // A non-member state event with a user-like state key is not a membership.
    await s.events.persistEvent(event(9, R, "x.user_state", { stateKey: "@carol:hs" }));
    assert.equal(await s.events.getMembership(R, "@carol:hs"), null);
  });

  storeTest(make, "redactions: mark their target (content.redacts and top-level redacts); first wins", async (s) => {
    await seedRoom(s, R, [event(1, R, "m.room.message"), event(2, R, "m.room.message"), event(3, R, "m.room.message")]);
    await s.events.persistEvent(event(4, R, "m.room.redaction", { content: { redacts: "$ev1" } }));
    await s.events.persistEvent(event(5, R, "m.room.redaction", { extra: { redacts: "$ev2" } }));
    await s.events.persistEvent(event(6, R, "m.room.redaction", { content: { redacts: "$ev1" } }));
    await s.events.persistEvent(event(7, R, "m.room.redaction", { content: { redacts: "$unknown" } }));
    assert.equal((await s.events.getEvent("$ev1"))?.redactedBy, "$ev4");
    assert.equal((await s.events.getEvent("$ev2"))?.redactedBy, "$ev5");
    assert.equal((await s.events.getEvent("$ev3"))?.redactedBy, null);
    assert.equal((await s.events.getEvent("$ev4"))?.redactedBy, null);
    assert.equal((await s.events.getEvent("$ev1"))?.pdu.content && true, true, "the stored PDU is kept as signed");
    const page = await s.events.getRoomEvents({ roomId: R, dir: "f", from: 0, limit: 10 });
    assert.deepEqual(
      page.map((e) => e.redactedBy),
      ["$ev4", "$ev5", null, null, null, null, null],
    );
  });

  storeTest(make, "getLatestEvent and getRoomMaxStreams", async (s) => {
    await seedRoom(s, R, [event(1, R, "m.room.create", { stateKey: "" }), event(3, R, "m.room.message")]);
    await seedRoom(s, "!b:hs", [
      event(2, "!b:hs", "m.room.create", { stateKey: "" }),
      event(4, "!b:hs", "m.room.message"),
    ]);
    await s.rooms.createRoom(room("!empty:hs"));
    await s.events.persistEvent(event(5, R, "m.room.message"));
    assert.equal((await s.events.getLatestEvent(R))?.eventId, "$ev5");
    assert.equal((await s.events.getLatestEvent("!b:hs"))?.eventId, "$ev4");
    assert.equal(await s.events.getLatestEvent("!empty:hs"), null);
    const m = await s.events.getRoomMaxStreams([R, "!b:hs", "!empty:hs", "!unknown:hs"]);
    assert.deepEqual([...m.entries()].sort(), [
      ["!b:hs", 4],
      [R, 5],
    ]);
    assert.equal((await s.events.getRoomMaxStreams([])).size, 0);
  });

  storeTest(make, "countEvents: stream window, excluded sender, types", async (s) => {
    await seedRoom(s, R, [
      event(1, R, "m.room.message", { sender: "@alice:hs" }),
      event(2, R, "m.room.message", { sender: "@bob:hs" }),
      event(3, R, "m.room.encrypted", { sender: "@bob:hs" }),
      event(4, R, "m.reaction", { sender: "@bob:hs" }),
      event(5, R, "m.room.message", { sender: "@alice:hs" }),
      event(6, R, "m.room.message", { sender: "@bob:hs" }),
    ]);
    await seedRoom(s, "!b:hs", [event(7, "!b:hs", "m.room.message", { sender: "@bob:hs" })]);
    const types = ["m.room.message", "m.room.encrypted"];
    assert.equal(await s.events.countEvents(R, 0, 100, "@alice:hs", types), 3);
    assert.equal(await s.events.countEvents(R, 2, 6, "@alice:hs", types), 2, "after exclusive, upto inclusive");
    assert.equal(await s.events.countEvents(R, 2, 5, "@alice:hs", types), 1);
    assert.equal(await s.events.countEvents(R, 0, 100, "@bob:hs", types), 2);
    assert.equal(await s.events.countEvents(R, 0, 100, "@carol:hs", ["m.room.message"]), 4);
    assert.equal(await s.events.countEvents(R, 0, 100, "@carol:hs", []), 0);
    assert.equal(await s.events.countEvents(R, 6, 100, "@carol:hs", types), 0);
    assert.equal(await s.events.countEvents("!none:hs", 0, 100, "@carol:hs", types), 0);
  });
}

/** The optional batch write (both backends have it; the Store interface may adopt it for group commit). */
type Batching = { persistEvents?(events: NewEvent[]): Promise<void> };

export function batchTests(make: MakeStore): void {
  storeTest(make, "persistEvents (optional): in order, all or nothing", async (s) => {
    const batch = (s as Store & Batching).persistEvents?.bind(s);
    if (!batch) return;
    await s.rooms.createRoom(room(R));
    await batch([]);
    await batch([
      event(1, R, "m.room.create", { stateKey: "" }),
      member(2, R, "@alice:hs", "join"),
      { ...event(3, R, "m.room.message"), txn: { userId: "@alice:hs", deviceId: "D", scope: "S", txnId: "t3" } },
      member(4, R, "@alice:hs", "leave"),
      event(5, R, "m.room.redaction", { content: { redacts: "$ev3" } }),
    ]);
    assert.equal((await s.events.getMembership(R, "@alice:hs"))?.eventId, "$ev4");
    assert.deepEqual(streams(await s.events.getStateAt(R, 3)), [1, 2]);
    assert.equal(await s.events.getTxnEvent("@alice:hs", "D", "S", "t3"), "$ev3");
    assert.equal((await s.events.getEvent("$ev3"))?.redactedBy, "$ev5");
    await assert.rejects(
      batch([member(6, R, "@bob:hs", "join"), event(7, R, "m.room.message", { eventId: "$ev3" }), event(8, R, "x")]),
    );
    assert.equal(await s.events.getEvent("$ev6"), null, "nothing of a failed batch is kept");
    assert.equal(await s.events.getMembership(R, "@bob:hs"), null);
    assert.equal(await s.getMaxStream(), 5);
  });
}
