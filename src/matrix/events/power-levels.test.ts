import assert from "node:assert/strict";
import { test } from "node:test";
import { mayRedact, redactsOf } from "./auth.ts";
import { namedLevel, notificationLevel, powerLevelOf, requiredLevelForEvent, roomCreatorOf } from "./power-levels.ts";

const create10 = {
  event_id: "$c",
  room_id: "!r:x",
  type: "m.room.create",
  state_key: "",
  sender: "@c:x",
  content: { creator: "@c:x", room_version: "10" },
};
const create11 = { ...create10, content: { room_version: "11", creator: "@fake:x" } };

test("user power levels and defaults", () => {
  assert.equal(powerLevelOf("@c:x", undefined, create10), 100);
  assert.equal(powerLevelOf("@a:x", undefined, create10), 0);
  assert.equal(powerLevelOf("@c:x", undefined, create11), 100);
  assert.equal(powerLevelOf("@fake:x", undefined, create11), 0, "v11 ignores content.creator");
  assert.equal(roomCreatorOf(create11), "@c:x");
  assert.equal(roomCreatorOf(undefined), undefined);
  const pl = { users: { "@a:x": 75 }, users_default: 5 };
  assert.equal(powerLevelOf("@a:x", pl, create10), 75);
  assert.equal(powerLevelOf("@b:x", pl, create10), 5);
  assert.equal(powerLevelOf("@c:x", pl, create10), 5, "with a power levels event the creator has no special level");
  assert.equal(powerLevelOf("@b:x", {}, create10), 0);
});

test("required levels for events", () => {
  assert.equal(requiredLevelForEvent("m.room.name", true, undefined), 0, "no PL event: state_default is 0");
  assert.equal(requiredLevelForEvent("m.room.name", true, {}), 50);
  assert.equal(requiredLevelForEvent("m.room.message", false, {}), 0);
  assert.equal(requiredLevelForEvent("m.room.message", false, { events_default: 10 }), 10);
  assert.equal(requiredLevelForEvent("m.room.name", true, { state_default: 20, events: { "m.room.name": 30 } }), 30);
  assert.equal(requiredLevelForEvent("m.room.topic", true, { state_default: 20, events: { "m.room.name": 30 } }), 20);
  assert.equal(namedLevel("ban", undefined), 50);
  assert.equal(namedLevel("invite", {}), 0);
  assert.equal(namedLevel("kick", { kick: 10 }), 10);
  assert.equal(notificationLevel("room", {}), 50);
  assert.equal(notificationLevel("room", { notifications: { room: 0 } }), 0);
});

test("redaction target and permission", () => {
  assert.equal(redactsOf({ content: { redacts: "$a" } }, "11"), "$a");
  assert.equal(redactsOf({ redacts: "$b", content: {} }, "10"), "$b");
  assert.equal(redactsOf({ redacts: "$b", content: { redacts: "$a" } }, "11"), "$a");
  assert.equal(redactsOf({ content: {} }, "11"), undefined);
  const pl = { users: { "@mod:x": 50 } };
  assert.ok(mayRedact("@mod:x", { sender: "@a:x" }, pl, create10));
  assert.ok(mayRedact("@a:x", { sender: "@a:x" }, pl, create10));
  assert.ok(!mayRedact("@b:x", { sender: "@a:x" }, pl, create10));
  assert.ok(!mayRedact("@b:x", undefined, pl, create10));
});
