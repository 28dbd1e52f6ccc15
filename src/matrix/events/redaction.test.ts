import assert from "node:assert/strict";
import { test } from "node:test";
import { redactEvent } from "./redaction.ts";

const base = {
  event_id: "$e",
  room_id: "!r:x",
  sender: "@a:x",
  origin: "x",
  origin_server_ts: 1,
  depth: 2,
  prev_events: ["$p"],
  auth_events: ["$a"],
  hashes: { sha256: "h" },
  signatures: { x: { "ed25519:1": "s" } },
  unsigned: { age: 3 },
  membership: "join",
  prev_state: [],
  extra_top_level: true,
};

const ev = (type: string, content: Record<string, any>, extra: Record<string, any> = {}): Record<string, any> => ({
  ...base,
  type,
  content,
  ...extra,
});

test("top-level keys: v10 keeps origin/membership/prev_state, v11 drops them; both drop unsigned", () => {
  const e = ev("m.room.message", { body: "x" });
  const r10 = redactEvent(e, "10");
  const r11 = redactEvent(e, "11");
  for (const k of ["origin", "membership", "prev_state"]) {
    assert.ok(k in r10, `v10 keeps ${k}`);
    assert.ok(!(k in r11), `v11 drops ${k}`);
  }
  for (const r of [r10, r11]) {
    assert.ok(!("unsigned" in r) && !("extra_top_level" in r));
    assert.deepEqual(r.content, {});
    assert.deepEqual(r.signatures, base.signatures);
    assert.equal(r.event_id, "$e");
  }
  assert.deepEqual(e.content, { body: "x" }, "input not modified");
});

// [type, content, kept in v10, kept in v11]
const CONTENT_CASES: Array<[string, Record<string, any>, Record<string, any>, Record<string, any>]> = [
  [
    "m.room.member",
    { membership: "join", displayname: "A", join_authorised_via_users_server: "@b:x", avatar_url: "mxc://x/y" },
    { membership: "join", join_authorised_via_users_server: "@b:x" },
    { membership: "join", join_authorised_via_users_server: "@b:x" },
  ],
  [
    "m.room.member",
    { membership: "invite", third_party_invite: { display_name: "bob", signed: { mxid: "@b:x", token: "t" } } },
    { membership: "invite" },
    { membership: "invite", third_party_invite: { signed: { mxid: "@b:x", token: "t" } } },
  ],
  [
    "m.room.create",
    { creator: "@a:x", room_version: "10", "m.federate": false, predecessor: { room_id: "!o:x" } },
    { creator: "@a:x" },
    { creator: "@a:x", room_version: "10", "m.federate": false, predecessor: { room_id: "!o:x" } },
  ],
  [
    "m.room.join_rules",
    { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!s:x" }], other: 1 },
    { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!s:x" }] },
    { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!s:x" }] },
  ],
  [
    "m.room.power_levels",
    {
      ban: 50,
      events: { a: 1 },
      events_default: 0,
      invite: 0,
      kick: 50,
      redact: 50,
      state_default: 50,
      users: { "@a:x": 100 },
      users_default: 0,
      notifications: { room: 50 },
    },
    {
      ban: 50,
      events: { a: 1 },
      events_default: 0,
      kick: 50,
      redact: 50,
      state_default: 50,
      users: { "@a:x": 100 },
      users_default: 0,
    },
    {
      ban: 50,
      events: { a: 1 },
      events_default: 0,
      invite: 0,
      kick: 50,
      redact: 50,
      state_default: 50,
      users: { "@a:x": 100 },
      users_default: 0,
    },
  ],
  [
    "m.room.history_visibility",
    { history_visibility: "shared", x: 1 },
    { history_visibility: "shared" },
    { history_visibility: "shared" },
  ],
  ["m.room.redaction", { redacts: "$t", reason: "spam" }, {}, { redacts: "$t" }],
  ["m.room.aliases", { aliases: ["#a:x"] }, {}, {}],
  ["m.room.name", { name: "secret" }, {}, {}],
];

test("content keys kept per event type, v10 vs v11", () => {
  for (const [type, content, want10, want11] of CONTENT_CASES) {
    assert.deepEqual(redactEvent(ev(type, content, { state_key: "" }), "10").content, want10, `v10 ${type}`);
    assert.deepEqual(redactEvent(ev(type, content, { state_key: "" }), "11").content, want11, `v11 ${type}`);
  }
});

test("older versions used by the spec vectors; unknown versions rejected", () => {
  assert.deepEqual(redactEvent(ev("m.room.aliases", { aliases: ["#a:x"] }), "5").content, { aliases: ["#a:x"] });
  assert.deepEqual(redactEvent(ev("m.room.join_rules", { join_rule: "public", allow: [] }), "7").content, {
    join_rule: "public",
  });
  assert.throws(() => redactEvent(ev("m.room.name", {}), "13"), /room version/);
  assert.throws(() => redactEvent(ev("m.room.name", {}), "org.example.custom"), /room version/);
});

test("missing or non-object content becomes {}", () => {
  assert.deepEqual(redactEvent<Record<string, any>>({ type: "m.room.member", content: "x" }, "11").content, {});
  assert.deepEqual(redactEvent<Record<string, any>>({ type: "m.room.member" }, "10").content, {});
});
