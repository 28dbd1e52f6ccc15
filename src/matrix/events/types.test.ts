import assert from "node:assert/strict";
import { test } from "node:test";
import { contentOf, field, isJsonObject } from "./types.ts";

test("field walks plain objects only: anything else on the way gives undefined", () => {
  const content = { third_party_invite: { signed: { token: "t" } }, list: [{ a: 1 }], s: "text" };
  assert.equal(field(content, "third_party_invite", "signed", "token"), "t");
  assert.equal(field(content, "third_party_invite", "missing", "token"), undefined);
  assert.equal(field(content, "list", "0"), undefined, "arrays are not walked");
  assert.equal(field(content, "s", "length"), undefined, "nor strings");
  assert.equal(field(null, "a"), undefined);
  assert.deepEqual(field(content), content);
});

test("isJsonObject: plain objects, not null or arrays", () => {
  assert.equal(isJsonObject({}), true);
  assert.equal(isJsonObject([]), false);
  assert.equal(isJsonObject(null), false);
  assert.equal(isJsonObject("x"), false);
});

test("contentOf reads an event's content under its state type", () => {
  const ev = {
    type: "m.room.join_rules",
    content: { join_rule: "restricted", allow: [{ type: "m.room_membership" }] },
  };
  assert.equal(contentOf("m.room.join_rules", ev)?.join_rule, "restricted");
  assert.equal(contentOf("m.room.join_rules", undefined), undefined);
});
