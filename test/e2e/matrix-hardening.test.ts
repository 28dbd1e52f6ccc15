/**
 * Hardening (issue 8): state-only event types are refused as message events, transaction IDs are scoped per
 * device and endpoint path, presence is visible only to users sharing a room, a revoked session's WebSocket
 * closes at once, and media uploaded after the v1.11 freeze is not served by the legacy unauthenticated routes.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { BACKENDS } from "./helpers/homeserver.ts";
import { enc, type Kit, startKit, V3 } from "./matrix-accounts-kit.ts";

type User = { userId: string; token: string; deviceId: string };

for (const backend of BACKENDS) {
  describe(`room sends on ${backend}`, () => {
    let k: Kit;
    let alice: User;
    let roomA = "";
    let roomB = "";
    before(async () => {
      k = await startKit(backend);
      alice = await k.register("alice");
      roomA = (await k.call("POST", `${V3}/createRoom`, {}, alice.token)).body.room_id;
      roomB = (await k.call("POST", `${V3}/createRoom`, {}, alice.token)).body.room_id;
    });
    after(async () => {
      await k.dispose();
      assert.deepEqual(k.errors, [], "no internal errors");
    });

    const send = (roomId: string, type: string, txn: string, body: Record<string, any>, token = alice.token) =>
      k.call("PUT", `${V3}/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txn)}`, body, token);
    const timeline = async (roomId: string) =>
      (await k.call("GET", `${V3}/rooms/${enc(roomId)}/messages?dir=b&limit=50`, undefined, alice.token)).body.chunk;

    test("m.room.create (and other state-only types) are refused as message events", async () => {
      for (const type of ["m.room.create", "m.room.power_levels", "m.room.member", "m.room.join_rules"]) {
        const r = await send(roomA, type, `state-only-${type}`, { room_version: "10", membership: "join" });
        assert.deepEqual([r.status, r.body.errcode], [400, "M_BAD_JSON"], `${type}: ${JSON.stringify(r.body)}`);
      }
      const creates = (await timeline(roomA)).filter((e: any) => e.type === "m.room.create");
      assert.equal(creates.length, 1, "only the room's own create event");
      assert.equal(creates[0].state_key, "");
    });

    test("a txnId reused in another room, or for another type, is a new message; a retry is not", async () => {
      const a = await send(roomA, "m.room.message", "same", { msgtype: "m.text", body: "in A" });
      const b = await send(roomB, "m.room.message", "same", { msgtype: "m.text", body: "in B" });
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.notEqual(b.body.event_id, a.body.event_id, "room B's message is its own event");
      const inB = (await timeline(roomB)).find((e: any) => e.event_id === b.body.event_id);
      assert.equal(inB?.content.body, "in B");
      const other = await send(roomA, "m.reaction.test", "same", { x: 1 });
      assert.notEqual(other.body.event_id, a.body.event_id, "another event type is another endpoint path");
      // The retry of the same request on the same path is deduplicated, per device.
      const retry = await send(roomA, "m.room.message", "same", { msgtype: "m.text", body: "in A" });
      assert.equal(retry.body.event_id, a.body.event_id);
      const bodies = (await timeline(roomA)).filter((e: any) => e.content?.body === "in A");
      assert.equal(bodies.length, 1);
      // Another device of the same user is another scope too.
      const login = await k.login("alice", "correct horse battery");
      const again = await send(
        roomA,
        "m.room.message",
        "same",
        { msgtype: "m.text", body: "in A" },
        login.body.access_token,
      );
      assert.notEqual(again.body.event_id, a.body.event_id);
      // Redactions take their own path: the same txnId redacting two events redacts both.
      const r1 = await k.call("PUT", `${V3}/rooms/${enc(roomA)}/redact/${enc(a.body.event_id)}/same`, {}, alice.token);
      const r2 = await k.call("PUT", `${V3}/rooms/${enc(roomB)}/redact/${enc(b.body.event_id)}/same`, {}, alice.token);
      assert.equal(r1.status, 200);
      assert.equal(r2.status, 200);
      assert.notEqual(r1.body.event_id, r2.body.event_id);
    });
  });
}
