/**
 * The smaller client-server routes, on SQLite and PostgreSQL, over real HTTP with every answer checked against the
 * spec's schemas: whois (last seen IP and user agent per device), account locking and suspension (admin API v1.18:
 * who may, what a locked or suspended account can still do), extended profile fields (v1.16), mutual_rooms with
 * its pagination, third-party lookups without bridges, and the support / policy_server well-knowns.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { configSchema } from "../../src/config.ts";
import { MUTUAL_ROOMS_PAGE } from "../../src/matrix/client/mutual-rooms.ts";
import { authOf } from "../../src/matrix/service/auth.ts";
import { CloseCode, WS_PATH } from "../../src/matrix/websocket/protocol.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS, testMatrixConfig } from "./helpers/homeserver.ts";
import { enc, type Kit, type Res, startKit, V3 } from "./matrix-accounts-kit.ts";

const V1 = "/_matrix/client/v1";
const SUPPORT = {
  contacts: [
    { matrix_id: "@admin:elsewhere.example", role: "m.role.admin" },
    { email_address: "security@example.org", role: "m.role.security" },
  ],
  page: "https://example.org/help",
};

/** Resolves with a WebSocket's close code and reason. */
const closeOf = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );

type Who = { userId: string; token: string; deviceId: string };

function expectError(r: Res, status: number, errcode: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.body.errcode, errcode, JSON.stringify(r.body));
  assert.equal(typeof r.body.error, "string");
}

for (const backend of BACKENDS) {
  describe(`misc client-server routes on ${backend}`, () => {
    let k: Kit;
    let admin: Who;
    let alice: Who;
    let bob: Who;
    let carol: Who;
    let txn = 0;
    const send = (who: Who, roomId: string, body: string) =>
      k.call("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/m${++txn}`, { msgtype: "m.text", body }, who.token);
    const createRoom = async (who: Who, body: Record<string, unknown> = {}) => {
      const r = await k.call("POST", `${V3}/createRoom`, body, who.token);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.room_id as string;
    };
    const join = (who: Who, roomId: string) => k.call("POST", `${V3}/join/${enc(roomId)}`, {}, who.token);

    before(async () => {
      k = await startKit(backend, { support: SUPPORT });
      [admin, alice, bob, carol] = await Promise.all(["root", "alice", "bob", "carol"].map((u) => k.register(u)));
      await k.hs.store.accounts.updateUser(admin.userId, { admin: true });
      authOf(k.hs).forgetUser(admin.userId);
    });
    after(async () => {
      await k?.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("whois: the user or an admin; each device's last seen IP, time and user agent", async () => {
      const ua = { "User-Agent": "ami-e2e/1.0 (whois test)" };
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, alice.token, ua)).status, 200);
      // The last-seen write is not awaited by the request that caused it: poll until it is there.
      let body: any;
      for (let i = 0; i < 200; i++) {
        const r = await k.call("GET", `${V3}/admin/whois/${enc(alice.userId)}`, undefined, alice.token, ua);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assertSpec("admin.yaml", "/v3/admin/whois/{userId}", "GET", 200, r.body);
        body = r.body;
        if (body.devices[alice.deviceId]?.sessions[0]?.connections[0]?.user_agent) break;
        await new Promise((res) => setTimeout(res, 25));
      }
      assert.equal(body.user_id, alice.userId);
      assert.deepEqual(Object.keys(body.devices), [alice.deviceId]);
      const [conn] = body.devices[alice.deviceId].sessions[0].connections;
      assert.equal(conn.user_agent, ua["User-Agent"]);
      assert.match(conn.ip, /127\.0\.0\.1|::1/);
      assert.ok(conn.last_seen > Date.now() - 600_000 && conn.last_seen <= Date.now());

      const byAdmin = await k.call("GET", `${V3}/admin/whois/${enc(alice.userId)}`, undefined, admin.token);
      assert.equal(byAdmin.status, 200);
      assert.equal(byAdmin.body.user_id, alice.userId);
      expectError(
        await k.call("GET", `${V3}/admin/whois/${enc(alice.userId)}`, undefined, bob.token),
        403,
        "M_FORBIDDEN",
      );
      const nobody = await k.call("GET", `${V3}/admin/whois/${enc("@nobody:localhost")}`, undefined, admin.token);
      expectError(nobody, 404, "M_NOT_FOUND");
      expectError(
        await k.call("GET", `${V3}/admin/whois/${enc("@x:remote.example")}`, undefined, admin.token),
        400,
        "M_INVALID_PARAM",
      );
      expectError(await k.call("GET", `${V3}/admin/whois/not-a-user`, undefined, admin.token), 400, "M_INVALID_PARAM");
      expectError(await k.call("GET", `${V3}/admin/whois/${enc(alice.userId)}`), 401, "M_MISSING_TOKEN");
    });

    test("lock and suspend: server admins only, checked before any lookup; bad targets and bodies are 4xx", async () => {
      for (const seg of ["lock", "suspend"]) {
        const path = (u: string) => `${V1}/admin/${seg}/${enc(u)}`;
        // Not an admin: 403 whether or not the account exists (no enumeration).
        for (const target of [bob.userId, "@nobody:localhost"]) {
          const r = await k.call("GET", path(target), undefined, alice.token);
          expectError(r, 403, "M_FORBIDDEN");
          assertSpec("admin.yaml", `/v1/admin/${seg}/{userId}`, "GET", 403, r.body);
          expectError(await k.call("PUT", path(target), { [`${seg}ed`]: true }, alice.token), 403, "M_FORBIDDEN");
        }
        const flag = seg === "lock" ? "locked" : "suspended";
        const got = await k.call("GET", path(bob.userId), undefined, admin.token);
        assert.equal(got.status, 200);
        assertSpec("admin.yaml", `/v1/admin/${seg}/{userId}`, "GET", 200, got.body);
        assert.deepEqual(got.body, { [flag]: false });
        const remote = await k.call("GET", path("@x:remote.example"), undefined, admin.token);
        expectError(remote, 400, "M_INVALID_PARAM");
        assertSpec("admin.yaml", `/v1/admin/${seg}/{userId}`, "GET", 400, remote.body);
        const unknown = await k.call("PUT", path("@nobody:localhost"), { [flag]: true }, admin.token);
        expectError(unknown, 404, "M_NOT_FOUND");
        assertSpec("admin.yaml", `/v1/admin/${seg}/{userId}`, "PUT", 404, unknown.body);
        expectError(await k.call("PUT", path(admin.userId), { [flag]: true }, admin.token), 403, "M_FORBIDDEN");
        expectError(await k.call("PUT", path(bob.userId), { [flag]: "yes" }, admin.token), 400, "M_BAD_JSON");
        expectError(await k.call("PUT", path(bob.userId), {}, admin.token), 400, "M_MISSING_PARAM");
        expectError(await k.call("PUT", path("bob"), { [flag]: true }, admin.token), 400, "M_INVALID_PARAM");
      }
    });

    test("a locked account: every request 401 M_USER_LOCKED (soft logout), tokens kept; unlock restores them", async () => {
      const dave = await k.register("dave");
      const roomId = await createRoom(dave);
      // An open WebSocket stream of the account is closed by the lock; a new one is refused.
      const wsUrl = `${k.url.replace(/^http/, "ws")}${WS_PATH}?access_token=${enc(dave.token)}`;
      const open = new WebSocket(wsUrl);
      const openClosed = closeOf(open);
      await new Promise((res) => open.once("message", res)); // "ready"
      const lock = await k.call("PUT", `${V1}/admin/lock/${enc(dave.userId)}`, { locked: true }, admin.token);
      assert.equal((await openClosed).code, CloseCode.unauthorized);
      const refused = await closeOf(new WebSocket(wsUrl));
      assert.equal(refused.code, CloseCode.unauthorized);
      assert.match(refused.reason, /M_USER_LOCKED/);
      assert.equal(lock.status, 200);
      assertSpec("admin.yaml", "/v1/admin/lock/{userId}", "PUT", 200, lock.body);
      assert.deepEqual(lock.body, { locked: true });
      assert.deepEqual((await k.call("GET", `${V1}/admin/lock/${enc(dave.userId)}`, undefined, admin.token)).body, {
        locked: true,
      });
      for (const [method, path, body] of [
        ["GET", `${V3}/account/whoami`],
        ["GET", `${V3}/sync?timeout=0`],
        ["PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/locked1`, { msgtype: "m.text", body: "x" }],
      ] as const) {
        const r = await k.call(method, path, body, dave.token);
        expectError(r, 401, "M_USER_LOCKED");
        assert.equal(r.body.soft_logout, true);
      }
      // Nor does a locked account get a new session (as Synapse).
      const relogin = await k.login(dave.userId, "correct horse battery");
      expectError(relogin, 401, "M_USER_LOCKED");
      await k.call("PUT", `${V1}/admin/lock/${enc(dave.userId)}`, { locked: false }, admin.token);
      const who = await k.call("GET", `${V3}/account/whoami`, undefined, dave.token);
      assert.equal(who.status, 200, "the same token works again after the unlock");
      await k.call("PUT", `${V1}/admin/lock/${enc(dave.userId)}`, { locked: true }, admin.token);
      assert.equal((await k.call("POST", `${V3}/logout`, {}, dave.token)).status, 200, "a locked account may log out");
      expectError(await k.call("GET", `${V3}/account/whoami`, undefined, dave.token), 401, "M_UNKNOWN_TOKEN");
    });

    test("a suspended account reads, leaves and redacts its own events; it may not send, join, invite or create", async () => {
      const erin = await k.register("erin");
      const roomId = await createRoom(alice, { preset: "public_chat" });
      const other = await createRoom(alice, { preset: "public_chat" });
      assert.equal((await join(erin, roomId)).status, 200);
      const mine = (await send(erin, roomId, "before suspension")).body.event_id;
      const hers = (await send(alice, roomId, "alice speaks")).body.event_id;
      const s = await k.call("PUT", `${V1}/admin/suspend/${enc(erin.userId)}`, { suspended: true }, admin.token);
      assert.equal(s.status, 200);
      assertSpec("admin.yaml", "/v1/admin/suspend/{userId}", "PUT", 200, s.body);
      assert.deepEqual(s.body, { suspended: true });

      const refused: [string, string, unknown][] = [
        ["PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/susp1`, { msgtype: "m.text", body: "x" }],
        ["PUT", `${V3}/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "x" }],
        ["POST", `${V3}/join/${enc(other)}`, {}],
        ["POST", `${V3}/rooms/${enc(other)}/join`, {}],
        ["POST", `${V3}/knock/${enc(other)}`, {}],
        ["POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: carol.userId }],
        ["POST", `${V3}/createRoom`, {}],
        ["PUT", `${V3}/profile/${enc(erin.userId)}/displayname`, { displayname: "x" }],
        ["DELETE", `${V3}/profile/${enc(erin.userId)}/m.tz`, undefined],
        ["PUT", `${V3}/directory/room/${enc("#erin:localhost")}`, { room_id: roomId }],
        ["PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc(hers)}/susp2`, {}],
      ];
      for (const [method, path, body] of refused) {
        const r = await k.call(method, path, body, erin.token);
        expectError(r, 403, "M_USER_SUSPENDED");
      }
      assert.equal((await k.call("GET", `${V3}/sync?timeout=0`, undefined, erin.token)).status, 200);
      const msgs = await k.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=5`, undefined, erin.token);
      assert.equal(msgs.status, 200);
      assert.ok(msgs.body.chunk.some((e: any) => e.event_id === hers));
      const redact = await k.call("PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc(mine)}/susp3`, {}, erin.token);
      assert.equal(redact.status, 200, JSON.stringify(redact.body));
      assert.equal((await k.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {}, erin.token)).status, 200);

      await k.call("PUT", `${V1}/admin/suspend/${enc(erin.userId)}`, { suspended: false }, admin.token);
      assert.equal((await join(erin, roomId)).status, 200, "lifting the suspension lets the account act again");
      assert.equal((await send(erin, roomId, "after")).status, 200);
    });

    test("profile fields: any namespaced key with any JSON value, m.tz, 64 KiB in all; displayname on the same path", async () => {
      const me = enc(carol.userId);
      const put = (key: string, body: unknown, who = carol) =>
        k.call("PUT", `${V3}/profile/${me}/${key}`, body, who.token);
      const job = { title: "Ünïcode ✨", since: 2020, remote: true, tags: ["a", null] };
      for (const [key, value] of [
        ["m.tz", "Europe/Paris"],
        ["org.example.job", job],
        ["com.example.nothing", null],
      ] as const) {
        const r = await put(key, { [key]: value });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assertSpec("profile.yaml", "/profile/{userId}/{keyName}", "PUT", 200, r.body);
        const got = await k.call("GET", `${V3}/profile/${me}/${key}`, undefined, bob.token);
        assert.equal(got.status, 200);
        assertSpec("profile.yaml", "/profile/{userId}/{keyName}", "GET", 200, got.body);
        assert.deepEqual(got.body, { [key]: value });
      }
      const roomId = await createRoom(carol);
      assert.equal((await put("displayname", { displayname: "Carol C" })).status, 200);
      const full = await k.call("GET", `${V3}/profile/${me}`);
      assertSpec("profile.yaml", "/profile/{userId}", "GET", 200, full.body);
      assert.deepEqual(full.body, {
        displayname: "Carol C",
        "m.tz": "Europe/Paris",
        "org.example.job": job,
        "com.example.nothing": null,
      });
      const member = await k.call(
        "GET",
        `${V3}/rooms/${enc(roomId)}/state/m.room.member/${me}`,
        undefined,
        carol.token,
      );
      assert.equal(member.body.displayname, "Carol C", "a displayname change reaches the member events");

      const del = await k.call("DELETE", `${V3}/profile/${me}/org.example.job`, undefined, carol.token);
      assert.equal(del.status, 200);
      assertSpec("profile.yaml", "/profile/{userId}/{keyName}", "DELETE", 200, del.body);
      expectError(await k.call("GET", `${V3}/profile/${me}/org.example.job`), 404, "M_NOT_FOUND");
      assert.equal(
        (await k.call("DELETE", `${V3}/profile/${me}/org.example.never`, undefined, carol.token)).status,
        200,
      );
      assert.equal((await k.call("DELETE", `${V3}/profile/${me}/displayname`, undefined, carol.token)).status, 200);
      expectError(await k.call("GET", `${V3}/profile/${me}/displayname`), 404, "M_NOT_FOUND");

      // Bad input.
      expectError(await put("Bad.Key", { "Bad.Key": 1 }), 400, "M_INVALID_PARAM");
      expectError(await put("nodot", { nodot: 1 }), 400, "M_INVALID_PARAM");
      const longKey = `org.${"k".repeat(260)}`;
      expectError(await put(longKey, { [longKey]: 1 }), 400, "M_KEY_TOO_LARGE");
      expectError(await put("org.example.a", { "org.example.b": 1 }), 400, "M_MISSING_PARAM");
      expectError(await put("m.tz", { "m.tz": 5 }), 400, "M_BAD_JSON");
      expectError(await put("avatar_url", { avatar_url: "https://x" }), 400, "M_BAD_JSON");
      expectError(await put("org.example.a", { "org.example.a": 1 }, bob), 403, "M_FORBIDDEN");
      const big = "x".repeat(40_000);
      assert.equal((await put("org.example.big1", { "org.example.big1": big })).status, 200);
      const tooBig = await put("org.example.big2", { "org.example.big2": big });
      expectError(tooBig, 400, "M_PROFILE_TOO_LARGE");
      assertSpec("profile.yaml", "/profile/{userId}/{keyName}", "PUT", 400, tooBig.body);
      expectError(await k.call("GET", `${V3}/profile/${me}/org.example.big2`), 404, "M_NOT_FOUND");
      expectError(await k.call("GET", `${V3}/profile/${enc("@nobody:localhost")}/m.tz`), 404, "M_NOT_FOUND");

      const caps = await k.call("GET", `${V3}/capabilities`, undefined, carol.token);
      assertSpec("capabilities.yaml", "/capabilities", "GET", 200, caps.body);
      assert.deepEqual(caps.body.capabilities["m.profile_fields"], { enabled: true });
    });

    test("mutual_rooms: the rooms both have joined, paged with next_batch; bad input is 400", async () => {
      const [fay, gus] = await Promise.all([k.register("fay"), k.register("gus")]);
      const n = MUTUAL_ROOMS_PAGE + 5;
      const shared = new Set<string>();
      for (let i = 0; i < n; i++) {
        const roomId = await createRoom(fay, { preset: "public_chat" });
        assert.equal((await join(gus, roomId)).status, 200);
        shared.add(roomId);
      }
      await createRoom(fay); // only fay
      const left = await createRoom(fay, { preset: "public_chat" });
      await join(gus, left);
      await k.call("POST", `${V3}/rooms/${enc(left)}/leave`, {}, gus.token);
      const invited = await createRoom(fay);
      await k.call("POST", `${V3}/rooms/${enc(invited)}/invite`, { user_id: gus.userId }, fay.token);

      const seen: string[] = [];
      let from: string | undefined;
      let pages = 0;
      do {
        const q = `user_id=${enc(gus.userId)}${from ? `&from=${enc(from)}` : ""}`;
        const r = await k.call("GET", `${V1}/mutual_rooms?${q}`, undefined, fay.token);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assertSpec("mutual_rooms.yaml", "/mutual_rooms", "GET", 200, r.body);
        assert.equal(r.body.count, n);
        assert.ok(r.body.joined.length <= MUTUAL_ROOMS_PAGE);
        seen.push(...r.body.joined);
        from = r.body.next_batch;
        pages++;
      } while (from);
      assert.equal(pages, 2);
      assert.deepEqual(new Set(seen), shared);
      assert.equal(seen.length, shared.size, "no room twice");

      const none = await k.call("GET", `${V1}/mutual_rooms?user_id=${enc("@nobody:localhost")}`, undefined, fay.token);
      assert.deepEqual(none.body, { joined: [], count: 0 });
      for (const q of ["", `user_id=${enc(fay.userId)}`, "user_id=fay", `user_id=${enc(gus.userId)}&from=zzz`]) {
        const r = await k.call("GET", `${V1}/mutual_rooms?${q}`, undefined, fay.token);
        assert.equal(r.status, 400, q);
        assertSpec("mutual_rooms.yaml", "/mutual_rooms", "GET", 400, r.body);
      }
    });

    test("third-party lookups without bridges: no protocols, unknown protocol 404, empty lookups", async () => {
      const T = `${V3}/thirdparty`;
      const protocols = await k.call("GET", `${T}/protocols`, undefined, alice.token);
      assertSpec("third_party_lookup.yaml", "/thirdparty/protocols", "GET", 200, protocols.body);
      assert.deepEqual(protocols.body, {});
      const p = await k.call("GET", `${T}/protocol/irc`, undefined, alice.token);
      expectError(p, 404, "M_NOT_FOUND");
      assertSpec("third_party_lookup.yaml", "/thirdparty/protocol/{protocol}", "GET", 404, p.body);
      for (const [path, spec] of [
        [`${T}/location/irc?searchFields=x`, "/thirdparty/location/{protocol}"],
        [`${T}/user/irc`, "/thirdparty/user/{protocol}"],
        [`${T}/location?alias=${enc("#a:localhost")}`, "/thirdparty/location"],
        [`${T}/user?userid=${enc(alice.userId)}`, "/thirdparty/user"],
      ]) {
        const r = await k.call("GET", path, undefined, alice.token);
        assert.equal(r.status, 200, path);
        assertSpec("third_party_lookup.yaml", spec, "GET", 200, r.body);
        assert.deepEqual(r.body, []);
      }
      expectError(await k.call("GET", `${T}/location`, undefined, alice.token), 400, "M_MISSING_PARAM");
      expectError(await k.call("GET", `${T}/user`, undefined, alice.token), 400, "M_MISSING_PARAM");
      expectError(await k.call("GET", `${T}/protocols`), 401, "M_MISSING_TOKEN");
    });

    test("well-known support from matrix.support; no policy server", async () => {
      const r = await k.call("GET", "/.well-known/matrix/support");
      assert.equal(r.status, 200);
      assertSpec("support.yaml", "/matrix/support", "GET", 200, r.body);
      assert.deepEqual(r.body, { contacts: SUPPORT.contacts, support_page: SUPPORT.page });
      const policy = await k.call("GET", "/.well-known/matrix/policy_server");
      expectError(policy, 404, "M_NOT_FOUND");
    });
  });
}

describe("well-known support without configuration", () => {
  test("404 when neither contacts nor a page is set", async () => {
    const k = await startKit("sqlite");
    try {
      const r = await k.call("GET", "/.well-known/matrix/support");
      expectError(r, 404, "M_NOT_FOUND");
      const onlyPage = await startKit("sqlite", { support: { page: "https://example.org/p" } });
      try {
        const p = await onlyPage.call("GET", "/.well-known/matrix/support");
        assertSpec("support.yaml", "/matrix/support", "GET", 200, p.body);
        assert.deepEqual(p.body, { support_page: "https://example.org/p" });
      } finally {
        await onlyPage.dispose();
      }
    } finally {
      await k.dispose();
    }
  });

  test("bad support config is refused with the key named", () => {
    for (const support of [
      { contacts: [{ role: "m.role.admin" }] },
      { contacts: [{ matrix_id: "admin", role: "m.role.admin" }] },
      { contacts: [{ email_address: "not an email", role: "m.role.admin" }] },
      { contacts: [{ matrix_id: "@a:b", role: "Admin" }] },
      { page: "not a url" },
    ]) {
      assert.throws(
        () => configSchema.parse({ matrix: testMatrixConfig({ support }) }),
        /support/,
        JSON.stringify(support),
      );
    }
  });
});
