import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice", { displayname: "Alice" });
  bob = await srv.user("bob", { displayname: "Bob" });
  carol = await srv.user("carol");
});
after(() => srv.close());

async function stateOf(u: TestUser, roomId: string, type: string, key = ""): Promise<any> {
  const r = await u.call("GET", `${V3}/rooms/${enc(roomId)}/state/${type}/${enc(key)}`);
  return r.status === 200 ? r.body : null;
}

describe("room lifecycle", () => {
  test("createRoom with public preset, name, topic and alias sends the spec's events in order", async () => {
    const r = await alice.call("POST", `${V3}/createRoom`, {
      preset: "public_chat",
      name: "Lobby",
      topic: "All things",
      room_alias_name: "lobby",
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assertSpec("create_room.yaml", "/createRoom", "POST", 200, r.body);
    const roomId = r.body.room_id;
    const state = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/state`);
    assert.equal(state.status, 200);
    const types = state.body.map((e: any) => e.type);
    for (const t of [
      "m.room.create",
      "m.room.member",
      "m.room.power_levels",
      "m.room.canonical_alias",
      "m.room.join_rules",
      "m.room.history_visibility",
      "m.room.guest_access",
      "m.room.name",
      "m.room.topic",
    ]) {
      assert.ok(types.includes(t), `missing ${t}`);
    }
    const msgs = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=f&limit=50`);
    assert.deepEqual(
      msgs.body.chunk.map((e: any) => e.type),
      [
        "m.room.create",
        "m.room.member",
        "m.room.power_levels",
        "m.room.canonical_alias",
        "m.room.join_rules",
        "m.room.history_visibility",
        "m.room.guest_access",
        "m.room.name",
        "m.room.topic",
      ],
    );
    assert.deepEqual(await stateOf(alice, roomId, "m.room.name"), { name: "Lobby" });
    assert.equal((await stateOf(alice, roomId, "m.room.join_rules")).join_rule, "public");
    assert.equal((await stateOf(alice, roomId, "m.room.member", alice.userId)).displayname, "Alice");
    const full = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/state/m.room.name/?format=event`);
    assert.equal(full.body.type, "m.room.name");
    assert.equal(full.body.sender, alice.userId);
    assert.match(full.body.event_id, /^\$/);
    assert.equal((await stateOf(alice, roomId, "m.room.create")).creator, alice.userId);

    // bob joins by alias, sends, leaves; he sees history up to his leave only
    const j = await bob.call("POST", `${V3}/join/${enc("#lobby:rooms.test")}`, {});
    assert.equal(j.status, 200, JSON.stringify(j.body));
    assert.equal(j.body.room_id, roomId);
    assert.equal((await stateOf(alice, roomId, "m.room.member", bob.userId)).displayname, "Bob");
    const s1 = await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/t1`, {
      msgtype: "m.text",
      body: "hi",
    });
    assert.equal(s1.status, 200);
    const joined = await bob.call("GET", `${V3}/joined_rooms`);
    assert.deepEqual(joined.body.joined_rooms, [roomId]);
    assertSpec("list_joined_rooms.yaml", "/joined_rooms", "GET", 200, joined.body);
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/after`, {
      msgtype: "m.text",
      body: "after bob left",
    });
    const seen = await bob.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    assert.equal(seen.status, 200, JSON.stringify(seen.body));
    const bodies = seen.body.chunk.map((e: any) => e.content.body).filter(Boolean);
    assert.ok(bodies.includes("hi"));
    assert.ok(!bodies.includes("after bob left"), "a user who left must not see later events");
    assert.equal(seen.body.chunk[0].content.membership, "leave");
    assert.deepEqual((await bob.call("GET", `${V3}/joined_rooms`)).body.joined_rooms, []);
    // forget: only after leaving; the room's history is still readable by others
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/forget`, {})).status, 200);
    assert.equal((await alice.call("POST", `${V3}/rooms/${enc(roomId)}/forget`, {})).status, 400);
    // carol never joined: no reading
    const nope = await carol.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b`);
    assert.equal(nope.status, 403);
    assert.equal(nope.body.errcode, "M_FORBIDDEN");
  });

  test("private room: invite, join, kick, ban, unban", async () => {
    const r = await alice.call("POST", `${V3}/createRoom`, {
      preset: "private_chat",
      invite: [bob.userId],
      is_direct: true,
    });
    assert.equal(r.status, 200);
    const roomId = r.body.room_id;
    const invite = await stateOf(alice, roomId, "m.room.member", bob.userId);
    assert.equal(invite.membership, "invite");
    assert.equal(invite.is_direct, true);
    // carol is not invited: cannot join an invite-only room
    const cj = await carol.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {});
    assert.equal(cj.status, 403);
    assert.equal(cj.body.errcode, "M_FORBIDDEN");
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    // bob (level 0) may not kick alice
    const bk = await bob.call("POST", `${V3}/rooms/${enc(roomId)}/kick`, { user_id: alice.userId });
    assert.equal(bk.status, 403);
    // alice invites carol, then kicks bob
    assert.equal(
      (await alice.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: carol.userId })).status,
      200,
    );
    assert.equal(
      (await alice.call("POST", `${V3}/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: "bye" })).status,
      200,
    );
    const kicked = await stateOf(alice, roomId, "m.room.member", bob.userId);
    assert.deepEqual([kicked.membership, kicked.reason], ["leave", "bye"]);
    // ban: bob cannot rejoin even with an invite
    assert.equal((await alice.call("POST", `${V3}/rooms/${enc(roomId)}/ban`, { user_id: bob.userId })).status, 200);
    const inv = await alice.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    assert.equal(inv.status, 403);
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {})).status, 403);
    // unban, invite, join
    assert.equal((await alice.call("POST", `${V3}/rooms/${enc(roomId)}/unban`, { user_id: bob.userId })).status, 200);
    assert.equal((await stateOf(alice, roomId, "m.room.member", bob.userId)).membership, "leave");
    assert.equal((await alice.call("POST", `${V3}/rooms/${enc(roomId)}/unban`, { user_id: bob.userId })).status, 403);
    assert.equal((await alice.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob.userId })).status, 200);
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    // joining twice is harmless
    assert.equal((await bob.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {})).status, 200);
    const jm = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/joined_members`);
    assert.deepEqual(Object.keys(jm.body.joined).sort(), [alice.userId, bob.userId].sort());
    assert.equal(jm.body.joined[alice.userId].display_name, "Alice");
    assertSpec("rooms.yaml", "/rooms/{roomId}/joined_members", "GET", 200, jm.body);
    // carol rejects her invite
    assert.equal((await carol.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {})).status, 200);
    assert.equal((await stateOf(alice, roomId, "m.room.member", carol.userId)).membership, "leave");
  });
});

describe("authorization over HTTP", () => {
  let roomId: string;
  before(async () => {
    roomId = (await alice.call("POST", `${V3}/createRoom`, { preset: "public_chat" })).body.room_id;
    await bob.call("POST", `${V3}/rooms/${enc(roomId)}/join`, {});
  });

  test("a member without the level cannot change name or power levels", async () => {
    const n = await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.name/`, { name: "mine" });
    assert.equal(n.status, 403);
    assert.equal(n.body.errcode, "M_FORBIDDEN");
    const pl = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/state/m.room.power_levels/`);
    const raised = { ...pl.body, users: { ...pl.body.users, [bob.userId]: 100 } };
    const p = await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.power_levels/`, raised);
    assert.equal(p.status, 403);
    // alice can, and then bob can name the room
    const ok = await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.power_levels`, {
      ...pl.body,
      users: { ...pl.body.users, [bob.userId]: 50 },
    });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assertSpec("room_state.yaml", "/rooms/{roomId}/state/{eventType}/{stateKey}", "PUT", 200, ok.body);
    assert.equal(
      (await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.name/`, { name: "mine" })).status,
      200,
    );
    // bob at 50 cannot raise himself to 100
    const self = await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.power_levels/`, {
      ...pl.body,
      users: { ...pl.body.users, [bob.userId]: 100 },
    });
    assert.equal(self.status, 403);
  });

  test("state_key of another user, and sends to rooms one is not in, are forbidden", async () => {
    const sk = await bob.call("PUT", `${V3}/rooms/${enc(roomId)}/state/org.example.thing/${enc(alice.userId)}`, {
      x: 1,
    });
    assert.equal(sk.status, 403);
    assert.equal(sk.body.errcode, "M_FORBIDDEN");
    const out = await carol.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/x1`, {
      msgtype: "m.text",
      body: "x",
    });
    assert.equal(out.status, 403);
    assert.equal(out.body.errcode, "M_FORBIDDEN");
  });

  test("bad input gets 4xx with the right errcode, never a 500", async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ["POST", `${V3}/rooms/not-a-room/join`, {}, 400, "M_INVALID_PARAM"],
      ["POST", `${V3}/rooms/${enc("!nope:rooms.test")}/join`, {}, 404, "M_NOT_FOUND"],
      ["POST", `${V3}/join/${enc("#nope:rooms.test")}`, {}, 404, "M_NOT_FOUND"],
      ["POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: 5 }, 400, "M_BAD_JSON"],
      ["POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: "bob" }, 400, "M_INVALID_PARAM"],
      ["POST", `${V3}/rooms/${enc(roomId)}/ban`, {}, 400, "M_MISSING_PARAM"],
      ["POST", `${V3}/createRoom`, { room_version: "1" }, 400, "M_UNSUPPORTED_ROOM_VERSION"],
      ["POST", `${V3}/createRoom`, { name: 7 }, 400, "M_BAD_JSON"],
      ["POST", `${V3}/createRoom`, { invite: ["not-a-user"] }, 400, "M_INVALID_PARAM"],
      ["POST", `${V3}/createRoom`, { preset: "nope" }, 400, "M_BAD_JSON"],
      ["GET", `${V3}/rooms/${enc(roomId)}/messages?dir=x`, undefined, 400, "M_INVALID_PARAM"],
      ["GET", `${V3}/rooms/${enc(roomId)}/messages?from=garbage`, undefined, 400, "M_INVALID_PARAM"],
      ["GET", `${V3}/rooms/${enc(roomId)}/messages?filter=%7Bbad`, undefined, 400, "M_NOT_JSON"],
      ["GET", `${V3}/rooms/${enc(roomId)}/messages?filter=${enc('{"types":"x"}')}`, undefined, 400, "M_INVALID_PARAM"],
      ["GET", `${V3}/rooms/${enc(roomId)}/event/nope`, undefined, 400, "M_INVALID_PARAM"],
      ["GET", `${V3}/rooms/${enc(roomId)}/event/${enc("$nope")}`, undefined, 404, "M_NOT_FOUND"],
      ["GET", `${V3}/rooms/${enc(roomId)}/state/m.room.nothing/`, undefined, 404, "M_NOT_FOUND"],
      ["PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc("$nope")}/r1`, {}, 404, "M_NOT_FOUND"],
      ["PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc("$nope")}/r2`, { reason: 1 }, 400, "M_BAD_JSON"],
      ["PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/t`, "[1]", 400, "M_BAD_JSON"],
      ["GET", `${V3}/rooms/${enc(roomId)}/members?membership=nope`, undefined, 400, "M_INVALID_PARAM"],
    ];
    const wrong: string[] = [];
    for (const [method, path, body, status, errcode] of cases) {
      const r = await alice.call(method, path, body);
      if (r.status !== status || r.body.errcode !== errcode) {
        wrong.push(
          `${method} ${path} ${JSON.stringify(body)}: want ${status} ${errcode}, got ${r.status} ${JSON.stringify(r.body)}`,
        );
      }
    }
    assert.deepEqual(wrong, []);
    const taken = await alice.call("POST", `${V3}/createRoom`, { room_alias_name: "dup" });
    assert.equal(taken.status, 200);
    const again = await alice.call("POST", `${V3}/createRoom`, { room_alias_name: "dup" });
    assert.equal(again.status, 400);
    assert.equal(again.body.errcode, "M_ROOM_IN_USE");
  });

  test("createRoom: trusted_private_chat, power_level_content_override, initial_state, room version 11", async () => {
    const r = await alice.call("POST", `${V3}/createRoom`, {
      preset: "trusted_private_chat",
      invite: [carol.userId],
      room_version: "11",
      power_level_content_override: { events_default: 10 },
      initial_state: [
        { type: "m.room.history_visibility", content: { history_visibility: "joined" } },
        { type: "org.example.x", state_key: "k", content: { v: 1 } },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const id = r.body.room_id;
    const pl = await stateOf(alice, id, "m.room.power_levels");
    assert.equal(pl.users[carol.userId], 100);
    assert.equal(pl.events_default, 10);
    assert.equal((await stateOf(alice, id, "m.room.history_visibility")).history_visibility, "joined");
    assert.deepEqual(await stateOf(alice, id, "org.example.x", "k"), { v: 1 });
    const create = await stateOf(alice, id, "m.room.create");
    assert.equal(create.room_version, "11");
    assert.equal(create.creator, undefined);
  });
});
