import assert from "node:assert/strict";
import { test } from "node:test";
import { type AuthEvent, type StateKey, stateKey } from "../events/auth.ts";
import { HeadCache, type RoomHead } from "./room-head.ts";

function head(members: number): RoomHead {
  const auth = new Map<StateKey, AuthEvent>();
  for (let i = 0; i < members; i++) {
    const userId = `@u${i}:example.org`;
    auth.set(stateKey("m.room.member", userId), {
      event_id: `$m${i}`,
      type: "m.room.member",
      state_key: userId,
      sender: userId,
      content: { membership: "join" },
      room_id: "!r:example.org",
    });
  }
  return { version: "11", extremities: [], depth: 1, auth, state: { group: null, chain: 0 } };
}

test("least recently used rooms are evicted past the room count", () => {
  const c = new HeadCache(3);
  for (const r of ["a", "b", "c"]) c.set(r, head(1));
  c.get("a");
  c.set("d", head(1));
  assert.equal(c.size, 3);
  assert.equal(c.get("b"), undefined, "b was the least recently used");
  assert.ok(c.get("a") && c.get("c") && c.get("d"));
});

test("the auth events held over all rooms stay within the budget, counting growth on re-set", () => {
  const c = new HeadCache(100, 1000);
  for (let i = 0; i < 10; i++) c.set(`r${i}`, head(150));
  assert.ok(c.weight <= 1000, `weight ${c.weight}`);
  assert.equal(c.size, 6);
  // A head that grew (members joined) is re-counted when set again, evicting the oldest.
  const h = c.get("r9")!;
  const big = head(400);
  for (const [k, v] of big.auth) h.auth.set(k, v);
  c.set("r9", h);
  assert.ok(c.weight <= 1000, `weight ${c.weight}`);
  assert.ok(c.get("r9"));
  // One room over the whole budget is still cached (alone): sending to it must not reload it every time.
  c.set("huge", head(5000));
  assert.equal(c.size, 1);
  assert.ok(c.get("huge"));
  c.delete("huge");
  assert.equal(c.weight, 0);
});
