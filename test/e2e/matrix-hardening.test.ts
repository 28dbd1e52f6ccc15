/**
 * Hardening (issue 8): state-only event types are refused as message events, transaction IDs are scoped per
 * device and endpoint path, presence is visible only to users sharing a room, a revoked session's WebSocket
 * closes at once, and media uploaded after the v1.11 freeze is not served by the legacy unauthenticated routes.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { SyncStream } from "../../src/matrix/websocket/client.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

type User = { userId: string; token: string; deviceId: string };

for (const backend of BACKENDS) {
  describe(`room sends on ${backend}`, () => {
    let k: Kit;
    let alice: User;
    let roomA = "";
    let roomB = "";
    before(async () => {
      k = await startKit(backend);
      alice = await k.register("alice");
      roomA = (await k.call("POST", `${V3}/createRoom`, {}, alice.token)).body.room_id;
      roomB = (await k.call("POST", `${V3}/createRoom`, {}, alice.token)).body.room_id;
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    const send = (roomId: string, type: string, txn: string, body: Record<string, any>, token = alice.token) =>
      k.call("PUT", `${V3}/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txn)}`, body, token);
    const timeline = async (roomId: string) =>
      (await k.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`, undefined, alice.token)).body.chunk;

    test("m.room.create (and other state-only types) are refused as message events", async () => {
      for (const type of ["m.room.create", "m.room.power_levels", "m.room.member", "m.room.join_rules"]) {
        const r = await send(roomA, type, `state-only-${type}`, { room_version: "10", membership: "join" });
        assert.deepEqual([r.status, r.body.errcode], [400, "M_BAD_JSON"], `${type}: ${JSON.stringify(r.body)}`);
      }
      const creates = (await timeline(roomA)).filter((e: any) => e.type === "m.room.create");
      assert.equal(creates.length, 1, "only the room's own create event");
      assert.equal(creates[0].state_key, "");
    });

    test("a txnId reused in another room, or for another type, is a new message; a retry is not", async () => {
      const a = await send(roomA, "m.room.message", "same", { msgtype: "m.text", body: "in A" });
      const b = await send(roomB, "m.room.message", "same", { msgtype: "m.text", body: "in B" });
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.notEqual(b.body.event_id, a.body.event_id, "room B's message is its own event");
      const inB = (await timeline(roomB)).find((e: any) => e.event_id === b.body.event_id);
      assert.equal(inB?.content.body, "in B");
      const other = await send(roomA, "m.reaction.test", "same", { x: 1 });
      assert.notEqual(other.body.event_id, a.body.event_id, "another event type is another endpoint path");
      // The retry of the same request on the same path is deduplicated, per device.
      const retry = await send(roomA, "m.room.message", "same", { msgtype: "m.text", body: "in A" });
      assert.equal(retry.body.event_id, a.body.event_id);
      const bodies = (await timeline(roomA)).filter((e: any) => e.content?.body === "in A");
      assert.equal(bodies.length, 1);
      // Another device of the same user is another scope too.
      const login = await k.login("alice", "correct horse battery");
      const again = await send(
        roomA,
        "m.room.message",
        "same",
        { msgtype: "m.text", body: "in A" },
        login.body.access_token,
      );
      assert.notEqual(again.body.event_id, a.body.event_id);
      // Redactions take their own path: the same txnId redacting two events redacts both.
      const r1 = await k.call("PUT", `${V3}/rooms/${enc(roomA)}/redact/${enc(a.body.event_id)}/same`, {}, alice.token);
      const r2 = await k.call("PUT", `${V3}/rooms/${enc(roomB)}/redact/${enc(b.body.event_id)}/same`, {}, alice.token);
      assert.equal(r1.status, 200);
      assert.equal(r2.status, 200);
      assert.notEqual(r1.body.event_id, r2.body.event_id);
    });
  });
}

describe("presence is visible only to users sharing a room", () => {
  let k: Kit;
  let open: Kit;
  before(async () => {
    k = await startKit("sqlite");
    open = await startKit("sqlite", { presence: { visibleToAll: true } });
  });
  after(async () => {
    await k.dispose();
    await open.dispose();
    assert.deepEqual([...k.errors, ...open.errors], [], "no internal errors");
  });

  const status = (kit: Kit, of: User, asker: User) =>
    kit.call("GET", `${V3}/presence/${enc(of.userId)}/status`, undefined, asker.token);
  const setStatus = (kit: Kit, u: User) =>
    kit.call("PUT", `${V3}/presence/${enc(u.userId)}/status`, { presence: "online", status_msg: "here" }, u.token);

  test("GET /presence/{userId}/status: self and room-mates yes, strangers 403 (unknown users too)", async () => {
    const [alice, bob, eve] = [await k.register("alice"), await k.register("bob"), await k.register("eve")];
    await setStatus(k, alice);
    assert.equal((await status(k, alice, alice)).body.status_msg, "here");
    const stranger = await status(k, alice, eve);
    assert.deepEqual([stranger.status, stranger.body.errcode], [403, "M_FORBIDDEN"]);
    const unknown = await k.call("GET", `${V3}/presence/${enc("@nobody:localhost")}/status`, undefined, eve.token);
    assert.deepEqual([unknown.status, unknown.body.errcode], [403, "M_FORBIDDEN"], "no hint that the user exists");
    // Invited is not sharing; joined is.
    const room = (await k.call("POST", `${V3}/createRoom`, { invite: [bob.userId] }, alice.token)).body.room_id;
    assert.equal((await status(k, alice, bob)).status, 403);
    assert.equal((await k.call("POST", `${V3}/join/${enc(room)}`, {}, bob.token)).status, 200);
    const mate = await status(k, alice, bob);
    assert.deepEqual([mate.status, mate.body.status_msg], [200, "here"]);
    // /sync carries the room-mate's presence and never the stranger's.
    const eveSync = await k.call("GET", `${V3}/sync?set_presence=offline`, undefined, eve.token);
    assert.ok(!eveSync.body.presence?.events?.some((e: any) => e.sender === alice.userId));
    const bobSync = await k.call("GET", `${V3}/sync?set_presence=offline`, undefined, bob.token);
    assert.ok(bobSync.body.presence.events.some((e: any) => e.sender === alice.userId));
  });

  test("matrix.presence.visibleToAll opens GET /presence to everyone", async () => {
    const [alice, eve] = [await open.register("alice"), await open.register("eve")];
    await setStatus(open, alice);
    const r = await status(open, alice, eve);
    assert.deepEqual([r.status, r.body.status_msg], [200, "here"]);
    const unknown = await open.call("GET", `${V3}/presence/${enc("@nobody:localhost")}/status`, undefined, eve.token);
    assert.equal(unknown.status, 404);
  });
});

describe("a revoked session's WebSocket closes at once with 4401", () => {
  let k: Kit;
  const PW = "correct horse battery";
  const streams: SyncStream[] = [];
  before(async () => {
    k = await startKit("sqlite");
  });
  after(async () => {
    for (const s of streams) await s.kill();
    await k.dispose();
    assert.deepEqual(k.errors, [], "no internal errors");
  });

  const connect = async (token: string): Promise<SyncStream> => {
    const s = new SyncStream(k.url, { token, onSync: () => {} });
    streams.push(s);
    await s.ready;
    return s;
  };
  /** The close, or null if none came within `ms` (pings, the old safety net, come only every 30 s). */
  const closedWithin = (s: SyncStream, ms = 5000) =>
    Promise.race([s.closed, new Promise<null>((r) => setTimeout(() => r(null), ms).unref())]);
  const login = async (user: string, deviceId?: string): Promise<User> => {
    const r = await k.login(user, PW, deviceId ? { device_id: deviceId } : {});
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return { userId: r.body.user_id, token: r.body.access_token, deviceId: r.body.device_id };
  };
  /** A user-interactive request: the first call opens the session, the second answers with the password. */
  const withPassword = async (method: string, path: string, body: Record<string, any>, u: User) => {
    const first = await k.call(method, path, body, u.token);
    assert.equal(first.status, 401, JSON.stringify(first.body));
    const auth = {
      type: "m.login.password",
      session: first.body.session,
      identifier: { type: "m.id.user", user: u.userId },
      password: PW,
    };
    const r = await k.call(method, path, { ...body, auth }, u.token);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  };

  test("logout, logout/all, device deletion", async () => {
    const a = await k.register("wsa");
    const s1 = await connect(a.token);
    assert.equal((await k.call("POST", `${V3}/logout`, {}, a.token)).status, 200);
    assert.equal((await closedWithin(s1))?.code, 4401, "logout");

    const [p, q] = [await login("wsa"), await login("wsa")];
    const [sp, sq] = [await connect(p.token), await connect(q.token)];
    assert.equal((await k.call("POST", `${V3}/logout/all`, {}, p.token)).status, 200);
    assert.deepEqual([(await closedWithin(sp))?.code, (await closedWithin(sq))?.code], [4401, 4401], "logout/all");

    const [keep, gone] = [await login("wsa"), await login("wsa")];
    const [sKeep, sGone] = [await connect(keep.token), await connect(gone.token)];
    await withPassword("DELETE", `${V3}/devices/${enc(gone.deviceId)}`, {}, keep);
    assert.equal((await closedWithin(sGone))?.code, 4401, "device deletion");
    assert.equal(await closedWithin(sKeep, 300), null, "the other device's stream stays open");

    // Logging in again to the same device ID replaces its token: the old token's stream ends.
    const again = await login("wsa", keep.deviceId);
    assert.equal((await closedWithin(sKeep))?.code, 4401, "re-login to the device");
    await k.call("POST", `${V3}/logout`, {}, again.token);
  });

  test("password change (other devices) and deactivation", async () => {
    await k.register("wsb");
    const [me, other] = [await login("wsb"), await login("wsb")];
    const [sMe, sOther] = [await connect(me.token), await connect(other.token)];
    await withPassword("POST", `${V3}/account/password`, { new_password: PW }, me);
    assert.equal((await closedWithin(sOther))?.code, 4401, "password change logs out the other devices");
    assert.equal(await closedWithin(sMe, 300), null, "the device that changed it keeps its stream");
    await withPassword("POST", `${V3}/account/deactivate`, {}, me);
    assert.equal((await closedWithin(sMe))?.code, 4401, "deactivation");
  });
});

describe("login timing does not tell which accounts exist", () => {
  let k: Kit;
  before(async () => {
    k = await startKit("sqlite");
    await k.register("known");
  });
  after(async () => {
    await k.dispose();
    assert.deepEqual(k.errors, [], "no internal errors");
  });

  test("an unknown user's login runs the password hash too (loose median comparison)", async () => {
    const median = async (user: string): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const t0 = performance.now();
        const r = await k.login(user, "wrong password");
        times.push(performance.now() - t0);
        assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"]);
      }
      return times.sort((a, b) => a - b)[3];
    };
    const known = await median("known");
    const unknown = await median("nobody-here");
    // Without the dummy hash an unknown user answered ~50x faster; a quarter leaves room for a noisy machine.
    assert.ok(unknown > known / 4, `unknown ${unknown.toFixed(1)} ms vs known ${known.toFixed(1)} ms`);
  });
});
