/** Discovery, registration (all modes, UIA), login/logout/whoami, devices, password, deactivation, profile. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

const PW = "correct horse battery";

for (const backend of BACKENDS) {
  describe(`accounts on ${backend}`, () => {
    let k: Kit;
    before(async () => {
      k = await startKit(backend);
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("versions, well-known and capabilities match the spec", async () => {
      const v = await k.call("GET", "/_matrix/client/versions");
      assert.equal(v.status, 200);
      assertSpec("versions.yaml", "/versions", "GET", 200, v.body);
      assert.ok(v.body.versions.includes("v1.11") && v.body.versions.includes("r0.6.1"));
      const wk = await k.call("GET", "/.well-known/matrix/client");
      assertSpec("wellknown.yaml", "/matrix/client", "GET", 200, wk.body);
      assert.equal(wk.body["m.homeserver"].base_url, k.hs.publicBaseUrl);
      const u = await k.register("capa");
      const c = await k.call("GET", `${V3}/capabilities`, undefined, u.token);
      assertSpec("capabilities.yaml", "/capabilities", "GET", 200, c.body);
      assert.deepEqual(c.body.capabilities["m.room_versions"], {
        default: "10",
        available: { "10": "stable", "11": "stable", "12": "stable" },
      });
      assert.equal(c.body.capabilities["m.3pid_changes"].enabled, false);
      assert.equal((await k.call("GET", `${V3}/capabilities`)).body.errcode, "M_MISSING_TOKEN");
    });

    test("register: UIA flows, dummy stage, availability, bad names, guests, inhibit_login", async () => {
      const first = await k.call("POST", `${V3}/register`, { username: "alice", password: PW });
      assert.equal(first.status, 401);
      assertSpec("registration.yaml", "/register", "POST", 401, first.body);
      assert.deepEqual(first.body.flows, [{ stages: ["m.login.dummy"] }]);
      assert.equal(typeof first.body.session, "string");
      const done = await k.call("POST", `${V3}/register`, {
        username: "alice",
        password: PW,
        initial_device_display_name: "laptop",
        auth: { type: "m.login.dummy", session: first.body.session },
      });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assertSpec("registration.yaml", "/register", "POST", 200, done.body);
      assert.equal(done.body.user_id, "@alice:localhost");
      const who = await k.call("GET", `${V3}/account/whoami`, undefined, done.body.access_token);
      assertSpec("whoami.yaml", "/account/whoami", "GET", 200, who.body);
      assert.deepEqual(who.body, { user_id: "@alice:localhost", device_id: done.body.device_id, is_guest: false });

      const avail = await k.call("GET", `${V3}/register/available?username=bob`);
      assert.deepEqual([avail.status, avail.body], [200, { available: true }]);
      assertSpec("registration.yaml", "/register/available", "GET", 200, avail.body);
      assert.equal((await k.call("GET", `${V3}/register/available?username=alice`)).body.errcode, "M_USER_IN_USE");
      assert.equal(
        (await k.call("GET", `${V3}/register/available?username=b%20ad`)).body.errcode,
        "M_INVALID_USERNAME",
      );
      assert.equal((await k.call("GET", `${V3}/register/available`)).body.errcode, "M_MISSING_PARAM");

      const taken = await k.call("POST", `${V3}/register`, {
        username: "ALICE",
        password: PW,
        auth: { type: "m.login.dummy" },
      });
      assert.deepEqual([taken.status, taken.body.errcode], [400, "M_USER_IN_USE"]);
      for (const bad of ["with space", "é", "a:b", "_reserved", "x".repeat(300)]) {
        const r = await k.call("POST", `${V3}/register`, {
          username: bad,
          password: PW,
          auth: { type: "m.login.dummy" },
        });
        assert.deepEqual([r.status, r.body.errcode], [400, "M_INVALID_USERNAME"], bad);
      }
      const guest = await k.call("POST", `${V3}/register?kind=guest`, {});
      assert.deepEqual([guest.status, guest.body.errcode], [403, "M_FORBIDDEN"]);
      const inhibit = await k.call("POST", `${V3}/register`, {
        username: "quiet",
        password: PW,
        inhibit_login: true,
        auth: { type: "m.login.dummy" },
      });
      assert.equal(inhibit.status, 200);
      assert.equal(inhibit.body.user_id, "@quiet:localhost");
      assert.equal(inhibit.body.access_token, undefined);
      const noPw = await k.call("POST", `${V3}/register`, { username: "nopw", auth: { type: "m.login.dummy" } });
      assert.equal(noPw.body.errcode, "M_MISSING_PARAM");
      const wrongType = await k.call("POST", `${V3}/register`, { username: 5, password: PW });
      const badStage = await k.call("POST", `${V3}/register`, {
        username: "x1",
        password: PW,
        auth: { type: "m.login.password" },
      });
      assert.equal(badStage.status, 401);
      assert.equal(badStage.body.errcode, "M_UNRECOGNIZED");
      const badSession = await k.call("POST", `${V3}/register`, {
        username: "x1",
        password: PW,
        auth: { type: "m.login.dummy", session: "nope" },
      });
      assert.equal(badSession.status, 400);
      const generated = await k.call("POST", `${V3}/register`, { password: PW, auth: { type: "m.login.dummy" } });
      assert.equal(generated.status, 200);
      assert.match(generated.body.user_id, /^@\d+:localhost$/);
      // Wrong types (needs parseBody to tell wrong types from missing keys).
      assert.deepEqual([wrongType.status, wrongType.body.errcode], [400, "M_BAD_JSON"]);
    });

    test("login (user/identifier, localpart/full ID, device ID), bad password, logout, logout/all", async () => {
      await k.register("carol");
      const flows = await k.call("GET", `${V3}/login`);
      assertSpec("login.yaml", "/login", "GET", 200, flows.body);
      assert.deepEqual(flows.body.flows, [{ type: "m.login.password" }]);
      const a = await k.login("carol", PW, { device_id: "PHONE", initial_device_display_name: "phone" });
      assert.equal(a.status, 200);
      assertSpec("login.yaml", "/login", "POST", 200, a.body);
      assert.deepEqual([a.body.user_id, a.body.device_id], ["@carol:localhost", "PHONE"]);
      const b = await k.call("POST", `${V3}/login`, {
        type: "m.login.password",
        user: "@carol:localhost",
        password: PW,
      });
      assert.equal(b.status, 200);
      const c = await k.login("Carol", PW);
      assert.equal(c.status, 200, "login is case-insensitive on the localpart");
      const bad = await k.login("carol", "wrong");
      assert.deepEqual([bad.status, bad.body.errcode], [403, "M_FORBIDDEN"]);
      assert.equal((await k.login("nobody", PW)).body.errcode, "M_FORBIDDEN");
      assert.equal((await k.login("@carol:elsewhere", PW)).body.errcode, "M_FORBIDDEN");
      assert.equal((await k.call("POST", `${V3}/login`, { type: "m.login.token", token: "x" })).status, 400);
      assert.equal(
        (await k.call("POST", `${V3}/login`, { type: "m.login.password", user: "carol" })).body.errcode,
        "M_MISSING_PARAM",
      );
      assert.equal(
        (await k.call("POST", `${V3}/login`, { type: "m.login.password", user: ["carol"], password: PW })).body.errcode,
        "M_BAD_JSON",
      );

      // Logging in again to the same device ID invalidates its earlier token.
      const again = await k.login("carol", PW, { device_id: "PHONE" });
      assert.equal(
        (await k.call("GET", `${V3}/account/whoami`, undefined, a.body.access_token)).body.errcode,
        "M_UNKNOWN_TOKEN",
      );
      const devices = await k.call("GET", `${V3}/devices`, undefined, again.body.access_token);
      assert.equal(devices.body.devices.find((d: any) => d.device_id === "PHONE").display_name, "phone");

      const out = await k.call("POST", `${V3}/logout`, {}, b.body.access_token);
      assert.deepEqual([out.status, out.body], [200, {}]);
      const dead = await k.call("GET", `${V3}/account/whoami`, undefined, b.body.access_token);
      assert.deepEqual([dead.status, dead.body.errcode], [401, "M_UNKNOWN_TOKEN"]);
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, c.body.access_token)).status, 200);
      assert.equal((await k.call("POST", `${V3}/logout/all`, {}, c.body.access_token)).status, 200);
      for (const t of [c.body.access_token, again.body.access_token]) {
        assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, t)).body.errcode, "M_UNKNOWN_TOKEN");
      }
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, "garbage")).body.errcode, "M_UNKNOWN_TOKEN");
    });

    test("devices: list, get, rename, delete with UIA, delete_devices", async () => {
      const u = await k.register("dave");
      const l2 = (await k.login("dave", PW, { device_id: "TWO" })).body;
      const l3 = (await k.login("dave", PW, { device_id: "THREE" })).body;
      const list = await k.call("GET", `${V3}/devices`, undefined, u.token);
      assertSpec("device_management.yaml", "/devices", "GET", 200, list.body);
      assert.deepEqual(list.body.devices.map((d: any) => d.device_id).sort(), [u.deviceId, "THREE", "TWO"].sort());
      const one = await k.call("GET", `${V3}/devices/TWO`, undefined, u.token);
      assertSpec("device_management.yaml", "/devices/{deviceId}", "GET", 200, one.body);
      assert.equal((await k.call("GET", `${V3}/devices/NOPE`, undefined, u.token)).status, 404);
      assert.equal((await k.call("PUT", `${V3}/devices/TWO`, { display_name: "tablet" }, u.token)).status, 200);
      assert.equal((await k.call("GET", `${V3}/devices/TWO`, undefined, u.token)).body.display_name, "tablet");
      assert.equal((await k.call("PUT", `${V3}/devices/NOPE`, { display_name: "x" }, u.token)).status, 404);

      const ch = await k.call("DELETE", `${V3}/devices/TWO`, undefined, u.token);
      assert.equal(ch.status, 401);
      assert.deepEqual(ch.body.flows, [{ stages: ["m.login.password"] }]);
      const wrong = await k.call(
        "DELETE",
        `${V3}/devices/TWO`,
        {
          auth: {
            type: "m.login.password",
            session: ch.body.session,
            identifier: { type: "m.id.user", user: "dave" },
            password: "nope",
          },
        },
        u.token,
      );
      assert.deepEqual([wrong.status, wrong.body.errcode], [401, "M_FORBIDDEN"]);
      const del = await k.call(
        "DELETE",
        `${V3}/devices/TWO`,
        {
          auth: {
            type: "m.login.password",
            session: ch.body.session,
            identifier: { type: "m.id.user", user: "dave" },
            password: PW,
          },
        },
        u.token,
      );
      assert.deepEqual([del.status, del.body], [200, {}]);
      assert.equal(
        (await k.call("GET", `${V3}/account/whoami`, undefined, l2.access_token)).body.errcode,
        "M_UNKNOWN_TOKEN",
      );

      const many = await k.call(
        "POST",
        `${V3}/delete_devices`,
        { devices: ["THREE"], auth: { type: "m.login.password", user: "@dave:localhost", password: PW } },
        u.token,
      );
      assert.equal(many.status, 200);
      assert.equal(
        (await k.call("GET", `${V3}/account/whoami`, undefined, l3.access_token)).body.errcode,
        "M_UNKNOWN_TOKEN",
      );
      assert.equal(
        (await k.call("POST", `${V3}/delete_devices`, { devices: "THREE" }, u.token)).body.errcode,
        "M_BAD_JSON",
      );
      // Someone else's password does not pass dave's UIA.
      await k.register("eve");
      const other = await k.call(
        "POST",
        `${V3}/delete_devices`,
        { devices: [u.deviceId], auth: { type: "m.login.password", user: "eve", password: PW } },
        u.token,
      );
      assert.equal(other.status, 401);
      // Wrong types (needs parseBody to tell wrong types from missing keys).
      assert.equal((await k.call("PUT", `${V3}/devices/TWO`, { display_name: 3 }, u.token)).body.errcode, "M_BAD_JSON");
    });

    test("password change invalidates other tokens (and keeps them with logout_devices: false)", async () => {
      const u = await k.register("frank");
      const other = (await k.login("frank", PW)).body;
      const ch = await k.call("POST", `${V3}/account/password`, { new_password: "new pw 1" }, u.token);
      assert.equal(ch.status, 401);
      assertSpec("password_management.yaml", "/account/password", "POST", 401, ch.body);
      const ok = await k.call(
        "POST",
        `${V3}/account/password`,
        {
          new_password: "new pw 1",
          auth: {
            type: "m.login.password",
            session: ch.body.session,
            identifier: { type: "m.id.user", user: "frank" },
            password: PW,
          },
        },
        u.token,
      );
      assert.deepEqual([ok.status, ok.body], [200, {}]);
      assert.equal(
        (await k.call("GET", `${V3}/account/whoami`, undefined, other.access_token)).body.errcode,
        "M_UNKNOWN_TOKEN",
      );
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, u.token)).status, 200);
      assert.equal((await k.login("frank", PW)).status, 403);
      const third = (await k.login("frank", "new pw 1")).body;
      const keep = await k.call(
        "POST",
        `${V3}/account/password`,
        {
          new_password: "new pw 2",
          logout_devices: false,
          auth: { type: "m.login.password", user: "frank", password: "new pw 1" },
        },
        u.token,
      );
      assert.equal(keep.status, 200);
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, third.access_token)).status, 200);
      assert.equal(
        (await k.call("POST", `${V3}/account/password`, { new_password: 1 }, u.token)).body.errcode,
        "M_BAD_JSON",
      );
    });

    test("deactivate: UIA, tokens die, login refused, rooms left, name stays taken", async () => {
      const u = await k.register("gina");
      const room = await k.call("POST", `${V3}/createRoom`, { name: "r" }, u.token);
      assert.equal(room.status, 200, JSON.stringify(room.body));
      const ch = await k.call("POST", `${V3}/account/deactivate`, {}, u.token);
      assert.equal(ch.status, 401);
      const ok = await k.call(
        "POST",
        `${V3}/account/deactivate`,
        { auth: { type: "m.login.password", session: ch.body.session, user: "gina", password: PW } },
        u.token,
      );
      assert.equal(ok.status, 200);
      assertSpec("account_deactivation.yaml", "/account/deactivate", "POST", 200, ok.body);
      assert.equal((await k.call("GET", `${V3}/account/whoami`, undefined, u.token)).body.errcode, "M_UNKNOWN_TOKEN");
      assert.equal((await k.login("gina", PW)).body.errcode, "M_FORBIDDEN");
      const m = await k.hs.store.events.getMembership(room.body.room_id, u.userId);
      assert.equal(m?.membership, "leave");
      const again = await k.call("POST", `${V3}/register`, {
        username: "gina",
        password: PW,
        auth: { type: "m.login.dummy" },
      });
      assert.equal(again.body.errcode, "M_USER_IN_USE");
    });

    test("profile: get, set own only, propagates to joined rooms", async () => {
      const u = await k.register("hank");
      const v = await k.register("ivy");
      const room = (await k.call("POST", `${V3}/createRoom`, { preset: "public_chat" }, u.token)).body.room_id;
      const p = await k.call("GET", `${V3}/profile/${enc(u.userId)}`);
      assert.equal(p.status, 200);
      assertSpec("profile.yaml", "/profile/{userId}", "GET", 200, p.body);
      assert.deepEqual(p.body, { displayname: "hank" });
      const set = await k.call(
        "PUT",
        `${V3}/profile/${enc(u.userId)}/displayname`,
        { displayname: "Hank H." },
        u.token,
      );
      assert.deepEqual([set.status, set.body], [200, {}]);
      const av = await k.call(
        "PUT",
        `${V3}/profile/${enc(u.userId)}/avatar_url`,
        { avatar_url: "mxc://localhost/abc" },
        u.token,
      );
      assert.equal(av.status, 200);
      const dn = await k.call("GET", `${V3}/profile/${enc(u.userId)}/displayname`);
      assertSpec("profile.yaml", "/profile/{userId}/{keyName}", "GET", 200, dn.body);
      assert.deepEqual(dn.body, { displayname: "Hank H." });
      assert.deepEqual((await k.call("GET", `${V3}/profile/${enc(u.userId)}/avatar_url`)).body, {
        avatar_url: "mxc://localhost/abc",
      });
      const member = await k.call(
        "GET",
        `${V3}/rooms/${enc(room)}/state/m.room.member/${enc(u.userId)}`,
        undefined,
        u.token,
      );
      assert.deepEqual(member.body, { membership: "join", displayname: "Hank H.", avatar_url: "mxc://localhost/abc" });

      const forbidden = await k.call(
        "PUT",
        `${V3}/profile/${enc(u.userId)}/displayname`,
        { displayname: "pwned" },
        v.token,
      );
      assert.deepEqual([forbidden.status, forbidden.body.errcode], [403, "M_FORBIDDEN"]);
      assert.equal(
        (await k.call("PUT", `${V3}/profile/${enc(u.userId)}/displayname`, { displayname: 7 }, u.token)).body.errcode,
        "M_BAD_JSON",
      );
      assert.equal(
        (await k.call("PUT", `${V3}/profile/${enc(u.userId)}/displayname`, {}, u.token)).body.errcode,
        "M_MISSING_PARAM",
      );
      assert.equal(
        (await k.call("PUT", `${V3}/profile/${enc(u.userId)}/avatar_url`, { avatar_url: "http://x" }, u.token)).body
          .errcode,
        "M_BAD_JSON",
      );
      assert.equal((await k.call("GET", `${V3}/profile/${enc("@nobody:localhost")}`)).status, 404);
      const invalid = await k.call("GET", `${V3}/profile/not-a-user-id`);
      assert.deepEqual([invalid.status, invalid.body.errcode], [400, "M_INVALID_PARAM"]);
    });
  });
}

describe("registration modes", () => {
  test("disabled (the default): 403 M_FORBIDDEN everywhere", async () => {
    const k = await startKit("sqlite", { registration: { enabled: false } });
    try {
      const r = await k.call("POST", `${V3}/register`, {
        username: "a",
        password: PW,
        auth: { type: "m.login.dummy" },
      });
      assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"]);
      assert.equal((await k.call("GET", `${V3}/register/available?username=a`)).status, 403);
    } finally {
      await k.dispose();
    }
  });

  test("registration tokens: stage, validity endpoint, uses counted, expiry", async () => {
    const k = await startKit("sqlite", { registration: { enabled: true, requireToken: true } });
    try {
      await k.hs.store.accounts.createRegistrationToken({
        token: "once",
        usesAllowed: 1,
        pending: 0,
        completed: 0,
        expiryTs: null,
      });
      await k.hs.store.accounts.createRegistrationToken({
        token: "old",
        usesAllowed: null,
        pending: 0,
        completed: 0,
        expiryTs: Date.now() - 1000,
      });
      const validity = (t: string) =>
        k.call("GET", `/_matrix/client/v1/register/m.login.registration_token/validity?token=${t}`);
      const v = await validity("once");
      assertSpec("registration_tokens.yaml", "/register/m.login.registration_token/validity", "GET", 200, v.body);
      assert.deepEqual(v.body, { valid: true });
      assert.deepEqual((await validity("old")).body, { valid: false });
      assert.deepEqual((await validity("nope")).body, { valid: false });

      const ch = await k.call("POST", `${V3}/register`, { username: "t1", password: PW });
      assert.deepEqual(ch.body.flows, [{ stages: ["m.login.registration_token"] }]);
      const dummy = await k.call("POST", `${V3}/register`, {
        username: "t1",
        password: PW,
        auth: { type: "m.login.dummy", session: ch.body.session },
      });
      assert.equal(dummy.status, 401, "dummy alone is not enough");
      const bad = await k.call("POST", `${V3}/register`, {
        username: "t1",
        password: PW,
        auth: { type: "m.login.registration_token", token: "old", session: ch.body.session },
      });
      assert.deepEqual([bad.status, bad.body.errcode], [401, "M_FORBIDDEN"]);
      const ok = await k.call("POST", `${V3}/register`, {
        username: "t1",
        password: PW,
        auth: { type: "m.login.registration_token", token: "once", session: ch.body.session },
      });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const row = await k.hs.store.accounts.getRegistrationToken("once");
      assert.equal(row?.completed, 1);
      assert.deepEqual((await validity("once")).body, { valid: false });
      const used = await k.call("POST", `${V3}/register`, {
        username: "t2",
        password: PW,
        auth: { type: "m.login.registration_token", token: "once" },
      });
      assert.equal(used.status, 401);
    } finally {
      await k.dispose();
    }
  });

  test("login is rate limited per IP with M_LIMIT_EXCEEDED and retry_after_ms", async () => {
    const k = await startKit("sqlite", { limits: { perIp: { perSecond: 0.001, burst: 3 } } });
    try {
      const codes: number[] = [];
      let last: any;
      for (let i = 0; i < 5; i++) {
        last = await k.login("nobody", "x");
        codes.push(last.status);
      }
      assert.deepEqual(codes, [403, 403, 403, 429, 429]);
      assert.equal(last.body.errcode, "M_LIMIT_EXCEEDED");
      assert.equal(typeof last.body.retry_after_ms, "number");
    } finally {
      await k.dispose();
    }
  });
});
