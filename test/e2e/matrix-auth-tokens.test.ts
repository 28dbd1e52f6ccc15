/**
 * Auth and identity end to end, on both backends: refresh tokens (rotation, retirement of the old refresh token
 * once the new session is used, soft logout of an expired access token, logout/device deletion taking refresh
 * tokens along, matrix-js-sdk syncing on across an expiry), m.login.token through /login/get_token (UIA every
 * time, single use, capability and /login flows following the config), OpenID tokens and the federation userinfo
 * endpoint, and the routes answered deliberately: 3PIDs, SSO, auth_metadata, appservice. Every answer the spec
 * defines is checked against its OpenAPI schema.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { HttpApiEvent, type MatrixError } from "matrix-js-sdk";
import { SyncStream } from "../../src/matrix/websocket/client.ts";
import { CloseCode } from "../../src/matrix/websocket/protocol.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, loginUser, ok, registerUser, type Session, sdkClient, waitFor } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, startInProcess, type TestDatabase, tempDir } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const PASSWORD = "correct horse battery";
const LIFETIME_MS = 1500;

type Hs = Awaited<ReturnType<typeof startInProcess>>;

const passwordAuth = (userId: string, session?: string) => ({
  type: "m.login.password",
  identifier: { type: "m.id.user", user: userId },
  password: PASSWORD,
  ...(session ? { session } : {}),
});

/** Assert an error answer: status, errcode, and (when given) the spec file/path whose schema it must match. */
function assertError(
  r: { status: number; json: any },
  status: number,
  errcode: string,
  spec?: [file: string, path: string, method: string],
): void {
  assert.equal(r.status, status, JSON.stringify(r.json));
  assert.equal(r.json?.errcode, errcode, JSON.stringify(r.json));
  assert.equal(typeof r.json.error, "string");
  if (spec) assertSpec(spec[0], spec[1], spec[2], status, r.json);
}

for (const backend of BACKENDS) {
  describe(`auth tokens (${backend})`, () => {
    let db: TestDatabase;
    let hs: Hs;
    let base: string;
    let alice: Session;

    const login = async (user: string, extra: Record<string, unknown> = {}) =>
      api(base, "POST", `${C}/login`, {
        body: { type: "m.login.password", identifier: { type: "m.id.user", user }, password: PASSWORD, ...extra },
      });
    const refresh = (refreshToken: unknown, token?: string) =>
      api(base, "POST", `${C}/refresh`, { body: { refresh_token: refreshToken }, token });
    const whoami = (token: string) => api(base, "GET", `${C}/account/whoami`, { token });

    before(async () => {
      db = await createTestDatabase(backend, tempDir());
      hs = await startInProcess({
        database: db.database,
        auth: { accessTokenLifetimeMs: LIFETIME_MS, loginTokenEnabled: true },
      });
      base = hs.url;
      alice = await registerUser(base, "alice");
    });

    after(async () => {
      await hs?.dispose();
      await db?.drop();
    });

    it("login and register with refresh_token: true answer refresh_token and expires_in_ms; without, neither", async () => {
      const r = await login("alice", { refresh_token: true });
      assert.equal(r.status, 200);
      assertSpec("login.yaml", "/login", "POST", 200, r.json);
      assert.equal(typeof r.json.refresh_token, "string");
      assert.equal(r.json.expires_in_ms, LIFETIME_MS);
      const plain = await login("alice");
      assert.equal(plain.json.refresh_token, undefined);
      assert.equal(plain.json.expires_in_ms, undefined);

      const path = `${C}/register`;
      const body = { username: "reggie", password: PASSWORD, refresh_token: true };
      const first = await api(base, "POST", path, { body });
      const reg = await api(base, "POST", path, {
        body: { ...body, auth: { type: "m.login.dummy", session: first.json.session } },
      });
      assert.equal(reg.status, 200, reg.text);
      assertSpec("registration.yaml", "/register", "POST", 200, reg.json);
      assert.equal(reg.json.expires_in_ms, LIFETIME_MS);
      assert.equal((await refresh(reg.json.refresh_token)).status, 200, "the registration's refresh token works");

      assertError(await login("alice", { refresh_token: "yes" }), 400, "M_BAD_JSON");
    });

    it("an expired access token is a soft logout; a plain one does not expire; /refresh ignores the expired token", async () => {
      const r = (await login("alice", { refresh_token: true })).json;
      const plain = (await login("alice")).json;
      assert.equal((await whoami(r.access_token)).status, 200);
      const expired = await waitFor("the access token to expire", async () => {
        const w = await whoami(r.access_token);
        return w.status === 401 ? w : null;
      });
      assertError(expired, 401, "M_UNKNOWN_TOKEN");
      assert.equal(expired.json.soft_logout, true);
      assert.equal((await whoami(plain.access_token)).status, 200, "a token issued without refresh never expires");
      // matrix-js-sdk sends the expired token along with /refresh: it must not matter.
      const n = await refresh(r.refresh_token, r.access_token);
      assert.equal(n.status, 200, n.text);
      assertSpec("refresh.yaml", "/refresh", "POST", 200, n.json);
      assert.equal(n.json.expires_in_ms, LIFETIME_MS);
      assert.deepEqual((await whoami(n.json.access_token)).json.device_id, r.device_id, "same device");
    });

    it("a WebSocket sync stream closes 4401 when its access token expires, and refuses an expired one", async () => {
      const r = (await login("alice", { refresh_token: true })).json;
      const stream = new SyncStream(base, { token: r.access_token, onSync() {} });
      assert.equal((await stream.ready).user_id, alice.userId);
      const closed = await stream.closed;
      assert.equal(closed.code, CloseCode.unauthorized);
      assert.match(closed.reason, /M_UNKNOWN_TOKEN/);
      const again = new SyncStream(base, { token: r.access_token, auth: "message", onSync() {} });
      const refused = await again.closed;
      assert.equal(refused.code, CloseCode.unauthorized);
      assert.match(refused.reason, /expired/);
    });

    it("rotation: the old refresh token works until the new session is used, then 401 soft_logout", async () => {
      const r0 = (await login("alice", { refresh_token: true })).json;
      const r1 = (await refresh(r0.refresh_token)).json;
      // The answer was lost, say: the same refresh token may be used again; the unused pair it replaces dies.
      const r1b = (await refresh(r0.refresh_token)).json;
      assert.notEqual(r1b.access_token, r1.access_token);
      assert.equal((await whoami(r1.access_token)).status, 401, "the replaced, never used access token is gone");
      assert.equal((await refresh(r1.refresh_token)).status, 401, "and its refresh token");
      assert.equal((await whoami(r0.access_token)).status, 200, "the old access token works until the new is used");

      assert.equal((await whoami(r1b.access_token)).status, 200);
      const reused = await refresh(r0.refresh_token);
      assertError(reused, 401, "M_UNKNOWN_TOKEN", ["refresh.yaml", "/refresh", "POST"]);
      assert.equal(reused.json.soft_logout, true);
      assert.equal((await whoami(r0.access_token)).status, 401, "the old access token is retired with it");

      // Refreshing the new refresh token (without using its session) also retires the one before it.
      const r2 = (await refresh(r1b.refresh_token)).json;
      const r3 = (await refresh(r2.refresh_token)).json;
      assert.equal((await refresh(r1b.refresh_token)).status, 401);
      assert.equal((await whoami(r3.access_token)).status, 200);
    });

    it("/refresh refuses bad input with a clear 4xx", async () => {
      assertError(await api(base, "POST", `${C}/refresh`, { body: {} }), 400, "M_MISSING_PARAM");
      assertError(await refresh(42), 400, "M_BAD_JSON");
      assertError(await refresh("amir_nonsense"), 401, "M_UNKNOWN_TOKEN", ["refresh.yaml", "/refresh", "POST"]);
      assertError(await refresh("x".repeat(5000)), 401, "M_UNKNOWN_TOKEN");
      const access = (await login("alice", { refresh_token: true })).json.access_token;
      assertError(await refresh(access), 401, "M_UNKNOWN_TOKEN", ["refresh.yaml", "/refresh", "POST"]);
      assert.equal((await api(base, "POST", `${C}/refresh`, { body: "[1]" })).status, 400);
    });

    it("logout, logout/all and device deletion delete refresh tokens", async () => {
      const a = (await login("alice", { refresh_token: true })).json;
      await ok(base, "POST", `${C}/logout`, { token: a.access_token, body: {} });
      assertError(await refresh(a.refresh_token), 401, "M_UNKNOWN_TOKEN");

      const b = (await login("alice", { refresh_token: true })).json;
      const del = `${C}/devices/${enc(b.device_id)}`;
      const challenge = await api(base, "DELETE", del, { token: alice.accessToken, body: {} });
      assert.equal(challenge.status, 401);
      await ok(base, "DELETE", del, {
        token: alice.accessToken,
        body: { auth: passwordAuth(alice.userId, challenge.json.session) },
      });
      assertError(await refresh(b.refresh_token), 401, "M_UNKNOWN_TOKEN");

      const c = (await login("alice", { refresh_token: true })).json;
      const keep = (await login("alice", { refresh_token: true })).json;
      await ok(base, "POST", `${C}/logout/all`, { token: c.access_token, body: {} });
      assertError(await refresh(c.refresh_token), 401, "M_UNKNOWN_TOKEN");
      assertError(await refresh(keep.refresh_token), 401, "M_UNKNOWN_TOKEN");
      alice = await loginUser(base, "alice");
    });

    it("matrix-js-sdk keeps syncing across an access-token expiry by refreshing on the soft logout", async () => {
      const s = (await login("alice", { refresh_token: true })).json;
      const bob = await registerUser(base, "bob");
      const roomId = (
        await ok(base, "POST", `${C}/createRoom`, { token: bob.accessToken, body: { preset: "public_chat" } })
      ).room_id;
      let refreshToken: string = s.refresh_token;
      const client = sdkClient(base, { userId: s.user_id, accessToken: s.access_token, deviceId: s.device_id });
      let refreshes = 0;
      let refreshing: Promise<void> | null = null;
      const softLogouts: MatrixError[] = [];
      client.on(HttpApiEvent.SessionLoggedOut, (err: MatrixError) => {
        softLogouts.push(err);
        refreshing ??= (async () => {
          const r = await client.refreshToken(refreshToken);
          refreshToken = r.refresh_token!;
          client.setAccessToken(r.access_token);
          refreshes++;
          client.stopClient();
          await client.startClient({ initialSyncLimit: 20 });
        })().finally(() => {
          refreshing = null;
        });
      });
      try {
        await client.startClient({ initialSyncLimit: 20 });
        await waitFor("first sync", () => client.isInitialSyncComplete());
        await client.joinRoom(roomId);
        let txn = 0;
        const say = (body: string) =>
          ok(base, "PUT", `${C}/rooms/${enc(roomId)}/send/m.room.message/t${txn++}`, {
            token: bob.accessToken,
            body: { msgtype: "m.text", body },
          });
        const seen = (body: string) =>
          client
            .getRoom(roomId)
            ?.getLiveTimeline()
            .getEvents()
            .some((e) => e.getContent().body === body);
        await say("before expiry");
        await waitFor("the message sent before the expiry", () => seen("before expiry"));
        const expiresAt = Date.now() + LIFETIME_MS;
        await waitFor("the access token to expire", () => Date.now() > expiresAt + 100, 10_000, 50);
        await say("wakes the sync after expiry");
        await waitFor("a refresh after the soft logout", () => refreshes > 0);
        await say("after the refresh");
        await waitFor("the message sent after the refresh", () => seen("after the refresh"));
        assert.ok(softLogouts.every((e) => e.errcode === "M_UNKNOWN_TOKEN" && e.data.soft_logout === true));
        assert.equal((await client.whoami()).user_id, s.user_id, "the client's current token is valid");
      } finally {
        client.stopClient();
        await refreshing;
        client.stopClient();
      }
    });

    it("m.login.token: /login flows and capabilities advertise it; get_token needs UIA each time; single use", async () => {
      const flows = await ok(base, "GET", `${C}/login`);
      assertSpec("login.yaml", "/login", "GET", 200, flows);
      assert.deepEqual(
        flows.flows.find((f: any) => f.type === "m.login.token"),
        { type: "m.login.token", get_login_token: true },
      );
      const caps = await ok(base, "GET", `${C}/capabilities`, { token: alice.accessToken });
      assertSpec("capabilities.yaml", "/capabilities", "GET", 200, caps);
      assert.deepEqual(caps.capabilities["m.get_login_token"], { enabled: true });

      const path = "/_matrix/client/v1/login/get_token";
      const first = await api(base, "POST", path, { token: alice.accessToken, body: {} });
      assert.equal(first.status, 401);
      assertSpec("login_token.yaml", "/login/get_token", "POST", 401, first.json);
      const wrong = await api(base, "POST", path, {
        token: alice.accessToken,
        body: { auth: { ...passwordAuth(alice.userId, first.json.session), password: "wrong" } },
      });
      assertError(wrong, 401, "M_FORBIDDEN");
      const got = await ok(base, "POST", path, {
        token: alice.accessToken,
        body: { auth: passwordAuth(alice.userId, first.json.session) },
      });
      assertSpec("login_token.yaml", "/login/get_token", "POST", 200, got);
      assert.equal(got.expires_in_ms, 120_000);
      const again = await api(base, "POST", path, { token: alice.accessToken, body: {} });
      assert.equal(again.status, 401, "every token needs a new UIA (the spec: MUST always re-prompt)");
      assertError(await api(base, "POST", path, { body: {} }), 401, "M_MISSING_TOKEN");

      // The new device logs in with matrix-js-sdk's loginWithToken.
      const fresh = sdkClient(base);
      const logged = await fresh.loginWithToken(got.login_token);
      assert.equal(logged.user_id, alice.userId);
      assert.notEqual(logged.device_id, alice.deviceId, "a new device");
      assert.equal((await whoami(logged.access_token)).json.user_id, alice.userId);
      const reuse = await api(base, "POST", `${C}/login`, { body: { type: "m.login.token", token: got.login_token } });
      assertError(reuse, 403, "M_FORBIDDEN", ["login.yaml", "/login", "POST"]);
      assertError(
        await api(base, "POST", `${C}/login`, { body: { type: "m.login.token", token: "amil_forged" } }),
        403,
        "M_FORBIDDEN",
      );
      assertError(await api(base, "POST", `${C}/login`, { body: { type: "m.login.token" } }), 400, "M_MISSING_PARAM");
      assertError(
        await api(base, "POST", `${C}/login`, { body: { type: "m.login.token", token: 7 } }),
        400,
        "M_BAD_JSON",
      );

      // And through the SDK's own requestLoginToken (UIA as the SDK does it: 401 first, then the auth dict).
      const sdk = sdkClient(base, alice);
      const challenge = await sdk.requestLoginToken().catch((e: MatrixError) => e);
      assert.equal((challenge as MatrixError).httpStatus, 401);
      const session = (challenge as MatrixError).data.session as string;
      const viaSdk = (await sdk.requestLoginToken(passwordAuth(alice.userId, session))) as { login_token: string };
      assert.equal((await sdkClient(base).loginWithToken(viaSdk.login_token)).user_id, alice.userId);
    });

    it("OpenID: a token for oneself only; the federation userinfo answers its sub, 401 otherwise", async () => {
      const sdk = sdkClient(base, alice);
      const t = await sdk.getOpenIdToken();
      assertSpec("openid.yaml", "/user/{userId}/openid/request_token", "POST", 200, t);
      assert.equal(t.matrix_server_name, "localhost");
      assert.equal(t.token_type, "Bearer");
      assert.equal(t.expires_in, 3600);

      const userinfo = (token: string) =>
        api(base, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(token)}`);
      const u = await userinfo(t.access_token);
      assert.equal(u.status, 200, u.text);
      assertSpec("server-server/openid.yaml", "/openid/userinfo", "GET", 200, u.json);
      assert.deepEqual(u.json, { sub: alice.userId });
      assert.equal((await userinfo(t.access_token)).status, 200, "an OpenID token is not single use");

      const spec401: [string, string, string] = ["server-server/openid.yaml", "/openid/userinfo", "GET"];
      assertError(await userinfo("amio_forged"), 401, "M_UNKNOWN_TOKEN", spec401);
      assertError(await userinfo(alice.accessToken), 401, "M_UNKNOWN_TOKEN", spec401);
      assertError(await api(base, "GET", "/_matrix/federation/v1/openid/userinfo"), 401, "M_MISSING_TOKEN");
      assertError(await whoami(t.access_token), 401, "M_UNKNOWN_TOKEN");

      const other = await api(base, "POST", `${C}/user/${enc("@bob:localhost")}/openid/request_token`, {
        token: alice.accessToken,
        body: {},
      });
      assertError(other, 403, "M_FORBIDDEN");
      assertError(
        await api(base, "POST", `${C}/user/${enc(alice.userId)}/openid/request_token`, { body: {} }),
        401,
        "M_MISSING_TOKEN",
      );
    });

    it("3PID routes: no 3PIDs here, each answered as the spec defines for a server without them", async () => {
      const token = alice.accessToken;
      const get = await ok(base, "GET", `${C}/account/3pid`, { token });
      assertSpec("administrative_contact.yaml", "/account/3pid", "GET", 200, get);
      assert.deepEqual(get, { threepids: [] });

      const creds = { client_secret: "s", id_server: "id.example", id_access_token: "t", sid: "1" };
      assertError(
        await api(base, "POST", `${C}/account/3pid`, { token, body: { three_pid_creds: creds } }),
        403,
        "M_FORBIDDEN",
        ["administrative_contact.yaml", "/account/3pid", "POST"],
      );
      assertError(await api(base, "POST", `${C}/account/3pid`, { token, body: {} }), 400, "M_MISSING_PARAM");
      assertError(await api(base, "POST", `${C}/account/3pid/bind`, { token, body: creds }), 403, "M_FORBIDDEN");
      assertError(
        await api(base, "POST", `${C}/account/3pid/bind`, { token, body: { ...creds, sid: 1 } }),
        400,
        "M_BAD_JSON",
      );

      // /add: user-interactive auth first, as the spec says; then no validated session can exist.
      const add = `${C}/account/3pid/add`;
      const challenge = await api(base, "POST", add, { token, body: { client_secret: "s", sid: "1" } });
      assert.equal(challenge.status, 401);
      assertSpec("administrative_contact.yaml", "/account/3pid/add", "POST", 401, challenge.json);
      const added = await api(base, "POST", add, {
        token,
        body: { client_secret: "s", sid: "1", auth: passwordAuth(alice.userId, challenge.json.session) },
      });
      assertError(added, 400, "M_THREEPID_AUTH_FAILED");
      assertError(await api(base, "POST", add, { token, body: { client_secret: "s" } }), 400, "M_MISSING_PARAM");

      for (const route of ["delete", "unbind"]) {
        const r = await api(base, "POST", `${C}/account/3pid/${route}`, {
          token,
          body: { medium: "email", address: "alice@example.org" },
        });
        assert.equal(r.status, 200, r.text);
        assertSpec("administrative_contact.yaml", `/account/3pid/${route}`, "POST", 200, r.json);
        assert.deepEqual(r.json, { id_server_unbind_result: "no-support" });
        const fax = await api(base, "POST", `${C}/account/3pid/${route}`, {
          token,
          body: { medium: "fax", address: "1" },
        });
        assertError(fax, 400, "M_BAD_JSON");
        assertError(await api(base, "POST", `${C}/account/3pid/${route}`, { body: {} }), 401, "M_MISSING_TOKEN");
      }

      const email = { client_secret: "s", email: "alice@example.org", send_attempt: 1 };
      const msisdn = { client_secret: "s", country: "GB", phone_number: "07700900001", send_attempt: 1 };
      const cases: [string, string, object, number, string][] = [
        [
          "administrative_contact.yaml",
          "/account/3pid/email/requestToken",
          email,
          400,
          "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        ],
        [
          "administrative_contact.yaml",
          "/account/3pid/msisdn/requestToken",
          msisdn,
          400,
          "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        ],
        ["password_management.yaml", "/account/password/email/requestToken", email, 403, "M_THREEPID_DENIED"],
        ["password_management.yaml", "/account/password/msisdn/requestToken", msisdn, 403, "M_THREEPID_DENIED"],
        ["registration.yaml", "/register/email/requestToken", email, 403, "M_THREEPID_DENIED"],
        ["registration.yaml", "/register/msisdn/requestToken", msisdn, 403, "M_THREEPID_DENIED"],
      ];
      for (const [file, path, body, status, errcode] of cases) {
        assertError(await api(base, "POST", C + path, { body }), status, errcode, [file, path, "POST"]);
        assertError(await api(base, "POST", C + path, { body: { client_secret: "s" } }), 400, "M_MISSING_PARAM");
        assertError(await api(base, "POST", C + path, { body: { ...body, send_attempt: "1" } }), 400, "M_BAD_JSON");
      }
    });

    it("SSO, auth_metadata and appservice routes answer deliberately", async () => {
      assertError(
        await api(base, "GET", `${C}/login/sso/redirect?redirectUrl=https%3A%2F%2Fapp.example`),
        404,
        "M_NOT_FOUND",
      );
      assertError(await api(base, "GET", `${C}/login/sso/redirect`), 400, "M_MISSING_PARAM");
      assertError(
        await api(base, "GET", `${C}/login/sso/redirect?redirectUrl=x&action=delete`),
        400,
        "M_INVALID_PARAM",
      );
      assertError(await api(base, "GET", `${C}/login/sso/redirect/oidc-github?redirectUrl=x`), 404, "M_NOT_FOUND");
      const flows = await ok(base, "GET", `${C}/login`);
      assert.ok(!flows.flows.some((f: any) => f.type === "m.login.sso"), "no SSO flow is advertised");

      assertError(await api(base, "GET", "/_matrix/client/v1/auth_metadata"), 404, "M_UNRECOGNIZED", [
        "oauth_server_metadata.yaml",
        "/auth_metadata",
        "GET",
      ]);

      const ping = "/_matrix/client/v1/appservice/my-bridge/ping";
      assertError(
        await api(base, "POST", ping, { token: alice.accessToken, body: { transaction_id: "t" } }),
        403,
        "M_FORBIDDEN",
        ["appservice_ping.yaml", "/appservice/{appserviceId}/ping", "POST"],
      );
      assertError(await api(base, "POST", ping, { body: {} }), 401, "M_MISSING_TOKEN");
      const list = `${C}/directory/list/appservice/irc/${enc("!room:localhost")}`;
      assertError(
        await api(base, "PUT", list, { token: alice.accessToken, body: { visibility: "public" } }),
        403,
        "M_FORBIDDEN",
      );
    });
  });
}

describe("auth tokens: m.login.token disabled (the default)", () => {
  let hs: Hs;
  let base: string;
  before(async () => {
    hs = await startInProcess({});
    base = hs.url;
  });
  after(async () => hs?.dispose());

  it("no m.login.token flow, capability disabled, get_token 400 M_FORBIDDEN, /login refuses the type", async () => {
    const s = await registerUser(base, "carol");
    const flows = await ok(base, "GET", `${C}/login`);
    assert.deepEqual(flows, { flows: [{ type: "m.login.password" }] });
    const caps = await ok(base, "GET", `${C}/capabilities`, { token: s.accessToken });
    assert.deepEqual(caps.capabilities["m.get_login_token"], { enabled: false });
    const r = await api(base, "POST", "/_matrix/client/v1/login/get_token", { token: s.accessToken, body: {} });
    assertError(r, 400, "M_FORBIDDEN", ["login_token.yaml", "/login/get_token", "POST"]);
    const l = await api(base, "POST", `${C}/login`, { body: { type: "m.login.token", token: "x" } });
    assertError(l, 400, "M_INVALID_PARAM", ["login.yaml", "/login", "POST"]);
    // The default access-token lifetime with refresh is Synapse's five minutes.
    const login = await ok(base, "POST", `${C}/login`, {
      body: {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: "carol" },
        password: PASSWORD,
        refresh_token: true,
      },
    });
    assert.equal(login.expires_in_ms, 300_000);
  });
});
