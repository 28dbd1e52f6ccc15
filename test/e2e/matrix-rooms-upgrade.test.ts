/**
 * Room upgrades end to end (spec "Room Upgrades"), on SQLite and PostgreSQL: bad requests refused (no power, an
 * unknown version, a bad room ID, a missing field); an upgrade copies what Synapse copies (name, topic, join rules,
 * history visibility, encryption, power levels, bans), names the predecessor, tombstones and quietens the old room,
 * moves the aliases, the canonical alias, the directory listing and the upgrader's tags; matrix-js-sdk sees the
 * tombstone, follows it, joins the new room and walks the upgrade history both ways. An upgrader whose level is
 * below what copying needs is raised for the copy and put back after; a space keeps its children. Room version 12:
 * the room ID is the create event's hash, creators (with additional_creators) are above power levels and cannot be
 * listed there or kicked, others join and send, and a v10 room upgraded into 12 makes its upgrader a creator.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { MatrixClient, Room } from "matrix-js-sdk";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session, sdkClient, startSynced, waitFor } from "./helpers/client.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

for (const backend of BACKENDS) {
  describe(`room upgrades (${backend})`, () => {
    let hs: ChildHomeserver;
    let alice: Session;
    let bob: Session;
    let carol: Session;
    let u = "";
    let server = "";
    const clients: MatrixClient[] = [];

    const state = (s: Session, roomId: string, type: string, key = "") =>
      api(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state/${type}/${enc(key)}`, { token: s.accessToken });
    const upgrade = (s: Session, roomId: string, body: unknown) =>
      api(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/upgrade`, { token: s.accessToken, body });
    const join = (s: Session, roomId: string) =>
      ok(hs.url, "POST", `/_matrix/client/v3/join/${enc(roomId)}`, { token: s.accessToken, body: {} });

    before(async () => {
      hs = await ChildHomeserver.start({ backend });
      u = randomBytes(3).toString("hex");
      alice = await registerUser(hs.url, `alice${u}`);
      bob = await registerUser(hs.url, `bob${u}`);
      carol = await registerUser(hs.url, `carol${u}`);
      server = alice.userId.slice(alice.userId.indexOf(":") + 1);
    });
    after(async () => {
      for (const c of clients) c.stopClient();
      const errors = hs?.errorLines() ?? [];
      await hs?.dispose();
      assert.deepEqual(errors, [], "the homeserver logged internal errors");
    });

    it("copies the room, tombstones the old one, moves aliases and listing; the SDK follows", async () => {
      const alias = `#up${u}:${server}`;
      const created = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          preset: "public_chat",
          visibility: "public",
          room_version: "10",
          room_alias_name: `up${u}`,
          name: "Before",
          topic: "the topic",
          initial_state: [
            { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
          ],
        },
      });
      const oldId: string = created.room_id;
      await join(bob, oldId);
      await join(carol, oldId);
      await ok(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(oldId)}/ban`, {
        token: alice.accessToken,
        body: { user_id: carol.userId, reason: "spam" },
      });
      await ok(hs.url, "PUT", `/_matrix/client/v3/user/${enc(alice.userId)}/rooms/${enc(oldId)}/tags/u.work`, {
        token: alice.accessToken,
        body: { order: 0.5 },
      });
      // A room rule (mute-ish) and an override naming the room: both follow the upgrade.
      await ok(hs.url, "PUT", `/_matrix/client/v3/pushrules/global/room/${enc(oldId)}`, {
        token: alice.accessToken,
        body: { actions: [] },
      });
      await ok(hs.url, "PUT", `/_matrix/client/v3/pushrules/global/override/quiet${u}`, {
        token: alice.accessToken,
        body: { actions: [], conditions: [{ kind: "event_match", key: "room_id", pattern: oldId }] },
      });
      const oldPl = (await state(alice, oldId, "m.room.power_levels")).json;

      const cb = sdkClient(hs.url, bob);
      clients.push(cb);
      await startSynced(cb, { initialSyncLimit: 20 });
      await waitFor("bob's client has the room", () => cb.getRoom(oldId));

      // Refusals: bob may not send the tombstone; unknown versions, bad IDs, missing fields, unknown rooms.
      const noPower = await upgrade(bob, oldId, { new_version: "11" });
      assert.equal(noPower.status, 403, noPower.text);
      assert.equal(noPower.json.errcode, "M_FORBIDDEN");
      const badVersion = await upgrade(alice, oldId, { new_version: "9999" });
      assert.equal(badVersion.status, 400);
      assert.equal(badVersion.json.errcode, "M_UNSUPPORTED_ROOM_VERSION");
      assertSpec("room_upgrades.yaml", "/rooms/{roomId}/upgrade", "POST", 400, badVersion.json);
      const missing = await upgrade(alice, oldId, {});
      assert.equal(missing.status, 400);
      assert.equal(missing.json.errcode, "M_MISSING_PARAM");
      const badId = await upgrade(alice, "not-a-room", { new_version: "11" });
      assert.equal(badId.status, 400);
      const unknown = await upgrade(alice, `!nope${u}:${server}`, { new_version: "11" });
      assert.equal(unknown.status, 404);

      const r = await upgrade(alice, oldId, { new_version: "11" });
      assert.equal(r.status, 200, r.text);
      assertSpec("room_upgrades.yaml", "/rooms/{roomId}/upgrade", "POST", 200, r.json);
      const newId: string = r.json.replacement_room;
      assert.notEqual(newId, oldId);
      const retried = await upgrade(alice, oldId, { new_version: "11" });
      assert.equal(retried.json.replacement_room, newId, "a retried upgrade answers the same room (as Synapse)");

      // The new room: predecessor, version, copied state, bans, the old power levels restored.
      const create = (await state(alice, newId, "m.room.create")).json;
      assert.equal(create.room_version, "11");
      assert.equal(create.predecessor.room_id, oldId);
      assert.match(create.predecessor.event_id, /^\$/);
      assert.equal((await state(alice, newId, "m.room.name")).json.name, "Before");
      assert.equal((await state(alice, newId, "m.room.topic")).json.topic, "the topic");
      assert.equal((await state(alice, newId, "m.room.join_rules")).json.join_rule, "public");
      assert.equal((await state(alice, newId, "m.room.history_visibility")).json.history_visibility, "joined");
      assert.equal((await state(alice, newId, "m.room.encryption")).json.algorithm, "m.megolm.v1.aes-sha2");
      const ban = (await state(alice, newId, "m.room.member", carol.userId)).json;
      assert.deepEqual([ban.membership, ban.reason], ["ban", "spam"]);
      assert.deepEqual((await state(alice, newId, "m.room.power_levels")).json, oldPl);

      // The old room: tombstone, members quietened, canonical alias handed over.
      const tomb = (await state(alice, oldId, "m.room.tombstone")).json;
      assert.equal(tomb.replacement_room, newId);
      const restricted = (await state(alice, oldId, "m.room.power_levels")).json;
      assert.deepEqual([restricted.events_default, restricted.invite], [50, 50]);
      assert.equal((await state(alice, oldId, "m.room.canonical_alias")).json.alias, undefined);
      assert.equal((await state(alice, newId, "m.room.canonical_alias")).json.alias, alias);
      const resolved = await ok(hs.url, "GET", `/_matrix/client/v3/directory/room/${enc(alias)}`);
      assert.equal(resolved.room_id, newId);
      const listed = await ok(hs.url, "GET", "/_matrix/client/v3/publicRooms");
      const ids = listed.chunk.map((c: { room_id: string }) => c.room_id);
      assert.ok(ids.includes(newId) && !ids.includes(oldId), "the directory lists the new room, not the old");
      const tags = await ok(hs.url, "GET", `/_matrix/client/v3/user/${enc(alice.userId)}/rooms/${enc(newId)}/tags`, {
        token: alice.accessToken,
      });
      assert.deepEqual(tags.tags, { "u.work": { order: 0.5 } });
      const rules = (await ok(hs.url, "GET", "/_matrix/client/v3/pushrules/", { token: alice.accessToken })).global;
      assert.ok(
        rules.room.some((x: { rule_id: string }) => x.rule_id === newId),
        "the room rule is copied",
      );
      const copied = rules.override.find((x: { rule_id: string }) => x.rule_id === newId);
      assert.deepEqual(copied?.conditions, [{ kind: "event_match", key: "room_id", pattern: newId }]);
      assert.ok(
        rules.override.some((x: { rule_id: string }) => x.rule_id === `quiet${u}`),
        "the original stays",
      );
      const speak = await api(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(oldId)}/send/m.room.message/t1`, {
        token: bob.accessToken,
        body: { msgtype: "m.text", body: "still here?" },
      });
      assert.equal(speak.status, 403, "an ordinary member can no longer speak in the old room");
      // Members are not joined for them: bob is still only in the old room.
      const bobRooms = await ok(hs.url, "GET", "/_matrix/client/v3/joined_rooms", { token: bob.accessToken });
      assert.deepEqual(bobRooms.joined_rooms, [oldId]);

      // matrix-js-sdk: the tombstone arrives through /sync; bob follows it and joins the replacement.
      const oldRoom = cb.getRoom(oldId) as Room;
      const tombEv = await waitFor("the tombstone in bob's client", () =>
        oldRoom.currentState.getStateEvents("m.room.tombstone", ""),
      );
      assert.equal(tombEv.getContent().replacement_room, newId);
      await cb.joinRoom(newId);
      const newRoom = await waitFor("the new room in bob's client", () => {
        const room = cb.getRoom(newId);
        return room?.getMyMembership() === "join" && room.currentState.getStateEvents("m.room.create", "")
          ? room
          : null;
      });
      const pred = newRoom.findPredecessor();
      assert.equal(pred?.roomId, oldId);
      assert.deepEqual(
        cb.getRoomUpgradeHistory(newId).map((room) => room.roomId),
        [oldId, newId],
      );
      assert.deepEqual(
        cb.getRoomUpgradeHistory(oldId, false, true).map((room) => room.roomId),
        [oldId, newId],
        "the old room's successor is found through its tombstone",
      );
      const recommended = await newRoom.getRecommendedVersion();
      assert.equal(recommended.version, "11");
      assert.equal(recommended.needsUpgrade, false);
    });

    it("an upgrader below the level copying needs is raised for it, then put back; a space keeps its children", async () => {
      const child = (await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body: {} }))
        .room_id;
      const space = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          preset: "public_chat",
          creation_content: { type: "m.space" },
          power_level_content_override: {
            users: { [alice.userId]: 100, [bob.userId]: 90 },
            state_default: 100,
            events: { "m.room.tombstone": 90, "m.room.power_levels": 100 },
          },
          initial_state: [
            { type: "m.space.child", state_key: child, content: { via: [server], suggested: true } },
            { type: "m.space.child", state_key: `!gone${u}:${server}`, content: {} },
          ],
        },
      });
      const oldId: string = space.room_id;
      await join(bob, oldId);
      // Two requests at once: one upgrade, one answer.
      const [r, twin] = await Promise.all([
        upgrade(bob, oldId, { new_version: "10" }),
        upgrade(bob, oldId, { new_version: "10" }),
      ]);
      assert.equal(r.status, 200, r.text);
      const newId: string = r.json.replacement_room;
      assert.equal(twin.json.replacement_room, newId);
      const other = await upgrade(alice, oldId, { new_version: "10" });
      assert.equal(other.status, 400, "another user's upgrade of the same room is refused meanwhile");
      const create = (await state(bob, newId, "m.room.create")).json;
      assert.equal(create.type, "m.space", "the room type is kept");
      const pl = (await state(bob, newId, "m.room.power_levels")).json;
      assert.equal(pl.users[bob.userId], 90, "bob's own level is back to 90 after the copy");
      assert.equal(pl.state_default, 100);
      const kids = (await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(newId)}/state`, { token: bob.accessToken }))
        .filter((e: { type: string }) => e.type === "m.space.child")
        .map((e: { state_key: string }) => e.state_key);
      assert.deepEqual(kids, [child], "the live child is copied, the removed one is not");
    });

    it("room version 12: hashed room ID, creators above power levels, join and send, a v10 room upgraded to 12", async () => {
      const caps = await ok(hs.url, "GET", "/_matrix/client/v3/capabilities", { token: alice.accessToken });
      assert.equal(caps.capabilities["m.room_versions"].available["12"], "stable");
      assert.equal(caps.capabilities["m.room_versions"].default, "10", "the default stays");
      // Creators may not be listed in power levels: refused before anything is made.
      const listed = await api(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { room_version: "12", power_level_content_override: { users: { [alice.userId]: 100 } } },
      });
      assert.equal(listed.status, 400, listed.text);
      const badCreators = await api(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { room_version: "12", creation_content: { additional_creators: ["not-a-user"] } },
      });
      assert.equal(badCreators.status, 400, badCreators.text);
      // Power levels given without a tombstone level still get one above state_default.
      const given = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          room_version: "12",
          initial_state: [{ type: "m.room.power_levels", content: { state_default: 60, events: {} } }],
        },
      });
      const givenPl = (await state(alice, given.room_id, "m.room.power_levels")).json;
      assert.equal(givenPl.events["m.room.tombstone"], 150);
      assert.equal(givenPl.state_default, 60);
      // A DM (trusted private chat): the invitee becomes an additional creator instead of a listed 100.
      const dm = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { room_version: "12", preset: "trusted_private_chat", invite: [carol.userId], is_direct: true },
      });
      assert.deepEqual((await state(alice, dm.room_id, "m.room.create")).json.additional_creators, [carol.userId]);
      assert.deepEqual((await state(alice, dm.room_id, "m.room.power_levels")).json.users, {});

      const made = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { room_version: "12", preset: "public_chat", creation_content: { additional_creators: [bob.userId] } },
      });
      const roomId: string = made.room_id;
      assert.match(roomId, /^![A-Za-z0-9_-]{43}$/, "no server part: the create event's hash");
      const createEv = (
        await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state`, { token: alice.accessToken })
      ).find((e: { type: string }) => e.type === "m.room.create");
      assert.equal(createEv.event_id, `$${roomId.slice(1)}`, "the room ID is the create event's ID");
      assert.deepEqual(createEv.content.additional_creators, [bob.userId]);
      assert.equal(createEv.content.room_version, "12");
      const pl = (await state(alice, roomId, "m.room.power_levels")).json;
      assert.deepEqual(pl.users, {}, "creators are not listed");
      assert.equal(pl.events["m.room.tombstone"], 150);

      await join(bob, roomId);
      await join(carol, roomId);
      const sent = await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/t12${u}`, {
        token: carol.accessToken,
        body: { msgtype: "m.text", body: "hello v12" },
      });
      const msg = await ok(hs.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(sent.event_id)}`, {
        token: bob.accessToken,
      });
      assert.equal(msg.content.body, "hello v12");
      assert.equal(msg.room_id, roomId);
      // bob, an additional creator, is above any level: he raises carol to 100 and kicks nobody above him.
      await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`, {
        token: bob.accessToken,
        body: { ...pl, users: { [carol.userId]: 100 } },
      });
      const kickCreator = await api(hs.url, "POST", `/_matrix/client/v3/rooms/${enc(roomId)}/kick`, {
        token: carol.accessToken,
        body: { user_id: alice.userId },
      });
      assert.equal(kickCreator.status, 403, "a 100 cannot kick a creator");
      const listCreator = await api(
        hs.url,
        "PUT",
        `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.power_levels/`,
        {
          token: bob.accessToken,
          body: { ...pl, users: { [alice.userId]: 50 } },
        },
      );
      assert.equal(listCreator.status, 403, "nor can creators be put in power levels");
      const tombstone = await upgrade(carol, roomId, { new_version: "12" });
      assert.equal(tombstone.status, 403, "upgrading needs 150: only creators by default");

      // A v10 room, bob an admin there, upgraded by alice into v12 with bob as additional creator.
      const old = await ok(hs.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          room_version: "10",
          preset: "public_chat",
          name: "old ten",
          power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 100, [carol.userId]: 50 } },
        },
      });
      await join(bob, old.room_id);
      const up = await upgrade(alice, old.room_id, { new_version: "12", additional_creators: [bob.userId] });
      assert.equal(up.status, 200, up.text);
      const newId: string = up.json.replacement_room;
      assert.match(newId, /^![A-Za-z0-9_-]{43}$/);
      const newCreate = (await state(alice, newId, "m.room.create")).json;
      assert.equal(newCreate.room_version, "12");
      assert.deepEqual(newCreate.additional_creators, [bob.userId]);
      assert.equal(newCreate.predecessor.room_id, old.room_id);
      const newPl = (await state(alice, newId, "m.room.power_levels")).json;
      assert.deepEqual(newPl.users, { [carol.userId]: 50 }, "creators dropped from the copied levels, others kept");
      assert.equal((await state(alice, newId, "m.room.name")).json.name, "old ten");
      assert.equal((await state(alice, old.room_id, "m.room.tombstone")).json.replacement_room, newId);
      await join(bob, newId);
      await join(carol, newId);
      await ok(hs.url, "PUT", `/_matrix/client/v3/rooms/${enc(newId)}/send/m.room.message/n12${u}`, {
        token: carol.accessToken,
        body: { msgtype: "m.text", body: "in the new room" },
      });
      const badUp = await upgrade(alice, newId, { new_version: "12", additional_creators: [42] });
      assert.equal(badUp.status, 400, badUp.text);
    });
  });
}
