/**
 * Fuzz the client-server API: at least 1,000 random and mutated request bodies (and some mutated paths and
 * queries) per backend, from a seeded PRNG so any failure reproduces (AMI_FUZZ_SEED=<n> to replay one seed).
 * Auth routes (/refresh, OpenID, 3PID, SSO) included. Every answer must be < 500; every answer >= 400 must be Matrix error JSON; the server must stay up.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { api, enc, ok, registerUser, type Session } from "./helpers/client.ts";
import { Fuzzer } from "./helpers/fuzzer.ts";
import { BACKENDS, ChildHomeserver } from "./helpers/homeserver.ts";

const C = "/_matrix/client/v3";
const ROUNDS = Number(process.env.AMI_FUZZ_ROUNDS ?? 1200);
const SEED = Number(process.env.AMI_FUZZ_SEED ?? 0x5eed);

interface Target {
  method: string;
  /** Built per request so path parameters can be fuzzed too. */
  path: (f: Fuzzer) => string;
  body?: (f: Fuzzer) => unknown;
  auth?: boolean;
}

function targets(ctx: { user: Session; other: Session; rooms: string[]; eventId: string }): Target[] {
  const { user } = ctx;
  const room = (f: Fuzzer) => f.seg(f.pick(ctx.rooms));
  const me = (f: Fuzzer) => f.seg(user.userId);
  const txn = (f: Fuzzer) => f.seg(`t${f.int(1e9)}`);
  return [
    {
      method: "POST",
      path: () => `${C}/createRoom`,
      body: (f) => ({
        name: "fuzz",
        topic: "t",
        preset: "private_chat",
        visibility: "private",
        invite: [ctx.other.userId],
        room_alias_name: `fz${f.int(1e9)}`,
        initial_state: [{ type: "m.room.guest_access", state_key: "", content: { guest_access: "can_join" } }],
        power_level_content_override: { events_default: 0, users: { [user.userId]: 100 } },
        creation_content: { "m.federate": true },
        is_direct: false,
        room_version: "10",
      }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/rooms/${room(f)}/send/${f.seg("m.room.message")}/${txn(f)}`,
      body: () => ({ msgtype: "m.text", body: "hi", format: "org.matrix.custom.html", formatted_body: "<b>hi</b>" }),
    },
    { method: "PUT", path: (f) => `${C}/rooms/${room(f)}/state/m.room.topic/`, body: () => ({ topic: "topic" }) },
    { method: "PUT", path: (f) => `${C}/rooms/${room(f)}/state/m.room.name/`, body: () => ({ name: "name" }) },
    {
      method: "PUT",
      path: (f) => `${C}/rooms/${room(f)}/state/${f.seg("org.example.fuzz")}/${f.seg(f.pick(["", "k", user.userId]))}`,
      body: () => ({ a: [1, { b: "c" }] }),
    },
    {
      method: "PUT",
      path: () => `${C}/rooms/${enc(ctx.rooms[2])}/state/m.room.power_levels/`,
      body: () => ({
        users: { [user.userId]: 100 },
        users_default: 0,
        events: { "m.room.name": 50 },
        events_default: 0,
        state_default: 50,
        ban: 50,
        kick: 50,
        redact: 50,
        invite: 0,
      }),
    },
    {
      method: "POST",
      path: () => `${C}/login`,
      auth: false,
      body: () => ({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: user.userId },
        password: "wrong",
        device_id: "FUZZ",
        initial_device_display_name: "fuzz",
      }),
    },
    {
      method: "POST",
      path: () => `${C}/register`,
      auth: false,
      body: (f) => ({
        username: `fz${f.int(1e9)}`,
        password: "pw",
        auth: { type: "m.login.dummy" },
        inhibit_login: true,
      }),
    },
    {
      method: "POST",
      path: (f) => `${C}/user/${me(f)}/filter`,
      body: () => ({
        room: {
          timeline: { limit: 10, types: ["m.room.message"] },
          state: { lazy_load_members: true },
          rooms: ctx.rooms,
        },
        presence: { not_types: ["*"] },
        event_fields: ["content.body"],
        event_format: "client",
      }),
    },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/receipt/${f.seg(f.pick(["m.read", "m.read.private"]))}/${f.seg(ctx.eventId)}`,
      body: () => ({ thread_id: "main" }),
    },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/read_markers`,
      body: () => ({ "m.fully_read": ctx.eventId, "m.read": ctx.eventId, "m.read.private": ctx.eventId }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/rooms/${room(f)}/typing/${me(f)}`,
      body: () => ({ typing: true, timeout: 5000 }),
    },
    { method: "PUT", path: (f) => `${C}/profile/${me(f)}/displayname`, body: () => ({ displayname: "Fuzzy" }) },
    {
      method: "PUT",
      path: (f) => `${C}/profile/${me(f)}/avatar_url`,
      body: () => ({ avatar_url: "mxc://localhost/abc" }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/profile/${me(f)}/${f.seg(f.pick(["m.tz", "org.example.fuzz", "displayname"]))}`,
      body: (f) => ({ [f.pick(["m.tz", "org.example.fuzz", "displayname"])]: f.pick(["UTC", { a: [1] }, null]) }),
    },
    { method: "PUT", path: (f) => `/_matrix/client/v1/admin/lock/${me(f)}`, body: () => ({ locked: false }) },
    { method: "PUT", path: (f) => `/_matrix/client/v1/admin/suspend/${me(f)}`, body: () => ({ suspended: false }) },
    {
      method: "PUT",
      path: (f) => `${C}/user/${me(f)}/account_data/${f.seg("org.example.fuzz")}`,
      body: () => ({ nested: { list: [1, 2, 3] } }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/user/${me(f)}/rooms/${room(f)}/account_data/${f.seg("org.example.fuzz")}`,
      body: () => ({ k: "v" }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/user/${me(f)}/rooms/${room(f)}/tags/${f.seg("u.fuzz")}`,
      body: () => ({ order: 0.5 }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/presence/${me(f)}/status`,
      body: () => ({ presence: "online", status_msg: "fuzzing" }),
    },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/invite`,
      body: () => ({ user_id: ctx.other.userId, reason: "r" }),
    },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/kick`,
      body: () => ({ user_id: ctx.other.userId, reason: "r" }),
    },
    { method: "POST", path: (f) => `${C}/join/${room(f)}`, body: () => ({ reason: "r" }) },
    {
      method: "PUT",
      path: (f) => `${C}/rooms/${room(f)}/redact/${f.seg(ctx.eventId)}/${txn(f)}`,
      body: () => ({ reason: "r" }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/directory/room/${f.seg(`#fz${f.int(1e9)}:localhost`)}`,
      body: () => ({ room_id: ctx.rooms[0] }),
    },
    {
      method: "POST",
      path: () => `${C}/publicRooms`,
      body: () => ({ limit: 10, filter: { generic_search_term: "f" }, since: "" }),
    },
    { method: "POST", path: () => `${C}/user_directory/search`, body: () => ({ search_term: "a", limit: 5 }) },
    {
      method: "POST",
      path: (f) => `${C}/search${f.chance(0.3) ? `?next_batch=${f.seg(f.pick(["1", "x", "-5"]))}` : ""}`,
      body: () => ({
        search_categories: {
          room_events: {
            search_term: "seed",
            keys: ["content.body", "content.name"],
            filter: { rooms: ctx.rooms, limit: 5 },
            order_by: "rank",
            event_context: { before_limit: 1, after_limit: 1, include_profile: true },
            include_state: true,
            groupings: { group_by: [{ key: "room_id" }] },
          },
        },
      }),
    },
    {
      method: "POST",
      path: () => `${C}/pushers/set`,
      body: (f) => ({
        kind: "http",
        app_id: "org.example.fuzz",
        pushkey: `k${f.int(1e6)}`,
        app_display_name: "fuzz",
        device_display_name: "fuzz",
        lang: "en",
        data: { url: "http://127.0.0.1:9/_matrix/push/v1/notify", format: "event_id_only" },
        append: false,
      }),
    },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/upgrade`,
      body: (f) => ({ new_version: f.pick(["10", "11", "9999"]) }),
    },
    {
      method: "PUT",
      path: (f) => `${C}/devices/${f.seg(user.deviceId)}`,
      body: () => ({ display_name: "fuzz device" }),
    },
    { method: "POST", path: () => `${C}/refresh`, body: () => ({ refresh_token: "amir_fuzz" }), auth: false },
    { method: "POST", path: (f) => `${C}/user/${me(f)}/openid/request_token`, body: () => ({}) },
    {
      method: "POST",
      path: (f) => `${C}/account/3pid/${f.pick(["delete", "unbind"])}`,
      body: () => ({ medium: "email", address: "a@example.org", id_server: "id.example" }),
    },
    {
      method: "POST",
      path: (f) =>
        `${C}/${f.pick(["register", "account/password", "account/3pid"])}/${f.pick(["email", "msisdn"])}/requestToken`,
      body: () => ({ client_secret: "s", email: "a@example.org", country: "GB", phone_number: "1", send_attempt: 1 }),
      auth: false,
    },
    { method: "POST", path: () => "/_matrix/media/v1/create", body: () => ({}) },
    { method: "PUT", path: (f) => `/_matrix/media/v3/upload/${f.seg("localhost")}/${f.seg("nope")}`, body: () => ({}) },
    {
      method: "POST",
      path: (f) => `${C}/rooms/${room(f)}/report/${f.seg(ctx.eventId)}`,
      body: (f) => ({ reason: "fuzz", score: f.int(300) - 200 }),
    },
    { method: "POST", path: (f) => `${C}/rooms/${room(f)}/report`, body: () => ({ reason: "fuzz room" }) },
    {
      method: "POST",
      path: (f) => `${C}/users/${f.seg(ctx.other.userId)}/report`,
      body: () => ({ reason: "fuzz user" }),
    },
  ];
}

/** GET targets with fuzzed query strings. */
function queryPath(f: Fuzzer, rooms: string[]): string {
  const q = (k: string, v: string) =>
    f.chance(0.8) ? `${k}=${enc(v)}` : `${k}=${f.seg(f.string().slice(0, 200).toWellFormed())}`;
  const filter = f.chance(0.5)
    ? JSON.stringify(f.mutate({ room: { timeline: { limit: 5 }, state: { lazy_load_members: true } } }))
    : String(f.int(100));
  return f.pick([
    () =>
      `${C}/sync?${q("timeout", "0")}&${q("filter", filter)}&${q("since", f.pick(["s1", "0", "", "s99999999_0"]))}&${q("set_presence", "online")}`,
    () =>
      `${C}/rooms/${enc(f.pick(rooms))}/messages?${q("dir", f.pick(["b", "f"]))}&${q("limit", String(f.int(200) - 5))}&${q("from", f.pick(["", "s1", "t5-3"]))}&${q("filter", filter)}`,
    () =>
      `${C}/rooms/${enc(f.pick(rooms))}/members?${q("membership", "join")}&${q("not_membership", "leave")}&${q("at", "s1")}`,
    () => `${C}/rooms/${enc(f.pick(rooms))}/context/${f.seg("$nope")}?${q("limit", String(f.int(50)))}`,
    () => `${C}/publicRooms?${q("limit", String(f.int(50)))}&${q("since", "x")}`,
    () => `${C}/profile/${f.seg("@u:localhost")}`,
    () =>
      `/_matrix/client/v1/rooms/${enc(f.pick(rooms))}/relations/${f.seg("$nope")}/${f.seg("m.thread")}?${q("dir", f.pick(["b", "f"]))}&${q("limit", String(f.int(200) - 5))}&${q("recurse", "true")}&${q("from", f.pick(["", "s1", "t5-3"]))}`,
    () =>
      `/_matrix/client/v1/rooms/${enc(f.pick(rooms))}/threads?${q("include", f.pick(["all", "participated"]))}&${q("limit", String(f.int(50)))}&${q("from", "x")}`,
    () => `${C}/notifications?${q("limit", String(f.int(50)))}&${q("only", "highlight")}&${q("from", "x")}`,
    () => f.pick([`${C}/pushers`, `${C}/voip/turnServer`]),
    () => `/_matrix/client/v1/mutual_rooms?${q("user_id", "@u:localhost")}&${q("from", f.pick(["", "!x", "x"]))}`,
    () => `${C}/admin/whois/${f.seg("@u:localhost")}`,
    () =>
      `${C}/thirdparty/${f.pick(["protocols", "protocol/irc", "location/irc", "user"])}?${q("userid", "@u:localhost")}`,
    () => `${C}/events?timeout=0&${q("from", f.pick(["s1_0", "", "s99999999_0"]))}&${q("room_id", f.pick(rooms))}`,
    () => `${C}/initialSync?${q("limit", String(f.int(20)))}&${q("archived", "true")}`,
    () => `${C}/events/${f.seg("$nope")}`,
    () => `/_matrix/federation/v1/openid/userinfo?${q("access_token", "amio_fuzz")}`,
    () =>
      `${C}/login/sso/redirect${f.chance(0.5) ? `/${f.seg("idp")}` : ""}?${q("redirectUrl", "https://app.example/")}`,
    () =>
      `/_matrix/client/v1/rooms/${enc(f.pick(rooms))}/hierarchy?${q("limit", String(f.int(60) - 5))}&${q("max_depth", String(f.int(60) - 5))}&${q("suggested_only", f.pick(["true", "false"]))}&${q("from", f.pick(["h1_aaaaaaaaaaaa", "x"]))}`,
    () => `/_matrix/client/v1/room_summary/${f.seg(f.pick([...rooms, "#nope:localhost"]))}?${q("via", "localhost")}`,
    () =>
      `/_matrix/client/v1/rooms/${enc(f.pick(rooms))}/timestamp_to_event?${q("ts", String(Date.now() - f.int(1e6)))}&${q("dir", f.pick(["f", "b"]))}`,
    () => `${C}/rooms/${enc(f.pick(rooms))}/initialSync?${q("limit", String(f.int(60) - 5))}`,
    () =>
      `/_matrix/client/v1/media/thumbnail/localhost/${f.seg("nope")}?${q("width", String(f.int(10_000)))}&${q("height", "-1")}&${q("method", "scale")}&${q("animated", "true")}&${q("timeout_ms", "0")}`,
    () => `/_matrix/client/v1/media/download/localhost/${f.seg("nope")}?${q("timeout_ms", String(f.int(100)))}`,
    () =>
      `/_matrix/client/v1/media/preview_url?${q("url", f.pick(["http://127.0.0.1:9/", "ftp://x/", "http://[::1]/"]))}&${q("ts", "1")}`,
  ])();
}

for (const backend of BACKENDS) {
  describe(`fuzzing the client-server API (${backend}, seed ${SEED})`, () => {
    let hs: ChildHomeserver;
    let ctx: { user: Session; other: Session; rooms: string[]; eventId: string };

    before(async () => {
      hs = await ChildHomeserver.start({ backend, matrix: { media: { urlPreview: { enabled: true } } } });
      const tag = randomBytes(3).toString("hex");
      const user = await registerUser(hs.url, `fuzz${tag}`);
      const other = await registerUser(hs.url, `other${tag}`);
      const rooms: string[] = [];
      for (let i = 0; i < 3; i++) {
        rooms.push(
          (await ok(hs.url, "POST", `${C}/createRoom`, { token: user.accessToken, body: { name: `fuzz ${i}` } }))
            .room_id,
        );
      }
      const eventId = (
        await ok(hs.url, "PUT", `${C}/rooms/${enc(rooms[0])}/send/m.room.message/seed`, {
          token: user.accessToken,
          body: { msgtype: "m.text", body: "seed" },
        })
      ).event_id;
      ctx = { user, other, rooms, eventId };
    });
    after(async () => {
      await hs?.dispose();
    });

    it(`${ROUNDS} mutated requests: never a 5xx, errors are Matrix JSON, server stays up`, async () => {
      const f = new Fuzzer(SEED);
      const ts = targets(ctx);
      const failures: string[] = [];
      const statuses = new Map<number, number>();
      for (let i = 0; i < ROUNDS; i++) {
        let method: string;
        let path: string;
        let body: string | Buffer | undefined;
        let auth = true;
        if (f.chance(0.12)) {
          method = "GET";
          path = queryPath(f, ctx.rooms);
        } else {
          const t = f.pick(ts);
          method = t.method;
          path = t.path(f);
          body = f.bodyText(t.body?.(f));
          auth = t.auth !== false;
        }
        const headers: Record<string, string> = {
          "Content-Type": f.pick([
            "application/json",
            "application/json",
            "text/plain",
            "application/json; charset=latin1",
          ]),
        };
        let r: Awaited<ReturnType<typeof api>>;
        try {
          r = await api(hs.url, method, path, { token: auth ? ctx.user.accessToken : undefined, body, headers });
        } catch (e) {
          failures.push(`#${i} ${method} ${path.slice(0, 200)}: request failed: ${(e as Error).message}`);
          if (!hs.running) break;
          continue;
        }
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        const where = `#${i} ${method} ${path.slice(0, 200)} body=${String(body ?? "").slice(0, 200)}`;
        if (r.status >= 500) failures.push(`${where} -> ${r.status} ${r.text.slice(0, 200)}`);
        else if (r.status === 401 && Array.isArray(r.json?.flows)) {
          // A user-interactive auth challenge: the spec's 401 body has flows/session, errcode only after a failed stage.
        } else if (r.status >= 400 && (typeof r.json?.errcode !== "string" || typeof r.json?.error !== "string")) {
          failures.push(`${where} -> ${r.status} without Matrix error JSON: ${r.text.slice(0, 200)}`);
        } else if (r.status === 200 && r.json === undefined)
          failures.push(`${where} -> 200 but not JSON: ${r.text.slice(0, 200)}`);
      }
      const v = await ok(hs.url, "GET", "/_matrix/client/versions");
      assert.ok(Array.isArray(v.versions));
      const summary = [...statuses]
        .sort()
        .map(([s, n]) => `${s}:${n}`)
        .join(" ");
      const logged = hs.errorLines().map((l) => l.slice(0, 400));
      assert.deepEqual(
        failures.slice(0, 40),
        [],
        `statuses ${summary}; ${failures.length} failure(s); server log:\n${logged.slice(0, 5).join("\n")}`,
      );
      assert.deepEqual(hs.errorLines().slice(0, 10), [], "internal errors logged");
      // Sanity: the fuzz reached handlers (not only the JSON parser) and some requests succeeded.
      assert.ok((statuses.get(200) ?? 0) > ROUNDS / 20, `too few successes: ${summary}`);
    });
  });
}
