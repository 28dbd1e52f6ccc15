/**
 * Restricted rooms (spec "Restricted rooms", join rules `restricted` and `knock_restricted`, room versions 10 and
 * 11): a member of an allowed room (a space) joins with a plain POST /join and the server vouches for the join
 * in `join_authorised_via_users_server`; anyone else gets 403 by every route, including a member event that
 * names an authorising user itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

type User = { userId: string; token: string };

for (const version of ["10", "11"]) {
  describe(`restricted joins, room version ${version}`, () => {
    let k: Kit;
    let alice: User; // creates the space and the rooms
    let bob: User; // member of the space
    let carol: User; // in no room
    let space = "";

    const create = async (who: User, body: Record<string, any>): Promise<string> => {
      const r = await k.call("POST", `${V3}/createRoom`, { room_version: version, ...body }, who.token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.room_id;
    };
    const restricted = (rule: string, allow: string[]) =>
      create(alice, {
        preset: "private_chat",
        initial_state: [
          {
            type: "m.room.join_rules",
            state_key: "",
            content: { join_rule: rule, allow: allow.map((room_id) => ({ type: "m.room_membership", room_id })) },
          },
        ],
      });
    const memberEvent = async (roomId: string, userId: string) => {
      const r = await k.call(
        "GET",
        `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}?format=event`,
        undefined,
        alice.token,
      );
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body;
    };
    const expect403 = (r: { status: number; body: any }, what: string) =>
      assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"], `${what}: ${JSON.stringify(r.body)}`);

    before(async () => {
      k = await startKit("sqlite");
      alice = await k.register("alice");
      bob = await k.register("bob");
      carol = await k.register("carol");
      space = await create(alice, { preset: "private_chat", creation_content: { type: "m.space" } });
      await k.call("POST", `${V3}/rooms/${enc(space)}/invite`, { user_id: bob.userId }, alice.token);
      assert.equal((await k.call("POST", `${V3}/join/${enc(space)}`, {}, bob.token)).status, 200);
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("a member of the allowed space joins with POST /join; the server names who authorised it", async () => {
      const room = await restricted("restricted", [space]);
      const r = await k.call("POST", `${V3}/join/${enc(room)}`, {}, bob.token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const ev = await memberEvent(room, bob.userId);
      assert.equal(ev.content.membership, "join");
      assert.equal(ev.content.join_authorised_via_users_server, alice.userId);
      // A profile update copying the old content (as clients do) drops the field instead of failing.
      const put = await k.call(
        "PUT",
        `${V3}/rooms/${enc(room)}/state/m.room.member/${enc(bob.userId)}`,
        { ...ev.content, displayname: "Bob B" },
        bob.token,
      );
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const after = await memberEvent(room, bob.userId);
      assert.equal(after.content.displayname, "Bob B");
      assert.equal(after.content.join_authorised_via_users_server, undefined);
    });

    test("someone in no allowed room gets 403 by every route", async () => {
      const room = await restricted("restricted", [space]);
      assert.equal((await k.call("POST", `${V3}/join/${enc(room)}`, {}, bob.token)).status, 200);
      expect403(await k.call("POST", `${V3}/join/${enc(room)}`, {}, carol.token), "POST /join/{roomIdOrAlias}");
      expect403(await k.call("POST", `${V3}/rooms/${enc(room)}/join`, {}, carol.token), "POST /rooms/{roomId}/join");
      // Naming a joined member who may invite, as the old server accepted from any client.
      for (const via of [alice.userId, bob.userId]) {
        const put = await k.call(
          "PUT",
          `${V3}/rooms/${enc(room)}/state/m.room.member/${enc(carol.userId)}`,
          { membership: "join", join_authorised_via_users_server: via },
          carol.token,
        );
        expect403(put, `PUT state member event naming ${via}`);
      }
      const members = await k.call("GET", `${V3}/rooms/${enc(room)}/joined_members`, undefined, alice.token);
      assert.deepEqual(Object.keys(members.body.joined).sort(), [alice.userId, bob.userId].sort());
    });

    test("knock_restricted: a knocker joins only as a member of an allowed room", async () => {
      const room = await restricted("knock_restricted", [space]);
      assert.equal((await k.call("POST", `${V3}/knock/${enc(room)}`, {}, carol.token)).status, 200);
      expect403(await k.call("POST", `${V3}/join/${enc(room)}`, {}, carol.token), "knock then POST /join");
      const put = await k.call(
        "PUT",
        `${V3}/rooms/${enc(room)}/state/m.room.member/${enc(carol.userId)}`,
        { membership: "join", join_authorised_via_users_server: alice.userId },
        carol.token,
      );
      expect403(put, "knock then PUT state join");
      assert.equal((await memberEvent(room, carol.userId)).content.membership, "knock");
      // A space member may knock too, and then join on their own.
      assert.equal((await k.call("POST", `${V3}/knock/${enc(room)}`, {}, bob.token)).status, 200);
      const joined = await k.call("POST", `${V3}/join/${enc(room)}`, {}, bob.token);
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal((await memberEvent(room, bob.userId)).content.join_authorised_via_users_server, alice.userId);
    });

    test("an invite still works without an allowed room; leaving the space ends the right to join", async () => {
      const room = await restricted("restricted", [space]);
      await k.call("POST", `${V3}/rooms/${enc(room)}/invite`, { user_id: carol.userId }, alice.token);
      assert.equal((await k.call("POST", `${V3}/join/${enc(room)}`, {}, carol.token)).status, 200);
      assert.equal((await memberEvent(room, carol.userId)).content.join_authorised_via_users_server, undefined);

      const dave = await k.register(`dave${version}`);
      await k.call("POST", `${V3}/rooms/${enc(space)}/invite`, { user_id: dave.userId }, alice.token);
      assert.equal((await k.call("POST", `${V3}/join/${enc(space)}`, {}, dave.token)).status, 200);
      assert.equal((await k.call("POST", `${V3}/rooms/${enc(space)}/leave`, {}, dave.token)).status, 200);
      expect403(await k.call("POST", `${V3}/join/${enc(room)}`, {}, dave.token), "after leaving the space");
    });

    test("an allow list of unknown rooms or no list at all admits no one", async () => {
      const none = await restricted("restricted", ["!nowhere:localhost"]);
      expect403(await k.call("POST", `${V3}/join/${enc(none)}`, {}, bob.token), "unknown allowed room");
      const empty = await restricted("restricted", []);
      expect403(await k.call("POST", `${V3}/join/${enc(empty)}`, {}, bob.token), "empty allow list");
    });
  });
}
