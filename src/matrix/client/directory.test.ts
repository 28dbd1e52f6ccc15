import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice");
  bob = await srv.user("bob");
});
after(() => srv.close());

test("aliases: create, resolve, list, conflict, delete, canonical alias checks", async () => {
  const roomId = (await alice.call("POST", `${V3}/createRoom`, { preset: "public_chat" })).body.room_id;
  const alias = "#fun:rooms.test";
  const put = await alice.call("PUT", `${V3}/directory/room/${enc(alias)}`, { room_id: roomId });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  assertSpec("directory.yaml", "/directory/room/{roomAlias}", "PUT", 200, put.body);
  const dup = await alice.call("PUT", `${V3}/directory/room/${enc(alias)}`, { room_id: roomId });
  assert.equal(dup.status, 409);
  const got = await srv.call("GET", `${V3}/directory/room/${enc(alias)}`);
  assert.equal(got.status, 200);
  assertSpec("directory.yaml", "/directory/room/{roomAlias}", "GET", 200, got.body);
  assert.deepEqual(got.body, { room_id: roomId, servers: ["rooms.test"] });
  const list = await alice.call("GET", `${V3}/rooms/${enc(roomId)}/aliases`);
  assert.deepEqual(list.body, { aliases: [alias] });
  assertSpec("directory.yaml", "/rooms/{roomId}/aliases", "GET", 200, list.body);
  assert.equal((await bob.call("GET", `${V3}/rooms/${enc(roomId)}/aliases`)).status, 403);
  // bob is not in the room: cannot add an alias to it, nor delete alice's
  assert.equal(
    (await bob.call("PUT", `${V3}/directory/room/${enc("#bobs:rooms.test")}`, { room_id: roomId })).status,
    403,
  );
  assert.equal((await bob.call("DELETE", `${V3}/directory/room/${enc(alias)}`)).status, 403);
  // canonical alias must point to this room
  const bad = await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.canonical_alias/`, {
    alias: "#nope:rooms.test",
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.errcode, "M_BAD_ALIAS");
  const good = await alice.call("PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.canonical_alias/`, { alias });
  assert.equal(good.status, 200);
  // join by the new alias
  const j = await bob.call("POST", `${V3}/join/${enc(alias)}`, {});
  assert.equal(j.body.room_id, roomId);
  // invalid and remote aliases
  assert.equal(
    (await alice.call("PUT", `${V3}/directory/room/${enc("#x:other.server")}`, { room_id: roomId })).body.errcode,
    "M_INVALID_PARAM",
  );
  assert.equal((await alice.call("GET", `${V3}/directory/room/nonsense`)).body.errcode, "M_INVALID_PARAM");
  assert.equal((await alice.call("DELETE", `${V3}/directory/room/${enc(alias)}`)).status, 200);
  const gone = await srv.call("GET", `${V3}/directory/room/${enc(alias)}`);
  assert.equal(gone.status, 404);
  assert.equal(gone.body.errcode, "M_NOT_FOUND");
});

test("room directory: visibility, publicRooms GET and POST with search and paging", async () => {
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await alice.call("POST", `${V3}/createRoom`, {
      visibility: "public",
      name: `Public ${i}`,
      topic: i === 1 ? "gardening tips" : "misc",
      room_alias_name: `pub${i}`,
    });
    ids.push(r.body.room_id);
  }
  const hidden = (await alice.call("POST", `${V3}/createRoom`, { name: "Hidden" })).body.room_id;
  await bob.call("POST", `${V3}/rooms/${enc(ids[2])}/join`, {});
  const vis = await srv.call("GET", `${V3}/directory/list/room/${enc(ids[0])}`);
  assert.deepEqual(vis.body, { visibility: "public" });
  assertSpec("list_public_rooms.yaml", "/directory/list/room/{roomId}", "GET", 200, vis.body);
  assert.deepEqual((await srv.call("GET", `${V3}/directory/list/room/${enc(hidden)}`)).body, { visibility: "private" });
  assert.equal((await srv.call("GET", `${V3}/directory/list/room/${enc("!nope:rooms.test")}`)).status, 404);

  const all = await srv.call("GET", `${V3}/publicRooms`);
  assert.equal(all.status, 200);
  assertSpec("list_public_rooms.yaml", "/publicRooms", "GET", 200, all.body);
  assert.equal(all.body.chunk.length, 3);
  assert.equal(all.body.chunk[0].room_id, ids[2], "largest room first");
  assert.equal(all.body.chunk[0].num_joined_members, 2);
  const first = all.body.chunk.find((c: any) => c.room_id === ids[1]);
  assert.equal(first.name, "Public 1");
  assert.equal(first.topic, "gardening tips");
  assert.equal(first.canonical_alias, "#pub1:rooms.test");
  assert.equal(first.join_rule, "public");
  assert.equal(first.world_readable, false);
  assert.equal(first.guest_can_join, false);

  const search = await alice.call("POST", `${V3}/publicRooms`, { filter: { generic_search_term: "GARDEN" } });
  assert.equal(search.status, 200);
  assertSpec("list_public_rooms.yaml", "/publicRooms", "POST", 200, search.body);
  assert.deepEqual(
    search.body.chunk.map((c: any) => c.room_id),
    [ids[1]],
  );
  const p1 = await srv.call("GET", `${V3}/publicRooms?limit=2`);
  assert.equal(p1.body.chunk.length, 2);
  assert.ok(p1.body.next_batch);
  const p2 = await alice.call("POST", `${V3}/publicRooms`, { limit: 2, since: p1.body.next_batch });
  assert.equal(p2.body.chunk.length, 1);
  assert.equal(p2.body.next_batch, undefined);
  assert.ok(p2.body.prev_batch);
  assert.equal(new Set([...p1.body.chunk, ...p2.body.chunk].map((c: any) => c.room_id)).size, 3);
  assert.equal((await srv.call("GET", `${V3}/publicRooms?since=bogus`)).status, 400);

  // unpublish: only someone allowed to manage the room
  assert.equal(
    (await bob.call("PUT", `${V3}/directory/list/room/${enc(ids[0])}`, { visibility: "private" })).status,
    403,
  );
  assert.equal(
    (await alice.call("PUT", `${V3}/directory/list/room/${enc(ids[0])}`, { visibility: "private" })).status,
    200,
  );
  assert.equal(
    (await alice.call("PUT", `${V3}/directory/list/room/${enc(hidden)}`, { visibility: "sideways" })).status,
    400,
  );
  const after = await srv.call("GET", `${V3}/publicRooms`);
  assert.ok(!after.body.chunk.some((c: any) => c.room_id === ids[0]));
});
