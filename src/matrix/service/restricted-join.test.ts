import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuthEvent, type StateKey, stateKey } from "../events/auth.ts";
import { allowedRooms, authorisingUser } from "./restricted-join.ts";

const ev = (type: string, key: string, content: Record<string, any>): AuthEvent => ({
  event_id: `$${type}${key}`,
  type,
  state_key: key,
  sender: "@a:hs",
  content,
  room_id: "!r:hs",
});
const state = (events: AuthEvent[]) =>
  new Map<StateKey, AuthEvent>(events.map((e) => [stateKey(e.type, e.state_key!), e]));

test("allowedRooms: only m.room_membership entries with a room_id; anything else admits no one", () => {
  assert.deepEqual(
    allowedRooms({
      allow: [
        { type: "m.room_membership", room_id: "!a:hs" },
        { type: "m.other", room_id: "!b:hs" },
        { type: "m.room_membership" },
        "junk",
        null,
      ],
    }),
    ["!a:hs"],
  );
  assert.deepEqual(allowedRooms({ allow: "!a:hs" }), []);
  assert.deepEqual(allowedRooms(undefined), []);
});

test("authorisingUser: a joined local user with the invite level, the highest-powered first", () => {
  const members = [
    ev("m.room.member", "@low:hs", { membership: "join" }),
    ev("m.room.member", "@mod:hs", { membership: "join" }),
    ev("m.room.member", "@admin:other", { membership: "join" }),
    ev("m.room.member", "@left:hs", { membership: "leave" }),
  ];
  const pl = (content: Record<string, any>) => ev("m.room.power_levels", "", content);
  const users = { "@low:hs": 10, "@mod:hs": 50, "@admin:other": 100, "@left:hs": 100 };
  assert.equal(authorisingUser("hs", state([...members, pl({ users, invite: 0 })])), "@mod:hs");
  assert.equal(authorisingUser("hs", state([...members, pl({ users, invite: 60 })])), null, "nobody local may invite");
  assert.equal(authorisingUser("hs", state([...members, pl({ users: {}, invite: 0 })])), "@low:hs", "ties by user ID");
});
