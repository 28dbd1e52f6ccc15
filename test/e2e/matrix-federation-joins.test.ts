/**
 * Joins and leaves over federation between real homeservers on loopback. The resident side first, driven here as
 * hs2 would (its own federation client, its own signing key): make_join on hs1, the template filled and signed,
 * send_join -> hs1 has the member and answers the state before the join and its auth chain; send_leave likewise.
 * Forgeries (another server's user, a non-join, a bad signature, an event ID not the path's) get a 4xx and change
 * nothing.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { signEvent } from "../../src/matrix/events/event-signing.ts";
import { eventIdFor } from "../../src/matrix/events/hashing.ts";
import { generateSigningKey } from "../../src/matrix/events/signing.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { type FedServer, register, startFederation, type TestUser } from "./helpers/federation.ts";

type Pdu = Record<string, any>;

describe("federation joins: send_join / send_leave on the resident server", () => {
  let s: Record<string, FedServer>;
  let hs1: FedServer;
  let hs2: FedServer;
  let alice: TestUser;
  let roomId: string;
  let version: string;
  const bob = "@bob:hs2.test";

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
  const members = async () =>
    Object.keys((await client("GET", `/_matrix/client/v3/rooms/${roomId}/joined_members`)).joined);

  /** hs2 asks hs1 (signed by hs2's federation client). */
  const fed = (method: "GET" | "PUT", path: string, body?: unknown) =>
    hs2.hs.federation.client.request<any>("hs1.test", { method, path, body });
  const fedStatus = async (method: "GET" | "PUT", path: string, body?: unknown) => {
    try {
      await fed(method, path, body);
      return 200;
    } catch (e: any) {
      return e.status ?? 0;
    }
  };

  /** make_* of hs1, the template signed as hs2 (or by `key`, or changed by `edit` first). */
  const filled = async (kind: "join" | "leave", user = bob, edit?: (p: Pdu) => void, key = hs2.hs.signingKey) => {
    const q = kind === "join" ? `?ver=${version}` : "";
    const t = await fed("GET", `/_matrix/federation/v1/make_${kind}/${roomId}/${encodeURIComponent(user)}${q}`);
    const pdu: Pdu = { ...t.event, origin_server_ts: Date.now() };
    edit?.(pdu);
    const signed = signEvent(pdu, "hs2.test", key, version);
    return { pdu: signed, id: eventIdFor(signed, version) };
  };
  const sendPath = (kind: string, id: string) =>
    `/_matrix/federation/${kind === "knock" ? "v1" : "v2"}/send_${kind}/${roomId}/${encodeURIComponent(id)}`;

  before(async () => {
    s = await startFederation(["hs1.test", "hs2.test"], {
      federation: { retryInitialMs: 200, retryMaxMs: 1000, requestTimeoutMs: 3000 },
    });
    hs1 = s["hs1.test"];
    hs2 = s["hs2.test"];
    alice = await register(hs1.url, "alice");
    roomId = (await client("POST", "/_matrix/client/v3/createRoom", { preset: "public_chat", name: "Lobby" })).room_id;
    version = await hs1.hs.rooms.roomVersion(roomId);
  });

  after(async () => {
    for (const h of Object.values(s ?? {})) await h.dispose();
  });

  describe("forgeries: 4xx, nothing applied", () => {
    const notStored = async (id: string) => {
      const [e] = await hs1.hs.store.dag.getDagEvents([id]);
      assert.ok(!e || e.stream === null, "not in the timeline");
      assert.ok(!(await members()).includes(bob));
    };

    test("a join for a user of another server", async () => {
      const { pdu, id } = await filled("join", bob, (p) => {
        p.sender = "@mallory:hs3.test";
        p.state_key = "@mallory:hs3.test";
      });
      assert.equal(await fedStatus("PUT", sendPath("join", id), pdu), 403);
      await notStored(id);
    });

    test("a non-join event to send_join", async () => {
      const { pdu, id } = await filled("join", bob, (p) => {
        p.content = { membership: "leave" };
      });
      assert.equal(await fedStatus("PUT", sendPath("join", id), pdu), 400);
      const msg = await filled("join", bob, (p) => {
        p.type = "m.room.message";
        p.content = { body: "hi", membership: "join" };
      });
      assert.equal(await fedStatus("PUT", sendPath("join", msg.id), msg.pdu), 400);
      await notStored(id);
      await notStored(msg.id);
    });

    test("a join signed by a key that is not hs2's", async () => {
      const { pdu, id } = await filled("join", bob, undefined, generateSigningKey());
      assert.equal(await fedStatus("PUT", sendPath("join", id), pdu), 403);
      await notStored(id);
    });

    test("an event ID that is not the path's", async () => {
      const { pdu, id } = await filled("join");
      const other = await filled("join", bob, (p) => {
        p.origin_server_ts += 1;
      });
      assert.equal(await fedStatus("PUT", sendPath("join", other.id), pdu), 400);
      await notStored(id);
    });
  });

  test("send_join: bob is a member; the answer holds the state before the join and its auth chain", async () => {
    const { pdu, id } = await filled("join");
    const res = await fed("PUT", sendPath("join", id), pdu);
    assertSpec("server-server/joins-v2.yaml", "/send_join/{roomId}/{eventId}", "PUT", 200, res);
    assert.ok((await members()).includes(bob));
    assert.equal(res.origin, "hs1.test");
    assert.equal(res.members_omitted, false);
    assert.equal(eventIdFor(res.event, version), id);
    const types = res.state.map((e: Pdu) => `${e.type}|${e.state_key}`).sort();
    for (const t of ["m.room.create|", "m.room.join_rules|", "m.room.power_levels|", "m.room.name|"])
      assert.ok(types.includes(t), `state has ${t}`);
    assert.ok(types.includes(`m.room.member|${alice.userId}`));
    assert.ok(!types.includes(`m.room.member|${bob}`), "the state is the state before the join");
    const stateIds = new Set(res.state.map((e: Pdu) => eventIdFor(e, version)));
    const chainIds = new Set(res.auth_chain.map((e: Pdu) => eventIdFor(e, version)));
    for (const a of pdu.auth_events) assert.ok(stateIds.has(a) || chainIds.has(a), `auth event ${a} is sent`);
    for (const e of res.auth_chain)
      for (const a of e.auth_events) assert.ok(chainIds.has(a), "the auth chain is closed");
    // Sending it again is idempotent.
    await fed("PUT", sendPath("join", id), pdu);
  });

  test("send_join with omit_members=true: no member events but the heroes', servers_in_room, a closed auth chain", async () => {
    // A room without a name or alias (heroes are sent) and one with a name (no member event is sent).
    const carol = await register(hs1.url, "carol");
    for (const named of [false, true]) {
      const body = named ? { preset: "public_chat", name: "Named" } : { preset: "public_chat" };
      const rid = (await client("POST", "/_matrix/client/v3/createRoom", body)).room_id;
      const r = await fetch(`${hs1.url}/_matrix/client/v3/join/${encodeURIComponent(rid)}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${carol.token}` },
        body: "{}",
      });
      assert.equal(r.status, 200);
      const save = roomId;
      roomId = rid;
      try {
        const { pdu, id } = await filled("join");
        assert.equal(await fedStatus("PUT", `${sendPath("join", id)}?omit_members=maybe`, pdu), 400);
        const res = await fed("PUT", `${sendPath("join", id)}?omit_members=true`, pdu);
        assertSpec("server-server/joins-v2.yaml", "/send_join/{roomId}/{eventId}", "PUT", 200, res);
        assert.equal(res.members_omitted, true);
        assert.deepEqual(res.servers_in_room, ["hs1.test"]);
        const sentMembers = res.state.filter((e: Pdu) => e.type === "m.room.member").map((e: Pdu) => e.state_key);
        assert.deepEqual(sentMembers.sort(), named ? [] : [alice.userId, carol.userId].sort(), `named: ${named}`);
        const types = res.state.map((e: Pdu) => `${e.type}|${e.state_key}`);
        for (const t of ["m.room.create|", "m.room.join_rules|", "m.room.power_levels|"])
          assert.ok(types.includes(t), `state has ${t}`);
        // The join's auth events and every auth event of what is sent are in `state` or `auth_chain`.
        const sent = new Set([...res.state, ...res.auth_chain].map((e: Pdu) => eventIdFor(e, version)));
        for (const e of [pdu, ...res.state, ...res.auth_chain])
          for (const a of e.auth_events) assert.ok(sent.has(a), `auth event ${a} is sent`);
        assert.ok(
          res.auth_chain.every(
            (e: Pdu) => !res.state.some((x: Pdu) => eventIdFor(x, version) === eventIdFor(e, version)),
          ),
          "nothing twice",
        );
        assert.ok((await members()).includes(bob));
      } finally {
        roomId = save;
      }
    }
  });

  test("send_leave: bob has left; a join to send_leave is refused", async () => {
    const wrong = await filled("join");
    assert.equal(await fedStatus("PUT", sendPath("leave", wrong.id), wrong.pdu), 400);
    const { pdu, id } = await filled("leave");
    assert.deepEqual(await fed("PUT", sendPath("leave", id), pdu), {});
    assert.ok(!(await members()).includes(bob));
    assert.equal((await hs1.hs.store.events.getMembership(roomId, bob))?.membership, "leave");
  });
});
