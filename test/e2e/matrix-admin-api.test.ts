/**
 * Synapse-compatible admin API, the parts operators' tools (synadm, synapse-admin) use: content reports (and the
 * client-server reporting routes, which must not reveal events the reporter cannot see), users (filters, shadow
 * ban, password reset, whois, login-as, devices), rooms (list, details, messages past history visibility, block,
 * shutdown v1 and v2) and media (room media, quarantine, deletion releasing the content-addressed store's hold).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { sdkClient } from "./helpers/client.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

const A1 = "/_synapse/admin/v1";
const A2 = "/_synapse/admin/v2";
type Login = { userId: string; token: string; deviceId: string };

for (const backend of BACKENDS) {
  describe(`Synapse admin API on ${backend}`, () => {
    let k: Kit;
    let admin: Login;
    let alice: Login;
    let bob: Login;
    let carol: Login;
    let txn = 0;

    const as = (who: Login) => ({
      get: (p: string) => k.call("GET", p, undefined, who.token),
      post: (p: string, b: unknown = {}) => k.call("POST", p, b, who.token),
      put: (p: string, b: unknown = {}) => k.call("PUT", p, b, who.token),
      del: (p: string, b?: unknown) => k.call("DELETE", p, b, who.token),
    });
    const ok = <T extends { status: number; body: any }>(r: T, status = 200): T => {
      assert.equal(r.status, status, JSON.stringify(r.body));
      return r;
    };
    const err = (r: { status: number; body: any }, status: number, errcode: string, what = "") =>
      assert.deepEqual([r.status, r.body.errcode], [status, errcode], `${what} ${JSON.stringify(r.body)}`);
    const createRoom = async (who: Login, body: Record<string, unknown> = {}) =>
      ok(await as(who).post(`${V3}/createRoom`, body)).body.room_id as string;
    const send = async (who: Login, roomId: string, content: Record<string, unknown>) =>
      (await as(who).put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/t${++txn}`, content)).body.event_id as string;
    const join = (who: Login, roomId: string) => as(who).post(`${V3}/join/${enc(roomId)}`);
    const upload = async (who: Login, bytes: Buffer) =>
      ok(
        await k.call("POST", "/_matrix/media/v3/upload?filename=x.txt", bytes, who.token, {
          "Content-Type": "text/plain",
        }),
      ).body.content_uri as string;
    const download = (who: Login, mxc: string) =>
      as(who).get(`/_matrix/client/v1/media/download/${mxc.slice("mxc://".length)}`);

    before(async () => {
      k = await startKit(backend);
      admin = await k.register("root");
      await k.hs.store.accounts.updateUser(admin.userId, { admin: true });
      alice = await k.register("alice");
      bob = await k.register("bob");
      carol = await k.register("carol");
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("every new admin route: 403 M_FORBIDDEN for a non-admin", async () => {
      const u = enc(bob.userId);
      const routes: [string, string, unknown?][] = [
        ["GET", `${A1}/event_reports`],
        ["GET", `${A1}/event_reports/1`],
        ["DELETE", `${A1}/event_reports/1`],
        ["GET", `${A1}/user_reports`],
        ["POST", `${A1}/reset_password/${u}`, { new_password: "x" }],
        ["GET", `${A1}/whois/${u}`],
        ["POST", `${A1}/users/${u}/login`, {}],
        ["POST", `${A1}/users/${u}/shadow_ban`, {}],
        ["DELETE", `${A1}/users/${u}/shadow_ban`],
        ["GET", `${A1}/users/${u}/joined_rooms`],
        ["GET", `${A2}/users/${u}/devices`],
        ["GET", `${A1}/users/${u}/media`],
        ["DELETE", `${A1}/users/${u}/media`],
        ["GET", `${A1}/rooms/!x:localhost`],
        ["GET", `${A1}/rooms/!x:localhost/members`],
        ["GET", `${A1}/rooms/!x:localhost/messages`],
        ["PUT", `${A1}/rooms/!x:localhost/block`, { block: true }],
        ["DELETE", `${A1}/rooms/!x:localhost`, {}],
        ["DELETE", `${A2}/rooms/!x:localhost`, {}],
        ["GET", `${A1}/room/!x:localhost/media`],
        ["POST", `${A1}/media/quarantine/localhost/abc`, {}],
        ["DELETE", `${A1}/media/localhost/abc`],
        ["POST", `${A1}/media/delete?before_ts=1`, {}],
      ];
      for (const [m, p, b] of routes) err(await k.call(m, p, b, bob.token), 403, "M_FORBIDDEN", `${m} ${p}`);
    });

    test("reports: a reporter who cannot see the event gets the same 404 as for no event; admins list, show, delete", async () => {
      const roomId = await createRoom(alice, {
        preset: "public_chat",
        name: "Reported",
        initial_state: [
          { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
        ],
      });
      const early = await send(alice, roomId, { msgtype: "m.text", body: "before bob" });
      ok(await join(bob, roomId));
      const bad = await send(alice, roomId, { msgtype: "m.text", body: "offensive" });

      const report = (who: Login, eventId: string, body: unknown = { reason: "spam", score: -100 }) =>
        as(who).post(`${V3}/rooms/${enc(roomId)}/report/${enc(eventId)}`, body);
      const r = ok(await report(bob, bad));
      assertSpec("report_content.yaml", "/rooms/{roomId}/report/{eventId}", "POST", 200, r.body);
      const missing = await report(bob, "$nope");
      err(missing, 404, "M_NOT_FOUND");
      const hidden = await report(bob, early);
      assert.deepEqual(
        hidden.body,
        missing.body,
        "an event bob may not see answers exactly as one that does not exist",
      );
      err(hidden, 404, "M_NOT_FOUND");
      const outsider = await report(carol, bad);
      assert.deepEqual([outsider.status, outsider.body], [404, missing.body], "a non-member learns nothing either");
      err(await report(bob, bad, { score: "x" }), 400, "M_BAD_JSON");
      err(await as(bob).post(`${V3}/rooms/${enc(roomId)}/report/notanid`, {}), 400, "M_INVALID_PARAM");

      ok(await as(carol).post(`${V3}/rooms/${enc(roomId)}/report`, { reason: "bad room" }));
      err(await as(carol).post(`${V3}/rooms/${enc("!nope:localhost")}/report`, { reason: "x" }), 404, "M_NOT_FOUND");
      err(await as(carol).post(`${V3}/rooms/${enc(roomId)}/report`, {}), 400, "M_MISSING_PARAM");
      const ur = ok(await as(carol).post(`${V3}/users/${enc(alice.userId)}/report`, { reason: "rude" }));
      assertSpec("report_content.yaml", "/users/{userId}/report", "POST", 200, ur.body);
      err(await as(carol).post(`${V3}/users/${enc("@ghost:localhost")}/report`, { reason: "x" }), 404, "M_NOT_FOUND");

      ok(await report(bob, bad, { reason: "again" }));
      const list = ok(await as(admin).get(`${A1}/event_reports?limit=1`)).body;
      assert.equal(list.total, 2);
      assert.equal(list.next_token, 1);
      const [newest] = list.event_reports;
      assert.deepEqual(
        { ...newest, id: 0, received_ts: 0 },
        {
          id: 0,
          received_ts: 0,
          room_id: roomId,
          name: "Reported",
          event_id: bad,
          user_id: bob.userId,
          reason: "again",
          score: null,
          sender: alice.userId,
          canonical_alias: null,
        },
      );
      const older = ok(await as(admin).get(`${A1}/event_reports?from=1&dir=b`)).body;
      assert.deepEqual(
        [older.event_reports.length, older.event_reports[0].score, older.next_token],
        [1, -100, undefined],
      );
      assert.equal(ok(await as(admin).get(`${A1}/event_reports?user_id=${enc(carol.userId)}`)).body.total, 0);
      assert.equal(ok(await as(admin).get(`${A1}/event_reports?room_id=${enc(roomId)}`)).body.total, 2);
      assert.equal(
        ok(await as(admin).get(`${A1}/event_reports?event_sender_user_id=${enc(alice.userId)}`)).body.total,
        2,
      );
      const shown = ok(await as(admin).get(`${A1}/event_reports/${newest.id}`)).body;
      assert.equal(shown.event_json.content.body, "offensive");
      err(await as(admin).get(`${A1}/event_reports/abc`), 400, "M_INVALID_PARAM");
      err(await as(admin).get(`${A1}/event_reports?dir=x`), 400, "M_INVALID_PARAM");
      ok(await as(admin).del(`${A1}/event_reports/${newest.id}`));
      err(await as(admin).get(`${A1}/event_reports/${newest.id}`), 404, "M_NOT_FOUND");
      err(await as(admin).del(`${A1}/event_reports/${newest.id}`), 404, "M_NOT_FOUND");

      const users = ok(await as(admin).get(`${A1}/user_reports`)).body;
      assert.equal(users.total, 1);
      assert.deepEqual(
        [users.user_reports[0].target_user_id, users.user_reports[0].user_id, users.user_reports[0].reason],
        [alice.userId, carol.userId, "rude"],
      );
    });

    test("matrix-js-sdk's Synapse admin calls: isSynapseAdministrator, whoisSynapseUser, deactivateSynapseUser", async () => {
      const session = (l: Login) => ({ userId: l.userId, accessToken: l.token, deviceId: l.deviceId });
      const root = sdkClient(k.url, session(admin));
      const plainClient = sdkClient(k.url, session(carol));
      assert.equal(await root.isSynapseAdministrator(), true);
      await assert.rejects(plainClient.isSynapseAdministrator(), (e: { httpStatus?: number }) => e.httpStatus === 403);
      const eve = await k.register("eve");
      const who = await root.whoisSynapseUser(eve.userId);
      assert.deepEqual(Object.keys(who.devices), [eve.deviceId]);
      await root.deactivateSynapseUser(eve.userId);
      assert.equal((await k.hs.store.accounts.getUser(eve.userId))?.deactivated, true);
    });

    test("users: list filters and orders, paging by next_token; bad parameters are 400", async () => {
      ok(
        await as(admin).put(`${A2}/users/${enc("@zed:localhost")}`, { displayname: "Zorro Hidden", password: "pw1" }),
        201,
      );
      const names = async (q: string) => {
        const b = ok(await as(admin).get(`${A2}/users?${q}`)).body;
        return {
          names: b.users.map((u: { name: string }) => u.name.slice(1).split(":")[0]),
          total: b.total,
          next: b.next_token,
        };
      };
      assert.deepEqual((await names("name=ZORRO")).names, ["zed"], "display name, any case");
      assert.deepEqual((await names("name=localhost")).names, [], "name matches localparts, not the server");
      assert.deepEqual((await names("name=aro")).names, ["carol"]);
      assert.deepEqual((await names("admins=true")).names, ["root"]);
      assert.ok(!(await names("admins=false")).names.includes("root"));
      const first = await names("limit=2");
      assert.deepEqual([first.names, first.next], [["alice", "bob"], "2"], "next_token is a string offset");
      assert.deepEqual((await names(`from=${first.next}&limit=2`)).names, ["carol", "root"]);
      const newest = await names("order_by=creation_ts&dir=b&limit=1");
      assert.deepEqual(newest.names, ["zed"]);
      const u = ok(await as(admin).get(`${A2}/users/${enc("@zed:localhost")}`)).body;
      assert.deepEqual([u.shadow_banned, u.erased, u.displayname, u.locked], [false, false, "Zorro Hidden", false]);
      err(await as(admin).get(`${A2}/users?order_by=nonsense`), 400, "M_INVALID_PARAM");
      err(await as(admin).get(`${A2}/users?from=-1`), 400, "M_INVALID_PARAM");
      err(await as(admin).get(`${A2}/users?admins=maybe`), 400, "M_INVALID_PARAM");
      err(await as(admin).get(`${A2}/users/${enc("@ghost:localhost")}`), 404, "M_NOT_FOUND");
      assert.deepEqual(ok(await as(admin).get(`${A1}/users/${enc(admin.userId)}/admin`)).body, { admin: true });
      ok(await as(admin).put(`${A1}/users/${enc("@zed:localhost")}/admin`, { admin: true }));
      assert.equal(ok(await as(admin).get(`${A2}/users/${enc("@zed:localhost")}`)).body.admin, true);
      ok(await as(admin).put(`${A1}/users/${enc("@zed:localhost")}/admin`, { admin: false }));
      err(await as(admin).put(`${A1}/users/${enc(admin.userId)}/admin`, { admin: false }), 403, "M_FORBIDDEN");
      err(await as(bob).get(`${A1}/users/${enc(bob.userId)}/admin`), 403, "M_FORBIDDEN");
    });

    test("shadow ban: the user's sends get event IDs but reach nobody; lifted, they flow again", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat" });
      ok(await join(bob, roomId));
      ok(await as(admin).post(`${A1}/users/${enc(bob.userId)}/shadow_ban`));
      assert.equal(ok(await as(admin).get(`${A2}/users/${enc(bob.userId)}`)).body.shadow_banned, true);
      const ghost = await send(bob, roomId, { msgtype: "m.text", body: "you cannot see me" });
      assert.match(ghost, /^\$/);
      const state = ok(await as(bob).put(`${V3}/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "ghost" })).body;
      assert.match(state.event_id, /^\$/);
      ok(await as(bob).post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: carol.userId }));
      const fake = ok(await as(bob).post(`${V3}/createRoom`, { invite: [carol.userId] })).body.room_id;
      assert.equal(await k.hs.store.rooms.getRoom(fake), null, "a shadow-banned user's room with invites is not made");
      err(await as(alice).get(`${V3}/rooms/${enc(roomId)}/event/${enc(ghost)}`), 404, "M_NOT_FOUND");
      const msgs = ok(await as(alice).get(`${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).body.chunk;
      assert.ok(
        !msgs.some((e: { sender: string; type: string }) => e.sender === bob.userId && e.type !== "m.room.member"),
      );
      assert.equal((await k.hs.store.events.getMembership(roomId, carol.userId))?.membership, undefined, "no invite");
      ok(await as(admin).del(`${A1}/users/${enc(bob.userId)}/shadow_ban`));
      const real = await send(bob, roomId, { msgtype: "m.text", body: "visible" });
      assert.equal(
        ok(await as(alice).get(`${V3}/rooms/${enc(roomId)}/event/${enc(real)}`)).body.content.body,
        "visible",
      );
    });

    test("reset_password, whois, devices, joined_rooms, login-as (off by default), deactivate with erase", async () => {
      const dave = await k.register("dave", "old password");
      const roomId = await createRoom(dave);
      ok(await as(admin).post(`${A1}/reset_password/${enc(dave.userId)}`, { new_password: "new password" }));
      err(await as(dave).get(`${V3}/account/whoami`), 401, "M_UNKNOWN_TOKEN");
      assert.equal((await k.login("dave", "old password")).status, 403);
      const again = ok(await k.login("dave", "new password")).body;
      const d2: Login = { userId: dave.userId, token: again.access_token, deviceId: again.device_id };
      ok(await as(d2).get(`${V3}/account/whoami`));
      err(await as(admin).post(`${A1}/reset_password/${enc(dave.userId)}`, {}), 400, "M_MISSING_PARAM");

      const who = ok(await as(admin).get(`${A1}/whois/${enc(dave.userId)}`)).body;
      assert.equal(who.user_id, dave.userId);
      assert.deepEqual(Object.keys(who.devices), [d2.deviceId]);
      assert.ok(Array.isArray(who.devices[d2.deviceId].sessions[0].connections));

      const devs = ok(await as(admin).get(`${A2}/users/${enc(dave.userId)}/devices`)).body;
      assert.deepEqual([devs.total, devs.devices[0].device_id, devs.devices[0].user_id], [1, d2.deviceId, dave.userId]);
      ok(await as(admin).put(`${A2}/users/${enc(dave.userId)}/devices/${d2.deviceId}`, { display_name: "phone" }));
      assert.equal(
        ok(await as(admin).get(`${A2}/users/${enc(dave.userId)}/devices/${d2.deviceId}`)).body.display_name,
        "phone",
      );
      assert.deepEqual(ok(await as(admin).get(`${A1}/users/${enc(dave.userId)}/joined_rooms`)).body, {
        joined_rooms: [roomId],
        total: 1,
      });

      err(await as(admin).post(`${A1}/users/${enc(dave.userId)}/login`, {}), 403, "M_FORBIDDEN", "off by default");
      (k.hs.config.admin as { allowLoginAsUser: boolean }).allowLoginAsUser = true;
      try {
        const tok = ok(await as(admin).post(`${A1}/users/${enc(dave.userId)}/login`, {})).body.access_token;
        const whoami = ok(await k.call("GET", `${V3}/account/whoami`, undefined, tok)).body;
        assert.equal(whoami.user_id, dave.userId);
        err(await as(admin).post(`${A1}/users/${enc(admin.userId)}/login`, {}), 400, "M_INVALID_PARAM", "not as self");
      } finally {
        (k.hs.config.admin as { allowLoginAsUser: boolean }).allowLoginAsUser = false;
      }

      ok(await as(admin).del(`${A2}/users/${enc(dave.userId)}/devices/${d2.deviceId}`));
      err(await as(d2).get(`${V3}/account/whoami`), 401, "M_UNKNOWN_TOKEN");

      ok(await as(admin).put(`${A2}/users/${enc(dave.userId)}`, { displayname: "Dave" }));
      ok(await as(admin).post(`${A1}/deactivate/${enc(dave.userId)}`, { erase: true }));
      const gone = ok(await as(admin).get(`${A2}/users/${enc(dave.userId)}`)).body;
      assert.deepEqual([gone.deactivated, gone.displayname], [true, null]);
      assert.deepEqual(ok(await as(admin).get(`${A1}/users/${enc(dave.userId)}/joined_rooms`)).body.total, 0);
    });

    test("rooms: list search and order, details, members, state, messages an admin reads past visibility", async () => {
      const roomId = await createRoom(alice, {
        name: "Secret Garden",
        initial_state: [
          { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
        ],
      });
      await send(alice, roomId, { msgtype: "m.text", body: "hidden from outsiders" });
      const list = ok(await as(admin).get(`${A1}/rooms?search_term=garden`)).body;
      assert.deepEqual(
        [list.total_rooms, list.rooms[0].room_id, list.rooms[0].name, list.rooms[0].joined_members, list.offset],
        [1, roomId, "Secret Garden", 1, 0],
      );
      const all = ok(await as(admin).get(`${A1}/rooms?order_by=joined_members&limit=1`)).body;
      assert.ok(all.total_rooms > 1);
      assert.equal(all.next_batch, 1);
      const counts = ok(await as(admin).get(`${A1}/rooms?order_by=joined_members`)).body.rooms.map(
        (r: { joined_members: number }) => r.joined_members,
      );
      assert.deepEqual(
        counts,
        [...counts].sort((a, b) => b - a),
        "largest first",
      );
      err(await as(admin).get(`${A1}/rooms?order_by=bogus`), 400, "M_INVALID_PARAM");

      const details = ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}`)).body;
      assert.deepEqual(
        [details.name, details.creator, details.history_visibility, details.tombstoned],
        ["Secret Garden", alice.userId, "joined", false],
      );
      err(await as(admin).get(`${A1}/rooms/${enc("!nope:localhost")}`), 404, "M_NOT_FOUND");
      assert.deepEqual(ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}/members`)).body, {
        members: [alice.userId],
        total: 1,
      });
      const st = ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}/state?type=m.room.name`)).body.state;
      assert.deepEqual(
        st.map((e: { content: { name: string } }) => e.content.name),
        ["Secret Garden"],
      );
      err(await as(carol).get(`${V3}/rooms/${enc(roomId)}/messages?dir=b`), 403, "M_FORBIDDEN");
      const msgs = ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).body.chunk;
      assert.ok(msgs.some((e: { content: { body?: string } }) => e.content.body === "hidden from outsiders"));
    });

    test("block: joins and invites refused while blocked, also for a room not known yet; unblock", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat" });
      assert.deepEqual(ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}/block`)).body, { block: false });
      assert.deepEqual(ok(await as(admin).put(`${A1}/rooms/${enc(roomId)}/block`, { block: true })).body, {
        block: true,
      });
      assert.deepEqual(ok(await as(admin).get(`${A1}/rooms/${enc(roomId)}/block`)).body, {
        block: true,
        user_id: admin.userId,
      });
      err(await join(bob, roomId), 403, "M_FORBIDDEN");
      err(await as(alice).post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: bob.userId }), 403, "M_FORBIDDEN");
      ok(await as(admin).put(`${A1}/rooms/${enc("!future:localhost")}/block`, { block: true }));
      err(await as(admin).put(`${A1}/rooms/${enc(roomId)}/block`, { block: "yes" }), 400, "M_BAD_JSON");
      ok(await as(admin).put(`${A1}/rooms/${enc(roomId)}/block`, { block: false }));
      ok(await join(bob, roomId));
    });

    test("shutdown (v1, purge false): members moved to a new room with a notice, aliases moved, old room blocked", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat", room_alias_name: "badroom" });
      ok(await join(bob, roomId));
      ok(await as(alice).post(`${V3}/rooms/${enc(roomId)}/invite`, { user_id: carol.userId }));
      err(
        await as(admin).del(`${A1}/rooms/${enc(roomId)}`, { new_room_user_id: "@mod:elsewhere" }),
        400,
        "M_INVALID_PARAM",
      );
      err(await as(admin).del(`${A1}/rooms/${enc("!nope:localhost")}`, {}), 400, "M_INVALID_PARAM");
      const res = ok(
        await as(admin).del(`${A1}/rooms/${enc(roomId)}`, {
          new_room_user_id: "@moderator:localhost",
          room_name: "Closed",
          message: "This room broke the rules",
          block: true,
          purge: false,
        }),
      ).body;
      assert.deepEqual(res.kicked_users.sort(), [alice.userId, bob.userId, carol.userId].sort());
      assert.deepEqual([res.failed_to_kick_users, res.local_aliases], [[], ["#badroom:localhost"]]);
      const newRoom = res.new_room_id;
      for (const u of [alice, bob, carol])
        assert.equal((await k.hs.store.events.getMembership(roomId, u.userId))?.membership, "leave");
      assert.equal((await k.hs.store.events.getMembership(newRoom, bob.userId))?.membership, "join");
      assert.equal(
        (await k.hs.store.events.getMembership(newRoom, carol.userId))?.membership,
        undefined,
        "invitee: only out",
      );
      const alias = ok(await as(bob).get(`${V3}/directory/room/${enc("#badroom:localhost")}`)).body;
      assert.equal(alias.room_id, newRoom);
      const notice = ok(await as(bob).get(`${V3}/rooms/${enc(newRoom)}/messages?dir=b&limit=50`)).body.chunk;
      assert.ok(notice.some((e: { content: { body?: string } }) => e.content.body === "This room broke the rules"));
      const pl = ok(await as(bob).get(`${V3}/rooms/${enc(newRoom)}/state/m.room.power_levels`)).body;
      assert.equal(pl.users_default, -10);
      err(await join(bob, roomId), 403, "M_FORBIDDEN");
    });

    test("shutdown (v2, purged by default as Synapse): a delete_id whose status completes; the room is gone", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat", name: "Doomed", room_alias_name: "doomed" });
      ok(await join(bob, roomId));
      const said = ok(
        await as(bob).put(`${V3}/rooms/${enc(roomId)}/send/m.room.message/doomed1`, { msgtype: "m.text", body: "x" }),
      ).body.event_id;
      const other = await createRoom(alice, { preset: "public_chat" });
      const { delete_id } = ok(await as(admin).del(`${A2}/rooms/${enc(roomId)}`, { block: false })).body;
      assert.equal(typeof delete_id, "string");
      let status: any;
      for (let i = 0; i < 100; i++) {
        status = ok(await as(admin).get(`${A2}/rooms/delete_status/${delete_id}`)).body;
        if (status.status !== "active") break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status.status, "complete", JSON.stringify(status));
      assert.deepEqual(status.shutdown_room.kicked_users.sort(), [alice.userId, bob.userId].sort());
      const byRoom = ok(await as(admin).get(`${A2}/rooms/${enc(roomId)}/delete_status`)).body.results;
      assert.deepEqual(
        byRoom.map((t: { delete_id: string }) => t.delete_id),
        [delete_id],
      );
      err(await as(admin).get(`${A2}/rooms/delete_status/nope`), 404, "M_NOT_FOUND");
      // Purged: no room, no events, no state or memberships, no alias; other rooms untouched.
      assert.equal(await k.hs.store.rooms.getRoom(roomId), null);
      assert.equal(await k.hs.store.events.getEvent(said), null);
      assert.equal(await k.hs.store.events.getMembership(roomId, bob.userId), null);
      assert.deepEqual(await k.hs.store.rooms.getAliasesForRoom(roomId), []);
      err(await as(admin).get(`${A1}/rooms/${enc(roomId)}`), 404, "M_NOT_FOUND");
      err(await as(bob).get(`${V3}/rooms/${enc(roomId)}/event/${enc(said)}`), 404, "M_NOT_FOUND");
      err(await join(bob, roomId), 404, "M_NOT_FOUND");
      assert.ok(await k.hs.store.rooms.getRoom(other));
      ok(await as(alice).put(`${V3}/rooms/${enc(other)}/send/m.room.message/after1`, { msgtype: "m.text", body: "y" }));
    });

    test("media: room media, quarantine (404 while quarantined), user media, deletion releases the store's hold", async () => {
      const roomId = await createRoom(alice, { preset: "public_chat" });
      const bytes = Buffer.from(`evidence ${backend} ${Date.now()}`);
      const mxc = await upload(alice, bytes);
      const mediaId = mxc.split("/").pop()!;
      await send(alice, roomId, { msgtype: "m.file", body: "x.txt", url: mxc });
      assert.deepEqual(ok(await as(admin).get(`${A1}/room/${enc(roomId)}/media`)).body, { local: [mxc], remote: [] });

      assert.equal(ok(await download(bob, mxc)).body.toString(), bytes.toString());
      assert.deepEqual(ok(await as(admin).post(`${A1}/room/${enc(roomId)}/media/quarantine`)).body, {
        num_quarantined: 1,
      });
      err(await download(bob, mxc), 404, "M_NOT_FOUND");
      err(await download(admin, mxc), 404, "M_NOT_FOUND");
      const bypass = `/_matrix/client/v1/media/download/${mxc.slice(6)}?admin_unsafely_bypass_quarantine=true`;
      assert.equal(ok(await as(admin).get(bypass)).body.toString(), bytes.toString(), "an admin may ask explicitly");
      err(await as(bob).get(bypass), 404, "M_NOT_FOUND", "nobody else");
      const info = ok(await as(admin).get(`${A1}/media/localhost/${mediaId}`)).body.media_info;
      assert.deepEqual(
        [info.quarantined_by, info.user_id, info.media_length],
        [admin.userId, alice.userId, bytes.length],
      );
      ok(await as(admin).post(`${A1}/media/unquarantine/localhost/${mediaId}`));
      ok(await download(bob, mxc));
      ok(await as(admin).post(`${A1}/media/quarantine/localhost/${mediaId}`));
      err(await download(bob, mxc), 404, "M_NOT_FOUND");
      const copy = await upload(bob, bytes);
      err(await download(alice, copy), 404, "M_NOT_FOUND", "the same content uploaded again is quarantined too");
      ok(await as(admin).post(`${A1}/media/unquarantine/localhost/${copy.split("/").pop()}`));
      ok(await download(bob, mxc)); // releasing a copy releases every upload of that content
      ok(await as(admin).del(`${A1}/media/localhost/${copy.split("/").pop()}`));
      ok(await as(admin).post(`${A1}/media/quarantine/localhost/${mediaId}`));
      err(await as(admin).post(`${A1}/media/quarantine/other.server/${mediaId}`), 400, "M_INVALID_PARAM");
      err(await as(admin).post(`${A1}/media/quarantine/localhost/nope`), 404, "M_NOT_FOUND");

      const second = await upload(alice, Buffer.from("second"));
      const mine = ok(await as(admin).get(`${A1}/users/${enc(alice.userId)}/media?limit=1`)).body;
      assert.deepEqual([mine.total, mine.media[0].media_id, mine.next_token], [2, second.split("/").pop(), 1]);
      assert.equal(mine.media[0].upload_name, "x.txt");

      const sha = createHash("sha256").update(bytes).digest("hex");
      const holds = async () => (await k.hs.cas.list()).find((o) => o.sha256 === sha)?.holds ?? [];
      assert.deepEqual(await holds(), [`matrix.media:${mediaId}`]);
      const del = ok(await as(admin).del(`${A1}/media/localhost/${mediaId}`)).body;
      assert.deepEqual(del, { deleted_media: [mediaId], total: 1 });
      assert.deepEqual(await holds(), [], "the content-addressed store no longer holds the bytes");
      err(await download(bob, mxc), 404, "M_NOT_FOUND");
      err(await as(admin).del(`${A1}/media/localhost/${mediaId}`), 404, "M_NOT_FOUND");

      err(await as(admin).post(`${A1}/media/delete`), 400, "M_MISSING_PARAM");
      const bobMedia = await upload(bob, Buffer.from("x".repeat(100)));
      await upload(bob, Buffer.from("tiny"));
      const avatar = await upload(bob, Buffer.from(`an avatar image ${"y".repeat(100)}`));
      ok(await as(bob).put(`${V3}/profile/${enc(bob.userId)}/avatar_url`, { avatar_url: avatar }));
      const purged = ok(await as(admin).post(`${A1}/media/delete?before_ts=${Date.now() + 1000}&size_gt=50`)).body;
      assert.deepEqual(purged, { deleted_media: [bobMedia.split("/").pop()], total: 1 }, "the avatar is kept");
      const rest = ok(await as(admin).del(`${A1}/users/${enc(bob.userId)}/media`)).body;
      assert.equal(rest.total, 2);
      assert.equal(ok(await as(admin).get(`${A1}/users/${enc(bob.userId)}/media`)).body.total, 0);
    });
  });
}
