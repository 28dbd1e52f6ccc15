import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { assertSpec } from "../../test/spec-schema.ts";
import { enc, startTestServer, type TestServer, type TestUser, V3 } from "./room-testkit.ts";

let srv: TestServer;
let alice: TestUser;
let bob: TestUser;
let roomId: string;

async function sync(u: TestUser, params: Record<string, string> = {}): Promise<any> {
  const r = await u.call("GET", `${V3}/sync?${new URLSearchParams(params)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assertSpec("sync.yaml", "/sync", "GET", 200, r.body);
  return r.body;
}

before(async () => {
  srv = await startTestServer();
  alice = await srv.user("alice");
  bob = await srv.user("bob");
  roomId = (await alice.call("POST", `${V3}/createRoom`, {})).body.room_id;
});
after(() => srv.close());

const AD = (u: TestUser) => `${V3}/user/${enc(u.userId)}`;

describe("account data, tags and push rules", () => {
  test("global and per-room account data round-trip and arrive in /sync", async () => {
    const s0 = await sync(alice);
    assert.equal((await alice.call("PUT", `${AD(alice)}/account_data/org.example.cfg`, { a: 1 })).status, 200);
    assert.deepEqual((await alice.call("GET", `${AD(alice)}/account_data/org.example.cfg`)).body, { a: 1 });
    assert.equal(
      (await alice.call("PUT", `${AD(alice)}/rooms/${enc(roomId)}/account_data/org.example.room`, { b: 2 })).status,
      200,
    );
    assert.deepEqual(
      (await alice.call("GET", `${AD(alice)}/rooms/${enc(roomId)}/account_data/org.example.room`)).body,
      { b: 2 },
    );
    const s1 = await sync(alice, { since: s0.next_batch });
    assert.deepEqual(s1.account_data.events, [{ type: "org.example.cfg", content: { a: 1 } }]);
    assert.deepEqual(s1.rooms.join[roomId].account_data.events, [{ type: "org.example.room", content: { b: 2 } }]);

    assert.equal((await alice.call("GET", `${AD(alice)}/account_data/org.example.none`)).body.errcode, "M_NOT_FOUND");
    assert.equal((await bob.call("PUT", `${AD(alice)}/account_data/x`, {})).status, 403);
    assert.equal((await bob.call("GET", `${AD(alice)}/account_data/org.example.cfg`)).status, 403);
    for (const t of ["m.fully_read", "m.push_rules"]) {
      const r = await alice.call("PUT", `${AD(alice)}/account_data/${t}`, {});
      assert.equal(r.status, 405);
      assert.equal(r.body.errcode, "M_BAD_JSON");
    }
    assert.equal(
      (await alice.call("PUT", `${AD(alice)}/rooms/not-a-room/account_data/x`, {})).body.errcode,
      "M_INVALID_PARAM",
    );
    assert.equal((await alice.call("PUT", `${AD(alice)}/account_data/x`, "[1]")).status, 400);
  });

  test("tags: put, get, delete, delivered as m.tag", async () => {
    const s0 = await sync(alice);
    assert.equal(
      (await alice.call("PUT", `${AD(alice)}/rooms/${enc(roomId)}/tags/m.favourite`, { order: 0.5 })).status,
      200,
    );
    assert.equal((await alice.call("PUT", `${AD(alice)}/rooms/${enc(roomId)}/tags/u.work`, {})).status, 200);
    const g = await alice.call("GET", `${AD(alice)}/rooms/${enc(roomId)}/tags`);
    assertSpec("tags.yaml", "/user/{userId}/rooms/{roomId}/tags", "GET", 200, g.body);
    assert.deepEqual(g.body, { tags: { "m.favourite": { order: 0.5 }, "u.work": {} } });
    assert.equal((await alice.call("DELETE", `${AD(alice)}/rooms/${enc(roomId)}/tags/u.work`)).status, 200);
    const s1 = await sync(alice, { since: s0.next_batch });
    const tag = s1.rooms.join[roomId].account_data.events.find((e: any) => e.type === "m.tag");
    assert.deepEqual(tag.content, { tags: { "m.favourite": { order: 0.5 } } });
    assert.equal((await alice.call("PUT", `${AD(alice)}/rooms/${enc(roomId)}/tags/x`, { order: "high" })).status, 400);
  });

  test("push rules: defaults, CRUD, enabled and actions, persisted in m.push_rules", async () => {
    const all = await alice.call("GET", `${V3}/pushrules/`);
    assert.equal(all.status, 200);
    assertSpec("pushrules.yaml", "/pushrules/", "GET", 200, all.body);
    const ids = (k: string) => all.body.global[k].map((r: any) => r.rule_id);
    assert.deepEqual(ids("override"), [
      ".m.rule.master",
      ".m.rule.suppress_notices",
      ".m.rule.invite_for_me",
      ".m.rule.member_event",
      ".m.rule.is_user_mention",
      ".m.rule.contains_display_name",
      ".m.rule.is_room_mention",
      ".m.rule.roomnotif",
      ".m.rule.tombstone",
      ".m.rule.reaction",
      ".m.rule.room.server_acl",
      ".m.rule.suppress_edits",
    ]);
    assert.deepEqual(ids("underride"), [
      ".m.rule.call",
      ".m.rule.encrypted_room_one_to_one",
      ".m.rule.room_one_to_one",
      ".m.rule.message",
      ".m.rule.encrypted",
    ]);
    assert.deepEqual((await alice.call("GET", `${V3}/pushrules/global/`)).body, all.body.global);

    const s0 = await sync(alice);
    const R = `${V3}/pushrules/global`;
    assert.equal((await alice.call("PUT", `${R}/room/${enc(roomId)}`, { actions: [] })).status, 200);
    assert.equal((await alice.call("PUT", `${R}/content/cats`, { actions: ["notify"], pattern: "cat*" })).status, 200);
    assert.equal(
      (
        await alice.call("PUT", `${R}/override/first`, {
          actions: [],
          conditions: [{ kind: "event_match", key: "type", pattern: "x" }],
        })
      ).status,
      200,
    );
    assert.equal((await alice.call("PUT", `${R}/override/second?after=first`, { actions: [] })).status, 200);
    assert.equal((await alice.call("PUT", `${R}/override/.m.rule.mine`, { actions: [] })).status, 400);
    assert.equal((await alice.call("PUT", `${R}/override/x?before=.m.rule.master`, { actions: [] })).status, 400);
    assert.equal((await alice.call("PUT", `${R}/override/x?before=nope`, { actions: [] })).status, 404);
    assert.equal((await alice.call("PUT", `${R}/content/nopattern`, { actions: [] })).body.errcode, "M_MISSING_PARAM");
    assert.equal((await alice.call("PUT", `${R}/bogus/x`, { actions: [] })).status, 400);

    const over = (await alice.call("GET", `${R}/`)).body.override.map((r: any) => r.rule_id);
    assert.deepEqual(over.slice(0, 4), [".m.rule.master", "first", "second", ".m.rule.suppress_notices"]);
    const cats = await alice.call("GET", `${R}/content/cats`);
    assert.deepEqual(cats.body, {
      rule_id: "cats",
      default: false,
      enabled: true,
      actions: ["notify"],
      pattern: "cat*",
    });

    assert.equal((await alice.call("PUT", `${R}/override/.m.rule.master/enabled`, { enabled: true })).status, 200);
    assert.deepEqual((await alice.call("GET", `${R}/override/.m.rule.master/enabled`)).body, { enabled: true });
    assert.equal(
      (await alice.call("PUT", `${R}/underride/.m.rule.message/actions`, { actions: ["notify"] })).status,
      200,
    );
    assert.deepEqual((await alice.call("GET", `${R}/underride/.m.rule.message/actions`)).body, { actions: ["notify"] });
    assert.equal((await alice.call("GET", `${R}/underride/nope/actions`)).status, 404);

    assert.equal((await alice.call("DELETE", `${R}/content/cats`)).status, 200);
    assert.equal((await alice.call("GET", `${R}/content/cats`)).status, 404);
    assert.equal((await alice.call("DELETE", `${R}/content/cats`)).status, 404);
    assert.equal((await alice.call("DELETE", `${R}/override/.m.rule.master`)).status, 400);

    const s1 = await sync(alice, { since: s0.next_batch });
    const pr = s1.account_data.events.find((e: any) => e.type === "m.push_rules");
    assert.equal(pr.content.global.override[0].enabled, true);
    assert.ok(pr.content.global.room.some((r: any) => r.rule_id === roomId));
    assert.deepEqual(
      (await alice.call("GET", `${AD(alice)}/account_data/m.push_rules`)).body.global.override[0].enabled,
      true,
    );
    // Bob's rules are untouched.
    assert.equal((await bob.call("GET", `${R}/override/.m.rule.master/enabled`)).body.enabled, false);
  });
});
