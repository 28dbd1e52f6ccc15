/**
 * Conformance: the room DAG (DagStore): prev/auth edges, forward extremities through forks and merges, per-event
 * state groups (delta chains rebased to snapshots), outliers kept out of timelines, auth chains, atomicity, and
 * events stored before the DAG (state from state_history, backfilled on demand).
 */
import assert from "node:assert/strict";
import { type StateKey, stateKey } from "../../events/auth.ts";
import { type EventStateWrite, type NewEvent, type NewOutlier, STATE_CHAIN_MAX, type Store } from "../types.ts";
import { event, type MakeStore, room, storeTest } from "./helpers.ts";

const R = "!dag:hs";

/** A timeline event with explicit prev/auth events, depth and state write. */
function dagEvent(
  stream: number,
  type: string,
  o: { stateKey?: string; prev?: string[]; auth?: string[]; depth?: number; state?: EventStateWrite; id?: string } = {},
): NewEvent {
  const e = event(stream, R, type, {
    stateKey: o.stateKey,
    eventId: o.id,
    content: { n: stream },
    extra: { prev_events: o.prev ?? [], auth_events: o.auth ?? [], depth: o.depth ?? stream },
  });
  return { ...e, depth: o.depth ?? stream, state: o.state };
}

/** Persist `e` with the state before it being its single prev's state after (as the room service does). */
async function persistLinear(s: Store, e: NewEvent): Promise<void> {
  const prev = e.pdu.prev_events as string[];
  if (prev.length === 0) return s.events.persistEvent({ ...e, state: { before: null, beforeChain: 0 } });
  const g = await s.dag.getEventStateGroups(prev[0]);
  assert.ok(g, `state groups of ${prev[0]}`);
  await s.events.persistEvent({ ...e, state: { before: g.after, beforeChain: g.afterChain } });
}

const map = (entries: [string, string, string][]): Map<StateKey, string> =>
  new Map(entries.map(([t, k, id]) => [stateKey(t, k), id]));

const outlier = (
  id: string,
  type: string,
  stateKeyValue: string | null,
  auth: string[],
  rejected?: string,
): NewOutlier => ({
  eventId: id,
  roomId: R,
  type,
  stateKey: stateKeyValue,
  sender: "@bob:remote",
  originServerTs: 1_700_000_000_000,
  depth: 3,
  pdu: { room_id: R, type, sender: "@bob:remote", content: {}, auth_events: auth, prev_events: [], depth: 3 },
  rejected: rejected ?? null,
});

export function dagTests(make: MakeStore): void {
  storeTest(
    make,
    "dag: a linear room: edges, one forward extremity, the state before and after each event",
    async (s) => {
      await s.rooms.createRoom(room(R));
      await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
      await persistLinear(s, dagEvent(2, "m.room.member", { stateKey: "@alice:hs", prev: ["$ev1"], auth: ["$ev1"] }));
      await persistLinear(
        s,
        dagEvent(3, "m.room.power_levels", { stateKey: "", prev: ["$ev2"], auth: ["$ev1", "$ev2", "$ev2"] }),
      );
      await persistLinear(s, dagEvent(4, "m.room.message", { prev: ["$ev3"], auth: ["$ev3", "$ev1", "$ev2"] }));
      assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev4", depth: 4 }]);
      assert.deepEqual(
        await s.dag.getPrevEvents(["$ev4", "$ev1", "$nope"]),
        new Map([["$ev4", ["$ev3"]]]),
        "the create event has no prev edge; unknown events have none",
      );
      assert.deepEqual(await s.dag.getAuthEvents(["$ev3"]), new Map([["$ev3", ["$ev1", "$ev2"]]]), "deduplicated");
      const after3 = map([
        ["m.room.create", "", "$ev1"],
        ["m.room.member", "@alice:hs", "$ev2"],
        ["m.room.power_levels", "", "$ev3"],
      ]);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev1", "before"), new Map());
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev1", "after"), map([["m.room.create", "", "$ev1"]]));
      assert.deepEqual(
        await s.dag.getStateIdsAtEvent("$ev3", "before"),
        map([
          ["m.room.create", "", "$ev1"],
          ["m.room.member", "@alice:hs", "$ev2"],
        ]),
      );
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev3", "after"), after3);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev4", "before"), after3);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev4", "after"), after3, "a message changes no state");
      const g3 = await s.dag.getEventStateGroups("$ev3");
      const g4 = await s.dag.getEventStateGroups("$ev4");
      assert.ok(g3 && g4);
      assert.equal(g4.before, g3.after, "a message shares its prev's group: no new group");
      assert.equal(g4.after, g3.after);
      assert.equal(g3.afterChain, 2);
      const events = await s.dag.getStateEventsAtEvent("$ev4", "before");
      assert.deepEqual(
        events?.map((e) => [e.type, e.stateKey, e.eventId, e.stream, e.rejected]),
        [
          ["m.room.create", "", "$ev1", 1, null],
          ["m.room.member", "@alice:hs", "$ev2", 2, null],
          ["m.room.power_levels", "", "$ev3", 3, null],
        ],
      );
      assert.equal(await s.dag.getStateIdsAtEvent("$missing", "before"), null);
      assert.deepEqual(await s.dag.getMissingEvents(["$ev9", "$ev2", "$ev8"]), ["$ev9", "$ev8"]);
    },
  );

  storeTest(make, "dag: forks make several forward extremities; a merge resolves them into one", async (s) => {
    await s.rooms.createRoom(room(R));
    await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
    await persistLinear(s, dagEvent(2, "m.room.topic", { stateKey: "", prev: ["$ev1"] }));
    // Two servers sent on top of $ev2 at once: a fork.
    await persistLinear(s, dagEvent(3, "m.room.name", { stateKey: "", prev: ["$ev2"], depth: 3 }));
    await persistLinear(s, dagEvent(4, "m.room.topic", { stateKey: "", prev: ["$ev2"], depth: 3 }));
    await persistLinear(s, dagEvent(5, "m.room.message", { prev: ["$ev4"], depth: 4 }));
    assert.deepEqual(await s.dag.getForwardExtremities(R), [
      { eventId: "$ev5", depth: 4 },
      { eventId: "$ev3", depth: 3 },
    ]);
    const a = await s.dag.getStateIdsAtEvent("$ev3", "after");
    const b = await s.dag.getStateIdsAtEvent("$ev5", "after");
    assert.equal(a?.get(stateKey("m.room.topic", "")), "$ev2", "each fork keeps its own state");
    assert.equal(b?.get(stateKey("m.room.topic", "")), "$ev4");
    assert.equal(b?.has(stateKey("m.room.name", "")), false);
    // The merge: its state before is what resolution decided (here: the name of one fork, the topic of the other).
    const resolved = [
      { type: "m.room.create", stateKey: "", eventId: "$ev1" },
      { type: "m.room.name", stateKey: "", eventId: "$ev3" },
      { type: "m.room.topic", stateKey: "", eventId: "$ev4" },
    ];
    await s.events.persistEvent(
      dagEvent(6, "m.room.member", {
        stateKey: "@bob:hs",
        prev: ["$ev5", "$ev3"],
        depth: 5,
        state: { before: null, beforeChain: 0, resolved },
      }),
    );
    assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev6", depth: 5 }]);
    assert.deepEqual(await s.dag.getPrevEvents(["$ev6"]), new Map([["$ev6", ["$ev3", "$ev5"]]]));
    const before = await s.dag.getStateIdsAtEvent("$ev6", "before");
    assert.deepEqual(before, new Map(resolved.map((r) => [stateKey(r.type, r.stateKey), r.eventId])));
    const after = await s.dag.getStateIdsAtEvent("$ev6", "after");
    assert.equal(after?.size, 4);
    assert.equal(after?.get(stateKey("m.room.member", "@bob:hs")), "$ev6");
    const g = await s.dag.getEventStateGroups("$ev6");
    assert.deepEqual(g, { before: -6, after: 6, afterChain: 1 });
    // The forks' groups are untouched by the merge.
    assert.equal((await s.dag.getStateIdsAtEvent("$ev5", "after"))?.has(stateKey("m.room.name", "")), false);
    // An event arriving after one that names it as a prev (a gap filled late) does not become an extremity.
    await s.events.persistEvent(dagEvent(7, "m.room.message", { prev: ["$gap"], depth: 7 }));
    assert.deepEqual(
      (await s.dag.getForwardExtremities(R)).map((x) => x.eventId),
      ["$ev7", "$ev6"],
    );
    await s.events.persistEvent(dagEvent(8, "m.room.message", { prev: ["$ev6"], id: "$gap", depth: 6 }));
    assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev7", depth: 7 }]);
    await s.dag.setForwardExtremities(R, ["$gap", "$ev3", "$gap"]);
    assert.deepEqual(
      (await s.dag.getForwardExtremities(R)).map((x) => x.eventId),
      ["$gap", "$ev3"],
      "replaced, newest first",
    );
  });

  storeTest(
    make,
    "dag: setCurrentState writes a resolved state's difference into current state and memberships",
    async (s) => {
      await s.rooms.createRoom(room(R));
      const member = (stream: number, membership: string, prev: string) => {
        const e = event(stream, R, "m.room.member", {
          stateKey: "@a:hs",
          content: { membership },
          extra: { prev_events: [prev], depth: stream },
        });
        return { ...e, depth: stream };
      };
      await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
      await persistLinear(s, member(2, "join", "$ev1"));
      // A fork: one side has @a leave, the other sets a topic. "Latest wins" keeps the leave.
      await persistLinear(s, member(3, "leave", "$ev2"));
      await persistLinear(s, dagEvent(4, "m.room.topic", { stateKey: "", prev: ["$ev2"], depth: 3 }));
      const current = async () =>
        new Map((await s.events.getCurrentState(R)).map((e) => [stateKey(e.type, e.stateKey ?? ""), e.eventId]));
      const membership = async () => (await s.events.getMembersOfRooms([R])).get(R)?.find((m) => m.userId === "@a:hs");
      assert.equal((await current()).get(stateKey("m.room.member", "@a:hs")), "$ev3");
      assert.equal((await membership())?.membership, "leave");
      // Resolution decided @a stays joined.
      const resolved = map([
        ["m.room.create", "", "$ev1"],
        ["m.room.member", "@a:hs", "$ev2"],
        ["m.room.topic", "", "$ev4"],
      ]);
      assert.equal(await s.dag.setCurrentState(R, resolved), 1);
      assert.deepEqual(await current(), resolved);
      assert.equal((await membership())?.membership, "join");
      assert.equal((await s.events.getCurrentStateEvent(R, "m.room.member", "@a:hs"))?.eventId, "$ev2");
      assert.equal(await s.dag.setCurrentState(R, resolved), 0, "nothing to change");
      // An entry the resolved state lacks goes; one naming no stored event is skipped.
      const without = map([
        ["m.room.create", "", "$ev1"],
        ["m.room.member", "@a:hs", "$ev2"],
        ["m.room.name", "", "$nowhere"],
      ]);
      assert.equal(await s.dag.setCurrentState(R, without), 1);
      assert.deepEqual(
        await current(),
        map([
          ["m.room.create", "", "$ev1"],
          ["m.room.member", "@a:hs", "$ev2"],
        ]),
      );
    },
  );

  storeTest(make, "dag: delta chains are rebased to a full snapshot every STATE_CHAIN_MAX deltas", async (s) => {
    await s.rooms.createRoom(room(R));
    await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
    const n = STATE_CHAIN_MAX + 5;
    const chains: number[] = [];
    for (let i = 2; i <= n + 1; i++) {
      // Members join and the topic changes: each state event adds one key or replaces one.
      const e =
        i % 3 === 0
          ? dagEvent(i, "m.room.topic", { stateKey: "", prev: [`$ev${i - 1}`] })
          : dagEvent(i, "m.room.member", { stateKey: `@u${i}:hs`, prev: [`$ev${i - 1}`] });
      await persistLinear(s, e);
      chains.push((await s.dag.getEventStateGroups(`$ev${i}`))?.afterChain ?? -1);
    }
    assert.ok(Math.max(...chains) <= STATE_CHAIN_MAX, "no chain longer than the bound");
    const rebase = chains.indexOf(0);
    assert.equal(rebase, STATE_CHAIN_MAX, "the event after STATE_CHAIN_MAX deltas starts a snapshot");
    assert.equal(chains[rebase + 1], 1, "and deltas stack on the snapshot again");
    // Every event's state equals the linear history at its position (state_history is the reference).
    for (const i of [2, 50, rebase + 1, rebase + 2, rebase + 3, n + 1]) {
      const ev = `$ev${i}`;
      const expected = new Map(
        (await s.events.getStateAt(R, i)).map((e) => [stateKey(e.type, e.stateKey ?? ""), e.eventId]),
      );
      assert.deepEqual(await s.dag.getStateIdsAtEvent(ev, "after"), expected, `state after ${ev}`);
    }
  });

  storeTest(
    make,
    "dag: an event's state-after pointed at a fuller group (a partial-state room resynced)",
    async (s) => {
      await s.rooms.createRoom(room(R));
      await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
      await persistLinear(s, dagEvent(2, "m.room.member", { stateKey: "@a:hs", prev: ["$ev1"] }));
      await persistLinear(s, dagEvent(3, "m.room.message", { prev: ["$ev2"] }));
      // A state-only member learnt later, its group the full state (resolved snapshot + its own entry).
      const resolved = [
        { type: "m.room.create", stateKey: "", eventId: "$ev1" },
        { type: "m.room.member", stateKey: "@a:hs", eventId: "$ev2" },
      ];
      await s.events.persistEvent({
        ...dagEvent(4, "m.room.member", { stateKey: "@b:hs", prev: [] }),
        stateOnly: true,
        state: { before: null, beforeChain: 0, resolved },
      });
      const before = await s.dag.getEventStateGroups("$ev3");
      assert.equal(await s.dag.setEventStateAfter("$ev3", 4), true);
      assert.equal(await s.dag.setEventStateAfter("$nope", 4), false);
      assert.equal(await s.dag.setEventStateAfter("$ev3", 987_654), false, "no such group");
      const after = await s.dag.getEventStateGroups("$ev3");
      assert.equal(after?.after, 4);
      assert.equal(after?.before, before?.before, "state before kept");
      assert.equal(after?.afterChain, 1);
      assert.deepEqual(
        await s.dag.getStateIdsAtEvent("$ev3", "after"),
        map([
          ["m.room.create", "", "$ev1"],
          ["m.room.member", "@a:hs", "$ev2"],
          ["m.room.member", "@b:hs", "$ev4"],
        ]),
      );
    },
  );

  storeTest(make, "dag: outliers are stored without state, outside timelines, sync and current state", async (s) => {
    await s.rooms.createRoom(room(R));
    await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
    await s.dag.persistOutliers([
      outlier("$o-member", "m.room.member", "@bob:remote", ["$ev1", "$o-pl"]),
      outlier("$o-pl", "m.room.power_levels", "", ["$ev1"]),
      outlier("$o-bad", "m.room.topic", "", ["$ev1"], "sender not in room"),
    ]);
    await persistLinear(s, dagEvent(2, "m.room.message", { prev: ["$ev1"] }));
    assert.equal(await s.events.getEvent("$o-member"), null, "not a timeline event");
    assert.deepEqual(
      (await s.events.getRoomEvents({ roomId: R, dir: "b", from: Number.MAX_SAFE_INTEGER, limit: 10 })).map(
        (e) => e.eventId,
      ),
      ["$ev2", "$ev1"],
    );
    const synced = await s.events.getLatestEventsPerRoom([{ roomId: R, before: Number.MAX_SAFE_INTEGER }], 10);
    assert.deepEqual(
      synced[0].map((e) => e.eventId),
      ["$ev2", "$ev1"],
    );
    assert.deepEqual(
      (await s.events.getCurrentState(R)).map((e) => e.eventId),
      ["$ev1"],
    );
    assert.equal(await s.events.getMembership(R, "@bob:remote"), null);
    assert.equal(await s.getMaxStream(), 2);
    assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev2", depth: 2 }], "never an extremity");
    assert.equal(await s.dag.getStateIdsAtEvent("$o-member", "before"), null, "no state");
    assert.equal(await s.dag.getEventStateGroups("$o-member"), null);
    assert.deepEqual(await s.dag.getMissingEvents(["$o-pl", "$o-bad", "$x"]), ["$x"]);
    const got = await s.dag.getDagEvents(["$o-member", "$o-bad", "$ev1"]);
    const byId = new Map(got.map((e) => [e.eventId, e]));
    assert.equal(byId.get("$o-member")?.stream, null);
    assert.equal(byId.get("$o-member")?.stateKey, "@bob:remote");
    assert.equal(byId.get("$o-member")?.pdu.sender, "@bob:remote");
    assert.equal(byId.get("$o-bad")?.rejected, "sender not in room");
    assert.equal(byId.get("$ev1")?.stream, 1);
    assert.deepEqual(await s.dag.getAuthEvents(["$o-member"]), new Map([["$o-member", ["$ev1", "$o-pl"]]]));
    // Storing an outlier again, or a timeline event as an outlier, changes nothing.
    await s.dag.persistOutliers([
      outlier("$o-pl", "m.room.power_levels", "", []),
      outlier("$ev2", "m.room.message", null, []),
    ]);
    assert.equal((await s.dag.getDagEvents(["$ev2"]))[0].stream, 2);
    assert.deepEqual(await s.dag.getAuthEvents(["$o-pl"]), new Map([["$o-pl", ["$ev1"]]]));
    // An outlier that becomes part of the timeline stops being an outlier, in the same transaction.
    await persistLinear(
      s,
      dagEvent(3, "m.room.power_levels", { stateKey: "", prev: ["$ev2"], auth: ["$ev1"], id: "$o-pl" }),
    );
    const now = await s.dag.getDagEvents(["$o-pl"]);
    assert.equal(now.length, 1);
    assert.equal(now[0].stream, 3);
    assert.equal((await s.dag.getStateIdsAtEvent("$o-pl", "after"))?.get(stateKey("m.room.power_levels", "")), "$o-pl");
  });

  storeTest(make, "dag: the auth chain of a set of events, through outliers, ends on a forged cycle", async (s) => {
    await s.rooms.createRoom(room(R));
    await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
    await persistLinear(s, dagEvent(2, "m.room.member", { stateKey: "@alice:hs", prev: ["$ev1"], auth: ["$ev1"] }));
    await persistLinear(
      s,
      dagEvent(3, "m.room.power_levels", { stateKey: "", prev: ["$ev2"], auth: ["$ev1", "$ev2"] }),
    );
    await s.dag.persistOutliers([
      outlier("$o-join", "m.room.member", "@bob:remote", ["$ev1", "$ev3", "$o-jr"]),
      outlier("$o-jr", "m.room.join_rules", "", ["$ev1", "$ev2", "$ev3"]),
      outlier("$cyc-a", "m.room.member", "@m:x", ["$cyc-b"]),
      outlier("$cyc-b", "m.room.member", "@n:x", ["$cyc-a"]),
    ]);
    await persistLinear(s, dagEvent(4, "m.room.message", { prev: ["$ev3"], auth: ["$ev1", "$ev3", "$o-join"] }));
    assert.deepEqual(await s.dag.getAuthChain(["$ev4"]), ["$ev1", "$ev2", "$ev3", "$o-join", "$o-jr"]);
    assert.deepEqual(await s.dag.getAuthChain(["$ev2", "$ev1"]), ["$ev1"]);
    assert.deepEqual(await s.dag.getAuthChain(["$o-jr", "$ev3"]), ["$ev1", "$ev2", "$ev3"]);
    assert.deepEqual(await s.dag.getAuthChain(["$cyc-a"]), ["$cyc-a", "$cyc-b"]);
    assert.deepEqual(await s.dag.getAuthChain([]), []);
  });

  storeTest(make, "dag: a failing write leaves none of its edges, extremities or state groups", async (s) => {
    await s.rooms.createRoom(room(R));
    await persistLinear(s, dagEvent(1, "m.room.create", { stateKey: "" }));
    const g1 = await s.dag.getEventStateGroups("$ev1");
    assert.ok(g1);
    const good = dagEvent(2, "m.room.topic", {
      stateKey: "",
      prev: ["$ev1"],
      auth: ["$ev1"],
      state: { before: g1.after, beforeChain: g1.afterChain },
    });
    // The second event of the batch reuses an event ID: the whole batch rolls back.
    const dup = dagEvent(3, "m.room.name", {
      stateKey: "",
      prev: ["$ev2"],
      id: "$ev1",
      state: { before: 2, beforeChain: 1 },
    });
    await assert.rejects(s.events.persistEvents([good, dup]));
    assert.equal(await s.events.getEvent("$ev2"), null);
    assert.deepEqual(await s.dag.getPrevEvents(["$ev2"]), new Map());
    assert.deepEqual(await s.dag.getAuthEvents(["$ev2"]), new Map());
    assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev1", depth: 1 }]);
    assert.equal(await s.dag.getEventStateGroups("$ev2"), null);
    assert.deepEqual(await s.dag.getStateGroup(2), new Map(), "no group 2");
    // A snapshot rebase failing mid-way (the event row collides) leaves no group either.
    const rebase = dagEvent(4, "m.room.topic", {
      stateKey: "",
      prev: ["$ev1"],
      id: "$ev1",
      state: { before: g1.after, beforeChain: STATE_CHAIN_MAX },
    });
    await assert.rejects(s.events.persistEvent(rebase));
    assert.deepEqual(await s.dag.getStateGroup(4), new Map());
    // An outlier batch with one bad row stores none of it.
    const bad = outlier("$o2", "m.room.member", "@x:y\u0000", ["$ev1"]);
    await assert.rejects(s.dag.persistOutliers([outlier("$o1", "m.room.member", "@w:y", ["$ev1"]), bad]));
    assert.deepEqual(await s.dag.getMissingEvents(["$o1", "$o2"]), ["$o1", "$o2"]);
    assert.deepEqual(await s.dag.getAuthEvents(["$o1"]), new Map());
    // The room still takes the event afterwards.
    await s.events.persistEvent(good);
    assert.deepEqual(await s.dag.getForwardExtremities(R), [{ eventId: "$ev2", depth: 2 }]);
  });

  storeTest(
    make,
    "dag: events stored without state groups read state_history; ensureEventStateGroups backfills",
    async (s) => {
      await s.rooms.createRoom(room(R));
      // As before the DAG: no state groups.
      await s.events.persistEvent(dagEvent(1, "m.room.create", { stateKey: "" }));
      await s.events.persistEvent(dagEvent(2, "m.room.member", { stateKey: "@alice:hs", prev: ["$ev1"] }));
      await s.events.persistEvent(dagEvent(3, "m.room.message", { prev: ["$ev2"] }));
      await s.events.persistEvent(dagEvent(4, "m.room.topic", { stateKey: "", prev: ["$ev3"] }));
      const upTo2 = map([
        ["m.room.create", "", "$ev1"],
        ["m.room.member", "@alice:hs", "$ev2"],
      ]);
      assert.equal(await s.dag.getEventStateGroups("$ev3"), null);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev2", "before"), map([["m.room.create", "", "$ev1"]]));
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev3", "before"), upTo2);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev3", "after"), upTo2);
      const full = new Map(upTo2).set(stateKey("m.room.topic", ""), "$ev4");
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev4", "after"), full);
      assert.equal(await s.dag.ensureEventStateGroups("$missing"), null);
      const g = await s.dag.ensureEventStateGroups("$ev4");
      assert.deepEqual(g, { before: -4, after: 4, afterChain: 1 });
      assert.deepEqual(await s.dag.ensureEventStateGroups("$ev4"), g, "idempotent");
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev4", "before"), upTo2);
      assert.deepEqual(await s.dag.getStateIdsAtEvent("$ev4", "after"), full);
      const m = await s.dag.ensureEventStateGroups("$ev3");
      assert.deepEqual(m, { before: -3, after: -3, afterChain: 0 });
      // New events then stack on the backfilled group.
      await persistLinear(s, dagEvent(5, "m.room.name", { stateKey: "", prev: ["$ev4"] }));
      assert.equal((await s.dag.getStateIdsAtEvent("$ev5", "after"))?.size, 4);
      // purgeRoom takes the DAG rows with the room.
      await s.rooms.purgeRoom(R);
      assert.deepEqual(await s.dag.getForwardExtremities(R), []);
      assert.equal(await s.dag.getEventStateGroups("$ev5"), null);
      assert.deepEqual(await s.dag.getStateGroup(5), new Map());
      assert.deepEqual(await s.dag.getPrevEvents(["$ev5"]), new Map());
    },
  );
}
