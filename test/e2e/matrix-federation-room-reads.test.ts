/**
 * Federation reads of a room's DAG and the make_* templates between real homeservers on loopback (hs1.test,
 * hs2.test, hs3.test in-process): hs2 reads a hs1 room's events, state, auth chains, backfill and missing events
 * through its own FederationClient (real X-Matrix signed requests), and asks for join/leave/knock templates.
 * Answers are validated against the spec's server-server OpenAPI; a server with no member, an ACL-denied server,
 * history visibility and bad input are checked too.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { rng } from "../../src/core/prng.ts";
import { federationRoutes } from "../../src/matrix/federation/index.ts";
import { signRequest } from "../../src/matrix/federation/x-matrix.ts";
import { assertSpec } from "../../src/test/spec-schema.ts";
import { api, enc, ok, registerUser, type Session } from "./helpers/client.ts";
import { type Federated, type FedServer as Hs, startFederated } from "./helpers/federation.ts";

const SS = "server-server";

describe("federation room reads: event, state, state_ids, event_auth, backfill, get_missing_events, make_*", () => {
  let fed: Federated;
  let hs1: Hs;
  let hs2: Hs;
  let hs3: Hs;
  let alice: Session; // on hs1
  let roomId: string;
  const bob = "@bob:hs2.test";
  const ids: Record<string, string> = {};

  const send = async (body: string) =>
    (
      await ok(hs1.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/send/m.room.message/${body}`, {
        token: alice.accessToken,
        body: { msgtype: "m.text", body },
      })
    ).event_id as string;
  /** A signed request from `from` to hs1 (as its federation client sends it). */
  const get = <T = any>(from: Hs, path: string) =>
    from.hs.federation.client.request<T>("hs1.test", { method: "GET", path });
  const post = <T = any>(from: Hs, path: string, body: unknown) =>
    from.hs.federation.client.request<T>("hs1.test", { method: "POST", path, body });
  const fails = (p: Promise<unknown>, status: number, code: string) =>
    assert.rejects(p, (e: any) => {
      assert.equal(e.status, status, e.message);
      assert.equal(e.code, code, e.message);
      return true;
    });

  before(async () => {
    fed = await startFederated(3);
    [hs1, hs2, hs3] = fed.servers;
    alice = await registerUser(hs1.url, "alice");
    roomId = (
      await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          preset: "public_chat",
          room_version: "10",
          initial_state: [
            { type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } },
          ],
        },
      })
    ).room_id;
    ids.m1 = await send("m1");
    ids.m2 = await send("m2");
    // No send_join yet (the PDU pipeline is another layer): bob of hs2 is put in the room through hs1's own room
    // service, an event hs1 signs. For what hs1 serves, hs2 is then "in the room" from this event on.
    ids.join = (await hs1.hs.rooms.setMembership({ roomId, sender: bob, target: bob, membership: "join" })).eventId;
    ids.m3 = await send("m3");
    ids.m4 = await send("m4");
  });

  after(async () => {
    await fed?.dispose();
  });

  test("GET /event: one PDU as a transaction; an event from before bob's join ('joined' visibility) comes redacted", async () => {
    const r = await get(hs2, `/_matrix/federation/v1/event/${enc(ids.m3)}`);
    assertSpec(`${SS}/events.yaml`, "/event/{eventId}", "GET", 200, r);
    assert.equal(r.origin, "hs1.test");
    assert.equal(r.pdus.length, 1);
    assert.equal(r.pdus[0].content.body, "m3");
    assert.ok(r.pdus[0].signatures["hs1.test"], "the PDU keeps its signatures");
    const early = await get(hs2, `/_matrix/federation/v1/event/${enc(ids.m1)}`);
    assert.equal(early.pdus[0].type, "m.room.message");
    assert.deepEqual(early.pdus[0].content, {}, "m1 was sent before any hs2 user joined: redacted");
    // The same event is whole for a reader that could see it: alice, on the client API.
    const own = await ok(hs1.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/event/${enc(ids.m1)}`, {
      token: alice.accessToken,
    });
    assert.equal(own.content.body, "m1");
  });

  test("GET /state and /state_ids at an event: the state before it and its auth chain", async () => {
    const sid = await get(hs2, `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(ids.m3)}`);
    assertSpec(`${SS}/events.yaml`, "/state_ids/{roomId}", "GET", 200, sid);
    assert.ok(sid.pdu_ids.includes(ids.join), "bob's join is in the state before m3");
    const current = await ok(hs1.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state`, {
      token: alice.accessToken,
    });
    assert.deepEqual([...sid.pdu_ids].sort(), current.map((e: any) => e.event_id).sort());
    const st = await get(hs2, `/_matrix/federation/v1/state/${enc(roomId)}?event_id=${enc(ids.m3)}`);
    assertSpec(`${SS}/events.yaml`, "/state/{roomId}", "GET", 200, st);
    assert.equal(st.pdus.length, sid.pdu_ids.length);
    assert.equal(st.auth_chain.length, sid.auth_chain_ids.length);
    const create = current.find((e: any) => e.type === "m.room.create").event_id;
    assert.ok(sid.auth_chain_ids.includes(create));
    // Before bob's join the state has no member of hs2.
    const before = await get(hs2, `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(ids.join)}`);
    assert.ok(!before.pdu_ids.includes(ids.join));
    assert.equal(before.pdu_ids.length, sid.pdu_ids.length - 1);
  });

  test("GET /event_auth: the event's auth chain (create, power levels, the sender's membership...)", async () => {
    const r = await get(hs2, `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(ids.m3)}`);
    assertSpec(`${SS}/event_auth.yaml`, "/event_auth/{roomId}/{eventId}", "GET", 200, r);
    const types = r.auth_chain.map((e: any) => `${e.type}|${e.state_key}`).sort();
    assert.ok(types.includes("m.room.create|"));
    assert.ok(types.includes("m.room.power_levels|"));
    assert.ok(types.includes(`m.room.member|${alice.userId}`));
    assert.ok(!types.includes(`m.room.member|${bob}`), "bob's join is not in alice's message's auth chain");
  });

  test("GET /backfill: the given event and its ancestors, newest first, limit capped", async () => {
    const r = await get(hs2, `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(ids.m4)}&limit=4`);
    assertSpec(`${SS}/backfill.yaml`, "/backfill/{roomId}", "GET", 200, r);
    assert.deepEqual(
      r.pdus.map((p: any) => p.content.body ?? p.content.membership ?? null),
      ["m4", "m3", "join", null],
      "m2 (before bob's join) comes redacted",
    );
    const all = await get(hs2, `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(ids.m4)}&limit=100000`);
    assert.ok(all.pdus.length <= 100);
    assert.equal(all.pdus.at(-1).type, "m.room.create", "the walk ends at the create event");
    await fails(
      get(hs2, `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(ids.m4)}&limit=abc`),
      400,
      "M_INVALID_PARAM",
    );
    await fails(get(hs2, `/_matrix/federation/v1/backfill/${enc(roomId)}?limit=3`), 400, "M_MISSING_PARAM");
    await fails(get(hs2, `/_matrix/federation/v1/backfill/${enc(roomId)}?v=nope&limit=3`), 400, "M_INVALID_PARAM");
  });

  test("POST /get_missing_events: prevs of latest_events back to earliest_events, oldest first, limit ≤ 20", async () => {
    const path = `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`;
    const r = await post(hs2, path, { earliest_events: [ids.m1], latest_events: [ids.m4] });
    assertSpec(`${SS}/backfill.yaml`, "/get_missing_events/{roomId}", "POST", 200, r);
    assert.deepEqual(
      r.events.map((p: any) => p.content.body ?? p.content.membership ?? null),
      [null, "join", "m3"],
      "m2 (redacted), bob's join, m3; neither m1 nor m4",
    );
    const one = await post(hs2, path, { earliest_events: [], latest_events: [ids.m4], limit: 1 });
    assert.deepEqual(
      one.events.map((p: any) => p.content.body),
      ["m3"],
    );
    const capped = await post(hs2, path, { earliest_events: [], latest_events: [ids.m4], limit: 1000 });
    assert.ok(capped.events.length <= 20);
    const deep = await post(hs2, path, { earliest_events: [], latest_events: [ids.m4], min_depth: 1000 });
    assert.deepEqual(deep.events, []);
    await fails(post(hs2, path, { earliest_events: [] }), 400, "M_MISSING_PARAM");
    await fails(post(hs2, path, { earliest_events: [], latest_events: ["x"] }), 400, "M_INVALID_PARAM");
    // Malformed JSON, correctly signed.
    const auth = signRequest(
      { method: "POST", uri: path, origin: "hs2.test", destination: "hs1.test", content: undefined },
      hs2.hs.signingKey,
    );
    const bad = await api(hs1.url, "POST", path, { body: "{not json", headers: { Authorization: auth } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.errcode, "M_NOT_JSON");
  });

  test("GET /make_join: a template on the forward extremities with the right auth events; version and user checks", async () => {
    const carol = "@carol:hs2.test";
    const r = await get(hs2, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(carol)}?ver=10&ver=11`);
    assertSpec(`${SS}/joins-v1.yaml`, "/make_join/{roomId}/{userId}", "GET", 200, r);
    assert.equal(r.room_version, "10");
    const ev = r.event;
    assert.deepEqual(
      [ev.type, ev.state_key, ev.sender, ev.content.membership],
      ["m.room.member", carol, carol, "join"],
    );
    assert.deepEqual(ev.prev_events, [ids.m4]);
    const m4 = await hs1.hs.store.events.getEvent(ids.m4);
    assert.equal(ev.depth, m4!.depth + 1);
    const state = await ok(hs1.url, "GET", `/_matrix/client/v3/rooms/${enc(roomId)}/state`, {
      token: alice.accessToken,
    });
    const want = state
      .filter((e: any) => ["m.room.create", "m.room.power_levels", "m.room.join_rules"].includes(e.type))
      .map((e: any) => e.event_id)
      .sort();
    assert.deepEqual([...ev.auth_events].sort(), want, "create, power levels, join rules (carol has no membership)");
    assert.equal(ev.signatures, undefined, "unsigned");
    await fails(
      get(hs2, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(carol)}?ver=1`),
      400,
      "M_INCOMPATIBLE_ROOM_VERSION",
    );
    await fails(
      get(hs2, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(carol)}`),
      400,
      "M_INCOMPATIBLE_ROOM_VERSION",
    );
    await fails(
      get(hs2, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc("@eve:hs3.test")}?ver=10`),
      403,
      "M_FORBIDDEN",
    );
    await fails(
      get(hs2, `/_matrix/federation/v1/make_join/${enc("!nope:hs1.test")}/${enc(carol)}?ver=10`),
      404,
      "M_NOT_FOUND",
    );
    // An invite-only room refuses the uninvited.
    const priv = (
      await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { preset: "private_chat" },
      })
    ).room_id;
    await fails(get(hs2, `/_matrix/federation/v1/make_join/${enc(priv)}/${enc(carol)}?ver=10`), 403, "M_FORBIDDEN");
  });

  test("GET /make_join in a restricted room: a member of an allowed room is vouched for by a local user", async () => {
    const restricted = (
      await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: {
          room_version: "10",
          initial_state: [
            {
              type: "m.room.join_rules",
              state_key: "",
              content: { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: roomId }] },
            },
          ],
        },
      })
    ).room_id;
    const path = (u: string) => `/_matrix/federation/v1/make_join/${enc(restricted)}/${enc(u)}?ver=10`;
    const r = await get(hs2, path(bob));
    assertSpec(`${SS}/joins-v1.yaml`, "/make_join/{roomId}/{userId}", "GET", 200, r);
    assert.equal(r.event.content.join_authorised_via_users_server, alice.userId);
    const aliceJoin = await hs1.hs.store.events.getCurrentStateEvent(restricted, "m.room.member", alice.userId);
    assert.ok(r.event.auth_events.includes(aliceJoin!.eventId), "the authorising user's membership is an auth event");
    // carol of hs2 is in no allowed room.
    await fails(get(hs2, path("@carol:hs2.test")), 403, "M_FORBIDDEN");
  });

  test("GET /make_leave for bob; make_knock only in knock rooms", async () => {
    const r = await get(hs2, `/_matrix/federation/v1/make_leave/${enc(roomId)}/${enc(bob)}`);
    assertSpec(`${SS}/leaving-v1.yaml`, "/make_leave/{roomId}/{userId}", "GET", 200, r);
    assert.equal(r.event.content.membership, "leave");
    assert.ok(r.event.auth_events.includes(ids.join), "bob's own membership authorises his leave");
    await fails(
      get(hs2, `/_matrix/federation/v1/make_leave/${enc(roomId)}/${enc("@carol:hs2.test")}`),
      403,
      "M_FORBIDDEN",
    );
    await fails(
      get(hs2, `/_matrix/federation/v1/make_knock/${enc(roomId)}/${enc("@carol:hs2.test")}?ver=10`),
      403,
      "M_FORBIDDEN",
    );
    const knockRoom = (
      await ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", {
        token: alice.accessToken,
        body: { initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] },
      })
    ).room_id;
    const k = await get(hs2, `/_matrix/federation/v1/make_knock/${enc(knockRoom)}/${enc("@carol:hs2.test")}?ver=10`);
    assertSpec(`${SS}/knocks.yaml`, "/make_knock/{roomId}/{userId}", "GET", 200, k);
    assert.equal(k.event.content.membership, "knock");
  });

  test("a server with no member gets 403; unknown events 404; bad IDs 400", async () => {
    for (const path of [
      `/_matrix/federation/v1/event/${enc(ids.m3)}`,
      `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc(ids.m3)}`,
      `/_matrix/federation/v1/backfill/${enc(roomId)}?v=${enc(ids.m3)}&limit=5`,
    ])
      await fails(get(hs3, path), 403, "M_FORBIDDEN");
    await fails(get(hs2, `/_matrix/federation/v1/event/${enc("$nothere")}`), 404, "M_NOT_FOUND");
    await fails(get(hs2, `/_matrix/federation/v1/event/notanid`), 400, "M_INVALID_PARAM");
    await fails(get(hs2, `/_matrix/federation/v1/state_ids/${enc(roomId)}`), 400, "M_MISSING_PARAM");
    await fails(
      get(hs2, `/_matrix/federation/v1/state_ids/${enc(roomId)}?event_id=${enc("$nothere")}`),
      404,
      "M_NOT_FOUND",
    );
    // The server is still up and answering.
    await get(hs2, `/_matrix/federation/v1/event/${enc(ids.m3)}`);
  });

  test("GET /hierarchy: a space, its accessible children, the inaccessible ones by ID, unknown ones left out", async () => {
    const create = (body: unknown) =>
      ok(hs1.url, "POST", "/_matrix/client/v3/createRoom", { token: alice.accessToken, body }).then((r) => r.room_id);
    const space = await create({ preset: "public_chat", name: "Space", creation_content: { type: "m.space" } });
    const priv = await create({ preset: "private_chat", name: "Private" });
    for (const child of [roomId, priv, "!ghost:hs1.test"])
      await ok(hs1.url, "PUT", `/_matrix/client/v3/rooms/${enc(space)}/state/m.space.child/${enc(child)}`, {
        token: alice.accessToken,
        body: { via: ["hs1.test"] },
      });
    const r = await get(hs2, `/_matrix/federation/v1/hierarchy/${enc(space)}`);
    assertSpec(`${SS}/space_hierarchy.yaml`, "/hierarchy/{roomId}", "GET", 200, r);
    assert.equal(r.room.room_id, space);
    assert.equal(r.room.room_type, "m.space");
    assert.equal(r.room.children_state.length, 3);
    assert.deepEqual(
      r.children.map((c: any) => c.room_id),
      [roomId],
    );
    assert.deepEqual(r.inaccessible_children, [priv]);
    await fails(get(hs2, `/_matrix/federation/v1/hierarchy/${enc(priv)}`), 404, "M_NOT_FOUND");
    await fails(
      get(hs2, `/_matrix/federation/v1/hierarchy/${enc(space)}?suggested_only=maybe`),
      400,
      "M_INVALID_PARAM",
    );
    const only = await get(hs2, `/_matrix/federation/v1/hierarchy/${enc(space)}?suggested_only=true`);
    assert.deepEqual([only.room.children_state, only.children], [[], []]);
  });

  test("m.room.server_acl: a denied server gets 403 on every read, allowed again once the ACL changes", async () => {
    const acl = (content: unknown) =>
      ok(hs1.url, "PUT", `/_matrix/client/v3/rooms/${enc(roomId)}/state/m.room.server_acl/`, {
        token: alice.accessToken,
        body: content,
      });
    await acl({ allow: ["*"], deny: ["hs2.test"], allow_ip_literals: false });
    for (const path of [
      `/_matrix/federation/v1/event/${enc(ids.m3)}`,
      `/_matrix/federation/v1/state/${enc(roomId)}?event_id=${enc(ids.m3)}`,
      `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc("@carol:hs2.test")}?ver=10`,
    ])
      await fails(get(hs2, path), 403, "M_FORBIDDEN");
    await acl({ allow: ["*"], deny: [] });
    await get(hs2, `/_matrix/federation/v1/event/${enc(ids.m3)}`);
  });
  test("hostile requests to every federation route, signed and unsigned: 4xx answers, never a 5xx; hs1 keeps serving", async () => {
    // Seeded: the same 400 requests every run. Paths come from the route table with their parameters filled by
    // real IDs, garbage, traversal and oversized values; bodies are valid JSON of the wrong shape, junk or huge.
    const next = rng(20261207);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
    const fills = [
      roomId,
      ids.m3,
      bob,
      "hs2.test",
      "%00",
      "..%2F..%2Fetc",
      "x".repeat(3000),
      "!nope:hs1.test",
      "$",
      "",
    ];
    const bodies = [
      '{"pdus":[{"room_id":1}],"edus":"x"}',
      "[]",
      "null",
      "{",
      '{"a":'.repeat(500),
      "x".repeat(70_000),
      "",
    ];
    const routes = federationRoutes.flatMap((r) => r.paths.map((path) => ({ method: r.method, path })));
    let fiveHundreds = 0;
    for (let i = 0; i < 400; i++) {
      const r = pick(routes);
      const path =
        r.path.replace(/\{[^}]+\}/g, () => enc(pick(fills))) + pick(["", "?limit=abc", "?v=%ff&limit=-1", "?ver=99"]);
      const method = next() < 0.8 ? r.method : pick(["GET", "PUT", "POST", "DELETE"]);
      const body = method === "GET" || method === "DELETE" ? undefined : pick(bodies);
      const content =
        body === undefined
          ? undefined
          : (() => {
              try {
                return JSON.parse(body);
              } catch {
                return undefined;
              }
            })();
      const auth = pick([
        undefined,
        "X-Matrix garbage",
        'X-Matrix origin="hs2.test",key="ed25519:x",sig="AAAA"',
        signRequest({ method, uri: path, origin: "hs2.test", destination: "hs1.test", content }, hs2.hs.signingKey),
      ]);
      const res = await fetch(`${hs1.url}${path}`, {
        method,
        headers: { "Content-Type": "application/json", ...(auth ? { Authorization: auth } : {}) },
        body,
      }).catch(() => null);
      if (res && res.status >= 500) fiveHundreds++;
      await res?.arrayBuffer();
    }
    assert.equal(fiveHundreds, 0);
    assert.equal((await api(hs1.url, "GET", "/_matrix/federation/v1/version")).status, 200);
    await get(hs2, `/_matrix/federation/v1/event/${enc(ids.m3)}`);
  });
});
