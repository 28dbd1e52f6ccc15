/**
 * Conformance: the DestinationStore — federation retry state per remote server, upserted by name, listed by name;
 * the durable outgoing queues: events owed per destination and room (read back from the timeline, local senders
 * only, in stream order, positions never going back) and the to-device outbox.
 */
import assert from "node:assert/strict";
import { event, type MakeStore, member, room, storeTest } from "./helpers.ts";

export function destinationTests(make: MakeStore): void {
  storeTest(make, "destinations: put, replace, read one, list by name; unknown is null", async (s) => {
    assert.equal(await s.destinations.getDestination("a.test"), null);
    assert.deepEqual(await s.destinations.listDestinations(), []);
    const dead = {
      destination: "b.test",
      lastSuccessTs: null,
      failures: 3,
      retryIntervalMs: 40_000,
      nextRetryTs: 1_700_000_000_000 + 2 ** 40,
    };
    await s.destinations.putDestination(dead);
    await s.destinations.putDestination({
      destination: "a.test",
      lastSuccessTs: 1_700_000_000_000,
      failures: 0,
      retryIntervalMs: 0,
      nextRetryTs: 0,
    });
    assert.deepEqual(await s.destinations.getDestination("b.test"), dead);
    assert.deepEqual(
      (await s.destinations.listDestinations()).map((r) => r.destination),
      ["a.test", "b.test"],
    );
    // A success replaces the failure state, keeping nothing of it.
    const healed = { destination: "b.test", lastSuccessTs: 5, failures: 0, retryIntervalMs: 0, nextRetryTs: 0 };
    await s.destinations.putDestination(healed);
    assert.deepEqual(await s.destinations.getDestination("b.test"), healed);
  });

  storeTest(make, "destinations: owed PDUs are the room's local events between delivered and owed", async (s, h) => {
    const d = s.destinations;
    await s.rooms.createRoom(room("!a:hs"));
    await s.rooms.createRoom(room("!b:hs"));
    // Stream 1..8: local (@x:hs) and remote (@y:other) events in two rooms; a sender whose server merely ends in
    // "hs" (@z:xhs) and one with a LIKE wildcard in its server name (@w:h_) are not local.
    const plan: [number, string, string][] = [
      [1, "!a:hs", "@x:hs"],
      [2, "!a:hs", "@y:other"],
      [3, "!b:hs", "@x:hs"],
      [4, "!a:hs", "@x:hs"],
      [5, "!a:hs", "@z:xhs"],
      [6, "!b:hs", "@x:hs"],
      [7, "!a:hs", "@x:hs"],
      [8, "!a:hs", "@w:h_"],
    ];
    for (const [n, r, sender] of plan) await s.events.persistEvent(event(n, r, "m.room.message", { sender }));
    assert.deepEqual(await d.destinationsOwed(), []);
    assert.deepEqual(await d.owedPdus("o.test", "hs", 10), []);
    // o.test joined !a after stream 1: owed from stream 2 on; then 4 and 7 queued for it; !b from 6 on.
    await d.recordOwedPdus(["o.test", "p.test"], "!a:hs", 4);
    await d.recordOwedPdus(["o.test"], "!b:hs", 6);
    await d.recordOwedPdus(["o.test"], "!a:hs", 7);
    await d.recordOwedPdus(["o.test"], "!a:hs", 5); // late: never moves the owed position back
    assert.deepEqual(await d.destinationsOwed(), ["o.test", "p.test"]);
    const owed = await d.owedPdus("o.test", "hs", 10);
    assert.deepEqual(
      owed.map((o) => [o.roomId, o.stream, o.eventId]),
      [
        ["!a:hs", 4, "$ev4"],
        ["!b:hs", 6, "$ev6"],
        ["!a:hs", 7, "$ev7"],
      ],
    );
    assert.equal(owed[0].pdu.sender, "@x:hs");
    assert.equal(owed[0].pdu.room_id, "!a:hs");
    assert.deepEqual(
      (await d.owedPdus("o.test", "hs", 2)).map((o) => o.stream),
      [4, 6],
      "the oldest first, limited",
    );
    assert.deepEqual(
      (await d.owedPdus("p.test", "hs", 10)).map((o) => o.stream),
      [4],
    );
    // Delivered: !a up to 4, !b up to 6; a stale mark (2) does not move it back.
    await d.markPdusSent("o.test", [
      { roomId: "!a:hs", stream: 4 },
      { roomId: "!b:hs", stream: 6 },
    ]);
    await d.markPdusSent("o.test", [{ roomId: "!a:hs", stream: 2 }]);
    assert.deepEqual(
      (await d.owedPdus("o.test", "hs", 10)).map((o) => o.stream),
      [7],
    );
    await d.markPdusSent("o.test", [{ roomId: "!a:hs", stream: 7 }]);
    assert.deepEqual(await d.owedPdus("o.test", "hs", 10), []);
    assert.deepEqual(await d.destinationsOwed(), ["p.test"]);
    // Another "server" view of the same rows: events of @y:other only.
    assert.deepEqual(
      (await d.owedPdus("p.test", "other", 10)).map((o) => o.stream),
      [],
      "the owed range of p.test (3..4] holds no event of other",
    );
    // Survives a reopen.
    const again = await h.reopen();
    assert.deepEqual(await again.destinations.destinationsOwed(), ["p.test"]);
    // A user of o.test joins !a (a user of "xo.test" or "o.tes" is not one); a local event after it was never
    // recorded as owed (a crash before that write): it is owed all the same while o.test has a member joined.
    const a = again.destinations;
    await again.events.persistEvent(member(9, "!a:hs", "@u:xo.test", "join"));
    await again.events.persistEvent(member(10, "!a:hs", "@u:o.tes", "join"));
    await again.events.persistEvent(event(11, "!a:hs", "m.room.message", { sender: "@x:hs" }));
    assert.deepEqual(await a.destinationsOwed("hs"), ["p.test"], "no user of o.test joined yet");
    assert.deepEqual(await a.owedPdus("o.test", "hs", 10), []);
    await again.events.persistEvent(member(12, "!a:hs", "@u:o.test", "join"));
    await again.events.persistEvent(event(13, "!a:hs", "m.room.message", { sender: "@x:hs" }));
    assert.deepEqual(await a.destinationsOwed("hs"), ["o.test", "p.test"]);
    assert.deepEqual(await a.destinationsOwed(), ["p.test"], "without the server: the owed positions only");
    assert.deepEqual(
      (await a.owedPdus("o.test", "hs", 10)).map((o) => o.stream),
      [11, 13],
      "every local event after the delivered position",
    );
    await a.markPdusSent("o.test", [{ roomId: "!a:hs", stream: 13 }]);
    assert.deepEqual(await a.destinationsOwed("hs"), ["p.test"]);
    assert.deepEqual(await a.owedPdus("o.test", "hs", 10), []);
  });

  storeTest(
    make,
    "destinations: the to-device outbox keeps EDUs per destination in seq order until deleted",
    async (s, h) => {
      const d = s.destinations;
      assert.deepEqual(await d.listOutbox(), []);
      assert.deepEqual(await d.outboxHolders(["a.test"], 10), { count: 0, holding: [] });
      const edu = (n: number) => ({
        edu_type: "m.direct_to_device",
        content: { message_id: `m${n}`, n, s: "é\u0000" },
      });
      await d.addOutboxEdu({ destination: "b.test", seq: 2 ** 50, edu: edu(1) });
      await d.addOutboxEdu({ destination: "a.test", seq: 3, edu: edu(2) });
      await d.addOutboxEdu({ destination: "b.test", seq: 2 ** 50 + 1, edu: edu(3) });
      await d.addOutboxEdu({ destination: "b.test", seq: 7, edu: edu(4) });
      const s2 = await h.reopen();
      assert.deepEqual(
        (await s2.destinations.listOutbox()).map((r) => [r.destination, r.seq, r.edu.content]),
        [
          ["a.test", 3, edu(2).content],
          ["b.test", 7, edu(4).content],
          ["b.test", 2 ** 50, edu(1).content],
          ["b.test", 2 ** 50 + 1, edu(3).content],
        ],
      );
      await d.deleteOutboxEdus("b.test", [7, 2 ** 50, 12345]);
      await d.deleteOutboxEdus("a.test", []);
      assert.deepEqual(
        (await d.listOutbox()).map((r) => [r.destination, r.seq]),
        [
          ["a.test", 3],
          ["b.test", 2 ** 50 + 1],
        ],
      );
      // Destinations holding EDUs (the to-device destination cap of workers that do not send).
      await d.addOutboxEdu({ destination: "c.test", seq: 1, edu: edu(5) });
      assert.deepEqual(await d.outboxHolders(["b.test", "z.test"], 10), { count: 3, holding: ["b.test"] });
      assert.equal((await d.outboxHolders([], 1)).count, 2, "counting stops past atMost");
      await d.deleteOutboxEdus("c.test", [1]);
      assert.deepEqual(await d.outboxHolders(["c.test"], 10), { count: 2, holding: [] });
    },
  );
}
