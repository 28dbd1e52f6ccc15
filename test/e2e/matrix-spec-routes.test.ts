/**
 * Every method + path of the Matrix v1.19 client-server API (the OpenAPI files in spec/matrix), asked of the
 * homeserver with real parameters (a real room, event, media, filter, backup version, device ...), on SQLite and on
 * PostgreSQL. Each must answer — never 404/405 `M_UNRECOGNIZED` (the spec's "unknown endpoint") unless the spec
 * itself says that is the answer of a server without the feature — with a status the spec documents for it, and the
 * body must match the spec's schema for that status. Routes the server serves on purpose with an error (3PIDs
 * without an identity server, SSO without a provider, appservice-only routes, ...) are listed with their reason.
 * A new spec route, or a route that stops answering, fails this test.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { clientServerRoutes, type SpecRoute } from "../../src/test/spec-routes.ts";
import { specErrors, specStatuses } from "../../src/test/spec-schema.ts";
import { type ApiResponse, api, enc, ok, registerUser, type Session } from "./helpers/client.ts";
import { BACKENDS, createTestDatabase, startInProcess } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const PASSWORD = "correct horse battery";
/** A 1x1 PNG, for upload and thumbnail routes. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
  "base64",
);

/**
 * Routes whose answer, here, is an error for a feature this server does not have. Each names why; the answer must be
 * a Matrix error (`errcode`), matching the spec's schema where the spec documents its status.
 */
const ERROR_ANSWERS: Record<string, string> = {
  "GET /_matrix/client/v1/auth_metadata": "no OAuth 2.0 server: the spec's answer is 404 M_UNRECOGNIZED",
  "POST /_matrix/client/v1/appservice/{appserviceId}/ping": "only an application service's token may ping",
  "PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}": "only an application service may",
  "POST /_matrix/client/v3/account/3pid": "no identity server: 3PIDs cannot be added",
  "POST /_matrix/client/v3/account/3pid/add": "no email/SMS sending: no 3PID can be validated",
  "POST /_matrix/client/v3/account/3pid/bind": "no identity server",
  "POST /_matrix/client/v3/account/3pid/email/requestToken": "no email sending",
  "POST /_matrix/client/v3/account/3pid/msisdn/requestToken": "no SMS sending",
  "POST /_matrix/client/v3/account/password/email/requestToken": "no email sending",
  "POST /_matrix/client/v3/account/password/msisdn/requestToken": "no SMS sending",
  "POST /_matrix/client/v3/register/email/requestToken": "no email sending",
  "POST /_matrix/client/v3/register/msisdn/requestToken": "no SMS sending",
  "GET /_matrix/client/v3/login/sso/redirect": "no SSO identity provider configured",
  "GET /_matrix/client/v3/thirdparty/protocol/{protocol}": "no bridges: every protocol is unknown (404)",
  "GET /_matrix/client/v3/login/sso/redirect/{idpId}": "no SSO identity provider configured",
  "GET /_matrix/client/v1/media/preview_url": "URL previews are off by default (as Synapse): 403",
  "GET /_matrix/media/v3/preview_url": "URL previews are off by default (as Synapse): 403",
  "GET /.well-known/matrix/policy_server": "no policy server: 404",
  "GET /.well-known/matrix/support": "no support contacts configured: 404",
  "GET /_matrix/client/v1/register/m.login.registration_token/validity": "registration tokens are off here",
  "POST /_matrix/client/v1/login/get_token": "login with an existing session is off by default (as Synapse)",
  "invite third_party_membership.yaml": "no identity server: a 3PID invite cannot be looked up",
};

/**
 * Statuses the spec's prose prescribes where its OpenAPI lists none: media uploaded since authenticated media
 * (v1.11, "freezing" the old routes) answers 404 M_NOT_FOUND on the unauthenticated routes, as Synapse does.
 */
const PROSE_STATUSES: Record<string, number> = {
  "GET /_matrix/media/v3/download/{serverName}/{mediaId}": 404,
  "GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}": 404,
  "GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}": 404,
};

/** Answers that knowingly differ from the spec's schema, each with why. */
const SCHEMA_EXCEPTIONS: Record<string, string> = {
  "GET /_matrix/client/v3/voip/turnServer":
    "without a TURN server the answer is {} (Synapse's; matrix-js-sdk reads it as no TURN servers)",
};

interface Fixture {
  base: string;
  alice: Session;
  bob: Session;
  carol: Session;
  room: string;
  alias: string;
  event: string;
  redactable: string;
  upgradeRoom: string;
  knockRoom: string;
  leaveRoom: string;
  forgetRoom: string;
  kim: Session;
  mediaId: string;
  filterId: string;
  backupVersion: string;
  since: string;
  txn: number;
}

for (const backend of BACKENDS) {
  describe(`every client-server route of the spec answers as specified (${backend})`, () => {
    let hs: Awaited<ReturnType<typeof startInProcess>>;
    let drop = async () => {};
    let fx: Fixture;
    const answers = new Map<SpecRoute, ApiResponse>();

    const call = (s: Session | null, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
      api(fx.base, method, path, { token: s?.accessToken, body, headers });
    const okc = (s: Session, method: string, path: string, body?: unknown) =>
      ok(fx.base, method, path, { token: s.accessToken, body });

    /** A request behind user-interactive auth: the first answer's session, then m.login.password. */
    async function uia(s: Session, method: string, path: string, body: Record<string, unknown> = {}) {
      const first = await call(s, method, path, body);
      if (first.status !== 401 || !first.json?.flows) return first;
      const auth = {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: s.userId },
        password: PASSWORD,
        session: first.json.session,
      };
      return call(s, method, path, { ...body, auth });
    }

    async function login(user: string, extra: Record<string, unknown> = {}): Promise<ApiResponse> {
      return call(null, "POST", `${C}/login`, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user },
        password: PASSWORD,
        ...extra,
      });
    }
    const session = (j: any): Session => ({ userId: j.user_id, accessToken: j.access_token, deviceId: j.device_id });

    /** The path with every `{name}` filled from the fixture (or `over`). */
    function fill(route: SpecRoute, over: Record<string, string> = {}): string {
      const isState = route.path.includes("/state/");
      const values: Record<string, string> = {
        roomId: fx.room,
        roomIdOrAlias: fx.room,
        roomAlias: fx.alias,
        eventId: fx.event,
        eventType: isState ? "m.room.name" : "m.room.message",
        stateKey: "",
        txnId: `spec${++fx.txn}`,
        serverName: "localhost",
        mediaId: fx.mediaId,
        fileName: "pixel.png",
        version: fx.backupVersion,
        sessionId: "spec-session",
        tag: "u.spec",
        type: "org.example.spec",
        kind: "override",
        ruleId: "org.example.spec",
        relType: "m.annotation",
        filterId: fx.filterId,
        deviceId: fx.alice.deviceId,
        receiptType: "m.read",
        userId: fx.alice.userId,
        protocol: "irc",
        keyName: "org.example.colour",
        appserviceId: "bridge",
        networkId: "irc",
        idpId: "github",
        ...over,
      };
      return route.path.trim().replace(/\{(\w+)\}/g, (_m, name: string) => {
        const v = values[name];
        if (v === undefined) throw new Error(`no fixture value for {${name}} in ${route.path}`);
        return enc(v);
      });
    }

    /** Ask one spec route as a client would, with real parameters; returns the answer to judge. */
    async function ask(route: SpecRoute): Promise<ApiResponse> {
      const key = `${route.method} ${route.path.trim()}`;
      const a = fx.alice;
      const p = (over?: Record<string, string>) => fill(route, over);
      switch (key) {
        // -- accounts, sessions, devices
        case "POST /_matrix/client/v3/register": {
          const body = { username: `newcomer${backend}`, password: PASSWORD };
          const first = await call(null, "POST", p(), body);
          return call(null, "POST", p(), { ...body, auth: { type: "m.login.dummy", session: first.json?.session } });
        }
        case "GET /_matrix/client/v3/register/available":
          return call(null, "GET", `${p()}?username=free${backend}`);
        case "GET /_matrix/client/v1/register/m.login.registration_token/validity":
          return call(null, "GET", `${p()}?token=nope`);
        case "POST /_matrix/client/v3/login":
          return login(fx.bob.userId);
        case "POST /_matrix/client/v3/refresh": {
          const r = await login(fx.carol.userId, { refresh_token: true });
          return call(null, "POST", p(), { refresh_token: r.json?.refresh_token ?? "no refresh token issued" });
        }
        case "POST /_matrix/client/v1/login/get_token":
          return uia(a, "POST", p());
        case "POST /_matrix/client/v3/logout":
          return call(session((await login(fx.carol.userId)).json), "POST", p());
        case "POST /_matrix/client/v3/logout/all":
          return call(await registerUser(fx.base, `lou${backend}`, PASSWORD), "POST", p());
        case "POST /_matrix/client/v3/account/deactivate":
          return uia(await registerUser(fx.base, `dee${backend}`, PASSWORD), "POST", p(), { erase: false });
        case "POST /_matrix/client/v3/account/password":
          return uia(await registerUser(fx.base, `pat${backend}`, PASSWORD), "POST", p(), {
            new_password: `${PASSWORD} two`,
            logout_devices: false,
          });
        case "PUT /_matrix/client/v3/devices/{deviceId}":
          return call(a, "PUT", p(), { display_name: "spec device" });
        case "DELETE /_matrix/client/v3/devices/{deviceId}": {
          const other = session((await login(a.userId)).json);
          return uia(a, "DELETE", p({ deviceId: other.deviceId }));
        }
        case "POST /_matrix/client/v3/delete_devices": {
          const other = session((await login(a.userId)).json);
          return uia(a, "POST", p(), { devices: [other.deviceId] });
        }
        case "GET /_matrix/client/v3/admin/whois/{userId}":
        case "GET /_matrix/client/v1/admin/lock/{userId}":
        case "GET /_matrix/client/v1/admin/suspend/{userId}":
          return call(a, "GET", p({ userId: fx.bob.userId }));
        case "PUT /_matrix/client/v1/admin/lock/{userId}":
          return call(a, "PUT", p({ userId: fx.bob.userId }), { locked: false });
        case "PUT /_matrix/client/v1/admin/suspend/{userId}":
          return call(a, "PUT", p({ userId: fx.bob.userId }), { suspended: false });
        case "POST /_matrix/client/v3/user/{userId}/openid/request_token":
          return call(a, "POST", p(), {});
        case "GET /_matrix/client/v1/mutual_rooms":
          return call(a, "GET", `${p()}?user_id=${enc(fx.bob.userId)}`);
        case "GET /_matrix/client/v3/login/sso/redirect":
        case "GET /_matrix/client/v3/login/sso/redirect/{idpId}":
          return api(fx.base, "GET", `${p()}?redirectUrl=${enc("https://client.example/")}`, {});
        // -- 3PIDs (no identity server, no email or SMS here)
        case "POST /_matrix/client/v3/account/3pid":
          return call(a, "POST", p(), {
            three_pid_creds: { client_secret: "s3cret", sid: "1", id_server: "id.example", id_access_token: "t" },
          });
        case "POST /_matrix/client/v3/account/3pid/add":
          return uia(a, "POST", p(), { client_secret: "s3cret", sid: "1" });
        case "POST /_matrix/client/v3/account/3pid/bind":
          return call(a, "POST", p(), {
            client_secret: "s3cret",
            sid: "1",
            id_server: "id.example",
            id_access_token: "t",
          });
        case "POST /_matrix/client/v3/account/3pid/delete":
        case "POST /_matrix/client/v3/account/3pid/unbind":
          return call(a, "POST", p(), { medium: "email", address: "alice@example.org" });
        case "POST /_matrix/client/v3/account/3pid/email/requestToken":
        case "POST /_matrix/client/v3/account/password/email/requestToken":
        case "POST /_matrix/client/v3/register/email/requestToken":
          return call(a, "POST", p(), { client_secret: "s3cret", email: "alice@example.org", send_attempt: 1 });
        case "POST /_matrix/client/v3/account/3pid/msisdn/requestToken":
        case "POST /_matrix/client/v3/account/password/msisdn/requestToken":
        case "POST /_matrix/client/v3/register/msisdn/requestToken":
          return call(a, "POST", p(), {
            client_secret: "s3cret",
            country: "GB",
            phone_number: "07700900001",
            send_attempt: 1,
          });
        case "POST /_matrix/client/v1/appservice/{appserviceId}/ping":
          return call(a, "POST", p(), { transaction_id: "t1" });
        case "PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}":
          return call(a, "PUT", p(), { visibility: "public" });
        // -- profile, presence, account data, filters
        case "PUT /_matrix/client/v3/profile/{userId}/{keyName}":
          return call(a, "PUT", p(), { "org.example.colour": "teal" });
        case "PUT /_matrix/client/v3/presence/{userId}/status":
          return call(a, "PUT", p(), { presence: "online", status_msg: "specifying" });
        case "PUT /_matrix/client/v3/user/{userId}/account_data/{type}":
        case "PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}":
          return call(a, "PUT", p(), { spec: true });
        case "PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}":
          return call(a, "PUT", p(), { order: 0.5 });
        case "POST /_matrix/client/v3/user/{userId}/filter":
          return call(a, "POST", p(), { room: { timeline: { limit: 5 } } });
        // -- push
        case "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}":
          return call(a, "PUT", p(), { actions: ["notify"], conditions: [] });
        case "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/actions":
          return call(a, "PUT", p(), { actions: ["notify"] });
        case "PUT /_matrix/client/v3/pushrules/global/{kind}/{ruleId}/enabled":
          return call(a, "PUT", p(), { enabled: true });
        case "POST /_matrix/client/v3/pushers/set":
          return call(a, "POST", p(), {
            kind: "http",
            app_id: "org.example.spec",
            pushkey: "spec-pushkey",
            app_display_name: "Spec",
            device_display_name: "Spec device",
            lang: "en",
            data: { url: "http://127.0.0.1:9/_matrix/push/v1/notify" },
          });
        // -- rooms
        case "POST /_matrix/client/v3/createRoom":
          return call(a, "POST", p(), { preset: "private_chat", name: "Made by the spec test" });
        case "POST /_matrix/client/v3/join/{roomIdOrAlias}":
          return call(fx.carol, "POST", p({ roomIdOrAlias: fx.alias }), {});
        case "POST /_matrix/client/v3/rooms/{roomId}/join":
          return call(fx.bob, "POST", p(), {});
        case "POST /_matrix/client/v3/knock/{roomIdOrAlias}":
          return call(fx.carol, "POST", p({ roomIdOrAlias: fx.knockRoom }), { reason: "let me in" });
        case "POST /_matrix/client/v3/rooms/{roomId}/invite":
          if (route.file === "third_party_membership.yaml")
            return call(a, "POST", p(), {
              id_server: "id.example",
              id_access_token: "t",
              medium: "email",
              address: "carol@example.org",
            });
          return call(a, "POST", p({ roomId: fx.upgradeRoom }), { user_id: fx.bob.userId });
        case "POST /_matrix/client/v3/rooms/{roomId}/kick":
          return call(a, "POST", p(), { user_id: fx.kim.userId, reason: "spec" });
        case "POST /_matrix/client/v3/rooms/{roomId}/ban":
        case "POST /_matrix/client/v3/rooms/{roomId}/unban":
          return call(a, "POST", p(), { user_id: "@bart:localhost", reason: "spec" });
        case "POST /_matrix/client/v3/rooms/{roomId}/leave":
          return call(fx.bob, "POST", p({ roomId: fx.leaveRoom }), {});
        case "POST /_matrix/client/v3/rooms/{roomId}/forget":
          await okc(fx.bob, "POST", `${C}/rooms/${enc(fx.forgetRoom)}/leave`, {});
          return call(fx.bob, "POST", p({ roomId: fx.forgetRoom }), {});
        case "POST /_matrix/client/v3/rooms/{roomId}/upgrade":
          return call(a, "POST", p({ roomId: fx.upgradeRoom }), { new_version: "10" });
        case "PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}":
          return call(a, "PUT", p(), { msgtype: "m.text", body: "sent by the spec test" });
        case "PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}":
          return call(a, "PUT", p({ eventType: "m.room.topic" }), { topic: "specified" });
        case "PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}":
          return call(a, "PUT", p({ eventId: fx.redactable }), { reason: "spec" });
        case "PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}":
          return call(a, "PUT", p(), { typing: true, timeout: 1000 });
        case "POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}":
          return call(fx.bob, "POST", p(), {});
        case "POST /_matrix/client/v3/rooms/{roomId}/read_markers":
          return call(fx.bob, "POST", p(), { "m.fully_read": fx.event, "m.read": fx.event });
        case "POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}":
          return call(fx.bob, "POST", p(), { reason: "spec test" });
        case "POST /_matrix/client/v3/rooms/{roomId}/report":
          return call(fx.bob, "POST", p(), { reason: "spec test" });
        case "POST /_matrix/client/v3/users/{userId}/report":
          return call(fx.bob, "POST", p(), { reason: "spec test" });
        case "GET /_matrix/client/v3/rooms/{roomId}/messages":
          return call(a, "GET", `${p()}?dir=b&limit=5`);
        case "GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event":
          return call(a, "GET", `${p()}?ts=${Date.now()}&dir=b`);
        case "GET /_matrix/client/v3/rooms/{roomId}/initialSync":
          return call(a, "GET", `${p()}?limit=3`);
        case "PUT /_matrix/client/v3/directory/room/{roomAlias}":
          return call(a, "PUT", p({ roomAlias: `#spec3${backend}:localhost` }), { room_id: fx.room });
        case "DELETE /_matrix/client/v3/directory/room/{roomAlias}":
          return call(a, "DELETE", p({ roomAlias: `#spec2${backend}:localhost` }));
        case "PUT /_matrix/client/v3/directory/list/room/{roomId}":
          return call(a, "PUT", p(), { visibility: "public" });
        case "POST /_matrix/client/v3/publicRooms":
          return call(a, "POST", p(), { limit: 5 });
        case "POST /_matrix/client/v3/search":
          return call(a, "POST", p(), { search_categories: { room_events: { search_term: "hello" } } });
        case "POST /_matrix/client/v3/user_directory/search":
          return call(a, "POST", p(), { search_term: "bob" });
        // -- sync and its deprecated forms
        case "GET /_matrix/client/v3/sync":
          return call(a, "GET", `${p()}?timeout=0`);
        case "GET /_matrix/client/v3/events":
          if (route.file === "peeking_events.yaml")
            return call(fx.carol, "GET", `${p()}?room_id=${enc(fx.room)}&timeout=0`);
          return call(a, "GET", `${p()}?timeout=0&from=${enc(fx.since)}`);
        case "GET /_matrix/client/v3/initialSync":
          return call(a, "GET", `${p()}?limit=2`);
        case "GET /_matrix/client/v3/keys/changes":
          return call(a, "GET", `${p()}?from=${enc(fx.since)}&to=${enc(fx.since)}`);
        case "PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}":
          return call(a, "PUT", p({ eventType: "org.example.spec" }), {
            messages: { [fx.bob.userId]: { "*": { hi: 1 } } },
          });
        // -- E2EE
        case "POST /_matrix/client/v3/keys/upload":
          return call(a, "POST", p(), {});
        case "POST /_matrix/client/v3/keys/query":
          return call(a, "POST", p(), { device_keys: { [a.userId]: [] } });
        case "POST /_matrix/client/v3/keys/claim":
          return call(a, "POST", p(), {
            one_time_keys: { [fx.bob.userId]: { [fx.bob.deviceId]: "signed_curve25519" } },
          });
        case "POST /_matrix/client/v3/keys/device_signing/upload": {
          const key = (usage: string, k: string) => ({
            user_id: a.userId,
            usage: [usage],
            keys: { [`ed25519:${k}`]: k },
          });
          return uia(a, "POST", p(), { master_key: key("master", "bWFzdGVyS2V5TWFzdGVyS2V5TWFzdGVyS2V5TWFzdA") });
        }
        case "POST /_matrix/client/v3/keys/signatures/upload":
          return call(a, "POST", p(), {});
        case "POST /_matrix/client/v3/room_keys/version":
          return call(a, "POST", p(), {
            algorithm: "m.megolm_backup.v1.curve25519-aes-sha2",
            auth_data: { public_key: "cHVibGlj" },
          });
        case "PUT /_matrix/client/v3/room_keys/version/{version}":
          return call(a, "PUT", p(), {
            algorithm: "m.megolm_backup.v1.curve25519-aes-sha2",
            auth_data: { public_key: "cHVibGlj" },
            version: fx.backupVersion,
          });
        case "GET /_matrix/client/v3/room_keys/keys":
        case "GET /_matrix/client/v3/room_keys/keys/{roomId}":
        case "GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}":
        case "DELETE /_matrix/client/v3/room_keys/keys":
        case "DELETE /_matrix/client/v3/room_keys/keys/{roomId}":
        case "DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}":
          return call(a, route.method, `${p()}?version=${enc(fx.backupVersion)}`);
        case "PUT /_matrix/client/v3/room_keys/keys":
          return call(a, "PUT", `${p()}?version=${enc(fx.backupVersion)}`, {
            rooms: { [fx.room]: { sessions: { "spec-session": backupKey() } } },
          });
        case "PUT /_matrix/client/v3/room_keys/keys/{roomId}":
          return call(a, "PUT", `${p()}?version=${enc(fx.backupVersion)}`, {
            sessions: { "spec-session": backupKey() },
          });
        case "PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}":
          return call(a, "PUT", `${p()}?version=${enc(fx.backupVersion)}`, backupKey());
        // -- media
        case "POST /_matrix/media/v3/upload":
          return api(fx.base, "POST", `${p()}?filename=pixel.png`, {
            token: a.accessToken,
            body: PNG,
            headers: { "Content-Type": "image/png" },
          });
        case "PUT /_matrix/media/v3/upload/{serverName}/{mediaId}": {
          const created = await call(a, "POST", "/_matrix/media/v1/create");
          const mediaId =
            String(created.json?.content_uri ?? "")
              .split("/")
              .pop() ?? "none";
          return api(fx.base, "PUT", p({ mediaId }), {
            token: a.accessToken,
            body: PNG,
            headers: { "Content-Type": "image/png" },
          });
        }
        case "GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}":
        case "GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}":
          return call(a, "GET", `${p()}?width=32&height=32&method=scale`);
        case "GET /_matrix/client/v1/media/preview_url":
        case "GET /_matrix/media/v3/preview_url":
          return call(a, "GET", `${p()}?url=${enc("http://127.0.0.1:9/")}`);
        case "GET /_matrix/client/v3/thirdparty/location":
          return call(a, "GET", `${p()}?alias=${enc("#irc_#matrix:localhost")}`);
        case "GET /_matrix/client/v3/thirdparty/user":
          return call(a, "GET", `${p()}?userid=${enc("@irc_alice:localhost")}`);
        default:
          // Every other route answers with the fixture's values and, for POST/PUT, an empty JSON object.
          return call(a, route.method, p(), route.method === "POST" || route.method === "PUT" ? {} : undefined);
      }
    }
    const backupKey = () => ({
      first_message_index: 0,
      forwarded_count: 0,
      is_verified: false,
      session_data: { ephemeral: "ZXBo", ciphertext: "Y2lwaGVy", mac: "bWFj" },
    });

    before(async () => {
      const db = backend === "postgres" ? await createTestDatabase("postgres", "") : undefined;
      drop = db ? db.drop : drop;
      hs = await startInProcess(db ? { database: db.database } : {});
      const base = hs.url;
      const reg = (u: string) => registerUser(base, `${u}${backend}`, PASSWORD);
      const [alice, bob, carol, kim] = await Promise.all(["alice", "bob", "carol", "kim"].map(reg));
      await hs.hs.store.accounts.updateUser(alice.userId, { admin: true });
      fx = { base, alice, bob, carol, kim, txn: 0 } as Fixture;
      const room = await okc(alice, "POST", `${C}/createRoom`, {
        preset: "public_chat",
        room_alias_name: `spec${backend}`,
        name: "Spec room",
        initial_state: [
          { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "world_readable" } },
        ],
      });
      fx.room = room.room_id;
      fx.alias = `#spec${backend}:localhost`;
      await okc(bob, "POST", `${C}/join/${enc(fx.room)}`, {});
      await okc(kim, "POST", `${C}/join/${enc(fx.room)}`, {});
      const send = async (body: string) =>
        (
          await okc(alice, "PUT", `${C}/rooms/${enc(fx.room)}/send/m.room.message/fx${++fx.txn}`, {
            msgtype: "m.text",
            body,
          })
        ).event_id as string;
      fx.event = await send("hello spec");
      fx.redactable = await send("to be redacted");
      await okc(bob, "PUT", `${C}/rooms/${enc(fx.room)}/send/m.reaction/fx${++fx.txn}`, {
        "m.relates_to": { rel_type: "m.annotation", event_id: fx.event, key: "👍" },
      });
      await okc(bob, "PUT", `${C}/rooms/${enc(fx.room)}/send/m.room.message/fx${++fx.txn}`, {
        msgtype: "m.text",
        body: "in a thread",
        "m.relates_to": { rel_type: "m.thread", event_id: fx.event },
      });
      const mk = async (body: Record<string, unknown>) =>
        (await okc(alice, "POST", `${C}/createRoom`, body)).room_id as string;
      fx.upgradeRoom = await mk({ preset: "private_chat", name: "To upgrade", room_version: "10" });
      fx.knockRoom = await mk({
        preset: "private_chat",
        room_version: "10",
        initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }],
      });
      fx.leaveRoom = await mk({ preset: "public_chat" });
      fx.forgetRoom = await mk({ preset: "public_chat" });
      for (const r of [fx.leaveRoom, fx.forgetRoom]) await okc(bob, "POST", `${C}/join/${enc(r)}`, {});
      const up = await api(base, "POST", "/_matrix/media/v3/upload?filename=pixel.png", {
        token: alice.accessToken,
        body: PNG,
        headers: { "Content-Type": "image/png" },
      });
      fx.mediaId = String(up.json.content_uri).split("/").pop() as string;
      fx.filterId = (await okc(alice, "POST", `${C}/user/${enc(alice.userId)}/filter`, {})).filter_id;
      fx.backupVersion = (
        await okc(alice, "POST", `${C}/room_keys/version`, {
          algorithm: "m.megolm_backup.v1.curve25519-aes-sha2",
          auth_data: { public_key: "cHVibGlj" },
        })
      ).version;
      await okc(
        alice,
        "PUT",
        `${C}/room_keys/keys/${enc(fx.room)}/spec-session?version=${fx.backupVersion}`,
        backupKey(),
      );
      fx.since = (await okc(alice, "GET", `${C}/sync?timeout=0`)).next_batch;
      // What the GET and DELETE routes read: a push rule, a tag, account data, a custom profile field.
      await okc(alice, "PUT", `${C}/pushrules/global/override/org.example.spec`, {
        actions: ["notify"],
        conditions: [],
      });
      await okc(alice, "PUT", `${C}/user/${enc(alice.userId)}/rooms/${enc(fx.room)}/tags/u.spec`, {});
      await okc(alice, "PUT", `${C}/user/${enc(alice.userId)}/account_data/org.example.spec`, { spec: true });
      await okc(alice, "PUT", `${C}/user/${enc(alice.userId)}/rooms/${enc(fx.room)}/account_data/org.example.spec`, {
        spec: true,
      });
      await call(alice, "PUT", `${C}/profile/${enc(alice.userId)}/org.example.colour`, {
        "org.example.colour": "teal",
      });
      await okc(alice, "PUT", `${C}/directory/room/${enc(`#spec2${backend}:localhost`)}`, { room_id: fx.room });

      // Ask every route: reads and writes first, then deletions (the backup version last), as a client would.
      const routes = clientServerRoutes();
      const rank = (r: SpecRoute) =>
        r.method !== "DELETE" ? 0 : r.path.endsWith("/room_keys/version/{version}") ? 2 : 1;
      for (const route of [...routes].sort((x, y) => rank(x) - rank(y))) answers.set(route, await ask(route));
    });
    after(async () => {
      await hs?.dispose();
      await drop();
    });

    it("covers every route of the spec files", () => {
      assert.ok(answers.size >= 166, `only ${answers.size} routes read from spec/matrix`);
    });

    it("answers every route (no M_UNRECOGNIZED but where the spec says so)", () => {
      const missing: string[] = [];
      for (const [route, res] of answers) {
        const unrecognized =
          (res.status === 404 || res.status === 405) && (res.json?.errcode ?? "M_UNRECOGNIZED") === "M_UNRECOGNIZED";
        if (unrecognized && route.path !== "/_matrix/client/v1/auth_metadata")
          missing.push(`${route.method} ${route.path} [${route.file}] -> ${res.status} ${res.text.slice(0, 120)}`);
      }
      assert.deepEqual(missing, [], `${missing.length} spec routes unanswered:\n${missing.join("\n")}`);
    });

    it("answers with a status the spec documents and a body that matches its schema", () => {
      const wrong: string[] = [];
      for (const [route, res] of answers) {
        const key = `${route.method} ${route.path.trim()}`;
        const reason =
          ERROR_ANSWERS[key] ??
          (route.file === "third_party_membership.yaml"
            ? ERROR_ANSWERS["invite third_party_membership.yaml"]
            : undefined);
        const where = `${key} [${route.file}] -> ${res.status}`;
        const documented = specStatuses(route.file, route.specPath, route.method);
        const success = res.status >= 200 && res.status < 300;
        if (PROSE_STATUSES[key] === res.status && res.json?.errcode === "M_NOT_FOUND") continue;
        if (!success && !reason) {
          wrong.push(`${where}: expected success: ${res.text.slice(0, 200)}`);
          continue;
        }
        if (!success && (typeof res.json?.errcode !== "string" || !/^M_[A-Z_]+$/.test(res.json.errcode))) {
          wrong.push(`${where}: an error without a Matrix errcode: ${res.text.slice(0, 200)}`);
          continue;
        }
        if (!documented.includes(String(res.status))) {
          // A feature this server does not have: the spec documents no status for that, a Matrix error is the answer.
          if (success || !reason)
            wrong.push(`${where}: the spec documents only ${documented.join(", ")}: ${res.text.slice(0, 200)}`);
          continue;
        }
        if (SCHEMA_EXCEPTIONS[key]) continue;
        try {
          const errs = specErrors(route.file, route.specPath, route.method, res.status, res.json);
          if (errs.length) wrong.push(`${where}: ${errs.slice(0, 5).join("; ")}\n    body: ${res.text.slice(0, 300)}`);
        } catch (e) {
          // A binary (media) or schemaless answer: the status is what the spec documents.
          if (!String(e).includes("no JSON schema")) wrong.push(`${where}: ${String(e)}`);
        }
      }
      assert.deepEqual(wrong, [], `${wrong.length} answers not as specified:\n${wrong.join("\n")}`);
    });
  });
}
