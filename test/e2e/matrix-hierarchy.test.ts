/**
 * Spaces end to end (spec space_hierarchy.yaml, room_summary.yaml), on SQLite and PostgreSQL: a space with rooms
 * and a subspace, walked breadth first in the spec's child order; a private child (and what hangs below it) left
 * out for a user who may not see it but shown to its member; a restricted room seen through the space that allows
 * it; max_depth, suggested_only, pagination with `from` (and tokens reused with other parameters refused); room
 * summaries with and without a token, by ID and by alias, through matrix-js-sdk too; bad input answered 4xx.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { MatrixClient } from "matrix-js-sdk";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

type Chunk = { room_id: string; children_state: { state_key: string; origin_server_ts: number }[] };

for (const backend of BACKENDS) {
  describe(`space hierarchy and room summaries (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let dave: Session;
    let server = "";
    let u = "";
    const r: Record<string, string> = {};
    let cb: MatrixClient;

    const create = async (body: Record<string, unknown>) =>
      (await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body })).room_id as string;
    const addChild = (space: string, child: string, content: Record<string, unknown>) =>
      ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, {
        token: alice.accessToken,
        body: content,
      });
    const hierarchy = (s: Session, roomId: string, query = "") =>
      api(hs.url, "GET", `/_matrix/client/v1/rooms/${enc(roomId)}/hierarchy${query}`, { token: s.accessToken });
    const names = (rooms: Chunk[]) =>
      rooms.map((c) => Object.entries(r).find(([, id]) => id === c.room_id)?.[0] ?? c.room_id);

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      u = randomBytes(3).toString("hex");
      alice = await registerUser(hs.url, `alice${u}`);
      bob = await registerUser(hs.url, `bob${u}`);
      dave = await registerUser(hs.url, `dave${u}`);
      server = alice.userId.slice(alice.userId.indexOf(":") + 1);
      const space = { creation_content: { type: "m.space" } };
      r.S = await create({ ...space, preset: "public_chat", name: "Space" });
      r.SUB = await create({ ...space, preset: "public_chat", name: "Subspace" });
      r.R1 = await create({ preset: "public_chat", name: "One", room_alias_name: `one${u}` });
      r.R2 = await create({ ...space, preset: "private_chat", name: "Private space" });
      r.R3 = await create({ preset: "public_chat", name: "Three" });
      r.R4 = await create({
        preset: "private_chat",
        name: "Restricted",
        initial_state: [
          {
            type: "m.room.join_rules",
            state_key: "",
            content: { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: r.S }] },
          },
        ],
      });
      r.R5 = await create({
        preset: "private_chat",
        name: "Readable",
        initial_state: [
          { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "world_readable" } },
        ],
      });
      r.R6 = await create({ preset: "public_chat", name: "Below the private space" });
      const via = { via: [server] };
      // S: SUB (order "a"), R1 (order "b", suggested), R2 (private, no order), an unknown room, a removed child.
      await addChild(r.S, r.R1, { ...via, order: "b", suggested: true });
      await addChild(r.S, r.SUB, { ...via, order: "a", suggested: true });
      await addChild(r.S, r.R2, via);
      await addChild(r.S, `!unknown${u}:${server}`, via);
      await addChild(r.S, r.R6, {}); // no via: not a child
      await addChild(r.SUB, r.R3, { ...via, suggested: true });
      await addChild(r.SUB, r.R4, via);
      await addChild(r.SUB, r.R5, via);
      await addChild(r.R2, r.R6, via);
      await ok(hs.url, "POST", `/_matrix/client/v3/join/${enc(r.S)}`, { token: bob.accessToken, body: {} });
      cb = sdkClient(hs.url, bob);
    });
    after(async () => {
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    it("walks breadth first in child order, leaving out what the requester may not see", async () => {
      const res = await hierarchy(bob, r.S);
      assert.equal(res.status, 200, res.text);
      assertSpec("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "GET", 200, res.json);
      assert.deepEqual(names(res.json.rooms), ["S", "SUB", "R1", "R3", "R4", "R5"]);
      assert.equal(res.json.next_batch, undefined);
      const root = res.json.rooms[0];
      assert.equal(root.room_type, "m.space");
      assert.equal(root.name, "Space");
      assert.deepEqual(
        root.children_state.map((c: { state_key: string }) => c.state_key).sort(),
        [r.SUB, r.R1, r.R2, `!unknown${u}:${server}`].sort(),
        "children_state lists every child with a via, seen or not, and not the removed one",
      );
      const r4 = res.json.rooms.find((c: Chunk) => c.room_id === r.R4);
      assert.deepEqual([r4.join_rule, r4.allowed_room_ids], ["restricted", [r.S]]);
      assert.deepEqual(r4.children_state, [], "a room that is not a space has no children");

      // alice is in the private space: she sees it and the room below it.
      const all = await hierarchy(alice, r.S);
      assert.deepEqual(names(all.json.rooms), ["S", "SUB", "R1", "R2", "R3", "R4", "R5", "R6"]);

      // The SDK's call reads the same.
      const viaSdk = await cb.getRoomHierarchy(r.S);
      assert.deepEqual(names(viaSdk.rooms as unknown as Chunk[]), ["S", "SUB", "R1", "R3", "R4", "R5"]);
    });

    it("max_depth, suggested_only and pagination", async () => {
      assert.deepEqual(names((await hierarchy(bob, r.S, "?max_depth=1")).json.rooms), ["S", "SUB", "R1"]);
      assert.deepEqual(names((await hierarchy(bob, r.S, "?max_depth=0")).json.rooms), ["S"]);
      const suggested = (await hierarchy(bob, r.S, "?suggested_only=true")).json;
      assert.deepEqual(names(suggested.rooms), ["S", "SUB", "R1", "R3"]);
      assert.deepEqual(
        suggested.rooms[0].children_state.map((c: { state_key: string }) => c.state_key).sort(),
        [r.SUB, r.R1].sort(),
      );

      const pages: string[][] = [];
      let from: string | undefined;
      do {
        const res = await hierarchy(bob, r.S, `?limit=2${from ? `&from=${enc(from)}` : ""}`);
        assert.equal(res.status, 200, res.text);
        assertSpec("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "GET", 200, res.json);
        pages.push(names(res.json.rooms));
        from = res.json.next_batch;
      } while (from && pages.length < 10);
      assert.deepEqual(pages, [
        ["S", "SUB"],
        ["R1", "R3"],
        ["R4", "R5"],
      ]);

      const first = (await hierarchy(bob, r.S, "?limit=2")).json.next_batch;
      const changed = await hierarchy(bob, r.S, `?limit=2&max_depth=1&from=${enc(first)}`);
      assert.equal(changed.status, 400);
      assert.equal(changed.json.errcode, "M_INVALID_PARAM");
      assertSpec("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "GET", 400, changed.json);
      const otherRoot = await hierarchy(bob, r.SUB, `?limit=2&from=${enc(first)}`);
      assert.equal(otherRoot.status, 400);
    });

    it("refusals: no view of the root, bad parameters", async () => {
      const hidden = await hierarchy(dave, r.R2);
      assert.equal(hidden.status, 403);
      assertSpec("space_hierarchy.yaml", "/rooms/{roomId}/hierarchy", "GET", 403, hidden.json);
      assert.equal((await hierarchy(dave, `!nope${u}:${server}`)).status, 403);
      for (const q of ["?limit=0", "?limit=x", "?max_depth=-1", "?suggested_only=maybe", "?from=garbage"]) {
        const res = await hierarchy(bob, r.S, q);
        assert.equal(res.status, 400, `${q}: ${res.text}`);
        assert.equal(res.json.errcode, "M_INVALID_PARAM", q);
      }
      assert.equal((await hierarchy(bob, "not-a-room")).status, 400);
      const anon = await api(hs.url, "GET", `/_matrix/client/v1/rooms/${enc(r.S)}/hierarchy`);
      assert.equal(anon.status, 401);
    });

    it("room summaries: the same rule, membership when authenticated, by alias, through the SDK", async () => {
      const summary = (s: Session | null, idOrAlias: string) =>
        api(hs.url, "GET", `/_matrix/client/v1/room_summary/${enc(idOrAlias)}?via=${server}`, {
          token: s?.accessToken,
        });
      const restricted = await summary(bob, r.R4);
      assert.equal(restricted.status, 200, restricted.text);
      assertSpec("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "GET", 200, restricted.json);
      assert.equal(restricted.json.membership, "leave");
      assert.deepEqual(restricted.json.allowed_room_ids, [r.S]);
      assert.equal(restricted.json.room_version, "10");

      const mine = await summary(alice, r.R2);
      assert.equal(mine.json.membership, "join");
      assert.equal(mine.json.room_type, "m.space");
      const hidden = await summary(bob, r.R2);
      assert.equal(hidden.status, 404);
      assertSpec("room_summary.yaml", "/room_summary/{roomIdOrAlias}", "GET", 404, hidden.json);

      const anonPublic = await summary(null, `#one${u}:${server}`);
      assert.equal(anonPublic.status, 200, anonPublic.text);
      assert.equal(anonPublic.json.room_id, r.R1);
      assert.equal(anonPublic.json.membership, undefined, "no membership without a token");
      assert.equal(anonPublic.json.canonical_alias, `#one${u}:${server}`);
      assert.equal((await summary(null, r.R5)).json.world_readable, true);
      assert.equal((await summary(null, r.R4)).status, 404, "restricted rooms need a requester in an allowed room");
      assert.equal((await summary(dave, r.R4)).status, 404);

      assert.equal((await summary(bob, `#missing${u}:${server}`)).status, 404);
      assert.equal((await summary(bob, "#bad")).status, 400);
      assert.equal((await summary(bob, "nothing")).status, 400);
      assert.equal((await summary(bob, `!nope${u}:${server}`)).status, 404);
      const badToken = await api(hs.url, "GET", `/_matrix/client/v1/room_summary/${enc(r.R1)}`, { token: "nope" });
      assert.deepEqual([badToken.status, badToken.json.errcode], [401, "M_UNKNOWN_TOKEN"]);

      const viaSdk = await cb.getRoomSummary(r.R4, [server]);
      assert.equal(viaSdk.room_id, r.R4);
      assert.equal(viaSdk.membership, "leave");
    });
  });
}
