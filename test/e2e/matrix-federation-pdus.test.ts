/**
 * PDUs over federation between real homeservers on loopback (hs1.test, hs2.test in-process). Without
 * make_join/send_join, hs2's users enter hs1's room by events built here and signed with hs2's own key, delivered
 * in real X-Matrix signed /send transactions from hs2.test to hs1.test: hs1 checks and accepts them (members,
 * /sync); alice's messages then go out to hs2 as PDUs (hs2 does not know the room, so it answers an error per PDU,
 * which is all this layer can do there). Forgeries (bad signature, bad content hash, failing auth, another
 * server's sender, unknown room, unknown prev events) get their per-PDU error and change nothing. Two forks with
 * conflicting state delivered to hs1: hs1's state matches state resolution v2 computed here over the two forks.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { authTypesFor, type StateKey, stateKey } from "../../src/matrix/events/auth.ts";
import type { StateResEvent } from "../../src/matrix/events/auth-chain.ts";
import { signEvent } from "../../src/matrix/events/event-signing.ts";
import { eventIdFor } from "../../src/matrix/events/hashing.ts";
import { generateSigningKey } from "../../src/matrix/events/signing.ts";
import { resolveStateV2 } from "../../src/matrix/events/state-res.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { waitFor } from "./helpers/client.ts";
import { type FedServer, register, startFederation, type TestUser } from "./helpers/federation.ts";

/** Poll every 50 ms for up to 60 s (helpers/client.ts waitFor). */
const until = <T>(what: string, fn: () => Promise<T>, ms = 60_000) => waitFor(what, fn, ms, 50);

type Pdu = Record<string, any>;

describe("federation PDUs: remote joins, outgoing PDUs, forgeries, forks resolved", () => {
  let s: Record<string, FedServer>;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: TestUser;
  let roomId: string;
  let version: string;
  const bob = "@bob:hs2.test";
  const carol = "@carol:hs2.test";
  /** Every event of the room, as the test knows it (for the reference state resolution). */
  const known = new Map<string, StateResEvent>();
  let txn = 0;

  const client = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${hs1.url}${path}`, {
      method,
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${alice.token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const b = await r.json();
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(b)}`);
    return b;
  };

  /** hs1's state after an event, from its store (what a fork is built on). */
  const stateAfter = async (eventId: string) => (await hs1.hs.store.dag.getStateIdsAtEvent(eventId, "after"))!;

  const remember = async (ids: Iterable<string>) => {
    for (const e of await hs1.hs.store.dag.getDagEvents([...ids])) known.set(e.eventId, asStateRes(e.eventId, e.pdu));
  };
  const asStateRes = (id: string, p: Pdu): StateResEvent => ({
    event_id: id,
    room_id: p.room_id,
    type: p.type,
    state_key: p.state_key,
    sender: p.sender,
    content: p.content,
    origin_server_ts: p.origin_server_ts,
    auth_events: p.auth_events,
    prev_events: p.prev_events,
    depth: p.depth,
  });

  /** An event by a hs2 user on top of `prevs`, its auth events taken from `state`, signed with hs2's key. */
  const build = (
    e: { sender: string; type: string; stateKey?: string; content: Record<string, unknown> },
    prevs: { ids: string[]; depth: number },
    state: Map<StateKey, string>,
    key = hs2.hs.signingKey,
  ): { pdu: Pdu; id: string } => {
    const pdu: Pdu = {
      room_id: roomId,
      sender: e.sender,
      type: e.type,
      content: e.content,
      origin_server_ts: Date.now(),
      depth: prevs.depth + 1,
      prev_events: prevs.ids,
      auth_events: authTypesFor({ type: e.type, sender: e.sender, state_key: e.stateKey, content: e.content })
        .map(([t, k]) => state.get(stateKey(t, k)))
        .filter((x): x is string => x !== undefined),
    };
    if (e.stateKey !== undefined) pdu.state_key = e.stateKey;
    const signed = signEvent(pdu, "hs2.test", key, version);
    return { pdu: signed, id: eventIdFor(signed, version) };
  };

  /** A /send transaction from hs2.test to hs1.test, X-Matrix signed by hs2's key. */
  const send = async (pdus: Pdu[], origin = "hs2.test") => {
    const id = `t${++txn}`;
    const uri = `/_matrix/federation/v1/send/${id}`;
    const body = { origin, origin_server_ts: Date.now(), pdus, edus: [] };
    const r = await fetch(`${hs1.url}${uri}`, {
      method: "PUT",
      headers: {
        "Content-Type": "application/json",
        Authorization: signRequest(
          { method: "PUT", uri, origin, destination: "hs1.test", content: body },
          hs2.hs.signingKey,
        ),
      },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, await r.clone().text());
    return (await r.json()).pdus as Record<string, { error?: string }>;
  };

  const head = async () => {
    const x = await hs1.hs.store.dag.getForwardExtremities(roomId);
    return { ids: x.map((e) => e.eventId), depth: Math.max(...x.map((e) => e.depth)) };
  };

  const members = async () =>
    Object.keys((await client("GET", `/_matrix/client/v3/rooms/${roomId}/joined_members`)).joined);

  before(async () => {
    s = await startFederation(["hs1.test", "hs2.test"], {
      federation: { retryInitialMs: 200, retryMaxMs: 1000, requestTimeoutMs: 3000 },
    });
    hs1 = s["hs1.test"];
    hs2 = s["hs2.test"];
    alice = await register(hs1.url, "alice");
    roomId = (await client("POST", "/_matrix/client/v3/createRoom", { preset: "public_chat" })).room_id;
    version = await hs1.hs.rooms.roomVersion(roomId);
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
  });

  test("bob's signed join from hs2 is accepted by hs1: bob is a member", async () => {
    const h = await head();
    const join = build(
      { sender: bob, type: "m.room.member", stateKey: bob, content: { membership: "join" } },
      h,
      await stateAfter(h.ids[0]),
    );
    const res = await send([join.pdu]);
    assert.deepEqual(res, { [join.id]: {} });
    assert.ok((await members()).includes(bob));
    assert.deepEqual((await head()).ids, [join.id], "the join is the room's forward extremity");
    // A replay in another transaction is idempotent.
    assert.deepEqual(await send([join.pdu]), { [join.id]: {} });
    assert.equal(hs1.hs.pduIn.stats.accepted, 1);
  });

  test("alice's messages go out to hs2 as signed PDUs", async () => {
    const got: Pdu[] = [];
    const orig = hs2.hs.federation.onPdus;
    hs2.hs.federation.onPdus = async (origin, pdus) => {
      if (origin === "hs1.test") got.push(...pdus);
      return orig(origin, pdus);
    };
    try {
      const { event_id } = await client("PUT", `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/m1`, {
        msgtype: "m.text",
        body: "hello hs2",
      });
      const pdu = await until("the message at hs2", async () => got.find((p) => p.content?.body === "hello hs2"));
      assert.equal(eventIdFor(pdu, version), event_id, "the PDU is the event as signed");
      assert.ok(pdu.signatures["hs1.test"]);
      assert.equal(pdu.room_id, roomId);
    } finally {
      hs2.hs.federation.onPdus = orig;
    }
  });

  describe("forgeries: per-PDU errors, nothing applied, the server stays up", () => {
    const msg = async (content: Record<string, unknown>, sender = bob) => {
      const h = await head();
      return build({ sender, type: "m.room.message", content }, h, await stateAfter(h.ids[0]));
    };
    const notStored = async (id: string) => assert.deepEqual(await hs1.hs.store.dag.getDagEvents([id]), []);

    test("a signature by a key that is not hs2's: rejected, not stored", async () => {
      const h = await head();
      const forged = build(
        { sender: bob, type: "m.room.message", content: { body: "forged" } },
        h,
        await stateAfter(h.ids[0]),
        generateSigningKey(),
      );
      const res = await send([forged.pdu]);
      assert.match(res[forged.id].error!, /signature/);
      await notStored(forged.id);
    });

    test("a content hash mismatch: kept redacted", async () => {
      const m = await msg({ msgtype: "m.text", body: "original" });
      const tampered = { ...m.pdu, content: { msgtype: "m.text", body: "tampered" } };
      // The reference hash covers the redacted event only: the event ID is the same.
      assert.equal(eventIdFor(tampered, version), m.id);
      const res = await send([tampered]);
      assert.deepEqual(res[m.id], {});
      const [stored] = await hs1.hs.store.dag.getDagEvents([m.id]);
      assert.deepEqual(stored.pdu.content, {}, "the redacted copy is what is stored");
    });

    test("bob raising himself in power levels fails auth: a rejected outlier, power levels unchanged", async () => {
      const h = await head();
      const st = await stateAfter(h.ids[0]);
      const plId = st.get(stateKey("m.room.power_levels", ""))!;
      const [pl] = await hs1.hs.store.dag.getDagEvents([plId]);
      const ev = build(
        {
          sender: bob,
          type: "m.room.power_levels",
          stateKey: "",
          content: { ...pl.pdu.content, users: { ...pl.pdu.content.users, [bob]: 100 } },
        },
        h,
        st,
      );
      const res = await send([ev.pdu]);
      assert.match(res[ev.id].error!, /rejected/);
      const [stored] = await hs1.hs.store.dag.getDagEvents([ev.id]);
      assert.ok(stored.rejected, "stored as rejected");
      assert.equal(stored.stream, null, "an outlier");
      const now = await client("GET", `/_matrix/client/v3/rooms/${roomId}/state/m.room.power_levels/`);
      assert.equal(now.users[bob], undefined);
      assert.deepEqual((await head()).ids, h.ids);
    });

    test("a sender on another server than the origin, and an unknown room: errors", async () => {
      const other = await msg({ body: "from hs3?" }, "@mallory:hs3.test");
      const h = await head();
      const lost = build(
        { sender: bob, type: "m.room.message", content: { body: "x" } },
        h,
        await stateAfter(h.ids[0]),
      );
      const elsewhere = { ...lost.pdu, room_id: "!nowhere:hs1.test" };
      const res = await send([other.pdu, elsewhere]);
      assert.match(res[other.id].error!, /not on the origin/);
      assert.match(Object.values(res).find((r) => /unknown room/.test(r.error ?? ""))?.error ?? "", /unknown room/);
      await notStored(other.id);
    });

    test("unknown prev events: error, kept as an outlier, not applied", async () => {
      const h = await head();
      const fake = `$${"A".repeat(43)}`;
      const ev = build(
        { sender: bob, type: "m.room.message", content: { body: "gap" } },
        { ids: [fake], depth: h.depth },
        await stateAfter(h.ids[0]),
      );
      const res = await send([ev.pdu]);
      assert.match(res[ev.id].error!, /prev events unknown/);
      const [stored] = await hs1.hs.store.dag.getDagEvents([ev.id]);
      assert.equal(stored.stream, null);
      assert.deepEqual((await head()).ids, h.ids);
    });

    test("garbage PDUs: an error each, keyed by what can be told of them", async () => {
      const m = await msg({ body: "ok" });
      const res = await send([{}, { room_id: roomId, type: "m.room.message" }, { ...m.pdu, depth: "x" }, m.pdu]);
      assert.equal(Object.keys(res).length, 4);
      assert.deepEqual(res[m.id], {}, "a good PDU in the same transaction is applied");
      const errors = Object.entries(res).filter(([k]) => k !== m.id);
      assert.equal(errors.length, 3);
      for (const [, r] of errors) assert.ok(r.error, JSON.stringify(r));
    });

    test("a server the room's ACL denies: its PDUs are refused, nothing stored", async () => {
      const acl = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/state/m.room.server_acl/`;
      await client("PUT", acl, { allow: ["*"], deny: ["hs2.test"] });
      const m = await msg({ msgtype: "m.text", body: "denied" });
      const res = await send([m.pdu]);
      assert.match(res[m.id].error ?? "", /server ACL/);
      await notStored(m.id);
      await client("PUT", acl, { allow: ["*"] });
      const again = await msg({ msgtype: "m.text", body: "admitted again" });
      assert.deepEqual((await send([again.pdu]))[again.id], {});
    });

    test("the server still serves clients", async () => {
      assert.ok((await members()).includes(alice.userId));
    });
  });

  test("forks: power levels on one, a ban on the other: hs1's state is state resolution v2 of the two", async () => {
    // bob gets power from alice (a local send), carol joins from hs2.
    const pl = await client("GET", `/_matrix/client/v3/rooms/${roomId}/state/m.room.power_levels/`);
    await client("PUT", `/_matrix/client/v3/rooms/${roomId}/state/m.room.power_levels/`, {
      ...pl,
      users: { ...pl.users, [bob]: 100 },
    });
    let h = await head();
    const carolJoin = build(
      { sender: carol, type: "m.room.member", stateKey: carol, content: { membership: "join" } },
      h,
      await stateAfter(h.ids[0]),
    );
    assert.deepEqual(await send([carolJoin.pdu]), { [carolJoin.id]: {} });
    h = await head();
    const base = await stateAfter(h.ids[0]);
    const pl2 = await client("GET", `/_matrix/client/v3/rooms/${roomId}/state/m.room.power_levels/`);
    // Fork A: bob steps down to 50 and makes bans need 100. Fork B (same parent, made later): bob bans carol.
    // "Latest wins" would leave carol banned; state resolution v2 orders A's power levels first, and bob's ban
    // then fails against them: carol stays joined.
    const a = build(
      {
        sender: bob,
        type: "m.room.power_levels",
        stateKey: "",
        content: { ...pl2, ban: 100, users: { ...pl2.users, [bob]: 50 } },
      },
      h,
      base,
    );
    const b = build({ sender: bob, type: "m.room.member", stateKey: carol, content: { membership: "ban" } }, h, base);
    // B first: delivered after A it would be soft-failed (bob's ban fails against the current state), which is
    // the spec's answer too but leaves no fork.
    assert.deepEqual(await send([b.pdu]), { [b.id]: {} });
    assert.ok(!(await members()).includes(carol), "carol banned by fork B");
    assert.deepEqual(await send([a.pdu]), { [a.id]: {} });
    assert.deepEqual(new Set((await head()).ids), new Set([a.id, b.id]), "two forward extremities");

    // The reference: state resolution v2 over the two forks' states, events as the test knows them.
    const stateA = new Map(base).set(stateKey("m.room.power_levels", ""), a.id);
    const stateB = new Map(base).set(stateKey("m.room.member", carol), b.id);
    await remember(base.values());
    known.set(a.id, asStateRes(a.id, a.pdu));
    known.set(b.id, asStateRes(b.id, b.pdu));
    const auth = await hs1.hs.store.dag.getAuthChain([...base.values(), a.id, b.id]);
    await remember(auth);
    const expected = await resolveStateV2(version, [stateA, stateB], (id) => known.get(id));
    assert.equal(expected.get(stateKey("m.room.member", carol)), carolJoin.id, "the reference keeps carol joined");
    assert.equal(expected.get(stateKey("m.room.power_levels", "")), a.id);
    assert.ok(hs1.hs.pduIn.stats.stateResolved >= 1, "current_state was corrected after the merge");
    assert.ok((await members()).includes(carol), "memberships follow the resolved state");

    // A local send on top of both forks goes through the resolver; its state before is the resolution.
    const { event_id } = await client("PUT", `/_matrix/client/v3/rooms/${roomId}/send/m.room.message/m2`, {
      msgtype: "m.text",
      body: "after the merge",
    });
    const [sent] = await hs1.hs.store.dag.getDagEvents([event_id]);
    assert.deepEqual(new Set(sent.pdu.prev_events), new Set([a.id, b.id]));
    assert.deepEqual(await hs1.hs.store.dag.getStateIdsAtEvent(event_id, "before"), expected);

    // What clients read: the room's current state, by (type, state_key).
    const state: Pdu[] = await client("GET", `/_matrix/client/v3/rooms/${roomId}/state`);
    const current = new Map(state.map((e) => [stateKey(e.type, e.state_key), e.event_id]));
    assert.deepEqual(current, expected);

    // Soft-fail: another ban of carol by bob on the pre-fork state passes against the state before it (bob had
    // 100 there) but not against the current state: answered as accepted, kept out of the timeline and the
    // extremities, carol stays joined.
    const extremities = (await head()).ids;
    const late = build(
      { sender: bob, type: "m.room.member", stateKey: carol, content: { membership: "ban", reason: "late" } },
      h,
      base,
    );
    const softBefore = hs1.hs.pduIn.stats.softFailed;
    assert.deepEqual(await send([late.pdu]), { [late.id]: {} });
    assert.equal(hs1.hs.pduIn.stats.softFailed, softBefore + 1);
    const [stored] = await hs1.hs.store.dag.getDagEvents([late.id]);
    assert.equal(stored.stream, null, "an outlier, in no timeline");
    assert.equal(stored.rejected, null);
    assert.deepEqual((await head()).ids, extremities, "never a prev event");
    assert.ok((await members()).includes(carol));
  });
});
