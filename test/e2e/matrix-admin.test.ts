/** Synapse-compatible admin API: shared-secret registration (mac computed the way Synapse's script does), users, rooms, tokens. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

/** The mac exactly as Synapse's `register_new_matrix_user` builds it, in Python's hmac (an independent implementation). */
function synapseMac(
  secret: string,
  nonce: string,
  user: string,
  password: string,
  admin: boolean,
  userType?: string,
): string {
  const py = `
import hmac, hashlib, sys
secret, nonce, user, password, admin, user_type = sys.argv[1:7]
mac = hmac.new(key=secret.encode("utf8"), digestmod=hashlib.sha1)
mac.update(nonce.encode("utf8")); mac.update(b"\\x00"); mac.update(user.encode("utf8")); mac.update(b"\\x00")
mac.update(password.encode("utf8")); mac.update(b"\\x00"); mac.update(b"admin" if admin == "1" else b"notadmin")
if user_type:
    mac.update(b"\\x00"); mac.update(user_type.encode("utf8"))
print(mac.hexdigest())`;
  return execFileSync("python3", ["-c", py, secret, nonce, user, password, admin ? "1" : "0", userType ?? ""], {
    encoding: "utf8",
  }).trim();
}

const ADMIN = "/_synapse/admin";

for (const backend of BACKENDS) {
  describe(`admin API on ${backend}`, () => {
    let k: Kit;
    let secret: string;
    let admin: { userId: string; token: string };
    let plain: { userId: string; token: string };

    const sharedRegister = async (
      username: string,
      password: string,
      isAdmin: boolean,
      extra: Record<string, unknown> = {},
    ) => {
      const { nonce } = (await k.call("GET", `${ADMIN}/v1/register`)).body;
      return k.call("POST", `${ADMIN}/v1/register`, {
        nonce,
        username,
        password,
        admin: isAdmin,
        mac: synapseMac(secret, nonce, username, password, isAdmin),
        ...extra,
      });
    };

    before(async () => {
      k = await startKit(backend, { registration: { enabled: false } });
      secret = readFileSync(join(k.dataDir, "registration_shared_secret"), "utf8").trim();
      const a = await sharedRegister("root", "pw root", true);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      admin = { userId: a.body.user_id, token: a.body.access_token };
      const p = await sharedRegister("pleb", "pw pleb", false, { displayname: "Pleb" });
      plain = { userId: p.body.user_id, token: p.body.access_token };
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    test("shared-secret registration: Synapse mac, nonce single-use, wrong mac, user_type, taken names", async () => {
      const who = await k.call("GET", `${V3}/account/whoami`, undefined, admin.token);
      assert.equal(who.body.user_id, "@root:localhost");
      assert.equal((await k.hs.store.accounts.getUser("@root:localhost"))?.admin, true);
      assert.equal((await k.hs.store.accounts.getUser("@pleb:localhost"))?.admin, false);
      assert.equal((await k.hs.store.accounts.getUser("@pleb:localhost"))?.displayname, "Pleb");
      assert.equal((await k.login("pleb", "pw pleb")).status, 200);

      const { nonce } = (await k.call("GET", `${ADMIN}/v1/register`)).body;
      const wrong = await k.call("POST", `${ADMIN}/v1/register`, {
        nonce,
        username: "x",
        password: "y",
        admin: false,
        mac: "00".repeat(20),
      });
      assert.deepEqual([wrong.status, wrong.body.errcode], [403, "M_FORBIDDEN"]);
      const reuse = await k.call("POST", `${ADMIN}/v1/register`, {
        nonce,
        username: "x",
        password: "y",
        admin: false,
        mac: synapseMac(secret, nonce, "x", "y", false),
      });
      assert.equal(reuse.status, 400, "a nonce is spent even by a failed attempt");
      const { nonce: n2 } = (await k.call("GET", `${ADMIN}/v1/register`)).body;
      const typed = await k.call("POST", `${ADMIN}/v1/register`, {
        nonce: n2,
        username: "bot1",
        password: "pw",
        admin: false,
        user_type: "bot",
        mac: synapseMac(secret, n2, "bot1", "pw", false, "bot"),
      });
      assert.equal(typed.status, 200, JSON.stringify(typed.body));
      const taken = await sharedRegister("root", "pw", false);
      assert.deepEqual([taken.status, taken.body.errcode], [400, "M_USER_IN_USE"]);
      const badName = await sharedRegister("bad name", "pw", false);
      assert.deepEqual([badName.status, badName.body.errcode], [400, "M_INVALID_USERNAME"]);
      const missing = await k.call("POST", `${ADMIN}/v1/register`, { username: "x" });
      assert.equal(missing.body.errcode, "M_MISSING_PARAM");
    });

    test("non-admins get M_FORBIDDEN on every admin route; no token gets M_MISSING_TOKEN", async () => {
      const routes: [string, string, unknown?][] = [
        ["GET", `${ADMIN}/v2/users`],
        ["GET", `${ADMIN}/v2/users/${enc(admin.userId)}`],
        ["PUT", `${ADMIN}/v2/users/${enc("@new:localhost")}`, {}],
        ["POST", `${ADMIN}/v1/deactivate/${enc(admin.userId)}`, {}],
        ["GET", `${ADMIN}/v1/rooms`],
        ["GET", `${ADMIN}/v1/registration_tokens`],
        ["POST", `${ADMIN}/v1/registration_tokens/new`, {}],
        ["GET", `${ADMIN}/v1/registration_tokens/abc`],
        ["PUT", `${ADMIN}/v1/registration_tokens/abc`, {}],
        ["DELETE", `${ADMIN}/v1/registration_tokens/abc`],
      ];
      for (const [m, p, b] of routes) {
        const r = await k.call(m, p, b, plain.token);
        assert.deepEqual([r.status, r.body.errcode], [403, "M_FORBIDDEN"], `${m} ${p}`);
        const anon = await k.call(m, p, b);
        assert.deepEqual([anon.status, anon.body.errcode], [401, "M_MISSING_TOKEN"], `${m} ${p}`);
      }
      const v = await k.call("GET", `${ADMIN}/v1/server_version`);
      assert.match(v.body.server_version, /^ami-streams \d+\.\d+\.\d+/);
    });

    test("users: list with paging, get, create/modify via PUT, deactivate", async () => {
      const list = await k.call("GET", `${ADMIN}/v2/users?limit=1`, undefined, admin.token);
      assert.equal(list.status, 200);
      assert.equal(list.body.users.length, 1);
      assert.ok(list.body.total >= 3);
      assert.equal(typeof list.body.next_token, "string");
      const rest = await k.call(
        "GET",
        `${ADMIN}/v2/users?limit=100&from=${enc(list.body.next_token)}`,
        undefined,
        admin.token,
      );
      const names = [list.body.users[0].name, ...rest.body.users.map((u: any) => u.name)];
      assert.ok(names.includes("@root:localhost") && names.includes("@pleb:localhost"));
      assert.equal(new Set(names).size, names.length);
      assert.equal(
        (await k.call("GET", `${ADMIN}/v2/users?limit=x`, undefined, admin.token)).body.errcode,
        "M_INVALID_PARAM",
      );

      const one = await k.call("GET", `${ADMIN}/v2/users/${enc(plain.userId)}`, undefined, admin.token);
      assert.equal(one.body.name, plain.userId);
      assert.equal(one.body.admin, false);
      assert.equal(
        (await k.call("GET", `${ADMIN}/v2/users/${enc("@ghost:localhost")}`, undefined, admin.token)).status,
        404,
      );
      assert.equal(
        (await k.call("GET", `${ADMIN}/v2/users/${enc("@x:elsewhere.org")}`, undefined, admin.token)).body.errcode,
        "M_INVALID_PARAM",
      );
      assert.equal(
        (await k.call("GET", `${ADMIN}/v2/users/notanid`, undefined, admin.token)).body.errcode,
        "M_INVALID_PARAM",
      );

      const created = await k.call(
        "PUT",
        `${ADMIN}/v2/users/${enc("@made:localhost")}`,
        { password: "pw made", displayname: "Made", admin: false },
        admin.token,
      );
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.displayname, "Made");
      const made = (await k.login("made", "pw made")).body;
      const promote = await k.call("PUT", `${ADMIN}/v2/users/${enc("@made:localhost")}`, { admin: true }, admin.token);
      assert.deepEqual([promote.status, promote.body.admin], [200, true]);
      // The promotion takes effect at once for existing tokens.
      assert.equal((await k.call("GET", `${ADMIN}/v2/users`, undefined, made.access_token)).status, 200);
      const repw = await k.call(
        "PUT",
        `${ADMIN}/v2/users/${enc("@made:localhost")}`,
        { password: "pw two" },
        admin.token,
      );
      assert.equal(repw.status, 200);
      assert.equal(
        (await k.call("GET", `${V3}/account/whoami`, undefined, made.access_token)).body.errcode,
        "M_UNKNOWN_TOKEN",
      );
      assert.equal((await k.login("made", "pw two")).status, 200);

      const d = await k.call("POST", `${ADMIN}/v1/deactivate/${enc("@made:localhost")}`, {}, admin.token);
      assert.deepEqual([d.status, d.body.id_server_unbind_result], [200, "success"]);
      assert.equal((await k.login("made", "pw two")).status, 403);
      assert.equal(
        (await k.call("GET", `${ADMIN}/v2/users/${enc("@made:localhost")}`, undefined, admin.token)).body.deactivated,
        true,
      );
      const hidden = await k.call("GET", `${ADMIN}/v2/users?limit=1000`, undefined, admin.token);
      assert.ok(!hidden.body.users.some((u: any) => u.name === "@made:localhost"));
      const shown = await k.call("GET", `${ADMIN}/v2/users?limit=1000&deactivated=true`, undefined, admin.token);
      assert.ok(shown.body.users.some((u: any) => u.name === "@made:localhost"));
      assert.equal(
        (await k.call("POST", `${ADMIN}/v1/deactivate/${enc("@ghost:localhost")}`, {}, admin.token)).status,
        404,
      );
    });

    test("rooms list", async () => {
      const room = await k.call(
        "POST",
        `${V3}/createRoom`,
        { name: "Admin room", room_alias_name: "adminroom" },
        plain.token,
      );
      assert.equal(room.status, 200, JSON.stringify(room.body));
      const r = await k.call("GET", `${ADMIN}/v1/rooms`, undefined, admin.token);
      assert.equal(r.status, 200);
      const mine = r.body.rooms.find((x: any) => x.room_id === room.body.room_id);
      assert.equal(mine.name, "Admin room");
      assert.equal(mine.joined_members, 1);
      assert.equal(mine.creator, plain.userId);
      assert.ok(r.body.total_rooms >= 1);
    });

    test("registration tokens CRUD, and the token works for /register", async () => {
      const T = `${ADMIN}/v1/registration_tokens`;
      const made = await k.call("POST", `${T}/new`, { token: "abc.DEF_1", uses_allowed: 2 }, admin.token);
      assert.deepEqual(made.body, { token: "abc.DEF_1", uses_allowed: 2, pending: 0, completed: 0, expiry_time: null });
      const gen = await k.call("POST", `${T}/new`, { length: 20 }, admin.token);
      assert.match(gen.body.token, /^[A-Za-z0-9._~-]{20}$/);
      assert.equal(
        (await k.call("POST", `${T}/new`, { token: "abc.DEF_1" }, admin.token)).body.errcode,
        "M_INVALID_PARAM",
      );
      assert.equal((await k.call("POST", `${T}/new`, { token: "bad token!" }, admin.token)).status, 400);
      assert.equal((await k.call("POST", `${T}/new`, { uses_allowed: -1 }, admin.token)).status, 400);
      assert.equal(
        (await k.call("POST", `${T}/new`, { expiry_time: 1000 }, admin.token)).body.errcode,
        "M_INVALID_PARAM",
      );
      const list = await k.call("GET", T, undefined, admin.token);
      assert.deepEqual(
        list.body.registration_tokens.map((t: any) => t.token).sort(),
        ["abc.DEF_1", gen.body.token].sort(),
      );
      const upd = await k.call("PUT", `${T}/abc.DEF_1`, { uses_allowed: 5 }, admin.token);
      assert.equal(upd.body.uses_allowed, 5);
      assert.equal((await k.call("GET", `${T}/abc.DEF_1`, undefined, admin.token)).body.uses_allowed, 5);
      assert.equal((await k.call("GET", `${T}/nope`, undefined, admin.token)).status, 404);
      assert.deepEqual((await k.call("DELETE", `${T}/${enc(gen.body.token)}`, undefined, admin.token)).body, {});
      assert.equal((await k.call("DELETE", `${T}/${enc(gen.body.token)}`, undefined, admin.token)).status, 404);
      const zero = await k.call("PUT", `${T}/abc.DEF_1`, { uses_allowed: 0 }, admin.token);
      assert.equal(zero.body.uses_allowed, 0);
      const invalid = await k.call("GET", `${T}?valid=false`, undefined, admin.token);
      assert.deepEqual(
        invalid.body.registration_tokens.map((t: any) => t.token),
        ["abc.DEF_1"],
      );
    });
  });
}
